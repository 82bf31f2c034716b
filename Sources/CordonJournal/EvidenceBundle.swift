import CordonCore
import Crypto
import Foundation

/// `cordon export`: an incident's evidence bundle that verifies with `sha256sum`,
/// `openssl` and `jq` alone (VERIFY.md says how).
///
/// Everything in it hangs off one checkpoint signature. `chain.jsonl` holds the journal's
/// records from the incident's first to that checkpoint, among them a `bundle.exported`
/// record naming the SHA-256 of `CONTENTS.sha256`, which lists the files derived from the
/// journal (timelines, evidence, members, VERIFY.md); the checkpoint and the keys that
/// signed it (`keys.json`, `keys/`) verify on their own, and so do the witnesses'
/// receipts (`witness/`). `MANIFEST.sha256` lists every file but itself.
public enum EvidenceBundle {
    public struct Summary: Sendable {
        public var records: Int
        public var chainFrom: Int64
        public var chainTo: Int64
        public var evidenceFiles: Int
        public var receipts: Int
    }

    /// Files that verify by signature, not through `CONTENTS.sha256`.
    static let signedFiles = ["chain.jsonl", "checkpoint.json", "keys.json", "keys/root.pem", "keys/signer.pem"]

    /// The incident's records and the finding records they refer to (`data.finding_seq`).
    public static func incidentRecords(_ incident: String, journal: SQLiteJournal) async throws -> [JournalRecord] {
        let own = try await journal.records(incident: incident)
        let findingSeqs = Set(own.compactMap { $0.data["finding_seq"]?.numberValue?.intValue.map(Int64.init) })
            .subtracting(own.map(\.seq))
        let findings = try await journal.records(seqs: findingSeqs.sorted())
        return (own + findings).sorted { $0.seq < $1.seq }
    }

    /// Writes the bundle. `witness` is called after the covering checkpoint is signed and
    /// before the receipts are read, to let the witnesses take it.
    @discardableResult
    public static func export(
        incident: String, journal: SQLiteJournal, to out: URL, actor: String = "cordon", witness: (@Sendable () async -> Void)? = nil
    ) async throws -> Summary {
        let records = try await incidentRecords(incident, journal: journal)
        guard let first = records.first else {
            throw SQLiteJournal.Error(message: "no records for incident \(incident) (see `cordon incidents`)")
        }
        guard let signer = journal.key else {
            throw SQLiteJournal.Error(message: "the journal was opened read-only: it cannot sign the bundle's checkpoint")
        }
        // A bundle signs what the journal holds: never a journal that does not verify
        // (records or evidence altered, more unsigned records than a crash leaves). What
        // this opening wrote is signed first; a checkpoint refuses more records others
        // left unsigned than a crash leaves.
        try await journal.checkpoint()
        let report = try JournalVerifier(directory: journal.directory).verify()
        if let problem = report.problems.first {
            throw SQLiteJournal.Error(
                message: "the journal does not verify (\(problem)); Cordon will not sign a bundle over it (see cordon journal verify)")
        }
        let fm = FileManager.default
        if fm.fileExists(atPath: out.path), let contents = try? fm.contentsOfDirectory(atPath: out.path), !contents.isEmpty {
            throw SQLiteJournal.Error(message: "\(out.path) is not empty; export into a new directory")
        }
        try fm.createDirectory(at: out.appendingPathComponent("evidence"), withIntermediateDirectories: true)
        // The keys as they stand: the signer's certificate (a session key) names the root.
        let keys = try await journal.keyEntries()
        let root = keys.first { $0.fingerprint == signer.fingerprint }?.certifiedBy ?? signer.fingerprint
        let derived = try await writeDerived(incident: incident, records: records, journal: journal, root: root, to: out)
        let contents = try manifest(derived, in: out)
        try write(contents, out, "CONTENTS.sha256")
        // The derived files, bound to the chain: the record and the checkpoint after it.
        try await journal.append(
            NewRecord(
                kind: .bundleExported, actor: actor,
                data: ["incident": .string(incident), "contents_sha256": .string(SHA256.hash(data: Array(contents.utf8)).hex), "files": .number(JSONNumber(derived.count))]))
        guard let covering = try await journal.checkpoint(), covering.keyFingerprint == signer.fingerprint else {
            throw SQLiteJournal.Error(message: "the journal could not sign the bundle's checkpoint")
        }
        await witness?()
        var chainBytes = Data()
        for (_, bytes) in try await journal.canonicalRecords(from: first.seq, to: covering.seq) {
            chainBytes.append(bytes)
            chainBytes.append(0x0A)
        }
        try chainBytes.write(to: out.appendingPathComponent("chain.jsonl"))
        try write(CanonicalJSON.string(covering.json) + "\n", out, "checkpoint.json")
        try writeKeys(signer: signer, entries: keys, to: out)
        let receipts = try await writeReceipts(journal: journal, seq: covering.seq, to: out)
        try write(manifest(try allFiles(in: out).filter { $0 != "MANIFEST.sha256" }, in: out), out, "MANIFEST.sha256")
        return Summary(
            records: records.count, chainFrom: first.seq, chainTo: covering.seq, evidenceFiles: derived.filter { $0.hasPrefix("evidence/") }.count,
            receipts: receipts)
    }

    /// members.json, the evidence the incident's records cite, the timelines and VERIFY.md;
    /// answers their paths.
    static func writeDerived(incident: String, records: [JournalRecord], journal: SQLiteJournal, root: String, to out: URL) async throws -> [String] {
        var files: [String] = []
        let members: JSONValue = ["incident": .string(incident), "seqs": .array(records.map { .number(JSONNumber(Int($0.seq))) })]
        try write(CanonicalJSON.string(members) + "\n", out, "members.json")
        files.append("members.json")
        var lines: [String] = []
        var copied: Set<String> = []
        for (seq, hash) in records.flatMap({ record in record.evidenceHashes.map { (record.seq, $0) } }) where copied.insert(hash).inserted {
            let bytes = try journal.evidence.get(hash, citedAt: seq)
            try Data(bytes).write(to: out.appendingPathComponent("evidence/\(hash)"))
            lines.append("\(hash)  evidence/\(hash)")
            files.append("evidence/\(hash)")
        }
        try write(lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n"), out, "evidence.sha256")
        files.append("evidence.sha256")
        let timeline = Timeline(incident: incident, records: records)
        for format in Timeline.Format.allCases {
            try write(timeline.render(format), out, "timeline.\(format.rawValue)")
            files.append("timeline.\(format.rawValue)")
        }
        try write(verifyGuide(incident: incident, rootFingerprint: root, records: records.count), out, "VERIFY.md")
        files.append("VERIFY.md")
        return files
    }

    /// keys.json, keys/signer.pem (the key that signed the checkpoint) and keys/root.pem
    /// (the journal's key: the signer itself, or the KMS key that certified it).
    static func writeKeys(signer: SigningKey, entries: [SQLiteJournal.KeyEntry], to out: URL) throws {
        try FileManager.default.createDirectory(at: out.appendingPathComponent("keys"), withIntermediateDirectories: true)
        let session = entries.first { $0.fingerprint == signer.fingerprint && $0.role == .session }
        var description: JSONObject = ["signer": ["fingerprint": .string(signer.fingerprint), "algorithm": .string(signer.algorithm.rawValue)]]
        let root: JournalPublicKey
        if let session, let by = session.certifiedBy, let rootEntry = entries.first(where: { $0.fingerprint == by }), let certificate = session.certificate {
            root = rootEntry.publicKey
            description["session"] = [
                "from_seq": .number(JSONNumber(Int(session.fromSeq))), "certificate": .string(certificate),
                "statement": .string(String(decoding: SQLiteJournal.sessionStatement(session: signer.fingerprint, root: by, fromSeq: session.fromSeq), as: UTF8.self)),
            ]
        } else {
            guard let own = signer.publicKey else { throw SQLiteJournal.Error(message: "the signing key has no usable public key") }
            root = own
        }
        description["root"] = ["fingerprint": .string(root.fingerprint), "algorithm": .string(root.algorithm.rawValue)]
        try write(CanonicalJSON.string(.object(description)) + "\n", out, "keys.json")
        try write(signer.publicKeyPEM, out, "keys/signer.pem")
        try write(root.pem, out, "keys/root.pem")
    }

    /// The witnesses' receipts for the checkpoint at `seq`: for each, `witness/N.json`
    /// (witness, seq, hash, time, proof), `witness/N.head` (the head's line, exactly the
    /// bytes a time-stamp token covers) and, for a time-stamp, `witness/N.tsr`.
    static func writeReceipts(journal: SQLiteJournal, seq: Int64, to out: URL) async throws -> Int {
        let receipts = try await journal.receipts(from: seq).filter { $0.receipt.seq == seq }
        guard !receipts.isEmpty else { return 0 }
        try FileManager.default.createDirectory(at: out.appendingPathComponent("witness"), withIntermediateDirectories: true)
        for (index, (receipt, head)) in receipts.enumerated() {
            let n = index + 1
            var json: JSONObject = [
                "witness": .string(receipt.witness), "seq": .number(JSONNumber(Int(receipt.seq))), "hash": .string(receipt.hash), "time": .string(receipt.time),
            ]
            if receipt.witness.hasPrefix("tsa:"), let token = Data(base64Encoded: receipt.proof) {
                try token.write(to: out.appendingPathComponent("witness/\(n).tsr"))
            } else if !receipt.proof.isEmpty {
                json["proof"] = .string(receipt.proof)
            }
            try write(CanonicalJSON.string(.object(json)) + "\n", out, "witness/\(n).json")
            try Data(head.utf8).write(to: out.appendingPathComponent("witness/\(n).head"))
        }
        return receipts.count
    }

    /// `sha256sum` lines for `files`, sorted by path.
    static func manifest(_ files: [String], in out: URL) throws -> String {
        try files.sorted().map { path in
            let bytes = try Data(contentsOf: out.appendingPathComponent(path))
            return "\(SHA256.hash(data: Array(bytes)).hex)  \(path)\n"
        }.joined()
    }

    static func allFiles(in out: URL) throws -> [String] {
        guard let walker = FileManager.default.enumerator(at: out, includingPropertiesForKeys: [.isRegularFileKey]) else { return [] }
        let base = out.standardizedFileURL.path + "/"
        var files: [String] = []
        for case let url as URL in walker where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
            files.append(String(url.standardizedFileURL.path.dropFirst(base.count)))
        }
        return files
    }

    static func write(_ text: String, _ out: URL, _ path: String) throws {
        try text.write(to: out.appendingPathComponent(path), atomically: true, encoding: .utf8)
    }
}
