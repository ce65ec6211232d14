// The driver both HTTP parser harnesses share (FuzzHTTPRequest.swift, FuzzHTTPResponse.swift).
// Compiled with Sources/LariatHTTP/*.swift as one module, so internal types are reachable.
//
// It feeds a byte stream to a parser whole and cut into pieces and records what comes out as
// a list of `HTTPItem`s: heads, the body bytes of each message, `.end`, the upgrade leftover
// (with every byte that followed it), the first error, and what `finish()` says at EOF.
// Invariants checked on every run:
//   - events are the same whether the stream arrives whole or in pieces;
//   - `.body` and `.upgrade` slices lie inside the piece just fed, bodies are never empty, and
//     `next` returns nil only once the piece is used up (no event is lost, no byte invented);
//   - a Content-Length body delivers exactly that many bytes before `.end`;
//   - every parsed head, serialised again, parses to the same head (see each harness).

protocol FuzzedHTTPParser {
    associatedtype Head: Equatable
    mutating func next(from input: inout UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPParserEvent<Head>?
    /// At EOF: true when it ended a body delimited by the close.
    mutating func finishAtEOF() throws(HTTPParseError) -> Bool
    static func declaredFraming(_ head: Head) -> HTTPBodyFraming??
}

enum HTTPItem<Head: Equatable>: Equatable {
    case head(Head)
    case body([UInt8])
    case end
    case upgrade([UInt8])
    case error(HTTPParseError)
    case eof(endedBody: Bool)
}

func runHTTPParser<P: FuzzedHTTPParser>(_ parser: inout P, _ input: UnsafeRawBufferPointer, cuts: [Int]) -> [HTTPItem<P.Head>] {
    var items: [HTTPItem<P.Head>] = []
    var upgraded: [UInt8]?
    var bodyCount: UInt64 = 0
    var expectedLength: UInt64?
    func appendBody(_ bytes: UnsafeRawBufferPointer) {
        if case .body(var b)? = items.last {
            b.append(contentsOf: bytes)
            items[items.count - 1] = .body(b)
        } else {
            items.append(.body(Array(bytes)))
        }
    }
    for chunk in pieces(input, cuts: cuts) {
        if upgraded != nil {
            // The parser is finished after `.upgrade`: later bytes belong to the next protocol.
            upgraded!.append(contentsOf: chunk)
            continue
        }
        var rest = chunk
        var events = 0
        do throws(HTTPParseError) {
            while let event = try parser.next(from: &rest) {
                events += 1
                if events > 2 * chunk.count + 8 { violated("progress", "\(events) events from \(chunk.count) bytes") }
                switch event {
                case .head(let head):
                    items.append(.head(head))
                    bodyCount = 0
                    if case .contentLength(let n)?? = P.declaredFraming(head) { expectedLength = n } else { expectedLength = nil }
                case .body(let bytes):
                    guard lies(bytes, within: chunk) else { violated("body-in-input", "a body slice outside the input") }
                    guard !bytes.isEmpty else { violated("body-not-empty", "an empty .body event") }
                    bodyCount += UInt64(bytes.count)
                    if let n = expectedLength, bodyCount > n { violated("content-length", "\(bodyCount) body bytes for Content-Length \(n)") }
                    appendBody(bytes)
                case .end:
                    if let n = expectedLength, bodyCount != n { violated("content-length", "ended after \(bodyCount) of \(n) bytes") }
                    expectedLength = nil
                    items.append(.end)
                case .upgrade(let leftover):
                    guard lies(leftover, within: chunk) else { violated("upgrade-in-input", "leftover outside the input") }
                    upgraded = Array(leftover)
                }
            }
            guard rest.isEmpty else { violated("nil-means-consumed", "next returned nil with \(rest.count) bytes left") }
        } catch {
            items.append(.error(error))
            return items
        }
    }
    if let upgraded {
        items.append(.upgrade(upgraded))
        return items
    }
    do throws(HTTPParseError) {
        items.append(.eof(endedBody: try parser.finishAtEOF()))
    } catch {
        items.append(.error(error))
    }
    return items
}

/// Parses `bytes` as exactly one head, with the parser's own head parser (framing is decided
/// from the request context afterwards, so it is not part of the head's round trip) and
/// generous limits (a re-serialised head can be longer: obs-text becomes U+FFFD, three bytes for one).
func reparseHead<Head>(_ bytes: [UInt8], _ parse: (UnsafeRawBufferPointer, HTTPParserLimits) throws(HTTPParseError) -> Head) -> Head? {
    var accumulator = HTTPHeadAccumulator(maxSize: reparseLimits.maxHeadSize)
    return bytes.withUnsafeBytes { raw in
        var rest = raw
        do throws(HTTPParseError) {
            let head = try accumulator.nextHead(from: &rest, limits: reparseLimits, parse: parse)
            return rest.isEmpty ? head : nil
        } catch {
            return nil
        }
    }
}

/// The generous limits `reparseHead` is given.
let reparseLimits = HTTPParserLimits(maxHeadSize: 1 << 20, maxHeaderCount: 100_000)

/// Byte 0 of every HTTP input: bit 7 picks tight limits (exercising the size checks), the rest
/// seeds the cut points.
func httpLimits(_ selector: UInt8) -> HTTPParserLimits {
    selector & 0x80 != 0 ? HTTPParserLimits(maxHeadSize: 200, maxHeaderCount: 3) : HTTPParserLimits()
}
