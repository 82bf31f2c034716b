import CordonCore
import Foundation

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (s, a) = (components.seconds, components.attoseconds)
        let (m, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : m &+ a / 1_000_000_000
    }
}

/// How a JSON value reads inside a text (headers, query, form fields, messages).
func plainText(_ value: JSONValue) -> String {
    switch value {
    case .string(let s): return s
    case .number(let n): return n.literal
    case .bool(let b): return b ? "true" : "false"
    case .null: return ""
    case .array, .object: return JSONWriter.string(value)
    }
}

/// HTTP `Retry-After`: delay-seconds or an HTTP date (IMF-fixdate, RFC 850 or asctime).
enum RetryAfter {
    static func parse(_ text: String?, now: Date = Date()) -> Duration? {
        guard let raw = text?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
        if raw.allSatisfy(\.isASCII), raw.allSatisfy(\.isNumber) {
            // At most a year, as for a date: nothing waits longer, and no later arithmetic overflows.
            guard let seconds = Int64(raw) else { return .seconds(Int64(366 * 86_400)) }
            return .seconds(min(seconds, Int64(366 * 86_400)))
        }
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "GMT")
            f.dateFormat = format
            if let date = f.date(from: raw) {
                let ms = max(0, (date.timeIntervalSince(now) * 1000).rounded())
                return .milliseconds(Int64(min(ms, 366 * 86_400_000)))
            }
        }
        return nil
    }
}
