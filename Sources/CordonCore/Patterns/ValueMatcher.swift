/// One way a leaf value can match: an element of a pattern's leaf array.
enum ValueMatcher: Sendable, Hashable {
    case exactString(String)
    /// An exact string that is an IP address: the address however it is written.
    case exactIP(IPRange)
    case exactNumber(DecimalValue)
    /// An exact number no double holds: it matches only the same literal text.
    case exactNumberText(String)
    case exactBool(Bool)
    case exactNull
    case prefix(String, ignoreCase: Bool)
    case suffix(String, ignoreCase: Bool)
    case equalsIgnoreCase(String)
    case wildcard(WildcardPattern)
    case anythingBut(AnythingBut)
    case numeric(NumericRange)
    case exists
    case cidr(IPRange)

    /// A text that is equal for equal matchers (edges of the automaton are keyed by it).
    var canonicalKey: String {
        switch self {
        case .exactString(let s): return "s:" + s
        case .exactIP(let r): return "ip:" + r.source
        case .exactNumber(let d): return "n:" + d.description
        case .exactNumberText(let t): return "nt:" + t
        case .exactBool(let b): return b ? "true" : "false"
        case .exactNull: return "null"
        case .prefix(let s, let ic): return (ic ? "prefix-ic:" : "prefix:") + s
        case .suffix(let s, let ic): return (ic ? "suffix-ic:" : "suffix:") + s
        case .equalsIgnoreCase(let s): return "eic:" + s
        case .wildcard(let w): return "wildcard:" + w.source
        case .anythingBut(let a): return "anything-but:" + a.canonicalKey
        case .numeric(let r): return "numeric:" + r.canonicalKey
        case .exists: return "exists"
        case .cidr(let c): return "cidr:" + c.source
        }
    }
}

/// The forms of `anything-but`.
enum AnythingBut: Sendable, Hashable {
    /// Not any of these strings (and not any of these numbers).
    case values(strings: Set<String>, numbers: Set<DecimalValue>)
    case prefix([String])
    case suffix([String])
    case equalsIgnoreCase(Set<String>)
    case wildcard([WildcardPattern])

    var canonicalKey: String {
        switch self {
        case .values(let strings, let numbers):
            return "values:" + strings.sorted().map { "s:" + $0 }.joined(separator: "\u{0}") + "|"
                + numbers.map(\.description).sorted().joined(separator: "\u{0}")
        case .prefix(let list): return "prefix:" + list.sorted().joined(separator: "\u{0}")
        case .suffix(let list): return "suffix:" + list.sorted().joined(separator: "\u{0}")
        case .equalsIgnoreCase(let set): return "eic:" + set.sorted().joined(separator: "\u{0}")
        case .wildcard(let ws): return "wildcard:" + ws.map(\.source).joined(separator: "\u{0}")
        }
    }
}

/// A `numeric` condition with up to two bounds, compared exactly on decimals.
struct NumericRange: Sendable, Hashable {
    var lower: DecimalValue?
    var lowerInclusive = false
    var upper: DecimalValue?
    var upperInclusive = false

    /// Whether the event number is in range; it must be one a double holds exactly (the
    /// caller checks), as EventBridge compares doubles.
    func contains(_ value: DecimalScratch) -> Bool {
        if let lower {
            let c = value.compare(to: lower)
            if c < 0 || (c == 0 && !lowerInclusive) { return false }
        }
        if let upper {
            let c = value.compare(to: upper)
            if c > 0 || (c == 0 && !upperInclusive) { return false }
        }
        return true
    }

    var canonicalKey: String {
        (lower.map { (lowerInclusive ? "[" : "(") + $0.description } ?? "(-inf") + ","
            + (upper.map { $0.description + (upperInclusive ? "]" : ")") } ?? "+inf)")
    }
}
