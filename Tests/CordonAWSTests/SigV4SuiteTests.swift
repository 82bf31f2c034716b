import CordonCore
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

/// AWS's published Signature Version 4 test suite (aws-sig-v4-test-suite): service
/// "service", us-east-1, 2015-08-30T12:36:00Z, the example keys. The suite encodes the
/// raw path once, as S3 does.
final class SigV4SuiteTests: XCTestCase {
    static let creds = AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    static let date = AWSDate(timestamp: "20150830T123600Z")!
    static let signer = SigV4Signer(service: "service", region: "us-east-1", doubleEncodePath: false, normalizePath: true)
    static let token =
        "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

    struct Vector {
        var name: String
        var method = "GET"
        var path = "/"
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        var body = ""
        var token: String?
        var signedHeaders = "host;x-amz-date"
        var signature: String
    }

    static let vectors: [Vector] = [
        Vector(name: "get-vanilla", signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        Vector(
            name: "get-vanilla-query-order-key-case", query: [("Param2", "value2"), ("Param1", "value1")],
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        Vector(name: "get-vanilla-empty-query-key", query: [("Param1", "value1")], signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"),
        Vector(
            name: "get-vanilla-query-unreserved",
            query: [("-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")],
            signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
        Vector(name: "get-vanilla-utf8-query", query: [("ሴ", "bar")], signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
        Vector(
            name: "get-unreserved", path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
        Vector(name: "get-utf8", path: "/ሴ", signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
        Vector(name: "get-space", path: "/example space/", signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"),
        Vector(
            name: "get-header-key-duplicate", headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
            signedHeaders: "host;my-header1;x-amz-date", signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
        Vector(
            name: "get-header-value-order", headers: [("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")],
            signedHeaders: "host;my-header1;x-amz-date", signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"),
        Vector(
            name: "get-header-value-trim", headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
            signedHeaders: "host;my-header1;my-header2;x-amz-date", signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
        Vector(name: "post-vanilla", method: "POST", signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        Vector(name: "post-vanilla-query", method: "POST", query: [("Param1", "value1")], signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
        Vector(
            name: "post-header-key-sort", method: "POST", headers: [("My-Header1", "value1")], signedHeaders: "host;my-header1;x-amz-date",
            signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
        Vector(
            name: "post-header-value-case", method: "POST", headers: [("My-Header1", "VALUE1")], signedHeaders: "host;my-header1;x-amz-date",
            signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
        Vector(
            name: "post-x-www-form-urlencoded", method: "POST", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "Param1=value1",
            signedHeaders: "content-type;host;x-amz-date", signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
        Vector(
            name: "post-x-www-form-urlencoded-parameters", method: "POST", headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf8")],
            body: "Param1=value1", signedHeaders: "content-type;host;x-amz-date",
            signature: "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"),
        Vector(
            name: "post-sts-header-before", method: "POST", token: token, signedHeaders: "host;x-amz-date;x-amz-security-token",
            signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
    ]

    func sign(_ v: Vector) -> (AWSRequest, SigV4Signer.Signature) {
        var request = AWSRequest(
            method: v.method, host: "example.amazonaws.com", path: v.path, query: v.query, headers: [("Host", "example.amazonaws.com")] + v.headers,
            body: Array(v.body.utf8))
        var creds = Self.creds
        creds.sessionToken = v.token
        let sig = Self.signer.signature(for: &request, credentials: creds, date: Self.date)
        return (request, sig)
    }

    func testPublishedVectors() {
        for v in Self.vectors {
            let (_, sig) = sign(v)
            XCTAssertEqual(sig.signature, v.signature, v.name)
            XCTAssertEqual(
                sig.authorization,
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=\(v.signedHeaders), Signature=\(v.signature)",
                v.name)
        }
    }

    func testVanillaIntermediateStrings() {
        let (request, sig) = sign(Self.vectors[0])
        XCTAssertEqual(
            sig.canonicalRequest,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(
            sig.stringToSign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
        XCTAssertEqual(request.header("x-amz-date"), "20150830T123600Z")
    }

    func testSessionTokenIsSentAndSigned() {
        let v = Self.vectors.first { $0.name == "post-sts-header-before" }!
        let (request, sig) = sign(v)
        XCTAssertEqual(request.header("X-Amz-Security-Token"), Self.token)
        XCTAssertTrue(sig.canonicalRequest.contains("\nx-amz-security-token:\(Self.token)\n"))
    }

    func testPathEncodingPerService() {
        var request = AWSRequest(method: "GET", host: "h", path: "/a b/ሴ/./c/../d$")
        XCTAssertEqual(request.wirePath, "/a%20b/%E1%88%B4/./c/../d%24")
        let ec2 = SigV4Signer(service: "ec2", region: "us-east-1").signature(for: &request, credentials: Self.creds, date: Self.date)
        XCTAssertEqual(ec2.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[1], "/a%2520b/%25E1%2588%25B4/d%2524")
        let s3 = SigV4Signer.s3(region: "us-east-1").signature(for: &request, credentials: Self.creds, date: Self.date)
        XCTAssertEqual(s3.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[1], "/a%20b/%E1%88%B4/./c/../d%24")
        XCTAssertEqual(request.header("x-amz-content-sha256"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertTrue(s3.signedHeaders.contains("x-amz-content-sha256"))
    }

    func testDates() {
        XCTAssertEqual(AWSDate(secondsSince1970: 1_440_938_160).timestamp, "20150830T123600Z")
        XCTAssertEqual(AWSDate(iso8601: "2015-08-30T12:36:00Z")?.secondsSince1970, 1_440_938_160)
        XCTAssertEqual(AWSDate(iso8601: "2015-08-30T12:36:00.123Z")?.secondsSince1970, 1_440_938_160)
        XCTAssertEqual(AWSDate(secondsSince1970: 951_782_400).timestamp, "20000229T000000Z")
        XCTAssertNil(AWSDate(iso8601: "yesterday"))
        XCTAssertNil(AWSDate(timestamp: "2015-08-30T12:3"))
    }

    func testCredentialsNeverPrintSecrets() {
        let c = AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "SECRETSECRET", sessionToken: "TOKENTOKEN")
        var dumped = ""
        dump(c, to: &dumped)
        for text in [c.description, c.debugDescription, "\(c)", String(reflecting: c), dumped] {
            XCTAssertFalse(text.contains("SECRETSECRET"), text)
            XCTAssertFalse(text.contains("TOKENTOKEN"), text)
            XCTAssertTrue(text.contains("AKIDEXAMPLE"), text)
        }
    }
}
