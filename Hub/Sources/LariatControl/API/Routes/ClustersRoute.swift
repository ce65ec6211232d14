import Foundation
import LariatStore

/// `/v3/clusters`: clusters are created by their future owners (the creator is bound to
/// `cluster-owner`), read by whoever has a role in them, and deleted by their owners; their
/// status belongs to the hub (agents report into it), never to an update.
enum ClustersRoute {
    static func register(_ control: ControlPlane, in builder: inout RouterBuilder) {
        var endpoint = KindEndpoint<Cluster>(store: control.clusters)
        endpoint.validate = Cluster.validate
        endpoint.scope = { (cluster: $0.name, project: nil) }
        endpoint.afterCreate = { ctx, cluster in control.clusterCreated(cluster, by: ctx.caller) }
        endpoint.informer = control.clusterInformer
        endpoint.register(in: &builder) { control.router }

        // POST /v3/clusters/{name}/import: a new registration token and the
        // command that imports the cluster with it (shown once).
        builder.add("POST", "/v3/clusters/{name}/import") { ctx, p in
            let name = p["name"]!
            guard let cluster = try control.clusters.find(name) else {
                try control.router.authorize(ctx, Access(verb: "update", resource: "clusters", name: name))
                throw APIError.notFound("Cluster \"\(name)\" not found")
            }
            try control.router.authorize(ctx, Access(verb: "create", resource: ClusterRegistrationToken.plural,
                                                     cluster: cluster.name))
            return .json(201, try control.issueImport(for: cluster.name))
        }
    }
}
