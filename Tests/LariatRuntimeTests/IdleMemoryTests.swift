import Testing
import LariatProtocol
@testable import LariatRuntime
import LariatTestSupport
import LariatTunnel

/// What an idle connection holds: nothing of the buffers a transfer needs (a hub's memory per
/// idle agent was 150 KiB, most of it a 128 KiB tunnel output buffer, a 64 KiB TLS plaintext
/// buffer and OpenSSL's two record buffers that each connection kept for life).
@Suite struct IdleMemoryTests {
    /// Nested borrowers get distinct buffers; given-back ones are reused, up to `keep`.
    @Test func loopBufferPoolLendsDistinctBuffersAndReusesThem() {
        let pool = LoopBufferPool(byteCount: 1024, keep: 2)
        let a = pool.take(), b = pool.take()
        #expect(a.baseAddress != b.baseAddress)
        #expect(a.count == 1024 && b.count == 1024)
        pool.give(a)
        let c = pool.take()
        #expect(c.baseAddress == a.baseAddress)
        let d = pool.take()
        pool.give(b); pool.give(c); pool.give(d)
        #expect(pool.idleCount == 2)
    }

    /// A write queue used in the last period keeps its storage; one unused for a whole period
    /// gives it back.
    @Test func aWriteQueueUnusedForAPeriodGivesItsStorageBack() {
        let queue = ByteQueue()
        ([1, 2, 3] as [UInt8]).withUnsafeBytes { queue.append($0) }
        queue.consume(3)
        #expect(queue.allocatedBytes > 0)
        queue.releaseStorageIfIdle()          // appended since the last check: kept
        #expect(queue.allocatedBytes > 0)
        queue.releaseStorageIfIdle()          // a whole period unused: freed
        #expect(queue.allocatedBytes == 0)
        ([4] as [UInt8]).withUnsafeBytes { queue.append($0) }
        queue.releaseStorageIfIdle()
        queue.releaseStorageIfIdle()          // not empty: kept whatever the period
        #expect(queue.allocatedBytes > 0 && queue.count == 1)
    }

    /// A whole tunnel over TLS on memory streams: once established, neither end holds TLS
    /// buffers between records (they start light); a bulk transfer makes both ends keep their
    /// record buffers (no allocation per record); a run of PINGs afterwards, a quiet gap apart,
    /// frees them again.
    @Test func tlsBuffersFollowTheTunnelsTraffic() throws {
        let total = 4 << 20
        let harness = LoopHarness()
        var rig: MemoryTunnel!
        var idleAtStart: [Bool] = []
        var sawBusy = (hub: false, agent: false)
        var idleAfterPings: [Bool] = []
        var pooledAfterPings = 0
        try harness.run(deadlineMilliseconds: 60_000) {
            rig = try MemoryTunnel(loop: harness.loop)
            harness.onFinish { rig.closeTransports() }
            rig.onTarget = { _, target in
                harness.track(target)
                target.start(handler: EchoServer())
            }
            func idle(_ tls: TLSConnection) -> Bool {
                tls.engine.releasesRecordBuffers && tls.engine.outputBufferCapacity == 0
            }
            rig.onEstablished = {
                _ = harness.loop.schedule(afterMilliseconds: 0) {
                    idleAtStart = [idle(rig.hubTLS), idle(rig.agentTLS)]
                    let watch = UVTimer(loop: harness.loop)
                    watch.start(afterMilliseconds: 1, repeatMilliseconds: 1) {
                        if !rig.hubTLS.engine.releasesRecordBuffers { sawBusy.hub = true }
                        if !rig.agentTLS.engine.releasesRecordBuffers { sawBusy.agent = true }
                    }
                    harness.onFinish { watch.close() }
                    let client = BulkClient(sendTotal: total, expectReceive: total)
                    let stream = try! rig.openStream()
                    harness.track(stream.user)
                    stream.user.start(handler: client)
                    client.pump(stream.user)
                    client.onDone = {
                        // PINGs a quiet gap apart: each exchange is light traffic.
                        let gap = TLSConnection.quietGapNanos / 1_000_000 + 5
                        var pongs = 0
                        rig.hub.onRoundTrip = { _ in
                            pongs += 1
                            guard pongs == TLSConnection.lightOperationsBeforeRelease else {
                                _ = harness.loop.schedule(afterMilliseconds: gap) { rig.hub.ping() }
                                return
                            }
                            _ = harness.loop.schedule(afterMilliseconds: 0) {
                                idleAfterPings = [idle(rig.hubTLS), idle(rig.agentTLS)]
                                pooledAfterPings = harness.loop.bufferPool(byteCount: 64 * 1024).idleCount
                                harness.finish()
                            }
                        }
                        _ = harness.loop.schedule(afterMilliseconds: gap) { rig.hub.ping() }
                    }
                }
            }
        }
        #expect(!harness.timedOut)
        #expect(idleAtStart == [true, true])
        #expect(sawBusy.hub && sawBusy.agent)
        #expect(idleAfterPings == [true, true])
        // Every connection's plaintext buffer went back to the loop's pool.
        #expect(pooledAfterPings >= 1)
    }
}
