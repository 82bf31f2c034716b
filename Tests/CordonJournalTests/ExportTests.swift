import CordonCore
import CordonTestSupport
import Foundation
import Testing

@testable import CordonJournal

/// Writes the records an engine run would write for one incident (and noise from another).
func simulateIncident(_ journal: SQLiteJournal, id: String = "inc-0001", secrets: SecretStore? = nil) async throws {
    let finding = try journal.evidence.put(Array(#"{"detail":{"type":"Backdoor:EC2/C&CActivity.B!DNS","createdAt":"2026-03-01T10:00:00Z"}}"#.utf8), name: "finding")
    let received = try await journal.append(
        NewRecord(
            kind: RecordKind.findingReceived, actor: "cordon/test",
            data: ["finding": ["id": "f1", "detail_type": "GuardDuty Finding", "type": "Backdoor:EC2/C&CActivity.B!DNS", "created_at": "2026-03-01T10:00:00Z"], "evidence": [finding.json]],
            time: Timestamp.parse("2026-03-01T10:04:00Z")))
    try await journal.append(NewRecord(incident: "other", kind: RecordKind.incidentOpened, actor: "cordon/test", data: ["playbook": "x"]))
    try await journal.append(
        NewRecord(
            incident: id, kind: RecordKind.incidentOpened, actor: "cordon/test",
            data: ["playbook": "guardduty-ec2-quarantine", "playbook_version": 1, "title": "Backdoor on i-0abc", "finding_seq": .number(JSONNumber(Int(received.seq)))],
            time: Timestamp.parse("2026-03-01T10:04:01Z")))
    let preState = try journal.evidence.put(Array(#"{"groups":["sg-1","sg-2"]}"#.utf8), name: "pre-state")
    var inputs: JSONObject = ["instance_id": "i-0abc"]
    if let secrets, let token = secrets.value("CORDON_TEST_TOKEN") { inputs["authorization"] = .string("Bearer \(token)") }
    try await journal.append(
        NewRecord(incident: id, kind: RecordKind.stepIntent, actor: "cordon/test", data: ["step": "isolate", "action": "aws.ec2.isolate_instance", "action_kind": "containment", "target": "i-0abc", "inputs": .object(inputs), "attempt": 1],
                  time: Timestamp.parse("2026-03-01T10:04:02Z")))
    try await journal.append(NewRecord(incident: "other", kind: RecordKind.stepSucceeded, actor: "cordon/test", data: ["step": "x"]))
    let response = try journal.evidence.put(Array("HTTP/1.1 200 OK\nauthorization: Bearer \(secrets?.value("CORDON_TEST_TOKEN") ?? "none")\n".utf8), name: "response", mediaType: "text/plain")
    try await journal.append(
        NewRecord(incident: id, kind: RecordKind.stepSucceeded, actor: "cordon/test", data: ["step": "isolate", "action": "aws.ec2.isolate_instance", "action_kind": "containment", "target": "i-0abc", "evidence": [preState.json, response.json]],
                  time: Timestamp.parse("2026-03-01T10:04:30Z")))
    try await journal.append(NewRecord(incident: id, kind: RecordKind.incidentClosed, actor: "user:alice", data: ["status": "resolved"], time: Timestamp.parse("2026-03-01T11:00:00Z")))
}

/// The shell commands of VERIFY.md's ```sh block.
func verifyScript(_ bundle: URL) throws -> String {
    let text = try String(contentsOf: bundle.appendingPathComponent("VERIFY.md"), encoding: .utf8)
    let start = try #require(text.range(of: "```sh\n"))
    let end = try #require(text.range(of: "\n```", range: start.upperBound..<text.endIndex))
    return String(text[start.upperBound..<end.lowerBound])
}

/// Runs a shell script on a thread of its own (never blocking the cooperative pool or
/// GCD's global queues, both as wide as the machine has cores).
func run(_ script: String, in dir: URL) async throws -> (Int32, String) {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do { continuation.resume(returning: try runBlocking(script, in: dir)) } catch { continuation.resume(throwing: error) }
        }
    }
}

func runBlocking(_ script: String, in dir: URL) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    process.currentDirectoryURL = dir
    let captured = try Spawn.capture(process, merge: true)
    return (captured.status, captured.stdoutText)
}

func copy(_ dir: URL) throws -> URL {
    let target = dir.deletingLastPathComponent().appendingPathComponent(dir.lastPathComponent + "-\(UUID().uuidString.prefix(6))")
    try FileManager.default.copyItem(at: dir, to: target)
    return target
}

@Suite struct ExportTests {
    func exported() async throws -> (URL, SQLiteJournal) {
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir)
        try await simulateIncident(journal)
        let out = dir.url.appendingPathComponent("bundle")
        let summary = try await EvidenceBundle.export(incident: "inc-0001", journal: journal, to: out)
        #expect(summary.records == 5)
        #expect(summary.evidenceFiles == 3)
        return (out, journal)
    }

    /// The script with the published fingerprint given.
    func checked(_ bundle: URL, key: String?) async throws -> (Int32, String) {
        let script = try verifyScript(bundle)
        return try await run((key.map { "EXPECTED_KEY=\($0); export EXPECTED_KEY\n" } ?? "") + script, in: bundle)
    }

    /// What someone editing a bundle would do after changing a file: list it again.
    func relist(_ bundle: URL, contents: Bool = false) async throws {
        if contents {
            _ = try await run("sha256sum $(cut -c67- CONTENTS.sha256) > CONTENTS.new && mv CONTENTS.new CONTENTS.sha256", in: bundle)
        }
        _ = try await run("sha256sum $(find . -type f ! -name MANIFEST.sha256 | sed 's|^./||' | sort) > MANIFEST.new && mv MANIFEST.new MANIFEST.sha256", in: bundle)
    }

    @Test func bundleVerifiesWithTheDocumentedCommands() async throws {
        let (bundle, journal) = try await exported()
        let key = try #require(journal.keyFingerprint)
        let script = try verifyScript(bundle)
        #expect(script.contains("sha256sum") && script.contains("openssl pkeyutl") && script.contains("jq"))
        let (status, output) = try await checked(bundle, key: key)
        #expect(status == 0, "\(output)")
        #expect(output.contains("OK: 8 records to seq 8 signed under key \(key), 3 evidence file(s), "), "\(output)")
        let guide = try String(contentsOf: bundle.appendingPathComponent("VERIFY.md"), encoding: .utf8)
        #expect(guide.contains("signed under the journal\nkey `\(key)`") || guide.contains("key `\(key)`"))
        // Every file is listed, the timelines among them.
        let manifest = try String(contentsOf: bundle.appendingPathComponent("MANIFEST.sha256"), encoding: .utf8)
        for file in ["timeline.html", "timeline.md", "timeline.csv", "timeline.json", "VERIFY.md", "chain.jsonl", "checkpoint.json", "keys.json", "CONTENTS.sha256"] {
            #expect(manifest.contains("  \(file)\n"), "\(file)")
        }
        // The check is explicit: no fingerprint, or another one, fails.
        let (unset, unsetOutput) = try await checked(bundle, key: nil)
        #expect(unset != 0)
        #expect(unsetOutput.contains("set EXPECTED_KEY"), "\(unsetOutput)")
        let (other, otherOutput) = try await checked(bundle, key: String(repeating: "ab", count: 32))
        #expect(other != 0)
        #expect(otherOutput.contains("FAIL: signed under key \(key), not the expected key"), "\(otherOutput)")
    }

    @Test func tamperedBundlesFail() async throws {
        let (bundle, journal) = try await exported()
        let key = try #require(journal.keyFingerprint)
        func expectFailure(_ dir: URL, _ message: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) async throws {
            let (status, output) = try await checked(dir, key: key)
            #expect(status != 0, sourceLocation: sourceLocation)
            #expect(output.contains("FAIL: \(message)"), "\(output)", sourceLocation: sourceLocation)
        }

        // A timeline edited: the manifest shows it…
        let edited = try copy(bundle)
        var html = try String(contentsOf: edited.appendingPathComponent("timeline.html"), encoding: .utf8)
        html = html.replacingOccurrences(of: "alice", with: "mallory")
        try html.write(to: edited.appendingPathComponent("timeline.html"), atomically: true, encoding: .utf8)
        try await expectFailure(edited, "a file differs from MANIFEST.sha256")
        // …listed again, the contents the journal signed show it…
        try await relist(edited)
        try await expectFailure(edited, "a file differs from CONTENTS.sha256")
        // …and with those listed again too, the journal's record does.
        try await relist(edited, contents: true)
        try await expectFailure(edited, "CONTENTS.sha256 is not the one the journal recorded")

        // A changed byte in a record.
        let changed = try copy(bundle)
        var chain = try String(contentsOf: changed.appendingPathComponent("chain.jsonl"), encoding: .utf8)
        chain = chain.replacingOccurrences(of: "i-0abc", with: "i-0abd")
        try chain.write(to: changed.appendingPathComponent("chain.jsonl"), atomically: true, encoding: .utf8)
        try await relist(changed)
        try await expectFailure(changed, "record")

        // A deleted record.
        let deleted = try copy(bundle)
        var lines = try String(contentsOf: deleted.appendingPathComponent("chain.jsonl"), encoding: .utf8).split(separator: "\n")
        lines.remove(at: 2)
        try (lines.joined(separator: "\n") + "\n").write(to: deleted.appendingPathComponent("chain.jsonl"), atomically: true, encoding: .utf8)
        try await relist(deleted)
        try await expectFailure(deleted, "record")

        // A replaced evidence file.
        let replaced = try copy(bundle)
        let evidence = try FileManager.default.contentsOfDirectory(atPath: replaced.appendingPathComponent("evidence").path)
        try Data("forged".utf8).write(to: replaced.appendingPathComponent("evidence/\(evidence[0])"))
        try await relist(replaced)
        try await expectFailure(replaced, "a file differs from CONTENTS.sha256")

        // A forged checkpoint signature.
        let forged = try copy(bundle)
        let checkpointText = try String(contentsOf: forged.appendingPathComponent("checkpoint.json"), encoding: .utf8)
        let signature = try #require(try JSONParser.parse(checkpointText)["signature"]?.stringValue)
        var bytes = Array(try #require(Data(base64Encoded: signature)))
        bytes[5] ^= 0x01
        try checkpointText.replacingOccurrences(of: signature, with: Data(bytes).base64EncodedString())
            .write(to: forged.appendingPathComponent("checkpoint.json"), atomically: true, encoding: .utf8)
        try await relist(forged)
        try await expectFailure(forged, "the checkpoint's signature is invalid")

        // A record appended to chain.jsonl without a newline (no step would hash it).
        let unhashed = try copy(bundle)
        let handle = try FileHandle(forWritingTo: unhashed.appendingPathComponent("chain.jsonl"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"kind":"bundle.exported","data":{"incident":"inc-0001","contents_sha256":"00"}}"#.utf8))
        try handle.close()
        try await relist(unhashed)
        try await expectFailure(unhashed, "chain.jsonl does not end with a newline")

        // A file slipped in.
        let added = try copy(bundle)
        try "note".write(to: added.appendingPathComponent("extra.txt"), atomically: true, encoding: .utf8)
        try await expectFailure(added, "files were added to or removed from the bundle")
    }

    @Test func timelineHasPhasesMetricsAndEveryFormat() async throws {
        let (bundle, _) = try await exported()
        let json = try JSONParser.parse(Array(try Data(contentsOf: bundle.appendingPathComponent("timeline.json"))))
        let rows = try #require(json["rows"]?.arrayValue)
        #expect(rows.map { $0["phase"]?.stringValue ?? "" } == ["Detection & Analysis", "Detection & Analysis", "Containment", "Containment", "Post-Incident Activity"])
        #expect(json["metrics"]?["time_to_detect_seconds"] == .number(JSONNumber(literal: "240.000")!))
        #expect(json["metrics"]?["time_to_contain_seconds"] == .number(JSONNumber(literal: "270.000")!))
        #expect(json["metrics"]?["time_to_close_seconds"] == .number(JSONNumber(literal: "3600.000")!))
        let csv = try String(contentsOf: bundle.appendingPathComponent("timeline.csv"), encoding: .utf8)
        #expect(csv.hasPrefix("seq,time,phase,actor,what,target,outcome,evidence\r\n"))
        #expect(csv.contains("\"Incident opened by playbook guardduty-ec2-quarantine v1\"") || csv.contains("Incident opened by playbook guardduty-ec2-quarantine v1"))
        #expect(csv.contains("Time to contain (finding created → first containment),4m30s\r\n"))
        let html = try String(contentsOf: bundle.appendingPathComponent("timeline.html"), encoding: .utf8)
        #expect(html.contains("@media print"))
        #expect(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"))
        #expect(html.contains("Backdoor on i-0abc"))
        let md = try String(contentsOf: bundle.appendingPathComponent("timeline.md"), encoding: .utf8)
        #expect(md.contains("| Time to close (finding created → incident closed) | 1h0m0s |"))
    }

    /// A finding's receipt says what it matched; the oldest journals (without `matched`)
    /// say only that it was received, and their `finding.unmatched` record says the rest.
    @Test func aReceivedFindingShowsWhatItMatched() {
        func received(_ seq: Int64, _ data: JSONValue, kind: RecordKind = "finding.received") -> JournalRecord {
            JournalRecord(seq: seq, time: "2026-01-01T00:00:0\(seq).000000Z", incident: nil, kind: kind, actor: "cordon/test", data: data, prev: JournalRecord.genesis, hash: "")
        }
        let finding: JSONValue = ["id": "f1", "detail_type": "GuardDuty Finding", "type": "Recon:EC2/PortProbeUnprotectedPort"]
        let rows = Timeline(incident: "all", records: [
            received(1, ["finding": finding, "matched": []]),
            received(2, ["finding": finding, "matched": ["quarantine", "notify"]]),
            received(3, ["finding": finding]),
            received(4, ["finding": finding], kind: "finding.unmatched"),
        ]).rows
        #expect(rows.map(\.outcome) == ["received: no playbook matched", "received: matched quarantine, notify", "received", "unmatched"])
    }

    @Test func csvEscapesAndDefusesFormulas() {
        let record = JournalRecord(seq: 1, time: "2026-01-01T00:00:00.000000Z", incident: "x", kind: "step.failed", actor: "=cmd|' /C calc'!A0", data: ["step": "a,b", "error": "said \"no\"\nthen left"], prev: JournalRecord.genesis, hash: "")
        let csv = Timeline(incident: "x", records: [record]).csv
        #expect(csv.contains(",'=cmd|' /C calc'!A0,"))
        #expect(csv.contains("\"Failed step a,b\""))
        #expect(csv.contains("\"failed: said \"\"no\"\"\nthen left\""))
    }

    @Test func secretsNeverReachJournalEvidenceOrExports() async throws {
        let token = "tok-9f8e7d6c5b4a3210-SECRET"
        let secrets = SecretStore(environment: ["CORDON_TEST_TOKEN": token])
        _ = secrets.value("CORDON_TEST_TOKEN")
        let dir = temporaryDataDirectory()
        let journal = try SQLiteJournal(directory: dir, secrets: secrets)
        try await simulateIncident(journal, secrets: secrets)
        let out = dir.url.appendingPathComponent("bundle")
        try await EvidenceBundle.export(incident: "inc-0001", journal: journal, to: out)
        try await journal.close()
        // grep -r over everything Cordon wrote: database, WAL, evidence, bundle.
        let (status, output) = try await run("grep -r -l -a -F '\(token)' . || true", in: dir.url)
        #expect(status == 0)
        #expect(output.isEmpty, "secret found in: \(output)")
        let (_, redacted) = try await run("grep -r -l -a -F '«secret:CORDON_TEST_TOKEN»' . | sort", in: dir.url)
        #expect(redacted.contains("journal.sqlite") || redacted.contains("journal.sqlite-wal"))
        #expect(redacted.contains("bundle/chain.jsonl"))
        #expect(redacted.contains("evidence/"))
    }
}
