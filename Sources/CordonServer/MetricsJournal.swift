import CordonCore
import Foundation

/// A `Journal` that tells `ServerMetrics` about every record appended through it and how
/// long the append took; everything else goes to the wrapped journal unchanged.
public struct MetricsJournal: Journal {
    public let base: any Journal
    public let metrics: ServerMetrics

    public init(_ base: any Journal, metrics: ServerMetrics) {
        self.base = base
        self.metrics = metrics
    }

    public func append(_ records: [NewRecord]) async throws -> [JournalRecord] {
        let start = ContinuousClock.now
        let written = try await base.append(records)
        metrics.appended(written, latency: (ContinuousClock.now - start).seconds)
        return written
    }

    /// Counted when queued (a queued record has no append latency of its own).
    public func post(_ records: [NewRecord]) {
        base.post(records)
        let now = Date()
        metrics.appended(records.map { JournalRecord(unwritten: $0, now: now) }, latency: nil)
    }

    public func durable() async throws { try await base.durable() }
    public func records(from seq: Int64, limit: Int) async throws -> [JournalRecord] { try await base.records(from: seq, limit: limit) }
    public func records(incident: String) async throws -> [JournalRecord] { try await base.records(incident: incident) }
    @discardableResult public func checkpoint() async throws -> Checkpoint? { try await base.checkpoint() }
}
