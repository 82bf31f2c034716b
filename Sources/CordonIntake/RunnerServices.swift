import CordonCore
import CordonEngine
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

// `cordon run` as one ServiceLifecycle `ServiceGroup`: the handler pool, housekeeping and
// each intake source (queue directory, SQS, HTTP) are services. The group shuts its
// services down in reverse order of the list it was given, one after the other, so
// `cordon run` lists the handlers first: the sources stop taking work, then the handlers
// finish what was received. The loops below wait on ServiceLifecycle's primitives: a
// graceful shutdown cuts their sleep short (`cancelWhenGracefulShutdown`) and ends them
// (`Task.isShuttingDownGracefully`).

/// Sleeps for `duration`, or until a graceful shutdown begins or the task is cancelled.
func sleepUnlessShuttingDown(for duration: Duration) async {
    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
}

/// Runs `concurrency` handlers on the shared receipt queue. On graceful shutdown (which
/// reaches it after every source has stopped) it closes the queue and returns once what
/// was received is handled. Cancelled — when the group's graceful shutdown took longer
/// than allowed — the handlers stop where they are (the journal resumes them on the next
/// start) and `onCancelled` is told.
public struct HandlerPoolService: Service {
    public let receipts: ReceiptQueue
    public let engine: Engine
    public let concurrency: Int
    let onCancelled: @Sendable () -> Void

    public init(receipts: ReceiptQueue, engine: Engine, concurrency: Int, onCancelled: @escaping @Sendable () -> Void = {}) {
        self.receipts = receipts
        self.engine = engine
        self.concurrency = concurrency
        self.onCancelled = onCancelled
    }

    public func run() async throws {
        let (receipts, engine, concurrency) = (self.receipts, self.engine, self.concurrency)
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await QueueRunner.handle(receipts, engine: engine, concurrency: concurrency)
            } onGracefulShutdown: {
                // The handler is synchronous and the queue an actor: closing it is a hop.
                Task { await receipts.close() }
            }
        } onCancel: {
            onCancelled()
            // Handlers waiting for work when the group gave up on a graceful shutdown (the
            // queue was never closed) stop too.
            Task { await receipts.close() }
        }
    }
}

/// Takes up what the last runner left unfinished (`Engine.resume`) beside new work, so
/// that a long step neither holds up intake at start nor outlasts a shutdown: on graceful
/// shutdown it goes on like the handlers, and is cancelled with them when the group's
/// time is up (what is left resumes on the next start). Returning when done does not stop
/// the group: give it `successTerminationBehavior: .ignore`.
public struct ResumeService: Service {
    public let engine: Engine
    public let work: Engine.Unfinished
    /// What was in progress at the last crash, taken up one at a time (`Engine.resume`).
    public let oneAtATime: Set<String>
    let logger: Logger
    let onCancelled: @Sendable () -> Void

    public init(
        engine: Engine, work: Engine.Unfinished, oneAtATime: Set<String> = [], logger: Logger = CordonLog.silent,
        onCancelled: @escaping @Sendable () -> Void = {}
    ) {
        self.engine = engine
        self.work = work
        self.oneAtATime = oneAtATime
        self.logger = logger
        self.onCancelled = onCancelled
    }

    public func run() async throws {
        guard !work.isEmpty else { return }
        let (engine, work, oneAtATime) = (self.engine, self.work, self.oneAtATime)
        do {
            let resumed = try await withTaskCancellationHandler {
                try await engine.resume(work, oneAtATime: oneAtATime)
            } onCancel: {
                onCancelled()
            }
            logger.info("resumed \(resumed.count) unfinished incident(s)")
        } catch is CancellationError {
            // Cut short by the shutdown timeout (`onCancelled` says so).
        }
    }
}

/// What other processes journal (decisions with `cordon approve`, `cordon close`,
/// rollbacks), taken in every `interval` (`Engine.follow`); an incident a decision lets
/// run on is run here. On graceful shutdown it stops looking and lets those runs finish;
/// cancelled, they stop where they are and resume on the next start.
public struct JournalFollowerService: Service {
    public let engine: Engine
    public let interval: Duration
    let logger: Logger

    public init(engine: Engine, interval: Duration = .milliseconds(250), logger: Logger = CordonLog.silent) {
        self.engine = engine
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let (engine, interval, logger) = (self.engine, self.interval, self.logger)
        try await withThrowingDiscardingTaskGroup { group in
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                for id in try await engine.follow() {
                    logger.info("a decision made elsewhere was taken in; continuing the incident", metadata: ["incident": "\(id)"])
                    group.addTask { try await engine.run(incident: id) }
                }
                await sleepUnlessShuttingDown(for: interval)
            }
        }
    }
}

/// Approval timeouts (every second), incidents whose quiet period passed (every 10 s)
/// and, with a queue directory, the files of runners that stopped (every 10 s). Stops on
/// graceful shutdown.
public struct HousekeepingService: Service {
    public let engine: Engine
    public let queue: QueueDirectory?
    let logger: Logger

    public init(engine: Engine, queue: QueueDirectory?, logger: Logger = CordonLog.silent) {
        self.engine = engine
        self.queue = queue
        self.logger = logger
    }

    public func run() async throws {
        var lastOrphanCheck = ContinuousClock.now - .seconds(3600)
        var lastQuietCheck = ContinuousClock.now - .seconds(3600)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let moved = try await engine.expireApprovals()
            for id in moved { logger.notice("approval timed out; on_timeout applied", metadata: ["incident": "\(id)"]) }
            if ContinuousClock.now - lastQuietCheck > .seconds(10) {
                let closed = try await engine.closeQuietIncidents()
                for id in closed { logger.info("closed: its playbook's quiet period passed", metadata: ["incident": "\(id)"]) }
                lastQuietCheck = .now
            }
            if let queue, ContinuousClock.now - lastOrphanCheck > .seconds(10) {
                let recovered = (try? queue.recoverOrphans()) ?? 0
                if recovered > 0 { logger.info("took up \(recovered) file(s) left by a runner that stopped") }
                lastOrphanCheck = .now
            }
            await sleepUnlessShuttingDown(for: .seconds(1))
        }
    }
}

/// The queue directory's intake (`QueueRunner.runIntake`): on graceful shutdown it stops
/// claiming files and returns after the batch in hand is journaled and acknowledged.
public struct QueueIntakeService: Service {
    public let runner: QueueRunner
    public let receipts: ReceiptQueue

    public init(runner: QueueRunner, receipts: ReceiptQueue) {
        self.runner = runner
        self.receipts = receipts
    }

    public func run() async throws {
        try await runner.runIntake(into: receipts)
    }
}

/// `SQSPoller` as a service: on graceful shutdown a long poll in progress is abandoned
/// (its messages, if any, become visible again after their visibility timeout) and a batch
/// being journaled is finished and deleted first.
extension SQSPoller: Service {
    public func run() async throws {
        try await run(isStopping: { false })
    }
}
