import Foundation
import Testing

@testable import CordonCore
import CordonIntegrations

/// The action catalogue in docs/playbooks.md ("Built-in actions") is the actions Cordon
/// registers: the same names, the same inputs, the same required ones, the same
/// reversibility. A new action, input or rollback shows up here until the docs say so.
@Suite struct DocsCatalogueTests {
    struct Row {
        var inputs: Set<String>
        var required: Set<String>
        var reversible: Bool
    }

    static func documented() throws -> [String: Row] {
        let text = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("docs/playbooks.md"), encoding: .utf8)
        let section = try #require(text.components(separatedBy: "\n## Built-in actions\n").dropFirst().first?.components(separatedBy: "\n## ").first)
        var rows: [String: Row] = [:]
        for line in section.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 6 else { continue }
            let name = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            // `input`* is required; `input` (default) is not; prose between them is ignored.
            var inputs: Set<String> = []
            var required: Set<String> = []
            let scanner = cells[3]
            var rest = Substring(scanner)
            while let open = rest.firstIndex(of: "`") {
                let after = rest[rest.index(after: open)...]
                guard let close = after.firstIndex(of: "`") else { break }
                let input = String(after[..<close])
                inputs.insert(input)
                let tail = after[after.index(after: close)...]
                if tail.hasPrefix("*") { required.insert(input) }
                rest = tail
            }
            rows[name] = Row(inputs: inputs, required: required, reversible: cells[5] == "yes")
        }
        return rows
    }

    @Test func theDocumentedCatalogueIsTheRegisteredOne() throws {
        let rows = try Self.documented()
        let specs = Dictionary(ActionSet.specs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(Set(rows.keys) == Set(specs.keys), "documented but not registered: \(Set(rows.keys).subtracting(specs.keys)); registered but not documented: \(Set(specs.keys).subtracting(rows.keys))")
        for (name, spec) in specs {
            guard let row = rows[name] else { continue }
            #expect(row.inputs == Set(spec.inputs.map(\.name)), "\(name) inputs: docs \(row.inputs.sorted()), code \(spec.inputs.map(\.name).sorted())")
            #expect(row.required == Set(spec.inputs.filter(\.required).map(\.name)), "\(name) required inputs")
            #expect(row.reversible == spec.reversible, "\(name) reversible: docs \(row.reversible), code \(spec.reversible)")
        }
    }

    /// The table in the docs is the one the specs generate, byte for byte (the failure
    /// prints the table to paste in).
    @Test func theDocumentedCatalogueIsGeneratedFromTheSpecs() throws {
        let text = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("docs/playbooks.md"), encoding: .utf8)
        let section = try #require(text.components(separatedBy: "\n## Built-in actions\n").dropFirst().first?.components(separatedBy: "\n## ").first)
        let table = section.split(separator: "\n", omittingEmptySubsequences: false).filter { $0.hasPrefix("|") }.joined(separator: "\n") + "\n"
        let generated = ActionSet.catalogueMarkdown()
        #expect(table == generated, "docs/playbooks.md's table differs from the specs; it should read:\n\(generated)")
    }
}
