import CordonCore
import Crypto
import Foundation

/// An Ed25519 key that signs the journal's checkpoints in the writer's own transaction:
/// a key file (`--signing-key FILE`, or the one a fresh data directory generates), or a
/// session key that lives only in memory and that a KMS key certifies.
///
/// A key file is PKCS#8 PEM; Cordon refuses one that anyone but its owner can read.
public struct SigningKey: JournalSigner {
    public let privateKey: Curve25519.Signing.PrivateKey
    public var publicKeyRaw: Curve25519.Signing.PublicKey { privateKey.publicKey }
    /// The key file, or `session` for a key only this process holds.
    public let source: String

    public var algorithm: SignatureAlgorithm { .ed25519 }
    public var isRemote: Bool { false }
    public var publicKeyDER: [UInt8] { JournalPublicKey.ed25519Prefix + Array(privateKey.publicKey.rawRepresentation) }

    public struct Error: Swift.Error, Sendable, CustomStringConvertible, CordonErrorConvertible {
        public var message: String
        public var description: String { message }
        public var cordonError: CordonError { CordonError(.invalidInput, message) }
    }

    /// Where a data directory keeps the key it generated (`keys/`).
    public static let privateKeyFile = "journal-ed25519.pem"
    public static let publicKeyFile = "journal-ed25519.pub.pem"
    /// DER prefix of an Ed25519 PKCS#8 private key (RFC 8410), before the 32 key bytes.
    static let ed25519PrivatePrefix: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]

    init(privateKey: Curve25519.Signing.PrivateKey, source: String) {
        self.privateKey = privateKey
        self.source = source
    }

    /// A key only this process holds (a KMS key's session key).
    public static func session() -> SigningKey { SigningKey(privateKey: Curve25519.Signing.PrivateKey(), source: "session") }

    /// Reads a key file. It must be a regular file that only its owner can read (mode
    /// 0600 or stricter): a key others can read proves nothing about who signed.
    public init(file url: URL) throws {
        var info = stat()
        guard lstat(url.path, &info) == 0 else {
            throw Error(message: "signing key \(url.path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw Error(message: "signing key \(url.path) is not a regular file (a symbolic link or a directory is refused)")
        }
        let mode = Int(info.st_mode & 0o777)
        guard mode & 0o077 == 0 else {
            throw Error(
                message: "signing key \(url.path) is readable by others (mode \(String(mode, radix: 8))); "
                    + "Cordon refuses to sign with it. Fix it with: chmod 600 \(url.path)")
        }
        guard let size = Int(exactly: info.st_size), size <= 4096, let pem = try? String(contentsOf: url, encoding: .utf8),
            let der = PEMText.decode(pem, label: "PRIVATE KEY"), der.count == 48, Array(der.prefix(16)) == Self.ed25519PrivatePrefix,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
        else {
            throw Error(
                message: "signing key \(url.path) is not an Ed25519 private key in PKCS#8 PEM "
                    + "(make one with: openssl genpkey -algorithm ed25519 -out KEY.pem && chmod 600 KEY.pem)")
        }
        self.init(privateKey: key, source: url.path)
    }

    /// Writes a new key to `url` (its directory made with mode 0700 if missing), created
    /// with mode 0600 from the start, fsynced and linked into place, so that a crash never
    /// leaves a partial key; answers nil when a key was there already (another process
    /// made it first, or it was never missing).
    public static func generate(at url: URL) throws -> SigningKey? {
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let created = Curve25519.Signing.PrivateKey()
        let pem = PEMText.encode(ed25519PrivatePrefix + Array(created.rawRepresentation), label: "PRIVATE KEY")
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw Error(message: "cannot create \(temporary.path): \(String(cString: strerror(errno)))") }
        let bytes = Array(pem.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        defer { unlink(temporary.path) }
        guard written == bytes.count else { throw Error(message: "cannot write \(temporary.path)") }
        // link() fails if the key exists: never replace a key. Any other failure is an
        // error (a file system without hard links, say), not "someone made it first".
        guard link(temporary.path, url.path) == 0 else {
            if errno == EEXIST { return nil }
            throw Error(message: "cannot create \(url.path): \(String(cString: strerror(errno)))")
        }
        let dirFD = open(directory.path, O_RDONLY)
        if dirFD >= 0 {
            fsync(dirFD)
            close(dirFD)
        }
        return SigningKey(privateKey: created, source: url.path)
    }

    /// The public key as SubjectPublicKeyInfo PEM (what `openssl pkeyutl -verify -pubin` reads).
    public var publicKeyPEM: String { PEMText.encode(publicKeyDER, label: "PUBLIC KEY") }

    /// Writes the public key beside a key file (`keys/journal-ed25519.pub.pem`) when it is
    /// missing or does not match, for tools that read it there.
    public func writePublicKey(to url: URL) throws {
        if (try? String(contentsOf: url, encoding: .utf8)) != publicKeyPEM {
            try publicKeyPEM.write(to: url, atomically: true, encoding: .utf8)
        }
    }

    /// Signs in the caller's thread (the journal's writer signs in its transaction).
    public func signNow(_ message: [UInt8]) throws -> String {
        Data(try privateKey.signature(for: message)).base64EncodedString()
    }

    public func sign(_ message: [UInt8]) async throws -> [UInt8] {
        Array(try privateKey.signature(for: message))
    }
}
