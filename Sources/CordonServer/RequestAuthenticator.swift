import Crypto
import Foundation
import Synchronization

/// Authenticates `POST /v1/findings`: an API key in a header, or an HMAC-SHA256
/// signature with a timestamp.
///
/// - API key: `X-Cordon-Api-Key: KEY`, `Authorization: Bearer KEY`, or the header named
///   by `apiKeyHeader` (an EventBridge API destination's connection sends the header and
///   value it is configured with).
/// - Signature: `Cordon-Signature: t=UNIX-SECONDS,v1=HEX` where HEX is
///   HMAC-SHA256(secret, "T.BODY"); `t` must be within `replayWindow` of now, so a
///   captured request cannot be replayed later, and a signature is accepted once: the
///   signatures accepted within the window are remembered (`ReplayCache`), so an exact
///   replay inside the window is refused too.
///
/// Every comparison is constant-time.
public struct RequestAuthenticator: Sendable {
    public var apiKeys: [String]
    public var hmacSecrets: [String]
    public var apiKeyHeader: String?
    public var replayWindow: TimeInterval
    public var now: @Sendable () -> Date
    /// The signatures accepted within the replay window (shared by copies).
    public let replayCache: ReplayCache

    public init(
        apiKeys: [String] = [], hmacSecrets: [String] = [], apiKeyHeader: String? = nil, replayWindow: TimeInterval = 300,
        replayCacheCapacity: Int = ReplayCache.defaultCapacity, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.apiKeys = apiKeys.filter { !$0.isEmpty }
        self.hmacSecrets = hmacSecrets.filter { !$0.isEmpty }
        self.apiKeyHeader = apiKeyHeader
        self.replayWindow = replayWindow
        self.replayCache = ReplayCache(capacity: replayCacheCapacity)
        self.now = now
    }

    /// What authenticated a request.
    public enum Credential: Sendable, Equatable {
        case apiKey
        /// A signature, now remembered by the replay cache (`release` forgets it).
        case signature(ReplayCache.Entry)
    }

    public var isConfigured: Bool { !apiKeys.isEmpty || !hmacSecrets.isEmpty }

    public static let signatureHeader = "Cordon-Signature"
    public static let apiKeyHeaderName = "X-Cordon-Api-Key"

    /// nil when authenticated, else why not (the 401 message). An accepted signature is
    /// remembered: the same request again within the window is refused.
    public func check(header: (String) -> String?, body: [UInt8]) -> String? {
        switch authenticate(header: header, body: body) {
        case .success: nil
        case .failure(let rejection): rejection.message
        }
    }

    /// The 401 message.
    public struct Rejection: Error, Sendable, Equatable {
        public var message: String
    }

    /// The credential that authenticated the request, or why none did. An accepted
    /// signature is remembered at once (so of two identical requests racing, one wins);
    /// when the request then journals nothing (malformed, journal down) give it back with
    /// `release`, so the sender may retry the same request.
    public func authenticate(header: (String) -> String?, body: [UInt8]) -> Result<Credential, Rejection> {
        guard isConfigured else { return .failure(Rejection(message: "no credentials are configured on this server (--api-key-secret or --hmac-secret)")) }
        if let signature = header(Self.signatureHeader) {
            return checkSignature(signature, body: body)
        }
        if let reason = checkAPIKey(header: header) { return .failure(Rejection(message: reason)) }
        return .success(.apiKey)
    }

    /// What the headers alone say about a request, before its body is read.
    public enum Admission: Sendable, Equatable {
        /// An API key: the request is authenticated, its body may be read.
        case authenticated(Credential)
        /// A well-formed, fresh signature: only the body can prove it, so the body is
        /// read within the budget for unauthenticated bodies, then `authenticate` decides.
        case needsBody
    }

    /// Decides from the headers alone, so that a request without valid credentials is
    /// refused before its body is read: an API key is checked whole; a signature is
    /// checked for form and freshness (its MAC needs the body).
    public func admit(header: (String) -> String?) -> Result<Admission, Rejection> {
        guard isConfigured else { return .failure(Rejection(message: "no credentials are configured on this server (--api-key-secret or --hmac-secret)")) }
        if let signature = header(Self.signatureHeader) {
            switch parseSignature(signature) {
            case .success: return .success(.needsBody)
            case .failure(let rejection): return .failure(rejection)
            }
        }
        if let reason = checkAPIKey(header: header) { return .failure(Rejection(message: reason)) }
        return .success(.authenticated(.apiKey))
    }

    /// Forgets an accepted signature whose request journaled nothing.
    public func release(_ credential: Credential) {
        if case .signature(let entry) = credential { replayCache.remove(entry) }
    }

    /// The key a request presents: in the configured header, `X-Cordon-Api-Key` or
    /// `Authorization: Bearer`.
    func presentedKey(_ header: (String) -> String?) -> String? {
        if let name = apiKeyHeader, let v = header(name) { return v }
        if let v = header(Self.apiKeyHeaderName) { return v }
        if let v = header("Authorization") {
            let parts = v.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]).trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    /// Whether `key` is one of `accepted`, compared in constant time.
    static func matches(_ key: String, _ accepted: [String]) -> Bool {
        // Hash both sides so the comparison is constant-time and length-independent.
        let presentedDigest = Array(SHA256.hash(data: Array(key.utf8)))
        var ok = false
        for candidate in accepted {
            ok = constantTimeEqual(Array(SHA256.hash(data: Array(candidate.utf8))), presentedDigest) || ok
        }
        return ok
    }

    func checkAPIKey(header: (String) -> String?) -> String? {
        guard let key = presentedKey(header) else {
            return "missing credentials: send the API key in \(apiKeyHeader ?? Self.apiKeyHeaderName) or Authorization: Bearer, or sign the body (\(Self.signatureHeader): t=…,v1=…)"
        }
        guard !apiKeys.isEmpty else { return "API keys are not accepted here; sign the body (\(Self.signatureHeader): t=…,v1=…)" }
        return Self.matches(key, apiKeys) ? nil : "invalid API key"
    }

    /// Who may read `/metrics`: the metrics tokens and the API keys, presented as an API
    /// key is. nil when allowed, else why not (the 401 message).
    public func checkMetrics(header: (String) -> String?, tokens: [String]) -> String? {
        let accepted = tokens.filter { !$0.isEmpty } + apiKeys
        guard !accepted.isEmpty else {
            return "/metrics needs a token: start cordon run with --metrics-token-secret NAME (or --api-key-secret), or --metrics-unauthenticated"
        }
        guard let key = presentedKey(header) else { return "missing credentials: send Authorization: Bearer TOKEN (the metrics token or an API key)" }
        return Self.matches(key, accepted) ? nil : "invalid token"
    }

    /// A signature header's timestamp (as sent, and as a number) and its `v1` values.
    struct ParsedSignature {
        var timestamp: String
        var time: Int64
        var signatures: [String]
    }

    /// The signature header parsed, or why it cannot be accepted whatever the body.
    func parseSignature(_ value: String) -> Result<ParsedSignature, Rejection> {
        func reject(_ message: String) -> Result<ParsedSignature, Rejection> { .failure(Rejection(message: message)) }
        guard !hmacSecrets.isEmpty else { return reject("signatures are not accepted here; send the API key") }
        var timestamp: String?
        var signatures: [String] = []
        for part in value.split(separator: ",") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { continue }
            if kv[0] == "t" { timestamp = String(kv[1]) } else if kv[0] == "v1" { signatures.append(String(kv[1])) }
        }
        guard let timestamp, let t = Int64(timestamp) else { return reject("\(Self.signatureHeader) has no t=UNIX-SECONDS") }
        guard !signatures.isEmpty else { return reject("\(Self.signatureHeader) has no v1=HEX signature") }
        let age = self.now().timeIntervalSince1970 - Double(t)
        guard abs(age) <= replayWindow else {
            // `age` may be far beyond any Int (t is whatever the client sent): written as a double.
            return reject("signature timestamp t=\(t) is \(age.rounded()) s from now, outside the \(Int(replayWindow)) s replay window (check the sender's clock)")
        }
        guard signatures.contains(where: { Self.hexBytes($0)?.count == 32 }) else {
            return reject("bad signature: v1 must be hex HMAC-SHA256(secret, \"t.body\") over the exact body bytes")
        }
        return .success(ParsedSignature(timestamp: timestamp, time: t, signatures: signatures))
    }

    func checkSignature(_ value: String, body: [UInt8]) -> Result<Credential, Rejection> {
        func reject(_ message: String) -> Result<Credential, Rejection> { .failure(Rejection(message: message)) }
        let parsed: ParsedSignature
        switch parseSignature(value) {
        case .success(let p): parsed = p
        case .failure(let rejection): return .failure(rejection)
        }
        let (timestamp, t, signatures) = (parsed.timestamp, parsed.time, parsed.signatures)
        let now = self.now().timeIntervalSince1970
        let signed = Array("\(timestamp).".utf8) + body
        var valid: [UInt8]?
        for secret in hmacSecrets {
            let key = SymmetricKey(data: Array(secret.utf8))
            for hex in signatures {
                guard let mac = Self.hexBytes(hex), mac.count == 32 else { continue }
                if HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: key) { valid = mac }
            }
        }
        guard let mac = valid else { return reject("bad signature: v1 must be hex HMAC-SHA256(secret, \"t.body\") over the exact body bytes") }
        let entry = ReplayCache.Entry(time: t, mac: mac)
        switch replayCache.insert(entry, now: Int64(now.rounded(.down)), window: Int64(replayWindow.rounded(.up))) {
        case .fresh:
            return .success(.signature(entry))
        case .replayed:
            return reject(
                "replayed request: this signature (t=\(t)) was already accepted within the \(Int(replayWindow)) s replay window; sign every request anew (a new t)")
        case .olderThanRemembered(let floor):
            return reject(
                "signature timestamp t=\(t) is older than the replay cache can vouch for (it is full and remembers signatures from t=\(floor + 1) on); sign the request anew"
            )
        }
    }

    /// `t=…,v1=…` for `body` at `time` (clients and tests).
    public static func sign(body: [UInt8], secret: String, time: Date = Date()) -> String {
        let t = String(Int64(time.timeIntervalSince1970))
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(t).".utf8) + body, using: SymmetricKey(data: Array(secret.utf8)))
        return "t=\(t),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    static func hexBytes(_ hex: String) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// The signatures accepted within the replay window, so that each is accepted once.
///
/// Entries are grouped by their timestamp `t`: those older than the window are dropped
/// (the timestamp check refuses them anyway). Memory is bounded by `capacity`: when it is
/// full of entries still inside the window, the oldest timestamps are dropped and from
/// then on a signature with a timestamp at or before the newest dropped one is refused
/// ("older than the cache can vouch for") — never accepted twice.
public final class ReplayCache: Sendable {
    public struct Entry: Sendable, Hashable {
        /// The signature's `t`.
        public var time: Int64
        /// The signature (the MAC that verified).
        public var mac: [UInt8]

        public init(time: Int64, mac: [UInt8]) {
            self.time = time
            self.mac = mac
        }
    }

    public enum Outcome: Sendable, Equatable {
        case fresh
        case replayed
        /// Refused: entries up to this timestamp were dropped for room.
        case olderThanRemembered(Int64)
    }

    /// About 100 bytes each: 100,000 signatures ≈ 10 MB, 333 signed requests a second
    /// over a 5-minute window before the oldest are dropped.
    public static let defaultCapacity = 100_000

    struct State {
        var byTime: [Int64: Set<[UInt8]>] = [:]
        var count = 0
        var floor = Int64.min
        var lastPurge = Int64.min
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = ReplayCache.defaultCapacity) { self.capacity = max(1, capacity) }

    public var count: Int { state.withLock { $0.count } }

    /// Remembers `entry` unless it is already remembered (a replay) or too old to tell.
    /// `now` and `window` in seconds.
    public func insert(_ entry: Entry, now: Int64, window: Int64) -> Outcome {
        state.withLock { s in
            if s.lastPurge != now {
                s.lastPurge = now
                for t in s.byTime.keys where t < now - window {
                    s.count -= s.byTime.removeValue(forKey: t)?.count ?? 0
                }
            }
            if entry.time <= s.floor { return .olderThanRemembered(s.floor) }
            if s.byTime[entry.time]?.contains(entry.mac) == true { return .replayed }
            if s.count >= capacity {
                for t in s.byTime.keys.sorted() where s.count >= capacity {
                    s.count -= s.byTime.removeValue(forKey: t)?.count ?? 0
                    s.floor = max(s.floor, t)
                }
                if entry.time <= s.floor { return .olderThanRemembered(s.floor) }
            }
            s.byTime[entry.time, default: []].insert(entry.mac)
            s.count += 1
            return .fresh
        }
    }

    public func remove(_ entry: Entry) {
        state.withLock { s in
            if s.byTime[entry.time]?.remove(entry.mac) != nil {
                s.count -= 1
                if s.byTime[entry.time]?.isEmpty == true { s.byTime[entry.time] = nil }
            }
        }
    }
}
