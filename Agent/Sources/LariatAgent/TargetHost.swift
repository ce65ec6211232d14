/// A target's host after the syntax check that runs before any policy rule sees it.
///
/// Why: the C resolver reads a host name only up to its first NUL, so
/// `localhost\0.svc.cluster.local` once matched the rule `.svc.cluster.local` and was dialled
/// as `localhost`. Rules must judge exactly what gets dialled, so a host is either
/// - an address literal, normalised to the address it denotes, including every IPv4 spelling
///   `inet_aton`/`getaddrinfo` would accept (`0177.0.0.1`, `0x7f.1`, `2130706433`, `127.1`,
///   `0`) and IPv4-mapped IPv6 (`::ffff:127.0.0.1` is 127.0.0.1), or
/// - a DNS name: dot-separated labels of ASCII letters, digits, `-` and `_`.
/// Anything else is refused: control characters, spaces, `%` (percent-encoding is decoded by
/// nobody here, and IPv6 zone ids would pick an interface), brackets, non-ASCII, empty labels.
public enum TargetHost: Equatable, Sendable, CustomStringConvertible {
    case address(IPAddress)
    /// Lowercased; a trailing dot (an absolute name) is kept for the resolver, and dropped by
    /// the policy when it matches rules.
    case name(String)

    /// RFC 1035 limits.
    static let maxNameLength = 253
    static let maxLabelLength = 63

    /// `text` is the host as the target spelled it, IPv6 without brackets.
    public static func parse(_ text: String) -> Result<TargetHost, TargetHostError> {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return .failure(.init(text, "empty host")) }
        if let bad = bytes.first(where: { $0 < 0x20 || $0 == 0x7f }) {
            return .failure(.init(text, "control character \\x\(bad < 0x10 ? "0" : "")\(String(bad, radix: 16, uppercase: true)) in the host"))
        }
        if bytes.contains(where: { $0 >= 0x80 }) {
            return .failure(.init(text, "non-ASCII host (use the xn-- form of an international name)"))
        }
        if bytes.contains(UInt8(ascii: "%")) {
            return .failure(.init(text, "% in the host (percent-encoding and IPv6 zone ids are not accepted)"))
        }
        if bytes.contains(UInt8(ascii: ":")) {
            // Only an IPv6 literal has colons; inet_pton is strict (no zone, no brackets left).
            guard bytes.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }),
                  let address = IPAddress(text) else {
                return .failure(.init(text, "not an IPv6 address"))
            }
            return .success(.address(address))
        }
        var labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        let absolute = labels.count > 1 && labels.last!.isEmpty
        if absolute { labels.removeLast() }
        // WHATWG URL's rule: a host whose last label is a number is an IPv4 address or nothing,
        // because that is how the C library will read it.
        if let last = labels.last, isNumber(last) {
            guard let address = parseIPv4(labels) else {
                return .failure(.init(text, "not a valid IPv4 address"))
            }
            return .success(.address(address))
        }
        guard bytes.count - (absolute ? 1 : 0) <= maxNameLength else {
            return .failure(.init(text, "host name longer than \(maxNameLength) characters"))
        }
        for label in labels {
            guard !label.isEmpty, label.count <= maxLabelLength else {
                return .failure(.init(text, "empty or over-long (> \(maxLabelLength)) label in the host name"))
            }
            guard label.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else {
                return .failure(.init(text, "not a host name or address"))
            }
        }
        return .success(.name(text.lowercased()))
    }

    /// The host to dial or resolve, and to print.
    public var description: String {
        switch self {
        case .address(let address): address.description
        case .name(let name): name
        }
    }

    // MARK: IPv4 in the forms inet_aton accepts

    /// A label that reads as a number: decimal, octal (leading 0) or hex (0x…) digits.
    static func isNumber(_ label: ArraySlice<UInt8>) -> Bool {
        guard !label.isEmpty else { return false }
        if label.count >= 2, label.first == UInt8(ascii: "0"), label.dropFirst().first.map({ $0 | 0x20 }) == UInt8(ascii: "x") {
            return label.dropFirst(2).allSatisfy(isHexDigit)
        }
        return label.allSatisfy(isDigit)
    }

    /// "a.b.c.d", "a.b.c" (c is 16 bits), "a.b" (b is 24 bits) or "a" (32 bits), each part
    /// decimal, octal or hex, as inet_aton reads them. nil if any part is not a number or too big.
    static func parseIPv4(_ labels: [ArraySlice<UInt8>]) -> IPAddress? {
        guard (1...4).contains(labels.count) else { return nil }
        var parts: [UInt64] = []
        for label in labels {
            guard let value = numberValue(label) else { return nil }
            parts.append(value)
        }
        var value: UInt64 = 0
        for part in parts.dropLast() {
            guard part <= 0xff else { return nil }
            value = value << 8 | part
        }
        let lastBits = UInt64(8 * (5 - parts.count))
        guard parts.last! < (1 << lastBits) else { return nil }
        value = value << lastBits | parts.last!
        let v = UInt32(value)
        return IPAddress(bytes: [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)])
    }

    static func numberValue(_ label: ArraySlice<UInt8>) -> UInt64? {
        guard !label.isEmpty else { return nil }
        var digits = label
        var radix: UInt64 = 10
        if digits.count >= 2, digits.first == UInt8(ascii: "0"), digits.dropFirst().first.map({ $0 | 0x20 }) == UInt8(ascii: "x") {
            radix = 16
            digits = digits.dropFirst(2)
            guard !digits.isEmpty else { return nil }
        } else if digits.count >= 2, digits.first == UInt8(ascii: "0") {
            radix = 8
        }
        // Leading zeros cannot overflow; more than 11 significant digits in any radix can
        // exceed 32 bits, which no part may.
        digits = digits.drop(while: { $0 == UInt8(ascii: "0") })
        guard digits.count <= 11 else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            let d: UInt64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt64(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt64(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
            guard d < radix else { return nil }
            value = value * radix + d
        }
        return value
    }

    static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
    static func isHexDigit(_ b: UInt8) -> Bool { isDigit(b) || (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "f")) }
    static func isAlphanumeric(_ b: UInt8) -> Bool { isDigit(b) || (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "z")) }
}

/// Why a host was refused. `host` is raw (print it escaped); `problem` is safe to print.
public struct TargetHostError: Error, Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var problem: String

    init(_ host: String, _ problem: String) {
        self.host = host
        self.problem = problem
    }

    public var description: String { problem }
}

extension TargetPolicy {
    /// The verdict before any lookup: final for an address literal; for a name, a refusal by
    /// a deny rule on the name (or a built-in one that no specific allow rule lifts), so a
    /// forbidden name is never even looked up. nil means "resolve the name, then call
    /// `decide(name:addresses:)`".
    public func decideBeforeLookup(_ host: TargetHost, port: Int, preauthorized: Bool = false) -> Decision? {
        switch host {
        case .address(let address): decide(name: nil, addresses: [address], port: port, preauthorized: preauthorized)
        case .name(let name): decideByName(name, port: port, preauthorized: preauthorized)
        }
    }
}
