@testable import LariatAgent
import LariatProtocol
import Testing

/// Every known way to spell a forbidden target (issue #7 item 7), through the same steps the
/// agent's `DialAttempt` takes: `TargetDialer.resolve` (syntax), `decideBeforeLookup`, a lookup
/// answered from a fixed table (no DNS in tests), `decide(name:addresses:)`.
@Suite struct TargetBypassTests {
    enum Verdict: Equatable {
        case dial([IPAddress])
        case refused(ErrorCode, String)

        var isRefusedByPolicy: Bool {
            if case .refused(let code, _) = self { return code == .targetForbidden }
            return false
        }
        var message: String {
            if case .refused(_, let m) = self { return m }
            return ""
        }
    }

    /// What the resolver would answer. `localhost` is dual-stack, as in most /etc/hosts.
    static let hosts: [String: [String]] = [
        "localhost": ["127.0.0.1", "::1"],
        "db.prod.svc.cluster.local": ["10.43.7.7"],
        "mixed.example": ["10.1.1.1", "127.0.0.1"],
        "metadata.google.internal": ["169.254.169.254"],
        "metadata.goog": ["169.254.169.254"],
        "kubernetes.local": ["127.0.0.1"],
    ]

    func verdict(_ target: String, _ policy: TargetPolicy = TargetPolicy(), api: HostPort? = nil) -> Verdict {
        switch TargetDialer.resolve(target: target, kubernetesAPI: api, serviceDomain: "svc.cluster.local") {
        case .refuse(let code, let message): return .refused(code, message)
        case .synthetic: return .dial([])
        case .kubernetesProxy: return .refused(.targetUnknown, "k8s-proxy is not configured here")  // no proxy settings passed
        case .dial(let host, let port, let preauthorized):
            if case .denied(let reason)? = policy.decideBeforeLookup(host, port: port, preauthorized: preauthorized) {
                return .refused(.targetForbidden, reason)
            }
            switch host {
            case .address(let address): return .dial([address])
            case .name(let name):
                let key = TargetPolicy.normalize(name)
                guard let answer = Self.hosts[key] else { return .refused(.targetUnreachable, "no such host \(key)") }
                let addresses = answer.map { IPAddress($0)! }
                if case .denied(let reason) = policy.decide(name: name, addresses: addresses, port: port, preauthorized: preauthorized) {
                    return .refused(.targetForbidden, reason)
                }
                return .dial(addresses)
            }
        }
    }

    func policy(allow: [String] = [], deny: [String] = []) -> TargetPolicy {
        try! TargetPolicy(allowing: allow, denying: deny)
    }

    static let loopback = IPAddress("127.0.0.1")!

    // MARK: control characters and things that are not hosts

    @Test func nulInANameIsRefusedBeforeAnyRule() {
        let target = "tcp:localhost\u{0}.svc.cluster.local:22"
        let broad = policy(allow: [".svc.cluster.local"])
        let v = verdict(target, broad)
        #expect(v.isRefusedByPolicy, "\(v)")
        // Refused by syntax, not by a rule that happened to match: the same with allow-all.
        #expect(verdict(target, policy(allow: ["*"])).isRefusedByPolicy)
        // The message names the byte, escaped; no raw control byte reaches a log line.
        #expect(v.message.contains("\\u{0}"), "\(v.message)")
        #expect(!v.message.unicodeScalars.contains { $0.value < 0x20 })
        // The name check alone would have passed it (the old hole).
        #expect(broad.decideByName("localhost\u{0}.svc.cluster.local", port: 22) == nil)
    }

    @Test func everyControlCharacterIsRefusedAnywhereInTheTarget() {
        let wide = policy(allow: ["*"])
        for c in (0..<0x20).map({ Unicode.Scalar($0)! }) + ["\u{7f}", "\u{85}", "\u{9b}"] {
            for target in ["tcp:db\(c).example:80", "tcp:db.example:8\(c)0", "tcp:10.0.0.1\(c):80", "svc:ns/na\(c)me:80", "k8s-api\(c)"] {
                let v = verdict(target, wide, api: HostPort(host: "10.43.0.1", port: 443))
                #expect(v.isRefusedByPolicy, "\(String(reflecting: target)): \(v)")
                #expect(!v.message.unicodeScalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) })
            }
        }
    }

    @Test func hostsThatAreNotNamesOrAddressesAreRefused() {
        let wide = policy(allow: ["*"])
        for host in ["db example", "db.example%2e", "%6c%6f%63%61%6c%68%6f%73%74", "local%68ost", "db..example", ".db.example",
                     "db.example..", "dé.example", "db/x", "db@evil", "*.example", "[db]",
                     String(repeating: "a", count: 64) + ".example", String(repeating: "a.", count: 127) + "aa"] {
            let v = verdict("tcp:\(host):80", wide)
            #expect(v.isRefusedByPolicy || v == .refused(.targetUnknown, v.message), "\(host): \(v)")
        }
    }

    @Test func ipv6ZoneIdsAreRefused() {
        for target in ["tcp:[fe80::1%eth0]:80", "tcp:[fe80::1%25eth0]:80", "tcp:[::1%lo]:80", "tcp:[fd00::1%1]:80"] {
            let v = verdict(target, policy(allow: ["*", "fe80::/10", "fd00::/8", "::1"]))
            #expect(v.isRefusedByPolicy, "\(target): \(v)")
            #expect(v.message.contains("%"), "\(v.message)")
        }
    }

    // MARK: the agent's own loopback and unspecified addresses

    /// Every spelling of a loopback or unspecified address, and what it denotes.
    static let ownHostSpellings: [(String, String)] = [
        ("127.0.0.1", "127.0.0.1"), ("127.0.0.1.", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"), ("127.0.1", "127.0.0.1"), ("[::ffff:127.0.0.1]", "127.0.0.1"), ("[::ffff:7f00:1]", "127.0.0.1"),
        ("[0:0:0:0:0:ffff:7f00:1]", "127.0.0.1"), ("127.255.255.254", "127.255.255.254"),
        ("[::1]", "::1"), ("[0:0:0:0:0:0:0:1]", "::1"), ("[::127.0.0.1]", "::7f00:1"),
        ("0.0.0.0", "0.0.0.0"), ("0", "0.0.0.0"), ("0x0", "0.0.0.0"), ("00", "0.0.0.0"), ("0.0", "0.0.0.0"), ("[::]", "::"),
        ("[::ffff:0.0.0.0]", "0.0.0.0"),
    ]

    @Test func literalsAreNormalisedToTheAddressTheyDenote() throws {
        for (spelling, address) in Self.ownHostSpellings {
            var host = spelling
            if host.hasPrefix("[") { host = String(host.dropFirst().dropLast()) }
            #expect(try TargetHost.parse(host).get() == .address(IPAddress(address)!), "\(spelling)")
        }
    }

    @Test func ownHostIsRefusedByDefaultInEverySpelling() {
        for (spelling, _) in Self.ownHostSpellings {
            for p in [TargetPolicy(), policy(allow: ["*"]), policy(allow: ["0.0.0.0/0,::/0"]), policy(allow: ["localhost,*:80"])] {
                let v = verdict("tcp:\(spelling):80", p)
                #expect(v.isRefusedByPolicy, "\(spelling) with \(p): \(v)")
                #expect(v.message.contains("loopback/unspecified"), "\(v.message)")
            }
        }
    }

    @Test func namesThatResolveToLoopbackAreRefusedByDefault() {
        for name in ["localhost", "localhost.", "LocalHost", "LOCALHOST.", "kubernetes.local"] {
            let v = verdict("tcp:\(name):8080")
            #expect(v.isRefusedByPolicy, "\(name): \(v)")
            #expect(v.message.contains("resolves to"), "\(v.message)")
        }
        // Every address must pass: one loopback answer among good ones refuses the target.
        #expect(verdict("tcp:mixed.example:80").isRefusedByPolicy)
        #expect(verdict("tcp:mixed.example:80", policy(allow: ["10.0.0.0/8"])).isRefusedByPolicy)
        #expect(verdict("tcp:db.prod.svc.cluster.local:5432") == .dial([IPAddress("10.43.7.7")!]))
    }

    @Test func anExplicitAllowLiftsLoopback() {
        let one = policy(allow: ["127.0.0.1"])
        for (spelling, address) in Self.ownHostSpellings where address == "127.0.0.1" {
            #expect(verdict("tcp:\(spelling):80", one) == .dial([Self.loopback]), "\(spelling)")
        }
        #expect(verdict("tcp:127.0.0.2:80", one).isRefusedByPolicy)
        #expect(verdict("tcp:127.0.0.2:80", policy(allow: ["127.0.0.0/8"])) == .dial([IPAddress("127.0.0.2")!]))
        let port = policy(allow: ["*,127.0.0.1:8080"])
        #expect(verdict("tcp:127.0.0.1:8080", port) == .dial([Self.loopback]))
        #expect(verdict("tcp:127.0.0.1:22", port).isRefusedByPolicy)
        #expect(verdict("tcp:10.1.2.3:22", port) == .dial([IPAddress("10.1.2.3")!]))
        // A dual-stack name needs both families allowed, and a name rule lifts nothing.
        #expect(verdict("tcp:localhost:80", one).isRefusedByPolicy)
        #expect(verdict("tcp:localhost:80", policy(allow: ["127.0.0.1,::1"])) == .dial([Self.loopback, IPAddress("::1")!]))
        #expect(verdict("tcp:localhost:80", policy(allow: ["localhost"])).isRefusedByPolicy)
        #expect(verdict("tcp:[::]:80", policy(allow: ["::"])) == .dial([IPAddress("::")!]))
        // The refusal says how to lift it, with the address itself.
        #expect(verdict("tcp:0x7f.1:8080").message.contains("--allow 127.0.0.1:8080"))
        #expect(verdict("tcp:[::1]:8080").message.contains("--allow [::1]:8080"))
    }

    @Test func theConfiguredKubernetesAPIMayBeLoopback() {
        for api in [HostPort(host: "127.0.0.1", port: 6443), HostPort(host: "kubernetes.local", port: 6443), HostPort(host: "::1", port: 6443)] {
            let expected = api.host == "::1" ? IPAddress("::1")! : Self.loopback
            #expect(verdict("k8s-api", TargetPolicy(), api: api) == .dial([expected]), "\(api)")
            #expect(verdict("k8s-api", policy(allow: [".svc.cluster.local"]), api: api) == .dial([expected]), "\(api)")
            // --deny still applies to it.
            #expect(verdict("k8s-api", policy(deny: ["127.0.0.0/8,::1"]), api: api).isRefusedByPolicy, "\(api)")
        }
        // The same address asked for as tcp: is not the configured API server.
        #expect(verdict("tcp:127.0.0.1:6443", TargetPolicy(), api: HostPort(host: "127.0.0.1", port: 6443)).isRefusedByPolicy)
    }

    // MARK: metadata in each spelling

    @Test func metadataIsRefusedInEverySpelling() {
        let spellings = ["169.254.169.254", "169.254.169.254.", "0xa9fea9fe", "0xA9FEA9FE", "2852039166", "0251.0376.0251.0376",
                         "0xa9.0xfe.0xa9.0xfe", "169.254.43518", "169.16689662", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]",
                         "[::169.254.169.254]", "[fd00:ec2::254]", "[FD00:EC2:0:0:0:0:0:254]", "metadata.google.internal",
                         "Metadata.Google.Internal.", "metadata.goog", "[fe80::a9fe:a9fe]"]
        for spelling in spellings {
            for p in [TargetPolicy(), policy(allow: ["*"]), policy(allow: ["0.0.0.0/0,::/0"]), policy(allow: [".internal,.goog"])] {
                let v = verdict("tcp:\(spelling):80", p)
                #expect(v.isRefusedByPolicy, "\(spelling) with \(p): \(v)")
            }
        }
    }

    // MARK: numbers that are not addresses

    @Test func malformedNumericHostsAreRefused() throws {
        for host in ["256.0.0.1", "1.2.3.256", "1.2.3.4.5", "0x", "0x.1", "08.0.0.1", "0.0.0.09", "1.16777216", "1.2.65536",
                     "4294967296", "0x100000000", "foo.123", "db.0x10", "99999999999999999999", "1..1", "127.0.0.1..",
                     "0xg.1"] {
            let v = verdict("tcp:\(host):80", policy(allow: ["*"]))
            #expect(v.isRefusedByPolicy, "\(host): \(v)")
        }
        // Names that merely contain numeric labels are names.
        #expect(try TargetHost.parse("10.0.0.1.nip.io").get() == .name("10.0.0.1.nip.io"))
        #expect(try TargetHost.parse("0x7f.example").get() == .name("0x7f.example"))
        #expect(try TargetHost.parse("Db_1.Example.").get() == .name("db_1.example."))
    }

    @Test func configuredKubernetesAPIHostIsCheckedAtStart() {
        #expect(HostPort.parse("bad\u{0}host:443") == nil)
        #expect(HostPort.parse("https://bad host") == nil)
        #expect(HostPort.parse("127.0.0.1:6443") == HostPort(host: "127.0.0.1", port: 6443))
    }
}

/// `TargetHost.parse` on many generated hosts (a fixed-seed generator, so a failure repeats):
/// whatever it accepts is a clean name or an address that parses back to itself.
@Suite struct TargetHostPropertyTests {
    /// SplitMix64: small, deterministic, good enough to spread the choices.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let pieces = ["0", "1", "7", "9", "x", "X", "f", "a", "z", ".", ".", ":", "::", "-", "_", "%", "[", "]", "\u{0}",
                         "\t", "\u{7f}", "é", " ", "127", "0x7f", "0177", "255", "256", "4294967295", "ffff", "localhost",
                         "svc", "local", "1.1", "::ffff:", "169.254", "fe80"]

    @Test func acceptedHostsAreCleanAndStable() throws {
        var rng = Generator(state: 7)
        var accepted = 0
        for _ in 0..<50_000 {
            let count = Int.random(in: 1...8, using: &rng)
            let host = (0..<count).map { _ in Self.pieces.randomElement(using: &rng)! }.joined()
            guard case .success(let parsed) = TargetHost.parse(host) else { continue }
            accepted += 1
            switch parsed {
            case .name(let name):
                #expect(name.utf8.allSatisfy { TargetHost.isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") },
                        "\(String(reflecting: host)) → \(name)")
                #expect(name == name.lowercased())
                #expect(!TargetPolicy.normalize(name).isEmpty)
                #expect(try TargetHost.parse(name).get() == parsed, "\(String(reflecting: host))")
            case .address(let address):
                #expect(try TargetHost.parse(address.description).get() == parsed, "\(String(reflecting: host)) → \(address)")
            }
        }
        #expect(accepted > 1000, "the generator should produce some valid hosts")
    }
}
