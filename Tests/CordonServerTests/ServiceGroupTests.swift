import AsyncHTTPClient
import CordonAWS
import CordonCloud
import CordonCore
import CordonIntake
import CordonServer
import CordonTestSupport
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Testing

/// `cordon run`'s sources and handlers as one ServiceLifecycle service group.
@Suite("service group") struct ServiceGroupTests {
    @Test("queue directory, SQS and HTTP feed one handler pool; a graceful shutdown stops the sources (abandoning the long poll) and the handlers drain")
    func sourcesAndShutdown() async throws {
        let moto = try await offPool { try Moto.server() }
        let cloud = AWSCloud(options: AWSCloudOptions(environment: Moto.environment(port: moto.port)))
        let sqs = try await AWSSQS.forQueue("http://127.0.0.1:\(moto.port)/123456789012/x", cloud: cloud)
        let url = try await sqs.createQueue(name: "cordon-group-\(UUID().uuidString.prefix(8))")
        let h = try await ServerHarness(listen: false, handlers: false)
        let queueDir = try TempDir("server", removeOnDeinit: true)
        let queue = try QueueDirectory(root: URL(fileURLWithPath: queueDir.path), create: true)

        let (ports, portFeed) = AsyncStream.makeStream(of: Int.self)
        let server = IntakeServer(
            configuration: IntakeServerConfiguration(host: "127.0.0.1", port: 0, authenticator: RequestAuthenticator(apiKeys: [ServerHarness.apiKey])),
            engine: h.engine, batcher: h.batcher, receipts: h.receipts, metrics: h.metrics)
        // A 20 s long poll: the shutdown must not wait for it.
        let poller = SQSPoller(sqs: sqs, queueURL: url, batcher: h.batcher, receipts: h.receipts, metrics: h.metrics, waitSeconds: 20, visibilityTimeout: 30)
        let runner = QueueRunner(queue: queue, engine: h.engine, concurrency: 4, pollInterval: .milliseconds(200))
        let cancelled = LogLines()
        func service(_ s: any Service) -> ServiceGroupConfiguration.ServiceConfiguration {
            .init(service: s, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
        }
        var configuration = ServiceGroupConfiguration(
            services: [
                service(HandlerPoolService(receipts: h.receipts, engine: h.engine, concurrency: 4, onCancelled: { cancelled.append("cancelled") })),
                service(HousekeepingService(engine: h.engine, queue: queue)),
                service(QueueIntakeService(runner: runner, receipts: h.receipts)),
                service(poller),
                service(try server.service(onRunning: { portFeed.yield($0) })),
            ],
            logger: { var l = Logger(label: "test"); l.logLevel = .critical; return l }())
        configuration.maximumGracefulShutdownDuration = .seconds(30)
        let group = ServiceGroup(configuration: configuration)
        let running = Task { try await group.run() }
        var port = 0
        for await p in ports {
            port = p
            break
        }

        for i in 0..<5 {
            try findingJSON(id: "queue-\(i)").write(toFile: queueDir.path + "/.tmp-\(i)", atomically: true, encoding: .utf8)
            try FileManager.default.moveItem(atPath: queueDir.path + "/.tmp-\(i)", toPath: queue.incoming.path + "/f\(i).json")
            _ = try await sqs.sendMessage(queueURL: url, body: findingJSON(id: "sqs-\(i)"))
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/findings")
            request.method = .POST
            request.headers.add(name: "X-Cordon-Api-Key", value: ServerHarness.apiKey)
            request.body = .bytes(ByteBuffer(string: findingJSON(id: "http-\(i)")))
            #expect(try await h.client.execute(request, timeout: .seconds(30)).status.code == 202)
        }
        #expect(await h.eventually(.seconds(60)) { h.action.count == 15 }, "\(h.action.effects.withLock { $0 })")

        // The poller is now in a 20 s long poll on an empty queue.
        try await Task.sleep(for: .seconds(1))
        let started = ContinuousClock.now
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(ContinuousClock.now - started < .seconds(10), "the shutdown waited for the long poll")
        #expect(cancelled.all.isEmpty)
        #expect(Set(h.action.effects.withLock { $0 }).count == 15)
        #expect(try h.count(RecordKind.findingReceived) == 15)
        // Every source is closed: the port refuses, the receipt queue takes nothing more.
        #expect(await h.receipts.waitForRoom() == false)
        await #expect(throws: (any Error).self) {
            _ = try await h.client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz"), timeout: .seconds(5))
        }
        await h.stop()
        try await cloud.shutdown()
    }
}
