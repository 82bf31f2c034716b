import CordonCore
import Crypto
import Foundation
import GRDB
import Testing

@testable import CordonJournal

func temporaryDataDirectory() -> DataDirectory {
    DataDirectory(FileManager.default.temporaryDirectory.appendingPathComponent("cordon-journal-\(UUID().uuidString)").path)
}

/// Opens the journal's SQLite file directly, as an attacker with file access would.
func tamper(_ directory: DataDirectory, _ sql: String, _ arguments: StatementArguments = []) throws {
    let db = try DatabaseQueue(path: directory.journal.path, configuration: .waiting)
    try db.write { try $0.execute(sql: sql, arguments: arguments) }
}

func canonical(_ directory: DataDirectory, seq: Int64) throws -> Data {
    let db = try DatabaseQueue(path: directory.journal.path, configuration: .waiting)
    return try db.read { try Data.fetchOne($0, sql: "SELECT canonical FROM records WHERE seq = ?", arguments: [seq])! }
}

@Suite struct JournalTests {
    func filled(_ count: Int, checkpointEvery: Int = 100) async throws -> (DataDirectory, SQLiteJournal) {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir, checkpointEvery: checkpointEvery)
        for i in 0..<count {
            try await journal.append(
                NewRecord(incident: "inc-\(i % 3)", kind: RecordKind.stepSucceeded, actor: "cordon/test", data: ["n": .number(JSONNumber(i)), "note": .string("record \(i)")]))
        }
        return (dir, journal)
    }

    @Test func recordsChainAndHashAsDesigned() async throws {
        let (_, journal) = try await filled(5)
        let records = try await journal.records(from: 1, limit: 100)
        #expect(records.map(\.seq) == [1, 2, 3, 4, 5])
        #expect(records[0].prev == JournalRecord.genesis)
        for (a, b) in zip(records, records.dropFirst()) { #expect(b.prev == a.hash) }
        for r in records {
            #expect(r.hash == SHA256.hash(data: r.canonicalBytes).hex)
            #expect(r.time.hasSuffix("Z") && r.time.count == 27)
        }
        // The canonical form is RFC 8785: sorted keys, no spaces.
        #expect(String(decoding: records[0].canonicalBytes, as: UTF8.self).hasPrefix(#"{"actor":"cordon/test","data":{"n":0,"note":"record 0"},"incident":"inc-0","kind":"step.succeeded","prev":"0000"#))
        #expect(try await journal.records(incident: "inc-1").map(\.seq) == [2, 5])
    }

    @Test func concurrentWritersNeverLoseOrReorder() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for i in 0..<50 {
                        try await journal.append(NewRecord(kind: "test", actor: "w\(writer)", data: ["writer": .number(JSONNumber(writer)), "i": .number(JSONNumber(i))]))
                    }
                }
            }
            try await group.waitForAll()
        }
        let records = try await journal.records(from: 1, limit: 1000)
        #expect(records.count == 400)
        #expect(records.map(\.seq) == Array(1...400))
        // Each writer's records appear in the order it wrote them.
        for writer in 0..<8 {
            let mine = records.filter { $0.actor == "w\(writer)" }.compactMap { $0.data["i"]?.numberValue?.intValue }
            #expect(mine == Array(0..<50))
        }
        try await journal.close()
        let report = try JournalVerifier(directory: dir).verify()
        #expect(report.isValid, "\(report.problems)")
        #expect(report.records == 400)
    }

    @Test func postedRecordsKeepTheirPlaceAndAreSeenByReadsAndCheckpoints() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        journal.post([NewRecord(incident: "inc-1", kind: "test.posted", actor: "a", data: ["n": 1])])
        try await journal.append(NewRecord(incident: "inc-1", kind: "test.appended", actor: "a", data: ["n": 2]))
        // Durable with the append behind it: another connection (another process) sees it.
        let other = try DatabaseQueue(path: dir.journal.path, configuration: .waiting)
        #expect(try await other.read { try String.fetchAll($0, sql: "SELECT kind FROM records ORDER BY seq") } == ["test.posted", "test.appended"])
        journal.post([NewRecord(incident: "inc-1", kind: "test.posted", actor: "a", data: ["n": 3])])
        // A read through the journal waits for what was posted before it.
        #expect(try await journal.records(incident: "inc-1").compactMap { $0.data["n"]?.numberValue?.intValue } == [1, 2, 3])
        journal.post([NewRecord(kind: "test.posted", actor: "a", data: ["n": 4])])
        // So does a checkpoint: it signs the posted record too.
        #expect(try await journal.checkpoint()?.seq == 4)
        try await journal.close()
        let report = try JournalVerifier(directory: dir).verify()
        #expect(report.isValid, "\(report.problems)")
        #expect(report.records == 4)
    }

    /// A wrapper that overrides nothing: every call reaches the journal it wraps.
    struct PlainWrapper: ForwardingJournal {
        let wrapped: any Journal
    }

    @Test func aForwardingJournalHandsEveryCallToTheJournalItWraps() async throws {
        let dir = temporaryDataDirectory()
        let base = try SQLiteJournal(directory: dir, checkpointEvery: 1000)
        let journal = PlainWrapper(wrapped: base)
        let written = try await journal.append([NewRecord(incident: "inc-1", kind: "test.appended", actor: "a")])
        #expect(written.map(\.seq) == [1])
        journal.post([NewRecord(incident: "inc-1", kind: "test.posted", actor: "a"), NewRecord(kind: "test.other", actor: "a")])
        try await journal.durable()
        // The base journal holds what went through the wrapper, and reads through the
        // wrapper are the base's.
        #expect(try await base.records(from: 1, limit: 10).map(\.kind) == ["test.appended", "test.posted", "test.other"])
        #expect(try await journal.records(from: 2, limit: 10).map(\.kind) == ["test.posted", "test.other"])
        #expect(try await journal.records(incident: "inc-1").map(\.seq) == [1, 2])
        #expect(try await base.checkpoints().isEmpty)
        let checkpoint = try await journal.checkpoint()
        #expect(checkpoint?.seq == 3)
        #expect(try await base.checkpoints().map(\.seq) == [3])
        #expect(try await journal.checkpoints(from: 3) == base.checkpoints(from: 0))
        #expect(try await journal.checkpoints(from: 4).isEmpty)
    }

    @Test func aRecordCanReferToTheSeqOfOneQueuedBeforeIt() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        try await journal.append(NewRecord(kind: "test.first", actor: "a"))
        // Posted with a slot; the records that refer to it are queued before it is written,
        // so the journal sets their member when it writes them (same commit or a later one).
        var finding = NewRecord(kind: RecordKind.findingReceived, actor: "a", data: ["finding": ["id": "f1"]])
        let slot = RecordSlot()
        finding.slot = slot
        #expect(slot.seq == nil)
        journal.post([finding])
        var opened = NewRecord(incident: "inc-1", kind: RecordKind.incidentOpened, actor: "a", data: ["playbook": "p", "zeta": "last", "finding": ["id": "f1"]])
        opened.seqField = SeqField(key: "finding_seq", slot: slot)
        var attached = NewRecord(incident: "inc-1", kind: RecordKind.findingAttached, actor: "a", data: [:])
        attached.seqField = SeqField(key: "finding_seq", slot: slot)
        journal.post([attached])
        let written = try await journal.append([opened])
        try await journal.durable()
        #expect(slot.seq == 2)
        #expect(written[0].data["finding_seq"] == 2)
        #expect(written[0].data["zeta"] == "last")
        // A record queued after the slot was filled gets the value at once.
        var later = NewRecord(incident: "inc-1", kind: RecordKind.findingAttached, actor: "a", data: ["finding": ["id": "f2"]])
        later.seqField = SeqField(key: "finding_seq", slot: slot)
        try await journal.append(later)
        let records = try await journal.records(from: 1, limit: 10)
        #expect(records.map(\.kind) == ["test.first", RecordKind.findingReceived, RecordKind.findingAttached, RecordKind.incidentOpened, RecordKind.findingAttached])
        #expect(records.dropFirst(2).map { $0.data["finding_seq"] } == [2, 2, 2])
        // The stored canonical form is the record's (what the chain's hashes cover).
        for record in records {
            #expect(try canonical(dir, seq: record.seq) == Data(record.canonicalBytes))
            #expect(record.hash == SHA256.hash(data: record.canonicalBytes).hex)
        }
        #expect(String(decoding: records[3].canonicalBytes, as: UTF8.self).contains(#""finding":{"id":"f1"},"finding_seq":2,"playbook":"p","zeta":"last"}"#))
        try await journal.close()
        let report = try JournalVerifier(directory: dir).verify()
        #expect(report.isValid, "\(report.problems)")
        #expect(report.records == 5)
    }

    @Test func durableWaitsForWhatWasPostedBeforeIt() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        // Nothing queued: returns at once.
        try await journal.durable()
        for i in 0..<20 { journal.post([NewRecord(kind: "test.posted", actor: "a", data: ["n": .number(JSONNumber(i))])]) }
        try await journal.durable()
        // Another connection (another process) sees all of them.
        let other = try DatabaseQueue(path: dir.journal.path, configuration: .waiting)
        #expect(try await other.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM records") } == 20)
        // After a failed commit of posted records, it throws.
        try tamper(dir, "CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.kind = 'test.refused' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        journal.post([NewRecord(kind: "test.refused", actor: "a")])
        let error = await #expect(throws: (any Error).self) { try await journal.durable() }
        #expect("\(error.map { "\($0)" } ?? "")".contains("refused by the test"))
    }

    @Test func aFailedCommitOfPostedRecordsStopsTheJournal() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        try await journal.append(NewRecord(kind: "test", actor: "a"))
        // A real commit failure: SQLite refuses one kind of record.
        try tamper(dir, "CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.kind = 'test.refused' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        // A durable append that fails tells its caller and leaves the journal usable.
        await #expect(throws: (any Error).self) { try await journal.append(NewRecord(kind: "test.refused", actor: "a")) }
        try await journal.append(NewRecord(kind: "test", actor: "a"))
        // A posted record that fails has no caller to tell: its caller's view is ahead of
        // the database, so everything after it fails, and says why.
        journal.post([NewRecord(kind: "test.refused", actor: "a")])
        await #expect(throws: (any Error).self) { try await journal.append(NewRecord(kind: "test", actor: "a")) }
        let error = await #expect(throws: (any Error).self) { try await journal.append(NewRecord(kind: "test", actor: "a")) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("stopped after a failed commit"))
        #expect("\(error.map { "\($0)" } ?? "")".contains("refused by the test"))
        await #expect(throws: (any Error).self) { try await journal.records(from: 1, limit: 10) }
        await #expect(throws: (any Error).self) { try await journal.checkpoint() }
        // Nothing after the failure reached the database.
        let other = try DatabaseQueue(path: dir.journal.path, configuration: .waiting)
        #expect(try await other.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM records") } == 2)
    }

    @Test func checkpointsEveryHundredRecordsAndAtClose() async throws {
        let (dir, journal) = try await filled(250)
        let checkpoints = try await journal.checkpoints()
        #expect(checkpoints.map(\.seq) == [100, 200])
        var report = try JournalVerifier(directory: dir).verify()
        #expect(report.problems.isEmpty)
        #expect(report.unsignedTail?.from == 201)
        #expect(report.unsignedTail?.count == 50)
        // What a crash since the last checkpoint can leave: reported, and accepted.
        #expect(report.isValid)
        #expect(report.signedThrough?.seq == 200)
        try await journal.close()
        #expect(try await journal.checkpoints().map(\.seq) == [100, 200, 250])
        report = try JournalVerifier(directory: dir).verify()
        #expect(report.isValid)
        #expect(report.checkpoints == 3)
    }

    /// `close` ends the writer thread (a process that opens journals one after another,
    /// as the tests do, does not keep a thread and a connection for each); an append after
    /// it still commits, on a writer that ends again once idle.
    @Test func closeEndsTheWriterThread() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        journal.startCheckpointTimer()
        try await journal.append(NewRecord(kind: "test", actor: "a"))
        #expect(journal.isWriterRunning)
        try await journal.close()
        for _ in 0..<200 where journal.isWriterRunning { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!journal.isWriterRunning)
        journal.post([NewRecord(kind: "test", actor: "b")])
        try await journal.append(NewRecord(kind: "test", actor: "c"))
        #expect(try await journal.records(from: 1, limit: 10).map(\.actor) == ["a", "b", "c"])
        for _ in 0..<200 where journal.isWriterRunning { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!journal.isWriterRunning)
        try await journal.close()
        #expect(try JournalVerifier(directory: dir).verify().isValid)
    }

    @Test func checkpointsOnATimer() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir, checkpointInterval: .milliseconds(200))
        journal.startCheckpointTimer()
        try await journal.append(NewRecord(kind: "test", actor: "a"))
        try await Task.sleep(for: .milliseconds(1500))
        #expect(try await journal.checkpoints().map(\.seq) == [1])
        try await journal.close()
    }

    @Test func keyIsPrivateAndRefusedWhenReadableByOthers() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        let keyFile = dir.keys.appendingPathComponent(SigningKey.privateKeyFile).path
        let mode = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let fingerprint = try #require(journal.keyFingerprint)
        #expect(fingerprint.count == 64)
        // Same key on reopen.
        #expect(try SQLiteJournal(directory: dir).keyFingerprint == fingerprint)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile)
        #expect {
            _ = try SQLiteJournal(directory: dir)
        } throws: { error in "\(error)".contains("readable by others") && "\(error)".contains("chmod 600") }
    }

    @Test func secretsAreRedactedBeforeHashing() async throws {
        let dir = temporaryDataDirectory()
        let secrets = SecretStore(environment: ["SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXXSECRET"])
        _ = secrets.value("SLACK_WEBHOOK_URL")
        let journal = try SQLiteJournal(directory: dir, secrets: secrets)
        let r = try await journal.append(
            NewRecord(kind: "step.intent", actor: "a", data: ["url": "https://hooks.slack.com/services/T000/B000/XXXXSECRET", "nested": ["x": "token=https://hooks.slack.com/services/T000/B000/XXXXSECRET;"]]))
        #expect(r.data["url"] == "«secret:SLACK_WEBHOOK_URL»")
        #expect(r.data["nested"]?["x"] == "token=«secret:SLACK_WEBHOOK_URL»;")
        try await journal.close()
        let bytes = try Data(contentsOf: dir.journal)
        #expect(bytes.range(of: Data("XXXXSECRET".utf8)) == nil)
    }
}

@Suite struct TamperTests {
    /// A journal of 150 records (checkpoint at 100 and, after close, at 150) with evidence.
    func journal() async throws -> DataDirectory {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        for i in 1...150 {
            var data: JSONObject = ["i": .number(JSONNumber(i))]
            if i == 42 {
                let ref = try journal.evidence.put(Array(#"{"finding":"raw bytes"}"#.utf8), name: "finding")
                data["evidence"] = [ref.json]
            }
            try await journal.append(NewRecord(incident: "inc", kind: "test", actor: "cordon/test", data: .object(data)))
        }
        try await journal.close()
        #expect(try JournalVerifier(directory: dir).verify().isValid)
        return dir
    }

    func report(_ dir: DataDirectory) throws -> VerificationReport { try JournalVerifier(directory: dir).verify() }

    /// Seqs at the edge of Int64 overflowed the verifier's arithmetic: reported instead.
    @Test(arguments: [Int64.max, Int64.min, 0])
    func aSeqOutsideWhatAJournalTakesIsReported(_ seq: Int64) async throws {
        let dir = try await journal()
        try tamper(dir, "UPDATE records SET seq = ? WHERE seq = 150", [seq])
        let r = try report(dir)
        #expect(!r.problems.isEmpty)
        #expect(r.firstBadSeq == seq, "\(r.problems)")
    }

    @Test func changedByteInData() async throws {
        let dir = try await journal()
        var bytes = try canonical(dir, seq: 70)
        let i = bytes.firstRange(of: Data("\"i\":70".utf8))!.upperBound - 1
        bytes[i] = UInt8(ascii: "1")
        try tamper(dir, "UPDATE records SET canonical = ? WHERE seq = 70", [bytes])
        let r = try report(dir)
        #expect(r.firstBadSeq == 70)
        #expect(r.problems.first?.message.contains("altered") == true)
    }

    @Test func changedRecordWithRecomputedHashesIsCaughtByTheSignature() async throws {
        let dir = try await journal()
        // Rewrite record 70 and re-chain everything after it, as a careful attacker would.
        let db = try DatabaseQueue(path: dir.journal.path, configuration: .waiting)
        try await db.write { db in
            var prev = try String.fetchOne(db, sql: "SELECT hash FROM records WHERE seq = 69")!
            for seq in Int64(70)...150 {
                let data = try Data.fetchOne(db, sql: "SELECT canonical FROM records WHERE seq = ?", arguments: [seq])!
                var value = try JSONParser.parse(Array(data)).objectValue!
                value["prev"] = .string(prev)
                if seq == 70 { value["data"] = ["i": 7000] }
                let bytes = CanonicalJSON.bytes(.object(value))
                prev = SHA256.hash(data: bytes).hex
                try db.execute(sql: "UPDATE records SET canonical = ?, hash = ? WHERE seq = ?", arguments: [Data(bytes), prev, seq])
            }
        }
        let r = try report(dir)
        #expect(!r.isValid)
        #expect(r.firstBadSeq == 100)  // the first signed checkpoint after the change
        #expect(r.problems.contains { $0.message.contains("differs from the signed checkpoint") })
    }

    @Test func deletedRecord() async throws {
        let dir = try await journal()
        try tamper(dir, "DELETE FROM records WHERE seq = 60")
        let r = try report(dir)
        #expect(r.firstBadSeq == 60)
        #expect(r.problems.first?.message.contains("missing") == true)
    }

    @Test func insertedRecord() async throws {
        let dir = try await journal()
        // Shift records 80… up by one and insert a forged record 80 linked to 79.
        let db = try DatabaseQueue(path: dir.journal.path, configuration: .waiting)
        try await db.write { db in
            try db.execute(sql: "UPDATE records SET seq = -seq WHERE seq >= 80")
            try db.execute(sql: "UPDATE records SET seq = -seq + 1 WHERE seq < 0")
            let prev = try String.fetchOne(db, sql: "SELECT hash FROM records WHERE seq = 79")!
            let forged = JournalRecord(seq: 80, time: Timestamp.string(Date()), incident: "inc", kind: "test", actor: "mallory", data: ["i": 0], prev: prev, hash: "")
            let bytes = forged.canonicalBytes
            // Indexed under its incident too, as a careful forger would: only the chain tells.
            try db.execute(
                sql: "INSERT INTO records (seq, time, incident, kind, canonical, hash, first_seq) VALUES (80, ?, 'inc', 'test', ?, ?, 1)",
                arguments: [forged.time, Data(bytes), SHA256.hash(data: bytes).hex])
        }
        let r = try report(dir)
        #expect(r.firstBadSeq == 81)
        #expect(!r.isValid)
    }

    @Test func swappedRecords() async throws {
        let dir = try await journal()
        let a = try canonical(dir, seq: 30)
        let b = try canonical(dir, seq: 31)
        let db = try DatabaseQueue(path: dir.journal.path, configuration: .waiting)
        try await db.write { db in
            let ha = try String.fetchOne(db, sql: "SELECT hash FROM records WHERE seq = 30")!
            let hb = try String.fetchOne(db, sql: "SELECT hash FROM records WHERE seq = 31")!
            try db.execute(sql: "UPDATE records SET canonical = ?, hash = ? WHERE seq = 30", arguments: [b, hb])
            try db.execute(sql: "UPDATE records SET canonical = ?, hash = ? WHERE seq = 31", arguments: [a, ha])
        }
        let r = try report(dir)
        #expect(r.firstBadSeq == 30)
        #expect(r.problems.contains { $0.message.contains("swapped") })
    }

    /// More unsigned records than a crash can leave, or none signed at all, fail whatever
    /// else holds.
    @Test func aLongUnsignedTailOrNoSignatureFails() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir, checkpointEvery: 1000)
        for i in 1...250 { try await journal.append(NewRecord(kind: "test", actor: "a", data: ["i": .number(JSONNumber(i))])) }
        try await journal.checkpoint()
        for i in 1...101 { try await journal.append(NewRecord(kind: "test", actor: "a", data: ["i": .number(JSONNumber(i))])) }
        var r = try report(dir)
        #expect(r.signedThrough?.seq == 250)
        #expect(r.problems.map(\.description) == [
            "seq 251: 101 records after seq 250 are unsigned; a crash leaves at most 100 (one checkpoint interval): records were added without the key, or the checkpoints after seq 250 were removed"
        ])
        try tamper(dir, "DELETE FROM checkpoints")
        r = try report(dir)
        #expect(r.signedThrough == nil)
        #expect(r.problems.contains { $0.message.contains("a journal with no signature is never valid") })
        #expect(!r.isValid)
    }

    @Test func truncatedTail() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        for i in 1...130 { try await journal.append(NewRecord(kind: "test", actor: "a", data: ["i": .number(JSONNumber(i))])) }
        // Not closed: the last checkpoint is at 100; remove the newest records.
        try tamper(dir, "DELETE FROM records WHERE seq > 117")
        let r = try report(dir)
        #expect(r.problems.isEmpty)
        #expect(r.unsignedTail?.from == 101)
        #expect(r.unsignedTail?.count == 17)
        // Truncating unsigned records cannot be told from a crash without a witness.
        #expect(r.isValid)
        // Truncating into signed records is a hard error.
        try tamper(dir, "DELETE FROM records WHERE seq > 90")
        let r2 = try report(dir)
        #expect(r2.firstBadSeq == 100)
        #expect(r2.problems.contains { $0.message.contains("that record is missing") })
    }

    @Test func replacedEvidence() async throws {
        let dir = try await journal()
        let hash = SHA256.hash(data: Array(#"{"finding":"raw bytes"}"#.utf8)).hex
        // The evidence was committed with the record citing it, in the database.
        #expect(try report(dir).isValid)
        try tamper(dir, "UPDATE evidence_items SET bytes = ? WHERE hash = ?", [Data(#"{"finding":"other bytes"}"#.utf8), hash])
        let r = try report(dir)
        #expect(r.firstBadSeq == 42)
        #expect(r.problems.first?.message.contains("evidence \(hash) was altered") == true)
        try tamper(dir, "DELETE FROM evidence_items WHERE hash = ?", [hash])
        #expect(try report(dir).problems.first?.message.contains("missing") == true)
    }

    /// Journals from Cordon 0.2 kept evidence as files; they are still read and verified.
    @Test func legacyEvidenceFile() async throws {
        let dir = try await journal()
        let hash = SHA256.hash(data: Array(#"{"finding":"raw bytes"}"#.utf8)).hex
        try tamper(dir, "DELETE FROM evidence_items WHERE hash = ?", [hash])
        let store = EvidenceStore(directory: dir.evidence, database: nil)
        try FileManager.default.createDirectory(at: store.legacyPath(for: hash).deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(#"{"finding":"raw bytes"}"#.utf8).write(to: store.legacyPath(for: hash))
        #expect(try report(dir).isValid)
        try Data(#"{"finding":"other bytes"}"#.utf8).write(to: store.legacyPath(for: hash))
        #expect(try report(dir).problems.first?.message.contains("was altered") == true)
    }

    @Test func forgedCheckpointSignature() async throws {
        let dir = try await journal()
        let forger = Curve25519.Signing.PrivateKey()
        let db = try DatabaseQueue(path: dir.journal.path, configuration: .waiting)
        let hash = try await db.read { try String.fetchOne($0, sql: "SELECT hash FROM checkpoints WHERE seq = 100")! }
        let signature = Data(try forger.signature(for: Checkpoint.message(seq: 100, hash: hash))).base64EncodedString()
        try tamper(dir, "UPDATE checkpoints SET signature = ? WHERE seq = 100", [signature])
        let r = try report(dir)
        #expect(r.firstBadSeq == 100)
        #expect(r.problems.first?.message.contains("signature is invalid") == true)
    }

    @Test func changedIndexColumns() async throws {
        let dir = try await journal()
        try tamper(dir, "UPDATE records SET incident = 'other' WHERE seq = 12")
        let r = try report(dir)
        #expect(r.firstBadSeq == 12)
        #expect(r.problems.contains { $0.seq == 12 && $0.message.contains("indexed columns") }, "\(r.problems)")
        // Its first_seq is still that of its real incident, so the incident index disagrees.
        #expect(r.problems.contains { $0.seq == 12 && $0.message.contains("not indexed under its incident other") }, "\(r.problems)")
    }
}

@Suite struct ParallelVerifyTests {
    func verifier(_ dir: DataDirectory) -> JournalVerifier {
        var v = JournalVerifier(directory: dir)
        v.parallelThreshold = 10
        return v
    }

    @Test func slicesAreLinkedToEachOther() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        for batch in 0..<4 {
            _ = try await journal.append((0..<50).map { NewRecord(kind: "test", actor: "a", data: ["i": .number(JSONNumber(batch * 50 + $0))]) })
        }
        try await journal.close()
        let ok = try verifier(dir).verify()
        #expect(ok.isValid, "\(ok.problems)")
        #expect(ok.records == 200)
        // Delete the first record of the second slice: only the link between slices shows it.
        try tamper(dir, "DELETE FROM records WHERE seq = 101")
        let r = try verifier(dir).verify()
        #expect(r.firstBadSeq == 101, "\(r.problems)")
        #expect(r.problems.contains { $0.message.contains("missing") })
    }

    @Test func swapAcrossSlicesIsCaught() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        _ = try await journal.append((0..<200).map { NewRecord(kind: "test", actor: "a", data: ["i": .number(JSONNumber($0))]) })
        try await journal.close()
        let a = try canonical(dir, seq: 100)
        let b = try canonical(dir, seq: 101)
        try tamper(dir, "UPDATE records SET canonical = ? WHERE seq = 100", [b])
        try tamper(dir, "UPDATE records SET canonical = ? WHERE seq = 101", [a])
        let r = try verifier(dir).verify()
        #expect(r.firstBadSeq == 100, "\(r.problems)")
    }
}

@Suite struct DurabilitySettingsTests {
    @Test func writerConnectionUsesWALAndSynchronousFull() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        let (mode, sync, pageSize, autocheckpoint) = try await journal.pragmas()
        #expect(mode == "wal")
        #expect(sync == 2, "PRAGMA synchronous should be FULL (2)")
        // A new journal has 16 KiB pages, and checkpoints after about 4 MiB of WAL.
        #expect(pageSize == 16384)
        #expect(autocheckpoint == 256)
    }

    /// A journal created with SQLite's default 4 KiB pages (by an earlier version) keeps
    /// them, checkpoints after the same 4 MiB of WAL, and goes on chaining and verifying.
    @Test func anExistingJournalKeepsItsPageSize() async throws {
        let dir = temporaryDataDirectory()
        try FileManager.default.createDirectory(at: dir.url, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: dir.journal.path, configuration: .waiting)
        try await old.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA page_size = 4096")
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "CREATE TABLE earlier (x INTEGER)")
        }
        try old.close()
        let journal = try SQLiteJournal(directory: dir)
        for i in 0..<300 {
            try await journal.append(NewRecord(incident: "inc-\(i % 7)", kind: RecordKind.stepSucceeded, actor: "cordon/test", data: ["i": .number(JSONNumber(i))]))
        }
        let (mode, _, pageSize, autocheckpoint) = try await journal.pragmas()
        #expect(mode == "wal")
        #expect(pageSize == 4096)
        #expect(autocheckpoint == 1024)
        #expect(try await journal.records(incident: "inc-3").count == 43)
        try await journal.close()
        let report = try JournalVerifier(directory: dir).verify()
        #expect(report.isValid, "\(report.problems)")
        #expect(report.records == 300)
    }
}

/// Schema 2: an incident's records are found through `incidents` and `records.first_seq`.
@Suite struct IncidentIndexTests {
    func schema(_ dir: DataDirectory) throws -> (version: Int, indexes: [String], tables: [String]) {
        let db = try DatabaseQueue(path: dir.journal.path, configuration: .waiting)
        return try db.read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA user_version") ?? -1,
                try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name"),
                try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            )
        }
    }

    /// Appends `count` records cycling over `incidents` ids (nil: a record of no incident).
    func fill(_ journal: SQLiteJournal, _ count: Int, incidents: [String?]) async throws {
        for i in 0..<count {
            try await journal.append(
                NewRecord(incident: incidents[i % incidents.count], kind: RecordKind.stepSucceeded, actor: "cordon/test", data: ["i": .number(JSONNumber(i))]))
        }
    }

    @Test func aNewJournalFindsIncidentsThroughTheAppendOrderedIndex() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        try await fill(journal, 40, incidents: ["inc-a", nil, "inc-b", "inc-c", "inc-a"])
        #expect(try await journal.records(incident: "inc-a").map(\.seq) == [1, 5, 6, 10, 11, 15, 16, 20, 21, 25, 26, 30, 31, 35, 36, 40])
        #expect(try await journal.records(incident: "inc-c").map(\.seq) == [4, 9, 14, 19, 24, 29, 34, 39])
        #expect(try await journal.records(incident: "inc-none").isEmpty)
        #expect(try await journal.incidents() == ["inc-a", "inc-b", "inc-c"])
        try await journal.close()
        let (version, indexes, tables) = try schema(dir)
        #expect(version == SQLiteJournal.schemaVersion)
        #expect(indexes == ["evidence_items_by_bucket", "records_by_incident"])
        #expect(tables.contains("incidents"))
        // Each record of an incident carries the seq of its first; others carry none.
        let db = try DatabaseQueue(path: dir.journal.path, configuration: .waiting)
        let firsts = try db.read { db in try Row.fetchAll(db, sql: "SELECT incident, first_seq FROM records ORDER BY seq") }
        for row in firsts {
            let incident: String? = row[0]
            let first: Int64? = row[1]
            #expect(first == ["inc-a": 1, "inc-b": 3, "inc-c": 4][incident ?? ""], "\(row)")
        }
        // The lookup uses the two indexes, never a scan of the records.
        let plan = try await db.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + SQLiteJournal.incidentRecordsQuery(old: false), arguments: ["inc-a"])
                .map { $0["detail"] as String }.joined(separator: "; ")
        }
        #expect(plan.contains("records USING INDEX records_by_incident (first_seq=?)"), "\(plan)")
        #expect(plan.contains("incidents USING PRIMARY KEY (id=?)"), "\(plan)")
        #expect(!plan.contains("SCAN"), "\(plan)")
        #expect(try JournalVerifier(directory: dir).verify().isValid)
    }

    @Test func anotherProcessAppendingToAnIncidentFindsItsFirstSeqInTheJournal() async throws {
        let dir = temporaryDataDirectory()
        let first = try SQLiteJournal(directory: dir)
        try await fill(first, 6, incidents: ["inc-a", "inc-b"])
        // A second journal on the same file (as `cordon approve` in another process) has
        // none of the first one's cache.
        let second = try SQLiteJournal(directory: dir)
        try await fill(second, 4, incidents: ["inc-b", "inc-c"])
        try await fill(first, 2, incidents: ["inc-c"])
        #expect(try await first.records(incident: "inc-b").map(\.seq) == [2, 4, 6, 7, 9])
        #expect(try await second.records(incident: "inc-c").map(\.seq) == [8, 10, 11, 12])
        try await first.close()
        try await second.close()
        #expect(try JournalVerifier(directory: dir).verify().isValid)
    }

    /// Turns a journal written by this build back into schema 0 (as written by earlier
    /// builds): no `incidents`, no `first_seq`, the index on `records(incident, seq)`.
    func makeSchemaZero(_ dir: DataDirectory) throws {
        try tamper(
            dir,
            """
            DROP INDEX records_by_incident;
            DROP TABLE incidents;
            ALTER TABLE records DROP COLUMN first_seq;
            CREATE INDEX records_incident ON records(incident, seq);
            INSERT OR IGNORE INTO evidence_content (hash, bytes) SELECT hash, bytes FROM evidence_items;
            DROP TABLE evidence_items;
            PRAGMA user_version = 0;
            """)
    }

    @Test func aJournalOfSchemaZeroIsMigratedOnOpening() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        try await fill(journal, 300, incidents: ["inc-1", "inc-2", nil, "inc-3", "inc-2", "inc-4", nil])
        let before = try await journal.records(incident: "inc-2").map(\.seq)
        try await journal.close()
        try makeSchemaZero(dir)
        #expect(try schema(dir).version == 0)
        #expect(try schema(dir).indexes == ["records_incident"])
        // Read-only, it is not migrated, and read through its old index.
        let reader = try SQLiteJournal(directory: dir, readOnly: true)
        #expect(reader.oldIncidentIndex)
        #expect(try await reader.records(incident: "inc-2").map(\.seq) == before)
        #expect(try await reader.incidents() == ["inc-1", "inc-2", "inc-3", "inc-4"])
        #expect(try schema(dir).version == 0)
        #expect(try JournalVerifier(directory: dir).verify().isValid)

        let migrated = try SQLiteJournal(directory: dir)
        #expect(!migrated.oldIncidentIndex)
        #expect(try schema(dir).version == SQLiteJournal.schemaVersion)
        #expect(try schema(dir).indexes == ["evidence_items_by_bucket", "records_by_incident"])
        #expect(try await migrated.records(incident: "inc-2").map(\.seq) == before)
        // Appends after the migration join the incidents it indexed.
        try await fill(migrated, 3, incidents: ["inc-2", "inc-5"])
        #expect(try await migrated.records(incident: "inc-2").map(\.seq) == before + [301, 303])
        #expect(try await migrated.records(incident: "inc-5").map(\.seq) == [302])
        #expect(try await migrated.incidents() == ["inc-1", "inc-2", "inc-3", "inc-4", "inc-5"])
        try await migrated.close()
        let report = try JournalVerifier(directory: dir).verify()
        #expect(report.isValid, "\(report.problems)")
        #expect(report.records == 303)
    }

    @Test func aJournalOfANewerSchemaIsRefusedWithAClearError() async throws {
        let dir = temporaryDataDirectory()
        try await SQLiteJournal(directory: dir).close()
        try tamper(dir, "PRAGMA user_version = \(SQLiteJournal.schemaVersion + 1)")
        #expect {
            _ = try SQLiteJournal(directory: dir)
        } throws: { error in
            "\(error)".contains("has journal schema \(SQLiteJournal.schemaVersion + 1), newer than this build of Cordon knows (\(SQLiteJournal.schemaVersion))")
        }
    }

    @Test func verifyFindsARecordLeftOutOfItsIncidentsIndex() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        try await fill(journal, 20, incidents: ["inc-a", "inc-b", nil])
        try await journal.close()
        #expect(try JournalVerifier(directory: dir).verify().isValid)

        // Hidden from its incident's export: the chain still verifies, the index does not.
        try tamper(dir, "UPDATE records SET first_seq = NULL WHERE seq = 7")
        var report = try JournalVerifier(directory: dir).verify()
        #expect(report.problems.map(\.description) == ["seq 7: is not indexed under its incident inc-a: its timeline and export would leave it out"])
        // Moved under another incident.
        try tamper(dir, "UPDATE records SET first_seq = 2 WHERE seq = 7")
        report = try JournalVerifier(directory: dir).verify()
        #expect(report.firstBadSeq == 7)
        // A record of no incident listed under one.
        try tamper(dir, "UPDATE records SET first_seq = 1 WHERE seq = 7; UPDATE records SET first_seq = 1 WHERE seq = 3")
        report = try JournalVerifier(directory: dir).verify()
        #expect(report.problems.map(\.description) == ["seq 3: is indexed under an incident it does not belong to"])
        // The incident's entry pointing elsewhere: all its records are misfiled, and it is named.
        try tamper(dir, "UPDATE records SET first_seq = NULL WHERE seq = 3; UPDATE incidents SET first_seq = 2 WHERE id = 'inc-a'")
        report = try JournalVerifier(directory: dir).verify()
        #expect(report.problems.contains { $0.description == "the journal's index of incidents points inc-a at a record of another incident" })
        #expect(report.firstBadSeq == 1)
    }
}

@Suite struct KeyRecoveryTests {
    @Test func aMissingPublicKeyFileIsRewrittenFromThePrivateKey() throws {
        let dir = temporaryDataDirectory()
        let key = try SQLiteJournal.dataDirectoryKey(dir).key
        let publicFile = dir.keys.appendingPathComponent(SigningKey.publicKeyFile)
        try FileManager.default.removeItem(at: publicFile)
        let again = try SQLiteJournal.dataDirectoryKey(dir).key
        #expect(again.fingerprint == key.fingerprint)
        #expect(try String(contentsOf: publicFile, encoding: .utf8) == key.publicKeyPEM)
        // A leftover temporary file from a crash during creation is ignored.
        try "partial".write(to: dir.keys.appendingPathComponent(".journal-ed25519.pem.x.tmp"), atomically: true, encoding: .utf8)
        #expect(try SQLiteJournal.dataDirectoryKey(dir).key.fingerprint == key.fingerprint)
    }
}

extension Configuration {
    /// Waits for a lock instead of failing at once: a journal closed just before may
    /// still be checkpointing its WAL as its last connection closes.
    static var waiting: Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        return configuration
    }
}
