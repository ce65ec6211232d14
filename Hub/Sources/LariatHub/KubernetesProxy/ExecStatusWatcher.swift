import LariatHTTP
import LariatRuntime

/// Reads the exit status of an exec session from the server's side of the stream, without
/// changing a byte: the proxy relays the session raw and shows this watcher a view of what it
/// relayed toward the client.
///
/// - WebSocket (`v4`/`v5.channel.k8s.io`): the status is a binary message on channel 3, a
///   `metav1.Status` (`"status":"Success"`, or `NonZeroExitCode` with an `ExitCode` cause).
/// - SPDY/3.1: the same Status as DATA on the error stream, which client-go creates first
///   (stream 1) for every remote-command protocol version.
/// At most `maxStatusBytes` of the status are kept; everything else is skipped as it passes.
struct ExecStatusWatcher {
    enum Framing { case webSocket, spdy }
    static let maxStatusBytes = 4096

    let framing: Framing
    /// WebSocket sessions: the one frame walker the recordings use too.
    private var webSocket = WebSocketChannelReader()
    /// SPDY sessions: the frame header being gathered and the payload bytes still to pass.
    private var header: [UInt8] = []
    private var remaining = 0
    private var collecting = false
    private var status: [UInt8] = []

    init(framing: Framing) {
        self.framing = framing
        header.reserveCapacity(14)
    }

    /// Between two frames of the server's side: a frame written now would not cut one in two.
    var isAtFrameBoundary: Bool {
        framing == .webSocket ? webSocket.isAtFrameBoundary : header.isEmpty && remaining == 0
    }

    /// The bytes that end the session for the client with `message` as its error, in the
    /// session's own framing — a `metav1.Status` Failure on the error channel (WebSocket channel 3
    /// then a normal close; SPDY stream 1 with FIN) — so kubectl reports an error instead of a
    /// clean exit (a bare connection reset ends a SPDY exec with status 0). Nil when not at a
    /// frame boundary: then only a reset is possible.
    func failureFrames(message: String) -> [UInt8]? {
        guard isAtFrameBoundary else { return nil }
        let status = Self.failureStatus(message: message)
        switch framing {
        case .webSocket:
            var encoder = WebSocketEncoder(role: .server)
            var out: [UInt8] = []
            encoder.appendFrame(opcode: .binary, payload: [3] + status, to: &out)
            // A normal close: kubectl reads the error channel to its end and reports the Status.
            encoder.appendClose(code: .normalClosure, to: &out)
            return out
        case .spdy:
            let n = status.count
            return [0, 0, 0, 1, 0x01, UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + status
        }
    }

    static func failureStatus(message: String) -> [UInt8] {
        var json = JSONLineWriter()
        json.beginObject()
        json.key("metadata"); json.beginObject(); json.endObject()
        json.key("status"); json.string("Failure")
        json.key("message"); json.string(message)
        json.key("reason"); json.string("InternalError")
        json.key("code"); json.raw(number: 500)
        json.endObject()
        return json.bytes
    }

    /// The exit code once a status was seen: 0 for Success, the ExitCode cause otherwise, nil
    /// if none arrived (the session was cut) or it names no code.
    var exitCode: Int? { Self.exitCode(fromStatus: status) }
    var sawStatus: Bool { !status.isEmpty }

    mutating func scan(_ bytes: UnsafeRawBufferPointer) {
        guard framing == .spdy else {
            // Moved out and back (not copied): the reader's buffers stay uniquely owned, so
            // relaying a read allocates nothing.
            var reader = WebSocketChannelReader.empty
            var kept: [UInt8] = []
            swap(&reader, &webSocket)
            swap(&kept, &status)
            reader.scan(bytes) { channel, piece in if channel == 3 { Self.keep(piece, in: &kept) } }
            swap(&reader, &webSocket)
            swap(&kept, &status)
            return
        }
        var i = 0
        while i < bytes.count {
            if remaining > 0 {
                let n = min(remaining, bytes.count - i)
                if collecting { Self.keep(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)]), in: &status) }
                remaining -= n
                i += n
                continue
            }
            header.append(bytes[i])
            i += 1
            spdyHeader()
        }
    }

    /// Keeps status bytes up to `maxStatusBytes`.
    private static func keep(_ piece: UnsafeRawBufferPointer, in status: inout [UInt8]) {
        guard status.count < maxStatusBytes else { return }
        status.append(contentsOf: UnsafeRawBufferPointer(rebasing: piece[..<min(piece.count, maxStatusBytes - status.count)]))
    }

    /// SPDY frame header: 8 bytes; a control frame has the high bit set, a data frame carries the
    /// stream id in its first 31 bits.
    private mutating func spdyHeader() {
        guard header.count >= 8 else { return }
        let isControl = header[0] & 0x80 != 0
        let streamID = (Int(header[0] & 0x7F) << 24) | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        let length = Int(header[5]) << 16 | Int(header[6]) << 8 | Int(header[7])
        header.removeAll(keepingCapacity: true)
        remaining = length
        collecting = !isControl && streamID == 1
    }
}

extension ExecStatusWatcher {
    /// `{"status":"Success"}` → 0; `"reason":"NonZeroExitCode"` with `{"reason":"ExitCode","message":"N"}` → N.
    static func exitCode(fromStatus bytes: [UInt8]) -> Int? {
        if find(Array(#""status":"Success""#.utf8), in: bytes[...]) != nil { return 0 }
        guard let cause = find(Array(#""reason":"ExitCode""#.utf8), in: bytes[...]) else { return nil }
        // The cause's message may come before or after its reason, within the same small object.
        let window = bytes[max(0, cause - 80)...]
        let key = Array(#""message":""#.utf8)
        guard let m = find(key, in: window) else { return nil }
        let digits = bytes[(m + key.count)...].prefix { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        return Int(String(decoding: digits, as: UTF8.self))
    }

    /// Index of the first occurrence of `needle` in `haystack`.
    private static func find(_ needle: [UInt8], in haystack: ArraySlice<UInt8>) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        var i = haystack.startIndex
        while i + needle.count <= haystack.endIndex {
            if haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
