import Testing
@testable import LariatProtocol

/// Issue #7: bounded control replies, OPEN deadlines, and liveness that is fast when work is
/// waiting but patient with an idle session.
@Suite struct HardeningTests {
    static let second: UInt64 = 1_000_000_000

    static func pings(_ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        for i in 0..<n { out += Frame.ping(opaque: UInt64(i)).encode() }
        return out
    }

    static func timeoutCode(_ d: RecordingDelegate) -> ErrorCode? {
        if case .localError(let v) = d.endReason { return v.code }
        return nil
    }

    // MARK: Control flood

    @Test func pingFloodWithoutReadingEndsTheSessionWithMemoryLimit() {
        var config = SessionConfig()
        config.maxQueuedControlFrames = 100
        let p = SessionPair(serverConfig: config)
        p.injectToServer(Self.pings(100))
        #expect(p.server.state == .established)
        p.injectToServer(Self.pings(1))
        #expect(p.server.state == .ended)
        #expect(Self.timeoutCode(p.serverDelegate) == .memoryLimit)
        // The GOAWAY follows the queued PONGs.
        let frames = SessionPair.frames(p.drain(p.server))
        #expect(frames.last.map { if case .goAway(_, .memoryLimit, _) = $0 { true } else { false } } == true)
    }

    @Test func aPeerThatReadsItsPongsIsNeverCut() {
        var config = SessionConfig()
        config.maxQueuedControlFrames = 100
        let p = SessionPair(serverConfig: config)
        for _ in 0..<20 {
            p.injectToServer(Self.pings(90))
            _ = p.drain(p.server) // the transport takes the PONGs
        }
        #expect(p.server.state == .established)
    }

    @Test func refusedOpenFloodCountsAsReplies() {
        var config = SessionConfig()
        config.maxQueuedControlFrames = 50
        config.maxPendingOpens = 1
        let p = SessionPair(serverConfig: config)
        p.serverDelegate.autoAccept = false
        var flood: [UInt8] = []
        for i in 0..<60 { flood += Frame.open(stream: UInt32(2 * i + 1), streamClass: .bulk, window: 65536, target: "x").encode() }
        p.injectToServer(flood)
        #expect(p.server.state == .ended)
        #expect(Self.timeoutCode(p.serverDelegate) == .memoryLimit)
    }

    // MARK: OPEN deadline

    @Test func openWithoutAnswerFailsWithTimeoutWhileThePeerStaysAlive() throws {
        let p = SessionPair()
        p.clientDelegate.autoAccept = false // the agent never answers the OPEN, but answers PINGs
        let id = try p.server.open(target: "tcp:10.0.0.1:22")
        p.pump()
        let deadline = p.server.config.openTimeoutNanos
        var failedAt: UInt64?
        let start = p.now
        for _ in 0..<30 {
            p.now += Self.second
            p.server.tick(now: p.now); p.client.tick(now: p.now)
            p.pump()
            if failedAt == nil, p.serverDelegate.events.contains(where: { if case .openFailed(id, .timeout, _) = $0 { true } else { false } }) {
                failedAt = p.now - start
            }
        }
        let t = try #require(failedAt)
        #expect(t > deadline && t <= deadline + Self.second)
        #expect(p.server.state == .established && p.client.state == .established)
        #expect(p.server.streamCount == 0)
        // The peer was told: its pending OPEN is reset, so a late accept is a no-op.
        #expect(p.clientDelegate.events.contains { if case .reset(id, .timeout, _) = $0 { true } else { false } })
        #expect(!p.client.isAwaitingAccept(id))
    }

    @Test func answeredOpenIsNotExpired() throws {
        let p = SessionPair()
        let id = try p.server.open(target: "x")
        p.pump()
        for _ in 0..<20 {
            p.now += Self.second
            p.server.tick(now: p.now); p.client.tick(now: p.now)
            p.pump()
        }
        #expect(p.server.streamCount == 1)
        #expect(!p.serverDelegate.events.contains { if case .openFailed(id, _, _) = $0 { true } else { false } })
    }

    // MARK: Liveness

    @Test func stoppedPeerWithAnOutstandingOpenIsDeclaredDeadWithinTheLivenessTimeout() throws {
        let p = SessionPair()
        let start = p.now
        let id = try p.server.open(target: "x")
        // The OPEN goes out with a PING; the agent is stopped: nothing comes back.
        let sent = SessionPair.frames(p.drain(p.server))
        #expect(sent.contains { if case .ping = $0 { true } else { false } })
        var endedAt: UInt64?
        for _ in 0..<30 where endedAt == nil {
            p.now += Self.second
            p.server.tick(now: p.now)
            if p.server.state == .ended { endedAt = p.now - start }
        }
        let t = try #require(endedAt)
        #expect(t > p.server.config.livenessTimeoutNanos && t <= p.server.config.livenessTimeoutNanos + Self.second)
        #expect(Self.timeoutCode(p.serverDelegate) == .timeout)
        #expect(p.serverDelegate.events.contains { if case .openFailed(id, .timeout, _) = $0 { true } else { false } })
    }

    @Test func unacknowledgedDataMakesSilenceFatalFast() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        p.now += 20 * Self.second // long idle, keepalive answered
        p.client.tick(now: p.now); p.pump()
        _ = p.client.write(id, [1, 2, 3])
        _ = p.drain(p.client) // sent; the hub is cut off from here on
        let start = p.now
        for _ in 0..<10 where p.client.state != .ended {
            p.now += Self.second
            p.client.tick(now: p.now)
        }
        #expect(p.client.state == .ended)
        #expect(p.now - start <= p.client.config.livenessTimeoutNanos + 2 * Self.second)
        #expect(Self.timeoutCode(p.clientDelegate) == .timeout)
    }

    @Test func idleSessionRidesOutALongPartitionWithItsStreams() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        // 60 s with nothing crossing in either direction; both ends tick.
        for _ in 0..<60 {
            p.now += Self.second
            p.client.tick(now: p.now); p.server.tick(now: p.now)
            _ = p.drain(p.client); _ = p.drain(p.server) // lost in the partition
        }
        #expect(p.client.state == .established && p.server.state == .established)
        #expect(p.client.streamCount == 1 && p.server.streamCount == 1)
        // The partition heals: the stream still works.
        p.pump()
        _ = p.client.write(id, [7])
        p.pump()
        #expect(p.serverDelegate.received[id] == [7])
        // A silence longer than the idle timeout still ends it.
        p.now += p.client.config.idleTimeoutNanos + Self.second
        p.client.tick(now: p.now)
        #expect(p.client.state == .ended)
        #expect(Self.timeoutCode(p.clientDelegate) == .timeout)
    }

    @Test func livePeerWithPendingWorkIsKept() throws {
        let p = SessionPair()
        p.clientDelegate.autoAccept = false
        _ = try p.server.open(target: "slow dial")
        for _ in 0..<12 {
            p.now += Self.second
            p.server.tick(now: p.now); p.client.tick(now: p.now)
            p.pump()
        }
        #expect(p.server.state == .established)
    }
}
