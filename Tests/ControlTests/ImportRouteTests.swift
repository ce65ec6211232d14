import Foundation
import LariatControl
import LariatStore
import Testing

/// `GET /v3/import/{token}.yaml` through the router: public, the token authenticates it, an
/// unusable token is a plain 404, and the token never reaches the audit records.
@Suite struct ImportRouteTests {
    /// A cluster and its import instructions.
    func importedCluster(_ h: APIHarness, _ name: String) throws -> (token: String, url: String) {
        let admin = try h.adminToken()
        let created = h.call("POST", "/v3/clusters", #"{"metadata":{"name":"\#(name)"},"spec":{}}"#, bearer: admin)
        guard created.status == 201 else { throw HarnessError("create: \(created.text)") }
        let imported = h.call("POST", "/v3/clusters/\(name)/import", bearer: admin)
        guard imported.status == 201, let token = imported.json["registrationToken"] as? String,
              let url = imported.json["manifestURL"] as? String else { throw HarnessError("import: \(imported.text)") }
        let tokenName = String(token.prefix { $0 != "." })
        try h.waitUntil { h.control.registrationTokenInformer.get(tokenName) != nil }
        return (token, url)
    }

    @Test func theManifestURLOfAnImportServesTheClustersManifest() throws {
        let h = try APIHarness()
        let (token, url) = try importedCluster(h, "edge-1")
        #expect(url == "https://127.0.0.1:8443/v3/import/\(token).yaml")
        let a = h.call("GET", "/v3/import/\(token).yaml")
        #expect(a.status == 200, "\(a.text)")
        #expect(a.response.headers.contains { $0.name == "Content-Type" && $0.value.hasPrefix("application/yaml") })
        #expect(a.response.headers.contains { $0.name == "Cache-Control" && $0.value == "no-store" })
        #expect(a.text.contains("  LARIAT_TOKEN: \"\(token)\""))
        #expect(a.text.contains("  LARIAT_CLUSTER: \"edge-1\""))
        #expect(a.text.contains("  LARIAT_SERVER: \"https://127.0.0.1:8443\""))
        #expect(a.text.contains("  LARIAT_CA_CHECKSUM: \"sum\""))
        #expect(a.text.contains("image: \"\(h.control.settings.agentImage)\""))
    }

    @Test func proxySettingsComeFromTheQuery() throws {
        let h = try APIHarness()
        let (token, _) = try importedCluster(h, "edge-2")
        let a = h.call("GET", "/v3/import/\(token).yaml?httpsProxy=http%3A%2F%2Fproxy.corp%3A3128&noProxy=.corp%2C10.0.0.0%2F8")
        #expect(a.status == 200)
        #expect(a.text.contains("  HTTPS_PROXY: \"http://proxy.corp:3128\""))
        #expect(a.text.contains("  NO_PROXY: \".corp,10.0.0.0/8\""))
        let newline = h.call("GET", "/v3/import/\(token).yaml?httpsProxy=x%0Ay")
        #expect(newline.status == 422 || newline.status == 400, "\(newline.text)")
        #expect(newline.text.contains("httpsProxy"))
        let long = h.call("GET", "/v3/import/\(token).yaml?noProxy=" + String(repeating: "a", count: 5000))
        #expect(long.status == 422 || long.status == 400)
        #expect(long.text.contains("noProxy"))
    }

    @Test func anUnusableTokenIsTheSame404WhateverTheReason() throws {
        let h = try APIHarness()
        let (token, _) = try importedCluster(h, "edge-3")
        let name = String(token.prefix { $0 != "." })
        let wrongSecret = name + ".not-the-secret"
        let answers = [
            h.call("GET", "/v3/import/crt-zzzzz.whatever.yaml"),   // no such token
            h.call("GET", "/v3/import/\(wrongSecret).yaml"),       // right name, wrong secret
            h.call("GET", "/v3/import/\(token)"),                  // no .yaml
            h.call("GET", "/v3/import/nonsense.yaml"),
        ]
        for a in answers {
            #expect(a.status == 404)
            #expect(a.text == answers[0].text.replacingOccurrences(of: "\n", with: "\n"))
        }
        // Expired, then deleted: 404 as well.
        _ = try h.control.registrationTokens.modify(name) { $0.spec.expiresAt = Date().addingTimeInterval(-1) }
        try h.waitUntil { h.control.registrationTokenInformer.get(name)?.spec.expiresAt != nil }
        #expect(h.call("GET", "/v3/import/\(token).yaml").status == 404)
        _ = try h.control.registrationTokens.modify(name) { $0.spec.expiresAt = nil }
        try h.waitUntil { h.control.registrationTokenInformer.get(name)?.spec.expiresAt == nil }
        #expect(h.call("GET", "/v3/import/\(token).yaml").status == 200)
        _ = try h.control.registrationTokens.delete(name)
        try h.waitUntil { h.control.registrationTokenInformer.get(name) == nil }
        #expect(h.call("GET", "/v3/import/\(token).yaml").status == 404)
    }

    @Test func theTokenNeverReachesTheAuditRecords() throws {
        let h = try APIHarness()
        let (token, _) = try importedCluster(h, "edge-4")
        let secret = String(token.drop { $0 != "." }.dropFirst())
        _ = h.call("GET", "/v3/import/\(token).yaml")
        _ = h.call("GET", "/v3/import/\(token)x.yaml")
        let records = h.audit.all.filter { $0.path.hasPrefix("/v3/import") }
        #expect(records.count == 2)
        #expect(records.allSatisfy { $0.path == "/v3/import/[redacted].yaml" })
        let encoded = String(decoding: try JSONEncoder().encode(h.audit.all), as: UTF8.self)
        #expect(!encoded.contains(secret))
        #expect(records.first?.status == 200 && records.first?.cluster == "edge-4")
    }
}
