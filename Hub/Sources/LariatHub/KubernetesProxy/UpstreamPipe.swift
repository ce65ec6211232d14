import LariatRuntime

/// What the far end of an `UpstreamPipe` hears: the proxy code that speaks HTTP (or splices a
/// session) over a tunnel stream. Loop-confined, like the pipe.
protocol UpstreamPipeOwner: AnyObject {
    /// Bytes from the agent (the API server's answer).
    func pipeReceived(_ bytes: UnsafeRawBufferPointer)
    /// The agent finished sending (FIN).
    func pipeFinished()
    /// The stream is over; `reset` when it ended abnormally (refused, reset, tunnel lost).
    func pipeClosed(reset: Bool)
    /// The tunnel stream's send buffer is full / has room again: stop / resume sending.
    func pipePause()
    func pipeResume()
    /// Bytes handed over by `pipeReceived` that have not left the process yet (the client's unsent
    /// backlog): the stream's credit is returned only for the rest, so a slow client stalls the agent.
    var pipeBacklog: Int { get }
}

/// The proxy's end of a tunnel stream, presented to `StreamBridge` as if it were a socket, so
/// the bridge's flow control, half-close and reset handling serve HTTP exchanges as they serve
/// forwarded connections. Writes go to the owner synchronously (no buffer here); the owner
/// sends with `send`, which is the bridge's "socket read". Loop-confined.
final class UpstreamPipe: ByteStream {
    let loop: UVLoop
    /// Cleared when the pipe closes (breaking the owner ↔ pipe cycle).
    var owner: (any UpstreamPipeOwner)?
    private var handler: (any ByteStreamHandler)?
    private(set) var isClosed = false
    private(set) var isSendPaused = false

    init(loop: UVLoop, owner: any UpstreamPipeOwner) {
        self.loop = loop
        self.owner = owner
    }

    // MARK: ByteStream (the bridge's side)

    func start(handler: any ByteStreamHandler) { self.handler = handler }
    func write(_ bytes: UnsafeRawBufferPointer) {
        guard !isClosed else { return }
        owner?.pipeReceived(bytes)
    }
    var bufferedWriteBytes: Int { owner?.pipeBacklog ?? 0 }
    func pauseReading() {
        isSendPaused = true
        owner?.pipePause()
    }
    func resumeReading() {
        isSendPaused = false
        owner?.pipeResume()
    }
    func shutdownWrite() {
        guard !isClosed else { return }
        owner?.pipeFinished()
    }
    func close() { finish(reset: false) }
    func closeWithReset() { finish(reset: true) }

    // MARK: The owner's side

    /// Bytes toward the agent (taken by the session, or held by the bridge while it is full).
    func send(_ bytes: UnsafeRawBufferPointer) {
        guard !isClosed, bytes.count > 0 else { return }
        handler?.streamDidRead(self, bytes)
    }
    func send(_ bytes: [UInt8]) { bytes.withUnsafeBytes { send($0) } }

    /// The owner has nothing more to send (the client half-closed its side of a session).
    func sendEOF() {
        guard !isClosed else { return }
        handler?.streamDidReadEOF(self)
    }

    /// The owner's backlog went down: the bridge may return credit.
    func ownerDrained() {
        guard !isClosed else { return }
        handler?.streamDidDrain(self)
    }

    /// The owner gives the stream up: the bridge resets it (unless the session is done with it).
    func abandon() { finish(reset: true) }

    private func finish(reset: Bool) {
        guard !isClosed else { return }
        isClosed = true
        let o = owner
        owner = nil
        o?.pipeClosed(reset: reset)
        // ByteStream promises `streamDidClose` asynchronously, after the call that closed it.
        let h = handler
        handler = nil
        loop.schedule(afterMilliseconds: 0) { [self] in h?.streamDidClose(self) }
    }
}
