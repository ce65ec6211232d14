import LariatStore

/// `/v3/projects`: a named set of namespaces in one cluster, created by those who may create
/// projects in that cluster (cluster owners); project role bindings grant access to them.
enum ProjectsRoute {
    static func register(_ control: ControlPlane, in builder: inout RouterBuilder) {
        var endpoint = KindEndpoint<Project>(store: control.projects)
        endpoint.validate = { project in
            var errors = Project.validate(project)
            if errors.isEmpty, (try? control.clusters.find(project.spec.clusterName)) ?? nil == nil {
                errors.append(FieldError("spec.clusterName", "no cluster \"\(project.spec.clusterName)\""))
            }
            return errors
        }
        endpoint.scope = { (cluster: $0.spec.clusterName, project: $0.name) }
        endpoint.informer = control.projectInformer
        endpoint.register(in: &builder) { control.router }
    }
}
