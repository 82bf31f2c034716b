import CordonCLI
import CordonCore
import Foundation

// `cordon` with the crash tests' recording action (`FileRecorderAction`) as `test.record`
// when CORDON_TEST_RECORDER_FILE names its file. Built for the tests only; the `cordon`
// executable has no such action.
if let recorder = ProcessInfo.processInfo.environment["CORDON_TEST_RECORDER_FILE"] {
    ActionOverrides.install { actions in actions["test.record"] = FileRecorderAction(path: recorder) }
}
await Cordon.runMain()
