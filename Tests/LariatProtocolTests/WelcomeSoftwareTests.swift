import LariatProtocol
import Testing

/// WELCOME carries the hub's software (tag 13) for the agent's logs; an empty one is left out,
/// so the canonical encoding of the golden vectors is unchanged.
@Suite struct WelcomeSoftwareTests {
    @Test func softwareRoundTripsAndIsOmittedWhenEmpty() throws {
        var w = Welcome()
        w.sessionID = "s-1"
        let plain = w.encode()
        w.software = "lariat-hub/9.8.7"
        let withSoftware = w.encode()
        #expect(withSoftware.count == plain.count + 3 + "lariat-hub/9.8.7".utf8.count)
        #expect(Array(withSoftware.prefix(plain.count)) == plain)
        let decoded = try withSoftware.withUnsafeBytes { try Welcome.decode($0) }
        #expect(decoded.software == "lariat-hub/9.8.7")
        #expect(decoded == w)
        let old = try plain.withUnsafeBytes { try Welcome.decode($0) }
        #expect(old.software == "")
    }

    @Test func aHelloIgnoresTheWelcomeOnlyTag() throws {
        var h = Hello()
        h.software = "lariat-agent/1.0.0"
        // Tag 13 appended to a HELLO is ignored like any WELCOME-only tag.
        let bytes = h.encode() + [13, 0, 3] + Array("hub".utf8)
        let decoded = try bytes.withUnsafeBytes { try Hello.decode($0) }
        #expect(decoded == h)
    }
}
