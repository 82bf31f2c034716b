import ArgumentParser
import CordonAWS
import CordonCloud
import CordonSimulatedCloud
import CordonCore
import Foundation

enum CloudKind: String, ExpressibleByArgument, CaseIterable {
    case aws, simulated
}

/// How Cordon reaches other accounts: a role ARN template assumed per target account.
struct AssumeRoleOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Role to assume in the account a step acts in, with {account} for the account id, e.g. arn:aws:iam::{account}:role/CordonResponder (env CORDON_ASSUME_ROLE_ARN). Without it every account is reached with the default credentials.",
            valueName: "TEMPLATE"))
    var assumeRoleArn: String?

    @Option(help: ArgumentHelp("External id for the assumed role (env CORDON_EXTERNAL_ID).", valueName: "ID"))
    var externalId: String?

    @Option(help: ArgumentHelp("Session name of the assumed role (env CORDON_ROLE_SESSION_NAME; default cordon).", valueName: "NAME"))
    var roleSessionName: String?

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// The template from the option, else the environment; nil when neither is set.
    var roleArnTemplate: String? { nonEmpty(assumeRoleArn) ?? nonEmpty(environment["CORDON_ASSUME_ROLE_ARN"]) }
    var resolvedExternalId: String? { nonEmpty(externalId) ?? nonEmpty(environment["CORDON_EXTERNAL_ID"]) }
    var resolvedSessionName: String { nonEmpty(roleSessionName) ?? nonEmpty(environment["CORDON_ROLE_SESSION_NAME"]) ?? "cordon" }

    private func nonEmpty(_ s: String?) -> String? {
        guard let s, !s.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
        return s
    }

    func validate() throws {
        if let template = roleArnTemplate {
            let source = nonEmpty(assumeRoleArn) != nil ? "--assume-role-arn" : "CORDON_ASSUME_ROLE_ARN"
            guard template.hasPrefix("arn:"), template.contains(":role/") else {
                throw ValidationError("\(source): \"\(template)\" is not a role ARN template such as arn:aws:iam::{account}:role/CordonResponder")
            }
            guard template.contains("{account}") else {
                throw ValidationError("\(source): \"\(template)\" has no {account}: write the account id as {account}, e.g. arn:aws:iam::{account}:role/CordonResponder")
            }
        }
        let name = resolvedSessionName
        guard (2...64).contains(name.count), name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+=,.@-_".contains($0)) }) else {
            throw ValidationError("role session name \"\(name)\": 2 to 64 characters of letters, digits and +=,.@-_ (an AWS rule)")
        }
    }
}

/// `--cloud aws|simulated` and what each needs (docs/cli.md, "Common options").
struct CloudOptions: ParsableArguments {
    @Option(help: "aws: the real AWS APIs (credentials, region and endpoints as the AWS SDKs read them); simulated: an in-process model seeded from --inventory, no account needed.")
    var cloud: CloudKind = .aws

    @Option(
        help: ArgumentHelp(
            "Inventory that seeds the simulated cloud (default: ./Fixtures/inventory/example.yaml). Its state is then kept in DATA-DIR/simulated-cloud.json, so later commands (approve, rollback) see what earlier ones did.",
            valueName: "FILE"))
    var inventory: String?

    @OptionGroup var role: AssumeRoleOptions

    static let defaultInventory = "./Fixtures/inventory/example.yaml"

    func validate() throws {
        if inventory != nil && cloud != .simulated {
            throw ValidationError("--inventory seeds the simulated cloud: use it with --cloud simulated")
        }
    }
}

/// The cloud a command's actions act on, opened once per command and closed at its end
/// (the simulated cloud's state saved). The AWS cloud sends through the process's shared
/// HTTP client, which `Cordon.runMain` shuts down when the command returns.
final class CloudSession: Sendable {
    let kind: CloudKind?
    let actions: [String: any Action]
    private let aws: AWSCloud?
    let simulated: SimulatedCloud?
    let statePath: String?

    private init(kind: CloudKind?, actions: [String: any Action], aws: AWSCloud?, simulated: SimulatedCloud?, statePath: String?) {
        self.kind = kind
        self.actions = actions
        self.aws = aws
        self.simulated = simulated
        self.statePath = statePath
    }

    /// No cloud: a dry run calls nothing.
    static let none = CloudSession(kind: nil, actions: [:], aws: nil, simulated: nil, statePath: nil)

    /// The file where the simulated cloud of a data directory is kept.
    static func statePath(_ data: DataOptions) -> String {
        URL(fileURLWithPath: data.dataDir).appendingPathComponent("simulated-cloud.json").path
    }

    /// Opens the cloud; bad options or files print a clear message and exit 2.
    /// - Parameter continuing: the command continues earlier work (approve, rollback): a
    ///   simulated cloud with no saved state is worth a warning.
    static func open(_ options: CloudOptions, _ data: DataOptions, dryRun: Bool = false, continuing: Bool = false) throws -> CloudSession {
        if dryRun { return .none }
        let env = ProcessInfo.processInfo.environment
        let region = env["AWS_REGION"].flatMap { $0.isEmpty ? nil : $0 } ?? env["AWS_DEFAULT_REGION"].flatMap { $0.isEmpty ? nil : $0 }
        switch options.cloud {
        case .aws:
            let cloud = AWSCloud(
                options: AWSCloudOptions(
                    environment: env, roleArnTemplate: options.role.roleArnTemplate, externalId: options.role.resolvedExternalId,
                    roleSessionName: options.role.resolvedSessionName),
                http: .shared())
            return CloudSession(kind: .aws, actions: AWSActions.all(cloud: cloud, defaultRegion: region), aws: cloud, simulated: nil, statePath: nil)
        case .simulated:
            let path = statePath(data)
            if continuing && !FileManager.default.fileExists(atPath: path) {
                printError("cordon: warning: no saved simulated cloud at \(path): starting from the inventory, so changes made by earlier commands are not there")
            }
            let cloud = try openSimulated(options, data)
            return CloudSession(
                kind: .simulated, actions: AWSActions.all(cloud: cloud, defaultRegion: region ?? "us-east-1"), aws: nil, simulated: cloud, statePath: path)
        }
    }

    /// The saved simulated cloud of the data directory, or a new one from the inventory.
    static func openSimulated(_ options: CloudOptions, _ data: DataOptions) throws -> SimulatedCloud {
        let path = statePath(data)
        let inventoryPath = options.inventory ?? CloudOptions.defaultInventory
        if FileManager.default.fileExists(atPath: path) {
            let saved: SimulatedCloudState
            do {
                saved = try SimulatedCloudState.read(path: path)
            } catch {
                throw CordonError(.invalidInput, "\(error)")
            }
            // An inventory named explicitly must be the one that seeded the saved state.
            if let explicit = options.inventory {
                let digest = (try? BoundedFile.read(explicit, limit: YAMLParser().maxBytes).get()).map(SimulatedCloudState.fingerprint)
                if digest == nil {
                    throw CordonError(.usage, "--inventory: cannot read \(explicit)")
                }
                if let seeded = saved.notes["inventory_sha256"], seeded != digest {
                    throw CordonError(
                        .conflict,
                        "the simulated cloud in \(path) was seeded from \(saved.notes["inventory"] ?? "another inventory") and has changed since; it is kept across commands so that approve and rollback see earlier changes. To start again from \(explicit), delete \(path) or use another --data-dir."
                    )
                }
            }
            let cloud = SimulatedCloud(restoring: saved)
            try persist(cloud, path, notes: saved.notes)
            return cloud
        }
        let bytes: [UInt8]
        switch BoundedFile.read(inventoryPath, limit: YAMLParser().maxBytes, what: "an inventory file") {
        case .success(let read): bytes = read
        case .failure(let error):
            if options.inventory == nil && !FileManager.default.fileExists(atPath: inventoryPath) {
                throw CordonError(
                    .notFound,
                    "--cloud simulated needs an inventory of the simulated accounts: no \(inventoryPath) here (run from the repository root, or give --inventory FILE; the format is in Fixtures/inventory/README.md)"
                )
            }
            throw CordonError(.invalidInput, "--inventory: cannot read \(inventoryPath): \(error.message)")
        }
        let inventory: Inventory
        do {
            inventory = try Inventory.parse(Array(bytes), file: inventoryPath)
        } catch {
            for d in error.diagnostics { printError(d.description) }
            throw CordonError(.invalidInput, "the inventory \(inventoryPath) is invalid")
        }
        let cloud = SimulatedCloud(inventory: inventory)
        do {
            try FileManager.default.createDirectory(atPath: data.dataDir, withIntermediateDirectories: true)
        } catch {
            throw CordonError(.invalidInput, "cannot create the data directory \(data.dataDir): \(error)")
        }
        try persist(cloud, path, notes: ["inventory": inventoryPath, "inventory_sha256": SimulatedCloudState.fingerprint(Array(bytes))])
        return cloud
    }

    private static func persist(_ cloud: SimulatedCloud, _ path: String, notes: [String: String]) throws {
        do {
            try cloud.persist(to: path, notes: notes)
        } catch {
            throw CordonError(.invalidInput, "cannot save the simulated cloud to \(path): \(error)")
        }
    }

    /// Closes the AWS cloud (which leaves the shared HTTP client open); reports a
    /// simulated state that could not be saved.
    func close() async {
        if let aws {
            do { try await aws.shutdown() } catch { printError("cordon: closing the AWS HTTP client: \(error)") }
        }
        if let simulated, let failure = simulated.persistenceFailure { printError("cordon: \(failure)") }
    }

    /// Runs `body` with the session open and closes it afterwards, whatever happens.
    static func with<T>(
        _ options: CloudOptions, _ data: DataOptions, dryRun: Bool = false, continuing: Bool = false, _ body: (CloudSession) async throws -> T
    ) async throws -> T {
        let session = try open(options, data, dryRun: dryRun, continuing: continuing)
        do {
            let value = try await body(session)
            await session.close()
            return value
        } catch {
            await session.close()
            throw error
        }
    }
}
