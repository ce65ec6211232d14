import LariatHTTP
import Testing

/// Owned copy of a parser event, so tests can compare results across different chunkings.
enum ParsedHTTP<Head: Equatable>: Equatable {
    case head(Head)
    case body([UInt8])
    case end
    case upgrade([UInt8])
}

/// Lets one helper drive both parsers.
protocol HTTPParsing {
    associatedtype Head: Equatable
    mutating func next(from input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPParserEvent<Head>?
}

extension HTTPRequestParser: HTTPParsing {}
extension HTTPResponseParser: HTTPParsing {}

/// Feeds `chunks` in order and returns the events with adjacent body pieces merged (so the
/// result does not depend on how the input was split). Bytes fed after an upgrade are
/// appended to the upgrade's leftover, as a caller would route them to the next protocol.
func parse<Parser: HTTPParsing>(_ chunks: [[UInt8]], with parser: inout Parser) throws -> [ParsedHTTP<Parser.Head>] {
    var events: [ParsedHTTP<Parser.Head>] = []
    var upgraded = false
    for chunk in chunks {
        if upgraded {
            guard case .upgrade(let leftover) = events.removeLast() else { fatalError() }
            events.append(.upgrade(leftover + chunk))
            continue
        }
        try chunk.withUnsafeBytes { buffer in
            var rest = buffer
            while let event = try parser.next(from: &rest) {
                switch event {
                case .head(let head): events.append(.head(head))
                case .body(let bytes):
                    if case .body(let previous) = events.last {
                        events[events.count - 1] = .body(previous + Array(bytes))
                    } else {
                        events.append(.body(Array(bytes)))
                    }
                case .end: events.append(.end)
                case .upgrade(let leftover):
                    events.append(.upgrade(Array(leftover)))
                    upgraded = true
                }
            }
            #expect(rest.isEmpty, "next(from:) returned nil before consuming its input")
        }
    }
    return events
}

func parseRequests(_ chunks: [[UInt8]], limits: HTTPParserLimits = HTTPParserLimits()) throws -> [ParsedHTTP<HTTPRequestHead>] {
    var parser = HTTPRequestParser(limits: limits)
    return try parse(chunks, with: &parser)
}

func parseRequests(_ text: String, limits: HTTPParserLimits = HTTPParserLimits()) throws -> [ParsedHTTP<HTTPRequestHead>] {
    try parseRequests([Array(text.utf8)], limits: limits)
}

/// Every way of cutting `bytes` in two, plus byte-by-byte.
func splits(of bytes: [UInt8]) -> [[[UInt8]]] {
    var result = (0...bytes.count).map { [Array(bytes[..<$0]), Array(bytes[$0...])] }
    result.append(bytes.map { [$0] })
    return result
}

/// `bytes` cut into pieces of random sizes in 1...maxPiece.
func randomChunks<G: RandomNumberGenerator>(_ bytes: [UInt8], maxPiece: Int, using generator: inout G) -> [[UInt8]] {
    var chunks: [[UInt8]] = []
    var index = 0
    while index < bytes.count {
        let size = Int.random(in: 1...maxPiece, using: &generator)
        chunks.append(Array(bytes[index..<min(bytes.count, index + size)]))
        index += size
    }
    return chunks
}

/// Deterministic generator so a failing random test can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func hex(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }
    var result: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        result.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return result
}

// MARK: WebSocket

/// An owned, reassembled view of decoder output.
enum DecodedWebSocket: Equatable {
    case text([UInt8])
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    case close(WebSocketCloseCode, String)
}

/// Feeds `chunks` (copied, since the decoder unmasks in place) and reassembles messages.
/// Control events interleaved in a fragmented message come out before that message.
func decode(_ chunks: [[UInt8]], role: WebSocketRole,
            configuration: WebSocketDecoder.Configuration = .init()) throws -> [DecodedWebSocket] {
    var decoder = WebSocketDecoder(role: role, configuration: configuration)
    var events: [DecodedWebSocket] = []
    var message: [UInt8] = []
    for chunk in chunks {
        var copy = chunk
        try copy.withUnsafeMutableBytes { buffer in
            var rest = buffer
            while let event = try decoder.next(from: &rest) {
                switch event {
                case .text(let piece, let isFinal):
                    message += piece
                    if isFinal { events.append(.text(message)); message = [] }
                case .binary(let piece, let isFinal):
                    message += piece
                    if isFinal { events.append(.binary(message)); message = [] }
                case .ping(let payload): events.append(.ping(payload))
                case .pong(let payload): events.append(.pong(payload))
                case .close(let code, let reason): events.append(.close(code, reason))
                }
            }
            #expect(rest.isEmpty)
        }
    }
    return events
}

/// A frame with an explicit header, masking the payload when a key is given.
func frame(_ opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true, key: WebSocketMaskingKey? = nil,
           reservedBits: UInt8 = 0) -> [UInt8] {
    let header = WebSocketFrameHeader(isFinal: fin, reservedBits: reservedBits, opcode: opcode,
                                      maskingKey: key, payloadLength: UInt64(payload.count))
    var out = [UInt8](repeating: 0, count: header.encodedLength)
    out.withUnsafeMutableBytes { _ = header.write(to: $0) }
    var body = payload
    if let key { body.withUnsafeMutableBytes { _ = key.apply(to: $0) } }
    return out + body
}

let testKey = WebSocketMaskingKey(0x37, 0xFA, 0x21, 0x3D)
