import Testing
@testable import LariatProtocol

@Suite struct FlowControlTests {
    /// A receiver that does not consume holds the sender at exactly the initial window, and the
    /// sender never exceeds it.
    @Test func senderStopsAtStreamWindowUntilConsumed() throws {
        let p = SessionPair()
        p.serverDelegate.autoConsume = false
        let id = try p.client.open(target: "x")
        p.pump()
        var sent = 0
        let block = randomBytes(64 * 1024, seed: 7)
        for _ in 0..<20 {
            sent += p.client.write(id, block)
            p.pump()
        }
        #expect(p.serverDelegate.received[id]?.count == 256 * 1024)
        let s = p.server.slot(id)!
        #expect(p.server.slots[s].recvCredit == 0)
        #expect(p.server.slots[s].delivered == 256 * 1024)
        // Consuming returns credit and the transfer continues.
        p.server.consumed(id, 256 * 1024)
        p.pump()
        #expect(p.serverDelegate.received[id]!.count > 256 * 1024)
        #expect(sent > 256 * 1024)
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
