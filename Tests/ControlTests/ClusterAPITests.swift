import Foundation
import LariatControl
import LariatStore
import Testing

/// The /v3 API's handling of objects: validation naming the field, strict bodies, optimistic
/// concurrency, finalizers, watches from a resourceVersion — against a real SQLite store.
@Suite struct ClusterAPITests {
    @Test(arguments: [
        // (body, status, field named in the answer)
        (#"{"metadata":{"name":"Bad_Name"},"spec":{}}"#, 422, "metadata.name"),
        (#"{"metadata":{"name":""},"spec":{}}"#, 422, "metadata.name"),
        (#"{"metadata":{"name":"ok"},"spec":{"dispayName":"typo"}}"#, 422, "spec.dispayName"),
        (#"{"metadata":{"name":"ok"},"spec":{"displayName":7}}"#, 422, "spec.displayName"),
        (#"{"metadata":{"name":"ok"}}"#, 422, "spec"),
        (#"{"metadata":{"name":"ok"},"spec":{},"extra":true}"#, 422, "extra"),
        (#"{"metadata":{"name":"ok"},"spec":{"#, 400, ""),
        ("", 400, ""),
    ] as [(String, Int, String)])
    func badClusterBodiesAreRefusedNamingTheField(_ body: String, _ status: Int, _ field: String) throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        let a = h.call("POST", "/v3/clusters", body, bearer: admin)
        #expect(a.status == status, "\(a.text)")
        #expect(a.json["type"] as? String == "error")
        if !field.isEmpty { #expect(a.json["fieldName"] as? String == field, "\(a.text)") }
        #expect(!(a.json["message"] as? String ?? "").isEmpty)
    }

    @Test func staleUpdatesGet409AndGenerationMovesOnlyWithTheSpec() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        let created = h.call("POST", "/v3/clusters", #"{"metadata":{"name":"c1"},"spec":{"displayName":"one"}}"#, bearer: admin)
        #expect(created.status == 201, "\(created.text)")
        let meta = try #require(created.json["metadata"] as? [String: Any])
        let rv = try #require(meta["resourceVersion"] as? String)
        #expect(meta["generation"] as? Int == 1)
        let update = #"{"metadata":{"name":"c1","resourceVersion":"\#(rv)","labels":{"env":"prod"}},"spec":{"displayName":"uno"}}"#
        let first = h.call("PUT", "/v3/clusters/c1", update, bearer: admin)
        #expect(first.status == 200, "\(first.text)")
        #expect((first.json["metadata"] as? [String: Any])?["generation"] as? Int == 2)
        let stale = h.call("PUT", "/v3/clusters/c1", update, bearer: admin)
        #expect(stale.status == 409, "\(stale.text)")
        #expect(stale.json["code"] as? String == "Conflict")
        // A label-only change keeps the generation.
        let rv2 = try #require((first.json["metadata"] as? [String: Any])?["resourceVersion"] as? String)
        let labels = h.call("PUT", "/v3/clusters/c1",
                            #"{"metadata":{"name":"c1","resourceVersion":"\#(rv2)","labels":{"env":"dev"}},"spec":{"displayName":"uno"}}"#,
                            bearer: admin)
        #expect((labels.json["metadata"] as? [String: Any])?["generation"] as? Int == 2)
        // Without a resourceVersion an update is refused, naming the field.
        let blind = h.call("PUT", "/v3/clusters/c1", #"{"metadata":{"name":"c1"},"spec":{}}"#, bearer: admin)
        #expect(blind.status == 422 && blind.json["fieldName"] as? String == "metadata.resourceVersion")
        #expect(h.call("GET", "/v3/clusters?labelSelector=env%3Ddev", bearer: admin).json["data"].map { ($0 as? [Any])?.count } == 1)
        #expect(h.call("GET", "/v3/clusters?labelSelector=env%3Dprod", bearer: admin).json["data"].map { ($0 as? [Any])?.count } == 0)
    }

    @Test func finalizersHoldADeletionUntilTheyAreRemoved() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        _ = h.call("POST", "/v3/clusters", #"{"metadata":{"name":"held","finalizers":["example.com/cleanup"]},"spec":{}}"#, bearer: admin)
        let deleting = h.call("DELETE", "/v3/clusters/held", bearer: admin)
        #expect(deleting.status == 202, "\(deleting.text)")
        let meta = try #require(deleting.json["metadata"] as? [String: Any])
        #expect(meta["deletionTimestamp"] != nil)
        #expect(h.call("GET", "/v3/clusters/held", bearer: admin).status == 200)
        let rv = try #require(meta["resourceVersion"] as? String)
        let released = h.call("PUT", "/v3/clusters/held",
                              #"{"metadata":{"name":"held","resourceVersion":"\#(rv)","finalizers":[]},"spec":{}}"#, bearer: admin)
        #expect(released.status == 200, "\(released.text)")
        #expect(h.call("GET", "/v3/clusters/held", bearer: admin).status == 404)
    }

    @Test func pagesCarryContinueTokens() throws {
        let h = try APIHarness()
        let admin = try h.adminToken()
        for i in 0..<25 { _ = h.call("POST", "/v3/clusters", #"{"metadata":{"name":"p\#(100 + i)"},"spec":{}}"#, bearer: admin) }
        var names: [String] = []
        var next: String? = "/v3/clusters?limit=10"
        var pages = 0
        while let target = next {
            let page = h.call("GET", target, bearer: admin)
            #expect(page.status == 200)
            names += (page.json["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            next = (page.json["pagination"] as? [String: Any])?["next"] as? String
            pages += 1
        }
        #expect(pages == 3)
        #expect(names.filter { $0.hasPrefix("p") } == (0..<25).map { "p\(100 + $0)" })
        #expect(h.call("GET", "/v3/clusters?continue=garbage", bearer: admin).status == 400)
    }

    @Test func watchesResumeFromAResourceVersionAndTooOldIsGone() throws {
        let h = try APIHarness(historyLength: 20)
        let admin = try h.adminToken()
        let a = h.call("POST", "/v3/clusters", #"{"metadata":{"name":"w1"},"spec":{}}"#, bearer: admin)
        let rv = try #require((a.json["metadata"] as? [String: Any])?["resourceVersion"] as? String)
        _ = h.call("POST", "/v3/clusters", #"{"metadata":{"name":"w2"},"spec":{}}"#, bearer: admin)
        _ = h.call("DELETE", "/v3/clusters/w1", bearer: admin)
        let watch = h.call("GET", "/v3/clusters?watch=true&resourceVersion=\(rv)", bearer: admin)
        #expect(watch.status == 200)
        let lines = h.lines(of: watch.response, count: 2)
        let events = lines.map { "\($0["type"] ?? "")/\((($0["object"] as? [String: Any])?["id"]) ?? "")" }
        // After w1's creation: w2 added, then w1 deleted (status writes may interleave as MODIFIED).
        #expect(events.filter { !$0.hasPrefix("MODIFIED") }.prefix(2) == ["ADDED/w2", "DELETED/w1"], "\(events)")
        // Fill the history past what it keeps, then ask for the start: 410.
        for i in 0..<40 { _ = h.call("POST", "/v3/projects", #"{"metadata":{"name":"x\#(i)"},"spec":{"clusterName":"w2"}}"#, bearer: admin) }
        let gone = h.call("GET", "/v3/clusters?watch=true&resourceVersion=1", bearer: admin)
        #expect(gone.status == 410, "\(gone.text)")
        #expect(gone.json["code"] as? String == "Gone")
    }
}
