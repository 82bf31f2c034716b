/// The field names some pattern reads, as a tree of keys. The flattener walks an event
/// alongside it and skips every member that no pattern mentions.
struct FieldTrie: Sendable {
    struct Node: Sendable {
        /// The path id when some pattern reads leaf values here, else -1.
        var pathID: Int32 = -1
        var childStart: Int32 = 0
        var childCount: Int32 = 0
        /// For nodes with many children: index into `tables` (key to child slot), else -1.
        var table: Int32 = -1
    }

    struct Child: Sendable {
        var keyStart: Int32
        var keyLength: Int32
        var node: Int32
    }

    private(set) var nodes: [Node] = []
    private(set) var children: [Child] = []
    private(set) var keyArena: [UInt8] = []
    private(set) var tables: [ByteTable] = []

    static let linearLimit = 8

    /// Builds the trie from paths; `paths[i]` gets path id `i`.
    init(paths: [[String]]) {
        // Build a pointer-based tree first, then lay it out breadth-first.
        final class BuildNode {
            var pathID: Int32 = -1
            var children: [(String, BuildNode)] = []
            func child(_ key: String) -> BuildNode {
                if let existing = children.first(where: { $0.0 == key }) { return existing.1 }
                let node = BuildNode()
                children.append((key, node))
                return node
            }
        }
        let root = BuildNode()
        for (id, path) in paths.enumerated() {
            var node = root
            for key in path { node = node.child(key) }
            node.pathID = Int32(id)
        }
        var queue: [BuildNode] = [root]
        var index = 0
        nodes.append(Node())
        while index < queue.count {
            let build = queue[index]
            var node = Node()
            node.pathID = build.pathID
            node.childStart = Int32(children.count)
            node.childCount = Int32(build.children.count)
            var table: ByteTable? = build.children.count > FieldTrie.linearLimit ? ByteTable() : nil
            for (key, child) in build.children {
                let bytes = Array(key.utf8)
                let childIndex = Int32(queue.count)
                queue.append(child)
                nodes.append(Node())
                children.append(Child(keyStart: Int32(keyArena.count), keyLength: Int32(bytes.count), node: childIndex))
                keyArena.append(contentsOf: bytes)
                _ = table?.insert(tag: 0, bytes)
            }
            if let table {
                node.table = Int32(tables.count)
                tables.append(table)
            }
            nodes[index] = node
            index += 1
        }
    }

    /// The child node reached by `key` (unescaped bytes), or -1.
    @inline(__always)
    func child(of node: Int, key: UnsafeRawBufferPointer) -> Int {
        let n = nodes[node]
        if n.childCount == 0 { return -1 }
        if n.table >= 0 {
            let entry = tables[Int(n.table)].find(tag: 0, key)
            return entry < 0 ? -1 : Int(children[Int(n.childStart) + entry].node)
        }
        let count = key.count
        return keyArena.withUnsafeBytes { arena in
            var i = Int(n.childStart)
            let end = i + Int(n.childCount)
            while i < end {
                let c = children[i]
                if Int(c.keyLength) == count,
                    count == 0 || memcmp(arena.baseAddress! + Int(c.keyStart), key.baseAddress!, count) == 0
                {
                    return Int(c.node)
                }
                i += 1
            }
            return -1
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
