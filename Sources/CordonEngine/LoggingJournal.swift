import CordonCore
import Foundation
import Logging

/// A `Journal` that logs what the engine journals: incidents opened and finished, steps
/// succeeded or failed, approvals asked and decided, each with its `incident`, `step`,
/// `action`, `playbook` or `finding` as metadata, so that a log collector can follow an
/// incident. Only names and ids are logged, never a record's inputs, outputs or error
/// text: those may hold values the journal redacts, and `cordon show` has them.
public struct LoggingJournal: ForwardingJournal {
    public let base: any Journal
    public let logger: Logger
    public var wrapped: any Journal { base }

    public init(_ base: any Journal, logger: Logger) {
        self.base = base
        self.logger = logger
    }

    public func append(_ records: [NewRecord]) async throws -> [JournalRecord] {
        let written = try await base.append(records)
        for record in records { log(record) }
        return written
    }

    public func post(_ records: [NewRecord]) {
        base.post(records)
        for record in records { log(record) }
    }

    func log(_ record: NewRecord) {
        // Every record appended passes here: what is not written at the logger's level
        // costs only the look at its kind.
        guard let (level, message) = Self.event(record), logger.logLevel <= level else { return }
        let d = record.data
        var metadata: Logger.Metadata = [:]
        if let incident = record.incident { metadata["incident"] = .string(incident) }
        if let step = d["step"]?.stringValue { metadata["step"] = .string(step) }
        if let action = d["action"]?.stringValue { metadata["action"] = .string(action) }
        if let playbook = d["playbook"]?.stringValue { metadata["playbook"] = .string(playbook) }
        if let finding = d["finding"]?["id"]?.stringValue { metadata["finding"] = .string(finding) }
        if record.kind == RecordKind.findingReceived {
            metadata["matched"] = .array((d["matched"]?.arrayValue?.compactMap(\.stringValue) ?? []).map { .string($0) })
        }
        logger.log(level: level, "\(message)", metadata: metadata)
    }

    /// The level and message of a record's event; nil for a record that is not logged.
    static func event(_ record: NewRecord) -> (Logger.Level, String)? {
        let d = record.data
        switch record.kind {
        case RecordKind.findingReceived: return (.debug, "finding received")
        case RecordKind.incidentOpened: return (.notice, "incident opened")
        case RecordKind.stepSucceeded: return (.info, d["already_done"] == .bool(true) ? "step succeeded (already in place)" : "step succeeded")
        case RecordKind.stepFailed:
            return d["will_retry_in"] != nil ? (.info, "step attempt failed; retrying") : (.warning, "step failed (see `cordon show`)")
        case RecordKind.stepSkipped: return (.info, "step skipped")
        case RecordKind.approvalRequested: return (.notice, "approval requested")
        case RecordKind.approvalDecided: return (.notice, "approval \(d["decision"]?.stringValue ?? "decided")")
        case RecordKind.incidentCompleted: return (.notice, "incident completed: \(d["status"]?.stringValue ?? IncidentStatus.completed.rawValue)")
        case RecordKind.incidentClosed: return (.notice, "incident closed")
        case RecordKind.findingQuarantined: return (.warning, "quarantined after two crashes in a row (see `cordon incidents`)")
        case RecordKind.rollbackSucceeded: return (.notice, "step rolled back")
        case RecordKind.rollbackFailed: return (.warning, "rollback failed (see `cordon show`)")
        default: return nil
        }
    }
}
