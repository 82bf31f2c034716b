import Testing

@testable import CordonCore

@Suite struct JSONParserTests {
    @Test func keepsNumberLiteralsExactly() throws {
        let value = try json(#"{"big": 12345678901234567890123, "p": 9007199254740993, "f": 3.0e2}"#)
        #expect(value["big"]?.numberValue?.literal == "12345678901234567890123")
        #expect(value["p"]?.numberValue?.literal == "9007199254740993")
        // 2^53 + 1 and 2^53 are different numbers (a Double would make them equal).
        #expect(value["p"]?.numberValue != JSONNumber(literal: "9007199254740992"))
        // Compared by value: 3.0e2 == 300.
        #expect(value["f"]?.numberValue == JSONNumber(300))
        #expect(JSONWriter.string(value) == #"{"big":12345678901234567890123,"p":9007199254740993,"f":3.0e2}"#)
    }

    /// Containers are built from the parser's stacks when they close: siblings and nesting
    /// must each get exactly their own members, in order, however deep or wide.
    @Test func buildsNestedContainersWithExactlyTheirMembers() throws {
        let wide = (0..<40).map { #""k\#($0)": {"i": \#($0), "list": [\#($0), [], {}, [{"x": [1, {"y": 2}]}]]}"# }.joined(separator: ", ")
        let text = #"{"a": [1, {"b": [2, 3], "c": {}}, [4, [5, [6]]]], "wide": {\#(wide)}, "z": [{"q": null}, true]}"#
        let value = try json(text)
        #expect(JSONWriter.string(value) == text.replacingOccurrences(of: " ", with: ""))
        #expect(value["wide"]?.objectValue?.count == 40)
        #expect(value["wide"]?["k39"]?["list"]?[3]?[0]?["x"]?[1]?["y"] == .number(JSONNumber(2)))
        #expect(value.objectValue.map { Array($0.keys) } == ["a", "wide", "z"])
    }

    /// Duplicate keys are found by a linear search in small objects and with a set in large
    /// ones: both are rejected, at the second key.
    @Test(arguments: [3, 15, 16, 17, 40])
    func rejectsADuplicateKeyInAnObjectOfAnySize(members: Int) {
        let keys = (0..<members).map { #""k\#($0)": \#($0)"# }.joined(separator: ", ")
        let text = #"{\#(keys), "k1": "again"}"#
        do {
            _ = try JSONParser.parse(text)
            Issue.record("expected an error for \(members) members")
        } catch {
            #expect(error.message == #"duplicate key "k1" in object"#)
            #expect(error.offset == text.utf8.count - #""k1": "again"}"#.utf8.count)
        }
        // The same keys nested in different objects are not duplicates.
        #expect(throws: Never.self) { try JSONParser.parse(#"{"a": {\#(keys)}, "b": {\#(keys)}}"#) }
    }

    @Test func aDictionaryLiteralWithARepeatedKeyKeepsItsFirstPlaceAndLastValue() {
        let value: JSONValue = ["a": 1, "b": 2, "a": 3]
        #expect(value.objectValue.map { Array($0.keys) } == ["a", "b"])
        #expect(value["a"] == .number(JSONNumber(3)))
    }

    @Test func distinguishesNullFromMissing() throws {
        let value = try json(#"{"a": null}"#)
        #expect(value["a"] == .null)
        #expect(value["b"] == nil)
    }

    @Test func keepsKeyOrder() throws {
        let value = try json(#"{"z": 1, "a": 2, "m": 3}"#)
        #expect(value.objectValue.map { Array($0.keys) } == ["z", "a", "m"])
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let value = try json(#"["a\"b\\c\/d\n", "\u00e9\ud83d\ude00"]"#)
        #expect(value[0] == .string("a\"b\\c/d\n"))
        #expect(value[1] == .string("é😀"))
    }

    @Test(arguments: [
        (#"{"a": 1,}"#, "unexpected '}'"),
        (#"{"a" 1}"#, "expected ':'"),
        (#"[1 2]"#, "expected ',' or ']'"),
        (#"{"a": 01}"#, "invalid number"),
        (#"{"a": tru}"#, "expected 'true'"),
        (#""\ud800""#, "unpaired UTF-16 surrogate"),
        (#""\x""#, "invalid escape"),
        (#"{"a": 1, "a": 2}"#, "duplicate key \"a\""),
        (#"{"a": 1} x"#, "after the end of the JSON value"),
        ("", "empty input"),
        (#"{"a": "#, "unexpected end of input"),
    ])
    func rejectsMalformedJSON(text: String, expected: String) {
        #expect {
            _ = try JSONParser.parse(text)
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func reportsLineAndColumn() {
        do {
            _ = try JSONParser.parse("{\n  \"a\": 1,\n  \"b\": ]\n}")
            Issue.record("expected an error")
        } catch {
            #expect(error.line == 3)
            #expect(error.column == 8)
            #expect(error.offset == 19)
        }
    }

    @Test(arguments: [
        [0xFF, 0xFE],  // never UTF-8
        [0x61, 0xC3],  // truncated two-byte sequence
        [0xC0, 0x80],  // overlong NUL
        [0xE0, 0x80, 0xAF],  // overlong '/'
        [0xED, 0xA0, 0x80],  // a UTF-16 surrogate encoded as UTF-8
        [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
        [0x80],  // lone continuation byte
        [0xE2, 0x82],  // truncated three-byte sequence
    ] as [[UInt8]])
    func rejectsInvalidUTF8(content: [UInt8]) {
        for wrapped in [[0x22] + content + [0x22], [0x22, 0x5C, 0x6E] + content + [0x22], Array(#"{"k": ""#.utf8) + content + Array(#""}"#.utf8)] {
            #expect {
                _ = try JSONParser.parse(wrapped)
            } throws: { error in
                "\(error)".contains("not valid UTF-8")
            }
        }
    }

    @Test func keepsValidMultibyteUTF8() throws {
        let text = "é ñ € 😀 \u{10FFFF} 日本"
        #expect(try JSONParser.parse(Array(("\"" + text + "\"").utf8)) == .string(text))
        #expect(try JSONParser.parse(Array(("\"\\n" + text + "\"").utf8)) == .string("\n" + text))
    }

    @Test func limitsNestingDepth() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect {
            _ = try JSONParser.parse(deep)
        } throws: { error in
            "\(error)".contains("nesting deeper than 256")
        }
        let ok = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: Never.self) { _ = try JSONParser.parse(ok) }
    }

    @Test func prettyPrintsAndRoundTrips() throws {
        let text = #"{"a":[1,2.50,{"b":null}],"c":"x\ty","d":true,"e":{},"f":[]}"#
        let value = try json(text)
        #expect(JSONWriter.string(value) == text)
        #expect(try json(JSONWriter.pretty(value)) == value)
    }

    @Test func decimalComparisonIsExact() throws {
        func d(_ s: String) -> DecimalValue { JSONNumber(literal: s)!.decimal }
        #expect(d("300") == d("3.0e2"))
        #expect(d("0.1") < d("0.10000000000000001"))
        #expect(d("-0") == d("0"))
        #expect(d("-1e-400") < d("0"))
        #expect(d("123456789012345678901234567890") > d("123456789012345678901234567889"))
        #expect(d("-5") < d("-4.9999"))
        #expect(JSONNumber(literal: "1.") == nil)
        #expect(JSONNumber(literal: "+1") == nil)
        #expect(JSONNumber(literal: ".5") == nil)
    }
}
