import Foundation
import LariatStore

/// The RBAC objects (`rbac.authorization.k8s.io/v1`) `RBACSyncController` keeps in a cluster, and
/// the set it wants there, computed from the hub's role bindings:
///
/// - a GlobalRoleBinding whose role has Kubernetes rules: ClusterRole `lariat-gr-<role>` and
///   ClusterRoleBinding `lariat-grb-<binding>` (in every cluster, as the hub's own authorizer
///   applies global roles everywhere);
/// - a ClusterRoleTemplateBinding of the cluster: ClusterRole `lariat-rt-<template>` and
///   ClusterRoleBinding `lariat-crtb-<binding>`;
/// - a ProjectRoleTemplateBinding of one of its projects: the same ClusterRole, and a RoleBinding
///   `lariat-prtb-<binding>` to it in each of the project's namespaces.
///
/// Every object carries `lariat.io/managed-by: lariat-hub` (what the controller lists by: it never
/// touches an object without it), a label naming its hub object, and that object's uid.
public enum ClusterRBACObjects {
    public static let managedByLabel = "lariat.io/managed-by"
    public static let managedByValue = "lariat-hub"
    public static let bindingLabel = "lariat.io/binding"
    public static let roleTemplateLabel = "lariat.io/role-template"
    public static let globalRoleLabel = "lariat.io/global-role"
    /// The uid of the hub object an RBAC object was made for.
    public static let uidAnnotation = "lariat.io/uid"
    public static let group = "rbac.authorization.k8s.io"
    public static let apiPrefix = "/apis/rbac.authorization.k8s.io/v1"
    public static var selector: String { "\(managedByLabel)=\(managedByValue)" }

    public static func roleName(template: String) -> String { "lariat-rt-" + template }
    public static func roleName(globalRole: String) -> String { "lariat-gr-" + globalRole }
    public static func bindingName(clusterBinding: String) -> String { "lariat-crtb-" + clusterBinding }
    public static func bindingName(projectBinding: String) -> String { "lariat-prtb-" + projectBinding }
    public static func bindingName(globalBinding: String) -> String { "lariat-grb-" + globalBinding }

    /// The rules of a hub role that mean something to Kubernetes: the management group
    /// (`management.lariat.io`) is the hub's own and dropped, a rule naming only it goes;
    /// non-resource URL rules stay.
    public static func kubernetesRules(_ rules: [PolicyRule]) -> [PolicyRule] {
        rules.compactMap { rule in
            if !rule.nonResourceURLs.isEmpty { return rule }
            var r = rule
            r.apiGroups.removeAll { $0 == Access.managementGroup }
            return r.apiGroups.isEmpty ? nil : r
        }
    }

    /// What cluster `cluster` should hold, from the informers' caches. Objects being deleted
    /// grant nothing, nor does a binding naming a missing template or one of the other context
    /// (as in `RBACSnapshot`).
    static func desired(cluster: String, from i: RBACInformers) -> [KubeRBACObject.Key: KubeRBACObject] {
        var out: [KubeRBACObject.Key: KubeRBACObject] = [:]
        func add(_ o: KubeRBACObject) { out[o.key] = o }
        let templates = Dictionary(i.roleTemplates.items.filter { !$0.metadata.isBeingDeleted }.map { ($0.name, $0) },
                                   uniquingKeysWith: { a, _ in a })
        func templateRole(_ t: Object<RoleTemplate>) -> KubeRBACObject {
            .clusterRole(name: roleName(template: t.name), labels: [roleTemplateLabel: t.name], uid: t.metadata.uid,
                         rules: kubernetesRules(t.spec.rules))
        }

        let globalRoles = Dictionary(i.globalRoles.items.filter { !$0.metadata.isBeingDeleted }.map { ($0.name, $0) },
                                     uniquingKeysWith: { a, _ in a })
        for b in i.globalRoleBindings.items where !b.metadata.isBeingDeleted {
            guard let role = globalRoles[b.spec.globalRoleName], let subject = subject(b.spec.userName, b.spec.groupPrincipalName)
            else { continue }
            let rules = kubernetesRules(role.spec.rules)
            // A role of hub rights only (the default `user`) needs nothing in any cluster.
            guard !rules.isEmpty else { continue }
            let roleName = roleName(globalRole: role.name)
            add(.clusterRole(name: roleName, labels: [globalRoleLabel: role.name], uid: role.metadata.uid, rules: rules))
            add(.binding(.clusterRoleBinding, name: bindingName(globalBinding: b.name), namespace: nil,
                         labels: [bindingLabel: b.name], uid: b.metadata.uid, role: roleName, subject: subject))
        }

        for b in i.clusterBindings.items where !b.metadata.isBeingDeleted && b.spec.clusterName == cluster {
            guard let t = templates[b.spec.roleTemplateName], t.spec.context == .cluster,
                  let subject = subject(b.spec.userName, b.spec.groupPrincipalName) else { continue }
            let role = templateRole(t)
            add(role)
            add(.binding(.clusterRoleBinding, name: bindingName(clusterBinding: b.name), namespace: nil,
                         labels: [bindingLabel: b.name], uid: b.metadata.uid, role: role.metadata.name, subject: subject))
        }

        let projects = Dictionary(i.projects.items.filter { !$0.metadata.isBeingDeleted && $0.spec.clusterName == cluster }
                                    .map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for b in i.projectBindings.items where !b.metadata.isBeingDeleted {
            guard let project = projects[b.spec.projectName], let t = templates[b.spec.roleTemplateName],
                  t.spec.context == .project, let subject = subject(b.spec.userName, b.spec.groupPrincipalName),
                  !project.spec.namespaces.isEmpty else { continue }
            let role = templateRole(t)
            add(role)
            for ns in project.spec.namespaces {
                add(.binding(.roleBinding, name: bindingName(projectBinding: b.name), namespace: ns,
                             labels: [bindingLabel: b.name], uid: b.metadata.uid, role: role.metadata.name, subject: subject))
            }
        }
        return out
    }

    /// The binding's one subject: its user (the User object's name, what the hub impersonates)
    /// or its group (one of the user's groups, impersonated too).
    private static func subject(_ user: String?, _ groupName: String?) -> KubeRBACObject.Subject? {
        if let user, !user.isEmpty { return .init(kind: "User", apiGroup: group, name: user) }
        if let groupName, !groupName.isEmpty { return .init(kind: "Group", apiGroup: group, name: groupName) }
        return nil
    }
}

/// One ClusterRole, ClusterRoleBinding or RoleBinding as the sync controller writes it; what it
/// reads back decodes into the same shape (fields it does not manage are ignored).
public struct KubeRBACObject: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable, Comparable {
        case clusterRole = "ClusterRole"
        case clusterRoleBinding = "ClusterRoleBinding"
        case roleBinding = "RoleBinding"

        /// The plural in the API's paths.
        public var resource: String {
            switch self {
            case .clusterRole: "clusterroles"
            case .clusterRoleBinding: "clusterrolebindings"
            case .roleBinding: "rolebindings"
            }
        }
        public var isBinding: Bool { self != .clusterRole }
        public static func < (a: Kind, b: Kind) -> Bool { a.rawValue < b.rawValue }
    }

    /// Where an object lives: kind, namespace ("" for cluster-scoped ones) and name.
    public struct Key: Hashable, Sendable, Comparable, CustomStringConvertible {
        public var kind: Kind
        public var namespace: String
        public var name: String
        public init(kind: Kind, namespace: String, name: String) {
            self.kind = kind
            self.namespace = namespace
            self.name = name
        }
        public static func < (a: Key, b: Key) -> Bool { (a.kind, a.namespace, a.name) < (b.kind, b.namespace, b.name) }
        public var description: String { "\(kind.rawValue) \(namespace.isEmpty ? "" : namespace + "/")\(name)" }

        /// The object's path on the API server.
        public var path: String { ClusterRBACObjects.collectionPath(kind, namespace: namespace) + "/" + name }
    }

    public struct Metadata: Codable, Sendable, Equatable {
        public var name: String
        public var namespace: String?
        public var labels: [String: String]?
        public var annotations: [String: String]?
        public var resourceVersion: String?
    }

    public struct RoleRef: Codable, Sendable, Equatable {
        public var apiGroup: String
        public var kind: String
        public var name: String
    }

    public struct Subject: Codable, Sendable, Equatable {
        public var kind: String
        public var apiGroup: String?
        public var name: String
        public var namespace: String?

        /// As the API server defaults it (users and groups are in the RBAC group), for comparing.
        var normalized: Subject {
            var s = self
            if s.apiGroup == nil || s.apiGroup == "" { s.apiGroup = kind == "ServiceAccount" ? "" : ClusterRBACObjects.group }
            if s.namespace == "" { s.namespace = nil }
            return s
        }
    }

    public var apiVersion: String?
    public var kind: String?
    public var metadata: Metadata
    public var rules: [PolicyRule]?
    public var roleRef: RoleRef?
    public var subjects: [Subject]?

    public var key: Key {
        let k = kind.flatMap(Kind.init(rawValue:)) ?? (roleRef == nil ? .clusterRole : (metadata.namespace == nil ? .clusterRoleBinding : .roleBinding))
        return Key(kind: k, namespace: metadata.namespace ?? "", name: metadata.name)
    }

    static func clusterRole(name: String, labels: [String: String], uid: String, rules: [PolicyRule]) -> KubeRBACObject {
        KubeRBACObject(apiVersion: ClusterRBACObjects.group + "/v1", kind: Kind.clusterRole.rawValue,
                       metadata: Metadata(name: name, labels: managed(labels), annotations: [ClusterRBACObjects.uidAnnotation: uid]),
                       rules: rules)
    }

    static func binding(_ kind: Kind, name: String, namespace: String?, labels: [String: String], uid: String, role: String,
                        subject: Subject) -> KubeRBACObject {
        KubeRBACObject(apiVersion: ClusterRBACObjects.group + "/v1", kind: kind.rawValue,
                       metadata: Metadata(name: name, namespace: namespace, labels: managed(labels),
                                          annotations: [ClusterRBACObjects.uidAnnotation: uid]),
                       roleRef: RoleRef(apiGroup: ClusterRBACObjects.group, kind: Kind.clusterRole.rawValue, name: role),
                       subjects: [subject])
    }

    private static func managed(_ labels: [String: String]) -> [String: String] {
        labels.merging([ClusterRBACObjects.managedByLabel: ClusterRBACObjects.managedByValue]) { $1 }
    }

    /// What differs between `self` (wanted) and `actual` that an update repairs: a label or
    /// annotation of ours missing or changed, the rules, the subjects. Labels and annotations
    /// others added are left alone. `nil` when nothing.
    func drift(from actual: KubeRBACObject) -> String? {
        var what: [String] = []
        for (k, v) in metadata.labels ?? [:] where actual.metadata.labels?[k] != v { what.append("label \(k)") }
        for (k, v) in metadata.annotations ?? [:] where actual.metadata.annotations?[k] != v { what.append("annotation \(k)") }
        if key.kind == .clusterRole {
            if (actual.rules ?? []) != (rules ?? []) { what.append("rules") }
        } else if (actual.subjects ?? []).map(\.normalized) != (subjects ?? []).map(\.normalized) {
            what.append("subjects")
        }
        return what.isEmpty ? nil : what.joined(separator: ", ")
    }

    /// `self` as the update of `actual`: its resourceVersion, and the labels and annotations
    /// others added kept.
    func replacing(_ actual: KubeRBACObject) -> KubeRBACObject {
        var o = self
        o.metadata.resourceVersion = actual.metadata.resourceVersion
        o.metadata.labels = (actual.metadata.labels ?? [:]).merging(metadata.labels ?? [:]) { $1 }
        o.metadata.annotations = (actual.metadata.annotations ?? [:]).merging(metadata.annotations ?? [:]) { $1 }
        return o
    }

    // Rules go out in Kubernetes' own form: empty lists left out.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(apiVersion, forKey: .apiVersion)
        try c.encodeIfPresent(kind, forKey: .kind)
        try c.encode(metadata, forKey: .metadata)
        try c.encodeIfPresent(rules.map { $0.map(WireRule.init) }, forKey: .rules)
        try c.encodeIfPresent(roleRef, forKey: .roleRef)
        try c.encodeIfPresent(subjects, forKey: .subjects)
    }

    private struct WireRule: Encodable {
        var verbs: [String]
        var apiGroups: [String]?
        var resources: [String]?
        var resourceNames: [String]?
        var nonResourceURLs: [String]?
        init(_ r: PolicyRule) {
            verbs = r.verbs
            apiGroups = r.apiGroups.isEmpty ? nil : r.apiGroups
            resources = r.resources.isEmpty ? nil : r.resources
            resourceNames = r.resourceNames.isEmpty ? nil : r.resourceNames
            nonResourceURLs = r.nonResourceURLs.isEmpty ? nil : r.nonResourceURLs
        }
    }
}

/// A list answer (`ClusterRoleList`, …): its items.
struct KubeRBACList: Decodable {
    var items: [KubeRBACObject]?
}

extension ClusterRBACObjects {
    /// The collection of `kind` in `namespace` (all namespaces when "" for a namespaced kind).
    public static func collectionPath(_ kind: KubeRBACObject.Kind, namespace: String) -> String {
        namespace.isEmpty ? "\(apiPrefix)/\(kind.resource)" : "\(apiPrefix)/namespaces/\(namespace)/\(kind.resource)"
    }
}
