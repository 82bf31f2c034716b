import Testing

@testable import CordonCore

@Suite struct CanonicalJSONTests {
    @Test func sortsKeysAndDropsWhitespace() throws {
        let value = try json(#"{"b": 1, "a": {"d": [1, 2, {"z": null, "y": true}], "c": "x"}, "\u00e9": 0, "A": false}"#)
        #expect(CanonicalJSON.string(value) == #"{"A":false,"a":{"c":"x","d":[1,2,{"y":true,"z":null}]},"b":1,"é":0}"#)
    }

    @Test func sortsByUTF16CodeUnits() throws {
        // U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16, after it in code points.
        let value = try json(#"{"\ufb33": 1, "\ud83d\ude00": 2}"#)
        #expect(CanonicalJSON.string(value) == "{\"😀\":2,\"דּ\":1}")
    }

    @Test func escapesStringsMinimally() {
        let value: JSONValue = .string("\u{8}\t\n\u{c}\r\"\\/\u{1}\u{1f}\u{7f}é€😀")
        #expect(CanonicalJSON.string(value) == "\"\\b\\t\\n\\f\\r\\\"\\\\/\\u0001\\u001f\u{7f}é€😀\"")
    }

    /// RFC 8785 appendix B examples and ECMAScript corner cases.
    @Test(arguments: [
        ("0", "0"), ("-0", "0"), ("1", "1"), ("-1", "-1"), ("300", "300"), ("3.0e2", "300"), ("8.0", "8"),
        ("0.1", "0.1"), ("1e21", "1e+21"), ("1e20", "100000000000000000000"), ("123456789012345680000", "123456789012345680000"),
        ("1e-7", "1e-7"), ("0.000001", "0.000001"), ("1.5e-7", "1.5e-7"), ("9007199254740993", "9007199254740992"),
        ("4.50", "4.5"), ("2e-3", "0.002"), ("0.000001234", "0.000001234"), ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("5e-324", "5e-324"), ("-1.5e300", "-1.5e+300"), ("333333333.33333329", "333333333.3333333"), ("1e23", "1e+23"),
        ("295147905179352830000", "295147905179352830000"),
    ])
    func numbersFollowECMAScript(literal: String, expected: String) {
        #expect(CanonicalJSON.number(JSONNumber(literal: literal)!) == expected)
    }
}
