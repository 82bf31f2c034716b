import CordonCore
import CordonTestSupport
import Crypto
import Foundation
import Synchronization
import XCTest

@testable import CordonAWS
@testable import CordonCloud

/// `S3ObjectLockWitness` against moto's S3, which keeps Object Lock: a locked version
/// cannot be deleted, a bucket without Object Lock takes no locked put.
final class S3WitnessTests: XCTestCase {
    static let http = AWSHTTPClient()
    static let scope = CloudScope(region: "us-east-1")

    /// The operations the clients called, in order.
    final class Calls: Sendable {
        let operations = Mutex<[String]>([])
        func count(_ operation: String) -> Int { operations.withLock { $0.filter { $0 == operation }.count } }
    }

    func cloud(_ calls: Calls? = nil) async throws -> AWSCloud {
        let env = try await offPool { try Moto.environment() }
        var observer: AWSCallObserver?
        if let calls { observer = { call in calls.operations.withLock { $0.append(call.operation) } } }
        return AWSCloud(options: AWSCloudOptions(environment: env, observer: observer), http: Self.http)
    }

    /// A new bucket, with Object Lock or without.
    func makeBucket(_ cloud: AWSCloud, objectLock: Bool) async throws -> String {
        let bucket = "witness-\(UUID().uuidString.prefix(8).lowercased())"
        let headers: [(name: String, value: String)] = objectLock ? [("x-amz-bucket-object-lock-enabled", "true")] : []
        _ = try await cloud.client(.s3, Self.scope).rest("PUT", path: "/\(bucket)", headers: headers, operation: "CreateBucket")
        return bucket
    }

    /// A head as a journal signs it, here with a KMS key.
    func head(_ seq: Int64, _ signer: KMSSigner) async throws -> Checkpoint {
        let hash = SHA256.hash(data: Array("record \(seq)".utf8)).hex
        let signature = try await signer.sign(Checkpoint.message(seq: seq, hash: hash))
        return Checkpoint(seq: seq, hash: hash, time: "2026-12-06T12:00:0\(seq).000000Z", signature: Data(signature).base64EncodedString(), keyFingerprint: signer.fingerprint)
    }

    func testWitnessedHeadsAreLockedAndReadBack() async throws {
        let calls = Calls()
        let cloud = try await cloud(calls)
        let raw = try await cloud.client(.s3, Self.scope)
        let bucket = try await makeBucket(cloud, objectLock: true)
        let arn = try await AWSKMS(client: try await cloud.client(.kms, Self.scope)).createKey(
            keySpec: "ECC_NIST_P256", keyUsage: "SIGN_VERIFY", description: "journal")
        let signer = try await KMSSigner.open(arn, cloud: cloud)
        var witness = try await S3ObjectLockWitness.open("s3://\(bucket)/journals/main/", cloud: cloud)
        XCTAssertEqual(witness.spec, "s3://\(bucket)/journals/main")
        XCTAssertEqual(witness.retentionDays, 2555)
        witness.pageSize = 2
        let fixed = Date(timeIntervalSince1970: 1_796_000_000)
        witness.now = { fixed }
        let none = try await witness.witnessedHeads()
        XCTAssertEqual(none, [])

        var heads: [Checkpoint] = []
        for seq in [3, 1, 2] as [Int64] { heads.append(try await head(seq, signer)) }
        var receipts: [WitnessReceipt] = []
        for h in heads { receipts.append(try await witness.witness(h)) }
        _ = try await witness.witness(heads[0])  // a retried put: a second version of the same head
        let key1 = try witness.objectKey(for: heads[1])
        XCTAssertEqual(key1, "journals/main/00000000000000000001-\(heads[1].hash).json")
        let receipt = receipts[1]
        XCTAssertEqual(receipt.witness, witness.spec)
        XCTAssertEqual(receipt.seq, 1)
        XCTAssertEqual(receipt.hash, heads[1].hash)
        XCTAssertEqual(receipt.time, Timestamp.string(fixed))
        let proof = receipt.proof.split(separator: " ").map(String.init)
        XCTAssertEqual(proof.count, 2)
        XCTAssertEqual(proof.first, key1)
        let version = try XCTUnwrap(proof.last)
        XCTAssertNil(try witness.check(receipt, for: heads[1]))

        // The object: the head's line, locked in COMPLIANCE mode for 2555 days.
        let object = try await raw.rest("GET", path: "/\(bucket)/\(key1)", query: [("versionId", version)], operation: "GetObject")
        XCTAssertEqual(String(decoding: object.body, as: UTF8.self), heads[1].line + "\n")
        XCTAssertEqual(object.header("x-amz-object-lock-mode"), "COMPLIANCE")
        let until = fixed.addingTimeInterval(2555 * 86400)
        XCTAssertEqual(object.header("x-amz-object-lock-retain-until-date"), S3ObjectLockWitness.iso8601(until))
        XCTAssertEqual(S3ObjectLockWitness.iso8601(until), "2033-11-28T00:53:20Z")

        let sorted = heads.sorted { $0.seq < $1.seq }
        let back = try await witness.witnessedHeads()
        XCTAssertEqual(back, sorted)
        let publicKey = try XCTUnwrap(signer.publicKey)
        for h in back ?? [] {
            let signature = try XCTUnwrap(Data(base64Encoded: h.signature))
            XCTAssertTrue(publicKey.isValidSignature(Array(signature), for: Checkpoint.message(seq: h.seq, hash: h.hash)))
        }

        // The locked version cannot be deleted, even asking to bypass governance.
        for headers in [[], [(name: "x-amz-bypass-governance-retention", value: "true")]] as [[(name: String, value: String)]] {
            do {
                _ = try await raw.rest("DELETE", path: "/\(bucket)/\(key1)", query: [("versionId", version)], headers: headers, operation: "DeleteObject")
                XCTFail("a locked version was deleted")
            } catch {
                XCTAssertEqual(error.code, "AccessDenied", "\(error)")
            }
        }
        // A delete marker hides the object from a listing of current objects; the
        // witness reads every version, so the head is still there.
        _ = try await raw.rest("DELETE", path: "/\(bucket)/\(key1)", operation: "DeleteObject")
        let listing = try await raw.rest("GET", path: "/\(bucket)", query: [("list-type", "2"), ("prefix", "journals/main/")], operation: "ListObjectsV2")
        let current = XMLTree.parse(listing.body)?.children("Contents").compactMap { $0.string("Key") } ?? []
        XCTAssertEqual(current.count, 2)
        XCTAssertFalse(current.contains(key1))
        let pagesBefore = calls.count("ListObjectVersions")
        let afterMarker = try await witness.witnessedHeads()
        XCTAssertEqual(afterMarker, sorted)
        // Four versions and a delete marker, two to a page.
        XCTAssertGreaterThanOrEqual(calls.count("ListObjectVersions") - pagesBefore, 3)
    }

    func testAnObjectThatIsNotItsHeadIsAnErrorNamingIt() async throws {
        let cloud = try await cloud()
        let raw = try await cloud.client(.s3, Self.scope)
        let bucket = try await makeBucket(cloud, objectLock: true)
        let witness = try await S3ObjectLockWitness.open("s3://\(bucket)/w", cloud: cloud, retentionDays: 1)
        let arn = try await AWSKMS(client: try await cloud.client(.kms, Self.scope)).createKey(
            keySpec: "ECC_NIST_P256", keyUsage: "SIGN_VERIFY", description: "journal")
        let signer = try await KMSSigner.open(arn, cloud: cloud)
        let one = try await head(1, signer)
        let two = try await head(2, signer)
        _ = try await witness.witness(one)

        // Seq 2's head put where seq 1's belongs: a new version of that key.
        let key1 = try witness.objectKey(for: one)
        _ = try await raw.rest("PUT", path: "/\(bucket)/\(key1)", body: Array(two.line.utf8), operation: "PutObject")
        do {
            _ = try await witness.witnessedHeads()
            XCTFail("a head under another's key was read")
        } catch let error as ActionError {
            XCTAssertEqual(error.code, "InvalidWitnessObject")
            XCTAssertTrue(error.message.contains("object \(key1) (version "), error.message)
            XCTAssertTrue(error.message.contains("holds the head of seq 2"), error.message)
        }

        let other = try await S3ObjectLockWitness.open("s3://\(bucket)/other", cloud: cloud, retentionDays: 1)
        _ = try await raw.rest("PUT", path: "/\(bucket)/other/notes.txt", body: Array("not a head".utf8), operation: "PutObject")
        do {
            _ = try await other.witnessedHeads()
            XCTFail("a malformed object was read")
        } catch let error as ActionError {
            XCTAssertEqual(error.code, "InvalidWitnessObject")
            XCTAssertTrue(error.message.contains("object other/notes.txt (version "), error.message)
            XCTAssertTrue(error.message.contains("is not a signed head"), error.message)
        }
    }

    func testABucketWithoutObjectLockIsRefused() async throws {
        let cloud = try await cloud()
        let bucket = try await makeBucket(cloud, objectLock: false)
        do {
            _ = try await S3ObjectLockWitness.open("s3://\(bucket)/journal", cloud: cloud)
            XCTFail("a bucket without Object Lock was accepted")
        } catch {
            XCTAssertEqual(error.code, "NoObjectLock")
            XCTAssertFalse(error.retryable)
            XCTAssertTrue(
                error.message.hasPrefix(
                    "bucket \(bucket) has no Object Lock: a witness there can be overwritten or deleted by whoever controls the host's credentials"),
                error.message)
        }
        do {
            _ = try await S3ObjectLockWitness.open("s3://no-such-\(bucket)/journal", cloud: cloud)
            XCTFail("a missing bucket was accepted")
        } catch {
            XCTAssertEqual(error.code, "NoSuchBucket")
            XCTAssertTrue(error.message.contains("no-such-\(bucket)"), error.message)
        }
    }

    func testSpecs() async throws {
        let client = try await cloud().client(.s3, Self.scope)
        let root = try S3ObjectLockWitness(spec: "s3://my.bucket-1", client: client)
        XCTAssertEqual(root.bucket, "my.bucket-1")
        XCTAssertEqual(root.prefix, "")
        XCTAssertEqual(root.spec, "s3://my.bucket-1")
        let head = Checkpoint(seq: 12_345, hash: "00ff", time: "t", signature: "s", keyFingerprint: "k")
        XCTAssertEqual(try root.objectKey(for: head), "00000000000000012345-00ff.json")
        let nested = try S3ObjectLockWitness(spec: "s3://bucket//a/b//", client: client, retentionDays: 1)
        XCTAssertEqual(nested.prefix, "a/b")
        XCTAssertEqual(try nested.objectKey(for: head), "a/b/00000000000000012345-00ff.json")
        XCTAssertThrowsError(try nested.objectKey(for: Checkpoint(seq: 1, hash: "../x", time: "t", signature: "s", keyFingerprint: "k")))
        XCTAssertThrowsError(try nested.objectKey(for: Checkpoint(seq: 0, hash: "ab", time: "t", signature: "s", keyFingerprint: "k")))
        for spec in ["bucket/prefix", "s3:/bucket", "s3://Bucket", "s3://ab", "s3://-bucket", "s3://bucket/a//b", "file:/tmp/w"] {
            XCTAssertThrowsError(try S3ObjectLockWitness(spec: spec, client: client), spec) { error in
                XCTAssertEqual((error as? ActionError)?.code, "InvalidConfiguration", spec)
            }
        }
        for days in [0, -1, 36501] {
            XCTAssertThrowsError(try S3ObjectLockWitness(spec: "s3://bucket", client: client, retentionDays: days), "\(days)")
        }
        XCTAssertEqual(S3ObjectLockWitness.iso8601(Date(timeIntervalSince1970: 0)), "1970-01-01T00:00:00Z")
        XCTAssertEqual(S3ObjectLockWitness.iso8601(Date(timeIntervalSince1970: 1_709_251_199.9)), "2024-02-29T23:59:59Z")
        XCTAssertEqual(AWSErrorMapper.iamAction(service: .s3, operation: "GetObjectLockConfiguration"), "s3:GetBucketObjectLockConfiguration")
        XCTAssertEqual(AWSErrorMapper.iamAction(service: .s3, operation: "ListObjectVersions"), "s3:ListBucketVersions")
    }
}
