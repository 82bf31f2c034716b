import Foundation
import Testing

@testable import CordonCore

@Suite struct YAMLParserTests {
    let parser = YAMLParser()

    @Test func resolvesCoreSchemaScalarsWithPositions() throws {
        let value = try parser.parse(
            """
            name: demo
            count: 42
            ratio: .5
            big: 12345678901234567890
            hex: 0x1F
            on: yes
            flag: true
            nothing: ~
            quoted: "true"
            list: [a, 1, null]
            """, file: "t.yaml")
        #expect(value["name"]?.string == "demo")
        #expect(value["count"]?.json == 42)
        #expect(value["ratio"]?.json == .number(JSONNumber(literal: "0.5")!))
        #expect(value["big"]?.json == .number(JSONNumber(literal: "12345678901234567890")!))
        #expect(value["hex"]?.json == 31)
        #expect(value["on"]?.json == "yes")  // YAML 1.2: yes is a string
        #expect(value["flag"]?.json == true)
        #expect(value["nothing"]?.json == .null)
        #expect(value["quoted"]?.json == "true")
        #expect(value["list"]?.json == ["a", 1, nil])
        #expect(value["list"]?.location == SourceLocation(file: "t.yaml", line: 10, column: 7))
        #expect(value.members?[1].keyLocation == SourceLocation(file: "t.yaml", line: 2, column: 1))
    }

    @Test(arguments: [
        ("a: 1\na: 2\n", "duplicate key \"a\" (first at line 1, column 1)", 2),
        ("a: [1, 2\n", "invalid YAML", 2),
        ("a: !!python/object x\n", "tag tag:yaml.org,2002:python/object is not supported", 1),
        ("a: 1\n---\nb: 2\n", "one YAML document", 2),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", "merge keys", 3),
        ("a: *nope\n", "unknown alias *nope", 1),
        ("a: .inf\n", "cannot be represented in JSON", 1),
    ])
    func rejectsBadYAMLWithPosition(text: String, message: String, line: Int) {
        do {
            _ = try parser.parse(text, file: "bad.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.message.contains(message), "\(error)")
            #expect(error.location.line == line, "\(error)")
            #expect(error.location.file == "bad.yaml")
        }
    }

    @Test func refusesAliasBombsFast() throws {
        var text = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for i in 1...9 {
            text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]\n"
        }
        let start = ContinuousClock.now
        #expect {
            _ = try parser.parse(text, file: "bomb.yaml")
        } throws: { error in
            "\(error)".contains("alias bomb")
        }
        #expect(ContinuousClock.now - start < .seconds(1))
    }

    @Test func refusesDeepNestingFast() throws {
        let flow = String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000)
        #expect {
            _ = try parser.parse(flow, file: "deep.yaml")
        } throws: { error in
            "\(error)".contains("nesting deeper than 64")
        }
        let block = (0..<100).map { String(repeating: "  ", count: $0) + "k\($0):" }.joined(separator: "\n") + " x\n"
        #expect {
            _ = try parser.parse(block, file: "deep.yaml")
        } throws: { error in
            "\(error)".contains("nesting deeper than 64")
        }
        let dashes = String(repeating: "- ", count: 5000) + "x\n"
        #expect(throws: YAMLError.self) { _ = try parser.parse(dashes, file: "deep.yaml") }
    }

    @Test func refusesOversizedFiles() {
        let text = "a: \"" + String(repeating: "x", count: 2 << 20) + "\"\n"
        #expect {
            _ = try parser.parse(text, file: "big.yaml")
        } throws: { error in
            "\(error)".contains("more than the limit")
        }
    }

    @Test func anchorsWithinTheBudgetWork() throws {
        let value = try parser.parse("base: &b {x: 1}\ncopy: *b\n", file: "a.yaml")
        #expect(value["copy"]?.json == ["x": 1])
    }
}
