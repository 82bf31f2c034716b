/// The actions Cordon implements itself: the AWS containment catalogue and `core.*`.
public enum BuiltinActions {
    static let region = InputSpec("region", .string, "AWS region; default: the finding's region, else AWS_REGION")
    static let account = InputSpec(
        "account", .string, "AWS account id to act in (assumes the configured role there); default: the finding's account")

    public static let all: [ActionSpec] = aws + core

    public static let aws: [ActionSpec] = [
        ActionSpec(
            name: "aws.ec2.capture_instance",
            summary: "Record an instance's metadata, security groups, network interfaces, volumes, tags and instance profile as evidence",
            kind: .evidence,
            inputs: [InputSpec("instance_id", .string, required: true, "EC2 instance id (i-…)"), region, account],
            outputs: [
                OutputSpec("instance", "DescribeInstances result for the instance"),
                OutputSpec("security_groups", "the security groups attached to its interfaces"),
                OutputSpec("network_interfaces", "its network interfaces"),
                OutputSpec("volumes", "its EBS volumes"),
                OutputSpec("evidence", "hash of the evidence record"),
            ],
            iamActions: [
                "ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeVolumes",
            ]),
        ActionSpec(
            name: "aws.ec2.snapshot_volumes",
            summary: "Snapshot every attached EBS volume once, tagged with the incident id (a retry finds the tagged snapshot)",
            kind: .evidence,
            inputs: [
                InputSpec("instance_id", .string, required: true, "EC2 instance id (i-…)"), region, account,
                InputSpec("description", .string, "snapshot description; default names the incident"),
            ],
            outputs: [OutputSpec("snapshot_ids", "one snapshot id per volume")],
            iamActions: ["ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:CreateSnapshot", "ec2:CreateTags"]),
        ActionSpec(
            name: "aws.ec2.isolate_instance",
            summary: "Replace the security groups of every interface with an isolation group (connection-tracking aware), turn on termination protection, tag the instance",
            kind: .containment,
            inputs: [
                InputSpec("instance_id", .string, required: true, "EC2 instance id (i-…)"),
                InputSpec("isolation_group", .string, default: "cordon-quarantine", "name of the isolation security group (created without rules in the instance's VPC if missing)"),
                InputSpec("termination_protection", .boolean, default: true, "turn on termination protection"),
                region, account,
            ],
            outputs: [
                OutputSpec("isolation_group_id", "the isolation security group"),
                OutputSpec("previous_groups", "the groups each interface had before (for rollback)"),
            ],
            iamActions: [
                "ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules",
                "ec2:DescribeInstanceAttribute", "ec2:CreateSecurityGroup", "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress",
                "ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress", "ec2:ModifyNetworkInterfaceAttribute",
                "ec2:ModifyInstanceAttribute", "ec2:CreateTags",
            ],
            reversible: true),
        ActionSpec(
            name: "aws.ec2.revoke_ingress",
            summary: "Revoke security-group ingress rules (those an AuthorizeSecurityGroupIngress call added)",
            kind: .containment,
            inputs: [
                InputSpec("group_id", .string, required: true, "security group id (sg-…)"),
                InputSpec("rule_ids", .stringList, "security group rule ids (sgr-…) to revoke"),
                InputSpec("ip_permissions", .array, "IpPermissions as in the API call, when rule ids are not known"),
                region, account,
            ],
            outputs: [OutputSpec("revoked", "the rules revoked (for rollback)")],
            exactlyOneOf: [["rule_ids", "ip_permissions"]],
            iamActions: ["ec2:DescribeSecurityGroupRules", "ec2:RevokeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupIngress"],
            reversible: true),
        ActionSpec(
            name: "aws.iam.revoke_role_sessions",
            summary: "Deny every session of a role issued before now (the AWSRevokeOlderSessions inline policy, as the IAM console does)",
            kind: .containment,
            inputs: [InputSpec("role_name", .string, required: true, "IAM role name"), account],
            outputs: [OutputSpec("revoked_before", "the time before which sessions are denied")],
            iamActions: ["iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy"],
            reversible: true),
        ActionSpec(
            name: "aws.iam.deactivate_access_keys",
            summary: "Make one access key, or all of a user's keys, inactive",
            kind: .containment,
            inputs: [
                InputSpec("user_name", .string, required: true, "IAM user name"),
                InputSpec("access_key_id", .string, "one key (AKIA…); default: every key of the user"),
                account,
            ],
            outputs: [OutputSpec("deactivated", "the keys made inactive and their previous status")],
            iamActions: ["iam:ListAccessKeys", "iam:UpdateAccessKey"],
            reversible: true),
        ActionSpec(
            name: "aws.iam.attach_deny_all",
            summary: "Attach an inline policy denying every action to a user or a role",
            kind: .containment,
            inputs: [
                InputSpec("user_name", .string, "IAM user name"), InputSpec("role_name", .string, "IAM role name"), account,
            ],
            exactlyOneOf: [["user_name", "role_name"]],
            iamActions: ["iam:GetUserPolicy", "iam:PutUserPolicy", "iam:DeleteUserPolicy", "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy"],
            reversible: true),
        ActionSpec(
            name: "aws.iam.delete_login_profile",
            summary: "Remove a user's console password (the login profile)",
            kind: .containment,
            inputs: [InputSpec("user_name", .string, required: true, "IAM user name"), account],
            iamActions: ["iam:GetLoginProfile", "iam:DeleteLoginProfile"]),
        ActionSpec(
            name: "aws.s3.block_public_access",
            summary: "Turn on all four S3 Block Public Access settings for a bucket",
            kind: .containment,
            inputs: [InputSpec("bucket", .string, required: true, "bucket name"), account],
            outputs: [OutputSpec("previous", "the bucket's previous Block Public Access settings")],
            iamActions: ["s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"],
            reversible: true),
        ActionSpec(
            name: "aws.cloudtrail.start_logging",
            summary: "Restart logging on a trail that was stopped",
            kind: .containment,
            inputs: [InputSpec("trail", .string, required: true, "trail name or ARN"), region, account],
            outputs: [OutputSpec("was_logging", "whether the trail was logging before")],
            iamActions: ["cloudtrail:GetTrailStatus", "cloudtrail:StartLogging"]),
        ActionSpec(
            name: "aws.sns.publish",
            summary: "Publish a message to an SNS topic",
            kind: .notification,
            inputs: [
                InputSpec("topic_arn", .string, required: true, "topic ARN"),
                InputSpec("message", .string, required: true, "message text"),
                InputSpec("subject", .string, "subject (email subscribers), at most 100 characters"),
                region,
            ],
            outputs: [OutputSpec("message_id", "the SNS message id")],
            iamActions: ["sns:Publish"]),
    ]

    public static let core: [ActionSpec] = [
        ActionSpec(
            name: "core.log",
            summary: "Write a message to the incident's journal (and the log)",
            kind: .utility,
            inputs: [
                InputSpec("message", .string, required: true, "the message"),
                InputSpec("level", .string, default: "info", "info, warning or error"),
            ]),
        ActionSpec(
            name: "core.set",
            summary: "Compute values once and expose them as this step's output",
            kind: .utility,
            inputs: [InputSpec("values", .object, required: true, "the values (templates allowed)")],
            outputs: [OutputSpec("values", "the values, as given")]),
        ActionSpec(
            name: "core.wait",
            summary: "Wait for a while (on the virtual clock in drills)",
            kind: .utility,
            inputs: [InputSpec("duration", .duration, required: true, "how long, e.g. 30s")]),
        ActionSpec(
            name: "core.email",
            summary: "Send a plain-text e-mail over SMTP (STARTTLS by default; AUTH PLAIN/LOGIN from secrets)",
            kind: .notification,
            inputs: [
                InputSpec("server", .string, required: true, "SMTP server, host or host:port (port 587, or 465 with tls: tls)"),
                InputSpec("from", .string, required: true, "sender address"),
                InputSpec("to", .stringList, required: true, "recipient addresses"),
                InputSpec("cc", .stringList, "copy recipients"),
                InputSpec("subject", .string, required: true, "subject (one line)"),
                InputSpec("body", .string, required: true, "plain-text body"),
                InputSpec("tls", .string, default: "starttls", "starttls (required), tls (implicit, port 465) or none (local relay; no AUTH)"),
                InputSpec("username_secret", .string, default: "SMTP_USERNAME", "secret holding the SMTP user name (AUTH when both secrets are set)"),
                InputSpec("password_secret", .string, default: "SMTP_PASSWORD", "secret holding the SMTP password"),
                InputSpec("ca_file", .string, "PEM file of extra CA certificates to trust (an internal relay)"),
            ],
            outputs: [
                OutputSpec("recipients", "the addresses the server accepted"), OutputSpec("message_id", "the Message-ID sent"),
                OutputSpec("server", "host:port"), OutputSpec("tls", "the TLS mode"), OutputSpec("authenticated", "whether AUTH was used"),
            ]),
    ]
}

/// Every action a playbook can use: the built-in ones and those of the integration files.
public struct ActionRegistry: Sendable {
    public private(set) var actions: [String: ActionSpec] = [:]

    public init(_ specs: [ActionSpec] = BuiltinActions.all) {
        for spec in specs { actions[spec.name] = spec }
    }

    public subscript(name: String) -> ActionSpec? { actions[name] }

    public var names: [String] { actions.keys.sorted() }

    public mutating func add(_ spec: ActionSpec) { actions[spec.name] = spec }
}
