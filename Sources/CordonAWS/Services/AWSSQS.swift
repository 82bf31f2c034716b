import CordonCloud
import CordonCore
import Foundation

/// One message as `ReceiveMessage` returns it.
public struct SQSMessage: Sendable, Equatable {
    public var messageId: String
    public var receiptHandle: String
    public var body: String
    /// `ApproximateReceiveCount` (1 on the first delivery).
    public var receiveCount: Int

    public init(messageId: String, receiptHandle: String, body: String, receiveCount: Int) {
        self.messageId = messageId
        self.receiptHandle = receiptHandle
        self.body = body
        self.receiveCount = receiveCount
    }
}

/// SQS in the AWS JSON 1.0 protocol (`X-Amz-Target: AmazonSQS.<Operation>`), which AWS
/// prefers for SQS and moto 5 accepts.
public struct AWSSQS: Sendable {
    public let client: AWSServiceClient
    package static let target = "AmazonSQS"

    public init(client: AWSServiceClient) { self.client = client }

    /// The region a queue URL names (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`), if any.
    public static func region(ofQueueURL url: String) -> String? {
        guard let host = URLComponents(string: url)?.host else { return nil }
        let parts = host.split(separator: ".")
        guard parts.count >= 4, parts[0] == "sqs", parts[2] == "amazonaws" else { return nil }
        return String(parts[1])
    }

    /// Long-polls for up to `max` (1–10) messages, waiting at most `wait` seconds (0–20);
    /// each received message is invisible to other consumers for `visibilityTimeout` seconds.
    public func receiveMessage(queueURL: String, max: Int = 10, wait: Int = 20, visibilityTimeout: Int? = nil) async throws(ActionError) -> [SQSMessage] {
        var body: JSONObject = [
            "QueueUrl": .string(queueURL), "MaxNumberOfMessages": .number(JSONNumber(Swift.max(1, Swift.min(10, max)))),
            "WaitTimeSeconds": .number(JSONNumber(Swift.max(0, Swift.min(20, wait)))),
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"], "AttributeNames": ["ApproximateReceiveCount"],
        ]
        if let visibilityTimeout { body["VisibilityTimeout"] = .number(JSONNumber(visibilityTimeout)) }
        let answer = try await client.json(targetPrefix: Self.target, "ReceiveMessage", .object(body), version: "1.0")
        return (answer["Messages"]?.arrayValue ?? []).compactMap { m in
            guard let id = m["MessageId"]?.stringValue, let handle = m["ReceiptHandle"]?.stringValue else { return nil }
            let count = m["Attributes"]?["ApproximateReceiveCount"]?.stringValue.flatMap { Int($0) } ?? 1
            return SQSMessage(messageId: id, receiptHandle: handle, body: m["Body"]?.stringValue ?? "", receiveCount: count)
        }
    }

    /// Deletes messages by receipt handle (up to 10 per call; more are split); returns the
    /// handles that failed with the reason.
    @discardableResult
    public func deleteMessages(queueURL: String, receiptHandles: [String]) async throws(ActionError) -> [String: String] {
        var failed: [String: String] = [:]
        var start = 0
        while start < receiptHandles.count {
            let chunk = Array(receiptHandles[start..<Swift.min(start + 10, receiptHandles.count)])
            let entries: [JSONValue] = chunk.enumerated().map { i, h in ["Id": .string("m\(i)"), "ReceiptHandle": .string(h)] }
            let answer = try await client.json(
                targetPrefix: Self.target, "DeleteMessageBatch", ["QueueUrl": .string(queueURL), "Entries": .array(entries)], version: "1.0")
            for f in answer["Failed"]?.arrayValue ?? [] {
                if let id = f["Id"]?.stringValue, let i = Int(id.dropFirst()), chunk.indices.contains(i) {
                    failed[chunk[i]] = f["Message"]?.stringValue ?? f["Code"]?.stringValue ?? "failed"
                }
            }
            start += 10
        }
        return failed
    }

    /// Deletes one message.
    public func deleteMessage(queueURL: String, receiptHandle: String) async throws(ActionError) {
        _ = try await client.json(
            targetPrefix: Self.target, "DeleteMessage", ["QueueUrl": .string(queueURL), "ReceiptHandle": .string(receiptHandle)], version: "1.0")
    }

    /// Sets the visibility timeout of in-flight messages (up to 10 per call; more are split).
    public func changeVisibility(queueURL: String, receiptHandles: [String], timeout: Int) async throws(ActionError) {
        var start = 0
        while start < receiptHandles.count {
            let chunk = Array(receiptHandles[start..<Swift.min(start + 10, receiptHandles.count)])
            let entries: [JSONValue] = chunk.enumerated().map { i, h in
                ["Id": .string("m\(i)"), "ReceiptHandle": .string(h), "VisibilityTimeout": .number(JSONNumber(timeout))]
            }
            _ = try await client.json(
                targetPrefix: Self.target, "ChangeMessageVisibilityBatch", ["QueueUrl": .string(queueURL), "Entries": .array(entries)], version: "1.0")
            start += 10
        }
    }

    /// Sends a message (tests and tools); returns its id.
    public func sendMessage(queueURL: String, body: String) async throws(ActionError) -> String {
        let answer = try await client.json(
            targetPrefix: Self.target, "SendMessage", ["QueueUrl": .string(queueURL), "MessageBody": .string(body)], version: "1.0")
        return answer["MessageId"]?.stringValue ?? ""
    }

    /// Creates a queue (tests and tools); returns its URL.
    public func createQueue(name: String, attributes: [String: String] = [:]) async throws(ActionError) -> String {
        var body: JSONObject = ["QueueName": .string(name)]
        if !attributes.isEmpty { body["Attributes"] = .object(JSONObject(uniqueKeysWithValues: attributes.map { ($0.key, JSONValue.string($0.value)) })) }
        let answer = try await client.json(targetPrefix: Self.target, "CreateQueue", .object(body), version: "1.0")
        guard let url = answer["QueueUrl"]?.stringValue else { throw .permanent("InvalidResponse", "CreateQueue answered without a QueueUrl") }
        return url
    }
}

extension AWSSQS {
    /// A client for the queue at `queueURL`: the region the URL names (else the
    /// environment's), the endpoint from `AWS_ENDPOINT_URL_SQS`/`AWS_ENDPOINT_URL`, else
    /// the queue URL's own scheme and host; the cloud's default credentials.
    public static func forQueue(_ queueURL: String, cloud: AWSCloud) async throws(ActionError) -> AWSSQS {
        let region: String
        if let named = Self.region(ofQueueURL: queueURL) { region = named } else { region = try cloud.config.region() }
        var endpoint = try cloud.config.endpoint(.sqs, region: region)
        let overridden = cloud.config.environment[AWSService.sqs.endpointVariable] != nil || cloud.config.environment["AWS_ENDPOINT_URL"] != nil
        if !overridden, let url = URLComponents(string: queueURL), let scheme = url.scheme, let host = url.host {
            endpoint = AWSEndpoint(scheme: scheme, host: url.port.map { "\(host):\($0)" } ?? host, signingRegion: region)
        }
        var client = AWSServiceClient(service: .sqs, endpoint: endpoint, credentials: try await cloud.defaultCredentials(), http: cloud.http)
        client.observer = cloud.options.observer
        return AWSSQS(client: client)
    }
}
