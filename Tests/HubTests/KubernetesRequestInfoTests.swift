@testable import LariatHub
import LariatControl
import LariatHTTP
import Testing

/// The proxy's reading of a request (what RBAC and the audit log see) must match
/// kube-apiserver's RequestInfoFactory, or the hub would authorize something else than the
/// cluster then does.
@Suite struct KubernetesRequestInfoTests {
    func info(_ method: String, _ target: String) throws -> KubernetesRequestInfo {
        try #require(KubernetesRequestInfo(method: method, target: target))
    }

    @Test func theClusterAndTheUpstreamTargetAreSplitOff() throws {
        let i = try info("GET", "/k8s/clusters/c-1/api/v1/namespaces/default/pods/p1?x=1")
        #expect(i.cluster == "c-1")
        #expect(i.upstreamTarget == "/api/v1/namespaces/default/pods/p1?x=1")
        #expect(i.upstreamPath == "/api/v1/namespaces/default/pods/p1")
        #expect(try info("GET", "/k8s/clusters/c-1").upstreamTarget == "/")
        #expect(try info("GET", "/k8s/clusters/c-1?timeout=5s").upstreamTarget == "/?timeout=5s")
        #expect(KubernetesRequestInfo(method: "GET", target: "/k8s/clusters/") == nil)
        #expect(KubernetesRequestInfo(method: "GET", target: "/v3/clusters") == nil)
    }

    @Test(arguments: [
        // method, path, verb, group, resource, subresource, namespace, name
        ("GET", "/api/v1/namespaces/default/pods", "list", "", "pods", "", "default", ""),
        ("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=5", "watch", "", "pods", "", "default", ""),
        ("GET", "/api/v1/watch/namespaces/default/pods", "watch", "", "pods", "", "default", ""),
        ("GET", "/api/v1/pods?limit=500", "list", "", "pods", "", "", ""),
        ("GET", "/api/v1/namespaces/default/pods/p1", "get", "", "pods", "", "default", "p1"),
        ("POST", "/api/v1/namespaces/default/pods/p1/exec?command=sh", "create", "", "pods", "exec", "default", "p1"),
        ("GET", "/api/v1/namespaces/default/pods/p1/exec?command=sh", "get", "", "pods", "exec", "default", "p1"),
        ("GET", "/api/v1/namespaces/default/pods/p1/log?follow=true", "get", "", "pods", "log", "default", "p1"),
        ("DELETE", "/api/v1/namespaces/default/pods", "deletecollection", "", "pods", "", "default", ""),
        ("DELETE", "/api/v1/namespaces/default/pods/p1", "delete", "", "pods", "", "default", "p1"),
        ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", "patch", "apps", "deployments", "scale", "a", "d"),
        ("PUT", "/apis/rbac.authorization.k8s.io/v1/clusterroles/view", "update", "rbac.authorization.k8s.io", "clusterroles", "", "", "view"),
        ("GET", "/api/v1/namespaces", "list", "", "namespaces", "", "", ""),
        ("GET", "/api/v1/namespaces/kube-system", "get", "", "namespaces", "", "kube-system", "kube-system"),
        ("PUT", "/api/v1/namespaces/ns1/finalize", "update", "", "namespaces", "finalize", "ns1", "ns1"),
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", "create", "authentication.k8s.io", "selfsubjectreviews", "", "", ""),
        ("GET", "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dp2", "list", "", "pods", "", "default", "p2"),
        ("GET", "/api/v1/namespaces/default/services/https:web:8443/proxy/a/b", "get", "", "services", "proxy", "default", "https:web:8443"),
    ])
    func resourceRequests(_ c: (String, String, String, String, String, String, String, String)) throws {
        let i = try info(c.0, "/k8s/clusters/c" + c.1)
        #expect(i.isResourceRequest)
        #expect(i.verb == c.2)
        #expect(i.apiGroup == c.3)
        #expect(i.resource == c.4)
        #expect(i.subresource == c.5)
        #expect(i.namespace == c.6)
        #expect(i.name == c.7)
    }

    @Test(arguments: ["/version", "/api", "/apis", "/api/v1", "/apis/apps", "/apis/apps/v1", "/openapi/v3", "/healthz"])
    func nonResourceRequests(_ path: String) throws {
        let i = try info("GET", "/k8s/clusters/c" + path)
        #expect(!i.isResourceRequest)
        #expect(i.verb == "get")
        let a = i.access
        #expect(a.nonResourcePath == path)
        #expect(a.cluster == "c")
    }

    @Test func accessCarriesSubresourceAsRBACWritesIt() throws {
        let a = try info("POST", "/k8s/clusters/c/api/v1/namespaces/n/pods/p/exec").access
        #expect(a.resource == "pods/exec")
        #expect(a.verb == "create")
        #expect(a.namespace == "n")
        #expect(a.name == "p")
        #expect(a.cluster == "c")
        #expect(try info("GET", "/k8s/clusters/c/api/v1/namespaces/n").access.namespace == "n")
    }

    @Test func flagsAreReadAsKubeApiserverReadsThem() throws {
        for yes in ["1", "t", "T", "true", "TRUE", "True"] { #expect(KubernetesRequestInfo.isTrue(yes), "\(yes)") }
        for no in [nil, "", "0", "false", "yes", "on"] { #expect(!KubernetesRequestInfo.isTrue(no), "\(String(describing: no))") }
        #expect(try info("GET", "/k8s/clusters/c/api/v1/pods?watch=True").verb == "watch")
    }

    @Test func sessionsAreRecognised() throws {
        #expect(try info("GET", "/k8s/clusters/c/api/v1/namespaces/n/pods/p/exec").session == .exec)
        #expect(try info("POST", "/k8s/clusters/c/api/v1/namespaces/n/pods/p/attach").session == .attach)
        #expect(try info("GET", "/k8s/clusters/c/api/v1/namespaces/n/pods/p/portforward").session == .portforward)
        #expect(try info("GET", "/k8s/clusters/c/api/v1/namespaces/n/pods/p/log").session == nil)
        #expect(KubernetesRequestInfo.queryValues("command=sh&command=-c&command=echo%20hi&stdin=true", name: "command")
                == ["sh", "-c", "echo hi"])
    }
}

@Suite struct UpstreamRequestHeadTests {
    let alice = Principal(kind: .user, name: "u-alice1", username: "alice", groups: ["devs", "system:authenticated"],
                          tokenName: "token-abcde")

    @Test func credentialsAndForgedImpersonationNeverReachTheCluster() {
        let head = HTTPRequestHead(method: "GET", target: "/k8s/clusters/c/api/v1/pods", headers: HTTPHeaders([
            ("Host", "hub:8443"), ("Authorization", "Bearer token-abcde:secret"), ("Impersonate-User", "admin"),
            ("impersonate-group", "system:masters"), ("Impersonate-Extra-Scopes", "x"), ("Proxy-Authorization", "Basic x"),
            ("Accept", "application/json"), ("Connection", "keep-alive, X-Secret"), ("X-Secret", "drop me"),
            ("X-Forwarded-For", "6.6.6.6"),
        ]))
        let out = UpstreamRequestHead.make(from: head, target: "/api/v1/pods", principal: alice, clientAddress: "10.0.0.9", bodyLength: 0)
        #expect(out.target == "/api/v1/pods")
        #expect(out.headers["Authorization"].isEmpty)
        #expect(out.headers["Proxy-Authorization"].isEmpty)
        #expect(out.headers["Impersonate-User"] == ["u-alice1"])
        #expect(out.headers["Impersonate-Group"] == ["devs", "system:authenticated"])
        #expect(out.headers["Impersonate-Extra-Scopes"].isEmpty)
        #expect(out.headers["Impersonate-Extra-Username"] == ["alice"])
        #expect(out.headers["Impersonate-Extra-Principalid"] == ["local://u-alice1"])
        #expect(out.headers["Impersonate-Extra-Requesttokenid"] == ["token-abcde"])
        #expect(out.headers["X-Secret"].isEmpty)
        #expect(out.headers["Connection"].isEmpty)
        #expect(out.headers["X-Forwarded-For"] == ["10.0.0.9"])
        #expect(out.headers["Accept"] == ["application/json"])
        let text = String(decoding: out.serialized, as: UTF8.self)
        #expect(!text.contains("secret"))
        #expect(!text.contains("admin"))
    }

    @Test func bodiesAreFramedByTheProxyAndUpgradesStayUpgrades() {
        let post = HTTPRequestHead(method: "POST", target: "/k8s/clusters/c/api/v1/namespaces", headers: HTTPHeaders([
            ("Transfer-Encoding", "chunked"), ("Content-Type", "application/vnd.kubernetes.protobuf")]))
        let p = UpstreamRequestHead.make(from: post, target: "/api/v1/namespaces", principal: alice, clientAddress: "a", bodyLength: 42)
        #expect(p.headers["Transfer-Encoding"].isEmpty)
        #expect(p.headers["Content-Length"] == ["42"])
        #expect(p.headers["Content-Type"] == ["application/vnd.kubernetes.protobuf"])
        let ws = HTTPRequestHead(method: "GET", target: "/k8s/clusters/c/api/v1/namespaces/n/pods/p/exec", headers: HTTPHeaders([
            ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Protocol", "v5.channel.k8s.io"),
            ("Sec-WebSocket-Key", "k"), ("Sec-WebSocket-Version", "13")]))
        let u = UpstreamRequestHead.make(from: ws, target: "/api/v1/namespaces/n/pods/p/exec", principal: alice, clientAddress: "a", bodyLength: 0)
        #expect(u.isUpgradeRequest)
        #expect(u.headers["Upgrade"] == ["websocket"])
        #expect(u.headers["Sec-WebSocket-Protocol"] == ["v5.channel.k8s.io"])
        #expect(u.headers["Content-Length"].isEmpty)
    }
}

@Suite struct ExecStatusWatcherTests {
    func webSocketMessage(channel: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let n = payload.count + 1
        var frame: [UInt8] = [0x82]
        if n < 126 { frame.append(UInt8(n)) } else { frame += [126, UInt8(n >> 8), UInt8(n & 0xFF)] }
        return frame + [channel] + payload
    }

    @Test func theExitCodeIsReadFromChannelThreeAtAnySplit() {
        let failure = Array(#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#.utf8)
        let stream = webSocketMessage(channel: 1, Array(repeating: 65, count: 300)) + webSocketMessage(channel: 3, failure) + [0x88, 2, 3, 232]
        for split in [1, 2, 3, 7, 150, 305, stream.count - 1] {
            var w = ExecStatusWatcher(framing: .webSocket)
            stream.withUnsafeBytes { all in
                w.scan(UnsafeRawBufferPointer(rebasing: all[..<split]))
                w.scan(UnsafeRawBufferPointer(rebasing: all[split...]))
            }
            #expect(w.exitCode == 3, "split at \(split)")
        }
        var ok = ExecStatusWatcher(framing: .webSocket)
        webSocketMessage(channel: 3, Array(#"{"metadata":{},"status":"Success"}"#.utf8)).withUnsafeBytes { ok.scan($0) }
        #expect(ok.exitCode == 0)
        var none = ExecStatusWatcher(framing: .webSocket)
        webSocketMessage(channel: 1, Array("Success".utf8)).withUnsafeBytes { none.scan($0) }
        #expect(none.exitCode == nil)
        #expect(!none.sawStatus)
    }

    @Test func spdyStatusComesFromStreamOne() {
        func data(_ stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
            [UInt8(stream >> 24), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF), 0,
             0, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)] + payload
        }
        let control: [UInt8] = [0x80, 3, 0, 2, 0, 0, 0, 4, 0, 0, 0, 1]  // SYN_REPLY-like, 4 bytes
        let stream = control + data(3, Array("output".utf8))
            + data(1, Array(#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#.utf8))
        var w = ExecStatusWatcher(framing: .spdy)
        stream.withUnsafeBytes { w.scan($0) }
        #expect(w.exitCode == 7)
    }
}
