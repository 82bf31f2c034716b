import CordonCore
import Foundation

/// Redacts what an integration writes (evidence, outputs, error messages): every form of
/// every secret the store knows (their encodings, the credential parts of URLs, what
/// filters derived from them), and the values derived for this one request alone — an
/// HMAC signature — which the store must not keep, one per request.
struct Redactor: Sendable {
    let secrets: SecretStore
    /// (spelling, replacement), longest first.
    private let extra: [(String, String)]

    init(secrets: SecretStore, extra: [(form: String, name: String)] = []) {
        self.secrets = secrets
        self.extra = extra.filter { $0.form.count >= SecretStore.minimumRedactedLength }.map { ($0.form, "«secret:\($0.name)»") }
            .sorted { $0.0.count > $1.0.count }
    }

    func callAsFunction(_ text: String) -> String {
        var out = text
        for (form, mark) in extra where out.contains(form) {
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
