import CordonCore
import CordonJournal
import CordonTestSupport
import Foundation
import GRDB
import Testing

/// Where the journal's signing key comes from, what happens when it is missing, pinning
/// it at verification, and rotating it: through the real binary.
@Suite struct SigningKeyCLITests {
    static let finding = "Fixtures/playbooks/guardduty-ec2-quarantine/fires-backdoor-cc-prod-instance.json"
    static let other = "Fixtures/playbooks/guardduty-ec2-quarantine/near-miss-backdoor-severity-5.json"

    let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-keys-\(UUID().uuidString)")
    var data: String { root.appendingPathComponent("data").path }

    /// A new Ed25519 key file made by openssl, mode 0600 unless `mode` says otherwise.
    func keyFile(_ name: String, mode: Int = 0o600) throws -> String {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let path = root.appendingPathComponent(name).path
        let made = try Shell.run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", path])
        #expect(made.status == 0, "\(made.stderr)")
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    func process(_ file: String = finding, _ extra: [String] = [], environment: [String: String] = [:]) async throws -> CLI.Result {
        try await CLI.run(["process", "--dry-run", "--data-dir", data] + extra + [file], environment: environment)
    }

    func fingerprint(_ key: String) async throws -> String {
        let shown = try await CLI.run(["journal", "key", "--data-dir", data, "--signing-key", key])
        #expect(shown.status == 0, "\(shown.stderr)")
        let line = try #require(shown.stdout.split(separator: "\n").first)
        #expect(line.hasPrefix("fingerprint: "))
        return String(line.dropFirst("fingerprint: ".count))
    }

    func verify(_ extra: [String] = []) async throws -> CLI.Result {
        try await CLI.run(["journal", "verify", "--data-dir", data] + extra)
    }

    @Test func aGeneratedKeyIsAnnouncedAndAMissingOneIsNeverReplaced() async throws {
        let first = try await process()
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("generated a new journal signing key"))
        #expect(first.stderr.contains("protects nothing against someone who controls this host"))
        let keyFile = data + "/keys/journal-ed25519.pem"
        #expect(try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int == 0o600)
        // The second command uses it, silently.
        let second = try await process(Self.other)
        #expect(second.status == 0)
        #expect(!second.stderr.contains("generated"))
        // Deleted: an error, and no key is made.
        try FileManager.default.removeItem(atPath: keyFile)
        let third = try await process(Self.other)
        #expect(third.status == 2, "\(third.stdout)\(third.stderr)")
        #expect(third.stderr.contains("has signed checkpoints, but its private key"), "\(third.stderr)")
        #expect(third.stderr.contains("rotate-key"))
        #expect(!FileManager.default.fileExists(atPath: keyFile))
        // Reading and verifying need no private key.
        #expect(try await CLI.run(["incidents", "--data-dir", data]).status == 0)
        #expect(try await verify().status == 0)
    }

    @Test func aKeyFileOthersCanReadIsRefused() async throws {
        let key = try keyFile("open.pem", mode: 0o644)
        let result = try await process(extra: ["--signing-key", key])
        #expect(result.status == 2)
        #expect(result.stderr.contains("is readable by others (mode 644)"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: data + "/journal.sqlite"))
    }

    func process(extra: [String]) async throws -> CLI.Result { try await process(Self.finding, extra) }

    @Test func aPinnedKeyIsCheckedAndAnotherKeyIsRefused() async throws {
        let key = try keyFile("signing.pem")
        let stranger = try keyFile("stranger.pem")
        let first = try await process(extra: ["--signing-key", key])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(!first.stderr.contains("generated"))
        #expect(!FileManager.default.fileExists(atPath: data + "/keys/journal-ed25519.pem"))
        // CORDON_SIGNING_KEY does the same.
        #expect(try await process(Self.other, environment: ["CORDON_SIGNING_KEY": key]).status == 0)
        let expected = try await fingerprint(key)
        let pinned = try await verify(["--expect-key", expected])
        #expect(pinned.status == 0, "\(pinned.stdout)")
        #expect(pinned.stdout.contains("verified up to seq "))
        #expect(pinned.stdout.contains("by key \(expected); 0 record(s) after that are unsigned"))
        #expect(!pinned.stdout.contains("key not pinned"))
        let unpinned = try await verify()
        #expect(unpinned.stdout.contains("key not pinned"))
        // Another key, expected: every checkpoint fails.
        let wrong = try await verify(["--expect-key", try await fingerprint(stranger)])
        #expect(wrong.status == 1)
        #expect(wrong.stdout.contains("which is not an expected key"), "\(wrong.stdout)")
        // Another key, to sign: refused, with the way out.
        let refused = try await process(Self.other, ["--signing-key", stranger])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("this journal is signed by key \(expected)"), "\(refused.stderr)")
        #expect(refused.stderr.contains("cordon journal rotate-key"))
        #expect(try await verify(["--expect-key", "abc"]).status == 2)
    }

    @Test func aRotationBothKeysSignKeepsTheHistoryVerifiable() async throws {
        let old = try keyFile("old.pem")
        let new = try keyFile("new.pem")
        #expect(try await process(extra: ["--signing-key", old]).status == 0)
        let rotated = try await CLI.run(["journal", "rotate-key", "--data-dir", data, "--signing-key", old, "--new-key", new])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(rotated.stdout.hasPrefix("rotated at seq "))
        // The old key signs no more; the new one does.
        let stale = try await process(Self.other, ["--signing-key", old])
        #expect(stale.status == 2)
        #expect(stale.stderr.contains("since seq"), "\(stale.stderr)")
        #expect(try await process(Self.other, ["--signing-key", new]).status == 0)
        let (oldPrint, newPrint) = (try await fingerprint(old), try await fingerprint(new))
        for pin in [oldPrint, newPrint] {
            let verified = try await verify(["--expect-key", pin])
            #expect(verified.status == 0, "\(pin): \(verified.stdout)")
            #expect(verified.stdout.contains("by key \(newPrint)"))
        }
        // Rotating away from the old key again is refused.
        let again = try await CLI.run(["journal", "rotate-key", "--data-dir", data, "--signing-key", old, "--new-key", try keyFile("third.pem")])
        #expect(again.status == 2)
        #expect(again.stderr.contains("not by the old key given"), "\(again.stderr)")
    }

    @Test func aRotationWithoutTheOldKeyNeedsBothKeysExpected() async throws {
        #expect(try await process().status == 0)
        let oldPrint = try await fingerprint(data + "/keys/journal-ed25519.pem")
        try FileManager.default.removeItem(atPath: data + "/keys/journal-ed25519.pem")
        let new = try keyFile("new.pem")
        let rotated = try await CLI.run(["journal", "rotate-key", "--data-dir", data, "--new-key", new, "--without-old-key"])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(try await process(Self.other, ["--signing-key", new]).status == 0)
        let newPrint = try await fingerprint(new)
        let onlyOld = try await verify(["--expect-key", oldPrint])
        #expect(onlyOld.status == 1)
        #expect(onlyOld.stdout.contains("checkpoint signed by key \(newPrint), which is not an expected key"), "\(onlyOld.stdout)")
        let both = try await verify(["--expect-key", oldPrint, "--expect-key", newPrint])
        #expect(both.status == 0, "\(both.stdout)")
        #expect(both.stdout.contains("without the old key's signature"))
    }
}
