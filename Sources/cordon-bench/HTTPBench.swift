import ArgumentParser
import AsyncHTTPClient
import CordonCore
import CordonEngine
import CordonIntake
import CordonJournal
import CordonServer
import Foundation
import NIOCore
import CordonIntegrations

struct HTTPBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "Webhook intake: accepted findings/s with durable journaling, and request latency.",
        discussion: """
            Starts the HTTP intake (`cordon run --listen`) in this process on a loopback port, \
            on a fresh journal (SQLite WAL, synchronous=FULL) with one playbook whose no-op \
            step every finding matches, and posts --requests findings (one per request, each \
            a distinct GuardDuty finding, authenticated by API key or --signed with HMAC) from \
            --connections concurrent keep-alive connections. A request counts when it was \
            answered 202, i.e. after its finding was durable. Prints accepted findings/s, \
            latency p50/p90/p99/max and the journal's records per commit. The load generator \
            (AsyncHTTPClient) runs in the same process and shares the machine's cores.
            With --generator wrk, wrk (Debian's package) loads the intake from its own \
            process for --duration seconds instead, through a Lua script that posts a \
            distinct finding per request; accepted findings are then counted in the \
            journal itself. With --listen-only HOST:PORT it only serves (API key \
            `bench-key`) until killed, for another load generator.
            """)

    enum Generator: String, ExpressibleByArgument, CaseIterable {
        case inProcess = "in-process"
        case wrk
    }

    @Option(help: "Load generator: in-process (AsyncHTTPClient, --requests) or wrk (a separate process, --duration).")
    var generator: Generator = .inProcess

    @Option(help: "Seconds of load with --generator wrk.")
    var duration = 20

    @Option(help: "wrk threads with --generator wrk.")
    var wrkThreads = 2

    @Option(help: "Requests (findings) to send.")
    var requests = 20_000

    @Option(help: "Concurrent connections.")
    var connections = 64

    @Flag(help: "Sign each request with HMAC-SHA256 instead of sending the API key.")
    var signed = false

    @Option(help: "Serve on HOST:PORT only (no load), for an external load generator.")
    var listenOnly: String?

    @Option(help: "Work directory (removed afterwards).")
    var dir: String = "./.build/bench-http"

    final class NoOp: Action, Sendable {
        var checkable: Bool { true }
        func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome { ActionOutcome() }
    }

    func run() async throws {
        let root = URL(fileURLWithPath: dir).appendingPathComponent(UUID().uuidString)
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("Playbooks"), withIntermediateDirectories: true)
        try """
            name: bench
            version: 1
            description: benchmark playbook
            trigger: {source: [aws.guardduty]}
            incident: {key: "{{ detail.id }}"}
            steps:
              - id: noop
                action: core.log
                with: {message: "{{ detail.type }}"}
            """.write(to: root.appendingPathComponent("Playbooks/p.yaml"), atomically: false, encoding: .utf8)
        let loaded = ConfigLoader(actions: .builtIn).load([root.appendingPathComponent("Playbooks").path])
        guard loaded.isValid else { throw ExitCode(1) }
        let secrets = SecretStore(environment: [:])
        let journal = try SQLiteJournal(directory: DataDirectory(root.appendingPathComponent("data").path), secrets: secrets)
        var actions = CoreActions.all
        actions["core.log"] = NoOp()
        let metrics = ServerMetrics()
        let engine = Engine(
            config: loaded, actions: actions, journal: MetricsJournal(journal, metrics: metrics), evidence: journal.evidence, secrets: secrets,
            actor: "cordon-bench", index: IncidentIndex(retention: .live(findings: IncidentIndex.Retention.defaultWindow)), actionsInFlight: 16)
        let receipts = ReceiptQueue(limit: 4096)
        // As `cordon run` with its default --concurrency 16.
        let handlers = Task { try await QueueRunner.handle(receipts, engine: engine, concurrency: QueueRunner.handlers(actionsInFlight: 16)) }
        let key = "bench-key"
        let hmac = "bench-hmac"
        var host = "127.0.0.1"
        var port = 0
        if let listenOnly, let colon = listenOnly.lastIndex(of: ":") {
            host = String(listenOnly[..<colon])
            port = Int(listenOnly[listenOnly.index(after: colon)...]) ?? 0
        }
        let server = IntakeServer(
            configuration: IntakeServerConfiguration(
                host: host, port: port, authenticator: RequestAuthenticator(apiKeys: [key], hmacSecrets: [hmac])),
            engine: engine, batcher: IntakeBatcher(engine: engine), receipts: receipts, metrics: metrics)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let serving = Task { try await server.run(onRunning: { continuation.yield($0) }) }
        var bound = 0
        for await p in ports {
            bound = p
            break
        }
        if listenOnly != nil {
            print("serving on http://\(host):\(bound)/v1/findings (X-Cordon-Api-Key: \(key)); Ctrl-C to stop")
            try await serving.value
            return
        }
        if generator == .wrk {
            try await runWrk(port: bound, key: key, root: root, journal: journal)
        } else {
            try await runInProcess(port: bound, key: key, hmac: hmac, journal: journal)
        }
        serving.cancel()
        _ = await serving.result
        await receipts.close()
        _ = await handlers.result
        try await journal.close()
    }

    /// Loads the intake from wrk in a process of its own and counts what the journal took.
    func runWrk(port: Int, key: String, root: URL, journal: SQLiteJournal) async throws {
        let script = root.appendingPathComponent("findings.lua")
        try Self.wrkScript.write(to: script, atomically: false, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "wrk", "-t\(wrkThreads)", "-c\(connections)", "-d\(duration)s", "--timeout", "30s", "--latency", "-s", script.path,
            "http://127.0.0.1:\(port)/v1/findings",
        ]
        process.environment = ProcessInfo.processInfo.environment.merging(["CORDON_BENCH_KEY": key]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        let before = try await journal.count(kind: RecordKind.findingReceived)
        let reference = HostSpeed.referenceMicroseconds()
        let statsStart = journal.commitStatistics
        let hostStart = QueueBench.hostCPU()
        let start = ContinuousClock.now
        do {
            try process.run()
        } catch {
            print("wrk could not be started (\(error)); install it with `apt-get install wrk`")
            throw ExitCode(2)
        }
        let text = await Task.detached { String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }.value
        process.waitUntilExit()
        let elapsed = ContinuousClock.now - start
        guard process.terminationStatus == 0 else {
            print(text)
            if process.terminationStatus == 127 {
                print("wrk was not found on PATH; install it with `apt-get install wrk`")
                throw ExitCode(2)
            }
            print("wrk exited with status \(process.terminationStatus)")
            throw ExitCode(1)
        }
        let accepted = try await journal.count(kind: RecordKind.findingReceived) - before
        let seconds = elapsed.seconds
        let stats = journal.commitStatistics
        print(text.split(separator: "\n").map { "wrk | " + $0 }.joined(separator: "\n"))
        print(
            String(
                format: "http: %d findings journaled (finding.received, durable before each 202) in %.1f s = %.0f findings/s over %d connections from wrk (API key)",
                accepted, seconds, Double(accepted) / seconds, connections))
        print(QueueBench.journalLine(statsStart, stats, seconds: seconds))
        print(QueueBench.stealLine(hostStart, QueueBench.hostCPU()))
        print(HostSpeed.lines(reference))
    }

    func runInProcess(port bound: Int, key: String, hmac: String, journal: SQLiteJournal) async throws {
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)))
        let url = "http://127.0.0.1:\(bound)/v1/findings"
        let total = requests
        let perConnection = (total + connections - 1) / connections
        let signed = self.signed
        let reference = HostSpeed.referenceMicroseconds()
        let statsStart = journal.commitStatistics
        let hostStart = QueueBench.hostCPU()
        let start = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: ([Double], Int).self) { group in
            for c in 0..<connections {
                group.addTask {
                    var latencies: [Double] = []
                    var failures = 0
                    for i in min(total, c * perConnection)..<min(total, (c + 1) * perConnection) {
                        let body = Array(Self.finding(i).utf8)
                        var request = HTTPClientRequest(url: url)
                        request.method = .POST
                        if signed {
                            request.headers.add(name: "Cordon-Signature", value: RequestAuthenticator.sign(body: body, secret: hmac))
                        } else {
                            request.headers.add(name: "X-Cordon-Api-Key", value: key)
                        }
                        request.body = .bytes(ByteBuffer(bytes: body))
                        let sent = ContinuousClock.now
                        let response = try await client.execute(request, timeout: .seconds(30))
                        _ = try await response.body.collect(upTo: 1 << 16)
                        let d = ContinuousClock.now - sent
                        if response.status == .accepted {
                            latencies.append(d.seconds * 1000)
                        } else {
                            failures += 1
                        }
                    }
                    return (latencies, failures)
                }
            }
            var all: [Double] = []
            var failed = 0
            for try await (l, f) in group {
                all += l
                failed += f
            }
            return (all, failed)
        }
        let elapsed = ContinuousClock.now - start
        let seconds = elapsed.seconds
        var latencies = results.0
        latencies.sort()
        func pct(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        let stats = journal.commitStatistics
        print(
            String(
                format: "http: %d findings accepted (202 after a durable journal write), %d failed, in %.2f s = %.0f findings/s over %d connections (%@)",
                latencies.count, results.1, seconds, Double(latencies.count) / seconds, connections, signed ? "HMAC-signed" : "API key"))
        print(String(format: "latency: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", pct(0.5), pct(0.9), pct(0.99), latencies.last ?? 0))
        print(QueueBench.journalLine(statsStart, stats, seconds: seconds))
        print(QueueBench.stealLine(hostStart, QueueBench.hostCPU()))
        print(HostSpeed.lines(reference))
        try await client.shutdown()
    }

    /// wrk's request generator: a distinct GuardDuty finding per request (ids unique per
    /// thread and request), authenticated by API key. wrk counts any answer but 2xx/3xx
    /// as "Non-2xx or 3xx responses".
    static let wrkScript = """
        local counter = 1
        function setup(thread)
          thread:set("tid", counter)
          counter = counter + 1
        end
        function init(args)
          n = 0
          headers = {["Content-Type"] = "application/json", ["X-Cordon-Api-Key"] = os.getenv("CORDON_BENCH_KEY")}
        end
        function request()
          n = n + 1
          local id = string.format("wrk-%d-%d", tid, n)
          local body = '{"version":"0","id":"' .. id .. '","detail-type":"GuardDuty Finding","source":"aws.guardduty",'
            .. '"account":"111122223333","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],'
            .. '"detail":{"id":"' .. id .. '","type":"Recon:EC2/PortProbeUnprotectedPort","severity":5,'
            .. '"updatedAt":"2026-03-01T10:00:00Z","resource":{"resourceType":"Instance","instanceDetails":{"instanceId":"i-' .. id .. '"}}}}'
          return wrk.format("POST", nil, headers, body)
        end
        """

    static func finding(_ i: Int) -> String {
        #"{"version":"0","id":"bench-\#(i)","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":"111122223333","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":[],"detail":{"id":"bench-\#(i)","type":"Recon:EC2/PortProbeUnprotectedPort","severity":5,"updatedAt":"2026-03-01T10:00:00Z","resource":{"resourceType":"Instance","instanceDetails":{"instanceId":"i-\#(i)"}}}}"#
    }
}
