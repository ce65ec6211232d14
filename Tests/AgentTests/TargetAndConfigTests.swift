@testable import LariatAgent
import LariatProtocol
import LariatTunnel
import Testing

@Suite struct TargetResolutionTests {
    let api = HostPort(host: "10.43.0.1", port: 443)

    func resolve(_ target: String, api: HostPort? = nil, domain: String = "svc.cluster.local") -> TargetDialer.Resolution {
        TargetDialer.resolve(target: target, kubernetesAPI: api, serviceDomain: domain)
    }

    @Test func tcpTargets() {
        #expect(resolve("tcp:10.0.0.5:6443") == .dial(host: .address(IPAddress("10.0.0.5")!), port: 6443, preauthorized: false))
        #expect(resolve("tcp:db.example:5432") == .dial(host: .name("db.example"), port: 5432, preauthorized: false))
        #expect(resolve("tcp:[fd00::1]:443") == .dial(host: .address(IPAddress("fd00::1")!), port: 443, preauthorized: false))
    }

    @Test func kubernetesAPI() {
        #expect(resolve("k8s-api", api: api) == .dial(host: .address(IPAddress("10.43.0.1")!), port: 443, preauthorized: true))
        guard case .refuse(let code, let message) = resolve("k8s-api") else { Issue.record("expected refusal"); return }
        #expect(code == .targetUnknown)
        #expect(message.contains("no Kubernetes API server configured"))
    }

    @Test func services() {
        #expect(resolve("svc:monitoring/grafana:3000") == .dial(host: .name("grafana.monitoring.svc.cluster.local"), port: 3000, preauthorized: false))
        #expect(resolve("svc:a/b:1", domain: "svc.corp.local") == .dial(host: .name("b.a.svc.corp.local"), port: 1, preauthorized: false))
        guard case .refuse(.targetUnknown, _) = resolve("svc:a.b/c:1") else { Issue.record("dots in a namespace must be refused"); return }
    }

    @Test func badTargetsAreUnknown() {
        for target in ["", "tcp:", "tcp:host", "tcp:host:0", "tcp:host:65536", "tcp:::1:80", "udp:1.2.3.4:53",
                       "svc:/name:80", "svc:ns/name", "unix:/var/run/docker.sock"] {
            guard case .refuse(let code, _) = resolve(target) else { Issue.record("\(target) should be refused"); continue }
            #expect(code == .targetUnknown, "\(target)")
        }
    }

    @Test func tunnelTargetRoundTrip() {
        for text in ["tcp:1.2.3.4:80", "tcp:[::1]:443", "k8s-api", "svc:ns/name:8080"] {
            #expect(TunnelTarget(text)?.description == text)
        }
    }
}

@Suite struct ConfigurationParsingTests {
    @Test func hubURLs() throws {
        #expect(try HubEndpoint.parse("https://hub.example.com:8443") == HubEndpoint(host: "hub.example.com", port: 8443))
        #expect(try HubEndpoint.parse("https://hub.example.com") == HubEndpoint(host: "hub.example.com", port: 443))
        #expect(try HubEndpoint.parse("HTTPS://[fd00::1]:9443/") == HubEndpoint(host: "fd00::1", port: 9443))
        let prefixed = try HubEndpoint.parse("https://edge.corp/lariat/")
        #expect(prefixed.pathPrefix == "/lariat")
        #expect(prefixed.path("/v1/connect") == "/lariat/v1/connect")
        #expect(try HubEndpoint.parse("https://[fd00::1]:9443").authority == "[fd00::1]:9443")
        for bad in ["hub:8443", "http://hub:8443", "https://", "https://hub:0", "https://u:p@hub"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try HubEndpoint.parse(bad) }
        }
    }

    @Test func checksums() throws {
        let hex = String(repeating: "ab", count: 32)
        #expect(try AgentConfiguration.normalizeChecksum(hex.uppercased()) == hex)
        #expect(try AgentConfiguration.normalizeChecksum("sha256:" + hex) == hex)
        #expect(throws: ConfigurationError.self) { try AgentConfiguration.normalizeChecksum("abc") }
        #expect(throws: ConfigurationError.self) { try AgentConfiguration.normalizeChecksum(String(repeating: "zz", count: 32)) }
    }

    @Test func kubernetesAPIAddress() {
        #expect(HostPort.parse("10.43.0.1:443") == HostPort(host: "10.43.0.1", port: 443))
        #expect(HostPort.parse("https://kubernetes.default.svc") == HostPort(host: "kubernetes.default.svc", port: 443))
        #expect(HostPort.parse("https://[fd00::1]:6443/") == HostPort(host: "fd00::1", port: 6443))
        #expect(HostPort.parse("kubernetes") == nil)
        #expect(HostPort(host: "fd00::1", port: 443).description == "[fd00::1]:443")
    }
}
