import Foundation

/// What every control-plane object carries, as in Kubernetes: identity, optimistic-concurrency
/// version, generation (bumped when the spec changes), labels and annotations, and the
/// finalizers that hold a deletion until the controllers that own them are done.
public struct ObjectMeta: Codable, Sendable, Equatable {
    public var name: String
    public var uid: String
    /// The store revision of the last write; an update must carry the one it read.
    public var resourceVersion: String
    public var generation: Int64
    public var creationTimestamp: Date?
    /// Set when deletion was asked for while finalizers remained; the object goes once they are gone.
    public var deletionTimestamp: Date?
    public var labels: [String: String]
    public var annotations: [String: String]
    public var finalizers: [String]

    public init(name: String, labels: [String: String] = [:], annotations: [String: String] = [:],
                finalizers: [String] = []) {
        self.name = name
        uid = ""
        resourceVersion = ""
        generation = 0
        self.labels = labels
        self.annotations = annotations
        self.finalizers = finalizers
    }

    // Absent fields decode to their empty values, so API clients may leave them out.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        uid = try c.decodeIfPresent(String.self, forKey: .uid) ?? ""
        resourceVersion = try c.decodeIfPresent(String.self, forKey: .resourceVersion) ?? ""
        generation = try c.decodeIfPresent(Int64.self, forKey: .generation) ?? 0
        creationTimestamp = try c.decodeIfPresent(Date.self, forKey: .creationTimestamp)
        deletionTimestamp = try c.decodeIfPresent(Date.self, forKey: .deletionTimestamp)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations) ?? [:]
        finalizers = try c.decodeIfPresent([String].self, forKey: .finalizers) ?? []
    }

    public var isBeingDeleted: Bool { deletionTimestamp != nil }
}

/// One condition of an object's status ("Connected", "Ready"), as Kubernetes and Rancher keep them.
public struct Condition: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable { case `true` = "True", `false` = "False", unknown = "Unknown" }
    public var type: String
    public var status: State
    public var reason: String
    public var message: String
    public var lastTransitionTime: Date

    public init(type: String, status: State, reason: String = "", message: String = "", at time: Date = Date()) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        lastTransitionTime = time
    }
}

extension Array where Element == Condition {
    public subscript(type: String) -> Condition? { first { $0.type == type } }

    /// Sets condition `type`; its transition time moves only when its status changes. Returns
    /// whether anything changed.
    @discardableResult
    public mutating func set(_ type: String, _ status: Condition.State, reason: String = "", message: String = "",
                             at time: Date = Date()) -> Bool {
        if let i = firstIndex(where: { $0.type == type }) {
            let old = self[i]
            guard old.status != status || old.reason != reason || old.message != message else { return false }
            self[i] = Condition(type: type, status: status, reason: reason, message: message,
                                at: old.status == status ? old.lastTransitionTime : time)
            return true
        }
        append(Condition(type: type, status: status, reason: reason, message: message, at: time))
        return true
    }

    public func isTrue(_ type: String) -> Bool { self[type]?.status == .true }
}
