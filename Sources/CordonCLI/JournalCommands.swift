import ArgumentParser
import CordonCore
import CordonJournal
import Foundation

struct JournalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "Check and inspect the hash-chained, signed journal.",
        subcommands: [JournalVerifyCommand.self, JournalKeyCommand.self, JournalCheckpointCommand.self, JournalRotateKeyCommand.self])
}

struct JournalVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify every record hash, link, checkpoint signature, signing key and evidence file.",
        discussion: """
            Exits 0 only when everything holds. Otherwise prints each problem with the seq of \
            the record it concerns (the first bad one first) and exits 1. It says up to which \
            seq the journal is verified, when and by which key that was signed, and how many \
            records after it are unsigned: at most 100 may be (what a crash leaves since the \
            last checkpoint); more, or a journal with no valid signature, fails. \
            --expect-key FINGERPRINT (repeatable) pins the key: a checkpoint signed by any key \
            that is not expected, nor linked to one by a rotation both keys signed, fails. \
            Without it, the journal's own key is trusted, and a journal re-signed by someone \
            with the key (or with this host) passes.
            """)

    @OptionGroup var data: DataOptions

    @Option(
        name: .customLong("expect-key"),
        help: ArgumentHelp("A signing key fingerprint the journal must be signed with (as `cordon journal key` prints it); repeatable.", valueName: "FINGERPRINT"))
    var expectedKeys: [String] = []

    @Flag(help: .hidden)
    var allowUnsignedTail = false

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func validate() throws {
        for key in expectedKeys where key.count != 64 || !key.allSatisfy(\.isHexDigit) {
            throw ValidationError("--expect-key \(key): expected a SHA-256 fingerprint (64 hex digits), as `cordon journal key` prints it")
        }
    }

    func run() async throws {
        if allowUnsignedTail {
            printError("cordon: --allow-unsigned-tail no longer changes anything: up to 100 unsigned records are accepted, more always fail")
        }
        var verifier = JournalVerifier(directory: data.directory, expectedKeys: Set(expectedKeys.map { $0.lowercased() }))
        verifier.witnesses = try await data.witnesses().asyncMap(witnessView)
        let report: VerificationReport
        do {
            report = try verifier.verify()
        } catch {
            throw CordonError(.invalidInput, "\(error)")
        }
        switch output {
        case .text: printText(report)
        case .json: print(JSONWriter.pretty(Self.json(report)))
        }
        if !report.isValid { throw CordonError(.checkFailed) }
    }

    /// What one witness saw: the heads it holds, or (a time-stamping authority, which
    /// keeps none) the heads of the receipts the journal kept whose tokens verify.
    func witnessView(_ witness: any CheckpointWitness) async throws -> JournalVerifier.WitnessView {
        let spec = witness.spec
        do {
            if let heads = try await witness.witnessedHeads() { return .init(witness: witness.spec, heads: heads) }
            var view = JournalVerifier.WitnessView(witness: witness.spec, heads: [])
            for (receipt, line) in try await data.openReader().receipts(witness: witness.spec) {
                guard let head = try? Checkpoint(line: line), head.seq == receipt.seq, head.hash == receipt.hash,
                    (try? witness.check(receipt, for: head)) == true
                else {
                    view.badProofs.append(receipt.seq)
                    continue
                }
                view.heads.append(head)
            }
            return view
        } catch let error as CordonError {
            throw error
        } catch {
            throw CordonError(.invalidInput, "--anchor \(spec): \(error)")
        }
    }

    func printText(_ report: VerificationReport) {
        for problem in report.problems { print(problem.description) }
        for note in report.notes { print("note: \(note)") }
        let summary = "\(report.records) record(s), \(report.checkpoints) checkpoint(s), \(report.evidenceFiles) evidence file(s)"
        if let signed = report.signedThrough {
            let unsigned = report.unsignedTail?.count ?? 0
            print(
                "verified up to seq \(signed.seq), signed at \(signed.time) by key \(report.signedUnder ?? signed.keyFingerprint)"
                    + (signed.keyFingerprint != report.signedUnder ? " (session key \(signed.keyFingerprint))" : "")
                    + "; \(unsigned) record(s) after that \(unsigned == 1 ? "is" : "are") unsigned")
        }
        for witnessed in report.witnessed {
            print("witness \(witnessed.witness) saw seq \(witnessed.seq) signed at \(witnessed.time)")
        }
        if data.tsaCA == nil, data.anchors.contains(where: { $0.hasPrefix("tsa:") }) {
            print("note: time-stamp tokens were checked against the certificate each carries, not a trusted CA: pass --tsa-ca FILE")
        }
        if report.expectedKeys.isEmpty && report.records > 0 {
            print("key not pinned: pass --expect-key FINGERPRINT (published where this host cannot change it) to detect a journal re-signed with another key")
        }
        if report.isValid {
            print("journal verified: \(summary)")
        } else {
            print("JOURNAL INVALID: \(summary); first bad seq: \(report.firstBadSeq.map(String.init) ?? "-")")
        }
    }

    static func json(_ report: VerificationReport) -> JSONValue {
        func number(_ n: Int64) -> JSONValue { .number(JSONNumber(Int(n))) }
        var o: JSONObject = [
            "valid": .bool(report.isValid), "records": .number(JSONNumber(report.records)),
            "checkpoints": .number(JSONNumber(report.checkpoints)), "evidence_files": .number(JSONNumber(report.evidenceFiles)),
            "problems": .array(report.problems.map { ["seq": $0.seq.map(number) ?? .null, "message": .string($0.message)] }),
            "notes": .array(report.notes.map(JSONValue.string)), "pinned": .bool(!report.expectedKeys.isEmpty),
        ]
        o["first_bad_seq"] = report.firstBadSeq.map(number) ?? .null
        o["verified_through"] =
            report.signedThrough.map { signed in
                [
                    "seq": number(signed.seq), "time": .string(signed.time), "key": .string(report.signedUnder ?? signed.keyFingerprint),
                    "signed_by": .string(signed.keyFingerprint),
                ]
            } ?? .null
        o["unsigned_records"] = .number(JSONNumber(report.unsignedTail?.count ?? 0))
        o["witnessed"] = .array(report.witnessed.map { ["witness": .string($0.witness), "seq": number($0.seq), "time": .string($0.time)] })
        return .object(o)
    }
}

struct JournalKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Print the journal signing key's fingerprint and public key.",
        discussion: """
            The key is --signing-key (or CORDON_SIGNING_KEY), else the data directory's own \
            key; nothing is generated. The fingerprint is the SHA-256 of the DER public key \
            (`openssl pkey -pubin -in KEY.pem -outform DER | sha256sum`). Publish it somewhere \
            the journal's writers cannot change, and verify with --expect-key FINGERPRINT.
            """)

    @OptionGroup var data: DataOptions

    func run() async throws {
        let publicKey: JournalPublicKey?
        let source: String
        if let signer = try await data.signer() {
            (publicKey, source) = (signer.publicKey, signer.source)
        } else if let key = try data.existingDataDirectoryKey() {
            (publicKey, source) = (key.publicKey, key.source)
        } else {
            let file = data.directory.keys.appendingPathComponent(SigningKey.privateKeyFile)
            throw CordonError(.notFound, "no signing key: \(file.path) does not exist and no --signing-key was given")
        }
        guard let publicKey else { throw CordonError(.invalidInput, "\(source) does not hold a usable public key") }
        print("fingerprint: \(publicKey.fingerprint)")
        print("algorithm: \(publicKey.algorithm.rawValue)")
        print("source: \(source)")
        print(publicKey.pem, terminator: "")
    }
}

struct JournalCheckpointCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "Sign the journal's newest record now.")

    @OptionGroup var data: DataOptions

    func run() async throws {
        let journal = try await data.openJournal()
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
        let journal = try data.openReader()
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
        let journal = try await data.openJournal()
        do {
            let summary = try await EvidenceBundle.export(
                incident: incident, journal: journal, to: URL(fileURLWithPath: out), actor: runnerName(),
                witness: {
                    // The witnesses take the bundle's checkpoint before its receipts are read.
                    for publisher in Witnesses.registered { _ = await publisher.flush(timeout: .seconds(15)) }
                })
            switch output {
            case .text:
                print(
                    "exported \(summary.records) record(s) of \(incident) (chain seq \(summary.chainFrom)–\(summary.chainTo)), \(summary.evidenceFiles) evidence file(s) and \(summary.receipts) witness receipt(s) to \(out); see \(out)/VERIFY.md"
                )
            case .json:
                print(
                    JSONWriter.pretty([
                        "incident": .string(incident), "out": .string(out), "records": .number(JSONNumber(summary.records)),
                        "chain_from": .number(JSONNumber(Int(summary.chainFrom))), "chain_to": .number(JSONNumber(Int(summary.chainTo))),
                        "evidence_files": .number(JSONNumber(summary.evidenceFiles)), "receipts": .number(JSONNumber(summary.receipts)),
                        "verify": .string(out + "/VERIFY.md"),
                    ]))
            }
        } catch let error as SQLiteJournal.Error {
            throw CordonError(.invalidInput, "\(error)")
        }
    }
}

struct JournalRotateKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-key",
        abstract: "Move the journal to a new signing key, with a rotation record both keys sign.",
        discussion: """
            The old key is --signing-key (or CORDON_SIGNING_KEY, or the data directory's own \
            key). The rotation record names both keys and the journal's head, signed by both, \
            so that the history before it stays verifiable and --expect-key OLD still accepts \
            the journal. From then on give the new key with --signing-key. If the old key is \
            lost, --without-old-key writes a rotation only the new key signs: verify accepts \
            it only when the new key is expected too (--expect-key NEW).
            """)

    @OptionGroup var data: DataOptions

    @Option(help: ArgumentHelp("The new key: FILE (Ed25519 PKCS#8 PEM, mode 0600) or kms:KEY_ARN.", valueName: "SPEC"))
    var newKey: String

    @Flag(help: "The old key is lost: only the new key signs the rotation.")
    var withoutOldKey = false

    @Option(help: "text or json")
    var output: OutputFormat = .text

    func run() async throws {
        // No runner may go on signing with the old key after the rotation.
        let lock = try data.lock(role: "rotate-key", advice: "stop it before rotating the journal's key: it would go on signing with the old one")
        defer { withExtendedLifetime(lock) {} }
        let new = try await SigningKeySpec(newKey).load()
        let old: (any JournalSigner)?
        if withoutOldKey {
            old = nil
        } else if let given = try await data.signer() {
            old = given
        } else if let key = try data.existingDataDirectoryKey() {
            old = key
        } else {
            throw CordonError(.usage, "no old key: give it with --signing-key, or, if it is lost, pass --without-old-key")
        }
        guard FileManager.default.fileExists(atPath: data.directory.journal.path) else {
            throw CordonError(.notFound, "no journal at \(data.directory.journal.path) (is --data-dir right?)")
        }
        let rotation: SQLiteJournal.Rotation
        do {
            rotation = try await SQLiteJournal.rotateKey(directory: data.directory, old: old, new: new, actor: runnerName())
        } catch let error as SQLiteJournal.Error {
            throw CordonError(.conflict, error.message)
        }
        switch output {
        case .text:
            print("rotated at seq \(rotation.seq): \(rotation.old) -> \(rotation.new)\(withoutOldKey ? " (signed by the new key only)" : "")")
            print("from now on give --signing-key \(newKey); verify with --expect-key \(rotation.new)\(withoutOldKey ? " --expect-key \(rotation.old)" : "")")
        case .json:
            print(
                JSONWriter.pretty([
                    "seq": .number(JSONNumber(Int(rotation.seq))), "old": .string(rotation.old), "new": .string(rotation.new),
                    "old_key_signed": .bool(!withoutOldKey),
                ]))
        }
    }
}
