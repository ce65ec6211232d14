// libFuzzer target for WebSocketDecoder (RFC 6455), the codec under every tunnel byte.
// Built by fuzz/run.sh with Sources/LariatHTTP/*.swift, FuzzSupport.swift and the C masking loop.
//
// Input: byte 0 = configuration: bit 0 role (0 server: frames must be masked, 1 client),
// bit 1 maxFrameSize 125 (else 16 MiB), bit 2 maxMessageSize 1000 (else 64 MiB), bit 3
// UTF-8 validation off; all of byte 0 also seeds the cut points. The rest = bytes from the peer.
// Invariants:
//   1. data events are slices of the piece just fed (unmasked in place), control payloads are
//      at most 125 bytes, `next` returns nil only once the piece is used up;
//   2. whole messages, control frames and the first error are the same whether the input
//      arrives whole or in pieces (data delivered before an error may be cut differently, so
//      only completed messages count);
//   3. text messages (when validated) are valid UTF-8, messages respect maxMessageSize;
//   4. round trip: the messages and control frames, encoded again by a WebSocketEncoder of
//      the peer's role (fragmented to fit maxFrameSize), decode to the same items.

enum WSItem: Equatable {
    case message(text: Bool, [UInt8])
    case ping([UInt8])
    case pong([UInt8])
    case close(UInt16, String)
    case error(WebSocketProtocolError)
}

func runDecoder(_ config: WebSocketDecoder.Configuration, role: WebSocketRole, _ input: [UInt8], seed: UInt8?) -> [WSItem] {
    var decoder = WebSocketDecoder(role: role, configuration: config)
    var items: [WSItem] = []
    var message: [UInt8] = []
    var buffer = input  // unmasked in place: a private copy per run
    buffer.withUnsafeMutableBytes { raw in
        let cuts = seed.map { cutPoints(count: raw.count, seed: $0) } ?? []
        for chunk in pieces(UnsafeRawBufferPointer(raw), cuts: cuts) {
            let mutableChunk = UnsafeMutableRawBufferPointer(mutating: chunk)
            var rest = mutableChunk
            var events = 0
            do throws(WebSocketProtocolError) {
                while let event = try decoder.next(from: &rest) {
                    events += 1
                    if events > 2 * chunk.count + 8 { violated("progress", "\(events) events from \(chunk.count) bytes") }
                    switch event {
                    case .binary(let piece, let isFinal), .text(let piece, let isFinal):
                        guard lies(piece, within: chunk) else { violated("data-in-input", "a data piece outside the input") }
                        message.append(contentsOf: piece)
                        if message.count > config.maxMessageSize { violated("max-message", "\(message.count) > \(config.maxMessageSize)") }
                        if isFinal {
                            var isText = false
                            if case .text = event { isText = true }
                            if isText && config.validatesUTF8 && !UTF8Validator.isValid(message) {
                                violated("text-utf8", "invalid UTF-8 text delivered: \(hex(message))")
                            }
                            items.append(.message(text: isText, message))
                            message = []
                        }
                    case .ping(let p):
                        guard p.count <= 125 else { violated("control-size", "ping of \(p.count)") }
                        items.append(.ping(p))
                    case .pong(let p):
                        guard p.count <= 125 else { violated("control-size", "pong of \(p.count)") }
                        items.append(.pong(p))
                    case .close(let code, let reason):
                        items.append(.close(code.rawValue, reason))
                    }
                }
                guard rest.isEmpty else { violated("nil-means-consumed", "next returned nil with \(rest.count) bytes left") }
            } catch {
                items.append(.error(error))
                return
            }
        }
    }
    return items
}

/// The items as frames from the other end: the role that sends to `role`.
func reencode(_ items: [WSItem], to role: WebSocketRole, maxFrame: Int) -> [UInt8] {
    var encoder = WebSocketEncoder(role: role == .server ? .client : .server, maskingKeys: WebSocketMaskingKeyGenerator(seed: 7))
    var out: [UInt8] = []
    for item in items {
        switch item {
        case .message(let text, let bytes):
            var at = 0
            var first = true
            repeat {
                let n = min(maxFrame, bytes.count - at)
                let last = at + n == bytes.count
                encoder.appendFrame(opcode: first ? (text ? .text : .binary) : .continuation, isFinal: last,
                                    payload: Array(bytes[at..<(at + n)]), to: &out)
                at += n
                first = false
            } while at < bytes.count
        case .ping(let p): encoder.appendPing(p, to: &out)
        case .pong(let p): encoder.appendPong(p, to: &out)
        case .close(let code, let reason):
            encoder.appendClose(code: code == WebSocketCloseCode.noStatusReceived.rawValue ? nil : WebSocketCloseCode(rawValue: code),
                                reason: reason, to: &out)
        case .error: break
        }
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func lariatFuzzWebSocket(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let selector = data[0]
    let role: WebSocketRole = selector & 1 == 0 ? .server : .client
    let config = WebSocketDecoder.Configuration(
        maxFrameSize: selector & 2 != 0 ? 125 : 16 << 20,
        maxMessageSize: selector & 4 != 0 ? 1000 : 64 << 20,
        validatesUTF8: selector & 8 == 0)
    let input = Array(UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    let whole = runDecoder(config, role: role, input, seed: nil)
    let split = runDecoder(config, role: role, input, seed: selector)
    guard whole == split else { violated("split-equals-whole", "\nwhole: \(whole)\nsplit: \(split)") }
    let valid = whole.filter { if case .error = $0 { return false } else { return true } }
    let again = runDecoder(config, role: role, reencode(valid, to: role, maxFrame: min(config.maxFrameSize, 4096)), seed: selector)
    // A close reason is re-sent cut to 123 bytes (it can grow when invalid UTF-8 was let
    // through and became U+FFFD).
    let expected = valid.map { item -> WSItem in
        guard case .close(let code, let reason) = item else { return item }
        return .close(code, String(decoding: WebSocketEncoder.truncatedUTF8(reason, maxBytes: 123), as: UTF8.self))
    }
    guard again == expected else { violated("round-trip", "\nitems: \(expected)\nagain: \(again)") }
    return 0
}
