import CordonCore
import CordonDrill
import Foundation
import XCTest

@testable import CordonAWS

/// A drill against moto seeded with the scenario's inventory gives the same outcomes as
/// the same drill on the simulated cloud.
final class DrillMotoTests: XCTestCase {
    func testTheFirstShippedDrillOnMotoMatchesTheSimulatedRun() async throws {
        let root = PlaybookHarness.root
        let config = try PlaybookHarness.config()
        let file = root.appendingPathComponent("Fixtures/drills/01-compromised-ec2-instance.yaml").path
        let scenario = try ScenarioLoader(playbooks: config.playbooks).load(path: file)
        let runner = DrillRunner(scenario: scenario, config: config)

        let simDir = try PlaybookHarness.tempDir("drill-sim")
        let motoDir = try PlaybookHarness.tempDir("drill-moto")
        defer {
            try? FileManager.default.removeItem(at: simDir)
            try? FileManager.default.removeItem(at: motoDir)
        }
        let simulated = try await runner.run(dataDir: simDir.path)
        XCTAssertTrue(simulated.passed, simulated.text)

        let server = try Moto.dedicated("drill")
        let ids = try MotoSeeder.seed(SimulatedCloud(inventory: scenario.inventory).snapshot(), port: server.port)
        let moto = AWSCloud(options: AWSCloudOptions(environment: Moto.environment(port: server.port)), http: PlaybookCloudTests.http)
        let onMoto = try await runner.run(dataDir: motoDir.path, cloud: moto, cloudLabel: "aws (moto)", ids: ids)

        XCTAssertTrue(onMoto.passed, onMoto.text)
        XCTAssertEqual(simulated.checks.map(\.met), onMoto.checks.map(\.met))
        func steps(_ r: DrillReport) -> [String] { r.incidents.flatMap { i in i.steps.map { "\(i.playbook)/\($0.id): \($0.status) x\($0.attempts)" } } }
        XCTAssertEqual(steps(simulated), steps(onMoto))
        XCTAssertEqual(simulated.incidents.map(\.timeToContain), onMoto.incidents.map(\.timeToContain), "same virtual times")
        XCTAssertEqual(simulated.gaps.map(\.text).filter { !$0.contains("i-") }, onMoto.gaps.map(\.text).filter { !$0.contains("i-") })
    }
}
