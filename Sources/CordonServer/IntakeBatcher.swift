import CordonCore

/// Journals findings from many concurrent requests with few commits.
///
/// `Engine.receive` is serialised and returns once its one commit is durable. Calling it
/// once per request would cost one fsync per request; instead, while one batch is being
/// journaled, the findings of the requests that arrive meanwhile wait here and go into
/// the next batch together (group commit). Each caller gets back the receipts of its own
/// findings, in order, once they are durable — or the journal's error.
public actor IntakeBatcher {
    public let engine: Engine
    /// The most findings journaled in one batch.
    public let maxBatch: Int
    private var pending: [[Finding]] = []
    private var waiters: [CheckedContinuation<[Engine.Receipt], any Error>] = []
    private var flushing = false

    public init(engine: Engine, maxBatch: Int = 2048) {
        self.engine = engine
        self.maxBatch = max(1, maxBatch)
    }

    /// Journals `findings` (durable when this returns) and returns their receipts.
    public func receive(_ findings: [Finding]) async throws -> [Engine.Receipt] {
        guard !findings.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            pending.append(findings)
            waiters.append(continuation)
            if !flushing {
                flushing = true
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
        flushing = false
    }
}
