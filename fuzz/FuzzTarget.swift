// libFuzzer target for target parsing: the OPEN target string (TunnelTarget, the hub and the
// agent), the agent's host check (TargetHost) and its --allow/--deny rules and decisions
// (PolicyRule, TargetPolicy). Built by fuzz/run.sh from Sources/LariatTunnel/TunnelTarget.swift
// (pure) and copies of the agent's pure files (IPAddress.swift, TargetPolicy.swift,
// TargetHost.swift); TargetDialer.resolve itself needs libuv and the runtime, so its steps are
// replayed here: TunnelTarget, then TargetHost.parse, then TargetPolicy.decideBeforeLookup.
//
// Input: byte 0 bit 0 chooses the mode; the rest is text.
//   0: an OPEN target. Invariants: a parsed target has a non-empty host/name and a port in
//      1...65535, and its description parses back to the same target. Its host passes
//      TargetHost.parse only without control characters, as a lowercase DNS name that parses
//      to itself or as an address whose text parses back to it; under
//      `--allow .svc.cluster.local` only a name ending in .svc.cluster.local passes (the NUL
//      bypass of issue #7), and an address never does.
//   1: a comma-separated rule list, then NUL, then a candidate name. Invariants: each rule
//      matches the example it was written for (name, a name below a suffix, its network address)
//      on its port and not on another port; a deny rule wins over the same allow rule; with
//      `--allow <rule>` the metadata address stays refused unless the rule is an address block
//      inside 169.254.0.0/16; decisions ignore ASCII case and trailing dots of the name.

@_cdecl("LLVMFuzzerTestOneInput")
public func lariatFuzzTarget(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let rest = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    if data[0] & 1 == 0 {
        checkTunnelTarget(String(decoding: rest, as: UTF8.self))
    } else {
        let parts = rest.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        checkRules(parts[0], candidate: parts.count > 1 ? parts[1] : "db.example.com", portSeed: data[0])
    }
    return 0
}

func checkTunnelTarget(_ text: String) {
    guard let target = TunnelTarget(text) else { return }
    switch target {
    case .tcp(let host, let port), .service(_, let host, let port):
        guard !host.isEmpty, (1...65535).contains(port) else { violated("target-valid", "\(text) → \(target)") }
    case .source(let n, _):
        guard n >= 0 else { violated("target-valid", "\(text) → \(target)") }
    default: break
    }
    if case .service(let ns, _, _) = target, ns.isEmpty || ns.contains("/") { violated("target-valid", "namespace of \(target)") }
    let again = TunnelTarget(target.description)
    guard again == target else { violated("description-round-trip", "\(text) → \(target) → \(target.description) → \(String(describing: again))") }
    if case .tcp(let host, let port) = target { checkHost(host, port: port) }
}

let clusterOnly = TargetPolicy(allow: [PolicyRule(".svc.cluster.local")!])
let ordinaryAddress = IPAddress("10.0.0.1")!

func checkHost(_ text: String, port: Int) {
    let hasControl = text.utf8.contains { $0 < 0x20 || $0 == 0x7F }
    switch TargetHost.parse(text) {
    case .failure:
        return
    case .success(let host):
        if hasControl { violated("host-no-control", "\(hex(text.utf8)) accepted as \(host)") }
        switch host {
        case .name(let name):
            guard name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }) else {
                violated("host-name-clean", "\(hex(text.utf8)) → \(name)")
            }
            guard case .success(.name(name)) = TargetHost.parse(name) else { violated("host-name-idempotent", name) }
        case .address(let address):
            guard case .success(.address(address)) = TargetHost.parse(address.description) else {
                violated("host-address-round-trip", "\(text) → \(address)")
            }
        }
        // nil: a name to resolve; judge it as TargetDialer does, on an ordinary address.
        let verdict = clusterOnly.decideBeforeLookup(host, port: port)
            ?? clusterOnly.decide(name: host.description, addresses: [ordinaryAddress], port: port)
        let passes = verdict.isAllowed
        if passes {
            guard case .name(let name) = host, TargetPolicy.normalize(name).hasSuffix(".svc.cluster.local") else {
                violated("policy-judges-dialled-host", "\(hex(text.utf8)) → \(host) passes --allow .svc.cluster.local")
            }
        }
    }
}

let metadata = IPAddress("169.254.169.254")!

func checkRules(_ text: String, candidate: String, portSeed: UInt8) {
    guard let rules = try? PolicyRule.parseList([text]) else { return }
    let port = Int(portSeed) * 251 % 65535 + 1
    for rule in rules {
        let p = rule.port ?? port
        let other = p % 65535 + 1
        var name: String?
        var address: IPAddress?
        switch rule.pattern {
        case .any: break
        case .name(let n): name = n
        case .suffix(let s): name = "x" + s
        case .block(let b): address = b.network
        }
        guard rule.matches(name: name, address: address, port: p) else { violated("rule-matches-own", "\(rule) on \(String(describing: name)) \(String(describing: address)) :\(p)") }
        if rule.port != nil, rule.matches(name: name, address: address, port: other) { violated("rule-port", "\(rule) matches port \(other)") }
        let both = TargetPolicy(allow: [rule], deny: [rule])
        if both.decide(name: name, address: address, port: p).isAllowed { violated("deny-wins", "\(rule)") }
        let allowOnly = TargetPolicy(allow: [rule], deny: [])
        // Only the address itself lifts the built-in 169.254.169.254 rule (a block inside
        // 169.254.0.0/16 lifts that rule, not the narrower one).
        let lifted: Bool = {
            if case .block(let b) = rule.pattern { return b.prefixLength >= 32 && b.contains(metadata) }
            return false
        }()
        if allowOnly.decide(name: nil, address: metadata, port: p).isAllowed != lifted {
            violated("metadata-refused", "--allow \(rule): metadata \(allowOnly.decide(name: nil, address: metadata, port: p))")
        }
        if let n = name, n.utf8.allSatisfy({ $0 < 0x80 }) {
            let a = allowOnly.decide(name: n, address: nil, port: p)
            let b = allowOnly.decide(name: asciiUppercased(n) + "..", address: nil, port: p)
            guard a == b else { violated("name-normalised", "\(rule): \(a) vs \(b)") }
        }
    }
    let policy = TargetPolicy(allow: rules, deny: [])
    let c = policy.decide(name: candidate, address: nil, port: port)
    if candidate.utf8.allSatisfy({ $0 < 0x80 }) {
        let d = policy.decide(name: asciiUppercased(candidate) + ".", address: nil, port: port)
        guard c == d else { violated("name-normalised", "\(candidate): \(c) vs \(d)") }
    }
    _ = policy.decideByName(candidate, port: port)
}

func asciiUppercased(_ s: String) -> String {
    String(decoding: s.utf8.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
}
