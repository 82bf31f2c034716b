import CordonCore

// Security group rules and permissions as EC2 compares them: shared by the actions
// (what is already in place) and the simulated cloud (what a call changes).

extension IpPermission {
    /// The protocol as EC2 reports it: names for tcp, udp, icmp and icmpv6 (numbers as
    /// given are accepted), "-1" for all.
    package static func normalizedProtocol(_ p: String) -> String {
        switch p.lowercased() {
        case "6", "tcp": return "tcp"
        case "17", "udp": return "udp"
        case "1", "icmp": return "icmp"
        case "58", "icmpv6": return "icmpv6"
        case "-1", "all": return "-1"
        default: return p.lowercased()
        }
    }

    /// One rule per source (as `DescribeSecurityGroupRules` lists them), without ids.
    package func expanded(groupId: String, isEgress: Bool) -> [SecurityGroupRule] {
        let proto = Self.normalizedProtocol(ipProtocol)
        let from = proto == "-1" ? nil : fromPort
        let to = proto == "-1" ? nil : toPort
        func rule() -> SecurityGroupRule { SecurityGroupRule(id: "", groupId: groupId, isEgress: isEgress, ipProtocol: proto, fromPort: from, toPort: to) }
        var out: [SecurityGroupRule] = []
        for c in ipv4Ranges {
            var r = rule()
            r.cidrIpv4 = c
            out.append(r)
        }
        for c in ipv6Ranges {
            var r = rule()
            r.cidrIpv6 = c
            out.append(r)
        }
        for g in groupIds {
            var r = rule()
            r.referencedGroupId = g
            out.append(r)
        }
        for p in prefixListIds {
            var r = rule()
            r.prefixListId = p
            out.append(r)
        }
        return out
    }

    /// Rules back into permissions, one per protocol and port range, in first-seen order.
    package static func grouping(_ rules: [SecurityGroupRule]) -> [IpPermission] {
        var out: [IpPermission] = []
        for r in rules {
            let i: Int
            if let found = out.firstIndex(where: { $0.ipProtocol == r.ipProtocol && $0.fromPort == r.fromPort && $0.toPort == r.toPort }) {
                i = found
            } else {
                out.append(IpPermission(ipProtocol: r.ipProtocol, fromPort: r.fromPort, toPort: r.toPort))
                i = out.count - 1
            }
            if let c = r.cidrIpv4 { out[i].ipv4Ranges.append(c) }
            if let c = r.cidrIpv6 { out[i].ipv6Ranges.append(c) }
            if let g = r.referencedGroupId { out[i].groupIds.append(g) }
            if let p = r.prefixListId { out[i].prefixListIds.append(p) }
        }
        return out
    }
}

extension SecurityGroupRule {
    /// Same protocol, ports, direction and source (ids and descriptions aside).
    package func sameEffect(as other: SecurityGroupRule) -> Bool {
        isEgress == other.isEgress && IpPermission.normalizedProtocol(ipProtocol) == IpPermission.normalizedProtocol(other.ipProtocol)
            && (ipProtocol == "-1" || (fromPort == other.fromPort && toPort == other.toPort)) && cidrIpv4 == other.cidrIpv4
            && cidrIpv6 == other.cidrIpv6 && referencedGroupId == other.referencedGroupId && prefixListId == other.prefixListId
    }

    /// The rule as a permission (for re-authorizing it).
    package var permission: IpPermission {
        IpPermission(
            ipProtocol: ipProtocol, fromPort: fromPort, toPort: toPort, ipv4Ranges: cidrIpv4.map { [$0] } ?? [],
            ipv6Ranges: cidrIpv6.map { [$0] } ?? [], groupIds: referencedGroupId.map { [$0] } ?? [], prefixListIds: prefixListId.map { [$0] } ?? [])
    }

    /// How EC2 names a rule in its error messages: `peer: 0.0.0.0/0, TCP, from port: 22, to port: 22, ALLOW`.
    package var awsDescription: String {
        let peer = cidrIpv4 ?? cidrIpv6 ?? referencedGroupId ?? prefixListId ?? "?"
        let proto = ipProtocol == "-1" ? "ALL" : ipProtocol.uppercased()
        var s = "peer: \(peer), \(proto)"
        if ipProtocol != "-1" { s += ", from port: \(fromPort.map(String.init) ?? "-1"), to port: \(toPort.map(String.init) ?? "-1")" }
        return s + ", ALLOW"
    }
}
