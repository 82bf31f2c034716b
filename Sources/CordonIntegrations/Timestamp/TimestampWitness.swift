import CordonCore
import Crypto
import Foundation
import SwiftASN1
import X509

/// An RFC 3161 time-stamping authority as a checkpoint witness (`tsa:URL`). Each head's
/// canonical line is hashed (SHA-256) and sent as a `TimeStampReq`; the TSA's signed
/// token says the line existed at its genTime. The receipt's proof is the whole
/// `TimeStampResp` (base64 DER), which `openssl ts -verify` checks too. A TSA keeps
/// nothing: its receipts are the record.
public struct TimestampWitness: CheckpointWitness {
    /// `tsa:` and the URL without user information or query (no credentials).
    public let spec: String
    /// Where requests go, as configured.
    public let url: String
    /// The deadline over one exchange (connect, request, whole answer).
    public let timeout: Duration
    /// The largest answer taken.
    public let maxResponseBytes: Int
    /// Certificates the TSA's signer must chain to; without them a token's signature is
    /// checked with the certificate it carries, which says nothing of whose it is.
    let anchors: [Certificate]
    /// Nil: the integrations' shared transport, made only when a head is sent (checking
    /// receipts makes no HTTP client).
    let transport: HTTPTransport?
    /// `POST scheme://host:port`, for transport errors.
    let describe: String

    /// The largest stored response `check` reads.
    public static let maxStoredResponseBytes = 1 << 20

    /// A witness from its spec, `tsa:URL` with an http or https URL. `trustAnchorPEM`
    /// holds one or more PEM certificates (a CA's, or the TSA's own).
    public init(
        spec: String, trustAnchorPEM: String? = nil, timeout: Duration = .seconds(10), maxResponseBytes: Int = 64 << 10, transport: HTTPTransport? = nil
    ) throws {
        guard spec.hasPrefix("tsa:") else { throw TimestampError("\(spec): a time-stamping witness is tsa:URL") }
        try self.init(url: String(spec.dropFirst(4)), trustAnchorPEM: trustAnchorPEM, timeout: timeout, maxResponseBytes: maxResponseBytes, transport: transport)
    }

    public init(
        url: String, trustAnchorPEM: String? = nil, timeout: Duration = .seconds(10), maxResponseBytes: Int = 64 << 10, transport: HTTPTransport? = nil
    ) throws {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = parts.host, !host.isEmpty
        else { throw TimestampError("tsa:\(url): not an http or https URL") }
        var shown = parts
        shown.user = nil
        shown.password = nil
        shown.query = nil
        shown.fragment = nil
        self.spec = "tsa:" + (shown.string ?? "\(scheme)://\(host)")
        self.url = url
        self.describe = "\(spec): POST \(scheme)://\(host)" + (parts.port.map { ":\($0)" } ?? "")
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
        self.transport = transport
        self.anchors = try trustAnchorPEM.map(Self.certificates(pem:)) ?? []
    }

    /// Every `CERTIFICATE` in a PEM text; throws when there is none or one does not parse.
    static func certificates(pem: String) throws -> [Certificate] {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem).filter { $0.discriminator == "CERTIFICATE" }
        } catch {
            throw TimestampError("the TSA trust anchor is not PEM: \(error)")
        }
        guard !documents.isEmpty else { throw TimestampError("the TSA trust anchor holds no PEM CERTIFICATE") }
        return try documents.enumerated().map { index, document in
            do {
                return try Certificate(derEncoded: document.derBytes)
            } catch {
                throw TimestampError("certificate \(index + 1) of the TSA trust anchor does not parse: \(error)")
            }
        }
    }

    public func witness(_ head: Checkpoint) async throws -> WitnessReceipt {
        let imprint = Self.imprint(head)
        let nonce = UInt64.random(in: 1...UInt64.max)
        let answer = try await post(TimeStampRequest.der(sha256: imprint, nonce: nonce))
        let response: TimeStampResponse
        do {
            response = try TimeStampResponse(der: answer.body)
        } catch {
            let kind = answer.header("Content-Type").map { ", Content-Type \($0)" } ?? ""
            throw TimestampError("\(spec): the answer is not a time-stamp response (\(error)\(kind))")
        }
        guard response.status.isGranted else { throw TimestampError("\(spec): the TSA did not grant a time-stamp: \(response.status)") }
        guard let token = response.token else { throw TimestampError("\(spec): the TSA answered \(response.status) but sent no token") }
        if let problem = Self.imprintProblem(token, imprint) { throw TimestampError("\(spec): \(problem)") }
        guard token.tstInfo.nonce == Array(withUnsafeBytes(of: nonce.bigEndian, Array.init).drop { $0 == 0 }) else {
            throw TimestampError("\(spec): the token's nonce is not the request's (a replayed or misdirected answer)")
        }
        let check = try TimeStampVerifier.check(token, anchors: anchors)
        if let problem = check.problem { throw TimestampError("\(spec): the token does not verify: \(problem)") }
        return WitnessReceipt(witness: spec, seq: head.seq, hash: head.hash, time: token.tstInfo.genTime, proof: Data(answer.body).base64EncodedString())
    }

    /// Sends the request; the answer when the TSA answered 2xx within bounds.
    func post(_ request: [UInt8]) async throws -> HTTPTransport.Response {
        let response: HTTPTransport.Response
        do throws(ActionError) {
            response = try await (transport ?? .shared).send(
                method: "POST", url: url, headers: [("Content-Type", "application/timestamp-query"), ("Accept", "application/timestamp-reply")],
                body: request, timeout: timeout, describe: describe)
        } catch {
            throw TimestampError(error.message)
        }
        guard (200..<300).contains(response.status) else {
            let text = String(decoding: response.body.prefix(200), as: UTF8.self).filter { $0.isASCII && !$0.isNewline }
            throw TimestampError("\(describe): HTTP \(response.status)" + (text.isEmpty ? "" : " (\(text))"))
        }
        guard !response.truncated, response.bodyBytes <= maxResponseBytes else {
            throw TimestampError("\(describe): the answer is over \(maxResponseBytes) bytes")
        }
        return response
    }

    /// A TSA keeps nothing.
    public func witnessedHeads() async throws -> [Checkpoint]? { nil }

    public func check(_ receipt: WitnessReceipt, for head: Checkpoint) throws -> Bool? {
        try examine(receipt, for: head).isValid
    }

    /// What `check` decides, with the reason and the token's time and signer. Throws only
    /// when the stored proof does not parse (saying where).
    public func examine(_ receipt: WitnessReceipt, for head: Checkpoint) throws -> TimestampCheck {
        try Self.examine(receipt, for: head, anchors: anchors)
    }

    static func examine(_ receipt: WitnessReceipt, for head: Checkpoint, anchors: [Certificate]) throws -> TimestampCheck {
        guard let data = Data(base64Encoded: receipt.proof) else { throw TimestampError("receipt \(receipt.seq): the proof is not base64") }
        guard data.count <= maxStoredResponseBytes else { throw TimestampError("receipt \(receipt.seq): the proof is over \(maxStoredResponseBytes) bytes") }
        let response: TimeStampResponse
        do {
            response = try TimeStampResponse(der: Array(data))
        } catch {
            throw TimestampError("receipt \(receipt.seq): the stored time-stamp response is \(error)")
        }
        guard response.status.isGranted, let token = response.token else {
            return TimestampCheck(problem: "the stored response grants no token (\(response.status))", time: "", signer: nil, chained: false)
        }
        var result = TimestampCheck(problem: nil, time: token.tstInfo.genTime, signer: nil, chained: false)
        if receipt.seq != head.seq || receipt.hash != head.hash {
            result.problem = "the receipt is for seq \(receipt.seq) (\(receipt.hash)), not seq \(head.seq) (\(head.hash))"
        } else if let problem = imprintProblem(token, imprint(head)) {
            result.problem = problem
        } else if receipt.time != token.tstInfo.genTime {
            result.problem = "the receipt's time \(receipt.time) is not the token's genTime \(token.tstInfo.genTime)"
        }
        if result.problem != nil { return result }
        do {
            return try TimeStampVerifier.check(token, anchors: anchors)
        } catch {
            throw TimestampError("receipt \(receipt.seq): \(error)")
        }
    }

    /// SHA-256 of the head's line: its UTF-8 bytes, no newline (what `openssl ts -verify
    /// -data FILE` hashes when FILE holds the line alone).
    static func imprint(_ head: Checkpoint) -> [UInt8] { Array(SHA256.hash(data: Array(head.line.utf8))) }

    static func imprintProblem(_ token: TimeStampToken, _ imprint: [UInt8]) -> String? {
        guard token.tstInfo.imprintAlgorithm.elementsEqual(OID.sha256) else {
            return "the token's message imprint is \(DER.oidText(token.tstInfo.imprintAlgorithm)), not SHA-256"
        }
        guard token.tstInfo.imprint == imprint else {
            return "imprint mismatch: the token covers another line than this head's (its SHA-256 differs)"
        }
        return nil
    }
}
