import Foundation
import LariatRuntime

/// The answer to `/healthz`: "ok\n" or "draining\n" for plain clients (load balancers, scripts),
/// a JSON object with the version for clients that ask for `application/json`; every answer
/// carries the version in `X-Lariat-Version`.
struct HubHealth {
    static let headers = ["X-Lariat-Version": LariatVersion.version]

    let status: Int
    let body: String
    let contentType: String

    private struct Report: Encodable {
        var status: String
        var version: String
        var software: String
    }

    init(draining: Bool, accept: String?) {
        status = draining ? 503 : 200
        let word = draining ? "draining" : "ok"
        if let accept, accept.lowercased().contains("application/json") {
            let report = Report(status: word, version: LariatVersion.version, software: LariatVersion.software("lariat-hub"))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            body = ((try? encoder.encode(report)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
            contentType = "application/json"
        } else {
            body = word + "\n"
            contentType = "text/plain; charset=utf-8"
        }
    }
}
