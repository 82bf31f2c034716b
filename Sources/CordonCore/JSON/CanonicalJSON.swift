/// RFC 8785 JSON Canonicalization Scheme (JCS): object members sorted by their keys'
/// UTF-16 code units, no insignificant whitespace, minimal string escapes, numbers in
/// the ECMAScript `Number.prototype.toString` form. The journal hashes these bytes.
///
/// JCS numbers are IEEE doubles: an integer beyond 2^53 or a decimal with more than 17
/// significant digits is written as its nearest double. Journal record data therefore
/// keeps exact values that matter (account ids, raw findings) as strings or as evidence.
public enum CanonicalJSON {
    public static func bytes(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(value, to: &out)
        return out
    }

    public static func string(_ value: JSONValue) -> String { String(decoding: bytes(value), as: UTF8.self) }

    /// The canonical form of an object with member `key` in its place but its value left
    /// out, and the offset where the value goes: inserting any value's canonical form there
    /// gives the canonical form of the object with that value. Nil if `value` is not an
    /// object.
    public static func bytes(_ value: JSONValue, leavingOut key: String) -> (bytes: [UInt8], hole: Int)? {
        guard case .object(var members) = value else { return nil }
        members[key] = .null
        var out: [UInt8] = []
        out.reserveCapacity(256)
        let hole = writeObject(members, to: &out, leavingOut: key)
        return (out, hole ?? 0)
    }

    static func write(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): out.append(contentsOf: number(n).utf8)
        case .string(let s): JSONWriter.writeString(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members): writeObject(members, to: &out)
        }
    }

    /// Writes an object; the value of member `hole`, if given, is left out, and where it
    /// goes is returned.
    @discardableResult
    private static func writeObject(_ members: JSONObject, to out: inout [UInt8], leavingOut hole: String? = nil) -> Int? {
        var at: Int? = nil
        out.append(UInt8(ascii: "{"))
        for (i, member) in sortedMembers(members).enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.writeString(member.key, to: &out)
            out.append(UInt8(ascii: ":"))
            if let hole, member.key == hole {
                at = out.count
            } else {
                write(member.value, to: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
        return at
    }

    /// Members in JCS order: by the keys' UTF-16 code units. For keys without surrogate
    /// pairs (nearly all) that is the order of their UTF-8 bytes, which is cheaper.
    static func sortedMembers(_ members: JSONObject) -> [(key: String, value: JSONValue)] {
        let elements = members.elements
        var simple = true
        for key in members.keys where key.utf8.contains(where: { $0 >= 0xF0 }) {
            simple = false
            break
        }
        if simple {
            var inOrder = true
            var previous: String? = nil
            for key in members.keys {
                if let p = previous, !p.utf8.lexicographicallyPrecedes(key.utf8) { inOrder = false; break }
                previous = key
            }
            if inOrder { return Array(elements) }
            return elements.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        }
        return elements.sorted { $0.key.utf16.lexicographicallyPrecedes($1.key.utf16) }
    }

    /// The ECMAScript form of a number (its nearest double).
    public static func number(_ n: JSONNumber) -> String {
        // A plain integer literal of up to 15 digits is already canonical (JSON forbids
        // leading zeros); only -0 differs. This is the common case and needs no parsing.
        let utf8 = n.literal.utf8
        if utf8.count <= 16, let first = utf8.first, first == UInt8(ascii: "-") || isDigit(first),
            utf8.dropFirst().allSatisfy(isDigit), utf8.count - (first == UInt8(ascii: "-") ? 1 : 0) <= 15
        {
            return n.literal == "-0" ? "0" : n.literal
        }
        // Integers that a double holds exactly are written directly.
        let d = n.decimal
        if d.isInteger, d.digits.count <= 15, d.exponent <= 21 {
            return d.isZero ? "0" : d.integerString
        }
        return number(n.doubleValue)
    }

    public static func number(_ value: Double) -> String {
        if value == 0 { return "0" }
        if !value.isFinite { return "null" }
        // Swift prints the shortest digits that round-trip; take them apart.
        var text = "\(abs(value))"
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = String(text[..<e])
        }
        var digits = text.replacingOccurrences(of: ".", with: "")
        let pointAt = (text.firstIndex(of: ".").map { text.distance(from: text.startIndex, to: $0) } ?? text.count)
        // value = 0.DIGITS × 10^n with n = pointAt + exponent, after dropping leading zeros.
        var n = pointAt + exponent
        while digits.hasPrefix("0") {
            digits.removeFirst()
            n -= 1
        }
        while digits.hasSuffix("0") { digits.removeLast() }
        let k = digits.count
        var out = value < 0 ? "-" : ""
        if k <= n && n <= 21 {
            out += digits + String(repeating: "0", count: n - k)
        } else if 0 < n && n <= 21 {
            let i = digits.index(digits.startIndex, offsetBy: n)
            out += digits[..<i] + "." + digits[i...]
        } else if -6 < n && n <= 0 {
            out += "0." + String(repeating: "0", count: -n) + digits
        } else {
            let first = digits.prefix(1)
            let rest = digits.dropFirst()
            out += first + (rest.isEmpty ? "" : "." + rest) + "e" + (n - 1 >= 0 ? "+" : "-") + String(abs(n - 1))
        }
        return out
    }
}
