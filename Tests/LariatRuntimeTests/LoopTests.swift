import Testing
import Synchronization
import Foundation
@testable import LariatRuntime

final class Tally: Sendable {
    let ran = Atomic<Int>(0)
    let onLoopThread = Atomic<Int>(0)
}

@Suite struct LoopTests {
    @Test func executorRunsPostsFromAnotherThreadOnTheLoopThread() {
        let loop = UVLoop()
        let tally = Tally()
        let count = 1000
        let poster = Thread {
            for _ in 0..<count {
                loop.execute {
                    tally.ran.wrappingAdd(1, ordering: .relaxed)
                    if loop.isInLoopThread { tally.onLoopThread.wrappingAdd(1, ordering: .relaxed) }
                }
            }
            loop.execute { loop.stop() }  // FIFO: runs after the 1000
        }
        // Deadline, in case a post were lost.
        let deadline = UVTimer(loop: loop)
        deadline.start(afterMilliseconds: 10_000) { loop.stop() }
        poster.start()
        loop.run()
        deadline.close()
        loop.close()
        #expect(tally.ran.load(ordering: .relaxed) == count)
        #expect(tally.onLoopThread.load(ordering: .relaxed) == count)
        #expect(!loop.execute {})  // closed loops refuse work
    }

    @Test func loopGroupRoundRobinsAcrossThreads() {
        let group = LoopGroup(count: 2)
        #expect(group.next() !== group.next())
        let tally = Tally()
        let done = Mutex<[Bool]>([])
        for loop in group.loops {
            loop.execute {
                if loop.isInLoopThread { tally.onLoopThread.wrappingAdd(1, ordering: .relaxed) }
                done.withLock { $0.append(true) }
            }
        }
        let start = UVLoop.now
        while done.withLock({ $0.count }) < 2 && UVLoop.now - start < 5_000_000_000 { usleep(1000) }
        group.shutdown()
        #expect(tally.onLoopThread.load(ordering: .relaxed) == 2)
    }

    @Test func repeatingTimerFiresAndStops() {
        let loop = UVLoop()
        let timer = UVTimer(loop: loop)
        var fired = 0
        let before = loop.now
        timer.start(afterMilliseconds: 5, repeatMilliseconds: 5) {
            fired += 1
            if fired == 3 {
                timer.close()
                loop.stop()
            }
        }
        let deadline = loop.schedule(afterMilliseconds: 5_000) { loop.stop() }
        loop.run()
        deadline.close()
        loop.close()
        #expect(fired == 3)
        #expect(loop.now - before >= 10_000_000)  // at least two periods elapsed, in ns
    }
}

@Suite struct SignalTests {
    @Test func signalIsDeliveredOnTheLoop() throws {
        let loop = UVLoop()
        var received: Int32 = 0
        var onLoop = false
        let watcher = try SignalWatcher(loop: loop, signals: [SIGUSR2]) { signal in
            received = signal
            onLoop = loop.isInLoopThread
            loop.stop()
        }
        let deadline = loop.schedule(afterMilliseconds: 5_000) { loop.stop() }
        // kill(), not raise(): the test thread may have signals blocked; any thread may take it.
        loop.schedule(afterMilliseconds: 1) { kill(getpid(), SIGUSR2) }
        loop.run()
        watcher.close()
        deadline.close()
        loop.close()
        #expect(received == SIGUSR2)
        #expect(onLoop)
    }
}

@Suite struct LoopShutdownTests {
    /// Connections, listeners and timers left open are closed by loop.close() through their
    /// owners: handlers get exactly one streamDidClose.
    @Test func closingTheLoopClosesLeftoversThroughTheirOwners() throws {
        let loop = UVLoop()
        let client = FailureRecorder()
        let server = FailureRecorder()
        var connected = false
        let listener = try TCPListener(loop: loop, port: 0) { $0.start(handler: server) }
        TCPConnection.connect(loop: loop, host: "127.0.0.1", port: listener.port) { result in
            if case .success(let connection) = result {
                connection.start(handler: client)
                connected = true
                loop.schedule(afterMilliseconds: 20) { loop.stop() }  // let the accept happen
            }
        }
        UVTimer(loop: loop).start(afterMilliseconds: 60_000) {}  // never fires, never closed
        let deadline = loop.schedule(afterMilliseconds: 5_000) { loop.stop() }
        loop.run()
        _ = deadline
        loop.close()  // nothing was closed explicitly
        #expect(connected)
        #expect(client.closed == 1)
        #expect(server.closed == 1)
    }
}
