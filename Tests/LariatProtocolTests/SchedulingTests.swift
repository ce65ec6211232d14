import Testing
@testable import LariatProtocol

@Suite struct SchedulingTests {
    /// With 8 bulk streams saturating the session, an interactive stream's frames go out next:
    /// never more than one bulk frame (16 KiB) ahead of them in the produced byte stream.
    @Test func interactiveFramesWaitAtMostOneBulkFrame() throws {
        let p = SessionPair()
        var bulk: [UInt32] = []
        for i in 0..<8 { bulk.append(try p.client.open(target: "bulk\(i)", streamClass: .bulk)) }
        let shell = try p.client.open(target: "exec", streamClass: .interactive)
        p.pump()
        let block = randomBytes(256 * 1024, seed: 11)
        for round in 0..<20 {
            for id in bulk { _ = p.client.write(id, block) }
            // A keystroke arrives while bulk data is queued.
            _ = p.client.write(shell, [UInt8(round)])
            var buf = [UInt8](repeating: 0, count: 40 * 1024)
            let n = buf.withUnsafeMutableBytes { p.client.produce(into: $0) }
            let frames = SessionPair.frames(Array(buf[0..<n]))
            let position = frames.firstIndex { if case .data(let s, _, _, _) = $0 { s == shell } else { false } }
            #expect(position != nil, "keystroke not in the first produce call")
            let bulkBefore = frames[..<(position ?? 0)].filter { if case .data = $0 { true } else { false } }.count
            #expect(bulkBefore == 0)
            buf.withUnsafeBytes { p.server.receive(UnsafeRawBufferPointer(rebasing: $0[0..<n]), now: p.now) }
            p.pump()
        }
        #expect(p.serverDelegate.received[shell]?.count == 20)
    }

    /// Bulk streams of one class share the link round-robin: after equal demand, equal service.
    @Test func bulkStreamsAreServedFairly() throws {
        let p = SessionPair()
        var ids: [UInt32] = []
        for i in 0..<4 { ids.append(try p.client.open(target: "b\(i)")) }
        p.pump()
        let block = randomBytes(128 * 1024, seed: 12)
        for id in ids { _ = p.client.write(id, block) }
        // Take 8 frames' worth of output only.
        var buf = [UInt8](repeating: 0, count: 8 * (16 * 1024 + FrameHeader.size))
        let n = buf.withUnsafeMutableBytes { p.client.produce(into: $0) }
        var perStream: [UInt32: Int] = [:]
        for case .data(let s, _, _, _) in SessionPair.frames(Array(buf[0..<n])) { perStream[s, default: 0] += 1 }
        #expect(perStream.count == 4)
        #expect(perStream.values.allSatisfy { $0 == 2 }, "\(perStream)")
    }

    @Test func controlFramesGoBeforeQueuedData() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        _ = p.client.write(id, randomBytes(200_000, seed: 13))
        p.client.ping()
        var buf = [UInt8](repeating: 0, count: 20_000)
        let n = buf.withUnsafeMutableBytes { p.client.produce(into: $0) }
        let first = SessionPair.frames(Array(buf[0..<n])).first
        if case .ping = first {} else { Issue.record("PING should lead, got \(String(describing: first))") }
    }

    @Test func dataFramesRespectConfiguredSize() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        _ = p.client.write(id, randomBytes(100_000, seed: 14))
        let frames = SessionPair.frames(p.drain(p.client))
        for case .data(_, _, _, let payload) in frames { #expect(payload.count <= 16 * 1024 + 4) }
    }
}
