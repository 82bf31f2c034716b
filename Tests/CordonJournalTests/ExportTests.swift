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

    @Test func bundleVerifiesWithTheDocumentedCommands() async throws {
        let (bundle, journal) = try await exported()
        let script = try verifyScript(bundle)
        #expect(script.contains("sha256sum") && script.contains("openssl pkeyutl") && script.contains("jq"))
        let (status, output) = try await run(script, in: bundle)
        #expect(status == 0, "\(output)")
        #expect(output.contains("OK: 7 records, 1 checkpoint(s), 3 evidence file(s) verified"), "\(output)")
        #expect(output.contains("key fingerprint: \(journal.keyFingerprint ?? "-")"))
    }

    @Test func tamperedBundlesFail() async throws {
        let (bundle, _) = try await exported()
        let script = try verifyScript(bundle)

        // A changed byte in a record.
        let changed = try copy(bundle)
        var chain = try String(contentsOf: changed.appendingPathComponent("chain.jsonl"), encoding: .utf8)
        chain = chain.replacingOccurrences(of: "i-0abc", with: "i-0abd")
        try chain.write(to: changed.appendingPathComponent("chain.jsonl"), atomically: true, encoding: .utf8)
        let (s1, o1) = try await run(script, in: changed)
        #expect(s1 != 0)
        #expect(o1.contains("FAIL"), "\(o1)")

        // A deleted record.
        let deleted = try copy(bundle)
        var lines = try String(contentsOf: deleted.appendingPathComponent("chain.jsonl"), encoding: .utf8).split(separator: "\n")
        lines.remove(at: 2)
        try (lines.joined(separator: "\n") + "\n").write(to: deleted.appendingPathComponent("chain.jsonl"), atomically: true, encoding: .utf8)
        let (s2, o2) = try await run(script, in: deleted)
        #expect(s2 != 0)
        #expect(o2.contains("does not link"), "\(o2)")

        // A replaced evidence file.
        let replaced = try copy(bundle)
        let evidence = try FileManager.default.contentsOfDirectory(atPath: replaced.appendingPathComponent("evidence").path)
        try Data("forged".utf8).write(to: replaced.appendingPathComponent("evidence/\(evidence[0])"))
        let (s3, o3) = try await run(script, in: replaced)
        #expect(s3 != 0)
        #expect(o3.contains("evidence file was altered"), "\(o3)")

        // A forged checkpoint signature.
        let forged = try copy(bundle)
        var checkpoint = try String(contentsOf: forged.appendingPathComponent("checkpoints.jsonl"), encoding: .utf8)
        let signature = try #require(try JSONParser.parse(String(checkpoint.split(separator: "\n").last!))["signature"]?.stringValue)
        var bytes = Array(Data(base64Encoded: signature)!)
        bytes[5] ^= 0x01
        checkpoint = checkpoint.replacingOccurrences(of: signature, with: Data(bytes).base64EncodedString())
        try checkpoint.write(to: forged.appendingPathComponent("checkpoints.jsonl"), atomically: true, encoding: .utf8)
        let (s4, o4) = try await run(script, in: forged)
        #expect(s4 != 0)
        #expect(o4.contains("invalid signature"), "\(o4)")

        // A removed evidence file.
        let removed = try copy(bundle)
        try FileManager.default.removeItem(at: removed.appendingPathComponent("evidence/\(evidence[0])"))
        try "".write(to: removed.appendingPathComponent("evidence.sha256"), atomically: true, encoding: .utf8)
        let (s5, o5) = try await run(script, in: removed)
        #expect(s5 != 0)
        #expect(o5.contains("is missing"), "\(o5)")
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
