import CordonAWS
import CordonCloud
import CordonSimulatedCloud
import CordonCore
import CordonDrill
import CordonJournal
import Foundation
import XCTest
import CordonIntegrations

final class DrillTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func config() throws -> LoadedConfig {
        let loaded = ConfigLoader(actions: .builtIn).load(
            [Self.root.appendingPathComponent("Playbooks").path], integrationPaths: [Self.root.appendingPathComponent("Integrations").path])
        XCTAssertTrue(loaded.isValid, loaded.errors.map(\.description).joined(separator: "\n"))
        return loaded
    }

    func tempDir(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("cordon-drill-\(name)-\(UUID().uuidString)").path
    }

    func shipped() throws -> [String] {
        let dir = Self.root.appendingPathComponent("Fixtures/drills")
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    func load(_ path: String) throws -> Scenario {
        let playbooks = try config().playbooks
        do { return try ScenarioLoader(playbooks: playbooks).load(path: path) } catch {
            XCTFail(error.description)
            throw error
        }
    }

    /// A scenario written to a temporary file (relative paths resolve from Fixtures/drills).
    func scenario(_ yaml: String) throws -> String {
        let path = Self.root.appendingPathComponent("Fixtures/drills/.test-\(UUID().uuidString).yaml").path
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func run(_ path: String, seed: UInt64? = nil, dir: String? = nil) async throws -> (DrillReport, String) {
        let s = try load(path)
        let dataDir = dir ?? tempDir(s.name)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dataDir) }
        let report = try await DrillRunner(scenario: s, config: try config(), seed: seed).run(dataDir: dataDir)
        return (report, dataDir)
    }

    func records(_ dataDir: String) async throws -> [JournalRecord] {
        let journal = try SQLiteJournal(directory: DataDirectory(dataDir))
        let records = try await journal.records(from: 1, limit: 100_000)
        try await journal.close()
        return records
    }

    // MARK: - Shipped scenarios

    func testAtLeastFiveShippedScenariosAllPass() async throws {
        let files = try shipped()
        XCTAssertGreaterThanOrEqual(files.count, 5)
        for file in files {
            let (report, dir) = try await run(file)
            XCTAssertTrue(report.passed, "\(file):\n\(report.text)")
            XCTAssertFalse(report.checks.isEmpty, file)
            let recs = try await records(dir)
            XCTAssertEqual(recs.first?.kind, "drill.started", file)
            XCTAssertEqual(recs.last?.kind, "drill.finished", file)
            // Every record the runner wrote names the drill as its actor; humans are user:NAME.
            for r in recs { XCTAssertTrue(r.actor.hasPrefix("cordon-drill/") || (r.actor.hasPrefix("user:") && r.actor.hasSuffix(" (drill)")), r.actor) }
        }
    }

    func testAFourHourScenarioRunsInVirtualTime() async throws {
        let file = try shipped()[0]
        let started = ContinuousClock.now
        let (report, dir) = try await run(file)
        let elapsed = ContinuousClock.now - started
        XCTAssertLessThan(elapsed, .seconds(5), "4 virtual hours took \(elapsed)")
        let recs = try await records(dir)
        let first = try XCTUnwrap(recs.first.flatMap { Timestamp.parse($0.time) })
        let last = try XCTUnwrap(recs.last.flatMap { Timestamp.parse($0.time) })
        XCTAssertEqual(last.timeIntervalSince(first), 4 * 3600, accuracy: 1)
        XCTAssertEqual(recs.first?.time.hasPrefix("2026-03-14T02:00:00"), true, "records carry virtual times")
        // The approval waited 12 minutes of virtual time, and containment followed.
        XCTAssertTrue(report.text.contains("waited 12 min for alice"), report.text)
        XCTAssertTrue(report.text.contains("no playbook matched finding near-miss-ssh-brute-force-severity-2.json"), report.text)
    }

    // MARK: - Determinism

    func testSameScenarioAndSeedGiveTheSameJournalAndReport() async throws {
        let file = try shipped().first { $0.contains("throttling") }!
        let (a, dirA) = try await run(file, seed: 5)
        let (b, dirB) = try await run(file, seed: 5)
        let ra = try await records(dirA), rb = try await records(dirB)
        XCTAssertEqual(ra.count, rb.count)
        XCTAssertEqual(ra.map(\.hash), rb.map(\.hash), "the same records, chained the same")
        XCTAssertEqual(a.render(.json), b.render(.json))
        XCTAssertEqual(a.render(.md), b.render(.md))
        // Another seed: other backoffs, so other times in the journal.
        let (_, dirC) = try await run(file, seed: 6)
        let rc = try await records(dirC)
        XCTAssertNotEqual(ra.map(\.time), rc.map(\.time))
    }

    // MARK: - Faults

    static let header = """
        name: fault-test
        description: test
        narrative: test
        start: "2026-03-16T09:00:00Z"
        inventory: ../inventory/example.yaml
        env: {CORDON_SNS_TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:cordon-alerts"}
        """

    func testThrottlingIsRetriedAndAccessDeniedFailsAndAnOutageEnds() async throws {
        let path = try scenario(Self.header + """

            timeline:
              - at: 0s
                fault: {operation: ec2:CreateSnapshot, effect: throttle, times: 2}
              - at: 0s
                fault: {operation: ec2:ModifyNetworkInterfaceAttribute, effect: access_denied}
              - at: 0s
                fault: {operation: "sns:*", effect: outage, for: 1h}
              - at: 1m
                finding: {file: ../playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json}
            expect:
              - incident:
                  playbook: guardduty-ec2-quarantine
                  steps: {snapshot: succeeded, isolate: failed}
            """)
        let (report, _) = try await run(path)
        XCTAssertTrue(report.passed, report.text)
        let incident = try XCTUnwrap(report.incidents.first)
        let snapshot = try XCTUnwrap(incident.steps.first { $0.id == "snapshot" })
        XCTAssertEqual(snapshot.attempts, 3, "two throttled attempts, then success")
        let isolate = try XCTUnwrap(incident.steps.first { $0.id == "isolate" })
        XCTAssertEqual(isolate.attempts, 1, "access denied is not retried")
        XCTAssertTrue(isolate.error?.contains("UnauthorizedOperation") ?? false, isolate.error ?? "")
        XCTAssertTrue(report.gaps.contains { $0.text.contains("step isolate failed") }, report.text)
    }

    func testAnOutageEndsAndATimeoutAdvancesTheVirtualClock() async throws {
        let path = try scenario(Self.header + """

            timeline:
              - at: 0s
                fault: {operation: ec2:CreateSnapshot, effect: outage, times: 1}
              - at: 0s
                fault: {operation: ec2:DescribeInstances, effect: timeout, after: 20s, times: 1}
              - at: 1m
                finding: {file: ../playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json}
            expect:
              - incident:
                  playbook: guardduty-ec2-quarantine
                  steps: {evidence: succeeded, snapshot: succeeded, isolate: succeeded}
            """)
        let started = ContinuousClock.now
        let (report, dir) = try await run(path)
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
        XCTAssertTrue(report.passed, report.text)
        let recs = try await records(dir)
        let failed = recs.filter { $0.kind == RecordKind.stepFailed }
        XCTAssertTrue(failed.contains { ($0.data["error"]?.stringValue ?? "").contains("Timeout") }, "\(failed.map(\.data))")
        XCTAssertTrue(failed.contains { ($0.data["error"]?.stringValue ?? "").contains("ServiceUnavailable") }, "\(failed.map(\.data))")
        // The hung call took virtual time: the evidence step's retry came 20 s after the first attempt at least.
        let intents = recs.filter { $0.kind == RecordKind.stepIntent && $0.data["step"] == "evidence" }.compactMap { Timestamp.parse($0.time) }
        XCTAssertEqual(intents.count, 2)
        if intents.count == 2 { XCTAssertGreaterThanOrEqual(intents[1].timeIntervalSince(intents[0]), 20) }

        // A call that hangs longer than the step's timeout (60 s) is given up at the
        // deadline: the step fails with the engine's timeout, at virtual time +60 s.
        let long = try scenario(Self.header + """

            timeline:
              - at: 0s
                fault: {operation: ec2:DescribeInstances, effect: timeout, after: 2h}
              - at: 1m
                finding: {file: ../playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json}
            expect:
              - incident: {playbook: guardduty-ec2-quarantine, steps: {evidence: failed}}
            """)
        let started2 = ContinuousClock.now
        let (report2, dir2) = try await run(long)
        XCTAssertLessThan(ContinuousClock.now - started2, .seconds(5), "a 2-hour hang costs no real time")
        XCTAssertTrue(report2.passed, report2.text)
        let recs2 = try await records(dir2)
        let intent = try XCTUnwrap(recs2.first { $0.kind == RecordKind.stepIntent && $0.data["step"] == "evidence" })
        let failure = try XCTUnwrap(recs2.first { $0.kind == RecordKind.stepFailed && $0.data["step"] == "evidence" })
        XCTAssertEqual(failure.data["error"]?.stringValue, "Timeout: no answer within 1m")
        let waited = try XCTUnwrap(Timestamp.parse(failure.time)).timeIntervalSince(try XCTUnwrap(Timestamp.parse(intent.time)))
        XCTAssertEqual(waited, 60, accuracy: 0.01)
    }

    func testAnSNSTargetThatIsDownFailsThePublishAndIsReported() async throws {
        let path = try scenario(Self.header + """

            timeline:
              - at: 0s
                fault: {target: sns, effect: down, for: 1h}
              - at: 1m
                finding: {file: ../playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json}
            expect:
              - incident: {playbook: guardduty-ec2-quarantine, steps: {isolate: succeeded, notify_sns: failed, notify_slack: succeeded}}
              - notification: {via: sns}
            """)
        let (report, _) = try await run(path)
        XCTAssertEqual(report.checks.map(\.met), [true, false], report.text)
        XCTAssertTrue(report.gaps.contains { $0.text.contains("step notify_sns failed") && $0.text.contains("ServiceUnavailable") }, report.text)
    }

    // MARK: - Expectations that fail

    func testAMissedExpectationFailsWithEvidence() async throws {
        let path = try scenario(Self.header + """

            timeline:
              - at: 1m
                finding: {file: ../playbooks/guardduty-ec2-quarantine/fires-backdoor-cc-prod-instance.json}
            expect:
              - incident:
                  playbook: guardduty-ec2-quarantine
                  steps: {isolate: succeeded}
                  contained_within: 10m
              - resource: {instance: i-0a1b2c3d4e5f67890, security_groups: [cordon-quarantine]}
              - no_incident: guardduty-iam-credential-compromise
            """)
        let (report, _) = try await run(path)
        XCTAssertFalse(report.passed)
        // Nobody approved: the 15-minute timeout proceeded, after the 10-minute bound; the
        // instance did end isolated, and no credential incident was opened.
        XCTAssertEqual(report.checks.map(\.met), [false, true, true])
        XCTAssertTrue(report.checks[0].evidence.contains("contained after 15 min, more than 10m"), report.checks[0].evidence)
        XCTAssertTrue(report.gaps.contains { $0.text.contains("waited 15 min") && $0.text.contains("on_timeout proceeded") }, report.text)
        XCTAssertTrue(report.text.contains("[MISSED] incident from guardduty-ec2-quarantine"), report.text)
        XCTAssertTrue(report.text.hasSuffix("FAILED: 1 of 3 expectations missed"), report.text)
    }

    // MARK: - Validation

    func testScenarioErrorsHavePositions() throws {
        let path = try scenario("""
            name: Bad Name
            description: x
            narrative: x
            inventory: ../inventory/example.yaml
            timelime: []
            timeline:
              - at: 5 minutes
                finding: {file: nope.json}
              - at: 1m
                approve: {playbook: guardduty-ec2-quarantin, step: isolate, by: alice}
                fault: {operation: ec2:CreateSnapshot, effect: throttle}
              - at: 2m
                fault: {target: slack, effect: throttle}
            expect:
              - incident: {playbook: guardduty-ec2-quarantine, steps: {isolat: succeeded}}
              - resource: {instance: i-1, logging: true}
            """)
        let name = URL(fileURLWithPath: path).path
        let playbooks = try config().playbooks
        var shapeErrors: [Diagnostic] = []
        do { _ = try ScenarioLoader(playbooks: playbooks).load(path: path) } catch { shapeErrors = error.diagnostics }
        let text = shapeErrors.map(\.description).joined(separator: "\n")
        XCTAssertTrue(text.contains("\(name):1:7: name: \"Bad Name\" is not valid"), text)
        XCTAssertTrue(text.contains("\(name):5:1: unknown key \"timelime\" (did you mean \"timeline\"?)"), text)
        XCTAssertTrue(text.contains("\(name):7:9: timeline[0].at: \"5 minutes\" is not a duration"), text)

        // Once the shape is right, the meaning is checked, still with positions.
        let fixed = try scenario("""
            name: bad
            description: x
            narrative: x
            inventory: ../inventory/example.yaml
            timeline:
              - at: 5m
                finding: {file: nope.json}
              - at: 1m
                approve: {playbook: guardduty-ec2-quarantin, step: isolate, by: alice}
                fault: {operation: ec2:CreateSnapshot, effect: throttle}
              - at: 2m
                fault: {target: slack, effect: throttle}
              - at: 3m
                approve: {playbook: guardduty-ec2-quarantine, step: isolat, by: alice}
            expect:
              - incident: {playbook: guardduty-ec2-quarantine, steps: {isolat: succeeded}}
              - resource: {instance: i-1, logging: true}
            """)
        var errors: [Diagnostic] = []
        do { _ = try ScenarioLoader(playbooks: playbooks).load(path: fixed) } catch { errors = error.diagnostics }
        let t = errors.map(\.description).joined(separator: "\n")
        let f = URL(fileURLWithPath: fixed).path
        XCTAssertTrue(t.contains("\(f):7:21: no finding file"), t)
        XCTAssertTrue(t.contains("\(f):8:5: a timeline entry holds one injection"), t)
        XCTAssertTrue(t.contains("\(f):12:36: a notification target takes effect down"), t)
        XCTAssertTrue(t.contains("\(f):14:57: playbook guardduty-ec2-quarantine has no step \"isolat\""), t)
        XCTAssertTrue(t.contains("\(f):16:60: playbook guardduty-ec2-quarantine has no step \"isolat\""), t)
        XCTAssertTrue(t.contains("logging does not apply to a instance"), t)
    }

    func testBadInputNeverCrashes() throws {
        for text in ["", "[]", "name: 3", "timeline: 7", "timeline: [{at: 1m, finding: {event: 3}}]", ":\n  - {", "timeline: [{at: 1m, fault: {}}]"] {
            let path = try scenario(text)
            XCTAssertThrowsError(try ScenarioLoader().load(path: path), text)
        }
    }

    func testADrillNeverClearsARealDataDirectory() throws {
        let dir = tempDir("real")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir).appendingPathComponent("journal.sqlite"))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try DrillRunner.prepare(dataDir: dir))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/journal.sqlite"))
    }
}
