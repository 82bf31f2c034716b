import Foundation
import Testing

/// The shape the code is kept in (docs/architecture.md): no source file over 500 lines,
/// and no function over 80 lines unless a doc comment above it says why it is one piece.
@Suite struct SourceShapeTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources")

    static func swiftFiles() throws -> [URL] {
        guard let walker = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil) else { return [] }
        return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }.sorted { $0.path < $1.path }
    }

    @Test func noSourceFileIsLongerThan500Lines() throws {
        let files = try Self.swiftFiles()
        #expect(files.count > 100)
        for file in files {
            let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).count
            #expect(lines <= 500, "\(file.path): \(lines) lines")
        }
    }

    @Test func noLongFunctionWithoutAComment() throws {
        for file in try Self.swiftFiles() {
            let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            for (start, length) in Self.functions(in: lines) where length > 80 {
                let documented = start > 0 && lines[start - 1].trimmingCharacters(in: .whitespaces).hasPrefix("///")
                #expect(documented, "\(file.lastPathComponent):\(start + 1): a function of \(length) lines with no comment saying why")
            }
        }
    }

    /// Where each `func`, `init` and `subscript` starts (its line index) and how many
    /// lines it spans, by counting braces outside string literals and comments.
    static func functions(in lines: [String]) -> [(start: Int, length: Int)] {
        let declaration = try? NSRegularExpression(
            pattern: #"^\s*(@[\w().:", ]+\s+)*((public|private|fileprivate|internal|package|static|final|override|mutating|nonisolated|convenience|required|class)\s+)*(func\s|init[?!]?[(<]|subscript[(<])"#)
        var found: [(Int, Int)] = []
        for (i, line) in lines.enumerated() {
            let range = NSRange(line.startIndex..., in: line)
            guard declaration?.firstMatch(in: line, range: range) != nil else { continue }
            var depth = 0
            var opened = false
            var end = i
            scan: for j in i..<lines.count {
                var inString = false
                var previous: Character = " "
                for c in lines[j] {
                    if !inString && previous == "/" && c == "/" { break }
                    if c == "\"" && previous != "\\" { inString.toggle() }
                    if !inString {
                        if c == "{" { depth += 1; opened = true }
                        if c == "}" { depth -= 1 }
                    }
                    previous = c
                }
                end = j
                if opened && depth <= 0 { break scan }
                if !opened && j > i + 15 { break scan }
            }
            if opened { found.append((i, end - i + 1)) }
        }
        return found
    }
}
