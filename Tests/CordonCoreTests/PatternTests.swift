import Testing

@testable import CordonCore

func matches(_ pattern: String, _ event: String) throws -> Bool {
    var matcher = PatternSet([try EventPattern(text: pattern)]).makeMatcher()
    return try matcher.matches(Array(event.utf8)) == [0]
}

@Suite struct PatternValidationTests {
    @Test(arguments: [
        (#"[1]"#, "", "must be a JSON object"),
        (#"{}"#, "", "at least one field"),
        (#"{"detail": "x"}"#, "detail", "must be an array of match values or an object"),
        (#"{"detail": {"severity": []}}"#, "detail.severity", "empty array"),
        (#"{"detail": {}}"#, "detail", "at least one field"),
        (#"{"a": [{"prefx": "x"}]}"#, "a", "unknown operator \"prefx\" (did you mean \"prefix\"?)"),
        (#"{"a": [{"prefix": 1}]}"#, "a", "prefix takes a string"),
        (#"{"a": [{"prefix": "x", "suffix": "y"}]}"#, "a", "exactly one operator"),
        (#"{"a": [{"wildcard": "a**b"}]}"#, "a", "consecutive '*'"),
        (#"{"a": [{"wildcard": "a\\b"}]}"#, "a", "invalid escape"),
        (#"{"a": [{"numeric": [">", "x"]}]}"#, "a", "must be followed by a number"),
        (#"{"a": [{"numeric": ["<", 5, ">", 1]}]}"#, "a", "lower bound (> or >=) must come first"),
        (#"{"a": [{"numeric": [">", 5, "<", 5]}]}"#, "a", "range is empty"),
        (#"{"a": [{"numeric": ["~", 5]}]}"#, "a", "unknown numeric operator"),
        (#"{"a": [{"numeric": [">", 5, "<"]}]}"#, "a", "numeric takes"),
        (#"{"a": [{"exists": "yes"}]}"#, "a", "exists takes true or false"),
        (#"{"a": [{"cidr": "10.0.0.0/33"}]}"#, "a", "IPv4 mask bits must be below 32"),
        (#"{"a": [{"cidr": "10.0.0/8"}]}"#, "a", "is not an IPv4 or IPv6 address"),
        (#"{"a": [{"cidr": "2001:db8::/129"}]}"#, "a", "IPv6 mask bits must be below 128"),
        (#"{"a": [{"cidr": "10.0.0.0"}]}"#, "a", "ADDRESS/BITS"),
        (#"{"a": [{"anything-but": []}]}"#, "a", "at least one value"),
        (#"{"a": [{"anything-but": ["x", 1]}]}"#, "a", "all strings or all numbers"),
        (#"{"a": [{"anything-but": true}]}"#, "a", "anything-but takes"),
        (#"{"a": [{"anything-but": {"prefix": ""}}]}"#, "a", "cannot be empty"),
        (#"{"a": [{"anything-but": {"numeric": [">", 1]}}]}"#, "a", "does not support \"numeric\""),
        (#"{"$or": [{"a": ["x"]}]}"#, "$or", "at least two alternatives"),
        (#"{"$or": {"a": ["x"]}}"#, "$or", "must be an array"),
        (#"{"$or": [{"a": ["x"]}, "b"]}"#, "$or[1]", "non-empty object"),
        (#"{"$or": [{"prefix": ["x"]}, {"b": ["y"]}]}"#, "prefix", "reserved word and cannot be a field name inside $or"),
        (#"{"a": [["x"]]}"#, "a", "cannot be an array"),
    ])
    func rejectsInvalidPatterns(text: String, path: String, message: String) {
        do {
            _ = try EventPattern(text: text)
            Issue.record("accepted an invalid pattern: \(text)")
        } catch {
            #expect(error.path == path, "\(text)")
            #expect(error.message.contains(message), "\(text): \(error.message)")
        }
    }

    @Test func rejectsInvalidJSONText() {
        #expect(throws: PatternError.self) { _ = try EventPattern(text: #"{"a": ["x"]"#) }
    }

    @Test func limitsOrExpansion() {
        // 11 nested two-way $or: 2^11 alternatives.
        var pattern = #"{"f0": ["x"]}"#
        for i in 1...11 { pattern = #"{"$or": [\#(pattern), {"g\#(i)": ["y"]}], "h\#(i)": ["z"]}"# }
        let twelve = "{\"$or\": [" + (0..<11).map { #"{"$or": [{"a\#($0)": ["1"]}, {"b\#($0)": ["2"]}]}"# }.joined(separator: ",") + "]}"
        #expect(throws: Never.self) { _ = try EventPattern(text: pattern) }
        var crossed = "{"
        crossed += (0..<11).map { #""k\#($0)": {"$or": [{"a": ["1"]}, {"b": ["2"]}]}"# }.joined(separator: ",")
        crossed += "}"
        #expect {
            _ = try EventPattern(text: crossed)
        } throws: { error in
            "\(error)".contains("more than 1024 alternatives")
        }
        #expect(throws: Never.self) { _ = try EventPattern(text: twelve) }
    }

    @Test func listsFieldPaths() throws {
        let p = try EventPattern(text: #"{"source": ["aws.guardduty"], "detail": {"severity": [{"numeric": [">=", 7]}], "$or": [{"type": ["a"]}, {"title": ["b"]}]}}"#)
        #expect(p.fieldPaths == ["detail.severity", "detail.title", "detail.type", "source"])
    }
}

@Suite struct PatternMatchingTests {
    @Test func numbersCompareByValueAndExactly() throws {
        #expect(try matches(#"{"n": [300]}"#, #"{"n": 3.0e2}"#))
        #expect(try matches(#"{"n": [3.0e2]}"#, #"{"n": 300.000}"#))
        #expect(try !matches(#"{"n": [300]}"#, #"{"n": "300"}"#))
        #expect(try !matches(#"{"n": ["300"]}"#, #"{"n": 300}"#))
        // A number no double holds matches only as written (EventBridge compares doubles,
        // and falls back to the text): aws/event-ruler 2.x ComparableNumber.
        #expect(try !matches(#"{"n": [9007199254740993]}"#, #"{"n": 9007199254740992}"#))
        #expect(try matches(#"{"n": [9007199254740993]}"#, #"{"n": 9007199254740993}"#))
        #expect(try !matches(#"{"n": [9007199254740993]}"#, #"{"n": 9007199254740993.0}"#))
        #expect(try !matches(#"{"n": [{"numeric": [">", 9007199254740992]}]}"#, #"{"n": 9007199254740993}"#), "no double holds the event's number")
        #expect(try matches(#"{"n": [{"numeric": [">", 9007199254740990]}]}"#, #"{"n": 9007199254740992}"#))
        #expect(try !matches(#"{"n": [{"numeric": [">", 9007199254740992]}]}"#, #"{"n": 9007199254740992.0}"#))
        #expect(throws: PatternError.self) { try EventPattern(text: #"{"n": [{"numeric": [">", 9007199254740993]}]}"#) }
        #expect(throws: PatternError.self) { try EventPattern(text: #"{"n": [{"numeric": ["<", 1e400]}]}"#) }
        #expect(throws: PatternError.self) { try EventPattern(text: #"{"n": [{"anything-but": [5e-324]}]}"#) }
        #expect(try matches(#"{"n": [{"numeric": [">", -1, "<", 4.9e-324]}]}"#, #"{"n": 0}"#))
        #expect(try matches(#"{"n": [{"numeric": [">=", 7, "<", 8.5]}]}"#, #"{"n": 7}"#))
        #expect(try !matches(#"{"n": [{"numeric": [">=", 7, "<", 8.5]}]}"#, #"{"n": 8.5}"#))
        #expect(try !matches(#"{"n": [{"numeric": [">", 0]}]}"#, #"{"n": "5"}"#))
        #expect(try matches(#"{"n": [{"numeric": ["=", -0]}]}"#, #"{"n": 0}"#))
    }

    @Test func stringsWithEscapesMatchTheirDecodedText() throws {
        #expect(try matches(#"{"s": ["a\"b"]}"#, #"{"s": "a\u0022b"}"#))
        #expect(try matches(#"{"s": ["é"]}"#, #"{"s": "\u00e9"}"#))
        #expect(try matches(#"{"k\"ey": ["v"]}"#, #"{"k\u0022ey": "v"}"#))
        #expect(try matches(#"{"s": [{"prefix": "a\nb"}]}"#, #"{"s": "a\nbc"}"#))
    }

    @Test func arrayConsistencyKeepsFieldsInOneElement() throws {
        let event = #"{"a": [{"b": 1, "c": 2}, {"b": 3, "c": 4}]}"#
        #expect(try matches(#"{"a": {"b": [1], "c": [2]}}"#, event))
        #expect(try !matches(#"{"a": {"b": [1], "c": [4]}}"#, event))
        #expect(try matches(#"{"a": {"b": [3], "c": [4]}}"#, event))
        // exists:false is judged inside the element the other fields matched in.
        let tags = #"{"tags": [{"key": "env", "value": "prod"}, {"key": "team"}]}"#
        #expect(try matches(#"{"tags": {"key": ["team"], "value": [{"exists": false}]}}"#, tags))
        #expect(try !matches(#"{"tags": {"key": ["env"], "value": [{"exists": false}]}}"#, tags))
    }

    @Test func existsIsAboutLeafValues() throws {
        #expect(try matches(#"{"a": [{"exists": true}]}"#, #"{"a": null}"#))
        #expect(try !matches(#"{"a": [{"exists": true}]}"#, #"{"a": {"b": 1}}"#))
        #expect(try !matches(#"{"a": [{"exists": true}]}"#, #"{"a": []}"#))
        #expect(try matches(#"{"a": [{"exists": false}]}"#, #"{"a": []}"#))
        #expect(try matches(#"{"a": [{"exists": false}]}"#, #"{"b": 1}"#))
        #expect(try matches(#"{"a": [{"exists": false}, "x"]}"#, #"{"a": "x"}"#))
        #expect(try matches(#"{"a": [{"exists": false}, "x"]}"#, #"{"b": "x"}"#))
        #expect(try !matches(#"{"a": [{"exists": false}, "x"]}"#, #"{"a": "y"}"#))
        #expect(try !matches(#"{"a": [null]}"#, #"{"b": 1}"#))
        #expect(try matches(#"{"a": [null]}"#, #"{"a": null}"#))
    }

    @Test func anythingButAcrossTypes() throws {
        #expect(try matches(#"{"a": [{"anything-but": ["x"]}]}"#, #"{"a": 5}"#))
        #expect(try matches(#"{"a": [{"anything-but": [1, 2]}]}"#, #"{"a": "1"}"#))
        #expect(try !matches(#"{"a": [{"anything-but": [1, 2]}]}"#, #"{"a": 1.0}"#))
        #expect(try matches(#"{"a": [{"anything-but": {"prefix": "x"}}]}"#, #"{"a": true}"#))
        #expect(try !matches(#"{"a": [{"anything-but": {"prefix": ["x", "y"]}}]}"#, #"{"a": "yes"}"#))
        #expect(try !matches(#"{"a": [{"anything-but": ["x"]}]}"#, #"{"b": "y"}"#))
        #expect(try matches(#"{"a": [{"anything-but": ["x"]}]}"#, #"{"a": ["x", "y"]}"#))
        #expect(try !matches(#"{"a": [{"anything-but": {"equals-ignore-case": ["X"]}}]}"#, #"{"a": "x"}"#))
    }

    @Test func cidrMatchesAddressesInTheNetwork() throws {
        #expect(try matches(#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#, #"{"ip": "10.1.2.3"}"#))
        #expect(try !matches(#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#, #"{"ip": "11.1.2.3"}"#))
        // As EventBridge: a dotted IPv4-mapped address is not an address; the hex form is IPv4.
        #expect(try !matches(#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#, #"{"ip": "::ffff:10.1.2.3"}"#))
        #expect(try matches(#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#, #"{"ip": "::ffff:a01:203"}"#))
        #expect(try matches(#"{"ip": ["203.0.113.5"]}"#, #"{"ip": "203.0.113.5"}"#))
        #expect(try matches(#"{"ip": ["2001:db8::1"]}"#, #"{"ip": "2001:0DB8:0:0::1"}"#), "an exact address, however written")
        #expect(try !matches(#"{"ip": [{"exactly": "2001:db8::1"}]}"#, #"{"ip": "2001:0DB8:0:0::1"}"#))
        #expect(try matches(#"{"ip": [{"cidr": "2001:db8::/32"}]}"#, #"{"ip": "2001:DB8:0:0::1"}"#))
        #expect(try !matches(#"{"ip": [{"cidr": "2001:db8::/32"}]}"#, #"{"ip": "2001:db9::1"}"#))
        #expect(try !matches(#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#, #"{"ip": "10.0.0.0/8"}"#))
        #expect(try matches(#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#, #"{"ip": "010.1.2.3"}"#), "leading zeros are decimal (Java)")
    }

    @Test func ignoreCaseOperators() throws {
        #expect(try matches(#"{"a": [{"equals-ignore-case": "ÉTÉ"}]}"#, #"{"a": "été"}"#))
        #expect(try matches(#"{"a": [{"prefix": {"equals-ignore-case": "ARN:"}}]}"#, #"{"a": "arn:aws"}"#))
        #expect(try matches(#"{"a": [{"suffix": {"equals-ignore-case": ".EXE"}}]}"#, #"{"a": "x.exe"}"#))
        #expect(try !matches(#"{"a": [{"suffix": ".EXE"}]}"#, #"{"a": "x.exe"}"#))
    }

    @Test func manyPatternsGiveTheSameAnswersAsOneByOne() throws {
        let texts = [
            #"{"source": ["aws.guardduty"]}"#,
            #"{"source": ["aws.guardduty"], "detail": {"severity": [{"numeric": [">=", 7]}]}}"#,
            #"{"source": ["aws.guardduty"], "detail": {"severity": [8]}}"#,
            #"{"detail": {"type": [{"prefix": "Recon:"}]}}"#,
            #"{"detail": {"type": [{"wildcard": "*EC2/*"}]}}"#,
            #"{"detail": {"resource": {"instanceDetails": {"tags": {"key": ["env"], "value": ["prod"]}}}}}"#,
            #"{"detail": {"resource": {"instanceDetails": {"tags": {"key": ["env"], "value": ["dev"]}}}}}"#,
            #"{"$or": [{"source": ["aws.iam"]}, {"detail": {"severity": [{"numeric": ["<", 3]}]}}]}"#,
            #"{"detail": {"missing": [{"exists": false}]}}"#,
        ]
        let patterns = try texts.map { try EventPattern(text: $0) }
        let event = #"{"source": "aws.guardduty", "detail": {"severity": 8.0, "type": "Recon:EC2/PortProbe", "resource": {"instanceDetails": {"tags": [{"key": "env", "value": "prod"}, {"key": "team", "value": "dev"}]}}}}"#
        var together = PatternSet(patterns).makeMatcher()
        let all = try together.matches(Array(event.utf8))
        var alone: [Int] = []
        for (i, text) in texts.enumerated() where try matches(text, event) { alone.append(i) }
        #expect(all == alone)
        #expect(all == [0, 1, 2, 3, 4, 5, 8])
    }

    @Test(arguments: [
        (#"[1]"#, "must be a JSON object"),
        (#"{"a": 1"#, "unexpected end of input"),
        (#"{"a": 1}}"#, "unexpected data after the end"),
        (#"{"a": "x}"#, "unterminated string"),
        (#"{"a": [1, 2}"#, "expected ',' or ']'"),
        (#"{"a": nul}"#, "expected 'null'"),
        (#"{"z": {"q": [1, 2}}"#, "mismatched"),
        (#"{"z": {"q": "\"}}"#, "unterminated string"),
        ("", "empty event"),
    ])
    func malformedEventsAreErrors(event: String, message: String) throws {
        var matcher = PatternSet([try EventPattern(text: #"{"a": [1]}"#)]).makeMatcher()
        #expect {
            _ = try matcher.matches(Array(event.utf8))
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func deeplyNestedEventsAreRefusedNotCrashed() throws {
        var matcher = PatternSet([try EventPattern(text: #"{"a": [1]}"#)]).makeMatcher()
        let deep = "{\"a\":" + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000) + "}"
        #expect(throws: EventMatchError.self) { _ = try matcher.matches(Array(deep.utf8)) }
        let deepSkipped = "{\"z\":" + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000) + "}"
        #expect(throws: EventMatchError.self) { _ = try matcher.matches(Array(deepSkipped.utf8)) }
    }

    @Test func combinatorialEventsAreRefusedNotHung() throws {
        // Six conditions on one array of objects, each matching every element: the
        // consistency search is bounded.
        let pattern = #"{"r": {"a": [{"exists": true}], "b": [{"exists": true}], "c": [{"exists": true}], "d": [{"exists": true}], "e": [{"exists": true}], "f": [{"exists": true}, 1], "g": [2]}}"#
        let element = #"{"a":[1,1,1,1,1,1,1,1,1,1],"b":[1,1,1,1,1,1,1,1,1,1],"c":[1,1,1,1,1,1,1,1,1,1],"d":[1,1,1,1,1,1,1,1,1,1],"e":[1,1,1,1,1,1,1,1,1,1],"f":[1,1,1,1,1,1,1,1,1,1]}"#
        let event = #"{"r": [\#(element)]}"#
        var matcher = PatternSet([try EventPattern(text: pattern)]).makeMatcher()
        #expect {
            _ = try matcher.matches(Array(event.utf8))
        } throws: { error in
            "\(error)".contains("too expensive")
        }
    }

    @Test func matchesDecodedEvents() throws {
        var matcher = PatternSet([try EventPattern(text: #"{"detail": {"n": [1]}}"#)]).makeMatcher()
        #expect(matcher.matches(event: try json(#"{"detail": {"n": 1.0}}"#)) == [0])
        #expect(matcher.matches(event: try json(#"{"detail": {"n": 2}}"#)) == [])
        #expect(matcher.matches(event: .string("x")) == [])
    }
}
