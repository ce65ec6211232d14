/// Which targets the agent may dial on the hub's behalf.
///
/// Rules (`--allow`, `--deny`, comma-separated or repeated):
///   `*`                     everything
///   `10.0.0.0/8`, `fd00::/8` an address block; `10.1.2.3`, `::1` one address
///   `db.example.com`        exactly that name
///   `.example.com`, `*.example.com`  any name below example.com
///   any of the above + `:PORT` (IPv6 in brackets: `[fd00::1]:443`, `[fd00::/8]:443`)
///
/// A target's host must first pass `TargetHost.parse` (no control characters, a DNS name or
/// an address literal, which is normalised: `0x7f.1` is judged as 127.0.0.1). Then, per
/// address of the target (names are resolved first, and every address they resolve to must be
/// allowed, so `localtest.me` → 127.0.0.1 is judged as 127.0.0.1):
/// 1. a `--deny` rule matching the name or the address refuses: deny wins;
/// 2. with `--allow` rules, one of them must match the name or the address;
/// 3. the built-in rules refuse, unless a matching `--allow` rule is at least as specific
///    (see `PolicyRule.lifts`). They cover link-local and cloud metadata addresses, and the
///    agent's own host: loopback (127.0.0.0/8, ::1) and unspecified (0.0.0.0/8, ::, which
///    connect to the local host), since in a pod or on a node (host network) those reach
///    services that trust localhost. An address or block inside the built-in one lifts it:
///    `--allow 169.254.20.10` re-enables NodeLocal DNSCache, `--allow 127.0.0.1:8080` one
///    local port, `--allow 127.0.0.0/8` all of loopback; `--allow *`, `0.0.0.0/0` and name
///    rules (`localhost`) lift nothing. Remember that `--allow` is also an allow-list: to keep
///    everything else dialable too, write `--allow '*,127.0.0.1:8080'`.
/// The configured Kubernetes API (`k8s-api`) is exempt from 2 and 3: the operator chose it.
public struct TargetPolicy: Sendable, CustomStringConvertible {
    public var allow: [PolicyRule]
    public var deny: [PolicyRule]
    /// Refused unless explicitly allowed: `metadataDeny` + `ownHostDeny`.
    public var builtinDeny: [PolicyRule]

    /// Link-local and cloud metadata endpoints.
    public static let metadataDeny: [PolicyRule] = [
        "169.254.169.254", "fd00:ec2::254", "metadata.google.internal", "metadata.goog",
        "169.254.0.0/16", "fe80::/10",
    ].map { PolicyRule($0)! }

    /// The agent's own host: loopback, unspecified, and the deprecated IPv4-compatible IPv6
    /// block `::a.b.c.d` (`::/96`, which holds `::` and `::1` too). IPv4-mapped IPv6
    /// (`::ffff:127.0.0.1`) needs no rule: `IPAddress` turns it into IPv4.
    public static let ownHostDeny: [PolicyRule] = [
        "127.0.0.0/8", "0.0.0.0/8", "::1", "::", "::/96",
    ].map { PolicyRule($0)! }

    public static let defaultBuiltinDeny: [PolicyRule] = metadataDeny + ownHostDeny

    public init(allow: [PolicyRule] = [], deny: [PolicyRule] = [], builtinDeny: [PolicyRule] = TargetPolicy.defaultBuiltinDeny) {
        self.allow = allow
        self.deny = deny
        self.builtinDeny = builtinDeny
    }

    /// Parses flag values; each may hold several comma-separated rules.
    public init(allowing allowText: [String], denying denyText: [String]) throws(PolicyRuleError) {
        self.init(allow: try PolicyRule.parseList(allowText), deny: try PolicyRule.parseList(denyText))
    }

    public enum Decision: Equatable, Sendable {
        case allowed
        /// `reason` names the rule, for the OPEN_FAIL message and the log.
        case denied(reason: String)

        public var isAllowed: Bool { self == .allowed }
    }

    /// Judges one candidate: `name` is the host as requested (nil when it was an address),
    /// `address` the numeric address about to be dialled (nil before resolution).
    /// `preauthorized` targets (the configured Kubernetes API) skip steps 2 and 3.
    public func decide(name: String?, address: IPAddress?, port: Int, preauthorized: Bool = false) -> Decision {
        let name = name.map(Self.normalize)
        if let rule = deny.first(where: { $0.matches(name: name, address: address, port: port) }) {
            return .denied(reason: "denied by rule \(rule)")
        }
        if preauthorized { return .allowed }
        var matching: [PolicyRule] = []
        if !allow.isEmpty {
            matching = allow.filter { $0.matches(name: name, address: address, port: port) }
            guard !matching.isEmpty else {
                return .denied(reason: "not allowed by --allow \(allow.map(\.description).joined(separator: ","))")
            }
        }
        return builtinDenial(name: name, address: address, port: port, matching: matching)
    }

    /// Judges a resolved target: every address must be allowed. A name that resolves partly to
    /// a forbidden address is refused whole, so which of its addresses gets dialled never
    /// decides whether the policy held.
    public func decide(name: String?, addresses: [IPAddress], port: Int, preauthorized: Bool = false) -> Decision {
        guard !addresses.isEmpty else { return .denied(reason: "no addresses to judge") }
        for address in addresses {
            if case .denied(let reason) = decide(name: name, address: address, port: port, preauthorized: preauthorized) {
                return .denied(reason: name == nil ? reason : "\(Self.normalize(name!)) resolves to \(address), \(reason)")
            }
        }
        return .allowed
    }

    /// Judges a host name before it is resolved: a deny rule on the name (or a built-in one that
    /// no specific allow rule lifts) refuses at once, so a forbidden name is never even looked
    /// up. nil means "undecided": resolve, then `decide(name:addresses:)`.
    public func decideByName(_ name: String, port: Int, preauthorized: Bool = false) -> Decision? {
        let name = Self.normalize(name)
        if let rule = deny.first(where: { $0.matches(name: name, address: nil, port: port) }) {
            return .denied(reason: "denied by rule \(rule)")
        }
        if preauthorized { return nil }
        let matching = allow.filter { $0.matches(name: name, address: nil, port: port) }
        let denial = builtinDenial(name: name, address: nil, port: port, matching: matching)
        return denial.isAllowed ? nil : denial
    }

    /// Step 3: the first built-in rule that matches and that no `matching` allow rule lifts.
    /// The reason says how to lift it, with the address itself (the narrowest rule that does).
    private func builtinDenial(name: String?, address: IPAddress?, port: Int, matching: [PolicyRule]) -> Decision {
        guard let rule = builtinDeny.first(where: { b in
            b.matches(name: name, address: address, port: port) && !matching.contains { $0.lifts(b) }
        }) else { return .allowed }
        let kind = Self.ownHostDeny.contains(rule) ? "the agent's own host: loopback/unspecified" : "link-local/metadata"
        let lift = address.map { $0.isIPv4 ? "\($0):\(port)" : "[\($0)]:\(port)" } ?? rule.description
        return .denied(reason: "denied by the default rule \(rule) (\(kind); to allow it, add --allow \(lift))")
    }

    static func normalize(_ name: String) -> String {
        var n = name.lowercased()
        while n.hasSuffix(".") { n.removeLast() }
        return n
    }

    public var description: String {
        let a = allow.isEmpty ? "*" : allow.map(\.description).joined(separator: ",")
        let d = (deny + builtinDeny).map(\.description).joined(separator: ",")
        return "allow \(a); deny \(d)"
    }
}

public struct PolicyRuleError: Error, Sendable, CustomStringConvertible {
    public var rule: String
    public var problem: String
    public var description: String { "invalid rule \"\(rule)\": \(problem)" }
}

/// One allow/deny rule.
public struct PolicyRule: Sendable, Equatable, CustomStringConvertible {
    public enum Pattern: Sendable, Equatable {
        case any
        case block(CIDR)
        /// Exact host name, lowercased, without a trailing dot.
        case name(String)
        /// Names strictly below this domain (stored with a leading dot: ".example.com").
        case suffix(String)
    }

    public var pattern: Pattern
    public var port: Int?
    public let description: String

    public var isWildcard: Bool { pattern == .any && port == nil }

    public init?(_ text: String) {
        guard let rule = try? Self.parse(text) else { return nil }
        self = rule
    }

    init(pattern: Pattern, port: Int?, description: String) {
        self.pattern = pattern
        self.port = port
        self.description = description
    }

    public static func parseList(_ values: [String]) throws(PolicyRuleError) -> [PolicyRule] {
        var rules: [PolicyRule] = []
        for value in values {
            for part in value.split(separator: ",") {
                let trimmed = part.trimmingASCIIWhitespace()
                if trimmed.isEmpty { continue }
                rules.append(try parse(trimmed))
            }
        }
        return rules
    }

    public static func parse(_ text: String) throws(PolicyRuleError) -> PolicyRule {
        let original = text
        let fail = { (problem: String) in PolicyRuleError(rule: original, problem: problem) }
        var body = Substring(text.lowercased())
        var port: Int?
        // "[v6 or v6/len]:port", "[v6]" / "v4, name, cidr[:port]" / bare v6 (no port).
        if body.hasPrefix("[") {
            guard let close = body.firstIndex(of: "]") else { throw fail("missing ]") }
            let rest = body[body.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65535).contains(p) else { throw fail("bad port") }
                port = p
            }
            body = body[body.index(after: body.startIndex)..<close]
        } else if body.filter({ $0 == ":" }).count == 1, let colon = body.firstIndex(of: ":") {
            let portText = body[body.index(after: colon)...]
            if portText != "*" {
                guard let p = Int(portText), (1...65535).contains(p) else { throw fail("bad port \"\(portText)\"") }
                port = p
            }
            body = body[..<colon]
        }
        guard !body.isEmpty else { throw fail("empty") }
        let pattern: Pattern
        if body == "*" {
            pattern = .any
        } else if body.contains("/") || IPAddress(String(body)) != nil {
            guard let block = CIDR(String(body)) else { throw fail("not an address or address block") }
            pattern = .block(block)
        } else {
            var name = String(body)
            while name.hasSuffix(".") { name.removeLast() }
            if name.hasPrefix("*.") { name.removeFirst() }
            guard !name.isEmpty, name != ".", name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" }),
                  !name.contains("*") else { throw fail("not a host name, address or address block") }
            pattern = name.hasPrefix(".") ? .suffix(name) : .name(name)
        }
        return PolicyRule(pattern: pattern, port: port, description: original)
    }

    /// Whether this allow rule, matching the same target as built-in deny rule `builtin`, is
    /// specific enough to lift it: an address block inside the built-in block
    /// (`169.254.20.10` lifts `169.254.0.0/16`, `0.0.0.0/0` and `*:443` lift nothing), or a
    /// name rule for a name rule. A name rule never lifts an address rule, so a name that
    /// resolves to the metadata address stays refused.
    public func lifts(_ builtin: PolicyRule) -> Bool {
        switch (pattern, builtin.pattern) {
        case (.block(let mine), .block(let theirs)): mine.prefixLength >= theirs.prefixLength
        case (.name, .name), (.name, .suffix), (.suffix, .name), (.suffix, .suffix): true
        default: false
        }
    }

    /// `name` is already normalised (lowercase, no trailing dot).
    public func matches(name: String?, address: IPAddress?, port: Int) -> Bool {
        if let p = self.port, p != port { return false }
        switch pattern {
        case .any: return true
        case .block(let block): return address.map(block.contains) ?? false
        case .name(let n): return name == n
        case .suffix(let s): return name?.hasSuffix(s) ?? false
        }
    }
}

extension StringProtocol {
    func trimmingASCIIWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
