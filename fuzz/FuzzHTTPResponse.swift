// libFuzzer target for HTTPResponseParser (the agent reading the hub's and a proxy's answers).
// Built by fuzz/run.sh with Sources/LariatHTTP/*.swift, FuzzSupport.swift and FuzzHTTPCommon.swift.
//
// Input: byte 0 = limits and cut seed (see `httpLimits`); byte 1 = the methods of the four
// requests the responses answer (2 bits each: GET, HEAD, CONNECT, POST), which decide framing;
// the rest = bytes from the server.
// Invariants: those of FuzzHTTPCommon.swift, plus: every response head re-serialised with
// `HTTPResponseHead.serialized` parses to the same head (status, reason, version, fields).

extension HTTPResponseParser: FuzzedHTTPParser {
    mutating func finishAtEOF() throws(HTTPParseError) -> Bool {
        try finish() != nil
    }
    /// Only the Content-Length check of the driver uses this; it is skipped (nil) when the
    /// request method or status means no body, which the driver cannot see.
    static func declaredFraming(_ head: HTTPResponseHead) -> HTTPBodyFraming?? {
        nil
    }
}

let methods = ["GET", "HEAD", "CONNECT", "POST"]

@_cdecl("LLVMFuzzerTestOneInput")
public func lariatFuzzHTTPResponse(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let limits = httpLimits(data[0])
    let script = data[1]
    let input = UnsafeRawBufferPointer(start: data + 2, count: size - 2)
    func parser(_ limits: HTTPParserLimits) -> HTTPResponseParser {
        var p = HTTPResponseParser(limits: limits)
        for i in 0..<4 { p.expectResponse(toMethod: methods[Int(script >> (2 * i)) & 3]) }
        return p
    }
    var a = parser(limits)
    let whole = runHTTPParser(&a, input, cuts: [])
    var b = parser(limits)
    let split = runHTTPParser(&b, input, cuts: cutPoints(count: input.count, seed: data[0]))
    guard whole == split else { violated("split-equals-whole", "\nwhole: \(whole)\nsplit: \(split)") }
    for case .head(let head) in whole {
        let again = reparseHead(head.serialized, HTTPResponseParser.parseHead)
        guard again == head else {
            violated("reserialise", "\(head)\nserialised: \(hex(head.serialized))\nparsed again: \(String(describing: again))")
        }
    }
    return 0
}
