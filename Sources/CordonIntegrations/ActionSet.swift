import CordonCloud
import CordonCore

/// The actions a run can call, assembled in one place for every command that runs
/// playbooks and for drills: the core actions, e-mail, every action of every
/// integration file (as `INTEGRATION.ACTION`), and the cloud's `aws.*` actions. A drill
/// or a test replaces some of them through `overrides` (a virtual-clock wait, notifiers
/// that record instead of sending).
public enum ActionSet {
    /// What every built-in action takes, gives and needs, from the specs beside the
    /// implementations: `core.*`, `core.email`, `aws.*`.
    public static let specs: [ActionSpec] = CoreActions.specs + [EmailAction.spec] + AWSActions.specs

    public static func build(
        integrations: [Integration], cloud: [String: any Action], overrides: (inout [String: any Action]) -> Void = { _ in }
    ) -> [String: any Action] {
        var actions = CoreActions.all
        actions[EmailAction.name] = EmailAction()
        actions.merge(IntegrationActions.all(integrations)) { _, integration in integration }
        actions.merge(cloud) { _, aws in aws }
        overrides(&actions)
        return actions
    }
}

extension ActionRegistry {
    /// The built-in actions, before any integration file adds its own.
    public static let builtIn = ActionRegistry(ActionSet.specs)
}
