import CLibYAML

/// A YAML document that could not be loaded, with where.
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String
    public var description: String { "\(location): \(message)" }
}

/// Loads YAML with libyaml's event parser into positioned values, defensively: hostile
/// input (alias "billion laughs" bombs, very deep nesting, huge files) is refused with
/// a clear error in well under a second, without recursion or unbounded memory.
///
/// Limits (docs/playbooks.md, "Limits on configuration files"):
/// - `maxBytes`: the file size (1 MiB).
/// - `maxDepth`: nesting of mappings and sequences (64 levels).
/// - `maxNodes`: nodes in the document once aliases are expanded (100,000).
/// - one document per file; no tags other than the core schema's (`!!str`, `!!int`, …);
///   no merge keys (`<<`); duplicate keys are errors.
public struct YAMLParser: Sendable {
    public var maxBytes = 1 << 20
    public var maxDepth = 64
    public var maxNodes = 100_000

    public init() {}

    public func parse(_ text: [UInt8], file: String) throws(YAMLError) -> YAMLValue {
        func fail(_ message: String, line: Int = 1, column: Int = 1) -> YAMLError {
            YAMLError(location: SourceLocation(file: file, line: line, column: column), message: message)
        }
        guard text.count <= maxBytes else {
            throw fail("file is \(text.count) bytes, more than the limit of \(maxBytes)")
        }
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw fail("could not initialise the YAML parser") }
        defer { yaml_parser_delete(&parser) }

        var builder = Builder(file: file, maxDepth: maxDepth, maxNodes: maxNodes)
        return try text.withUnsafeBufferPointer { buffer throws(YAMLError) -> YAMLValue in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
                    var message = problem
                    if let context = parser.context.map({ String(cString: $0) }) { message = "\(context): \(problem)" }
                    throw fail(
                        "invalid YAML: \(message)", line: Int(parser.problem_mark.line) + 1,
                        column: Int(parser.problem_mark.column) + 1)
                }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { break }
                try builder.handle(&event)
            }
            guard let root = builder.root else {
                return YAMLValue(kind: .null, location: SourceLocation(file: file, line: 1, column: 1))
            }
            return root
        }
    }

    public func parse(_ text: String, file: String) throws(YAMLError) -> YAMLValue {
        try parse(Array(text.utf8), file: file)
    }

    /// Builds the tree from events with an explicit stack (no recursion).
    struct Builder {
        let file: String
        let maxDepth: Int
        let maxNodes: Int
        var root: YAMLValue?
        var documents = 0
        var nodes = 0
        var anchors: [String: (value: YAMLValue, size: Int)] = [:]

        enum Frame {
            case sequence(items: [YAMLValue], location: SourceLocation, anchor: String?, startNodes: Int)
            case mapping(
                members: [YAMLValue.Member], pendingKey: (String, SourceLocation)?, location: SourceLocation,
                anchor: String?, startNodes: Int)
        }
        var stack: [Frame] = []

        init(file: String, maxDepth: Int, maxNodes: Int) {
            self.file = file
            self.maxDepth = maxDepth
            self.maxNodes = maxNodes
        }

        func location(_ mark: yaml_mark_t) -> SourceLocation {
            SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
        }

        func fail(_ message: String, _ at: SourceLocation) -> YAMLError { YAMLError(location: at, message: message) }

        mutating func count(_ n: Int, at: SourceLocation) throws(YAMLError) {
            nodes += n
            if nodes > maxNodes {
                throw fail(
                    "the document expands to more than \(maxNodes) nodes (an alias bomb?); Cordon refuses it", at)
            }
        }

        static func string(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            p.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
        }

        mutating func handle(_ event: inout yaml_event_t) throws(YAMLError) {
            let at = location(event.start_mark)
            switch event.type {
            case YAML_STREAM_START_EVENT, YAML_DOCUMENT_END_EVENT:
                return
            case YAML_DOCUMENT_START_EVENT:
                documents += 1
                if documents > 1 { throw fail("a file holds one YAML document; found a second one (---)", at) }
            case YAML_ALIAS_EVENT:
                let name = Self.string(event.data.alias.anchor) ?? ""
                guard let anchored = anchors[name] else { throw fail("unknown alias *\(name)", at) }
                try count(anchored.size, at: at)
                try add(anchored.value, at: at)
            case YAML_SCALAR_EVENT:
                try count(1, at: at)
                let scalar = event.data.scalar
                let text = scalar.value.map {
                    String(decoding: UnsafeBufferPointer(start: $0, count: Int(scalar.length)), as: UTF8.self)
                } ?? ""
                let tag = Self.string(scalar.tag)
                let plain = scalar.style == YAML_PLAIN_SCALAR_STYLE
                let kind = try resolve(text, tag: tag, plain: plain, at: at)
                let value = YAMLValue(kind: kind, location: at)
                if let anchor = Self.string(scalar.anchor) { anchors[anchor] = (value, 1) }
                try add(value, at: at)
            case YAML_SEQUENCE_START_EVENT:
                try open(at: at, tag: Self.string(event.data.sequence_start.tag), expected: "tag:yaml.org,2002:seq")
                stack.append(.sequence(items: [], location: at, anchor: Self.string(event.data.sequence_start.anchor), startNodes: nodes))
            case YAML_MAPPING_START_EVENT:
                try open(at: at, tag: Self.string(event.data.mapping_start.tag), expected: "tag:yaml.org,2002:map")
                stack.append(
                    .mapping(
                        members: [], pendingKey: nil, location: at, anchor: Self.string(event.data.mapping_start.anchor),
                        startNodes: nodes))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let frame = stack.popLast() else { throw fail("unbalanced YAML events", at) }
                let value: YAMLValue
                let anchor: String?
                let startNodes: Int
                switch frame {
                case .sequence(let items, let location, let a, let s):
                    value = YAMLValue(kind: .sequence(items), location: location)
                    anchor = a
                    startNodes = s
                case .mapping(let members, _, let location, let a, let s):
                    value = YAMLValue(kind: .mapping(members), location: location)
                    anchor = a
                    startNodes = s
                }
                if let anchor { anchors[anchor] = (value, nodes - startNodes + 1) }
                try add(value, at: value.location)
            default:
                return
            }
        }

        mutating func open(at: SourceLocation, tag: String?, expected: String) throws(YAMLError) {
            if let tag, tag != expected, tag != "!" {
                throw fail("YAML tag \(tag) is not supported", at)
            }
            try count(1, at: at)
            if stack.count >= maxDepth { throw fail("nesting deeper than \(maxDepth) levels", at) }
        }

        mutating func add(_ value: YAMLValue, at: SourceLocation) throws(YAMLError) {
            guard let top = stack.popLast() else {
                root = value
                return
            }
            switch top {
            case .sequence(var items, let location, let anchor, let start):
                items.append(value)
                stack.append(.sequence(items: items, location: location, anchor: anchor, startNodes: start))
            case .mapping(var members, let pendingKey, let location, let anchor, let start):
                if let (key, keyLocation) = pendingKey {
                    members.append(YAMLValue.Member(key: key, keyLocation: keyLocation, value: value))
                    stack.append(.mapping(members: members, pendingKey: nil, location: location, anchor: anchor, startNodes: start))
                } else {
                    let key: String
                    switch value.kind {
                    case .string(let s): key = s
                    case .number(let n): key = n.literal
                    case .bool(let b): key = b ? "true" : "false"
                    case .null: key = ""
                    default: throw fail("a mapping key must be a scalar, not \(value.typeName)", at)
                    }
                    if key == "<<" { throw fail("merge keys (<<) are not supported; write the keys out", at) }
                    if let first = members.first(where: { $0.key == key }) {
                        throw fail(
                            "duplicate key \"\(key)\" (first at line \(first.keyLocation.line), column \(first.keyLocation.column))",
                            at)
                    }
                    stack.append(.mapping(members: members, pendingKey: (key, at), location: location, anchor: anchor, startNodes: start))
                }
            }
        }

        /// YAML 1.2 core schema resolution of a scalar.
        func resolve(_ text: String, tag: String?, plain: Bool, at: SourceLocation) throws(YAMLError) -> YAMLValue.Kind {
            if let tag, tag != "!" {
                switch tag {
                case "tag:yaml.org,2002:str": return .string(text)
                case "tag:yaml.org,2002:null": return .null
                case "tag:yaml.org,2002:bool":
                    guard let b = Self.bool(text) else { throw fail("\"\(text)\" is not a boolean", at) }
                    return .bool(b)
                case "tag:yaml.org,2002:int", "tag:yaml.org,2002:float":
                    guard let n = try Self.number(text, at: at, file: file) else { throw fail("\"\(text)\" is not a number", at) }
                    return .number(n)
                default:
                    throw fail("YAML tag \(tag) is not supported", at)
                }
            }
            guard plain else { return .string(text) }
            switch text {
            case "", "~", "null", "Null", "NULL": return .null
            default: break
            }
            if let b = Self.bool(text) { return .bool(b) }
            if let n = try Self.number(text, at: at, file: file) { return .number(n) }
            return .string(text)
        }

        static func bool(_ text: String) -> Bool? {
            switch text {
            case "true", "True", "TRUE": return true
            case "false", "False", "FALSE": return false
            default: return nil
            }
        }

        /// A core-schema number as an exact JSON number; nil when the text is not one.
        static func number(_ text: String, at: SourceLocation, file: String) throws(YAMLError) -> JSONNumber? {
            let bytes = Array(text.utf8)
            guard let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+")
                || first == UInt8(ascii: ".") || isDigit(first)
            else { return nil }
            switch text.lowercased() {
            case ".inf", "+.inf", "-.inf", ".nan":
                throw YAMLError(location: at, message: "\(text) cannot be represented in JSON; use a finite number")
            default: break
            }
            if text.hasPrefix("0x") || text.hasPrefix("0o") {
                let radix = text.hasPrefix("0x") ? 16 : 8
                guard let v = UInt64(text.dropFirst(2), radix: radix) else { return nil }
                return JSONNumber(validatedLiteral: String(v))
            }
            // [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
            var i = 0
            var negative = false
            if bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") {
                negative = bytes[i] == UInt8(ascii: "-")
                i += 1
            }
            var integer: [UInt8] = []
            while i < bytes.count, isDigit(bytes[i]) { integer.append(bytes[i]); i += 1 }
            var fraction: [UInt8] = []
            var sawPoint = false
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                sawPoint = true
                i += 1
                while i < bytes.count, isDigit(bytes[i]) { fraction.append(bytes[i]); i += 1 }
            }
            if integer.isEmpty && fraction.isEmpty { return nil }
            if integer.isEmpty && sawPoint && fraction.isEmpty { return nil }
            var exponent: [UInt8] = []
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                var expDigits: [UInt8] = []
                var sign: UInt8? = nil
                if i < bytes.count, bytes[i] == UInt8(ascii: "-") || bytes[i] == UInt8(ascii: "+") { sign = bytes[i]; i += 1 }
                while i < bytes.count, isDigit(bytes[i]) { expDigits.append(bytes[i]); i += 1 }
                if expDigits.isEmpty { return nil }
                exponent = [UInt8(ascii: "e")] + (sign == UInt8(ascii: "-") ? [UInt8(ascii: "-")] : []) + expDigits
            }
            guard i == bytes.count else { return nil }
            // Leading zeros dropped at once (one at a time is quadratic in their number).
            integer.removeFirst(max(0, min(integer.count - 1, integer.prefix { $0 == UInt8(ascii: "0") }.count)))
            if integer.isEmpty { integer = [UInt8(ascii: "0")] }
            var literal = (negative ? "-" : "") + String(decoding: integer, as: UTF8.self)
            if !fraction.isEmpty { literal += "." + String(decoding: fraction, as: UTF8.self) }
            literal += String(decoding: exponent, as: UTF8.self)
            return JSONNumber(literal: literal)
        }
    }
}
