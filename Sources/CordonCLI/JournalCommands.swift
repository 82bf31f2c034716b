import ArgumentParser
import CordonCore
import CordonJournal
import Foundation

struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Where Cordon keeps its journal, evidence and keys.", valueName: "DIR"))
    var dataDir: String = "./.cordon"

    var directory: DataDirectory { DataDirectory(dataDir) }

    /// Takes the data directory's lock for a command that runs incidents (`role`), waiting
    /// for a short command that holds it; exits 2 naming the holder when a runner does,
    /// with `advice` on what to do instead.
    func lock(role: String, advice: String) throws -> DataDirectoryLock {
        do {
            return try DataDirectoryLock.acquire(directory, role: role, wait: true) { holder in
                printError("cordon: waiting for \(holder.map(\.description) ?? "another cordon process") to finish with \(dataDir)")
            }
        } catch let busy as DataDirectoryLock.Busy {
            throw CordonError(.conflict, "\(busy.holder.map(\.description) ?? "another cordon process") runs incidents on \(dataDir): \(advice)")
        } catch {
            throw CordonError(.invalidInput, "\(error)")
        }
    }

    /// The runner (`cordon run`) holding the data directory, if one does.
    var runner: DataDirectoryLock.Holder? {
        DataDirectoryLock.holder(of: directory).flatMap { $0.role == "run" ? $0 : nil }
    }

    /// Opens the journal; exits 2 with a clear message when it cannot.
    func openJournal(create: Bool = false, secrets: SecretStore = SecretStore()) throws -> SQLiteJournal {
        if !create, !FileManager.default.fileExists(atPath: directory.journal.path) {
            throw CordonError(.notFound, "no journal at \(directory.journal.path) (is --data-dir right?)")
        }
        do {
            return try SQLiteJournal(directory: directory, secrets: secrets)
        } catch {
            throw CordonError(.invalidInput, "\(error)")
        }
    }
}

struct JournalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "Check and inspect the hash-chained, signed journal.",
        subcommands: [JournalVerifyCommand.self, JournalKeyCommand.self, JournalCheckpointCommand.self])
}

struct JournalVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify every record hash, link, checkpoint signature and evidence file.",
        discussion: """
            Exits 0 only when everything holds. Otherwise prints each problem with the seq of \
            the record it concerns (the first bad one first) and exits 1. Records after the \
            last checkpoint are not covered by a signature and are reported as an unsigned \
            tail (a stopped runner signs at shutdown; `cordon journal checkpoint` signs now); \
            --allow-unsigned-tail accepts them, for checking a journal that is still being written.
            """)

    @OptionGroup var data: DataOptions

    @Flag(help: "Accept records after the last checkpoint (a journal still being written).")
    var allowUnsignedTail = false

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() throws {
        let report: VerificationReport
        do {
            report = try JournalVerifier(directory: data.directory).verify()
        } catch {
            throw CordonError(.invalidInput, "\(error)")
        }
        let tailProblem = report.unsignedTail.map {
            "unsigned tail: \($0.count) record(s) from seq \($0.from) are not covered by a checkpoint signature"
        }
        let valid = report.problems.isEmpty && (report.unsignedTail == nil || allowUnsignedTail)
        switch output {
        case .text:
            for problem in report.problems { print(problem.description) }
            if let tailProblem { print(allowUnsignedTail ? "warning: \(tailProblem)" : tailProblem) }
            let summary = "\(report.records) record(s), \(report.checkpoints) checkpoint(s), \(report.evidenceFiles) evidence file(s)"
            if valid {
                print("journal verified: \(summary)")
            } else {
                print("JOURNAL INVALID: \(summary); first bad seq: \(report.firstBadSeq.map(String.init) ?? (report.unsignedTail.map { String($0.from) } ?? "-"))")
            }
        case .json:
            var o: JSONObject = [
                "valid": .bool(valid), "records": .number(JSONNumber(report.records)),
                "checkpoints": .number(JSONNumber(report.checkpoints)), "evidence_files": .number(JSONNumber(report.evidenceFiles)),
                "problems": .array(report.problems.map { ["seq": $0.seq.map { .number(JSONNumber(Int($0))) } ?? .null, "message": .string($0.message)] }),
            ]
            o["first_bad_seq"] = report.firstBadSeq.map { .number(JSONNumber(Int($0))) } ?? .null
            if let tail = report.unsignedTail {
                o["unsigned_tail"] = ["from": .number(JSONNumber(Int(tail.from))), "count": .number(JSONNumber(tail.count))]
            }
            print(JSONWriter.pretty(.object(o)))
        }
        if !valid { throw CordonError(.checkFailed) }
    }
}

struct JournalKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Print the journal signing key's fingerprint and public key.",
        discussion: """
            The fingerprint is the SHA-256 of the DER public key (`openssl pkey -pubin -in \
            KEY.pem -outform DER | sha256sum`). Publish it somewhere the journal's writers \
            cannot change, so that auditors can check bundles against it.
            """)

    @OptionGroup var data: DataOptions

    func run() throws {
        let journal = try data.openJournal()
        print("fingerprint: \(journal.keyFingerprint)")
        print(journal.publicKeyPEM, terminator: "")
    }
}

struct JournalCheckpointCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "Sign the journal's newest record now.")

    @OptionGroup var data: DataOptions

    func run() async throws {
        let journal = try data.openJournal()
        if let checkpoint = try await journal.checkpoint() {
            print("signed seq \(checkpoint.seq) (\(checkpoint.hash))")
        } else {
            print("the journal is empty")
        }
    }
}

struct TimelineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "timeline",
        abstract: "An incident's timeline, with NIST SP 800-61 phases and response metrics.")

    @Argument(help: "The incident id.")
    var incident: String

    @Option(help: "json, csv (RFC 4180), md or html (self-contained, printable).")
    var format: Timeline.Format = .md

    @Option(help: "json: the same as --format json (as other commands take it).")
    var output: OutputFormat?

    @OptionGroup var data: DataOptions

    func validate() throws {
        if output == .json && format != .md && format != .json { throw ValidationError("--output json and --format \(format.rawValue) disagree: give one") }
    }

    func run() async throws {
        let format = output == .json ? Timeline.Format.json : format
        let journal = try data.openJournal()
        let records = try await EvidenceBundle.incidentRecords(incident, journal: journal)
        guard !records.isEmpty else {
            throw CordonError(.notFound, "no records for incident \(incident)")
        }
        print(Timeline(incident: incident, records: records).render(format), terminator: "")
    }
}

extension Timeline.Format: ExpressibleByArgument {}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an incident's evidence bundle (verifiable with sha256sum, openssl and jq).",
        discussion: """
            The bundle holds the incident's journal records (in an unbroken, signed chain), \
            the checkpoints, the public key, the evidence its records cite, the timeline in \
            every format, and VERIFY.md with the commands that check it. The directory must \
            be new or empty.
            """)

    @Argument(help: "The incident id.")
    var incident: String

    @Option(help: ArgumentHelp("Directory to write the bundle into.", valueName: "DIR"))
    var out: String

    @OptionGroup var data: DataOptions

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        let journal = try data.openJournal()
        do {
            let summary = try await EvidenceBundle.export(incident: incident, journal: journal, to: URL(fileURLWithPath: out))
            switch output {
            case .text:
                print("exported \(summary.records) record(s) of \(incident) (chain seq \(summary.chainFrom)–\(summary.chainTo)) and \(summary.evidenceFiles) evidence file(s) to \(out); see \(out)/VERIFY.md")
            case .json:
                print(
                    JSONWriter.pretty([
                        "incident": .string(incident), "out": .string(out), "records": .number(JSONNumber(summary.records)),
                        "chain_from": .number(JSONNumber(Int(summary.chainFrom))), "chain_to": .number(JSONNumber(Int(summary.chainTo))),
                        "evidence_files": .number(JSONNumber(summary.evidenceFiles)), "verify": .string(out + "/VERIFY.md"),
                    ]))
            }
        } catch let error as SQLiteJournal.Error {
            throw CordonError(.invalidInput, "\(error)")
        }
    }
}
