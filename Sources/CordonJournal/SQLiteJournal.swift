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
/// by SQLite's write lock; appends that arrive while a transaction commits are grouped
/// into the next one (group commit), so throughput does not collapse under fsync.
public actor SQLiteJournal: Journal {
    public let directory: DataDirectory
    public let evidence: EvidenceStore
    let pool: DatabasePool
    let key: SigningKey
    let secrets: SecretStore?
    /// Sign at least every this many records…
    public let checkpointEvery: Int
    /// …and at least this often while records are unsigned.
    public let checkpointInterval: Duration

    private var pending: [(records: [NewRecord], continuation: CheckedContinuation<[JournalRecord], any Swift.Error>)] = []
    private var writing = false
    private var lastCheckpoint = ContinuousClock.now
    private var ticker: Task<Void, Never>? = nil

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
        self.evidence = EvidenceStore(directory: directory.evidence)
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
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        configuration.busyMode = .timeout(30)
        pool = try DatabasePool(path: directory.journal.path, configuration: configuration)
        if !readOnly { try Self.migrate(pool) }
    }

    static func migrate(_ pool: DatabasePool) throws {
        try pool.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS records (
                        seq INTEGER PRIMARY KEY,
                        time TEXT NOT NULL,
                        incident TEXT,
                        kind TEXT NOT NULL,
                        canonical BLOB NOT NULL,
                        hash TEXT NOT NULL
                    );
                    CREATE INDEX IF NOT EXISTS records_incident ON records(incident, seq);
                    CREATE TABLE IF NOT EXISTS checkpoints (
                        seq INTEGER PRIMARY KEY,
                        hash TEXT NOT NULL,
                        time TEXT NOT NULL,
                        signature TEXT NOT NULL,
                        key TEXT NOT NULL
                    );
                    CREATE TABLE IF NOT EXISTS evidence (
                        hash TEXT PRIMARY KEY,
                        size INTEGER NOT NULL,
                        media_type TEXT NOT NULL,
                        first_seq INTEGER NOT NULL
                    );
                    """)
        }
    }

    /// Starts signing on a timer (every `checkpointInterval` while records are unsigned).
    public func startCheckpointTimer() {
        guard ticker == nil else { return }
        let interval = checkpointInterval
        ticker = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: min(interval, .seconds(1)))
                guard let self else { return }
                await self.checkpointIfDue()
            }
        }
    }

    private func checkpointIfDue() async {
        if ContinuousClock.now - lastCheckpoint >= checkpointInterval {
            _ = try? await checkpoint()
        }
    }

    /// Writes a final checkpoint and stops the timer.
    public func close() async throws {
        ticker?.cancel()
        ticker = nil
        try await checkpoint()
    }

    // MARK: - Appending

    public func append(_ records: [NewRecord]) async throws -> [JournalRecord] {
        guard !records.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            pending.append((records, continuation))
            if !writing {
                writing = true
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while !pending.isEmpty {
            let batch = pending
            pending = []
            let groups = batch.map { group in
                group.records.map { r in
                    var r = r
                    if let secrets { r.data = secrets.redact(r.data) }
                    return r
                }
            }
            let key = self.key
            let every = checkpointEvery
            do {
                let (written, signed) = try await pool.write { db in
                    try Self.write(groups, db: db, key: key, checkpointEvery: every)
                }
                if signed { lastCheckpoint = .now }
                for (i, group) in batch.enumerated() { group.continuation.resume(returning: written[i]) }
            } catch {
                for group in batch { group.continuation.resume(throwing: error) }
            }
        }
        writing = false
    }

    /// Appends groups of records in one transaction, continuing the chain from the head
    /// stored in the database (so several processes can share a journal), and signs a
    /// checkpoint when `checkpointEvery` records are unsigned.
    static func write(_ groups: [[NewRecord]], db: Database, key: SigningKey, checkpointEvery: Int) throws -> ([[JournalRecord]], Bool) {
        var (seq, prev) = try head(db)
        let now = Date()
        let insert = try db.cachedStatement(sql: "INSERT INTO records (seq, time, incident, kind, canonical, hash) VALUES (?, ?, ?, ?, ?, ?)")
        let insertEvidence = try db.cachedStatement(
            sql: "INSERT OR IGNORE INTO evidence (hash, size, media_type, first_seq) VALUES (?, ?, ?, ?)")
        var out: [[JournalRecord]] = []
        for group in groups {
            var written: [JournalRecord] = []
            for new in group {
                seq += 1
                var record = JournalRecord(
                    seq: seq, time: Timestamp.string(new.time ?? now), incident: new.incident, kind: new.kind, actor: new.actor,
                    data: new.data, prev: prev, hash: "")
                let canonical = record.canonicalBytes
                record.hash = SHA256.hash(data: canonical).hex
                try insert.execute(arguments: [seq, record.time, record.incident, record.kind, Data(canonical), record.hash])
                for ref in record.data["evidence"]?.arrayValue ?? [] {
                    guard let hash = ref["sha256"]?.stringValue else { continue }
                    try insertEvidence.execute(arguments: [
                        hash, ref["size"]?.numberValue?.intValue ?? 0, ref["media_type"]?.stringValue ?? "application/octet-stream", seq,
                    ])
                }
                prev = record.hash
                written.append(record)
            }
            out.append(written)
        }
        var signed = false
        let lastSigned = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM checkpoints") ?? 0
        if seq - lastSigned >= Int64(checkpointEvery) {
            try sign(db: db, seq: seq, hash: prev, key: key)
            signed = true
        }
        return (out, signed)
    }

    static func head(_ db: Database) throws -> (Int64, String) {
        if let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1") {
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
        let key = self.key
        let result = try await pool.write { db -> Checkpoint? in
            let (seq, hash) = try Self.head(db)
            let lastSigned = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM checkpoints") ?? 0
            if seq > lastSigned { try Self.sign(db: db, seq: seq, hash: hash, key: key) }
            return try Self.latestCheckpoint(db)
        }
        lastCheckpoint = .now
        return result
    }

    static func latestCheckpoint(_ db: Database) throws -> Checkpoint? {
        try Row.fetchOne(db, sql: "SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1").map(checkpoint)
    }

    static func checkpoint(_ row: Row) -> Checkpoint {
        Checkpoint(seq: row["seq"], hash: row["hash"], time: row["time"], signature: row["signature"], keyFingerprint: row["key"])
    }

    // MARK: - Reading

    public func records(from seq: Int64, limit: Int) async throws -> [JournalRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM records WHERE seq >= ? ORDER BY seq LIMIT ?", arguments: [seq, limit]).map(Self.record)
        }
    }

    public func records(incident: String) async throws -> [JournalRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM records WHERE incident = ? ORDER BY seq", arguments: [incident]).map(Self.record)
        }
    }

    public func checkpoints(from seq: Int64 = 0) async throws -> [Checkpoint] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE seq >= ? ORDER BY seq", arguments: [seq]).map(Self.checkpoint)
        }
    }

    /// The distinct incident ids, in order of their first record.
    public func incidents() async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT incident FROM records WHERE incident IS NOT NULL GROUP BY incident ORDER BY MIN(seq)")
        }
    }

    public var publicKeyPEM: String { key.publicKeyPEM }
    public var keyFingerprint: String { key.fingerprint }

    static func record(_ row: Row) throws -> JournalRecord {
        let canonical: Data = row["canonical"]
        let value = try JSONParser.parse(Array(canonical))
        guard let seq = value["seq"]?.numberValue?.intValue, let time = value["time"]?.stringValue,
            let kind = value["kind"]?.stringValue, let actor = value["actor"]?.stringValue,
            let prev = value["prev"]?.stringValue
        else {
            throw Error(message: "journal record \(row["seq"] as Int64) is malformed")
        }
        return JournalRecord(
            seq: Int64(seq), time: time, incident: value["incident"]?.stringValue, kind: kind, actor: actor,
            data: value["data"] ?? .null, prev: prev, hash: row["hash"])
    }
}
