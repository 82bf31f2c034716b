/// Every action a playbook can use: the built-in ones and those of the integration files.
public struct ActionRegistry: Sendable {
    public private(set) var actions: [String: ActionSpec] = [:]

    public init(_ specs: [ActionSpec] = []) {
        for spec in specs { actions[spec.name] = spec }
    }

    public subscript(name: String) -> ActionSpec? { actions[name] }

    public var names: [String] { actions.keys.sorted() }

    public mutating func add(_ spec: ActionSpec) { actions[spec.name] = spec }
}
