import CordonCloud
import CordonCore
import Foundation

/// What `kms:GetPublicKey` tells of an asymmetric KMS key.
public struct KMSPublicKey: Sendable, Equatable {
    /// The key as KMS named it in the answer (its ARN on AWS; moto answers the bare id).
    public var keyID: String
    /// DER SubjectPublicKeyInfo.
    public var der: [UInt8]
    /// `ECC_NIST_P256`, `RSA_2048`, `SYMMETRIC_DEFAULT`…
    public var keySpec: String
    /// `SIGN_VERIFY`, `ENCRYPT_DECRYPT`, `KEY_AGREEMENT`…
    public var keyUsage: String
    public var signingAlgorithms: [String]

    public init(keyID: String, der: [UInt8], keySpec: String, keyUsage: String, signingAlgorithms: [String]) {
        self.keyID = keyID
        self.der = der
        self.keySpec = keySpec
        self.keyUsage = keyUsage
        self.signingAlgorithms = signingAlgorithms
    }
}

/// KMS over JSON 1.1 (`TrentService`): the signing calls a journal key needs, and
/// `CreateKey` for setting one up (and for the tests). Errors name the key, as given by
/// the caller; AWS's own text follows.
public struct AWSKMS: Sendable {
    public let client: AWSServiceClient
    package static let target = "TrentService"
    /// The largest message `Sign` takes with `MessageType: RAW` (KMS's limit).
    public static let maxRawMessageBytes = 4096

    public init(client: AWSServiceClient) { self.client = client }

    /// `Sign` with `ECDSA_SHA_256` over the raw message (KMS hashes it): the DER signature.
    public func sign(keyID: String, message: [UInt8]) async throws(ActionError) -> [UInt8] {
        guard !message.isEmpty, message.count <= Self.maxRawMessageBytes else {
            throw .permanent("InvalidMessage", "KMS Sign with \(keyID): a raw message is 1 to \(Self.maxRawMessageBytes) bytes, this one is \(message.count)")
        }
        let body: JSONValue = [
            "KeyId": .string(keyID), "Message": .string(Data(message).base64EncodedString()), "MessageType": "RAW",
            "SigningAlgorithm": "ECDSA_SHA_256",
        ]
        let out = try await call("Sign", keyID, body)
        guard let text = out["Signature"]?.stringValue, let signature = Data(base64Encoded: text), !signature.isEmpty else {
            throw .permanent("InvalidResponse", "KMS Sign with \(keyID) answered without a base64 Signature")
        }
        return Array(signature)
    }

    /// `GetPublicKey`: the key's public half and what it may be used for.
    public func publicKey(keyID: String) async throws(ActionError) -> KMSPublicKey {
        let out = try await call("GetPublicKey", keyID, ["KeyId": .string(keyID)])
        guard let text = out["PublicKey"]?.stringValue, let der = Data(base64Encoded: text), !der.isEmpty else {
            throw .permanent("InvalidResponse", "KMS GetPublicKey of \(keyID) answered without a base64 PublicKey")
        }
        // `KeySpec` is the current name; `CustomerMasterKeySpec` the deprecated one, which
        // AWS still sends and moto sends alone.
        let spec = out["KeySpec"]?.stringValue ?? out["CustomerMasterKeySpec"]?.stringValue ?? ""
        return KMSPublicKey(
            keyID: out["KeyId"]?.stringValue ?? keyID, der: Array(der), keySpec: spec, keyUsage: out["KeyUsage"]?.stringValue ?? "",
            signingAlgorithms: out["SigningAlgorithms"]?.arrayValue?.compactMap(\.stringValue) ?? [])
    }

    /// `CreateKey`: a new key of `keySpec` for `keyUsage`; answers its ARN.
    public func createKey(keySpec: String, keyUsage: String, description: String) async throws(ActionError) -> String {
        let body: JSONValue = ["KeySpec": .string(keySpec), "KeyUsage": .string(keyUsage), "Description": .string(description)]
        let out = try await client.json(targetPrefix: Self.target, "CreateKey", body)
        guard let arn = out["KeyMetadata"]?["Arn"]?.stringValue, !arn.isEmpty else {
            throw .permanent("InvalidResponse", "KMS CreateKey answered without KeyMetadata.Arn")
        }
        return arn
    }

    /// A call about one key: its errors say which key (AWS's messages often do not).
    private func call(_ operation: String, _ keyID: String, _ body: JSONValue) async throws(ActionError) -> JSONValue {
        do {
            return try await client.json(targetPrefix: Self.target, operation, body)
        } catch {
            var named = error
            if !named.message.contains(keyID) { named.message = "KMS \(operation) with \(keyID): " + named.message }
            throw named
        }
    }
}
