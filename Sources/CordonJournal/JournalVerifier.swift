import CordonCore
import Crypto
import Foundation
import GRDB

/// What `cordon journal verify` found.
public struct VerificationReport: Sendable {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public var seq: Int64?
        public var message: String
        public var description: String { seq.map { "seq \($0): \(message)" } ?? message }
    }

    public var records = 0
    public var checkpoints = 0
    public var evidenceFiles = 0
    public var problems: [Problem] = []
    /// Records after the last checkpoint: not covered by any signature.
    public var unsignedTail: (from: Int64, count: Int)? = nil
    public var lastSeq: Int64 = 0

    /// The first record that is wrong (by seq), if any.
    public var firstBadSeq: Int64? { problems.compactMap(\.seq).min() }
    public var isValid: Bool { problems.isEmpty && unsignedTail == nil }

    mutating func fail(_ seq: Int64?, _ message: String) {
        if problems.count < 1000 { problems.append(Problem(seq: seq, message: message)) }
    }
}

/// Checks every hash, link, checkpoint signature and evidence file of a journal.
public struct JournalVerifier: Sendable {
    public let directory: DataDirectory

    public init(directory: DataDirectory) { self.directory = directory }

    public func verify() throws -> VerificationReport {
        guard FileManager.default.fileExists(atPath: directory.journal.path) else {
            throw SQLiteJournal.Error(message: "no journal at \(directory.journal.path) (is --data-dir right?)")
        }
        let publicKeyURL = directory.keys.appendingPathComponent(SigningKey.publicKeyFile)
        guard let pem = try? String(contentsOf: publicKeyURL, encoding: .utf8), let publicKey = SigningKey.publicKey(pem: pem) else {
            throw SQLiteJournal.Error(message: "cannot read the journal's public key \(publicKeyURL.path)")
        }
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: directory.journal.path, configuration: configuration)
        var report = VerificationReport()
        var chain = ChainChecker()
        try queue.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT seq, time, incident, kind, canonical, hash FROM records ORDER BY seq")
            while let row = try rows.next() {
                let canonical: Data = row["canonical"]
                chain.check(
                    seq: row["seq"], canonical: canonical, storedHash: row["hash"],
                    columns: (row["time"], row["incident"], row["kind"]), report: &report)
            }
            // Checkpoints: each must sign the chain's hash at its seq, with our key.
            let fingerprint = SigningKey.fingerprint(of: publicKey)
            var lastSigned: Int64 = 0
            for row in try Row.fetchAll(db, sql: "SELECT * FROM checkpoints ORDER BY seq") {
                let checkpoint = SQLiteJournal.checkpoint(row)
                report.checkpoints += 1
                checkCheckpoint(checkpoint, publicKey: publicKey, fingerprint: fingerprint, hashes: chain.hashes, report: &report)
                lastSigned = max(lastSigned, checkpoint.seq)
            }
            if report.lastSeq > lastSigned {
                report.unsignedTail = (lastSigned + 1, Int(report.lastSeq - lastSigned))
            }
            // Evidence: every file the journal recorded must be there and match its hash.
            let store = EvidenceStore(directory: directory.evidence)
            var known: Set<String> = []
            for row in try Row.fetchAll(db, sql: "SELECT hash, size, first_seq FROM evidence ORDER BY first_seq") {
                let hash: String = row["hash"]
                known.insert(hash)
                report.evidenceFiles += 1
                if let problem = store.check(hash, size: row["size"]) { report.fail(row["first_seq"], problem) }
            }
            for (seq, hash) in chain.evidenceReferences where !known.contains(hash) {
                report.fail(seq, "refers to evidence \(hash) that the journal does not list")
            }
        }
        report.problems.sort { ($0.seq ?? .max, $0.message) < ($1.seq ?? .max, $1.message) }
        return report
    }

    func checkCheckpoint(
        _ checkpoint: Checkpoint, publicKey: Curve25519.Signing.PublicKey, fingerprint: String, hashes: [Int64: String],
        report: inout VerificationReport
    ) {
        if checkpoint.keyFingerprint != fingerprint {
            report.fail(checkpoint.seq, "checkpoint signed with another key (\(checkpoint.keyFingerprint), expected \(fingerprint))")
        }
        guard let signature = Data(base64Encoded: checkpoint.signature),
            publicKey.isValidSignature(signature, for: Checkpoint.message(seq: checkpoint.seq, hash: checkpoint.hash))
        else {
            report.fail(checkpoint.seq, "checkpoint signature is invalid (forged, or not made with the journal's key)")
            return
        }
        guard let actual = hashes[checkpoint.seq] else {
            report.fail(checkpoint.seq, "a signed checkpoint covers seq \(checkpoint.seq), but that record is missing (truncated or deleted)")
            return
        }
        if actual != checkpoint.hash {
            report.fail(checkpoint.seq, "the chain's hash at this seq differs from the signed checkpoint: records up to here were altered")
        }
    }
}

/// Walks records in order: contiguous seqs, content matching its hash, each `prev` equal
/// to the previous record's hash, indexed columns matching the record.
struct ChainChecker {
    var expectedSeq: Int64 = 1
    var prev = JournalRecord.genesis
    /// The recomputed hash at each seq.
    var hashes: [Int64: String] = [:]
    var evidenceReferences: [(Int64, String)] = []

    mutating func check(
        seq: Int64, canonical: Data, storedHash: String, columns: (time: String, incident: String?, kind: String)?,
        report: inout VerificationReport
    ) {
        report.records += 1
        report.lastSeq = max(report.lastSeq, seq)
        if seq != expectedSeq {
            if seq > expectedSeq {
                report.fail(expectedSeq, "record\(seq - expectedSeq > 1 ? "s \(expectedSeq)–\(seq - 1) are" : " is") missing (deleted)")
            } else {
                report.fail(seq, "out of order after seq \(expectedSeq - 1)")
            }
        }
        expectedSeq = seq + 1
        let hash = SHA256.hash(data: canonical).hex
        hashes[seq] = hash
        if hash != storedHash {
            report.fail(seq, "content does not match its hash (the record was altered)")
        }
        guard let value = try? JSONParser.parse(Array(canonical)), case .object(let o) = value else {
            report.fail(seq, "the record is not valid JSON")
            prev = hash
            return
        }
        if o["seq"]?.numberValue?.intValue.map(Int64.init) != seq {
            report.fail(seq, "the record says seq \(o["seq"].map(JSONWriter.string) ?? "nothing"): records were moved or swapped")
        }
        if o["prev"]?.stringValue != prev {
            report.fail(seq, "does not link to the record before it (inserted, deleted or reordered records)")
        }
        if let columns,
            o["time"]?.stringValue != columns.time || o["incident"]?.stringValue != columns.incident || o["kind"]?.stringValue != columns.kind
        {
            report.fail(seq, "the indexed columns (time, incident, kind) disagree with the record")
        }
        for ref in o["data"]?["evidence"]?.arrayValue ?? [] {
            if let h = ref["sha256"]?.stringValue { evidenceReferences.append((seq, h)) }
        }
        prev = hash
    }
}
