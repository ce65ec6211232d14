import ArgumentParser
import Foundation
import LariatHub
import LariatRuntime

/// What `lariat-hub login` keeps for the other commands: the hub's URL, its CA (pinned at login
/// by checksum) and the session token. One file, 0600, in the user's config folder
/// (`$XDG_CONFIG_HOME/lariat/cli.json`, `~/.config/lariat/cli.json`, or `$LARIAT_CONFIG`).
struct CLIConfig: Codable {
    var server: String
    var caPEM: String
    var token: String

    static var path: String {
        let env = ProcessInfo.processInfo.environment
        if let p = env["LARIAT_CONFIG"], !p.isEmpty { return p }
        let base = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.config")
        return base + "/lariat/cli.json"
    }

    static func load() throws -> CLIConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("not logged in (no \(path)): run `lariat-hub login --server https://HUB:8443 --username NAME` first")
        }
        do {
            return try JSONDecoder().decode(CLIConfig.self, from: Data(text.utf8))
        } catch {
            throw ValidationError("\(path) is not a login this program wrote; log in again")
        }
    }

    func save() throws {
        let dir = (Self.path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let data = try JSONEncoder().encode(self)
        try FileIO.writeAtomically(Self.path, String(decoding: data, as: UTF8.self), mode: 0o600)
    }

    var endpoint: (host: String, port: Int) {
        get throws {
            guard let url = URL(string: server), url.scheme == "https", let host = url.host else {
                throw ValidationError("the saved server \(server) is not an https:// URL")
            }
            return (host, url.port ?? 443)
        }
    }

    /// One API call with the saved login; throws the API's message on an error status.
    @discardableResult
    func call(_ method: String, _ path: String, body: (any Encodable)? = nil) throws -> Data {
        let (host, port) = try endpoint
        let bytes = try body.map { Array(try JSONEncoder().encode($0)) }
        let r = try HubAPIClient.send(method: method, host: host, port: port, path: path, body: bytes, bearer: token,
                                      caPEM: caPEM, timeoutMilliseconds: 30_000)
        return try Self.check(r)
    }

    static func check(_ r: HubAPIClient.Response) throws -> Data {
        guard (200..<300).contains(r.status) else {
            struct Failure: Decodable { var message: String }
            let message = (try? JSONDecoder().decode(Failure.self, from: Data(r.body.utf8)))?.message ?? r.body
            if r.status == 401 { throw CLIError("the hub refused the saved token (\(message)); log in again") }
            throw CLIError("\(r.status): \(message)")
        }
        return Data(r.body.utf8)
    }
}

/// Reads a JSON answer's fields without a type per answer.
func jsonObject(_ data: Data) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
}

func items(_ data: Data) -> [[String: Any]] { jsonObject(data)["data"] as? [[String: Any]] ?? [] }

extension Dictionary where Key == String, Value == Any {
    func path(_ keys: String...) -> Any? {
        var v: Any? = self
        for k in keys { v = (v as? [String: Any])?[k] }
        return v
    }
    func string(_ keys: String...) -> String {
        var v: Any? = self
        for k in keys { v = (v as? [String: Any])?[k] }
        if let b = v as? Bool, !(v is String) { return b ? "true" : "false" }
        return v.map { "\($0)" } ?? ""
    }
}

func readSecret(prompt: String, fromStdin: Bool) -> String? {
    if fromStdin { return readLine(strippingNewline: true) }
    return String(cString: getpass(prompt))
}

/// A failure to report without the usage text (ArgumentParser shows usage for ValidationError).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
