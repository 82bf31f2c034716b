/// The expected shape of a configuration file, declared once: the loader checks files
/// against it (unknown keys, types, required fields) and `cordon schema` turns it into
/// JSON Schema, so the two never disagree.
public indirect enum Shape: Sendable {
    case string(pattern: String? = nil, help: String? = nil)
    case integer(min: Int? = nil, max: Int? = nil)
    case boolean
    case duration
    /// A string that may hold `{{ }}` placeholders.
    case template
    /// Any JSON value; strings may hold placeholders.
    case templateValue
    /// An EventBridge event pattern.
    case eventPattern
    case oneOf([String])
    case object([Field])
    case list(Shape, minItems: Int = 0)
    /// A mapping with free keys.
    case map(Shape, keyPattern: String? = nil, keyHelp: String? = nil)
    case any

    public struct Field: Sendable {
        public var name: String
        public var shape: Shape
        public var required: Bool
        public var summary: String

        public init(_ name: String, _ shape: Shape, required: Bool = false, _ summary: String) {
            self.name = name
            self.shape = shape
            self.required = required
            self.summary = summary
        }
    }
}

/// Checks YAML against a `Shape`, collecting every problem.
struct ShapeChecker {
    var diagnostics: [Diagnostic] = []

    mutating func check(_ value: YAMLValue, _ shape: Shape, path: String) {
        func fail(_ message: String) { diagnostics.append(Diagnostic(value.location, message)) }
        let at = path.isEmpty ? "" : "\(path): "
        switch shape {
        case .any, .templateValue:
            return
        case .string(let pattern, let help):
            guard case .string(let s) = value.kind else { return fail("\(at)expected a string, found \(value.typeName)") }
            if let pattern, !Self.matches(s, pattern) { fail("\(at)\"\(s)\" is not valid: \(help ?? "must match \(pattern)")") }
        case .template:
            guard case .string = value.kind else {
                if case .number = value.kind { return }
                return fail("\(at)expected a string, found \(value.typeName)")
            }
        case .integer(let min, let max):
            guard case .number(let n) = value.kind, let i = n.intValue else {
                return fail("\(at)expected a whole number, found \(value.typeName) \(Self.show(value))")
            }
            if let min, i < min { fail("\(at)must be at least \(min), not \(i)") }
            if let max, i > max { fail("\(at)must be at most \(max), not \(i)") }
        case .boolean:
            guard case .bool = value.kind else { return fail("\(at)expected true or false, found \(value.typeName) \(Self.show(value))") }
        case .duration:
            guard case .string(let s) = value.kind else {
                return fail("\(at)expected a duration such as 30s, 15m or 1h30m, found \(value.typeName) \(Self.show(value))")
            }
            if DurationParser.parse(s) == nil {
                fail("\(at)\"\(s)\" is not a duration: write number-unit pairs such as 500ms, 30s, 15m, 1h30m (units ms, s, m, h, d)")
            }
        case .eventPattern:
            guard case .mapping = value.kind else { return fail("\(at)an event pattern must be a mapping, found \(value.typeName)") }
        case .oneOf(let options):
            guard case .string(let s) = value.kind, options.contains(s) else {
                var message = "\(at)expected one of \(options.joined(separator: ", ")), found \(Self.show(value))"
                if case .string(let s) = value.kind, let guess = suggest(s, from: options) { message += " (did you mean \(guess)?)" }
                return fail(message)
            }
        case .list(let element, let minItems):
            guard case .sequence(let items) = value.kind else { return fail("\(at)expected a list, found \(value.typeName)") }
            if items.count < minItems { fail("\(at)needs at least \(minItems) item\(minItems == 1 ? "" : "s")") }
            for (i, item) in items.enumerated() { check(item, element, path: "\(path)[\(i)]") }
        case .map(let element, let keyPattern, let keyHelp):
            guard case .mapping(let members) = value.kind else { return fail("\(at)expected a mapping, found \(value.typeName)") }
            for m in members {
                if let keyPattern, !Self.matches(m.key, keyPattern) {
                    diagnostics.append(Diagnostic(m.keyLocation, "\(at)key \"\(m.key)\" is not valid: \(keyHelp ?? "must match \(keyPattern)")"))
                }
                check(m.value, element, path: path.isEmpty ? m.key : "\(path).\(m.key)")
            }
        case .object(let fields):
            guard case .mapping(let members) = value.kind else {
                return fail("\(at)expected a mapping with \(fields.map(\.name).joined(separator: ", ")), found \(value.typeName)")
            }
            for m in members {
                guard let field = fields.first(where: { $0.name == m.key }) else {
                    var message = "\(at)unknown key \"\(m.key)\""
                    if let guess = suggest(m.key, from: fields.map(\.name)) { message += " (did you mean \"\(guess)\"?)" }
                    message += "; expected " + fields.map(\.name).joined(separator: ", ")
                    diagnostics.append(Diagnostic(m.keyLocation, message))
                    continue
                }
                check(m.value, field.shape, path: path.isEmpty ? m.key : "\(path).\(m.key)")
            }
            for field in fields where field.required && !members.contains(where: { $0.key == field.name }) {
                fail("\(at)missing required key \"\(field.name)\" (\(field.summary))")
            }
        }
    }

    static func show(_ value: YAMLValue) -> String {
        switch value.kind {
        case .string(let s): return "\"\(s)\""
        default: return JSONWriter.string(value.json)
        }
    }

    /// Minimal anchored matching for the identifier patterns used in shapes.
    static func matches(_ s: String, _ pattern: String) -> Bool {
        (try? Regex(pattern).wholeMatch(in: s)) != nil
    }
}

extension Shape {
    /// JSON Schema (draft 2020-12) of the shape.
    public var jsonSchema: JSONValue {
        switch self {
        case .any, .templateValue: return [:]
        case .string(let pattern, _):
            var o: JSONObject = ["type": "string"]
            if let pattern { o["pattern"] = .string("^(?:\(pattern))$") }
            return .object(o)
        case .template: return ["type": ["string", "number"]]
        case .integer(let min, let max):
            var o: JSONObject = ["type": "integer"]
            if let min { o["minimum"] = .number(JSONNumber(min)) }
            if let max { o["maximum"] = .number(JSONNumber(max)) }
            return .object(o)
        case .boolean: return ["type": "boolean"]
        case .duration: return ValueType.duration.jsonSchema
        case .eventPattern: return ["type": "object", "description": "An Amazon EventBridge event pattern"]
        case .oneOf(let options): return ["enum": .array(options.map(JSONValue.string))]
        case .list(let element, let minItems):
            var o: JSONObject = ["type": "array", "items": element.jsonSchema]
            if minItems > 0 { o["minItems"] = .number(JSONNumber(minItems)) }
            return .object(o)
        case .map(let element, let keyPattern, _):
            var o: JSONObject = ["type": "object", "additionalProperties": element.jsonSchema]
            if let keyPattern { o["propertyNames"] = ["pattern": .string("^(?:\(keyPattern))$")] }
            return .object(o)
        case .object(let fields):
            var properties = JSONObject()
            for field in fields {
                var schema = field.shape.jsonSchema
                if case .object(var o) = schema {
                    o["description"] = .string(field.summary)
                    schema = .object(o)
                }
                properties[field.name] = schema
            }
            var o: JSONObject = ["type": "object", "properties": .object(properties), "additionalProperties": false]
            let required = fields.filter(\.required).map { JSONValue.string($0.name) }
            if !required.isEmpty { o["required"] = .array(required) }
            return .object(o)
        }
    }
}

extension Shape {
    /// Every problem of `value` against the shape (unknown keys with a did-you-mean,
    /// types, required fields), each at its line and column.
    public func diagnostics(of value: YAMLValue, path: String = "") -> [Diagnostic] {
        var checker = ShapeChecker()
        checker.check(value, self, path: path)
        return checker.diagnostics
    }
}
