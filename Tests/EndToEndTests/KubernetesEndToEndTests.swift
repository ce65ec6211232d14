import Foundation
import LariatHub
import LariatRuntime
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The hub as a Kubernetes authentication proxy (issue #9, "Must show"), with real processes and
/// real clients: `kubectl` (the google-cloud-sdk dispatcher, which picks kubectl.1.NN from the
/// server's `/version`) and the `kubernetes` Python client, with kubeconfigs the hub generated,
/// through `lariat-hub` and `lariat-agent` to the stand-in API server. What reached the cluster
/// is read from the stand-in's request log, never inferred from the client's success.
@Suite(.serialized, .kubernetesRig) struct KubernetesEndToEndTests {
    var rig: KubernetesRig {
        get throws {
            let rig = try #require(KubernetesRig.current, "the suite's rig did not start")
            try rig.ensureAgent()
            return rig
        }
    }

    static let podPath = "/api/v1/namespaces/default/pods"

    // MARK: - Ordinary requests

    @Test func getCreateApplyAndDeleteThroughTheHub() throws {
        let rig = try rig
        let alice = rig.alice!
        func run(_ args: [String]) throws -> Spawned.Result { try rig.kubectl(args, as: alice) }

        var r = try run(["get", "ns"])
        #expect(r.status == 0 && r.out.contains("default"), "\(r)\n\(rig.logs)")
        r = try run(["get", "pods", "-A"])
        #expect(r.status == 0 && r.out.contains("NAMESPACE") && r.out.contains("p1") && r.out.contains("web"), "\(r)")
        r = try run(["get", "pod", "p1", "-o", "yaml"])
        #expect(r.status == 0 && r.out.contains("name: p1") && r.out.contains("phase: Running"), "\(r)")

        // Typed-client creates send protobuf bodies: they reach the cluster untouched.
        let ns = "e2e-" + KubernetesRig.randomLetters(8)
        let since = try rig.standin.lastRequestID()
        r = try run(["create", "namespace", ns])
        #expect(r.status == 0 && r.out.contains("namespace/\(ns) created"), "\(r)")
        r = try run(["create", "configmap", "cm1", "-n", ns, "--from-literal=k=v1"])
        #expect(r.status == 0 && r.out.contains("configmap/cm1 created"), "\(r)")
        let posts = try rig.userRequests(pathPrefix: "/api/v1/namespaces", since: since).filter { $0.method == "POST" }
        #expect(posts.count == 2 && posts.allSatisfy { $0.contentType == "application/vnd.kubernetes.protobuf" }, "\(posts)")
        r = try run(["get", "configmap", "cm1", "-n", ns, "-o", "jsonpath={.data.k}"])
        #expect(r.status == 0 && r.out == "v1", "\(r)")

        // apply -f: created, then changed.
        let manifest = rig.directory + "/cm2.yaml"
        func apply(_ value: String) throws -> Spawned.Result {
            try "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm2\n  namespace: \(ns)\ndata:\n  a: \"\(value)\"\n"
                .write(toFile: manifest, atomically: true, encoding: .utf8)
            return try run(["apply", "-f", manifest])
        }
        r = try apply("1")
        #expect(r.status == 0 && r.out.contains("configmap/cm2 created"), "\(r)")
        r = try apply("2")
        #expect(r.status == 0 && r.out.contains("configmap/cm2 configured"), "\(r)")
        r = try run(["get", "configmap", "cm2", "-n", ns, "-o", "jsonpath={.data.a}"])
        #expect(r.status == 0 && r.out == "2", "\(r)")

        r = try run(["delete", "configmap", "cm1", "-n", ns])
        #expect(r.status == 0 && r.out.contains("deleted"), "\(r)")
        r = try run(["delete", "namespace", ns])
        #expect(r.status == 0 && r.out.contains("namespace \"\(ns)\" deleted"), "\(r)")
        r = try run(["get", "namespace", ns])
        #expect(r.status != 0 && r.stderr.contains("NotFound"), "\(r)")
    }

    @Test func authWhoamiShowsTheUserTheHubImpersonates() throws {
        let rig = try rig
        let alice = rig.alice!
        let since = try rig.standin.lastRequestID()
        let r = try rig.kubectl(["auth", "whoami", "-o", "json"], as: alice)
        try #require(r.status == 0, "\(r)\n\(rig.logs)")
        let review = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
        let info = (review?["status"] as? [String: Any])?["userInfo"] as? [String: Any]
        #expect(info?["username"] as? String == alice.id, "\(r.out)")
        #expect((info?["groups"] as? [String] ?? []).contains("system:authenticated"), "\(r.out)")
        let posted = try rig.standin.requests(pathPrefix: "/apis/authentication.k8s.io/v1/selfsubjectreviews", since: since)
        #expect(posted.count == 1 && posted.first?.contentType == "application/vnd.kubernetes.protobuf", "\(posted)")
    }

    @Test func aWatchReceivesAPodCreatedWhileItRuns() throws {
        let rig = try rig
        let alice = rig.alice!
        let since = try rig.standin.lastRequestID()
        let watch = try rig.startKubectl(["get", "pods", "-w", "-n", "default"], as: alice)
        defer { watch.kill() }
        #expect(watch.waitForOutput("p1"), "\(watch.output)")
        // The watch request itself is open at the cluster before the pod is made.
        let open = KubernetesRig.poll(timeout: 10) {
            (try? rig.standin.requests(pathPrefix: Self.podPath, since: since))?.contains { $0.query.contains("watch=true") } == true
        }
        try #require(open != nil, "no watch reached the stand-in\n\(watch.output)\n\(rig.logs)")
        let name = "w-" + KubernetesRig.randomLetters(8)
        let created = try rig.kubectl(["run", name, "--image=busybox", "--restart=Never"], as: alice)
        #expect(created.status == 0, "\(created)")
        #expect(watch.waitForOutput(name, timeout: 10), "the watch did not show \(name):\n\(watch.output)\n\(rig.logs)")
        #expect(watch.isRunning, "the watch ended: \(watch.output)")
        _ = try rig.kubectl(["delete", "pod", name, "--wait=false"], as: alice)
    }

    @Test func logsFollowReceivesALineAppendedWhileItRuns() throws {
        let rig = try rig
        let follow = try rig.startKubectl(["logs", "-f", "p1"], as: rig.alice)
        defer { follow.kill() }
        #expect(follow.waitForOutput("standin: container main of pod default/p1 started"), "\(follow.output)\n\(rig.logs)")
        let marker = "appended-" + KubernetesRig.randomLetters(10)
        try rig.standin.appendLog(namespace: "default", pod: "p1", marker + "\n")
        #expect(follow.waitForOutput(marker, timeout: 10), "logs -f did not show the line:\n\(follow.output)\n\(rig.logs)")
        #expect(follow.isRunning)
    }

    // MARK: - Sessions: exec, terminals, port-forward, cp

    @Test func execPassesOutputAndExitCodes() throws {
        let rig = try rig
        let since = try rig.standin.lastRequestID()
        var r = try rig.kubectl(["exec", "p1", "--", "echo", "hi"], as: rig.alice)
        #expect(r.status == 0 && r.out == "hi\n", "\(r)\n\(rig.logs)")
        r = try rig.kubectl(["exec", "p1", "--", "sh", "-c", "echo to-stderr >&2; exit 3"], as: rig.alice)
        #expect(r.status == 3, "\(r)")
        #expect(r.stderr.contains("to-stderr"), "\(r)")
        let execs = try rig.standin.requests(pathPrefix: Self.podPath + "/p1/exec", since: since)
        #expect(execs.map(\.transport) == Array(repeating: "GET websocket v5.channel.k8s.io 101", count: 2), "\(execs)")
    }

    @Test func execStdinOfTenMiBComesBackByteExact() throws {
        let rig = try rig
        let file = try rig.randomFile("random-10MiB.bin", size: 10 << 20)
        let r = try rig.kubectl(["exec", "-i", "p1", "--", "cat"], as: rig.alice, input: .file(file), timeout: 120)
        let sent = try Data(contentsOf: URL(fileURLWithPath: file))
        #expect(r.status == 0, "\(r.status) \(r.stderr)\n\(rig.logs)")
        #expect(r.stdout.count == sent.count && r.stdout == sent, "\(r.stdout.count) bytes back of \(sent.count)")
        print("KubernetesEndToEnd: kubectl exec -i cat of 10 MiB through hub and agent took \(String(format: "%.2f", r.seconds)) s")
    }

    @Test func execWithATerminalIsInteractive() throws {
        let rig = try rig
        let since = try rig.standin.lastRequestID()
        let command = "kubectl exec -it p1 -- sh -c 'tty; echo ready; read x; echo got:$x; exit 4'"
        let session = try Spawned("/usr/bin/script", ["-qec", command, "/dev/null"],
                                  environment: rig.clientEnvironment(kubeconfig: rig.alice.kubeconfig),
                                  directory: rig.directory, name: "script", input: .pipe)
        defer { session.kill() }
        #expect(session.waitForOutput("ready"), "\(session.output)\n\(rig.logs)")
        #expect(session.output.contains("/dev/pts/"), "no pty: \(session.output)")
        session.write("hello\n")
        #expect(session.waitForOutput("got:hello"), "\(session.output)")
        let status = session.wait(timeout: 20)
        #expect(status == 4, "\(String(describing: status)): \(session.output)")
        let execs = try rig.standin.requests(pathPrefix: Self.podPath + "/p1/exec", since: since)
        #expect(execs.count == 1 && execs[0].query.contains("tty=true"), "\(execs)")
    }

    @Test func portForwardCarriesAnHTTPRequestToThePod() throws {
        let rig = try rig
        let since = try rig.standin.lastRequestID()
        let body = try Self.getThroughPortForward(rig, kubeconfig: rig.alice.kubeconfig)
        #expect(body == "hello-from-backend\n", "\(body)\n\(rig.logs)")
        let forwards = try rig.standin.requests(pathPrefix: Self.podPath + "/web/portforward", since: since)
        #expect(forwards.map(\.transport) == ["GET websocket SPDY/3.1+portforward.k8s.io 101"], "\(forwards)")
    }

    /// `kubectl port-forward pod/web 0:80` and one `GET /hello.txt` through it; the body.
    static func getThroughPortForward(_ rig: KubernetesRig, kubeconfig: String) throws -> String {
        let forward = try rig.startKubectl(["port-forward", "pod/web", "0:80"], kubeconfig: kubeconfig)
        defer { forward.kill() }
        guard forward.waitForOutput("Forwarding from 127.0.0.1:") else {
            throw TestFailure("port-forward did not start: \(forward.output)")
        }
        let line = forward.stdout.split(separator: "\n").first { $0.contains("Forwarding from 127.0.0.1:") } ?? ""
        let port = line.split(separator: ":").last.flatMap { Int($0.split(separator: " ").first ?? "") } ?? 0
        let get = try Spawned("/usr/bin/curl", ["-s", "-m", "10", "--noproxy", "*", "http://127.0.0.1:\(port)/hello.txt"],
                              environment: [:], directory: rig.directory, name: "curl").finish(timeout: 20)
        return get.out
    }

    @Test func cpCopiesIntoAndOutOfThePod() throws {
        let rig = try rig
        let file = try rig.randomFile("random-1MiB.bin", size: 1 << 20)
        let sent = try Data(contentsOf: URL(fileURLWithPath: file))
        let remote = "copied-\(KubernetesRig.randomLetters(6)).bin"
        var r = try rig.kubectl(["cp", file, "default/p1:\(remote)"], as: rig.alice)
        #expect(r.status == 0, "\(r)\n\(rig.logs)")
        r = try rig.kubectl(["exec", "p1", "--", "sha256sum", remote], as: rig.alice)
        #expect(r.out.hasPrefix(Digest.sha256Hex(Array(sent))), "\(r)")
        let back = rig.directory + "/back-" + remote
        r = try rig.kubectl(["cp", "default/p1:\(remote)", back], as: rig.alice)
        #expect(r.status == 0, "\(r)")
        #expect((try? Data(contentsOf: URL(fileURLWithPath: back))) == sent, "the file copied out differs")
    }

    // MARK: - Both stream protocol generations

    /// kubectl 1.32 (the stand-in says v1.32.4) uses WebSockets for exec and port-forward; 1.29
    /// uses SPDY. A WebSocket path that fails would make 1.32 fall back to SPDY and still work, so
    /// what the cluster received is asserted, not only that the commands succeeded.
    @Test func kubectl132UsesWebSocketsAndKubectl129SPDY() throws {
        let rig = try rig
        var since = try rig.standin.lastRequestID()
        var r = try rig.kubectl(["exec", "p1", "--", "echo", "new"], as: rig.alice)
        #expect(r.status == 0 && r.out == "new\n", "\(r)")
        #expect(try Self.getThroughPortForward(rig, kubeconfig: rig.alice.kubeconfig) == "hello-from-backend\n")
        var execs = try rig.standin.requests(pathPrefix: Self.podPath + "/p1/exec", since: since)
        var forwards = try rig.standin.requests(pathPrefix: Self.podPath + "/web/portforward", since: since)
        #expect(execs.map(\.transport) == ["GET websocket v5.channel.k8s.io 101"], "\(execs)")
        #expect(forwards.map(\.transport) == ["GET websocket SPDY/3.1+portforward.k8s.io 101"], "\(forwards)")

        let legacy = try rig.startSecondCluster("legacy", serverVersion: "v1.29.7")
        defer { legacy.stop() }
        let sinceOnNew = try rig.standin.lastRequestID()
        since = try legacy.standin.lastRequestID()
        r = try rig.kubectl(["exec", "p1", "--", "echo", "old"], kubeconfig: legacy.kubeconfig)
        #expect(r.status == 0 && r.out == "old\n", "\(r)\n\(rig.logs)")
        #expect(try Self.getThroughPortForward(rig, kubeconfig: legacy.kubeconfig) == "hello-from-backend\n")
        execs = try legacy.standin.requests(pathPrefix: Self.podPath + "/p1/exec", since: since)
        forwards = try legacy.standin.requests(pathPrefix: Self.podPath + "/web/portforward", since: since)
        #expect(execs.map(\.transport) == ["POST SPDY/3.1 v4.channel.k8s.io 101"], "\(execs)")
        #expect(forwards.map(\.transport) == ["POST SPDY/3.1 portforward.k8s.io 101"], "\(forwards)")
        #expect(execs.allSatisfy { $0.userAgent?.hasPrefix("kubectl/v1.29") == true }, "\(execs.map(\.userAgent))")
        // Requests for the second cluster went to its own agent only.
        #expect(try rig.userRequests(since: sinceOnNew).isEmpty, "a request for cluster legacy reached local's API server")
    }

    // MARK: - Identity: impersonation, forged headers, no binding, revocation

    @Test func theClusterSeesTheHubsImpersonationOfEachUser() throws {
        let rig = try rig
        let since = try rig.standin.lastRequestID()
        for user in [rig.alice!, rig.carol!] {
            let r = try rig.kubectl(["get", "pod", "p1", "-n", "default", "-o", "name"], as: user)
            #expect(r.status == 0 && r.out == "pod/p1\n", "\(user.username): \(r)\n\(rig.logs)")
        }
        let seen = try rig.userRequests(since: since)
        for user in [rig.alice!, rig.carol!] {
            let mine = seen.filter { $0.impersonateUser == user.id }
            #expect(mine.contains { $0.path == Self.podPath + "/p1" }, "no request of \(user.username) (\(user.id)):\n\(seen)")
            for record in mine {
                #expect(record.impersonateGroups?.contains("system:authenticated") == true, "\(record)")
                #expect(record.impersonateExtra?["username"] == [user.username], "\(String(describing: record.impersonateExtra))")
                #expect(record.impersonateExtra?["requesttokenid"] == [user.kubeTokenName], "\(String(describing: record.impersonateExtra))")
            }
        }
        for record in seen {
            #expect([rig.alice.id, rig.carol.id].contains(record.impersonateUser ?? ""), "\(record)")
            #expect(record.user == "standin-proxy", "not the agent's credential: \(record)")
            #expect(record.header("Authorization").count == 1, "\(record)")
        }
    }

    @Test func forgedImpersonationAndAuthorizationNeverReachTheCluster() throws {
        let rig = try rig
        let alice = rig.alice!
        let since = try rig.standin.lastRequestID()
        // kubectl's own impersonation flags…
        let k = try rig.kubectl(["--as", "admin", "--as-group", "system:masters", "--as-uid", "0",
                                 "get", "pod", "p1", "-n", "default", "-o", "name"], as: alice)
        // …and a hand-made request: forged Impersonate-* fields, and a second Authorization
        // holding the cluster's own admin token, which would make the request cluster-admin.
        let ca = rig.directory + "/hub-ca.pem"
        try rig.tunnel.caPEM.write(toFile: ca, atomically: true, encoding: .utf8)
        let marker = "forged-" + KubernetesRig.randomLetters(6)
        let curl = try Spawned("/usr/bin/curl", [
            "-s", "-m", "10", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}",
            "-H", "Authorization: Bearer \(alice.kubeToken)", "-H", "Authorization: Bearer \(rig.standin.token)",
            "-H", "Impersonate-User: admin", "-H", "Impersonate-Group: system:masters", "-H", "Impersonate-Uid: 0",
            "-H", "Impersonate-Extra-Scopes: \(marker)",
            "\(rig.hubURL)/k8s/clusters/local/api/v1/namespaces/default/pods/p1",
        ], environment: [:], directory: rig.directory, name: "curl").finish(timeout: 20)
        #expect(k.status == 0 && k.out == "pod/p1\n", "kubectl --as: \(k)\n\(rig.logs)")
        #expect(curl.out == "200", "curl with forged fields: \(curl)")

        let seen = try rig.userRequests(since: since)
        #expect(seen.filter { $0.path == Self.podPath + "/p1" }.count == 2, "\(seen)")
        for record in seen {
            #expect(record.user == "standin-proxy", "\(record)")
            #expect(record.impersonateUser == alice.id, "\(record)")
            #expect(!(record.impersonateGroups ?? []).contains("system:masters"), "\(record)")
            let names = (record.impersonationHeaders ?? []).compactMap(\.first).map { $0.lowercased() }
            #expect(!names.contains("impersonate-uid") && names.filter { $0 == "impersonate-user" }.count == 1, "\(record)")
            #expect(record.impersonateExtra?["scopes"] == nil, "\(record)")
            #expect(record.header("Authorization").count == 1, "\(record)")
            #expect(!(record.headers ?? []).flatMap { $0 }.contains { $0.contains(marker) }, "\(record)")
        }
    }

    @Test func aUserWithoutABindingGets403AndNothingReachesTheCluster() throws {
        let rig = try rig
        var since = try rig.standin.lastRequestID()
        var r = try rig.kubectl(["get", "pods", "-n", "default"], as: rig.bob)
        #expect(r.status != 0 && r.stderr.lowercased().contains("forbidden"), "bob: \(r)")
        let direct = try HubAPIClient.send(method: "GET", host: "127.0.0.1", port: rig.tunnel.httpsPort,
                                           path: "/k8s/clusters/local/api/v1/namespaces/default/pods", bearer: rig.bob.session,
                                           caPEM: rig.tunnel.caPEM, timeoutMilliseconds: 10_000)
        #expect(direct.status == 403 && direct.body.contains("\"kind\":\"Status\""), "\(direct.status) \(direct.body)")
        let bobs = try rig.userRequests(since: since)
        #expect(bobs.isEmpty, "bob's requests reached the cluster: \(bobs)")
        // A cluster that does not exist: 404 for whoever may read clusters, the same 403 for bob.
        for (bearer, expected) in [(rig.admin, 404), (rig.bob.session, 403)] {
            let missing = try HubAPIClient.send(method: "GET", host: "127.0.0.1", port: rig.tunnel.httpsPort,
                                                path: "/k8s/clusters/no-such-cluster/version", bearer: bearer,
                                                caPEM: rig.tunnel.caPEM, timeoutMilliseconds: 10_000)
            #expect(missing.status == expected, "\(missing.status) \(missing.body)")
        }

        // A project member whose binding is then deleted: refused at once, nothing sent on.
        var dave = try rig.createUser("dave-" + KubernetesRig.randomLetters(5))
        let binding = "dave-member-" + KubernetesRig.randomLetters(5)
        try rig.create("/v3/projectroletemplatebindings", [
            "metadata": ["name": binding],
            "spec": ["projectName": "p-default", "userName": dave.id, "roleTemplateName": "project-member"]])
        dave = try rig.withKubeconfig(dave)
        r = try rig.kubectl(["get", "pods", "-n", "default"], as: dave)
        #expect(r.status == 0 && r.out.contains("p1"), "dave while bound: \(r)\n\(rig.logs)")
        let deleted = try rig.api("DELETE", "/v3/projectroletemplatebindings/\(binding)", bearer: rig.admin)
        #expect([200, 204].contains(deleted.status), "\(deleted.status) \(deleted.text)")
        since = try rig.standin.lastRequestID()
        r = try rig.kubectl(["get", "pods", "-n", "default"], as: dave)
        #expect(r.status != 0 && r.stderr.lowercased().contains("forbidden"), "dave after unbinding: \(r)")
        let leaked = try rig.userRequests(since: since)
        #expect(leaked.isEmpty, "an unbound user's requests reached the cluster: \(leaked)")
    }

    @Test func pipelinedRequestsAreAnsweredInOrderAndOversizedBodiesRefused() throws {
        let rig = try rig
        let token = rig.alice.kubeToken
        // Three GETs in one write: three answers, in order, each naming what was asked.
        let client = try TLSTestClient(port: rig.tunnel.httpsPort)
        let paths = ["/api/v1/namespaces/default/pods/p1", "/api/v1/namespaces/kube-system", "/api/v1/namespaces/default/pods/nope"]
        var burst = ""
        for (i, path) in paths.enumerated() {
            burst += "GET /k8s/clusters/local\(path) HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer \(token)\r\n"
            burst += i == paths.count - 1 ? "Connection: close\r\n\r\n" : "\r\n"
        }
        #expect(client.write(burst))
        let answers = String(decoding: client.readToEnd(limit: 4 << 20), as: UTF8.self)
        let statuses = answers.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        #expect(statuses == ["200", "200", "404"], "\(statuses)\n\(answers.prefix(2000))")
        let p1 = answers.range(of: "\"name\":\"p1\"")?.lowerBound
        let ks = answers.range(of: "\"name\":\"kube-system\"")?.lowerBound
        #expect(p1 != nil && ks != nil && p1! < ks!, "answers out of order")

        // A body over --k8s-max-body (3 MiB): 413, and nothing reaches the cluster.
        let since = try rig.standin.lastRequestID()
        let big = try TLSTestClient(port: rig.tunnel.httpsPort)
        let length = (3 << 20) + 1
        _ = big.write("POST /k8s/clusters/local/api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: hub\r\n"
                      + "Authorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: \(length)\r\n\r\n")
        _ = big.write([UInt8](repeating: 0x20, count: length))
        let refused = String(decoding: big.readHead(), as: UTF8.self)
        #expect(refused.hasPrefix("HTTP/1.1 413"), "\(refused)")
        #expect(try rig.userRequests(since: since).isEmpty)

        // ALPN: kubectl offers h2 and http/1.1; the hub picks http/1.1.
        let alpn = try Spawned("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(rig.tunnel.httpsPort)", "-alpn", "h2,http/1.1"],
                               environment: [:], directory: rig.directory, name: "openssl").finish(timeout: 20)
        #expect(alpn.out.contains("ALPN protocol: http/1.1"), "\(alpn.out.suffix(800))")
    }

    @Test func aRevokedTokenEndsItsExecAndWatchAndIsRefused() throws {
        let rig = try rig
        let user = try rig.withKubeconfig(rig.alice, file: "alice-revoked")
        let since = try rig.standin.lastRequestID()
        let exec = try rig.startKubectl(["exec", "-i", "p1", "--", "cat"], as: user, input: .pipe)
        defer { exec.kill() }
        exec.write("ping-before\n")
        #expect(exec.waitForOutput("ping-before"), "\(exec.output)\n\(rig.logs)")
        let watch = try rig.startKubectl(["get", "pods", "-w", "-n", "default"], as: user)
        defer { watch.kill() }
        #expect(watch.waitForOutput("p1"), "\(watch.output)")
        let open = KubernetesRig.poll(timeout: 10) {
            (try? rig.standin.requests(pathPrefix: Self.podPath, since: since))?.contains { $0.query.contains("watch=true") } == true
        }
        try #require(open != nil, "the watch did not reach the cluster\n\(rig.logs)")

        let endingLine = "of \"\(user.username)\": "
        let before = rig.tunnel.hub.log.components(separatedBy: endingLine).count
        let sent = Date()
        let revoked = try rig.api("DELETE", "/v3/tokens/\(user.kubeTokenName)", bearer: rig.admin)
        let sinceRevoked = try rig.standin.lastRequestID()
        try #require([200, 204].contains(revoked.status), "\(revoked.status) \(revoked.text)")
        // The hub says so in its log as it ends each exchange.
        var endedAfter: Double?
        _ = KubernetesRig.poll(timeout: 1.0) {
            guard rig.tunnel.hub.log.components(separatedBy: endingLine).count - before >= 2 else { return false }
            endedAfter = Date().timeIntervalSince(sent)
            return true
        }
        let execStatus = exec.wait(timeout: 5)
        let execGone = Date().timeIntervalSince(sent)
        let watchStatus = watch.wait(timeout: 5)
        let watchGone = Date().timeIntervalSince(sent)
        print("KubernetesEndToEnd: after DELETE of the token: hub ended exec and watch within \(endedAfter.map { "\(Int($0 * 1000)) ms" } ?? "-"), kubectl exec exited after \(Int(execGone * 1000)) ms (\(exec.stderr.trimmingCharacters(in: .whitespacesAndNewlines).suffix(160))), the watch after \(Int(watchGone * 1000)) ms")
        #expect(endedAfter != nil && endedAfter! <= 1.0, "the hub did not end the exec and the watch within 1 s\n\(rig.tunnel.hub.log.suffix(3000))")
        #expect(execStatus != nil && execStatus != 0, "exec after revocation: \(String(describing: execStatus)) \(exec.output)")
        #expect(watchStatus != nil, "the watch kept running after revocation: \(watch.output)")
        #expect(execGone <= 2 && watchGone <= 2, "kubectl noticed late: exec \(execGone) s, watch \(watchGone) s")

        let r = try rig.kubectl(["get", "pods", "-n", "default"], as: user)
        // kubectl's words for a 401.
        #expect(r.status != 0 && r.stderr.contains("You must be logged in to the server"), "\(r)")
        let after = try rig.userRequests(since: sinceRevoked)
        #expect(after.isEmpty, "requests with the revoked token reached the cluster: \(after)")
    }

    // MARK: - Failures: a killed agent, no agent

    @Test func aTokenThatExpiresEndsItsOpenWatch() throws {
        let rig = try rig
        // A token of alice's that lives 3 s, then a watch with it.
        let made = try rig.api("POST", "/v3/tokens", ["description": "short", "ttl": 3000], bearer: rig.alice.session)
        let token = try #require(made.json["token"] as? String, "\(made.status) \(made.text)")
        let client = try TLSTestClient(port: rig.tunnel.httpsPort)
        #expect(client.write("GET /k8s/clusters/local/api/v1/namespaces/default/pods?watch=true HTTP/1.1\r\nHost: hub\r\n"
                             + "Authorization: Bearer \(token)\r\n\r\n"))
        let head = String(decoding: client.readHead(), as: UTF8.self)
        #expect(head.hasPrefix("HTTP/1.1 200"), "\(head)")
        let started = Date()
        // No object changes at expiry; the hub's once-a-second sweep must end it.
        #expect(client.waitClosed(timeout: 8), "the watch outlived its token")
        let after = Date().timeIntervalSince(started)
        #expect(after >= 1.5 && after < 6, "closed \(after) s after the watch began (the token lived 3 s)")
        print("KubernetesEndToEnd: a watch ended \(String(format: "%.2f", after)) s into a 3 s token")
    }

    @Test func aKilledAgentEndsAnOpenExecAndNoAgentIsAQuick503() throws {
        let rig = try rig
        let exec = try rig.startKubectl(["exec", "-i", "p1", "--", "cat"], as: rig.alice, input: .pipe)
        defer { exec.kill() }
        exec.write("ping\n")
        try #require(exec.waitForOutput("ping"), "\(exec.output)\n\(rig.logs)")
        rig.agent.signal(SIGKILL)
        let killed = Date()
        let status = exec.wait(timeout: 20)
        let took = Date().timeIntervalSince(killed)
        print("KubernetesEndToEnd: kubectl exec ended \(Int(took * 1000)) ms after the agent's SIGKILL, status \(String(describing: status)): \(exec.stderr.trimmingCharacters(in: .whitespacesAndNewlines).suffix(200))")
        #expect(status != nil && status != 0, "exec after the agent died: \(String(describing: status)) \(exec.output)")
        #expect(took < 10, "kubectl exec took \(took) s to notice the agent's death")

        // The hub answers at once, naming the cluster.
        let refused = KubernetesRig.poll(timeout: 10) {
            (try? rig.api("GET", "/k8s/clusters/local/api/v1/namespaces/default/pods", bearer: rig.alice.kubeToken).status) == 503
        }
        try #require(refused != nil, "no 503 after the agent died\n\(rig.logs)")
        let start = Date()
        let answer = try rig.api("GET", "/k8s/clusters/local/api/v1/namespaces/default/pods", bearer: rig.alice.kubeToken)
        let answeredIn = Date().timeIntervalSince(start)
        #expect(answer.status == 503 && answer.text.contains("cluster local is unavailable"), "\(answer.status) \(answer.text)")
        #expect(answeredIn <= 1.0, "the 503 took \(answeredIn) s")
        let r = try rig.kubectl(["get", "pods"], as: rig.alice, timeout: 30)
        print("KubernetesEndToEnd: with no agent, the API answered 503 in \(Int(answeredIn * 1000)) ms; kubectl get pods exited \(r.status) after \(Int(r.seconds * 1000)) ms")
        #expect(r.status != 0 && r.stderr.contains("cluster local is unavailable"), "\(r)")
        #expect(r.seconds < 5, "kubectl took \(r.seconds) s to fail")

        try rig.startAgent()
        let again = try rig.kubectl(["get", "pod", "p1", "-o", "name"], as: rig.alice)
        #expect(again.status == 0 && again.out == "pod/p1\n", "after the agent came back: \(again)")
    }

    // MARK: - The Python client

    @Test func thePythonClientListsExecsStreamsAndForwards() throws {
        let rig = try rig
        let probe = try Spawned("/usr/bin/env", ["python3", "-c", "import kubernetes"], environment: [:],
                                directory: rig.directory, name: "probe").finish(timeout: 30)
        try #require(probe.status == 0, "the kubernetes Python client is missing (scripts/ensure-deps.sh build installs it): \(probe.stderr)")
        let script = URL(fileURLWithPath: KubeStandin.script).deletingLastPathComponent().appendingPathComponent("test_python_client.py").path
        let big = try rig.randomFile("random-10MiB.bin", size: 10 << 20)
        let since = try rig.standin.lastRequestID()
        let r = try Spawned("/usr/bin/env", ["python3", script, "p1", "web", "80", big],
                            environment: rig.clientEnvironment(kubeconfig: rig.alice.kubeconfig),
                            directory: rig.directory, name: "python").finish(timeout: 180)
        print("KubernetesEndToEnd: Python client: \(r.out.split(separator: "\n").last ?? "")")
        #expect(r.status == 0 && r.out.contains(" 0 failed"), "\(r)\n\(rig.logs)")
        let seen = try rig.userRequests(since: since)
        #expect(!seen.isEmpty && seen.allSatisfy { $0.impersonateUser == rig.alice.id && $0.user == "standin-proxy" }, "\(seen)")
        #expect(seen.contains { $0.path.hasSuffix("/p1/exec") && $0.transport == "GET websocket v5.channel.k8s.io 101" }, "\(seen)")
        #expect(seen.contains { $0.path.hasSuffix("/web/portforward") && $0.code == 101 }, "\(seen)")
    }

    // MARK: - Audit

    @Test func theAuditLogHasEveryRequestAndTheExecSessionButNoSecret() throws {
        let rig = try rig
        let offset = rig.auditSize
        let since = try rig.standin.lastRequestID()
        let marker = "audit-" + KubernetesRig.randomLetters(8)
        var r = try rig.kubectl(["exec", "p1", "--", "sh", "-c", "echo \(marker); exit 3"], as: rig.alice)
        #expect(r.status == 3, "\(r)")
        r = try rig.kubectl(["get", "pods", "-n", "default"], as: rig.alice)
        #expect(r.status == 0, "\(r)")
        let reached = try rig.userRequests(since: since)

        func events() -> [[String: Any]] { rig.auditEvents(from: offset) }
        // The hub's controllers' requests are audited too; the test counts its own.
        func requestEvents() -> [[String: Any]] {
            events().filter { $0["kind"] as? String == "request" && $0["user"] as? String != KubernetesRig.controllerUser }
        }
        func sessionEvents(_ kind: String) -> [[String: Any]] {
            events().filter { $0["kind"] as? String == kind && ($0["command"] as? [String] ?? []).contains { $0.contains(marker) } }
        }
        let complete = KubernetesRig.poll(timeout: 5) {
            requestEvents().count >= reached.count && sessionEvents("session-end").count == 1
        }
        #expect(complete != nil, "audit lines:\n\(rig.auditText.suffix(3000))")
        let requests = requestEvents()
        #expect(requests.count == reached.count, "\(requests.count) request lines for \(reached.count) requests:\n\(reached)")
        for record in reached {
            let logged = requests.contains { ($0["uri"] as? String)?.split(separator: "?").first.map(String.init) == record.path }
            #expect(logged, "no audit line for \(record)")
        }
        #expect(requests.contains {
            $0["verb"] as? String == "list" && $0["resource"] as? String == "pods" && $0["namespace"] as? String == "default"
                && $0["status"] as? Int == 200 && $0["user"] as? String == rig.alice.id && $0["cluster"] as? String == "local"
        }, "\(requests)")

        let starts = sessionEvents("session-start")
        let ends = sessionEvents("session-end")
        #expect(starts.count == 1 && ends.count == 1, "\(events())")
        if let end = ends.first {
            #expect(end["exitCode"] as? Int == 3, "\(end)")
            #expect(end["pod"] as? String == "p1" && end["container"] as? String == "main", "\(end)")
            #expect(end["user"] as? String == rig.alice.id, "\(end)")
        }

        let text = rig.auditText
        for (what, secret) in rig.secrets {
            #expect(secret.count >= 12, "\(what) is too short to grep for")
            let leaked = text.contains(secret)
            #expect(!leaked, "the \(what) appears in the Kubernetes audit log")
            for process in [rig.tunnel.hub!] + rig.tunnel.agents {
                let logged = process.log.contains(secret)
                #expect(!logged, "the \(what) appears in the log of \(process.name)")
            }
        }
    }
}
