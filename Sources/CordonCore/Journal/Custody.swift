import Crypto
import Foundation

/// How a journal key signs: Ed25519 over the message, or ECDSA on P-256 over the message's
/// SHA-256 (what AWS KMS calls `ECC_NIST_P256` with `ECDSA_SHA_256`).
public enum SignatureAlgorithm: String, Sendable, Codable, CaseIterable {
    case ed25519
    case ecdsaP256SHA256 = "ecdsa-p256-sha256"
}

/// Signs the journal's checkpoints and key statements: a key file, or a key that never
/// leaves a KMS.
public protocol JournalSigner: Sendable {
    var algorithm: SignatureAlgorithm { get }
    /// The public key as DER SubjectPublicKeyInfo.
    var publicKeyDER: [UInt8] { get }
    /// Where the key lives, for messages (a file path, a KMS key ARN); never key material.
    var source: String { get }
    /// Whether signing may wait on the network (a KMS): such a key certifies a session key
    /// once per opening instead of signing every checkpoint itself.
    var isRemote: Bool { get }
    /// The signature of `message`: 64 raw bytes (Ed25519) or DER (ECDSA).
    func sign(_ message: [UInt8]) async throws -> [UInt8]
}

extension JournalSigner {
    /// SHA-256 (hex) of the DER public key, as `cordon journal key` prints it.
    public var fingerprint: String { SHA256.hash(data: publicKeyDER).hex }
    public var publicKey: JournalPublicKey? { try? JournalPublicKey(algorithm: algorithm, der: publicKeyDER) }
}

/// A public key that verifies journal signatures.
public struct JournalPublicKey: Sendable, Equatable {
    public let algorithm: SignatureAlgorithm
    /// DER SubjectPublicKeyInfo.
    public let der: [UInt8]

    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
    public static let ed25519Prefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]

    public init(algorithm: SignatureAlgorithm, der: [UInt8]) throws {
        switch algorithm {
        case .ed25519:
            guard der.count == 44, Array(der.prefix(12)) == Self.ed25519Prefix,
                (try? Curve25519.Signing.PublicKey(rawRepresentation: der.suffix(32))) != nil
            else { throw Invalid(description: "not an Ed25519 public key (DER SubjectPublicKeyInfo)") }
        case .ecdsaP256SHA256:
            guard (try? P256.Signing.PublicKey(derRepresentation: der)) != nil else {
                throw Invalid(description: "not a P-256 public key (DER SubjectPublicKeyInfo)")
            }
        }
        self.algorithm = algorithm
        self.der = der
    }

    /// Reads a PEM `PUBLIC KEY`, Ed25519 or P-256.
    public init(pem: String) throws {
        guard let der = PEMText.decode(pem, label: "PUBLIC KEY") else { throw Invalid(description: "not a PEM public key") }
        if der.count == 44, Array(der.prefix(12)) == Self.ed25519Prefix {
            try self.init(algorithm: .ed25519, der: der)
        } else {
            try self.init(algorithm: .ecdsaP256SHA256, der: der)
        }
    }

    public var fingerprint: String { SHA256.hash(data: der).hex }
    public var pem: String { PEMText.encode(der, label: "PUBLIC KEY") }

    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        switch algorithm {
        case .ed25519:
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: der.suffix(32)) else { return false }
            return key.isValidSignature(signature, for: message)
        case .ecdsaP256SHA256:
            guard let key = try? P256.Signing.PublicKey(derRepresentation: der),
                let parsed = try? P256.Signing.ECDSASignature(derRepresentation: signature)
            else { return false }
            return key.isValidSignature(parsed, for: message)
        }
    }
}

/// PEM armour (RFC 7468).
public enum PEMText {
    public static func encode(_ der: [UInt8], label: String) -> String {
        let b64 = Data(der).base64EncodedString()
        var lines: [String] = []
        var index = b64.startIndex
        while index < b64.endIndex {
            let end = b64.index(index, offsetBy: 64, limitedBy: b64.endIndex) ?? b64.endIndex
            lines.append(String(b64[index..<end]))
            index = end
        }
        return "-----BEGIN \(label)-----\n" + lines.joined(separator: "\n") + "\n-----END \(label)-----\n"
    }

    public static func decode(_ pem: String, label: String) -> [UInt8]? {
        guard let begin = pem.range(of: "-----BEGIN \(label)-----"), let end = pem.range(of: "-----END \(label)-----"),
            begin.upperBound <= end.lowerBound
        else { return nil }
        let body = pem[begin.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
        return Data(base64Encoded: String(body)).map(Array.init)
    }
}

/// A checkpoint as witnesses keep it: the journal's head at `seq`, its signature and the
/// signing key's fingerprint, written as one line.
extension Checkpoint {
    /// One line of canonical JSON (RFC 8785, no newline) of `json`: what a file witness
    /// appends, an S3 witness stores and a time-stamping authority's token covers (its
    /// SHA-256).
    public var line: String { CanonicalJSON.string(json) }

    public struct InvalidLine: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Reads a checkpoint from its line.
    public init(line: String) throws {
        let value: JSONValue
        do {
            value = try JSONParser.parse(Array(line.utf8))
        } catch {
            throw InvalidLine(description: "not JSON (\(error))")
        }
        guard let seq = value["seq"]?.numberValue?.intValue, seq >= 1, let hash = value["hash"]?.stringValue,
            let time = value["time"]?.stringValue, let signature = value["signature"]?.stringValue, let key = value["key"]?.stringValue
        else { throw InvalidLine(description: "not a signed head (seq, hash, time, signature, key)") }
        self.init(seq: Int64(seq), hash: hash, time: time, signature: signature, keyFingerprint: key)
    }
}

/// What a witness answered for one head: kept in the journal and carried by bundles.
public struct WitnessReceipt: Sendable, Equatable {
    /// The witness as configured (`file:PATH`, `s3://BUCKET/PREFIX`, `tsa:URL`).
    public var witness: String
    public var seq: Int64
    public var hash: String
    /// When the witness answered.
    public var time: String
    /// The witness's proof, if it gives one: a time-stamp response (base64 DER) or the
    /// object's key and version; empty for a file.
    public var proof: String

    public init(witness: String, seq: Int64, hash: String, time: String, proof: String) {
        self.witness = witness
        self.seq = seq
        self.hash = hash
        self.time = time
        self.proof = proof
    }
}

/// Somewhere outside the host that keeps each checkpoint's head, so that a journal
/// truncated or rewritten after the fact disagrees with it.
public protocol CheckpointWitness: Sendable {
    /// The witness as configured, for logs, metrics and receipts (no credentials).
    var spec: String { get }
    /// Sends one head; answers the witness's receipt. Throws when the witness did not
    /// take it (the caller retries).
    func witness(_ head: Checkpoint) async throws -> WitnessReceipt
    /// Every head the witness holds, by seq; nil for a witness that keeps none (a
    /// time-stamping authority: its receipts are the record).
    func witnessedHeads() async throws -> [Checkpoint]?
    /// Whether `receipt` proves that the witness saw `head` (a time-stamp token's
    /// signature and imprint); nil when it cannot be checked here.
    func check(_ receipt: WitnessReceipt, for head: Checkpoint) throws -> Bool?
}
