import Crypto

extension Digest {
    /// Lowercase hex.
    public var hex: String {
        withUnsafeBytes { bytes in
            String(unsafeUninitializedCapacity: bytes.count * 2) { out in
                let digits: StaticString = "0123456789abcdef"
                let d = digits.utf8Start
                var i = 0
                for byte in bytes {
                    out[i] = d[Int(byte >> 4)]
                    out[i + 1] = d[Int(byte & 0x0F)]
                    i += 2
                }
                return i
            }
        }
    }
}
