import LariatProtocol
import LariatRuntime

/// Joins one session stream to one byte stream (the target socket on the agent, the user's
/// socket on the hub), with backpressure both ways:
/// - socket → tunnel: reading pauses while the stream's send buffer is past its high-water
///   mark and resumes on `streamWritable`;
/// - tunnel → socket: flow-control credit is returned (`consumed`) only for bytes the socket
///   has taken, so a slow reader stalls its sender instead of growing a queue here.
/// Half-close travels both ways (socket EOF → FIN; FIN → shutdown of the socket's write side).
/// A reset or a lost tunnel closes the socket with RST, so the user sees an error, never a
/// clean end of a truncated transfer.
public final class StreamBridge: ByteStreamHandler {
    public let id: UInt32
    let tunnel: TunnelConnection
    public let connection: any ByteStream
    var onOpenFailed: ((ErrorCode, String) -> Void)?
    /// Called once when the peer accepts the stream (OPEN_OK) — for an opener that counts
    /// connections still waiting for their answer (a forward listener's accept backpressure).
    public var onOpened: (() -> Void)?
    /// Called once the socket is closed and the bridge is done (a draining hub counts these).
    public var onClosed: (() -> Void)?
    /// Bytes read from the socket (toward the tunnel) and delivered to it (from the tunnel),
    /// for audit lines.
    public private(set) var bytesFromConnection = 0
    public private(set) var bytesToConnection = 0

    /// Bytes written to the socket whose credit has not been returned yet.
    private var unacknowledged = 0
    private var readPaused = false
    private var finished = false    // we sent FIN (socket EOF seen)
    private var sessionDone = false // the session no longer knows this stream
    private var closing = false
    /// Bytes of a socket read the session had no room for (a read larger than the stream's free
    /// send space). Reading stays paused until they are queued; empty on the usual path.
    private var overflow: [UInt8] = []
    private var finishAfterOverflow = false
    /// The send-buffer tail offered as the socket's read buffer (`streamReadBuffer`), until
    /// the read it was offered for completes.
    private var offeredTail: UnsafeMutableRawPointer?
    /// Less contiguous room than this (the ring about to wrap) is not offered: the read then
    /// goes to the loop's large buffer and is copied, rather than becoming a small read.
    static let minimumInPlaceRead = 16 * 1024

    init(tunnel: TunnelConnection, id: UInt32, connection: any ByteStream) {
        self.tunnel = tunnel
        self.id = id
        self.connection = connection
        connection.start(handler: self)
    }

    // MARK: Session side (called by TunnelConnection)

    func opened() {
        onOpened?()
        onOpened = nil
    }

    func openFailed(_ code: ErrorCode, _ message: String) {
        sessionDone = true
        onOpenFailed?(code, message)
        onOpenFailed = nil
        abort()
    }

    /// `borrowable`: `bytes` stay valid until the tunnel flushes borrowed writes at the end of
    /// its read, so the socket may send them without copying (`writeBorrowing`).
    func deliver(_ bytes: UnsafeRawBufferPointer, borrowable: Bool) {
        guard !closing else { tunnel.session.consumed(id, bytes.count); return }
        if borrowable { connection.writeBorrowing(bytes) } else { connection.write(bytes) }
        bytesToConnection += bytes.count
        unacknowledged += bytes.count
        acknowledgeWritten()
    }

    func peerFinished() {
        connection.shutdownWrite()
    }

    func peerReset(_ code: ErrorCode, _ message: String) {
        sessionDone = true
        abort()
    }

    func sessionClosed() {
        sessionDone = true
        // Both directions finished: close once the socket has sent everything.
        if connection.bufferedWriteBytes == 0 { closeGracefully() } else { closing = true }
    }

    func writable() {
        if !overflow.isEmpty {
            let taken = overflow.withUnsafeBytes { tunnel.session.write(id, $0) }
            overflow.removeFirst(taken)
            guard overflow.isEmpty else { return }
            if finishAfterOverflow { tunnel.session.finish(id) }
        }
        if readPaused, !closing {
            readPaused = false
            connection.resumeReading()
        }
    }

    /// Returns credit for what the socket has handed to the kernel.
    private func acknowledgeWritten() {
        let pending = connection.bufferedWriteBytes
        let done = unacknowledged - min(pending, unacknowledged)
        if done > 0 {
            unacknowledged -= done
            tunnel.session.consumed(id, done)
        }
    }

    private func abort() {
        guard !connection.isClosed else { return }
        closing = true
        connection.closeWithReset()
    }

    private func closeGracefully() {
        closing = true
        connection.close()
    }

    // MARK: Socket side

    public func streamReadBuffer(_ stream: any ByteStream) -> UnsafeMutableRawBufferPointer? {
        guard !sessionDone, !closing, overflow.isEmpty else { return nil }
        let tail = tunnel.session.sendTail(id)
        guard tail.count >= Self.minimumInPlaceRead else {
            tunnel.session.releaseSendTail(id)
            return nil
        }
        offeredTail = tail.baseAddress
        return tail
    }

    public func streamDidNotUseReadBuffer(_ stream: any ByteStream) {
        guard offeredTail != nil else { return }
        offeredTail = nil
        tunnel.session.releaseSendTail(id)
    }

    public func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        // Read straight into the send buffer (`streamReadBuffer`): only the count needs queueing.
        let inPlace = offeredTail.map { UnsafeRawPointer($0) == bytes.baseAddress } ?? false
        if offeredTail != nil, !inPlace || sessionDone { tunnel.session.releaseSendTail(id) }
        offeredTail = nil
        guard !sessionDone else { return }
        bytesFromConnection += bytes.count
        tunnel.withSession { session in
            // Behind an overflow, everything waits (a stream that delivers while paused — a
            // hand-off's parked bytes — must not jump the queue). An in-place read was only
            // offered with no overflow.
            let taken: Int
            if inPlace {
                session.commitSendTail(id, bytes.count)
                taken = bytes.count
            } else {
                taken = overflow.isEmpty ? session.write(id, bytes) : 0
            }
            if taken < bytes.count { overflow.append(contentsOf: bytes[taken...]) }
            if !overflow.isEmpty || session.isSendBufferFull(id) {
                readPaused = true
                connection.pauseReading()
            }
        }
    }

    public func streamDidReadEOF(_ stream: any ByteStream) {
        guard !sessionDone, !finished else { return }
        finished = true
        // FIN goes after every byte read: behind the overflow if there is one.
        if !overflow.isEmpty { finishAfterOverflow = true; return }
        tunnel.withSession { $0.finish(id) }
    }

    public func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        guard !sessionDone else { return }
        sessionDone = true
        tunnel.withSession { $0.reset(id, code: .cancel, message: "connection failed: \(error)") }
    }

    public func streamDidDrain(_ stream: any ByteStream) {
        if unacknowledged > 0 { tunnel.withSession { _ in acknowledgeWritten() } }
        if closing, sessionDone, !connection.isClosed { connection.close() }
    }

    public func streamDidClose(_ stream: any ByteStream) {
        if !sessionDone {
            sessionDone = true
            tunnel.withSession { $0.reset(id, code: .cancel, message: "connection closed") }
        }
        tunnel.bridgeGone(id)
        onClosed?()
        onClosed = nil
    }
}
