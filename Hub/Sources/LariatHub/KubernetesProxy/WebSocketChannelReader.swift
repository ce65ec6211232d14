/// Follows one direction of a Kubernetes channel WebSocket (`v4`/`v5.channel.k8s.io`) as it is
/// relayed, without changing a byte, and hands each binary message's payload to `deliver` by
/// channel (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize), in pieces as they pass. Frames
/// from the client are masked: pieces are unmasked into a scratch copy.
struct WebSocketChannelReader {
    private var header: [UInt8] = []
    private var remaining = 0
    private var mask: [UInt8] = []
    private var maskOffset = 0
    private var channel: Int?
    private var expectChannel = false
    private var scratch: [UInt8] = []

    init() { header.reserveCapacity(14) }
    private init(unreserved: Void) {}
    /// A placeholder holding no buffers (to move a reader out of a struct field and back).
    static var empty: WebSocketChannelReader { WebSocketChannelReader(unreserved: ()) }

    /// Between two frames: a frame written now would not cut one in two.
    var isAtFrameBoundary: Bool { header.isEmpty && remaining == 0 }

    mutating func scan(_ bytes: UnsafeRawBufferPointer, deliver: (Int, UnsafeRawBufferPointer) -> Void) {
        var i = 0
        while i < bytes.count {
            if remaining > 0 {
                let n = min(remaining, bytes.count - i)
                let piece = UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)])
                remaining -= n
                i += n
                if mask.isEmpty {
                    take(piece, deliver)
                } else {
                    scratch.removeAll(keepingCapacity: true)
                    for b in piece {
                        scratch.append(b ^ mask[maskOffset & 3])
                        maskOffset += 1
                    }
                    scratch.withUnsafeBytes { take($0, deliver) }
                }
                continue
            }
            header.append(bytes[i])
            i += 1
            parseHeader()
        }
    }

    private mutating func take(_ piece: UnsafeRawBufferPointer, _ deliver: (Int, UnsafeRawBufferPointer) -> Void) {
        var piece = piece
        if expectChannel, let first = piece.first {
            expectChannel = false
            channel = Int(first)
            piece = UnsafeRawBufferPointer(rebasing: piece[1...])
        }
        if let channel, piece.count > 0 { deliver(channel, piece) }
    }

    private mutating func parseHeader() {
        guard header.count >= 2 else { return }
        let masked = header[1] & 0x80 != 0
        let short = Int(header[1] & 0x7F)
        let lengthBytes = short == 126 ? 2 : short == 127 ? 8 : 0
        let need = 2 + lengthBytes + (masked ? 4 : 0)
        guard header.count >= need else { return }
        var length = short
        if short == 126 { length = Int(header[2]) << 8 | Int(header[3]) }
        if short == 127 { length = header[2..<10].reduce(0) { $0 << 8 | Int($1) } }
        let opcode = header[0] & 0x0F
        mask = masked ? Array(header[(2 + lengthBytes)..<need]) : []
        maskOffset = 0
        header.removeAll(keepingCapacity: true)
        remaining = length
        // A new binary message names its channel in its first byte; continuations keep it;
        // control frames (ping, pong, close) carry none.
        switch opcode {
        case 2: expectChannel = length > 0; channel = nil
        case 0: break
        default: channel = nil; expectChannel = false
        }
    }
}
