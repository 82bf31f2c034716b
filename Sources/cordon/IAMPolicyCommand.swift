import ArgumentParser
import CordonAWS
import CordonCore
import Foundation

struct IAMPolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iam-policy",
        abstract: "Print the least-privilege IAM policy the playbooks need.",
        discussion: """
            Prints an IAM policy document (version 2012-10-17) with exactly the IAM actions \
            that the aws.* steps of the playbooks call — rollback included — one statement per \
            service, actions sorted. With --assume-role-arn (or CORDON_ASSUME_ROLE_ARN) it adds \
            the sts:AssumeRole statement for that role in every account ({account} becomes *): \
            attach the policy to Cordon's own identity, and the same policy without that \
            statement to the role in each target account. With no PLAYBOOK, reads --playbooks.

            --output text prints the document; json prints {"policy", "actions": {ACTION: \
            [PLAYBOOK/STEP (ACTION)]}} saying which step needs each action.
            """)

    @Argument(help: ArgumentHelp("Playbook files or directories (default: --playbooks).", valueName: "PLAYBOOK"))
    var playbooks: [String] = []

    @OptionGroup var config: ConfigOptions
    @OptionGroup var role: AssumeRoleOptions

    @Option(help: "text: the policy document; json: the policy and which step needs each action.")
    var output: OutputFormat = .text

    func run() throws {
        let targets = playbooks.isEmpty ? [config.playbooks] : playbooks
        for path in targets where !FileManager.default.fileExists(atPath: path) {
            printError("cordon: \(path): no such file or directory")
            throw ExitCode(2)
        }
        let loaded = ConfigLoader().load(targets, integrationPaths: [config.integrations])
        if !loaded.isValid {
            for d in loaded.errors { printError(d.description) }
            printError("cordon: the playbooks are invalid (see `cordon validate`)")
            throw ExitCode(2)
        }
        if loaded.playbooks.isEmpty {
            printError("cordon: no playbook in \(targets.joined(separator: ", "))")
            throw ExitCode(2)
        }
        let requirement = IAMPolicy.requirement(for: loaded.playbooks, roleArnTemplate: role.roleArnTemplate)
        if requirement.actions.isEmpty {
            printError("cordon: \(loaded.playbooks.map(\.name).joined(separator: ", ")) call no AWS API (no aws.* step): they need no IAM policy")
            throw ExitCode(1)
        }
        let document = IAMPolicy.document(requirement)
        switch output {
        case .text:
            print(JSONWriter.pretty(document))
        case .json:
            var needs = JSONObject()
            for action in requirement.actions.keys.sorted() { needs[action] = .array(requirement.actions[action]!.map(JSONValue.string)) }
            print(JSONWriter.pretty(["policy": document, "actions": .object(needs)]))
        }
    }
}
