// The target server: sink, echo, source, or `auto` (the client's 16-byte header decides).
import LariatRuntime

enum TargetMode: String { case auto, sink, echo, source }

final class TargetServer {
    let loop: UVLoop
    let mode: TargetMode
    let sourceBytes: UInt64
    let sourceShape: Shape
    /// Built on first use (a source connection asks for them).
    private var payloads: [Shape: Payload] = [:]
    var listener: TCPListener?
    var connections = 0

    init(loop: UVLoop, mode: TargetMode, sourceBytes: UInt64, sourceShape: Shape) {
        self.loop = loop
        self.mode = mode
        self.sourceBytes = sourceBytes
        self.sourceShape = sourceShape
    }

    func payload(_ shape: Shape) -> Payload {
        if let p = payloads[shape] { return p }
        let p = Payload.make(shape)
        payloads[shape] = p
        return p
    }

    func listen(host: String, port: Int) throws -> Int {
        if mode == .source || mode == .auto { _ = payload(sourceShape) }
        let l = try TCPListener(loop: loop, host: host, port: port, backlog: 4096) { [unowned self] c in
            self.connections += 1
            let handler = TargetConnection(server: self, stream: c)
            c.start(handler: handler)
            handler.begin()
        }
        listener = l
        return l.port
    }
}

final class TargetConnection: ByteStreamHandler {
    unowned let server: TargetServer
    let stream: TCPConnection
    private enum State { case header, sink, echo, source }
    private var state: State
    private var header: [UInt8] = []
    private var received: UInt64 = 0
    private var goal: UInt64 = 0
    private var nextAck: UInt64 = 0
    private var sent: UInt64 = 0
    private var payload: Payload?
    private var closeWhenDrained = false
    private var sawEOF = false
    static let ackEvery: UInt64 = 64 << 10
    static let echoHighWater = 1 << 20

    init(server: TargetServer, stream: TCPConnection) {
        self.server = server
        self.stream = stream
        switch server.mode {
        case .auto: state = .header
        case .sink: state = .sink
        case .echo: state = .echo
        case .source: state = .source
        }
    }

    func begin() {
        if state == .source {
            goal = server.sourceBytes
            payload = server.payload(server.sourceShape)
            pump()
        }
    }

    func streamDidRead(_ stream: any ByteStream, _ bytes: UnsafeRawBufferPointer) {
        var bytes = bytes
        if state == .header {
            let need = Header.size - header.count
            let take = min(need, bytes.count)
            header.append(contentsOf: bytes[0..<take])
            guard header.count == Header.size else { return }
            guard let h = Header(header) else {
                stream.closeWithReset()
                return
            }
            switch h.op {
            case .sink:
                state = .sink
                goal = h.count
                nextAck = min(goal, Self.ackEvery)
            case .echo:
                state = .echo
                header.withUnsafeBytes { stream.write($0) }
            case .source:
                state = .source
                goal = h.count
                payload = server.payload(h.shape)
                pump()
            }
            bytes = UnsafeRawBufferPointer(rebasing: bytes[take...])
            if bytes.isEmpty { return }
        }
        switch state {
        case .sink:
            received &+= UInt64(bytes.count)
            if goal > 0 && received >= nextAck {
                // Progress acknowledgement: the cumulative count, every 64 KiB and at the end.
                var ack = received
                withUnsafeBytes(of: &ack) { stream.write($0) }
                nextAck = received >= goal ? UInt64.max : min(goal, received + Self.ackEvery)
            }
        case .echo:
            stream.write(bytes)
            if stream.bufferedWriteBytes > Self.echoHighWater { stream.pauseReading() }
        case .source, .header:
            break  // discard
        }
    }

    private func pump() {
        guard let payload else { return }
        while sent < goal && stream.bufferedWriteBytes == 0 && !stream.isClosed {
            let chunk = payload.chunk(at: sent, max: Int(min(goal - sent, 65536)))
            stream.write(chunk)
            sent &+= UInt64(chunk.count)
        }
    }

    func streamDidDrain(_ stream: any ByteStream) {
        if closeWhenDrained {
            stream.close()
            return
        }
        switch state {
        case .echo: stream.resumeReading()
        case .source: pump()
        default: break
        }
    }

    func streamDidReadEOF(_ stream: any ByteStream) {
        sawEOF = true
        if server.mode == .sink {
            var total = received
            withUnsafeBytes(of: &total) { stream.write($0) }
        }
        if stream.bufferedWriteBytes == 0 && !(state == .source && sent < goal) {
            stream.close()
        } else {
            closeWhenDrained = true
        }
    }

    func streamDidClose(_ stream: any ByteStream) {}
}
