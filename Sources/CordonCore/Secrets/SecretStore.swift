import Foundation
import Synchronization

/// Secrets for templates (`secret.NAME`): read at run time from the environment variable
/// `NAME` or from the file named by `NAME_FILE`, and remembered so that every value handed
/// out can be redacted (replaced by `«secret:NAME»`) wherever it could leak: journal
/// records, evidence, logs, error messages and exports.
///
/// What is redacted is every *form* of a secret known to the store:
/// - the value, and its percent-encoded, form-encoded and JSON-escaped spellings (a value
///   sent in a URL or a JSON body comes back spelled that way);
/// - for a URL, each part of it that carries the credential — path segments and query
///   values that look like tokens (`T0123ABCD`, `B0456EFGH` and the key of a Slack
///   webhook), the user and password — because a receiver may echo a part of its URL
///   alone. Hosts and word-like segments (`services`, `webhooks`) are not secret, and are
///   left alone so that ordinary text is not blanked out;
/// - the forms templates derive from it through filters (`| upper`, `| lower`, `| json`),
///   registered as they are rendered (`registerDerived`).
public final class SecretStore: Sendable {
    private let environment: [String: String]

    private struct State {
        var values: [String: String] = [:]
        /// Forms by secret, the value's first.
        var forms: [String: Set<String>] = [:]
        /// Every (form, name), longest form first: what `redact` replaces.
        var ordered: [(form: String, name: String)] = []
        /// Every form, for `forms(in:)`.
        var all: [String: String] = [:]

        mutating func add(_ name: String, _ forms: some Sequence<String>) {
            var added = false
            for form in forms where !form.isEmpty && self.forms[name, default: []].count < SecretStore.maximumFormsPerSecret {
                if self.forms[name, default: []].insert(form).inserted {
                    added = true
                    if all[form] == nil { all[form] = name }
                }
            }
            if added {
                ordered = self.forms.flatMap { name, forms in forms.map { (form: $0, name: name) } }
                    .sorted { $0.form.count != $1.form.count ? $0.form.count > $1.form.count : $0.form < $1.form }
            }
        }
    }
    private let state = Mutex(State())

    /// Values shorter than this are not redacted inside longer text (they would match
    /// ordinary words); they are still redacted when a whole string equals them.
    public static let minimumRedactedLength = 4
    /// Forms kept per secret (templates derive a bounded number; this bounds a mistake).
    static let maximumFormsPerSecret = 512

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// The secret's value, or nil when neither `NAME` nor `NAME_FILE` is set.
    public func value(_ name: String) -> String? {
        if let cached = state.withLock({ $0.values[name] }) { return cached }
        var value = environment[name]
        if value == nil, let path = environment[name + "_FILE"],
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        {
            // A trailing newline in a secret file is never part of the secret.
            value = String(text.reversed().drop(while: { $0 == "\n" || $0 == "\r" }).reversed())
        }
        guard let value, !value.isEmpty else { return nil }
        register(name, value: value)
        return value
    }

    /// Registers a value to redact (e.g. a credential obtained at run time).
    public func register(_ name: String, value: String) {
        guard !value.isEmpty else { return }
        let forms = [value] + Self.spellings(of: value) + Self.credentialParts(of: value).flatMap { [$0] + Self.spellings(of: $0) }
        state.withLock { s in
            s.values[name] = value
            s.add(name, forms)
        }
    }

    /// Registers a form derived from secret `name` (a template filter applied to it), so
    /// that it is redacted like the secret, in every spelling.
    public func registerDerived(_ name: String, form: String) {
        guard !form.isEmpty else { return }
        let forms = [form] + Self.spellings(of: form)
        state.withLock { $0.add(name, forms) }
    }

    /// The forms of known secrets that occur in `text`: (name, form).
    public func forms(in text: String) -> [(name: String, form: String)] {
        let ordered = state.withLock { $0.ordered }
        var out: [(name: String, form: String)] = []
        for (form, name) in ordered where text == form || (form.count >= Self.minimumRedactedLength && text.contains(form)) {
            out.append((name, form))
        }
        return out
    }

    /// The lookup templates use.
    public var lookup: @Sendable (String) -> String? { { [self] name in self.value(name) } }

    /// Replaces every known form of every known secret in the text.
    public func redact(_ text: String) -> String {
        let ordered = state.withLock { $0.ordered }
        guard !ordered.isEmpty else { return text }
        var out = text
        // Longest first, so a form that contains another is replaced whole.
        for (form, name) in ordered {
            if out == form { return "«secret:\(name)»" }
            if form.count >= Self.minimumRedactedLength, out.contains(form) {
                out = out.replacingOccurrences(of: form, with: "«secret:\(name)»")
            }
        }
        return out
    }

    /// Redacts every string (and key) of a JSON value.
    public func redact(_ value: JSONValue) -> JSONValue {
        let any = state.withLock { !$0.ordered.isEmpty }
        guard any else { return value }
        return redacting(value)
    }

    private func redacting(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(redact(s))
        case .array(let items): return .array(items.map { redacting($0) })
        case .object(let members):
            var out = JSONObject()
            for (k, v) in members { out[redact(k)] = redacting(v) }
            return .object(out)
        default: return value
        }
    }

    /// Redacts bytes that are UTF-8 text (evidence bodies); other bytes are returned as-is.
    public func redact(_ bytes: [UInt8]) -> [UInt8] {
        let any = state.withLock { !$0.ordered.isEmpty }
        guard any, let text = String(validating: bytes, as: UTF8.self) else { return bytes }
        return Array(redact(text).utf8)
    }

    // MARK: - Forms

    /// RFC 3986 unreserved characters.
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    /// What `application/x-www-form-urlencoded` leaves alone (space becomes `+`).
    static let formAllowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._*")

    /// How a value is spelled in a URL, a form and a JSON string.
    static func spellings(of value: String) -> [String] {
        var out: [String] = []
        if let p = value.addingPercentEncoding(withAllowedCharacters: unreserved) { out.append(p) }
        if let p = value.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) { out.append(p) }
        let form = value.split(separator: " ", omittingEmptySubsequences: false)
            .map { String($0).addingPercentEncoding(withAllowedCharacters: formAllowed) ?? "" }.joined(separator: "+")
        out.append(form)
        out.append(jsonEscaped(value))
        return out.filter { $0 != value }
    }

    /// A string as it is written inside a JSON string (without the quotes).
    public static func jsonEscaped(_ value: String) -> String {
        String(JSONWriter.string(.string(value)).dropFirst().dropLast())
    }

    /// The parts of a URL secret that carry the credential on their own: the user and
    /// password, and each path segment (and each part of it between `@`, `:`, `;`, `,`)
    /// and query value that looks like a token. Empty for a value that is not an http(s)
    /// URL with a host.
    static func credentialParts(of value: String) -> [String] {
        guard let url = URLComponents(string: value), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            url.host?.isEmpty == false
        else { return [] }
        var out: [String] = []
        if let user = url.user, !user.isEmpty, user.count >= minimumRedactedLength { out.append(user) }
        if let password = url.password, !password.isEmpty { out.append(password) }
        for segment in url.percentEncodedPath.split(separator: "/") {
            let decoded = String(segment).removingPercentEncoding ?? String(segment)
            var candidates = [decoded]
            let pieces = decoded.split(whereSeparator: { "@:;,".contains($0) }).map(String.init)
            if pieces.count > 1 { candidates += pieces }
            out += candidates.filter(looksLikeToken)
        }
        for item in url.queryItems ?? [] {
            if let v = item.value, looksLikeToken(v) { out.append(v) }
        }
        return out
    }

    /// A token, not a word or a date: at least 8 characters, with letters and two digits
    /// or more; or 16 or more with two digits or mixed cases (a long numeric id); or 24
    /// or more. `services`, `IncomingWebhook`, `webhookb2` and `2024-01-01` are not
    /// tokens; `T0123ABCD`, `123456789012345678` and a 24-character key are.
    static func looksLikeToken(_ s: String) -> Bool {
        guard s.count >= 8 else { return false }
        let digits = s.unicodeScalars.filter { CharacterSet.decimalDigits.contains($0) }.count
        let letters = s.contains { $0.isLetter }
        if letters && digits >= 2 { return true }
        let upper = s.contains { $0.isUppercase }, lower = s.contains { $0.isLowercase }
        if s.count >= 16 && (digits >= 2 || (upper && lower)) { return true }
        return s.count >= 24
    }
}
