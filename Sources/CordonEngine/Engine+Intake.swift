import CordonCore
import Foundation

// Receiving findings: deduplication, the intake ledger (`finding.received`), and the
// receipts handed to the handlers.
extension Engine {
    /// Receives findings and handles them one after another (`cordon process`).
    public func process(_ findings: [Finding]) async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for receipt in try await receive(findings) { outcomes.append(try await handle(receipt)) }
        return outcomes
    }

    /// Processes one finding; safe to call concurrently.
    public func process(_ finding: Finding) async throws -> Outcome {
        try await handle(try await receive([finding])[0])
    }

    /// A finding journaled by `receive`, and what remains to do for it.
    public struct Receipt: Sendable {
        public var finding: Finding
        /// `id|updatedAt`: the same for every delivery of the same finding version.
        public var dedupe: String
        /// Its `finding.received` record (a slot until the journal writes it).
        public var received: RecordRef
        /// The seq of its `finding.received` record (0 while that record is being written).
        public var receivedSeq: Int64 { received.seq ?? 0 }
        /// The matching playbooks (indexes into the name-ordered list) that have not yet
        /// opened or attached an incident for it; empty for an unmatched or duplicate one.
        public var pending: [Int]
        public var duplicate: Bool
        /// What records say about the finding (`Engine.summary`), computed once at intake.
        public let summary: JSONValue
        public var id: String { finding.id ?? "unknown" }
        /// How a crash record names the finding while it is handled (`CrashGuard`).
        public var crashID: String { CrashGuard.findingID(dedupe) }

        init(finding: Finding, dedupe: String, received: RecordRef, pending: [Int], duplicate: Bool, summary: JSONValue? = nil) {
            self.finding = finding
            self.dedupe = dedupe
            self.received = received
            self.pending = pending
            self.duplicate = duplicate
            self.summary = summary ?? Engine.summary(finding)
        }
    }

    /// Journals findings (each `finding.received` with the finding as evidence and the
    /// playbooks it matched, none for an unmatched one, or `finding.duplicate` for a
    /// delivery already received and handled) in one commit, and returns once they are durable:
    /// from then on the journal owns them, and a crash before they are handled is resumed
    /// from it (`resumeUnfinished`). Intake is serialised; handling runs concurrently.
    public nonisolated func receive(_ findings: [Finding]) async throws -> [Receipt] {
        guard !findings.isEmpty else { return [] }
        return try await receive(arrivals(findings))
    }

    /// Journals findings as `receive` does, but returns their receipts as soon as their
    /// records are queued, before the commit: a handler can open their incidents and queue
    /// the first step's intent behind them (often into the same commit), so that a finding
    /// reaches its first action after one commit instead of two. Nothing acts before it is
    /// durable: an action waits for its intent's commit, which follows the findings'.
    /// Acknowledge the findings to their source only after `Intake.durable()` returns. If
    /// their commit fails, the journal stops (every later append throws), as for a
    /// posted record: the runner stops, and what was not durable comes back from the
    /// source on the next start (files left claimed in the queue directory).
    public nonisolated func receiveQueued(_ findings: [Finding]) async throws -> Intake {
        guard !findings.isEmpty else { return Intake(receipts: [], journal: journal) }
        return Intake(receipts: try await queue(arrivals(findings)), journal: journal)
    }

    /// Receipts whose records may not yet be durable (`receiveQueued`).
    public struct Intake: Sendable {
        public var receipts: [Receipt]
        let journal: any Journal
        /// Returns once the findings' records are durable; throws if their commit failed.
        public func durable() async throws { try await journal.durable() }
    }

    private nonisolated func arrivals(_ findings: [Finding]) -> [Arrival] {
        // What does not depend on the journal's state (matching, summaries) is done by the
        // caller's task, in parallel with the engine's other work.
        var matcher = triggers.makeMatcher()
        return findings.map { finding in
            let event = finding.event
            return Arrival(
                finding: finding, summary: Self.summary(finding),
                dedupe: IncidentIndex.dedupeKey(id: finding.id ?? "unknown", updatedAt: Self.updatedAt(event), dryRun: dryRun),
                // The bytes received when they are the event unchanged (a document of its
                // own, which the parser checked, duplicate keys included): matching them
                // saves writing the event out again.
                matched: finding.raw.map { (try? matcher.matches($0)) ?? [] } ?? matcher.matches(event: event))
        }
    }

    /// A finding about to be journaled, with what its receipt needs.
    struct Arrival: Sendable {
        var finding: Finding
        var summary: JSONValue
        var dedupe: String
        var matched: [Int]
    }

    /// Takes the intake lock once no finding of `arrivals` is in a batch being appended.
    private func acquireIntake(for arrivals: [Arrival]) async {
        await acquire("intake")
        while arrivals.contains(where: { receiving.contains($0.dedupe) }) {
            release("intake")
            await withCheckedContinuation { receivingWaiters.append($0) }
            await acquire("intake")
        }
    }

    private func receive(_ arrivals: [Arrival]) async throws -> [Receipt] {
        // Deciding what to journal is serialised ("intake"); waiting for the commit is not:
        // the next batch is decided while this one is written, and both can share a commit.
        // A batch with a finding still being committed by another waits for that commit,
        // so that it sees whether the finding was received (a duplicate) or not (its
        // commit failed: it is new).
        await acquireIntake(for: arrivals)
        let keys = Set(arrivals.map(\.dedupe))
        receiving.formUnion(keys)
        defer {
            receiving.subtract(keys)
            let waiters = receivingWaiters
            receivingWaiters = []
            for waiter in waiters { waiter.resume() }
        }
        let decided = Result { try decide(arrivals) }
        release("intake")
        let (records, plans) = try decided.get()
        let written = try await append(records)
        return Self.receipts(plans) { .seq(written[$0].seq) }
    }

    /// Decides and posts a batch's records (`receiveQueued`): the index has them at once.
    private func queue(_ arrivals: [Arrival]) async throws -> [Receipt] {
        // Serialised with `receive`: a finding that a batch being appended holds waits for
        // that commit, as there.
        await acquireIntake(for: arrivals)
        defer { release("intake") }
        let (decided, plans) = try decide(arrivals)
        let records = decided.map(stamped)
        journal.post(records)
        let now = clock.now
        for record in records { index.apply(JournalRecord(unwritten: record, now: now), ref: record.slot.map(RecordRef.slot)) }
        return Self.receipts(plans) { records[$0].slot.map(RecordRef.slot) ?? .seq(0) }
    }

    private static func receipts(_ plans: [ReceiptPlan], received: (Int) -> RecordRef) -> [Receipt] {
        plans.map { finding, dedupe, source, pending, summary in
            switch source {
            case .new(let i): Receipt(finding: finding, dedupe: dedupe, received: received(i), pending: pending, duplicate: false, summary: summary)
            case .earlier(let ref): Receipt(finding: finding, dedupe: dedupe, received: ref, pending: pending, duplicate: false, summary: summary)
            case .duplicate: Receipt(finding: finding, dedupe: dedupe, received: .seq(0), pending: [], duplicate: true, summary: summary)
            }
        }
    }

    /// Per finding of a batch: the index of its received record in the batch's records, or
    /// the seq it was received with earlier, or a duplicate delivery.
    enum ReceiptSource { case new(Int), earlier(RecordRef), duplicate }

    /// What a finding's receipt will say: the finding, its dedupe key, where its received
    /// record is, the playbooks still to handle it, its summary.
    typealias ReceiptPlan = (Finding, String, ReceiptSource, [Int], JSONValue)

    /// The records that receive a batch, and what each finding's receipt will say.
    private func decide(_ arrivals: [Arrival]) throws -> ([NewRecord], [ReceiptPlan]) {
        var records: [NewRecord] = []
        var plans: [ReceiptPlan] = []
        var seen: [String: Int] = [:]
        for arrival in arrivals {
            let finding = arrival.finding
            let event = finding.event
            let summary = arrival.summary
            let dedupe = arrival.dedupe
            if seen[dedupe] != nil {
                // The same finding twice in one batch: the second is a duplicate delivery.
                records.append(NewRecord(kind: RecordKind.findingDuplicate, actor: actor, data: .object(findingData(summary))))
                plans.append((finding, dedupe, .duplicate, [], summary))
                continue
            }
            seen[dedupe] = plans.count
            let matched = arrival.matched
            if let ref = index.received(dedupe) {
                // Received before: only what was cut short (a crash between receiving it
                // and opening its incidents) remains to do; otherwise a duplicate.
                let pending = matched.filter { !index.playbook(playbooks[$0].name, handled: dedupe) }
                // A quarantined finding is never taken up again automatically.
                let cutShort = !index.quarantined(finding: dedupe) && (matched.isEmpty ? !index.unmatched(dedupe) : !pending.isEmpty)
                if cutShort {
                    if matched.isEmpty {
                        records.append(Self.referring(NewRecord(kind: RecordKind.findingUnmatched, actor: actor, data: .object(findingData(summary))), to: ref))
                    }
                    plans.append((finding, dedupe, .earlier(ref), pending, summary))
                } else {
                    records.append(NewRecord(kind: RecordKind.findingDuplicate, actor: actor, data: .object(findingData(summary))))
                    plans.append((finding, dedupe, .duplicate, [], summary))
                }
                continue
            }
            // The finding as received when it arrived as a document of its own.
            let ref = try evidence.store(finding.raw ?? JSONWriter.bytes(event), name: "finding", mediaType: "application/json")
            // `matched: []` says the finding matched no playbook: nothing remains to do
            // for it (journals of earlier versions follow it with `finding.unmatched`).
            plans.append((finding, dedupe, .new(records.count), matched, summary))
            var data = findingData(summary)
            data["matched"] = .array(matched.map { .string(playbooks[$0].name) })
            data["evidence"] = [ref]
            var received = NewRecord(kind: RecordKind.findingReceived, actor: actor, data: .object(data))
            received.slot = RecordSlot()
            records.append(received)
        }
        return (records, plans)
    }

    /// What a record about a finding says of it: its summary, and that it was taken in a
    /// dry run (whose findings and incidents are kept apart from real ones).
    func findingData(_ summary: JSONValue) -> JSONObject {
        dryRun ? ["finding": summary, "dry_run": true] : ["finding": summary]
    }

    /// The record with `finding_seq`, the seq of the finding's `finding.received` record:
    /// written now when known, else set by the journal (at once if that record was
    /// written meanwhile, otherwise when it writes this one).
    static func referring(_ record: NewRecord, to finding: RecordRef) -> NewRecord {
        var r = record
        switch finding {
        case .seq(let seq): r.data = SeqField.set("finding_seq", to: seq, in: r.data)
        case .slot(let slot): r.seqField = SeqField(key: "finding_seq", slot: slot)
        }
        return r
    }

    static func updatedAt(_ event: JSONValue) -> String? {
        event["detail"]?["updatedAt"]?.stringValue ?? event["time"]?.stringValue
    }
}
