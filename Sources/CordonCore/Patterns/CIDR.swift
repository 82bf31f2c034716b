/// IP address ranges as EventBridge matches them (aws/event-ruler 2.x, `CIDR.java` and
/// `ByteMachine.java`): the `cidr` operator, and exact pattern strings that are IP
/// addresses.
///
/// An address is written as the hex digits of its bytes (8 for IPv4, 32 for IPv6) and a
/// range is a lowest and a highest such digit string. A value matches when, read digit
/// by digit against both bounds, it is decided to lie between them — as soon as it is
/// decided, whatever digits follow. So, as in EventBridge, an IPv6 address whose first
/// eight hex digits fall in an IPv4 range matches it (`a10::` is in `10.0.0.0/8`), and an
/// IPv4 address can match an IPv6 range (`33.0.0.0` is in `2000::/3`).
struct IPRange: Sendable, Hashable {
    /// Hex digits (values 0…15) of the lowest and highest address.
    let low: [UInt8]
    let high: [UInt8]
    let source: String
    /// For one address (an exact pattern string): its 4 or 16 bytes.
    let address: [UInt8]?

    /// A `cidr` pattern value: `ADDRESS/BITS`, with at most 31 bits for IPv4 and 127 for
    /// IPv6 (a single address is written as an exact string instead).
    init(cidr text: String) throws(PatternError) {
        // Java's split("/"): trailing empty parts are dropped ("10.0.0.0/8/" is fine).
        var parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        while parts.count > 1, parts.last?.isEmpty == true { parts.removeLast() }
        guard parts.count == 2 else { throw PatternError(path: "", message: "cidr \"\(text)\" is not of the form ADDRESS/BITS, with one \"/\"") }
        guard let bits = Self.javaInteger(parts[1]) else {
            throw PatternError(path: "", message: "cidr \"\(text)\": the mask bits must be an integer")
        }
        guard bits >= 0 else { throw PatternError(path: "", message: "cidr \"\(text)\": the mask bits must not be negative") }
        guard let address = EventRulerIP.parse(Array(parts[0].utf8)[...]) else {
            throw PatternError(path: "", message: "cidr \"\(text)\": \"\(parts[0])\" is not an IPv4 or IPv6 address")
        }
        if address.count == 4, bits > 31 {
            throw PatternError(path: "", message: "cidr \"\(text)\": IPv4 mask bits must be below 32 (to match one address, give it as a string)")
        }
        if address.count == 16, bits > 127 {
            throw PatternError(path: "", message: "cidr \"\(text)\": IPv6 mask bits must be below 128 (to match one address, give it as a string)")
        }
        var low = address, high = address
        for i in 0..<address.count {
            let kept = max(0, min(8, bits - i * 8))
            let mask: UInt8 = kept == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - kept))
            low[i] = address[i] & mask
            high[i] = address[i] | ~mask
        }
        self.low = Self.nibbles(low)
        self.high = Self.nibbles(high)
        self.source = text
        self.address = nil
    }

    /// One address (an exact pattern string that is an IP address).
    init?(address text: String) {
        guard let address = EventRulerIP.parse(Array(text.utf8)[...]) else { return nil }
        low = Self.nibbles(address)
        high = low
        source = text
        self.address = address
    }

    /// Whether an event string is in the range: it must be an IP address as EventBridge
    /// reads one (`EventRulerIP.parse`), and be decided in range digit by digit.
    func contains(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let address = EventRulerIP.parse(Array(s)[...]) else { return false }
        let digits = Self.nibbles(address)
        var onLow = true, onHigh = true
        for k in 0..<low.count {
            // The value ended before it was decided.
            guard k < digits.count else { return false }
            let d = digits[k]
            if onLow {
                if d < low[k] { return false }
                if d > low[k] { onLow = false }
            }
            if onHigh {
                if d > high[k] { return false }
                if d < high[k] { onHigh = false }
            }
            if !onLow && !onHigh { return true }
        }
        return true
    }

    static func nibbles(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(b >> 4)
            out.append(b & 0x0F)
        }
        return out
    }

    /// Java's `Integer.parseInt`: an optional sign, then decimal digits of any script.
    static func javaInteger(_ text: String) -> Int? {
        var scalars = Substring(text).unicodeScalars[...]
        var negative = false
        if let first = scalars.first, first == "+" || first == "-", scalars.count > 1 {
            negative = first == "-"
            scalars = scalars.dropFirst()
        }
        guard !scalars.isEmpty else { return nil }
        var value = 0
        for scalar in scalars {
            guard scalar.properties.numericType == .decimal, let digit = scalar.properties.numericValue, digit >= 0, digit <= 9 else { return nil }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int(digit))
            guard !overflow1, !overflow2, sum <= Int(Int32.max) + (negative ? 1 : 0) else { return nil }
            value = sum
        }
        return negative ? -value : value
    }
}

/// What EventBridge takes for an IP address (aws/event-ruler 2.x `CIDR.ipToBytes` and
/// Java's `InetAddress`): four dot-separated decimal numbers up to 255 (leading zeros
/// read as decimal), or IPv6 in hex groups and colons — with no embedded dotted IPv4
/// (`::ffff:10.0.0.1` is not an address to it), and with an IPv4-mapped address
/// (`::ffff:a00:1`) taken as the IPv4 address it maps.
enum EventRulerIP {
    /// 4 or 16 bytes; nil when the text is not an address.
    static func parse(_ s: ArraySlice<UInt8>) -> [UInt8]? {
        if let v4 = parseIPv4(s) { return v4 }
        // Hex digits and colons only, with at least one colon.
        guard s.contains(UInt8(ascii: ":")), s.allSatisfy({ $0 == UInt8(ascii: ":") || hexValue($0) != nil }),
            let v6 = IPAddressParser.parseIPv6(s)
        else { return nil }
        if v6[0..<10].allSatisfy({ $0 == 0 }), v6[10] == 0xFF, v6[11] == 0xFF { return Array(v6[12..<16]) }
        return v6
    }

    /// `[0-9]+.[0-9]+.[0-9]+.[0-9]+`, each part at most 255.
    static func parseIPv4(_ s: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var value = 0
        var digits = 0
        for c in s {
            if c == UInt8(ascii: ".") {
                guard digits > 0, out.count < 3 else { return nil }
                out.append(UInt8(value))
                value = 0
                digits = 0
                continue
            }
            guard c >= 48, c <= 57 else { return nil }
            value = value * 10 + Int(c - 48)
            digits += 1
            guard value <= 255 else { return nil }
        }
        guard digits > 0, out.count == 3 else { return nil }
        out.append(UInt8(value))
        return out
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - 48
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - 87
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - 55
        default: return nil
        }
    }
}

enum IPAddressParser {
    /// RFC 4291 text forms, including `::` compression and a trailing dotted quad.
    static func parseIPv6(_ s: ArraySlice<UInt8>) -> [UInt8]? {
        if s.isEmpty { return nil }
        var groups: [UInt16] = []
        var compressAt: Int? = nil
        var i = s.startIndex
        let end = s.endIndex
        if s.count >= 2, s[i] == UInt8(ascii: ":") {
            guard s[i + 1] == UInt8(ascii: ":") else { return nil }
            compressAt = 0
            i += 2
            if i == end { return [UInt8](repeating: 0, count: 16) }
        }
        var tailV4: [UInt8]? = nil
        while i < end {
            // Read one group.
            var j = i
            var value: UInt32 = 0
            while j < end, let d = EventRulerIP.hexValue(s[j]) {
                value = value << 4 | UInt32(d)
                j += 1
                if j - i > 4 { return nil }
            }
            if j < end, s[j] == UInt8(ascii: ".") {
                // Embedded IPv4 in the last 32 bits.
                guard let v4 = EventRulerIP.parseIPv4(s[i..<end]) else { return nil }
                tailV4 = v4
                i = end
                break
            }
            guard j > i else { return nil }
            groups.append(UInt16(value))
            i = j
            if i == end { break }
            guard s[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            if i < end, s[i] == UInt8(ascii: ":") {
                guard compressAt == nil else { return nil }
                compressAt = groups.count
                i += 1
                if i == end { break }
            } else if i == end {
                return nil
            }
        }
        var words = groups
        let total = words.count + (tailV4 == nil ? 0 : 2)
        if let at = compressAt {
            guard total < 8 else { return nil }
            words.insert(contentsOf: [UInt16](repeating: 0, count: 8 - total), at: at)
        } else {
            guard total == 8 else { return nil }
        }
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for w in words { out.append(UInt8(w >> 8)); out.append(UInt8(w & 0xFF)) }
        if let tailV4 { out.append(contentsOf: tailV4) }
        return out.count == 16 ? out : nil
    }
}
