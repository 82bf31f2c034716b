import ArgumentParser
import CordonAWS
import CordonCore
import CordonJournal
import Foundation
import Logging

struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Where Cordon keeps its journal, evidence and keys.", valueName: "DIR"))
    var dataDir: String = "./.cordon"

    @Option(
        help: ArgumentHelp(
            "The key that signs the journal: FILE (an Ed25519 PKCS#8 PEM key, mode 0600) or kms:KEY_ARN. Default: CORDON_SIGNING_KEY, else the data directory's own key.",
            valueName: "SPEC"))
    var signingKey: String?

    @Option(
        name: .customLong("anchor"),
        help: ArgumentHelp(
            "A witness outside this host (file:PATH, s3://BUCKET/PREFIX or tsa:URL): commands that write send it every checkpoint's head, journal verify compares the journal with it; repeatable.",
            valueName: "SPEC"))
    var anchors: [String] = []

    @Option(
        help: ArgumentHelp(
            "CA certificates (PEM) that a tsa: witness's time-stamp tokens must chain to; without it a token is checked against the certificate it carries only.",
            valueName: "FILE"))
    var tsaCA: String?

    /// The witnesses `--anchor` names.
    func witnesses() async throws -> [any CheckpointWitness] {
        var pem: String? = nil
        if let tsaCA {
            do {
                pem = try String(contentsOfFile: tsaCA, encoding: .utf8)
            } catch {
                throw CordonError(.invalidInput, "--tsa-ca \(tsaCA): cannot read it (\(error.localizedDescription))")
            }
        }
        return try await anchors.asyncMap { try await Witnesses.make($0, tsaCA: pem) }
    }

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

    /// Opens the journal to read it (nothing is signed, no key is needed); exits 2 with a
    /// clear message when it cannot.
    func openReader() throws -> SQLiteJournal {
        guard FileManager.default.fileExists(atPath: directory.journal.path) else {
            throw CordonError(.notFound, "no journal at \(directory.journal.path) (is --data-dir right?)")
        }
        do {
            return try SQLiteJournal(directory: directory, readOnly: true)
        } catch {
            throw CordonError(.invalidInput, "\(error)")
        }
    }

    /// Opens the journal to write it, signed by `--signing-key` (or `CORDON_SIGNING_KEY`,
    /// or the data directory's own key, generated with a warning for a new journal, on
    /// `log` when the command logs, else on standard error).
    /// With `--anchor`, every checkpoint is also sent to the witnesses (`Witnesses`).
    func openJournal(
        create: Bool = false, secrets: SecretStore = SecretStore(), log: Logger? = nil,
        witnessEvents: @escaping @Sendable (WitnessPublisher.Event) -> Void = { _ in }
    ) async throws -> SQLiteJournal {
        if !create, !FileManager.default.fileExists(atPath: directory.journal.path) {
            throw CordonError(.notFound, "no journal at \(directory.journal.path) (is --data-dir right?)")
        }
        let witnesses = try await self.witnesses()
        let signer = try await self.signer() ?? dataDirectoryKey(log: log)
        let journal: SQLiteJournal
        do {
            journal = try await SQLiteJournal.open(directory: directory, secrets: secrets, signer: signer)
        } catch let error as CordonErrorConvertible {
            throw error.cordonError
        }
        if !witnesses.isEmpty {
            Witnesses.register(
                WitnessPublisher(witnesses: witnesses, journal: journal, logger: log ?? Logger(label: "cordon.witness"), observe: witnessEvents))
        }
        return journal
    }

    /// The signing key named by `--signing-key` or `CORDON_SIGNING_KEY`; nil: neither.
    func signer() async throws -> (any JournalSigner)? {
        guard let spec = SigningKeySpec.named(by: signingKey) else { return nil }
        return try await SigningKeySpec(spec).load()
    }

    /// The data directory's own key file, when there is one; nothing is generated.
    func existingDataDirectoryKey() throws -> SigningKey? {
        let file = directory.keys.appendingPathComponent(SigningKey.privateKeyFile)
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        do {
            return try SigningKey(file: file)
        } catch let error as SigningKey.Error {
            throw error.cordonError
        }
    }

    /// The data directory's own key, generated (loudly) for a journal nothing signed yet.
    func dataDirectoryKey(log: Logger? = nil) throws -> SigningKey {
        let (key, generated) = try SQLiteJournal.dataDirectoryKey(directory)
        if generated {
            let warning = """
                generated a new journal signing key, \(key.source) (fingerprint \(key.fingerprint)). A key kept beside the journal \
                protects nothing against someone who controls this host: they can rewrite the journal and sign it again. Keep the key \
                elsewhere (--signing-key FILE on another mount, or --signing-key kms:KEY_ARN), publish its fingerprint, and add a \
                witness (--anchor); see docs/journal.md
                """
            if let log {
                log.warning("\(warning)", metadata: ["key": "\(key.source)", "fingerprint": "\(key.fingerprint)"])
            } else {
                printError("cordon: WARNING: \(warning)")
            }
        }
        return key
    }
}

/// What `--signing-key` names: a key file, or a KMS key by ARN.
enum SigningKeySpec: Equatable {
    case file(String)
    case kms(String)

    /// The spec `--signing-key` gives, else `CORDON_SIGNING_KEY` (when not empty).
    static func named(by option: String?) -> String? {
        option ?? ProcessInfo.processInfo.environment["CORDON_SIGNING_KEY"].flatMap { $0.isEmpty ? nil : $0 }
    }

    init(_ spec: String) throws {
        if spec.hasPrefix("kms:") {
            let arn = String(spec.dropFirst(4))
            guard arn.hasPrefix("arn:"), arn.contains(":key/") else {
                throw CordonError(.usage, "--signing-key \(spec): expected kms:arn:aws:kms:REGION:ACCOUNT:key/KEY_ID")
            }
            self = .kms(arn)
        } else {
            let path = spec.hasPrefix("file:") ? String(spec.dropFirst(5)) : spec
            guard !path.isEmpty else { throw CordonError(.usage, "--signing-key: expected FILE or kms:KEY_ARN") }
            self = .file(path)
        }
    }

    func load() async throws -> any JournalSigner {
        switch self {
        case .file(let path):
            do {
                return try SigningKey(file: URL(fileURLWithPath: path))
            } catch let error as SigningKey.Error {
                throw error.cordonError
            }
        case .kms(let arn):
            do {
                return try await KMSSigner.open("kms:" + arn, cloud: CustodyCloud.shared)
            } catch {
                throw CordonError(.invalidInput, "--signing-key kms:\(arn): \(error)")
            }
        }
    }
}
