import Testing

@testable import CordonCore

/// Random patterns compiled into one set, checked against a naive reference matcher that
/// evaluates each pattern on its own over the decoded event. Shares the semantics, not
/// the machinery: it tests the automaton's state sharing, the byte-level flattener and
/// the array-consistency search.
@Suite struct DifferentialTests {
    struct RNG {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ xs: [T]) -> T { xs[int(xs.count)] }
        mutating func chance(_ p: Double) -> Bool { Double(next() % 1000) / 1000 < p }
    }

    static let keys = ["a", "b", "c"]
    static let scalars: [JSONValue] = [
        "x", "y", "xy", "yx", "X", "", .number(JSONNumber(1)), .number(JSONNumber(literal: "1.0")!),
        .number(JSONNumber(2)), .number(JSONNumber(literal: "-3.5")!), true, false, .null, "10.1.2.3",
    ]

    static func randomValue(_ r: inout RNG, depth: Int) -> JSONValue {
        if depth >= 3 || r.chance(0.5) { return r.pick(scalars) }
        if r.chance(0.4) {
            return .array((0..<r.int(4)).map { _ in randomValue(&r, depth: depth + 1) })
        }
        var o = JSONObject()
        for key in keys where r.chance(0.6) { o[key] = randomValue(&r, depth: depth + 1) }
        return .object(o)
    }

    static func randomMatcher(_ r: inout RNG) -> JSONValue {
        switch r.int(12) {
        case 0: return .object(["prefix": .string(r.pick(["x", "y", ""]))])
        case 1: return .object(["suffix": .string(r.pick(["x", "y"]))])
        case 2: return .object(["equals-ignore-case": "x"])
        case 3: return .object(["wildcard": .string(r.pick(["*x", "x*", "*", "y*x"]))])
        case 4: return .object(["anything-but": r.pick(["x", .array(["x", "y"]), .number(JSONNumber(1)), .object(["prefix": "x"])])])
        case 5: return .object(["numeric": r.pick([[">", 0], [">=", 1, "<", 2], ["<", 0]])])
        case 6: return .object(["exists": .bool(r.chance(0.5))])
        case 7: return .object(["cidr": "10.0.0.0/8"])
        default: return r.pick(scalars)
        }
    }

    static func randomPattern(_ r: inout RNG, depth: Int = 0) -> JSONObject {
        var o = JSONObject()
        for key in keys where r.chance(depth == 0 ? 0.7 : 0.5) {
            if depth < 2 && r.chance(0.4) {
                o[key] = .object(randomPattern(&r, depth: depth + 1))
            } else {
                o[key] = .array((0..<(1 + r.int(2))).map { _ in randomMatcher(&r) })
            }
        }
        if depth == 0 && r.chance(0.15) {
            o["$or"] = .array([.object(randomPattern(&r, depth: 1)), .object(randomPattern(&r, depth: 1))])
        }
        if o.isEmpty { o["a"] = .array([r.pick(scalars)]) }
        return o
    }

    // MARK: - Reference

    struct Leaf {
        var path: [String]
        var value: JSONValue
        var trail: [(Int, Int)]
    }

    static func leaves(_ event: JSONValue) -> [Leaf] {
        var out: [Leaf] = []
        var nextArray = 0
        func walk(_ v: JSONValue, _ path: [String], _ trail: [(Int, Int)]) {
            switch v {
            case .object(let o): for (k, m) in o { walk(m, path + [k], trail) }
            case .array(let elements):
                let id = nextArray
                nextArray += 1
                for (i, e) in elements.enumerated() {
                    switch e {
                    case .object, .array: walk(e, path, trail + [(id, i)])
                    default: walk(e, path, trail)
                    }
                }
            default: out.append(Leaf(path: path, value: v, trail: trail))
            }
        }
        walk(event, [], [])
        return out
    }

    static func compatible(_ a: [(Int, Int)], _ b: [(Int, Int)]) -> Bool {
        for (x, y) in zip(a, b) {
            if x.0 != y.0 { return true }
            if x.1 != y.1 { return false }
        }
        return true
    }

    static func referenceMatches(_ pattern: EventPattern, _ event: JSONValue) -> Bool {
        let all = leaves(event)
        for alternative in pattern.alternatives {
            let positives = alternative.filter { !$0.absent }
            let absents = alternative.filter(\.absent)
            func search(_ i: Int, _ chosen: [[(Int, Int)]]) -> Bool {
                if i == positives.count {
                    return absents.allSatisfy { condition in
                        !all.contains { leaf in leaf.path == condition.path && chosen.allSatisfy { compatible($0, leaf.trail) } }
                    }
                }
                let condition = positives[i]
                for leaf in all where leaf.path == condition.path && chosen.allSatisfy({ compatible($0, leaf.trail) }) {
                    if condition.matchers.contains(where: { holds($0, leaf.value) }), search(i + 1, chosen + [leaf.trail]) {
                        return true
                    }
                }
                return false
            }
            if search(0, []) { return true }
        }
        return false
    }

    static func holds(_ m: ValueMatcher, _ v: JSONValue) -> Bool {
        func bytes<T>(_ t: String, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T { Array(t.utf8).withUnsafeBufferPointer(body) }
        switch (m, v) {
        case (.exactString(let s), .string(let t)): return s == t
        case (.exactIP(let r), .string(let t)): return bytes(t) { r.contains($0) }
        case (.exactNumber(let d), .number(let n)): return d == n.decimal
        case (.exactNumberText(let text), .number(let n)): return text == n.literal
        case (.exactBool(let b), .bool(let c)): return b == c
        case (.exactNull, .null): return true
        case (.prefix(let p, let ic), .string(let t)):
            return ic ? bytes(t) { CaseFoldPattern(p).matchesPrefix($0) } : t.utf8.starts(with: p.utf8)
        case (.suffix(let p, let ic), .string(let t)):
            return ic ? bytes(t) { CaseFoldPattern(p).matchesSuffix($0) } : t.utf8.reversed().starts(with: p.utf8.reversed())
        case (.equalsIgnoreCase(let p), .string(let t)): return bytes(t) { CaseFoldPattern(p).matchesWhole($0) }
        case (.wildcard(let w), .string(let t)): return bytes(t) { w.matches($0) }
        case (.numeric(let range), .number(let n)):
            var scratch = DecimalScratch()
            _ = Array(n.literal.utf8).withUnsafeBufferPointer { scratch.parse($0) }
            return JavaDouble.isComparable(scratch) && range.contains(scratch)
        case (.exists, _): return true
        case (.cidr(let c), .string(let t)): return bytes(t) { c.contains($0) }
        case (.anythingBut(let a), _):
            switch (a, v) {
            case (.values(let strings, _), .string(let t)): return !strings.contains(t)
            case (.values(_, let numbers), .number(let n)): return !numbers.contains(n.decimal)
            case (.values, _): return true
            case (.prefix(let ps), .string(let t)): return !ps.contains { t.utf8.starts(with: $0.utf8) }
            case (.suffix(let ss), .string(let t)): return !ss.contains { t.utf8.reversed().starts(with: $0.utf8.reversed()) }
            case (.equalsIgnoreCase(let set), .string(let t)): return !set.contains { p in bytes(t) { CaseFoldPattern(p).matchesWhole($0) } }
            case (.wildcard(let ws), .string(let t)):
                return !ws.contains { w in bytes(t) { w.matches($0) } }
            default: return true
            }
        default: return false
        }
    }

    @Test(arguments: [1, 2, 3])
    func sharedAutomatonAgreesWithNaiveReference(seed: UInt64) throws {
        var r = RNG(state: seed)
        let patterns = try (0..<300).map { _ in try EventPattern(json: .object(Self.randomPattern(&r))) }
        var matcher = PatternSet(patterns).makeMatcher()
        var disagreements: [String] = []
        var matchedPairs = 0
        for _ in 0..<400 {
            guard case .object(let o) = Self.randomValue(&r, depth: 0), !o.isEmpty else { continue }
            let event = JSONValue.object(o)
            let got = Set(try matcher.matches(JSONWriter.bytes(event)))
            for (i, pattern) in patterns.enumerated() {
                let want = Self.referenceMatches(pattern, event)
                if want { matchedPairs += 1 }
                if want != got.contains(i) {
                    disagreements.append("pattern \(pattern.json) event \(event): reference \(want)")
                }
            }
        }
        #expect(disagreements.isEmpty, Comment(rawValue: disagreements.prefix(5).joined(separator: "\n")))
        // The generator must produce both outcomes for the comparison to mean anything.
        #expect(matchedPairs > 100)
    }
}
