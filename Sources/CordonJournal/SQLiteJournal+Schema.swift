import CordonCore
import Foundation
import GRDB

extension SQLiteJournal {
    /// The journal's schema (`PRAGMA user_version`). 5: `keys` holds the public keys that
    /// sign the journal and the certificates of session keys (`SQLiteJournal+Keys`), and
    /// `witness_receipts` what witnesses answered for each checkpoint. 4: each record says which opening of
    /// the journal wrote it (`records.writer`: a runner finds the records other processes
    /// appended), and `claims` holds the claims records made (`NewRecord.claim`). 3:
    /// evidence is written to
    /// `evidence_items`, indexed by `(bucket, hash)` where the bucket grows with the
    /// journal (`EvidenceStore`); 2: records are found by incident through `incidents`
    /// and `records.first_seq` (an index in order of appending); 0: journals of earlier
    /// builds, indexed on `records(incident, seq)`.
    public static let schemaVersion = 5

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
                    CREATE TABLE IF NOT EXISTS keys (
                        fingerprint TEXT NOT NULL PRIMARY KEY,
                        algorithm TEXT NOT NULL,
                        public_key BLOB NOT NULL,
                        role TEXT NOT NULL,
                        from_seq INTEGER NOT NULL,
                        certified_by TEXT,
                        certificate TEXT,
                        time TEXT NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE IF NOT EXISTS witness_receipts (
                        witness TEXT NOT NULL,
                        seq INTEGER NOT NULL,
                        hash TEXT NOT NULL,
                        head TEXT NOT NULL,
                        time TEXT NOT NULL,
                        proof TEXT NOT NULL,
                        PRIMARY KEY (witness, seq)
                    ) WITHOUT ROWID;
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
}
