import CordonCore
import Crypto
import Foundation
import Synchronization

/// A `Journal` kept in memory, for tests: the chain, claims, posted records, foreign
/// records and checkpoints as `SQLiteJournal` keeps them, without a file.
///
/// A `Storage` is one store, as one journal file is; each `MemoryJournal` over it is one
/// opening of the store, as each process's `SQLiteJournal` is, with a writer id of its
/// own: the records another opening appended are its foreign records. Records are
/// hashed over `JournalRecord.canonicalBytes` as `SQLiteJournal` hashes them, so the same
/// records with the same times make the same chain in either.
///
/// Posted records wait in their opening's queue, as they wait for SQLite's writer thread,
/// until that opening next appends, reads, waits with `durable()` or checkpoints: until
/// then their slots are empty and other openings do not see them.
public struct MemoryJournal: Journal {
    /// One store: the records, the claims they made, the checkpoints and their key.
    public final class Storage: Sendable {
        /// Signs the checkpoints of every opening (a data directory's `SigningKey`).
        public let signingKey: Curve25519.Signing.PrivateKey
        /// A checkpoint is signed when a write leaves at least this many records unsigned
        /// (at least 1), as `SQLiteJournal.checkpointEvery`.
        public let checkpointEvery: Int
        let state = Mutex(State())

        public init(signingKey: Curve25519.Signing.PrivateKey = .init(), checkpointEvery: Int = 100) {
            self.signingKey = signingKey
            self.checkpointEvery = max(1, checkpointEvery)
        }

        public var publicKey: Curve25519.Signing.PublicKey { signingKey.publicKey }

        /// SHA-256 (hex) of the DER public key, as `SigningKey.fingerprint` (and
        /// `openssl pkey -pubin -outform DER | sha256sum`) gives it.
        public var keyFingerprint: String { SHA256.hash(data: Self.ed25519PublicKeyPrefix + Array(publicKey.rawRepresentation)).hex }

        /// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
        static let ed25519PublicKeyPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]
    }

    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public let storage: Storage
    /// This opening's mark on the records it writes.
    public let writer: Int64
    /// Values redacted from every record before it is hashed.
    public let secrets: SecretStore?

    /// A new opening of `storage` (a new, empty store by default).
    public init(storage: Storage = Storage(), secrets: SecretStore? = nil) {
        self.storage = storage
        self.secrets = secrets
        self.writer = storage.state.withLock { s in
            s.openings += 1
            return s.openings
        }
    }

    public var publicKey: Curve25519.Signing.PublicKey { storage.publicKey }
    public var keyFingerprint: String { storage.keyFingerprint }

    // MARK: - Journal

    public func append(_ records: [NewRecord]) async throws -> [JournalRecord] {
        guard !records.isEmpty else { return [] }
        let group = records.map(redacted)
        return try storage.state.withLock { s in try s.commit(group, by: writer, in: storage) }
    }

    public func post(_ records: [NewRecord]) {
        guard !records.isEmpty else { return }
        let group = records.map(redacted)
        storage.state.withLock { s in
            // A stopped opening takes nothing more; its caller learns it at its next call.
            guard s.broken[writer] == nil else { return }
            s.queued[writer, default: []].append(group)
        }
    }

    public func durable() async throws {
        _ = try storage.state.withLock { s in try s.commit(nil, by: writer, in: storage) }
    }

    public func records(from seq: Int64, limit: Int) async throws -> [JournalRecord] {
        try storage.state.withLock { s in
            _ = try s.commit(nil, by: writer, in: storage)
            let start = seq <= 1 ? 0 : Int(clamping: seq - 1)
            return start < s.records.count ? Self.first(limit, of: s.records[start...].lazy.map(\.record)) : []
        }
    }

    public func records(incident: String) async throws -> [JournalRecord] {
        try storage.state.withLock { s in
            _ = try s.commit(nil, by: writer, in: storage)
            return (s.incidents[incident] ?? []).map { s.records[$0].record }
        }
    }

    public func foreignRecords(after seq: Int64, limit: Int) async throws -> (records: [JournalRecord], through: Int64) {
        try storage.state.withLock { s in
            // What is written, not what this opening has queued: it has written none of
            // the foreign records, and its own are not foreign.
            try s.refuseIfBroken(writer)
            let head = s.head.seq
            let start = Int(clamping: max(0, seq))
            let found = start < s.records.count ? Self.first(limit, of: s.records[start...].lazy.filter { $0.writer != writer }.map(\.record)) : []
            // As `SQLiteJournal`: a full page goes as far as its last record, anything
            // less as far as the head.
            return (found, found.count == limit ? found.last?.seq ?? head : max(seq, head))
        }
    }

    @discardableResult
    public func checkpoint() async throws -> Checkpoint? {
        try storage.state.withLock { s in
            _ = try s.commit(nil, by: writer, in: storage)
            let head = s.head
            if head.seq > s.lastSigned { try s.sign(head, in: storage) }
            return s.checkpoints.last
        }
    }

    public func checkpoints(from seq: Int64 = 0) async throws -> [Checkpoint] {
        try storage.state.withLock { s in
            try s.refuseIfBroken(writer)
            return s.checkpoints.filter { $0.seq >= seq }
        }
    }

    // MARK: - Writing

    private func redacted(_ record: NewRecord) -> NewRecord {
        var r = record
        if let secrets { r.data = secrets.redact(r.data) }
        return r
    }

    /// At most `limit` of `items`; a negative limit is none, as SQL's `LIMIT -1`.
    private static func first(_ limit: Int, of items: some Sequence<JournalRecord>) -> [JournalRecord] {
        limit < 0 ? Array(items) : Array(items.prefix(limit))
    }

    /// A record as stored, with the opening that wrote it.
    struct Stored: Sendable {
        var record: JournalRecord
        var writer: Int64
    }

    /// Everything in a store, under its lock.
    struct State: Sendable {
        /// By seq: `records[i]` has seq `i + 1`.
        var records: [Stored] = []
        /// The seq of the record that made each claim.
        var claims: [String: Int64] = [:]
        /// Indexes into `records` of each incident's records, in order.
        var incidents: [String: [Int]] = [:]
        var checkpoints: [Checkpoint] = []
        /// Openings so far: the last writer id handed out.
        var openings: Int64 = 0
        /// Posted groups not yet written, by opening.
        var queued: [Int64: [[NewRecord]]] = [:]
        /// Why an opening stopped: posted records of it could not be written, so its
        /// callers' view is ahead of the store (as after `SQLiteJournal`'s failed commit).
        var broken: [Int64: String] = [:]

        var head: (seq: Int64, hash: String) {
            records.last.map { ($0.record.seq, $0.record.hash) } ?? (0, JournalRecord.genesis)
        }

        var lastSigned: Int64 { checkpoints.last?.seq ?? 0 }

        func refuseIfBroken(_ writer: Int64) throws {
            if let reason = broken[writer] {
                throw Error(message: "the journal stopped after a failed commit (\(reason)); restart to resume from what is durable")
            }
        }

        /// One commit of an opening: its posted groups, in order, then `group` if any,
        /// then a checkpoint if one is due. Throws what refused `group` (a claim made
        /// before, a reference to a record never written), or why the opening stopped.
        mutating func commit(_ group: [NewRecord]?, by writer: Int64, in storage: Storage) throws -> [JournalRecord] {
            let now = Timestamp.string(Date())
            writeQueued(by: writer, now: now)
            var result: Result<[JournalRecord], any Swift.Error> = .success([])
            do {
                try refuseIfBroken(writer)
                if let group { result = .success(try write(group, by: writer, now: now)) }
            } catch {
                result = .failure(error)
            }
            let current = self.head
            if current.seq - lastSigned >= Int64(storage.checkpointEvery) { try sign(current, in: storage) }
            return try result.get()
        }

        /// Writes an opening's posted groups; the first that cannot be written stops it,
        /// and the groups behind it are dropped (they would follow a gap in the poster's
        /// view of the chain).
        private mutating func writeQueued(by writer: Int64, now: String) {
            guard let groups = queued.removeValue(forKey: writer), broken[writer] == nil else { return }
            for group in groups {
                do {
                    _ = try write(group, by: writer, now: now)
                } catch let conflict as JournalClaimConflict {
                    broken[writer] = "a posted record made a claim already made: \(conflict)"
                    return
                } catch {
                    broken[writer] = "\(error)"
                    return
                }
            }
        }

        /// Appends a group atomically: all of it, or nothing when one of its records
        /// makes a claim already made (`JournalClaimConflict`), makes a claim twice, or
        /// refers (`seqField`) to a record not written before it.
        private mutating func write(_ group: [NewRecord], by writer: Int64, now: String) throws -> [JournalRecord] {
            var claimed: Set<String> = []
            for claim in group.compactMap(\.claim) {
                if let seq = claims[claim] { throw JournalClaimConflict(claim: claim, existing: records[Int(seq - 1)].record) }
                guard claimed.insert(claim).inserted else { throw Error(message: "two records of one append make claim \(claim)") }
            }
            var (seq, prev) = head
            // Seqs of this group's records whose slots are filled once it is stored: a
            // later record of the group may refer to an earlier one.
            var slots: [ObjectIdentifier: Int64] = [:]
            // As the caller gave them (what `append` returns), and as read back from their
            // canonical form, members in canonical order (what reads return), as SQLite
            // returns each.
            var written: [JournalRecord] = []
            var stored: [JournalRecord] = []
            for new in group {
                seq += 1
                var data = new.data
                // As `SQLiteJournal`: the member is set only in an object.
                if let field = new.seqField, case .object = data {
                    guard let value = field.slot.seq ?? slots[ObjectIdentifier(field.slot)] else {
                        throw Error(message: "record \(seq) (\(new.kind)) refers to a record that was not written before it")
                    }
                    data = SeqField.set(field.key, to: value, in: data)
                }
                var record = JournalRecord(
                    seq: seq, time: new.time.map(Timestamp.string) ?? now, incident: new.incident, kind: new.kind, actor: new.actor, data: data,
                    prev: prev, hash: "")
                let canonical = record.canonicalBytes
                record.hash = SHA256.hash(data: canonical).hex
                var readBack = record
                readBack.data = try JSONParser.parse(canonical)["data"] ?? .null
                if let slot = new.slot { slots[ObjectIdentifier(slot)] = seq }
                prev = record.hash
                written.append(record)
                stored.append(readBack)
            }
            for (new, record) in zip(group, stored) {
                if let incident = record.incident { incidents[incident, default: []].append(records.count) }
                if let claim = new.claim { claims[claim] = record.seq }
                records.append(Stored(record: record, writer: writer))
                new.slot?.fill(record.seq)
            }
            return written
        }

        mutating func sign(_ head: (seq: Int64, hash: String), in storage: Storage) throws {
            let signature = try storage.signingKey.signature(for: Checkpoint.message(seq: head.seq, hash: head.hash))
            checkpoints.append(
                Checkpoint(
                    seq: head.seq, hash: head.hash, time: Timestamp.string(Date()), signature: signature.base64EncodedString(),
                    keyFingerprint: storage.keyFingerprint))
        }
    }
}
