import LariatRuntime
#if canImport(Glibc)
import Glibc
#endif

/// One loop per test, run on the test's thread, with a deadline so nothing can hang.
final class LoopHarness {
    let loop = UVLoop(name: "test-loop")
    private(set) var timedOut = false
    private var finished = false
    private var cleanups: [() -> Void] = []

    /// Runs `setup` on the (not yet running) loop, then the loop until `finish()` or the deadline.
    func run(deadlineMilliseconds: UInt64 = 30_000, _ setup: () throws -> Void) rethrows {
        let deadline = UVTimer(loop: loop)
        deadline.start(afterMilliseconds: deadlineMilliseconds) { [unowned self] in
            timedOut = true
            finish()
        }
        try setup()
        loop.run()
        deadline.close()
        runCleanups()
        loop.close()
    }

    /// Closes whatever was registered and stops the loop.
    func finish() {
        guard !finished else { return }
        finished = true
        runCleanups()
        loop.stop()
    }

    func onFinish(_ cleanup: @escaping () -> Void) { cleanups.append(cleanup) }

    func track(_ stream: any ByteStream) { onFinish { stream.close() } }

    private func runCleanups() {
        let pending = cleanups
        cleanups = []
        for cleanup in pending { cleanup() }
    }
}

/// A deterministic byte pattern, addressable by absolute stream offset: byte i is
/// `table[i % period]`. The table is stored twice so any window up to `period` bytes long is
/// contiguous, which makes writing and checking a single memcpy/memcmp (fast in debug builds).
enum Pattern {
    static let period = 65_537
    static let doubled: [UInt8] = {
        var state: UInt32 = 0x1234_5678
        var table = [UInt8](repeating: 0, count: period)
        for i in 0..<period {
            state = state &* 1_664_525 &+ 1_013_904_223
            table[i] = UInt8(truncatingIfNeeded: state >> 24)
        }
        return table + table
    }()

    /// Calls `body` with the pattern bytes for [offset, offset+count), count <= period.
    static func withWindow<R>(offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        precondition(count <= period)
        let start = offset % period
        return doubled.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start..<start + count])) }
    }

    /// True if `bytes` equal the pattern at `offset`.
    static func matches(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        var checked = 0
        while checked < bytes.count {
            let count = min(period, bytes.count - checked)
            let same = withWindow(offset: offset + checked, count: count) { expected in
                memcmp(expected.baseAddress!, bytes.baseAddress! + checked, count) == 0
            }
            if !same { return false }
            checked += count
        }
        return true
    }
}

/// Client side of the bulk tests: streams `sendTotal` pattern bytes with backpressure, then
/// half-closes, and checks that exactly `expectReceive` pattern bytes come back before EOF.
final class BulkClient: ByteStreamHandler {
    let sendTotal: Int
    let expectReceive: Int
    private(set) var sent = 0
    private(set) var received = 0
    private(set) var corrupt = false
    private(set) var gotEOF = false
    private(set) var drains = 0
    private(set) var error: StreamError?
    private(set) var closeCount = 0
    var onDone: () -> Void = {}
    private var shutdownSent = false

    init(sendTotal: Int, expectReceive: Int) {
        self.sendTotal = sendTotal
        self.expectReceive = expectReceive
    }

    /// Writes until the stream's backlog passes 512 KiB; `streamDidDrain` resumes.
    func pump(_ stream: any ByteStream) {
        while sent < sendTotal && stream.bufferedWriteBytes < 512 * 1024 && !stream.isClosed {
            let count = min(32 * 1024, sendTotal - sent)
            Pattern.withWindow(offset: sent, count: count) { stream.write($0) }
            sent += count
        }
        if sent == sendTotal && !shutdownSent {
            shutdownSent = true
            stream.shutdownWrite()
        }
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        if !Pattern.matches(bytes, at: received) { corrupt = true }
        received += bytes.count
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        gotEOF = true
        onDone()
    }

    func streamDidDrain(_ stream: any ByteStream) {
        drains += 1
        pump(stream)
    }

    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) {
        self.error = error
        onDone()
    }

    func streamDidClose(_ stream: any ByteStream) { closeCount += 1 }
}

/// Echo server with backpressure: pauses reading while its own backlog is above 1 MiB.
final class EchoServer: ByteStreamHandler {
    private var paused = false
    private(set) var error: StreamError?

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        stream.write(bytes)
        if stream.bufferedWriteBytes > 1024 * 1024 && !paused {
            paused = true
            stream.pauseReading()
        }
    }

    func streamDidDrain(_ stream: any ByteStream) {
        if paused {
            paused = false
            stream.resumeReading()
        }
    }

    func streamDidReadEOF(_ stream: any ByteStream) { stream.shutdownWrite() }
    func streamDidFail(_ stream: any ByteStream, _ error: StreamError) { self.error = error }
    func streamDidClose(_ stream: any ByteStream) {}
}

/// Reads the whole request until EOF, then answers with `replySize` pattern bytes and half-closes.
final class ReplyAfterEOFServer: ByteStreamHandler {
    let replySize: Int
    private(set) var requestBytes = 0
    private(set) var requestCorrupt = false

    init(replySize: Int) { self.replySize = replySize }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        if !Pattern.matches(bytes, at: requestBytes) { requestCorrupt = true }
        requestBytes += bytes.count
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        var offset = 0
        while offset < replySize {
            let count = min(32 * 1024, replySize - offset)
            Pattern.withWindow(offset: offset, count: count) { stream.write($0) }
            offset += count
        }
        stream.shutdownWrite()
    }

    func streamDidClose(_ stream: any ByteStream) {}
}

/// Which byte stream the bulk tests run over.
enum Transport: String, CustomStringConvertible, CaseIterable, Sendable {
    case plain, tls12, tls13
    var description: String { rawValue }
}

/// A CA, a serving certificate for localhost/127.0.0.1, and matching contexts (built once).
struct TLSFixture: Sendable {
    let authority: CertificateAuthority
    let serverContext: TLSContext
    let client13: TLSContext
    let client12: TLSContext

    static let shared: TLSFixture = {
        let authority = try! CertificateAuthority.generate(commonName: "Lariat Test CA")
        let issued = try! authority.issueServerCertificate(dnsNames: ["hub.test"])
        return TLSFixture(
            authority: authority,
            serverContext: try! TLSContext.server(certificatePEM: issued.certificatePEM,
                                                  privateKeyPEM: issued.privateKeyPEM,
                                                  chainPEM: authority.certificatePEM),
            client13: try! TLSContext.client(trustedCAPEM: authority.certificatePEM, minimumVersion: .tls13),
            client12: try! TLSContext.client(trustedCAPEM: authority.certificatePEM, maximumVersion: .tls12))
    }()
}

extension LoopHarness {
    /// Listens on 127.0.0.1:0; each accepted connection is wrapped per `transport` and started.
    func listen(_ transport: Transport, handler: @escaping () -> any ByteStreamHandler) throws -> TCPListener {
        let listener = try TCPListener(loop: loop, host: "127.0.0.1", port: 0) { [unowned self] tcp in
            let stream: any ByteStream = transport == .plain
                ? tcp
                : try! TLSConnection(transport: tcp, context: TLSFixture.shared.serverContext)
            track(stream)
            stream.start(handler: handler())
        }
        onFinish { listener.close() }
        return listener
    }

    /// Connects to 127.0.0.1:`port` over `transport`; `ready` gets the started stream.
    func connect(_ transport: Transport, port: Int, handler: any ByteStreamHandler,
                 context: TLSContext? = nil, serverName: String = "127.0.0.1",
                 ready: @escaping (any ByteStream) -> Void = { _ in },
                 failed: @escaping (UVError) -> Void = { _ in }) {
        TCPConnection.connect(loop: loop, host: "127.0.0.1", port: port, timeoutMilliseconds: 5_000) { [unowned self] result in
            switch result {
            case .failure(let error):
                failed(error)
                finish()
            case .success(let tcp):
                let stream: any ByteStream
                switch transport {
                case .plain: stream = tcp
                case .tls12, .tls13:
                    let fixture = TLSFixture.shared
                    stream = try! TLSConnection(transport: tcp,
                                                context: context ?? (transport == .tls12 ? fixture.client12 : fixture.client13),
                                                serverName: serverName)
                }
                track(stream)
                stream.start(handler: handler)
                ready(stream)
            }
        }
    }
}
