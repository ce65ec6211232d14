@testable import LariatAgent
import LariatHTTP
import Testing

@Suite struct ProxyURLTests {
    @Test func plainHostPort() throws {
        let p = try ProxyServer.parse("http://proxy.corp:3128")
        #expect(p == ProxyServer(host: "proxy.corp", port: 3128))
        #expect(p.authorization == nil)
    }

    @Test func schemeIsOptionalAndPortDefaultsTo80() throws {
        #expect(try ProxyServer.parse("proxy.corp") == ProxyServer(host: "proxy.corp", port: 80))
        #expect(try ProxyServer.parse("proxy.corp:8080/") == ProxyServer(host: "proxy.corp", port: 8080))
        #expect(try ProxyServer.parse("  HTTP://proxy.corp:8080/path  ") == ProxyServer(host: "proxy.corp", port: 8080))
    }

    @Test func credentialsArePercentDecodedAndBecomeBasicAuth() throws {
        let p = try ProxyServer.parse("http://al%40ice:p%3Ass@proxy:3128")
        #expect(p.username == "al@ice")
        #expect(p.password == "p:ss")
        #expect(p.authorization == "Basic " + Base64.encode(Array("al@ice:p:ss".utf8)))
        #expect(!p.description.contains("p:ss"))
        #expect(p.description == "http://al@ice:***@proxy:3128")
    }

    @Test func userWithoutPassword() throws {
        let p = try ProxyServer.parse("http://bob@proxy:3128")
        #expect(p.username == "bob" && p.password == nil)
        #expect(p.authorization == "Basic " + Base64.encode(Array("bob:".utf8)))
    }

    @Test func ipv6Proxy() throws {
        #expect(try ProxyServer.parse("http://[fd00::1]:3128") == ProxyServer(host: "fd00::1", port: 3128))
    }

    @Test func unsupportedSchemesAndBadPortsAreErrors() {
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("https://proxy:443") }
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("socks5://proxy:1080") }
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("http://proxy:99999") }
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("http://:3128") }
        #expect(throws: ProxyConfigurationError.self) { try ProxyServer.parse("") }
    }

    @Test func errorsDoNotLeakThePassword() {
        do {
            _ = try ProxyServer.parse("socks5://u:secret@proxy:1080")
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains("secret"))
        }
    }

    @Test func connectRequestBytes() throws {
        let plain = ProxyConnectPhase.request(target: "hub.example:8443", proxy: ProxyServer(host: "p", port: 3128))
        #expect(String(decoding: plain, as: UTF8.self)
                == "CONNECT hub.example:8443 HTTP/1.1\r\nHost: hub.example:8443\r\nUser-Agent: \(AgentVersion.software)\r\n\r\n")
        let authed = ProxyConnectPhase.request(target: "[::1]:8443", proxy: try ProxyServer.parse("http://u:p@p:3128"))
        let text = String(decoding: authed, as: UTF8.self)
        #expect(text.hasPrefix("CONNECT [::1]:8443 HTTP/1.1\r\n"))
        #expect(text.contains("\r\nProxy-Authorization: Basic dTpw\r\n"))
    }
}

@Suite struct ProxyEnvironmentTests {
    @Test func upperCaseWinsLikeGo() throws {
        let s = try ProxySettings.fromEnvironment(["HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"])
        #expect(s.httpsProxy?.host == "upper")
        let lower = try ProxySettings.fromEnvironment(["https_proxy": "http://lower:2", "no_proxy": "hub.local"])
        #expect(lower.httpsProxy?.host == "lower")
        #expect(lower.proxy(forHost: "hub.local", port: 443) == nil)
    }

    @Test func emptyValuesMeanUnset() throws {
        let s = try ProxySettings.fromEnvironment(["HTTPS_PROXY": "  ", "https_proxy": "http://lower:2"])
        #expect(s.httpsProxy?.host == "lower")
        #expect(try ProxySettings.fromEnvironment([:]).proxy(forHost: "x", port: 1) == nil)
    }

    @Test func httpProxyDoesNotApplyToTheHub() throws {
        let s = try ProxySettings.fromEnvironment(["HTTP_PROXY": "http://p:1"])
        #expect(s.proxy(forHost: "hub", port: 443) == nil)
    }

    @Test func badProxyNamesTheVariable() {
        do {
            _ = try ProxySettings.fromEnvironment(["HTTPS_PROXY": "ftp://x"])
            Issue.record("expected an error")
        } catch {
            #expect(error.description.hasPrefix("HTTPS_PROXY:"))
        }
    }

    @Test func proxySelection() throws {
        let s = try ProxySettings.fromEnvironment(["HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".internal,10.0.0.0/8"])
        #expect(s.proxy(forHost: "hub.example.com", port: 443)?.host == "p")
        #expect(s.proxy(forHost: "hub.internal", port: 443) == nil)
        #expect(s.proxy(forHost: "10.1.2.3", port: 443) == nil)
        #expect(s.proxy(forHost: "11.1.2.3", port: 443)?.host == "p")
    }
}

@Suite struct NoProxyTests {
    @Test func bareDomainMatchesItselfAndSubdomains() {
        let n = NoProxy("example.com")
        #expect(n.bypassesProxy(host: "example.com", port: 443))
        #expect(n.bypassesProxy(host: "hub.example.com", port: 443))
        #expect(n.bypassesProxy(host: "HUB.Example.COM.", port: 443))
        #expect(!n.bypassesProxy(host: "badexample.com", port: 443))
        #expect(!n.bypassesProxy(host: "example.com.evil", port: 443))
    }

    @Test func leadingDotOrStarMatchesOnlySubdomains() {
        for text in [".example.com", "*.example.com"] {
            let n = NoProxy(text)
            #expect(n.bypassesProxy(host: "a.example.com", port: 1), "\(text)")
            #expect(n.bypassesProxy(host: "a.b.example.com", port: 1), "\(text)")
            #expect(!n.bypassesProxy(host: "example.com", port: 1), "\(text)")
        }
    }

    @Test func starAloneDisablesTheProxy() {
        let n = NoProxy("foo, *")
        #expect(n.bypassesProxy(host: "anything.at.all", port: 1))
        #expect(n.bypassesProxy(host: "8.8.8.8", port: 1))
    }

    @Test func ipsAndCIDRs() {
        let n = NoProxy("10.0.0.0/8, 192.168.1.5 ,fd00::/8,2001:db8::1")
        #expect(n.bypassesProxy(host: "10.200.3.4", port: 443))
        #expect(!n.bypassesProxy(host: "11.0.0.1", port: 443))
        #expect(n.bypassesProxy(host: "192.168.1.5", port: 443))
        #expect(!n.bypassesProxy(host: "192.168.1.6", port: 443))
        #expect(n.bypassesProxy(host: "fd12::5", port: 443))
        #expect(n.bypassesProxy(host: "[fd12::5]", port: 443))
        #expect(n.bypassesProxy(host: "2001:db8::1", port: 443))
        #expect(n.bypassesProxy(host: "::ffff:10.1.1.1", port: 443))
    }

    @Test func ipEntriesDoNotMatchNames() {
        // Like Go: no DNS lookups while deciding.
        let n = NoProxy("10.0.0.0/8")
        #expect(!n.bypassesProxy(host: "hub.local", port: 443))
    }

    @Test func ports() {
        let n = NoProxy("hub.local:8443,10.0.0.1:443,[fd00::1]:8443")
        #expect(n.bypassesProxy(host: "hub.local", port: 8443))
        #expect(!n.bypassesProxy(host: "hub.local", port: 443))
        #expect(n.bypassesProxy(host: "10.0.0.1", port: 443))
        #expect(!n.bypassesProxy(host: "10.0.0.1", port: 8443))
        #expect(n.bypassesProxy(host: "fd00::1", port: 8443))
        #expect(!n.bypassesProxy(host: "fd00::1", port: 443))
    }

    @Test func loopbackIsNeverProxied() {
        let n = NoProxy("")
        #expect(n.bypassesProxy(host: "localhost", port: 1))
        #expect(n.bypassesProxy(host: "127.0.0.1", port: 1))
        #expect(n.bypassesProxy(host: "127.8.9.10", port: 1))
        #expect(n.bypassesProxy(host: "::1", port: 1))
        #expect(!n.bypassesProxy(host: "hub", port: 1))
    }

    @Test func junkEntriesAreIgnored() {
        let n = NoProxy(" , ,hub:notaport,.,ok.example")
        #expect(!n.bypassesProxy(host: "hub", port: 1))
        #expect(n.bypassesProxy(host: "ok.example", port: 1))
    }
}
