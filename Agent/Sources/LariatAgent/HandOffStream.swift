import LariatRuntime

/// A `ByteStream` whose handler can be replaced: each phase of a hub connection (proxy CONNECT,
/// TLS, HTTP upgrade, tunnel) owns the stream in turn by calling `start(handler:)`.
///
/// Workaround: the runtime's streams accept `start(handler:)` once. When they accept a second
/// call (replacing the handler), this wrapper can go and the phases take the streams directly.
///
/// Bytes that arrived for the next phase while the previous one still owned the stream (the
/// `.upgrade(leftover:)` of an HTTP parser) can be parked with `handOff(leftover:)`; they are
/// delivered to the next handler as soon as it starts.
final class HandOffStream: ByteStream, ByteStreamHandler {
    let base: any ByteStream
    private var handler: (any ByteStreamHandler)?
    private var baseStarted = false
    private var parked: [UInt8] = []

    var loop: UVLoop { base.loop }

    init(_ base: any ByteStream) {
        self.base = base
    }

    /// Keeps `bytes` for whichever handler starts next.
    func handOff(leftover bytes: UnsafeRawBufferPointer) {
        parked.append(contentsOf: bytes)
    }

    func start(handler: any ByteStreamHandler) {
        self.handler = handler
        if !baseStarted {
            baseStarted = true
            base.start(handler: self)  // base -> self -> handler: released by base's close callback
        }
        if !parked.isEmpty, !base.isClosed {
            let bytes = parked
            parked = []
            bytes.withUnsafeBytes { handler.streamDidRead(self, $0) }
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) { base.write(bytes) }
    var bufferedWriteBytes: Int { base.bufferedWriteBytes }
    func pauseReading() { base.pauseReading() }
    func resumeReading() { base.resumeReading() }
    func shutdownWrite() { base.shutdownWrite() }
    func close() { base.close() }
    var isClosed: Bool { base.isClosed }

    // MARK: ByteStreamHandler (events from the base, forwarded to the current owner)

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        // Hold the handler for the call: it may hand the stream to the next phase inside it.
        let current = handler
        if let current { current.streamDidRead(self, bytes) } else { parked.append(contentsOf: bytes) }
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        let current = handler
        current?.streamDidReadEOF(self)
    }

    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        let current = handler
        current?.streamDidFail(self, error)
    }

    func streamDidDrain(_ stream: any ByteStream) {
        let current = handler
        current?.streamDidDrain(self)
    }

    func streamDidClose(_ stream: any ByteStream) {
        let current = handler
        handler = nil
        current?.streamDidClose(self)
    }
}
