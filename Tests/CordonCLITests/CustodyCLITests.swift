import CordonAWS
import CordonCloud
import CordonCore
import CordonJournal
import CordonTestSupport
import Foundation
import GRDB
import Testing

/// The journal's custody through the real binary against real peers: a KMS signing key
/// and an S3 Object Lock witness on moto, a time-stamping authority built on `openssl ts`.
@Suite(.serialized) struct CustodyCLITests {
    static let finding = "Fixtures/playbooks/guardduty-ec2-quarantine/fires-backdoor-cc-prod-instance.json"
    static let other = "Fixtures/playbooks/guardduty-ec2-quarantine/fires-tor-client-eu-west-1.json"
    static let scope = CloudScope(region: "us-east-1")

    let data = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-custody-\(UUID().uuidString)").path

    func moto() async throws -> ([String: String], AWSCloud) {
        let env = try await offPool { try Moto.environment() }
        return (env, AWSCloud(options: AWSCloudOptions(environment: env)))
    }

    func process(_ file: String, _ extra: [String], environment: [String: String] = [:]) async throws -> CLI.Result {
        try await CLI.run(["process", "--dry-run", "--data-dir", data] + extra + [file], environment: environment)
    }

    @Test func aKMSKeySignsThroughSessionKeysAndIsPinned() async throws {
        let (env, cloud) = try await moto()
        defer { Task { try? await cloud.shutdown() } }
        let kms = AWSKMS(client: try await cloud.client(.kms, Self.scope))
        let arn = try await kms.createKey(keySpec: "ECC_NIST_P256", keyUsage: "SIGN_VERIFY", description: "cordon journal")
        let spec = "kms:" + arn
        let shown = try await CLI.run(["journal", "key", "--data-dir", data, "--signing-key", spec], environment: env)
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(shown.stdout.contains("algorithm: ecdsa-p256-sha256"))
        let fingerprint = String(try #require(shown.stdout.split(separator: "\n").first).dropFirst("fingerprint: ".count))
        for file in [Self.finding, Self.other] {
            let result = try await process(file, ["--signing-key", spec], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stderr.contains("generated"))
        }
        #expect(!FileManager.default.fileExists(atPath: data + "/keys/journal-ed25519.pem"))
        // Each opening certified its own session key.
        let journal = try SQLiteJournal(directory: DataDirectory(data), readOnly: true)
        let keys = try await journal.keyEntries()
        #expect(keys.filter { $0.role == .session }.count == 2)
        #expect(keys.filter { $0.role == .root }.map(\.fingerprint) == [fingerprint])
        let verified = try await CLI.run(["journal", "verify", "--data-dir", data, "--expect-key", fingerprint])
        #expect(verified.status == 0, "\(verified.stdout)")
        #expect(verified.stdout.contains("by key \(fingerprint) (session key "), "\(verified.stdout)")
        // Its evidence bundle verifies with openssl alone, the session key's certificate included.
        let incident = try #require(try await journal.records(from: 1, limit: 100).first { $0.incident != nil }?.incident)
        let bundle = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-bundle-\(UUID().uuidString)")
        let export = try await CLI.run(["export", incident, "--out", bundle.path, "--data-dir", data, "--signing-key", spec], environment: env)
        #expect(export.status == 0, "\(export.stderr)")
        let checked = try await Self.checkBundle(bundle, environment: ["EXPECTED_KEY": fingerprint])
        #expect(checked.status == 0, "\(checked.stdout)")
        #expect(checked.stdout.contains("signed under key \(fingerprint)"), "\(checked.stdout)")
        // A forged session certificate (another key certifying itself) fails.
        try DataDirectory(data).tamper("UPDATE keys SET certificate = 'AAAA' WHERE role = 'session'")
        let forged = try await CLI.run(["journal", "verify", "--data-dir", data, "--expect-key", fingerprint])
        #expect(forged.status == 1)
        #expect(forged.stdout.contains("whose certificate is missing or invalid"), "\(forged.stdout)")
        // The policy for this key.
        let policy = try await CLI.run(["iam-policy", "Playbooks", "--signing-key", spec, "--anchor", "s3://witness-bucket/journal"])
        #expect(policy.status == 0, "\(policy.stderr)")
        #expect(policy.stdout.contains("\"kms:GetPublicKey\""))
        #expect(policy.stdout.contains("\"kms:Sign\""))
        #expect(policy.stdout.contains("\"Resource\" : \"\(arn)\"") || policy.stdout.contains("\"Resource\": \"\(arn)\""), "\(policy.stdout)")
        #expect(policy.stdout.contains("arn:aws:s3:::witness-bucket/journal/*"))
        #expect(policy.stdout.contains("s3:ListBucketVersions"))
    }

    /// A journal signed by the data directory's key moves to a KMS key: the rotation is
    /// signed by both (the KMS key through kms:Sign), and either fingerprint, expected,
    /// accepts the whole history.
    @Test func aJournalRotatesFromAKeyFileToAKMSKey() async throws {
        let (env, cloud) = try await moto()
        defer { Task { try? await cloud.shutdown() } }
        let arn = try await AWSKMS(client: try await cloud.client(.kms, Self.scope)).createKey(
            keySpec: "ECC_NIST_P256", keyUsage: "SIGN_VERIFY", description: "cordon journal")
        #expect(try await process(Self.finding, []).status == 0)
        let old = try await CLI.run(["journal", "key", "--data-dir", data])
        let oldPrint = String(try #require(old.stdout.split(separator: "\n").first).dropFirst("fingerprint: ".count))
        let rotated = try await CLI.run(["journal", "rotate-key", "--data-dir", data, "--new-key", "kms:" + arn], environment: env)
        #expect(rotated.status == 0, "\(rotated.stderr)")
        let firstLine = try #require(rotated.stdout.split(separator: "\n").first)
        let newPrint = String(try #require(firstLine.components(separatedBy: " -> ").last))
        #expect(try await process(Self.other, ["--signing-key", "kms:" + arn], environment: env).status == 0)
        // The old key file signs no more.
        #expect(try await process(Self.other, []).status == 2)
        for pin in [oldPrint, newPrint] {
            let verified = try await CLI.run(["journal", "verify", "--data-dir", data, "--expect-key", pin])
            #expect(verified.status == 0, "\(pin): \(verified.stdout)")
            #expect(verified.stdout.contains("by key \(newPrint) (session key "), "\(verified.stdout)")
        }
    }

    @Test func anS3ObjectLockWitnessCatchesTruncation() async throws {
        let (env, cloud) = try await moto()
        defer { Task { try? await cloud.shutdown() } }
        let bucket = "custody-\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await cloud.client(.s3, Self.scope).rest(
            "PUT", path: "/\(bucket)", headers: [("x-amz-bucket-object-lock-enabled", "true")], operation: "CreateBucket")
        let anchor = "s3://\(bucket)/journal"
        for file in [Self.finding, Self.other] {
            let result = try await process(file, ["--anchor", anchor], environment: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stderr.contains("did not take"), "\(result.stderr)")
        }
        let verified = try await CLI.run(["journal", "verify", "--data-dir", data, "--anchor", anchor], environment: env)
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stdout.contains("witness \(anchor) saw seq "))
        let journal = try SQLiteJournal(directory: DataDirectory(data), readOnly: true)
        let checkpoints = try await journal.checkpoints(from: 0)
        let cut = try #require(checkpoints.dropLast().last).seq
        try DataDirectory(data).tamper("DELETE FROM records WHERE seq > \(cut); DELETE FROM checkpoints WHERE seq > \(cut); DELETE FROM incidents WHERE first_seq > \(cut)")
        let caught = try await CLI.run(["journal", "verify", "--data-dir", data, "--anchor", anchor], environment: env)
        #expect(caught.status == 1)
        #expect(caught.stdout.contains("seq \(cut + 1): truncated: the journal ends at seq \(cut)"), "\(caught.stdout)")
        // A bucket without Object Lock is refused before anything runs.
        let plain = "plain-\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await cloud.client(.s3, Self.scope).rest("PUT", path: "/\(plain)", operation: "CreateBucket")
        let refused = try await process(Self.other, ["--anchor", "s3://\(plain)/j"], environment: env)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("has no Object Lock"), "\(refused.stderr)")
    }

    @Test func aTimeStampingAuthorityTimesEveryCheckpoint() async throws {
        let pki = try await offPool { try TimestampPKI.make() }
        let tsa = try await offPool { try LocalTSA(pki: pki) }
        defer { tsa.stop() }
        for file in [Self.finding, Self.other] {
            let result = try await process(file, ["--anchor", tsa.spec, "--tsa-ca", pki.caCertificate])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stderr.contains("did not take"), "\(result.stderr)")
        }
        let journal = try SQLiteJournal(directory: DataDirectory(data), readOnly: true)
        let receipts = try await journal.receipts(witness: tsa.spec)
        #expect(receipts.count >= 2)
        let verified = try await CLI.run(["journal", "verify", "--data-dir", data, "--anchor", tsa.spec, "--tsa-ca", pki.caCertificate])
        #expect(verified.status == 0, "\(verified.stdout)")
        #expect(verified.stdout.contains("witness \(tsa.spec) saw seq \(receipts.last?.receipt.seq ?? -1)"))
        // openssl alone accepts what was kept.
        let (receipt, line) = try #require(receipts.last)
        let proof = try #require(Data(base64Encoded: receipt.proof))
        let openssl = try await offPool { try pki.opensslVerify(response: Array(proof), data: Array(line.utf8), caFile: pki.caCertificate, untrusted: false) }
        #expect(openssl.ok, "\(openssl.output)")
        // The bundle carries the token for its checkpoint, which openssl ts -verify accepts.
        let incident = try #require(try await journal.records(from: 1, limit: 100).first { $0.incident != nil }?.incident)
        let bundle = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-bundle-\(UUID().uuidString)")
        let export = try await CLI.run(["export", incident, "--out", bundle.path, "--data-dir", data, "--anchor", tsa.spec, "--tsa-ca", pki.caCertificate])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(export.stdout.contains("1 witness receipt(s)"), "\(export.stdout)")
        #expect(FileManager.default.fileExists(atPath: bundle.appendingPathComponent("witness/1.tsr").path))
        let key = try #require(try await journal.checkpoints(from: 0).last?.keyFingerprint)
        let checked = try await Self.checkBundle(bundle, environment: ["EXPECTED_KEY": key, "TSA_CA": pki.caCertificate])
        #expect(checked.status == 0, "\(checked.stdout)")
        #expect(checked.stdout.contains("witness \(tsa.spec): Time stamp: "), "\(checked.stdout)")
        // A token cut short no longer proves its head.
        try DataDirectory(data).tamper("UPDATE witness_receipts SET proof = '\(Data(proof.dropLast(3)).base64EncodedString())' WHERE seq = \(receipt.seq)")
        let broken = try await CLI.run(["journal", "verify", "--data-dir", data, "--anchor", tsa.spec, "--tsa-ca", pki.caCertificate])
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("receipt for seq \(receipt.seq) does not prove the head it names"), "\(broken.stdout)")
    }
}

extension CustodyCLITests {
    /// Runs the ```sh block of a bundle's VERIFY.md in the bundle, with `environment`.
    static func checkBundle(_ bundle: URL, environment: [String: String]) async throws -> Shell.Result {
        let guide = try String(contentsOf: bundle.appendingPathComponent("VERIFY.md"), encoding: .utf8)
        let start = try #require(guide.range(of: "```sh\n"))
        let end = try #require(guide.range(of: "\n```", range: start.upperBound..<guide.endIndex))
        let exports = environment.map { "export \($0.key)='\($0.value)'\n" }.joined()
        let script = exports + guide[start.upperBound..<end.lowerBound]
        return try await offPool { try Shell.run("sh", ["-c", script], directory: bundle) }
    }
}

extension DataDirectory {
    /// Runs SQL on the journal as someone with access to the host would.
    func tamper(_ sql: String) throws {
        let db = try DatabaseQueue(path: journal.path, configuration: .waiting)
        try db.write { try $0.execute(sql: sql) }
    }
}
