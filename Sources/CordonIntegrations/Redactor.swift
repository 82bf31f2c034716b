import CordonCore
import Foundation

/// Replaces secret values with `«secret:NAME»` in everything an integration writes
/// (evidence, outputs, error messages) — also their percent-encoded, form-encoded and
/// JSON-escaped spellings, which the journal's own redaction of raw values would miss —
/// and then every other secret the store knows.
struct Redactor: Sendable {
    let secrets: SecretStore
    /// (spelling, replacement), longest first.
    private let spellings: [(String, String)]

    init(secrets: SecretStore, names: some Sequence<String>) {
        self.secrets = secrets
        var out: [(String, String)] = []
        for name in Set(names) {
            guard let value = secrets.value(name), !value.isEmpty else { continue }
            let mark = "«secret:\(name)»"
            var forms: Set<String> = [value]
            if let p = value.addingPercentEncoding(withAllowedCharacters: URLComponents.unreserved) { forms.insert(p) }
            if let p = value.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) { forms.insert(p) }
            forms.insert(FormEncoding.encode(value))
            let json = JSONWriter.string(.string(value))
            forms.insert(String(json.dropFirst().dropLast()))
            for form in forms where form.count >= SecretStore.minimumRedactedLength || form == value {
                out.append((form, mark))
            }
        }
        spellings = out.sorted { $0.0.count > $1.0.count }
    }

    func callAsFunction(_ text: String) -> String {
        var out = text
        for (form, mark) in spellings where out.contains(form) {
            out = out.replacingOccurrences(of: form, with: mark)
        }
        return secrets.redact(out)
    }

    func callAsFunction(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(self(s))
        case .array(let items): return .array(items.map { self($0) })
        case .object(let members):
            var out = JSONObject()
            for (k, v) in members { out[self(k)] = self(v) }
            return .object(out)
        default: return value
        }
    }

    func callAsFunction(_ error: ActionError) -> ActionError {
        var e = error
        e.message = self(error.message)
        return e
    }
}

extension URLComponents {
    /// RFC 3986 unreserved characters.
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}

/// `application/x-www-form-urlencoded` (WHATWG URL standard): unreserved characters and
/// `*` stay, space becomes `+`, everything else is percent-encoded as UTF-8.
enum FormEncoding {
    static let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._*")

    static func encode(_ text: String) -> String {
        text.split(separator: " ", omittingEmptySubsequences: false)
            .map { String($0).addingPercentEncoding(withAllowedCharacters: allowed) ?? "" }
            .joined(separator: "+")
    }

    static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { encode($0.0) + "=" + encode($0.1) }.joined(separator: "&")
    }
}
