import CordonCore
import Foundation

/// `cordon export`: an incident's evidence bundle that verifies with `sha256sum`,
/// `openssl` and `jq` alone (VERIFY.md says how).
public enum EvidenceBundle {
    public struct Summary: Sendable {
        public var records: Int
        public var chainFrom: Int64
        public var chainTo: Int64
        public var evidenceFiles: Int
    }

    /// The incident's records and the finding records they refer to (`data.finding_seq`).
    public static func incidentRecords(_ incident: String, journal: SQLiteJournal) async throws -> [JournalRecord] {
        let own = try await journal.records(incident: incident)
        let findingSeqs = Set(own.compactMap { $0.data["finding_seq"]?.numberValue?.intValue.map(Int64.init) })
            .subtracting(own.map(\.seq))
        let findings = try await journal.records(seqs: findingSeqs.sorted())
        return (own + findings).sorted { $0.seq < $1.seq }
    }

    @discardableResult
    public static func export(incident: String, journal: SQLiteJournal, to out: URL) async throws -> Summary {
        let records = try await incidentRecords(incident, journal: journal)
        guard let first = records.first, let last = records.last else {
            throw SQLiteJournal.Error(message: "no records for incident \(incident) (see `cordon incidents`)")
        }
        // Sign the head so that every record of the incident is covered.
        try await journal.checkpoint()
        let checkpoints = try await journal.checkpoints(from: first.seq)
        guard let covering = checkpoints.first(where: { $0.seq >= last.seq }) else {
            throw SQLiteJournal.Error(message: "no checkpoint covers seq \(last.seq)")
        }
        let fm = FileManager.default
        if fm.fileExists(atPath: out.path), let contents = try? fm.contentsOfDirectory(atPath: out.path), !contents.isEmpty {
            throw SQLiteJournal.Error(message: "\(out.path) is not empty; export into a new directory")
        }
        try fm.createDirectory(at: out.appendingPathComponent("evidence"), withIntermediateDirectories: true)

        // chain.jsonl: every record from the incident's first to the covering checkpoint,
        // as the exact bytes that were hashed (other incidents' records in between keep
        // the chain unbroken; their evidence is not included).
        let chain = try await journal.canonicalRecords(from: first.seq, to: covering.seq)
        var chainBytes = Data()
        for (_, bytes) in chain {
            chainBytes.append(bytes)
            chainBytes.append(0x0A)
        }
        try chainBytes.write(to: out.appendingPathComponent("chain.jsonl"))
        let signed = checkpoints.filter { $0.seq <= covering.seq }
        try (signed.map { CanonicalJSON.string($0.json) }.joined(separator: "\n") + "\n")
            .write(to: out.appendingPathComponent("checkpoints.jsonl"), atomically: true, encoding: .utf8)
        guard let publicKeyPEM = journal.publicKeyPEM, let fingerprint = journal.keyFingerprint else {
            throw SQLiteJournal.Error(message: "the journal was opened read-only: it cannot sign the bundle's checkpoint")
        }
        try publicKeyPEM.write(to: out.appendingPathComponent("public-key.pem"), atomically: true, encoding: .utf8)
        let members: JSONValue = ["incident": .string(incident), "seqs": .array(records.map { .number(JSONNumber(Int($0.seq))) })]
        try (CanonicalJSON.string(members) + "\n").write(to: out.appendingPathComponent("members.json"), atomically: true, encoding: .utf8)

        // Evidence cited by the incident's records.
        var lines: [String] = []
        var copied: Set<String> = []
        for (seq, hash) in records.flatMap({ record in record.evidenceHashes.map { (record.seq, $0) } }) where copied.insert(hash).inserted {
            let bytes = try journal.evidence.get(hash, citedAt: seq)
            try Data(bytes).write(to: out.appendingPathComponent("evidence/\(hash)"))
            lines.append("\(hash)  evidence/\(hash)")
        }
        try (lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")).write(
            to: out.appendingPathComponent("evidence.sha256"), atomically: true, encoding: .utf8)

        let timeline = Timeline(incident: incident, records: records)
        for format in Timeline.Format.allCases {
            try timeline.render(format).write(to: out.appendingPathComponent("timeline.\(format.rawValue)"), atomically: true, encoding: .utf8)
        }
        try verifyGuide(incident: incident, fingerprint: fingerprint, from: first.seq, to: covering.seq, records: records.count)
            .write(to: out.appendingPathComponent("VERIFY.md"), atomically: true, encoding: .utf8)
        return Summary(records: records.count, chainFrom: first.seq, chainTo: covering.seq, evidenceFiles: copied.count)
    }

    /// The script in VERIFY.md: only a POSIX shell, sha256sum, openssl (3.0+), jq and
    /// coreutils. It is the exact text the tests run.
    static let script = #"""
        set -eu
        # 1. Every record's hash is the SHA-256 of its line; every record links to the one before.
        prev=""
        : > hashes.txt
        while IFS= read -r line; do
          seq=$(printf '%s' "$line" | jq -r .seq)
          link=$(printf '%s' "$line" | jq -r .prev)
          if [ -n "$prev" ] && [ "$link" != "$prev" ]; then echo "FAIL: record $seq does not link to the record before it"; exit 1; fi
          prev=$(printf '%s' "$line" | sha256sum | cut -d' ' -f1)
          echo "$seq $prev" >> hashes.txt
        done < chain.jsonl
        # 2. Every checkpoint signs the hash of its record with the journal's Ed25519 key.
        while IFS= read -r cp; do
          seq=$(printf '%s' "$cp" | jq -r .seq)
          hash=$(printf '%s' "$cp" | jq -r .hash)
          grep -qx "$seq $hash" hashes.txt || { echo "FAIL: checkpoint $seq does not match the chain"; exit 1; }
          printf 'cordon-checkpoint:v1:%s:%s' "$seq" "$hash" > checkpoint.msg
          printf '%s' "$cp" | jq -r .signature | base64 -d > checkpoint.sig
          openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin -in checkpoint.msg -sigfile checkpoint.sig > /dev/null \
            || { echo "FAIL: checkpoint $seq has an invalid signature"; exit 1; }
        done < checkpoints.jsonl
        # 3. The last record is covered by the last checkpoint.
        last=$(tail -n 1 hashes.txt | cut -d' ' -f1)
        signed=$(tail -n 1 checkpoints.jsonl | jq -r .seq)
        [ "$last" = "$signed" ] || { echo "FAIL: records after seq $signed are not signed"; exit 1; }
        # 4. Every evidence file matches its hash, and every file the incident's records cite is here.
        [ ! -s evidence.sha256 ] || sha256sum --quiet -c evidence.sha256 || { echo "FAIL: an evidence file was altered"; exit 1; }
        jq -r --slurpfile m members.json 'select(.seq as $s | $m[0].seqs | index($s)) | (.data.evidence // [])[] | .sha256' chain.jsonl \
          | sort -u > cited.txt
        while read -r h; do grep -q "^$h  " evidence.sha256 || { echo "FAIL: evidence $h is missing"; exit 1; }; done < cited.txt
        # 5. The key's fingerprint, to compare with the one the operator published (`cordon journal key`).
        echo "key fingerprint: $(openssl pkey -pubin -in public-key.pem -outform DER | sha256sum | cut -d' ' -f1)"
        echo "OK: $(wc -l < chain.jsonl) records, $(wc -l < checkpoints.jsonl) checkpoint(s), $(wc -l < cited.txt) evidence file(s) verified"
        rm -f hashes.txt checkpoint.msg checkpoint.sig cited.txt
        """#

    static func verifyGuide(incident: String, fingerprint: String, from: Int64, to: Int64, records: Int) -> String {
        """
        # Verifying this evidence bundle

        Incident `\(incident)`: \(records) record(s) of its own, in a chain of journal records
        from seq \(from) to seq \(to), signed by a Cordon journal checkpoint.

        ## What is here

        | file | what |
        |---|---|
        | `chain.jsonl` | the journal records from seq \(from) to \(to), one per line, as the exact bytes that were hashed (RFC 8785 canonical JSON of each record without its `hash`). Records of other incidents in between are kept so the chain is unbroken; their evidence is not included. |
        | `checkpoints.jsonl` | signed checkpoints: an Ed25519 signature over the ASCII text `cordon-checkpoint:v1:SEQ:HASH` |
        | `public-key.pem` | the journal's Ed25519 public key |
        | `members.json` | which records belong to this incident (`seqs`) |
        | `evidence/` and `evidence.sha256` | the evidence the incident's records cite, each file named by its SHA-256 |
        | `timeline.json`, `.csv`, `.md`, `.html` | the incident's timeline |

        Each record's `hash` is the SHA-256 of its line in `chain.jsonl`, and each record's
        `prev` is the hash of the record before it, so a changed, inserted, deleted or
        reordered record breaks the chain; the checkpoint's signature covers the last hash,
        and with it everything before.

        ## How to check it

        With a POSIX shell, `sha256sum`, `openssl` (3.0 or later), `jq` and coreutils, run these
        commands in this directory. They print `OK: …` and exit 0 when everything holds, and
        `FAIL: …` with a non-zero exit status otherwise.

        ```sh
        \(script)
        ```

        Finally, compare the printed key fingerprint with the one the operator of this Cordon
        journal published (`cordon journal key` prints it): expected `\(fingerprint)`. A bundle
        signed with another key proves nothing about this journal.

        """
    }
}
