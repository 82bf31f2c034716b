import CordonCore
import Crypto
import Foundation

/// A journal's chain checked through the `Journal` protocol, whatever its backend, as
/// `JournalVerifier` checks a journal file.
public enum JournalChain {
    /// What is wrong, in order (empty when nothing is): seqs from 1 without gaps, each
    /// `prev` the hash of the record before, each `hash` the SHA-256 of the record's
    /// canonical form, every record covered by a checkpoint, each checkpoint's hash the
    /// chain's at its seq and its signature valid under `publicKey`; with `evidence`,
    /// every item a record cites present with the content its hash names.
    public static func problems(
        in journal: any Journal, publicKey: Curve25519.Signing.PublicKey, evidence: (any EvidenceSink)? = nil
    ) async throws -> [String] {
        var problems: [String] = []
        var hashes: [Int64: String] = [:]
        var next: Int64 = 1
        var prev = JournalRecord.genesis
        while true {
            let batch = try await journal.records(from: next, limit: 1_000)
            for record in batch {
                if record.seq != next { problems.append("seq \(next): missing (the next record is \(record.seq))") }
                if record.prev != prev { problems.append("seq \(record.seq): prev is not the hash of the record before") }
                if record.hash != SHA256.hash(data: record.canonicalBytes).hex { problems.append("seq \(record.seq): hash does not match the record") }
                if let evidence {
                    for hash in record.evidenceHashes {
                        let bytes = try? evidence.load(hash, citedAt: record.seq)
                        if bytes.map({ SHA256.hash(data: $0).hex }) != hash { problems.append("seq \(record.seq): evidence \(hash) is missing or altered") }
                    }
                }
                hashes[record.seq] = record.hash
                prev = record.hash
                next = max(next, record.seq) + 1
            }
            if batch.count < 1_000 { break }
        }
        let checkpoints = try await journal.checkpoints(from: 0)
        let head = next - 1
        let signed = checkpoints.last?.seq ?? 0
        if signed < head { problems.append("records \(signed + 1) to \(head) are not covered by a checkpoint") }
        for checkpoint in checkpoints {
            if hashes[checkpoint.seq] != checkpoint.hash { problems.append("checkpoint \(checkpoint.seq): not the chain's hash at its seq") }
            let valid = Data(base64Encoded: checkpoint.signature).map {
                publicKey.isValidSignature($0, for: Checkpoint.message(seq: checkpoint.seq, hash: checkpoint.hash))
            }
            if valid != true { problems.append("checkpoint \(checkpoint.seq): the signature is invalid") }
        }
        return problems
    }
}
