import CCordonSys
import CordonCore
import Crypto
import Foundation
import GRDB

/// The embedded journal: SQLite in WAL mode with `synchronous=FULL`, one hash chain,
/// Ed25519 checkpoints. Appends from any number of tasks (and processes) are serialised
/// by SQLite's write lock. A dedicated writer thread takes every append waiting when it
/// starts a transaction and commits them together (group commit), so throughput does
/// not collapse under fsync; each caller resumes once its records are durable. Records
/// posted (`post`) are queued in order without waiting and commit with the next group.
public final class SQLiteJournal: Journal, Sendable {
    public let directory: DataDirectory
    public let evidence: EvidenceStore
    let pool: DatabasePool
    /// What signs checkpoints: the key file, or a session key a KMS key certified; nil
    /// when opened read-only.
    let key: SigningKey?
    let secrets: SecretStore?
    /// Sign at least every this many records…
    public let checkpointEvery: Int
    /// …and at least this often while records are unsigned (when the timer runs).
    public let checkpointInterval: Duration
    /// What appending tasks and the writer thread share.
    let shared = Monitor(WriterState())

    /// A group of records waiting for the writer. A posted group (`post`) has no caller
    /// waiting for it: no continuation.
    typealias PendingGroup = (records: [Prepared], continuation: CheckedContinuation<[JournalRecord], any Swift.Error>?)

    /// The state appending tasks and the writer thread share, under `shared`'s lock.
    struct WriterState: Sendable {
        /// Appends waiting for the writer, in order.
        var pending: [PendingGroup] = []
        /// Posted groups not yet written.
        var unwrittenPosts = 0
        /// Set when a commit with posted records failed: the caller's view is ahead of the
        /// database, so every later append, read and checkpoint fails.
        var broken: String? = nil
        var commits = 0
        var committedRecords = 0
        var writerCPU = 0.0
        var timerRunning = false
        var stopping = false
        var writerRunning = false
        var lastCheckpoint = ContinuousClock.now
        var checkpointWatchers: [@Sendable () -> Void] = []
        var lastBatchSize = 0
        /// How many appends waiting make the writer want to be woken: 1 while it is idle,
        /// the size of the batch it is filling, and none while it commits or waits out the
        /// commit interval (it looks at what is waiting when it is done), so that appends
        /// do not signal a writer that is not waiting for them.
        var wakeAt = Int.max
    }

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
        shared.withLock { s in CommitStatistics(commits: s.commits, records: s.committedRecords, writerCPU: s.writerCPU) }
    }

    /// The page size of a new journal. A commit writes each page it changed to the WAL (two
    /// `pwrite`s a page), then a checkpoint writes it again: with 16 KiB pages instead of
    /// SQLite's 4 KiB, a finding's evidence and records take a quarter of the writes, and
    /// so a smaller share of the writer's CPU per record (docs/journal.md).
    static let pageSize = 16384
    /// WAL written between checkpoints (`wal_autocheckpoint` is this over the page size).
    static let walCheckpointBytes = 4 << 20
    /// Whether records are found by incident through the index of schema 0 (a journal of
    /// an earlier build opened read-only, so not migrated).
    let oldIncidentIndex: Bool
    /// Whether the records carry the journal that wrote them (schema 4; not so in an
    /// earlier journal opened read-only).
    let recordsWriters: Bool
    /// This journal's mark on the records it writes (`records.writer`), random for each
    /// opening: records without it were written by another process.
    let writerID = Int64.random(in: 1...Int64.max)

    public struct Error: Swift.Error, Sendable, CustomStringConvertible, CordonErrorConvertible {
        public var message: String
        public var description: String { message }
        /// The journal cannot be opened, read or written: the run fails.
        public var cordonError: CordonError { CordonError(.runFailed, message) }
    }

    /// Opens (creating if needed) the journal under `directory`, signed by `signingKey`
    /// (the data directory's own key, generated if it has none, when nil); read-only, it
    /// signs nothing. The key must be the one that signs the journal now.
    /// - Parameter secrets: values to redact from every record before it is hashed.
    public convenience init(
        directory: DataDirectory, secrets: SecretStore? = nil, signingKey: SigningKey? = nil, checkpointEvery: Int = 100,
        checkpointInterval: Duration = .seconds(60), readOnly: Bool = false
    ) throws {
        let key = try readOnly ? nil : signingKey ?? Self.dataDirectoryKey(directory).key
        try self.init(
            directory: directory, secrets: secrets, key: key, adopting: key.flatMap { k in k.publicKey.map { ($0, k.source) } },
            checkpointEvery: checkpointEvery, checkpointInterval: checkpointInterval, readOnly: readOnly)
    }

    /// Opens the journal under `directory` for writing, signed by `signer`: a key file
    /// signs checkpoints itself; a key that signs over the network (KMS) certifies a
    /// session key for this opening, which signs them.
    public static func open(
        directory: DataDirectory, secrets: SecretStore? = nil, signer: any JournalSigner, checkpointEvery: Int = 100,
        checkpointInterval: Duration = .seconds(60)
    ) async throws -> SQLiteJournal {
        if let key = signer as? SigningKey {
            return try SQLiteJournal(directory: directory, secrets: secrets, signingKey: key, checkpointEvery: checkpointEvery, checkpointInterval: checkpointInterval)
        }
        let journal = try SQLiteJournal(
            directory: directory, secrets: secrets, key: SigningKey.session(), adopting: nil, checkpointEvery: checkpointEvery,
            checkpointInterval: checkpointInterval, readOnly: false)
        try await journal.certifySession(by: signer)
        return journal
    }

    init(
        directory: DataDirectory, secrets: SecretStore?, key: SigningKey?, adopting root: (JournalPublicKey, String)?, checkpointEvery: Int,
        checkpointInterval: Duration, readOnly: Bool
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
        self.key = key
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
            if let (publicKey, source) = root {
                try pool.write { db in try Self.adoptRoot(publicKey, source: source, db: db) }
            }
        }
        // Opened for writing, the journal is at `schemaVersion` now (`migrate` brought it
        // there or threw); opened read-only, one of schema 0 is read through its old index.
        let version = try readOnly ? pool.read { db in try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 } : Self.schemaVersion
        oldIncidentIndex = version < 2
        recordsWriters = version >= 4
    }

    deinit {
        shared.withLock { s in
            s.stopping = true
            s.broadcast()
        }
    }

    /// Starts signing on a timer (every `checkpointInterval` while records are unsigned).
    public func startCheckpointTimer() {
        shared.withLock { s in
            s.timerRunning = true
            startWriterIfNeeded(s)
            s.broadcast()
        }
    }

    /// Writes a final checkpoint, stops the timer and lets the writer thread end. An append
    /// after `close` still works: a writer thread starts for it and ends once it is idle.
    public func close() async throws {
        shared.withLock { s in s.timerRunning = false }
        if key != nil { try await checkpoint() }
        shared.withLock { s in
            s.stopping = true
            s.broadcast()
        }
    }

    /// Whether the writer thread is running (it ends after `close` once idle).
    public var isWriterRunning: Bool {
        shared.withLock { s in s.writerRunning }
    }

    // MARK: - Appending

    public func append(_ records: [NewRecord]) async throws -> [JournalRecord] {
        guard !records.isEmpty else { return [] }
        return try await enqueue(records)
    }

    public func post(_ records: [NewRecord]) {
        guard !records.isEmpty else { return }
        let prepared = records.map { Prepared($0, secrets: secrets) }
        shared.withLock { s in
            // A broken journal takes nothing more; the caller learns it at its next append.
            guard s.broken == nil else { return }
            s.pending.append((prepared, nil))
            s.unwrittenPosts += 1
            wakeWriterIfWaiting(s)
        }
    }

    /// Waits for a group of no records queued behind everything before it: the writer
    /// resumes it after the commits of all that, in order.
    public func durable() async throws {
        _ = try await enqueue([])
    }

    func enqueue(_ records: [NewRecord]) async throws -> [JournalRecord] {
        let prepared = records.map { Prepared($0, secrets: secrets) }
        return try await withCheckedThrowingContinuation { continuation in
            let broken = shared.withLock { s -> String? in
                if let broken = s.broken { return broken }
                s.pending.append((prepared, continuation))
                wakeWriterIfWaiting(s)
                return nil
            }
            if let broken { continuation.resume(throwing: Self.brokenError(broken)) }
        }
    }

    static func brokenError(_ reason: String) -> Error {
        Error(message: "the journal stopped after a failed commit (\(reason)); restart to resume from what is durable")
    }

    /// After an append was queued.
    private func wakeWriterIfWaiting(_ s: Monitor<WriterState>.Locked) {
        startWriterIfNeeded(s)
        if s.pending.count >= s.wakeAt { s.signal() }
    }

    private func startWriterIfNeeded(_ s: Monitor<WriterState>.Locked) {
        guard !s.writerRunning else { return }
        let thread = Thread { [unowned self] in self.writerLoop() }
        thread.name = "cordon-journal-writer"
        thread.stackSize = 1 << 20
        s.writerRunning = true
        thread.start()
    }

    /// The public key and fingerprint of what signs checkpoints (nil when read-only).
    public var publicKeyPEM: String? { key?.publicKeyPEM }
    public var keyFingerprint: String? { key?.fingerprint }
}
