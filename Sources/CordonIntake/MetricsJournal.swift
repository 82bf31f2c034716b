import CordonCore
import Foundation

/// A `Journal` that tells `ServerMetrics` about every record appended through it and how
/// long the append took; everything else goes to the wrapped journal unchanged.
public struct MetricsJournal: ForwardingJournal {
    public let base: any Journal
    public let metrics: ServerMetrics
    public var wrapped: any Journal { base }

    public init(_ base: any Journal, metrics: ServerMetrics) {
        self.base = base
        self.metrics = metrics
    }

    public func append(_ records: [NewRecord]) async throws -> [JournalRecord] {
        let start = ContinuousClock.now
        let written = try await base.append(records)
        metrics.appended(written, latency: ContinuousClock.now - start)
        return written
    }

    /// Counted when queued (a queued record has no append latency of its own).
    public func post(_ records: [NewRecord]) {
        base.post(records)
        let now = Date()
        metrics.appended(records.map { JournalRecord(unwritten: $0, now: now) }, latency: nil)
    }
}
