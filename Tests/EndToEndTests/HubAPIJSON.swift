import Foundation
import LariatHub

/// An answer of the hub's API to an end-to-end test: status, text, and the text as a JSON object.
struct HubAnswer {
    var status: Int
    var text: String
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:] }
}

/// JSON requests to a rig's hub, shared by the rigs built on `TunnelRig`.
extension TunnelRig {
    func json(_ method: String, _ path: String, _ body: [String: Any]? = nil, bearer: String?) throws -> HubAnswer {
        let bytes = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }
        let r = try HubAPIClient.send(method: method, host: listenHost, port: httpsPort, path: path, body: bytes,
                                      bearer: bearer, caPEM: caPEM, timeoutMilliseconds: 20_000)
        return HubAnswer(status: r.status, text: r.body)
    }

    /// Logs a local user in; the session token.
    func login(_ username: String, _ password: String) throws -> String {
        let r = try json("POST", "/v3-public/localProviders/local?action=login", ["username": username, "password": password],
                         bearer: nil)
        guard r.status == 201 || r.status == 200, let token = r.json["token"] as? String else {
            throw TestFailure("login of \(username): \(r.status) \(r.text)")
        }
        return token
    }
}

/// Runs a program to its end with standard input closed; its exit status and combined output.
/// `environment` is added to this process's own.
func runProcess(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
