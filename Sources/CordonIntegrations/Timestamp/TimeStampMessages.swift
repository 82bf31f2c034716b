/// RFC 3161 `TimeStampReq`: version 1, a SHA-256 message imprint, a nonce, no policy, and
/// certReq TRUE, so that the token carries the TSA's certificate and verifies on its own.
enum TimeStampRequest {
    static func der(sha256 imprint: [UInt8], nonce: UInt64) -> [UInt8] {
        let algorithm = DER.element(DER.sequence, DER.element(DER.oid, OID.sha256) + [DER.null, 0])
        let messageImprint = DER.element(DER.sequence, algorithm + DER.element(DER.octetString, imprint))
        return DER.element(DER.sequence, DER.unsignedInteger(1) + messageImprint + DER.unsignedInteger(nonce) + [DER.boolean, 1, 0xFF])
    }
}

/// A time-stamp response's `PKIStatusInfo`: the status, the TSA's free text and the
/// failure bits by name.
struct TimeStampStatus: Sendable, Equatable, CustomStringConvertible {
    var status: Int
    var text: [String]
    var failInfo: [String]

    /// granted(0) or grantedWithMods(1): the response carries a token.
    var isGranted: Bool { status == 0 || status == 1 }

    static let statusNames = ["granted", "grantedWithMods", "rejection", "waiting", "revocationWarning", "revocationNotification"]
    static let failureNames: [Int: String] = [
        0: "badAlg", 2: "badRequest", 5: "badDataFormat", 14: "timeNotAvailable", 15: "unacceptedPolicy", 16: "unacceptedExtension",
        17: "addInfoNotAvailable", 25: "systemFailure",
    ]

    /// `rejection(2), failInfo badAlg, "unsupported algorithm"`.
    var description: String {
        let name = status >= 0 && status < Self.statusNames.count ? Self.statusNames[status] : "unknown"
        var parts = ["\(name)(\(status))"]
        if !failInfo.isEmpty { parts.append("failInfo " + failInfo.joined(separator: ", ")) }
        if !text.isEmpty { parts.append(text.map { "\"\($0)\"" }.joined(separator: " ")) }
        return parts.joined(separator: ", ")
    }
}

/// A parsed `TimeStampResp`: the status, and the token when the TSA granted one.
struct TimeStampResponse {
    var status: TimeStampStatus
    var token: TimeStampToken?

    init(der message: [UInt8]) throws(DERError) {
        var top = DERReader(message)
        let response = try top.read(DER.sequence, "TimeStampResp")
        try top.finish("the TimeStampResp")
        var fields = try response.children("TimeStampResp")
        status = try Self.statusInfo(try fields.read(DER.sequence, "PKIStatusInfo"))
        token = nil
        if !fields.isAtEnd { token = try TimeStampToken(try fields.read(DER.sequence, "TimeStampToken")) }
        try fields.finish("the TimeStampToken")
    }

    static func statusInfo(_ element: DERElement) throws(DERError) -> TimeStampStatus {
        var fields = try element.children("PKIStatusInfo")
        let status = try fields.read(DER.integer, "PKIStatus").smallInteger("PKIStatus")
        var text: [String] = []
        if let free = try fields.readIfPresent(DER.sequence, "PKIFreeText") {
            var strings = try free.children("PKIFreeText")
            while !strings.isAtEnd {
                text.append(String(decoding: try strings.read(DER.utf8String, "PKIFreeText string").content.prefix(200), as: UTF8.self))
            }
        }
        var failInfo: [String] = []
        if let bits = try fields.readIfPresent(DER.bitString, "PKIFailureInfo") {
            for (index, byte) in bits.content.dropFirst().prefix(8).enumerated() {
                for bit in 0..<8 where byte & (0x80 >> bit) != 0 {
                    let number = index * 8 + bit
                    failInfo.append(TimeStampStatus.failureNames[number] ?? "bit \(number)")
                }
            }
        }
        try fields.finish("PKIStatusInfo")
        return TimeStampStatus(status: status, text: text, failInfo: failInfo)
    }
}

/// A time-stamp token: CMS `ContentInfo` with `SignedData` whose encapsulated content is
/// the TSTInfo, the certificates it carries and its one signer.
struct TimeStampToken {
    var tstInfo: TSTInfo
    /// The encapsulated TSTInfo's DER, which the signer's messageDigest covers.
    var eContent: ArraySlice<UInt8>
    var certificates: [ArraySlice<UInt8>]
    var signer: SignerInfo

    init(_ contentInfo: DERElement) throws(DERError) {
        var info = try contentInfo.children("ContentInfo")
        let type = try info.read(DER.oid, "ContentInfo contentType")
        guard type.content.elementsEqual(OID.signedData) else {
            throw DERError(offset: type.start, reason: "the token is \(DER.oidText(type.content)), not CMS SignedData")
        }
        var explicit = try info.read(DER.context(0), "ContentInfo content").children("ContentInfo content")
        try info.finish("ContentInfo")
        let signedData = try explicit.read(DER.sequence, "SignedData")
        try explicit.finish("SignedData")
        var fields = try signedData.children("SignedData")
        _ = try fields.read(DER.integer, "SignedData version")
        _ = try fields.read(DER.set, "SignedData digestAlgorithms")
        var encapsulated = try fields.read(DER.sequence, "EncapsulatedContentInfo").children("EncapsulatedContentInfo")
        let contentType = try encapsulated.read(DER.oid, "eContentType")
        guard contentType.content.elementsEqual(OID.tstInfo) else {
            throw DERError(offset: contentType.start, reason: "the signed content is \(DER.oidText(contentType.content)), not a TSTInfo")
        }
        var wrapped = try encapsulated.read(DER.context(0), "eContent").children("eContent")
        let octets = try wrapped.read(DER.octetString, "eContent OCTET STRING")
        try wrapped.finish("eContent")
        try encapsulated.finish("EncapsulatedContentInfo")
        eContent = octets.content
        tstInfo = try TSTInfo(octets)
        certificates = []
        if let set = try fields.readIfPresent(DER.context(0), "SignedData certificates") {
            var choices = try set.children("SignedData certificates")
            while !choices.isAtEnd {
                let choice = try choices.read("certificate")
                // Other CertificateChoices (attribute certificates, others) are tagged; skipped.
                if choice.tag == DER.sequence { certificates.append(choice.encoded) }
            }
        }
        _ = try fields.readIfPresent(DER.context(1), "SignedData crls")
        var signers = try fields.read(DER.set, "SignedData signerInfos").children("signerInfos")
        signer = try SignerInfo(try signers.read(DER.sequence, "SignerInfo"))
        guard signers.isAtEnd else { throw DERError(offset: signers.position, reason: "a time-stamp token has one signer, this one has more") }
        try fields.finish("SignedData")
    }
}

/// RFC 3161 `TSTInfo`: what the TSA asserts about the imprint.
struct TSTInfo {
    var policy: String
    var imprintAlgorithm: ArraySlice<UInt8>
    var imprint: [UInt8]
    var serial: [UInt8]
    /// genTime in ISO 8601 UTC (`2026-03-12T11:03:38Z`, with the TSA's fraction if any).
    var genTime: String
    /// The nonce's magnitude (no leading zero bytes), when the TSA echoed one.
    var nonce: [UInt8]?

    init(_ octets: DERElement) throws(DERError) {
        var inner = DERReader(octets.message, from: octets.contentStart, to: octets.end)
        let info = try inner.read(DER.sequence, "TSTInfo")
        try inner.finish("TSTInfo")
        var fields = try info.children("TSTInfo")
        let version = try fields.read(DER.integer, "TSTInfo version")
        guard try version.smallInteger("TSTInfo version") == 1 else { throw DERError(offset: version.start, reason: "TSTInfo version is not 1") }
        policy = DER.oidText(try fields.read(DER.oid, "TSTInfo policy").content)
        var imprintFields = try fields.read(DER.sequence, "MessageImprint").children("MessageImprint")
        var algorithm = try imprintFields.read(DER.sequence, "hashAlgorithm").children("hashAlgorithm")
        imprintAlgorithm = try algorithm.read(DER.oid, "hashAlgorithm OID").content
        imprint = Array(try imprintFields.read(DER.octetString, "hashedMessage").content)
        try imprintFields.finish("MessageImprint")
        serial = try fields.read(DER.integer, "TSTInfo serialNumber").unsignedMagnitude("serialNumber")
        genTime = try Self.isoTime(try fields.read(DER.generalizedTime, "genTime"))
        _ = try fields.readIfPresent(DER.sequence, "accuracy")
        _ = try fields.readIfPresent(DER.boolean, "ordering")
        nonce = try fields.readIfPresent(DER.integer, "nonce")?.unsignedMagnitude("nonce")
        _ = try fields.readIfPresent(DER.context(0), "tsa")
        _ = try fields.readIfPresent(DER.context(1), "extensions")
        try fields.finish("TSTInfo")
    }

    /// `YYYYMMDDhhmmss[.fff]Z` as `YYYY-MM-DDThh:mm:ss[.fff]Z`.
    static func isoTime(_ element: DERElement) throws(DERError) -> String {
        let text = Array(element.content)
        let digit = { (c: UInt8) in c >= 0x30 && c <= 0x39 }
        guard text.count >= 15, text.count <= 40, text.last == UInt8(ascii: "Z"), text.prefix(14).allSatisfy(digit) else {
            throw DERError(offset: element.start, reason: "genTime is not a UTC GeneralizedTime (YYYYMMDDhhmmss[.f]Z)")
        }
        let fraction = text[14..<(text.count - 1)]
        if !fraction.isEmpty {
            guard fraction.first == UInt8(ascii: "."), fraction.count > 1, fraction.dropFirst().allSatisfy(digit) else {
                throw DERError(offset: element.start, reason: "genTime has a malformed fraction")
            }
        }
        let s = String(decoding: text, as: UTF8.self)
        let chars = Array(s)
        let date = "\(String(chars[0..<4]))-\(String(chars[4..<6]))-\(String(chars[6..<8]))"
        let time = "\(String(chars[8..<10])):\(String(chars[10..<12])):\(String(chars[12..<14]))"
        return date + "T" + time + String(decoding: fraction, as: UTF8.self) + "Z"
    }
}

/// CMS `SignerInfo`: who signed (issuer and serial, or key identifier), the digest and
/// signature algorithms, the signed attributes and the signature.
struct SignerInfo {
    enum Identifier {
        case issuerAndSerial(issuer: ArraySlice<UInt8>, serial: [UInt8])
        case keyIdentifier([UInt8])
    }

    var identifier: Identifier
    var digestAlgorithm: ArraySlice<UInt8>
    /// The signed attributes as signed: their DER with the `[0]` tag made a SET tag.
    var signedAttributes: [UInt8]
    /// Each attribute's type and its values (the SET's elements).
    var attributes: [(type: ArraySlice<UInt8>, values: [DERElement])]
    var signatureAlgorithm: ArraySlice<UInt8>
    var signature: [UInt8]

    init(_ element: DERElement) throws(DERError) {
        var fields = try element.children("SignerInfo")
        _ = try fields.read(DER.integer, "SignerInfo version")
        let sid = try fields.read("SignerInfo sid")
        switch sid.tag {
        case DER.sequence:
            var parts = try sid.children("IssuerAndSerialNumber")
            let issuer = try parts.read(DER.sequence, "issuer").encoded
            identifier = .issuerAndSerial(issuer: issuer, serial: try parts.read(DER.integer, "serialNumber").unsignedMagnitude("serialNumber"))
        case DER.contextPrimitive(0):
            identifier = .keyIdentifier(Array(sid.content))
        default:
            throw DERError(offset: sid.start, reason: "SignerInfo sid is neither IssuerAndSerialNumber nor a key identifier")
        }
        var digest = try fields.read(DER.sequence, "digestAlgorithm").children("digestAlgorithm")
        digestAlgorithm = try digest.read(DER.oid, "digestAlgorithm OID").content
        let signed = try fields.read(DER.context(0), "signedAttrs (a time-stamp token's signer signs attributes)")
        signedAttributes = [DER.set] + signed.encoded.dropFirst()
        attributes = []
        var list = try signed.children("signedAttrs")
        while !list.isAtEnd {
            var attribute = try list.read(DER.sequence, "Attribute").children("Attribute")
            let type = try attribute.read(DER.oid, "attrType").content
            var valueReader = try attribute.read(DER.set, "attrValues").children("attrValues")
            var values: [DERElement] = []
            while !valueReader.isAtEnd { values.append(try valueReader.read("attribute value")) }
            attributes.append((type, values))
        }
        var algorithm = try fields.read(DER.sequence, "signatureAlgorithm").children("signatureAlgorithm")
        signatureAlgorithm = try algorithm.read(DER.oid, "signatureAlgorithm OID").content
        signature = Array(try fields.read(DER.octetString, "signature").content)
        _ = try fields.readIfPresent(DER.context(1), "unsignedAttrs")
        try fields.finish("SignerInfo")
    }

    /// The single value of the signed attribute `type`, if present.
    func attribute(_ type: [UInt8]) -> DERElement? {
        attributes.first { $0.type.elementsEqual(type) }?.values.first
    }
}
