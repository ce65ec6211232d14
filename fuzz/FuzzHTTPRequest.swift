// libFuzzer target for HTTPRequestParser (the hub's front door).
// Built by fuzz/run.sh with Sources/LariatHTTP/*.swift, FuzzSupport.swift and FuzzHTTPCommon.swift.
//
// Input: byte 0 = limits and cut seed (see `httpLimits`), the rest = bytes from a client.
// Invariants: those of FuzzHTTPCommon.swift, plus: every request head re-serialised with
// `HTTPRequestHead.serialized` parses to the same head (method, target, version, fields).

extension HTTPRequestParser: FuzzedHTTPParser {
    mutating func finishAtEOF() throws(HTTPParseError) -> Bool {
        try finish()
        return false
    }
    static func declaredFraming(_ head: HTTPRequestHead) -> HTTPBodyFraming?? {
        head.method == "CONNECT" ? .some(nil) : try? HTTPBodyFraming.declared(by: head.headers)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func lariatFuzzHTTPRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let limits = httpLimits(data[0])
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    var a = HTTPRequestParser(limits: limits)
    let whole = runHTTPParser(&a, input, cuts: [])
    var b = HTTPRequestParser(limits: limits)
    let split = runHTTPParser(&b, input, cuts: cutPoints(count: input.count, seed: data[0]))
    guard whole == split else { violated("split-equals-whole", "\nwhole: \(whole)\nsplit: \(split)") }
    for case .head(let head) in whole {
        let again = reparseHead(head.serialized, HTTPRequestParser.parseHead)
        guard again == head else {
            violated("reserialise", "\(head)\nserialised: \(hex(head.serialized))\nparsed again: \(String(describing: again))")
        }
    }
    return 0
}
