import Crypto
import Foundation

/// Authenticates `POST /v1/findings`: an API key in a header, or an HMAC-SHA256
/// signature with a timestamp.
///
/// - API key: `X-Cordon-Api-Key: KEY`, `Authorization: Bearer KEY`, or the header named
///   by `apiKeyHeader` (an EventBridge API destination's connection sends the header and
///   value it is configured with).
/// - Signature: `Cordon-Signature: t=UNIX-SECONDS,v1=HEX` where HEX is
///   HMAC-SHA256(secret, "T.BODY"); `t` must be within `replayWindow` of now, so a
///   captured request cannot be replayed later (within the window, a replay of the same
///   finding is journaled as a duplicate and runs nothing).
///
/// Every comparison is constant-time.
public struct RequestAuthenticator: Sendable {
    public var apiKeys: [String]
    public var hmacSecrets: [String]
    public var apiKeyHeader: String?
    public var replayWindow: TimeInterval
    public var now: @Sendable () -> Date

    public init(apiKeys: [String] = [], hmacSecrets: [String] = [], apiKeyHeader: String? = nil, replayWindow: TimeInterval = 300, now: @escaping @Sendable () -> Date = { Date() }) {
        self.apiKeys = apiKeys.filter { !$0.isEmpty }
        self.hmacSecrets = hmacSecrets.filter { !$0.isEmpty }
        self.apiKeyHeader = apiKeyHeader
        self.replayWindow = replayWindow
        self.now = now
    }

    public var isConfigured: Bool { !apiKeys.isEmpty || !hmacSecrets.isEmpty }

    public static let signatureHeader = "Cordon-Signature"
    public static let apiKeyHeaderName = "X-Cordon-Api-Key"

    /// nil when authenticated, else why not (the 401 message).
    public func check(header: (String) -> String?, body: [UInt8]) -> String? {
        guard isConfigured else { return "no credentials are configured on this server (--api-key-secret or --hmac-secret)" }
        if let signature = header(Self.signatureHeader) {
            return checkSignature(signature, body: body)
        }
        var presented: String?
        if let name = apiKeyHeader, let v = header(name) { presented = v }
        if presented == nil, let v = header(Self.apiKeyHeaderName) { presented = v }
        if presented == nil, let v = header("Authorization") {
            let parts = v.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { presented = String(parts[1]).trimmingCharacters(in: .whitespaces) }
        }
        guard let key = presented else {
            return "missing credentials: send the API key in \(apiKeyHeader ?? Self.apiKeyHeaderName) or Authorization: Bearer, or sign the body (\(Self.signatureHeader): t=…,v1=…)"
        }
        guard !apiKeys.isEmpty else { return "API keys are not accepted here; sign the body (\(Self.signatureHeader): t=…,v1=…)" }
        let presentedDigest = SHA256.hash(data: Array(key.utf8))
        var ok = false
        for candidate in apiKeys {
            // Hash both sides so the comparison is constant-time and length-independent.
            ok = Self.constantTimeEqual(Array(SHA256.hash(data: Array(candidate.utf8))), Array(presentedDigest)) || ok
        }
        return ok ? nil : "invalid API key"
    }

    func checkSignature(_ value: String, body: [UInt8]) -> String? {
        guard !hmacSecrets.isEmpty else { return "signatures are not accepted here; send the API key" }
        var timestamp: String?
        var signatures: [String] = []
        for part in value.split(separator: ",") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { continue }
            if kv[0] == "t" { timestamp = String(kv[1]) } else if kv[0] == "v1" { signatures.append(String(kv[1])) }
        }
        guard let timestamp, let t = Int64(timestamp) else { return "\(Self.signatureHeader) has no t=UNIX-SECONDS" }
        guard !signatures.isEmpty else { return "\(Self.signatureHeader) has no v1=HEX signature" }
        let age = now().timeIntervalSince1970 - Double(t)
        guard abs(age) <= replayWindow else {
            return "signature timestamp t=\(t) is \(Int(age)) s from now, outside the \(Int(replayWindow)) s replay window (check the sender's clock)"
        }
        let signed = Array("\(timestamp).".utf8) + body
        var ok = false
        for secret in hmacSecrets {
            let key = SymmetricKey(data: Array(secret.utf8))
            for hex in signatures {
                guard let mac = Self.hexBytes(hex), mac.count == 32 else { continue }
                ok = HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: key) || ok
            }
        }
        return ok ? nil : "bad signature: v1 must be hex HMAC-SHA256(secret, \"t.body\") over the exact body bytes"
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
