/// What an action is: its name, inputs, outputs and what it touches. Built-in actions
/// and every action of every integration file are described the same way, in one
/// registry that the loader, `cordon validate`, the JSON Schema and `cordon iam-policy`
/// all read.
public struct ActionSpec: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// Reads state and stores evidence; changes nothing.
        case evidence
        /// Changes the cloud to contain an incident; records pre-state for rollback.
        case containment
        /// Tells people (chat, paging, email, SNS).
        case notification
        /// Cordon-internal helpers (`core.*`).
        case utility
    }

    public var name: String
    public var summary: String
    public var kind: Kind
    public var inputs: [InputSpec]
    public var outputs: [OutputSpec]
    /// Groups of inputs of which exactly one must be given (e.g. user_name or role_name).
    public var exactlyOneOf: [[String]]
    /// The IAM actions the implementation calls (empty for non-AWS actions).
    public var iamActions: [String]
    /// Whether `cordon rollback` can undo it from the recorded pre-state.
    public var reversible: Bool
    /// Where the action is defined: "built-in" or the integration file.
    public var definedIn: String

    public init(
        name: String, summary: String, kind: Kind, inputs: [InputSpec], outputs: [OutputSpec] = [],
        exactlyOneOf: [[String]] = [], iamActions: [String] = [], reversible: Bool = false, definedIn: String = "built-in"
    ) {
        self.name = name
        self.summary = summary
        self.kind = kind
        self.inputs = inputs
        self.outputs = outputs
        self.exactlyOneOf = exactlyOneOf
        self.iamActions = iamActions
        self.reversible = reversible
        self.definedIn = definedIn
    }

    public func input(_ name: String) -> InputSpec? { inputs.first { $0.name == name } }
}

/// One input of an action.
public struct InputSpec: Sendable, Equatable {
    public var name: String
    public var type: ValueType
    public var required: Bool
    public var defaultValue: JSONValue?
    public var summary: String

    public init(_ name: String, _ type: ValueType, required: Bool = false, default defaultValue: JSONValue? = nil, _ summary: String) {
        self.name = name
        self.type = type
        self.required = required
        self.defaultValue = defaultValue
        self.summary = summary
    }
}

public struct OutputSpec: Sendable, Equatable {
    public var name: String
    public var summary: String

    public init(_ name: String, _ summary: String) {
        self.name = name
        self.summary = summary
    }
}

/// The JSON type an input takes.
public enum ValueType: String, Sendable, Equatable, CaseIterable {
    case string, integer, number, boolean, object, array, any
    /// A string such as `15m` (see `DurationParser`).
    case duration
    /// A list of strings (a single string is accepted as a one-element list).
    case stringList = "string-list"

    /// Whether a concrete (rendered) value has this type.
    public func accepts(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (.any, _): return true
        case (.string, .string): return true
        case (.integer, .number(let n)): return n.decimal.isInteger
        case (.number, .number): return true
        case (.boolean, .bool): return true
        case (.object, .object): return true
        case (.array, .array): return true
        case (.duration, .string(let s)): return DurationParser.parse(s) != nil
        case (.stringList, .string): return true
        case (.stringList, .array(let items)): return items.allSatisfy { $0.stringValue != nil }
        default: return false
        }
    }

    public var jsonSchema: JSONValue {
        switch self {
        case .string: return ["type": "string"]
        case .integer: return ["type": "integer"]
        case .number: return ["type": "number"]
        case .boolean: return ["type": "boolean"]
        case .object: return ["type": "object"]
        case .array: return ["type": "array"]
        case .any: return [:]
        case .duration: return ["type": "string", "pattern": .string(DurationParser.schemaPattern)]
        case .stringList: return ["anyOf": [["type": "string"], ["type": "array", "items": ["type": "string"]]]]
        }
    }
}
