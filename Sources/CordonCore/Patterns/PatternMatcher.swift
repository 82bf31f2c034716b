/// Matches events against a `PatternSet`. Holds reusable scratch space, so one matcher
/// must not be shared between threads; make one per thread or task (they are cheap).
public struct PatternMatcher {
    public let set: PatternSet
    var flattener: EventFlattener
    var chosen: [Int32] = []
    var targets: [Int32] = []
    var lower: [UInt8] = []
    var key: [UInt8] = []
    var decimal = DecimalScratch()
    var stamps: [UInt32]
    var generation: UInt32 = 0
    var matched: [Int] = []
    var steps = 0

    /// An event whose arrays make matching explode combinatorially is refused after this
    /// many automaton steps instead of hanging the runner.
    public static let maxSteps = 1_000_000

    init(_ set: PatternSet) {
        self.set = set
        self.flattener = EventFlattener(pathCount: set.pathNames.count)
        self.stamps = [UInt32](repeating: 0, count: set.patterns.count)
        chosen.reserveCapacity(16)
        targets.reserveCapacity(64)
        lower.reserveCapacity(64)
        key.reserveCapacity(64)
    }

    /// The indexes (into `set.patterns`) of the patterns the event matches, ascending.
    public mutating func matches(_ event: UnsafeRawBufferPointer) throws(EventMatchError) -> [Int] {
        let input = event.bindMemory(to: UInt8.self)
        guard input.baseAddress != nil else { throw EventMatchError(message: "empty event: expected a JSON object", offset: 0) }
        try flattener.flatten(input, trie: set.trie)
        generation &+= 1
        if generation == 0 {
            for i in stamps.indices { stamps[i] = 0 }
            generation = 1
        }
        matched.removeAll(keepingCapacity: true)
        steps = 0
        try visit(0, input)
        if matched.count > 1 { matched.sort() }
        return matched
    }

    public mutating func matches(_ event: [UInt8]) throws(EventMatchError) -> [Int] {
        var result: Result<[Int], EventMatchError> = .success([])
        event.withUnsafeBytes { buffer in
            result = Result { () throws(EventMatchError) -> [Int] in try self.matches(buffer) }
        }
        return try result.get()
    }

    /// Matches an already decoded event.
    public mutating func matches(event: JSONValue) -> [Int] {
        // Serialised JSONValues are always well-formed objects when the value is one;
        // anything else cannot match a pattern (patterns are objects).
        guard case .object = event else { return [] }
        return (try? matches(JSONWriter.bytes(event))) ?? []
    }

    private mutating func visit(_ state: Int32, _ input: UnsafeBufferPointer<UInt8>) throws(EventMatchError) {
        steps += 1
        if steps > PatternMatcher.maxSteps {
            throw EventMatchError(
                message: "the event's arrays make matching too expensive (over \(PatternMatcher.maxSteps) steps); refusing it",
                offset: 0)
        }
        let info = set.states[Int(state)]
        var t = Int(info.terminalStart)
        let terminalEnd = t + Int(info.terminalCount)
        while t < terminalEnd {
            let ordinal = Int(set.terminals[t])
            if stamps[ordinal] != generation {
                stamps[ordinal] = generation
                matched.append(ordinal)
            }
            t += 1
        }
        var i = Int(info.transitionStart)
        let transitionEnd = i + Int(info.transitionCount)
        while i < transitionEnd {
            let transition = set.transitions[i]
            i += 1
            var v = flattener.heads[Int(transition.pathID)]
            while v >= 0 {
                let value = flattener.values[Int(v)]
                if value.trailCount == 0 || compatibleWithChosen(value) {
                    let mark = targets.count
                    evaluate(set.matcherSets[Int(transition.matcherSet)], value, input, mark: mark)
                    var k = mark
                    while k < targets.count {
                        chosen.append(v)
                        try visit(targets[k], input)
                        chosen.removeLast()
                        k += 1
                    }
                    targets.removeLast(targets.count - mark)
                }
                v = value.next
            }
        }
        var a = Int(info.absentStart)
        let absentEnd = a + Int(info.absentCount)
        while a < absentEnd {
            let edge = set.absentEdges[a]
            a += 1
            var v = flattener.heads[Int(edge.pathID)]
            var present = false
            while v >= 0 {
                let value = flattener.values[Int(v)]
                if value.trailCount == 0 || compatibleWithChosen(value) { present = true; break }
                v = value.next
            }
            if !present { try visit(edge.target, input) }
        }
    }

    /// Array consistency: a value may join the values already chosen for this pattern
    /// only if, in every array they share, they sit in the same element.
    private func compatibleWithChosen(_ value: FlatValue) -> Bool {
        for c in chosen {
            let other = flattener.values[Int(c)]
            if other.trailCount == 0 { continue }
            let n = Int(min(value.trailCount, other.trailCount))
            var i = 0
            while i < n {
                let a = flattener.trailStorage[Int(value.trailStart) + i]
                let b = flattener.trailStorage[Int(other.trailStart) + i]
                if a.array != b.array { break }
                if a.index != b.index { return false }
                i += 1
            }
        }
        return true
    }

    private mutating func evaluate(_ ms: MatcherSet, _ value: FlatValue, _ input: UnsafeBufferPointer<UInt8>, mark: Int) {
        let raw = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[Int(value.start)..<Int(value.end)])
        if value.kind == FlatValue.string && value.escaped {
            var decoded: [UInt8] = []
            _ = JSONScan.unescape(raw.bindMemory(to: UInt8.self), into: &decoded)
            decoded.withUnsafeBytes { content in
                PatternMatcher.evaluate(
                    ms, kind: value.kind, content: content, decimal: &decimal, lower: &lower, key: &key,
                    targets: &targets, mark: mark)
            }
        } else {
            PatternMatcher.evaluate(
                ms, kind: value.kind, content: raw, decimal: &decimal, lower: &lower, key: &key,
                targets: &targets, mark: mark)
        }
    }

    @inline(__always)
    private static func push(_ range: TargetRange, _ pool: [Int32], _ targets: inout [Int32], _ mark: Int) {
        var i = Int(range.start)
        let end = i + Int(range.count)
        while i < end {
            push(pool[i], &targets, mark)
            i += 1
        }
    }

    @inline(__always)
    private static func push(_ t: Int32, _ targets: inout [Int32], _ mark: Int) {
        var k = mark
        while k < targets.count {
            if targets[k] == t { return }
            k += 1
        }
        targets.append(t)
    }

    private static func evaluate(
        _ ms: MatcherSet, kind: UInt8, content: UnsafeRawBufferPointer, decimal: inout DecimalScratch,
        lower: inout [UInt8], key: inout [UInt8], targets: inout [Int32], mark: Int
    ) {
        let bytes = content.bindMemory(to: UInt8.self)
        switch kind {
        case FlatValue.string:
            if ms.exact.count > 0 {
                let entry = ms.exact.find(tag: ValueKey.string, content)
                if entry >= 0 { push(ms.exactTargets[entry], ms.targetPool, &targets, mark) }
            }
            if ms.hasExactIP, let address = EventRulerIP.parse(Array(bytes)[...]) {
                var entry = address.withUnsafeBytes { ms.exact.find(tag: ValueKey.ip, $0) }
                if entry >= 0 { push(ms.exactTargets[entry], ms.targetPool, &targets, mark) }
                if address.count == 16 {
                    entry = address[0..<4].withUnsafeBytes { ms.exact.find(tag: ValueKey.ip, $0) }
                    if entry >= 0 { push(ms.exactTargets[entry], ms.targetPool, &targets, mark) }
                }
            }
            if ms.needsLowercase { lowercase(bytes, into: &lower) }
            if ms.ignoreCase.count > 0 {
                let entry = lower.withUnsafeBytes { ms.ignoreCase.find(tag: ValueKey.string, $0) }
                if entry >= 0 { push(ms.ignoreCaseTargets[entry], ms.targetPool, &targets, mark) }
            }
            if !ms.prefixes.isEmpty || !ms.suffixes.isEmpty {
                ms.affixPool.withUnsafeBufferPointer { pool in
                    lower.withUnsafeBufferPointer { lowered in
                        for affix in ms.prefixes where has(affix, in: affix.ignoreCase ? lowered : bytes, pool: pool, atEnd: false) {
                            push(affix.target, &targets, mark)
                        }
                        for affix in ms.suffixes where has(affix, in: affix.ignoreCase ? lowered : bytes, pool: pool, atEnd: true) {
                            push(affix.target, &targets, mark)
                        }
                    }
                }
            }
        case FlatValue.number:
            _ = decimal.parse(bytes)
            if ms.exact.count > 0 {
                key.removeAll(keepingCapacity: true)
                ValueKey.appendNumber(negative: decimal.negative, digits: decimal.digits, exponent: decimal.exponent, to: &key)
                let entry = key.withUnsafeBytes { ms.exact.find(tag: ValueKey.number, $0) }
                if entry >= 0 { push(ms.exactTargets[entry], ms.targetPool, &targets, mark) }
                // A pattern number no double holds matches the same text only.
                let textEntry = ms.exact.find(tag: ValueKey.numberText, UnsafeRawBufferPointer(bytes))
                if textEntry >= 0 { push(ms.exactTargets[textEntry], ms.targetPool, &targets, mark) }
            }
        default:
            if ms.exact.count > 0 {
                let entry = ms.exact.find(tag: kind, UnsafeRawBufferPointer(start: nil, count: 0))
                if entry >= 0 { push(ms.exactTargets[entry], ms.targetPool, &targets, mark) }
            }
        }
        var o = 0
        while o < ms.others.count {
            if matches(ms.others[o], kind: kind, bytes: bytes, decimal: decimal, lower: lower, key: &key) {
                push(ms.otherTargets[o], &targets, mark)
            }
            o += 1
        }
        if ms.anyTargets.count > 0 { push(ms.anyTargets, ms.targetPool, &targets, mark) }
    }

    private static func matches(
        _ matcher: RuntimeMatcher, kind: UInt8, bytes: UnsafeBufferPointer<UInt8>, decimal: DecimalScratch,
        lower: [UInt8], key: inout [UInt8]
    ) -> Bool {
        let isString = kind == FlatValue.string
        switch matcher {
        case .wildcard(let w):
            return isString && w.matches(bytes)
        case .numeric(let range):
            return kind == FlatValue.number && JavaDouble.isComparable(decimal) && range.contains(decimal)
        case .cidr(let c):
            return isString && c.contains(bytes)
        case .anythingButValues(let table):
            switch kind {
            case FlatValue.string:
                return table.find(tag: ValueKey.string, UnsafeRawBufferPointer(bytes)) < 0
            case FlatValue.number:
                key.removeAll(keepingCapacity: true)
                ValueKey.appendNumber(negative: decimal.negative, digits: decimal.digits, exponent: decimal.exponent, to: &key)
                return key.withUnsafeBytes { table.find(tag: ValueKey.number, $0) } < 0
            default:
                return true
            }
        // The string forms of anything-but exclude strings only: a number, a boolean or
        // null is "anything but" them (EventBridge semantics).
        case .anythingButPrefix(let ps):
            return !isString || !ps.contains { hasPrefix(bytes, $0) }
        case .anythingButSuffix(let ss):
            return !isString || !ss.contains { hasSuffix(bytes, $0) }
        case .anythingButIgnoreCase(let table, let others):
            return !isString
                || (lower.withUnsafeBytes { table.find(tag: ValueKey.string, $0) } < 0 && !others.contains { $0.matchesWhole(bytes) })
        case .caseFold(let pattern, let position):
            guard isString else { return false }
            switch position {
            case .whole: return pattern.matchesWhole(bytes)
            case .prefix: return pattern.matchesPrefix(bytes)
            case .suffix: return pattern.matchesSuffix(bytes)
            }
        case .anythingButWildcard(let ws):
            return !isString || !ws.contains { $0.matches(bytes) }
        }
    }

    /// Whether `s` starts (or, `atEnd`, ends) with the affix's bytes in `pool`; an empty
    /// affix is in every value.
    @inline(__always)
    static func has(_ affix: Affix, in s: UnsafeBufferPointer<UInt8>, pool: UnsafeBufferPointer<UInt8>, atEnd: Bool) -> Bool {
        let count = Int(affix.count), start = Int(affix.start)
        guard count <= s.count else { return false }
        let from = atEnd ? s.count - count : 0
        var k = 0
        while k < count {
            if s[from + k] != pool[start + k] { return false }
            k += 1
        }
        return true
    }

    @inline(__always)
    static func hasPrefix(_ s: UnsafeBufferPointer<UInt8>, _ p: [UInt8]) -> Bool {
        bytesEqual(s, 0, p.count, p)
    }

    @inline(__always)
    static func hasSuffix(_ s: UnsafeBufferPointer<UInt8>, _ p: [UInt8]) -> Bool {
        s.count >= p.count && bytesEqual(s, s.count - p.count, p.count, p)
    }

    /// Lowercases ASCII letters and keeps every other byte: what ASCII patterns that
    /// ignore case are compared with (EventBridge folds no other letter of the event).
    static func lowercase(_ s: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        for c in s { out.append(c &- 65 < 26 ? c | 0x20 : c) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
