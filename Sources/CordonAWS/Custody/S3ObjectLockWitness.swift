import CordonCloud
import CordonCore
import Crypto
import Foundation

/// A checkpoint witness in an S3 bucket with Object Lock, configured as
/// `s3://BUCKET/PREFIX`: each head is one object, `PREFIX/SEQ-HASH.json` (SEQ zero-padded to
/// 20 digits, so keys sort by seq), holding `Checkpoint.line` and a newline, put in
/// COMPLIANCE mode with a retain-until date `retentionDays` ahead.
///
/// Why COMPLIANCE: until that date no one, the account's root user included, can delete
/// the object version or shorten its retention; GOVERNANCE mode can be bypassed by anyone
/// granted `s3:BypassGovernanceRetention`, which the host's own credentials may be. The
/// host can still add objects, and can hide one behind a delete marker, so the heads are
/// read back from every object *version* under the prefix (`ListObjectVersions`), never
/// from the current objects alone.
///
/// Retention: 2555 days (7 × 365, about seven years) by default, the period that common
/// record-keeping rules ask of audit records (SOX work papers keep seven years; SEC
/// 17a-4 and HIPAA six) and that outlives most incident investigations and litigation
/// holds. It cannot be shortened afterwards: a bucket holding such objects cannot be
/// deleted until the last date passes, so try a witness out with a retention of a day. A
/// head is a few hundred bytes, so seven years of checkpoints cost little to keep.
///
/// The credentials need `s3:GetBucketObjectLockConfiguration` on the bucket (checked when
/// the witness is opened), `s3:PutObject` and `s3:PutObjectRetention` to witness, and
/// `s3:ListBucketVersions` and `s3:GetObjectVersion` to read the heads back.
public struct S3ObjectLockWitness: CheckpointWitness {
    public let bucket: String
    /// The key prefix without a trailing `/`; empty for the bucket's root.
    public let prefix: String
    public let retentionDays: Int
    public let s3: AWSServiceClient
    /// The clock of receipts and retain-until dates (tests fix it).
    public var now: @Sendable () -> Date = { Date() }
    /// Object versions asked for per `ListObjectVersions` page (at most 1000).
    public var pageSize = 1000

    public static let defaultRetentionDays = 2555
    /// A sanity bound (100 years): a longer date is a typo, and could never be undone.
    public static let maxRetentionDays = 36500
    /// An object larger than this under the prefix is not a head (one is under 1 KiB).
    public static let maxObjectBytes = 64 << 10
    /// Objects read back at once.
    static let concurrentReads = 8

    public var spec: String { "s3://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)") }

    /// Parses the spec; calls nothing (see `open` and `verifyBucket`).
    public init(spec: String, client: AWSServiceClient, retentionDays: Int = defaultRetentionDays) throws(ActionError) {
        let location = try Self.parse(spec)
        guard (1...Self.maxRetentionDays).contains(retentionDays) else {
            throw .permanent("InvalidConfiguration", "S3 witness \(spec): retention is 1 to \(Self.maxRetentionDays) days, not \(retentionDays)")
        }
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.retentionDays = retentionDays
        self.s3 = client
    }

    /// The witness for a configured spec, in `region` (nil: the environment's, as for
    /// every AWS call), with `cloud`'s default credentials and endpoints
    /// (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`); refused unless the bucket has Object
    /// Lock. Keep `cloud` open while the witness is used: it sends through `cloud`'s
    /// transport.
    public static func open(
        _ spec: String, cloud: AWSCloud, region: String? = nil, retentionDays: Int = defaultRetentionDays
    ) async throws(ActionError) -> S3ObjectLockWitness {
        _ = try parse(spec)
        let client = try await cloud.client(.s3, CloudScope(region: try cloud.config.region(region)))
        let witness = try S3ObjectLockWitness(spec: spec, client: client, retentionDays: retentionDays)
        try await witness.verifyBucket()
        return witness
    }

    /// `s3://BUCKET[/PREFIX]` → bucket and prefix (no leading or trailing `/`).
    static func parse(_ spec: String) throws(ActionError) -> (bucket: String, prefix: String) {
        let example = "s3://BUCKET/PREFIX"
        guard spec.hasPrefix("s3://") else {
            throw .permanent("InvalidConfiguration", "\"\(spec)\" is not an S3 witness such as \(example)")
        }
        let rest = spec.dropFirst(5)
        let bucket = String(rest.prefix { $0 != "/" })
        var prefix = Substring(rest.dropFirst(bucket.count))
        while prefix.hasPrefix("/") { prefix = prefix.dropFirst() }
        while prefix.hasSuffix("/") { prefix = prefix.dropLast() }
        let allowed = bucket.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") }
        guard (3...63).contains(bucket.count), allowed, bucket.first?.isLetter == true || bucket.first?.isNumber == true,
            bucket.last?.isLetter == true || bucket.last?.isNumber == true
        else {
            throw .permanent(
                "InvalidConfiguration",
                "\"\(spec)\": \"\(bucket)\" is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens; \(example))")
        }
        guard !prefix.contains("//"), prefix.utf8.count <= 512 else {
            throw .permanent("InvalidConfiguration", "\"\(spec)\": the prefix has an empty segment or is over 512 bytes")
        }
        return (bucket, String(prefix))
    }

    // MARK: - The bucket

    /// Refuses a bucket without Object Lock: there a witness's objects could be
    /// overwritten or deleted by whoever holds the host's credentials.
    public func verifyBucket() async throws(ActionError) {
        let noLock = ActionError.permanent(
            "NoObjectLock",
            "bucket \(bucket) has no Object Lock: a witness there can be overwritten or deleted by whoever controls the host's credentials. Use a bucket made with Object Lock (aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket), or turn it on for this versioned bucket (aws s3api put-object-lock-configuration --bucket \(bucket) --object-lock-configuration ObjectLockEnabled=Enabled)"
        )
        let response: AWSResponse
        do {
            response = try await s3.rest("GET", path: "/" + bucket, query: [("object-lock", "")], operation: "GetObjectLockConfiguration")
        } catch where error.code == "ObjectLockConfigurationNotFoundError" {
            throw noLock
        } catch {
            throw named(error, "GetObjectLockConfiguration of bucket \(bucket)")
        }
        guard let tree = XMLTree.parse(response.body) else {
            throw .permanent("InvalidResponse", "S3 witness \(spec): GetObjectLockConfiguration answered with a body that is not XML")
        }
        guard tree.string("ObjectLockEnabled")?.trimmingWhitespace() == "Enabled" else { throw noLock }
    }

    // MARK: - Witnessing

    /// The object that keeps `head`: `PREFIX/` + 20-digit seq + `-` + hash + `.json`.
    public func objectKey(for head: Checkpoint) throws(ActionError) -> String {
        guard head.seq >= 1, !head.hash.isEmpty, head.hash.count <= 128, head.hash.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw .permanent("InvalidHead", "S3 witness \(spec): a head has a seq of 1 or more and a hash of letters and digits (seq \(head.seq))")
        }
        let digits = String(head.seq)
        let name = String(repeating: "0", count: max(0, 20 - digits.count)) + digits + "-" + head.hash + ".json"
        return prefix.isEmpty ? name : prefix + "/" + name
    }

    /// Puts the head's object, locked; the receipt's proof is `KEY VERSIONID` (`KEY ETAG`
    /// from a store that answers no version id).
    public func witness(_ head: Checkpoint) async throws -> WitnessReceipt {
        let key = try objectKey(for: head)
        let body = Array((head.line + "\n").utf8)
        let time = now()
        let retainUntil = Self.iso8601(time.addingTimeInterval(Double(retentionDays) * 86400))
        let headers: [(name: String, value: String)] = [
            ("Content-Type", "application/json"),
            // S3 refuses a put with a retention date that carries no checksum.
            ("Content-MD5", Data(Insecure.MD5.hash(data: body)).base64EncodedString()),
            ("x-amz-object-lock-mode", "COMPLIANCE"),
            ("x-amz-object-lock-retain-until-date", retainUntil),
        ]
        let response: AWSResponse
        do {
            response = try await s3.rest("PUT", path: objectPath(key), headers: headers, body: body, operation: "PutObject")
        } catch {
            throw named(error, "PutObject of \(key)", alsoNeeds: "s3:PutObjectRetention")
        }
        let version = response.header("x-amz-version-id").flatMap { $0.isEmpty || $0 == "null" ? nil : $0 }
        let etag = response.header("ETag")?.trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
        guard let stamp = version ?? etag, !stamp.isEmpty else {
            throw ActionError.permanent("InvalidResponse", "S3 witness \(spec): PutObject of \(key) answered with neither a version id nor an ETag")
        }
        return WitnessReceipt(witness: spec, seq: head.seq, hash: head.hash, time: Timestamp.string(time), proof: key + " " + stamp)
    }

    /// Every head under the prefix, from every object version (a version hidden behind a
    /// delete marker or overwritten is read too), by seq; one head stored twice (a retried
    /// put) is answered once. An object that is not a head, or whose head is not the one
    /// its key names, is an error that names it.
    public func witnessedHeads() async throws -> [Checkpoint]? {
        let versions = try await listVersions()
        var heads: [Checkpoint] = []
        try await withThrowingTaskGroup(of: Checkpoint.self) { group in
            var pending = versions.makeIterator()
            for _ in 0..<Self.concurrentReads {
                guard let next = pending.next() else { break }
                group.addTask { try await self.read(next) }
            }
            while let head = try await group.next() {
                heads.append(head)
                if let next = pending.next() { group.addTask { try await self.read(next) } }
            }
        }
        var seen = Set<String>()
        return heads.sorted { ($0.seq, $0.hash, $0.line) < ($1.seq, $1.hash, $1.line) }.filter { seen.insert($0.line).inserted }
    }

    /// Nothing to check offline: the bucket is the proof (`witnessedHeads`).
    public func check(_ receipt: WitnessReceipt, for head: Checkpoint) throws -> Bool? { nil }

    // MARK: - Reading back

    /// One object version as listed.
    struct Listed: Sendable {
        var key: String
        var versionId: String
        var size: Int
    }

    /// Every object version under the prefix (delete markers left out), page by page.
    func listVersions() async throws(ActionError) -> [Listed] {
        var found: [Listed] = []
        var marker: (key: String, version: String)?
        while true {
            var query: [(name: String, value: String)] = [("versions", ""), ("prefix", prefix.isEmpty ? "" : prefix + "/"), ("max-keys", String(pageSize))]
            if let marker { query += [("key-marker", marker.key), ("version-id-marker", marker.version)] }
            let response: AWSResponse
            do {
                response = try await s3.rest("GET", path: "/" + bucket, query: query, operation: "ListObjectVersions")
            } catch {
                throw named(error, "ListObjectVersions under \(spec)")
            }
            guard let tree = XMLTree.parse(response.body) else {
                throw .permanent("InvalidResponse", "S3 witness \(spec): ListObjectVersions answered with a body that is not XML")
            }
            for v in tree.children("Version") {
                guard let key = v.nonEmpty("Key") else { continue }
                // A zero-byte `PREFIX/` is a console "folder", not a witness's object.
                if key.hasSuffix("/") && (v.int("Size") ?? 0) == 0 { continue }
                found.append(Listed(key: key, versionId: v.nonEmpty("VersionId") ?? "null", size: v.int("Size") ?? 0))
            }
            guard tree.bool("IsTruncated") == true else { return found }
            guard let key = tree.nonEmpty("NextKeyMarker") else {
                throw .permanent("InvalidResponse", "S3 witness \(spec): ListObjectVersions answered a truncated page with no NextKeyMarker")
            }
            let next = (key: key, version: tree.nonEmpty("NextVersionIdMarker") ?? "")
            if let marker, marker == next {
                throw .permanent("InvalidResponse", "S3 witness \(spec): ListObjectVersions answered the same page marker twice (\(key))")
            }
            marker = next
        }
    }

    /// One object version's head, checked against its key.
    func read(_ object: Listed) async throws(ActionError) -> Checkpoint {
        let what = "object \(object.key) (version \(object.versionId)) in \(spec)"
        guard object.size <= Self.maxObjectBytes else {
            throw .permanent("InvalidWitnessObject", "\(what) is \(object.size) bytes: not a signed head")
        }
        let query: [(name: String, value: String)] = object.versionId == "null" ? [] : [("versionId", object.versionId)]
        let response: AWSResponse
        do {
            response = try await s3.rest("GET", path: objectPath(object.key), query: query, operation: "GetObject")
        } catch {
            throw named(error, "GetObject of \(object.key) (version \(object.versionId))", alsoNeeds: "s3:GetObjectVersion")
        }
        guard response.body.count <= Self.maxObjectBytes, let text = String(bytes: response.body, encoding: .utf8) else {
            throw .permanent("InvalidWitnessObject", "\(what) is not UTF-8 text of at most \(Self.maxObjectBytes) bytes: not a signed head")
        }
        let head: Checkpoint
        do {
            head = try Checkpoint(line: text.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            throw .permanent("InvalidWitnessObject", "\(what) is not a signed head: \(error)")
        }
        guard (try? objectKey(for: head)) == object.key else {
            throw .permanent("InvalidWitnessObject", "\(what) holds the head of seq \(head.seq) (hash \(head.hash)), not the one its key names")
        }
        return head
    }

    // MARK: - Helpers

    func objectPath(_ key: String) -> String { "/" + bucket + "/" + key }

    /// An S3 error with what was being done, the witness, and for an access error the
    /// other permission the call needs.
    func named(_ error: ActionError, _ doing: String, alsoNeeds: String? = nil) -> ActionError {
        var out = error
        out.message = "S3 witness \(spec): \(doing): \(error.message)"
        if let alsoNeeds, AWSErrorMapper.accessDeniedCodes.contains(error.code) { out.message += " (and \(alsoNeeds))" }
        return out
    }

    /// `2033-12-04T13:49:43Z`, as S3 takes a retain-until date.
    static func iso8601(_ date: Date) -> String {
        let (y, m, d, hh, mm, ss) = AWSDate.civil(Int(date.timeIntervalSince1970.rounded(.down)))
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(hh, 2)):\(pad(mm, 2)):\(pad(ss, 2))Z"
    }
}
