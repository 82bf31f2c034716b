import CordonCloud
import CordonCore
import Crypto
import Foundation

/// S3 bucket-level public access block (REST-XML, path style).
public struct AWSS3: S3API {
    public let client: AWSServiceClient

    public init(client: AWSServiceClient) { self.client = client }

    package static func bucketPath(_ bucket: String) -> String { "/" + bucket }

    public func publicAccessBlock(bucket: String) async throws(ActionError) -> PublicAccessBlock? {
        let response: AWSResponse
        do {
            response = try await client.rest("GET", path: Self.bucketPath(bucket), query: [("publicAccessBlock", "")], operation: "GetBucketPublicAccessBlock")
        } catch where error.code == "NoSuchPublicAccessBlockConfiguration" {
            return nil
        }
        guard let tree = XMLTree.parse(response.body) else {
            throw .permanent("InvalidResponse", "GetPublicAccessBlock answered with a body that is not XML")
        }
        return PublicAccessBlock(
            blockPublicAcls: tree.bool("BlockPublicAcls") ?? false, ignorePublicAcls: tree.bool("IgnorePublicAcls") ?? false,
            blockPublicPolicy: tree.bool("BlockPublicPolicy") ?? false, restrictPublicBuckets: tree.bool("RestrictPublicBuckets") ?? false)
    }

    public func putPublicAccessBlock(bucket: String, _ c: PublicAccessBlock) async throws(ActionError) {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <PublicAccessBlockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\
            <BlockPublicAcls>\(c.blockPublicAcls)</BlockPublicAcls>\
            <IgnorePublicAcls>\(c.ignorePublicAcls)</IgnorePublicAcls>\
            <BlockPublicPolicy>\(c.blockPublicPolicy)</BlockPublicPolicy>\
            <RestrictPublicBuckets>\(c.restrictPublicBuckets)</RestrictPublicBuckets>\
            </PublicAccessBlockConfiguration>
            """
        let body = Array(xml.utf8)
        let md5 = Data(Insecure.MD5.hash(data: body)).base64EncodedString()
        _ = try await client.rest(
            "PUT", path: Self.bucketPath(bucket), query: [("publicAccessBlock", "")],
            headers: [("Content-Type", "application/xml"), ("Content-MD5", md5)], body: body, operation: "PutBucketPublicAccessBlock")
    }

    public func deletePublicAccessBlock(bucket: String) async throws(ActionError) {
        _ = try await client.rest("DELETE", path: Self.bucketPath(bucket), query: [("publicAccessBlock", "")], operation: "DeleteBucketPublicAccessBlock")
    }
}

/// CloudTrail over JSON 1.1.
public struct AWSCloudTrail: CloudTrailAPI {
    public let client: AWSServiceClient
    package static let target = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101"

    public init(client: AWSServiceClient) { self.client = client }

    public func isLogging(trail: String) async throws(ActionError) -> Bool {
        let out = try await client.json(targetPrefix: Self.target, "GetTrailStatus", ["Name": .string(trail)])
        guard let logging = out["IsLogging"]?.boolValue else {
            throw .permanent("InvalidResponse", "GetTrailStatus answered without IsLogging")
        }
        return logging
    }

    public func startLogging(trail: String) async throws(ActionError) {
        _ = try await client.json(targetPrefix: Self.target, "StartLogging", ["Name": .string(trail)])
    }

    public func stopLogging(trail: String) async throws(ActionError) {
        _ = try await client.json(targetPrefix: Self.target, "StopLogging", ["Name": .string(trail)])
    }
}

/// SNS over the query API (2010-03-31).
public struct AWSSNS: SNSAPI {
    public let client: AWSServiceClient

    public init(client: AWSServiceClient) { self.client = client }

    public func publish(topicArn: String, message: String, subject: String?) async throws(ActionError) -> String {
        var params = [("TopicArn", topicArn), ("Message", message)]
        if let subject { params.append(("Subject", subject)) }
        let tree = try await client.query("Publish", params)
        guard let id = tree.descendant("MessageId").map({ $0.text.trimmingCharacters(in: .whitespacesAndNewlines) }), !id.isEmpty else {
            throw .permanent("InvalidResponse", "Publish answered without a MessageId")
        }
        return id
    }
}

/// Who the credentials are (`sts:GetCallerIdentity`).
public struct CallerIdentity: Sendable, Equatable {
    public var account: String
    public var arn: String
    public var userId: String
}

/// STS over the query API (2011-06-15), regional endpoints.
public struct AWSSTS: Sendable {
    public let client: AWSServiceClient

    public init(client: AWSServiceClient) { self.client = client }

    public func getCallerIdentity() async throws(ActionError) -> CallerIdentity {
        let tree = try await client.query("GetCallerIdentity")
        guard let result = tree.descendant("GetCallerIdentityResult"), let account = result.nonEmpty("Account") else {
            throw .permanent("InvalidResponse", "GetCallerIdentity answered without an Account")
        }
        return CallerIdentity(account: account, arn: result.string("Arn") ?? "", userId: result.string("UserId") ?? "")
    }

    /// Temporary credentials for the role.
    public func assumeRole(_ input: AssumeRoleCredentialProvider.AssumeRoleInput) async throws(ActionError) -> AWSCredentials {
        var params = [("RoleArn", input.roleArn), ("RoleSessionName", input.sessionName), ("DurationSeconds", String(input.durationSeconds))]
        if let externalId = input.externalId { params.append(("ExternalId", externalId)) }
        let tree = try await client.query("AssumeRole", params)
        guard let c = tree.descendant("Credentials"), let id = c.nonEmpty("AccessKeyId"), let secret = c.nonEmpty("SecretAccessKey") else {
            throw .permanent("InvalidResponse", "AssumeRole of \(input.roleArn) answered without credentials")
        }
        return AWSCredentials(
            accessKeyId: id, secretAccessKey: secret, sessionToken: c.nonEmpty("SessionToken"), expiration: c.nonEmpty("Expiration").flatMap(AWSDate.init(iso8601:)))
    }
}
