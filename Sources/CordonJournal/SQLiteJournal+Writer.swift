import CCordonSys
import CordonCore
import Crypto
import Foundation
import GRDB

// The writer thread: it takes every append waiting when it starts a transaction and
// commits them together (group commit), so that throughput does not collapse under
// fsync; each caller resumes once its records are durable.
extension SQLiteJournal {
    /// A record to append, redacted, with its canonical form up to `prev` built and hashed
    /// by the appending task: the single writer only appends `prev`, `seq` and `time`,
    /// finishes the hash and inserts.
    struct Prepared: Sendable {
        var record: NewRecord
        var prefix: [UInt8]
        /// The hash over `prefix`, or over `prefix[..<hole]` when the value of a member set
        /// by the writer (`record.seqField`, not yet known) goes at `hole`.
        var hashedPrefix: SHA256
        var hole: Int?

        init(_ record: NewRecord, secrets: SecretStore?) {
            var r = record
            if let secrets { r.data = secrets.redact(r.data) }
            if let field = r.seqField, let seq = field.slot.seq {
                // Written already: the value is known now.
                r.data = SeqField.set(field.key, to: seq, in: r.data)
                r.seqField = nil
            }
            var hasher = SHA256()
            if let field = r.seqField, let (data, at) = CanonicalJSON.bytes(r.data, leavingOut: field.key) {
                let (bytes, offset) = JournalRecord.canonicalPrefixAndDataOffset(actor: r.actor, data: data, incident: r.incident, kind: r.kind.rawValue)
                self.prefix = bytes
                self.hole = offset + at
                hasher.update(data: bytes[..<(offset + at)])
            } else {
                r.seqField = nil
                self.prefix = JournalRecord.canonicalPrefix(actor: r.actor, data: CanonicalJSON.bytes(r.data), incident: r.incident, kind: r.kind.rawValue)
                self.hole = nil
                hasher.update(data: prefix)
            }
            self.record = r
            self.hashedPrefix = hasher
        }
    }
    /// How long the writer waits for a batch to fill (seconds).
    static let commitDelay = 0.0002
    static let minimumCommitInterval = 0.001
    /// Incidents whose first seq is kept in `WriterThreadState.firstSeqs` before it is
    /// emptied: one entry of a few dozen bytes an incident; an incident not there is
    /// looked up in the table.
    static let firstSeqCacheLimit = 20_000

    /// What only the writer thread reads and writes.
    struct WriterThreadState {
        /// When the last commit started.
        var lastCommitStart = Date.distantPast
        /// The seq of the first record of incidents written lately, by id (emptied when a
        /// commit fails, as it may name rows rolled back).
        var firstSeqs: [String: Int64] = [:]
    }

    /// What the writer does next, decided with the lock held.
    enum WriterStep {
        /// Stopping, with nothing left to write.
        case exit
        /// `durable()` calls at the front, which wait for nothing.
        case answer([CheckedContinuation<[JournalRecord], any Swift.Error>])
        /// Appends queued behind posted records whose commit failed.
        case refuse([PendingGroup], reason: String)
        /// Nothing to write: woken by the checkpoint timer (due or not yet).
        case timer(due: Bool)
        /// A batch to commit, and whether a timed checkpoint is due after it.
        case commit([PendingGroup], timerDue: Bool)
    }

    func writerLoop() {
        // Named for `top -H` and profilers (Foundation's `Thread.name` does not reach the
        // kernel on Linux).
        cordon_name_thread("cordon-journal")
        var own = WriterThreadState()
        while true {
            switch shared.withLock({ s in nextStep(s, &own) }) {
            case .exit:
                return
            case .answer(let ready):
                for continuation in ready { continuation.resume(returning: []) }
            case .refuse(let groups, let reason):
                for group in groups { group.continuation?.resume(throwing: Self.brokenError(reason)) }
            case .timer(let due):
                if due { _ = try? checkpointNow() }
            case .commit(let batch, let timerDue):
                commit(batch, &own)
                if timerDue { _ = try? checkpointNow() }
            }
        }
    }

    /// Waits for work, then takes it: with the lock held (released only while waiting).
    private func nextStep(_ s: Monitor<WriterState>.Locked, _ own: inout WriterThreadState) -> WriterStep {
        s.wakeAt = 1
        waitForWork(s)
        if s.stopping && s.pending.isEmpty {
            s.writerRunning = false
            return .exit
        }
        // `durable()` calls at the front wait for nothing: everything queued before them
        // was committed before the writer came back here. They neither wait for the
        // commit interval nor start one (which would hold back the next real commit).
        if s.broken == nil, s.pending.first?.records.isEmpty == true {
            var ready: [CheckedContinuation<[JournalRecord], any Swift.Error>] = []
            while let first = s.pending.first, first.records.isEmpty {
                if let continuation = first.continuation { ready.append(continuation) }
                s.pending.removeFirst()
            }
            return .answer(ready)
        }
        fillBatch(s, after: own.lastCommitStart)
        if let broken = s.broken {
            // Queued behind posted records whose commit failed: they would follow a gap in
            // the caller's view of the chain, so they fail too.
            let refused = s.pending
            s.pending = []
            s.unwrittenPosts -= refused.count { $0.continuation == nil }
            return .refuse(refused, reason: broken)
        }
        let timerDue = s.timerRunning && ContinuousClock.now - s.lastCheckpoint >= checkpointInterval
        // Woken by the checkpoint timer. (A batch is never only `durable()` calls: those at
        // the front were answered above, and pending only grows behind a group with records.)
        if s.pending.isEmpty { return .timer(due: timerDue) }
        own.lastCommitStart = Date()
        s.lastBatchSize = s.pending.count
        let batch = s.pending
        s.pending = []
        return .commit(batch, timerDue: timerDue)
    }

    /// Waits until something is queued, the writer is stopping, or a timed checkpoint is due.
    private func waitForWork(_ s: Monitor<WriterState>.Locked) {
        while s.pending.isEmpty && !s.stopping {
            if s.timerRunning {
                let due = s.lastCheckpoint + checkpointInterval
                if ContinuousClock.now >= due { return }
                let wait = min(due - ContinuousClock.now, .seconds(1))
                s.wait(until: Date(timeIntervalSinceNow: wait.seconds))
            } else {
                s.wait()
            }
        }
    }

    /// Lets the batch fill before its commit.
    private func fillBatch(_ s: Monitor<WriterState>.Locked, after lastCommitStart: Date) {
        // Commit delay: callers released by the previous commit append again within
        // microseconds; waiting briefly for as many as last time fills the batch, so one
        // fsync serves them all instead of a trickle of small commits.
        if !s.pending.isEmpty && s.pending.count < s.lastBatchSize {
            s.wakeAt = s.lastBatchSize
            let deadline = Date(timeIntervalSinceNow: Self.commitDelay)
            while s.pending.count < s.lastBatchSize && !s.stopping {
                if !s.wait(until: deadline) { break }
            }
        }
        s.wakeAt = Int.max
        // Commits start at most once a millisecond: an fsync costs this kind of machine
        // about half a millisecond of CPU, so under a steady trickle of appends a commit
        // each would spend most of a core on fsyncs; waiting gathers them instead.
        if !s.pending.isEmpty {
            let deadline = lastCommitStart.addingTimeInterval(Self.minimumCommitInterval)
            while !s.stopping && Date() < deadline {
                s.wait(until: deadline)
            }
        }
    }

    /// Commits a batch in one transaction and resumes its callers.
    private func commit(_ batch: [PendingGroup], _ own: inout WriterThreadState) {
        let groups = batch.map(\.records)
        // Evidence put before these records were appended (so everything they cite)
        // commits in the same transaction.
        let blobs = evidence.takePending()
        // Posted records were handed out when posted: if their commit fails, the
        // callers' view is ahead of the database.
        let posted = batch.count { $0.continuation == nil }
        do {
            let (key, every, writerID) = (self.key, checkpointEvery, self.writerID)
            if own.firstSeqs.count > Self.firstSeqCacheLimit { own.firstSeqs.removeAll(keepingCapacity: true) }
            var firsts = own.firstSeqs
            own.firstSeqs = [:]
            let (written, signed) = try pool.write { db -> ([Result<[JournalRecord], JournalClaimConflict>], Bool) in
                // The chain's head, read once: the evidence's bucket and the records' seqs follow it.
                let head = try Self.head(db)
                try EvidenceStore.insert(blobs, nextSeq: head.seq + 1, db: db)
                return try Self.write(groups, after: head, db: db, key: key, checkpointEvery: every, writer: writerID, firstSeqs: &firsts)
            }
            own.firstSeqs = firsts
            if signed { noteCheckpoint() }
            // A posted group refused for its claim: the poster's view is ahead of the
            // journal, as after a failed commit (posted records make no claims).
            let refusedPost = zip(batch, written).first { group, result in
                if group.continuation == nil, case .failure = result { return true }
                return false
            }
            let committed = written.reduce(0) { $0 + ((try? $1.get().count) ?? 0) }
            shared.withLock { s in
                s.commits += 1
                s.committedRecords += committed
                s.writerCPU = threadCPUSeconds()
                s.unwrittenPosts -= posted
                if let refusedPost, case .failure(let conflict) = refusedPost.1 { s.broken = "a posted record made a claim already made: \(conflict)" }
            }
            for (group, result) in zip(batch, written) {
                switch result {
                case .success(let records): group.continuation?.resume(returning: records)
                case .failure(let conflict): group.continuation?.resume(throwing: conflict)
                }
            }
        } catch {
            evidence.restorePending(blobs)
            shared.withLock { s in
                if posted > 0 { s.broken = "\(error)" }
                s.unwrittenPosts -= posted
            }
            for group in batch { group.continuation?.resume(throwing: error) }
        }
    }

    /// Appends groups of records in one transaction, continuing the chain from the head
    /// stored in the database (so several processes can share a journal), and signs a
    /// checkpoint when `checkpointEvery` records are unsigned. A record of an incident
    /// carries the seq of the incident's first record (`first_seq`), from `firstSeqs`, else
    /// from `incidents`, else its own (and the incident gets its row in `incidents`). A
    /// group with a record whose claim was made before (by an earlier commit, by any
    /// process, or by a group before it in this one) is not written: its result names the
    /// record that made the claim.
    static func write(
        _ groups: [[Prepared]], after head: (seq: Int64, hash: String), db: Database, key: SigningKey?, checkpointEvery: Int,
        writer: Int64, firstSeqs: inout [String: Int64]
    ) throws -> ([Result<[JournalRecord], JournalClaimConflict>], Bool) {
        var (seq, prev) = head
        let now = Timestamp.string(Date())
        let insert = try db.cachedStatement(
            sql: "INSERT INTO records (seq, time, incident, kind, canonical, hash, first_seq, writer) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        var out: [Result<[JournalRecord], JournalClaimConflict>] = []
        for group in groups {
            if let conflict = try claimConflict(group, db: db) {
                out.append(.failure(conflict))
                continue
            }
            var written: [JournalRecord] = []
            for prepared in group {
                let new = prepared.record
                seq += 1
                var data = new.data
                var hasher = prepared.hashedPrefix
                var canonical: Data
                if let hole = prepared.hole, let field = new.seqField {
                    // A member whose value is the seq of a record queued (so written) before.
                    guard let value = field.slot.seq else {
                        throw Error(message: "record \(seq) (\(new.kind)) refers to a record that was not written before it")
                    }
                    let digits = Array(String(value).utf8)
                    data = SeqField.set(field.key, to: value, in: data)
                    let rest = prepared.prefix[hole...]
                    hasher.update(data: digits)
                    hasher.update(data: rest)
                    canonical = Data(capacity: prepared.prefix.count + digits.count + 160)
                    canonical.append(contentsOf: prepared.prefix[..<hole])
                    canonical.append(contentsOf: digits)
                    canonical.append(contentsOf: rest)
                } else {
                    canonical = Data(capacity: prepared.prefix.count + 160)
                    canonical.append(contentsOf: prepared.prefix)
                }
                var record = JournalRecord(
                    seq: seq, time: new.time.map(Timestamp.string) ?? now, incident: new.incident, kind: new.kind, actor: new.actor,
                    data: data, prev: prev, hash: "")
                var suffix: [UInt8] = []
                suffix.reserveCapacity(128)
                JournalRecord.appendCanonicalSuffix(prev: prev, seq: seq, time: record.time, to: &suffix)
                hasher.update(data: suffix)
                record.hash = hasher.finalize().hex
                canonical.append(contentsOf: suffix)
                var first: Int64? = nil
                if let incident = new.incident {
                    first = try firstSeq(of: incident, at: seq, db: db, cache: &firstSeqs)
                }
                try insert.execute(arguments: [seq, record.time, record.incident, record.kind.rawValue, canonical, record.hash, first, writer])
                if let claim = new.claim {
                    try db.cachedStatement(sql: "INSERT INTO claims (claim, seq) VALUES (?, ?)").execute(arguments: [claim, seq])
                }
                new.slot?.fill(seq)
                prev = record.hash
                written.append(record)
            }
            out.append(.success(written))
        }
        var signed = false
        // Statements run by every commit are prepared once, not parsed (and authorised by
        // GRDB) again each time.
        let lastSigned = try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(seq) FROM checkpoints")) ?? 0
        // Never over records others added beyond what a crash leaves: the journal then
        // stays unsigned, and verify and the next checkpoint say why.
        if let key, seq - lastSigned >= Int64(checkpointEvery),
            try unsignedByOthers(db, after: lastSigned, writer: writer) <= maxUnsignedByOthers
        {
            try sign(db: db, seq: seq, hash: prev, key: key)
            signed = true
        }
        return (out, signed)
    }

    /// The first claim of a group already made, with the record that made it.
    static func claimConflict(_ group: [Prepared], db: Database) throws -> JournalClaimConflict? {
        for claim in group.compactMap(\.record.claim) {
            guard let seq = try Int64.fetchOne(db.cachedStatement(sql: "SELECT seq FROM claims WHERE claim = ?"), arguments: [claim]) else { continue }
            guard let row = try Row.fetchOne(db, sql: "SELECT \(recordColumns) FROM records WHERE seq = ?", arguments: [seq]) else {
                throw Error(message: "claim \(claim) names record \(seq), which is not in the journal")
            }
            return JournalClaimConflict(claim: claim, existing: try record(row))
        }
        return nil
    }

    /// The seq of the first record of `incident`, which is `seq` (and is entered in
    /// `incidents`) when the journal has none yet.
    static func firstSeq(of incident: String, at seq: Int64, db: Database, cache: inout [String: Int64]) throws -> Int64 {
        if let known = cache[incident] { return known }
        // Most incidents not in the cache are new: one B-tree descent enters them.
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO incidents (id, first_seq) VALUES (?, ?)").execute(arguments: [incident, seq])
        var first = seq
        if db.changesCount == 0 {
            guard let stored = try Int64.fetchOne(db.cachedStatement(sql: "SELECT first_seq FROM incidents WHERE id = ?"), arguments: [incident]) else {
                throw Error(message: "incident \(incident) is neither new nor in the journal's index of incidents")
            }
            first = stored
        }
        cache[incident] = first
        return first
    }

    static func head(_ db: Database) throws -> (seq: Int64, hash: String) {
        if let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1")) {
            return (row["seq"], row["hash"])
        }
        return (0, JournalRecord.genesis)
    }
}
