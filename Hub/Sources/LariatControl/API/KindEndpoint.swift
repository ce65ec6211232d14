import Foundation
import LariatStore

/// The generic part of a resource's routes: list (label selector, pages, watch), get, create,
/// update (PUT, optimistic concurrency) and delete (finalizers), each authorized against the
/// object's cluster and project and answered in Rancher's v3 shapes. A resource file configures
/// one with what is particular to its kind: validation, scope, defaults, redaction, side effects.
public struct KindEndpoint<R: Resource>: Sendable {
    public var store: ObjectStore<R>
    /// Field errors for an object about to be written (422 when any).
    public var validate: @Sendable (Object<R>) -> [FieldError] = { _ in [] }
    /// The cluster and project an object belongs to, for authorization.
    public var scope: @Sendable (Object<R>) -> (cluster: String?, project: String?) = { _ in (nil, nil) }
    /// Fills in what the server decides on create (names, owners); may throw an APIError.
    public var prepareCreate: @Sendable (RequestContext, inout Object<R>) throws -> Void = { _, _ in }
    /// Adjusts an update before it is validated and written (keep server-owned fields, say).
    public var prepareUpdate: @Sendable (RequestContext, Object<R>, inout Object<R>) throws -> Void = { _, _, _ in }
    /// The user who owns an object (a Token's user, a User itself), for "own objects" rules.
    public var owner: @Sendable (Object<R>) -> String? = { _ in nil }
    /// The Kubernetes namespace (of the object's cluster) an object is about, for authorization:
    /// the bindings of the projects holding that namespace then apply to it.
    public var namespace: @Sendable (Object<R>) -> String? = { _ in nil }
    /// A right a verb on an object takes besides the management one (a Forward: the access to
    /// the Service it grants); checked first, so the audit records the management decision.
    public var alsoRequires: @Sendable (_ verb: String, Object<R>) -> Access? = { _, _ in nil }
    /// Refuses a delete (built-in roles, say) with the reason.
    public var refuseDelete: @Sendable (Object<R>) -> String? = { _ in nil }
    /// The cache of this kind the control plane reads from, told of writes at once.
    public var informer: Informer<R>?
    /// Runs after a successful create (a creator's binding, say).
    public var afterCreate: @Sendable (RequestContext, Object<R>) -> Void = { _, _ in }
    /// What clients see of an object (secrets' digests removed, say).
    public var present: @Sendable (Object<R>) -> Object<R> = { $0 }
    /// Verbs this kind does not offer through the API at all.
    public var disallowed: Set<String> = []
    /// Longest a watch stays open before the client must reconnect from its last version.
    public var watchTimeout: TimeInterval = 1800

    public init(store: ObjectStore<R>) { self.store = store }

    /// Registers `GET/POST /v3/<plural>` and `GET/PUT/DELETE /v3/<plural>/{name}`.
    public func register(in builder: inout RouterBuilder, router: @escaping @Sendable () -> Router) {
        let base = "/v3/" + R.plural
        builder.add("GET", base) { ctx, _ in try self.list(ctx, router()) }
        builder.add("POST", base) { ctx, _ in try self.create(ctx, router()) }
        builder.add("GET", base + "/{name}") { ctx, p in try self.get(ctx, router(), p["name"]!) }
        builder.add("PUT", base + "/{name}") { ctx, p in try self.update(ctx, router(), p["name"]!) }
        builder.add("DELETE", base + "/{name}") { ctx, p in try self.delete(ctx, router(), p["name"]!) }
    }

    func access(_ verb: String, _ o: Object<R>?, name: String? = nil) -> Access {
        let s: (cluster: String?, project: String?) = o.map(scope) ?? (nil, nil)
        return Access(verb: verb, resource: R.plural, name: o?.name ?? name, cluster: s.cluster,
                      namespace: o.flatMap(namespace), project: s.project, owner: o.flatMap(owner))
    }

    /// Refuses with 403 unless the caller may do `verb` on `o` (and what `alsoRequires` adds).
    func authorize(_ ctx: RequestContext, _ router: Router, _ verb: String, _ o: Object<R>) throws {
        if let extra = alsoRequires(verb, o) { try router.authorize(ctx, extra) }
        try router.authorize(ctx, access(verb, o))
    }

    /// Whether the caller may see `o` in a list (`everything`: it may list them all).
    func visible(_ ctx: RequestContext, _ router: Router, everything: Bool, _ o: Object<R>) -> Bool {
        if let extra = alsoRequires("get", o), !router.allows(ctx, extra) { return false }
        return everything || router.allows(ctx, access("get", o))
    }

    func check(_ verb: String) throws {
        if disallowed.contains(verb) { throw APIError.methodNotAllowed("\(verb) is not offered for \(R.plural)") }
    }

    public func get(_ ctx: RequestContext, _ router: Router, _ name: String) throws -> APIResponse {
        try check("get")
        guard let o = try store.find(name) else {
            // Existence is not revealed to those who may not read it.
            try router.authorize(ctx, Access(verb: "get", resource: R.plural, name: name))
            throw APIError.notFound("\(R.kind) \"\(name)\" not found")
        }
        try authorize(ctx, router, "get", o)
        return .json(200, V3Item(present(o)))
    }

    public func list(_ ctx: RequestContext, _ router: Router) throws -> APIResponse {
        try check("list")
        let q = ctx.request.query
        let selector: LabelSelector
        do { selector = try LabelSelector(parsing: q["labelSelector"] ?? "") } catch {
            throw APIError.invalid([FieldError("labelSelector", error.description)])
        }
        let allowedEverywhere = router.allows(ctx, Access(verb: "list", resource: R.plural))
        if q["watch"] == "true" || q["watch"] == "1" {
            return try watch(ctx, router, selector: selector, everything: allowedEverywhere)
        }
        ctx.access = Access(verb: "list", resource: R.plural)
        ctx.decisionReason = allowedEverywhere ? "list allowed" : "filtered to the objects the caller may get"
        var limit = 500
        if let l = q["limit"] {
            guard let n = Int(l), n > 0 else { throw APIError.invalid([FieldError("limit", "a positive integer")]) }
            limit = min(n, 5000)
        }
        let page = try store.list(selector: selector, limit: limit, continue: q["continue"])
        let shown = page.items.filter { visible(ctx, router, everything: allowedEverywhere, $0) }
        return .json(200, V3Collection(items: shown.map { V3Item(present($0)) }, kind: R.kind, plural: R.plural,
                                       revision: page.resourceVersion, continueToken: page.continue, limit: limit))
    }

    public func create(_ ctx: RequestContext, _ router: Router) throws -> APIResponse {
        try check("create")
        var o = try BodyDecoding.decode(Object<R>.self, from: ctx.request.body)
        o.status = R.emptyStatus()
        try prepareCreate(ctx, &o)
        try authorize(ctx, router, "create", o)
        let errors = validate(o)
        guard errors.isEmpty else { throw APIError.invalid(errors) }
        let created = try store.create(o)
        informer?.remember(created)
        afterCreate(ctx, created)
        return .json(201, V3Item(present(created)))
    }

    public func update(_ ctx: RequestContext, _ router: Router, _ name: String) throws -> APIResponse {
        try check("update")
        var o = try BodyDecoding.decode(Object<R>.self, from: ctx.request.body)
        guard o.metadata.name.isEmpty || o.metadata.name == name else {
            throw APIError.invalid([FieldError("metadata.name", "does not match the URL (\(name))")])
        }
        o.metadata.name = name
        guard let current = try store.find(name) else {
            try router.authorize(ctx, Access(verb: "update", resource: R.plural, name: name))
            throw APIError.notFound("\(R.kind) \"\(name)\" not found")
        }
        try authorize(ctx, router, "update", current)
        // Status belongs to the controllers, the owners' scope cannot be moved by an update.
        o.status = current.status
        try prepareUpdate(ctx, current, &o)
        if o.metadata.resourceVersion.isEmpty {
            throw APIError.invalid([FieldError("metadata.resourceVersion", "required: send the version you read")])
        }
        let errors = validate(o)
        guard errors.isEmpty else { throw APIError.invalid(errors) }
        let s1 = scope(current), s2 = scope(o)
        guard s1.cluster == s2.cluster, s1.project == s2.project else {
            throw APIError.invalid([FieldError("spec", "the cluster or project of an object cannot change")])
        }
        let updated = try store.update(o)
        informer?.remember(updated)
        return .json(200, V3Item(present(updated)))
    }

    public func delete(_ ctx: RequestContext, _ router: Router, _ name: String) throws -> APIResponse {
        try check("delete")
        guard let current = try store.find(name) else {
            try router.authorize(ctx, Access(verb: "delete", resource: R.plural, name: name))
            throw APIError.notFound("\(R.kind) \"\(name)\" not found")
        }
        try authorize(ctx, router, "delete", current)
        if let why = refuseDelete(current) { throw APIError.forbidden(why) }
        if let marked = try store.delete(name, resourceVersion: ctx.request.query["resourceVersion"]) {
            informer?.remember(marked)
            return .json(202, V3Item(present(marked)))  // finalizers still to run
        }
        // The deletion's revision is above the object's; the watch event follows with the exact one.
        informer?.forget(current, revision: current.revision + 1)
        return .json(200, V3Item(present(current)))
    }

    /// `?watch=true&resourceVersion=N`: one JSON line per change after N (`{"type":"ADDED",…}`),
    /// filtered as the list is; 410 when N is too old. Without N it starts from now.
    func watch(_ ctx: RequestContext, _ router: Router, selector: LabelSelector, everything: Bool) throws -> APIResponse {
        ctx.access = Access(verb: "watch", resource: R.plural)
        ctx.decisionReason = everything ? "watch allowed" : "filtered to the objects the caller may get"
        let from: Int64
        if let rv = ctx.request.query["resourceVersion"], !rv.isEmpty {
            guard let n = Int64(rv), n >= 0 else { throw APIError.invalid([FieldError("resourceVersion", "an integer")]) }
            from = n
        } else {
            from = try store.backend.currentRevision()
        }
        let caller = ctx.caller
        let authorizer = router.authorizer
        let scope = self.scope, present = self.present, owner = self.owner, timeout = watchTimeout
        let namespace = self.namespace, alsoRequires = self.alsoRequires
        // Opened now, so a 410 is the answer's status rather than a line in a 200 stream.
        let relay = WatchRelay()
        let cancellation = try store.watch(after: from, { event in
            guard selector.matches(event.object.metadata.labels) else { return }
            if let extra = alsoRequires("get", event.object), !authorizer.authorize(caller, extra).allowed { return }
            if !everything {
                let s = scope(event.object)
                let a = Access(verb: "get", resource: R.plural, name: event.object.name, cluster: s.cluster,
                               namespace: namespace(event.object), project: s.project, owner: owner(event.object))
                guard authorizer.authorize(caller, a).allowed else { return }
            }
            relay.send(WatchLine(type: event.type.rawValue, object: V3Item(present(event.object))))
        }, onEnd: { failure in relay.end(failure) })
        relay.cancellation = cancellation
        let stream = APIStream(start: { sink in relay.attach(sink, timeout: timeout) }, cancel: { relay.stop() })
        return APIResponse(status: 200, headers: [("Content-Type", "application/json")], stream: stream)
    }
}

/// One line of a watch stream, as Kubernetes writes them.
struct WatchLine<T: Encodable & Sendable>: Encodable, Sendable {
    var type: String
    var object: T
}
