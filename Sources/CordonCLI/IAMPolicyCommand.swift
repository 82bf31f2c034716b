import ArgumentParser
import CordonAWS
import CordonCloud
import CordonSimulatedCloud
import CordonCore
import Foundation
import CordonIntegrations

struct IAMPolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iam-policy",
        abstract: "Print the least-privilege IAM policy the playbooks need.",
        discussion: """
            Prints an IAM policy document (version 2012-10-17) that allows exactly the IAM \
            actions the aws.* steps of the playbooks call — rollback included — each on the \
            narrowest resource type it accepts, and denies Cordon's own principal any change \
            to itself: every iam: action on its own user (${aws:username}), on the roles given \
            with --principal-arn and on the responder role; the IAM actions that grant \
            privileges or credentials and that no step needs; and sts:AssumeRole of any other \
            role. With --assume-role-arn (or CORDON_ASSUME_ROLE_ARN) it adds the \
            sts:AssumeRole statement for that role in every account ({account} becomes *): \
            attach the policy to Cordon's own identity, and the same policy without that \
            statement to the role in each target account. Give the role or user Cordon runs \
            as with --principal-arn, so that neither it nor the responder role can change \
            it. With no \
            PLAYBOOK, reads --playbooks. What the policy cannot prevent: docs/operations.md, "IAM permissions".

            --output text prints the document; json prints {"policy", "actions": {ACTION: \
            [PLAYBOOK/STEP (ACTION)]}} saying which step needs each action.
            """)

    @Argument(help: ArgumentHelp("Playbook files or directories (default: --playbooks).", valueName: "PLAYBOOK"))
    var playbooks: [String] = []

    @OptionGroup var config: ConfigOptions
    @OptionGroup var role: AssumeRoleOptions

    @Option(
        name: .customLong("principal-arn"),
        help: ArgumentHelp(
            "The ARN of the role (or user) Cordon itself runs as, denied any change to itself by the policy. Repeatable.",
            valueName: "ARN"))
    var principalArns: [String] = []

    @Option(help: ArgumentHelp("The journal's signing key (FILE or kms:KEY_ARN): a KMS key adds kms:Sign and kms:GetPublicKey.", valueName: "SPEC"))
    var signingKey: String?

    @Option(name: .customLong("anchor"), help: ArgumentHelp("A witness (--anchor of the runner): s3://BUCKET/PREFIX adds what writing and reading it needs; repeatable.", valueName: "SPEC"))
    var anchors: [String] = []

    @Option(help: "text: the policy document; json: the policy and which step needs each action.")
    var output: OutputFormat = .text

    func validate() throws {
        for arn in principalArns {
            if let problem = IAMPolicy.principalProblem(arn) { throw ValidationError("--principal-arn: \(problem)") }
        }
    }

    func run() throws {
        let targets = playbooks.isEmpty ? [config.playbooks] : playbooks
        for path in targets where !FileManager.default.fileExists(atPath: path) {
            throw CordonError(.notFound, "\(path): no such file or directory")
        }
        let loaded = ConfigLoader(actions: .builtIn).load(targets, integrationPaths: [config.integrations])
        if !loaded.isValid {
            for d in loaded.errors { printError(d.description) }
            throw CordonError(.invalidInput, "the playbooks are invalid (see `cordon validate`)")
        }
        if loaded.playbooks.isEmpty {
            throw CordonError(.notFound, "no playbook in \(targets.joined(separator: ", "))")
        }
        var requirement = IAMPolicy.requirement(for: loaded.playbooks, roleArnTemplate: role.roleArnTemplate, principalArns: principalArns)
        requirement.custody = try custodyStatements(partition: requirement.partition)
        if requirement.actions.isEmpty && requirement.custody.isEmpty {
            throw CordonError(.checkFailed, "\(loaded.playbooks.map(\.name).joined(separator: ", ")) call no AWS API (no aws.* step): they need no IAM policy")
        }
        let document = IAMPolicy.document(requirement)
        if principalArns.isEmpty {
            printError(
                "cordon: note: give --principal-arn with the ARN of the role or user Cordon runs as. Without it the policy protects Cordon's principal only if it is an IAM user, through ${aws:username}, and only from itself\(role.roleArnTemplate == nil ? "" : ", not from the responder role it assumes")."
            )
        }
        let size = JSONWriter.string(document).filter { !$0.isWhitespace }.count
        if size > IAMPolicy.managedPolicyLimit {
            printError("cordon: warning: the policy is \(size) characters, more than the \(IAMPolicy.managedPolicyLimit) a managed policy may hold: split the playbooks between two policies")
        }
        switch output {
        case .text:
            print(JSONWriter.pretty(document))
        case .json:
            var needs = JSONObject()
            for action in requirement.actions.keys.sorted() { needs[action] = .array(requirement.actions[action]!.map(JSONValue.string)) }
            print(JSONWriter.pretty(["policy": document, "actions": .object(needs)]))
        }
    }

    /// What the journal's signing key and witnesses need, from `--signing-key` (or
    /// `CORDON_SIGNING_KEY`) and `--anchor`.
    func custodyStatements(partition: String) throws -> [JSONValue] {
        let spec = SigningKeySpec.named(by: signingKey)
        var kms: String? = nil
        if let spec, case .kms(let arn) = try SigningKeySpec(spec) { kms = arn }
        let s3 = try anchors.filter { $0.hasPrefix("s3://") }.map { anchor -> (bucket: String, prefix: String) in
            let path = anchor.dropFirst("s3://".count)
            let bucket = String(path.prefix { $0 != "/" })
            guard !bucket.isEmpty else { throw CordonError(.usage, "--anchor \(anchor): expected s3://BUCKET/PREFIX") }
            let prefix = path.dropFirst(bucket.count).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            return (bucket, prefix)
        }
        return IAMPolicy.custodyStatements(signingKeyARN: kms, s3Witnesses: s3, partition: partition)
    }
}
