/// A string with `{{ path | filter }}` placeholders, parsed once at load time.
///
/// Paths are dotted names with `[n]` indexes (and `["key"]` for keys with dots);
/// filters are `default(VALUE)`, `upper`, `lower`, `json` and `join(SEP)`. Templates
/// only look values up and format them: nothing in them can run code.
public struct Template: Sendable, Equatable, CustomStringConvertible {
    public let source: String
    let parts: [Part]

    enum Part: Sendable, Equatable {
        case literal(String)
        case expression(TemplateExpression)
    }

    public var description: String { source }

    /// Whether the text is exactly one placeholder (its value keeps its JSON type).
    public var isSingleExpression: Bool {
        parts.count == 1 && { if case .expression = parts[0] { return true } else { return false } }()
    }

    /// The placeholders, in order.
    public var expressions: [TemplateExpression] {
        parts.compactMap { if case .expression(let e) = $0 { return e } else { return nil } }
    }

    /// Whether a string contains placeholder syntax at all.
    public static func containsPlaceholder(_ text: String) -> Bool { text.contains("{{") }

    public init(_ source: String) throws(TemplateError) {
        self.source = source
        var parts: [Part] = []
        var literal = ""
        let chars = Array(source.unicodeScalars)
        var i = 0
        while i < chars.count {
            if chars[i] == "{", i + 1 < chars.count, chars[i + 1] == "{" {
                var j = i + 2
                var closed = false
                var inQuote: Unicode.Scalar? = nil
                while j < chars.count {
                    let c = chars[j]
                    if let q = inQuote {
                        if c == "\\" { j += 2; continue }
                        if c == q { inQuote = nil }
                    } else if c == "\"" || c == "'" {
                        inQuote = c
                    } else if c == "}", j + 1 < chars.count, chars[j + 1] == "}" {
                        closed = true
                        break
                    }
                    j += 1
                }
                guard closed else {
                    throw TemplateError(
                        template: source, offset: i,
                        message: inQuote != nil ? "unterminated string inside {{ }}" : "unclosed {{: add the closing }}")
                }
                if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
                let inner = String(String.UnicodeScalarView(chars[(i + 2)..<j]))
                parts.append(.expression(try TemplateExpression(parse: inner, template: source, offset: i + 2)))
                i = j + 2
                continue
            }
            if chars[i] == "}", i + 1 < chars.count, chars[i + 1] == "}" {
                throw TemplateError(template: source, offset: i, message: "}} without a matching {{")
            }
            literal.unicodeScalars.append(chars[i])
            i += 1
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }
}

/// A template problem: at load time (syntax, unknown references) or at run time (a
/// missing value), naming the template and the path.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var template: String
    /// Character offset of the problem in the template (for columns in diagnostics).
    public var offset: Int
    public var message: String

    public var description: String { "template \"\(template)\": \(message)" }

    public init(template: String, offset: Int, message: String) {
        self.template = template
        self.offset = offset
        self.message = message
    }
}

/// One `{{ … }}`: a path and its filters.
public struct TemplateExpression: Sendable, Equatable {
    public let path: TemplatePath
    public let filters: [TemplateFilter]
    public let source: String

    public var hasDefault: Bool { filters.contains { if case .defaultValue = $0 { return true } else { return false } } }

    init(parse text: String, template: String, offset: Int) throws(TemplateError) {
        source = String(text.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
        var lexer = Lexer(text: Array(text.unicodeScalars), template: template, base: offset)
        lexer.skipSpaces()
        path = try lexer.path()
        var filters: [TemplateFilter] = []
        lexer.skipSpaces()
        while !lexer.atEnd {
            try lexer.expect("|")
            lexer.skipSpaces()
            filters.append(try lexer.filter())
            lexer.skipSpaces()
        }
        self.filters = filters
    }

    struct Lexer {
        let text: [Unicode.Scalar]
        let template: String
        let base: Int
        var i = 0

        var atEnd: Bool { i >= text.count }

        func fail(_ message: String) -> TemplateError { TemplateError(template: template, offset: base + i, message: message) }

        mutating func skipSpaces() { while i < text.count, text[i] == " " || text[i] == "\t" { i += 1 } }

        mutating func expect(_ c: Unicode.Scalar) throws(TemplateError) {
            guard i < text.count, text[i] == c else {
                throw fail(atEnd ? "expected '\(c)' but the placeholder ends" : "unexpected '\(text[i])': expected '\(c)'")
            }
            i += 1
        }

        static func isNameCharacter(_ c: Unicode.Scalar) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_" || c == "-"
        }

        mutating func name() throws(TemplateError) -> String {
            let start = i
            while i < text.count, Self.isNameCharacter(text[i]) { i += 1 }
            guard i > start else { throw fail(atEnd ? "expected a name but the placeholder ends" : "unexpected '\(text[i])': expected a name") }
            return String(String.UnicodeScalarView(text[start..<i]))
        }

        mutating func path() throws(TemplateError) -> TemplatePath {
            if atEnd { throw fail("empty placeholder: write a path such as {{ detail.type }}") }
            var components: [TemplatePath.Component] = [.key(try name())]
            while i < text.count {
                if text[i] == "." {
                    i += 1
                    components.append(.key(try name()))
                } else if text[i] == "[" {
                    i += 1
                    skipSpaces()
                    if i < text.count, text[i] == "\"" || text[i] == "'" {
                        guard case .string(let key) = try literal() else { throw fail("expected a quoted key") }
                        components.append(.key(key))
                    } else {
                        let start = i
                        while i < text.count, text[i] >= "0" && text[i] <= "9" { i += 1 }
                        guard i > start, let index = Int(String(String.UnicodeScalarView(text[start..<i]))) else {
                            throw fail("expected an index such as [0] or a quoted key such as [\"a.b\"]")
                        }
                        components.append(.index(index))
                    }
                    skipSpaces()
                    try expect("]")
                } else {
                    break
                }
            }
            return TemplatePath(components: components)
        }

        mutating func filter() throws(TemplateError) -> TemplateFilter {
            let at = i
            let filterName = try name()
            skipSpaces()
            var argument: JSONValue? = nil
            if i < text.count, text[i] == "(" {
                i += 1
                skipSpaces()
                argument = try literal()
                skipSpaces()
                try expect(")")
            }
            switch (filterName, argument) {
            case ("default", let value?): return .defaultValue(value)
            case ("default", nil): i = at; throw fail("default needs a value: default(\"none\")")
            case ("upper", nil): return .upper
            case ("lower", nil): return .lower
            case ("json", nil): return .json
            case ("join", nil): return .join(", ")
            case ("join", .string(let separator)?): return .join(separator)
            case ("join", _?): i = at; throw fail("join takes a string separator: join(\", \")")
            case ("upper", _?), ("lower", _?), ("json", _?): i = at; throw fail("\(filterName) takes no argument")
            default:
                i = at
                var message = "unknown filter \"\(filterName)\""
                if let s = suggest(filterName, from: TemplateFilter.names) { message += " (did you mean \"\(s)\"?)" }
                throw fail(message + "; filters are " + TemplateFilter.names.joined(separator: ", "))
            }
        }

        /// A literal argument: a quoted string, a number, true, false or null.
        mutating func literal() throws(TemplateError) -> JSONValue {
            guard i < text.count else { throw fail("expected a value") }
            let c = text[i]
            if c == "\"" || c == "'" {
                i += 1
                var s = ""
                while i < text.count, text[i] != c {
                    if text[i] == "\\", i + 1 < text.count {
                        i += 1
                        switch text[i] {
                        case "n": s.unicodeScalars.append("\n")
                        case "t": s.unicodeScalars.append("\t")
                        default: s.unicodeScalars.append(text[i])
                        }
                    } else {
                        s.unicodeScalars.append(text[i])
                    }
                    i += 1
                }
                guard i < text.count else { throw fail("unterminated string") }
                i += 1
                return .string(s)
            }
            let start = i
            while i < text.count, text[i] != ")" && text[i] != " " && text[i] != "]" { i += 1 }
            let word = String(String.UnicodeScalarView(text[start..<i]))
            switch word {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "null": return .null
            default:
                if let n = JSONNumber(literal: word) { return .number(n) }
                i = start
                throw fail("expected a quoted string, a number, true, false or null, found \(word.isEmpty ? "nothing" : word)")
            }
        }
    }
}

/// A path into the template context: `detail.resource.instanceDetails.instanceId`,
/// `steps.isolate.output.previous_groups[0]`.
public struct TemplatePath: Sendable, Equatable, CustomStringConvertible {
    public enum Component: Sendable, Equatable {
        case key(String)
        case index(Int)
    }

    public let components: [Component]

    public var root: String {
        if case .key(let k) = components[0] { return k }
        return ""
    }

    /// The key at position `i`, if that component is a key.
    public func key(at i: Int) -> String? {
        guard i < components.count, case .key(let k) = components[i] else { return nil }
        return k
    }

    public var description: String {
        var s = ""
        for (i, c) in components.enumerated() {
            switch c {
            case .key(let k):
                if k.contains(".") || k.contains(" ") {
                    s += "[\"\(k)\"]"
                } else {
                    s += (i == 0 ? "" : ".") + k
                }
            case .index(let n): s += "[\(n)]"
            }
        }
        return s
    }
}

public enum TemplateFilter: Sendable, Equatable {
    case defaultValue(JSONValue)
    case upper, lower, json
    case join(String)

    static let names = ["default", "upper", "lower", "json", "join"]
}
