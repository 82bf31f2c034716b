import CordonCore
import CordonTestSupport
import Foundation
import Testing

@testable import CordonIntegrations

/// The time-stamp messages on their own: the request openssl reads, the witness's spec,
/// and the DER reader facing truncated, mutated and hostile input.
@Suite struct TimestampDERTests {
    @Test func theRequestIsWhatOpensslReads() async throws {
        let imprint = (0..<32).map { UInt8($0) }
        let request = TimeStampRequest.der(sha256: imprint, nonce: 0x8000_0000_0000_0001)
        let dir = try TempDir("tsq", removeOnDeinit: true)
        let file = dir.url.appendingPathComponent("request.tsq")
        try Data(request).write(to: file)
        let text = try await offPool {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["openssl", "ts", "-query", "-in", file.path, "-text"]
            return try Spawn.capture(process, merge: true, timeout: 60)
        }
        #expect(text.status == 0, "\(text.stdoutText)")
        #expect(text.stdoutText.contains("Version: 1"))
        #expect(text.stdoutText.contains("Hash Algorithm: sha256"))
        #expect(text.stdoutText.contains("Nonce: 0x8000000000000001"), "\(text.stdoutText)")
        #expect(text.stdoutText.contains("Certificate required: yes"))
        #expect(text.stdoutText.contains("00 01 02 03 04 05 06 07"))
    }

    @Test func theSpecKeepsNoCredentials() throws {
        let witness = try TimestampWitness(spec: "tsa:https://user:secret@tsa.example:8443/stamp?key=k1")
        #expect(witness.spec == "tsa:https://tsa.example:8443/stamp")
        #expect(witness.url == "https://user:secret@tsa.example:8443/stamp?key=k1")
        #expect(try TimestampWitness(url: "http://127.0.0.1:1/tsr").spec == "tsa:http://127.0.0.1:1/tsr")
        #expect(throws: TimestampError.self) { try TimestampWitness(spec: "tsa:ftp://tsa.example/") }
        #expect(throws: TimestampError.self) { try TimestampWitness(spec: "file:/tmp/heads") }
        #expect(throws: TimestampError.self) { try TimestampWitness(spec: "tsa:http://x/", trustAnchorPEM: "not pem") }
    }

    @Test func anUnparseableProofThrowsSayingWhere() throws {
        let witness = try TimestampWitness(spec: "tsa:http://127.0.0.1:1/tsr")
        let head = Checkpoint(seq: 1, hash: "00", time: "t", signature: "s", keyFingerprint: "k")
        var receipt = WitnessReceipt(witness: witness.spec, seq: 1, hash: "00", time: "t", proof: "%%%")
        #expect(throws: TimestampError.self) { try witness.check(receipt, for: head) }
        receipt.proof = Data([0x30, 0x03, 0x02, 0x05, 0x00]).base64EncodedString()
        let error = try #require(throws: TimestampError.self) { try witness.check(receipt, for: head) }
        #expect(error.description.contains("not DER at byte 2"), "\(error)")
    }

    @Test func hostileLengthsAreRefusedWhereTheyAre() {
        let cases: [([UInt8], String)] = [
            ([], "byte 0: TimeStampResp is missing"),
            ([0x30, 0x80, 0x00, 0x00], "byte 1: TimeStampResp has an indefinite length"),
            ([0x30, 0x85, 1, 0, 0, 0, 0], "byte 1: TimeStampResp has a length of 5 bytes"),
            ([0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF], "byte 0: TimeStampResp claims 4294967295 bytes"),
            ([0x30, 0x02, 0x30, 0x05], "byte 2: PKIStatusInfo claims 5 bytes"),
            ([0x30, 0x00, 0x00], "byte 2: unexpected bytes after the TimeStampResp"),
            ([0x1F, 0x01, 0x00], "byte 0: expected TimeStampResp (tag 0x30), found tag 0x1F"),
            ([0x30, 0x02, 0x1F, 0x00], "byte 2: expected PKIStatusInfo (tag 0x30), found tag 0x1F"),
            ([0x02, 0x01, 0x00], "byte 0: expected TimeStampResp"),
        ]
        for (bytes, expected) in cases {
            #expect(throws: DERError.self) { try TimeStampResponse(der: bytes) }
            do {
                _ = try TimeStampResponse(der: bytes)
            } catch {
                #expect(error.description.contains(expected), "\(bytes): \(error)")
            }
        }
    }

    @Test func aRejectionReadsWithItsFailureBitsAndText() throws {
        let text = DER.element(DER.sequence, DER.element(DER.utf8String, Array("no such policy".utf8)))
        let failInfo = DER.element(DER.bitString, [0x00, 0x00, 0x01])  // bit 15: unacceptedPolicy
        let response = DER.element(DER.sequence, DER.element(DER.sequence, DER.unsignedInteger(2) + text + failInfo))
        let parsed = try TimeStampResponse(der: response)
        #expect(parsed.token == nil)
        #expect(!parsed.status.isGranted)
        #expect(parsed.status.description == "rejection(2), failInfo unacceptedPolicy, \"no such policy\"")
    }

    /// Every truncation of a real response, and every one-bit change of it, parses or
    /// throws DERError: nothing traps.
    @Test func truncatedAndMutatedResponsesNeverTrap() async throws {
        let tsa = try await TimestampWitnessTests.Fixtures.tsa("ec")
        let head = TimestampWitnessTests.head()
        // With the CA as trust anchor, so that the carried intermediate counts too.
        let witness = try TimestampWitness(spec: tsa.spec, trustAnchorPEM: tsa.pki.caPEM)
        let receipt = try await witness.witness(head)
        let bytes = try TimestampWitnessTests.proof(receipt)
        for length in 0..<bytes.count {
            #expect(throws: DERError.self) { try TimeStampResponse(der: Array(bytes.prefix(length))) }
        }
        // What the TSA's signature covers: the TSTInfo, its certificate (named by hash in
        // a signed attribute) and the signature value at the end. Changes elsewhere that
        // still check touch only the unsigned envelope: the status (granted to
        // grantedWithMods), versions, the digestAlgorithms list, algorithm parameters,
        // the unused-bits byte of the intermediate's signature.
        let token = try #require(try TimeStampResponse(der: bytes).token)
        let certificates = try TimeStampVerifier.parseCertificates(token.certificates)
        let signer = try #require(try TimeStampVerifier.signerCertificate(token.signer, among: certificates))
        let covered = [token.eContent.indices, signer.der.indices, (bytes.count - token.signer.signature.count)..<bytes.count]
        var stillValid: [Int] = []
        for offset in 0..<bytes.count {
            for bit in [0x01, 0x80] as [UInt8] {
                var mutated = bytes
                mutated[offset] ^= bit
                var forged = receipt
                forged.proof = Data(mutated).base64EncodedString()
                if ((try? witness.examine(forged, for: head))?.isValid) ?? false { stillValid.append(offset) }
            }
        }
        let inCovered = stillValid.filter { offset in covered.contains { $0.contains(offset) } }
        #expect(inCovered.isEmpty, "changes at \(inCovered) still check")
        #expect(stillValid.count * 20 < bytes.count * 2, "\(stillValid.count) of \(bytes.count * 2) changes still check: \(stillValid)")
    }
}
