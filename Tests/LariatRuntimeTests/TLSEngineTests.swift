import Testing
@testable import LariatRuntime

/// Two engines in memory, no sockets: what one produces is lent to the other in chunks of a
/// chosen size, which exercises the BIO's cut-record path (a record split across lends is kept
/// and completed by the next one).
private final class EnginePair {
    let client: TLSEngine
    let server: TLSEngine
    private(set) var receivedByServer: [UInt8] = []
    private(set) var receivedByClient: [UInt8] = []
    /// Records read per lend; nil reads until the engine needs input (a paused reader reads one).
    var recordsPerLend: Int?
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    init(clientContext: TLSContext) throws {
        client = try TLSEngine(context: clientContext, serverName: "hub.test")
        server = try TLSEngine(context: TLSFixture.shared.serverContext)
    }

    deinit { scratch.deallocate() }

    /// Moves everything `from` has produced to the peer, `chunk` bytes per lend.
    func shuttle(from: TLSEngine, chunk: Int) throws {
        let bytes = Array(from.pendingCiphertext)
        from.ciphertextSent(bytes.count)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            try bytes[offset..<end].withUnsafeBytes { piece in
                try self.peer(of: from).withInput(piece) { self.drive(self.peer(of: from)) }
            }
            offset = end
        }
    }

    /// Lets `engine` consume what it kept from earlier lends.
    func resume(_ engine: TLSEngine) throws {
        try engine.withInput(UnsafeRawBufferPointer(start: nil, count: 0)) { drive(engine) }
    }

    func handshake(chunk: Int) throws {
        for _ in 0..<10 where !(client.isHandshakeComplete && server.isHandshakeComplete) {
            _ = try client.handshake()
            try shuttle(from: client, chunk: chunk)
            try shuttle(from: server, chunk: chunk)
        }
    }

    private func peer(of engine: TLSEngine) -> TLSEngine { engine === client ? server : client }

    private func drive(_ engine: TLSEngine) {
        if !engine.isHandshakeComplete {
            guard (try? engine.handshake()) == true else { return }
        }
        var reads = 0
        while recordsPerLend.map({ reads < $0 }) ?? true, case .bytes(let n)? = try? engine.read(into: scratch) {
            reads += 1
            if engine === server { receivedByServer += scratch[..<n] } else { receivedByClient += scratch[..<n] }
        }
    }
}

@Suite struct TLSEngineTests {
    private func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }

    /// Ciphertext lent one byte at a time (every record cut many times) still decrypts exactly.
    @Test(arguments: [1, 7, 1000, 1 << 20])
    func recordsCutAcrossLendsAreReassembled(chunk: Int) throws {
        let pair = try EnginePair(clientContext: TLSFixture.shared.client13)
        try pair.handshake(chunk: chunk)
        #expect(pair.client.isHandshakeComplete && pair.server.isHandshakeComplete)
        let message = pattern(100_000, seed: 3)
        _ = try message.withUnsafeBytes { try pair.client.write($0) }
        try pair.shuttle(from: pair.client, chunk: chunk)
        #expect(pair.receivedByServer.count == message.count)
        #expect(pair.receivedByServer == message ? true : false)
    }

    /// A large write leaves as one buffer holding every record (one syscall for the caller),
    /// and handing part of it to the network keeps the rest in order.
    @Test func aWriteCollectsAllItsRecordsInOneBuffer() throws {
        let pair = try EnginePair(clientContext: TLSFixture.shared.client12)
        try pair.handshake(chunk: 4096)
        let message = pattern(128 * 1024, seed: 5)
        _ = try message.withUnsafeBytes { try pair.client.write($0) }
        let pending = pair.client.pendingCiphertextCount
        #expect(pending > message.count)           // 8 records plus their overhead
        #expect(pending < message.count + 8 * 64)
        var head = [UInt8](repeating: 0, count: 1000)
        let moved = head.withUnsafeMutableBytes { pair.client.drainCiphertext(into: $0) }
        #expect(moved == 1000)
        #expect(pair.client.pendingCiphertextCount == pending - 1000)
        try head.withUnsafeBytes { piece in try pair.server.withInput(piece) {} }
        try pair.shuttle(from: pair.client, chunk: 1 << 20)
        #expect(pair.receivedByServer == message ? true : false)
    }

    /// With `releasesRecordBuffers` (a light connection) the output buffer is freed after every
    /// send and the input kept from a cut record after it is read, and records cut anywhere
    /// still arrive whole, large ones included.
    @Test func lightEnginesHoldNoBuffersBetweenRecords() throws {
        let pair = try EnginePair(clientContext: TLSFixture.shared.client13)
        pair.client.releasesRecordBuffers = true
        pair.server.releasesRecordBuffers = true
        try pair.handshake(chunk: 100)
        var sent: [UInt8] = []
        for (i, size) in [3, 5000, 128 * 1024, 40].enumerated() {
            let message = pattern(size, seed: UInt8(i + 1))
            sent += message
            _ = try message.withUnsafeBytes { try pair.client.write($0) }
            try pair.shuttle(from: pair.client, chunk: 1000)
            #expect(pair.client.outputBufferCapacity == 0)
            #expect(pair.server.inputBufferCapacity == 0)
        }
        #expect(pair.receivedByServer == sent ? true : false)
    }

    /// The output buffer a 128 KiB write grew is reused while writes stay large — small ones in
    /// between do not free it — and given back after a run of small writes (a tunnel gone idle).
    @Test func aLargeOutputBufferIsGivenBackWhenTrafficTurnsLight() throws {
        let pair = try EnginePair(clientContext: TLSFixture.shared.client13)
        try pair.handshake(chunk: 1 << 20)
        let large = pattern(128 * 1024, seed: 1), small: [UInt8] = [1, 2, 3]
        func send(_ bytes: [UInt8]) throws {
            _ = try bytes.withUnsafeBytes { try pair.client.write($0) }
            try pair.shuttle(from: pair.client, chunk: 1 << 20)
        }
        try send(large)
        let grown = pair.client.outputBufferCapacity
        #expect(grown > 128 * 1024)
        for _ in 0..<5 {
            for _ in 0..<4 { try send(small) }
            try send(large)
        }
        #expect(pair.client.outputBufferCapacity == grown)
        for _ in 0..<8 { try send(small) }
        #expect(pair.client.outputBufferCapacity == 0)
        try send(large)
        #expect(pair.receivedByServer.count == 7 * large.count + 28 * small.count)
    }

    /// A reader that stops after one record (a paused stream) leaves the rest of the lent
    /// ciphertext behind; it is kept, and decrypts later without another byte from the network.
    @Test func unreadCiphertextIsKeptForLater() throws {
        let pair = try EnginePair(clientContext: TLSFixture.shared.client13)
        try pair.handshake(chunk: 1 << 20)
        let message = pattern(80_000, seed: 9)
        _ = try message.withUnsafeBytes { try pair.server.write($0) }
        pair.recordsPerLend = 1
        try pair.shuttle(from: pair.server, chunk: 1 << 20)
        #expect(pair.receivedByClient.count == 16 * 1024)
        pair.recordsPerLend = nil
        try pair.resume(pair.client)
        #expect(pair.receivedByClient == message ? true : false)
    }
}
