import CordonCore
import Foundation

/// Shared by the actions that put an inline policy and undo it.
enum InlinePolicies {
    struct PreState: Codable {
        var principal: String
        var name: String
        var policyName: String
        /// The document before the step (nil: there was none).
        var previousDocument: String?
        /// The document the step wrote (nil in the pre-state captured before it wrote).
        var document: String?
    }

    static func principal(_ p: PreState) -> Principal? {
        switch p.principal {
        case "user": .user(p.name)
        case "role": .role(p.name)
        default: nil
        }
    }

    static func kind(_ p: Principal) -> (String, String) {
        switch p {
        case .user(let n): ("user", n)
        case .role(let n): ("role", n)
        }
    }

    /// Same JSON (whitespace and key order aside).
    static func same(_ a: String?, _ b: String?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        if a == b { return true }
        guard let x = try? JSONParser.parse(a), let y = try? JSONParser.parse(b) else { return false }
        return CanonicalJSON.bytes(x) == CanonicalJSON.bytes(y)
    }

    /// The inline policy as it is before the step.
    static func capture(_ env: AWSActionEnvironment, _ request: ActionRequest, _ principal: Principal, policy: String, document: String?) async throws(ActionError) -> JSONValue {
        let scope = try env.scope(request, global: true)
        let iam = try await env.cloud.iam(scope)
        let (kind, name) = self.kind(principal)
        return scope.preState(PreState(principal: kind, name: name, policyName: policy, previousDocument: try await iam.inlinePolicy(principal, name: policy), document: document))
    }

    /// Puts the previous document back (or deletes the policy when there was none),
    /// unless someone changed the policy since the step wrote it: the policy must be the
    /// document the step wrote or, when that is not recorded (the step failed or was cut
    /// short), one it writes (`written`).
    static func rollback(
        _ env: AWSActionEnvironment, _ request: ActionRequest, _ preState: JSONValue, action: String, written: (String?) -> Bool
    ) async throws(ActionError) -> ActionOutcome {
        guard let pre = JSONBridge.decode(PreState.self, from: preState), let principal = principal(pre) else {
            throw .permanent("InvalidPreState", "the recorded pre-state of \(action) cannot be read: \(JSONWriter.string(preState))")
        }
        let iam = try await env.cloud.iam(try env.scope(request, preState: preState, global: true))
        let current = try await iam.inlinePolicy(principal, name: pre.policyName)
        if same(current, pre.previousDocument) {
            return ActionOutcome(outputs: ["restored": .string(pre.previousDocument == nil ? "deleted" : "previous document")], target: pre.name, alreadyDone: true)
        }
        guard pre.document.map({ same(current, $0) }) ?? written(current) else {
            throw .permanent(
                "ChangedSinceStep",
                "the inline policy \(pre.policyName) of \(principal) changed after Cordon wrote it; not rolled back. Its document before the step was: \(pre.previousDocument ?? "(none)")")
        }
        if let previous = pre.previousDocument {
            try await iam.putInlinePolicy(principal, name: pre.policyName, document: previous)
        } else {
            try await iam.deleteInlinePolicy(principal, name: pre.policyName)
        }
        guard same(try await iam.inlinePolicy(principal, name: pre.policyName), pre.previousDocument) else {
            throw .retryable("RollbackNotVerified", "the inline policy \(pre.policyName) of \(principal) is not back to its previous state yet")
        }
        return ActionOutcome(outputs: ["restored": .string(pre.previousDocument == nil ? "deleted" : "previous document")], target: pre.name)
    }
}

/// `aws.iam.revoke_role_sessions`: the `AWSRevokeOlderSessions` inline policy, exactly as
/// the IAM console writes it — deny everything to sessions whose `aws:TokenIssueTime` is
/// before now. A policy already there that covers the incident (its time is not before
/// the incident opened) counts as done. Rollback restores the previous document, or
/// deletes the policy.
public struct RevokeRoleSessionsAction: ReversibleAction {
    public static let name = "aws.iam.revoke_role_sessions"
    public static let policyName = "AWSRevokeOlderSessions"
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public var checkable: Bool { true }

    /// The console's document.
    public static func document(revokedBefore time: String) -> String {
        #"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"\#(time)"}}}]}"#
    }

    /// The `aws:TokenIssueTime` of a revocation document.
    static func revokedBefore(_ document: String?) -> Date? {
        guard let document, let json = try? JSONParser.parse(document) else { return nil }
        let statements: [JSONValue] = json["Statement"]?.arrayValue ?? (json["Statement"].map { [$0] } ?? [])
        for s in statements where s["Effect"]?.stringValue == "Deny" {
            if let t = s["Condition"]?["DateLessThan"]?["aws:TokenIssueTime"]?.stringValue, let date = Timestamp.parse(t) { return date }
        }
        return nil
    }

    func covers(_ document: String?, _ request: ActionRequest) -> Bool {
        guard let time = Self.revokedBefore(document), let opened = request.incidentOpenedAt else { return false }
        return time >= opened
    }

    public func capturePreState(_ request: ActionRequest) async throws(ActionError) -> JSONValue {
        try await InlinePolicies.capture(env, request, .role(try request.required("role_name")), policy: Self.policyName, document: nil)
    }

    public func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? {
        let role = try request.required("role_name")
        let iam = try await env.cloud.iam(try env.scope(request, global: true))
        let current = try await iam.inlinePolicy(.role(role), name: Self.policyName)
        guard covers(current, request), let time = Self.revokedBefore(current) else { return nil }
        return ActionOutcome(outputs: ["revoked_before": .string(AWSTime.iso8601Millis(time))], target: role, alreadyDone: true)
    }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let role = try request.required("role_name")
        let scope = try env.scope(request, global: true)
        let iam = try await env.cloud.iam(scope)
        let previous = try await iam.inlinePolicy(.role(role), name: Self.policyName)
        if covers(previous, request), let time = Self.revokedBefore(previous) {
            return ActionOutcome(outputs: ["revoked_before": .string(AWSTime.iso8601Millis(time))], target: role, alreadyDone: true)
        }
        let time = AWSTime.iso8601Millis(env.now())
        let document = Self.document(revokedBefore: time)
        try await iam.putInlinePolicy(.role(role), name: Self.policyName, document: document)
        guard InlinePolicies.same(try await iam.inlinePolicy(.role(role), name: Self.policyName), document) else {
            throw .retryable("RevocationNotVerified", "the \(Self.policyName) policy of role \(role) does not read back as written yet")
        }
        let pre = InlinePolicies.PreState(principal: "role", name: role, policyName: Self.policyName, previousDocument: previous, document: document)
        let ref = try request.storeEvidence(
            [
                "kind": "cordon.iam.revoke-role-sessions", "time": .string(time), "scope": scope.json, "incident": .string(request.incidentId),
                "role_name": .string(role), "previous_document": previous.map(JSONValue.string) ?? .null, "document": .string(document),
            ], name: "iam-revoke-sessions-\(role).json")
        return ActionOutcome(outputs: ["revoked_before": .string(time)], target: role, evidence: [ref], preState: scope.preState(pre))
    }

    public func rollback(_ request: ActionRequest, preState: JSONValue) async throws(ActionError) -> ActionOutcome {
        try await InlinePolicies.rollback(env, request, preState, action: Self.name) { Self.revokedBefore($0) != nil }
    }
}

/// `aws.iam.attach_deny_all`: the `CordonDenyAll` inline policy (deny every action) on a
/// user or a role. Rollback deletes it, or restores the document it replaced.
public struct AttachDenyAllAction: ReversibleAction {
    public static let name = "aws.iam.attach_deny_all"
    public static let policyName = "CordonDenyAll"
    public static let document = #"{"Version":"2012-10-17","Statement":[{"Sid":"CordonDenyAll","Effect":"Deny","Action":"*","Resource":"*"}]}"#
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public var checkable: Bool { true }

    static func principal(_ request: ActionRequest) throws(ActionError) -> Principal {
        switch (request.text("user_name"), request.text("role_name")) {
        case (let user?, nil): return .user(user)
        case (nil, let role?): return .role(role)
        default: throw .permanent("InvalidInput", "\(name) needs exactly one of `user_name` and `role_name`")
        }
    }

    public func capturePreState(_ request: ActionRequest) async throws(ActionError) -> JSONValue {
        try await InlinePolicies.capture(env, request, try Self.principal(request), policy: Self.policyName, document: Self.document)
    }

    public func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? {
        let principal = try Self.principal(request)
        let iam = try await env.cloud.iam(try env.scope(request, global: true))
        guard InlinePolicies.same(try await iam.inlinePolicy(principal, name: Self.policyName), Self.document) else { return nil }
        return ActionOutcome(outputs: ["policy_name": .string(Self.policyName)], target: InlinePolicies.kind(principal).1, alreadyDone: true)
    }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let principal = try Self.principal(request)
        let (kind, name) = InlinePolicies.kind(principal)
        let scope = try env.scope(request, global: true)
        let iam = try await env.cloud.iam(scope)
        let previous = try await iam.inlinePolicy(principal, name: Self.policyName)
        if InlinePolicies.same(previous, Self.document) {
            return ActionOutcome(outputs: ["policy_name": .string(Self.policyName)], target: name, alreadyDone: true)
        }
        try await iam.putInlinePolicy(principal, name: Self.policyName, document: Self.document)
        guard InlinePolicies.same(try await iam.inlinePolicy(principal, name: Self.policyName), Self.document) else {
            throw .retryable("PolicyNotVerified", "the \(Self.policyName) policy of \(principal) does not read back as written yet")
        }
        let pre = InlinePolicies.PreState(principal: kind, name: name, policyName: Self.policyName, previousDocument: previous, document: Self.document)
        let ref = try request.storeEvidence(
            [
                "kind": "cordon.iam.deny-all", "time": .string(AWSTime.iso8601Millis(env.now())), "scope": scope.json, "incident": .string(request.incidentId),
                "principal": .string(principal.description), "previous_document": previous.map(JSONValue.string) ?? .null, "document": .string(Self.document),
            ], name: "iam-deny-all-\(kind)-\(name).json")
        return ActionOutcome(outputs: ["policy_name": .string(Self.policyName)], target: name, evidence: [ref], preState: scope.preState(pre))
    }

    public func rollback(_ request: ActionRequest, preState: JSONValue) async throws(ActionError) -> ActionOutcome {
        try await InlinePolicies.rollback(env, request, preState, action: Self.name) { InlinePolicies.same($0, Self.document) }
    }
}

/// `aws.iam.deactivate_access_keys`: makes one key, or every key of the user, inactive.
/// Rollback gives each key its previous status back.
public struct DeactivateAccessKeysAction: ReversibleAction {
    public static let name = "aws.iam.deactivate_access_keys"
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public var checkable: Bool { true }

    struct PreState: Codable {
        struct Key: Codable {
            var id: String
            var status: String
        }
        var userName: String
        var keys: [Key]
    }

    func targets(_ request: ActionRequest, _ iam: any IAMAPI, _ user: String) async throws(ActionError) -> [AccessKey] {
        let keys = try await iam.listAccessKeys(userName: user)
        guard let one = request.text("access_key_id") else { return keys }
        guard let key = keys.first(where: { $0.id == one }) else {
            throw .permanent("NoSuchEntity", "The Access Key with id \(one) cannot be found (user \(user) has \(keys.isEmpty ? "no keys" : keys.map(\.id).joined(separator: ", ")))")
        }
        return [key]
    }

    /// The status of every key the step may deactivate.
    public func capturePreState(_ request: ActionRequest) async throws(ActionError) -> JSONValue {
        let user = try request.required("user_name")
        let scope = try env.scope(request, global: true)
        let keys = try await targets(request, try await env.cloud.iam(scope), user)
        return scope.preState(PreState(userName: user, keys: keys.map { .init(id: $0.id, status: $0.status) }))
    }

    public func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? {
        let user = try request.required("user_name")
        let iam = try await env.cloud.iam(try env.scope(request, global: true))
        let keys = try await targets(request, iam, user)
        guard keys.allSatisfy({ $0.status == "Inactive" }) else { return nil }
        return ActionOutcome(outputs: ["deactivated": [], "already_inactive": .array(keys.map { .string($0.id) })], target: user, alreadyDone: true)
    }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let user = try request.required("user_name")
        let scope = try env.scope(request, global: true)
        let iam = try await env.cloud.iam(scope)
        let keys = try await targets(request, iam, user)
        let active = keys.filter { $0.status != "Inactive" }
        let inactive = JSONValue.array(keys.filter { $0.status == "Inactive" }.map { .string($0.id) })
        guard !active.isEmpty else {
            return ActionOutcome(outputs: ["deactivated": [], "already_inactive": inactive], target: user, alreadyDone: true)
        }
        for key in active {
            try await iam.updateAccessKey(userName: user, accessKeyId: key.id, status: "Inactive")
        }
        let after = try await iam.listAccessKeys(userName: user)
        let still = active.filter { key in after.contains { $0.id == key.id && $0.status != "Inactive" } }
        guard still.isEmpty else {
            throw .retryable("DeactivationNotVerified", "keys \(still.map(\.id).joined(separator: ", ")) of \(user) are still active")
        }
        let deactivated = JSONValue.array(active.map { ["access_key_id": .string($0.id), "previous_status": .string($0.status)] })
        let ref = try request.storeEvidence(
            [
                "kind": "cordon.iam.deactivate-access-keys", "time": .string(AWSTime.iso8601Millis(env.now())), "scope": scope.json,
                "incident": .string(request.incidentId), "user_name": .string(user), "keys_before": JSONBridge.value(keys), "keys_after": JSONBridge.value(after),
            ], name: "iam-access-keys-\(user).json")
        return ActionOutcome(
            outputs: ["deactivated": deactivated, "already_inactive": inactive], target: user, evidence: [ref],
            preState: scope.preState(PreState(userName: user, keys: active.map { .init(id: $0.id, status: $0.status) })))
    }

    public func rollback(_ request: ActionRequest, preState: JSONValue) async throws(ActionError) -> ActionOutcome {
        guard let pre = JSONBridge.decode(PreState.self, from: preState) else {
            throw .permanent("InvalidPreState", "the recorded pre-state of \(Self.name) cannot be read: \(JSONWriter.string(preState))")
        }
        let iam = try await env.cloud.iam(try env.scope(request, preState: preState, global: true))
        let current = try await iam.listAccessKeys(userName: pre.userName)
        var restored: [JSONValue] = []
        for key in pre.keys {
            guard let now = current.first(where: { $0.id == key.id }) else {
                throw .permanent("NoSuchEntity", "The Access Key with id \(key.id) cannot be found: it was deleted after the step, so its status cannot be restored")
            }
            if now.status != key.status {
                try await iam.updateAccessKey(userName: pre.userName, accessKeyId: key.id, status: key.status)
                restored.append(["access_key_id": .string(key.id), "status": .string(key.status)])
            }
        }
        let after = try await iam.listAccessKeys(userName: pre.userName)
        for key in pre.keys where !after.contains(where: { $0.id == key.id && $0.status == key.status }) {
            throw .retryable("RollbackNotVerified", "key \(key.id) of \(pre.userName) is not \(key.status) yet")
        }
        return ActionOutcome(outputs: ["restored": .array(restored)], target: pre.userName, alreadyDone: restored.isEmpty)
    }
}

/// `aws.iam.delete_login_profile`: removes a user's console password. Not reversible: AWS
/// never reveals a password, so it cannot be put back — to give console access back,
/// create a new login profile with a new password.
public struct DeleteLoginProfileAction: Action {
    public static let name = "aws.iam.delete_login_profile"
    let env: AWSActionEnvironment

    public init(_ env: AWSActionEnvironment) { self.env = env }

    public var checkable: Bool { true }

    static let note = "the console password cannot be restored (AWS never reveals it); to give console access back, create a new login profile with a new password"

    public func check(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome? {
        let user = try request.required("user_name")
        let iam = try await env.cloud.iam(try env.scope(request, global: true))
        guard try await iam.loginProfile(userName: user) == nil else { return nil }
        return ActionOutcome(outputs: ["deleted": false, "note": .string(Self.note)], target: user, alreadyDone: true)
    }

    public func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome {
        let user = try request.required("user_name")
        let scope = try env.scope(request, global: true)
        let iam = try await env.cloud.iam(scope)
        guard let profile = try await iam.loginProfile(userName: user) else {
            return ActionOutcome(outputs: ["deleted": false, "note": .string(Self.note)], target: user, alreadyDone: true)
        }
        do throws(ActionError) {
            try await iam.deleteLoginProfile(userName: user)
        } catch where error.code == "NoSuchEntity" && error.message.hasPrefix("Login Profile") {}
        guard try await iam.loginProfile(userName: user) == nil else {
            throw .retryable("DeletionNotVerified", "user \(user) still has a login profile")
        }
        let ref = try request.storeEvidence(
            [
                "kind": "cordon.iam.delete-login-profile", "time": .string(AWSTime.iso8601Millis(env.now())), "scope": scope.json,
                "incident": .string(request.incidentId), "user_name": .string(user), "login_profile_before": JSONBridge.value(profile),
            ], name: "iam-login-profile-\(user).json")
        return ActionOutcome(
            outputs: ["deleted": true, "created": profile.createDate.map(JSONValue.string) ?? .null, "note": .string(Self.note)], target: user, evidence: [ref])
    }
}

extension RevokeRoleSessionsAction {
    /// What `aws.iam.revoke_role_sessions` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.iam.revoke_role_sessions",
        summary: "Deny every session of a role issued before now (the AWSRevokeOlderSessions inline policy, as the IAM console does)",
        kind: .containment,
        inputs: [InputSpec("role_name", .string, required: true, "IAM role name"), AWSActions.account],
        outputs: [OutputSpec("revoked_before", "the time before which sessions are denied")],
        iamActions: ["iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy"],
        reversible: true)
}

extension DeactivateAccessKeysAction {
    /// What `aws.iam.deactivate_access_keys` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.iam.deactivate_access_keys",
        summary: "Make one access key, or all of a user's keys, inactive",
        kind: .containment,
        inputs: [
            InputSpec("user_name", .string, required: true, "IAM user name"),
            InputSpec("access_key_id", .string, "one key (AKIA…); default: every key of the user"),
            AWSActions.account,
        ],
        outputs: [OutputSpec("deactivated", "the keys made inactive and their previous status")],
        iamActions: ["iam:ListAccessKeys", "iam:UpdateAccessKey"],
        reversible: true)
}

extension AttachDenyAllAction {
    /// What `aws.iam.attach_deny_all` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.iam.attach_deny_all",
        summary: "Attach an inline policy denying every action to a user or a role",
        kind: .containment,
        inputs: [
            InputSpec("user_name", .string, "IAM user name"), InputSpec("role_name", .string, "IAM role name"), AWSActions.account,
        ],
        exactlyOneOf: [["user_name", "role_name"]],
        iamActions: ["iam:GetUserPolicy", "iam:PutUserPolicy", "iam:DeleteUserPolicy", "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy"],
        reversible: true)
}

extension DeleteLoginProfileAction {
    /// What `aws.iam.delete_login_profile` takes, gives and needs (`cordon validate`, the JSON Schema, `cordon iam-policy`, the docs).
    public static let spec = ActionSpec(
        name: "aws.iam.delete_login_profile",
        summary: "Remove a user's console password (the login profile)",
        kind: .containment,
        inputs: [InputSpec("user_name", .string, required: true, "IAM user name"), AWSActions.account],
        iamActions: ["iam:GetLoginProfile", "iam:DeleteLoginProfile"])
}
