/// An IPv4 or IPv6 network for the `cidr` operator.
struct CIDRRange: Sendable, Hashable {
    /// 16 bytes; IPv4 networks are kept in their own family, not mapped.
    let network: [UInt8]
    let prefixLength: Int
    let isIPv6: Bool
    let source: String

    init(_ text: String) throws(PatternError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let length = Int(parts[1]), parts[1].allSatisfy(\.isASCII), parts[1].allSatisfy(\.isNumber)
        else {
            throw PatternError(path: "", message: "cidr \"\(text)\" is not of the form ADDRESS/PREFIX-LENGTH")
        }
        let address = String(parts[0])
        if let v4 = IPAddressParser.parseIPv4(Array(address.utf8)[...]) {
            guard (0...32).contains(length) else {
                throw PatternError(path: "", message: "cidr \"\(text)\": an IPv4 prefix length must be 0 to 32")
            }
            self.network = IPAddressParser.masked(v4, length)
            self.isIPv6 = false
        } else if let v6 = IPAddressParser.parseIPv6(Array(address.utf8)[...]) {
            guard (0...128).contains(length) else {
                throw PatternError(path: "", message: "cidr \"\(text)\": an IPv6 prefix length must be 0 to 128")
            }
            self.network = IPAddressParser.masked(v6, length)
            self.isIPv6 = true
        } else {
            throw PatternError(path: "", message: "cidr \"\(text)\": \"\(address)\" is not an IPv4 or IPv6 address")
        }
        self.prefixLength = length
        self.source = text
    }

    func contains(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        let bytes = Array(s)[...]
        var address: [UInt8]?
        if isIPv6 {
            address = IPAddressParser.parseIPv6(bytes)
        } else {
            address = IPAddressParser.parseIPv4(bytes)
            // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is that IPv4 address.
            if address == nil, let v6 = IPAddressParser.parseIPv6(bytes),
                v6[0..<10].allSatisfy({ $0 == 0 }), v6[10] == 0xFF, v6[11] == 0xFF
            {
                address = Array(v6[12..<16])
            }
        }
        guard let address else { return false }
        return IPAddressParser.masked(address, prefixLength) == network
    }
}

enum IPAddressParser {
    static func masked(_ address: [UInt8], _ length: Int) -> [UInt8] {
        var out = address
        for i in 0..<out.count {
            let bitsHere = max(0, min(8, length - i * 8))
            out[i] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
        }
        return out
    }

    /// Dotted-quad IPv4 (four decimal octets, no leading zeros beyond a single "0").
    static func parseIPv4(_ s: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(4)
        var value = -1
        var digits = 0
        var leadingZero = false
        for c in s {
            if c == UInt8(ascii: ".") {
                guard value >= 0, out.count < 3 else { return nil }
                out.append(UInt8(value)); value = -1; digits = 0
                continue
            }
            guard isDigit(c) else { return nil }
            if digits == 1, leadingZero { return nil }
            if value < 0 { value = 0; leadingZero = c == UInt8(ascii: "0") }
            value = value * 10 + Int(c - 48)
            digits += 1
            guard value <= 255 else { return nil }
        }
        guard value >= 0, out.count == 3 else { return nil }
        out.append(UInt8(value))
        return out
    }

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
            while j < end, let d = hexValue(s[j]) {
                value = value << 4 | d
                j += 1
                if j - i > 4 { return nil }
            }
            if j < end, s[j] == UInt8(ascii: ".") {
                // Embedded IPv4 in the last 32 bits.
                guard let v4 = parseIPv4(s[i..<end]) else { return nil }
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

    private static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - 48)
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(c - 87)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(c - 55)
        default: return nil
        }
    }
}
