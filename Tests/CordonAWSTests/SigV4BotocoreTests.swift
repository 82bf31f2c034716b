import CordonCore
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

/// Differential test: randomized requests signed by our signer and by botocore's
/// `SigV4Auth` / `S3SigV4Auth` at the same timestamp must carry the same Authorization.
final class SigV4BotocoreTests: XCTestCase {
    static let script = #"""
        import sys, json, base64, datetime
        import botocore.auth
        from botocore.auth import SigV4Auth, S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        out = []
        for line in sys.stdin:
            c = json.loads(line)
            ts = datetime.datetime.fromtimestamp(c["time"], tz=datetime.timezone.utc).replace(tzinfo=None)
            botocore.auth.get_current_datetime = lambda ts=ts: ts
            req = AWSRequest(method=c["method"], url=c["url"], data=base64.b64decode(c["body"]), params=[tuple(p) for p in c["query"]])
            for name, value in c["headers"]:
                req.headers[name] = value
            creds = Credentials(c["key"], c["secret"], c["token"])
            auth = (S3SigV4Auth if c["s3"] else SigV4Auth)(creds, c["service"], c["region"])
            auth.add_auth(req)
            out.append(req.headers["Authorization"])
        print(json.dumps(out))
        """#

    struct Case {
        var request: AWSRequest
        var signer: SigV4Signer
        var credentials: AWSCredentials
        var date: AWSDate
    }

    static func randomCases(count: Int, seed: UInt64) -> [Case] {
        var rng = SplitMix64(seed: seed)
        func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
        let pathPieces = [
            "a", "bucket", "key with space", "ሴ", "é", "%41", "x+y", "a=b", "semi;colon", "comma,", "tilde~", "$dollar", "(paren)", "*", "!", "'", "@",
            ":", ".", "..", "-_.", "日本", "😀", "q?x", "h#f", "", "UPPER", "0123",
        ]
        let queryKeys = ["Action", "Version", "b", "B", "a", "a", "key with space", "ሴ", "x+y", "=", "&", "list-type", "prefix", "Filter.1.Name", "~", "%"]
        let queryValues = ["", "v", "value 1", "a/b", "a&b=c", "ሴ", "+", "%20", "*", "2016-11-15", "DescribeInstances", "😀", "~x"]
        let headerNames = ["X-Custom", "x-custom", "X-CUSTOM", "Content-Type", "X-Amz-Target", "My-Header", "x-amz-meta-data", "Accept", "Cache-Control"]
        let headerValues = ["v", "  leading", "trailing  ", "in   between", "\ttab\tvalue ", "a,b", "\"a   b\"", "application/x-amz-json-1.1", "", "  "]
        let services = ["ec2", "iam", "sts", "sns", "sqs", "cloudtrail", "s3", "s3"]
        let regions = ["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1"]
        let hosts = ["example.amazonaws.com", "127.0.0.1:5000", "ec2.eu-west-1.amazonaws.com", "localhost:4566"]
        var cases: [Case] = []
        for _ in 0..<count {
            let service = pick(services)
            let s3 = service == "s3"
            var path = ""
            for _ in 0..<Int.random(in: 0...4, using: &rng) { path += "/" + pick(pathPieces) }
            if path.isEmpty || Bool.random(using: &rng) { path += "/" }
            var query: [(name: String, value: String)] = []
            for _ in 0..<Int.random(in: 0...5, using: &rng) { query.append((pick(queryKeys), pick(queryValues))) }
            var headers: [(name: String, value: String)] = []
            for _ in 0..<Int.random(in: 0...4, using: &rng) { headers.append((pick(headerNames), pick(headerValues))) }
            var body: [UInt8] = []
            if Bool.random(using: &rng) {
                body = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
            let token: String? = Bool.random(using: &rng) ? "FQoGZXIvYXdzE" + String(UInt64.random(in: 0...UInt64.max, using: &rng), radix: 36) + "+/=" : nil
            let request = AWSRequest(
                method: pick(["GET", "POST", "PUT", "DELETE", "HEAD"]), scheme: pick(["https", "http"]), host: pick(hosts), path: path, query: query,
                headers: headers, body: body)
            let region = pick(regions)
            let signer = s3 ? SigV4Signer.s3(region: region) : SigV4Signer(service: service, region: region)
            let creds = AWSCredentials(
                accessKeyId: "AKIA" + String(Int.random(in: 100_000...999_999, using: &rng)),
                secretAccessKey: "secret/" + String(UInt64.random(in: 0...UInt64.max, using: &rng), radix: 16) + "+key", sessionToken: token)
            cases.append(Case(request: request, signer: signer, credentials: creds, date: AWSDate(secondsSince1970: Int.random(in: 1_400_000_000...2_000_000_000, using: &rng))))
        }
        return cases
    }

    func testMatchesBotocoreOnRandomizedRequests() throws {
        let cases = Self.randomCases(count: 200, seed: 0xC0FFEE)
        var input = Data()
        for c in cases {
            let line: JSONValue = [
                "time": .number(JSONNumber(c.date.secondsSince1970)),
                "method": .string(c.request.method),
                "url": .string("\(c.request.scheme)://\(c.request.host)\(c.request.wirePath)"),
                "query": .array(c.request.query.map { [.string($0.name), .string($0.value)] }),
                "headers": .array(c.request.headers.map { [.string($0.name), .string($0.value)] }),
                "body": .string(Data(c.request.body).base64EncodedString()),
                "key": .string(c.credentials.accessKeyId),
                "secret": .string(c.credentials.secretAccessKey),
                "token": c.credentials.sessionToken.map { .string($0) } ?? .null,
                "s3": .bool(c.signer.service == "s3"),
                "service": .string(c.signer.service),
                "region": .string(c.signer.region),
            ]
            input.append(contentsOf: JSONWriter.bytes(line))
            input.append(0x0A)
        }
        let scriptURL = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-sigv4-botocore-\(getpid()).py")
        try Self.script.write(to: scriptURL, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: scriptURL) }
        let (status, out, err) = try runProcess(["python3", scriptURL.path], stdin: input)
        XCTAssertEqual(status, 0, "python3 with botocore failed (CI needs `pip install botocore`): \(err)")
        guard status == 0 else { return }
        let parsed = try JSONParser.parse(Array(out))
        let expected = parsed.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertEqual(expected.count, cases.count)
        var mismatches = 0
        for (i, (c, theirs)) in zip(cases, expected).enumerated() {
            var request = c.request
            c.signer.sign(&request, credentials: c.credentials, date: c.date)
            let ours = request.header("Authorization") ?? ""
            if ours != theirs {
                mismatches += 1
                if mismatches <= 5 {
                    XCTFail("case \(i) (\(c.signer.service) \(c.request.method) \(c.request.url)):\n ours:     \(ours)\n botocore: \(theirs)")
                }
            }
        }
        XCTAssertEqual(mismatches, 0, "\(mismatches) of \(cases.count) signatures differ from botocore")
    }
}
