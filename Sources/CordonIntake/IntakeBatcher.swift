import CordonCore
import CordonEngine

/// Journals findings from many concurrent requests with few commits.
///
/// `Engine.receive` returns once its batch's one commit is durable. Calling it once per
/// request would cost one fsync per request; instead, while batches are being journaled,
/// the findings of the requests that arrive meanwhile wait here and go into the next
/// batch together (group commit). Up to `batchesInFlight` batches are received at once:
/// the engine decides one while another is committed, and the journal writes what is
/// queued together. Each caller gets back the receipts of its own findings, in order,
/// once they are durable — or the journal's error.
public actor IntakeBatcher {
    public let engine: Engine
    /// The most findings journaled in one batch.
    public let maxBatch: Int
    /// The most batches being received at once.
    public let batchesInFlight: Int
    private var pending: [[Finding]] = []
    private var waiters: [CheckedContinuation<[Engine.Receipt], any Error>] = []
    private var flushers = 0

    public init(engine: Engine, maxBatch: Int = 2048, batchesInFlight: Int = 3) {
        self.engine = engine
        self.maxBatch = max(1, maxBatch)
        self.batchesInFlight = max(1, batchesInFlight)
    }

    /// Journals `findings` (durable when this returns) and returns their receipts.
    public func receive(_ findings: [Finding]) async throws -> [Engine.Receipt] {
        guard !findings.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            pending.append(findings)
            waiters.append(continuation)
            if flushers < batchesInFlight {
                flushers += 1
                // A flusher serves every request waiting, not only the one that started
                // it: it runs in a task of its own, which that request's cancellation (a
                // client gone) must not end while others wait on its commit.
                Task { await self.flushLoop() }
            }
        }
    }

    private func flushLoop() async {
        while !pending.isEmpty {
            // Take whole requests up to maxBatch findings (at least one request).
            var take = 0
            var count = 0
            while take < pending.count, take == 0 || count + pending[take].count <= maxBatch {
                count += pending[take].count
                take += 1
            }
            let groups = Array(pending[0..<take])
            let continuations = Array(waiters[0..<take])
            pending.removeFirst(take)
            waiters.removeFirst(take)
            do {
                let receipts = try await engine.receive(groups.flatMap { $0 })
                var offset = 0
                for (group, continuation) in zip(groups, continuations) {
                    continuation.resume(returning: Array(receipts[offset..<(offset + group.count)]))
                    offset += group.count
                }
            } catch {
                for continuation in continuations { continuation.resume(throwing: error) }
            }
        }
        flushers -= 1
    }
}
