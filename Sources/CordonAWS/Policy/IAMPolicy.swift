import CordonCore

/// The least-privilege IAM policy for a set of playbooks (`cordon iam-policy`): exactly
/// the IAM actions that the `aws.*` actions of their steps call, from the catalogue
/// (`BuiltinActions.aws`, each action's `iamActions`, which includes what its rollback
/// calls), one statement per service with its actions sorted, and — when Cordon assumes
/// a role per account — the `sts:AssumeRole` statement for that role.
public enum IAMPolicy {
    /// What a policy is made of, before it is written as a document.
    public struct Requirement: Sendable, Equatable {
        /// IAM action → the playbook steps (`playbook/step (action)`) that need it.
        public var actions: [String: [String]]
        /// The role ARN pattern Cordon assumes (`{account}` replaced by `*`), if any.
        public var assumeRoleResource: String?
    }

    /// The IAM actions each `aws.*` step needs.
    public static func requirement(for playbooks: [Playbook], catalogue: [ActionSpec] = BuiltinActions.aws, roleArnTemplate: String? = nil) -> Requirement {
        let specs = Dictionary(catalogue.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var actions: [String: [String]] = [:]
        for playbook in playbooks.sorted(by: { $0.name < $1.name }) {
            for step in playbook.steps {
                guard let spec = specs[step.action] else { continue }
                for action in spec.iamActions {
                    actions[action, default: []].append("\(playbook.name)/\(step.id) (\(step.action))")
                }
            }
        }
        return Requirement(actions: actions, assumeRoleResource: roleArnTemplate.map(assumeRoleResource))
    }

    /// `arn:aws:iam::{account}:role/R` → `arn:aws:iam::*:role/R`.
    public static func assumeRoleResource(_ template: String) -> String {
        template.replacingOccurrences(of: "{account}", with: "*")
    }

    /// The policy document (IAM policy grammar, version 2012-10-17).
    public static func document(for playbooks: [Playbook], catalogue: [ActionSpec] = BuiltinActions.aws, roleArnTemplate: String? = nil) -> JSONValue {
        document(requirement(for: playbooks, catalogue: catalogue, roleArnTemplate: roleArnTemplate))
    }

    public static func document(_ requirement: Requirement) -> JSONValue {
        var byService: [String: [String]] = [:]
        for action in requirement.actions.keys {
            let service = action.split(separator: ":", maxSplits: 1).first.map(String.init) ?? action
            byService[service, default: []].append(action)
        }
        var statements: [JSONValue] = []
        for service in byService.keys.sorted() {
            let actions = byService[service]!.sorted()
            statements.append([
                "Sid": .string("Cordon" + sidWord(service)),
                "Effect": "Allow",
                "Action": .array(actions.map(JSONValue.string)),
                "Resource": "*",
            ])
        }
        if let role = requirement.assumeRoleResource {
            statements.append([
                "Sid": "CordonAssumeResponderRole",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole"],
                "Resource": .string(role),
            ])
        }
        return ["Version": "2012-10-17", "Statement": .array(statements)]
    }

    /// `cloudtrail` → `CloudTrail`, `ec2` → `EC2`: a Sid is letters and digits only.
    static func sidWord(_ service: String) -> String {
        switch service {
        case "ec2": "EC2"
        case "iam": "IAM"
        case "s3": "S3"
        case "sns": "SNS"
        case "sts": "STS"
        case "sqs": "SQS"
        case "cloudtrail": "CloudTrail"
        default: String(service.filter { $0.isLetter || $0.isNumber }.prefix(1).uppercased() + service.filter { $0.isLetter || $0.isNumber }.dropFirst())
        }
    }
}
