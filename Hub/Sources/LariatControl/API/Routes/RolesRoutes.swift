import LariatStore

/// `/v3/globalroles` and `/v3/roletemplates`: the rules roles grant. Built-in roles can be read
/// but not deleted (their rules come back at the next start).
enum RolesRoutes {
    static func register(_ identity: IdentityRoutes, in builder: inout RouterBuilder) {
        let control = identity.control
        var global = KindEndpoint<GlobalRole>(store: identity.rbac.globalRoles.store)
        global.validate = GlobalRole.validate
        global.refuseDelete = { $0.spec.builtin ? "\($0.name) is a built-in role" : nil }
        global.informer = identity.rbac.globalRoles
        global.register(in: &builder) { control.router }

        var templates = KindEndpoint<RoleTemplate>(store: identity.rbac.roleTemplates.store)
        templates.validate = RoleTemplate.validate
        templates.refuseDelete = { $0.spec.builtin ? "\($0.name) is a built-in role template" : nil }
        templates.informer = identity.rbac.roleTemplates
        templates.register(in: &builder) { control.router }
    }
}

/// `/v3/globalrolebindings`, `/v3/clusterroletemplatebindings`, `/v3/projectroletemplatebindings`:
/// who holds which role where. A binding is authorized in its own scope (a cluster owner binds
/// members of that cluster), and must name a role of the right context that exists.
enum BindingsRoutes {
    static func register(_ identity: IdentityRoutes, in builder: inout RouterBuilder) {
        let control = identity.control
        let rbac = identity.rbac

        var global = KindEndpoint<GlobalRoleBinding>(store: rbac.globalRoleBindings.store)
        global.validate = { b in
            var errors = GlobalRoleBinding.validate(b)
            if rbac.globalRoles.get(b.spec.globalRoleName) == nil {
                errors.append(FieldError("spec.globalRoleName", "no global role \"\(b.spec.globalRoleName)\""))
            }
            return errors
        }
        global.prepareCreate = { _, b in if b.metadata.name.isEmpty { b.metadata.name = "grb-" + SecureRandomName.make() } }
        global.informer = rbac.globalRoleBindings
        global.register(in: &builder) { control.router }

        var cluster = KindEndpoint<ClusterRoleTemplateBinding>(store: rbac.clusterBindings.store)
        cluster.scope = { (cluster: $0.spec.clusterName, project: nil) }
        cluster.validate = { b in
            var errors = ClusterRoleTemplateBinding.validate(b)
            if control.clusterInformer.get(b.spec.clusterName) == nil {
                errors.append(FieldError("spec.clusterName", "no cluster \"\(b.spec.clusterName)\""))
            }
            errors += roleTemplateErrors(rbac, b.spec.roleTemplateName, context: "cluster")
            return errors
        }
        cluster.prepareCreate = { _, b in if b.metadata.name.isEmpty { b.metadata.name = "crtb-" + SecureRandomName.make() } }
        cluster.informer = rbac.clusterBindings
        cluster.register(in: &builder) { control.router }

        var project = KindEndpoint<ProjectRoleTemplateBinding>(store: rbac.projectBindings.store)
        project.scope = { b in (cluster: rbac.projects.get(b.spec.projectName)?.spec.clusterName, project: b.spec.projectName) }
        project.validate = { b in
            var errors = ProjectRoleTemplateBinding.validate(b)
            if rbac.projects.get(b.spec.projectName) == nil {
                errors.append(FieldError("spec.projectName", "no project \"\(b.spec.projectName)\""))
            }
            errors += roleTemplateErrors(rbac, b.spec.roleTemplateName, context: "project")
            return errors
        }
        project.prepareCreate = { _, b in if b.metadata.name.isEmpty { b.metadata.name = "prtb-" + SecureRandomName.make() } }
        project.informer = rbac.projectBindings
        project.register(in: &builder) { control.router }
    }

    static func roleTemplateErrors(_ rbac: RBACInformers, _ name: String, context: String) -> [FieldError] {
        guard let t = rbac.roleTemplates.get(name) else {
            return [FieldError("spec.roleTemplateName", "no role template \"\(name)\"")]
        }
        guard t.spec.context.rawValue == context else {
            return [FieldError("spec.roleTemplateName", "\"\(name)\" is a \(t.spec.context.rawValue) role, not a \(context) role")]
        }
        return []
    }
}
