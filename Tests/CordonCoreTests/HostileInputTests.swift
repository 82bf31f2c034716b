import Foundation
import Testing

@testable import CordonCore
import CordonIntegrations

/// Inputs built to crash or exhaust the parsers and the matcher: each is refused with a
/// clear error or handled, within bounded time and memory, never a trap.
@Suite struct HostileInputTests {
    /// A pattern error reported at `x[-1]` used to index the YAML list at -1 while
    /// locating it for the diagnostic.
    @Test func aNegativeIndexInAPatternPathIsADiagnosticNotACrash() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
            name: negative-index
            version: 1
            trigger:
              x: [a]
              "x[-1]": 5
            steps:
              - {id: log, action: core.log, with: {message: hi}}
            """.write(to: dir.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
        let loaded = ConfigLoader(actions: .builtIn).load([dir.path])
        #expect(!loaded.isValid)
        #expect(loaded.errors.contains { $0.location.file.hasSuffix("p.yaml") }, "\(loaded.errors)")
    }

    @Test func durationsLongerThanAnyPlaybookWritesAreFormatted() {
        #expect(DurationParser.format(.seconds(Int64.max)).hasSuffix("s"))
        // Past Int64 milliseconds it saturates.
        #expect(DurationParser.format(.seconds(10_000_000_000_000_000)).hasPrefix("106751991167d"))
        #expect(DurationParser.format(.seconds(90)) == "1m30s")
    }

    /// Values 250 arrays deep: every value kept for matching carries its position in each
    /// array around it, which took 1 GB for a 1 MB event.
    @Test func valuesNestedDeepInArraysAreRefusedWithinBoundedMemory() throws {
        let depth = 250
        let leaves = Array(repeating: "5", count: 100_000).joined(separator: ",")
        let event = #"{"detail":{"severity":"# + String(repeating: "[", count: depth) + leaves + String(repeating: "]", count: depth) + "}}"
        let pattern = try EventPattern(text: #"{"detail": {"severity": [5]}}"#)
        var matcher = PatternSet([pattern]).makeMatcher()
        #expect(throws: EventMatchError.self) { try matcher.matches(Array(event.utf8)) }
        // A legitimate event still matches afterwards.
        #expect(try matcher.matches(Array(#"{"detail":{"severity":[[5]]}}"#.utf8)) == [0])
    }

    /// Ten two-way `$or`s multiply the fields beside them a thousandfold.
    @Test func aPatternThatExpandsIntoTooManyConditionsIsRefused() {
        let ors = (0..<10).map { #""$or": [{"a\#($0)": [1]}, {"b\#($0)": [2]}]"# }
        let fields = (0..<200).map { #""f\#($0)": [\#($0)]"# }.joined(separator: ",")
        let text = "{" + ors.enumerated().map { i, o in #""n\#(i)": {\#(o)}"# }.joined(separator: ",") + "," + fields + "}"
        #expect(throws: PatternError.self) { try EventPattern(text: text) }
        let wide = "{" + (0..<1_500).map { #""f\#($0)": [\#($0)]"# }.joined(separator: ",") + "}"
        #expect(throws: PatternError.self) { try EventPattern(text: wide) }
    }

    /// A YAML number with a million leading zeros used to take minutes (each zero
    /// removed one at a time); one with no integer part must not trap either.
    @Test func yamlNumbersWithManyLeadingZerosParseQuickly() throws {
        let started = ContinuousClock.now
        let value = try YAMLParser().parse(Array(("x: " + String(repeating: "0", count: 1_000_000) + "1").utf8), file: "zeros.yaml")
        #expect(value["x"]?.json == .number(JSONNumber(1)))
        #expect(ContinuousClock.now - started < .seconds(20))
        _ = try? YAMLParser().parse(Array("x: .5\ny: -.5e3\n".utf8), file: "point.yaml")
    }

    @Test func aFileLargerThanTheLimitIsRefusedBeforeItIsRead() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-big-\(UUID().uuidString).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(count: 2 << 20)))
        let loaded = ConfigLoader(actions: .builtIn).load([path])
        #expect(loaded.errors.contains { $0.message.contains("more than the limit of") }, "\(loaded.errors)")
        guard case .failure = BoundedFile.read(path, limit: 1 << 20) else { Issue.record("a 2 MiB file read under a 1 MiB limit"); return }
    }
}
