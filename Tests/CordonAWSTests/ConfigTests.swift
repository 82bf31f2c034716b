import CordonCore
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

final class ConfigTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-aws-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func write(_ name: String, _ text: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    static let neverAssume: AssumeRoleFunction = { _, input throws(ActionError) in
        throw .permanent("Unexpected", "assumed \(input.roleArn)")
    }

    func resolve(_ env: [String: String], assume: @escaping AssumeRoleFunction = neverAssume) async throws(ActionError) -> AWSCredentials {
        try await CredentialChain.provider(AWSConfig(environment: env), assumeRole: assume).credentials()
    }

    func testEndpointsAndRegions() throws {
        let plain = AWSConfig(environment: ["AWS_REGION": "eu-west-1"])
        XCTAssertEqual(try plain.region(), "eu-west-1")
        XCTAssertEqual(try plain.region("ap-south-1"), "ap-south-1")
        XCTAssertEqual(try AWSConfig(environment: ["AWS_DEFAULT_REGION": "us-west-2"]).region(), "us-west-2")
        XCTAssertThrowsError(try AWSConfig(environment: ["HOME": dir.path]).region()) { e in
            XCTAssertTrue("\(e)".contains("AWS_REGION"))
        }
        XCTAssertEqual(try plain.endpoint(.ec2, region: "eu-west-1").url, "https://ec2.eu-west-1.amazonaws.com")
        let iam = try plain.endpoint(.iam, region: "eu-west-1")
        XCTAssertEqual(iam.url, "https://iam.amazonaws.com")
        XCTAssertEqual(iam.signingRegion, "us-east-1")
        XCTAssertEqual(try plain.endpoint(.sts, region: "eu-west-1").url, "https://sts.eu-west-1.amazonaws.com")
        XCTAssertEqual(try plain.endpoint(.s3, region: "eu-west-1").url, "https://s3.eu-west-1.amazonaws.com")
        XCTAssertEqual(try plain.endpoint(.cloudtrail, region: "eu-west-1").url, "https://cloudtrail.eu-west-1.amazonaws.com")
        XCTAssertEqual(try plain.endpoint(.ec2, region: "cn-north-1").url, "https://ec2.cn-north-1.amazonaws.com.cn")

        let custom = AWSConfig(environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:5000/", "AWS_ENDPOINT_URL_EC2": "http://localhost:4566/base"])
        let ec2 = try custom.endpoint(.ec2, region: "eu-west-1")
        XCTAssertEqual(ec2.host, "localhost:4566")
        XCTAssertEqual(ec2.basePath, "/base")
        XCTAssertEqual(ec2.scheme, "http")
        XCTAssertEqual(try custom.endpoint(.sns, region: "eu-west-1").url, "http://127.0.0.1:5000")
        XCTAssertEqual(try custom.endpoint(.iam, region: "eu-west-1").signingRegion, "us-east-1")
        XCTAssertEqual(try AWSConfig(environment: ["AWS_ENDPOINT_URL_CLOUDTRAIL": "https://ct.example:443"]).endpoint(.cloudtrail, region: "x").host, "ct.example")
        XCTAssertThrowsError(try AWSConfig(environment: ["AWS_ENDPOINT_URL_S3": "not a url"]).endpoint(.s3, region: "x")) { e in
            XCTAssertTrue("\(e)".contains("AWS_ENDPOINT_URL_S3"))
        }
    }

    func testEnvironmentCredentials() async throws {
        let c = try await resolve(["AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET", "AWS_SESSION_TOKEN": "TOKEN"])
        XCTAssertEqual(c, AWSCredentials(accessKeyId: "AKID", secretAccessKey: "SECRET", sessionToken: "TOKEN"))
        do {
            _ = try await resolve(["AWS_ACCESS_KEY_ID": "AKID", "HOME": dir.path])
            XCTFail("expected an error")
        } catch {
            XCTAssertTrue(error.message.contains("AWS_SECRET_ACCESS_KEY"))
        }
    }

    func testNoCredentialsTellsWhatToSet() async {
        do {
            _ = try await resolve(["HOME": dir.path])
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.code, "NoCredentials")
            XCTAssertTrue(error.message.hasPrefix("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"), error.message)
            XCTAssertTrue(error.message.contains("AWS_PROFILE"))
        }
    }

    func testProfilesFromSharedFiles() async throws {
        let creds = try write(
            "credentials",
            """
            # comment
            [default]
            aws_access_key_id = DEFAULTKEY
            aws_secret_access_key = DEFAULTSECRET

            [dev]
            aws_access_key_id=DEVKEY
            aws_secret_access_key=DEVSECRET
            aws_session_token = DEVTOKEN
            """)
        let config = try write(
            "config",
            """
            [default]
            region = eu-central-1
            [profile dev]
            region = us-west-1
            [profile responder]
            role_arn = arn:aws:iam::222222222222:role/CordonResponder
            source_profile = dev
            external_id = ext-123
            role_session_name = cordon-test
            [profile broken]
            role_arn = arn:aws:iam::1:role/X
            [sso-session x]
            sso_region = us-east-1
            """)
        let base = ["HOME": dir.path, "AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": config]
        let d = try await resolve(base)
        XCTAssertEqual(d.accessKeyId, "DEFAULTKEY")
        XCTAssertEqual(try AWSConfig(environment: base).region(), "eu-central-1")

        var dev = base
        dev["AWS_PROFILE"] = "dev"
        let devCreds = try await resolve(dev)
        XCTAssertEqual(devCreds, AWSCredentials(accessKeyId: "DEVKEY", secretAccessKey: "DEVSECRET", sessionToken: "DEVTOKEN"))
        XCTAssertEqual(try AWSConfig(environment: dev).region(), "us-west-1")

        var responder = base
        responder["AWS_PROFILE"] = "responder"
        let seen = InputBox()
        let assumed = try await resolve(responder) { source, input throws(ActionError) in
            seen.set(source, input)
            return AWSCredentials(accessKeyId: "ASIAROLE", secretAccessKey: "ROLESECRET", sessionToken: "ROLETOKEN", expiration: AWSDate(secondsSince1970: 4_000_000_000))
        }
        XCTAssertEqual(assumed.accessKeyId, "ASIAROLE")
        XCTAssertEqual(seen.source?.accessKeyId, "DEVKEY")
        XCTAssertEqual(seen.input?.roleArn, "arn:aws:iam::222222222222:role/CordonResponder")
        XCTAssertEqual(seen.input?.externalId, "ext-123")
        XCTAssertEqual(seen.input?.sessionName, "cordon-test")

        for (profile, expected) in [("broken", "source_profile"), ("missing", "AWS_PROFILE")] {
            var env = base
            env["AWS_PROFILE"] = profile
            do {
                _ = try await resolve(env)
                XCTFail("expected an error for \(profile)")
            } catch {
                XCTAssertTrue(error.message.contains(expected), error.message)
            }
        }
    }

    func testAssumeRoleCachesAndSharesOneRefresh() async throws {
        let counter = Counter()
        let now = Clock(1_000_000)
        let provider = AssumeRoleCredentialProvider(
            roleArn: "arn:aws:iam::1:role/R", source: StaticCredentialProvider(AWSCredentials(accessKeyId: "A", secretAccessKey: "S")),
            clock: { now.get() }
        ) { _, _ throws(ActionError) in
            let n = counter.next()
            try? await Task.sleep(nanoseconds: 50_000_000)
            return AWSCredentials(accessKeyId: "ASIA\(n)", secretAccessKey: "S", sessionToken: "T", expiration: AWSDate(secondsSince1970: now.get().secondsSince1970 + 3600))
        }
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<20 { group.addTask { try await provider.credentials().accessKeyId } }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        XCTAssertEqual(Set(ids), ["ASIA1"])
        XCTAssertEqual(counter.value, 1)
        now.set(1_000_000 + 3600 - 301)
        _ = try await provider.credentials()
        XCTAssertEqual(counter.value, 1, "still valid for more than 5 minutes")
        now.set(1_000_000 + 3600 - 299)
        let refreshed = try await provider.credentials()
        XCTAssertEqual(refreshed.accessKeyId, "ASIA2", "refreshed 5 minutes before expiry")
    }

    func testErrorBodies() {
        func map(_ status: Int, _ body: String, _ headers: [(name: String, value: String)] = [], service: AWSService = .ec2, op: String = "Op") -> ActionError {
            AWSErrorMapper.error(service: service, operation: op, status: status, headers: headers, body: Array(body.utf8))
        }
        let ec2 = map(400, "<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>The instance ID 'i-1' does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>")
        XCTAssertEqual(ec2, .permanent("InvalidInstanceID.NotFound", "The instance ID 'i-1' does not exist"))
        let iam = map(
            404, "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The user with name bob cannot be found.</Message></Error></ErrorResponse>",
            service: .iam)
        XCTAssertEqual(iam, .permanent("NoSuchEntity", "The user with name bob cannot be found."))
        let s3 = map(404, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>b</BucketName></Error>", service: .s3)
        XCTAssertEqual(s3.code, "NoSuchBucket")
        XCTAssertEqual(map(503, "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>", service: .s3).retryable, true)
        let json = map(400, #"{"__type":"com.amazonaws.cloudtrail.v20131101#TrailNotFoundException","Message":"Unknown trail: t"}"#, service: .cloudtrail)
        XCTAssertEqual(json, .permanent("TrailNotFoundException", "Unknown trail: t"))
        let header = map(400, #"{"message":"Rate exceeded"}"#, [("X-Amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/")], service: .cloudtrail)
        XCTAssertEqual(header, .retryable("ThrottlingException", "Rate exceeded"))
        let denied = map(403, "<ErrorResponse><Error><Code>AccessDenied</Code><Message>User: arn:aws:iam::1:user/x is not authorized</Message></Error></ErrorResponse>", service: .iam, op: "PutRolePolicy")
        XCTAssertEqual(denied.message, "User: arn:aws:iam::1:user/x is not authorized (Cordon needs iam:PutRolePolicy)")
        XCTAssertFalse(denied.retryable)
        let sns = map(403, "<ErrorResponse><Error><Code>AuthorizationError</Code><Message>not authorized</Message></Error></ErrorResponse>", service: .sns, op: "Publish")
        XCTAssertTrue(sns.message.hasSuffix("(Cordon needs sns:Publish)"))
        XCTAssertEqual(map(500, "garbage <<<").retryable, true)
        XCTAssertEqual(map(500, "garbage <<<").code, "InternalError")
        XCTAssertEqual(map(404, "").code, "NotFound")
        XCTAssertEqual(map(400, "<Response><Errors><Error><Code>PriorRequestNotComplete</Code></Error></Errors></Response>").retryable, true)
        XCTAssertEqual(map(400, "{\"__type\": 5}").code, "BadRequest")
        XCTAssertEqual(map(400, "<a><b>").code, "BadRequest")
    }

    func testXMLTreeRefusesDeepAndBrokenInput() {
        XCTAssertNil(XMLTree.parse(Array(String(repeating: "<a>", count: 10_000).utf8)))
        XCTAssertNil(XMLTree.parse(Array("<a><b></a>".utf8)))
        XCTAssertNil(XMLTree.parse([]))
        let t = XMLTree.parse(Array("<x:Root xmlns:x=\"u\"><x:Item>one &amp; two</x:Item><![CDATA[<c>]]></x:Root>".utf8))
        XCTAssertEqual(t?.name, "Root")
        XCTAssertEqual(t?.string("Item"), "one & two")
        XCTAssertEqual(t?.text, "<c>")
    }
}

final class InputBox: @unchecked Sendable {
    let lock = NSLock()
    var source: AWSCredentials?
    var input: AssumeRoleCredentialProvider.AssumeRoleInput?
    func set(_ s: AWSCredentials, _ i: AssumeRoleCredentialProvider.AssumeRoleInput) { lock.withLock { source = s; input = i } }
}

final class Counter: @unchecked Sendable {
    let lock = NSLock()
    var value = 0
    func next() -> Int { lock.withLock { value += 1; return value } }
}

final class Clock: @unchecked Sendable {
    let lock = NSLock()
    var now: Int
    init(_ n: Int) { now = n }
    func get() -> AWSDate { lock.withLock { AWSDate(secondsSince1970: now) } }
    func set(_ n: Int) { lock.withLock { now = n } }
}
