import Foundation

/// An incident's timeline for people: one row per journal record in time order, with
/// the NIST SP 800-61 phase, and the incident's metrics.
public struct Timeline: Sendable {
    public enum Phase: String, Sendable, CaseIterable {
        case detection = "Detection & Analysis"
        case containment = "Containment"
        case recovery = "Eradication & Recovery"
        case postIncident = "Post-Incident Activity"
    }

    public struct Row: Sendable {
        public var seq: Int64
        public var time: String
        public var phase: Phase
        public var actor: String
        public var kind: String
        public var what: String
        public var target: String
        public var outcome: String
        public var evidence: [String]
    }

    public struct Metrics: Sendable {
        /// The finding's own creation time (GuardDuty `createdAt`, CloudTrail `eventTime`…).
        public var findingCreated: Date?
        public var received: Date?
        public var firstContained: Date?
        public var closed: Date?

        public var timeToDetect: TimeInterval? { diff(received) }
        public var timeToContain: TimeInterval? { diff(firstContained) }
        public var timeToClose: TimeInterval? { diff(closed) }

        private func diff(_ d: Date?) -> TimeInterval? {
            guard let d, let start = findingCreated else { return nil }
            return d.timeIntervalSince(start)
        }
    }

    public var incident: String
    public var title: String?
    public var playbook: String?
    /// A dry run's incident: its steps were planned, nothing was called.
    public var dryRun = false
    public var rows: [Row]
    public var metrics: Metrics

    /// Builds the timeline from the incident's records (and the findings they refer to).
    public init(incident: String, records: [JournalRecord]) {
        self.incident = incident
        var reader = RowReader()
        self.rows = records.sorted { ($0.time, $0.seq) < ($1.time, $1.seq) }.map { reader.row($0) }
        self.metrics = reader.metrics
        self.title = reader.title
        self.playbook = reader.playbook
        self.dryRun = reader.dryRun
    }

    // MARK: - Formats

    public enum Format: String, Sendable, CaseIterable { case json, csv, md, html }

    public func render(_ format: Format) -> String {
        switch format {
        case .json: return JSONWriter.pretty(json) + "\n"
        case .csv: return csv
        case .md: return markdown
        case .html: return html
        }
    }

    static func duration(_ t: TimeInterval?) -> String {
        guard let t else { return "n/a" }
        if t < 0 { return "-" + duration(-t) }
        var s = Int(t.rounded())
        let h = s / 3600
        s %= 3600
        let m = s / 60
        s %= 60
        if h > 0 { return "\(h)h\(m)m\(s)s" }
        if m > 0 { return "\(m)m\(s)s" }
        return "\(s)s"
    }

    var metricRows: [(String, TimeInterval?)] {
        [("Time to detect (finding created → received)", metrics.timeToDetect),
         ("Time to contain (finding created → first containment)", metrics.timeToContain),
         ("Time to close (finding created → incident closed)", metrics.timeToClose)]
    }

    public var json: JSONValue {
        func seconds(_ t: TimeInterval?) -> JSONValue { t.map { .number(JSONNumber(($0 * 1000).rounded() / 1000)) } ?? .null }
        return [
            "incident": .string(incident), "title": title.map(JSONValue.string) ?? .null, "playbook": playbook.map(JSONValue.string) ?? .null,
            "dry_run": .bool(dryRun),
            "rows": .array(
                rows.map { r in
                    [
                        "seq": .number(JSONNumber(Int(r.seq))), "time": .string(r.time), "phase": .string(r.phase.rawValue),
                        "actor": .string(r.actor), "kind": .string(r.kind), "what": .string(r.what), "target": .string(r.target),
                        "outcome": .string(r.outcome), "evidence": .array(r.evidence.map(JSONValue.string)),
                    ]
                }),
            "metrics": [
                "finding_created": metrics.findingCreated.map { .string(Timestamp.string($0)) } ?? .null,
                "time_to_detect_seconds": seconds(metrics.timeToDetect),
                "time_to_contain_seconds": seconds(metrics.timeToContain),
                "time_to_close_seconds": seconds(metrics.timeToClose),
            ],
        ]
    }

    /// RFC 4180 (CRLF, quoted fields); cells that a spreadsheet would read as a formula
    /// are prefixed with an apostrophe.
    public var csv: String {
        func cell(_ s: String) -> String {
            var v = s
            if let first = v.first, "=+-@\t\r".contains(first) { v = "'" + v }
            if v.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" }) {
                return "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            }
            return v
        }
        var lines = ["seq,time,phase,actor,what,target,outcome,evidence"]
        for r in rows {
            lines.append(
                [String(r.seq), r.time, r.phase.rawValue, r.actor, r.what, r.target, r.outcome, r.evidence.joined(separator: " ")]
                    .map(cell).joined(separator: ","))
        }
        lines.append("")
        for (name, value) in metricRows { lines.append([name, Self.duration(value)].map(cell).joined(separator: ",")) }
        if dryRun { lines.append(["Dry run", "nothing was called"].map(cell).joined(separator: ",")) }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    public var markdown: String {
        func cell(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "|", with: "\\|")
                .replacingOccurrences(of: "\n", with: " ")
        }
        var out = "# Incident \(cell(incident))\n\n"
        if let title { out += "**\(cell(title))**" + (playbook.map { " — playbook `\($0)`" } ?? "") + "\n\n" }
        if dryRun { out += "**Dry run: the steps were planned, nothing was called.**\n\n" }
        out += "| seq | time (UTC) | phase | actor | what | target | outcome | evidence |\n|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            out += "| \(r.seq) | \(r.time) | \(r.phase.rawValue) | \(cell(r.actor)) | \(cell(r.what)) | \(cell(r.target)) | \(cell(r.outcome)) | "
                + r.evidence.map { "`\(String($0.prefix(12)))…`" }.joined(separator: " ") + " |\n"
        }
        out += "\n## Metrics\n\n| metric | value |\n|---|---|\n"
        for (name, value) in metricRows { out += "| \(name) | \(Self.duration(value)) |\n" }
        return out
    }

    /// One self-contained HTML file (no external resources) that prints well.
    public var html: String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        var out = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>Incident \(esc(incident)) — timeline</title>
            <style>
            body{font:13px/1.4 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em;color:#111}
            h1{font-size:1.4em;margin:0 0 .2em}
            .sub{color:#555;margin-bottom:1em}
            table{border-collapse:collapse;width:100%}
            th,td{border:1px solid #bbb;padding:4px 6px;vertical-align:top;text-align:left}
            th{background:#eee}
            tr.p-containment td.phase{background:#fde8e8}
            tr.p-recovery td.phase{background:#e8f4fd}
            tr.p-post td.phase{background:#eaf7ea}
            code{font:11px ui-monospace,Menlo,monospace;word-break:break-all}
            @media print{body{margin:0;font-size:10px}tr{page-break-inside:avoid}th{background:#eee!important;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
            </style></head><body>
            <h1>Incident \(esc(incident))</h1>
            <div class="sub">\(esc(title ?? ""))\(playbook.map { " — playbook " + esc($0) } ?? "")\(dryRun ? " — <b>dry run: the steps were planned, nothing was called</b>" : "")</div>
            <table><thead><tr><th>seq</th><th>time (UTC)</th><th>phase</th><th>actor</th><th>what</th><th>target</th><th>outcome</th><th>evidence</th></tr></thead><tbody>

            """
        for r in rows {
            let cls: String
            switch r.phase {
            case .detection: cls = "p-detection"
            case .containment: cls = "p-containment"
            case .recovery: cls = "p-recovery"
            case .postIncident: cls = "p-post"
            }
            out += "<tr class=\"\(cls)\"><td>\(r.seq)</td><td>\(esc(r.time))</td><td class=\"phase\">\(esc(r.phase.rawValue))</td><td>\(esc(r.actor))</td><td>\(esc(r.what))</td><td>\(esc(r.target))</td><td>\(esc(r.outcome))</td><td>"
                + r.evidence.map { "<code>\(esc($0))</code>" }.joined(separator: "<br>") + "</td></tr>\n"
        }
        out += "</tbody></table>\n<h2>Metrics</h2>\n<table><tbody>\n"
        for (name, value) in metricRows { out += "<tr><th>\(esc(name))</th><td>\(Self.duration(value))</td></tr>\n" }
        out += "</tbody></table>\n</body></html>\n"
        return out
    }
}

extension Timeline {
    /// Reads an incident's records in time order: the phase they reach, the metrics, and
    /// what the incident-opened record says about the incident.
    private struct RowReader {
        var phase = Phase.detection
        var metrics = Metrics()
        var title: String?
        var playbook: String?
        var dryRun = false

        /// The record's row, in the phase the record moves the incident to.
        mutating func row(_ record: JournalRecord) -> Row {
            let d = record.data
            let target = d["target"]?.stringValue ?? d["resource"]?.stringValue ?? ""
            let (what, outcome) = describe(record)
            return Row(
                seq: record.seq, time: record.time, phase: phase, actor: record.actor, kind: record.kind.rawValue, what: what,
                target: target, outcome: outcome, evidence: record.evidenceHashes)
        }

        /// What the record says happened and its outcome, for people.
        mutating func describe(_ record: JournalRecord) -> (what: String, outcome: String) {
            let d = record.data
            let step = d["step"]?.stringValue ?? "?"
            switch record.kind {
            case RecordKind.findingReceived:
                return findingReceived(record)
            case RecordKind.incidentOpened:
                return incidentOpened(record)
            case RecordKind.findingAttached:
                return (
                    "Finding attached: \(d["finding"]?["id"]?.stringValue ?? "")",
                    d["round"].map { "attached: the playbook evaluates again (evaluation \(JSONWriter.string($0)))" } ?? "attached"
                )
            case RecordKind.findingDuplicate:
                return ("Duplicate finding ignored", "duplicate")
            case RecordKind.stepIntent, RecordKind.stepSucceeded, RecordKind.stepFailed, RecordKind.stepSkipped:
                enterStepPhase(d)
                return stepOutcome(record)
            case RecordKind.stepPlanned:
                enterStepPhase(d)
                return ("Planned \(Self.stepName(d)) (dry run: not called)", "planned")
            case RecordKind.findingUnmatched:
                return ("No playbook matched the finding", "unmatched")
            case RecordKind.incidentCompleted:
                return ("Playbook run finished", d["status"]?.stringValue ?? "completed")
            case RecordKind.approvalRequested:
                return ("Approval requested for step \(step)", "pending")
            case RecordKind.approvalDecided:
                let decision = d["decision"]?.stringValue ?? "decided"
                return ("Approval for step \(step) \(decision)" + (d["reason"]?.stringValue.map { ": \($0)" } ?? ""), decision)
            case RecordKind.rollbackIntent, RecordKind.rollbackSucceeded, RecordKind.rollbackFailed:
                phase = .recovery
                var outcome = String(record.kind.rawValue.dropFirst("rollback.".count))
                if record.kind == RecordKind.rollbackFailed { outcome += ": " + (d["error"]?.stringValue ?? "") }
                return ("Rollback of step \(step)", outcome)
            case RecordKind.incidentClosed:
                phase = .postIncident
                metrics.closed = Timestamp.parse(record.time)
                return (
                    "Incident closed" + (d["by"]?.stringValue.map { " by \($0)" } ?? "") + (d["reason"]?.stringValue.map { ": \($0)" } ?? ""),
                    d["status"]?.stringValue ?? "closed"
                )
            case RecordKind.findingQuarantined:
                return ("Quarantined: " + (d["reason"]?.stringValue ?? ""), "quarantined")
            default:
                return (record.kind.rawValue, "")
            }
        }

        /// `step ID (ACTION)`, or `step ID` when the record names no action.
        static func stepName(_ d: JSONValue) -> String {
            let step = d["step"]?.stringValue ?? "?"
            let action = d["action"]?.stringValue ?? ""
            return action.isEmpty ? "step \(step)" : "step \(step) (\(action))"
        }

        /// An evidence step is detection and analysis; a containment step, containment.
        mutating func enterStepPhase(_ d: JSONValue) {
            switch d["action_kind"]?.stringValue {
            case "evidence": phase = .detection
            case "containment": phase = .containment
            default: break
            }
        }

        mutating func findingReceived(_ record: JournalRecord) -> (what: String, outcome: String) {
            let d = record.data
            phase = .detection
            let what = "Finding received: \(d["finding"]?["detail_type"]?.stringValue ?? "finding") \(d["finding"]?["type"]?.stringValue ?? "")"
                .trimmingCharacters(in: .whitespaces)
            // `matched` is absent from the oldest journals (which said
            // `finding.unmatched` after it instead).
            let outcome: String
            switch d["matched"]?.arrayValue {
            case nil: outcome = "received"
            case let matched? where matched.isEmpty: outcome = "received: no playbook matched"
            case let matched?: outcome = "received: matched " + matched.compactMap(\.stringValue).joined(separator: ", ")
            }
            noteReceived(record)
            return (what, outcome)
        }

        mutating func incidentOpened(_ record: JournalRecord) -> (what: String, outcome: String) {
            let d = record.data
            phase = .detection
            title = d["title"]?.stringValue
            playbook = d["playbook"]?.stringValue
            dryRun = d["dry_run"] == .bool(true)
            let what = "Incident opened by playbook \(d["playbook"]?.stringValue ?? "?")"
                + (d["playbook_version"].map { " v\(JSONWriter.string($0))" } ?? "")
            noteReceived(record)
            return (what, "open")
        }

        /// The finding's creation (the earliest seen) and the first time one arrived.
        mutating func noteReceived(_ record: JournalRecord) {
            if let created = record.data["finding"]?["created_at"]?.stringValue.flatMap(Timestamp.parse) {
                metrics.findingCreated = min(metrics.findingCreated ?? created, created)
            }
            if metrics.received == nil { metrics.received = Timestamp.parse(record.time) }
        }

        /// A step's intent, success, failure or skip; the first containment that succeeded
        /// is when the incident was contained.
        mutating func stepOutcome(_ record: JournalRecord) -> (what: String, outcome: String) {
            let d = record.data
            let stepName = Self.stepName(d)
            switch record.kind {
            case RecordKind.stepIntent:
                return ("Started \(stepName)", "started" + (d["attempt"].map { " (attempt \(JSONWriter.string($0)))" } ?? ""))
            case RecordKind.stepSucceeded:
                if d["action_kind"]?.stringValue == "containment", metrics.firstContained == nil {
                    metrics.firstContained = Timestamp.parse(record.time)
                }
                return ("Completed \(stepName)", d["already_done"] == .bool(true) ? "succeeded (already in place)" : "succeeded")
            case RecordKind.stepFailed:
                return ("Failed \(stepName)", "failed: " + (d["error"]?.stringValue ?? d["error"]?["message"]?.stringValue ?? "unknown error"))
            default:
                return ("Skipped \(stepName)", "skipped: " + (d["reason"]?.stringValue ?? ""))
            }
        }
    }
}
