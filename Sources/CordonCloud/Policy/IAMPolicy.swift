import CordonCore

/// The least-privilege IAM policy for a set of playbooks (`cordon iam-policy`).
///
/// Its Allow statements grant exactly the IAM actions that the `aws.*` steps of the
/// playbooks call (from the catalogue: `AWSActions.specs`, each action's `iamActions`,
/// which includes what its rollback calls), each on the narrowest resource type the
/// action accepts: IAM role actions on roles, IAM user actions on users, S3 on buckets,
/// CloudTrail on trails, SNS on topics. EC2 stays on `*`, because its Describe calls take
/// no resource and a step may act on any instance or group a finding names.
///
/// Its Deny statements keep Cordon's own principal from raising its privileges, which an
/// Allow alone cannot do because IAM has no condition key that limits the name or the
/// content of an inline policy (`Put*Policy`):
/// - every `iam:` action on Cordon's own user (`${aws:username}`, in a statement of its
///   own: a role has no user name, and a statement with a variable that cannot be
///   resolved may be ignored whole), on the roles given as `--principal-arn`, and on the
///   responder role it assumes;
/// - on every resource, the IAM actions that grant or create privileges and that no step
///   needs (attaching managed policies, group membership, new credentials, PassRole…);
/// - `sts:AssumeRole` of any role but the responder role (none without a template), so a
///   policy put on a role that trusts Cordon cannot be used by Cordon.
public enum IAMPolicy {
    /// What a policy is made of, before it is written as a document.
    public struct Requirement: Sendable, Equatable {
        /// IAM action → the playbook steps (`playbook/step (action)`) that need it.
        public var actions: [String: [String]]
        /// The role ARN pattern Cordon assumes (`{account}` replaced by `*`), if any.
        public var assumeRoleResource: String?
        /// Cordon's own principals besides its user: `--principal-arn`, in order.
        public var principals: [String]
        /// `aws`, `aws-cn` or `aws-us-gov`: from the role template or the principals.
        public var partition: String
        /// What the journal's custody needs (`custodyStatements`): a KMS signing key, S3
        /// witnesses.
        public var custody: [JSONValue] = []

        public init(actions: [String: [String]], assumeRoleResource: String? = nil, principals: [String] = [], partition: String = "aws") {
            self.actions = actions
            self.assumeRoleResource = assumeRoleResource
            self.principals = principals
            self.partition = partition
        }
    }

    /// The most characters (whitespace not counted) a customer managed policy may hold.
    /// An inline policy of a user holds only 2,048, so attach the policy as a managed one.
    public static let managedPolicyLimit = 6_144

    /// IAM actions that give a principal more privileges or new credentials. Those that
    /// no step needs are denied on every resource, so that no other policy attached to
    /// Cordon's principal can grant them either.
    public static let escalationActions: [String] = [
        "iam:AddUserToGroup", "iam:AttachGroupPolicy", "iam:AttachRolePolicy", "iam:AttachUserPolicy",
        "iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:CreatePolicy", "iam:CreatePolicyVersion",
        "iam:CreateRole", "iam:CreateServiceSpecificCredential", "iam:CreateUser",
        "iam:DeleteGroupPolicy", "iam:DeletePolicyVersion", "iam:DeleteRolePermissionsBoundary", "iam:DeleteRolePolicy",
        "iam:DeleteUserPermissionsBoundary", "iam:DeleteUserPolicy", "iam:DetachGroupPolicy", "iam:DetachRolePolicy",
        "iam:DetachUserPolicy", "iam:PassRole", "iam:PutGroupPolicy", "iam:PutRolePermissionsBoundary",
        "iam:PutRolePolicy", "iam:PutUserPermissionsBoundary", "iam:PutUserPolicy", "iam:RemoveUserFromGroup",
        "iam:ResetServiceSpecificCredential", "iam:SetDefaultPolicyVersion", "iam:TagRole", "iam:TagUser",
        "iam:UntagRole", "iam:UntagUser", "iam:UpdateAccessKey", "iam:UpdateAssumeRolePolicy",
        "iam:UpdateLoginProfile", "iam:UploadSSHPublicKey", "iam:UploadSigningCertificate",
    ]

    /// The IAM actions each `aws.*` step needs.
    public static func requirement(
        for playbooks: [Playbook], catalogue: [ActionSpec] = AWSActions.specs, roleArnTemplate: String? = nil, principalArns: [String] = []
    ) -> Requirement {
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
        let partition = ([roleArnTemplate].compactMap { $0 } + principalArns).lazy.compactMap(partition(of:)).first ?? "aws"
        var principals: [String] = []
        for arn in principalArns where !principals.contains(arn) { principals.append(arn) }
        return Requirement(actions: actions, assumeRoleResource: roleArnTemplate.map(assumeRoleResource), principals: principals, partition: partition)
    }

    /// `arn:aws:iam::{account}:role/R` → `arn:aws:iam::*:role/R`.
    public static func assumeRoleResource(_ template: String) -> String {
        template.replacingOccurrences(of: "{account}", with: "*")
    }

    /// The partition of an ARN (`arn:PARTITION:…`), nil when it is not an ARN.
    static func partition(of arn: String) -> String? {
        let parts = arn.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "arn", !parts[1].isEmpty else { return nil }
        return String(parts[1])
    }

    /// Why an ARN given as Cordon's own principal (`--principal-arn`) is not one, or nil.
    /// It must be an IAM role or user: a session's ARN (`arn:aws:sts::…:assumed-role/R/S`)
    /// names no resource that a policy could protect.
    public static func principalProblem(_ arn: String) -> String? {
        let parts = arn.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6, parts[0] == "arn", !parts[1].isEmpty else {
            return "\"\(arn)\" is not an ARN such as arn:aws:iam::123456789012:role/CordonRunner"
        }
        if parts[2] == "sts", parts[5].hasPrefix("assumed-role/") {
            let role = parts[5].split(separator: "/").dropFirst().first.map(String.init) ?? "NAME"
            return "\"\(arn)\" is a session of a role, not the role: give the role's ARN, arn:\(parts[1]):iam::\(parts[4]):role/\(role) (with its path, if it has one)"
        }
        guard parts[2] == "iam", parts[3].isEmpty else {
            return "\"\(arn)\" is not an IAM principal: give the ARN of the role or user Cordon runs as, such as arn:aws:iam::123456789012:role/CordonRunner"
        }
        guard parts[4].count == 12, parts[4].allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return "\"\(arn)\": the account must be 12 digits"
        }
        let resource = parts[5]
        guard resource.hasPrefix("role/") || resource.hasPrefix("user/"), resource.split(separator: "/").count >= 2 else {
            return "\"\(arn)\" is not a role or a user (arn:\(parts[1]):iam::\(parts[4]):role/NAME or …:user/NAME)"
        }
        return nil
    }

    /// The resource an allowed action is granted on.
    static func resource(for action: String, partition p: String) -> String {
        let (service, name) = split(action)
        switch service {
        case "iam": return name.contains("Role") ? "arn:\(p):iam::*:role/*" : "arn:\(p):iam::*:user/*"
        case "s3": return "arn:\(p):s3:::*"
        case "sns": return "arn:\(p):sns:*:*:*"
        case "cloudtrail": return "arn:\(p):cloudtrail:*:*:trail/*"
        default: return "*"
        }
    }

    /// The policy document (IAM policy grammar, version 2012-10-17).
    public static func document(
        for playbooks: [Playbook], catalogue: [ActionSpec] = AWSActions.specs, roleArnTemplate: String? = nil, principalArns: [String] = []
    ) -> JSONValue {
        document(requirement(for: playbooks, catalogue: catalogue, roleArnTemplate: roleArnTemplate, principalArns: principalArns))
    }

    public static func document(_ requirement: Requirement) -> JSONValue {
        let p = requirement.partition
        // Allow: one statement per service and resource, actions sorted.
        var groups: [String: (sid: String, resource: String, actions: [String])] = [:]
        for action in requirement.actions.keys {
            let resource = resource(for: action, partition: p)
            let (service, _) = split(action)
            var sid = "Cordon" + sidWord(service)
            if service == "iam" { sid += resource.hasSuffix(":role/*") ? "Roles" : "Users" }
            groups[sid, default: (sid, resource, [])].actions.append(action)
        }
        var statements: [JSONValue] = groups.keys.sorted().compactMap { sid in
            guard let g = groups[sid] else { return nil }
            return ["Sid": .string(sid), "Effect": "Allow", "Action": .array(g.actions.sorted().map(JSONValue.string)), "Resource": .string(g.resource)]
        }
        statements += requirement.custody
        if let role = requirement.assumeRoleResource {
            statements.append(["Sid": "CordonAssumeResponderRole", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": .string(role)])
        }

        // Deny: nothing on itself…
        statements.append([
            "Sid": "CordonDenyChangesToItsUser", "Effect": "Deny", "Action": ["iam:*"],
            "Resource": [.string("arn:\(p):iam::*:user/${aws:username}"), .string("arn:\(p):iam::*:user/*/${aws:username}")],
        ])
        let own = requirement.principals + (requirement.assumeRoleResource.map { [$0] } ?? [])
        if !own.isEmpty {
            statements.append(["Sid": "CordonDenyChangesToItsRoles", "Effect": "Deny", "Action": ["iam:*"], "Resource": .array(own.map(JSONValue.string))])
        }
        // …no escalation it does not need, anywhere…
        let escalation = escalationActions.filter { requirement.actions[$0] == nil }.sorted()
        if !escalation.isEmpty {
            statements.append(["Sid": "CordonDenyPrivilegeEscalation", "Effect": "Deny", "Action": .array(escalation.map(JSONValue.string)), "Resource": "*"])
        }
        // …and no role but the responder role.
        if let role = requirement.assumeRoleResource {
            statements.append(["Sid": "CordonDenyOtherRoles", "Effect": "Deny", "Action": ["sts:AssumeRole"], "NotResource": .string(role)])
        } else {
            statements.append(["Sid": "CordonDenyOtherRoles", "Effect": "Deny", "Action": ["sts:AssumeRole"], "Resource": "*"])
        }
        return ["Version": "2012-10-17", "Statement": .array(statements)]
    }

    /// The statements the journal's custody needs: `kms:Sign` and `kms:GetPublicKey` on a
    /// KMS signing key; for each S3 witness (bucket, prefix), writing locked objects under
    /// the prefix and reading every version back, and reading the bucket's Object Lock.
    public static func custodyStatements(signingKeyARN: String?, s3Witnesses: [(bucket: String, prefix: String)], partition p: String = "aws") -> [JSONValue] {
        var statements: [JSONValue] = []
        if let arn = signingKeyARN {
            statements.append(["Sid": "CordonJournalSigningKey", "Effect": "Allow", "Action": ["kms:GetPublicKey", "kms:Sign"], "Resource": .string(arn)])
        }
        for (index, witness) in s3Witnesses.enumerated() {
            let suffix = s3Witnesses.count > 1 ? "\(index + 1)" : ""
            let objects = "arn:\(p):s3:::\(witness.bucket)/\(witness.prefix.isEmpty ? "" : witness.prefix + "/")*"
            statements.append([
                "Sid": .string("CordonJournalWitnessObjects" + suffix), "Effect": "Allow",
                "Action": ["s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectRetention"], "Resource": .string(objects),
            ])
            statements.append([
                "Sid": .string("CordonJournalWitnessBucket" + suffix), "Effect": "Allow",
                "Action": ["s3:GetBucketObjectLockConfiguration", "s3:ListBucketVersions"], "Resource": .string("arn:\(p):s3:::\(witness.bucket)"),
            ])
        }
        return statements
    }

    /// `iam:PutRolePolicy` → (`iam`, `PutRolePolicy`).
    static func split(_ action: String) -> (service: String, name: String) {
        let parts = action.split(separator: ":", maxSplits: 1)
        return (parts.first.map(String.init) ?? action, parts.count > 1 ? String(parts[1]) : "")
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
