/// A validated Amazon EventBridge event pattern.
///
/// Parsing checks the whole pattern and reports the first problem with the dotted path
/// of the field and what is wrong. Internally the pattern is expanded into alternatives
/// (disjunctive normal form over `$or` and `exists: false` mixes); each alternative is a
/// list of per-field conditions that must all hold.
public struct EventPattern: Sendable, Hashable {
    /// The pattern as written.
    public let json: JSONValue
    let alternatives: [[FieldCondition]]

    /// The most alternatives one pattern may expand into through `$or`.
    public static let maxAlternatives = 1_024
    /// The most field conditions its alternatives may hold together: `$or`s multiply the
    /// fields beside them, and a pattern past this would take minutes and gigabytes to
    /// compile.
    public static let maxConditions = 100_000
    /// The most fields one alternative may test (matching walks them one level each).
    public static let maxFields = 1_000
    /// The deepest field nesting a pattern may have.
    public static let maxDepth = 64

    public init(json: JSONValue) throws(PatternError) {
        guard case .object(let members) = json else {
            throw PatternError(path: "", message: "a pattern must be a JSON object, not \(json.typeName)")
        }
        guard !members.isEmpty else {
            throw PatternError(path: "", message: "a pattern must name at least one field")
        }
        var compiler = PatternCompiler()
        self.json = json
        self.alternatives = try compiler.expand(object: members, path: [], depth: 0, insideOr: false)
    }

    /// Parses pattern text (JSON).
    public init(text: String) throws(PatternError) {
        let json: JSONValue
        do {
            json = try JSONParser.parse(text)
        } catch {
            throw PatternError(path: "", message: "not valid JSON: \(error)")
        }
        try self.init(json: json)
    }

    public static func == (lhs: EventPattern, rhs: EventPattern) -> Bool { lhs.json == rhs.json }
    public func hash(into hasher: inout Hasher) { hasher.combine(json) }

    /// Every field path the pattern reads (dotted), sorted.
    public var fieldPaths: [String] {
        Set(alternatives.flatMap { $0.map(\.dottedPath) }).sorted()
    }
}

/// A condition on one field: at least one of `matchers` holds for a value of the field,
/// or, when `absent`, the field has no leaf value (in the same array element as the
/// values matched by the other conditions).
struct FieldCondition: Sendable, Hashable {
    var path: [String]
    var matchers: [ValueMatcher]
    var absent: Bool

    var dottedPath: String { path.joined(separator: ".") }

    /// Key of the automaton edge: equal for conditions that accept the same values.
    var edgeKey: String {
        absent ? "absent" : Set(matchers.map(\.canonicalKey)).sorted().joined(separator: "\u{1}")
    }
}

struct PatternCompiler {
    typealias Alternative = [FieldCondition]

    mutating func expand(object: JSONObject, path: [String], depth: Int, insideOr: Bool) throws(PatternError) -> [Alternative] {
        if depth > EventPattern.maxDepth {
            throw PatternError(path: dotted(path), message: "nested deeper than \(EventPattern.maxDepth) levels")
        }
        var result: [Alternative] = [[]]
        for (key, value) in object {
            let options: [Alternative]
            if key == "$or" {
                options = try expandOr(value, path: path, depth: depth)
            } else {
                let fieldPath = path + [key]
                if insideOr, ValueMatcherParser.reservedInsideOr.contains(key) {
                    throw PatternError(
                        path: dotted(fieldPath),
                        message: "\"\(key)\" is a reserved word and cannot be a field name inside $or; an operator goes in a match object such as [{\"prefix\": …}]")
                }
                switch value {
                case .object(let members):
                    guard !members.isEmpty else {
                        throw PatternError(path: dotted(fieldPath), message: "an object in a pattern must name at least one field")
                    }
                    options = try expand(object: members, path: fieldPath, depth: depth + 1, insideOr: insideOr)
                case .array(let elements):
                    options = try leaf(elements, path: fieldPath)
                default:
                    throw PatternError(
                        path: dotted(fieldPath),
                        message: "the value must be an array of match values or an object of fields, not \(value.typeName) \(value)")
                }
            }
            result = try cross(result, options, path: path)
        }
        return result
    }

    private mutating func expandOr(_ value: JSONValue, path: [String], depth: Int) throws(PatternError) -> [Alternative] {
        let orPath = dotted(path + ["$or"])
        guard case .array(let elements) = value else {
            throw PatternError(path: orPath, message: "$or must be an array of at least two pattern objects, not \(value.typeName)")
        }
        guard elements.count >= 2 else {
            throw PatternError(path: orPath, message: "$or must have at least two alternatives, it has \(elements.count)")
        }
        var options: [Alternative] = []
        for (index, element) in elements.enumerated() {
            guard case .object(let members) = element, !members.isEmpty else {
                throw PatternError(
                    path: orPath + "[\(index)]", message: "each $or alternative must be a non-empty object of fields, not \(element)")
            }
            options += try expand(object: members, path: path, depth: depth + 1, insideOr: true)
            if options.count > EventPattern.maxAlternatives { throw tooMany(path) }
        }
        return options
    }

    private func cross(_ a: [Alternative], _ b: [Alternative], path: [String]) throws(PatternError) -> [Alternative] {
        guard a.count * b.count <= EventPattern.maxAlternatives else { throw tooMany(path) }
        // Every alternative of the product holds one of `a`'s and one of `b`'s conditions.
        let conditions = b.count * a.reduce(0) { $0 + $1.count } + a.count * b.reduce(0) { $0 + $1.count }
        guard conditions <= EventPattern.maxConditions else {
            throw PatternError(
                path: dotted(path),
                message: "the pattern's $or combinations expand into more than \(EventPattern.maxConditions) field conditions; simplify it")
        }
        let widest = (a.map(\.count).max() ?? 0) + (b.map(\.count).max() ?? 0)
        guard widest <= EventPattern.maxFields else {
            throw PatternError(path: dotted(path), message: "the pattern tests more than \(EventPattern.maxFields) fields; simplify it")
        }
        if b.count == 1 { return a.map { $0 + b[0] } }
        var out: [Alternative] = []
        out.reserveCapacity(a.count * b.count)
        for x in a { for y in b { out.append(x + y) } }
        return out
    }

    private func tooMany(_ path: [String]) -> PatternError {
        PatternError(
            path: dotted(path),
            message: "the pattern's $or combinations expand into more than \(EventPattern.maxAlternatives) alternatives; simplify it")
    }

    /// A leaf array: one or more match values; returns one alternative, or two when the
    /// array mixes `exists: false` with positive matchers.
    private func leaf(_ elements: [JSONValue], path: [String]) throws(PatternError) -> [Alternative] {
        let fieldPath = dotted(path)
        guard !elements.isEmpty else {
            throw PatternError(path: fieldPath, message: "an empty array matches nothing; give at least one value")
        }
        var matchers: [ValueMatcher] = []
        var absent = false
        for element in elements {
            switch element {
            // A string that is an IP address matches that address however it is written.
            case .string(let s): matchers.append(IPRange(address: s).map(ValueMatcher.exactIP) ?? .exactString(s))
            // A number a double holds exactly matches by value; any other only as written.
            case .number(let n):
                matchers.append(JavaDouble.isComparable(n.decimal) ? .exactNumber(n.decimal) : .exactNumberText(n.literal))
            case .bool(let b): matchers.append(.exactBool(b))
            case .null: matchers.append(.exactNull)
            case .array:
                throw PatternError(path: fieldPath, message: "a match value cannot be an array (arrays nest only at the top of a field)")
            case .object(let members):
                do {
                    if let m = try ValueMatcherParser.parse(members) {
                        matchers.append(m)
                    } else {
                        absent = true
                    }
                } catch {
                    throw PatternError(path: fieldPath, message: error.message)
                }
            }
        }
        var options: [Alternative] = []
        if !matchers.isEmpty { options.append([FieldCondition(path: path, matchers: matchers, absent: false)]) }
        if absent { options.append([FieldCondition(path: path, matchers: [], absent: true)]) }
        return options
    }

    private func dotted(_ path: [String]) -> String { path.joined(separator: ".") }
}

/// Parses the operator objects of a leaf array (`{"prefix": …}`, `{"numeric": […]}`, …).
enum ValueMatcherParser {
    static let operators = [
        "prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists", "cidr", "exactly",
    ]

    /// Names EventBridge reserves, which cannot be fields inside `$or` (aws/event-ruler
    /// 2.x `Constants.RESERVED_FIELD_NAMES_IN_OR_RELATIONSHIP`).
    static let reservedInsideOr: Set<String> = Set(operators).union([
        "=", "<", "<=", ">", ">=", "regex", "not-wildcard", "not-equals-ignore-case", "date-after", "date-on-or-after", "date-before",
        "date-on-or-before", "in-date-range", "ip-address-in-range", "ip-address-not-in-range",
    ])

    /// Returns the matcher, or `nil` for `{"exists": false}`.
    static func parse(_ members: JSONObject) throws(PatternError) -> ValueMatcher? {
        guard members.count == 1, let (op, value) = members.elements.first.map({ ($0.key, $0.value) }) else {
            if members.isEmpty { throw fail("an empty object is not a match value") }
            throw fail("a match object must have exactly one operator, found \(members.keys.joined(separator: ", "))")
        }
        switch op {
        case "prefix", "suffix":
            let (text, ignoreCase) = try stringOrIgnoreCase(value, op: op)
            return op == "prefix" ? .prefix(text, ignoreCase: ignoreCase) : .suffix(text, ignoreCase: ignoreCase)
        case "equals-ignore-case":
            guard case .string(let s) = value else { throw fail("equals-ignore-case takes a string, not \(value.typeName)") }
            return .equalsIgnoreCase(s)
        case "wildcard":
            guard case .string(let s) = value else { throw fail("wildcard takes a string, not \(value.typeName)") }
            return .wildcard(try WildcardPattern(s))
        case "anything-but":
            return .anythingBut(try anythingBut(value))
        case "numeric":
            return .numeric(try numeric(value))
        case "exists":
            guard case .bool(let b) = value else { throw fail("exists takes true or false, not \(value)") }
            return b ? .exists : nil
        case "cidr":
            guard case .string(let s) = value else { throw fail("cidr takes a string such as \"10.0.0.0/8\", not \(value.typeName)") }
            return .cidr(try IPRange(cidr: s))
        case "exactly":
            guard case .string(let s) = value else { throw fail("exactly takes a string, not \(value.typeName)") }
            return .exactString(s)
        default:
            var message = "unknown operator \"\(op)\""
            if let suggestion = suggest(op, from: operators) { message += " (did you mean \"\(suggestion)\"?)" }
            throw fail(message + "; operators are " + operators.joined(separator: ", "))
        }
    }

    private static func fail(_ message: String) -> PatternError { PatternError(path: "", message: message) }

    private static func stringOrIgnoreCase(_ value: JSONValue, op: String) throws(PatternError) -> (String, Bool) {
        switch value {
        case .string(let s):
            return (s, false)
        case .object(let members):
            guard members.count == 1, case .string(let s)? = members["equals-ignore-case"] else {
                throw fail("\(op) takes a string or {\"equals-ignore-case\": string}, not \(value)")
            }
            return (s, true)
        default:
            throw fail("\(op) takes a string, not \(value.typeName)")
        }
    }

    private static func anythingBut(_ value: JSONValue) throws(PatternError) -> AnythingBut {
        switch value {
        case .string(let s):
            return .values(strings: [s], numbers: [])
        case .number(let n):
            return .values(strings: [], numbers: [try comparable(n, "anything-but")])
        case .array(let elements):
            guard !elements.isEmpty else { throw fail("anything-but needs at least one value") }
            var strings: Set<String> = []
            var numbers: Set<DecimalValue> = []
            for element in elements {
                switch element {
                case .string(let s): strings.insert(s)
                case .number(let n): numbers.insert(try comparable(n, "anything-but"))
                default: throw fail("anything-but lists hold strings or numbers, not \(element.typeName)")
                }
            }
            guard strings.isEmpty || numbers.isEmpty else {
                throw fail("anything-but lists must be all strings or all numbers")
            }
            return .values(strings: strings, numbers: numbers)
        case .object(let members):
            guard members.count == 1, let (op, inner) = members.elements.first.map({ ($0.key, $0.value) }) else {
                throw fail("anything-but takes one of prefix, suffix, equals-ignore-case, wildcard, not \(value)")
            }
            switch op {
            case "prefix", "suffix":
                let list = try stringList(inner, op: "anything-but \(op)")
                guard !list.contains("") else {
                    throw fail("anything-but \(op) cannot be empty (it would exclude every string)")
                }
                return op == "prefix" ? .prefix(list) : .suffix(list)
            case "equals-ignore-case":
                let list = try stringList(inner, op: "anything-but equals-ignore-case")
                return .equalsIgnoreCase(Set(list))
            case "wildcard":
                let list = try stringList(inner, op: "anything-but wildcard")
                var patterns: [WildcardPattern] = []
                for s in list { patterns.append(try WildcardPattern(s)) }
                return .wildcard(patterns)
            default:
                throw fail("anything-but does not support \"\(op)\"; use prefix, suffix, equals-ignore-case or wildcard")
            }
        default:
            throw fail("anything-but takes a string, a number, a list of them, or an object, not \(value.typeName)")
        }
    }

    /// A number a numeric comparison can use: one a double holds exactly, as EventBridge
    /// requires (aws/event-ruler 2.x `ComparableNumber.generate`).
    private static func comparable(_ n: JSONNumber, _ op: String) throws(PatternError) -> DecimalValue {
        guard JavaDouble.isComparable(n.decimal) else {
            throw fail("\(op): \(n.literal) cannot be compared: EventBridge compares numbers as doubles, and no double is exactly \(n.literal) (within ±1.8e308, as Java writes a double)")
        }
        return n.decimal
    }

    private static func stringList(_ value: JSONValue, op: String) throws(PatternError) -> [String] {
        switch value {
        case .string(let s): return [s]
        case .array(let elements):
            guard !elements.isEmpty else { throw fail("\(op) needs at least one string") }
            var out: [String] = []
            for element in elements {
                guard case .string(let s) = element else { throw fail("\(op) takes strings, not \(element.typeName)") }
                out.append(s)
            }
            return out
        default:
            throw fail("\(op) takes a string or a list of strings, not \(value.typeName)")
        }
    }

    private static func numeric(_ value: JSONValue) throws(PatternError) -> NumericRange {
        guard case .array(let elements) = value, elements.count == 2 || elements.count == 4 else {
            throw fail("numeric takes [operator, number] or [lower-operator, number, upper-operator, number], e.g. [\">=\", 7]")
        }
        var range = NumericRange()
        var index = 0
        var sawEquals = false
        while index < elements.count {
            guard case .string(let op) = elements[index] else {
                throw fail("numeric operator must be one of =, <, <=, >, >=, not \(elements[index])")
            }
            guard case .number(let n) = elements[index + 1] else {
                throw fail("numeric \"\(op)\" must be followed by a number, not \(elements[index + 1])")
            }
            let d = try comparable(n, "numeric")
            switch op {
            case "=":
                guard elements.count == 2 else { throw fail("numeric \"=\" cannot be combined with another bound") }
                range.lower = d; range.lowerInclusive = true
                range.upper = d; range.upperInclusive = true
                sawEquals = true
            case ">", ">=":
                guard range.lower == nil else { throw fail("numeric has two lower bounds") }
                guard index == 0 else { throw fail("numeric lower bound (> or >=) must come first") }
                range.lower = d; range.lowerInclusive = op == ">="
            case "<", "<=":
                guard range.upper == nil else { throw fail("numeric has two upper bounds") }
                range.upper = d; range.upperInclusive = op == "<="
            default:
                throw fail("unknown numeric operator \"\(op)\"; use =, <, <=, >, >=")
            }
            index += 2
        }
        if !sawEquals, let lower = range.lower, let upper = range.upper, !(lower < upper) {
            throw fail("numeric range is empty: the lower bound must be below the upper bound")
        }
        return range
    }
}

/// The closest candidate by edit distance, when it is close enough to be a likely typo.
func suggest(_ word: String, from candidates: [String]) -> String? {
    var best: (String, Int)? = nil
    for candidate in candidates {
        let d = editDistance(word.lowercased(), candidate.lowercased())
        if d <= max(1, candidate.count / 3), best == nil || d < best!.1 { best = (candidate, d) }
    }
    return best?.0
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
