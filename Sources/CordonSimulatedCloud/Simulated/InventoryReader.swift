import CordonAWS
import CordonCloud
import CordonCore

/// Reads YAML against an expected layout, collecting every problem as a `Diagnostic`
/// (`FILE:LINE:COLUMN: message`), in the style of the playbook loader.
struct InventoryReader {
    var diagnostics: [Diagnostic] = []

    /// A mapping's members by key, after checking the keys.
    struct Fields {
        var value: YAMLValue
        var path: String
        var members: [String: YAMLValue.Member]

        subscript(key: String) -> YAMLValue? { members[key]?.value }
        func at(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    }

    mutating func error(_ location: SourceLocation, _ message: String) {
        diagnostics.append(Diagnostic(location, message))
    }

    static func prefix(_ path: String) -> String { path.isEmpty ? "" : "\(path): " }

    static func show(_ value: YAMLValue) -> String {
        switch value.kind {
        case .string(let s): return "\"\(s)\""
        case .mapping, .sequence: return ""
        default: return JSONWriter.string(value.json)
        }
    }

    static func found(_ value: YAMLValue) -> String {
        let shown = show(value)
        return shown.isEmpty ? value.typeName : "\(value.typeName) \(shown)"
    }

    mutating func fields(_ value: YAMLValue, _ path: String, allowed: [String], required: [String] = []) -> Fields? {
        guard let members = value.members else {
            error(value.location, "\(Self.prefix(path))expected a mapping with \(allowed.joined(separator: ", ")), found \(Self.found(value))")
            return nil
        }
        var byKey: [String: YAMLValue.Member] = [:]
        for m in members {
            guard allowed.contains(m.key) else {
                var message = "\(Self.prefix(path))unknown key \"\(m.key)\""
                if let guess = Self.suggest(m.key, allowed) { message += " (did you mean \"\(guess)\"?)" }
                message += "; expected " + allowed.joined(separator: ", ")
                error(m.keyLocation, message)
                continue
            }
            if let first = byKey[m.key] {
                error(m.keyLocation, "\(Self.prefix(path))duplicate key \"\(m.key)\" (first at line \(first.keyLocation.line))")
                continue
            }
            byKey[m.key] = m
        }
        for key in required where byKey[key] == nil {
            error(value.location, "\(Self.prefix(path))missing required key \"\(key)\"")
        }
        return Fields(value: value, path: path, members: byKey)
    }

    mutating func string(_ f: Fields, _ key: String, pattern: ((String) -> Bool)? = nil, help: String = "") -> String? {
        guard let v = f[key] else { return nil }
        switch v.kind {
        case .string(let s):
            if let pattern, !pattern(s) {
                error(v.location, "\(f.at(key)): \"\(s)\" is not valid: \(help)")
                return nil
            }
            return s
        case .null:
            return nil
        default:
            error(v.location, "\(f.at(key)): expected a string, found \(Self.found(v))")
            return nil
        }
    }

    mutating func int(_ f: Fields, _ key: String, range: ClosedRange<Int>) -> Int? {
        guard let v = f[key] else { return nil }
        guard case .number(let n) = v.kind, let i = n.intValue else {
            error(v.location, "\(f.at(key)): expected a whole number, found \(Self.found(v))")
            return nil
        }
        guard range.contains(i) else {
            error(v.location, "\(f.at(key)): must be between \(range.lowerBound) and \(range.upperBound), not \(i)")
            return nil
        }
        return i
    }

    mutating func bool(_ f: Fields, _ key: String) -> Bool? {
        guard let v = f[key] else { return nil }
        guard case .bool(let b) = v.kind else {
            error(v.location, "\(f.at(key)): expected true or false, found \(Self.found(v))")
            return nil
        }
        return b
    }

    mutating func oneOf(_ f: Fields, _ key: String, _ options: [String]) -> String? {
        guard let v = f[key] else { return nil }
        guard case .string(let s) = v.kind, options.contains(s) else {
            var message = "\(f.at(key)): expected one of \(options.joined(separator: ", ")), found \(Self.found(v))"
            if case .string(let s) = v.kind, let guess = Self.suggest(s, options) { message += " (did you mean \(guess)?)" }
            error(v.location, message)
            return nil
        }
        return s
    }

    /// A list (a missing key is an empty list).
    mutating func list(_ f: Fields, _ key: String) -> [YAMLValue] {
        guard let v = f[key] else { return [] }
        if case .null = v.kind { return [] }
        guard let items = v.items else {
            error(v.location, "\(f.at(key)): expected a list, found \(Self.found(v))")
            return []
        }
        return items
    }

    /// A list of strings.
    mutating func strings(_ f: Fields, _ key: String) -> [(String, SourceLocation)] {
        var out: [(String, SourceLocation)] = []
        for (i, item) in list(f, key).enumerated() {
            guard case .string(let s) = item.kind else {
                error(item.location, "\(f.at(key))[\(i)]: expected a string, found \(Self.found(item))")
                continue
            }
            out.append((s, item.location))
        }
        return out
    }

    /// Tags as a mapping `{Name: web-01, env: prod}` (values may be numbers or booleans,
    /// kept as text).
    mutating func tags(_ f: Fields, _ key: String) -> [Tag] {
        guard let v = f[key] else { return [] }
        if case .null = v.kind { return [] }
        guard let members = v.members else {
            error(v.location, "\(f.at(key)): expected a mapping of tag keys to values, found \(Self.found(v))")
            return []
        }
        var out: [Tag] = []
        for m in members {
            switch m.value.kind {
            case .string(let s): out.append(Tag(m.key, s))
            case .number(let n): out.append(Tag(m.key, n.literal))
            case .bool(let b): out.append(Tag(m.key, b ? "true" : "false"))
            case .null: out.append(Tag(m.key, ""))
            default: error(m.value.location, "\(f.at(key)).\(m.key): a tag value must be text, found \(Self.found(m.value))")
            }
            if m.key.isEmpty || m.key.count > 128 {
                error(m.keyLocation, "\(f.at(key)): tag key \"\(m.key)\" is not valid (1 to 128 characters)")
            }
        }
        return out
    }

    /// The closest candidate by edit distance, when it is close enough to be a typo.
    static func suggest(_ word: String, _ candidates: [String]) -> String? {
        var best: (String, Int)? = nil
        for c in candidates {
            let d = distance(Array(word.lowercased()), Array(c.lowercased()))
            if d <= max(1, min(word.count, c.count) / 3), best.map({ d < $0.1 }) ?? true { best = (c, d) }
        }
        return best?.0
    }

    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
