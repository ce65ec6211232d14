import Foundation
import LariatControl
import Testing

/// The hub renders import manifests from templates embedded at build time; they must be the
/// files of `Agent/deploy/` (run `Agent/deploy/generate-hub-templates.sh` after editing one).
@Suite struct ImportTemplatesTests {
    static let deployFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Agent/deploy")

    @Test func embeddedTemplatesAreTheDeployFilesInKustomizationOrder() throws {
        let kustomization = try String(contentsOf: Self.deployFolder.appendingPathComponent("kustomization.yaml"), encoding: .utf8)
        let listed = kustomization.split(separator: "\n").compactMap { line -> String? in
            let t = line.trimmingCharacters(in: .whitespaces)
            return t.hasPrefix("- ") && t.hasSuffix(".yaml") ? String(t.dropFirst(2)) : nil
        }
        #expect(listed.count == 5)
        #expect(ImportManifest.templates.map(\.name) == listed,
                "Agent/deploy/kustomization.yaml changed: run Agent/deploy/generate-hub-templates.sh")
        for (name, text) in ImportManifest.templates {
            let onDisk = try String(contentsOf: Self.deployFolder.appendingPathComponent(name), encoding: .utf8)
            #expect(text + "\n" == onDisk, "Agent/deploy/\(name) differs from the hub's copy: run Agent/deploy/generate-hub-templates.sh")
        }
    }

    @Test func everyKeyTheHubFillsInIsInTheTemplates() {
        for key in ImportManifest.Key.allCases {
            #expect(ImportManifest.occurrences(of: key) == key.expectedCount, "\(key.rawValue)")
        }
    }
}
