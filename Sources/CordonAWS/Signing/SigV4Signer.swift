import CordonCloud
import CordonCore
import Crypto
import Foundation

/// An HTTP request to an AWS service, before or after signing.
///
/// `path` is the decoded path (`/my bucket/key`); it is percent-encoded once on the
/// wire (`wirePath`). `query` holds decoded name/value pairs in the order given.
public struct AWSRequest: Sendable {
    public var method: String
    /// "https" or "http".
    public var scheme: String
    /// The Host header: host name, plus `:port` when it is not the scheme's default.
    public var host: String
    public var path: String
    public var query: [(name: String, value: String)]
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(
        method: String, scheme: String = "https", host: String, path: String = "/", query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [], body: [UInt8] = []
    ) {
        self.method = method
        self.scheme = scheme
        self.host = host
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The path as sent: each byte outside the unreserved set and `/` percent-encoded.
    public var wirePath: String { SigV4Signer.uriEncode(path.isEmpty ? "/" : path, encodeSlash: false) }

    /// The query as sent, in the order given.
    public var wireQuery: String {
        query.map { SigV4Signer.uriEncode($0.name, encodeSlash: true) + "=" + SigV4Signer.uriEncode($0.value, encodeSlash: true) }.joined(separator: "&")
    }

    /// The full URL.
    public var url: String {
        let q = wireQuery
        return "\(scheme)://\(host)\(wirePath)" + (q.isEmpty ? "" : "?" + q)
    }

    /// The first value of a header (case-insensitive name).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// Sets a header, replacing every header of that name.
    public mutating func setHeader(_ name: String, _ value: String) {
        removeHeader(name)
        headers.append((name, value))
    }

    public mutating func removeHeader(_ name: String) {
        let lower = name.lowercased()
        headers.removeAll { $0.name.lowercased() == lower }
    }
}

/// AWS Signature Version 4 (header signing), as the SDKs compute it.
///
/// Query-protocol, JSON-protocol and REST services use the defaults; S3 uses
/// `SigV4Signer.s3(region:)`: the path is encoded once and not normalized, and the
/// payload hash is sent as `x-amz-content-sha256`.
public struct SigV4Signer: Sendable {
    public var service: String
    public var region: String
    /// Encode the (already encoded) wire path a second time: every service but S3.
    public var doubleEncodePath: Bool
    /// Remove `.`/`..` segments and empty segments before encoding: every service but S3.
    public var normalizePath: Bool
    /// Send the payload hash as `X-Amz-Content-SHA256` (S3 requires it).
    public var sendContentSHA256: Bool

    public init(service: String, region: String, doubleEncodePath: Bool = true, normalizePath: Bool = true, sendContentSHA256: Bool = false) {
        self.service = service
        self.region = region
        self.doubleEncodePath = doubleEncodePath
        self.normalizePath = normalizePath
        self.sendContentSHA256 = sendContentSHA256
    }

    /// The signer for S3 in a region.
    public static func s3(region: String) -> SigV4Signer {
        SigV4Signer(service: "s3", region: region, doubleEncodePath: false, normalizePath: false, sendContentSHA256: true)
    }

    /// Headers never signed (hop-by-hop or changed by proxies), as botocore.
    static let unsignedHeaders: Set<String> = [
        "authorization", "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
    ]

    /// The intermediate results of signing, for tests and debugging (never logged: the
    /// canonical request may hold the session token).
    public struct Signature: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signedHeaders: String
        public var signature: String
        public var authorization: String
    }

    /// Signs the request at `date`: sets `X-Amz-Date`, `X-Amz-Security-Token` (with a
    /// session token), `X-Amz-Content-SHA256` (S3), `Host` when missing, and `Authorization`.
    public func sign(_ request: inout AWSRequest, credentials: AWSCredentials, date: AWSDate) {
        let result = signature(for: &request, credentials: credentials, date: date)
        request.setHeader("Authorization", result.authorization)
    }

    /// Adds the signing headers to `request` and computes the signature without adding
    /// `Authorization`.
    public func signature(for request: inout AWSRequest, credentials: AWSCredentials, date: AWSDate) -> Signature {
        request.removeHeader("Authorization")
        if request.header("host") == nil { request.headers.append(("Host", request.host)) }
        request.setHeader("X-Amz-Date", date.timestamp)
        if let token = credentials.sessionToken {
            request.setHeader("X-Amz-Security-Token", token)
        }
        let payloadHash: String
        if let given = request.header("x-amz-content-sha256"), !sendContentSHA256 {
            payloadHash = given
        } else {
            payloadHash = SHA256.hash(data: request.body).hex
            if sendContentSHA256 { request.setHeader("X-Amz-Content-SHA256", payloadHash) }
        }

        // Canonical headers: lowercase names, sorted; values trimmed with inner runs of
        // whitespace collapsed; repeated names joined with commas in order.
        var grouped: [String: [String]] = [:]
        for (name, value) in request.headers {
            let lower = name.lowercased().trimmingWhitespace()
            if Self.unsignedHeaders.contains(lower) { continue }
            grouped[lower, default: []].append(Self.trimAll(value))
        }
        let names = grouped.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let canonicalHeaders = names.map { "\($0):\(grouped[$0, default: []].joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")

        var canonicalPath = request.wirePath
        if normalizePath { canonicalPath = Self.normalize(canonicalPath) }
        if doubleEncodePath { canonicalPath = Self.uriEncode(canonicalPath, encodeSlash: false) }

        let canonicalRequest = [
            request.method.uppercased(),
            canonicalPath,
            Self.canonicalQuery(request.query),
            canonicalHeaders,
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")

        let scope = "\(date.day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256", date.timestamp, scope, SHA256.hash(data: Array(canonicalRequest.utf8)).hex,
        ].joined(separator: "\n")

        let key = signingKey(secret: credentials.secretAccessKey, day: date.day)
        let signature = Self.hex(Array(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key)))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyId)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signedHeaders: signedHeaders, signature: signature, authorization: authorization)
    }

    func signingKey(secret: String, day: String) -> SymmetricKey {
        func hmac(_ key: SymmetricKey, _ message: String) -> SymmetricKey {
            SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: key)))
        }
        let kDate = hmac(SymmetricKey(data: Array(("AWS4" + secret).utf8)), day)
        return hmac(hmac(hmac(kDate, region), service), "aws4_request")
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Encoding

    /// RFC 3986 percent-encoding of the UTF-8 bytes: everything but `A-Z a-z 0-9 - _ . ~`
    /// (and `/` unless `encodeSlash`), with uppercase hex.
    public static func uriEncode(_ s: String, encodeSlash: Bool) -> String {
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(b)
            case UInt8(ascii: "/") where !encodeSlash:
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Names and values encoded, sorted by name then value (byte order).
    static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        let encoded = query.map { (uriEncode($0.name, encodeSlash: true), uriEncode($0.value, encodeSlash: true)) }
        let sorted = encoded.sorted { a, b in
            if a.0 != b.0 { return Array(a.0.utf8).lexicographicallyPrecedes(Array(b.0.utf8)) }
            return Array(a.1.utf8).lexicographicallyPrecedes(Array(b.1.utf8))
        }
        return sorted.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// RFC 3986 remove_dot_segments, also dropping empty segments (as AWS does).
    static func normalize(_ path: String) -> String {
        if path.isEmpty { return "/" }
        var out: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." { continue }
            if segment == ".." {
                if !out.isEmpty { out.removeLast() }
                continue
            }
            out.append(segment)
        }
        let first = path.hasPrefix("/") ? "/" : ""
        let last = path.hasSuffix("/") && !out.isEmpty ? "/" : ""
        return first + out.joined(separator: "/") + last
    }

    /// Trim the ends and collapse inner runs of whitespace to one space.
    static func trimAll(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\u{0B}" || $0 == "\u{0C}" })
            .joined(separator: " ")
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

/// A signing time, as `YYYYMMDD'T'HHMMSS'Z'` and `YYYYMMDD`.
public struct AWSDate: Sendable, Hashable {
    /// Seconds since 1970 (UTC).
    public var secondsSince1970: Int

    public init(secondsSince1970: Int) { self.secondsSince1970 = secondsSince1970 }

    /// Now, from the system clock.
    public static func now() -> AWSDate {
        AWSDate(secondsSince1970: Int(Date().timeIntervalSince1970))
    }

    /// `20150830T123600Z`
    public var timestamp: String {
        let (y, m, d, hh, mm, ss) = Self.civil(secondsSince1970)
        return pad(y, 4) + pad(m, 2) + pad(d, 2) + "T" + pad(hh, 2) + pad(mm, 2) + pad(ss, 2) + "Z"
    }

    /// `20150830`
    public var day: String { String(timestamp.prefix(8)) }

    /// Parses `20150830T123600Z`.
    public init?(timestamp: String) {
        let b = Array(timestamp.utf8)
        guard b.count == 16, b[8] == UInt8(ascii: "T"), b[15] == UInt8(ascii: "Z") else { return nil }
        func num(_ r: Range<Int>) -> Int? { Int(String(decoding: b[r], as: UTF8.self)) }
        guard let y = num(0..<4), let m = num(4..<6), let d = num(6..<8), let hh = num(9..<11), let mm = num(11..<13), let ss = num(13..<15),
            (1...12).contains(m), (1...31).contains(d), hh < 24, mm < 60, ss < 61
        else { return nil }
        self.secondsSince1970 = Self.days(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss
    }

    /// Parses ISO 8601 `2015-08-30T12:36:00Z` or with a fraction (`…:00.123Z`), as STS returns.
    public init?(iso8601: String) {
        var t = Substring(iso8601)
        guard t.count >= 20 else { return nil }
        if let dot = t.firstIndex(of: ".") {
            guard let z = t.lastIndex(of: "Z") else { return nil }
            t = t[..<dot] + t[z...]
        }
        let compact = t.replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "")
        self.init(timestamp: compact)
    }

    private func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }

    // Howard Hinnant's civil-from-days and days-from-civil.
    static func civil(_ seconds: Int) -> (Int, Int, Int, Int, Int, Int) {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let rem = seconds - days * 86400
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
    }

    static func days(_ year: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }
}
