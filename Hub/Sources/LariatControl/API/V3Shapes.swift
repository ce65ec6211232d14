import Foundation
import LariatStore

/// An object as the v3 API shows it: Rancher's `id`, `type` and `links` beside the object's
/// own `metadata`, `spec` and `status`.
public struct V3Item<R: Resource>: Encodable, Sendable {
    public var object: Object<R>
    public init(_ object: Object<R>) { self.object = object }

    enum Keys: String, CodingKey { case id, type, links, kind, metadata, spec, status }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(object.name, forKey: .id)
        try c.encode(R.kind.prefix(1).lowercased() + R.kind.dropFirst(), forKey: .type)
        try c.encode(["self": "/v3/\(R.plural)/\(object.name)"], forKey: .links)
        try c.encode(object.kind, forKey: .kind)
        try c.encode(object.metadata, forKey: .metadata)
        try c.encode(object.spec, forKey: .spec)
        try c.encode(object.status, forKey: .status)
    }
}

/// A page of a collection, in Rancher's shape (`type: collection`, `data`, `pagination`).
public struct V3Collection<R: Resource>: Encodable, Sendable {
    public struct Pagination: Encodable, Sendable {
        var limit: Int
        var `continue`: String?
        var next: String?
    }
    var type = "collection"
    var resourceType: String
    var revision: String
    var data: [V3Item<R>]
    var pagination: Pagination

    init(items: [V3Item<R>], kind: String, plural: String, revision: String, continueToken: String?, limit: Int) {
        resourceType = kind.prefix(1).lowercased() + kind.dropFirst()
        self.revision = revision
        data = items
        let next = continueToken.map { t -> String in
            let escaped = t.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? t
            return "/v3/\(plural)?limit=\(limit)&continue=\(escaped)"
        }
        pagination = Pagination(limit: limit, continue: continueToken, next: next)
    }
}
