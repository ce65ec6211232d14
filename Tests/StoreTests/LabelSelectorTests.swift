import LariatStore
import Testing

@Suite struct LabelSelectorTests {
    @Test(arguments: [
        ("env=prod", ["env": "prod"], true),
        ("env==prod", ["env": "dev"], false),
        ("env!=prod", [:], true),
        ("env in (prod,staging),tier", ["env": "staging", "tier": "web"], true),
        ("env in (prod,staging),tier", ["env": "staging"], false),
        ("env notin (prod)", ["env": "dev"], true),
        ("env notin (prod)", ["env": "prod"], false),
        ("!legacy", ["legacy": "yes"], false),
        ("", ["anything": "x"], true),
    ] as [(String, [String: String], Bool)])
    func selects(_ selector: String, _ labels: [String: String], _ expected: Bool) throws {
        #expect(try LabelSelector(parsing: selector).matches(labels) == expected)
    }

    @Test(arguments: ["env in prod", "=x", "a b c", "k=v w", "env in (a;b)"])
    func rejectsMalformedSelectors(_ selector: String) {
        #expect(throws: LabelSelector.ParseError.self) { try LabelSelector(parsing: selector) }
    }
}
