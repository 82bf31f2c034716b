import CordonAWS
import CordonCloud
import CordonSimulatedCloud
import CordonDrill
import Foundation

/// `cordon drill --cloud aws`: only against a local endpoint (moto), never a real account.
/// The scenario's inventory is created there first (`InventorySeeder`), then the drill
/// runs against it with the endpoint's ids, its AWS-call faults injected into the
/// requests before they are sent.
enum MotoDrill {
    static let localHosts: Set<String> = ["localhost", "127.0.0.1", "::1", "[::1]"]

    static func run(_ runner: DrillRunner, dataDir: String, environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> DrillReport {
        let endpoint = environment["AWS_ENDPOINT_URL"] ?? ""
        guard let host = URL(string: endpoint)?.host, localHosts.contains(host) else {
            throw DrillRunner.Failure(
                message: "--cloud aws drills run only against a local AWS endpoint such as moto (AWS_ENDPOINT_URL=http://127.0.0.1:5000), because a drill creates the scenario's inventory there; AWS_ENDPOINT_URL is \(endpoint.isEmpty ? "not set" : endpoint)")
        }
        // Every service at that endpoint: a per-service variable must not send part of
        // the drill (or of the seeding) anywhere else.
        let elsewhere = environment.filter { $0.key.hasPrefix("AWS_ENDPOINT_URL_") && !$0.value.isEmpty }.filter { URL(string: $0.value)?.host.map { !localHosts.contains($0) } ?? true }
        if let other = elsewhere.keys.sorted().first {
            throw DrillRunner.Failure(message: "--cloud aws drills run only against a local AWS endpoint, but \(other) is \(elsewhere[other]!); unset it")
        }
        var env = environment
        env["AWS_REGION"] = env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ?? "us-east-1"
        let cloud = AWSCloud(options: AWSCloudOptions(environment: env), http: .shared())
        do {
            let report = try await drill(runner, cloud: cloud, endpoint: endpoint, dataDir: dataDir)
            try? await cloud.shutdown()
            return report
        } catch {
            try? await cloud.shutdown()
            throw error
        }
    }

    static func drill(_ runner: DrillRunner, cloud: AWSCloud, endpoint: String, dataDir: String) async throws -> DrillReport {
        let seeded: InventorySeeder.Seeded
        do {
            seeded = try await InventorySeeder(cloud: cloud).seed(runner.scenario.inventory)
        } catch {
            var message = "--cloud aws: \(error)"
            if error.error.code.contains("AlreadyExists") || error.error.code.contains("AlreadyOwned") || error.error.code.hasSuffix(".Duplicate") {
                message += " — the endpoint still holds an earlier drill's inventory: restart moto_server, or reset it with `curl -X POST \(endpoint)/moto-api/reset`"
            }
            throw DrillRunner.Failure(message: message)
        }
        let made = seeded.created.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)\($0.value == 1 ? "" : "s")" }.joined(separator: ", ")
        printError("cordon: seeded \(endpoint) (account \(seeded.account)) with the inventory of \(runner.scenario.name): \(made.isEmpty ? "nothing" : made)")
        var notes: [String] = []
        if seeded.inventoryAccount != seeded.account {
            notes.append("the inventory's account \(seeded.inventoryAccount) was created as the endpoint's account \(seeded.account)")
        }
        if !seeded.unseededAccounts.isEmpty {
            notes.append(
                "inventory account\(seeded.unseededAccounts.count == 1 ? "" : "s") \(seeded.unseededAccounts.joined(separator: ", ")) not seeded: the endpoint's credentials reach account \(seeded.account) only, so calls into \(seeded.unseededAccounts.count == 1 ? "it" : "them") do not see the inventory's resources")
        }
        return try await runner.run(dataDir: dataDir, cloud: cloud, cloudLabel: "aws (\(endpoint))", ids: seeded.ids, notes: notes)
    }
}
