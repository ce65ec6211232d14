// Payloads and the tiny wire header lariat-bench clients send to its own target server.
#if canImport(Glibc)
import Glibc
#endif

/// What the client asks the target (in `auto` mode) to do with the connection.
enum Op: UInt8 {
    case sink = 0x53    // 'S': count bytes, acknowledge progress
    case echo = 0x45    // 'E': echo everything (the header included)
    case source = 0x44  // 'D': send `count` bytes of `shape`
}

enum Shape: String, CaseIterable {
    case random, json
    var code: UInt8 { self == .random ? 0x72 : 0x6a }
    init?(code: UInt8) {
        switch code {
        case 0x72: self = .random
        case 0x6a: self = .json
        default: return nil
        }
    }
}

/// 16 bytes: "LBN1", op, shape, 2 reserved, count (UInt64 little endian).
struct Header {
    static let size = 16
    static let magic: [UInt8] = [0x4c, 0x42, 0x4e, 0x31]
    var op: Op
    var shape: Shape
    var count: UInt64

    var bytes: [UInt8] {
        var b = Header.magic + [op.rawValue, shape.code, 0, 0]
        for i in 0..<8 { b.append(UInt8(truncatingIfNeeded: count >> (8 * UInt64(i)))) }
        return b
    }

    init(op: Op, shape: Shape, count: UInt64) {
        self.op = op
        self.shape = shape
        self.count = count
    }

    init?(_ b: [UInt8]) {
        guard b.count >= Header.size, Array(b[0..<4]) == Header.magic,
              let op = Op(rawValue: b[4]), let shape = Shape(code: b[5]) else { return nil }
        var c: UInt64 = 0
        for i in 0..<8 { c |= UInt64(b[8 + i]) << (8 * UInt64(i)) }
        self.init(op: op, shape: shape, count: c)
    }
}

func encodeUInt64(_ v: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
}

/// xorshift64*: deterministic, fast, no Foundation.
struct PRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E3779B97F4A7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2685821657736338717
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// A preallocated, immutable payload buffer (never freed: lives for the whole process).
/// Senders cycle through it in chunks; `chunk(at:)` never crosses the end.
final class Payload: @unchecked Sendable {
    static let size = 4 << 20
    let base: UnsafeMutableRawPointer
    let count: Int

    init(bytes: [UInt8]) {
        count = bytes.count
        base = .allocate(byteCount: count, alignment: 64)
        bytes.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: count) }
    }

    /// Up to `max` bytes starting at `offset % count`, not crossing the end of the buffer.
    @inline(__always)
    func chunk(at offset: UInt64, max: Int) -> UnsafeRawBufferPointer {
        let start = Int(offset % UInt64(count))
        return UnsafeRawBufferPointer(start: base + start, count: Swift.min(max, count - start))
    }

    static func make(_ shape: Shape) -> Payload {
        switch shape {
        case .random: return Payload(bytes: randomBytes(size, seed: 0x1a2b3c4d))
        case .json: return Payload(bytes: kubernetesJSON(size))
        }
    }

    static func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = PRNG(seed: seed)
        var out = [UInt8](repeating: 0, count: n)
        out.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in 0..<words.count { words[i] = rng.next() }
        }
        return out
    }

    /// Kubernetes-like JSON: a watch/list stream of Pod objects with realistic field names,
    /// label sets, random UIDs, IPs, timestamps and resource versions. LZ4 compresses it
    /// roughly like real `kubectl get pods -o json` output (repetitive keys, random values).
    static func kubernetesJSON(_ n: Int) -> [UInt8] {
        var rng = PRNG(seed: 0x5eed)
        let apps = ["nginx", "redis", "postgres", "api-gateway", "billing", "checkout", "frontend",
                    "inventory", "kafka", "zookeeper", "prometheus", "grafana", "fluent-bit", "coredns"]
        let namespaces = ["default", "kube-system", "payments", "shop", "monitoring", "logging", "data"]
        let nodes = (0..<24).map { "ip-10-0-\($0 / 4)-\(10 + $0).eu-west-1.compute.internal" }
        let phases = ["Running", "Running", "Running", "Pending", "Succeeded"]
        func hex(_ k: Int) -> String {
            let digits = Array("0123456789abcdef")
            var s = ""
            for _ in 0..<k { s.append(digits[rng.below(16)]) }
            return s
        }
        func uid() -> String { "\(hex(8))-\(hex(4))-\(hex(4))-\(hex(4))-\(hex(12))" }
        func ts() -> String {
            "2025-\(10 + rng.below(3))-\(10 + rng.below(18))T\(10 + rng.below(14)):\(10 + rng.below(50)):\(10 + rng.below(50))Z"
        }
        var out: [UInt8] = []
        out.reserveCapacity(n + 8192)
        var rv = 48_000_000 + rng.below(1_000_000)
        while out.count < n {
            let app = apps[rng.below(apps.count)]
            let ns = namespaces[rng.below(namespaces.count)]
            let name = "\(app)-\(hex(10))-\(hex(5))"
            rv += 1 + rng.below(40)
            let image = "registry.example.com/\(ns)/\(app):v\(1 + rng.below(4)).\(rng.below(20)).\(rng.below(10))"
            let ip = "10.\(rng.below(4)).\(rng.below(256)).\(rng.below(256))"
            let node = nodes[rng.below(nodes.count)]
            let restarts = rng.below(10) < 8 ? 0 : rng.below(30)
            let s = """
            {"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"\(name)","generateName":"\(app)-\(hex(10))-","namespace":"\(ns)","uid":"\(uid())","resourceVersion":"\(rv)","creationTimestamp":"\(ts())","labels":{"app.kubernetes.io/name":"\(app)","app.kubernetes.io/instance":"\(app)-\(ns)","pod-template-hash":"\(hex(10))","tier":"\(rng.below(2) == 0 ? "backend" : "frontend")"},"annotations":{"kubectl.kubernetes.io/restartedAt":"\(ts())","prometheus.io/scrape":"true","prometheus.io/port":"\(8000 + rng.below(2000))"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"\(app)-\(hex(10))","uid":"\(uid())","controller":true,"blockOwnerDeletion":true}]},"spec":{"volumes":[{"name":"kube-api-access-\(hex(5))","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}}],"defaultMode":420}}],"containers":[{"name":"\(app)","image":"\(image)","ports":[{"containerPort":\(80 + rng.below(9000)),"protocol":"TCP"}],"resources":{"limits":{"cpu":"\(100 * (1 + rng.below(20)))m","memory":"\(64 * (1 + rng.below(32)))Mi"},"requests":{"cpu":"\(50 * (1 + rng.below(10)))m","memory":"\(32 * (1 + rng.below(16)))Mi"}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"\(app)","nodeName":"\(node)","securityContext":{},"schedulerName":"default-scheduler","priority":0},"status":{"phase":"\(phases[rng.below(phases.count)])","conditions":[{"type":"Initialized","status":"True","lastTransitionTime":"\(ts())"},{"type":"Ready","status":"True","lastTransitionTime":"\(ts())"},{"type":"ContainersReady","status":"True","lastTransitionTime":"\(ts())"},{"type":"PodScheduled","status":"True","lastTransitionTime":"\(ts())"}],"hostIP":"10.0.\(rng.below(8)).\(rng.below(256))","podIP":"\(ip)","podIPs":[{"ip":"\(ip)"}],"startTime":"\(ts())","containerStatuses":[{"name":"\(app)","state":{"running":{"startedAt":"\(ts())"}},"ready":true,"restartCount":\(restarts),"image":"\(image)","imageID":"\(image)@sha256:\(hex(64))","containerID":"containerd://\(hex(64))","started":true}],"qosClass":"Burstable"}}}

            """
            out.append(contentsOf: s.utf8)
        }
        return Array(out[0..<n])
    }
}

// MARK: - Output helpers (no Foundation)

/// A line to a file descriptor with write(2): unbuffered, so scripts see it at once.
func writeLine(_ fd: Int32, _ s: String) {
    var bytes = Array((s + "\n").utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        bytes = bytes.dropFirst(n)
    }
}

func out(_ s: String) { writeLine(1, s) }
func err(_ s: String) { writeLine(2, s) }

/// A flat JSON object built by hand (numbers and strings only).
struct JSONObject {
    private var fields: [String] = []
    mutating func add(_ key: String, _ value: String) { fields.append("\"\(key)\":\"\(value)\"") }
    mutating func add(_ key: String, _ value: Int) { fields.append("\"\(key)\":\(value)") }
    mutating func add(_ key: String, _ value: UInt64) { fields.append("\"\(key)\":\(value)") }
    mutating func add(_ key: String, _ value: Bool) { fields.append("\"\(key)\":\(value)") }
    mutating func add(_ key: String, _ value: Double) {
        fields.append("\"\(key)\":\(value.isFinite ? fmt(value, 3) : "null")")
    }
    var text: String { "{" + fields.joined(separator: ",") + "}" }
}

/// Fixed-point formatting without Foundation.
func fmt(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return "nan" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let negative = v < 0
    let scaled = (abs(v) * scale).rounded()
    let whole = UInt64(scaled / scale)
    var frac = String(UInt64(scaled) - whole * UInt64(scale))
    while frac.count < digits { frac = "0" + frac }
    return (negative ? "-" : "") + String(whole) + (digits > 0 ? "." + frac : "")
}

func parseHostPort(_ s: String) -> (String, Int)? {
    guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]),
          (0...65535).contains(port) else { return nil }
    var host = String(s[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return (host.isEmpty ? "127.0.0.1" : host, port)
}

func nowNanos() -> UInt64 { UVLoopClock.now }

import LariatRuntime
enum UVLoopClock { static var now: UInt64 { UVLoop.now } }
