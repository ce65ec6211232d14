import Logging
#if canImport(Glibc)
import Glibc
#endif

/// How hub and agent write their logs (`--log-format`, env `LARIAT_LOG_FORMAT`).
public enum LogFormat: String, Sendable, CaseIterable {
    /// One line per event: `2026-01-31T12:00:00.123Z info     message key=value`.
    case text
    /// One JSON object per line: `{"time":…,"level":…,"logger":…,"message":…,…metadata}`.
    case json

    public static let environmentVariable = "LARIAT_LOG_FORMAT"
}

/// The one log handler of every Lariat program: one event is one line on standard error, written
/// with one write(2) so lines from several threads never interleave. Text escapes control
/// characters (a message cannot forge a second line) and quotes metadata values that need it
/// with `logQuoted`; JSON goes through `JSONLineWriter`.
public struct LariatLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let label: String
    public let format: LogFormat
    /// Where lines go (tests capture them); standard error by default.
    private let sink: @Sendable ([UInt8]) -> Void

    public init(label: String, level: Logger.Level = .info, format: LogFormat = .text,
                sink: @escaping @Sendable ([UInt8]) -> Void = LariatLogHandler.standardError) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.sink = sink
    }

    /// Installs this handler for the whole process (call once, at start).
    public static func bootstrap(level: Logger.Level, format: LogFormat) {
        LoggingSystem.bootstrap { label in LariatLogHandler(label: label, level: level, format: format) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let explicit = event.metadata { all.merge(explicit) { $1 } }
        let error = event.error.map { "\($0)" }
        switch format {
        case .text: sink(Self.textLine(level: event.level, message: event.message.description, metadata: all, error: error))
        case .json: sink(jsonLine(level: event.level, message: event.message.description, metadata: all, error: error))
        }
    }

    static func textLine(level: Logger.Level, message: String, metadata: Logger.Metadata, error: String?) -> [UInt8] {
        var text = LogTimestamp.now()
        text += " "
        let name = level.rawValue
        text += name + String(repeating: " ", count: max(0, 8 - name.count))
        text += escapingControls(message)
        for key in metadata.keys.sorted() {
            text += " " + escapingControls(key) + "=" + plainOrQuoted("\(metadata[key]!)")
        }
        if let error { text += " error=" + error.logQuoted }
        text += "\n"
        return Array(text.utf8)
    }

    func jsonLine(level: Logger.Level, message: String, metadata: Logger.Metadata, error: String?) -> [UInt8] {
        var w = JSONLineWriter()
        w.beginObject()
        w.key("time"); w.string(LogTimestamp.now())
        w.key("level"); w.string(level.rawValue)
        w.key("logger"); w.string(label)
        w.key("message"); w.string(message)
        if let error { w.key("error"); w.string(error) }
        let reserved: Set<String> = ["time", "level", "logger", "message", "error"]
        for key in metadata.keys.sorted() {
            // Metadata never overwrites the fixed fields.
            w.key(reserved.contains(key) ? "_" + key : key)
            Self.write(metadata[key]!, to: &w)
        }
        w.endObject()
        return w.bytes + [UInt8(ascii: "\n")]
    }

    private static func write(_ value: Logger.Metadata.Value, to w: inout JSONLineWriter) {
        switch value {
        case .string(let s): w.string(s)
        case .stringConvertible(let c): w.string(c.description)
        case .array(let items):
            w.beginArray()
            for item in items { write(item, to: &w) }
            w.endArray()
        case .dictionary(let d):
            w.beginObject()
            for k in d.keys.sorted() { w.key(k); write(d[k]!, to: &w) }
            w.endObject()
        }
    }

    /// A value with nothing to escape and no space stays bare (greppable `key=value`); anything
    /// else is quoted and escaped.
    static func plainOrQuoted(_ value: String) -> String {
        let bare = !value.isEmpty && value.unicodeScalars.allSatisfy { s in
            s.value > 0x20 && s.value < 0x7F && s != "\"" && s != "\\" && s != "="
        }
        return bare ? value : value.logQuoted
    }

    /// The message as written, but with control characters escaped: messages already quote
    /// their untrusted parts; this keeps any that slipped through to one line.
    static func escapingControls(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: { $0.value < 0x20 || ($0.value >= 0x7F && $0.value <= 0x9F) }) else { return s }
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0}"..."\u{1F}", "\u{7F}"..."\u{9F}": out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// One write(2) per line (retried on short writes).
    public static let standardError: @Sendable ([UInt8]) -> Void = { line in
        var rest = line[...]
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            rest = rest.dropFirst(n)
        }
    }
}

/// UTC with millisecond precision, as in every log line.
enum LogTimestamp {
    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let ms = Int32(ts.tv_nsec / 1_000_000)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(ms, 3))Z"
    }
}
