import CordonCore
import Crypto
import Foundation
import SwiftASN1
import X509

/// What checking a stored time-stamp receipt found.
public struct TimestampCheck: Sendable, Equatable {
    /// Why the receipt does not prove that the TSA saw the head; nil when it does.
    public var problem: String?
    /// The token's genTime (ISO 8601 UTC).
    public var time: String
    /// The signer certificate's subject (`CN=…`), when the token carries it.
    public var signer: String?
    /// Whether the signer was shown to chain to a configured trust anchor (false when
    /// none was configured: the signature then proves only that the certificate the token
    /// carries signed it).
    public var chained: Bool

    public var isValid: Bool { problem == nil }
}

/// Checks a parsed time-stamp token: the CMS signature over the signed attributes by the
/// certificate the token carries, the attributes that bind the content and the
/// certificate, and (given trust anchors) the certificate's chain at genTime.
enum TimeStampVerifier {
    /// At most this many certificates between the signer and a trust anchor.
    static let maxChainLength = 8

    static func check(_ token: TimeStampToken, anchors: [Certificate]) throws -> TimestampCheck {
        var result = TimestampCheck(problem: nil, time: token.tstInfo.genTime, signer: nil, chained: false)
        let certificates = try parseCertificates(token.certificates)
        guard let signer = try signerCertificate(token.signer, among: certificates) else {
            result.problem = "the token carries no certificate for its signer (it was requested with certReq TRUE)"
            return result
        }
        result.signer = signer.certificate.subject.description
        if let problem = try signatureProblem(token, signer: signer) {
            result.problem = problem
            return result
        }
        guard !anchors.isEmpty else { return result }
        guard let time = Timestamp.parse(token.tstInfo.genTime) else {
            result.problem = "genTime \(token.tstInfo.genTime) is not a date"
            return result
        }
        let others = certificates.map(\.certificate).filter { $0 != signer.certificate }
        result.problem = chainProblem(signer.certificate, intermediates: others, anchors: anchors, at: time)
        result.chained = result.problem == nil
        return result
    }

    struct Carried {
        var certificate: Certificate
        var der: ArraySlice<UInt8>
    }

    static func parseCertificates(_ ders: [ArraySlice<UInt8>]) throws -> [Carried] {
        try ders.enumerated().map { index, der in
            do {
                return Carried(certificate: try Certificate(derEncoded: Array(der)), der: der)
            } catch {
                throw TimestampError("certificate \(index + 1) in the token does not parse: \(error)")
            }
        }
    }

    /// The carried certificate the SignerInfo names (issuer and serial, or key identifier).
    static func signerCertificate(_ signer: SignerInfo, among certificates: [Carried]) throws -> Carried? {
        switch signer.identifier {
        case .issuerAndSerial(let issuer, let serial):
            return try certificates.first { carried in
                let names = try issuerAndSerial(of: carried.der)
                return names.issuer.elementsEqual(issuer) && names.serial == serial
            }
        case .keyIdentifier(let identifier):
            return certificates.first { (try? $0.certificate.extensions.subjectKeyIdentifier)?.keyIdentifier.elementsEqual(identifier) == true }
        }
    }

    /// A certificate's issuer (DER) and serial number (magnitude), read as received.
    static func issuerAndSerial(of der: ArraySlice<UInt8>) throws(DERError) -> (issuer: ArraySlice<UInt8>, serial: [UInt8]) {
        var outer = DERReader(Array(der))
        var certificate = try outer.read(DER.sequence, "Certificate").children("Certificate")
        var tbs = try certificate.read(DER.sequence, "TBSCertificate").children("TBSCertificate")
        _ = try tbs.readIfPresent(DER.context(0), "version")
        let serial = try tbs.read(DER.integer, "serialNumber").unsignedMagnitude("serialNumber")
        _ = try tbs.read(DER.sequence, "signature")
        return (try tbs.read(DER.sequence, "issuer").encoded, serial)
    }

    /// Nil when the signed attributes bind the TSTInfo and the signer's certificate, and
    /// the signer's key signed them; otherwise what is wrong.
    static func signatureProblem(_ token: TimeStampToken, signer: Carried) throws -> String? {
        let info = token.signer
        guard let contentType = info.attribute(OID.contentType), contentType.tag == DER.oid, contentType.content.elementsEqual(OID.tstInfo) else {
            return "the signed contentType attribute is missing or not id-ct-TSTInfo"
        }
        guard let digest = digest(info.digestAlgorithm, token.eContent) else {
            return "unsupported digest algorithm \(DER.oidText(info.digestAlgorithm))"
        }
        guard let messageDigest = info.attribute(OID.messageDigest), messageDigest.tag == DER.octetString else {
            return "the signed messageDigest attribute is missing"
        }
        guard messageDigest.content.elementsEqual(digest) else {
            return "the signed messageDigest is not the digest of the TSTInfo (the token's content was changed)"
        }
        if let problem = try essCertificateProblem(info, certificate: signer.der) { return problem }
        guard let algorithm = signatureAlgorithm(info.signatureAlgorithm, digest: info.digestAlgorithm) else {
            return "unsupported signature algorithm \(DER.oidText(info.signatureAlgorithm))"
        }
        guard signer.certificate.publicKey.isValidSignature(info.signature, for: info.signedAttributes, signatureAlgorithm: algorithm) else {
            return "the signature over the signed attributes does not verify with the signer's certificate"
        }
        return nil
    }

    /// RFC 3161 (and RFC 5816) bind the signer's certificate in a signed
    /// signingCertificate(V2) attribute: its first ESSCertID hashes that certificate.
    static func essCertificateProblem(_ info: SignerInfo, certificate: ArraySlice<UInt8>) throws(DERError) -> String? {
        var algorithm = OID.sha256[...]
        let value: DERElement
        if let v2 = info.attribute(OID.signingCertificateV2) {
            value = v2
        } else if let v1 = info.attribute(OID.signingCertificate) {
            value = v1
            algorithm = OID.sha1[...]
        } else {
            return "the signer signed no signingCertificate attribute (RFC 3161 requires one)"
        }
        var outer = try value.children("SigningCertificate")
        var ids = try outer.read(DER.sequence, "SigningCertificate certs").children("SigningCertificate certs")
        var id = try ids.read(DER.sequence, "ESSCertID").children("ESSCertID")
        if let named = try id.readIfPresent(DER.sequence, "ESSCertIDv2 hashAlgorithm") {
            var fields = try named.children("ESSCertIDv2 hashAlgorithm")
            algorithm = try fields.read(DER.oid, "ESSCertIDv2 hashAlgorithm OID").content
        }
        let hash = try id.read(DER.octetString, "ESSCertID certHash").content
        guard let expected = digest(algorithm, certificate) else { return "unsupported certificate hash \(DER.oidText(algorithm))" }
        return hash.elementsEqual(expected) ? nil : "the signingCertificate attribute names another certificate than the one carried"
    }

    static func digest(_ algorithm: ArraySlice<UInt8>, _ data: ArraySlice<UInt8>) -> [UInt8]? {
        if algorithm.elementsEqual(OID.sha256) { return Array(SHA256.hash(data: data)) }
        if algorithm.elementsEqual(OID.sha384) { return Array(SHA384.hash(data: data)) }
        if algorithm.elementsEqual(OID.sha512) { return Array(SHA512.hash(data: data)) }
        if algorithm.elementsEqual(OID.sha1) { return Array(Insecure.SHA1.hash(data: data)) }
        return nil
    }

    /// The signature algorithm of a SignerInfo: RSA PKCS#1 v1.5 (named `rsaEncryption`
    /// with the digest algorithm, or with its hash) or ECDSA, with SHA-256, 384 or 512.
    static func signatureAlgorithm(_ signature: ArraySlice<UInt8>, digest: ArraySlice<UInt8>) -> Certificate.SignatureAlgorithm? {
        let table: [([UInt8], Certificate.SignatureAlgorithm)] = [
            (OID.sha256WithRSA, .sha256WithRSAEncryption), (OID.sha384WithRSA, .sha384WithRSAEncryption),
            (OID.sha512WithRSA, .sha512WithRSAEncryption), (OID.ecdsaWithSHA256, .ecdsaWithSHA256), (OID.ecdsaWithSHA384, .ecdsaWithSHA384),
            (OID.ecdsaWithSHA512, .ecdsaWithSHA512),
        ]
        if let named = table.first(where: { signature.elementsEqual($0.0) }) { return named.1 }
        guard signature.elementsEqual(OID.rsaEncryption) else { return nil }
        if digest.elementsEqual(OID.sha256) { return .sha256WithRSAEncryption }
        if digest.elementsEqual(OID.sha384) { return .sha384WithRSAEncryption }
        if digest.elementsEqual(OID.sha512) { return .sha512WithRSAEncryption }
        return nil
    }
}

/// Why a TSA's answer or a stored time-stamp could not be used.
public struct TimestampError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
