import CordonCore
import Synchronization

/// Actions that an executable built on CordonCLI adds to, or replaces in, every command
/// that runs playbooks, installed before `Cordon.runMain()`. The `cordon` executable
/// installs none; the test executable (`Tests/cordon-testbed`) adds the crash tests'
/// recording action.
public enum ActionOverrides {
    private static let installed = Mutex<[@Sendable (inout [String: any Action]) -> Void]>([])

    /// Adds `override`, applied after the built-in, integration and cloud actions.
    public static func install(_ override: @escaping @Sendable (inout [String: any Action]) -> Void) {
        installed.withLock { $0.append(override) }
    }

    static func apply(_ actions: inout [String: any Action]) {
        for override in installed.withLock({ $0 }) { override(&actions) }
    }
}
