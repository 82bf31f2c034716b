import CordonCore
import Foundation
import Logging
import ServiceLifecycle
import CordonEngine

/// Runs a queue directory through the engine, as `cordon run --queue-dir` does.
///
/// Intake and handling are separate stages:
/// - one intake loop claims up to `batchSize` files at a time, decodes them, queues all
///   their findings for one commit (`Engine.receiveQueued`), hands them to the handlers,
///   and once they are durable acknowledges the files (moves them to `done/`, or to
///   `failed/` with the reason beside them);
/// - `concurrency` handlers open or attach incidents and run their steps.
/// Between them, at most `backlog` received findings wait in memory; when handlers fall
/// behind, intake waits, and files stay in `incoming/`. A finding received but not yet
/// handled when the process stops is resumed from the journal on the next start.
public final class QueueRunner: Sendable {
    public let queue: QueueDirectory
    public let engine: Engine
    public let concurrency: Int
    public let batchSize: Int
    public let backlog: Int
    public let pollInterval: Duration
    let logger: Logger
    let onHandled: @Sendable (Engine.Outcome) -> Void
    let onFile: @Sendable (String, Int) -> Void

    public init(
        queue: QueueDirectory, engine: Engine, concurrency: Int, batchSize: Int = 256, backlog: Int? = nil,
        pollInterval: Duration = .seconds(1), logger: Logger = CordonLog.silent,
        onFile: @escaping @Sendable (String, Int) -> Void = { _, _ in },
        onHandled: @escaping @Sendable (Engine.Outcome) -> Void = { _ in }
    ) {
        self.queue = queue
        self.engine = engine
        self.concurrency = max(1, concurrency)
        self.batchSize = max(1, batchSize)
        self.backlog = backlog ?? Self.backlog(handlers: self.concurrency)
        self.pollInterval = pollInterval
        self.logger = logger
        self.onFile = onFile
        self.onHandled = onHandled
    }

    /// Runs until `isStopping` returns true or a graceful shutdown begins, then lets the
    /// handlers finish what was received (cancel the task to cut that short) and returns.
    public func run(isStopping: @escaping @Sendable () -> Bool = { false }) async throws {
        let receipts = ReceiptQueue(limit: backlog)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [engine, concurrency, onHandled] in
                try await Self.handle(receipts, engine: engine, concurrency: concurrency, onHandled: onHandled)
            }
            group.addTask {
                try await self.runIntake(into: receipts, isStopping: isStopping)
                await receipts.close()
            }
            try await group.waitForAll()
        }
    }

    /// Only the intake half: claims, journals and acknowledges files and hands the
    /// receipts to `receipts`, whose handlers another task runs (`handle`), shared with
    /// other sources (webhooks, SQS). Closes `receipts` only when the journal fails.
    /// Stops claiming when `isStopping` returns true or a graceful shutdown begins (a wait
    /// for new files is cut short), and returns once the batches in hand are journaled and
    /// acknowledged.
    public func runIntake(into receipts: ReceiptQueue, isStopping: @escaping @Sendable () -> Bool = { false }) async throws {
        do {
            try await intake(into: receipts, isStopping: isStopping)
        } catch {
            await receipts.close()
            throw error
        }
    }

    /// Runs `concurrency` handlers on `receipts` until it is closed and drained. A journal
    /// failure closes the queue (stopping intake and the other handlers) and is thrown.
    public static func handle(
        _ receipts: ReceiptQueue, engine: Engine, concurrency: Int, onHandled: @escaping @Sendable (Engine.Outcome) -> Void = { _ in }
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, concurrency) {
                group.addTask {
                    do {
                        while let receipt = await receipts.next() {
                            onHandled(try await engine.handle(receipt))
                        }
                    } catch {
                        await receipts.close()
                        throw error
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Handlers for a bound on the actions in flight (`cordon run --concurrency`): a
    /// handler spends most of an incident with quick steps waiting for its intents'
    /// commits, which takes no place among the actions (`Engine.actionsInFlight`), so
    /// there are several handlers per place, and at least 64, to keep commits full.
    public static func handlers(actionsInFlight: Int) -> Int {
        min(4096, max(64, 4 * actionsInFlight))
    }

    /// Received findings that wait in memory for `handlers` handlers: four each, at least 64.
    public static func backlog(handlers: Int) -> Int { max(64, 4 * handlers) }

    /// Batches being journaled and acknowledged at once (`finish`), beside the one being
    /// claimed and decoded.
    static let batchesInFlight = 3

    private func intake(into receipts: ReceiptQueue, isStopping: @escaping @Sendable () -> Bool) async throws {
        // Batches overlap: while one batch's findings are committed (most of which is
        // waiting for the disk) and its files moved, the next ones are claimed, decoded,
        // matched and queued behind it in the journal, so that they share its commit or
        // take the next. If intake fails, the task group waits for the batches in flight
        // before the error is thrown: a commit never runs on behind our back, and files
        // not acknowledged stay claimed, to be taken up again (as duplicates where handled)
        // by the next start.
        try await withThrowingTaskGroup(of: Finished.self) { group in
            var inFlight = 0
            // Whether a wait for new files (a child of the group) is under way.
            var waiting = false
            /// Takes the next child to end: a batch (its failure surfaces here) or the wait.
            func next() async throws {
                if try await group.next() == .batch { inFlight -= 1 } else { waiting = false }
            }
            while !Task.isCancelled {
                let stopping = isStopping() || Task.isShuttingDownGracefully
                var claimed: [QueueDirectory.Claimed] = []
                let generation = queue.generation
                // False once the handlers stopped (the receipt queue was closed).
                var handling = true
                if !stopping {
                    handling = await receipts.waitForRoom()
                    while handling, claimed.count < batchSize, let file = try queue.claim() { claimed.append(file) }
                }
                if claimed.isEmpty {
                    if stopping || Task.isCancelled || !handling {
                        // What is in flight finishes first (a failure surfaces here); the
                        // wait for new files is cut short.
                        while inFlight > 0 { try await next() }
                        group.cancelAll()
                        return
                    }
                    // Idle: wait for new files or for a batch in flight to be acknowledged
                    // (its failure surfaces at once), whichever comes first. Batches
                    // waiting for their commit do not hold up files that arrive meanwhile.
                    if !waiting {
                        waiting = true
                        group.addTask { [queue, pollInterval] in
                            await cancelWhenGracefulShutdown { await queue.wait(timeout: pollInterval, after: generation) }
                            return .wakeup
                        }
                    }
                    try await next()
                    continue
                }
                let decoded = await Self.decode(claimed)
                while inFlight >= Self.batchesInFlight { try await next() }
                group.addTask {
                    try await self.finish(claimed, decoded, into: receipts)
                    return .batch
                }
                inFlight += 1
            }
            group.cancelAll()
            try await group.waitForAll()
        }
    }

    /// What a child of the intake's task group was: a batch journaled and acknowledged, or
    /// a wait for new files that ended.
    private enum Finished: Sendable { case batch, wakeup }

    /// Decodes claimed files, on two cores when there are enough of them.
    private static func decode(_ claimed: [QueueDirectory.Claimed]) async -> [DecodeResult] {
        if claimed.count < 16 { return claimed.map { FindingDecoder().decode(fileAtPath: $0.path) } }
        let half = claimed.count / 2
        let first = Array(claimed[..<half])
        let second = Array(claimed[half...])
        async let a = first.map { FindingDecoder().decode(fileAtPath: $0.path) }
        let b = second.map { FindingDecoder().decode(fileAtPath: $0.path) }
        return await a + b
    }

    /// Journals a batch's findings, handing the receipts to the handlers as soon as their
    /// records are queued (a handler's first intent can share their commit, and its action
    /// waits for that intent to be durable), then acknowledges the files once the findings
    /// are durable.
    private func finish(_ claimed: [QueueDirectory.Claimed], _ decoded: [DecodeResult], into receipts: ReceiptQueue) async throws {
        let intake = try await engine.receiveQueued(decoded.flatMap(\.findings))
        for receipt in intake.receipts where !receipt.pending.isEmpty { await receipts.submit(receipt) }
        try await intake.durable()
        for receipt in intake.receipts where receipt.pending.isEmpty {
            onHandled(Engine.Outcome(finding: receipt.id, incidents: [], duplicate: receipt.duplicate))
        }
        for (file, result) in zip(claimed, decoded) {
            if result.issues.isEmpty {
                try queue.complete(file)
            } else {
                for issue in result.issues { logger.info("\(file.name): \(issue.message)") }
                try queue.fail(
                    file,
                    reason: [
                        "file": .string(file.name), "findings_processed": .number(JSONNumber(result.findings.count)),
                        "errors": .array(
                            result.issues.map {
                                [
                                    "where": .string($0.origin.description.replacingOccurrences(of: file.path, with: file.name)),
                                    "message": .string($0.message),
                                ]
                            }),
                    ])
            }
            onFile(file.name, result.findings.count)
        }
    }
}

/// Received findings waiting for a handler: bounded, first in first out. Every source
/// (queue directory, webhooks, SQS) feeds one queue and one pool of handlers.
public actor ReceiptQueue {
    private var items: [Engine.Receipt] = []
    private var head = 0
    private var consumers: [CheckedContinuation<Engine.Receipt?, Never>] = []
    private var roomWaiters: [CheckedContinuation<Void, Never>] = []
    private var closed = false
    public let limit: Int

    public init(limit: Int) { self.limit = limit }

    private var count: Int { items.count - head }

    /// Returns false when the queue was closed (the handlers stopped).
    public func waitForRoom() async -> Bool {
        while count >= limit && !closed {
            await withCheckedContinuation { roomWaiters.append($0) }
        }
        return !closed
    }

    /// Hands a receipt to a waiting handler or queues it (beyond the limit if need be:
    /// intake waits for room before it claims, not in the middle of a batch).
    public func submit(_ receipt: Engine.Receipt) {
        if !consumers.isEmpty {
            consumers.removeFirst().resume(returning: receipt)
        } else {
            items.append(receipt)
        }
    }

    public func next() async -> Engine.Receipt? {
        if head < items.count {
            let receipt = items[head]
            head += 1
            if head > 1024 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            if count < limit, !roomWaiters.isEmpty {
                for waiter in roomWaiters { waiter.resume() }
                roomWaiters = []
            }
            return receipt
        }
        if closed { return nil }
        return await withCheckedContinuation { consumers.append($0) }
    }

    public var isClosed: Bool { closed }

    /// No more receipts: handlers drain what is queued, then stop.
    public func close() {
        closed = true
        for consumer in consumers { consumer.resume(returning: nil) }
        consumers = []
        for waiter in roomWaiters { waiter.resume() }
        roomWaiters = []
    }
}
