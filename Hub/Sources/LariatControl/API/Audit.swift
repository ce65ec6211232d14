import Foundation
import Synchronization

/// One audited API request: who, what, the decision and its reason, the outcome. Never a
/// secret: bodies are not recorded, and routes whose path holds one (the import URL) replace it.
public struct AuditRecord: Codable, Sendable, Equatable {
    public var time: Date
    public var requestID: String
    public var user: String?
    public var groups: [String]?
    public var token: String?
    public var source: String
    public var method: String
    public var path: String
    public var verb: String?
    public var resource: String?
    public var name: String?
    public var cluster: String?
    public var status: Int
    public var reason: String
    public var durationMicros: Int
}

/// Where audit records go. Every request passes through `record`, allowed or not.
public protocol AuditSink: Sendable {
    func record(_ r: AuditRecord)
}

/// Opens `path` for appending, creating it readable by its owner only (audit logs and session
/// recordings hold who did what, and what they typed); "-" is standard output. `what` names the
/// file in the error ("the audit log").
public func openPrivateAppendFile(_ path: String, what: String) throws -> FileHandle {
    if path == "-" { return FileHandle.standardOutput }
    if !FileManager.default.fileExists(atPath: path) {
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw APIError.unavailable("cannot create \(what) \(path)")
        }
    }
    guard let h = FileHandle(forWritingAtPath: path) else { throw APIError.unavailable("cannot open \(what) \(path)") }
    h.seekToEndOfFile()
    return h
}

/// JSON lines appended to a file (or standard output), one record per line, written whole.
public final class JSONLinesAuditSink: AuditSink {
    private let handle: Mutex<FileHandle>

    public init(path: String) throws {
        handle = Mutex(try openPrivateAppendFile(path, what: "the audit log"))
    }

    public func record(_ r: AuditRecord) {
        guard var line = try? APIJSON.encoder.encode(r) else { return }
        line.append(0x0A)
        handle.withLock { $0.write(line) }
    }
}

/// Records kept in memory, newest last, at most `capacity` (for `/v3/auditlog`-style views and tests).
public final class MemoryAuditSink: AuditSink {
    private let records = Mutex<[AuditRecord]>([])
    public let capacity: Int
    public init(capacity: Int = 10_000) { self.capacity = capacity }
    public func record(_ r: AuditRecord) {
        records.withLock { rs in
            rs.append(r)
            if rs.count > capacity { rs.removeFirst(rs.count - capacity) }
        }
    }
    public var all: [AuditRecord] { records.withLock { $0 } }
}

/// Fans one record out to several sinks.
public struct AuditSinks: AuditSink {
    public var sinks: [any AuditSink]
    public init(_ sinks: [any AuditSink]) { self.sinks = sinks }
    public func record(_ r: AuditRecord) { for s in sinks { s.record(r) } }
}
