// libFuzzer target for the frame codec (protocol/PROTOCOL.md §3, §11).
//
// Built by fuzz/run.sh together with Sources/LariatProtocol/*.swift as ONE module, so the
// harness can reach internal types (FrameDecoder, LZ4Codec):
//   swiftc -sanitize=fuzzer,address -parse-as-library -I Sources/CLZ4 \
//          Sources/LariatProtocol/*.swift fuzz/FuzzDecoder.swift -llz4
//
// Input: byte 0 chooses the receiver's maximum payload and the split pattern; the rest is a
// byte stream of frames. Invariants checked:
//   1. Frame.decode never crashes and only throws ProtocolViolation.
//   2. A decoded frame re-encodes to bytes that decode to the same frame (encode∘decode is
//      idempotent) and the re-encoding is canonical (encoding it again is byte-identical).
//   3. FrameDecoder (the session's stream reassembler) yields the same frames, in the same
//      order, with the same first error, whether the stream arrives whole or cut at arbitrary
//      points (here: cut points chosen by the input).
//   4. LZ4 DATA payloads never make the decompressor read or write out of bounds (ASan).

@_cdecl("LLVMFuzzerTestOneInput")
public func lariatFuzzDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let selector = data[0]
    let maxPayload: Int
    switch selector & 3 {
    case 0: maxPayload = 64 * 1024
    case 1: maxPayload = 16 * 1024
    case 2: maxPayload = 1 << 20
    default: maxPayload = 64
    }
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)

    // 1 + 2: the whole input as exactly one frame.
    checkSingleFrame(input, maxPayload: maxPayload)

    // 3: the input as a stream of frames, whole versus split.
    let whole = reassemble(input, maxPayload: maxPayload, cuts: [])
    var cuts: [Int] = []
    var step = Int(selector >> 2) + 1 // 1...64
    var at = 0
    while at < input.count {
        at += step
        cuts.append(min(at, input.count))
        step = (step * 7 + 3) % 97 + 1 // a deterministic spread of small and larger pieces
    }
    let split = reassemble(input, maxPayload: maxPayload, cuts: cuts)
    guard whole == split else {
        fatalError("FrameDecoder: split input gave a different frame sequence\nwhole: \(whole)\nsplit: \(split)")
    }
    return 0
}

private func checkSingleFrame(_ input: UnsafeRawBufferPointer, maxPayload: Int) {
    let frame: Frame
    do {
        frame = try Frame.decode(input, maxPayload: maxPayload)
    } catch {
        // The error must be well-formed: a connection error or a stream error on a stream.
        precondition(error.isConnectionError || error.streamID != 0, "stream error without a stream: \(error)")
        return
    }
    let encoded = frame.encode()
    let again: Frame
    do {
        // Re-encoding may add defaulted HELLO/WELCOME fields, so allow any encodable size.
        again = try encoded.withUnsafeBytes { b throws(ProtocolViolation) in
            try Frame.decode(b, maxPayload: FrameHeader.maxEncodableLength)
        }
    } catch {
        fatalError("re-encoded frame does not decode: \(error)\nframe: \(frame)\nbytes: \(hex(encoded))")
    }
    guard again == frame else {
        fatalError("decode(encode(f)) != f\nf: \(frame)\nagain: \(again)")
    }
    let encodedAgain = again.encode()
    guard encodedAgain == encoded else {
        fatalError("encoding is not canonical\n1: \(hex(encoded))\n2: \(hex(encodedAgain))")
    }
    // 4: exercise the LZ4 receive path the way SessionReceive does.
    if case .data(_, _, true, let payload) = frame {
        payload.withUnsafeBytes { p in
            let decoded = Int(UInt32(p[0]) << 24 | UInt32(p[1]) << 16 | UInt32(p[2]) << 8 | UInt32(p[3]))
            guard decoded <= maxPayload else { return }
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(decoded, 1), alignment: 16)
            defer { scratch.deallocate() }
            _ = LZ4Codec.decompress(UnsafeRawBufferPointer(rebasing: p[4...]), into: scratch, decodedLength: decoded)
        }
    }
}

/// Frames (or the first error) that FrameDecoder + Frame.decode(header:payload:) produce.
private enum Item: Equatable, CustomStringConvertible {
    case frame(Frame)
    case error(ErrorCode, Bool)
    case streamError(ErrorCode, UInt32)
    var description: String {
        switch self {
        case .frame(let f): "\(f)"
        case .error(let c, let conn): "error(\(c), connection: \(conn))"
        case .streamError(let c, let id): "streamError(\(c), \(id))"
        }
    }
}

private func reassemble(_ input: UnsafeRawBufferPointer, maxPayload: Int, cuts: [Int]) -> [Item] {
    let decoder = FrameDecoder(maxPayload: maxPayload, capacityLimit: maxPayload)
    var items: [Item] = []
    var start = 0
    let ends = cuts.isEmpty ? [input.count] : cuts
    do throws(ProtocolViolation) {
        for end in ends where end > start {
            try decoder.feed(UnsafeRawBufferPointer(rebasing: input[start..<end])) { h, payload throws(ProtocolViolation) -> Bool in
                do throws(ProtocolViolation) {
                    items.append(.frame(try Frame.decode(header: h, payload: payload, maxPayload: maxPayload)))
                } catch {
                    if error.isConnectionError { throw error }
                    items.append(.streamError(error.code, error.streamID))
                }
                return true
            }
            start = end
        }
    } catch {
        items.append(.error(error.code, error.isConnectionError))
    }
    return items
}

private func hex(_ b: [UInt8]) -> String {
    b.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}
