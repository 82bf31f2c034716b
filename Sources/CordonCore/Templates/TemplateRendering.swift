/// The values templates can read: a JSON object whose members are the roots (event
/// fields, `vars`, `steps`, `incident`, `inputs`), plus secrets, which are looked up on
/// demand and never stored in the context.
public struct TemplateContext: Sendable {
    public var root: JSONObject
    /// Looks a secret up by name (environment or file); nil when it is not set.
    public var secret: @Sendable (String) -> String?
    /// What stands for a value missing from `root` that is not known yet (a dry run's
    /// planned step has no outputs); nil: the path is missing.
    public var notYetKnown: (@Sendable (TemplatePath) -> JSONValue?)?
    /// Where what filters derive from a secret is registered, to be redacted like it.
    public var secrets: SecretStore?

    public init(
        root: JSONObject, secret: @escaping @Sendable (String) -> String? = { _ in nil },
        notYetKnown: (@Sendable (TemplatePath) -> JSONValue?)? = nil
    ) {
        self.root = root
        self.secret = secret
        self.notYetKnown = notYetKnown
    }

    /// A context whose secrets come from `secrets`, which also learns the forms filters
    /// derive from them.
    public init(root: JSONObject, secrets: SecretStore, notYetKnown: (@Sendable (TemplatePath) -> JSONValue?)? = nil) {
        self.init(root: root, secret: secrets.lookup, notYetKnown: notYetKnown)
        self.secrets = secrets
    }
}

/// A rendered value, and the secrets it contains (so callers can redact them).
public struct Rendered: Sendable, Equatable {
    public var value: JSONValue
    public var secretsUsed: Set<String>
}

extension Template {
    /// Renders the template. A text that is exactly one placeholder keeps the value's JSON
    /// type; otherwise the result is a string. A missing value is an error naming the
    /// template and the path, unless a `default(…)` filter gives one.
    public func render(_ context: TemplateContext) throws(TemplateError) -> Rendered {
        var secrets: Set<String> = []
        if isSingleExpression, case .expression(let e) = parts[0] {
            return Rendered(value: try evaluate(e, context, &secrets), secretsUsed: secrets)
        }
        var out = ""
        for part in parts {
            switch part {
            case .literal(let s): out += s
            case .expression(let e): out += Self.text(try evaluate(e, context, &secrets))
            }
        }
        return Rendered(value: .string(out), secretsUsed: secrets)
    }

    /// How a value reads inside a longer text.
    package static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return s
        case .number(let n): return n.literal
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array, .object: return JSONWriter.string(value)
        }
    }

    private func evaluate(_ e: TemplateExpression, _ context: TemplateContext, _ secrets: inout Set<String>) throws(TemplateError)
        -> JSONValue
    {
        var value: JSONValue?
        var missing = ""
        if e.path.root == "secret" {
            guard let name = e.path.key(at: 1), e.path.components.count == 2 else {
                throw TemplateError(template: source, offset: 0, message: "write a secret as secret.NAME")
            }
            if let s = context.secret(name) {
                value = .string(s)
                secrets.insert(name)
            } else {
                missing = "secret \(name) is not set (set the environment variable \(name) or \(name)_FILE)"
            }
        } else {
            (value, missing) = Self.lookup(e.path, in: context.root)
        }
        if value == nil, let placeholder = context.notYetKnown?(e.path) { value = placeholder }
        // Taint: the forms of secrets the value holds, carried through the filters; what
        // a filter makes of them is registered, so that it is redacted like the secret.
        var tainted: [(name: String, form: String)] = []
        let transforms = e.filters.contains { if case .defaultValue = $0 { false } else { true } }
        if transforms, let store = context.secrets, let current = value {
            if e.path.root == "secret", case .string(let s) = current, let name = e.path.key(at: 1) {
                tainted = [(name, s)]
            } else {
                tainted = Self.strings(current).flatMap { store.forms(in: $0) }
            }
        }
        for filter in e.filters {
            if case .defaultValue(let fallback) = filter {
                if value == nil || value == .null { value = fallback }
                continue
            }
            guard let current = value else { break }
            var isString = false
            if case .string = current { isString = true }
            switch filter {
            case .upper: value = .string(Self.text(current).uppercased())
            case .lower: value = .string(Self.text(current).lowercased())
            case .json: value = .string(JSONWriter.string(current))
            case .join(let separator):
                if case .array(let items) = current {
                    value = .string(items.map(Self.text).joined(separator: separator))
                } else {
                    value = .string(Self.text(current))
                }
            case .defaultValue: break
            }
            if !tainted.isEmpty, let store = context.secrets {
                var isArray = false
                if case .array = current { isArray = true }
                tainted = tainted.flatMap { name, form in
                    // A string inside an array or object is written as JSON.
                    let text = isString ? form : SecretStore.jsonEscaped(form)
                    let derived: [String]
                    switch filter {
                    case .upper: derived = [text.uppercased()]
                    case .lower: derived = [text.lowercased()]
                    case .json: derived = [SecretStore.jsonEscaped(form)]
                    case .join: derived = isArray ? [form, SecretStore.jsonEscaped(form)] : [text]
                    case .defaultValue: derived = [form]
                    }
                    for d in derived where d != form { store.registerDerived(name, form: d) }
                    return derived.map { (name, $0) }
                }
            }
        }
        for (name, _) in tainted { secrets.insert(name) }
        guard let result = value else {
            throw TemplateError(
                template: source, offset: 0,
                message: "\(e.path) is missing: \(missing); add | default(…) if it may be absent")
        }
        return result
    }

    /// Every string of a value, keys included.
    static func strings(_ value: JSONValue) -> [String] {
        switch value {
        case .string(let s): return [s]
        case .array(let items): return items.flatMap(strings)
        case .object(let members): return members.flatMap { [$0.key] + strings($0.value) }
        default: return []
        }
    }

    /// Follows a path; on failure says which part is missing.
    static func lookup(_ path: TemplatePath, in root: JSONObject) -> (JSONValue?, String) {
        var current: JSONValue = .object(root)
        var walked: [TemplatePath.Component] = []
        for component in path.components {
            let here = walked.isEmpty ? "the context" : TemplatePath(components: walked).description
            switch component {
            case .key(let k):
                guard case .object(let o) = current else {
                    return (nil, "\(here) is \(current.typeName), not an object with \"\(k)\"")
                }
                guard let next = o[k] else { return (nil, "\(here) has no \"\(k)\"") }
                current = next
            case .index(let n):
                guard case .array(let items) = current else {
                    return (nil, "\(here) is \(current.typeName), not a list")
                }
                guard n < items.count else { return (nil, "\(here) has \(items.count) element(s), no [\(n)]") }
                current = items[n]
            }
            walked.append(component)
        }
        return (current, "")
    }
}

/// A JSON value whose strings may hold templates (a step's `with`, a request body).
public indirect enum TemplateTree: Sendable, Equatable {
    case literal(JSONValue)
    case template(Template)
    case array([TemplateTree])
    case object([(key: String, value: TemplateTree)])

    public static func == (a: TemplateTree, b: TemplateTree) -> Bool {
        switch (a, b) {
        case (.literal(let x), .literal(let y)): return x == y
        case (.template(let x), .template(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// Parses every string of a JSON value that contains `{{`.
    public init(_ value: JSONValue) throws(TemplateError) {
        switch value {
        case .string(let s) where Template.containsPlaceholder(s): self = .template(try Template(s))
        case .array(let items):
            var out: [TemplateTree] = []
            for item in items { out.append(try TemplateTree(item)) }
            self = .array(out)
        case .object(let o):
            var out: [(key: String, value: TemplateTree)] = []
            for (k, v) in o { out.append((k, try TemplateTree(v))) }
            self = .object(out)
        default: self = .literal(value)
        }
    }

    public func render(_ context: TemplateContext) throws(TemplateError) -> Rendered {
        switch self {
        case .literal(let v): return Rendered(value: v, secretsUsed: [])
        case .template(let t): return try t.render(context)
        case .array(let items):
            var values: [JSONValue] = []
            var secrets: Set<String> = []
            for item in items {
                let r = try item.render(context)
                values.append(r.value)
                secrets.formUnion(r.secretsUsed)
            }
            return Rendered(value: .array(values), secretsUsed: secrets)
        case .object(let members):
            var o = JSONObject()
            var secrets: Set<String> = []
            for m in members {
                let r = try m.value.render(context)
                o[m.key] = r.value
                secrets.formUnion(r.secretsUsed)
            }
            return Rendered(value: .object(o), secretsUsed: secrets)
        }
    }

    /// Every template in the tree.
    public var templates: [Template] {
        switch self {
        case .literal: return []
        case .template(let t): return [t]
        case .array(let items): return items.flatMap(\.templates)
        case .object(let members): return members.flatMap(\.value.templates)
        }
    }
}
