import Testing
@testable import LariatProtocol

@Suite struct FlowControlTests {
    /// A receiver that does not consume holds the sender at exactly the initial window, and the
    /// sender never exceeds it.
    @Test func senderStopsAtStreamWindowUntilConsumed() throws {
        let p = SessionPair()
        let window = SessionConfig().initialStreamWindow
        p.serverDelegate.autoConsume = false
        let id = try p.client.open(target: "x")
        p.pump()
        var sent = 0
        let block = randomBytes(64 * 1024, seed: 7)
        for _ in 0..<20 {
            sent += p.client.write(id, block)
            p.pump()
        }
        #expect(p.serverDelegate.received[id]?.count == window)
        let s = p.server.slot(id)!
        #expect(p.server.slots[s].recvCredit == 0)
        #expect(p.server.slots[s].delivered == window)
        // Consuming returns credit and the transfer continues.
        p.server.consumed(id, window)
        p.pump()
        #expect(p.serverDelegate.received[id]!.count > window)
        #expect(sent > window)
    }

    /// Session credit bounds the sum over streams: the hard memory cap.
    @Test func sessionWindowCapsAllStreamsTogether() throws {
        var cfg = SessionConfig()
        cfg.sessionWindow = 512 * 1024
        let p = SessionPair(serverConfig: cfg)
        p.serverDelegate.autoConsume = false
        var ids: [UInt32] = []
        for i in 0..<8 { ids.append(try p.client.open(target: "s\(i)")) }
        p.pump()
        let block = randomBytes(200 * 1024, seed: 8)
        for _ in 0..<3 {
            for id in ids { _ = p.client.write(id, block) }
            p.pump()
        }
        let total = p.serverDelegate.received.values.reduce(0) { $0 + $1.count }
        #expect(total == 512 * 1024)
        #expect(p.server.sessionDelivered == 512 * 1024)
        #expect(p.client.sessionSendCredit == 0)
    }

    @Test func exceedingStreamWindowResetsStream() throws {
        var cfg = SessionConfig()
        cfg.initialStreamWindow = 16 * 1024
        let p = SessionPair(serverConfig: cfg)
        p.serverDelegate.autoConsume = false
        let id = try p.client.open(target: "x")
        p.pump()
        // Hand-made frames that ignore the window.
        for _ in 0..<2 {
            p.injectToServer(Frame.data(stream: id, fin: false, compressed: false, payload: [UInt8](repeating: 1, count: 10_000)).encode())
        }
        #expect(p.serverDelegate.events.contains(.reset(id, .flowControlError, "DATA exceeds the stream window")))
        #expect(p.server.state == .established)
    }

    @Test func exceedingSessionWindowIsFatal() throws {
        var cfg = SessionConfig()
        cfg.sessionWindow = 20_000
        cfg.initialStreamWindow = 1 << 20
        let p = SessionPair(serverConfig: cfg)
        p.serverDelegate.autoConsume = false
        let id = try p.client.open(target: "x")
        p.pump()
        for _ in 0..<3 {
            p.injectToServer(Frame.data(stream: id, fin: false, compressed: false, payload: [UInt8](repeating: 1, count: 10_000)).encode())
        }
        #expect(p.server.state == .ended)
        if case .localError(let v) = p.serverDelegate.endReason { #expect(v.code == .flowControlError) }
        else { Issue.record("expected flow control error") }
    }

    @Test func windowOverflowIsRejected() throws {
        let p = SessionPair()
        p.injectToClient(Frame.window(stream: 0, increment: UInt32(Int32.max)).encode())
        #expect(p.client.state == .ended)
    }

    /// With a measured RTT and a consumer that keeps up, the window doubles toward the BDP.
    @Test func windowAutoTunesUpWhenTheWindowIsTheBottleneck() throws {
        let p = SessionPair()
        // Measure an RTT of 20 ms on the server (the receiver).
        p.server.ping()
        p.transfer(from: p.server, to: p.client, up: false)
        p.now += 20_000_000
        p.transfer(from: p.client, to: p.server, up: true)
        #expect(p.server.minRTT == 20_000_000)
        let id = try p.client.open(target: "x")
        p.pump()
        let block = randomBytes(256 * 1024, seed: 9)
        for _ in 0..<40 {
            _ = p.client.write(id, block)
            p.pump()
        }
        let s = p.server.slot(id)!
        #expect(p.server.stats.windowGrowths > 0)
        #expect(p.server.slots[s].recvWindow > 256 * 1024)
        #expect(p.server.slots[s].recvWindow <= 16 * 1024 * 1024)
    }

    /// Under memory pressure (most of the session window delivered but not consumed) windows shrink.
    @Test func windowsShrinkUnderMemoryPressure() throws {
        var cfg = SessionConfig()
        cfg.sessionWindow = 1 << 20
        cfg.initialStreamWindow = 256 * 1024
        cfg.minStreamWindow = 64 * 1024
        let p = SessionPair(serverConfig: cfg)
        p.serverDelegate.autoConsume = false
        let a = try p.client.open(target: "a")
        let b = try p.client.open(target: "b")
        let c = try p.client.open(target: "c")
        p.pump()
        let block = randomBytes(256 * 1024, seed: 10)
        for id in [a, b, c] { _ = p.client.write(id, block) }
        p.pump()
        #expect(p.server.sessionDelivered == 768 * 1024)
        // Consume a little on one stream while pressure is high: the grant is withheld.
        p.server.consumed(a, 200 * 1024)
        let s = p.server.slot(a)!
        #expect(p.server.slots[s].recvWindow < 256 * 1024)
        #expect(p.server.slots[s].recvWindow >= 64 * 1024)
    }
}

@Suite struct DelayBasedTuningTests {
    /// A stream with a 1 MiB window on a path whose latest round trip (20 ms) is far above its
    /// unloaded one (1 ms), with `others` more streams open on the session (sending a little
    /// just before when `othersActive`): 100 kB go through and are consumed, then the receiver
    /// computes the stream's next WINDOW.
    private func windowUpdateUnderQueueing(others: Int, othersActive: Bool = true) throws -> (SessionPair, Int) {
        let p = SessionPair()
        p.serverDelegate.autoConsume = false
        let id = try p.client.open(target: "bulk")
        var otherIDs: [UInt32] = []
        for i in 0..<others { otherIDs.append(try p.client.open(target: "other-\(i)")) }
        p.pump()
        if othersActive {
            for other in otherIDs { _ = p.client.write(other, randomBytes(1000, seed: 7)) }
            p.pump()
        }
        let s = try #require(p.server.slot(id))
        p.server.slots[s].recvWindow = 1 << 20
        p.server.minRTT = 1_000_000
        p.server.lastRTT = 20_000_000
        _ = p.client.write(id, randomBytes(100_000, seed: 31))
        p.pump()
        p.server.consumed(id, p.serverDelegate.received[id]?.count ?? 0)
        p.server.sendStreamWindow(s)
        return (p, s)
    }

    /// Round trips well above the path's minimum mean our window is filling socket buffers:
    /// with another stream sharing the session, a grown window shrinks back toward the
    /// initial size instead of growing further.
    @Test func queueingDelayShrinksAGrownWindow() throws {
        let (p, s) = try windowUpdateUnderQueueing(others: 1)
        #expect(p.server.slots[s].recvWindow < 1 << 20)
        #expect(p.server.slots[s].recvWindow >= SessionConfig().initialStreamWindow)
        #expect(p.server.stats.windowShrinks > 0)
        #expect(p.server.stats.windowGrowths == 0)
    }

    /// An open but idle second stream (iperf3's control connection, a quiet shell) does not make
    /// the session contended: the busy stream grows as if alone.
    @Test func anIdleSecondStreamDoesNotHoldTheBusyOneBack() throws {
        let (p, s) = try windowUpdateUnderQueueing(others: 1, othersActive: false)
        #expect(p.server.slots[s].recvWindow == 2 << 20)
        #expect(p.server.stats.windowShrinks == 0)
    }

    /// The queue a lone stream builds delays nobody else: its window keeps growing while half
    /// a window goes through within two current round trips, even though those are far above
    /// the unloaded one (a CPU-bound loopback path looks exactly like this).
    @Test func aLoneStreamIsNotHeldBackByQueueingDelay() throws {
        let (p, s) = try windowUpdateUnderQueueing(others: 0)
        #expect(p.server.slots[s].recvWindow == 2 << 20)
        #expect(p.server.stats.windowShrinks == 0)
        #expect(p.server.stats.windowGrowths == 1)
    }

    /// While data flows, the receiver keeps a PING in flight so it sees current round trips.
    @Test func windowUpdatesProbeTheRoundTrip() throws {
        let p = SessionPair()
        let id = try p.client.open(target: "x")
        p.pump()
        p.now += 5_000_000
        _ = p.client.write(id, randomBytes(200_000, seed: 32))
        p.transfer(from: p.client, to: p.server, up: true)
        p.transfer(from: p.client, to: p.server, up: true)
        let out = SessionPair.frames(p.drain(p.server))
        #expect(out.contains { if case .ping = $0 { true } else { false } },
                "outstanding since \(p.server.pingOutstandingSince), minRTT \(p.server.minRTT), frames \(out.count)")
    }
}
