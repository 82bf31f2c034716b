import CordonCore
import CordonJournal
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The witnesses `--anchor` names, and the publishers that send checkpoints to them for
/// this process: `cordon run` runs them as a service; every command sends what is left
/// when it ends (`flush`).
enum Witnesses {
    static func make(_ spec: String) async throws -> any CheckpointWitness {
        do {
            if spec.hasPrefix("file:") { return try FileWitness(path: String(spec.dropFirst(5))) }
        } catch {
            throw CordonError(.usage, "--anchor \(spec): \(error)")
        }
        if spec.hasPrefix("s3://") || spec.hasPrefix("tsa:") {
            throw CordonError(.usage, "--anchor \(spec): this build does not have that witness yet")
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

/// `cordon run`'s witnesses: sends each checkpoint as it is written, until shutdown.
struct WitnessService: Service {
    let publisher: WitnessPublisher

    func run() async throws {
        await withGracefulShutdownHandler {
            await publisher.run()
        } onGracefulShutdown: {
            publisher.stop()
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
