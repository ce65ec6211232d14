import Foundation
import LariatControl

/// One line of the Kubernetes audit log: a request through `/k8s/clusters/<id>/…`, the start
/// or end of an exec, attach or port-forward session, or a connection through a Forward's
/// listener (`forward`: written when it ends or is refused; `user` is the forward's owner, whose
/// rights it used, `source` the connecting address). Built on the loop from plain values and
/// encoded on the log's own queue. Never a secret: no bodies, no headers, no bearer (only the
/// Token object's name).
struct KubernetesAuditEvent: Codable, Sendable {
    enum Kind: String, Codable, Sendable { case request, sessionStart = "session-start", sessionEnd = "session-end", forward }
    var kind: Kind
    var time: Date
    var requestID: String
    var user: String
    var username: String
    var groups: [String]
    var token: String?
    var source: String
    var cluster: String
    /// The path the request took: `cluster-agent:<id>` or `node-agent:<id>`.
    var path: String?
    var method: String
    var uri: String
    var verb: String
    var apiGroup: String?
    var resource: String?
    var subresource: String?
    var namespace: String?
    var name: String?
    /// Forward connections: the Forward object and the tunnel target (`svc:NS/NAME:PORT`).
    var forward: String?
    var target: String?
    var status: Int?
    var bytesIn: Int?
    var bytesOut: Int?
    var durationMicros: Int?
    // Sessions only.
    var pod: String?
    var container: String?
    var command: [String]?
    var tty: Bool?
    var exitCode: Int?
    var error: String?
    /// The asciicast file of a recorded session, or why a session of a recording cluster was not recorded.
    var recording: String?
    var notRecorded: String?
}

/// Where Kubernetes audit lines go: a file (appended, 0600) or standard output, written in order
/// on a serial queue so the loops never wait for the disk. Also keeps the most recent in memory.
final class KubernetesAuditLog: Sendable {
    private let queue = DispatchQueue(label: "k8s-audit")
    private let handle: FileHandle?
    private let encoder: JSONEncoder
    private let recent = MemoryRing<KubernetesAuditEvent>(capacity: 1000)

    init(path: String?) throws {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
        }
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder = e
        guard let path else { handle = nil; return }
        if path == "-" { handle = FileHandle.standardOutput; return }
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw APIError.unavailable("cannot create the Kubernetes audit log \(path)")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw APIError.unavailable("cannot open the Kubernetes audit log \(path)")
        }
        h.seekToEndOfFile()
        handle = h
    }

    func record(_ event: KubernetesAuditEvent) {
        recent.append(event)
        guard let handle else { return }
        queue.async { [encoder] in
            guard var line = try? encoder.encode(event) else { return }
            line.append(0x0A)
            handle.write(line)
        }
    }

    var recentEvents: [KubernetesAuditEvent] { recent.all }
}

import Synchronization

/// The newest `capacity` values, oldest first.
final class MemoryRing<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])
    let capacity: Int
    init(capacity: Int) { self.capacity = capacity }
    func append(_ v: Value) {
        values.withLock { vs in
            vs.append(v)
            if vs.count > capacity { vs.removeFirst(vs.count - capacity) }
        }
    }
    var all: [Value] { values.withLock { $0 } }
}
