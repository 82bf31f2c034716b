import CordonCore
import CordonTestSupport
import Crypto
import Foundation
import Testing

@testable import CordonJournal

/// A backend of the `Journal` protocol, for the contract checks that every backend must pass.
enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite, memory

    var description: String { rawValue }

    /// A new, empty store of this backend.
    struct Store {
        /// The store's first opening.
        var journal: any Journal
        /// Opens the store again, as another process does.
        var reopen: () throws -> any Journal
        var publicKey: Curve25519.Signing.PublicKey
        var keyFingerprint: String
    }

    func open(secrets: SecretStore? = nil, checkpointEvery: Int = 100) throws -> Store {
        switch self {
        case .sqlite:
            let dir = temporaryDataDirectory()
            let journal = try SQLiteJournal(directory: dir, secrets: secrets, checkpointEvery: checkpointEvery)
            return Store(
                journal: journal, reopen: { try SQLiteJournal(directory: dir, secrets: secrets, checkpointEvery: checkpointEvery) },
                publicKey: try #require(journal.key).publicKeyRaw, keyFingerprint: try #require(journal.keyFingerprint))
        case .memory:
            let storage = MemoryJournal.Storage(checkpointEvery: checkpointEvery)
            return Store(
                journal: MemoryJournal(storage: storage, secrets: secrets), reopen: { MemoryJournal(storage: storage, secrets: secrets) },
                publicKey: storage.publicKey, keyFingerprint: storage.keyFingerprint)
        }
    }
}

/// The `Journal` contract, checked against every backend: what the engine relies on, so
/// that a test on `MemoryJournal` says something about a runner on `SQLiteJournal`.
@Suite struct JournalContractTests {
    static let secretValue = "xoxb-CONTRACT-SECRET-0042"

    static func secrets() -> SecretStore {
        let secrets = SecretStore(environment: ["CONTRACT_TOKEN": secretValue])
        _ = secrets.value("CONTRACT_TOKEN")
        return secrets
    }

    static let time = Date(timeIntervalSince1970: 1_772_359_200.123456)

    /// Appends and posts a fixed set of records (fixed times, an incident, a redacted
    /// secret, a record that refers to the seq of one queued before it, in another
    /// group and in its own), then signs; returns what the journal holds.
    static func write(_ journal: any Journal) async throws -> (records: [JournalRecord], checkpoint: Checkpoint?) {
        func record(_ kind: RecordKind, incident: String? = nil, _ data: JSONValue = [:], offset: Double) -> NewRecord {
            NewRecord(incident: incident, kind: kind, actor: "cordon/contract", data: data, time: time.addingTimeInterval(offset))
        }
        try await journal.append(record("test.first", ["n": 1, "text": "é ✓ \u{1F600} \"quoted\"", "nested": ["b": [1, .number(JSONNumber(2.5)), .number(JSONNumber(1e21)), true, nil], "a": "x"]], offset: 0))
        var received = record(RecordKind.findingReceived, ["finding": ["id": "f1"], "token": .string("Bearer \(secretValue)")], offset: 1)
        let slot = RecordSlot()
        received.slot = slot
        journal.post([received])
        var opened = record(RecordKind.incidentOpened, incident: "inc-1", ["playbook": "p", "zeta": "last"], offset: 2)
        opened.seqField = SeqField(key: "finding_seq", slot: slot)
        _ = try await journal.append([opened, record(RecordKind.stepIntent, incident: "inc-1", ["step": "first"], offset: 2.5)])
        // A slot filled within the group that refers to it.
        var second = record(RecordKind.findingReceived, ["finding": ["id": "f2"]], offset: 3)
        let secondSlot = RecordSlot()
        second.slot = secondSlot
        var attached = record(RecordKind.findingAttached, incident: "inc-1", ["finding": ["id": "f2"]], offset: 3)
        attached.seqField = SeqField(key: "finding_seq", slot: secondSlot)
        journal.post([second, attached])
        try await journal.durable()
        let checkpoint = try await journal.checkpoint()
        return (try await journal.records(from: 1, limit: 100), checkpoint)
    }

    @Test func theSameRecordsMakeTheSameChainInEveryBackend() async throws {
        var chains: [Backend: [JournalRecord]] = [:]
        for backend in Backend.allCases {
            let store = try backend.open(secrets: Self.secrets())
            let (records, checkpoint) = try await Self.write(store.journal)
            try #require(records.map(\.seq) == [1, 2, 3, 4, 5, 6], "\(backend)")
            #expect(records[2].data["finding_seq"] == 2 && records[5].data["finding_seq"] == 5, "\(backend)")
            #expect(records[1].data["token"] == "Bearer «secret:CONTRACT_TOKEN»", "\(backend)")
            #expect(records.allSatisfy { $0.time.hasPrefix("2026-03-01T10:00:0") }, "\(backend)")
            #expect(checkpoint?.seq == 6 && checkpoint?.hash == records.last?.hash, "\(backend)")
            #expect(try await JournalChain.problems(in: store.journal, publicKey: store.publicKey) == [], "\(backend)")
            chains[backend] = records
        }
        // Record for record, hash for hash.
        let sqlite = try #require(chains[.sqlite])
        let memory = try #require(chains[.memory])
        #expect(sqlite == memory)
        #expect(sqlite.map(\.hash) == memory.map(\.hash))
    }

    @Test(arguments: Backend.allCases) func appendsAreNumberedInOrderAndReadBack(_ backend: Backend) async throws {
        let journal = try backend.open().journal
        #expect(try await journal.append([]).isEmpty)
        let first = try await journal.append([
            NewRecord(incident: "inc-a", kind: "test", actor: "a", data: ["i": 1]), NewRecord(kind: "test", actor: "a", data: ["i": 2]),
        ])
        let second = try await journal.append([NewRecord(incident: "inc-b", kind: "test", actor: "b", data: ["i": 3])])
        let third = try await journal.append(NewRecord(incident: "inc-a", kind: "test", actor: "a", data: ["i": 4]))
        let all = try await journal.records(from: 1, limit: 100)
        #expect(all == first + second + [third])
        #expect(all.map(\.seq) == [1, 2, 3, 4])
        #expect(all.first?.prev == JournalRecord.genesis)
        for (a, b) in zip(all, all.dropFirst()) { #expect(b.prev == a.hash) }
        for record in all { #expect(record.hash == SHA256.hash(data: record.canonicalBytes).hex) }
        #expect(try await journal.records(from: 2, limit: 2).map(\.seq) == [2, 3])
        #expect(try await journal.records(from: 5, limit: 10).isEmpty)
        #expect(try await journal.records(incident: "inc-a").map(\.seq) == [1, 4])
        #expect(try await journal.records(incident: "inc-b").map(\.seq) == [3])
        #expect(try await journal.records(incident: "inc-none").isEmpty)
    }

    @Test(arguments: Backend.allCases) func postedRecordsKeepTheirPlaceAndAreDurableWhenDurableReturns(_ backend: Backend) async throws {
        let store = try backend.open()
        let journal = store.journal
        var posted = NewRecord(incident: "inc-1", kind: "test.posted", actor: "a", data: ["n": 1])
        let slot = RecordSlot()
        posted.slot = slot
        journal.post([posted])
        try await journal.append(NewRecord(incident: "inc-1", kind: "test.appended", actor: "a", data: ["n": 2]))
        #expect(slot.seq == 1, "written before the append behind it returned")
        journal.post([NewRecord(incident: "inc-1", kind: "test.posted", actor: "a", data: ["n": 3])])
        // A read through the journal sees what was posted before it.
        #expect(try await journal.records(incident: "inc-1").compactMap { $0.data["n"]?.numberValue?.intValue } == [1, 2, 3])
        journal.post([NewRecord(kind: "test.posted", actor: "a", data: ["n": 4])])
        try await journal.durable()
        // Durable: another opening of the store reads it.
        #expect(try await store.reopen().records(from: 1, limit: 10).map(\.kind) == ["test.posted", "test.appended", "test.posted", "test.posted"])
        journal.post([NewRecord(kind: "test.posted", actor: "a", data: ["n": 5])])
        // A checkpoint signs what was posted before it.
        #expect(try await journal.checkpoint()?.seq == 5)
        #expect(try await JournalChain.problems(in: journal, publicKey: store.publicKey) == [])
    }

    static func decision(_ by: String, claim: String = "approval:inc-1:7") -> NewRecord {
        var record = NewRecord(incident: "inc-1", kind: RecordKind.approvalDecided, actor: "user:\(by)", data: ["by": .string(by)])
        record.claim = claim
        return record
    }

    @Test(arguments: Backend.allCases) func aClaimIsMadeOnceAcrossOpeningsAndARefusedGroupWritesNothing(_ backend: Backend) async throws {
        let store = try backend.open()
        let runner = store.journal
        let cli = try store.reopen()
        let won = try await runner.append(Self.decision("alice"))
        await #expect {
            try await cli.append([NewRecord(kind: "before", actor: "bob"), Self.decision("bob")])
        } throws: { error in
            guard let conflict = error as? JournalClaimConflict else { return false }
            return conflict.claim == "approval:inc-1:7" && conflict.existing == won
        }
        await #expect(throws: JournalClaimConflict.self) { try await runner.append(Self.decision("carol")) }
        // Nothing of a refused group is written; other claims, and records with none, pass.
        #expect(try await cli.records(from: 1, limit: 10) == [won])
        _ = try await cli.append(Self.decision("dave", claim: "approval:inc-1:9"))
        _ = try await runner.append(NewRecord(kind: "after", actor: "t"))
        #expect(try await runner.records(from: 1, limit: 10).map(\.actor) == ["user:alice", "user:dave", "t"])
    }

    @Test(arguments: Backend.allCases) func aPostedRecordThatCannotBeWrittenStopsItsOpening(_ backend: Backend) async throws {
        let store = try backend.open()
        let journal = store.journal
        try await journal.append(Self.decision("alice"))
        // Posted records must make no claim: one that repeats a claim cannot be written,
        // and its poster's view is ahead of the store.
        journal.post([Self.decision("bob")])
        _ = try? await journal.durable()
        let error = await #expect(throws: (any Error).self) { try await journal.append(NewRecord(kind: "test", actor: "a")) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("stopped after a failed commit"))
        #expect("\(error.map { "\($0)" } ?? "")".contains("approval:inc-1:7"))
        await #expect(throws: (any Error).self) { try await journal.records(from: 1, limit: 10) }
        await #expect(throws: (any Error).self) { try await journal.records(incident: "inc-1") }
        await #expect(throws: (any Error).self) { try await journal.checkpoint() }
        await #expect(throws: (any Error).self) { try await journal.durable() }
        // Another opening of the store goes on.
        let other = try store.reopen()
        try await other.append(NewRecord(kind: "test", actor: "b"))
        #expect(try await other.records(from: 1, limit: 10).map(\.actor) == ["user:alice", "b"])
    }

    @Test(arguments: Backend.allCases) func foreignRecordsAreThoseAnotherOpeningWrote(_ backend: Backend) async throws {
        let store = try backend.open()
        let runner = store.journal
        let cli = try store.reopen()
        _ = try await runner.append((0..<5).map { NewRecord(kind: "mine", actor: "runner", data: ["i": .number(JSONNumber($0))]) })
        let none = try await runner.foreignRecords(after: 0, limit: 100)
        #expect(none.records.isEmpty && none.through == 5)
        _ = try await cli.append(Self.decision("alice"))
        runner.post([NewRecord(kind: "mine", actor: "runner")])
        try await runner.durable()
        _ = try await cli.append(NewRecord(incident: "inc-1", kind: RecordKind.incidentClosed, actor: "user:alice"))
        let (seen, through) = try await runner.foreignRecords(after: 0, limit: 100)
        #expect(seen.map(\.kind) == [RecordKind.approvalDecided, RecordKind.incidentClosed])
        #expect(seen.map(\.seq) == [6, 8])
        #expect(through == 8)
        // Paged by the limit, and nothing past the cursor.
        let (page, upTo) = try await runner.foreignRecords(after: 0, limit: 1)
        #expect(page.map(\.seq) == [6] && upTo == 6)
        let (rest, end) = try await runner.foreignRecords(after: upTo, limit: 1)
        #expect(rest.map(\.seq) == [8] && end == 8)
        let after = try await runner.foreignRecords(after: 8, limit: 10)
        #expect(after.records.isEmpty && after.through == 8)
        // The records are the store's, as every opening reads them.
        #expect(seen == (try await cli.records(from: 1, limit: 10)).filter { $0.seq == 6 || $0.seq == 8 })
        let (mine, _) = try await cli.foreignRecords(after: 0, limit: 100)
        #expect(mine.map(\.kind) == Array(repeating: "mine", count: 6))
    }

    @Test(arguments: Backend.allCases) func checkpointsSignTheChainWithTheStoresKey(_ backend: Backend) async throws {
        let store = try backend.open(checkpointEvery: 3)
        let journal = store.journal
        #expect(try await journal.checkpoint() == nil, "nothing to sign")
        for i in 0..<7 { try await journal.append(NewRecord(kind: "test", actor: "a", data: ["i": .number(JSONNumber(i))])) }
        #expect(try await journal.checkpoints(from: 0).map(\.seq) == [3, 6])
        let last = try #require(try await journal.checkpoint())
        #expect(last.seq == 7)
        #expect(try await journal.checkpoint() == last, "nothing new to sign")
        let checkpoints = try await journal.checkpoints(from: 4)
        #expect(checkpoints.map(\.seq) == [6, 7])
        let records = try await journal.records(from: 1, limit: 10)
        for checkpoint in checkpoints {
            #expect(checkpoint.hash == records.first { $0.seq == checkpoint.seq }?.hash)
            #expect(checkpoint.keyFingerprint == store.keyFingerprint)
            let signature = try #require(Data(base64Encoded: checkpoint.signature))
            #expect(store.publicKey.isValidSignature(signature, for: Checkpoint.message(seq: checkpoint.seq, hash: checkpoint.hash)))
            // Not a signature of anything else.
            #expect(!store.publicKey.isValidSignature(signature, for: Checkpoint.message(seq: checkpoint.seq + 1, hash: checkpoint.hash)))
        }
        #expect(store.keyFingerprint == (try JournalPublicKey(algorithm: .ed25519, der: JournalPublicKey.ed25519Prefix + Array(store.publicKey.rawRepresentation))).fingerprint)
        #expect(try await JournalChain.problems(in: journal, publicKey: store.publicKey) == [])
        // Another opening signs with the same key, over the same chain.
        let other = try store.reopen()
        try await other.append(NewRecord(kind: "test", actor: "b"))
        let signed = try #require(try await other.checkpoint())
        #expect(signed.seq == 8 && signed.keyFingerprint == store.keyFingerprint)
        #expect(try await JournalChain.problems(in: journal, publicKey: store.publicKey) == [])
        // A key that is not the store's does not verify it.
        #expect(try await JournalChain.problems(in: journal, publicKey: Curve25519.Signing.PrivateKey().publicKey).count == 4)
    }
}
