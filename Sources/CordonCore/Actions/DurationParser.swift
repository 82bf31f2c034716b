/// Durations as playbooks write them: one or more number-unit pairs, `500ms`, `2s`,
/// `15m`, `1h30m`, `1d`. Units: `ms`, `s`, `m`, `h`, `d`.
public enum DurationParser {
    public static let schemaPattern = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+$"

    public static func parse(_ text: String) -> Duration? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return nil }
        var i = 0
        var totalMilliseconds = 0.0
        while i < bytes.count {
            let start = i
            while i < bytes.count, isDigit(bytes[i]) || bytes[i] == UInt8(ascii: ".") { i += 1 }
            guard i > start, let value = Double(String(decoding: bytes[start..<i], as: UTF8.self)) else { return nil }
            let unitStart = i
            while i < bytes.count, bytes[i] >= UInt8(ascii: "a"), bytes[i] <= UInt8(ascii: "z") { i += 1 }
            let factor: Double
            switch String(decoding: bytes[unitStart..<i], as: UTF8.self) {
            case "ms": factor = 1
            case "s": factor = 1000
            case "m": factor = 60_000
            case "h": factor = 3_600_000
            case "d": factor = 86_400_000
            default: return nil
            }
            totalMilliseconds += value * factor
        }
        guard totalMilliseconds.isFinite, totalMilliseconds < 366 * 86_400_000 else { return nil }
        return .milliseconds(Int64(totalMilliseconds.rounded()))
    }

    /// A duration written back in the same notation (`90s` → `1m30s`).
    public static func format(_ duration: Duration) -> String {
        // Saturates rather than overflows: a duration from elsewhere (a service's
        // Retry-After) may be longer than any playbook writes.
        let (seconds, overflow) = duration.components.seconds.multipliedReportingOverflow(by: 1000)
        var ms = overflow ? (duration.components.seconds < 0 ? Int64.min : Int64.max) : seconds.addingReportingOverflow(duration.components.attoseconds / 1_000_000_000_000_000).partialValue
        if ms == 0 { return "0s" }
        var out = ""
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] where ms >= size {
            out += "\(ms / size)\(unit)"
            ms %= size
        }
        return out
    }
}
