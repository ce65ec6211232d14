@testable import LariatHub
import LariatHTTP
import Testing

/// The magic proxy's reading of Kubernetes' service proxy URL, and its redirect rewriting.
@Suite struct ServiceProxyRouteTests {
    func route(_ target: String, method: String = "GET") throws -> ServiceProxyRoute {
        let info = try #require(KubernetesRequestInfo(method: method, target: target))
        return try #require(ServiceProxyRoute(info))
    }

    @Test func theServiceFieldAndTheRestAreSplit() throws {
        let r = try route("/k8s/clusters/c1/api/v1/namespaces/web/services/https:front:8443/proxy/a/b?x=1")
        #expect(r.scheme == "https")
        #expect(r.name == "front")
        #expect(r.port == "8443")
        #expect(r.namespace == "web")
        #expect(r.rest == "/a/b?x=1")
        #expect(r.base == "/k8s/clusters/c1/api/v1/namespaces/web/services/https:front:8443/proxy")
        let plain = try route("/k8s/clusters/c1/api/v1/namespaces/web/services/front/proxy")
        #expect(plain.scheme == nil && plain.port == nil && plain.rest == "/")
        let named = try route("/k8s/clusters/c1/api/v1/namespaces/web/services/front:http/proxy/")
        #expect(named.port == "http" && named.rest == "/")
        #expect(ServiceProxyRoute(try #require(KubernetesRequestInfo(method: "GET", target: "/k8s/clusters/c1/api/v1/namespaces/web/services/front"))) == nil)
        #expect(ServiceProxyRoute(try #require(KubernetesRequestInfo(method: "GET", target: "/k8s/clusters/c1/api/v1/namespaces/web/pods/p/proxy/x"))) == nil)
    }

    @Test func theDirectTargetIsTheClusterIPAndTheChosenPort() throws {
        let facts = ServiceFacts(json: Array(#"{"spec":{"clusterIP":"10.96.0.12","ports":[{"name":"http","port":80},{"name":"admin","port":9090}]}}"#.utf8).withUnsafeBytes { Data($0) })!
        #expect(try route("/k8s/clusters/c/api/v1/namespaces/n/services/s/proxy/").directTarget(facts) == "tcp:10.96.0.12:80")
        #expect(try route("/k8s/clusters/c/api/v1/namespaces/n/services/s:admin/proxy/").directTarget(facts) == "tcp:10.96.0.12:9090")
        #expect(try route("/k8s/clusters/c/api/v1/namespaces/n/services/s:9090/proxy/").directTarget(facts) == "tcp:10.96.0.12:9090")
        #expect(try route("/k8s/clusters/c/api/v1/namespaces/n/services/s:nope/proxy/").directTarget(facts) == nil)
        #expect(try route("/k8s/clusters/c/api/v1/namespaces/n/services/https:s:443/proxy/").directTarget(facts) == nil)
        let headless = ServiceFacts(json: Array(#"{"spec":{"clusterIP":"None","ports":[{"port":80}]}}"#.utf8).withUnsafeBytes { Data($0) })!
        #expect(try route("/k8s/clusters/c/api/v1/namespaces/n/services/s/proxy/").directTarget(headless) == nil)
    }

    @Test func redirectsStayUnderTheHubsPrefix() throws {
        let r = try route("/k8s/clusters/c1/api/v1/namespaces/web/services/front:80/proxy/login")
        let hosts = r.serviceHosts(nil)
        let base = "/k8s/clusters/c1/api/v1/namespaces/web/services/front:80/proxy"
        #expect(r.rewriteLocation("/home", hosts: hosts) == base + "/home")
        #expect(r.rewriteLocation("http://front.web.svc.cluster.local:80/x?y=1", hosts: hosts) == base + "/x?y=1")
        #expect(r.rewriteLocation("http://front", hosts: hosts) == base + "/")
        #expect(r.rewriteLocation("/api/v1/namespaces/web/services/front:80/proxy/home", hosts: hosts)
                == "/k8s/clusters/c1/api/v1/namespaces/web/services/front:80/proxy/home")
        #expect(r.rewriteLocation("https://example.com/elsewhere", hosts: hosts) == "https://example.com/elsewhere")
        #expect(r.rewriteLocation("relative/path", hosts: hosts) == "relative/path")
    }

    @Test func theDirectHeadCarriesNoCredentialOrImpersonation() throws {
        let r = try route("/k8s/clusters/c1/api/v1/namespaces/web/services/front/proxy/a")
        let head = HTTPRequestHead(method: "GET", target: "/k8s/clusters/c1/api/v1/namespaces/web/services/front/proxy/a",
                                   headers: HTTPHeaders([("Authorization", "Bearer token-x:y"), ("Impersonate-User", "admin"),
                                                         ("Accept", "text/html"), ("Host", "hub")]))
        let out = r.directHead(from: head, clientAddress: "10.1.1.1", bodyLength: 0)
        #expect(out.target == "/a")
        #expect(out.headers["Authorization"].isEmpty)
        #expect(out.headers.first(name: "Impersonate-User") == nil)
        #expect(out.headers["Host"] == ["front.web.svc"])
        #expect(out.headers["Accept"] == ["text/html"])
    }
}

import Foundation
