// libFuzzer target for the tunnel handshake payloads: HELLO (agent → hub, decoded by the hub
// before authentication, so fully hostile) and WELCOME (hub → agent). PROTOCOL.md §4.
// Built by fuzz/run.sh with Sources/LariatProtocol/*.swift and FuzzSupport.swift.
//
// Input: byte 0 bit 0 chooses HELLO (0) or WELCOME (1); the rest is the payload.
// Invariants:
//   1. decode never crashes and fails only with a PROTOCOL_ERROR connection error;
//   2. decode(encode(m)) == m for every decoded m (unknown tags are dropped, duplicates keep
//      the last value), and the encoding is canonical: encoding that again is byte-identical;
//   3. the encoding is no longer than needed: at most the input plus the defaulted fixed
//      fields (a decoded message never grows without bound when re-sent);
//   4. the same payload inside a frame (Frame.decode) gives the same message or the same error.

@_cdecl("LLVMFuzzerTestOneInput")
public func lariatFuzzHandshake(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let payload = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    if data[0] & 1 == 0 {
        check(payload, decode: Hello.decode, encode: { $0.encode() }, type: .hello, wrap: { Frame.hello($0) })
    } else {
        check(payload, decode: Welcome.decode, encode: { $0.encode() }, type: .welcome, wrap: { Frame.welcome($0) })
    }
    return 0
}

/// Every fixed-size field a HELLO or WELCOME encoding may add back (u32 and u8 TLVs, version).
let defaultedFieldBytes = 4 + 6 * 7 + 4

func check<M: Equatable>(
    _ payload: UnsafeRawBufferPointer,
    decode: (UnsafeRawBufferPointer) throws(ProtocolViolation) -> M,
    encode: (M) -> [UInt8], type: FrameType, wrap: (M) -> Frame
) {
    let message: M
    do {
        message = try decode(payload)
    } catch {
        guard error.isConnectionError, error.code == .protocolError else {
            violated("error-kind", "decode failed with \(error)")
        }
        checkFramed(payload, type: type, expect: nil)
        return
    }
    let encoded = encode(message)
    let again: M
    do {
        again = try encoded.withUnsafeBytes { b throws(ProtocolViolation) in try decode(b) }
    } catch {
        violated("re-encoded-decodes", "\(error)\nmessage: \(message)\nbytes: \(hex(encoded))")
    }
    guard again == message else { violated("round-trip", "\(message)\nagain: \(again)") }
    guard encode(again) == encoded else { violated("canonical", "\(hex(encoded)) vs \(hex(encode(again)))") }
    guard encoded.count <= payload.count + defaultedFieldBytes else {
        violated("no-growth", "\(payload.count) bytes re-encoded as \(encoded.count)")
    }
    checkFramed(payload, type: type, expect: wrap(message))
}

/// The payload as the body of a frame of `type` on stream 0.
func checkFramed(_ payload: UnsafeRawBufferPointer, type: FrameType, expect: Frame?) {
    guard payload.count <= 0xFF_FFFF else { return }
    var bytes = [UInt8](repeating: 0, count: FrameHeader.size)
    bytes.withUnsafeMutableBytes {
        FrameHeader(length: payload.count, type: type.rawValue, flags: 0, streamID: 0).write(to: $0.baseAddress!)
    }
    bytes.append(contentsOf: payload)
    let frame: Frame?
    do {
        frame = try bytes.withUnsafeBytes { b throws(ProtocolViolation) in try Frame.decode(b, maxPayload: FrameHeader.maxEncodableLength) }
    } catch {
        frame = nil
    }
    guard frame == expect else { violated("framed-equals-bare", "Frame.decode gave \(String(describing: frame)), want \(String(describing: expect))") }
}
