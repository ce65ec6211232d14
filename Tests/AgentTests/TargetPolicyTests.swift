@testable import LariatAgent
import Testing

@Suite struct CIDRTests {
    @Test func ipv4() throws {
        let block = try #require(CIDR("10.0.0.0/8"))
        #expect(block.contains(IPAddress("10.255.1.2")!))
        #expect(!block.contains(IPAddress("11.0.0.0")!))
        #expect(!block.contains(IPAddress("::1")!))
        let odd = try #require(CIDR("192.168.1.77/26"))
        #expect(odd.description == "192.168.1.64/26")
        #expect(odd.contains(IPAddress("192.168.1.127")!))
        #expect(!odd.contains(IPAddress("192.168.1.128")!))
        #expect(CIDR("0.0.0.0/0")!.contains(IPAddress("8.8.8.8")!))
        #expect(CIDR("1.2.3.4")!.prefixLength == 32)
    }

    @Test func ipv6() throws {
        let ll = try #require(CIDR("fe80::/10"))
        #expect(ll.contains(IPAddress("fe80::1")!))
        #expect(ll.contains(IPAddress("febf::1%eth0")!))
        #expect(!ll.contains(IPAddress("fec0::1")!))
        #expect(CIDR("::1")!.prefixLength == 128)
    }

    @Test func invalid() {
        for text in ["10.0.0.0/33", "10.0.0/8", "fe80::/129", "host/8", "10.0.0.0/", "", "10.0.0.0/-1"] {
            #expect(CIDR(text) == nil, "\(text)")
        }
    }

    @Test func mappedAddressesAreIPv4() {
        #expect(IPAddress("::ffff:169.254.169.254") == IPAddress("169.254.169.254"))
        #expect(IPAddress("::ffff:a9fe:a9fe")!.isIPv4)
        // Non-canonical IPv4 spellings are not addresses here (the resolver's answer is judged).
        #expect(IPAddress("0xa9fea9fe") == nil)
        #expect(IPAddress("2852039166") == nil)
        #expect(IPAddress("169.254.169.254.") == nil)
    }
}

@Suite struct TargetPolicyTests {
    func ip(_ s: String) -> IPAddress { IPAddress(s)! }

    @Test func defaultAllowsOrdinaryTargets() {
        let p = TargetPolicy()
        #expect(p.decide(name: nil, address: ip("10.43.0.1"), port: 443) == .allowed)
        #expect(p.decide(name: "db.prod.svc.cluster.local", address: ip("10.43.7.7"), port: 5432) == .allowed)
        #expect(p.decide(name: nil, address: ip("192.168.1.10"), port: 8080) == .allowed)
        #expect(p.decideByName("db.prod.svc.cluster.local", port: 5432) == nil)
    }

    @Test func defaultBlocksLinkLocalAndMetadata() {
        let p = TargetPolicy()
        #expect(!p.decide(name: nil, address: ip("169.254.169.254"), port: 80).isAllowed)
        #expect(!p.decide(name: nil, address: ip("::ffff:169.254.169.254"), port: 80).isAllowed)
        #expect(!p.decide(name: nil, address: ip("169.254.1.1"), port: 80).isAllowed)
        #expect(!p.decide(name: nil, address: ip("fe80::1"), port: 80).isAllowed)
        #expect(!p.decide(name: nil, address: ip("fd00:ec2::254"), port: 80).isAllowed)
        // A name that resolves to the metadata address is judged by its address.
        #expect(!p.decide(name: "innocent.example", address: ip("169.254.169.254"), port: 80).isAllowed)
        // The metadata name is refused before it is even resolved.
        #expect(p.decideByName("Metadata.Google.Internal.", port: 80)?.isAllowed == false)
    }

    /// Issue #7: the agent's own loopback and unspecified addresses are refused by default,
    /// next to link-local and metadata; an address rule inside them lifts the denial.
    @Test func defaultBlocksTheAgentsOwnHost() throws {
        let p = TargetPolicy()
        for a in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "0.0.0.0", "0.1.2.3", "::", "::127.0.0.1"] {
            #expect(!p.decide(name: nil, address: ip(a), port: 8080).isAllowed, "\(a)")
            #expect(!p.decide(name: "localhost", address: ip(a), port: 8080).isAllowed, "\(a)")
        }
        let lifted = try TargetPolicy(allowing: ["127.0.0.1:8080,::1"], denying: [])
        #expect(lifted.decide(name: nil, address: ip("127.0.0.1"), port: 8080) == .allowed)
        #expect(!lifted.decide(name: nil, address: ip("127.0.0.1"), port: 8081).isAllowed)
        #expect(lifted.decide(name: nil, address: ip("::1"), port: 1) == .allowed)
        #expect(!lifted.decide(name: nil, address: ip("::"), port: 1).isAllowed)
    }

    @Test func denialNamesTheRule() {
        guard case .denied(let reason) = TargetPolicy().decide(name: nil, address: ip("169.254.169.254"), port: 80) else {
            Issue.record("expected a denial"); return
        }
        #expect(reason.contains("169.254.169.254"))
        let p = try! TargetPolicy(allowing: [], denying: ["10.9.0.0/16"])
        #expect(p.decide(name: nil, address: ip("10.9.1.1"), port: 22) == .denied(reason: "denied by rule 10.9.0.0/16"))
    }

    @Test func allowListRestricts() throws {
        let p = try TargetPolicy(allowing: ["10.0.0.0/8,db.svc:5432", ".internal"], denying: [])
        #expect(p.decide(name: nil, address: ip("10.1.1.1"), port: 80) == .allowed)
        #expect(!p.decide(name: nil, address: ip("192.168.1.1"), port: 80).isAllowed)
        #expect(p.decide(name: "db.svc", address: ip("192.168.1.1"), port: 5432) == .allowed)
        #expect(!p.decide(name: "db.svc", address: ip("192.168.1.1"), port: 5433).isAllowed)
        #expect(p.decide(name: "x.internal", address: ip("172.16.0.1"), port: 1) == .allowed)
        #expect(!p.decide(name: "internal", address: ip("172.16.0.1"), port: 1).isAllowed)
    }

    @Test func denyWins() throws {
        let p = try TargetPolicy(allowing: ["10.0.0.0/8"], denying: ["10.0.0.5", "*:22"])
        #expect(!p.decide(name: nil, address: ip("10.0.0.5"), port: 443).isAllowed)
        #expect(!p.decide(name: nil, address: ip("10.0.0.6"), port: 22).isAllowed)
        #expect(p.decide(name: nil, address: ip("10.0.0.6"), port: 443) == .allowed)
        #expect(p.decideByName("anything", port: 22)?.isAllowed == false)
        // Even an allowed, preauthorized target (the Kubernetes API) obeys --deny.
        #expect(!p.decide(name: nil, address: ip("10.0.0.5"), port: 443, preauthorized: true).isAllowed)
    }

    @Test func specificAllowLiftsABuiltinRuleButStarDoesNot() throws {
        let nodeLocalDNS = try TargetPolicy(allowing: ["169.254.20.10"], denying: [])
        #expect(nodeLocalDNS.decide(name: nil, address: ip("169.254.20.10"), port: 53) == .allowed)
        #expect(!nodeLocalDNS.decide(name: nil, address: ip("169.254.169.254"), port: 80).isAllowed)
        let both = try TargetPolicy(allowing: ["*,169.254.20.10:53"], denying: [])
        #expect(both.decide(name: nil, address: ip("169.254.20.10"), port: 53) == .allowed)
        #expect(both.decide(name: nil, address: ip("8.8.8.8"), port: 443) == .allowed)
        #expect(!both.decide(name: nil, address: ip("169.254.20.10"), port: 80).isAllowed)
        let star = try TargetPolicy(allowing: ["*"], denying: [])
        #expect(!star.decide(name: nil, address: ip("169.254.169.254"), port: 80).isAllowed)
    }

    @Test func broadOrNameRulesDoNotLiftAddressRules() throws {
        for rules in ["0.0.0.0/0", "*:80", "169.254.0.0/16", ".example.com", "*,evil.example.com"] {
            let p = try TargetPolicy(allowing: [rules], denying: [])
            #expect(!p.decide(name: "evil.example.com", address: ip("169.254.169.254"), port: 80).isAllowed, "\(rules)")
        }
        let linkLocal = try TargetPolicy(allowing: ["169.254.0.0/16"], denying: [])
        #expect(linkLocal.decide(name: nil, address: ip("169.254.1.1"), port: 80) == .allowed)
        let metadata = try TargetPolicy(allowing: ["169.254.169.254"], denying: [])
        #expect(metadata.decide(name: nil, address: ip("169.254.169.254"), port: 80) == .allowed)
        let byName = try TargetPolicy(allowing: ["metadata.google.internal"], denying: [])
        #expect(byName.decideByName("metadata.google.internal", port: 80) == nil)
        // ...but its address is still judged by the address rules.
        #expect(!byName.decide(name: "metadata.google.internal", address: ip("169.254.169.254"), port: 80).isAllowed)
    }

    @Test func preauthorizedSkipsAllowListAndBuiltins() throws {
        let p = try TargetPolicy(allowing: ["10.0.0.0/8"], denying: [])
        #expect(p.decide(name: nil, address: ip("192.168.0.1"), port: 6443, preauthorized: true) == .allowed)
    }

    @Test func ruleSyntax() throws {
        #expect(try PolicyRule.parse("[fd00::1]:443").port == 443)
        #expect(try PolicyRule.parse("[fd00::/8]:443").pattern == .block(CIDR("fd00::/8")!))
        #expect(try PolicyRule.parse("fd00::/8").port == nil)
        #expect(try PolicyRule.parse("*.Example.COM").pattern == .suffix(".example.com"))
        #expect(try PolicyRule.parse("host:*").port == nil)
        #expect(try PolicyRule.parse("*:22").pattern == .any)
        for bad in ["10.0.0.0/40", "host:0", "host:70000", "ex*ample.com", "[::1", "a b", ""] {
            #expect(throws: PolicyRuleError.self, "\(bad)") { try PolicyRule.parse(bad) }
        }
        #expect(try PolicyRule.parseList([" a.com , ,b.com", "10.0.0.0/8"]).count == 3)
    }
}
