import CordonAWS
import CordonCloud
import CordonCore
import CordonEngine
import CordonIntake
import CordonServer
import CordonTestSupport
import Foundation
import Synchronization
import Testing

@Suite("SQS poller on moto") struct SQSTests {
    func sqs(_ moto: PythonServer) async throws -> (AWSSQS, AWSCloud) {
        let cloud = AWSCloud(options: AWSCloudOptions(environment: Moto.environment(port: moto.port)))
        return (try await AWSSQS.forQueue("http://127.0.0.1:\(moto.port)/123456789012/x", cloud: cloud), cloud)
    }

    @Test("the SQS calls: send, receive with the receive count, change visibility, delete in batches")
    func client() async throws {
        let moto = try await offPool { try Moto.server() }
        let (sqs, cloud) = try await sqs(moto)
        let url = try await sqs.createQueue(name: "cordon-client-\(UUID().uuidString.prefix(8))")
        for i in 0..<12 { _ = try await sqs.sendMessage(queueURL: url, body: "m\(i)") }
        var got: [SQSMessage] = []
        while got.count < 12 {
            let batch = try await sqs.receiveMessage(queueURL: url, max: 10, wait: 1, visibilityTimeout: 30)
            if batch.isEmpty { break }
            got += batch
        }
        #expect(got.count == 12)
        #expect(got.allSatisfy { $0.receiveCount == 1 })
        try await sqs.changeVisibility(queueURL: url, receiptHandles: got.map(\.receiptHandle), timeout: 0)
        let again = try await sqs.receiveMessage(queueURL: url, max: 10, wait: 1, visibilityTimeout: 30)
        #expect(!again.isEmpty)
        #expect(again.allSatisfy { $0.receiveCount == 2 })
        let failed = try await sqs.deleteMessages(queueURL: url, receiptHandles: again.map(\.receiptHandle))
        #expect(failed.isEmpty)
        try await cloud.shutdown()
    }

    @Test("two runners on one queue: every finding processed once in effect; undecodable messages stay for the redrive policy")
    func twoRunners() async throws {
        let moto = try await offPool { try Moto.server() }
        let (sqs, cloud) = try await sqs(moto)
        let url = try await sqs.createQueue(name: "cordon-two-\(UUID().uuidString.prefix(8))")
        let n = 60
        for i in 0..<n {
            let finding = findingJSON(id: "sqs-\(i)")
            // Half as EventBridge delivers to an SQS target, half wrapped in SNS.
            let body =
                i % 2 == 0
                ? finding
                : String(
                    decoding: JSONWriter.bytes(["Type": "Notification", "MessageId": .string("m\(i)"), "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": .string(finding)]),
                    as: UTF8.self)
            _ = try await sqs.sendMessage(queueURL: url, body: body)
        }
        // SQS's at-least-once delivery, made certain: one finding sent twice.
        _ = try await sqs.sendMessage(queueURL: url, body: findingJSON(id: "sqs-0"))
        _ = try await sqs.sendMessage(queueURL: url, body: "this is not a finding")
        // The two runners share what they act on, as two runners share a cloud account.
        let target = SharedTarget()
        let a = try await ServerHarness(listen: false, target: target)
        let b = try await ServerHarness(listen: false, target: target)
        let stop = StopSwitch()
        var pollers: [Task<Void, any Error>] = []
        for h in [a, b] {
            let poller = SQSPoller(
                sqs: sqs, queueURL: url, batcher: h.batcher, receipts: h.receipts, metrics: h.metrics, waitSeconds: 1, visibilityTimeout: 30,
                logger: CordonLog.logger("test", sink: { line in h.logs.append(line) }))
            pollers.append(Task { try await poller.run(isStopping: { stop.isSet }) })
        }
        let done = await a.eventually(.seconds(60)) { a.action.count + b.action.count >= n }
        #expect(done)
        try await Task.sleep(for: .seconds(1))
        stop.set()
        for p in pollers { _ = await p.result }
        // Every finding took effect exactly once, on one runner or the other.
        let effects = a.action.effects.withLock { $0 } + b.action.effects.withLock { $0 }
        #expect(effects.count == n, "\(effects.count) effects for \(n) findings")
        #expect(Set(effects).count == n)
        #expect(target.all.count == n)
        // SQS delivers at least once, and moto's threaded server hands a message to both
        // runners when their receives interleave (its receive_message takes no lock).
        // Runners with separate journals cannot recognise that as a duplicate: the second
        // delivery is journaled and its step finds the effect in place, as Cordon's real
        // actions do (see docs/intake.md, "SQS"). Every delivery is journaled, and every call
        // beyond the first per finding was recorded as already done.
        let calls = a.action.calls.withLock { $0 } + b.action.calls.withLock { $0 }
        let received = try a.count(RecordKind.findingReceived) + b.count(RecordKind.findingReceived)
        #expect(received == calls.count, "\(received) findings journaled, \(calls.count) action calls")
        #expect(try a.alreadyDone() + b.alreadyDone() == calls.count - n)
        // The bad message was logged with its receive count and left in the queue.
        let logs = a.logs.all + b.logs.all
        #expect(logs.contains { $0.contains("cannot be decoded") && $0.contains("receive count 1") }, "\(logs)")
        let left = try await sqs.receiveMessage(queueURL: url, max: 10, wait: 0, visibilityTimeout: 30)
        #expect(left.count <= 1)
        await a.stop()
        await b.stop()
        try await cloud.shutdown()
    }

    @Test("a batch whose journal write outlasts the visibility timeout stays invisible (extended) and is deleted once durable")
    func visibilityExtended() async throws {
        let moto = try await offPool { try Moto.server() }
        let (sqs, cloud) = try await sqs(moto)
        let url = try await sqs.createQueue(name: "cordon-vis-\(UUID().uuidString.prefix(8))")
        _ = try await sqs.sendMessage(queueURL: url, body: findingJSON(id: "sqs-slow"))
        // The journal write takes 10 s; the visibility timeout is 4 s (extended every 2 s).
        let writes = LogLines()
        let h = try await ServerHarness(listen: false, intakeDelay: .seconds(10), intakeWrites: writes)
        let stop = StopSwitch()
        let poller = SQSPoller(
            sqs: sqs, queueURL: url, batcher: h.batcher, receipts: h.receipts, metrics: h.metrics, waitSeconds: 1, visibilityTimeout: 4,
            logger: CordonLog.logger("test", sink: { line in h.logs.append(line) }))
        let polling = Task { try await poller.run(isStopping: { stop.isSet }) }
        #expect(await h.eventually { !writes.all.isEmpty }, "the poller did not receive the message")
        // Well past the 4 s timeout, while the write is still in progress, nobody else can
        // receive the message.
        try await Task.sleep(for: .seconds(6))
        #expect(try h.count(RecordKind.findingReceived) == 0)
        let other = try await sqs.receiveMessage(queueURL: url, max: 10, wait: 1, visibilityTimeout: 1)
        #expect(other.isEmpty, "the in-flight message became visible: \(other.map(\.messageId))")
        // Durable, then deleted: handled once, nothing left in the queue.
        #expect(await h.eventually(.seconds(30)) { h.action.count == 1 })
        stop.set()
        _ = await polling.result
        #expect(try h.count(RecordKind.findingReceived) == 1)
        try await Task.sleep(for: .seconds(5))
        let left = try await sqs.receiveMessage(queueURL: url, max: 10, wait: 1, visibilityTimeout: 1)
        #expect(left.isEmpty, "\(left.map(\.body))")
        #expect(!h.logs.all.contains { $0.contains("cannot extend") }, "\(h.logs.all)")
        await h.stop()
        try await cloud.shutdown()
    }

    @Test("an undecodable message is logged with the reason, never deleted, and the redrive policy moves it to the dead-letter queue")
    func redrive() async throws {
        let moto = try await offPool { try Moto.server() }
        let (sqs, cloud) = try await sqs(moto)
        let suffix = UUID().uuidString.prefix(8)
        let dlq = try await sqs.createQueue(name: "cordon-dlq-\(suffix)")
        let url = try await sqs.createQueue(
            name: "cordon-redrive-\(suffix)",
            attributes: ["RedrivePolicy": #"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:cordon-dlq-\#(suffix)","maxReceiveCount":"2"}"#])
        _ = try await sqs.sendMessage(queueURL: url, body: #"{"detail-type": "GuardDuty Finding", "detail": "#)
        _ = try await sqs.sendMessage(queueURL: url, body: findingJSON(id: "sqs-good"))
        let h = try await ServerHarness(listen: false)
        let stop = StopSwitch()
        // The shortest visibility timeout, so the bad message comes back quickly.
        let poller = SQSPoller(
            sqs: sqs, queueURL: url, batcher: h.batcher, receipts: h.receipts, metrics: h.metrics, waitSeconds: 1, visibilityTimeout: 2,
            logger: CordonLog.logger("test", sink: { line in h.logs.append(line) }))
        let polling = Task { try await poller.run(isStopping: { stop.isSet }) }
        #expect(await h.eventually(.seconds(30)) { h.action.count == 1 })
        // Received twice (logged each time with the reason), then moved by the redrive policy.
        #expect(await h.eventually(.seconds(30)) { h.logs.all.contains { $0.contains("receive count 2") } }, "\(h.logs.all)")
        var dead: [SQSMessage] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while dead.isEmpty && ContinuousClock.now < deadline {
            dead = try await sqs.receiveMessage(queueURL: dlq, max: 10, wait: 1, visibilityTimeout: 30)
        }
        stop.set()
        _ = await polling.result
        #expect(dead.map(\.body) == [#"{"detail-type": "GuardDuty Finding", "detail": "#])
        let bad = h.logs.all.filter { $0.contains("cannot be decoded") }
        #expect(bad.count == 2, "\(h.logs.all)")
        // With the decoder's reason after the colon.
        #expect(bad.allSatisfy { ($0.components(separatedBy: "left for the queue's redrive policy: ").dropFirst().first ?? "").count > 5 }, "\(bad)")
        #expect(try h.count(RecordKind.findingReceived) == 1)
        #expect(h.metrics.render(incidents: IncidentIndex.Counts()).contains(#"cordon_sqs_messages_total{outcome="undecodable"} 2"#))
        let left = try await sqs.receiveMessage(queueURL: url, max: 10, wait: 1, visibilityTimeout: 1)
        #expect(left.isEmpty, "\(left.map(\.body))")
        await h.stop()
        try await cloud.shutdown()
    }
}

final class StopSwitch: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}
