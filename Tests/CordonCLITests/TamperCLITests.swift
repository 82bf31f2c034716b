import CordonCore
import CordonJournal
import CordonTestSupport
import Crypto
import Foundation
import GRDB
import Testing

/// Someone who controls the host tampers with a real journal, and `cordon journal verify`
/// (the real binary) says what it can see. Each case starts from a journal of its own,
/// written by five `process --dry-run` runs (56 records, a checkpoint at the end of each
/// run, every head sent to a `--anchor file:` witness), signed by a key file outside the
/// data directory (`--signing-key`) or by the data directory's own key.
///
/// | case | tamper | detected by | what `journal verify` says (seq named) |
/// |---|---|---|---|
/// | 1 | a record's content edited | its hash, with no flag | the record: content does not match its hash |
/// | 2 | one record in the middle deleted | the chain, with no flag | the record: missing (deleted) |
/// | 3 | two records swapped | the chain, with no flag | the first: the record says the other's seq |
/// | 4a | records cut from the unsigned tail a crash left | nothing: not `--expect-key`, not `--anchor` (the witness never saw unsigned records) | passes, with the shorter unsigned tail |
/// | 4b | records cut below the last checkpoint | the signature, with no flag | the checkpoint: it covers a record that is missing |
/// | 5 | cut back to an earlier checkpoint (records, checkpoints, index rows) | `--anchor` only | the first missing seq: truncated |
/// | 6 | chain rebuilt after an edit, not signed again | the signatures, with no flag | the first checkpoint after the edit: hash differs from the signed one |
/// | 7 | chain rebuilt, signed again with a new key put in the original's place | `--expect-key ORIGINAL`; `--anchor` | every checkpoint: not an expected key; every witnessed head: its signature does not verify under the journal's keys |
/// | 8 | chain rebuilt, signed again with the journal's own key | `--anchor` only | the first checkpoint after the edit: rewritten |
/// | 9 | the data directory's key files swapped for another pair | nothing to detect: the journal records its keys | passes with `--expect-key ORIGINAL`; a command that writes is refused (exit 2) |
/// | 10 | every checkpoint deleted | always, whatever the flags | no seq: no record is covered by a valid signature (and, with `--anchor`, checkpoints removed) |
/// | 11 | the data directory's private key deleted | the next `process` (exit 2), which makes no new key | passes: verifying needs no private key |
/// | 12 | a file of an exported bundle edited (the HTML timeline), its lists made again | the bundle's manifest, its contents list, then the journal's `bundle.exported` record | VERIFY.md's script fails, saying which |
///
/// A cut (4, 5) that leaves a row of the index of incidents pointing at a removed record is
/// caught by the index check, naming no seq: whoever cuts must remove those rows too.
@Suite struct TamperCLITests {
    enum KeyPlace: String, Sendable, CaseIterable { case file, dataDirectory }

    /// A playbook whose last step waits a minute: `process` is killed in the middle of it.
    static let slowPlaybook = """
        name: slow
        version: 1
        description: Notes the finding, then waits, so that the process can be killed while records are unsigned.
        trigger: {source: [aws.guardduty]}
        incident: {key: "{{ detail.id }}"}
        steps:
          - id: note
            action: core.set
            with: {values: {finding: "{{ detail.id }}"}}
          - id: log
            action: core.log
            with: {message: "noted {{ detail.id }}"}
          - id: hold
            action: core.wait
            with: {duration: "60s"}
        """
    static let lateFinding = #"{"version":"0","id":"late-1","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"late-1","type":"Recon:EC2/PortProbeUnprotectedPort","severity":2,"updatedAt":"2026-03-01T10:00:00Z"}}"#

    /// A journal written by the real binary, its witness file and its signing key.
    struct Journal {
        static let fixtures = "Fixtures/playbooks/guardduty-ec2-quarantine"
        /// Four findings, a run each, then the whole directory again (duplicates, findings
        /// no playbook matches, one more incident).
        static let runs =
            ["fires-backdoor-cc-prod-instance", "fires-bitcoin-tool-staging-instance", "fires-dns-exfiltration-severity-7", "fires-tor-client-eu-west-1"]
            .map { "\(fixtures)/\($0).json" } + [fixtures]

        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-tamper-\(UUID().uuidString)")
        let place: KeyPlace
        /// The fingerprint of the key that signed it, as `cordon journal key` printed it.
        var fingerprint = ""
        var data: String { root.appendingPathComponent("data").path }
        var witness: String { root.appendingPathComponent("witness/heads.jsonl").path }
        var keyFile: String { place == .file ? root.appendingPathComponent("signing.pem").path : data + "/keys/" + SigningKey.privateKeyFile }
        var publicKeyFile: String { data + "/keys/" + SigningKey.publicKeyFile }
        var signing: [String] { place == .file ? ["--signing-key", keyFile] : [] }
        var anchor: [String] { ["--anchor", "file:" + witness] }
        var pin: [String] { ["--expect-key", fingerprint] }

        /// Writes a new journal with `runs`, signed by the key at `place`, witnessed.
        static func make(_ place: KeyPlace = .file) async throws -> Journal {
            var journal = Journal(place: place)
            try FileManager.default.createDirectory(atPath: journal.root.appendingPathComponent("witness").path, withIntermediateDirectories: true)
            if place == .file { _ = try journal.newKey(at: journal.keyFile) }
            for file in runs {
                let result = try await journal.process(file)
                #expect(result.status == 0, "\(file): \(result.stderr)")
            }
            let shown = try await CLI.run(["journal", "key", "--data-dir", journal.data] + journal.signing)
            journal.fingerprint = String(try #require(shown.stdout.split(separator: "\n").first).dropFirst("fingerprint: ".count))
            #expect(journal.fingerprint.count == 64, "\(shown.stdout)\(shown.stderr)")
            return journal
        }

        func process(_ file: String) async throws -> CLI.Result {
            try await CLI.run(["process", "--dry-run", "--data-dir", data] + signing + anchor + [file])
        }

        func verify(_ extra: [String] = []) async throws -> CLI.Result {
            try await CLI.run(["journal", "verify", "--data-dir", data] + extra)
        }

        /// A new Ed25519 key file made by openssl (mode 0600).
        func newKey(at path: String) throws -> SigningKey {
            let made = try Shell.run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", path])
            #expect(made.status == 0, "\(made.stderr)")
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
            return try SigningKey(file: URL(fileURLWithPath: path))
        }

        func database() throws -> DatabaseQueue { try DatabaseQueue(path: data + "/journal.sqlite", configuration: .waiting) }
        func tamper(_ sql: String) throws { try DataDirectory(data).tamper(sql) }
        func checkpoints() throws -> [Int64] { try database().read { try Int64.fetchAll($0, sql: "SELECT seq FROM checkpoints ORDER BY seq") } }
        func lastSeq() throws -> Int64 { try database().read { try Int64.fetchOne($0, sql: "SELECT MAX(seq) FROM records") } ?? 0 }

        /// A record in the middle: the first of two `step.planned` records in a row after
        /// the second checkpoint, neither of them at a checkpoint nor an incident's first.
        func middleRecord() throws -> Int64 {
            let after = try checkpoints()[1]
            let seq = try database().read { db in
                try Int64.fetchOne(
                    db,
                    sql: """
                        SELECT a.seq FROM records a JOIN records b ON b.seq = a.seq + 1
                        WHERE a.kind = 'step.planned' AND b.kind = 'step.planned' AND a.seq > ?
                          AND b.seq NOT IN (SELECT seq FROM checkpoints) ORDER BY a.seq LIMIT 1
                        """, arguments: [after])
            }
            return try #require(seq)
        }

        /// The record as an attacker wants it: the step acted on another instance.
        static func retarget(_ record: JSONValue) -> JSONValue {
            guard case .object(var members) = record, case .object(var data)? = members["data"] else { return record }
            data["target"] = .string("i-0fffffffffffffff0")
            members["data"] = .object(data)
            return .object(members)
        }

        /// Changes the content of the record at `seq`, leaving its stored hash.
        func edit(_ seq: Int64) throws {
            try database().write { db in
                let canonical = try Data.fetchOne(db, sql: "SELECT canonical FROM records WHERE seq = ?", arguments: [seq]) ?? Data()
                let edited = CanonicalJSON.bytes(Self.retarget(try JSONParser.parse(Array(canonical))))
                try db.execute(sql: "UPDATE records SET canonical = ? WHERE seq = ?", arguments: [Data(edited), seq])
            }
        }

        /// Edits the record at `start` and makes the chain whole again from there: every
        /// later record's `prev`, canonical form and hash recomputed with CordonCore's
        /// JSON. The checkpoints are left as they were.
        func rebuildChain(from start: Int64) throws {
            try database().write { db in
                var prev = try String.fetchOne(db, sql: "SELECT hash FROM records WHERE seq = ?", arguments: [start - 1]) ?? JournalRecord.genesis
                for row in try Row.fetchAll(db, sql: "SELECT seq, canonical FROM records WHERE seq >= ? ORDER BY seq", arguments: [start]) {
                    let seq: Int64 = row[0]
                    let canonical: Data = row[1]
                    guard case .object(var members) = try JSONParser.parse(Array(canonical)) else { throw TestFailure("seq \(seq) is not an object") }
                    members["prev"] = .string(prev)
                    let record = seq == start ? Self.retarget(.object(members)) : .object(members)
                    let bytes = CanonicalJSON.bytes(record)
                    let hash = SHA256.hash(data: bytes).hex
                    try db.execute(sql: "UPDATE records SET canonical = ?, hash = ? WHERE seq = ?", arguments: [Data(bytes), hash, seq])
                    prev = hash
                }
            }
        }

        /// Signs every checkpoint again over the chain's hash at its seq with `key`
        /// (Curve25519 over `cordon-checkpoint:v1:SEQ:HASH`).
        func resign(with key: SigningKey) throws {
            try database().write { db in
                for seq in try Int64.fetchAll(db, sql: "SELECT seq FROM checkpoints") {
                    let hash = try String.fetchOne(db, sql: "SELECT hash FROM records WHERE seq = ?", arguments: [seq]) ?? ""
                    let signature = try key.privateKey.signature(for: Checkpoint.message(seq: seq, hash: hash))
                    try db.execute(
                        sql: "UPDATE checkpoints SET hash = ?, signature = ?, key = ? WHERE seq = ?",
                        arguments: [hash, Data(signature).base64EncodedString(), key.fingerprint, seq])
                }
            }
        }

        /// How many `hold` steps of `slowPlaybook` have their intent journaled.
        func holding() throws -> Int {
            let sql = "SELECT COUNT(*) FROM records WHERE kind = 'step.intent' AND CAST(canonical AS TEXT) LIKE '%\"step\":\"hold\"%'"
            return try database().read { try Int.fetchOne($0, sql: sql) } ?? 0
        }

        /// Puts `key` in the place of the journal's root key, in its `keys` table and in
        /// the data directory's key files.
        func replaceRoot(with key: SigningKey) throws {
            let der = try #require(key.publicKey).der
            try database().write { db in
                try db.execute(sql: "UPDATE keys SET fingerprint = ?, public_key = ? WHERE role = 'root'", arguments: [key.fingerprint, Data(der)])
            }
            try key.publicKeyPEM.write(toFile: publicKeyFile, atomically: true, encoding: .utf8)
            try FileManager.default.removeItem(atPath: keyFile)
            try FileManager.default.copyItem(atPath: key.source, toPath: keyFile)
        }

        /// Runs one more finding, not dry, through `slowPlaybook` and kills the process
        /// (SIGKILL) once the waiting step's intent is journaled: the records it wrote
        /// after the last checkpoint stay unsigned, as a crash leaves them. Answers how
        /// many there are.
        func crash() async throws -> Int {
            let playbooks = root.appendingPathComponent("Playbooks")
            try FileManager.default.createDirectory(at: playbooks, withIntermediateDirectories: true)
            try TamperCLITests.slowPlaybook.write(to: playbooks.appendingPathComponent("slow.yaml"), atomically: true, encoding: .utf8)
            let finding = root.appendingPathComponent("late.json")
            try TamperCLITests.lateFinding.write(to: finding, atomically: true, encoding: .utf8)
            let signed = try lastSeq()
            let process = Process()
            process.executableURL = CLI.executable
            process.arguments = ["process", "--data-dir", data, "--playbooks", playbooks.path] + signing + anchor + [finding.path]
            process.currentDirectoryURL = CLI.packageRoot
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try Spawn.run(process)
            let deadline = Date().addingTimeInterval(60)
            while process.isRunning, Date() < deadline, try holding() == 0 {
                try await Task.sleep(for: .milliseconds(20))
            }
            kill(process.processIdentifier, SIGKILL)
            await CLI.waitForExit(process)
            #expect(process.terminationReason == .uncaughtSignal, "the process ended before it was killed")
            return Int(try lastSeq() - signed)
        }
    }

    /// The seqs of the problems `journal verify` printed, in its order.
    static func problemSeqs(_ result: CLI.Result) -> [Int64] {
        result.stdout.split(separator: "\n").filter { $0.hasPrefix("seq ") }.compactMap { Int64($0.dropFirst(4).prefix { $0.isNumber }) }
    }

    /// `journal verify` failed (exit 1), printing `message` about `seq` and naming `seq`
    /// as the first bad one (nil: a problem of no one record).
    static func expectCaught(_ result: CLI.Result, seq: Int64?, _ message: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout.contains((seq.map { "seq \($0): " } ?? "") + message), "\(result.stdout)", sourceLocation: sourceLocation)
        #expect(result.stdout.hasSuffix("; first bad seq: \(seq.map(String.init) ?? "-")\n"), "\(result.stdout)", sourceLocation: sourceLocation)
    }

    /// `journal verify` passed (exit 0), verified up to `seq` by `key` with `unsigned`
    /// records after it.
    static func expectPasses(_ result: CLI.Result, through seq: Int64, key: String, unsigned: Int = 0, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout.contains("verified up to seq \(seq), signed at "), "\(result.stdout)", sourceLocation: sourceLocation)
        #expect(
            result.stdout.contains("by key \(key); \(unsigned) record(s) after that \(unsigned == 1 ? "is" : "are") unsigned"), "\(result.stdout)",
            sourceLocation: sourceLocation)
        #expect(result.stdout.contains("journal verified: "), "\(result.stdout)", sourceLocation: sourceLocation)
    }

    /// The journal every case starts from verifies with every flag, and its witness saw
    /// every checkpoint.
    @Test(arguments: KeyPlace.allCases) func theUntamperedJournalVerifies(_ place: KeyPlace) async throws {
        let j = try await Journal.make(place)
        let checkpoints = try j.checkpoints()
        #expect(checkpoints.count == Journal.runs.count)
        #expect(checkpoints.last == (try j.lastSeq()))
        let heads = try String(contentsOfFile: j.witness, encoding: .utf8).split(separator: "\n").map { try Checkpoint(line: String($0)) }
        #expect(heads.map(\.seq) == checkpoints)
        Self.expectPasses(try await j.verify(j.pin + j.anchor), through: checkpoints.last ?? 0, key: j.fingerprint)
        #expect(FileManager.default.fileExists(atPath: j.data + "/keys") == (place == .dataDirectory))
    }

    /// 1. A record's content edited, its hash left: detected by the hash, without any
    /// flag, naming the record; the next record no longer links to it.
    @Test func anEditedRecordFailsItsHash() async throws {
        let j = try await Journal.make()
        let seq = try j.middleRecord()
        try j.edit(seq)
        for flags in [[], j.pin + j.anchor] {
            let result = try await j.verify(flags)
            Self.expectCaught(result, seq: seq, "content does not match its hash (the record was altered)")
            #expect(result.stdout.contains("seq \(seq + 1): does not link to the record before it"), "\(result.stdout)")
            #expect(Self.problemSeqs(result) == [seq, seq + 1], "\(result.stdout)")
        }
    }

    /// 2. One record in the middle deleted: detected as missing, without any flag.
    @Test func aDeletedRecordIsMissing() async throws {
        let j = try await Journal.make()
        let seq = try j.middleRecord()
        try j.tamper("DELETE FROM records WHERE seq = \(seq)")
        for flags in [[], j.pin + j.anchor] {
            let result = try await j.verify(flags)
            Self.expectCaught(result, seq: seq, "record is missing (deleted)")
            #expect(result.stdout.contains("seq \(seq + 1): does not link to the record before it"), "\(result.stdout)")
            #expect(Self.problemSeqs(result) == [seq, seq + 1], "\(result.stdout)")
        }
    }

    /// 3. Two records swapped (each row takes the other's seq): detected, each saying the
    /// seq it really has, without any flag.
    @Test func swappedRecordsSayTheirOwnSeqs() async throws {
        let j = try await Journal.make()
        let seq = try j.middleRecord()
        try j.tamper("UPDATE records SET seq = -1 WHERE seq = \(seq); UPDATE records SET seq = \(seq) WHERE seq = \(seq + 1); UPDATE records SET seq = \(seq + 1) WHERE seq = -1")
        let result = try await j.verify()
        Self.expectCaught(result, seq: seq, "the record says seq \(seq + 1): records were moved or swapped")
        #expect(result.stdout.contains("seq \(seq + 1): the record says seq \(seq): records were moved or swapped"), "\(result.stdout)")
        #expect(Set(Self.problemSeqs(result)) == [seq, seq + 1, seq + 2], "\(result.stdout)")
    }

    /// 4. Records cut from the unsigned tail a crash left cannot be told from a shorter
    /// crash: verify passes and reports the shorter tail, with `--expect-key` and with
    /// `--anchor file:` too, since the witness only ever saw signed heads. Cutting into
    /// signed records is detected: the last checkpoint's record is missing. Cutting
    /// records an incident's index still points at is detected by the index.
    @Test func truncatingTheUnsignedTailPassesButTruncatingSignedRecordsDoesNot() async throws {
        let j = try await Journal.make()
        let signed = try j.lastSeq()
        let tail = try await j.crash()
        #expect(tail >= 5, "the crash left \(tail) unsigned record(s)")
        Self.expectPasses(try await j.verify(j.pin + j.anchor), through: signed, key: j.fingerprint, unsigned: tail)
        let cut = 3
        try j.tamper("DELETE FROM records WHERE seq > \(signed + Int64(tail - cut))")
        Self.expectPasses(try await j.verify(), through: signed, key: j.fingerprint, unsigned: tail - cut)
        let anchored = try await j.verify(j.pin + j.anchor)
        Self.expectPasses(anchored, through: signed, key: j.fingerprint, unsigned: tail - cut)
        #expect(anchored.stdout.contains("witness file:\(j.witness) saw seq \(signed) signed at "), "\(anchored.stdout)")
        // The incident the crash opened, cut whole while the index still points at it.
        try j.tamper("DELETE FROM records WHERE seq > \(signed)")
        let indexed = try await j.verify()
        Self.expectCaught(indexed, seq: nil, "the journal's index of incidents points inc-")
        #expect(indexed.stdout.contains("at a record of another incident"), "\(indexed.stdout)")
        // Into signed records: the newest checkpoint's record is gone.
        try j.tamper("DELETE FROM records WHERE seq > \(signed - 4); DELETE FROM incidents WHERE first_seq > \(signed - 4)")
        let short = try await j.verify()
        Self.expectCaught(short, seq: signed, "a signed checkpoint covers seq \(signed), but that record is missing (truncated or deleted)")
        #expect(Self.problemSeqs(short) == [signed], "\(short.stdout)")
    }

    /// 5. Cut back to an earlier checkpoint, with the checkpoints after it and the index
    /// rows of incidents that began after it: the journal alone, even pinned, passes as
    /// the shorter journal it now is; `--anchor file:` detects it, naming the first
    /// missing seq. The same cut leaving the index behind is detected by the index.
    @Test func cutBackToAnEarlierCheckpointOnlyTheWitnessSees() async throws {
        let j = try await Journal.make()
        let checkpoints = try j.checkpoints()
        let cut = checkpoints[2]
        let last = try j.lastSeq()
        try j.tamper("DELETE FROM records WHERE seq > \(cut); DELETE FROM checkpoints WHERE seq > \(cut)")
        Self.expectCaught(try await j.verify(), seq: nil, "the journal's index of incidents points inc-")
        try j.tamper("DELETE FROM incidents WHERE first_seq > \(cut)")
        Self.expectPasses(try await j.verify(), through: cut, key: j.fingerprint)
        Self.expectPasses(try await j.verify(j.pin), through: cut, key: j.fingerprint)
        let caught = try await j.verify(j.pin + j.anchor)
        Self.expectCaught(
            caught, seq: cut + 1, "truncated: the journal ends at seq \(cut), but witness file:\(j.witness) saw it signed up to seq \(last) at ")
        #expect(caught.stdout.contains("records \(cut + 1)–\(last) were removed (cut short, or replaced by an earlier copy)"), "\(caught.stdout)")
        #expect(Self.problemSeqs(caught) == [cut + 1], "\(caught.stdout)")
    }

    /// 6. The chain rebuilt after an edit (every later prev and hash recomputed), not
    /// signed again: every hash and link holds, and the checkpoints from the edit on no
    /// longer sign the chain, naming the first; verified up to the checkpoint before.
    @Test func aRebuiltChainFailsItsCheckpointSignatures() async throws {
        let j = try await Journal.make()
        let seq = try j.middleRecord()
        let checkpoints = try j.checkpoints()
        let broken = checkpoints.filter { $0 >= seq }
        let before = try #require(checkpoints.last { $0 < seq })
        try j.rebuildChain(from: seq)
        let result = try await j.verify()
        Self.expectCaught(result, seq: broken[0], "the chain's hash at this seq differs from the signed checkpoint: records up to here were altered")
        #expect(Self.problemSeqs(result) == broken, "\(result.stdout)")
        #expect(result.stdout.contains("verified up to seq \(before), signed at "), "\(result.stdout)")
        Self.expectCaught(try await j.verify(j.pin + j.anchor), seq: broken[0], "the chain's hash at this seq differs from the signed checkpoint")
    }

    /// 7. The chain rebuilt and every checkpoint signed again with a new key, which
    /// replaces the original in the journal's `keys` and in `keys/`: without a pin the
    /// journal passes, trusting the key it names (and saying it is not pinned).
    /// `--expect-key ORIGINAL` detects it: every checkpoint is by a key not expected.
    /// `--anchor file:` detects it: the witness's heads, signed by the original key,
    /// do not verify under the keys the journal now records, from the first head on
    /// (that check comes before the hash comparison that says "rewritten").
    @Test func aChainResignedWithANewKeyFailsThePinAndTheWitness() async throws {
        let j = try await Journal.make(.dataDirectory)
        let seq = try j.middleRecord()
        let checkpoints = try j.checkpoints()
        try j.rebuildChain(from: seq)
        let attacker = try j.newKey(at: j.root.appendingPathComponent("attacker.pem").path)
        try j.resign(with: attacker)
        try j.replaceRoot(with: attacker)

        let unpinned = try await j.verify()
        Self.expectPasses(unpinned, through: checkpoints.last ?? 0, key: attacker.fingerprint)
        #expect(unpinned.stdout.contains("key not pinned"), "\(unpinned.stdout)")
        let pinned = try await j.verify(j.pin)
        Self.expectCaught(
            pinned, seq: checkpoints[0],
            "checkpoint signed by key \(attacker.fingerprint), which is not an expected key (--expect-key) nor linked to one by a rotation both keys signed")
        #expect(Self.problemSeqs(pinned) == checkpoints, "\(pinned.stdout)")
        #expect(pinned.stdout.contains("no record is covered by a valid checkpoint signature"), "\(pinned.stdout)")
        let anchored = try await j.verify(j.anchor)
        Self.expectCaught(
            anchored, seq: checkpoints[0],
            "witness file:\(j.witness) holds a head for seq \(checkpoints[0]) whose signature does not verify under the journal's keys")
        #expect(Self.problemSeqs(anchored) == checkpoints, "\(anchored.stdout)")
    }

    /// 8. The chain rebuilt and signed again with the journal's own key, which the
    /// attacker read from the host (a `--signing-key` file or the data directory's):
    /// it passes, even with `--expect-key`, since a key on the host protects nothing
    /// against whoever controls it. `--anchor file:` detects it: the witness saw other
    /// hashes at the rewritten checkpoints, named from the first.
    @Test(arguments: KeyPlace.allCases) func aChainResignedWithItsOwnKeyOnlyTheWitnessSees(_ place: KeyPlace) async throws {
        let j = try await Journal.make(place)
        let seq = try j.middleRecord()
        let rewritten = try j.checkpoints().filter { $0 >= seq }
        try j.rebuildChain(from: seq)
        try j.resign(with: SigningKey(file: URL(fileURLWithPath: j.keyFile)))
        Self.expectPasses(try await j.verify(), through: rewritten.last ?? 0, key: j.fingerprint)
        Self.expectPasses(try await j.verify(j.pin), through: rewritten.last ?? 0, key: j.fingerprint)
        let anchored = try await j.verify(j.pin + j.anchor)
        Self.expectCaught(
            anchored, seq: rewritten[0], "rewritten: the record at seq \(rewritten[0]) differs from the head witness file:\(j.witness) saw signed at ")
        #expect(Self.problemSeqs(anchored) == rewritten, "\(anchored.stdout)")
    }

    /// 9. The data directory's key files swapped for another pair: the journal records
    /// the keys that signed it, so the files change nothing for `verify --expect-key
    /// ORIGINAL` (nor without it), whichever way the two fingerprints sort; a command
    /// that writes is refused (exit 2), naming the key that signs the journal.
    @Test(arguments: [true, false]) func swappedKeyFilesChangeNothingAndCannotSign(sortingBeforeTheOriginal: Bool) async throws {
        let j = try await Journal.make(.dataDirectory)
        var other: SigningKey? = nil
        for attempt in 0..<64 where other == nil {
            let key = try j.newKey(at: j.root.appendingPathComponent("other-\(attempt).pem").path)
            if (key.fingerprint < j.fingerprint) == sortingBeforeTheOriginal { other = key }
        }
        let swapped = try #require(other)
        try FileManager.default.removeItem(atPath: j.keyFile)
        try FileManager.default.copyItem(atPath: swapped.source, toPath: j.keyFile)
        try swapped.publicKeyPEM.write(toFile: j.publicKeyFile, atomically: true, encoding: .utf8)
        let last = try j.lastSeq()
        Self.expectPasses(try await j.verify(j.pin), through: last, key: j.fingerprint)
        Self.expectPasses(try await j.verify(), through: last, key: j.fingerprint)
        let refused = try await j.process(Journal.runs[0])
        #expect(refused.status == 2, "\(refused.stdout)\(refused.stderr)")
        #expect(
            refused.stderr.contains("this journal is signed by key \(j.fingerprint), not by the signing key given (\(j.keyFile), \(swapped.fingerprint))"),
            "\(refused.stderr)")
        #expect(try j.lastSeq() == last)
    }

    /// 10. Every checkpoint deleted: never valid, whatever the flags (the hidden
    /// `--allow-unsigned-tail` changes nothing); the witness adds that its checkpoints
    /// were removed.
    @Test func aJournalWithoutSignaturesNeverPasses() async throws {
        let j = try await Journal.make()
        let last = try j.lastSeq()
        try j.tamper("DELETE FROM checkpoints")
        let message = "no record is covered by a valid checkpoint signature: a journal with no signature is never valid"
        for flags in [[], ["--allow-unsigned-tail"], j.pin] {
            let result = try await j.verify(flags)
            Self.expectCaught(result, seq: nil, message)
            #expect(Self.problemSeqs(result) == [], "\(result.stdout)")
            #expect(result.stdout.contains("JOURNAL INVALID: \(last) record(s), 0 checkpoint(s)"), "\(result.stdout)")
        }
        let anchored = try await j.verify(j.anchor)
        Self.expectCaught(anchored, seq: 1, "checkpoints removed: the journal's newest checkpoint is at seq 0, but witness file:\(j.witness) saw seq \(last) signed at ")
        #expect(anchored.stdout.contains(message), "\(anchored.stdout)")
    }

    /// 11. The data directory's private key deleted: the next `process` stops (exit 2)
    /// saying so, writes nothing and makes no new key; verifying needs no private key.
    @Test func aDeletedPrivateKeyIsNeverReplaced() async throws {
        let j = try await Journal.make(.dataDirectory)
        let last = try j.lastSeq()
        try FileManager.default.removeItem(atPath: j.keyFile)
        let refused = try await j.process(Journal.runs[0])
        #expect(refused.status == 2, "\(refused.stdout)\(refused.stderr)")
        #expect(
            refused.stderr.contains("the journal in \(j.data) has signed checkpoints, but its private key \(j.keyFile) is missing"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: j.keyFile))
        #expect(try j.lastSeq() == last)
        Self.expectPasses(try await j.verify(j.pin + j.anchor), through: last, key: j.fingerprint)
    }

    /// 12. A bundle exported by the binary, its HTML timeline edited: VERIFY.md's script
    /// (sha256sum, openssl, jq) fails at the manifest; with the manifest made again, at
    /// the contents list; with that made again too, at the record the journal signed.
    @Test func anEditedBundleTimelineFails() async throws {
        let j = try await Journal.make(.file)
        let database = try j.database()
        let incident = try #require(try await database.read { db in try String.fetchOne(db, sql: "SELECT incident FROM records WHERE incident IS NOT NULL LIMIT 1") })
        let bundle = j.root.appendingPathComponent("bundle")
        let export = try await CLI.run(["export", incident, "--out", bundle.path, "--data-dir", j.data] + j.signing + j.anchor)
        #expect(export.status == 0, "\(export.stderr)")
        let environment = ["EXPECTED_KEY": j.fingerprint]
        let sound = try await CustodyCLITests.checkBundle(bundle, environment: environment)
        #expect(sound.status == 0, "\(sound.stdout)")
        let html = bundle.appendingPathComponent("timeline.html")
        let original = try String(contentsOf: html, encoding: .utf8)
        let edited = original.replacingOccurrences(of: "guardduty-ec2-quarantine", with: "a-harmless-playbook")
        #expect(edited != original)
        try edited.write(to: html, atomically: true, encoding: .utf8)
        let steps: [(String, String)] = [
            ("", "FAIL: a file differs from MANIFEST.sha256"),
            ("sha256sum $(find . -type f ! -name MANIFEST.sha256 | sed 's|^./||' | sort) > M && mv M MANIFEST.sha256", "FAIL: a file differs from CONTENTS.sha256"),
            (
                "sha256sum $(cut -c67- CONTENTS.sha256) > C && mv C CONTENTS.sha256 && sha256sum $(find . -type f ! -name MANIFEST.sha256 | sed 's|^./||' | sort) > M && mv M MANIFEST.sha256",
                "FAIL: CONTENTS.sha256 is not the one the journal recorded"
            ),
        ]
        for (relist, message) in steps {
            if !relist.isEmpty { _ = try await offPool { try Shell.run("sh", ["-c", relist], directory: bundle) } }
            let result = try await CustodyCLITests.checkBundle(bundle, environment: environment)
            #expect(result.status != 0)
            #expect(result.stdout.contains(message), "\(result.stdout)")
        }
    }
}
