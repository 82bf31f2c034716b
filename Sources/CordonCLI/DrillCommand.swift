import ArgumentParser
import CordonAWS
import CordonCloud
import CordonSimulatedCloud
import CordonCore
import CordonDrill
import Foundation
import Logging

extension DrillReport.Format: ExpressibleByArgument {}

struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Run a tabletop drill: a scenario on a virtual clock against the simulated cloud.",
        discussion: """
            Runs SCENARIO (a YAML file; the format is in Fixtures/drills/README.md) with the \
            real engine and playbooks on a virtual clock — retries, timeouts and approval \
            deadlines included, without real waiting — against the simulated cloud seeded \
            from the scenario's inventory. Findings, approvals, denials and faults are \
            injected at their virtual times; notifications go to a simulated sink. \
            Everything is journaled in a drill journal (default .cordon-drill/NAME, cleared \
            on each run), and a report follows: the timeline, each expectation met or \
            missed with its evidence, time to detect and contain, failed or waiting steps \
            and the gaps found. The same scenario and --seed give the same journal and report.

            With --cloud aws the drill runs against a local endpoint that speaks AWS's APIs \
            (moto_server at AWS_ENDPOINT_URL, e.g. http://127.0.0.1:5000; any other host is \
            refused): the scenario's inventory is created there first, findings and \
            expectations use the ids the endpoint gave, and faults on AWS calls are \
            injected into the requests before they are sent.

            Exit status: 0 when every expectation holds, 1 when one is missed, 2 for an \
            invalid scenario or usage error.
            """)

    @Argument(help: ArgumentHelp("The scenario file.", valueName: "SCENARIO"))
    var scenario: String

    @Option(help: "text, md, html or json")
    var format: DrillReport.Format = .text

    @Option(help: "Seed of the retry jitter (default: the scenario's seed, else 1).")
    var seed: UInt64?

    @Option(help: "simulated (default): the in-process cloud; aws: a local AWS endpoint (moto) at AWS_ENDPOINT_URL, seeded with the scenario's inventory first.")
    var cloud: CloudKind = .simulated

    @Option(help: ArgumentHelp("Where the drill journal goes (default .cordon-drill/NAME; cleared on each run).", valueName: "DIR"))
    var dataDir: String?

    @OptionGroup var config: ConfigOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        let loaded = try loadConfiguration(config)
        let parsed: Scenario
        do {
            parsed = try ScenarioLoader(playbooks: loaded.playbooks).load(path: scenario)
        } catch {
            for d in error.diagnostics { printError(d.description) }
            throw CordonError(.invalidInput, "the scenario \(scenario) is invalid")
        }
        var runner = DrillRunner(scenario: parsed, config: loaded, seed: seed)
        runner.logger = Logger(label: "cordon.drill")
        let dir = dataDir ?? DrillRunner.defaultDataDir(parsed)
        let report: DrillReport
        do {
            switch cloud {
            case .simulated:
                report = try await runner.run(dataDir: dir)
            case .aws:
                report = try await MotoDrill.run(runner, dataDir: dir)
            }
        } catch let error as DrillRunner.Failure {
            throw CordonError(.invalidInput, "\(error)")
        }
        print(report.render(format), terminator: format == .text ? "\n" : "")
        if !report.passed { throw CordonError(.checkFailed) }
    }
}
