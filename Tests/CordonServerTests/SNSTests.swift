import CordonCore
import CordonServer
import CordonTestSupport
import Crypto
import Foundation
import Synchronization
import Testing
import _CryptoExtras

/// A signing key and its self-signed certificate, made with openssl.
struct SNSKeys {
    let certificatePEM: String
    let key: _RSA.Signing.PrivateKey

    static func make(in dir: TempDir) async throws -> SNSKeys {
        let key = dir.path + "/sns-key.pem"
        let cert = dir.path + "/sns-cert.pem"
        try await run(
            "/usr/bin/openssl",
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=sns.us-east-1.amazonaws.com"])
        return SNSKeys(
            certificatePEM: try String(contentsOfFile: cert, encoding: .utf8),
            key: try _RSA.Signing.PrivateKey(pemRepresentation: try String(contentsOfFile: key, encoding: .utf8)))
    }

    /// The message as SNS posts it, signed with SignatureVersion `version`.
    func message(
        _ fields: [String: String], version: String, certURL: String = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
    ) throws -> String {
        var fields = fields
        fields["SignatureVersion"] = version
        fields["SigningCertURL"] = certURL
        let canonical = SNSMessage(type: fields["Type"]!, fields: fields).canonicalString!
        let data = Array(canonical.utf8)
        let signature =
            version == "1"
            ? try key.signature(for: Insecure.SHA1.hash(data: data), padding: .insecurePKCS1v1_5)
            : try key.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5)
        fields["Signature"] = signature.rawRepresentation.base64EncodedString()
        var object = JSONObject()
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { object[k] = .string(v) }
        return String(decoding: JSONWriter.bytes(.object(object)), as: UTF8.self)
    }
}

@Suite("SNS endpoint") struct SNSTests {
    static let topic = "arn:aws:sns:us-east-1:111122223333:cordon-findings"

    @Test("confirms an allowed topic's subscription, takes signed notifications (v1 and v2), rejects the rest")
    func subscriptionAndNotifications() async throws {
        let keysDir = try TempDir("server", removeOnDeinit: true)
        let keys = try await SNSKeys.make(in: keysDir)
        let confirm = try await ConfirmServer()
        let h = try await ServerHarness { c in
            c.snsTopics = [Self.topic]
            c.snsCertificatePEM = keys.certificatePEM
            c.snsConfirmHosts = ["127.0.0.1:\(confirm.port)"]
        }
        func base(_ type: String, _ extra: [String: String]) -> [String: String] {
            var f = ["Type": type, "MessageId": UUID().uuidString, "TopicArn": Self.topic, "Timestamp": "2026-03-01T10:00:00.000Z"]
            for (k, v) in extra { f[k] = v }
            return f
        }
        let snsHeaders = [("Content-Type", "text/plain; charset=UTF-8"), ("x-amz-sns-message-type", "SubscriptionConfirmation")]

        // Subscription confirmation: the SubscribeURL is followed once.
        let confirmation = try keys.message(
            base(
                "SubscriptionConfirmation",
                ["Token": "tok-1", "Message": "You have chosen to subscribe", "SubscribeURL": "http://127.0.0.1:\(confirm.port)/confirm?Token=tok-1"]),
            version: "1")
        var (status, text) = try await h.post("/v1/sns", Array(confirmation.utf8), headers: snsHeaders)
        #expect(status == 200, "\(text)")
        #expect(confirm.hits.all == ["Token=tok-1"])

        // A SubscribeURL elsewhere is not followed.
        let elsewhere = try keys.message(
            base("SubscriptionConfirmation", ["Token": "tok-2", "Message": "m", "SubscribeURL": "https://attacker.example.com/confirm?Token=tok-2"]),
            version: "2")
        (status, text) = try await h.post("/v1/sns", Array(elsewhere.utf8), headers: snsHeaders)
        #expect(status == 403, "\(text)")

        // Another topic is neither confirmed nor accepted.
        var other = base("SubscriptionConfirmation", ["Token": "tok-3", "Message": "m", "SubscribeURL": "http://127.0.0.1:\(confirm.port)/confirm?Token=tok-3"])
        other["TopicArn"] = "arn:aws:sns:us-east-1:999999999999:other"
        (status, text) = try await h.post("/v1/sns", Array(try keys.message(other, version: "1").utf8), headers: snsHeaders)
        #expect(status == 403, "\(text)")
        #expect(confirm.hits.all.count == 1)

        // Notifications, signed with SHA1 (v1) and SHA256 (v2), with and without a Subject.
        for (i, version) in ["1", "2"].enumerated() {
            var fields = base("Notification", ["Message": findingJSON(id: "sns-\(version)")])
            if i == 0 { fields["Subject"] = "GuardDuty finding" }
            (status, text) = try await h.post("/v1/sns", Array(try keys.message(fields, version: version).utf8), headers: [("x-amz-sns-message-type", "Notification")])
            #expect(status == 200, "v\(version): \(text)")
            #expect(text.contains("sns-\(version)"))
        }
        #expect(try h.count(RecordKind.findingReceived) == 2)

        // Tampered message, unsigned message, unknown signature version: rejected, nothing journaled.
        let good = try keys.message(base("Notification", ["Message": findingJSON(id: "sns-tampered")]), version: "2")
        let tampered = good.replacingOccurrences(of: "sns-tampered", with: "sns-evil")
        (status, text) = try await h.post("/v1/sns", Array(tampered.utf8), headers: [])
        #expect(status == 403, "\(text)")
        #expect(text.contains("does not verify"))
        let unsigned = good.replacingOccurrences(of: "\"Signature\":", with: "\"Unsigned\":")
        #expect(try await h.post("/v1/sns", Array(unsigned.utf8), headers: []).0 == 403)
        let v3 = good.replacingOccurrences(of: "\"SignatureVersion\":\"2\"", with: "\"SignatureVersion\":\"3\"")
        #expect(try await h.post("/v1/sns", Array(v3.utf8), headers: []).0 == 403)
        #expect(try await h.post("/v1/sns", Array("not json".utf8), headers: []).0 == 400)
        #expect(try h.count(RecordKind.findingReceived) == 2)
        #expect(await h.eventually { h.action.count == 2 })

        await h.stop()
        await confirm.stop()
    }

    @Test("the signing certificate is fetched only from sns.<region>.amazonaws.com over https")
    func certificateHost() {
        #expect(SNSVerifier.isAWSHost("sns.us-east-1.amazonaws.com"))
        #expect(SNSVerifier.isAWSHost("sns.cn-north-1.amazonaws.com.cn"))
        #expect(!SNSVerifier.isAWSHost("sns.us-east-1.amazonaws.com.evil.com"))
        #expect(!SNSVerifier.isAWSHost("evil.com"))
        #expect(!SNSVerifier.isAWSHost("sqs.us-east-1.amazonaws.com"))
        #expect(!SNSVerifier.isAWSHost("sns..amazonaws.com"))
    }

    @Test("without a local certificate, a SigningCertURL that is not https on sns.<region>.amazonaws.com is refused, nothing fetched")
    func certificateURLRefused() async throws {
        let keysDir = try TempDir("server", removeOnDeinit: true)
        let keys = try await SNSKeys.make(in: keysDir)
        // No HTTP client: a fetch that were attempted would fail with 503, not 403.
        let verifier = SNSVerifier(localCertificatePEM: nil, http: nil)
        let fields = ["Type": "Notification", "MessageId": "m-1", "TopicArn": Self.topic, "Timestamp": "2026-03-01T10:00:00.000Z", "Message": "x"]
        for url in [
            "https://evil.example.com/SimpleNotificationService-1.pem", "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
            "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-1.pem", "https://sns.us-east-1.amazonaws.com/cert.txt", "",
        ] {
            for version in ["1", "2"] {
                let message = try SNSMessage.parse(Array(try keys.message(fields, version: version, certURL: url).utf8)).get()
                do {
                    try await verifier.verify(message)
                    Issue.record("\(url) v\(version) was accepted")
                } catch {
                    #expect(error.status == 403, "\(url): \(error.message)")
                    #expect(error.message.contains("is not an https .pem URL on an sns.<region>.amazonaws.com host"), "\(error.message)")
                }
            }
        }
        // An AWS host is the one place a certificate would be fetched from.
        let aws = try SNSMessage.parse(Array(try keys.message(fields, version: "2").utf8)).get()
        do {
            try await verifier.verify(aws)
            Issue.record("verified without a certificate")
        } catch {
            #expect(error.status == 503, "\(error.message)")
        }
    }

    @Test("the canonical strings follow the AWS documentation")
    func canonical() {
        let n = SNSMessage(type: "Notification", fields: ["Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": "hello", "Timestamp": "ts"])
        #expect(n.canonicalString == "Message\nhello\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n")
        let c = SNSMessage(
            type: "SubscriptionConfirmation",
            fields: ["Type": "SubscriptionConfirmation", "MessageId": "m", "TopicArn": "t", "Message": "x", "Timestamp": "ts", "Token": "k", "SubscribeURL": "u"])
        #expect(c.canonicalString == "Message\nx\nMessageId\nm\nSubscribeURL\nu\nTimestamp\nts\nToken\nk\nTopicArn\nt\nType\nSubscriptionConfirmation\n")
    }
}
