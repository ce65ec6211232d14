import Foundation

/// A kind of control-plane object: its names and the types of its spec and status.
public protocol Resource: Sendable {
    associatedtype Spec: Codable & Sendable & Equatable
    associatedtype Status: Codable & Sendable & Equatable
    /// The kind as objects name it ("Cluster").
    static var kind: String { get }
    /// The collection name in URLs and store keys ("clusters").
    static var plural: String { get }
    static func emptyStatus() -> Status
}

/// One object of kind `R`, as stored and as the API shows it.
public struct Object<R: Resource>: Codable, Sendable, Equatable {
    public var kind: String
    public var metadata: ObjectMeta
    public var spec: R.Spec
    public var status: R.Status

    public init(name: String, spec: R.Spec, labels: [String: String] = [:], annotations: [String: String] = [:]) {
        kind = R.kind
        metadata = ObjectMeta(name: name, labels: labels, annotations: annotations)
        self.spec = spec
        status = R.emptyStatus()
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decodeIfPresent(String.self, forKey: .kind) ?? R.kind
        metadata = try c.decode(ObjectMeta.self, forKey: .metadata)
        spec = try c.decode(R.Spec.self, forKey: .spec)
        status = try c.decodeIfPresent(R.Status.self, forKey: .status) ?? R.emptyStatus()
    }

    public var name: String { metadata.name }
    public var key: StoreKey { StoreKey(kind: R.plural, name: metadata.name) }
    public var revision: Int64 { Int64(metadata.resourceVersion) ?? 0 }
}

/// A status with nothing in it, for kinds that keep none.
public struct NoStatus: Codable, Sendable, Equatable {
    public init() {}
}
