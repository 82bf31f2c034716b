import CordonCore
import Crypto
import Foundation

/// The journal's Ed25519 key pair. Created on first use; the private key file is mode
/// 0600 and Cordon refuses to use it when anyone but the owner can read it.
public struct SigningKey: Sendable {
    public let privateKey: Curve25519.Signing.PrivateKey
    public var publicKey: Curve25519.Signing.PublicKey { privateKey.publicKey }

    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public static let privateKeyFile = "journal-ed25519.pem"
    public static let publicKeyFile = "journal-ed25519.pub.pem"

    /// Loads the key from `directory`, or creates it there (and the directory, mode 0700).
    /// Creation is atomic (written to a temporary file with mode 0600, fsynced, renamed), so
    /// a crash never leaves a partial key; the public key file is rewritten from the
    /// private key whenever it is missing or does not match.
    public static func loadOrCreate(in directory: URL) throws -> SigningKey {
        let fm = FileManager.default
        let privateURL = directory.appendingPathComponent(privateKeyFile)
        let key: SigningKey
        if fm.fileExists(atPath: privateURL.path) {
            let attributes = try fm.attributesOfItem(atPath: privateURL.path)
            if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
                throw Error(
                    message: "\(privateURL.path) is readable by others (mode \(String(mode, radix: 8))); "
                        + "Cordon refuses to sign with it. Fix it with: chmod 600 \(privateURL.path)")
            }
            let pem = try String(contentsOf: privateURL, encoding: .utf8)
            guard let der = PEM.decode(pem, label: "PRIVATE KEY"), der.count == 48,
                Array(der.prefix(16)) == PEM.ed25519PrivatePrefix
            else { throw Error(message: "\(privateURL.path) is not an Ed25519 private key in PKCS#8 PEM") }
            key = SigningKey(privateKey: try Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32)))
        } else {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let created = Curve25519.Signing.PrivateKey()
            let pem = PEM.encode(PEM.ed25519PrivatePrefix + Array(created.rawRepresentation), label: "PRIVATE KEY")
            let temporary = directory.appendingPathComponent(".\(privateKeyFile).\(UUID().uuidString).tmp")
            // Created with 0600 from the start: never a moment when the key is world-readable.
            let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard fd >= 0 else { throw Error(message: "cannot create \(temporary.path): \(String(cString: strerror(errno)))") }
            let bytes = Array(pem.utf8)
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            fsync(fd)
            close(fd)
            guard written == bytes.count else {
                unlink(temporary.path)
                throw Error(message: "cannot write \(temporary.path)")
            }
            // link() fails if another process created the key meanwhile: then use theirs.
            if link(temporary.path, privateURL.path) != 0 {
                unlink(temporary.path)
                return try loadOrCreate(in: directory)
            }
            unlink(temporary.path)
            let dirFD = open(directory.path, O_RDONLY)
            if dirFD >= 0 {
                fsync(dirFD)
                close(dirFD)
            }
            key = SigningKey(privateKey: created)
        }
        let publicURL = directory.appendingPathComponent(publicKeyFile)
        if (try? String(contentsOf: publicURL, encoding: .utf8)) != key.publicKeyPEM {
            try key.publicKeyPEM.write(to: publicURL, atomically: true, encoding: .utf8)
        }
        return key
    }

    /// The public key as SubjectPublicKeyInfo PEM (what `openssl pkeyutl -verify -pubin` reads).
    public var publicKeyPEM: String { PEM.encode(PEM.ed25519PublicPrefix + Array(publicKey.rawRepresentation), label: "PUBLIC KEY") }

    /// SHA-256 (hex) of the DER public key: `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum`.
    public var fingerprint: String { Self.fingerprint(of: publicKey) }

    public static func fingerprint(of key: Curve25519.Signing.PublicKey) -> String {
        SHA256.hash(data: PEM.ed25519PublicPrefix + Array(key.rawRepresentation)).hex
    }

    public func sign(_ message: [UInt8]) throws -> String {
        Data(try privateKey.signature(for: message)).base64EncodedString()
    }

    /// Loads a public key from SubjectPublicKeyInfo PEM.
    public static func publicKey(pem: String) -> Curve25519.Signing.PublicKey? {
        guard let der = PEM.decode(pem, label: "PUBLIC KEY"), der.count == 44, Array(der.prefix(12)) == PEM.ed25519PublicPrefix else {
            return nil
        }
        return try? Curve25519.Signing.PublicKey(rawRepresentation: der.suffix(32))
    }
}

enum PEM {
    /// DER prefixes of Ed25519 keys (RFC 8410): PKCS#8 private key and SPKI public key.
    static let ed25519PrivatePrefix: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
    static let ed25519PublicPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]

    static func encode(_ der: [UInt8], label: String) -> String {
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

    static func decode(_ pem: String, label: String) -> [UInt8]? {
        guard let begin = pem.range(of: "-----BEGIN \(label)-----"), let end = pem.range(of: "-----END \(label)-----") else { return nil }
        let body = pem[begin.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
        return Data(base64Encoded: String(body)).map(Array.init)
    }
}
