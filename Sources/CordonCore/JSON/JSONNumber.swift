/// A JSON number kept as its exact literal text.
///
/// Equality and hashing are by numeric value (`300 == 3.0e2 == 300.00`), computed on the
/// exact decimal, never through a binary floating-point conversion.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible, Comparable {
    /// The literal as it appeared in the input (already validated against the JSON grammar).
    public let literal: String

    /// Creates a number from a literal that must follow the JSON number grammar.
    public init?(literal: String) {
        guard DecimalValue(jsonLiteral: Array(literal.utf8)) != nil else { return nil }
        self.literal = literal
    }

    init(validatedLiteral: String) { self.literal = validatedLiteral }

    public init(_ value: Int) { self.literal = String(value) }

    public init(_ value: UInt64) { self.literal = String(value) }

    /// The number nearest a double: not-a-number is 0 and an infinity the largest finite
    /// double of its sign, since JSON has neither.
    public init(_ value: Double) {
        if value.isNaN {
            self.literal = "0"
        } else if !value.isFinite {
            self.literal = "\(value < 0 ? -Double.greatestFiniteMagnitude : Double.greatestFiniteMagnitude)"
        } else if value == value.rounded(), abs(value) < 1e15 {
            self.literal = String(Int64(value))
        } else {
            self.literal = "\(value)"
        }
    }

    public var description: String { literal }

    /// The exact decimal value. Every literal a `JSONNumber` holds follows the JSON number
    /// grammar (its initialisers check it), and every such literal has a decimal value,
    /// whatever the size of its exponent; zero stands in only if that ever failed.
    public var decimal: DecimalValue { DecimalValue(jsonLiteral: Array(literal.utf8)) ?? DecimalValue(negative: false, digits: [], exponent: 0) }

    /// The nearest binary double (may round; use `decimal` for exact comparisons).
    public var doubleValue: Double { Double(literal) ?? .nan }

    /// The value as an `Int` when it is an integer that fits, else `nil`.
    public var intValue: Int? {
        let d = decimal
        // Int's largest value has 19 digits: a larger exponent never fits (and its digits
        // are not written out).
        guard d.isInteger, d.exponent <= 19 else { return nil }
        return Int(d.integerString)
    }

    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool { lhs.decimal == rhs.decimal }
    public func hash(into hasher: inout Hasher) { hasher.combine(decimal) }
    public static func < (lhs: JSONNumber, rhs: JSONNumber) -> Bool { lhs.decimal < rhs.decimal }
}

/// An exact decimal in normalised scientific form: `0.d1d2d3… × 10^exponent`, with no
/// leading or trailing zero digits. Zero has no digits and is never negative.
public struct DecimalValue: Sendable, Hashable, Comparable, CustomStringConvertible {
    public private(set) var negative: Bool
    /// ASCII digits, first one non-zero, last one non-zero.
    public private(set) var digits: [UInt8]
    public private(set) var exponent: Int

    /// Parses a literal in JSON number syntax; `nil` if it is not one.
    public init?(jsonLiteral bytes: [UInt8]) {
        var scratch = DecimalScratch()
        guard bytes.withUnsafeBufferPointer({ scratch.parse($0) }) else { return nil }
        self.negative = scratch.negative
        self.digits = Array(scratch.digits)
        self.exponent = scratch.exponent
    }

    init(negative: Bool, digits: [UInt8], exponent: Int) {
        self.negative = negative
        self.digits = digits
        self.exponent = exponent
    }

    public var isZero: Bool { digits.isEmpty }
    public var isInteger: Bool { digits.count <= exponent || digits.isEmpty }

    /// Decimal digits of an integer value (only meaningful when `isInteger`).
    var integerString: String {
        if digits.isEmpty { return "0" }
        var s = negative ? "-" : ""
        s += String(decoding: digits, as: UTF8.self)
        if exponent > digits.count { s += String(repeating: "0", count: exponent - digits.count) }
        return s
    }

    /// A canonical text, equal for equal values: `0`, or `[-]0.DIGITSeEXP`.
    public var description: String {
        if digits.isEmpty { return "0" }
        return (negative ? "-" : "") + "0." + String(decoding: digits, as: UTF8.self) + "e\(exponent)"
    }

    public static func < (lhs: DecimalValue, rhs: DecimalValue) -> Bool {
        DecimalScratch.compare(
            lhsNegative: lhs.negative, lhsDigits: lhs.digits, lhsExponent: lhs.exponent,
            rhsNegative: rhs.negative, rhsDigits: rhs.digits, rhsExponent: rhs.exponent) < 0
    }
}

/// Reusable, allocation-free (after warm-up) decimal normaliser used on hot paths.
struct DecimalScratch {
    var negative = false
    var digits: [UInt8] = []
    var exponent = 0

    init() { digits.reserveCapacity(32) }

    /// An exponent's magnitude is kept exactly up to this bound and saturates beyond it:
    /// numbers of any size parse, and two whose exponents both exceed 10^17 compare by
    /// their digits alone (the same exponent), which no real finding or pattern meets.
    static let exponentBound = 100_000_000_000_000_000

    /// Parses and normalises a JSON number literal. Returns false on a grammar error only.
    mutating func parse(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        negative = false
        digits.removeAll(keepingCapacity: true)
        exponent = 0
        var i = 0
        let n = s.count
        if i < n, s[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        guard i < n, isDigit(s[i]) else { return false }
        // Integer part.
        var pointPosition = 0  // digits before the decimal point, counted after leading zeros are dropped
        var seenNonZero = false
        if s[i] == UInt8(ascii: "0") {
            i += 1
            if i < n, isDigit(s[i]) { return false }  // no leading zeros
        } else {
            while i < n, isDigit(s[i]) {
                digits.append(s[i]); seenNonZero = true
                pointPosition += 1
                i += 1
            }
        }
        // Fraction.
        if i < n, s[i] == UInt8(ascii: ".") {
            i += 1
            guard i < n, isDigit(s[i]) else { return false }
            while i < n, isDigit(s[i]) {
                if !seenNonZero {
                    if s[i] == UInt8(ascii: "0") { pointPosition -= 1 } else { seenNonZero = true; digits.append(s[i]) }
                } else {
                    digits.append(s[i])
                }
                i += 1
            }
        }
        // Exponent.
        var exp = 0
        if i < n, s[i] == UInt8(ascii: "e") || s[i] == UInt8(ascii: "E") {
            i += 1
            var expNegative = false
            if i < n, s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-") {
                expNegative = s[i] == UInt8(ascii: "-"); i += 1
            }
            guard i < n, isDigit(s[i]) else { return false }
            while i < n, isDigit(s[i]) {
                if exp < Self.exponentBound { exp = min(exp * 10 + Int(s[i] - 48), Self.exponentBound) }
                i += 1
            }
            if expNegative { exp = -exp }
        }
        guard i == n else { return false }
        while let last = digits.last, last == UInt8(ascii: "0") { digits.removeLast() }
        if digits.isEmpty {
            negative = false
            exponent = 0
        } else {
            exponent = pointPosition + exp
        }
        return true
    }

    static func compare(
        lhsNegative: Bool, lhsDigits: [UInt8], lhsExponent: Int,
        rhsNegative: Bool, rhsDigits: [UInt8], rhsExponent: Int
    ) -> Int {
        let lhsSign = lhsDigits.isEmpty ? 0 : (lhsNegative ? -1 : 1)
        let rhsSign = rhsDigits.isEmpty ? 0 : (rhsNegative ? -1 : 1)
        if lhsSign != rhsSign { return lhsSign < rhsSign ? -1 : 1 }
        if lhsSign == 0 { return 0 }
        var magnitude: Int
        if lhsExponent != rhsExponent {
            magnitude = lhsExponent < rhsExponent ? -1 : 1
        } else {
            magnitude = 0
            let count = min(lhsDigits.count, rhsDigits.count)
            var k = 0
            while k < count {
                if lhsDigits[k] != rhsDigits[k] { magnitude = lhsDigits[k] < rhsDigits[k] ? -1 : 1; break }
                k += 1
            }
            if magnitude == 0, lhsDigits.count != rhsDigits.count {
                magnitude = lhsDigits.count < rhsDigits.count ? -1 : 1
            }
        }
        return lhsSign > 0 ? magnitude : -magnitude
    }

    func compare(to other: DecimalValue) -> Int {
        DecimalScratch.compare(
            lhsNegative: negative, lhsDigits: digits, lhsExponent: exponent,
            rhsNegative: other.negative, rhsDigits: other.digits, rhsExponent: other.exponent)
    }
}

@inline(__always) func isDigit(_ c: UInt8) -> Bool { c &- 48 < 10 }
