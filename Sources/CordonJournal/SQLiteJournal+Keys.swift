import CordonCore
import Foundation
import GRDB

/// The journal's keys (schema 5, table `keys`): the public key of each root key that signs
/// it (the first, and each one a rotation brought in), and of each session key a KMS key
/// certified. The table is not part of the chain: what makes a key trustworthy is checked
/// by `cordon journal verify` from signatures (a session key's certificate, a rotation
/// record signed by both keys) and from the fingerprints it is told to expect.
extension SQLiteJournal {
    /// A key as the `keys` table holds it.
    public struct KeyEntry: Sendable, Equatable {
        public enum Role: String, Sendable { case root, session }
        public var fingerprint: String
        public var publicKey: JournalPublicKey
        public var role: Role
        /// The first seq it may sign: a root from its rotation (1 for the first root), a
        /// session key from its opening.
        public var fromSeq: Int64
        /// A session key's certifying root and that root's signature (base64) over
        /// `sessionStatement`.
        public var certifiedBy: String?
        public var certificate: String?
        public var time: String
    }

    /// What a root key signs to certify a session key.
    public static func sessionStatement(session: String, root: String, fromSeq: Int64) -> [UInt8] {
        Array("cordon-session-key:v1:\(session):\(root):\(fromSeq)".utf8)
    }

    /// What both keys of a rotation sign: the old key, the new one, and the journal's head
    /// (seq and hash) when it rotated.
    public static func rotationStatement(old: String, new: String, seq: Int64, hash: String) -> [UInt8] {
        Array("cordon-key-rotation:v1:\(old):\(new):\(seq):\(hash)".utf8)
    }

    /// The root key that signs the journal now, and the seq from which it does: the key of
    /// the newest rotation, else the first root, else (a journal written before keys were
    /// recorded) the key of the newest checkpoint; nil for a journal nothing signed yet.
    static func currentRoot(_ db: Database) throws -> (fingerprint: String, fromSeq: Int64)? {
        // A rotation whose key row was not written (a crash between the two) still counts.
        if let rotated = try rotatedRoot(db) { return rotated }
        if let row = try Row.fetchOne(db, sql: "SELECT fingerprint, from_seq FROM keys WHERE role = 'root' ORDER BY from_seq DESC LIMIT 1"),
            let fingerprint = row[0] as String?
        {
            return (fingerprint, (row[1] as Int64?) ?? 1)
        }
        if let fingerprint = try String.fetchOne(db, sql: "SELECT key FROM checkpoints ORDER BY seq DESC LIMIT 1") {
            return (fingerprint, 1)
        }
        return nil
    }

    /// The keys the table holds; a row with a value missing or of the wrong type (the
    /// table edited by hand) is left out, never trusted and never a crash.
    /// The newest rotation's new key (from its claim and record) and the seq it signs
    /// from.
    static func rotatedRoot(_ db: Database) throws -> (fingerprint: String, fromSeq: Int64)? {
        guard
            let seq = try Int64.fetchOne(db, sql: "SELECT seq FROM claims WHERE claim LIKE 'key-rotation:%' ORDER BY seq DESC LIMIT 1"),
            let canonical = try Data.fetchOne(db, sql: "SELECT canonical FROM records WHERE seq = ?", arguments: [seq]),
            let record = try? JSONParser.parse(Array(canonical)), let new = record["data"]?["new"]?.stringValue,
            let head = record["data"]?["seq"]?.numberValue?.intValue
        else { return nil }
        return (new, Int64(head) + 1)
    }

    static func keyEntries(_ db: Database) throws -> [KeyEntry] {
        try Row.fetchAll(db, sql: "SELECT * FROM keys ORDER BY from_seq, fingerprint").compactMap { row in
            guard let der = row["public_key"] as Data?, let algorithmName = row["algorithm"] as String?,
                let algorithm = SignatureAlgorithm(rawValue: algorithmName), let roleName = row["role"] as String?,
                let role = KeyEntry.Role(rawValue: roleName), let fingerprint = row["fingerprint"] as String?,
                let fromSeq = row["from_seq"] as Int64?, let key = try? JournalPublicKey(algorithm: algorithm, der: Array(der))
            else { return nil }
            return KeyEntry(
                fingerprint: fingerprint, publicKey: key, role: role, fromSeq: fromSeq, certifiedBy: row["certified_by"] as String?,
                certificate: row["certificate"] as String?, time: (row["time"] as String?) ?? "")
        }
    }

    static func insertKey(_ entry: KeyEntry, db: Database) throws {
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO keys (fingerprint, algorithm, public_key, role, from_seq, certified_by, certificate, time)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                entry.fingerprint, entry.publicKey.algorithm.rawValue, Data(entry.publicKey.der), entry.role.rawValue, entry.fromSeq,
                entry.certifiedBy, entry.certificate, entry.time,
            ])
    }

    /// Makes `root` the journal's root key if nothing signed it yet, or checks that it is
    /// the key that signs it now (in one transaction, so that two processes opening a new
    /// journal with different keys cannot both succeed).
    static func adoptRoot(_ root: JournalPublicKey, source: String, db: Database) throws {
        if let current = try currentRoot(db) {
            guard current.fingerprint == root.fingerprint else {
                throw CordonError(
                    .conflict,
                    """
                        this journal is signed by key \(current.fingerprint)\(current.fromSeq > 1 ? " (since seq \(current.fromSeq))" : ""), \
                        not by the signing key given (\(source), \(root.fingerprint)). Give the key that signs it (--signing-key), \
                        or move to the new key with: cordon journal rotate-key --new-key SPEC
                        """)
            }
            // A journal signed before keys were recorded: record the key it was signed with.
            if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM keys WHERE fingerprint = ?", arguments: [root.fingerprint]) == 0 {
                try insertKey(KeyEntry(fingerprint: root.fingerprint, publicKey: root, role: .root, fromSeq: 1, time: Timestamp.string(Date())), db: db)
            }
            return
        }
        try insertKey(KeyEntry(fingerprint: root.fingerprint, publicKey: root, role: .root, fromSeq: 1, time: Timestamp.string(Date())), db: db)
    }

    /// Whether a journal under `directory` has checkpoints (read-only; false without a
    /// journal): a data directory whose key file is gone must not make a new one then.
    public static func hasCheckpoints(_ directory: DataDirectory) throws -> Bool {
        guard FileManager.default.fileExists(atPath: directory.journal.path) else { return false }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(30)
        let queue = try DatabaseQueue(path: directory.journal.path, configuration: configuration)
        return try queue.read { db in
            try db.tableExists("checkpoints") && Int.fetchOne(db, sql: "SELECT COUNT(*) FROM checkpoints") ?? 0 > 0
        }
    }

    /// The data directory's own key (`keys/journal-ed25519.pem`), generated if the
    /// directory has none and its journal was never signed; `generated` says that it was.
    /// A key file missing from a journal that has checkpoints is an error: a new key would
    /// sign a history the old one vouched for.
    public static func dataDirectoryKey(_ directory: DataDirectory) throws -> (key: SigningKey, generated: Bool) {
        let file = directory.keys.appendingPathComponent(SigningKey.privateKeyFile)
        let publicFile = directory.keys.appendingPathComponent(SigningKey.publicKeyFile)
        if FileManager.default.fileExists(atPath: file.path) {
            let key = try SigningKey(file: file)
            try key.writePublicKey(to: publicFile)
            return (key, false)
        }
        if try hasCheckpoints(directory) {
            throw CordonError(
                .notFound,
                """
                    the journal in \(directory.url.path) has signed checkpoints, but its private key \(file.path) is missing. \
                    Cordon will not make a new key for a signed journal: restore the key, give it with --signing-key, \
                    or, if it is lost, move to a new key with: cordon journal rotate-key --new-key SPEC --without-old-key
                    """)
        }
        guard let key = try SigningKey.generate(at: file) else { return try dataDirectoryKey(directory) }
        try key.writePublicKey(to: publicFile)
        return (key, true)
    }

    /// Has `root` certify this journal's session key (what signs its checkpoints), valid
    /// for heads from the journal's head now (a crashed process's unsigned tail is signed
    /// by the next opening), and records the certificate; then signs a checkpoint with it.
    /// For a root that signs over the network (a KMS key): one signature per opening.
    public func certifySession(by root: any JournalSigner) async throws {
        guard let key else { throw Error(message: "the journal was opened without a signing key") }
        let fromSeq = try await pool.read { db in try Self.head(db).seq }
        let statement = Self.sessionStatement(session: key.fingerprint, root: root.fingerprint, fromSeq: fromSeq)
        let signature: [UInt8]
        do {
            signature = try await root.sign(statement)
        } catch {
            throw Error(message: "cannot certify the journal's session key with \(root.source): \(error)")
        }
        guard let publicKey = root.publicKey, publicKey.isValidSignature(signature, for: statement) else {
            throw Error(message: "\(root.source) answered a signature that its own public key does not verify")
        }
        guard let sessionKey = key.publicKey else { throw Error(message: "the session key is not a valid Ed25519 key") }
        let entry = KeyEntry(
            fingerprint: key.fingerprint, publicKey: sessionKey, role: .session, fromSeq: fromSeq, certifiedBy: root.fingerprint,
            certificate: Data(signature).base64EncodedString(), time: Timestamp.string(Date()))
        try await pool.write { db in
            try Self.adoptRoot(publicKey, source: root.source, db: db)
            try Self.insertKey(entry, db: db)
        }
        try await checkpoint()
    }

    /// The keys the journal records.
    public func keyEntries() async throws -> [KeyEntry] {
        try await pool.read { db in try db.tableExists("keys") ? Self.keyEntries(db) : [] }
    }
}

extension SQLiteJournal {
    /// What `rotateKey` did.
    public struct Rotation: Sendable {
        public var seq: Int64
        public var old: String
        public var new: String
    }

    /// Moves the journal to a new root key: appends a `journal.key-rotated` record signed
    /// by the old key (nil when it is lost) and the new one over the journal's head, then
    /// signs with the new key. From the record's seq on, only the new key (or a session
    /// key it certifies) may sign; the old key's checkpoints before it stay valid.
    public static func rotateKey(
        directory: DataDirectory, secrets: SecretStore? = nil, old: (any JournalSigner)?, new: any JournalSigner, actor: String
    ) async throws -> Rotation {
        // Opened without a key: nothing is signed until the rotation is written.
        let journal = try SQLiteJournal(
            directory: directory, secrets: secrets, key: nil, adopting: nil, checkpointEvery: .max, checkpointInterval: .seconds(60), readOnly: false)
        let (current, head) = try await journal.pool.read { db in (try Self.currentRoot(db), try Self.head(db)) }
        guard let current else {
            throw Error(message: "nothing to rotate: the journal was never signed (give the new key with --signing-key instead)")
        }
        if let old, old.fingerprint != current.fingerprint {
            throw Error(message: "the journal is signed by key \(current.fingerprint), not by the old key given (\(old.source), \(old.fingerprint))")
        }
        guard new.fingerprint != current.fingerprint else { throw Error(message: "the new key is the key that signs the journal already") }
        guard let newKey = new.publicKey else { throw Error(message: "\(new.source) does not hold a usable public key") }
        let statement = rotationStatement(old: current.fingerprint, new: new.fingerprint, seq: head.seq, hash: head.hash)
        let newSignature = try await new.sign(statement)
        let oldSignature = try await old?.sign(statement)
        guard newKey.isValidSignature(newSignature, for: statement),
            oldSignature.map({ old?.publicKey?.isValidSignature($0, for: statement) == true }) ?? true
        else { throw Error(message: "a key answered a signature that its own public key does not verify") }
        var signatures: JSONObject = ["new": .string(Data(newSignature).base64EncodedString())]
        if let oldSignature { signatures["old"] = .string(Data(oldSignature).base64EncodedString()) }
        var record = NewRecord(
            kind: .keyRotated, actor: actor,
            data: [
                "old": .string(current.fingerprint), "new": .string(new.fingerprint), "algorithm": .string(new.algorithm.rawValue),
                "public_key": .string(Data(newKey.der).base64EncodedString()), "seq": .number(JSONNumber(Int(head.seq))),
                "hash": .string(head.hash), "signatures": .object(signatures), "old_key_lost": .bool(old == nil),
            ])
        record.claim = "key-rotation:\(current.fingerprint)"
        let written: [JournalRecord]
        do {
            written = try await journal.append([record])
        } catch let conflict as JournalClaimConflict {
            throw Error(message: "key \(current.fingerprint) was rotated already, at seq \(conflict.existing.seq)")
        }
        let seq = written.first?.seq ?? head.seq + 1
        try await journal.pool.write { db in
            try Self.insertKey(KeyEntry(fingerprint: new.fingerprint, publicKey: newKey, role: .root, fromSeq: seq, time: Timestamp.string(Date())), db: db)
        }
        try await journal.close()
        let signed = try await open(directory: directory, secrets: secrets, signer: new)
        try await signed.checkpoint()
        try await signed.close()
        return Rotation(seq: seq, old: current.fingerprint, new: new.fingerprint)
    }
}
