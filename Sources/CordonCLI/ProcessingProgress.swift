import CordonCore
import CordonEngine
import Foundation

/// `cordon process` on a terminal: a line on standard error that says how many findings
/// are handled, so a long run (thousands of findings) is not silent. Elsewhere (a pipe, a
/// file, CI) it prints nothing and hands the findings to the engine in one go.
enum ProcessingProgress {
    /// Findings journaled and handled in one go between two progress lines.
    static let chunk = 200

    static func processing(_ findings: [Finding], engine: Engine, terminal: Bool = isatty(STDERR_FILENO) == 1) async throws -> [Engine.Outcome] {
        guard terminal, findings.count > chunk else { return try await engine.process(findings) }
        var outcomes: [Engine.Outcome] = []
        outcomes.reserveCapacity(findings.count)
        var start = 0
        var lastLine = ContinuousClock.now - .seconds(1)
        while start < findings.count {
            let end = min(start + chunk, findings.count)
            outcomes += try await engine.process(Array(findings[start..<end]))
            start = end
            if ContinuousClock.now - lastLine >= .milliseconds(500) || start == findings.count {
                FileHandle.standardError.write(Data("\rcordon: \(start)/\(findings.count) findings handled".utf8))
                lastLine = .now
            }
        }
        FileHandle.standardError.write(Data("\n".utf8))
        return outcomes
    }
}
