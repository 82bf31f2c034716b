import CCordonSys
import CordonCore
import Crypto
import Foundation
import GRDB

/// Where Cordon keeps its state (`--data-dir`, default `./.cordon`).
public struct DataDirectory: Sendable {
    public let url: URL

    public init(_ path: String) { url = URL(fileURLWithPath: path) }

    public var journal: URL { url.appendingPathComponent("journal.sqlite") }
    public var evidence: URL { url.appendingPathComponent("evidence") }
    public var keys: URL { url.appendingPathComponent("keys") }
}

/// The embedded journal: SQLite in WAL mode with `synchronous=FULL`, one hash chain,
/// Ed25519 checkpoints. Appends from any number of tasks (and processes) are serialised
/// by SQLite's write lock. A dedicated writer thread takes every append waiting when it
/// starts a transaction and commits them together (group commit), so throughput does
/// not collapse under fsync; each caller resumes once its records are durable. Records
/// posted (`post`) are queued in order without waiting and commit with the next group.
public final class SQLiteJournal: Journal, @unchecked Sendable {
    public let directory: DataDirectory
    public let evidence: EvidenceStore
    let pool: DatabasePool
    let key: SigningKey
    let secrets: SecretStore?
    /// Sign at least every this many records…
    public let checkpointEvery: Int
    /// …and at least this often while records are unsigned (when the timer runs).
    public let checkpointInterval: Duration

    // Guarded by `condition`.
    private let condition = NSCondition()
    /// Appends waiting for the writer, in order. A posted group (`post`) has no caller
    /// waiting for it: no continuation.
    private var pending: [(records: [Prepared], continuation: CheckedContinuation<[JournalRecord], any Swift.Error>?)] = []
    /// Posted groups not yet written.
    private var unwrittenPosts = 0

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
                let (bytes, offset) = JournalRecord.canonicalPrefixAndDataOffset(actor: r.actor, data: data, incident: r.incident, kind: r.kind)
                self.prefix = bytes
                self.hole = offset + at
                hasher.update(data: bytes[..<(offset + at)])
            } else {
                r.seqField = nil
                self.prefix = JournalRecord.canonicalPrefix(actor: r.actor, data: CanonicalJSON.bytes(r.data), incident: r.incident, kind: r.kind)
                self.hole = nil
                hasher.update(data: prefix)
            }
            self.record = r
            self.hashedPrefix = hasher
        }
    }
    /// Set when a commit with posted records failed: the caller's view is ahead of the
    /// database, so every later append, read and checkpoint fails.
    private var broken: String? = nil
    private var commits = 0
    private var committedRecords = 0
    private var writerCPU = 0.0

    /// What the writer has done so far (for benchmarks).
    public struct CommitStatistics: Sendable {
        /// Group commits and the records they carried.
        public var commits: Int
        public var records: Int
        /// The CPU time (user and system, seconds) of the writer thread: its share of a
        /// core is how close the journal's one serial stage is to being the limit.
        public var writerCPU: Double
    }

    public var commitStatistics: CommitStatistics {
        condition.lock()
        defer { condition.unlock() }
        return CommitStatistics(commits: commits, records: committedRecords, writerCPU: writerCPU)
    }

    private var timerRunning = false
    private var stopping = false
    private var writer: Thread? = nil
    private var lastCheckpoint = ContinuousClock.now
    private var lastBatchSize = 0
    /// The page size of a new journal. A commit writes each page it changed to the WAL (two
    /// `pwrite`s a page), then a checkpoint writes it again: with 16 KiB pages instead of
    /// SQLite's 4 KiB, a finding's evidence and records take a quarter of the writes, and
    /// so a smaller share of the writer's CPU per record (docs/journal.md).
    static let pageSize = 16384
    /// WAL written between checkpoints (`wal_autocheckpoint` is this over the page size).
    static let walCheckpointBytes = 4 << 20
    /// How long the writer waits for a batch to fill (seconds).
    static let commitDelay = 0.0002
    static let minimumCommitInterval = 0.001
    /// When the last commit started (writer thread only).
    private var lastCommitStart = Date.distantPast
    /// The seq of the first record of incidents written lately, by id (writer thread
    /// only; emptied when a commit fails, as it may name rows rolled back).
    private var firstSeqs: [String: Int64] = [:]
    /// Incidents whose first seq is kept in `firstSeqs` before it is emptied: one entry
    /// of a few dozen bytes an incident; an incident not there is looked up in the table.
    static let firstSeqCacheLimit = 20_000
    /// Whether records are found by incident through the index of schema 0 (a journal of
    /// an earlier build opened read-only, so not migrated).
    let oldIncidentIndex: Bool
    /// Whether the records carry the journal that wrote them (schema 4; not so in an
    /// earlier journal opened read-only).
    let recordsWriters: Bool
    /// This journal's mark on the records it writes (`records.writer`), random for each
    /// opening: records without it were written by another process.
    let writerID = Int64.random(in: 1...Int64.max)

    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Opens (creating if needed) the journal under `directory`.
    /// - Parameter secrets: values to redact from every record before it is hashed.
    public init(
        directory: DataDirectory, secrets: SecretStore? = nil, checkpointEvery: Int = 100,
        checkpointInterval: Duration = .seconds(60), readOnly: Bool = false
    ) throws {
        self.directory = directory
        self.secrets = secrets
        self.checkpointEvery = checkpointEvery
        self.checkpointInterval = checkpointInterval
        let fm = FileManager.default
        if !readOnly {
            try fm.createDirectory(at: directory.url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } else if !fm.fileExists(atPath: directory.journal.path) {
            throw Error(message: "no journal at \(directory.journal.path) (is --data-dir right?)")
        }
        self.key = try SigningKey.loadOrCreate(in: directory.keys)
        var configuration = Configuration()
        configuration.readonly = readOnly
        configuration.busyMode = .timeout(30)
        if !readOnly {
            // Takes effect only when the file is created (before WAL mode and the tables);
            // an existing journal keeps the page size it was created with.
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA page_size = \(Self.pageSize)") }
        }
        pool = try DatabasePool(path: directory.journal.path, configuration: configuration)
        self.evidence = EvidenceStore(directory: directory.evidence, database: pool, secrets: secrets)
        if !readOnly {
            // GRDB sets synchronous=NORMAL on the pool's writer connection when it enables
            // WAL; the journal needs FULL (every commit fsynced). The writer connection
            // lives as long as the pool, so setting it once holds for every write.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // The commit that crosses the threshold checkpoints the WAL into the database
                // while later appends wait. About 4 MiB of WAL (SQLite's default of 1,000
                // pages of 4 KiB) keeps each such pause short: a larger threshold makes
                // pauses rarer but long enough to raise the p99 latency under a steady
                // load, for no throughput. The threshold counts pages, so it follows the
                // journal's page size.
                let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(Self.walCheckpointBytes / max(pageSize, 512))")
                guard try Int.fetchOne(db, sql: "PRAGMA synchronous") == 2 else {
                    throw Error(message: "could not set PRAGMA synchronous = FULL on \(directory.journal.path)")
                }
            }
            try Self.migrate(pool, path: directory.journal.path)
        }
        // Opened for writing, the journal is at `schemaVersion` now (`migrate` brought it
        // there or threw); opened read-only, one of schema 0 is read through its old index.
        let version = try readOnly ? pool.read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 } : Self.schemaVersion
        oldIncidentIndex = version < 2
        recordsWriters = version >= 4
    }

    deinit {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    /// The journal's schema (`PRAGMA user_version`). 4: each record says which opening of
    /// the journal wrote it (`records.writer`: a runner finds the records other processes
    /// appended), and `claims` holds the claims records made (`NewRecord.claim`). 3:
    /// evidence is written to
    /// `evidence_items`, indexed by `(bucket, hash)` where the bucket grows with the
    /// journal (`EvidenceStore`); 2: records are found by incident through `incidents`
    /// and `records.first_seq` (an index in order of appending); 0: journals of earlier
    /// builds, indexed on `records(incident, seq)`.
    public static let schemaVersion = 4

    /// Creates the tables of a new journal, or brings an earlier one to `schemaVersion`
    /// (in one transaction: a failure leaves it as it was).
    ///
    /// Schema 2 replaces the index on `records(incident, seq)`. Incident ids are hashes,
    /// so that index put each record at a random place: every commit rewrote a page of
    /// it for nearly every incident it touched, and those pages were most of what the
    /// writer wrote (docs/journal.md). Instead each incident has one row in
    /// `incidents` (its id and the seq of its first record), and each of its records
    /// carries that seq in `first_seq`, whose index grows at its end like the table.
    ///
    /// Schema 3 does the same for evidence: `evidence_content` is indexed by its hash, a
    /// random key, and on a journal in use that index took a page per finding per commit.
    /// New evidence goes to `evidence_items`, indexed by `(bucket, hash)` with a bucket
    /// that grows with the journal. The earlier table stays as it is and is still read.
    static func migrate(_ pool: DatabasePool, path: String) throws {
        try pool.write { db in
            let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
            if version == schemaVersion { return }
            guard version < schemaVersion else {
                throw Error(
                    message: "\(path) has journal schema \(version), newer than this build of Cordon knows (\(schemaVersion)): open it with a newer Cordon")
            }
            let existing = try db.tableExists("records")
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS records (
                        seq INTEGER PRIMARY KEY,
                        time TEXT NOT NULL,
                        incident TEXT,
                        kind TEXT NOT NULL,
                        canonical BLOB NOT NULL,
                        hash TEXT NOT NULL,
                        first_seq INTEGER,
                        writer INTEGER
                    );
                    CREATE TABLE IF NOT EXISTS incidents (
                        id TEXT NOT NULL PRIMARY KEY,
                        first_seq INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE IF NOT EXISTS checkpoints (
                        seq INTEGER PRIMARY KEY,
                        hash TEXT NOT NULL,
                        time TEXT NOT NULL,
                        signature TEXT NOT NULL,
                        key TEXT NOT NULL
                    );
                    CREATE TABLE IF NOT EXISTS evidence_content (
                        id INTEGER PRIMARY KEY,
                        hash TEXT NOT NULL UNIQUE,
                        bytes BLOB NOT NULL
                    );
                    CREATE TABLE IF NOT EXISTS evidence_items (
                        id INTEGER PRIMARY KEY,
                        bucket INTEGER NOT NULL,
                        hash TEXT NOT NULL,
                        bytes BLOB NOT NULL
                    );
                    CREATE UNIQUE INDEX IF NOT EXISTS evidence_items_by_bucket ON evidence_items(bucket, hash);
                    CREATE TABLE IF NOT EXISTS claims (
                        claim TEXT NOT NULL PRIMARY KEY,
                        seq INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    """)
            if existing && version < 4, try !db.columns(in: "records").contains(where: { $0.name == "writer" }) {
                // Records of earlier journals have no writer: they count as another
                // process's, which no runner still running can have missed.
                try db.execute(sql: "ALTER TABLE records ADD COLUMN writer INTEGER")
            }
            if existing && version < 2 {
                // A journal of schema 0: index its incidents, then drop the old index.
                if try !db.columns(in: "records").contains(where: { $0.name == "first_seq" }) {
                    try db.execute(sql: "ALTER TABLE records ADD COLUMN first_seq INTEGER")
                }
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO incidents (id, first_seq)
                            SELECT incident, MIN(seq) FROM records WHERE incident IS NOT NULL GROUP BY incident;
                        UPDATE records SET first_seq = (SELECT first_seq FROM incidents WHERE id = records.incident)
                            WHERE incident IS NOT NULL;
                        """)
            }
            try db.execute(
                sql: """
                    CREATE INDEX IF NOT EXISTS records_by_incident ON records(first_seq) WHERE first_seq IS NOT NULL;
                    DROP INDEX IF EXISTS records_incident;
                    PRAGMA user_version = \(schemaVersion);
                    """)
        }
    }

    /// Starts signing on a timer (every `checkpointInterval` while records are unsigned).
    public func startCheckpointTimer() {
        condition.lock()
        timerRunning = true
        startWriterIfNeeded()
        condition.broadcast()
        condition.unlock()
    }

    /// Writes a final checkpoint, stops the timer and lets the writer thread end. An append
    /// after `close` still works: a writer thread starts for it and ends once it is idle.
    public func close() async throws {
        stopTimer()
        try await checkpoint()
        endWriter()
    }

    private func endWriter() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    /// Whether the writer thread is running (it ends after `close` once idle).
    public var isWriterRunning: Bool {
        condition.lock()
        defer { condition.unlock() }
        return writer != nil
    }

    private func stopTimer() {
        condition.lock()
        timerRunning = false
        condition.unlock()
    }

    // MARK: - Appending

    public func append(_ records: [NewRecord]) async throws -> [JournalRecord] {
        guard !records.isEmpty else { return [] }
        return try await enqueue(records)
    }

    public func post(_ records: [NewRecord]) {
        guard !records.isEmpty else { return }
        let prepared = records.map { Prepared($0, secrets: secrets) }
        condition.lock()
        // A broken journal takes nothing more; the caller learns it at its next append.
        if broken == nil {
            pending.append((prepared, nil))
            unwrittenPosts += 1
            wakeWriterIfWaiting()
        }
        condition.unlock()
    }

    /// Waits for a group of no records queued behind everything before it: the writer
    /// resumes it after the commits of all that, in order.
    public func durable() async throws {
        _ = try await enqueue([])
    }

    private func enqueue(_ records: [NewRecord]) async throws -> [JournalRecord] {
        let prepared = records.map { Prepared($0, secrets: secrets) }
        return try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            if let broken {
                condition.unlock()
                continuation.resume(throwing: Self.brokenError(broken))
                return
            }
            pending.append((prepared, continuation))
            wakeWriterIfWaiting()
            condition.unlock()
        }
    }

    static func brokenError(_ reason: String) -> Error {
        Error(message: "the journal stopped after a failed commit (\(reason)); restart to resume from what is durable")
    }

    /// How many appends waiting make the writer want to be woken: 1 while it is idle, the
    /// size of the batch it is filling, and none while it commits or waits out the commit
    /// interval (it looks at what is waiting when it is done), so that appends do not
    /// signal a writer that is not waiting for them. Guarded by `condition`.
    private var wakeAt = Int.max

    /// Called with `condition` locked, after an append was queued.
    private func wakeWriterIfWaiting() {
        startWriterIfNeeded()
        if pending.count >= wakeAt { condition.signal() }
    }

    /// Called with `condition` locked.
    private func startWriterIfNeeded() {
        guard writer == nil else { return }
        let thread = Thread { [unowned self] in self.writerLoop() }
        thread.name = "cordon-journal-writer"
        thread.stackSize = 1 << 20
        writer = thread
        thread.start()
    }

    private func writerLoop() {
        // Named for `top -H` and profilers (Foundation's `Thread.name` does not reach the
        // kernel on Linux).
        cordon_name_thread("cordon-journal")
        while true {
            condition.lock()
            wakeAt = 1
            while pending.isEmpty && !stopping {
                if timerRunning {
                    let due = lastCheckpoint + checkpointInterval
                    if ContinuousClock.now >= due { break }
                    let wait = min(due - ContinuousClock.now, .seconds(1))
                    _ = condition.wait(until: Date(timeIntervalSinceNow: wait.seconds))
                } else {
                    condition.wait()
                }
            }
            if stopping && pending.isEmpty {
                writer = nil
                condition.unlock()
                return
            }
            // `durable()` calls at the front wait for nothing: everything queued before them
            // was committed before the writer came back here. They neither wait for the
            // commit interval nor start one (which would hold back the next real commit).
            if broken == nil, pending.first?.records.isEmpty == true {
                var ready: [CheckedContinuation<[JournalRecord], any Swift.Error>] = []
                while let first = pending.first, first.records.isEmpty {
                    if let continuation = first.continuation { ready.append(continuation) }
                    pending.removeFirst()
                }
                condition.unlock()
                for continuation in ready { continuation.resume(returning: []) }
                continue
            }
            // Commit delay: callers released by the previous commit append again within
            // microseconds; waiting briefly for as many as last time fills the batch, so
            // one fsync serves them all instead of a trickle of small commits.
            if !pending.isEmpty && pending.count < lastBatchSize {
                wakeAt = lastBatchSize
                let deadline = Date(timeIntervalSinceNow: Self.commitDelay)
                while pending.count < lastBatchSize && !stopping {
                    if !condition.wait(until: deadline) { break }
                }
            }
            wakeAt = Int.max
            // Commits start at most once a millisecond: an fsync costs this kind of machine
            // about half a millisecond of CPU, so under a steady trickle of appends a commit
            // each would spend most of a core on fsyncs; waiting gathers them instead.
            if !pending.isEmpty {
                let deadline = lastCommitStart.addingTimeInterval(Self.minimumCommitInterval)
                while !stopping && Date() < deadline {
                    _ = condition.wait(until: deadline)
                }
            }
            if let broken {
                // Queued behind posted records whose commit failed: they would follow a
                // gap in the caller's view of the chain, so they fail too.
                let refused = pending
                pending = []
                unwrittenPosts -= refused.count { $0.continuation == nil }
                condition.unlock()
                for group in refused { group.continuation?.resume(throwing: Self.brokenError(broken)) }
                continue
            }
            let timerDue = timerRunning && ContinuousClock.now - lastCheckpoint >= checkpointInterval
            if pending.isEmpty {
                // Woken by the checkpoint timer. (A batch is never only `durable()` calls:
                // those at the front were answered above, and pending only grows behind
                // a group with records.)
                condition.unlock()
                if timerDue { _ = try? checkpointNow() }
                continue
            }
            lastCommitStart = Date()
            lastBatchSize = pending.count
            let batch = pending
            pending = []
            condition.unlock()

            let groups = batch.map(\.records)
            // Evidence put before these records were appended (so everything they cite)
            // commits in the same transaction.
            let blobs = evidence.takePending()
            // Posted records were handed out when posted: if their commit fails, the
            // callers' view is ahead of the database.
            let posted = batch.count { $0.continuation == nil }
            do {
                let key = self.key
                let every = checkpointEvery
                let writerID = self.writerID
                if firstSeqs.count > Self.firstSeqCacheLimit { firstSeqs.removeAll(keepingCapacity: true) }
                var firsts = firstSeqs
                firstSeqs = [:]
                let (written, signed) = try pool.write { db -> ([Result<[JournalRecord], JournalClaimConflict>], Bool) in
                    // The chain's head, read once: the evidence's bucket and the records' seqs follow it.
                    let head = try Self.head(db)
                    try EvidenceStore.insert(blobs, nextSeq: head.seq + 1, db: db)
                    return try Self.write(groups, after: head, db: db, key: key, checkpointEvery: every, writer: writerID, firstSeqs: &firsts)
                }
                firstSeqs = firsts
                if signed { noteCheckpoint() }
                // A posted group refused for its claim: the poster's view is ahead of the
                // journal, as after a failed commit (posted records make no claims).
                let refusedPost = zip(batch, written).first { group, result in
                    if group.continuation == nil, case .failure = result { return true }
                    return false
                }
                condition.lock()
                commits += 1
                committedRecords += written.reduce(0) { $0 + ((try? $1.get().count) ?? 0) }
                writerCPU = threadCPUSeconds()
                unwrittenPosts -= posted
                if let refusedPost, case .failure(let conflict) = refusedPost.1 { broken = "a posted record made a claim already made: \(conflict)" }
                condition.unlock()
                for (group, result) in zip(batch, written) {
                    switch result {
                    case .success(let records): group.continuation?.resume(returning: records)
                    case .failure(let conflict): group.continuation?.resume(throwing: conflict)
                    }
                }
            } catch {
                evidence.restorePending(blobs)
                condition.lock()
                if posted > 0 { broken = "\(error)" }
                unwrittenPosts -= posted
                condition.unlock()
                for group in batch { group.continuation?.resume(throwing: error) }
            }
            if timerDue { _ = try? checkpointNow() }
        }
    }

    private func noteCheckpoint() {
        condition.lock()
        lastCheckpoint = .now
        condition.unlock()
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
        _ groups: [[Prepared]], after head: (seq: Int64, hash: String), db: Database, key: SigningKey, checkpointEvery: Int,
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
                try insert.execute(arguments: [seq, record.time, record.incident, record.kind, canonical, record.hash, first, writer])
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
        if seq - lastSigned >= Int64(checkpointEvery) {
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

    static func sign(db: Database, seq: Int64, hash: String, key: SigningKey) throws {
        let signature = try key.sign(Checkpoint.message(seq: seq, hash: hash))
        try db.execute(
            sql: "INSERT OR REPLACE INTO checkpoints (seq, hash, time, signature, key) VALUES (?, ?, ?, ?, ?)",
            arguments: [seq, hash, Timestamp.string(Date()), signature, key.fingerprint])
    }

    @discardableResult
    public func checkpoint() async throws -> Checkpoint? {
        // Sign what was posted too.
        try await barrier()
        let blobs = evidence.takePending()
        let result: Checkpoint?
        do {
            result = try await pool.write { [key] db -> Checkpoint? in
                if !blobs.isEmpty { try EvidenceStore.insert(blobs, nextSeq: Self.head(db).seq + 1, db: db) }
                return try Self.checkpoint(db: db, key: key)
            }
        } catch {
            evidence.restorePending(blobs)
            throw error
        }
        noteCheckpoint()
        return result
    }

    private func checkpointNow() throws -> Checkpoint? {
        let result = try pool.write { [key] db in try Self.checkpoint(db: db, key: key) }
        noteCheckpoint()
        return result
    }

    static func checkpoint(db: Database, key: SigningKey) throws -> Checkpoint? {
        let (seq, hash) = try head(db)
        let lastSigned = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM checkpoints") ?? 0
        if seq > lastSigned { try sign(db: db, seq: seq, hash: hash, key: key) }
        return try latestCheckpoint(db)
    }

    static func latestCheckpoint(_ db: Database) throws -> Checkpoint? {
        try Row.fetchOne(db, sql: "SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1").map(checkpoint)
    }

    static func checkpoint(_ row: Row) -> Checkpoint {
        Checkpoint(seq: row["seq"], hash: row["hash"], time: row["time"], signature: row["signature"], keyFingerprint: row["key"])
    }

    // MARK: - Reading

    /// Waits until everything appended or posted before is committed, so that reads see
    /// it: posted records still queued are flushed by an empty durable append behind
    /// them; records being written hold the writer connection, which this queues behind.
    private func barrier() async throws {
        let (queued, reason) = postState()
        if let reason { throw Self.brokenError(reason) }
        if queued { _ = try await enqueue([]) }
        try await pool.writeWithoutTransaction { _ in }
    }

    private func postState() -> (queued: Bool, broken: String?) {
        condition.lock()
        defer { condition.unlock() }
        return (unwrittenPosts > 0, broken)
    }

    public func records(from seq: Int64, limit: Int) async throws -> [JournalRecord] {
        try await barrier()
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.recordColumns) FROM records WHERE seq >= ? ORDER BY seq LIMIT ?", arguments: [seq, limit]).map(Self.record)
        }
    }

    public func records(incident: String) async throws -> [JournalRecord] {
        try await barrier()
        let oldIncidentIndex = self.oldIncidentIndex
        return try await pool.read { db in
            try Row.fetchAll(db, sql: Self.incidentRecordsQuery(old: oldIncidentIndex), arguments: [incident]).map(Self.record)
        }
    }

    /// The records of one incident, in order (through the index of `schemaVersion`, or
    /// of schema 0 when `old`).
    static func incidentRecordsQuery(old: Bool) -> String {
        old
            ? "SELECT \(recordColumns) FROM records WHERE incident = ? ORDER BY seq"
            : "SELECT \(recordColumns) FROM records WHERE first_seq = (SELECT first_seq FROM incidents WHERE id = ?) ORDER BY seq"
    }

    public func foreignRecords(after seq: Int64, limit: Int) async throws -> (records: [JournalRecord], through: Int64) {
        guard recordsWriters else { return ([], seq) }
        let writerID = self.writerID
        return try await pool.read { db in
            // One read transaction: the head and the records are of the same moment.
            let head = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM records") ?? 0
            let records = try Row.fetchAll(
                db, sql: "SELECT \(Self.recordColumns) FROM records WHERE seq > ? AND seq <= ? AND writer IS NOT ? ORDER BY seq LIMIT ?",
                arguments: [seq, head, writerID, limit]
            ).map(Self.record)
            return (records, records.count == limit ? records.last?.seq ?? head : max(seq, head))
        }
    }

    public func checkpoints(from seq: Int64 = 0) async throws -> [Checkpoint] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE seq >= ? ORDER BY seq", arguments: [seq]).map(Self.checkpoint)
        }
    }

    /// The number of records of one kind.
    public func count(kind: String) async throws -> Int {
        try await barrier()
        return try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM records WHERE kind = ?", arguments: [kind]) ?? 0
        }
    }

    /// The distinct incident ids, in order of their first record.
    public func incidents() async throws -> [String] {
        try await barrier()
        let oldIncidentIndex = self.oldIncidentIndex
        return try await pool.read { db in
            try String.fetchAll(
                db,
                sql: oldIncidentIndex
                    ? "SELECT incident FROM records WHERE incident IS NOT NULL GROUP BY incident ORDER BY MIN(seq)"
                    : "SELECT id FROM incidents ORDER BY first_seq")
        }
    }

    /// The exact hashed bytes of records `from...to`.
    public func canonicalRecords(from: Int64, to: Int64) async throws -> [(seq: Int64, bytes: Data)] {
        try await barrier()
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, canonical FROM records WHERE seq BETWEEN ? AND ? ORDER BY seq", arguments: [from, to])
                .map { ($0["seq"], $0["canonical"]) }
        }
    }

    public func records(seqs: [Int64]) async throws -> [JournalRecord] {
        try await barrier()
        guard !seqs.isEmpty else { return [] }
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.recordColumns) FROM records WHERE seq IN (\(seqs.map(String.init).joined(separator: ","))) ORDER BY seq")
                .map(Self.record)
        }
    }

    /// The writer connection's journal mode and synchronous level (2 = FULL).
    public func pragmas() async throws -> (journalMode: String, synchronous: Int, pageSize: Int, walAutocheckpoint: Int) {
        try await pool.write { db in
            (
                try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1,
                try Int.fetchOne(db, sql: "PRAGMA page_size") ?? -1, try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint") ?? -1
            )
        }
    }

    public var publicKeyPEM: String { key.publicKeyPEM }
    public var keyFingerprint: String { key.fingerprint }

    /// What `record(_:)` reads, in its order (by position: GRDB looks a column up by
    /// name with a lowercased copy of it, a few percent of replaying a journal).
    static let recordColumns = "seq, canonical, hash"

    static func record(_ row: Row) throws -> JournalRecord {
        let canonical: Data = row[1]
        let value = try JSONParser.parse(Array(canonical))
        guard let seq = value["seq"]?.numberValue?.intValue, let time = value["time"]?.stringValue,
            let kind = value["kind"]?.stringValue, let actor = value["actor"]?.stringValue,
            let prev = value["prev"]?.stringValue
        else {
            throw Error(message: "journal record \(row[0] as Int64) is malformed")
        }
        return JournalRecord(
            seq: Int64(seq), time: time, incident: value["incident"]?.stringValue, kind: kind, actor: actor,
            data: value["data"] ?? .null, prev: prev, hash: row[2])
    }
}
