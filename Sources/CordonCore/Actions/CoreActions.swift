/// The `core.*` actions.
public enum CoreActions {
    /// The specs of `core.log`, `core.set` and `core.wait`.
    public static let specs: [ActionSpec] = [Log.spec, SetValues.spec, Wait.spec]

    public static var all: [String: any Action] {
        ["core.log": Log(), "core.set": SetValues(), "core.wait": Wait()]
    }

    /// Writes its message into the step's record; nothing outside Cordon changes, so a
    /// repeat is harmless.
    struct Log: Action {
        var checkable: Bool { true }
        func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
            ActionOutcome(outputs: ["message": request.inputs["message"] ?? "", "level": request.inputs["level"] ?? "info"])
        }
    }

    struct SetValues: Action {
        var checkable: Bool { true }
        func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
            guard case .object(let values)? = request.inputs["values"] else {
                throw .permanent("InvalidInput", "core.set needs `values`, a mapping")
            }
            return ActionOutcome(outputs: ["values": .object(values)])
        }
    }

    struct Wait: Action {
        func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
            guard let text = request.inputs["duration"]?.stringValue, let duration = DurationParser.parse(text) else {
                throw .permanent("InvalidInput", "core.wait needs `duration`, such as 30s")
            }
            do {
                try await Task.sleep(for: duration)
            } catch {
                throw .retryable("Cancelled", "the wait was cancelled")
            }
            return ActionOutcome(outputs: ["waited": .string(text)])
        }
    }
}

extension CoreActions.Log {
    static let spec = ActionSpec(
        name: "core.log",
        summary: "Write a message to the incident's journal (and the log)",
        kind: .utility,
        inputs: [
            InputSpec("message", .string, required: true, "the message"),
            InputSpec("level", .string, default: "info", "info, warning or error"),
        ])
}

extension CoreActions.SetValues {
    static let spec = ActionSpec(
        name: "core.set",
        summary: "Compute values once and expose them as this step's output",
        kind: .utility,
        inputs: [InputSpec("values", .object, required: true, "the values (templates allowed)")],
        outputs: [OutputSpec("values", "the values, as given")])
}

extension CoreActions.Wait {
    static let spec = ActionSpec(
        name: "core.wait",
        summary: "Wait for a while (on the virtual clock in drills)",
        kind: .utility,
        inputs: [InputSpec("duration", .duration, required: true, "how long, e.g. 30s")])
}
