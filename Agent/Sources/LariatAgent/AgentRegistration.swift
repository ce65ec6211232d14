#if canImport(FoundationEssentials)
import FoundationEssentials  // JSON only; the agent does not load full Foundation (ICU)
#else
import Foundation
#endif
import LariatProtocol
import LariatRuntime

/// Registration: the agent trades its cluster's registration token (`crt-xxxxx.<secret>`, what
/// the import manifest carries, shared by every agent of the cluster) for a credential of its
/// own (`ac-xxxxxxxx:<secret>`), which the hub lists and can revoke alone. The exchange is one
/// `POST /v3-public/agentregistrations` over the pinned CA; the credential is then what HELLO
/// carries.
///
/// Kept or not: in Kubernetes the agent registers again at every start (pods are replaced,
/// and an `emptyDir` would not survive a restart anyway): the hub replaces an agent id's
/// credential that is not revoked, and refuses an id whose credential is. `--credential-file`
/// keeps it across restarts instead (outside Kubernetes).
///
/// Once the agent holds a credential it never falls back to the registration token: a
/// revoked agent stays out until an administrator deletes its credential.
enum AgentRegistration {
    static let path = "/v3-public/agentregistrations"

    struct Request: Encodable {
        var cluster: String
        var agentID: String
        var role: String
        var token: String
    }

    struct Issued: Decodable {
        var name: String
        var credential: String
    }

    /// The hub's error shape (`{"status":…,"code":…,"message":…}`); only the message is shown.
    struct Failure: Decodable {
        var message: String?
    }

    /// Whether `token` is a cluster registration token (and not an agent credential or a
    /// token from before registration existed).
    static func isRegistrationToken(_ token: String) -> Bool {
        token.hasPrefix("crt-") && token.contains(".")
    }

    /// Whether `token` is an agent credential issued by registration.
    static func isAgentCredential(_ token: String) -> Bool {
        token.hasPrefix("ac-") && token.contains(":")
    }

    static func body(cluster: String, agentID: String, role: AgentRole, token: String) -> [UInt8] {
        let request = Request(cluster: cluster, agentID: agentID, role: role == .nodeAgent ? "node" : "cluster", token: token)
        // Strings and a flat struct: encoding cannot fail.
        return Array((try? JSONEncoder().encode(request)) ?? Data())
    }

    enum Outcome: Equatable {
        case issued(name: String, credential: String)
        /// The hub will not register this agent (bad token, revoked id): retrying soon cannot help.
        case refused(String)
        /// Anything else (server error, unreadable answer): retry with the usual back-off.
        case failed(String)
    }

    static func outcome(status: Int, body: [UInt8]) -> Outcome {
        let message = (try? JSONDecoder().decode(Failure.self, from: Data(body)))?.message.map { ": " + escapedForLog($0) } ?? ""
        switch status {
        case 200, 201:
            guard let issued = try? JSONDecoder().decode(Issued.self, from: Data(body)),
                  isAgentCredential(issued.credential) else {
                return .failed("the hub's answer to the registration holds no credential")
            }
            return .issued(name: issued.name, credential: issued.credential)
        case 401:
            return .refused("the registration token is unknown, expired or was rotated (401)")
        case 403:
            return .refused("registration refused (403)\(message)")
        case 400, 404, 422:
            return .refused("registration refused (\(status))\(message)")
        default:
            return .failed("registration failed (\(status))\(message)")
        }
    }

    /// A hub message in a log line: controls escaped so it cannot forge lines.
    static func escapedForLog(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(512) {
            if scalar.value < 0x20 || scalar.value == 0x7F { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }

    // MARK: --credential-file

    /// The credential kept in `path`, if the file exists and holds one.
    static func loadCredential(_ path: String) throws(ConfigurationError) -> String? {
        let text: String?
        do { text = try FileIO.readIfExists(path) } catch { throw ConfigurationError("--credential-file: \(error)") }
        guard let line = text?.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).first.map(String.init),
              !line.isEmpty else { return nil }
        guard isAgentCredential(line) else {
            throw ConfigurationError("--credential-file \(path) does not hold an agent credential (ac-…:…); delete it to register again")
        }
        return line
    }

    /// Keeps `credential` in `path`, readable by this user only (0600), written whole.
    static func saveCredential(_ credential: String, to path: String) throws(FileError) {
        try FileIO.writeAtomically(path, credential + "\n", mode: 0o600)
    }
}
