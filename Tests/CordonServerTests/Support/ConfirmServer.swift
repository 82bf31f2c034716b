import Foundation
import Hummingbird
import Logging
import Synchronization

/// A loopback server standing in for SubscribeURL: counts the GETs.
final class ConfirmServer: Sendable {
    let hits = LogLines()
    let task: Task<Void, any Error>
    let port: Int

    init() async throws {
        let router = Router()
        let hits = self.hits
        router.get("/confirm") { request, _ in
            hits.append(request.uri.query ?? "")
            return "<ConfirmSubscriptionResponse/>"
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) },
            logger: { var l = Logger(label: "confirm"); l.logLevel = .critical; return l }())
        task = Task { try await app.run() }
        var bound = 0
        for await p in ports {
            bound = p
            break
        }
        port = bound
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

