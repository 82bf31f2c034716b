import CordonCore
import Crypto
import Foundation
import GRDB
import Synchronization

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
    /// What the auditor should know that is not a problem (a key rotated without the old
    /// key's signature).
    public var notes: [String] = []
    public var lastSeq: Int64 = 0
    /// The newest checkpoint whose signature, key and hash check out: the journal is
    /// verified up to its seq.
    public var signedThrough: Checkpoint? = nil
    /// The root key that `signedThrough` was signed under (itself, or the key that
    /// certified its session key).
    public var signedUnder: String? = nil
    /// Every checkpoint whose signature, key and hash check out, by seq.
    public var validCheckpoints: [Checkpoint] = []
    /// The keys the verifier was told to expect; empty: the journal's own say-so.
    public var expectedKeys: Set<String> = []
    /// The newest head each witness compared holds.
    public var witnessed: [(witness: String, seq: Int64, time: String)] = []

    /// Records after the newest valid checkpoint: not covered by any signature.
    public var unsignedTail: (from: Int64, count: Int)? {
        let signed = signedThrough?.seq ?? 0
        return lastSeq > signed ? (signed + 1, Int(lastSeq - signed)) : nil
    }

    /// The first record that is wrong (by seq), if any.
    public var firstBadSeq: Int64? { problems.compactMap(\.seq).min() }
    public var isValid: Bool { problems.isEmpty }

    mutating func fail(_ seq: Int64?, _ message: String) {
        if problems.count < 1000 { problems.append(Problem(seq: seq, message: message)) }
    }
}

/// Checks every hash, link, checkpoint signature and evidence file of a journal, and which
/// keys signed it.
public struct JournalVerifier: Sendable {
    public let directory: DataDirectory
    /// Journals larger than this are checked in parallel slices.
    public var parallelThreshold: Int64 = 20_000
    /// Root key fingerprints the auditor expects (`--expect-key`); empty: the journal's own.
    public var expectedKeys: Set<String>
    /// The most records that may follow the last checkpoint: what a crash can leave
    /// unsigned (the writer signs whenever this many are unsigned). More means records
    /// were added without the key, or checkpoints after them were removed.
    public var maxUnsignedTail: Int = 100
    /// What witnesses outside the host saw (`--anchor`), to compare the journal with.
    public var witnesses: [WitnessView] = []

    /// The heads one witness holds.
    public struct WitnessView: Sendable {
        public var witness: String
        public var heads: [Checkpoint]
        /// Seqs whose receipt (a time-stamp token) does not prove the head it names.
        public var badProofs: [Int64]
        public init(witness: String, heads: [Checkpoint], badProofs: [Int64] = []) {
            self.witness = witness
            self.heads = heads
            self.badProofs = badProofs
        }
    }

    public init(directory: DataDirectory, expectedKeys: Set<String> = []) {
        self.directory = directory
        self.expectedKeys = expectedKeys
    }

    public func verify() throws -> VerificationReport {
        guard FileManager.default.fileExists(atPath: directory.journal.path) else {
            throw SQLiteJournal.Error(message: "no journal at \(directory.journal.path) (is --data-dir right?)")
        }
        let legacyKeyURL = directory.keys.appendingPathComponent(SigningKey.publicKeyFile)
        let legacyKey = (try? String(contentsOf: legacyKeyURL, encoding: .utf8)).flatMap { try? JournalPublicKey(pem: $0) }
        var configuration = Configuration()
        configuration.readonly = true
        // A runner stopping at the same moment checkpoints its WAL when it closes its last
        // connection, holding the lock briefly: wait for it rather than fail.
        configuration.busyMode = .timeout(30)
        let queue = try DatabaseQueue(path: directory.journal.path, configuration: configuration)
        var report = VerificationReport()
        report.expectedKeys = expectedKeys
        let (minSeq, maxSeq, checkpointSeqs) = try queue.read { db -> (Int64, Int64, Set<Int64>) in
            let row = try Row.fetchOne(db, sql: "SELECT MIN(seq), MAX(seq) FROM records")
            return (row?[0] ?? 1, row?[1] ?? 0, Set(try Int64.fetchAll(db, sql: "SELECT seq FROM checkpoints")))
        }
        // Seqs start at 1 and grow by one; a seq outside what arithmetic on them can take
        // was written by hand.
        guard minSeq >= 1, maxSeq < Int64.max / 2 else {
            report.fail(minSeq < 1 ? minSeq : maxSeq, "seq \(minSeq < 1 ? minSeq : maxSeq) is outside the range a journal's records take (altered)")
            return report
        }
        var history = try queue.read { db in try KeyHistory.read(db, legacyKey: legacyKey, expected: expectedKeys, report: &report) }
        let keep = checkpointSeqs.union(history.rotations.map(\.seq)).union(witnesses.flatMap { $0.heads.map(\.seq) })
        let chain = try checkChain(queue, from: minSeq, to: maxSeq, keep: keep, report: &report)
        history.checkRotations(hashes: chain.hashes, report: &report)
        try queue.read { db in
            try checkCheckpoints(db, history: history, hashes: chain.hashes, report: &report)
            checkWitnesses(history: history, hashes: chain.hashes, newestCheckpoint: checkpointSeqs.max() ?? 0, report: &report)
            // Evidence: every item a record cites must be there and match its hash.
            let store = EvidenceStore(directory: directory.evidence, database: nil)
            var checked: Set<String> = []
            for (seq, hash) in chain.evidenceReferences where checked.insert(hash).inserted {
                report.evidenceFiles += 1
                if let problem = store.check(hash, size: nil, citedAt: seq, in: db) { report.fail(seq, problem) }
            }
            try checkIncidentIndex(db, report: &report)
        }
        checkTail(&report)
        report.problems.sort { ($0.seq ?? .max, $0.message) < ($1.seq ?? .max, $1.message) }
        // A checkpoint after the first bad record vouches for a chain that is broken
        // before it: the journal is verified only up to the last one before that.
        if let bad = report.firstBadSeq, let signed = report.signedThrough, signed.seq >= bad {
            report.signedThrough = report.validCheckpoints.last { $0.seq < bad }
            report.signedUnder = report.signedThrough.flatMap { history.keys[$0.keyFingerprint]?.certifiedBy ?? $0.keyFingerprint }
        }
        return report
    }

    /// A journal with records but no valid signature fails, and so does one whose unsigned
    /// tail is longer than a crash can leave.
    func checkTail(_ report: inout VerificationReport) {
        guard report.records > 0 else { return }
        guard let signed = report.signedThrough else {
            report.fail(nil, "no record is covered by a valid checkpoint signature: a journal with no signature is never valid")
            return
        }
        if let tail = report.unsignedTail, tail.count > maxUnsignedTail {
            report.fail(
                tail.from,
                """
                \(tail.count) records after seq \(signed.seq) are unsigned; a crash leaves at most \(maxUnsignedTail) (one checkpoint interval): \
                records were added without the key, or the checkpoints after seq \(signed.seq) were removed
                """)
        }
    }

    /// Checks the hash chain of records `minSeq...maxSeq` in contiguous slices in parallel
    /// (one per core, for a large journal), then the links between the slices; answers
    /// the chain as a whole (the hashes at `keep`, the evidence records cite).
    func checkChain(_ queue: DatabaseQueue, from minSeq: Int64, to maxSeq: Int64, keep: Set<Int64>, report: inout VerificationReport) throws -> ChainChecker {
        let total = max(0, maxSeq - minSeq + 1)
        let sliceCount = total > parallelThreshold ? max(2, ProcessInfo.processInfo.activeProcessorCount) : 1
        let sliceSize = (total + Int64(sliceCount) - 1) / Int64(max(1, sliceCount))
        let slices = Mutex<[Int: (ChainChecker, VerificationReport, String?)]>([:])
        DispatchQueue.concurrentPerform(iterations: sliceCount) { index in
            let lo = minSeq + Int64(index) * sliceSize
            let hi = index == sliceCount - 1 ? Int64.max : lo + sliceSize - 1
            let slice = checkSlice(index, from: lo, to: hi, queue: index == 0 ? queue : nil, keep: keep)
            slices.withLock { $0[index] = slice }
        }
        var chain = ChainChecker()
        var previousLast: (seq: Int64, hash: String)? = nil
        for index in 0..<sliceCount {
            guard let (slice, sliceReport, failure) = slices.withLock({ $0[index] }) else { continue }
            if let failure { throw SQLiteJournal.Error(message: "cannot read the journal: \(failure)") }
            report.records += sliceReport.records
            report.lastSeq = max(report.lastSeq, sliceReport.lastSeq)
            report.problems += sliceReport.problems
            if let first = slice.first, let previous = previousLast {
                if first.seq != previous.seq + 1 {
                    report.fail(previous.seq + 1, "record\(first.seq - previous.seq > 2 ? "s \(previous.seq + 1)–\(first.seq - 1) are" : " is") missing (deleted)")
                } else if first.prev != previous.hash {
                    report.fail(first.seq, "does not link to the record before it (inserted, deleted or reordered records)")
                }
            }
            if let last = slice.last { previousLast = last }
            chain.hashes.merge(slice.hashes) { a, _ in a }
            chain.evidenceReferences += slice.evidenceReferences
        }
        return chain
    }

    /// Checks the records of slice `index` (seqs `lo` to `hi`), through `queue` or a
    /// read-only connection of its own; answers the slice's checker, its problems, and
    /// why it could not be read, if it could not.
    func checkSlice(_ index: Int, from lo: Int64, to hi: Int64, queue: DatabaseQueue?, keep: Set<Int64>) -> (ChainChecker, VerificationReport, String?) {
        var chain = ChainChecker()
        chain.keep = keep
        chain.expectedSeq = index == 0 ? 1 : lo
        chain.linkFirst = index == 0
        var sliceReport = VerificationReport()
        var failure: String? = nil
        do {
            var configuration = Configuration()
            configuration.readonly = true
            let connection = try queue ?? DatabaseQueue(path: directory.journal.path, configuration: configuration)
            try connection.read { db in
                let rows = try Row.fetchCursor(
                    db, sql: "SELECT seq, time, incident, kind, canonical, hash FROM records WHERE seq BETWEEN ? AND ? ORDER BY seq",
                    arguments: [lo, hi])
                while let row = try rows.next() {
                    // A row with a value missing or of the wrong type was written by hand:
                    // reported, never a trap.
                    guard let seq = row[0] as Int64?, let storedHash = row[5] as String?, let time = row[1] as String?,
                        let kind = row[3] as String?
                    else {
                        sliceReport.fail((row[0] as Int64?), "a record row has a value missing or of the wrong type (altered)")
                        continue
                    }
                    let columns: (String, String?, String) = (time, row[2] as String?, kind)
                    try row.withUnsafeData(atIndex: 4) { canonical in
                        chain.check(seq: seq, canonical: canonical ?? Data(), storedHash: storedHash, columns: columns, report: &sliceReport)
                    }
                }
            }
        } catch {
            failure = "\(error)"
        }
        return (chain, sliceReport, failure)
    }

    /// Checkpoints: each must be signed by a key allowed and trusted at its seq
    /// (`KeyHistory`) and sign the chain's hash there. The newest that does is what the
    /// journal is verified up to.
    func checkCheckpoints(_ db: Database, history: KeyHistory, hashes: [Int64: String], report: inout VerificationReport) throws {
        for row in try Row.fetchAll(db, sql: "SELECT * FROM checkpoints ORDER BY seq") {
            report.checkpoints += 1
            guard let checkpoint = SQLiteJournal.checkpoint(row) else {
                report.fail(nil, "a checkpoint row has a value missing or of the wrong type (altered)")
                continue
            }
            guard history.check(checkpoint, report: &report) else { continue }
            guard let actual = hashes[checkpoint.seq] else {
                report.fail(checkpoint.seq, "a signed checkpoint covers seq \(checkpoint.seq), but that record is missing (truncated or deleted)")
                continue
            }
            guard actual == checkpoint.hash else {
                report.fail(checkpoint.seq, "the chain's hash at this seq differs from the signed checkpoint: records up to here were altered")
                continue
            }
            report.signedThrough = checkpoint
            report.validCheckpoints.append(checkpoint)
            report.signedUnder = history.keys[checkpoint.keyFingerprint]?.certifiedBy ?? checkpoint.keyFingerprint
        }
    }

    /// Timelines, exports and rollback find an incident's records through the index of
    /// schema 2 (`incidents` and `records.first_seq`), which the hash chain does not
    /// cover: a record missing from it would be left out of them, so it must agree with
    /// the records' own (verified) incident ids. Journals of schema 0 have no such index.
    func checkIncidentIndex(_ db: Database, report: inout VerificationReport) throws {
        guard try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 >= 2 else { return }
        let misfiled = try Row.fetchAll(
            db,
            sql: """
                SELECT r.seq, r.incident FROM records r LEFT JOIN incidents i ON i.id = r.incident
                WHERE r.first_seq IS NOT i.first_seq ORDER BY r.seq LIMIT 1000
                """)
        for row in misfiled {
            let incident = row[1] as String?
            report.fail(
                row[0] as Int64?,
                incident.map { "is not indexed under its incident \($0): its timeline and export would leave it out" }
                    ?? "is indexed under an incident it does not belong to")
        }
        let strays = try String.fetchAll(
            db,
            sql: "SELECT i.id FROM incidents i LEFT JOIN records r ON r.seq = i.first_seq WHERE r.incident IS NOT i.id ORDER BY i.id LIMIT 1000")
        for id in strays {
            report.fail(nil, "the journal's index of incidents points \(id) at a record of another incident")
        }
    }
}

/// Walks records in order: contiguous seqs, content matching its hash, each `prev` equal
/// to the previous record's hash, indexed columns matching the record.
struct ChainChecker: Sendable {
    /// The first record seen (its seq and the prev it names) and the last (seq, hash),
    /// to link slices checked separately.
    var first: (seq: Int64, prev: String)? = nil
    var last: (seq: Int64, hash: String)? = nil
    /// Whether the first record must link to the genesis hash (the first slice).
    var linkFirst = true
    var extractor = JSONFieldExtractor(paths: [["seq"], ["prev"], ["time"], ["incident"], ["kind"], ["data", "evidence", "sha256"]])
    var expectedSeq: Int64 = 1
    var prev = JournalRecord.genesis
    /// The recomputed hash at each seq in `keep` (the checkpoints' seqs).
    var hashes: [Int64: String] = [:]
    var keep: Set<Int64> = []
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
        if keep.contains(seq) { hashes[seq] = hash }
        if hash != storedHash {
            report.fail(seq, "content does not match its hash (the record was altered)")
        }
        let fields = canonical.withUnsafeBytes { try? extractor.extract($0) }
        guard let fields, fields[0].count == 1, fields[1].count == 1 else {
            report.fail(seq, "the record is not valid JSON with one seq and one prev")
            prev = hash
            return
        }
        if fields[0][0].numberValue?.intValue.map(Int64.init) != seq {
            report.fail(seq, "the record says seq \(JSONWriter.string(fields[0][0])): records were moved or swapped")
        }
        let named = fields[1][0].stringValue ?? ""
        if first == nil {
            first = (seq, named)
            if linkFirst && named != prev {
                report.fail(seq, "does not link to the record before it (inserted, deleted or reordered records)")
            }
        } else if named != prev {
            report.fail(seq, "does not link to the record before it (inserted, deleted or reordered records)")
        }
        last = (seq, hash)
        if let columns,
            fields[2].first?.stringValue != columns.time || (fields[3].first?.stringValue ?? nil) != columns.incident
                || fields[4].first?.stringValue != columns.kind
        {
            report.fail(seq, "the indexed columns (time, incident, kind) disagree with the record")
        }
        for h in fields[5] {
            if let h = h.stringValue { evidenceReferences.append((seq, h)) }
        }
        prev = hash
    }
}
