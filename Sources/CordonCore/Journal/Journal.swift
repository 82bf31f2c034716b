import Foundation
import Synchronization

/// One fact in the journal, as docs/journal.md describes it: `seq`, `time`, `incident`, `kind`,
/// `actor`, `data`, `prev` and `hash` (SHA-256 over the RFC 8785 canonical JSON of the
/// record without `hash`).
public struct JournalRecord: Sendable, Equatable {
    public var seq: Int64
    /// UTC, RFC 3339 with microseconds.
    public var time: String
    public var incident: String?
    public var kind: RecordKind
    /// The runner (`cordon/VERSION@HOST`) or the human (`user:NAME`) who caused it.
    public var actor: String
    public var data: JSONValue
    public var prev: String
    public var hash: String

    public init(seq: Int64, time: String, incident: String?, kind: RecordKind, actor: String, data: JSONValue, prev: String, hash: String) {
        self.seq = seq
        self.time = time
        self.incident = incident
        self.kind = kind
        self.actor = actor
        self.data = data
        self.prev = prev
        self.hash = hash
    }

    /// The record without `hash`, as JSON.
    public var unhashed: JSONValue {
        [
            "seq": .number(JSONNumber(Int(seq))), "time": .string(time), "incident": incident.map(JSONValue.string) ?? .null,
            "kind": .string(kind.rawValue), "actor": .string(actor), "data": data, "prev": .string(prev),
        ]
    }

    /// The bytes the hash covers: the canonical form of `unhashed`, written directly
    /// (members in JCS order: actor, data, incident, kind, prev, seq, time).
    public var canonicalBytes: [UInt8] {
        var out = Self.canonicalPrefix(actor: actor, data: CanonicalJSON.bytes(data), incident: incident, kind: kind.rawValue)
        Self.appendCanonicalSuffix(prev: prev, seq: seq, time: time, to: &out)
        return out
    }

    /// The canonical form up to `prev`: the members the appender knows (in JCS order,
    /// `prev`, `seq` and `time` come last, so the writer only appends those).
    public static func canonicalPrefix(actor: String, data canonicalData: [UInt8], incident: String?, kind: String) -> [UInt8] {
        canonicalPrefixAndDataOffset(actor: actor, data: canonicalData, incident: incident, kind: kind).bytes
    }

    /// `canonicalPrefix`, and where `data` starts in it.
    public static func canonicalPrefixAndDataOffset(
        actor: String, data canonicalData: [UInt8], incident: String?, kind: String
    ) -> (bytes: [UInt8], dataOffset: Int) {
        var out: [UInt8] = []
        out.reserveCapacity(canonicalData.count + 256)
        out.append(contentsOf: #"{"actor":"#.utf8)
        JSONWriter.writeString(actor, to: &out)
        out.append(contentsOf: #","data":"#.utf8)
        let dataOffset = out.count
        out.append(contentsOf: canonicalData)
        out.append(contentsOf: #","incident":"#.utf8)
        if let incident { JSONWriter.writeString(incident, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","kind":"#.utf8)
        JSONWriter.writeString(kind, to: &out)
        return (out, dataOffset)
    }

    /// The rest of the canonical form, after `canonicalPrefix`.
    public static func appendCanonicalSuffix(prev: String, seq: Int64, time: String, to out: inout [UInt8]) {
        out.append(contentsOf: #","prev":"#.utf8)
        JSONWriter.writeString(prev, to: &out)
        out.append(contentsOf: #","seq":"#.utf8)
        out.append(contentsOf: String(seq).utf8)
        out.append(contentsOf: #","time":"#.utf8)
        JSONWriter.writeString(time, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// A record as it will be written, before the journal gives it its place in the chain
    /// (no `seq`, `prev` or `hash` yet), stamped `now` unless it carries its own time: what
    /// the engine's index and the metrics need of a record they do not wait for.
    public init(unwritten record: NewRecord, now: Date) {
        self.init(
            seq: 0, time: Timestamp.string(record.time ?? now), incident: record.incident, kind: record.kind, actor: record.actor,
            data: record.data, prev: "", hash: "")
    }

    /// The whole record, hash included.
    public var json: JSONValue {
        guard case .object(var o) = unhashed else { return unhashed }
        o["hash"] = .string(hash)
        return .object(o)
    }

    /// Evidence hashes the record refers to (`data.evidence[].sha256`).
    public var evidenceHashes: [String] {
        (data["evidence"]?.arrayValue ?? []).compactMap { $0["sha256"]?.stringValue }
    }

    public static let genesis = String(repeating: "0", count: 64)
}

/// A record to append; the journal assigns `seq`, `prev` and `hash`.
public struct NewRecord: Sendable {
    public var incident: String?
    public var kind: RecordKind
    public var actor: String
    public var data: JSONValue
    /// When it happened; nil: now (drills pass their virtual clock's time).
    public var time: Date?
    /// Told the record's seq when the journal writes it (before its commit is durable).
    public var slot: RecordSlot?
    /// A member of `data` (an object) that the journal sets, when it writes the record, to
    /// the seq of a record queued before it whose seq is not yet known.
    public var seqField: SeqField?
    /// A name only one record of the journal may carry, whatever process writes it (the
    /// decision on one approval, the close of one incident). An append whose record makes
    /// a claim already made is refused as a whole with `JournalClaimConflict`, which names
    /// the record that made it first. Claims are checked for appended records only: a
    /// posted record must not make one.
    public var claim: String?

    public init(incident: String? = nil, kind: RecordKind, actor: String, data: JSONValue = [:], time: Date? = nil) {
        self.incident = incident
        self.kind = kind
        self.actor = actor
        self.data = data
        self.time = time
    }
}

/// An append refused because one of its records makes a claim another record made first.
public struct JournalClaimConflict: Error, Sendable, CustomStringConvertible {
    public var claim: String
    /// The record that made the claim.
    public var existing: JournalRecord

    public init(claim: String, existing: JournalRecord) {
        self.claim = claim
        self.existing = existing
    }

    public var description: String { "\(claim) was already claimed by record \(existing.seq) (\(existing.kind), \(existing.actor), \(existing.time))" }
}

/// A record's seq, known once the journal writes it. Records are written in the order
/// they were queued, so a record queued after the one a slot names can refer to it
/// (`NewRecord.seqField`) before the slot is filled. A slot filled by a commit that then
/// fails names nothing: the journal stops (a queued record's commit failed).
public final class RecordSlot: Sendable {
    private let value = Atomic<Int64>(0)
    public init() {}
    public var seq: Int64? {
        let v = value.load(ordering: .acquiring)
        return v == 0 ? nil : v
    }
    public func fill(_ seq: Int64) { value.store(seq, ordering: .releasing) }
}

/// `data[key]` is the seq of the record `slot` names.
public struct SeqField: Sendable {
    public var key: String
    public var slot: RecordSlot
    public init(key: String, slot: RecordSlot) {
        self.key = key
        self.slot = slot
    }

    /// `data` (an object; anything else unchanged) with member `key` set to `seq`.
    public static func set(_ key: String, to seq: Int64, in data: JSONValue) -> JSONValue {
        guard case .object(var members) = data else { return data }
        members[key] = .number(JSONNumber(Int(seq)))
        return .object(members)
    }
}

/// Where a record is: its seq, or the slot that will have it.
public enum RecordRef: Sendable {
    case seq(Int64)
    case slot(RecordSlot)

    public var seq: Int64? {
        switch self {
        case .seq(let seq): seq
        case .slot(let slot): slot.seq
        }
    }
}

/// A signed checkpoint: an Ed25519 signature over `(seq, hash)`.
public struct Checkpoint: Sendable, Equatable {
    public var seq: Int64
    public var hash: String
    public var time: String
    /// Base64 of the 64-byte Ed25519 signature over `message`.
    public var signature: String
    /// SHA-256 fingerprint (hex) of the signing public key.
    public var keyFingerprint: String

    public init(seq: Int64, hash: String, time: String, signature: String, keyFingerprint: String) {
        self.seq = seq
        self.hash = hash
        self.time = time
        self.signature = signature
        self.keyFingerprint = keyFingerprint
    }

    /// The signed bytes: `cordon-checkpoint:v1:SEQ:HASH` in ASCII.
    public static func message(seq: Int64, hash: String) -> [UInt8] { Array("cordon-checkpoint:v1:\(seq):\(hash)".utf8) }

    public var json: JSONValue {
        [
            "seq": .number(JSONNumber(Int(seq))), "hash": .string(hash), "time": .string(time), "signature": .string(signature),
            "key": .string(keyFingerprint),
        ]
    }
}

/// The append-only record of everything Cordon does: the extension point between the
/// engine and the storage (`SQLiteJournal` by default).
///
/// Several journals may write to one store (processes opening one database file, runners
/// sharing a server). Together they keep one chain, whichever of them appends:
/// - seqs are 1, 2, 3… without gaps; each record's `prev` is the `hash` of the record
///   before it (`JournalRecord.genesis` for the first) and its `hash` the SHA-256 of its
///   `canonicalBytes`, so a chain verifies the same whatever backend wrote it;
/// - a record becomes visible to reads only with every record before it: a reader that
///   has seen seq N has seen every record up to N (`foreignRecords`' cursor relies on it);
/// - a claim (`NewRecord.claim`) is made by at most one record of the store;
/// - checkpoints sign that one chain with the store's Ed25519 key.
/// Evidence is stored apart (`EvidenceSink`): what was stored before an append must be
/// durable no later than that append, so that no record cites evidence a crash lost.
public protocol Journal: Sendable {
    /// Appends records atomically, in order; returns once they are durable.
    func append(_ records: [NewRecord]) async throws -> [JournalRecord]
    /// Queues records behind everything appended or queued before them, atomically and in
    /// order, without waiting: they get their place in the chain when the journal writes
    /// them and are durable with that commit, at the latest when a later `append` returns.
    /// For records whose loss in a crash recovery repairs (the result of a checkable step,
    /// an incident's completion). A failure to write them stops the journal: every later
    /// append, read and checkpoint throws. Reads through this journal see them.
    func post(_ records: [NewRecord])
    /// Returns once every record queued before the call (appended or posted) is durable;
    /// throws when a commit of posted records failed.
    func durable() async throws
    /// Records in `seq` order, starting at `seq`.
    func records(from seq: Int64, limit: Int) async throws -> [JournalRecord]
    /// An incident's records in `seq` order.
    func records(incident: String) async throws -> [JournalRecord]
    /// Records after `seq` that another journal (another process) appended, at most
    /// `limit` of them, and the seq up to which the journal was searched (the next call's
    /// `after`): how a runner learns of a decision made with `cordon approve`, a
    /// `cordon close` or a rollback. A backend whose store no other journal writes to
    /// returns none, through the head.
    func foreignRecords(after seq: Int64, limit: Int) async throws -> (records: [JournalRecord], through: Int64)
    /// Signs the current head now (if anything is unsigned) and returns the newest checkpoint.
    @discardableResult func checkpoint() async throws -> Checkpoint?
    /// The checkpoints of seq `seq` and later, in `seq` order: what an evidence bundle
    /// carries to prove the records it exports.
    func checkpoints(from seq: Int64) async throws -> [Checkpoint]
}

extension Journal {
    @discardableResult
    public func append(_ record: NewRecord) async throws -> JournalRecord {
        try await append([record])[0]
    }
}

/// A journal that hands everything to another (`wrapped`) except what it implements
/// itself: a wrapper that counts appends (metrics) or changes one call (tests) writes only
/// that call.
public protocol ForwardingJournal: Journal {
    var wrapped: any Journal { get }
}

extension ForwardingJournal {
    public func append(_ records: [NewRecord]) async throws -> [JournalRecord] { try await wrapped.append(records) }
    public func post(_ records: [NewRecord]) { wrapped.post(records) }
    public func durable() async throws { try await wrapped.durable() }
    public func records(from seq: Int64, limit: Int) async throws -> [JournalRecord] { try await wrapped.records(from: seq, limit: limit) }
    public func records(incident: String) async throws -> [JournalRecord] { try await wrapped.records(incident: incident) }
    public func foreignRecords(after seq: Int64, limit: Int) async throws -> (records: [JournalRecord], through: Int64) {
        try await wrapped.foreignRecords(after: seq, limit: limit)
    }
    @discardableResult public func checkpoint() async throws -> Checkpoint? { try await wrapped.checkpoint() }
    public func checkpoints(from seq: Int64) async throws -> [Checkpoint] { try await wrapped.checkpoints(from: seq) }
}

/// A record's kind (`kind` in the journal, its wire text unchanged): the ones Cordon
/// writes are named here; a journal may hold others (written by a later version), which
/// are kept and verified like any record.
public struct RecordKind: WireName {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let findingReceived: RecordKind = "finding.received"
    public static let findingAttached: RecordKind = "finding.attached"
    public static let findingDuplicate: RecordKind = "finding.duplicate"
    public static let incidentOpened: RecordKind = "incident.opened"
    /// Closed by a person (`cordon close`) or by the playbook's quiet period: later
    /// findings with its key open a new incident.
    public static let incidentClosed: RecordKind = "incident.closed"
    /// Every step of the playbook has run (or the run stopped on a failure).
    public static let incidentCompleted: RecordKind = "incident.completed"
    /// A finding no playbook matched.
    public static let findingUnmatched: RecordKind = "finding.unmatched"
    /// A step `--dry-run` would run, with its rendered inputs.
    public static let stepPlanned: RecordKind = "step.planned"
    public static let stepIntent: RecordKind = "step.intent"
    public static let stepSucceeded: RecordKind = "step.succeeded"
    public static let stepFailed: RecordKind = "step.failed"
    public static let stepSkipped: RecordKind = "step.skipped"
    public static let approvalRequested: RecordKind = "approval.requested"
    public static let approvalDecided: RecordKind = "approval.decided"
    public static let rollbackIntent: RecordKind = "rollback.intent"
    public static let rollbackSucceeded: RecordKind = "rollback.succeeded"
    public static let rollbackFailed: RecordKind = "rollback.failed"
    /// A finding (or the incident it was being handled in) whose handling was in progress
    /// during two crashes in a row: never taken up again automatically.
    public static let findingQuarantined: RecordKind = "finding.quarantined"
    /// The journal's signing key changed (`cordon journal rotate-key`).
    public static let keyRotated: RecordKind = "journal.key-rotated"
    /// An incident's evidence bundle was written (`cordon export`): names the SHA-256 of
    /// the bundle's `CONTENTS.sha256`, so that the checkpoint after it covers those files.
    public static let bundleExported: RecordKind = "bundle.exported"
}

/// RFC 3339 UTC timestamps with microseconds, as records carry them.
public enum Timestamp {
    public static func string(_ date: Date) -> String {
        let micro = Int64((date.timeIntervalSince1970 * 1_000_000).rounded(.down))
        let seconds = micro >= 0 ? micro / 1_000_000 : (micro - 999_999) / 1_000_000
        let fraction = micro - seconds * 1_000_000
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        var out: [UInt8] = []
        out.reserveCapacity(27)
        func digits(_ value: Int, _ count: Int) {
            var divisor = 1
            for _ in 1..<count { divisor *= 10 }
            var v = value
            while divisor > 0 {
                out.append(UInt8(48 + (v / divisor) % 10))
                v %= divisor
                divisor /= 10
            }
        }
        digits(Int(parts.tm_year) + 1900, 4)
        out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2)
        out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2)
        out.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2)
        out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2)
        out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2)
        out.append(UInt8(ascii: "."))
        digits(Int(fraction), 6)
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses RFC 3339 / ISO 8601 timestamps as AWS writes them (`2026-03-12T11:03:38Z`,
    /// with or without a fraction, `Z` or an offset).
    public static func parse(_ text: String) -> Date? {
        let chars = Array(text.utf8)
        func int(_ start: Int, _ count: Int) -> Int? {
            guard start + count <= chars.count else { return nil }
            var v = 0
            for c in chars[start..<(start + count)] {
                guard isDigit(c) else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard chars.count >= 19, let year = int(0, 4), chars[4] == UInt8(ascii: "-"), let month = int(5, 2),
            chars[7] == UInt8(ascii: "-"), let day = int(8, 2), chars[10] == UInt8(ascii: "T") || chars[10] == UInt8(ascii: " "),
            let hour = int(11, 2), let minute = int(14, 2), let second = int(17, 2)
        else { return nil }
        var i = 19
        var fraction = 0.0
        if i < chars.count, chars[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            while i < chars.count, isDigit(chars[i]) {
                fraction += Double(chars[i] - 48) * scale
                scale /= 10
                i += 1
            }
        }
        var offset = 0
        if i < chars.count {
            switch chars[i] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"): i += 1
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                guard let h = int(i + 1, 2), let m = int(i + 4, 2) else { return nil }
                offset = (h * 3600 + m * 60) * (chars[i] == UInt8(ascii: "-") ? -1 : 1)
                i += 6
            default: return nil
            }
        }
        guard i == chars.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        return Date(timeIntervalSince1970: Double(seconds - offset) + fraction)
    }
}
