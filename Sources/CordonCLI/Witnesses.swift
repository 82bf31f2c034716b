import CordonAWS
import CordonCore
import CordonIntegrations
import CordonJournal
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The witnesses `--anchor` names, and the publishers that send checkpoints to them for
/// this process: `cordon run` runs them as a service; every command sends what is left
/// when it ends (`flush`).
enum Witnesses {
    /// - Parameter tsaCA: PEM certificates a `tsa:` witness's tokens must chain to.
    static func make(_ spec: String, tsaCA: String? = nil) async throws -> any CheckpointWitness {
        do {
            if spec.hasPrefix("file:") { return try FileWitness(path: String(spec.dropFirst(5))) }
        } catch {
            throw CordonError(.usage, "--anchor \(spec): \(error)")
        }
        if spec.hasPrefix("s3://") {
            do {
                return try await S3ObjectLockWitness.open(spec, cloud: CustodyCloud.shared)
            } catch {
                throw CordonError(.invalidInput, "--anchor \(spec): \(error)")
            }
        }
        if spec.hasPrefix("tsa:") {
            do {
                return try TimestampWitness(spec: spec, trustAnchorPEM: tsaCA)
            } catch {
                throw CordonError(.usage, "--anchor \(spec): \(error)")
            }
        }
        throw CordonError(.usage, "--anchor \(spec): expected file:PATH, s3://BUCKET/PREFIX or tsa:URL")
    }

    private static let publishers = Mutex<[WitnessPublisher]>([])

    static func register(_ publisher: WitnessPublisher) {
        publishers.withLock { $0.append(publisher) }
    }

    static var registered: [WitnessPublisher] { publishers.withLock { $0 } }

    /// Sends every checkpoint a witness has not seen, waiting at most `timeout`; a witness
    /// still behind is reported (the next command that writes the journal sends it).
    static func flush(timeout: Duration = .seconds(15)) async {
        let all = publishers.withLock { publishers in
            defer { publishers = [] }
            return publishers
        }
        for publisher in all {
            for spec in await publisher.flush(timeout: timeout) {
                printError("cordon: warning: witness \(spec) did not take the newest checkpoint; the next command that writes the journal sends it")
            }
        }
    }
}

/// The AWS client of the journal's custody (a KMS signing key, an S3 witness), made on
/// first use from the environment's credentials and shut down when the command ends.
enum CustodyCloud {
    private static let made = Mutex<AWSCloud?>(nil)

    static var shared: AWSCloud {
        made.withLock { made in
            if let made { return made }
            let cloud = AWSCloud(options: AWSCloudOptions(environment: ProcessInfo.processInfo.environment), http: .shared())
            made = cloud
            return cloud
        }
    }

    static func shutdown() async {
        let cloud = made.withLock { made in
            defer { made = nil }
            return made
        }
        try? await cloud?.shutdown()
    }
}

/// `cordon run`'s witnesses: sends each checkpoint as it is written, until shutdown.
struct WitnessService: Service {
    let publisher: WitnessPublisher

    /// Ends at once on graceful shutdown, a send in progress or a retry's wait included:
    /// a witness that is down must not hold up the runner's shutdown. The command sends
    /// what is left when it ends (`Witnesses.flush`), as every command does.
    func run() async throws {
        await cancelWhenGracefulShutdown {
            await publisher.run()
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
