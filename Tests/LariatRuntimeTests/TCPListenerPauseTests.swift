import Testing
@testable import LariatRuntime

/// Backpressure on accept: a paused listener leaves clients in the kernel's listen backlog
/// (their connects succeed) and takes them, held one first, when resumed.
@Suite struct TCPListenerPauseTests {
    @Test func pausedListenerLeavesClientsInTheBacklogUntilResumed() throws {
        let clients = 5
        let harness = LoopHarness()
        var accepted = 0
        var acceptedWhilePaused = -1
        var resumes = 0
        try harness.run {
            var listener: TCPListener!
            listener = try TCPListener(loop: harness.loop, port: 0) { connection in
                accepted += 1
                harness.track(connection)
                if accepted == clients { return harness.finish() }
                // Pause after every connection and resume on a later turn of the loop: each
                // resume must take the connection libuv held and start polling again.
                listener.pauseAccepting()
                harness.loop.schedule(afterMilliseconds: 1) {
                    resumes += 1
                    listener.resumeAccepting()
                }
            }
            harness.onFinish { listener.close() }
            listener.pauseAccepting()
            var connected = 0
            for _ in 0..<clients {
                TCPConnection.connect(loop: harness.loop, host: "127.0.0.1", port: listener.port) { result in
                    guard case .success(let c) = result else { return harness.finish() }
                    harness.track(c)
                    connected += 1
                    guard connected == clients else { return }
                    // Every client completed its handshake in the kernel; give the loop turns to
                    // poll the listener, which must not hand any of them over while paused.
                    harness.loop.schedule(afterMilliseconds: 50) {
                        acceptedWhilePaused = accepted
                        listener.resumeAccepting()
                    }
                }
            }
        }
        #expect(!harness.timedOut)
        #expect(acceptedWhilePaused == 0)
        #expect(accepted == clients)
        #expect(resumes == clients - 1)
    }
}
