import CordonCloud
import CordonCore

/// The actions a run can call, assembled in one place for every command that runs
/// playbooks and for drills: the core actions, e-mail, every action of every
/// integration file (as `INTEGRATION.ACTION`), and the cloud's `aws.*` actions. A drill
/// or a test replaces some of them through `overrides` (a virtual-clock wait, notifiers
/// that record instead of sending).
public enum ActionSet {
    /// What every built-in action takes, gives and needs, from the specs beside the
    /// implementations: `aws.*`, `core.*`, `core.email`.
    public static let specs: [ActionSpec] = AWSActions.specs + CoreActions.specs + [EmailAction.spec]

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

extension ActionSet {
    /// The catalogue of built-in actions as the Markdown table of docs/playbooks.md
    /// ("Built-in actions"), generated from the specs: a test holds the docs to it, so a
    /// new action, input, IAM action or rollback shows up there.
    public static func catalogueMarkdown(_ specs: [ActionSpec] = ActionSet.specs) -> String {
        var lines = ["| action | does | inputs (* required, default in brackets) | IAM actions | reversible |", "|---|---|---|---|---|"]
        for spec in specs {
            let iam = spec.iamActions.isEmpty ? "–" : spec.iamActions.joined(separator: ", ")
            let row = ["`\(spec.name)`", spec.summary, inputs(spec), iam, spec.reversible ? "yes" : "no"]
            lines.append("| " + row.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `name`* for a required input, `name` [default] for one with a default, and
    /// "exactly one of `a` / `b`" for a group of which one must be given.
    private static func inputs(_ spec: ActionSpec) -> String {
        var parts: [String] = []
        var grouped: Set<String> = []
        for input in spec.inputs where !grouped.contains(input.name) {
            if let group = spec.exactlyOneOf.first(where: { $0.contains(input.name) }) {
                grouped.formUnion(group)
                parts.append("exactly one of " + group.map { "`\($0)`" }.joined(separator: " / "))
                continue
            }
            var text = "`\(input.name)`"
            if input.required { text += "*" }
            if let value = input.defaultValue { text += " [\(value.stringValue ?? JSONWriter.string(value))]" }
            parts.append(text)
        }
        return parts.isEmpty ? "–" : parts.joined(separator: ", ")
    }
}
