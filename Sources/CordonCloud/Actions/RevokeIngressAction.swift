import CordonCore

/// `aws.ec2.revoke_ingress`: revokes security-group ingress rules, by rule id
/// (`sgr-…`, as a CloudTrail `AuthorizeSecurityGroupIngress` event's
/// `responseElements.securityGroupRuleSet` names them) or by permission (the event's
/// `requestParameters.ipPermissions.items`, or the API's `IpPermissions`). The rules
/// revoked are recorded; rollback authorizes them again. Rules already gone are
/// skipped.
public struct RevokeIngressAction: ReversibleAction {
    public static let name = "aws.ec2.revoke_ingress"
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public var checkable: Bool { true }

    struct PreState: Codable {
        var groupId: String
        var rules: [SecurityGroupRule]
    }

    enum Selector {
        case ids([String])
        case permissions([IpPermission])
    }

    static func selector(_ request: ActionRequest) throws(ActionError) -> Selector {
        let ids = request.inputs["rule_ids"]
        let perms = request.inputs["ip_permissions"]
        let hasIds = ids.map { !$0.isNull } ?? false
        let hasPerms = perms.map { !$0.isNull } ?? false
        guard hasIds != hasPerms else { throw .permanent("InvalidInput", "\(name) needs exactly one of `rule_ids` and `ip_permissions`") }
        if let ids, hasIds {
            switch ids {
            case .string(let s) where !s.isEmpty: return .ids([s])
            case .array(let items) where !items.isEmpty && items.allSatisfy({ ($0.stringValue ?? "").hasPrefix("sgr-") }):
                return .ids(items.compactMap(\.stringValue))
            default: throw .permanent("InvalidInput", "\(name): `rule_ids` must be a rule id (sgr-…) or a list of them, not \(JSONWriter.string(ids))")
            }
        }
        return .permissions(try IpPermissionParser.parse(perms ?? .null))
    }

    /// The ingress rules of the group the selector names, and the ids not found.
    func matching(_ selector: Selector, _ rules: [SecurityGroupRule], groupId: String) -> (found: [SecurityGroupRule], missing: [String]) {
        let ingress = rules.filter { !$0.isEgress }
        switch selector {
        case .ids(let ids):
            return (ingress.filter { ids.contains($0.id) }, ids.filter { id in !ingress.contains { $0.id == id } })
        case .permissions(let permissions):
            var found: [SecurityGroupRule] = []
            var missing: [String] = []
            for p in permissions {
                for want in p.expanded(groupId: groupId, isEgress: false) {
                    if let rule = ingress.first(where: { $0.sameEffect(as: want) }) {
                        if !found.contains(rule) { found.append(rule) }
                    } else {
                        missing.append(want.awsDescription)
                    }
                }
            }
            return (found, missing)
        }
    }

    /// The rules the step would revoke, read before it does.
    public func capturePreState(_ request: ActionRequest) async throws(ActionError) -> JSONValue {
        let groupId = try request.required("group_id")
        let selector = try Self.selector(request)
        let scope = try env.scope(request)
        let ec2 = try await env.cloud.ec2(scope)
        let (found, _) = matching(selector, try await ec2.describeSecurityGroupRules(groupId: groupId), groupId: groupId)
        return scope.preState(PreState(groupId: groupId, rules: found))
    }

    public func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? {
        let groupId = try request.required("group_id")
        let selector = try Self.selector(request)
        let ec2 = try await env.cloud.ec2(try env.scope(request))
        let (found, missing) = matching(selector, try await ec2.describeSecurityGroupRules(groupId: groupId), groupId: groupId)
        guard found.isEmpty else { return nil }
        return ActionOutcome(outputs: ["revoked": [], "already_absent": .array(missing.map(JSONValue.string))], target: groupId, alreadyDone: true)
    }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let groupId = try request.required("group_id")
        let selector = try Self.selector(request)
        let scope = try env.scope(request)
        let ec2 = try await env.cloud.ec2(scope)
        let before = try await ec2.describeSecurityGroupRules(groupId: groupId)
        let (found, missing) = matching(selector, before, groupId: groupId)
        let absent = JSONValue.array(missing.map(JSONValue.string))
        guard !found.isEmpty else {
            return ActionOutcome(outputs: ["revoked": [], "already_absent": absent], target: groupId, alreadyDone: true)
        }
        do throws(ActionError) {
            try await ec2.revokeIngress(groupId: groupId, ruleIds: found.map(\.id))
        } catch where error.code == "InvalidSecurityGroupRuleId.NotFound" {
            // Revoked meanwhile (a concurrent call): revoke what is left, one by one.
            for rule in found {
                do throws(ActionError) { try await ec2.revokeIngress(groupId: groupId, ruleIds: [rule.id]) } catch where error.code == "InvalidSecurityGroupRuleId.NotFound" {}
            }
        }
        let after = try await ec2.describeSecurityGroupRules(groupId: groupId)
        let left = found.filter { rule in after.contains { $0.id == rule.id } }
        guard left.isEmpty else {
            throw .retryable("RevocationNotVerified", "rules \(left.map(\.id).joined(separator: ", ")) are still in \(groupId)")
        }
        let document: JSONValue = [
            "kind": "cordon.ec2.revoke-ingress", "time": .string(AWSTime.iso8601Millis(env.now())), "scope": scope.json, "incident": .string(request.incidentId),
            "group_id": .string(groupId), "rules_before": JSONBridge.value(before), "rules_after": JSONBridge.value(after),
        ]
        let ref = try request.storeEvidence(document, name: "ec2-revoke-ingress-\(groupId).json")
        return ActionOutcome(
            outputs: ["revoked": JSONBridge.value(found), "already_absent": absent], target: groupId, evidence: [ref], preState: scope.preState(PreState(groupId: groupId, rules: found)))
    }

    public func rollback(_ request: ActionRequest, preState: JSONValue) async throws(ActionError) -> ActionOutcome {
        guard let pre = JSONBridge.decode(PreState.self, from: preState) else {
            throw .permanent("InvalidPreState", "the recorded pre-state of \(Self.name) cannot be read: \(JSONWriter.string(preState))")
        }
        let ec2 = try await env.cloud.ec2(try env.scope(request, preState: preState))
        let current = try await ec2.describeSecurityGroupRules(groupId: pre.groupId)
        let missing = pre.rules.filter { rule in !current.contains { $0.sameEffect(as: rule) } }
        if !missing.isEmpty {
            do throws(ActionError) {
                try await ec2.authorizeIngress(groupId: pre.groupId, permissions: missing.map(\.permission))
            } catch where error.code == "InvalidPermission.Duplicate" {
                for rule in missing {
                    do throws(ActionError) { try await ec2.authorizeIngress(groupId: pre.groupId, permissions: [rule.permission]) } catch where error.code == "InvalidPermission.Duplicate" {}
                }
            }
        }
        let after = try await ec2.describeSecurityGroupRules(groupId: pre.groupId)
        let restored = pre.rules.compactMap { rule in after.first { $0.sameEffect(as: rule) } }
        guard restored.count == pre.rules.count else {
            throw .retryable("RollbackNotVerified", "not every revoked rule of \(pre.groupId) is back yet")
        }
        return ActionOutcome(outputs: ["restored": JSONBridge.value(restored)], target: pre.groupId, alreadyDone: missing.isEmpty)
    }
}

/// Reads `IpPermissions` in the shapes Cordon meets them: a CloudTrail
/// `AuthorizeSecurityGroupIngress` record's `requestParameters.ipPermissions.items[]`
/// (`ipProtocol`, `fromPort`, `ipRanges.items[].cidrIp`, `ipv6Ranges.items[].cidrIpv6`,
/// `groups.items[].groupId`, `prefixListIds.items[].prefixListId`) and the API's
/// (`IpProtocol`, `FromPort`, `IpRanges[].CidrIp`, `Ipv6Ranges[].CidrIpv6`,
/// `UserIdGroupPairs[].GroupId`, `PrefixListIds[].PrefixListId`).
enum IpPermissionParser {
    static func parse(_ value: JSONValue) throws(ActionError) -> [IpPermission] {
        var list: [JSONValue]
        switch value {
        case .array(let items): list = items
        case .object(let o) where o["items"] != nil: list = o["items"]?.arrayValue ?? []
        case .object: list = [value]
        default: throw .permanent("InvalidInput", "\(RevokeIngressAction.name): `ip_permissions` must be a list of permissions, not \(JSONWriter.string(value))")
        }
        guard !list.isEmpty else { throw .permanent("InvalidInput", "\(RevokeIngressAction.name): `ip_permissions` is empty") }
        var out: [IpPermission] = []
        for (i, item) in list.enumerated() {
            guard case .object = item else { throw .permanent("InvalidInput", "ip_permissions[\(i)] must be an object, not \(JSONWriter.string(item))") }
            guard let proto = field(item, "ipProtocol").flatMap(text) else { throw .permanent("InvalidInput", "ip_permissions[\(i)] has no ipProtocol") }
            var p = IpPermission(ipProtocol: IpPermission.normalizedProtocol(proto))
            if p.ipProtocol != "-1" {
                p.fromPort = field(item, "fromPort").flatMap(int)
                p.toPort = field(item, "toPort").flatMap(int)
            }
            p.ipv4Ranges = entries(field(item, "ipRanges"), "cidrIp")
            p.ipv6Ranges = entries(field(item, "ipv6Ranges"), "cidrIpv6")
            p.groupIds = entries(field(item, "groups") ?? field(item, "userIdGroupPairs"), "groupId")
            p.prefixListIds = entries(field(item, "prefixListIds"), "prefixListId")
            guard !(p.ipv4Ranges.isEmpty && p.ipv6Ranges.isEmpty && p.groupIds.isEmpty && p.prefixListIds.isEmpty) else {
                throw .permanent("InvalidInput", "ip_permissions[\(i)] names no source (ipRanges, ipv6Ranges, groups or prefixListIds)")
            }
            out.append(p)
        }
        return out
    }

    /// A member by its camelCase name or the API's PascalCase one.
    static func field(_ object: JSONValue, _ camel: String) -> JSONValue? {
        if let v = object[camel], !v.isNull { return v }
        let pascal = camel.prefix(1).uppercased() + camel.dropFirst()
        if let v = object[pascal], !v.isNull { return v }
        return nil
    }

    static func text(_ v: JSONValue) -> String? {
        switch v {
        case .string(let s): return s
        case .number(let n): return n.literal
        default: return nil
        }
    }

    static func int(_ v: JSONValue) -> Int? {
        switch v {
        case .number(let n): return n.intValue
        case .string(let s): return Int(s)
        default: return nil
        }
    }

    /// `{items: [{key: x}]}`, `[{key: x}]`, `[{Key: x}]` or `["x"]`.
    static func entries(_ v: JSONValue?, _ key: String) -> [String] {
        guard let v else { return [] }
        let items: [JSONValue]
        switch v {
        case .array(let a): items = a
        case .object(let o): items = o["items"]?.arrayValue ?? []
        default: return []
        }
        return items.compactMap { item in
            if let s = item.stringValue { return s }
            return field(item, key)?.stringValue
        }
    }
}

extension RevokeIngressAction {
    /// What `aws.ec2.revoke_ingress` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.ec2.revoke_ingress",
        summary: "Revoke security-group ingress rules (those an AuthorizeSecurityGroupIngress call added)",
        kind: .containment,
        inputs: [
            InputSpec("group_id", .string, required: true, "security group id (sg-…)"),
            InputSpec("rule_ids", .stringList, "security group rule ids (sgr-…) to revoke"),
            InputSpec("ip_permissions", .array, "IpPermissions as in the API call, when rule ids are not known"),
            AWSActions.region, AWSActions.account,
        ],
        outputs: [OutputSpec("revoked", "the rules revoked (for rollback)")],
        exactlyOneOf: [["rule_ids", "ip_permissions"]],
        iamActions: ["ec2:DescribeSecurityGroupRules", "ec2:RevokeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupIngress"],
        reversible: true)
}
