import Foundation
import LariatControl
import LariatStore
import Logging
import Synchronization

/// A control plane over a real SQLite store in a temporary folder, called through its router
/// the way the hub's HTTPS front end calls it (requests in, responses out; no sockets).
final class APIHarness: @unchecked Sendable {
    // Invariant: used by one test at a time; the control plane inside is thread-safe.
    let directory: String
    let backend: SQLiteBackend
    let services: ControlPlaneServices
    let audit = MemoryAuditSink()
    static let adminPassword = "bootstrap-password-for-tests"

    init(historyLength: Int64 = 10_000) throws {
        directory = NSTemporaryDirectory() + "lariat-api-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var settings = SQLiteStoreSettings()
        settings.historyLength = historyLength
        backend = try SQLiteBackend(folder: directory, settings: settings)
        var hasher = PasswordHasher.Settings()
        hasher.logN = 10  // fast for tests; the cost parameter is the hasher's own test's business
        services = try ControlPlaneServices.open(
            backend: backend, settings: ControlPlane.Settings(serverURL: "https://127.0.0.1:8443", caPEM: "pem", caChecksum: "sum"),
            audit: audit, logger: Logger(label: "test"), passwordHasher: PasswordHasher(settings: hasher),
            environment: [ControlPlaneServices.bootstrapPasswordVariable: Self.adminPassword])
    }

    deinit {
        services.stop()
        backend.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    var control: ControlPlane { services.control }

    struct Answer {
        var status: Int
        var json: [String: Any]
        var text: String
        var response: APIResponse
    }

    @discardableResult
    func call(_ method: String, _ target: String, _ body: String? = nil, bearer: String? = nil) -> Answer {
        var headers: [(name: String, value: String)] = []
        if let bearer { headers.append(("Authorization", "Bearer \(bearer)")) }
        let r = control.router.handle(APIRequest(method: method, target: target, headers: headers,
                                                 body: Data((body ?? "").utf8), remote: "127.0.0.1:1", source: "127.0.0.1"))
        let data = r.bodyData
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return Answer(status: r.status, json: json, text: String(decoding: data, as: UTF8.self), response: r)
    }

    /// Logs in and returns the bearer.
    func login(_ username: String, _ password: String) throws -> String {
        let a = call("POST", "/v3-public/localProviders/local?action=login",
                     #"{"username":"\#(username)","password":"\#(password)"}"#)
        guard a.status == 201, let token = a.json["token"] as? String else { throw HarnessError("login of \(username): \(a.status) \(a.text)") }
        return token
    }

    /// The admin, logged in with the bootstrap password changed.
    func adminToken() throws -> String {
        let first = try login("admin", Self.adminPassword)
        let changed = call("POST", "/v3/users?action=changepassword",
                           #"{"currentPassword":"\#(Self.adminPassword)","newPassword":"admin-password-changed"}"#, bearer: first)
        guard changed.status == 200 else { throw HarnessError("change password: \(changed.status) \(changed.text)") }
        return try login("admin", "admin-password-changed")
    }

    /// A new user with the default global role, logged in.
    func user(_ name: String, by admin: String) throws -> (id: String, token: String) {
        let created = call("POST", "/v3/users", #"{"username":"\#(name)","password":"password-of-\#(name)"}"#, bearer: admin)
        guard created.status == 201, let id = created.json["id"] as? String else { throw HarnessError("user \(name): \(created.text)") }
        // The informers follow the store by a watch delivery.
        try waitUntil { self.services.users.get(id) != nil && self.services.rbac.globalRoleBindings.items.contains { $0.spec.userName == id } }
        return (id, try login(name, "password-of-\(name)"))
    }

    func waitUntil(timeout: TimeInterval = 5, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            guard Date() < deadline else { throw HarnessError("condition not met within \(timeout) s") }
            usleep(2_000)
        }
    }

    /// Reads a streamed answer (a watch) until `count` lines arrived or `timeout` passed.
    func lines(of response: APIResponse, count: Int, timeout: TimeInterval = 5) -> [[String: Any]] {
        guard case .stream(let stream) = response.body else { return [] }
        let collected = Mutex<[Data]>([])
        stream.start(APIStream.Sink(write: { d in collected.withLock { $0.append(d) }; return true }, finish: {}))
        let deadline = Date().addingTimeInterval(timeout)
        while collected.withLock({ $0.count }) < count && Date() < deadline { usleep(2_000) }
        stream.cancel()
        return collected.withLock { $0 }.compactMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
