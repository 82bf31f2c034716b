import CordonCore
import CordonTestSupport
import Crypto
import Foundation
import GRDB
import Testing

@testable import CordonJournal

/// Forgeries a review of the chain of custody found, each refused.
@Suite struct CustodyReviewTests {
    func written(_ count: Int) async throws -> (DataDirectory, SQLiteJournal) {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        for i in 1...count { try await journal.append(NewRecord(kind: "test", actor: "a", data: ["i": .number(JSONNumber(i))])) }
        try await journal.checkpoint()
        return (dir, journal)
    }

    /// The keys table is not in the chain: a public key put under the expected key's
    /// fingerprint (to check checkpoints re-signed with another key) is refused.
    @Test func aPublicKeyUnderAnotherKeysFingerprintIsRefused() async throws {
        let (dir, journal) = try await written(20)
        let expected = try #require(journal.keyFingerprint)
        let forger = Curve25519.Signing.PrivateKey()
        let der = JournalPublicKey.ed25519Prefix + Array(forger.publicKey.rawRepresentation)
        let checkpoints = try await journal.checkpoints(from: 0)
        for checkpoint in checkpoints {
            let signature = try forger.signature(for: Checkpoint.message(seq: checkpoint.seq, hash: checkpoint.hash))
            try tamper(dir, "UPDATE checkpoints SET signature = ? WHERE seq = ?", [Data(signature).base64EncodedString(), checkpoint.seq])
        }
        try tamper(dir, "UPDATE keys SET public_key = ? WHERE fingerprint = ?", [Data(der), expected])
        let report = try JournalVerifier(directory: dir, expectedKeys: [expected]).verify()
        #expect(!report.isValid)
        #expect(report.problems.contains { $0.message.contains("gives key \(expected) a public key with another fingerprint") }, "\(report.problems)")
    }

    /// Records added by hand beyond what a crash leaves are never signed: not by a
    /// checkpoint on demand, not by the writer, not by an export.
    @Test func recordsAddedByHandAreNeverSigned() async throws {
        let (dir, journal) = try await written(5)
        try await journal.close()
        // Another opening writes 150 records and "crashes" before signing them.
        let other = try SQLiteJournal(directory: dir, checkpointEvery: 1000)
        for i in 1...150 { try await other.append(NewRecord(kind: "test", actor: "x", data: ["i": .number(JSONNumber(i))])) }
        let third = try SQLiteJournal(directory: dir)
        await #expect(throws: SQLiteJournal.Error.self) { try await third.checkpoint() }
        // Its own records past the threshold do not get them signed either.
        for i in 1...120 { try await third.append(NewRecord(kind: "test", actor: "y", data: ["i": .number(JSONNumber(i))])) }
        #expect(try await third.checkpoints(from: 0).last?.seq == 5)
        await #expect(throws: SQLiteJournal.Error.self) {
            try await EvidenceBundle.export(incident: "none", journal: third, to: dir.url.appendingPathComponent("bundle"))
        }
        #expect(!(try JournalVerifier(directory: dir).verify().isValid))
    }

    /// An export refuses a journal that does not verify, instead of signing over it.
    @Test func anExportRefusesAnAlteredJournal() async throws {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        try await simulateIncident(journal)
        try await journal.checkpoint()
        try tamper(dir, "UPDATE records SET canonical = replace(canonical, 'i-0abc', 'i-0abd'), hash = hash WHERE seq = 4")
        let error = await #expect(throws: SQLiteJournal.Error.self) {
            try await EvidenceBundle.export(incident: "inc-0001", journal: journal, to: dir.url.appendingPathComponent("bundle"))
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("the journal does not verify (seq 4: content does not match its hash"))
    }

    /// Tables rebuilt by hand without their constraints, rows with values missing: verify
    /// reports them and never traps.
    @Test func rowsWithValuesMissingAreReportedNotTrappedOn() async throws {
        let (dir, journal) = try await written(20)
        try await journal.close()
        try tamper(
            dir,
            """
            CREATE TABLE c2 AS SELECT * FROM checkpoints; DROP TABLE checkpoints;
            CREATE TABLE checkpoints (seq INTEGER, hash TEXT, time TEXT, signature TEXT, key TEXT);
            INSERT INTO checkpoints SELECT * FROM c2; DROP TABLE c2; INSERT INTO checkpoints (seq) VALUES (999);
            CREATE TABLE k2 AS SELECT * FROM keys; DROP TABLE keys;
            CREATE TABLE keys (fingerprint TEXT, algorithm TEXT, public_key BLOB, role TEXT, from_seq INTEGER, certified_by TEXT, certificate TEXT, time TEXT);
            INSERT INTO keys SELECT * FROM k2; DROP TABLE k2; INSERT INTO keys (fingerprint, role) VALUES ('x', 'root');
            """)
        let report = try JournalVerifier(directory: dir).verify()
        #expect(report.problems.contains { $0.message.contains("a checkpoint row has a value missing") }, "\(report.problems)")
        #expect(report.signedThrough?.seq == 20)
    }

    /// A rotation whose key row was never written (a crash between the record and the
    /// row) still makes the new key the journal's: it can sign, the old one cannot.
    @Test func aRotationWithoutItsKeyRowStillCounts() async throws {
        let (dir, journal) = try await written(10)
        try await journal.close()
        let old = try SQLiteJournal.dataDirectoryKey(dir).key
        let new = SigningKey.session()
        let rotation = try await SQLiteJournal.rotateKey(directory: dir, old: old, new: new, actor: "test")
        try tamper(dir, "DELETE FROM keys WHERE fingerprint = ?", [rotation.new])
        #expect(throws: (any Error).self) { try SQLiteJournal(directory: dir, signingKey: old) }
        let reopened = try SQLiteJournal(directory: dir, signingKey: new)
        try await reopened.append(NewRecord(kind: "test", actor: "a"))
        try await reopened.close()
        let report = try JournalVerifier(directory: dir, expectedKeys: [rotation.old]).verify()
        #expect(report.isValid, "\(report.problems)")
    }
}
