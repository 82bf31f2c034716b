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
        let d = record.data
        var metadata: Logger.Metadata = [:]
        if let incident = record.incident { metadata["incident"] = .string(incident) }
        if let step = d["step"]?.stringValue { metadata["step"] = .string(step) }
        if let action = d["action"]?.stringValue { metadata["action"] = .string(action) }
        if let playbook = d["playbook"]?.stringValue { metadata["playbook"] = .string(playbook) }
        if let finding = d["finding"]?["id"]?.stringValue { metadata["finding"] = .string(finding) }
        switch record.kind {
        case RecordKind.findingReceived:
            let matched = d["matched"]?.arrayValue?.compactMap(\.stringValue) ?? []
            logger.debug("finding received", metadata: metadata.merging(["matched": .array(matched.map { .string($0) })]) { $1 })
        case RecordKind.incidentOpened:
            logger.notice("incident opened", metadata: metadata)
        case RecordKind.stepSucceeded:
            logger.info(d["already_done"] == .bool(true) ? "step succeeded (already in place)" : "step succeeded", metadata: metadata)
        case RecordKind.stepFailed:
            if d["will_retry_in"] != nil {
                logger.info("step attempt failed; retrying", metadata: metadata)
            } else {
                logger.warning("step failed (see `cordon show`)", metadata: metadata)
            }
        case RecordKind.stepSkipped:
            logger.info("step skipped", metadata: metadata)
        case RecordKind.approvalRequested:
            logger.notice("approval requested", metadata: metadata)
        case RecordKind.approvalDecided:
            logger.notice("approval \(d["decision"]?.stringValue ?? "decided")", metadata: metadata)
        case RecordKind.incidentCompleted:
            logger.notice("incident completed: \(d["status"]?.stringValue ?? IncidentStatus.completed.rawValue)", metadata: metadata)
        case RecordKind.incidentClosed:
            logger.notice("incident closed", metadata: metadata)
        case RecordKind.findingQuarantined:
            logger.warning("quarantined after two crashes in a row (see `cordon incidents`)", metadata: metadata)
        case RecordKind.rollbackSucceeded:
            logger.notice("step rolled back", metadata: metadata)
        case RecordKind.rollbackFailed:
            logger.warning("rollback failed (see `cordon show`)", metadata: metadata)
        default:
            break
        }
    }
}
