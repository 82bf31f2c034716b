import CordonCore
import Foundation
import SwiftASN1
import X509

/// Whether a time-stamp token's signer is a time-stamping certificate that chains, through
/// the certificates the token carries, to a configured trust anchor, every certificate
/// valid at the token's genTime (a TSA's token stays good after its certificate expires:
/// what matters is that the certificate was valid when it signed).
extension TimeStampVerifier {
    /// Nil when the chain holds; otherwise what breaks it. Walks issuer links without
    /// recursion and uses each carried certificate at most once.
    static func chainProblem(_ signer: Certificate, intermediates: [Certificate], anchors: [Certificate], at time: Date) -> String? {
        if let problem = timeStampingProblem(signer) { return problem }
        var current = signer
        var used: Set<Int> = []
        for _ in 0...maxChainLength {
            if let problem = validityProblem(current, at: time) { return problem }
            if anchors.contains(current) { return nil }
            if let anchor = anchors.first(where: { issued(current, by: $0) }) {
                return validityProblem(anchor, at: time) ?? caProblem(anchor)
            }
            let next = intermediates.enumerated().first { !used.contains($0.offset) && issued(current, by: $0.element) }
            guard let next else {
                return "the signer's certificate does not chain to the trust anchor (no configured CA issued \(current.subject))"
            }
            if let problem = caProblem(next.element) { return problem }
            used.insert(next.offset)
            current = next.element
        }
        return "the signer's certificate chain is longer than \(maxChainLength)"
    }

    static func issued(_ certificate: Certificate, by issuer: Certificate) -> Bool {
        certificate.issuer == issuer.subject && issuer.publicKey.isValidSignature(certificate.signature, for: certificate)
    }

    static func validityProblem(_ certificate: Certificate, at time: Date) -> String? {
        guard certificate.notValidBefore <= time, time <= certificate.notValidAfter else {
            let from = Timestamp.string(certificate.notValidBefore), to = Timestamp.string(certificate.notValidAfter)
            return "certificate \(certificate.subject) was not valid at genTime (valid from \(from) to \(to))"
        }
        return nil
    }

    /// An issuer must be a CA; a version 1 certificate (no extensions) is taken as the
    /// anchor it was configured to be.
    static func caProblem(_ certificate: Certificate) -> String? {
        switch try? certificate.extensions.basicConstraints {
        case .isCertificateAuthority: return nil
        case .notCertificateAuthority: return "certificate \(certificate.subject) issued another but is not a CA"
        case nil: return certificate.version == .v1 ? nil : "certificate \(certificate.subject) issued another but has no basicConstraints"
        }
    }

    /// RFC 3161 2.3: the TSA's certificate has one extendedKeyUsage, timeStamping, critical.
    static func timeStampingProblem(_ signer: Certificate) -> String? {
        guard let usage = try? signer.extensions.extendedKeyUsage, usage.contains(.timeStamping) else {
            return "the signer's certificate is not a time-stamping certificate (no extendedKeyUsage timeStamping)"
        }
        guard signer.extensions[oid: .X509ExtensionID.extendedKeyUsage]?.critical == true else {
            return "the signer's extendedKeyUsage is not critical (RFC 3161 requires it)"
        }
        return nil
    }
}
