import LariatHTTP
import Testing

@Suite struct PercentEncodingTests {
    @Test func escapesAreDecodedStrictly() {
        #expect(PercentEncoding.decode("a%20b%2Fc") == "a b/c")
        #expect(PercentEncoding.decode("p%C3%A4ss") == "päss")
        #expect(PercentEncoding.decode("a+b") == "a+b")
        #expect(PercentEncoding.decode("a+b", plusIsSpace: true) == "a b")
        #expect(PercentEncoding.decode("%2B", plusIsSpace: true) == "+")
        #expect(PercentEncoding.decode("bad%2") == nil)
        #expect(PercentEncoding.decode("bad%zz") == nil)
        #expect(PercentEncoding.decode("%FF") == nil)  // not UTF-8
        #expect(PercentEncoding.decode("") == "")
    }
}
