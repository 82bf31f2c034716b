import CordonCore
import CordonHTTP
import Crypto
import Foundation
import NIOSSL
import Synchronization
import _CryptoExtras

/// One SNS message posted to an HTTP(S) subscription endpoint.
public struct SNSMessage: Sendable {
    public var type: String
    public var fields: [String: String]

    public init(type: String, fields: [String: String]) {
        self.type = type
        self.fields = fields
    }

    public subscript(_ key: String) -> String? { fields[key] }

    /// Parses the JSON body SNS posts; nil with a reason when it is not one.
    public static func parse(_ body: [UInt8]) -> Result<SNSMessage, SNSError> {
        guard let json = try? JSONParser.parse(body), case .object(let object) = json else {
            return .failure(SNSError(status: 400, message: "body is not a JSON object (an SNS message was expected)"))
        }
        var fields: [String: String] = [:]
        for (k, v) in object {
            if let s = v.stringValue { fields[k] = s }
        }
        guard let type = fields["Type"] else { return .failure(SNSError(status: 400, message: "SNS message has no Type")) }
        return .success(SNSMessage(type: type, fields: fields))
    }

    /// The string SNS signs, per the AWS documentation ("Verifying the signatures of
    /// Amazon SNS messages"): selected keys in byte order, each as "Key\nValue\n".
    public var canonicalString: String? {
        let keys: [String]
        switch type {
        case "Notification": keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        case "SubscriptionConfirmation", "UnsubscribeConfirmation":
            keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
        default: return nil
        }
        var out = ""
        for key in keys {
            guard let value = fields[key] else {
                if key == "Subject" { continue }
                return nil
            }
            out += key + "\n" + value + "\n"
        }
        return out
    }
}

public struct SNSError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var description: String { message }
}

/// Verifies SNS message signatures (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA)
/// against the signing certificate, fetched over HTTPS only from an
/// `sns.<region>.amazonaws.com` host (cached by URL), or read from a local PEM file
/// (tests, air-gapped set-ups).
public final class SNSVerifier: Sendable {
    public let localCertificatePEM: String?
    /// The client certificates are fetched with, looked up at each fetch; nil: none (a
    /// certificate that is not local cannot be had).
    let http: (@Sendable () -> CordonHTTPClient)?
    private let cache = Mutex<[String: _RSA.Signing.PublicKey]>([:])
    static let cacheLimit = 64

    public init(localCertificatePEM: String? = nil, http: (@Sendable () -> CordonHTTPClient)? = nil) {
        self.localCertificatePEM = localCertificatePEM
        self.http = http
    }

    /// `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`).
    public static func isAWSHost(_ host: String) -> Bool {
        let parts = host.lowercased().split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 || parts.count == 5, parts[0] == "sns", !parts[1].isEmpty,
            parts[1].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }), parts[2] == "amazonaws", parts[3] == "com"
        else { return false }
        return parts.count == 4 || parts[4] == "cn"
    }

    public func verify(_ message: SNSMessage) async throws(SNSError) {
        guard let canonical = message.canonicalString else {
            throw SNSError(status: 400, message: "SNS \(message.type) message lacks fields its signature covers")
        }
        guard let signatureB64 = message["Signature"], let signatureBytes = Data(base64Encoded: signatureB64) else {
            throw SNSError(status: 403, message: "SNS message has no valid base64 Signature")
        }
        let version = message["SignatureVersion"] ?? "1"
        guard version == "1" || version == "2" else {
            throw SNSError(status: 403, message: "SNS SignatureVersion \(version) is not supported (1 or 2)")
        }
        let key = try await publicKey(certURL: message["SigningCertURL"] ?? message["SigningCertUrl"] ?? "")
        let signature = _RSA.Signing.RSASignature(rawRepresentation: signatureBytes)
        let data = Array(canonical.utf8)
        let valid =
            version == "1"
            ? key.isValidSignature(signature, for: Insecure.SHA1.hash(data: data), padding: .insecurePKCS1v1_5)
            : key.isValidSignature(signature, for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5)
        guard valid else { throw SNSError(status: 403, message: "SNS message signature does not verify (SignatureVersion \(version))") }
    }

    func publicKey(certURL: String) async throws(SNSError) -> _RSA.Signing.PublicKey {
        if let pem = localCertificatePEM {
            if let key = cache.withLock({ $0["local"] }) { return key }
            let key = try Self.key(fromCertificatePEM: Array(pem.utf8))
            cache.withLock { $0["local"] = key }
            return key
        }
        guard let url = URLComponents(string: certURL), url.scheme == "https", let host = url.host, Self.isAWSHost(host),
            url.path.hasSuffix(".pem")
        else {
            throw SNSError(status: 403, message: "SigningCertURL \(certURL) is not an https .pem URL on an sns.<region>.amazonaws.com host")
        }
        if let key = cache.withLock({ $0[certURL] }) { return key }
        guard let http else { throw SNSError(status: 503, message: "cannot fetch the SNS signing certificate: no HTTP client") }
        let response: CordonHTTPClient.Response
        do throws(ActionError) {
            response = try await http().send(
                method: "GET", url: certURL, headers: [], body: nil, timeout: .seconds(10), limit: .refuseOver(64 << 10),
                describe: "sns: GET https://\(host)")
        } catch {
            throw SNSError(status: 503, message: "cannot fetch the SNS signing certificate: \(error)")
        }
        guard response.status == 200 else { throw SNSError(status: 503, message: "SigningCertURL answered HTTP \(response.status)") }
        let body = response.body
        let key = try Self.key(fromCertificatePEM: body)
        cache.withLock { cache in
            // AWS signs with a handful of certificates; a sender varying the URL (a query
            // string) must not grow the cache without end.
            if cache.count >= Self.cacheLimit { cache.removeAll() }
            cache[certURL] = key
        }
        return key
    }

    static func key(fromCertificatePEM pem: [UInt8]) throws(SNSError) -> _RSA.Signing.PublicKey {
        do {
            let certificate = try NIOSSLCertificate(bytes: pem, format: .pem)
            let spki = try certificate.extractPublicKey().toSPKIBytes()
            return try _RSA.Signing.PublicKey(derRepresentation: spki)
        } catch {
            throw SNSError(status: 403, message: "the SNS signing certificate is not a PEM certificate with an RSA key (2048 bits or more): \(error)")
        }
    }
}
