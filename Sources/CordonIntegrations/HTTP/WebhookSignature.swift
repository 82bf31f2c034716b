import Crypto
import Foundation

/// The outgoing-webhook signature: `t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`,
/// the scheme Stripe made common. The receiver recomputes the HMAC over the exact bytes it
/// received, compares in constant time and rejects old timestamps (replays).
public enum WebhookSignature {
    public static func header(body: [UInt8], secret: String, timestamp: Int) -> String {
        "t=\(timestamp),v1=\(mac(body: body, secret: secret, timestamp: timestamp))"
    }

    public static func mac(body: [UInt8], secret: String, timestamp: Int) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array("\(timestamp).".utf8) + body, using: SymmetricKey(data: Array(secret.utf8)))
        return code.map { String(format: "%02x", $0) }.joined()
    }

    /// Checks a header as a receiver would (for tests and for Cordon-to-Cordon use).
    public static func verify(header: String, body: [UInt8], secret: String, now: Int, tolerance: Int = 300) -> Bool {
        var t: Int? = nil
        var signatures: [String] = []
        for part in header.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            if kv[0] == "t" { t = Int(kv[1]) } else if kv[0] == "v1" { signatures.append(kv[1]) }
        }
        // Subtracted without overflow: t is whatever the sender wrote.
        guard let t, case let (age, overflow) = now.subtractingReportingOverflow(t), !overflow, age.magnitude <= tolerance.magnitude else { return false }
        let expected = Array(mac(body: body, secret: secret, timestamp: t).utf8)
        return signatures.contains { candidate in
            let c = Array(candidate.utf8)
            guard c.count == expected.count else { return false }
            return zip(c, expected).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
        }
    }
}
