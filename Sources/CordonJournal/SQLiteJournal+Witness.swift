import CordonCore
import Foundation
import GRDB

/// What witnesses answered for the journal's checkpoints (table `witness_receipts`), and
/// which checkpoints a witness has yet to see.
extension SQLiteJournal {
    /// The checkpoints `witness` has not seen: those after the newest it answered for, in
    /// order (at most `limit`); for a witness that has seen none, the newest checkpoint.
    public func headsToWitness(_ witness: String, limit: Int = 100) async throws -> [Checkpoint] {
        try await pool.read { db in
            let seen = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM witness_receipts WHERE witness = ?", arguments: [witness])
            let rows =
                if let seen {
                    try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [seen, limit])
                } else {
                    try Row.fetchAll(db, sql: "SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1")
                }
            return rows.compactMap { Self.checkpoint($0) }
        }
    }

    public func storeReceipt(_ receipt: WitnessReceipt, head: Checkpoint) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO witness_receipts (witness, seq, hash, head, time, proof) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [receipt.witness, receipt.seq, receipt.hash, head.line, receipt.time, receipt.proof])
        }
    }

    /// Receipts with the heads they were given for, by seq; of one witness, or of all.
    public func receipts(witness: String? = nil, from seq: Int64 = 0) async throws -> [(receipt: WitnessReceipt, head: String)] {
        try await pool.read { db in
            guard try db.tableExists("witness_receipts") else { return [] }
            let rows =
                if let witness {
                    try Row.fetchAll(db, sql: "SELECT * FROM witness_receipts WHERE witness = ? AND seq >= ? ORDER BY seq", arguments: [witness, seq])
                } else {
                    try Row.fetchAll(db, sql: "SELECT * FROM witness_receipts WHERE seq >= ? ORDER BY seq, witness", arguments: [seq])
                }
            // A row with a value missing (the table edited by hand) is left out.
            return rows.compactMap { row in
                guard let witness = row["witness"] as String?, let seq = row["seq"] as Int64?, let hash = row["hash"] as String?,
                    let head = row["head"] as String?
                else { return nil }
                return (
                    WitnessReceipt(witness: witness, seq: seq, hash: hash, time: (row["time"] as String?) ?? "", proof: (row["proof"] as String?) ?? ""),
                    head
                )
            }
        }
    }
}
