import CordonCore
import CordonDrill
import CordonTestSupport
import Foundation
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

/// A drill against moto seeded with the scenario's inventory (`InventorySeeder`) gives
/// the same outcomes as the same drill on the simulated cloud — every shipped scenario,
/// faults on AWS calls included (injected into the requests on moto).
final class DrillMotoTests: XCTestCase {
    /// One moto_server for these tests, reset before each drill.
    private static let shared = Mutex<PythonServer?>(nil)

    static func moto() async throws -> PythonServer {
        let server = try shared.withLock { s in
            if let s { return s }
            let started = try Moto.dedicated("drills")
            s = started
            return started
        }
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(server.port)/moto-api/reset")!)
        request.httpMethod = "POST"
        let (_, response) = try await URLSession.shared.data(for: request)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 200, "moto reset")
        return server
    }

    static func cloud(_ server: PythonServer, log: CallLog? = nil) -> AWSCloud {
        AWSCloud(options: AWSCloudOptions(environment: Moto.environment(port: server.port), observer: log?.observer), http: PlaybookCloudTests.http)
    }

    /// Text of a moto run with moto's ids put back to the inventory's and incident ids
    /// (hashes of keys that hold those ids) blanked, so that it compares.
    static func normalized(_ text: String, _ ids: [String: String]) -> String {
        var t = text
        for (inventory, moto) in ids.sorted(by: { $0.value.count > $1.value.count }) where inventory != moto {
            t = t.replacingOccurrences(of: moto, with: inventory)
        }
        return t.replacingOccurrences(of: #"inc-[0-9a-f]{12}"#, with: "inc-…", options: .regularExpression)
    }

    /// Runs the scenario on the simulated cloud and on moto; compares what the report
    /// says, leaving out incidents of the playbooks in `except` (and expectations and
    /// gaps naming them or `alsoExcept`).
    func compare(
        _ file: String, except: Set<String> = [], alsoExcept: [String] = [], file testFile: StaticString = #filePath, line: UInt = #line
    ) async throws -> (DrillReport, DrillReport) {
        let config = try PlaybookHarness.config()
        let path = PlaybookHarness.root.appendingPathComponent("Fixtures/drills/\(file)").path
        let scenario = try ScenarioLoader(playbooks: config.playbooks).load(path: path)
        let runner = DrillRunner(scenario: scenario, config: config)
        let simDir = try PlaybookHarness.tempDir("drill-sim")
        let motoDir = try PlaybookHarness.tempDir("drill-moto")
        defer {
            try? FileManager.default.removeItem(at: simDir)
            try? FileManager.default.removeItem(at: motoDir)
        }
        let simulated = try await runner.run(dataDir: simDir.path)

        let server = try await Self.moto()
        let cloud = Self.cloud(server)
        let seeded = try await InventorySeeder(cloud: cloud).seed(scenario.inventory)
        XCTAssertEqual(seeded.account, "123456789012", file: testFile, line: line)
        let onMoto = try await runner.run(dataDir: motoDir.path, cloud: cloud, cloudLabel: "aws (moto)", ids: seeded.ids)
        let n = { (s: String) in Self.normalized(s, seeded.ids) }
        let excluded = Array(except) + alsoExcept
        let kept = { (s: String) in !excluded.contains { s.contains($0) } }
        func incidents(_ r: DrillReport) -> [DrillReport.IncidentSummary] { r.incidents.filter { !except.contains($0.playbook) } }

        XCTAssertEqual(simulated.cloud, "simulated", file: testFile, line: line)
        XCTAssertEqual(onMoto.cloud, "aws (moto)", file: testFile, line: line)
        if except.isEmpty { XCTAssertEqual(simulated.passed, onMoto.passed, onMoto.text, file: testFile, line: line) }
        XCTAssertEqual(
            simulated.checks.map { "\($0.expectation): \($0.met)" }.filter(kept), onMoto.checks.map { n("\($0.expectation): \($0.met)") }.filter(kept), file: testFile,
            line: line)
        func steps(_ r: DrillReport) -> [String] { incidents(r).flatMap { i in i.steps.map { "\(i.playbook)/\($0.id): \($0.status) x\($0.attempts)" } } }
        XCTAssertEqual(steps(simulated), steps(onMoto), file: testFile, line: line)
        XCTAssertEqual(incidents(simulated).map(\.status), incidents(onMoto).map(\.status), file: testFile, line: line)
        XCTAssertEqual(incidents(simulated).map(\.timeToDetect), incidents(onMoto).map(\.timeToDetect), "same virtual times", file: testFile, line: line)
        XCTAssertEqual(incidents(simulated).map(\.timeToContain), incidents(onMoto).map(\.timeToContain), "same virtual times", file: testFile, line: line)
        let simulatedIds = Set(simulated.incidents.filter { except.contains($0.playbook) }.map(\.id))
        let motoIds = Set(onMoto.incidents.filter { except.contains($0.playbook) }.map(\.id))
        let gap = { (ids: Set<String>) in { (text: String) in kept(text) && !ids.contains { text.contains($0) } } }
        XCTAssertEqual(
            simulated.gaps.map { n($0.text) }.filter(gap(simulatedIds)), onMoto.gaps.map { n($0.text) }.filter(gap(motoIds)), file: testFile, line: line)
        XCTAssertEqual(simulated.infos.map { n($0.text) }, onMoto.infos.map { n($0.text) }, file: testFile, line: line)
        XCTAssertFalse(onMoto.notes.contains { $0.text.contains("fault not injected") }, file: testFile, line: line)
        if except.isEmpty {
            XCTAssertEqual(
                simulated.notifications.map { "\($0.at) \($0.channel) \($0.delivered)" }, onMoto.notifications.map { "\($0.at) \($0.channel) \($0.delivered)" },
                file: testFile, line: line)
        }
        return (simulated, onMoto)
    }

    func testCompromisedEC2InstanceOnMotoMatchesTheSimulatedRun() async throws {
        let (simulated, onMoto) = try await compare("01-compromised-ec2-instance.yaml")
        XCTAssertTrue(simulated.passed, simulated.text)
        XCTAssertTrue(onMoto.passed, onMoto.text)
        XCTAssertTrue(onMoto.text.contains("aws (moto) cloud"), "the report says where it ran")
    }

    func testLeakedAccessKeyOnMotoMatchesTheSimulatedRun() async throws {
        let (_, onMoto) = try await compare("02-leaked-access-key-tor.yaml")
        XCTAssertTrue(onMoto.passed, onMoto.text)
    }

    func testSecurityGroupOpenToWorldOnMotoMatchesTheSimulatedRun() async throws {
        let (_, onMoto) = try await compare("03-security-group-open-to-world.yaml")
        XCTAssertTrue(onMoto.passed, onMoto.text)
    }

    /// The trail is named by ARN in the finding: Cordon calls its home region with its
    /// name, which moto 5.2.1 answers (by ARN it answers HTTP 500: getmoto/moto#10107), so
    /// the restart works on moto as in the simulated run.
    func testRootLoginAndStoppedTrailOnMotoMatchesTheSimulatedRun() async throws {
        let (simulated, onMoto) = try await compare("04-root-login-cloudtrail-stopped.yaml")
        XCTAssertTrue(simulated.passed, simulated.text)
        XCTAssertTrue(onMoto.passed, onMoto.text)
        let restart = onMoto.incidents.first { $0.playbook == "cloudtrail-logging-stopped" }?.steps.first { $0.id == "restart" }
        XCTAssertEqual(restart?.status, "succeeded")
    }

    /// The scenario with a fault on an AWS call: CreateSnapshot throttled three times.
    func testThrottlingScenarioOnMotoAppliesTheSameFaults() async throws {
        let (simulated, onMoto) = try await compare("05-throttling-and-denied-approval.yaml")
        let snapshot = onMoto.incidents.flatMap(\.steps).first { $0.id == "snapshot" }
        XCTAssertEqual(snapshot?.attempts, simulated.incidents.flatMap(\.steps).first { $0.id == "snapshot" }?.attempts)
        XCTAssertGreaterThan(snapshot?.attempts ?? 0, 1, "the throttling was injected on moto too: \(onMoto.text)")
    }

    // MARK: - Faults over the AWS transport

    func testInjectedFaultsFailAWSCallsBeforeTheyAreSentAndWearOff() async throws {
        let server = try await Self.moto()
        let log = CallLog()
        let base = Self.cloud(server, log: log)
        let time = Mutex(Date(timeIntervalSince1970: 1_000_000))
        let slept = Mutex<[Duration]>([])
        let injector = FaultInjector(now: { time.withLock { $0 } }, sleep: { d in slept.withLock { $0.append(d) } })
        let cloud = base.injecting(injector)
        let scope = CloudScope(region: "us-east-1")
        let ec2 = try await cloud.ec2(scope)

        injector.inject(.throttle("ec2:DescribeSecurityGroups", times: 2))
        for _ in 0..<2 {
            do {
                _ = try await ec2.describeSecurityGroups(ids: ["sg-12345678"])
                XCTFail("throttled")
            } catch {
                XCTAssertEqual(error.code, "RequestLimitExceeded")
                XCTAssertTrue(error.retryable)
            }
        }
        // The third call reaches moto (which does not know the group).
        do {
            _ = try await ec2.describeSecurityGroups(ids: ["sg-12345678"])
            XCTFail("moto does not know the group")
        } catch {
            XCTAssertEqual(error.code, "InvalidGroup.NotFound")
        }
        XCTAssertEqual(log.all.suffix(3).map(\.errorCode), ["RequestLimitExceeded", "RequestLimitExceeded", "InvalidGroup.NotFound"], "the observer sees injected failures")

        // By IAM action or the simulated cloud's API name (S3's PutPublicAccessBlock).
        injector.inject(.accessDenied("s3:PutPublicAccessBlock"))
        let s3 = try await cloud.s3(scope)
        do {
            try await s3.putPublicAccessBlock(bucket: "any", .allBlocked)
            XCTFail("denied")
        } catch {
            XCTAssertEqual(error.code, "AccessDenied")
            XCTAssertTrue(error.message.contains("s3:PutBucketPublicAccessBlock"), error.message)
        }
        injector.clear()

        // An outage ends at its time on the injector's clock; a timeout waits on its sleep.
        injector.inject(.outage("iam:*", until: Date(timeIntervalSince1970: 1_000_060)))
        let iam = try await cloud.iam(scope)
        do {
            _ = try await iam.listAccessKeys(userName: "nobody")
            XCTFail("outage")
        } catch {
            XCTAssertEqual(error.code, "ServiceUnavailable")
        }
        time.withLock { $0 = Date(timeIntervalSince1970: 1_000_060) }
        do {
            _ = try await iam.listAccessKeys(userName: "nobody")
            XCTFail("moto does not know the user")
        } catch {
            XCTAssertEqual(error.code, "NoSuchEntity", "the outage is over")
        }
        injector.inject(.timeout("cloudtrail:GetTrailStatus", after: .seconds(30)))
        let trails = try await cloud.cloudTrail(scope)
        do {
            _ = try await trails.isLogging(trail: "x")
            XCTFail("timed out")
        } catch {
            XCTAssertEqual(error.code, "RequestTimeout")
        }
        XCTAssertEqual(slept.withLock { $0 }, [.seconds(30)])
        XCTAssertTrue(injector.faults.isEmpty)

        // The cloud it came from takes no faults.
        injector.inject(.throttle("ec2:*", times: 5))
        _ = try await base.ec2(scope).findSecurityGroup(name: "default", vpcId: nil)
    }

    // MARK: - Seeding errors

    func testASeedingFailureNamesTheResourceAndWhatTheEndpointSaid() async throws {
        let server = try await Self.moto()
        let inventory = try Inventory.parse(
            """
            accounts:
              "123456789012":
                users:
                  - name: dup
                regions:
                  us-east-1:
                    topics: [{name: alerts}]
            """)
        let cloud = Self.cloud(server)
        let first = try await InventorySeeder(cloud: cloud).seed(inventory)
        XCTAssertEqual(first.created, ["user": 1, "topic": 1])
        XCTAssertEqual(first.unseededAccounts, [])
        do {
            _ = try await InventorySeeder(cloud: cloud).seed(inventory)
            XCTFail("the user exists")
        } catch {
            XCTAssertEqual(error.resource, "IAM user dup")
            XCTAssertEqual(error.error.code, "EntityAlreadyExists")
            XCTAssertFalse(error.unreachable)
            XCTAssertTrue(error.description.contains("failed while creating IAM user dup: EntityAlreadyExists"), error.description)
        }
    }

    func testAnUnreachableEndpointIsSaidSo() async throws {
        let cloud = AWSCloud(options: AWSCloudOptions(environment: Moto.environment(port: 1)), http: PlaybookCloudTests.http)
        let inventory = try Inventory.load(path: Fixture.examplePath)
        do {
            _ = try await InventorySeeder(cloud: cloud).seed(inventory)
            XCTFail("nothing listens on port 1")
        } catch {
            XCTAssertTrue(error.unreachable, "\(error.error)")
            XCTAssertTrue(error.description.hasPrefix("cannot reach the AWS endpoint http://127.0.0.1:1"), error.description)
        }
    }

    /// Another inventory account than the endpoint's is seeded as the endpoint's, and
    /// said so through the id map; the others are listed as not seeded.
    func testTheInventorysAccountIsMappedToTheEndpoints() async throws {
        let server = try await Self.moto()
        let inventory = try Inventory.parse(
            """
            accounts:
              "999988887777":
                default: true
                roles: [{name: responder}]
              "111122223333": {}
            """)
        let seeded = try await InventorySeeder(cloud: Self.cloud(server)).seed(inventory)
        XCTAssertEqual(seeded.inventoryAccount, "999988887777")
        XCTAssertEqual(seeded.ids["999988887777"], "123456789012")
        XCTAssertEqual(seeded.unseededAccounts, ["111122223333"])
        XCTAssertEqual(seeded.created, ["role": 1])
    }
}
