import Foundation
@testable import LariatAgent
import LariatProtocol
import Testing

/// Registration: the request the agent sends, how it reads the hub's answers, when it
/// registers at all, and the credential file.
@Suite struct AgentRegistrationTests {
    static let hub = try! HubEndpoint.parse("https://127.0.0.1:8443")

    @Test func theRequestIsJSONWithHostileValuesKeptInTheirStrings() throws {
        let body = AgentRegistration.body(cluster: "edge-1", agentID: "pod\"}\n,\"role\":\"cluster", role: .nodeAgent,
                                          token: "crt-abcde.secret")
        let decoded = try JSONSerialization.jsonObject(with: Data(body)) as? [String: String]
        #expect(decoded == ["cluster": "edge-1", "agentID": "pod\"}\n,\"role\":\"cluster", "role": "node", "token": "crt-abcde.secret"])
    }

    @Test func answers() {
        let issued = Array(#"{"name":"ac-abcd1234","credential":"ac-abcd1234:0123456789abcdef"}"#.utf8)
        #expect(AgentRegistration.outcome(status: 201, body: issued) == .issued(name: "ac-abcd1234", credential: "ac-abcd1234:0123456789abcdef"))
        // A 201 without a credential of the right shape is not taken.
        #expect(AgentRegistration.outcome(status: 201, body: Array(#"{"name":"x","credential":"crt-a.b"}"#.utf8)) != .issued(name: "x", credential: "crt-a.b"))
        guard case .refused(let unauthorized) = AgentRegistration.outcome(status: 401, body: []) else { Issue.record("401"); return }
        #expect(unauthorized.contains("unknown, expired or was rotated"))
        let revoked = Array(#"{"type":"error","status":403,"code":"Forbidden","message":"agent \"a\" of cluster \"c\" is revoked\n(forged line)"}"#.utf8)
        guard case .refused(let why) = AgentRegistration.outcome(status: 403, body: revoked) else { Issue.record("403"); return }
        #expect(why.contains("is revoked") && !why.contains("\n"))
        guard case .failed = AgentRegistration.outcome(status: 503, body: Array("busy".utf8)) else { Issue.record("503"); return }
    }

    @Test func onlyAskedAgentsWithARegistrationTokenRegister() {
        var c = AgentConfiguration(hub: Self.hub, token: "crt-abcde.secret", caChecksum: nil, cluster: "c", agentID: "a")
        #expect(!c.registers)  // as before registration existed: the token goes in HELLO
        c.register = true
        #expect(c.registers)
        c.token = "ac-abcd1234:secret"  // a credential given directly is used directly
        #expect(!c.registers)
        c.token = "legacy-cluster-token"
        #expect(!c.registers)
        c = AgentConfiguration(hub: Self.hub, token: "crt-abcde.secret", caChecksum: nil, cluster: "c", agentID: "a")
        c.credentialFile = "/nonexistent"
        #expect(c.registers)
    }

    @Test func theCredentialFileIsPrivateAndReadBack() throws {
        let path = NSTemporaryDirectory() + "lariat-credential-\(UInt64.random(in: 0...UInt64.max))"
        defer { unlink(path) }
        var c = AgentConfiguration(hub: Self.hub, token: "crt-abcde.secret", caChecksum: nil, cluster: "c", agentID: "a")
        c.credentialFile = path
        #expect(try c.storedCredential() == nil)
        try AgentRegistration.saveCredential("ac-abcd1234:0123456789abcdef", to: path)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try c.storedCredential() == "ac-abcd1234:0123456789abcdef")
        // Something else in the file is an error, not a silent re-registration.
        try AgentRegistration.saveCredential("crt-abcde.secret", to: path)
        #expect(throws: ConfigurationError.self) { try c.storedCredential() }
    }
}
