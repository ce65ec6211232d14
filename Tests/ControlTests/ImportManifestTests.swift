import Foundation
import LariatControl
import Testing

/// The import manifest: values filled in, escaped, the token only in the Secret, proxy optional.
@Suite struct ImportManifestTests {
    static let values = ImportManifest.Values(
        serverURL: "https://hub.example.net:8443", caChecksum: String(repeating: "ab", count: 32),
        clusterName: "edge-7", registrationToken: "crt-abcde.s3cr3ts3cr3ts3cr3t",
        agentImage: "registry.example.net/lariat-agent:1.2.3")

    /// The documents of a rendered manifest, split at `---`, with comment lines dropped.
    static func documents(_ yaml: String) -> [String] {
        yaml.components(separatedBy: "\n---\n").map { doc in
            doc.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }.joined(separator: "\n")
        }
    }

    static func document(_ yaml: String, kind: String) -> String? {
        documents(yaml).first { $0.contains("\nkind: \(kind)\n") || $0.hasPrefix("kind: \(kind)\n") || $0.contains("kind: \(kind)\n") }
    }

    @Test func valuesAreFilledInWhereTheAgentReadsThem() throws {
        let yaml = ImportManifest.render(Self.values)
        let config = try #require(Self.document(yaml, kind: "ConfigMap"))
        #expect(config.contains("  LARIAT_SERVER: \"https://hub.example.net:8443\""))
        #expect(config.contains("  LARIAT_CA_CHECKSUM: \"\(Self.values.caChecksum)\""))
        #expect(config.contains("  LARIAT_CLUSTER: \"edge-7\""))
        let secret = try #require(Self.document(yaml, kind: "Secret"))
        #expect(secret.contains("  LARIAT_TOKEN: \"crt-abcde.s3cr3ts3cr3ts3cr3t\""))
        #expect(yaml.components(separatedBy: "image: \"registry.example.net/lariat-agent:1.2.3\"").count - 1 == 2)
        for kind in ["Namespace", "ServiceAccount", "Secret", "ConfigMap", "Deployment", "DaemonSet", "PodDisruptionBudget"] {
            #expect(Self.document(yaml, kind: kind) != nil, "no \(kind)")
        }
        // No placeholder of the hand-edited files survives.
        #expect(!yaml.contains("REPLACE-WITH"))
        #expect(!yaml.contains("hub.example.com"))
    }

    @Test func theTokenAppearsOnlyInTheSecret() {
        let yaml = ImportManifest.render(Self.values)
        let secret = "s3cr3ts3cr3ts3cr3t"
        #expect(yaml.components(separatedBy: secret).count - 1 == 1)
        for doc in Self.documents(yaml) where doc.contains(secret) {
            #expect(doc.contains("kind: Secret"))
        }
    }

    @Test func proxySettingsAreOptional() throws {
        let plain = ImportManifest.render(Self.values)
        let plainConfig = try #require(Self.document(plain, kind: "ConfigMap"))
        #expect(plainConfig.contains("  HTTPS_PROXY: \"\""))
        #expect(plainConfig.contains("  NO_PROXY: \"localhost,127.0.0.1,.svc,.cluster.local,10.0.0.0/8\""))

        var v = Self.values
        v.httpsProxy = "http://proxy.corp:3128"
        v.noProxy = ".corp,10.0.0.0/8"
        let config = try #require(Self.document(ImportManifest.render(v), kind: "ConfigMap"))
        #expect(config.contains("  HTTPS_PROXY: \"http://proxy.corp:3128\""))
        #expect(config.contains("  NO_PROXY: \".corp,10.0.0.0/8\""))
    }

    @Test(arguments: [
        "x\"\n  LARIAT_ALLOW: \"*\"",          // a quote and a newline: a new key
        "x\n---\nkind: ClusterRoleBinding",   // a new document
        "x\\\"  # comment",                   // backslash before a quote
        "a\u{2028}b\u{85}c\u{FEFF}d\r\te\u{0}", // YAML line breaks, BOM, CR, tab, NUL
        "ünïcödé ✓",
    ])
    func hostileValuesStayInsideTheirScalar(_ hostile: String) throws {
        var v = Self.values
        v.httpsProxy = hostile
        v.noProxy = hostile
        v.clusterName = hostile
        v.serverURL = hostile
        let yaml = ImportManifest.render(v)
        // Same shape as with harmless values: no line added, no document added.
        let baseline = ImportManifest.render(Self.values)
        #expect(yaml.split(separator: "\n", omittingEmptySubsequences: false).count
                == baseline.split(separator: "\n", omittingEmptySubsequences: false).count)
        #expect(yaml.components(separatedBy: "\n---\n").count == baseline.components(separatedBy: "\n---\n").count)
        #expect(!yaml.unicodeScalars.contains { $0 == "\u{2028}" || $0 == "\u{85}" || $0 == "\r" || $0 == "\u{0}" || $0 == "\u{FEFF}" })
        // Each value decodes back to itself from its double-quoted scalar.
        let line = try #require(yaml.split(separator: "\n").first { $0.hasPrefix("  HTTPS_PROXY: ") })
        #expect(Self.unquote(String(line.dropFirst("  HTTPS_PROXY: ".count))) == hostile)
    }

    @Test func quotingEscapesWhatYAMLWouldInterpret() {
        #expect(ImportManifest.yamlQuoted("plain") == "\"plain\"")
        #expect(ImportManifest.yamlQuoted("a\"b\\c") == #""a\"b\\c""#)
        #expect(ImportManifest.yamlQuoted("a\nb") == #""a\nb""#)
        #expect(ImportManifest.yamlQuoted("\u{0}\u{7F}\u{2028}") == #""\x00\x7F\u2028""#)
        #expect(ImportManifest.yamlQuoted("") == "\"\"")
    }

    /// A YAML double-quoted scalar's value (the escapes `yamlQuoted` writes).
    static func unquote(_ s: String) -> String? {
        guard s.hasPrefix("\""), s.hasSuffix("\""), s.count >= 2 else { return nil }
        var out = String.UnicodeScalarView()
        var it = Array(s.dropFirst().dropLast().unicodeScalars)[...]
        while let c = it.popFirst() {
            guard c == "\\" else {
                if c == "\"" { return nil }  // an unescaped quote would have ended the scalar
                out.append(c)
                continue
            }
            guard let e = it.popFirst() else { return nil }
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\"", "\\": out.append(e)
            case "x", "u":
                let n = e == "x" ? 2 : 4
                let digits = String(String.UnicodeScalarView(it.prefix(n)))
                it = it.dropFirst(n)
                guard let v = UInt32(digits, radix: 16), let u = Unicode.Scalar(v) else { return nil }
                out.append(u)
            default: return nil
            }
        }
        return String(out)
    }
}
