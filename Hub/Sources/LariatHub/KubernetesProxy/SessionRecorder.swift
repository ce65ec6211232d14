import Foundation
import LariatControl
import LariatRuntime

/// Records an interactive exec or attach session as an asciicast v2 file
/// (https://docs.asciinema.org/manual/asciicast/v2/): a header line, then one JSON array per
/// event — `[seconds, "o", text]` output, `"i"` input, `"r"` resize `COLSxROWS` — playable with
/// `asciinema play`. Events are built on the loop and written on a queue of their own; a
/// recording stops (with a marker) at `maxBytes`. Only the WebSocket channel protocols are read
/// (kubectl ≥ 1.30); a SPDY session is noted as not recorded.
final class SessionRecorder {
    static let maxBytes = 64 << 20

    let path: String
    private let startedAt: UInt64
    private var output = WebSocketChannelReader()
    private var input = WebSocketChannelReader()
    private var written = 0
    private var stopped = false
    private let sink: RecordingFile

    init?(directory: String, name: String, title: String, now: UInt64, wallClock: Double) {
        path = directory + "/" + name + ".cast"
        guard let sink = RecordingFile(directory: directory, path: path) else { return nil }
        self.sink = sink
        startedAt = now
        var header = JSONLineWriter()
        header.beginObject()
        header.key("version"); header.raw(number: 2)
        header.key("width"); header.raw(number: 80)
        header.key("height"); header.raw(number: 24)
        header.key("timestamp"); header.raw(number: Int(wallClock))
        header.key("title"); header.string(title)
        header.endObject()
        sink.append(header.bytes + [10])
    }

    /// Bytes relayed toward the client (the server's frames).
    func serverSent(_ bytes: UnsafeRawBufferPointer, now: UInt64) {
        guard !stopped else { return }
        output.scan(bytes) { channel, piece in
            if channel == 1 || channel == 2 { event("o", piece, now: now) }
        }
    }

    /// Bytes relayed toward the server (the client's masked frames).
    func clientSent(_ bytes: UnsafeRawBufferPointer, now: UInt64) {
        guard !stopped else { return }
        input.scan(bytes) { channel, piece in
            switch channel {
            case 0: event("i", piece, now: now)
            case 4: resize(piece, now: now)
            default: break
            }
        }
    }

    func finish() {
        stopped = true
        sink.close()
    }

    private func event(_ kind: String, _ data: UnsafeRawBufferPointer, now: UInt64) {
        var line = JSONLineWriter(capacity: data.count + 32)
        line.beginArray()
        line.raw(decimal: Self.seconds(now &- startedAt))
        line.string(kind)
        // Terminal output is text; bytes that are not UTF-8 become U+FFFD, as players expect.
        line.string(String(decoding: data, as: UTF8.self))
        line.endArray()
        append(line.bytes)
    }

    /// `{"Width":W,"Height":H}` on channel 4 → `"r"` `WxH`.
    private func resize(_ data: UnsafeRawBufferPointer, now: UInt64) {
        let text = String(decoding: data, as: UTF8.self)
        func number(after key: String) -> Int? {
            guard let r = text.range(of: key) else { return nil }
            return Int(text[r.upperBound...].drop { $0 == " " || $0 == ":" }.prefix { $0.isNumber })
        }
        guard let w = number(after: "\"Width\""), let h = number(after: "\"Height\"") else { return }
        var line = JSONLineWriter()
        line.beginArray()
        line.raw(decimal: Self.seconds(now &- startedAt))
        line.string("r")
        line.string("\(w)x\(h)")
        line.endArray()
        append(line.bytes)
    }

    private func append(_ line: [UInt8]) {
        written += line.count + 1
        if written > Self.maxBytes {
            stopped = true
            var marker = JSONLineWriter()
            marker.beginArray(); marker.raw(decimal: "0"); marker.string("m"); marker.string("recording stopped: size limit"); marker.endArray()
            sink.append(marker.bytes + [10])
            sink.close()
            return
        }
        sink.append(line + [10])
    }

    /// Nanoseconds as seconds with microsecond precision ("12.345678").
    static func seconds(_ nanos: UInt64) -> String {
        let micros = nanos / 1000
        let frac = String(micros % 1_000_000)
        return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - frac.count) + frac
    }
}

/// The file behind a recording, appended to on a serial queue (0600, folder 0700).
private final class RecordingFile: Sendable {
    private let queue = DispatchQueue(label: "session-recording")
    private let handle: FileHandle

    init?(directory: String, path: String) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch { return nil }
        guard let h = try? openPrivateAppendFile(path, what: "the session recording") else { return nil }
        handle = h
    }

    func append(_ bytes: [UInt8]) { queue.async { [handle] in handle.write(Data(bytes)) } }
    func close() { queue.async { [handle] in try? handle.close() } }
}
