/// Many event patterns compiled together into one automaton.
///
/// Each pattern alternative is a chain of field conditions in a fixed global order
/// (field path, then `exists: false` last); chains that start alike share states, so
/// matching an event against N patterns costs about as much as the distinct conditions
/// it meets, not N separate matches. Values are read straight from the event's bytes by
/// `EventFlattener`, which skips every field no pattern mentions.
///
/// A `PatternSet` is immutable and `Sendable`; matching needs a `PatternMatcher`
/// (scratch space), one per thread or task.
public final class PatternSet: Sendable {
    public let patterns: [EventPattern]
    let trie: FieldTrie
    let pathNames: [String]
    // The automaton, laid out in flat arrays of plain values so that matching does no
    // reference counting on its hot path.
    let states: [StateInfo]
    let transitions: [Transition]
    let absentEdges: [AbsentEdge]
    let terminals: [Int32]
    let matcherSets: [MatcherSet]

    struct StateInfo: Sendable {
        var transitionStart: Int32
        var transitionCount: Int32
        var absentStart: Int32
        var absentCount: Int32
        var terminalStart: Int32
        var terminalCount: Int32
    }

    struct Transition: Sendable {
        var pathID: Int32
        var matcherSet: Int32
    }

    struct AbsentEdge: Sendable {
        var pathID: Int32
        var target: Int32
    }

    public convenience init(_ patterns: [EventPattern]) {
        var builder = Builder()
        for (ordinal, pattern) in patterns.enumerated() { builder.add(pattern, ordinal: Int32(ordinal)) }
        self.init(patterns: patterns, builder: builder)
    }

    private init(patterns: [EventPattern], builder: Builder) {
        self.patterns = patterns
        self.pathNames = builder.paths.map { $0.joined(separator: ".") }
        self.trie = FieldTrie(paths: builder.paths)
        var states: [StateInfo] = []
        var transitions: [Transition] = []
        var absentEdges: [AbsentEdge] = []
        var terminals: [Int32] = []
        states.reserveCapacity(builder.states.count)
        for state in builder.states {
            states.append(
                StateInfo(
                    transitionStart: Int32(transitions.count), transitionCount: Int32(state.transitions.count),
                    absentStart: Int32(absentEdges.count), absentCount: Int32(state.absent.count),
                    terminalStart: Int32(terminals.count), terminalCount: Int32(state.terminals.count)))
            transitions += state.transitions
            absentEdges += state.absent
            terminals += state.terminals
        }
        self.states = states
        self.transitions = transitions
        self.absentEdges = absentEdges
        self.terminals = terminals
        self.matcherSets = builder.matcherSets.map { MatcherSet($0) }
    }

    public var count: Int { patterns.count }

    /// Scratch space for matching events against this set.
    public func makeMatcher() -> PatternMatcher { PatternMatcher(self) }

    /// Number of automaton states (for diagnostics and benchmarks).
    public var stateCount: Int { states.count }

    struct Builder {
        var paths: [[String]] = []
        var pathIDs: [[String]: Int32] = [:]
        var states: [BuildState] = [BuildState()]
        var matcherSets: [MatcherSetBuilder] = []

        struct BuildState {
            var transitions: [Transition] = []
            var absent: [AbsentEdge] = []
            var terminals: [Int32] = []
            /// (path, edge key) → target state.
            var edges: [String: Int32] = [:]
            /// path → matcher set index.
            var setForPath: [Int32: Int32] = [:]
        }

        mutating func pathID(_ path: [String]) -> Int32 {
            if let id = pathIDs[path] { return id }
            let id = Int32(paths.count)
            paths.append(path)
            pathIDs[path] = id
            return id
        }

        mutating func add(_ pattern: EventPattern, ordinal: Int32) {
            for alternative in pattern.alternatives {
                let ordered = alternative.sorted { a, b in
                    if a.absent != b.absent { return !a.absent }
                    let pa = a.path.joined(separator: "\u{0}"), pb = b.path.joined(separator: "\u{0}")
                    if pa != pb { return pa < pb }
                    return a.edgeKey < b.edgeKey
                }
                var state: Int32 = 0
                for condition in ordered {
                    state = edge(from: state, condition)
                }
                if !states[Int(state)].terminals.contains(ordinal) {
                    states[Int(state)].terminals.append(ordinal)
                }
            }
        }

        private mutating func edge(from state: Int32, _ condition: FieldCondition) -> Int32 {
            let path = pathID(condition.path)
            let key = "\(path)\u{2}\(condition.edgeKey)"
            if let existing = states[Int(state)].edges[key] { return existing }
            let target = Int32(states.count)
            states.append(BuildState())
            states[Int(state)].edges[key] = target
            if condition.absent {
                states[Int(state)].absent.append(AbsentEdge(pathID: path, target: target))
            } else {
                let setIndex: Int32
                if let existing = states[Int(state)].setForPath[path] {
                    setIndex = existing
                } else {
                    setIndex = Int32(matcherSets.count)
                    matcherSets.append(MatcherSetBuilder())
                    states[Int(state)].setForPath[path] = setIndex
                    states[Int(state)].transitions.append(Transition(pathID: path, matcherSet: setIndex))
                }
                for matcher in condition.matchers { matcherSets[Int(setIndex)].add(matcher, target: target) }
            }
            return target
        }
    }
}

/// A run of target states in a matcher set's `targetPool`.
struct TargetRange: Sendable {
    var start: Int32
    var count: Int32
}

/// A prefix or suffix, as a slice of a matcher set's `affixPool`.
struct Affix: Sendable {
    var start: Int32
    var count: Int32
    var ignoreCase: Bool
    var target: Int32
}

/// Everything one state tests on one field, grouped so that the common cases are hash
/// lookups. Immutable; a class so that the matcher borrows it with one reference.
final class MatcherSet: Sendable {
    /// Exact values (strings, numbers by canonical decimal, booleans, null).
    let exact: ByteTable
    let exactTargets: [TargetRange]
    /// `equals-ignore-case`, keyed by the lowercased string.
    let ignoreCase: ByteTable
    let ignoreCaseTargets: [TargetRange]
    let targetPool: [Int32]
    let affixPool: [UInt8]
    let prefixes: [Affix]
    let suffixes: [Affix]
    let others: [RuntimeMatcher]
    let otherTargets: [Int32]
    /// `exists: true`: any leaf value.
    let anyTargets: TargetRange
    let needsLowercase: Bool
    /// Some exact value is an IP address: event strings are read as addresses too.
    let hasExactIP: Bool

    init(_ b: MatcherSetBuilder) {
        var pool: [Int32] = []
        func range(_ list: [Int32]) -> TargetRange {
            let r = TargetRange(start: Int32(pool.count), count: Int32(list.count))
            pool += list
            return r
        }
        exact = b.exact
        exactTargets = b.exactTargets.map(range)
        ignoreCase = b.ignoreCase
        ignoreCaseTargets = b.ignoreCaseTargets.map(range)
        anyTargets = range(b.anyTargets)
        targetPool = pool
        var affixPool: [UInt8] = []
        func affix(_ a: (bytes: [UInt8], ignoreCase: Bool, target: Int32)) -> Affix {
            let r = Affix(start: Int32(affixPool.count), count: Int32(a.bytes.count), ignoreCase: a.ignoreCase, target: a.target)
            affixPool += a.bytes
            return r
        }
        prefixes = b.prefixes.map(affix)
        suffixes = b.suffixes.map(affix)
        self.affixPool = affixPool
        others = b.others.map(\.0)
        otherTargets = b.others.map(\.1)
        needsLowercase = b.needsLowercase
        hasExactIP = b.hasExactIP
    }
}

struct MatcherSetBuilder {
    var exact = ByteTable()
    var exactTargets: [[Int32]] = []
    var ignoreCase = ByteTable()
    var ignoreCaseTargets: [[Int32]] = []
    var prefixes: [(bytes: [UInt8], ignoreCase: Bool, target: Int32)] = []
    var suffixes: [(bytes: [UInt8], ignoreCase: Bool, target: Int32)] = []
    var others: [(RuntimeMatcher, Int32)] = []
    var anyTargets: [Int32] = []
    var needsLowercase = false
    var hasExactIP = false

    mutating func add(_ matcher: ValueMatcher, target: Int32) {
        switch matcher {
        case .exactString(let s): addExact(tag: ValueKey.string, Array(s.utf8), target)
        case .exactNumber(let d): addExact(tag: ValueKey.number, ValueKey.number(d), target)
        case .exactNumberText(let t): addExact(tag: ValueKey.numberText, Array(t.utf8), target)
        case .exactIP(let r):
            // By its bytes: an event address is looked up as it is, and an IPv6 one by
            // its first four bytes too (EventBridge decides after 8 hex digits).
            if let address = r.address { addExact(tag: ValueKey.ip, address, target); hasExactIP = true } else { others.append((.cidr(r), target)) }
        case .exactBool(let b): addExact(tag: b ? ValueKey.trueValue : ValueKey.falseValue, [], target)
        case .exactNull: addExact(tag: ValueKey.null, [], target)
        // Ignoring case, an ASCII pattern is compared with the event's ASCII-lowercased
        // bytes; any other follows EventBridge's rules unit by unit (`CaseFoldPattern`).
        case .equalsIgnoreCase(let s) where CaseFoldPattern.isASCII(s):
            let entry = ignoreCase.insert(tag: ValueKey.string, CaseFoldPattern.asciiLowercased(s))
            if entry == ignoreCaseTargets.count { ignoreCaseTargets.append([]) }
            append(&ignoreCaseTargets[entry], target)
            needsLowercase = true
        case .equalsIgnoreCase(let s):
            others.append((.caseFold(CaseFoldPattern(s), .whole), target))
        case .prefix(let s, let ic) where !ic || CaseFoldPattern.isASCII(s):
            prefixes.append((ic ? CaseFoldPattern.asciiLowercased(s) : Array(s.utf8), ic, target))
            if ic { needsLowercase = true }
        case .prefix(let s, _):
            others.append((.caseFold(CaseFoldPattern(s), .prefix), target))
        case .suffix(let s, let ic) where !ic || CaseFoldPattern.isASCII(s):
            suffixes.append((ic ? CaseFoldPattern.asciiLowercased(s) : Array(s.utf8), ic, target))
            if ic { needsLowercase = true }
        case .suffix(let s, _):
            others.append((.caseFold(CaseFoldPattern(s), .suffix), target))
        case .exists:
            append(&anyTargets, target)
        case .wildcard(let w): others.append((.wildcard(w), target))
        case .numeric(let r): others.append((.numeric(r), target))
        case .cidr(let c): others.append((.cidr(c), target))
        case .anythingBut(let a):
            let runtime = RuntimeMatcher(a)
            if case .anythingButIgnoreCase = runtime { needsLowercase = true }
            others.append((runtime, target))
        }
    }

    private mutating func addExact(tag: UInt8, _ key: [UInt8], _ target: Int32) {
        let entry = exact.insert(tag: tag, key)
        if entry == exactTargets.count { exactTargets.append([]) }
        append(&exactTargets[entry], target)
    }

    private func append(_ list: inout [Int32], _ target: Int32) {
        if !list.contains(target) { list.append(target) }
    }
}

/// Keys of exact values in `ByteTable`s: a type tag plus canonical bytes.
enum ValueKey {
    static let string: UInt8 = 1
    static let number: UInt8 = 2
    static let trueValue: UInt8 = 3
    static let falseValue: UInt8 = 4
    static let null: UInt8 = 5
    /// A number by its literal text (one no double holds).
    static let numberText: UInt8 = 6
    /// An IP address by its 4 or 16 bytes.
    static let ip: UInt8 = 7

    static func number(_ d: DecimalValue) -> [UInt8] {
        var out: [UInt8] = []
        appendNumber(negative: d.negative, digits: d.digits, exponent: d.exponent, to: &out)
        return out
    }

    /// Canonical bytes of a decimal: `0`, or a sign, the digits, `e`, the exponent.
    static func appendNumber(negative: Bool, digits: [UInt8], exponent: Int, to out: inout [UInt8]) {
        if digits.isEmpty { out.append(UInt8(ascii: "0")); return }
        out.append(negative ? UInt8(ascii: "-") : UInt8(ascii: "+"))
        out.append(contentsOf: digits)
        out.append(UInt8(ascii: "e"))
        var e = exponent
        if e < 0 { out.append(UInt8(ascii: "-")); e = -e }
        if e == 0 { out.append(UInt8(ascii: "0")); return }
        var divisor = 1
        while divisor <= e / 10 { divisor *= 10 }
        while divisor > 0 {
            out.append(UInt8(48 + (e / divisor) % 10))
            divisor /= 10
        }
    }
}

/// Where a pattern that ignores case must match the value: all of it, its start, its end.
enum CaseFoldPosition: Sendable {
    case whole, prefix, suffix
}

/// Matchers evaluated one by one (the less common operators).
enum RuntimeMatcher: Sendable {
    case wildcard(WildcardPattern)
    case numeric(NumericRange)
    case cidr(IPRange)
    /// Not any of these exact values (strings and/or numbers as `ValueKey`s).
    case anythingButValues(ByteTable)
    case anythingButPrefix([[UInt8]])
    case anythingButSuffix([[UInt8]])
    /// Not any of these, ignoring case: ASCII ones by their lowercased bytes, the others
    /// by EventBridge's rules.
    case anythingButIgnoreCase(ByteTable, [CaseFoldPattern])
    case caseFold(CaseFoldPattern, CaseFoldPosition)
    case anythingButWildcard([WildcardPattern])

    init(_ a: AnythingBut) {
        switch a {
        case .values(let strings, let numbers):
            var table = ByteTable()
            for s in strings { _ = table.insert(tag: ValueKey.string, Array(s.utf8)) }
            for n in numbers { _ = table.insert(tag: ValueKey.number, ValueKey.number(n)) }
            self = .anythingButValues(table)
        case .prefix(let list): self = .anythingButPrefix(list.map { Array($0.utf8) })
        case .suffix(let list): self = .anythingButSuffix(list.map { Array($0.utf8) })
        case .equalsIgnoreCase(let set):
            var table = ByteTable()
            var others: [CaseFoldPattern] = []
            for s in set.sorted() {
                if CaseFoldPattern.isASCII(s) {
                    _ = table.insert(tag: ValueKey.string, CaseFoldPattern.asciiLowercased(s))
                } else {
                    others.append(CaseFoldPattern(s))
                }
            }
            self = .anythingButIgnoreCase(table, others)
        case .wildcard(let ws): self = .anythingButWildcard(ws)
        }
    }
}
