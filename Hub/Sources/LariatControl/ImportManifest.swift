/// The agent manifest a cluster is imported with (`GET /v3/import/<token>.yaml`): the files of
/// `Agent/deploy/` (embedded as `ImportTemplates`) with the connection settings filled in.
///
/// Values are substituted by key, not by text search: a line whose key is one of `Key` gets a
/// new value, written as a YAML double-quoted scalar with everything but printable characters
/// escaped, so no value (a proxy URL from a query string, say) can end its line, open a new
/// key or close a document. The registration token goes into the Secret only.
public enum ImportManifest {
    public struct Values: Sendable, Equatable {
        public var serverURL: String
        public var caChecksum: String
        public var clusterName: String
        public var registrationToken: String
        public var agentImage: String
        /// Proxy for the agents' connection to the hub; nil keeps the template's (none).
        public var httpsProxy: String?
        /// Hosts the agents reach directly; nil keeps the template's default.
        public var noProxy: String?

        public init(serverURL: String, caChecksum: String, clusterName: String, registrationToken: String,
                    agentImage: String, httpsProxy: String? = nil, noProxy: String? = nil) {
            self.serverURL = serverURL
            self.caChecksum = caChecksum
            self.clusterName = clusterName
            self.registrationToken = registrationToken
            self.agentImage = agentImage
            self.httpsProxy = httpsProxy
            self.noProxy = noProxy
        }
    }

    /// The keys the hub fills in, and how many lines of the templates each must match (a
    /// template edit that renames one fails `ImportTemplatesTests`, not a cluster's import).
    public enum Key: String, CaseIterable, Sendable {
        case token = "LARIAT_TOKEN"
        case server = "LARIAT_SERVER"
        case caChecksum = "LARIAT_CA_CHECKSUM"
        case cluster = "LARIAT_CLUSTER"
        case httpsProxy = "HTTPS_PROXY"
        case noProxy = "NO_PROXY"
        case image = "image"

        /// Lines per manifest: one image per workload (cluster agent, node agents).
        public var expectedCount: Int { self == .image ? 2 : 1 }
    }

    /// The embedded templates (file name, text), as generated from `Agent/deploy`.
    public static var templates: [(name: String, text: String)] { ImportTemplates.files }

    /// The whole manifest: every template, one YAML document stream.
    public static func render(_ values: Values) -> String {
        var out = "# Lariat agent for this cluster, served by the hub. Apply with: kubectl apply -f -\n"
        for (index, file) in ImportTemplates.files.enumerated() {
            if index > 0 { out += "---\n" }
            out += "# \(file.name)\n"
            for line in file.text.split(separator: "\n", omittingEmptySubsequences: false) {
                out += substitute(line, values)
                out += "\n"
            }
        }
        return out
    }

    /// How many lines of the templates carry `key` (what `render` would replace).
    public static func occurrences(of key: Key) -> Int {
        ImportTemplates.files.reduce(0) { n, file in
            n + file.text.split(separator: "\n").filter { lineKey($0) == key.rawValue }.count
        }
    }

    static func value(for key: Key, _ v: Values) -> String? {
        switch key {
        case .token: return v.registrationToken
        case .server: return v.serverURL
        case .caChecksum: return v.caChecksum
        case .cluster: return v.clusterName
        case .image: return v.agentImage
        case .httpsProxy: return v.httpsProxy
        case .noProxy: return v.noProxy
        }
    }

    private static func substitute(_ line: Substring, _ values: Values) -> String {
        guard let name = lineKey(line), let key = Key(rawValue: name), let value = value(for: key, values) else {
            return String(line)
        }
        let indent = line.prefix { $0 == " " }
        // A list item ("- image: x") would keep its dash; the templates have none, but keep it right.
        let dash = line.dropFirst(indent.count).hasPrefix("- ") ? "- " : ""
        return "\(indent)\(dash)\(name): \(yamlQuoted(value))"
    }

    /// The key of a `key: value` line (not of a comment), if it has one.
    static func lineKey(_ line: Substring) -> String? {
        var rest = line.drop { $0 == " " }
        if rest.hasPrefix("- ") { rest = rest.dropFirst(2) }
        guard let colon = rest.firstIndex(of: ":"), !rest.hasPrefix("#") else { return nil }
        let key = rest[..<colon]
        guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else { return nil }
        return String(key)
    }

    /// A YAML double-quoted scalar: `"` and `\` escaped, and every character outside printable
    /// ASCII and ordinary Unicode letters (controls, line and paragraph separators, NEL, BOM)
    /// written as an escape, so the value stays on its line whatever it holds.
    public static func yamlQuoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                let v = scalar.value
                if v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || v == 0xFEFF
                    || (0xD800...0xDFFF).contains(v) || v == 0xFFFE || v == 0xFFFF {
                    out += v <= 0xFF ? "\\x" + hex(v, width: 2) : "\\u" + hex(v, width: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    private static func hex(_ v: UInt32, width: Int) -> String {
        let digits = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
