import Foundation
import LariatStore

/// The role bindings indexed by subject and scope, built from the informers' caches in one
/// pass; immutable, replaced whole when anything it was built from changes.
final class RBACSnapshot: Sendable {
    enum Subject: Hashable, Sendable {
        case user(String)
        case group(String)
    }

    /// A role granted by one binding.
    struct Grant: Sendable {
        let bindingKind: String
        let binding: String
        let role: String
        let rules: [PolicyRule]
        var explanation: String { "\(bindingKind) \(binding) (\(role))" }
    }

    struct Grants: Sendable {
        var bySubject: [Subject: [Grant]] = [:]

        mutating func add(_ grant: Grant, user: String?, group: String?) {
            if let user, !user.isEmpty { bySubject[.user(user), default: []].append(grant) }
            if let group, !group.isEmpty { bySubject[.group(group), default: []].append(grant) }
        }

        func firstAllowing(_ access: Access, for subjects: [Subject]) -> Grant? {
            for subject in subjects {
                for grant in bySubject[subject] ?? [] where grant.rules.contains(where: { $0.allows(access) }) {
                    return grant
                }
            }
            return nil
        }
    }

    struct Namespace: Hashable {
        let cluster: String
        let name: String
    }

    let global: Grants
    /// Cluster name → grants there.
    let clusters: [String: Grants]
    /// Project name → grants there.
    let projectGrants: [String: Grants]
    let projectCluster: [String: String]
    /// (cluster, namespace) → the projects holding it (one, unless two projects claim it).
    let namespaceProjects: [Namespace: [String]]
    /// Subject → the clusters where it holds a binding, of the cluster or of one of its projects
    /// → that binding (the first seen), for `Authorizer.canReach`.
    let reach: [Subject: [String: String]]

    init(_ i: RBACInformers) {
        // Objects being deleted grant nothing: their deletion was asked for.
        let roles = Dictionary(uniqueKeysWithValues: i.globalRoles.items.filter { !$0.metadata.isBeingDeleted }.map { ($0.name, $0) })
        let templates = Dictionary(uniqueKeysWithValues: i.roleTemplates.items.filter { !$0.metadata.isBeingDeleted }.map { ($0.name, $0) })

        var global = Grants()
        for b in i.globalRoleBindings.items where !b.metadata.isBeingDeleted {
            guard let role = roles[b.spec.globalRoleName] else { continue }
            global.add(Grant(bindingKind: GlobalRoleBinding.kind, binding: b.name, role: role.name, rules: role.spec.rules),
                       user: b.spec.userName, group: b.spec.groupPrincipalName)
        }

        var reach: [Subject: [String: String]] = [:]
        func reaches(_ cluster: String, via: String, user: String?, group: String?) {
            if let user, !user.isEmpty, reach[.user(user)]?[cluster] == nil { reach[.user(user), default: [:]][cluster] = via }
            if let group, !group.isEmpty, reach[.group(group)]?[cluster] == nil { reach[.group(group), default: [:]][cluster] = via }
        }

        var clusters: [String: Grants] = [:]
        for b in i.clusterBindings.items where !b.metadata.isBeingDeleted {
            // A binding naming a project template grants nothing (the API refuses to create one).
            guard let t = templates[b.spec.roleTemplateName], t.spec.context == .cluster else { continue }
            let grant = Grant(bindingKind: ClusterRoleTemplateBinding.kind, binding: b.name, role: t.name, rules: t.spec.rules)
            clusters[b.spec.clusterName, default: Grants()].add(grant, user: b.spec.userName, group: b.spec.groupPrincipalName)
            reaches(b.spec.clusterName, via: grant.explanation, user: b.spec.userName, group: b.spec.groupPrincipalName)
        }

        var projectCluster: [String: String] = [:]
        var namespaceProjects: [Namespace: [String]] = [:]
        for p in i.projects.items where !p.metadata.isBeingDeleted {
            projectCluster[p.name] = p.spec.clusterName
            for ns in p.spec.namespaces {
                namespaceProjects[Namespace(cluster: p.spec.clusterName, name: ns), default: []].append(p.name)
            }
        }

        var projectGrants: [String: Grants] = [:]
        for b in i.projectBindings.items where !b.metadata.isBeingDeleted {
            guard let cluster = projectCluster[b.spec.projectName],
                  let t = templates[b.spec.roleTemplateName], t.spec.context == .project else { continue }
            let grant = Grant(bindingKind: ProjectRoleTemplateBinding.kind, binding: b.name, role: t.name, rules: t.spec.rules)
            projectGrants[b.spec.projectName, default: Grants()].add(grant, user: b.spec.userName, group: b.spec.groupPrincipalName)
            reaches(cluster, via: "\(grant.explanation) in project \(b.spec.projectName)", user: b.spec.userName,
                    group: b.spec.groupPrincipalName)
        }

        self.global = global
        self.clusters = clusters
        self.projectGrants = projectGrants
        self.projectCluster = projectCluster
        self.namespaceProjects = namespaceProjects
        self.reach = reach
    }

    /// The projects whose bindings apply to `access`: the project it names (if that project is
    /// in the cluster the access names, when it names one), or the projects holding its namespace.
    func projects(for access: Access) -> [String] {
        if let project = access.project {
            guard let cluster = projectCluster[project] else { return [] }
            if let asked = access.cluster, asked != cluster { return [] }
            return [project]
        }
        guard let cluster = access.cluster, let ns = access.namespace else { return [] }
        return namespaceProjects[Namespace(cluster: cluster, name: ns)] ?? []
    }
}
