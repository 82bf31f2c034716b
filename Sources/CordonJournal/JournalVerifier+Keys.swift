import CordonCore
import Foundation
import GRDB

/// A `journal.key-rotated` record: the journal's root key changes from `old` to `new` at
/// the record's seq; both keys signed `SQLiteJournal.rotationStatement` over the head
/// (`seq`, `hash`) before it, or only the new one when the old key was lost.
struct KeyRotation: Sendable {
    var recordSeq: Int64
    var old: String
    var new: String
    var newKey: JournalPublicKey?
    var seq: Int64
    var hash: String
    var oldSignature: [UInt8]?
    var newSignature: [UInt8]?

    init?(seq recordSeq: Int64, data: JSONValue) {
        guard let old = data["old"]?.stringValue, let new = data["new"]?.stringValue, let seq = data["seq"]?.numberValue?.intValue,
            let hash = data["hash"]?.stringValue
        else { return nil }
        self.recordSeq = recordSeq
        self.old = old
        self.new = new
        self.seq = Int64(seq)
        self.hash = hash
        if let algorithm = data["algorithm"]?.stringValue.flatMap(SignatureAlgorithm.init(rawValue:)),
            let der = data["public_key"]?.stringValue.flatMap({ Data(base64Encoded: $0) })
        {
            newKey = try? JournalPublicKey(algorithm: algorithm, der: Array(der))
        }
        oldSignature = data["signatures"]?["old"]?.stringValue.flatMap { Data(base64Encoded: $0) }.map(Array.init)
        newSignature = data["signatures"]?["new"]?.stringValue.flatMap { Data(base64Encoded: $0) }.map(Array.init)
    }

    var statement: [UInt8] { SQLiteJournal.rotationStatement(old: old, new: new, seq: seq, hash: hash) }
}

/// Which keys may sign which part of the journal, and which of them the verifier trusts:
/// built from the `keys` table, the rotation records and the fingerprints the auditor
/// expects.
struct KeyHistory: Sendable {
    /// Public keys by fingerprint (roots and sessions).
    var keys: [String: SQLiteJournal.KeyEntry] = [:]
    /// Root keys in the order they signed: (from seq, fingerprint).
    var epochs: [(from: Int64, root: String)] = []
    var rotations: [KeyRotation] = []
    /// Roots the auditor expects (`--expect-key`) and those linked to them by rotations
    /// both keys signed; when nothing is expected, every root the history reaches.
    var trusted: Set<String> = []
    let expected: Set<String>

    init(expected: Set<String>) { self.expected = expected }

    /// The root key that signs the journal at `seq`.
    func root(at seq: Int64) -> String? { epochs.last { $0.from <= seq }?.root }

    /// Reads the keys and rotation records; `legacyKey` is the public key file of a data
    /// directory whose journal was signed before keys were recorded.
    static func read(_ db: Database, legacyKey: JournalPublicKey?, expected: Set<String>, report: inout VerificationReport) throws -> KeyHistory {
        var history = KeyHistory(expected: expected)
        if try db.tableExists("keys") {
            for entry in try SQLiteJournal.keyEntries(db) {
                // The table is not part of the chain: a public key that is not the one its
                // fingerprint names was put there by hand.
                guard entry.publicKey.fingerprint == entry.fingerprint else {
                    report.fail(nil, "the journal's keys table gives key \(entry.fingerprint) a public key with another fingerprint (altered)")
                    continue
                }
                history.keys[entry.fingerprint] = entry
            }
        }
        // The data directory's public key file stands for the journal's key only for a
        // journal signed before keys were recorded: once `keys` records a root, the file
        // (which anyone with the host can replace) says nothing.
        if let legacyKey, !history.keys.values.contains(where: { $0.role == .root }) {
            history.keys[legacyKey.fingerprint] = SQLiteJournal.KeyEntry(
                fingerprint: legacyKey.fingerprint, publicKey: legacyKey, role: .root, fromSeq: 1, time: "")
        }
        for row in try Row.fetchAll(db, sql: "SELECT seq, canonical FROM records WHERE kind = ? ORDER BY seq", arguments: [RecordKind.keyRotated.rawValue]) {
            let seq = (row[0] as Int64?) ?? 0
            guard let canonical = row[1] as Data?, let record = try? JSONParser.parse(Array(canonical)), let rotation = KeyRotation(seq: seq, data: record["data"] ?? .null) else {
                report.fail(seq, "a key rotation record without old, new, seq and hash")
                continue
            }
            history.rotations.append(rotation)
        }
        // The first root: the one recorded from seq 1, else the data directory's file,
        // else the key of the first checkpoint (or of the session that signed it).
        let firstCheckpointKey = try String.fetchOne(db, sql: "SELECT key FROM checkpoints ORDER BY seq LIMIT 1")
        let recordedFirst = history.keys.values.filter { $0.role == .root && $0.fromSeq <= 1 }.map(\.fingerprint).sorted()
        let first =
            history.rotations.first?.old ?? recordedFirst.first ?? legacyKey?.fingerprint
            ?? firstCheckpointKey.map { history.keys[$0]?.certifiedBy ?? $0 }
        if let first { history.epochs = [(1, first)] }
        return history
    }

    /// Checks each rotation against the root before it, its signatures and the chain's
    /// hash at the head it names (`hashes`), and works out which roots are trusted.
    mutating func checkRotations(hashes: [Int64: String], report: inout VerificationReport) {
        var links: [(String, String)] = []
        for rotation in rotations {
            let at = rotation.recordSeq
            // The old key vouches for the chain up to the head both keys signed, no further:
            // the new key's epoch starts after it, wherever the record itself landed.
            guard let current = root(at: rotation.seq) else { continue }
            guard rotation.old == current else {
                report.fail(at, "a key rotation from \(rotation.old), but the journal's key at this seq is \(current)")
                continue
            }
            guard let newKey = rotation.newKey, newKey.fingerprint == rotation.new else {
                report.fail(at, "the key rotation's new public key is missing or does not have fingerprint \(rotation.new)")
                continue
            }
            guard rotation.newSignature.map({ newKey.isValidSignature($0, for: rotation.statement) }) == true else {
                report.fail(at, "the key rotation is not signed by its new key \(rotation.new)")
                continue
            }
            guard rotation.seq < at, hashes[rotation.seq] == rotation.hash else {
                report.fail(at, "the key rotation vouches for the chain up to seq \(rotation.seq), and the records up to there differ from it (altered)")
                continue
            }
            if let signature = rotation.oldSignature {
                guard keys[rotation.old]?.publicKey.isValidSignature(signature, for: rotation.statement) == true else {
                    report.fail(at, "the key rotation's signature by the old key \(rotation.old) is invalid")
                    continue
                }
                links.append((rotation.old, rotation.new))
            } else {
                report.notes.append("seq \(at): the key was rotated to \(rotation.new) without the old key's signature (it was lost)")
            }
            keys[rotation.new] = SQLiteJournal.KeyEntry(fingerprint: rotation.new, publicKey: newKey, role: .root, fromSeq: rotation.seq + 1, time: "")
            epochs.append((rotation.seq + 1, rotation.new))
        }
        trusted = expected.isEmpty ? Set(epochs.map(\.root)) : expected
        var grew = true
        while grew {
            grew = false
            for (a, b) in links where trusted.contains(a) != trusted.contains(b) {
                trusted.formUnion([a, b])
                grew = true
            }
        }
    }

    /// Whether `checkpoint` is signed by a key allowed to sign the journal at its seq
    /// (a root of that epoch, or a session key it certified for that seq onwards), that
    /// the auditor trusts; a problem is reported otherwise.
    func check(_ checkpoint: Checkpoint, report: inout VerificationReport) -> Bool {
        let seq = checkpoint.seq
        guard let entry = keys[checkpoint.keyFingerprint] else {
            report.fail(seq, "checkpoint signed by key \(checkpoint.keyFingerprint), which the journal does not record (no public key to check it with)")
            return false
        }
        guard let signature = Data(base64Encoded: checkpoint.signature),
            entry.publicKey.isValidSignature(Array(signature), for: Checkpoint.message(seq: seq, hash: checkpoint.hash))
        else {
            report.fail(seq, "checkpoint signature is invalid (forged, or not made with key \(checkpoint.keyFingerprint))")
            return false
        }
        var root = entry.fingerprint
        if entry.role == .session {
            guard let by = entry.certifiedBy, let rootKey = keys[by], let certificate = entry.certificate.flatMap({ Data(base64Encoded: $0) }),
                rootKey.publicKey.isValidSignature(
                    Array(certificate), for: SQLiteJournal.sessionStatement(session: entry.fingerprint, root: by, fromSeq: entry.fromSeq))
            else {
                report.fail(seq, "checkpoint signed by session key \(entry.fingerprint), whose certificate is missing or invalid")
                return false
            }
            guard seq >= entry.fromSeq else {
                report.fail(seq, "checkpoint signed by session key \(entry.fingerprint), which was certified only from seq \(entry.fromSeq)")
                return false
            }
            root = by
        }
        if let expectedRoot = self.root(at: seq), root != expectedRoot {
            report.fail(seq, "checkpoint signed under key \(root), but the journal's key at this seq is \(expectedRoot) (no valid rotation between them)")
            return false
        }
        guard trusted.contains(root) else {
            report.fail(seq, "checkpoint signed by key \(root), which is not an expected key (--expect-key) nor linked to one by a rotation both keys signed")
            return false
        }
        return true
    }
}

extension JournalVerifier {
    /// Compares the journal with what each witness saw: a witnessed head beyond the
    /// journal's end is truncation (or a rollback to an earlier copy); one whose hash
    /// differs from the chain's at its seq is a rewrite; a newest witnessed head after the
    /// journal's newest checkpoint means checkpoints were removed. A head whose signature
    /// does not verify under the journal's keys was not written by it.
    func checkWitnesses(history: KeyHistory, hashes: [Int64: String], newestCheckpoint: Int64, report: inout VerificationReport) {
        for view in witnesses {
            for seq in view.badProofs {
                report.fail(seq, "witness \(view.witness)'s receipt for seq \(seq) does not prove the head it names (its token does not verify)")
            }
            guard let newest = view.heads.max(by: { $0.seq < $1.seq }) else {
                report.fail(nil, "witness \(view.witness) holds no checkpoint head: nothing to compare the journal with (is it the right witness?)")
                continue
            }
            for head in view.heads {
                guard let key = history.keys[head.keyFingerprint], let signature = Data(base64Encoded: head.signature),
                    key.publicKey.isValidSignature(Array(signature), for: Checkpoint.message(seq: head.seq, hash: head.hash))
                else {
                    report.fail(head.seq, "witness \(view.witness) holds a head for seq \(head.seq) whose signature does not verify under the journal's keys")
                    continue
                }
                if head.seq <= report.lastSeq, let actual = hashes[head.seq], actual != head.hash {
                    report.fail(head.seq, "rewritten: the record at seq \(head.seq) differs from the head witness \(view.witness) saw signed at \(head.time)")
                }
            }
            if newest.seq > report.lastSeq {
                report.fail(
                    report.lastSeq + 1,
                    "truncated: the journal ends at seq \(report.lastSeq), but witness \(view.witness) saw it signed up to seq \(newest.seq) at \(newest.time): "
                        + "records \(report.lastSeq + 1)–\(newest.seq) were removed (cut short, or replaced by an earlier copy)")
            } else if newest.seq > newestCheckpoint {
                report.fail(
                    newestCheckpoint + 1,
                    "checkpoints removed: the journal's newest checkpoint is at seq \(newestCheckpoint), but witness \(view.witness) saw seq \(newest.seq) signed at \(newest.time)")
            }
            report.witnessed.append((view.witness, newest.seq, newest.time))
        }
    }
}
