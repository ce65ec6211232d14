import Foundation
import LariatControl
import LariatRuntime

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
    private let recent = MemoryRing<KubernetesAuditEvent>(capacity: 1000)

    init(path: String?) throws {
        handle = try path.map { try openPrivateAppendFile($0, what: "the Kubernetes audit log") }
    }

    func record(_ event: KubernetesAuditEvent) {
        recent.append(event)
        guard let handle else { return }
        queue.async {
            var line = event.jsonLine
            line.append(0x0A)
            handle.write(Data(line))
        }
    }

    var recentEvents: [KubernetesAuditEvent] { recent.all }
}

extension KubernetesAuditEvent {
    private static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// The event as one JSON object, keys sorted, absent fields left out (what `JSONEncoder` with
    /// sorted keys wrote, at a fraction of its cost: a profile of proxied GETs had the encoder at
    /// 11.5 % of the hub's CPU).
    var jsonLine: [UInt8] {
        enum Value { case string(String), int(Int), bool(Bool), strings([String]) }
        var fields: [(String, Value)] = [
            ("kind", .string(kind.rawValue)), ("time", .string(time.formatted(Self.timeFormat))),
            ("requestID", .string(requestID)), ("user", .string(user)), ("username", .string(username)),
            ("groups", .strings(groups)), ("source", .string(source)), ("cluster", .string(cluster)),
            ("method", .string(method)), ("uri", .string(uri)), ("verb", .string(verb)),
        ]
        func add(_ key: String, _ v: String?) { if let v { fields.append((key, .string(v))) } }
        func add(_ key: String, _ v: Int?) { if let v { fields.append((key, .int(v))) } }
        add("token", token); add("path", path); add("apiGroup", apiGroup); add("resource", resource)
        add("subresource", subresource); add("namespace", namespace); add("name", name); add("forward", forward)
        add("target", target); add("status", status); add("bytesIn", bytesIn); add("bytesOut", bytesOut)
        add("durationMicros", durationMicros); add("pod", pod); add("container", container)
        if let command { fields.append(("command", .strings(command))) }
        if let tty { fields.append(("tty", .bool(tty))) }
        add("exitCode", exitCode); add("error", error); add("recording", recording); add("notRecorded", notRecorded)
        fields.sort { $0.0 < $1.0 }
        var w = JSONLineWriter(capacity: 512)
        w.beginObject()
        for (key, value) in fields {
            w.key(key)
            switch value {
            case .string(let s): w.string(s)
            case .int(let n): w.raw(number: n)
            case .bool(let b): w.bool(b)
            case .strings(let list):
                w.beginArray()
                for item in list { w.string(item) }
                w.endArray()
            }
        }
        w.endObject()
        return w.bytes
    }
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
