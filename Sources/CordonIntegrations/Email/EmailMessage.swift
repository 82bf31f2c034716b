import CordonCore
import Foundation

/// A plain-text e-mail, checked so that nothing a finding controls can add a header or a
/// recipient (CR or LF in a subject or an address is refused), and written as RFC 5322 with
/// a base64 UTF-8 body.
struct EmailMessage: Sendable {
    var from: String
    var to: [String]
    var cc: [String]
    var subject: String
    var body: String
    /// Becomes the Message-ID, so that a resend after a crash is recognisable as the same
    /// message by mail clients and archives.
    var idempotencyKey: String
    var incident: String?

    /// `local@domain`, ASCII, no spaces, brackets, quotes or line breaks, at most 254
    /// characters.
    static func validAddress(_ a: String) -> Bool {
        guard a.count <= 254, a.allSatisfy(\.isASCII) else { return false }
        let parts = a.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, let local = parts.first, let domain = parts.last, !local.isEmpty, local.count <= 64, !domain.isEmpty else { return false }
        let localOK = local.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "!#$%&'*+/=?^_`{|}~.-".unicodeScalars.contains($0) }
            && !local.hasPrefix(".") && !local.hasSuffix(".") && !local.contains("..")
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        let domainOK = labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || $0 == "-" }
        }
        return localOK && domainOK
    }

    func validate() throws(ActionError) {
        for (field, value) in [("subject", subject), ("from", from)] + (to + cc).map({ ("recipient", $0) }) {
            if value.contains("\r") || value.contains("\n") || value.contains("\0") {
                throw .permanent("HeaderInjection", "core.email: \(field) contains a line break (CR/LF): refused, it could add headers or recipients")
            }
        }
        guard Self.validAddress(from) else { throw .permanent("InvalidAddress", "core.email: from \"\(from)\" is not an e-mail address (local@domain)") }
        guard !to.isEmpty else { throw .permanent("InvalidAddress", "core.email: `to` names no recipient") }
        for a in to + cc where !Self.validAddress(a) {
            throw .permanent("InvalidAddress", "core.email: recipient \"\(a)\" is not an e-mail address (local@domain)")
        }
        guard subject.count <= 998 else { throw .permanent("InvalidInput", "core.email: the subject is longer than 998 characters") }
    }

    /// The message as sent after DATA (without dot-stuffing), CRLF line ends.
    func rendered(date: Date = Date(), host: String) -> String {
        var lines = [
            "From: <\(from)>",
            "To: " + to.map { "<\($0)>" }.joined(separator: ", "),
        ]
        if !cc.isEmpty { lines.append("Cc: " + cc.map { "<\($0)>" }.joined(separator: ", ")) }
        lines += [
            "Subject: \(Self.encodedWord(subject))",
            "Date: \(Self.rfc5322Date(date))",
            "Message-ID: <\(idempotencyKey.prefix(64))@\(host)>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: base64",
            "Auto-Submitted: auto-generated",
        ]
        if let incident, !incident.contains("\r"), !incident.contains("\n") { lines.append("X-Cordon-Incident: \(incident)") }
        let normalized = body.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\n", with: "\r\n")
        let b64 = Data(normalized.utf8).base64EncodedString()
        var chunks: [String] = []
        var i = b64.startIndex
        while i < b64.endIndex {
            let j = b64.index(i, offsetBy: 76, limitedBy: b64.endIndex) ?? b64.endIndex
            chunks.append(String(b64[i..<j]))
            i = j
        }
        return (lines + [""] + chunks).joined(separator: "\r\n") + "\r\n"
    }

    /// RFC 2047 for non-ASCII subjects (one base64 word per ≤ 45 bytes of UTF-8 whole characters).
    static func encodedWord(_ text: String) -> String {
        if text.allSatisfy({ $0.isASCII }) { return text }
        var words: [String] = []
        var current: [UInt8] = []
        for ch in text {
            let bytes = Array(String(ch).utf8)
            if current.count + bytes.count > 45 {
                words.append("=?utf-8?B?\(Data(current).base64EncodedString())?=")
                current = []
            }
            current += bytes
        }
        if !current.isEmpty { words.append("=?utf-8?B?\(Data(current).base64EncodedString())?=") }
        return words.joined(separator: "\r\n ")
    }

    static func rfc5322Date(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return f.string(from: date)
    }

    /// RFC 5321 transparency: a line starting with "." gets another.
    static func dotStuffed(_ message: String) -> String {
        message.split(separator: "\r\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(".") ? "." + $0 : String($0) }
            .joined(separator: "\r\n")
    }
}
