import CordonCore
import CordonTestSupport
import Crypto
import Foundation
import Testing

/// What `MemoryJournal` and `MemoryEvidence` do beyond the contract every backend passes
/// (`JournalContractTests`): the failures SQLite would report from a failed commit, and
/// when posted records are written.
@Suite struct MemoryJournalTests {
    @Test func postedRecordsWaitForTheirOpeningsNextCall() async throws {
        let journal = MemoryJournal()
        let other = MemoryJournal(storage: journal.storage)
        #expect(journal.writer != other.writer)
        var posted = NewRecord(kind: "test.posted", actor: "a")
        let slot = RecordSlot()
        posted.slot = slot
        journal.post([posted])
        // Queued: no seq yet, and not in the store.
        #expect(slot.seq == nil)
        #expect(try await other.records(from: 1, limit: 10).isEmpty)
        #expect(try await other.foreignRecords(after: 0, limit: 10).records.isEmpty)
        try await journal.durable()
        #expect(slot.seq == 1)
        #expect(try await other.foreignRecords(after: 0, limit: 10).records.map(\.kind) == ["test.posted"])
        // Another opening's queue is its own: appending there writes none of this one's.
        journal.post([NewRecord(kind: "test.posted", actor: "a")])
        try await other.append(NewRecord(kind: "test.other", actor: "b"))
        #expect(try await other.records(from: 1, limit: 10).map(\.kind) == ["test.posted", "test.other"])
        #expect(try await journal.records(from: 1, limit: 10).map(\.kind) == ["test.posted", "test.other", "test.posted"])
    }

    @Test func anAppendThatCannotBeWrittenWritesNothingAndTheJournalGoesOn() async throws {
        let journal = MemoryJournal()
        journal.post([NewRecord(kind: "test.posted", actor: "a")])
        // A record that refers to a record never written.
        var dangling = NewRecord(kind: "test.refers", actor: "a", data: ["x": 1])
        dangling.seqField = SeqField(key: "finding_seq", slot: RecordSlot())
        await #expect {
            try await journal.append([NewRecord(kind: "test.before", actor: "a"), dangling])
        } throws: { error in
            "\(error)".contains("record 3 (test.refers) refers to a record that was not written before it")
        }
        // Two records of one append making one claim.
        var first = NewRecord(kind: "test.claim", actor: "a")
        first.claim = "close:inc-1"
        await #expect {
            try await journal.append([first, first])
        } throws: { error in
            "\(error)".contains("two records of one append make claim close:inc-1")
        }
        // The record posted before was written all the same; nothing of either append was.
        #expect(try await journal.records(from: 1, limit: 10).map(\.kind) == ["test.posted"])
        // Without a member to set (data not an object), the reference is dropped, as SQLite does.
        var scalar = NewRecord(kind: "test.scalar", actor: "a", data: "text")
        scalar.seqField = SeqField(key: "finding_seq", slot: RecordSlot())
        #expect(try await journal.append(scalar).data == "text")
        #expect(try await journal.append(first).seq == 3)
        #expect(try await journal.records(from: 1, limit: 10).map(\.seq) == [1, 2, 3])
    }

    @Test func aPostedRecordThatRefersToARecordNeverWrittenStopsItsOpening() async throws {
        let journal = MemoryJournal()
        var dangling = NewRecord(kind: "test.refers", actor: "a", data: [:])
        dangling.seqField = SeqField(key: "finding_seq", slot: RecordSlot())
        journal.post([NewRecord(kind: "test.posted", actor: "a")])
        journal.post([dangling])
        journal.post([NewRecord(kind: "test.behind", actor: "a")])
        let error = await #expect(throws: MemoryJournal.Error.self) { try await journal.durable() }
        #expect(error?.message.contains("refers to a record that was not written before it") == true)
        // Nothing more is taken, and what was queued behind it is dropped.
        journal.post([NewRecord(kind: "test.after", actor: "a")])
        await #expect(throws: MemoryJournal.Error.self) { try await journal.checkpoints(from: 0) }
        await #expect(throws: MemoryJournal.Error.self) { try await journal.foreignRecords(after: 0, limit: 10) }
        #expect(try await MemoryJournal(storage: journal.storage).records(from: 1, limit: 10).map(\.kind) == ["test.posted"])
    }

    @Test func readsTakeAnySeqAndLimit() async throws {
        let journal = MemoryJournal()
        let other = MemoryJournal(storage: journal.storage)
        _ = try await journal.append((0..<5).map { NewRecord(kind: "test", actor: "a", data: ["i": .number(JSONNumber($0))]) })
        #expect(try await journal.records(from: .min, limit: 2).map(\.seq) == [1, 2])
        #expect(try await journal.records(from: .max, limit: 2).isEmpty)
        // A negative limit is none, as SQL's `LIMIT -1`.
        #expect(try await journal.records(from: 2, limit: -1).map(\.seq) == [2, 3, 4, 5])
        #expect(try await journal.records(from: 2, limit: 0).isEmpty)
        #expect(try await other.foreignRecords(after: .min, limit: -1).records.map(\.seq) == [1, 2, 3, 4, 5])
        let past = try await other.foreignRecords(after: .max, limit: 10)
        #expect(past.records.isEmpty && past.through == .max)
    }

    @Test func recordsReadBackInCanonicalFormAsFromAFile() async throws {
        let journal = MemoryJournal()
        let data: JSONValue = ["zeta": 1, "alpha": .number(try #require(JSONNumber(literal: "1.50")))]
        let appended = try await journal.append(NewRecord(kind: "test", actor: "a", data: data))
        // `append` returns the record as given; a read returns it as its canonical form
        // says, members sorted and numbers in their canonical spelling.
        #expect(appended.data == data)
        let read = try #require(try await journal.records(from: 1, limit: 1).first)
        #expect(CanonicalJSON.string(read.data) == #"{"alpha":1.5,"zeta":1}"#)
        #expect(read.data.objectValue.map { Array($0.keys) } == ["alpha", "zeta"])
        #expect(read.hash == appended.hash)
    }

    @Test func evidenceIsKeptByTheHashOfItsRedactedBytes() throws {
        let secrets = SecretStore(environment: ["TOKEN": "tok-1234567890"])
        _ = secrets.value("TOKEN")
        let evidence = MemoryEvidence(secrets: secrets)
        let reference = try evidence.store(Array("auth tok-1234567890".utf8), name: "response", mediaType: "text/plain")
        let redacted = Array("auth «secret:TOKEN»".utf8)
        let hash = SHA256.hash(data: redacted).hex
        #expect(reference == ["name": "response", "sha256": .string(hash), "size": .number(JSONNumber(redacted.count)), "media_type": "text/plain"])
        #expect(try evidence.load(hash) == redacted)
        #expect(try evidence.load(hash, citedAt: 7) == redacted)
        #expect(evidence.hashes == [hash])
        #expect(throws: MemoryEvidence.Error.self) { try evidence.load(String(repeating: "0", count: 64)) }
    }
}
