import CordonCore
import CordonTestSupport
import Foundation
import Synchronization
import Testing

@testable import CordonIntegrations

/// The RFC 3161 witness against a local TSA run by `openssl ts -reply`: what it stores,
/// what `check` accepts and refuses, that `openssl ts -verify` accepts the same receipt,
/// and how a TSA that refuses, babbles or never answers reads.
@Suite struct TimestampWitnessTests {
    /// The PKIs and TSAs, made once per test process.
    enum Fixtures {
        private static let pkis = Mutex<[String: TimestampPKI]>([:])
        private static let tsas = Mutex<[String: LocalTSA]>([:])

        static func pki(_ name: String, key: TimestampPKI.KeyType = .rsa, intermediate: Bool = false) async throws -> TimestampPKI {
            try await offPool {
                try pkis.withLock { all in
                    if let made = all[name] { return made }
                    let made = try TimestampPKI.make(key: key, intermediate: intermediate, name: "Cordon \(name)")
                    all[name] = made
                    return made
                }
            }
        }

        /// A granting TSA over the RSA PKI (`rsa`) or the ECDSA one with an intermediate CA (`ec`).
        static func tsa(_ name: String) async throws -> LocalTSA {
            let pki = name == "ec" ? try await pki("ec", key: .ecdsaP256, intermediate: true) : try await pki("rsa")
            return try await offPool {
                try tsas.withLock { all in
                    if let made = all[name] { return made }
                    let made = try LocalTSA(pki: pki)
                    all[name] = made
                    return made
                }
            }
        }
    }

    static func head(_ seq: Int64 = 7, hash: String = String(repeating: "ab", count: 32)) -> Checkpoint {
        Checkpoint(seq: seq, hash: hash, time: "2026-03-12T11:03:38.123456Z", signature: "c2lnbmF0dXJl", keyFingerprint: String(repeating: "0f", count: 32))
    }

    static func proof(_ receipt: WitnessReceipt) throws -> [UInt8] { Array(try #require(Data(base64Encoded: receipt.proof))) }

    func receipt(_ tsaName: String, _ head: Checkpoint = head()) async throws -> (TimestampWitness, WitnessReceipt, LocalTSA) {
        let tsa = try await Fixtures.tsa(tsaName)
        let witness = try TimestampWitness(spec: tsa.spec)
        return (witness, try await witness.witness(head), tsa)
    }

    @Test(arguments: ["rsa", "ec"]) func witnessesAHeadAndTheReceiptChecks(tsaName: String) async throws {
        let head = Self.head()
        let (witness, receipt, tsa) = try await receipt(tsaName, head)
        #expect(receipt.witness == tsa.spec)
        #expect(receipt.seq == head.seq && receipt.hash == head.hash)
        #expect(Timestamp.parse(receipt.time) != nil, "genTime as ISO 8601: \(receipt.time)")
        #expect(receipt.time.hasSuffix("Z") && receipt.time.contains("T"))
        #expect(abs((Timestamp.parse(receipt.time) ?? .distantPast).timeIntervalSinceNow) < 300)
        #expect(try witness.check(receipt, for: head) == true)
        let examined = try witness.examine(receipt, for: head)
        #expect(examined.problem == nil)
        #expect(examined.signer?.contains("TSA") == true, "\(examined.signer ?? "no signer")")
        #expect(examined.chained == false, "no trust anchor was given")
        #expect(try await witness.witnessedHeads() == nil)
    }

    @Test func aReceiptProvesOnlyItsOwnHead() async throws {
        let (witness, receipt, _) = try await receipt("rsa")
        let other = Self.head(8, hash: String(repeating: "cd", count: 32))
        #expect(try witness.check(receipt, for: other) == false)
        // The same seq and hash with another signature: the line differs, so the imprint does.
        var changed = Self.head()
        changed.signature = "YW5vdGhlcg=="
        #expect(try witness.check(receipt, for: changed) == false)
        #expect(try witness.examine(receipt, for: changed).problem?.contains("imprint mismatch") == true)
        // A receipt relabelled for the other head still carries the first head's imprint.
        var relabelled = receipt
        relabelled.seq = other.seq
        relabelled.hash = other.hash
        #expect(try witness.check(relabelled, for: other) == false)
        var retimed = receipt
        retimed.time = "2020-01-01T00:00:00Z"
        #expect(try witness.check(retimed, for: Self.head()) == false)
    }

    /// Flips one byte in the TSTInfo, in a signed attribute, in the signature and in the
    /// certificate: none of them checks.
    @Test(arguments: ["rsa", "ec"]) func aTamperedTokenDoesNotCheck(tsaName: String) async throws {
        let head = Self.head()
        let (witness, receipt, tsa) = try await receipt(tsaName, head)
        let bytes = try Self.proof(receipt)
        let token = try #require(try TimeStampResponse(der: bytes).token)
        let digest = try #require(token.signer.attribute(OID.messageDigest))
        let places = [
            ("TSTInfo genTime", try #require(Self.find(Array(token.tstInfo.genTime.utf8.prefix(4)), in: bytes, from: token.eContent.startIndex))),
            ("messageDigest", digest.contentStart + 3), ("signature", bytes.count - 5), ("certificate", try #require(token.certificates.first).startIndex + 200),
        ]
        for (place, offset) in places {
            var tampered = bytes
            tampered[offset] ^= 0x01
            var forged = receipt
            forged.proof = Data(tampered).base64EncodedString()
            let outcome: String
            do {
                let check = try witness.examine(forged, for: head)
                #expect(!check.isValid, "a changed \(place) byte still checks")
                outcome = check.problem ?? ""
            } catch {
                outcome = "\(error)"
            }
            #expect(!outcome.isEmpty)
            let changed = tampered
            // Without -untrusted: given its own copy of the TSA's certificate, openssl
            // would use that one and ignore a changed certificate in the token.
            let openssl = try await offPool { try tsa.pki.opensslVerify(response: changed, data: Array(head.line.utf8), untrusted: false) }
            #expect(!openssl.ok, "openssl accepts a changed \(place) byte: \(openssl.output)")
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        return (start...(haystack.count - needle.count)).first { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }

    @Test(arguments: ["rsa", "ec"]) func chainsToItsCAAndNotToAnother(tsaName: String) async throws {
        let head = Self.head()
        let (_, receipt, tsa) = try await receipt(tsaName, head)
        let trusting = try TimestampWitness(spec: tsa.spec, trustAnchorPEM: tsa.pki.caPEM)
        let examined = try trusting.examine(receipt, for: head)
        #expect(examined.problem == nil)
        #expect(examined.chained)
        let stranger = try await Fixtures.pki("stranger")
        let doubting = try TimestampWitness(spec: tsa.spec, trustAnchorPEM: stranger.caPEM)
        #expect(try doubting.check(receipt, for: head) == false)
        #expect(try doubting.examine(receipt, for: head).problem?.contains("does not chain") == true)
        // Witnessing with the wrong anchor refuses the token at once.
        await #expect(throws: TimestampError.self) { try await doubting.witness(head) }
        // The TSA's own certificate as the anchor is trusted as configured.
        let own = try String(contentsOfFile: tsa.pki.untrusted, encoding: .utf8)
        #expect(try TimestampWitness(spec: tsa.spec, trustAnchorPEM: own).examine(receipt, for: head).chained)
    }

    /// What `cordon journal verify` users run by hand: the receipt's proof base64-decoded
    /// to a file, the head's line (no newline) to another.
    @Test(arguments: ["rsa", "ec"]) func opensslVerifiesTheStoredReceipt(tsaName: String) async throws {
        let head = Self.head()
        let (_, receipt, tsa) = try await receipt(tsaName, head)
        let proof = try Self.proof(receipt)
        let accepted = try await offPool { try tsa.pki.opensslVerify(response: proof, data: Array(head.line.utf8)) }
        #expect(accepted.ok, "\(accepted.output)")
        #expect(accepted.output.contains("Verification: OK"))
        let alone = try await offPool { try tsa.pki.opensslVerify(response: proof, data: Array(head.line.utf8), untrusted: false) }
        #expect(alone.ok, "the token carries the TSA's certificate: \(alone.output)")
        var changed = head
        changed.seq += 1
        let changedLine = Array(changed.line.utf8)
        let refused = try await offPool { try tsa.pki.opensslVerify(response: proof, data: changedLine) }
        #expect(!refused.ok, "\(refused.output)")
        let newline = try await offPool { try tsa.pki.opensslVerify(response: proof, data: Array((head.line + "\n").utf8)) }
        #expect(!newline.ok, "the imprint covers the line without a newline")
        let stranger = try await Fixtures.pki("stranger")
        let untrusted = try await offPool { try tsa.pki.opensslVerify(response: proof, data: Array(head.line.utf8), caFile: stranger.caCertificate) }
        #expect(!untrusted.ok, "\(untrusted.output)")
    }

    @Test func aRejectingTSASaysWhy() async throws {
        let pki = try await Fixtures.pki("rsa")
        let tsa = try await offPool { try LocalTSA(pki: pki, behaviour: .reject) }
        defer { tsa.stop() }
        let error = try await #require(throws: TimestampError.self) { try await TimestampWitness(spec: tsa.spec).witness(Self.head()) }
        #expect(error.description.contains("did not grant"), "\(error)")
        #expect(error.description.contains("rejection(2)"), "\(error)")
        #expect(error.description.contains("badAlg"), "\(error)")
        #expect(error.description.contains("Message digest algorithm is not supported"), "\(error)")
    }

    @Test func aTSAAnsweringGarbageSaysWhereItBreaks() async throws {
        let tsa = try await offPool { try LocalTSA(pki: try TimestampPKI.make(), behaviour: .garbage) }
        defer { tsa.stop() }
        let error = try await #require(throws: TimestampError.self) { try await TimestampWitness(spec: tsa.spec).witness(Self.head()) }
        #expect(error.description.contains("not a time-stamp response"), "\(error)")
        #expect(error.description.contains("not DER at byte 0"), "\(error)")
        #expect(error.description.contains("Content-Type text/html"), "\(error)")
    }

    @Test func aTSAThatNeverAnswersTimesOut() async throws {
        let pki = try await Fixtures.pki("rsa")
        let tsa = try await offPool { try LocalTSA(pki: pki, behaviour: .silent) }
        defer { tsa.stop() }
        let started = ContinuousClock.now
        let error = try await #require(throws: TimestampError.self) {
            try await TimestampWitness(spec: tsa.spec, timeout: .seconds(1)).witness(Self.head())
        }
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(error.description.contains("timed out"), "\(error)")
        #expect(error.description.contains("POST http://127.0.0.1"), "\(error)")
    }

    @Test func aClosedPortIsRefused() async throws {
        let closed = try ReservedClosedPort()
        let witness = try TimestampWitness(spec: "tsa:http://127.0.0.1:\(closed.port)/tsr", timeout: .seconds(5))
        let error = try await #require(throws: TimestampError.self) { try await witness.witness(Self.head()) }
        withExtendedLifetime(closed) {}
        #expect(error.description.contains("refused"), "\(error)")
    }
}
