import Foundation
import Synchronization

/// Secrets for templates (`secret.NAME`): read at run time from the environment variable
/// `NAME` or from the file named by `NAME_FILE`, and remembered so that every value handed
/// out can be redacted (replaced by `«secret:NAME»`) wherever it could leak: journal
/// records, evidence, logs, error messages and exports.
public final class SecretStore: Sendable {
    private let environment: [String: String]
    private let known = Mutex<[String: String]>([:])

    /// Values shorter than this are not redacted inside longer text (they would match
    /// ordinary words); they are still redacted when a whole string equals them.
    public static let minimumRedactedLength = 4

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// The secret's value, or nil when neither `NAME` nor `NAME_FILE` is set.
    public func value(_ name: String) -> String? {
        if let cached = known.withLock({ $0[name] }) { return cached }
        var value = environment[name]
        if value == nil, let path = environment[name + "_FILE"],
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        {
            // A trailing newline in a secret file is never part of the secret.
            value = String(text.reversed().drop(while: { $0 == "\n" || $0 == "\r" }).reversed())
        }
        if let value, !value.isEmpty { known.withLock { $0[name] = value } }
        return value?.isEmpty == false ? value : nil
    }

    /// Registers a value to redact (e.g. a credential obtained at run time).
    public func register(_ name: String, value: String) {
        guard !value.isEmpty else { return }
        known.withLock { $0[name] = value }
    }

    /// The lookup templates use.
    public var lookup: @Sendable (String) -> String? { { [self] name in self.value(name) } }

    /// Replaces every known secret value in the text.
    public func redact(_ text: String) -> String {
        let secrets = known.withLock { $0 }
        guard !secrets.isEmpty else { return text }
        var out = text
        // Longest first, so a secret that contains another is replaced whole.
        for (name, value) in secrets.sorted(by: { $0.value.count > $1.value.count }) {
            if out == value {
                return "«secret:\(name)»"
            }
            if value.count >= Self.minimumRedactedLength, out.contains(value) {
                out = out.replacingOccurrences(of: value, with: "«secret:\(name)»")
            }
        }
        return out
    }

    /// Redacts every string (and key) of a JSON value.
    public func redact(_ value: JSONValue) -> JSONValue {
        let any = known.withLock { !$0.isEmpty }
        guard any else { return value }
        switch value {
        case .string(let s): return .string(redact(s))
        case .array(let items): return .array(items.map { redact($0) })
        case .object(let members):
            var out = JSONObject()
            for (k, v) in members { out[redact(k)] = redact(v) }
            return .object(out)
        default: return value
        }
    }

    /// Redacts bytes that are UTF-8 text (evidence bodies); other bytes are returned as-is.
    public func redact(_ bytes: [UInt8]) -> [UInt8] {
        let any = known.withLock { !$0.isEmpty }
        guard any, let text = String(validating: bytes, as: UTF8.self) else { return bytes }
        return Array(redact(text).utf8)
    }
}
