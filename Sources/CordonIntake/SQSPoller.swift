import CordonAWS
import CordonCloud
import CordonCore
import CordonEngine
import Foundation
import Logging
import ServiceLifecycle

/// `cordon run --sqs-url`: long-polls a queue, journals the findings of each batch of
/// messages (one durable commit), then deletes those messages and hands the receipts to
/// the handlers.
///
/// - Bodies are decoded like any other input: EventBridge events as an EventBridge rule's
///   SQS target delivers them, SNS notifications (raw delivery off or on), findings.
/// - While a batch is being journaled, its messages' visibility timeout is extended, so
///   a slow commit does not let another consumer take them.
/// - A message that does not decode is not deleted: it becomes visible again after the
///   visibility timeout, and the queue's redrive policy moves it to the dead-letter queue
///   after `maxReceiveCount` receives. It is logged with the reason and its receive count.
/// - Two runners on one queue (each with its own data directory) share the messages: SQS
///   gives each message to one consumer at a time, and a message is deleted only after
///   its findings are durable, so each finding is processed once in effect (a redelivery
///   after a crash between journal and delete is a duplicate in that runner's journal).
public final class SQSPoller: Sendable {
    public let sqs: AWSSQS
    public let queueURL: String
    public let batcher: IntakeBatcher
    public let receipts: ReceiptQueue
    public let metrics: ServerMetrics
    public let waitSeconds: Int
    public let visibilityTimeout: Int
    let logger: Logger

    public init(
        sqs: AWSSQS, queueURL: String, batcher: IntakeBatcher, receipts: ReceiptQueue, metrics: ServerMetrics, waitSeconds: Int = 20,
        visibilityTimeout: Int = 60, logger: Logger = CordonLog.silent
    ) {
        self.sqs = sqs
        self.queueURL = queueURL
        self.batcher = batcher
        self.receipts = receipts
        self.metrics = metrics
        self.waitSeconds = waitSeconds
        self.visibilityTimeout = max(2, visibilityTimeout)
        self.logger = logger
    }

    /// Polls until `isStopping` returns true (checked between long polls), a graceful
    /// shutdown begins (the long poll in progress is abandoned) or the task is cancelled.
    /// AWS errors are logged and retried with backoff; journal errors are thrown.
    public func run(isStopping: @escaping @Sendable () -> Bool = { false }) async throws {
        var failures = 0
        func stopping() -> Bool { isStopping() || Task.isCancelled || Task.isShuttingDownGracefully }
        while !stopping() {
            guard await receipts.waitForRoom() else { return }
            let messages: [SQSMessage]
            do {
                let (sqs, queueURL, waitSeconds, visibilityTimeout) = (self.sqs, self.queueURL, self.waitSeconds, self.visibilityTimeout)
                messages = try await cancelWhenGracefulShutdown {
                    try await sqs.receiveMessage(queueURL: queueURL, max: 10, wait: waitSeconds, visibilityTimeout: visibilityTimeout)
                }
                failures = 0
            } catch {
                if stopping() { return }
                failures += 1
                let delay = min(30.0, 0.5 * pow(2, Double(min(failures, 6))))
                logger.warning("sqs: ReceiveMessage on \(queueURL) failed (\(error)); retrying in \(String(format: "%.1f", delay)) s")
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(Int(delay * 1000))) }
                continue
            }
            if messages.isEmpty { continue }
            try await process(messages)
        }
    }

    /// Journals findings while a child task keeps their messages invisible (extending
    /// their visibility every half timeout); the child ends when the findings are durable.
    private func journalKeepingInvisible(_ findings: [Finding], handles: [String]) async throws -> [Engine.Receipt] {
        let (sqs, queueURL, visibilityTimeout, logger, batcher) = (self.sqs, self.queueURL, self.visibilityTimeout, self.logger, self.batcher)
        return try await withThrowingTaskGroup(of: [Engine.Receipt]?.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(max(1, visibilityTimeout / 2)))
                    if Task.isCancelled { break }
                    do {
                        try await sqs.changeVisibility(queueURL: queueURL, receiptHandles: handles, timeout: visibilityTimeout)
                    } catch {
                        // Cancelled because the batch is durable (and about to be deleted):
                        // the extension is no longer needed, and nothing went wrong.
                        if Task.isCancelled { break }
                        logger.warning("sqs: cannot extend the visibility of \(handles.count) in-flight message(s): \(error)")
                    }
                }
                return nil
            }
            group.addTask { try await batcher.receive(findings) }
            while let next = try await group.next() {
                if let received = next {
                    group.cancelAll()
                    return received
                }
            }
            return []
        }
    }

    /// Journals, deletes and hands over one batch of messages.
    func process(_ messages: [SQSMessage]) async throws {
        var good: [(SQSMessage, [Finding])] = []
        for message in messages {
            let result = FindingDecoder().decode(Array(message.body.utf8), source: "sqs:\(message.messageId)")
            if !result.issues.isEmpty || result.findings.isEmpty {
                let reason = result.issues.isEmpty ? "no findings in the message body" : result.issues.map(\.description).joined(separator: "; ")
                logger.warning(
                    "sqs: message \(message.messageId) (receive count \(message.receiveCount)) cannot be decoded, left for the queue's redrive policy: \(reason)"
                )
                metrics.sqsMessage("undecodable")
                metrics.finding(source: "sqs", outcome: "malformed")
                continue
            }
            good.append((message, result.findings))
        }
        guard !good.isEmpty else { return }
        let handles = good.map(\.0.receiptHandle)
        let received: [Engine.Receipt]
        do {
            received = try await journalKeepingInvisible(good.flatMap(\.1), handles: handles)
        } catch {
            metrics.sqsMessage("error", count: good.count)
            throw error
        }
        // Durable: now the messages may go.
        do {
            let failed = try await sqs.deleteMessages(queueURL: queueURL, receiptHandles: handles)
            for (handle, reason) in failed {
                let id = good.first { $0.0.receiptHandle == handle }?.0.messageId ?? "?"
                logger.warning("sqs: cannot delete message \(id) (it will be delivered again and recognised as a duplicate): \(reason)")
            }
            metrics.sqsMessage("deleted", count: good.count - failed.count)
        } catch {
            logger.warning("sqs: DeleteMessageBatch failed (the messages will be delivered again and recognised as duplicates): \(error)")
        }
        for receipt in received {
            metrics.finding(source: "sqs", outcome: receipt.duplicate ? "duplicate" : "accepted")
            if !receipt.pending.isEmpty { await receipts.submit(receipt) }
        }
    }
}
