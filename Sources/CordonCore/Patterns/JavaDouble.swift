import Foundation

/// Which numbers EventBridge can compare (aws/event-ruler 2.x `ComparableNumber.generate`):
/// the nearest double must be finite, and Java's `BigDecimal.valueOf(double)` — the
/// decimal `Double.toString` writes — must equal the number. So `0.1` and `300` are
/// comparable; `9007199254740993` (no double holds it), `1e400` (beyond any double) and
/// `1e-400` (it rounds to zero) are not, nor is `5e-324`, which Java writes `4.9E-324`.
/// Patterns with such numbers in `numeric` or `anything-but` are refused, and such event
/// numbers never satisfy a numeric comparison.
enum JavaDouble {
    static func isComparable(_ d: DecimalValue) -> Bool {
        isComparable(negative: d.negative, digits: d.digits, exponent: d.exponent)
    }

    static func isComparable(_ d: DecimalScratch) -> Bool {
        isComparable(negative: d.negative, digits: d.digits, exponent: d.exponent)
    }

    static func isComparable(negative: Bool, digits: [UInt8], exponent: Int) -> Bool {
        // Zero (Java's BigDecimal has no negative zero) is 0.0.
        if digits.isEmpty { return true }
        // Up to 15 significant digits (DBL_DIG) a decimal in the normal range is the one
        // its double is written as: no two such decimals share a double.
        if digits.count <= 15 && exponent > -300 && exponent < 300 { return true }
        // Beyond ±1e309 or below 1e-325 no finite, non-zero double is near.
        if exponent > 310 || exponent < -325 { return false }
        let text = (negative ? "-0." : "0.") + String(decoding: digits, as: UTF8.self) + "e\(exponent)"
        guard let value = Double(text), value.isFinite, value != 0 else { return false }
        guard let written = DecimalValue(jsonLiteral: Array(javaString(value).utf8)) else { return false }
        return written.negative == negative && written.digits == digits && written.exponent == exponent
    }

    /// The decimal Java's `Double.toString` writes: the shortest that reads back as the
    /// same double, but with two significant digits at least in scientific notation (then
    /// the two nearest the double, which only differ from the shortest one's value for
    /// the smallest subnormals: `4.9E-324`, not `5E-324`).
    static func javaString(_ value: Double) -> String {
        let shortest = "\(value)"
        let significant = shortest.prefix { $0 != "e" && $0 != "E" }.filter { $0.isNumber }.drop { $0 == "0" }
        let magnitude = abs(value)
        let scientific = magnitude < 1e-3 || magnitude >= 1e7
        guard scientific, significant.count < 2 else { return shortest }
        return String(format: "%.1e", value)
    }
}
