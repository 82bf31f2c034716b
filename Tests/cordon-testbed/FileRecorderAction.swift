import CordonCore
import Foundation

/// A test double for an external system: each run appends `IDEMPOTENCY-KEY TARGET` as a
/// line to a file (fsynced), and `check` finds the key there. The crash tests count the
/// lines to prove that no side effect ever happens twice. `cordon-testbed` registers it as
/// `test.record` when `CORDON_TEST_RECORDER_FILE` names the file.
struct FileRecorderAction: Action {
    let path: String

    var checkable: Bool { true }

    func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let prefix = request.idempotencyKey + " "
        return text.split(separator: "\n").contains { $0.hasPrefix(prefix) } ? ActionOutcome(outputs: ["recorded": true], alreadyDone: true) : nil
    }

    func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let line = "\(request.idempotencyKey) \(request.inputs["target"]?.stringValue ?? "-")\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard fd >= 0 else { throw .permanent("IOError", "cannot open \(path)") }
        defer { close(fd) }
        let bytes = Array(line.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count, fsync(fd) == 0 else {
            throw .retryable("IOError", "cannot write \(path)")
        }
        return ActionOutcome(outputs: ["recorded": true], target: request.inputs["target"]?.stringValue)
    }
}
