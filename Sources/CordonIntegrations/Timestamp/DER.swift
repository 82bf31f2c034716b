/// Where DER input breaks: the byte offset from the start of the whole message, and what
/// was wrong there.
struct DERError: Error, Sendable, Equatable, CustomStringConvertible {
    var offset: Int
    var reason: String

    var description: String { "not DER at byte \(offset): \(reason)" }
}

/// One DER element (tag, length, contents) inside a message. Offsets are into the whole
/// message, so that errors name the byte where the input went wrong.
struct DERElement: Sendable {
    let message: [UInt8]
    let tag: UInt8
    let start: Int
    let contentStart: Int
    let end: Int

    var content: ArraySlice<UInt8> { message[contentStart..<end] }
    /// Tag, length and contents, as they were received.
    var encoded: ArraySlice<UInt8> { message[start..<end] }
    var isConstructed: Bool { tag & 0x20 != 0 }

    /// A reader over the elements inside this one.
    func children(_ what: String) throws(DERError) -> DERReader {
        guard isConstructed else { throw DERError(offset: start, reason: "\(what) is not a constructed element (tag 0x\(DER.hex(tag)))") }
        return DERReader(message, from: contentStart, to: end)
    }

    /// A small non-negative INTEGER (a version, a status).
    func smallInteger(_ what: String) throws(DERError) -> Int {
        guard tag == DER.integer, (1...4).contains(content.count), let first = content.first, first & 0x80 == 0 else {
            throw DERError(offset: start, reason: "\(what) is not a small non-negative INTEGER")
        }
        return content.reduce(0) { $0 << 8 | Int($1) }
    }

    /// An INTEGER's magnitude without leading zero bytes (nonces and serial numbers compare so).
    func unsignedMagnitude(_ what: String) throws(DERError) -> [UInt8] {
        guard tag == DER.integer, !content.isEmpty else { throw DERError(offset: start, reason: "\(what) is not an INTEGER") }
        return Array(content.drop { $0 == 0 })
    }
}

/// Reads the elements of one level in order. It never recurses (callers descend with
/// `children`), a tag is one byte, a length at most four, and every element must end
/// within its parent: hostile input costs at most one pass over its bytes.
struct DERReader {
    let message: [UInt8]
    private(set) var position: Int
    let end: Int

    /// A reader over the whole message.
    init(_ message: [UInt8]) {
        self.init(message, from: 0, to: message.count)
    }

    init(_ message: [UInt8], from start: Int, to end: Int) {
        self.message = message
        self.position = start
        self.end = end
    }

    var isAtEnd: Bool { position >= end }
    var peekTag: UInt8? { position < end ? message[position] : nil }

    mutating func read(_ what: String) throws(DERError) -> DERElement {
        let start = position
        guard start < end else { throw DERError(offset: start, reason: "\(what) is missing (the enclosing element ends)") }
        let tag = message[start]
        guard tag & 0x1F != 0x1F else { throw DERError(offset: start, reason: "\(what) has a multi-byte tag") }
        guard start + 1 < end else { throw DERError(offset: start + 1, reason: "\(what) has no length") }
        let first = message[start + 1]
        var contentStart = start + 2
        var length = Int(first)
        if first == 0x80 {
            throw DERError(offset: start + 1, reason: "\(what) has an indefinite length (BER, not DER)")
        } else if first > 0x80 {
            let count = Int(first & 0x7F)
            guard count <= 4 else { throw DERError(offset: start + 1, reason: "\(what) has a length of \(count) bytes") }
            guard contentStart + count <= end else { throw DERError(offset: start + 1, reason: "\(what)'s length runs past its enclosing element") }
            length = message[contentStart..<(contentStart + count)].reduce(0) { $0 << 8 | Int($1) }
            contentStart += count
        }
        guard length <= end - contentStart else {
            throw DERError(offset: start, reason: "\(what) claims \(length) bytes of contents, \(end - contentStart) remain in its enclosing element")
        }
        position = contentStart + length
        return DERElement(message: message, tag: tag, start: start, contentStart: contentStart, end: position)
    }

    /// The next element, which must carry `tag`.
    mutating func read(_ tag: UInt8, _ what: String) throws(DERError) -> DERElement {
        if let found = peekTag, found != tag {
            throw DERError(offset: position, reason: "expected \(what) (tag 0x\(DER.hex(tag))), found tag 0x\(DER.hex(found))")
        }
        return try read(what)
    }

    /// The next element if it carries `tag`; nothing is consumed otherwise.
    mutating func readIfPresent(_ tag: UInt8, _ what: String) throws(DERError) -> DERElement? {
        guard peekTag == tag else { return nil }
        return try read(what)
    }

    /// Throws when bytes remain after the last expected element.
    func finish(_ what: String) throws(DERError) {
        guard isAtEnd else { throw DERError(offset: position, reason: "unexpected bytes after \(what)") }
    }
}

/// DER tags, object identifiers (their encoded contents) and the few encodings a
/// time-stamp request needs.
enum DER {
    static let boolean: UInt8 = 0x01
    static let integer: UInt8 = 0x02
    static let bitString: UInt8 = 0x03
    static let octetString: UInt8 = 0x04
    static let null: UInt8 = 0x05
    static let oid: UInt8 = 0x06
    static let utf8String: UInt8 = 0x0C
    static let generalizedTime: UInt8 = 0x18
    static let sequence: UInt8 = 0x30
    static let set: UInt8 = 0x31
    /// `[n]` constructed (explicit, or implicit over a constructed type).
    static func context(_ n: UInt8) -> UInt8 { 0xA0 | n }
    /// `[n]` primitive (implicit over a primitive type).
    static func contextPrimitive(_ n: UInt8) -> UInt8 { 0x80 | n }

    static func element(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        [tag] + length(content.count) + content
    }

    static func length(_ count: Int) -> [UInt8] {
        if count < 0x80 { return [UInt8(count)] }
        var bytes: [UInt8] = []
        var rest = count
        while rest > 0 {
            bytes.insert(UInt8(rest & 0xFF), at: 0)
            rest >>= 8
        }
        return [0x80 | UInt8(bytes.count)] + bytes
    }

    /// A non-negative INTEGER in its minimal encoding.
    static func unsignedInteger(_ value: UInt64) -> [UInt8] {
        var bytes = withUnsafeBytes(of: value.bigEndian, Array.init)
        while bytes.count > 1, bytes[0] == 0, bytes[1] & 0x80 == 0 { bytes.removeFirst() }
        if let first = bytes.first, first & 0x80 != 0 { bytes.insert(0, at: 0) }
        return element(integer, bytes)
    }

    /// Two hex digits, for tags in messages.
    static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }

    /// Dotted text of an object identifier's contents (`2.16.840.1.101.3.4.2.1`), for messages.
    static func oidText(_ content: ArraySlice<UInt8>) -> String {
        var arcs: [UInt64] = []
        var value: UInt64 = 0
        for byte in content {
            guard value < (1 << 56) else { return "(an over-long object identifier)" }
            value = value << 7 | UInt64(byte & 0x7F)
            if byte & 0x80 == 0 {
                arcs.append(value)
                value = 0
            }
        }
        guard let first = arcs.first else { return "(an empty object identifier)" }
        let head = first < 80 ? [first / 40, first % 40] : [2, first - 80]
        return (head + arcs.dropFirst()).map(String.init).joined(separator: ".")
    }
}

/// Object identifiers (encoded contents) of the CMS and RFC 3161 structures.
enum OID {
    static let signedData: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02]
    static let tstInfo: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x01, 0x04]
    static let contentType: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03]
    static let messageDigest: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04]
    static let signingCertificate: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x02, 0x0C]
    static let signingCertificateV2: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x02, 0x2F]
    static let sha1: [UInt8] = [0x2B, 0x0E, 0x03, 0x02, 0x1A]
    static let sha256: [UInt8] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]
    static let sha384: [UInt8] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02]
    static let sha512: [UInt8] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03]
    static let rsaEncryption: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
    static let sha256WithRSA: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B]
    static let sha384WithRSA: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0C]
    static let sha512WithRSA: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0D]
    static let ecdsaWithSHA256: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]
    static let ecdsaWithSHA384: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03]
    static let ecdsaWithSHA512: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04]
}
