import CordonCore
import Foundation
import Logging
import Synchronization

/// Sends each checkpoint's head to every witness, off the path of containment: the
/// journal only signals that a checkpoint was written; each witness's loop reads what it
/// has not seen from the journal (`headsToWitness`), sends it, and stores the receipt. A
/// witness that fails is retried with backoff (1 s doubling to 1 min), logged and counted;
/// nothing waits for it. What a stopped process did not send is sent by the next one
/// (the receipts say what each witness has seen).
public final class WitnessPublisher: Sendable {
    public let witnesses: [any CheckpointWitness]
    let journal: SQLiteJournal
    let logger: Logger
    let observe: @Sendable (Event) -> Void
    /// One stream per witness, woken when a checkpoint is written (at most one wake-up
    /// waiting: a loop that was busy sends every head it has not seen anyway).
    let signals: [AsyncStream<Void>.Continuation]
    let streams: Mutex<[AsyncStream<Void>]?>

    /// What happened to one head at one witness, for metrics.
    public struct Event: Sendable {
        public var witness: String
        public var seq: Int64
        public var succeeded: Bool
    }

    public init(witnesses: [any CheckpointWitness], journal: SQLiteJournal, logger: Logger, observe: @escaping @Sendable (Event) -> Void = { _ in }) {
        self.witnesses = witnesses
        self.journal = journal
        self.logger = logger
        self.observe = observe
        let made = witnesses.map { _ in AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1)) }
        let signals = made.map(\.continuation)
        self.signals = signals
        self.streams = Mutex(made.map(\.stream))
        // Each loop looks once at start (what an earlier process left unsent).
        for signal in signals { signal.yield() }
        journal.watchCheckpoints { for signal in signals { signal.yield() } }
    }

    /// Sends what each witness has not seen, until cancelled (a retry's wait included, so
    /// that a witness that is down holds nothing up). Each witness has a loop of its own,
    /// so that a slow one does not hold up the others.
    public func run() async {
        guard let streams = streams.withLock({ $0.take() }) else { return }
        await withTaskGroup(of: Void.self) { group in
            for (witness, stream) in zip(witnesses, streams) {
                group.addTask { await self.loop(witness, stream) }
            }
        }
    }

    /// Sends what each witness has not seen, once, giving up after `timeout` (a command
    /// that exits); answers the witnesses that are behind.
    public func flush(timeout: Duration) async -> [String] {
        await withTaskGroup(of: String?.self) { group in
            for witness in witnesses {
                group.addTask {
                    let done = await SystemClock().withTimeout(timeout) { await self.sendPending(witness) }
                    return done == true ? nil : witness.spec
                }
            }
            var behind: [String] = []
            for await spec in group { if let spec { behind.append(spec) } }
            return behind.sorted()
        }
    }

    func loop(_ witness: any CheckpointWitness, _ wakes: AsyncStream<Void>) async {
        var backoff = Duration.seconds(1)
        for await _ in wakes {
            while await !sendPending(witness) {
                // Retried until it goes through; a new checkpoint does not cut the wait short.
                do {
                    try await Task.sleep(for: backoff)
                } catch {
                    return
                }
                backoff = min(backoff * 2, .seconds(60))
            }
            backoff = .seconds(1)
        }
    }

    /// Sends every head `witness` has not seen; false when one failed (logged).
    func sendPending(_ witness: any CheckpointWitness) async -> Bool {
        do {
            while true {
                let heads = try await journal.headsToWitness(witness.spec)
                guard !heads.isEmpty else { return true }
                for head in heads {
                    let receipt: WitnessReceipt
                    do {
                        receipt = try await witness.witness(head)
                    } catch {
                        observe(Event(witness: witness.spec, seq: head.seq, succeeded: false))
                        logger.warning(
                            "witness did not take checkpoint seq \(head.seq): \(error); retrying (containment goes on)",
                            metadata: ["witness": "\(witness.spec)", "seq": "\(head.seq)"])
                        return false
                    }
                    try await journal.storeReceipt(receipt, head: head)
                    observe(Event(witness: witness.spec, seq: head.seq, succeeded: true))
                }
            }
        } catch {
            logger.warning("cannot read or store the witness's receipts: \(error)", metadata: ["witness": "\(witness.spec)"])
            return false
        }
    }
}
