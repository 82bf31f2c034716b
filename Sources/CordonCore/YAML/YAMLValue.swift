/// A place in a source file (1-based line and column).
public struct SourceLocation: Sendable, Equatable, Hashable, Comparable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.file, a.line, a.column) < (b.file, b.line, b.column)
    }
}

/// A YAML value with the position of every node, for diagnostics that point at the
/// offending line and column. Scalars are resolved with the YAML 1.2 core schema
/// (`yes`/`no`/`on`/`off` stay strings).
public struct YAMLValue: Sendable {
    public indirect enum Kind: Sendable {
        case null
        case bool(Bool)
        case number(JSONNumber)
        case string(String)
        case sequence([YAMLValue])
        case mapping([Member])
    }

    public struct Member: Sendable {
        public var key: String
        public var keyLocation: SourceLocation
        public var value: YAMLValue
    }

    public var kind: Kind
    public var location: SourceLocation

    /// The plain JSON value (positions dropped).
    public var json: JSONValue {
        switch kind {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let n): return .number(n)
        case .string(let s): return .string(s)
        case .sequence(let items): return .array(items.map(\.json))
        case .mapping(let members):
            var o = JSONObject()
            for m in members { o[m.key] = m.value.json }
            return .object(o)
        }
    }

    public var typeName: String {
        switch kind {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }

    public var members: [Member]? {
        if case .mapping(let m) = kind { return m }
        return nil
    }

    public var items: [YAMLValue]? {
        if case .sequence(let s) = kind { return s }
        return nil
    }

    public var string: String? {
        if case .string(let s) = kind { return s }
        return nil
    }

    public subscript(key: String) -> YAMLValue? {
        members?.first { $0.key == key }?.value
    }
}
