/// Everything the session knows about one stream. Stored by value in a slot array so that the
/// data path touches no reference counts.
struct StreamRecord {
    enum Phase: UInt8 {
        /// Our OPEN is held back: `maxOutstandingOpens` OPENs await the peer's answer. It goes
        /// out, in FIFO order, when one of them is answered (`Session.sendQueuedOpens`).
        case queued
        /// We sent OPEN and wait for OPEN_OK/OPEN_FAIL.
        case opening
        /// The peer sent OPEN; the application has not answered yet.
        case awaitingAccept
        case open
    }

    var id: UInt32
    var streamClass: StreamClass
    var phase: Phase

    // Send side.
    var sendBuffer = SendBuffer()
    /// Bytes the peer still lets us send on this stream.
    var sendCredit = 0
    /// The application called finish(); FIN goes out after the buffered bytes.
    var finishRequested = false
    var finSent = false
    var queued = false
    /// `write` found the buffer nearly full; raise streamWritable once it drains.
    var writableWanted = false
    var compression = CompressionBackoff()
    /// False for a target in `SessionConfig.uncompressedTargets`: decided once at OPEN, so the
    /// data path tests a flag, not a string.
    var mayCompress = true

    // Receive side.
    var remoteFinished = false
    /// Bytes the peer may still send before we grant more.
    var recvCredit = 0
    /// The window size we currently aim to keep open; auto-tuning moves it.
    var recvWindow = 0
    /// Delivered to the application, not yet consumed.
    var delivered = 0
    /// Consumed since the last WINDOW we sent.
    var unannounced = 0
    var lastWindowUpdateAt: UInt64 = 0
    /// When we sent OPEN (opener side): the OPEN deadline counts from here. While `queued`:
    /// when the open was queued (the queue deadline counts from here).
    var openedAt: UInt64 = 0

    init(id: UInt32, streamClass: StreamClass, phase: Phase) {
        self.id = id
        self.streamClass = streamClass
        self.phase = phase
    }

    var isDone: Bool { finSent && remoteFinished }
}
