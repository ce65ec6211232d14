import Testing
@testable import LariatProtocol

/// Issue #11: a burst of opens is queued by the opener, never more than the peer's guaranteed
/// `maxPendingOpens` unanswered at once, so the peer refuses none of them.
@Suite struct OpenQueueTests {
    static let second: UInt64 = 1_000_000_000

    static func opened(_ d: RecordingDelegate) -> [UInt32] {
        d.events.compactMap { if case .opened(let id) = $0 { id } else { nil } }
    }
    static func requested(_ d: RecordingDelegate) -> [UInt32] {
        d.events.compactMap { if case .openRequested(let id, _, _) = $0 { id } else { nil } }
    }
    static func failed(_ d: RecordingDelegate) -> [(UInt32, ErrorCode)] {
        d.events.compactMap { if case .openFailed(let id, let c, _) = $0 { (id, c) } else { nil } }
    }

    /// The hub opens 1,000 streams at once to an agent that dials before accepting (default
    /// limits on both sides): every one is opened, in order, and none is refused.
    @Test func aBurstBeyondThePeersPendingLimitIsQueuedNotRefused() throws {
        let p = SessionPair()
        p.clientDelegate.autoAccept = false
        var ids: [UInt32] = []
        for i in 0..<1000 {
            let id = try p.server.open(target: "tcp:127.0.0.1:\(i)")
            ids.append(id)
            // Bytes a user sent before the agent answered wait in the stream's buffer.
            _ = [UInt8]("hello \(i)".utf8).withUnsafeBytes { p.server.write(id, $0) }
        }
        #expect(p.server.queuedOpenCount == 1000 - ProtocolLimits.guaranteedPendingOpens)
        p.pump()
        #expect(Self.requested(p.clientDelegate).count == ProtocolLimits.guaranteedPendingOpens)
        // The agent accepts what reached it, as its dials complete; answers release the queue.
        var accepted = 0
        while accepted < 1000 {
            let waiting = Self.requested(p.clientDelegate)
            #expect(waiting.count - accepted <= ProtocolLimits.guaranteedPendingOpens)
            guard waiting.count > accepted else { break }
            for id in waiting[accepted...] { p.client.accept(id) }
            accepted = waiting.count
            p.pump()
        }
        #expect(Self.failed(p.serverDelegate).isEmpty)
        #expect(Self.requested(p.clientDelegate) == ids)  // FIFO: ids reach the peer in order
        #expect(Self.opened(p.serverDelegate).count == 1000)
        #expect(p.server.queuedOpenCount == 0)
        #expect(p.clientDelegate.received[ids[999]] == Array("hello 999".utf8))
        #expect(p.client.state == .established && p.server.state == .established)
    }

    @Test func beyondTheQueueBoundOpenThrowsNamingTheLimit() throws {
        var config = SessionConfig()
        config.maxOutstandingOpens = 2
        config.maxQueuedOpens = 3
        let p = SessionPair(serverConfig: config)
        p.clientDelegate.autoAccept = false
        for _ in 0..<5 { _ = try p.server.open(target: "x") }
        #expect(throws: SessionError.openQueueFull(limit: 3)) { try p.server.open(target: "x") }
        p.pump()
        #expect(Self.requested(p.clientDelegate).count == 2)
    }

    /// A user that goes away while queued: its stream is dropped without a RESET (the peer
    /// never saw the id) and the next queued open takes its turn.
    @Test func aStreamResetWhileQueuedIsDroppedSilently() throws {
        var config = SessionConfig()
        config.maxOutstandingOpens = 1
        let p = SessionPair(serverConfig: config)
        p.clientDelegate.autoAccept = false
        let a = try p.server.open(target: "a")
        let b = try p.server.open(target: "b")
        let c = try p.server.open(target: "c")
        p.pump()
        p.server.reset(b)
        #expect(p.server.queuedOpenCount == 1)
        p.pump()
        #expect(Self.requested(p.clientDelegate) == [a])
        p.client.accept(a)
        p.pump()
        #expect(Self.requested(p.clientDelegate) == [a, c])
        #expect(p.client.state == .established)
        #expect(!p.clientDelegate.events.contains { if case .reset = $0 { true } else { false } })
    }

    @Test func aQueuedOpenWaitsAtMostItsDeadline() throws {
        var config = SessionConfig()
        config.maxOutstandingOpens = 1
        config.openTimeoutNanos = 1000 * Self.second
        config.openQueueTimeoutNanos = 5 * Self.second
        let p = SessionPair(serverConfig: config)
        p.clientDelegate.autoAccept = false
        let a = try p.server.open(target: "a")
        let b = try p.server.open(target: "b")
        p.pump()
        for _ in 0..<7 {
            p.now += Self.second
            p.server.tick(now: p.now)
            p.client.tick(now: p.now)
            p.pump()
        }
        let failures = Self.failed(p.serverDelegate)
        #expect(failures.map(\.0) == [b])
        #expect(failures.first?.1 == .timeout)
        #expect(p.server.queuedOpenCount == 0)
        // The sent OPEN is still waiting for its (longer) OPEN deadline.
        #expect(Self.requested(p.clientDelegate) == [a])
        #expect(p.server.state == .established)
    }

    @Test func queuedOpensFailAsRefusedWhenThePeerGoesAway() throws {
        var config = SessionConfig()
        config.maxOutstandingOpens = 1
        let p = SessionPair(serverConfig: config)
        p.clientDelegate.autoAccept = false
        _ = try p.server.open(target: "a")
        let b = try p.server.open(target: "b")
        p.pump()
        p.client.goAway(reason: "restart")
        p.pump()
        #expect(Self.failed(p.serverDelegate).contains { $0.0 == b && $0.1 == .refused })
        #expect(p.server.queuedOpenCount == 0)
    }

    @Test func queuedOpensFailAsRefusedWhenThisEndGoesAway() throws {
        var config = SessionConfig()
        config.maxOutstandingOpens = 1
        let p = SessionPair(serverConfig: config)
        p.clientDelegate.autoAccept = false
        _ = try p.server.open(target: "a")
        let b = try p.server.open(target: "b")
        p.server.goAway(reason: "drain")
        #expect(Self.failed(p.serverDelegate).map(\.0) == [b])
        p.pump()
        #expect(Self.requested(p.clientDelegate).count == 1)
    }
}
