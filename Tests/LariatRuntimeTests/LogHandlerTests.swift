import Foundation
import LariatRuntime
import Logging
import Synchronization
import Testing

/// The one log handler of hub and agent: one event, one line, in text or JSON, with untrusted
/// text unable to forge a line or break the JSON.
@Suite struct LogHandlerTests {
    final class Lines: Sendable {
        let value = Mutex<[String]>([])
        var all: [String] { value.withLock { $0 } }
    }

    private func logger(_ format: LogFormat, _ lines: Lines) -> Logger {
        Logger(label: "lariat-test") { label in
            LariatLogHandler(label: label, level: .debug, format: format) { bytes in
                lines.value.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) }
            }
        }
    }

    @Test func textIsOneLinePerEventEvenWithNewlinesInside() {
        let lines = Lines()
        let log = logger(.text, lines)
        log.warning("agent \("evil\nFAKE 2026-01-01T00:00:00.000Z error forged")", metadata: ["peer": "a b\n c", "id": "plain"])
        let line = lines.all[0]
        #expect(line.hasSuffix("\n"))
        #expect(line.dropLast().contains("\n") == false)
        #expect(line.contains(" warning "))
        #expect(line.contains("id=plain"))
        #expect(line.contains(#"peer="a b\n c""#))
        #expect(line.contains(#"evil\nFAKE"#))
    }

    @Test func jsonLinesParseAndKeepEveryField() throws {
        let lines = Lines()
        let log = logger(.json, lines)
        let nasty = "quote \" backslash \\ newline \n nul \u{0} bell \u{7} é 🙂"
        log.info("hello \(nasty)", metadata: ["cluster": .string(nasty), "level": "shadowed",
                                              "nested": ["k": "v"], "list": ["1", "2"]])
        log.debug("second")
        #expect(lines.all.count == 2)
        let line = lines.all[0]
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().contains("\n") == false)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "hello \(nasty)")
        #expect(object["cluster"] as? String == nasty)
        #expect(object["level"] as? String == "info")
        #expect(object["_level"] as? String == "shadowed")
        #expect(object["logger"] as? String == "lariat-test")
        #expect((object["nested"] as? [String: Any])?["k"] as? String == "v")
        #expect(object["list"] as? [String] == ["1", "2"])
        let time = try #require(object["time"] as? String)
        #expect(time.hasSuffix("Z") && time.count == 24)
    }

    @Test func levelBelowTheHandlersIsDropped() {
        let lines = Lines()
        var log = logger(.text, lines)
        log.logLevel = .notice
        log.info("quiet")
        log.error("loud")
        #expect(lines.all.count == 1)
        #expect(lines.all.first?.contains("loud") == true)
    }

    @Test func formatNamesAreTheFlagValues() {
        #expect(LogFormat(rawValue: "text") == .text)
        #expect(LogFormat(rawValue: "json") == .json)
        #expect(LogFormat(rawValue: "xml") == nil)
        #expect(LogFormat.environmentVariable == "LARIAT_LOG_FORMAT")
    }

    @Test func jsonWriterEscapesControlCharacters() throws {
        var w = JSONLineWriter()
        w.beginObject()
        w.key("a\u{1}"); w.string("x\u{1F}y\u{7F}")
        w.key("n"); w.raw(number: -12)
        w.key("b"); w.bool(true)
        w.key("arr"); w.beginArray(); w.string("1"); w.raw(number: 2); w.endArray()
        w.endObject()
        let text = String(decoding: w.bytes, as: UTF8.self)
        #expect(text == #"{"a\u0001":"x\u001fy\u007f","n":-12,"b":true,"arr":["1",2]}"#)
        _ = try JSONSerialization.jsonObject(with: Data(w.bytes))
    }
}
