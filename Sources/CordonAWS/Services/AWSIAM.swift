import CordonCloud
import CordonCore
import Foundation

/// IAM over the query API (version 2010-05-08; global, signed in us-east-1).
public struct AWSIAM: IAMAPI {
    public let client: AWSServiceClient

    public init(client: AWSServiceClient) { self.client = client }

    static func kind(_ p: Principal) -> (noun: String, param: String, name: String) {
        switch p {
        case .user(let n): ("User", "UserName", n)
        case .role(let n): ("Role", "RoleName", n)
        }
    }

    /// IAM answers `NoSuchEntity` both for a missing principal and for a missing
    /// policy; the message tells them apart ("The user with name X cannot be found" vs
    /// "The user policy with name P cannot be found"). True when it is the policy.
    static func isMissingPolicy(_ error: ActionError, principal: Principal, policy: String) -> Bool {
        guard error.code == "NoSuchEntity" else { return false }
        let (_, _, name) = kind(principal)
        var message = error.message.replacingOccurrences(of: name, with: "")
        message = message.replacingOccurrences(of: policy, with: "<policy>")
        let lower = message.lowercased()
        if lower.contains("policy") { return true }
        return false
    }

    public func inlinePolicy(_ principal: Principal, name: String) async throws(ActionError) -> String? {
        let (noun, param, who) = Self.kind(principal)
        let tree: XMLTree
        do {
            tree = try await client.query("Get\(noun)Policy", [(param, who), ("PolicyName", name)])
        } catch where Self.isMissingPolicy(error, principal: principal, policy: name) {
            return nil
        }
        guard let encoded = tree.descendant("PolicyDocument")?.text.trimmingCharacters(in: .whitespacesAndNewlines) else {
            throw .permanent("InvalidResponse", "Get\(noun)Policy answered without a PolicyDocument")
        }
        // IAM returns the document URL-encoded (RFC 3986).
        return encoded.removingPercentEncoding ?? encoded
    }

    public func putInlinePolicy(_ principal: Principal, name: String, document: String) async throws(ActionError) {
        let (noun, param, who) = Self.kind(principal)
        _ = try await client.query("Put\(noun)Policy", [(param, who), ("PolicyName", name), ("PolicyDocument", document)])
    }

    public func deleteInlinePolicy(_ principal: Principal, name: String) async throws(ActionError) {
        let (noun, param, who) = Self.kind(principal)
        do {
            _ = try await client.query("Delete\(noun)Policy", [(param, who), ("PolicyName", name)])
        } catch where Self.isMissingPolicy(error, principal: principal, policy: name) {
            return
        }
    }

    public func listAccessKeys(userName: String) async throws(ActionError) -> [AccessKey] {
        var keys: [AccessKey] = []
        var marker: String?
        for _ in 0..<1000 {
            var params = [("UserName", userName)]
            if let marker { params.append(("Marker", marker)) }
            let tree = try await client.query("ListAccessKeys", params)
            let result = tree.child("ListAccessKeysResult") ?? tree
            keys += result.items("AccessKeyMetadata").compactMap { m in
                guard let id = m.nonEmpty("AccessKeyId") else { return nil }
                return AccessKey(id: id, userName: m.string("UserName") ?? userName, status: m.string("Status") ?? "", createDate: m.nonEmpty("CreateDate"))
            }
            guard result.bool("IsTruncated") == true, let next = result.nonEmpty("Marker") else { break }
            marker = next
        }
        return keys
    }

    public func updateAccessKey(userName: String, accessKeyId: String, status: String) async throws(ActionError) {
        _ = try await client.query("UpdateAccessKey", [("UserName", userName), ("AccessKeyId", accessKeyId), ("Status", status)])
    }

    public func loginProfile(userName: String) async throws(ActionError) -> LoginProfile? {
        let tree: XMLTree
        do {
            tree = try await client.query("GetLoginProfile", [("UserName", userName)])
        } catch where error.code == "NoSuchEntity" && !error.message.lowercased().hasPrefix("the user with name") {
            return nil
        }
        guard let profile = tree.descendant("LoginProfile") else {
            throw .permanent("InvalidResponse", "GetLoginProfile answered without a LoginProfile")
        }
        return LoginProfile(
            userName: profile.string("UserName") ?? userName, createDate: profile.nonEmpty("CreateDate"),
            passwordResetRequired: profile.bool("PasswordResetRequired") ?? false)
    }

    public func deleteLoginProfile(userName: String) async throws(ActionError) {
        _ = try await client.query("DeleteLoginProfile", [("UserName", userName)])
    }
}
