import CordonCloud
import CordonCore
import Foundation

/// A KMS key as a journal key is configured: `kms:arn:aws:kms:REGION:ACCOUNT:key/ID` (the
/// `kms:` prefix may be left off). The region of the calls is the ARN's. An alias ARN is
/// refused: an alias can be moved to another key, and a journal key is one key.
public struct KMSKeyARN: Sendable, Equatable, CustomStringConvertible {
    /// `arn:PARTITION:kms:REGION:ACCOUNT:key/ID`.
    public let arn: String
    public let partition: String
    public let region: String
    public let account: String
    /// The key id (a UUID, or `mrk-…` for a multi-Region key).
    public let keyID: String

    public static let specPrefix = "kms:"

    public init(_ spec: String) throws(ActionError) {
        let text = spec.trimmingWhitespace()
        let arn = text.hasPrefix(Self.specPrefix + "arn:") ? String(text.dropFirst(Self.specPrefix.count)) : text
        let example = "kms:arn:aws:kms:REGION:ACCOUNT:key/KEY-ID"
        let parts = arn.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6, parts[0] == "arn", parts[1].hasPrefix("aws"), parts[2] == "kms" else {
            throw .permanent("InvalidConfiguration", "\"\(text)\" is not a KMS key ARN such as \(example)")
        }
        let (region, account, resource) = (parts[3], parts[4], parts[5])
        guard !region.isEmpty, region.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }) else {
            throw .permanent("InvalidConfiguration", "\"\(text)\" names no region: a KMS key ARN is \(example)")
        }
        guard account.count == 12, account.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw .permanent("InvalidConfiguration", "\"\(text)\": the account in a KMS key ARN is 12 digits (\(example))")
        }
        if resource.hasPrefix("alias/") {
            throw .permanent(
                "InvalidConfiguration",
                "\"\(text)\" is an alias, which can be moved to another key: give the key's own ARN (aws kms describe-key --key-id \(resource) shows it)")
        }
        let id = resource.hasPrefix("key/") ? String(resource.dropFirst(4)) : ""
        guard !id.isEmpty, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw .permanent("InvalidConfiguration", "\"\(text)\" names no key: a KMS key ARN ends in key/KEY-ID (\(example))")
        }
        self.arn = arn
        self.partition = parts[1]
        self.region = region
        self.account = account
        self.keyID = id
    }

    /// As configured: `kms:` and the ARN.
    public var spec: String { Self.specPrefix + arn }
    public var description: String { arn }
}

/// A journal key that never leaves AWS KMS: an `ECC_NIST_P256` key with usage
/// `SIGN_VERIFY`, signing with `ECDSA_SHA_256`. The public key is fetched once, when the
/// signer is made, and checked to be such a key; every signature KMS answers is checked
/// against it before it is used.
///
/// The credentials need `kms:GetPublicKey` and `kms:Sign` on the key. Signing waits on the
/// network (`isRemote`), so such a key certifies a session key rather than signing each
/// checkpoint.
public struct KMSSigner: JournalSigner {
    public let key: KMSKeyARN
    public let publicKeyDER: [UInt8]
    public let kms: AWSKMS
    private let verifier: JournalPublicKey

    public var algorithm: SignatureAlgorithm { .ecdsaP256SHA256 }
    public var source: String { key.arn }
    public var isRemote: Bool { true }

    /// The spec and usage a journal key must have.
    public static let requiredKeySpec = "ECC_NIST_P256"
    public static let requiredKeyUsage = "SIGN_VERIFY"
    public static let signingAlgorithm = "ECDSA_SHA_256"

    /// Fetches the key's public half; refuses a key that is not a P-256 signing key.
    public init(key: KMSKeyARN, kms: AWSKMS) async throws(ActionError) {
        let needed = "a journal key must be \(Self.requiredKeySpec) with usage \(Self.requiredKeyUsage) (aws kms create-key --key-spec \(Self.requiredKeySpec) --key-usage \(Self.requiredKeyUsage))"
        let answer: KMSPublicKey
        do {
            answer = try await kms.publicKey(keyID: key.arn)
        } catch where error.code == "UnsupportedOperationException" || error.code == "InvalidKeyUsageException" {
            // AWS answers so for a symmetric key, which has no public half.
            var explained = error
            explained.message += " (\(needed))"
            throw explained
        }
        guard answer.keySpec == Self.requiredKeySpec, answer.keyUsage == Self.requiredKeyUsage else {
            let spec = answer.keySpec.isEmpty ? "of no stated key spec" : answer.keySpec
            let usage = answer.keyUsage.isEmpty ? "no stated usage" : "usage \(answer.keyUsage)"
            throw .permanent("InvalidKey", "KMS key \(key.arn) is \(spec) with \(usage): \(needed)")
        }
        guard answer.signingAlgorithms.isEmpty || answer.signingAlgorithms.contains(Self.signingAlgorithm) else {
            throw .permanent(
                "InvalidKey",
                "KMS key \(key.arn) signs with \(answer.signingAlgorithms.joined(separator: ", ")), not \(Self.signingAlgorithm): \(needed)")
        }
        do {
            verifier = try JournalPublicKey(algorithm: .ecdsaP256SHA256, der: answer.der)
        } catch {
            throw .permanent("InvalidKey", "KMS key \(key.arn) answered a public key that is \(error)")
        }
        self.key = key
        self.kms = kms
        self.publicKeyDER = answer.der
    }

    /// The key for a configured spec (`kms:arn:aws:kms:…`), called in the ARN's region
    /// with `cloud`'s default credentials and endpoints (`AWS_ENDPOINT_URL_KMS`,
    /// `AWS_ENDPOINT_URL`), never a role assumed in the key's account. Keep `cloud` open
    /// while the signer is used: it sends through `cloud`'s transport.
    public static func open(_ spec: String, cloud: AWSCloud) async throws(ActionError) -> KMSSigner {
        let key = try KMSKeyARN(spec)
        let client = try await cloud.client(.kms, CloudScope(region: key.region))
        return try await KMSSigner(key: key, kms: AWSKMS(client: client))
    }

    /// The DER ECDSA signature of `message` (at most 4096 bytes; KMS hashes it).
    public func sign(_ message: [UInt8]) async throws -> [UInt8] {
        let signature = try await kms.sign(keyID: key.arn, message: message)
        guard verifier.isValidSignature(signature, for: message) else {
            throw ActionError.permanent(
                "InvalidSignature", "KMS key \(key.arn) answered a signature that does not verify with the public key it gave when the signer was made")
        }
        return signature
    }
}
