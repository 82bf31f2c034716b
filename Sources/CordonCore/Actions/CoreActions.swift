/// The `core.*` actions.
public enum CoreActions {
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
