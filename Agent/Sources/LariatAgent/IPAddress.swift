#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A numeric IPv4 or IPv6 address, for policy and NO_PROXY matching.
///
/// IPv4-mapped IPv6 addresses (`::ffff:169.254.169.254`) are normalised to IPv4, so a rule
/// written for the IPv4 form cannot be sidestepped with the mapped form.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
    public let bytes: [UInt8]

    public var isIPv4: Bool { bytes.count == 4 }

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            self.bytes = Array(bytes[12..<16])
        } else {
            self.bytes = bytes
        }
    }

    /// Parses "10.0.0.1", "fe80::1", "[::1]" and "fe80::1%eth0" (the zone is dropped).
    /// Host names and the non-canonical IPv4 forms `inet_aton` accepts ("10.1", "0x0a000001")
    /// are rejected: names go through the resolver, whose numeric answer is then checked.
    public init?(_ text: String) {
        var s = Substring(text)
        if s.hasPrefix("["), s.hasSuffix("]") { s = s.dropFirst().dropLast() }
        if let percent = s.firstIndex(of: "%") { s = s[..<percent] }
        guard !s.isEmpty, s.count <= 64 else { return nil }
        let string = String(s)
        if !string.contains(":") {
            var v4 = [UInt8](repeating: 0, count: 4)
            guard inet_pton(AF_INET, string, &v4) == 1 else { return nil }
            self.init(bytes: v4)
        } else {
            var v6 = [UInt8](repeating: 0, count: 16)
            guard inet_pton(AF_INET6, string, &v6) == 1 else { return nil }
            self.init(bytes: v6)
        }
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: 64)
        let family = isIPv4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &text, socklen_t(text.count)) }
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// An address block such as `10.0.0.0/8` or `fe80::/10`. A bare address is a /32 or /128.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else { return nil }
        let maxLength = address.bytes.count * 8
        var length = maxLength
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...maxLength).contains(n), parts[1].allSatisfy(\.isASCII) else { return nil }
            length = n
        }
        self.init(network: address, prefixLength: length)
    }

    public init(network: IPAddress, prefixLength: Int) {
        // Keep only the network bits, so "10.1.2.3/8" means 10.0.0.0/8.
        var bytes = network.bytes
        for i in bytes.indices {
            let bitsBefore = i * 8
            if bitsBefore >= prefixLength {
                bytes[i] = 0
            } else if bitsBefore + 8 > prefixLength {
                bytes[i] &= ~UInt8(0xff >> (prefixLength - bitsBefore))
            }
        }
        self.network = IPAddress(bytes: bytes)!
        self.prefixLength = prefixLength
    }

    public func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == network.bytes.count else { return false }
        var remaining = prefixLength
        for i in network.bytes.indices where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xff : ~UInt8(0xff >> remaining)
            if address.bytes[i] & mask != network.bytes[i] { return false }
            remaining -= 8
        }
        return true
    }

    public var description: String { "\(network)/\(prefixLength)" }
}

/// Splits "host:port", "[v6]:port", "host" or "[v6]" into host and optional port text.
/// A bare IPv6 address without brackets ("fe80::1") is returned whole, without a port.
func splitHostAndPort(_ text: Substring) -> (host: Substring, port: Substring?) {
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]") else { return (text, nil) }
        let host = text[text.index(after: text.startIndex)..<close]
        let rest = text[text.index(after: close)...]
        if rest.hasPrefix(":") { return (host, rest.dropFirst()) }
        return (host, nil)
    }
    let colons = text.filter { $0 == ":" }.count
    if colons == 1, let colon = text.firstIndex(of: ":") {
        return (text[..<colon], text[text.index(after: colon)...])
    }
    return (text, nil)
}

extension Substring {
    /// The range of the first "://", if any (no Foundation here).
    func rangeOfSchemeSeparator() -> Range<Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix("://") { return i..<index(i, offsetBy: 3) }
            i = index(after: i)
        }
        return nil
    }
}
