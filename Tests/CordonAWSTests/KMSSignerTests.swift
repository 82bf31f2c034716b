import CordonCore
import CordonTestSupport
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud

/// `KMSSigner` and `AWSKMS` against moto's KMS, the signatures checked by our verifier and
/// by `openssl dgst`.
final class KMSSignerTests: XCTestCase {
    static let http = AWSHTTPClient()
    /// Credentials that must never show in a message.
    static let secret = "kms-test-SECRET-never-printed"

    func cloud() async throws -> AWSCloud {
        let env = try await offPool { try Moto.environment(["AWS_SECRET_ACCESS_KEY": Self.secret]) }
        return AWSCloud(options: AWSCloudOptions(environment: env), http: Self.http)
    }

    func kms(_ cloud: AWSCloud) async throws -> AWSKMS {
        AWSKMS(client: try await cloud.client(.kms, CloudScope(region: "us-east-1")))
    }

    func testSignsWithAP256KeyThatOurVerifierAndOpenSSLAccept() async throws {
        let cloud = try await cloud()
        let arn = try await kms(cloud).createKey(keySpec: "ECC_NIST_P256", keyUsage: "SIGN_VERIFY", description: "cordon journal")
        let signer = try await KMSSigner.open("kms:" + arn, cloud: cloud)
        XCTAssertEqual(signer.algorithm, .ecdsaP256SHA256)
        XCTAssertTrue(signer.isRemote)
        XCTAssertEqual(signer.source, arn)
        XCTAssertEqual(signer.key.region, "us-east-1")
        XCTAssertEqual(signer.fingerprint.count, 64)

        let message = Checkpoint.message(seq: 42, hash: String(repeating: "ab", count: 32))
        let signature = try await signer.sign(message)
        var tampered = message
        tampered[tampered.count - 1] ^= 0x01
        let key = try JournalPublicKey(algorithm: .ecdsaP256SHA256, der: signer.publicKeyDER)
        XCTAssertTrue(key.isValidSignature(signature, for: message))
        XCTAssertFalse(key.isValidSignature(signature, for: tampered))
        XCTAssertEqual(signer.publicKey, key)
        // ECDSA signatures differ each time; each verifies.
        let again = try await signer.sign(message)
        XCTAssertTrue(key.isValidSignature(again, for: message))

        let dir = try TempDir("kms-openssl", removeOnDeinit: true)
        let pub = try dir.write("pub.pem", key.pem)
        let sig = dir.url.appendingPathComponent("sig.der")
        try Data(signature).write(to: sig)
        let good = dir.url.appendingPathComponent("msg")
        try Data(message).write(to: good)
        let bad = dir.url.appendingPathComponent("tampered")
        try Data(tampered).write(to: bad)
        let verify = { @Sendable (file: URL) throws -> (Int32, String) in
            let (status, out, err) = try runProcess(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", sig.path, file.path])
            return (status, String(decoding: out, as: UTF8.self) + err)
        }
        let (okStatus, okText) = try await offPool { try verify(good) }
        XCTAssertEqual(okStatus, 0, okText)
        XCTAssertTrue(okText.contains("Verified OK"), okText)
        let (badStatus, badText) = try await offPool { try verify(bad) }
        XCTAssertNotEqual(badStatus, 0, badText)
        XCTAssertTrue(badText.contains("Verification failure"), badText)
    }

    func testRefusesAKeyThatIsNotAP256SigningKey() async throws {
        let cloud = try await cloud()
        let kms = try await kms(cloud)
        for (spec, usage) in [("RSA_2048", "SIGN_VERIFY"), ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"), ("ECC_NIST_P384", "SIGN_VERIFY"), ("ECC_NIST_P256", "KEY_AGREEMENT")] {
            let arn = try await kms.createKey(keySpec: spec, keyUsage: usage, description: "not a journal key")
            do {
                _ = try await KMSSigner.open(arn, cloud: cloud)
                XCTFail("\(spec)/\(usage) was accepted")
            } catch {
                XCTAssertEqual(error.code, "InvalidKey", "\(spec)/\(usage): \(error)")
                XCTAssertFalse(error.retryable)
                XCTAssertTrue(error.message.contains("\(arn) is \(spec) with usage \(usage)"), error.message)
                XCTAssertTrue(error.message.contains("must be ECC_NIST_P256 with usage SIGN_VERIFY"), error.message)
                XCTAssertFalse(error.message.contains(Self.secret), error.message)
            }
        }
    }

    func testAMissingKeyIsAnErrorThatNamesIt() async throws {
        let cloud = try await cloud()
        let arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
        do {
            _ = try await KMSSigner.open("kms:" + arn, cloud: cloud)
            XCTFail("a missing key was accepted")
        } catch {
            XCTAssertEqual(error.code, "NotFoundException")
            XCTAssertFalse(error.retryable)
            XCTAssertTrue(error.message.contains(arn), error.message)
            XCTAssertFalse(error.message.contains(Self.secret), error.message)
        }
        let kms = try await kms(cloud)
        do {
            _ = try await kms.sign(keyID: arn, message: [])
            XCTFail("an empty message was sent")
        } catch {
            XCTAssertEqual(error.code, "InvalidMessage")
            XCTAssertTrue(error.message.contains(arn), error.message)
        }
    }

    func testKeyARNs() throws {
        let key = try KMSKeyARN("kms:arn:aws:kms:eu-west-3:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        XCTAssertEqual(key.arn, "arn:aws:kms:eu-west-3:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        XCTAssertEqual(key.spec, "kms:" + key.arn)
        XCTAssertEqual(key.region, "eu-west-3")
        XCTAssertEqual(key.account, "210987654321")
        XCTAssertEqual(key.keyID, "1234abcd-12ab-34cd-56ef-1234567890ab")
        XCTAssertEqual(try KMSKeyARN(key.arn), key, "the kms: prefix may be left off")
        XCTAssertEqual(try KMSKeyARN("arn:aws-cn:kms:cn-north-1:210987654321:key/mrk-1234abcd").partition, "aws-cn")
        let refused: [(String, String)] = [
            ("kms:arn:aws:kms:eu-west-3:210987654321:alias/journal", "is an alias"),
            ("kms:arn:aws:kms::210987654321:key/abc", "names no region"),
            ("kms:arn:aws:kms:eu-west-3:2109:key/abc", "12 digits"),
            ("kms:arn:aws:kms:eu-west-3:210987654321:key/", "names no key"),
            ("kms:arn:aws:kms:eu-west-3:210987654321:key/a/b", "names no key"),
            ("kms:arn:aws:s3:::bucket", "is not a KMS key ARN"),
            ("1234abcd-12ab-34cd-56ef-1234567890ab", "is not a KMS key ARN"),
            ("", "is not a KMS key ARN"),
        ]
        for (spec, expected) in refused {
            XCTAssertThrowsError(try KMSKeyARN(spec), spec) { error in
                let e = error as? ActionError
                XCTAssertEqual(e?.code, "InvalidConfiguration", spec)
                XCTAssertTrue(e?.message.contains(expected) == true, "\(spec): \(String(describing: e))")
            }
        }
    }
}
