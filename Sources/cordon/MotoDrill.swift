import CordonDrill
import Foundation

/// `cordon drill --cloud aws`: only against a local endpoint (moto), never a real account.
enum MotoDrill {
    static func run(_ runner: DrillRunner, dataDir: String) async throws -> DrillReport {
        let endpoint = ProcessInfo.processInfo.environment["AWS_ENDPOINT_URL"] ?? ""
        guard let host = URL(string: endpoint)?.host, ["localhost", "127.0.0.1", "::1"].contains(host) else {
            throw DrillRunner.Failure(
                message: "--cloud aws drills run only against a local AWS endpoint such as moto (AWS_ENDPOINT_URL=http://127.0.0.1:5000), because a drill creates the scenario's inventory there; AWS_ENDPOINT_URL is \(endpoint.isEmpty ? "not set" : endpoint)")
        }
        throw DrillRunner.Failure(message: "--cloud aws: seeding \(endpoint) with the scenario's inventory is not implemented yet; use --cloud simulated")
    }
}
