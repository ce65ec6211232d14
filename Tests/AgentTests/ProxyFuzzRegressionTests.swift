@testable import LariatAgent
import Testing

/// Inputs fuzz/FuzzProxy.swift found (saved in fuzz/crashes/proxy/, replayed by fuzz/run.sh):
/// HTTPS_PROXY values that parsed to a host no URL could name again.
@Suite struct ProxyFuzzRegressionTests {
    /// fuzz/crashes/proxy/stray-bracket-in-host.bin: an unbracketed authority with a stray "]"
    /// came back whole as the host "d00::2]:8080".
    @Test func strayBracketIsRefused() {
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("d00::2]:8080/") }
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("http://fd00::2]:3128") }
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("http://[fd00::2") }
    }

    /// Bytes after "]" other than ":port" were dropped silently.
    @Test func junkAfterBracketIsRefused() throws {
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("http://[::1]x") }
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("http://[::1]x:3128") }
        #expect(try ProxyServer.parse("http://[::1]:3128") == ProxyServer(host: "::1", port: 3128))
        #expect(try ProxyServer.parse("http://[::1]") == ProxyServer(host: "::1", port: 80))
    }

    /// fuzz/crashes/proxy/non-ascii-host.bin: a host starting with a combining mark (U+0346)
    /// fused with the "/" before it when written back as a URL; non-ASCII, spaces and controls
    /// never name a host.
    @Test func nonASCIIOrControlHostIsRefused() {
        let fuzzed = String(decoding: [0xCD, 0x86, 0xF6, 0xFF, 0xA4, 0xCF, 0xCC, 0xD6] as [UInt8], as: UTF8.self)
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse(fuzzed) }
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("http://pr\u{00F6}xy:3128") }
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("http://a b:3128") }
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("http://a\u{7}b:3128") }
    }

    /// Credentials may still hold anything (percent-encoded), and the refusal never shows them.
    @Test func refusalHidesCredentials() throws {
        #expect(try ProxyServer.parse("http://us%C3%A9r:p%20w@proxy:3128").username == "usér")
        do {
            _ = try ProxyServer.parse("http://u:s3cr3t@fd00::2]:3128")
            Issue.record("a stray bracket parsed")
        } catch {
            #expect(!error.description.contains("s3cr3t"))
        }
    }
}
