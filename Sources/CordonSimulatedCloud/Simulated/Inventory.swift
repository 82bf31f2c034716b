import CordonAWS
import CordonCloud
import CordonCore
import Foundation

/// The initial state of the simulated cloud, read from a YAML inventory file (the
/// format is documented in `Fixtures/inventory/README.md`).
public struct Inventory: Sendable {
    /// The account ids in file order.
    public private(set) var accounts: [String]
    /// The account used when a call names none: the one marked `default: true`, else the
    /// first.
    public private(set) var defaultAccount: String
    var world: SimWorld

    /// An empty cloud with one account (`123456789012`).
    public init() {
        self.accounts = ["123456789012"]
        self.defaultAccount = "123456789012"
        self.world = SimWorld(accounts: ["123456789012": SimAccount()])
    }

    init(accounts: [String], defaultAccount: String, world: SimWorld) {
        self.accounts = accounts
        self.defaultAccount = defaultAccount
        self.world = world
    }

    public static func load(path: String) throws(InventoryError) -> Inventory {
        switch BoundedFile.read(path, limit: YAMLParser().maxBytes, what: "an inventory file") {
        case .success(let data): return try parse(data, file: path)
        case .failure(let error):
            throw InventoryError(diagnostics: [Diagnostic(SourceLocation(file: path, line: 1, column: 1), "cannot read the inventory file: \(error.message)")])
        }
    }

    public static func parse(_ text: String, file: String = "inventory.yaml") throws(InventoryError) -> Inventory {
        try parse(Array(text.utf8), file: file)
    }

    /// An inventory from already parsed YAML (e.g. inline in a drill scenario).
    public static func load(_ root: YAMLValue) throws(InventoryError) -> Inventory {
        var loader = InventoryLoader()
        let inventory = loader.load(root)
        let diagnostics = loader.reader.diagnostics.sorted()
        guard diagnostics.isEmpty, let inventory else {
            throw InventoryError(diagnostics: diagnostics.isEmpty ? [Diagnostic(root.location, "the inventory is empty")] : diagnostics)
        }
        return inventory
    }

    public static func parse(_ bytes: [UInt8], file: String) throws(InventoryError) -> Inventory {
        let root: YAMLValue
        do {
            root = try YAMLParser().parse(bytes, file: file)
        } catch {
            throw InventoryError(diagnostics: [Diagnostic(error.location, error.message)])
        }
        return try load(root)
    }
}

/// Every problem found in an inventory file, each at its line and column.
public struct InventoryError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public init(diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Turns the checked YAML into the simulated world.
struct InventoryLoader {
    var reader = InventoryReader()
    private var generatedRules: UInt64 = 0

    static func looksLike(_ prefix: String) -> (String) -> Bool {
        { s in s.hasPrefix(prefix + "-") && s.count > prefix.count + 1 && s.dropFirst(prefix.count + 1).allSatisfy { $0.isLetter || $0.isNumber } }
    }

    mutating func load(_ root: YAMLValue) -> Inventory? {
        if case .null = root.kind { return nil }
        guard let top = reader.fields(root, "", allowed: ["description", "accounts"], required: ["accounts"]) else { return nil }
        _ = reader.string(top, "description")
        guard let accountsValue = top["accounts"] else { return nil }
        guard let members = accountsValue.members, !members.isEmpty else {
            reader.error(accountsValue.location, "accounts: expected a mapping of account ids (12 digits) to accounts, found \(InventoryReader.found(accountsValue))")
            return nil
        }
        var world = SimWorld()
        var order: [String] = []
        var defaultAccount: String? = nil
        for m in members {
            guard m.key.count == 12, m.key.allSatisfy(\.isASCII), m.key.allSatisfy(\.isNumber) else {
                reader.error(m.keyLocation, "accounts: \"\(m.key)\" is not an AWS account id (12 digits; quote it in YAML if it starts with 0)")
                continue
            }
            guard world.accounts[m.key] == nil else {
                reader.error(m.keyLocation, "accounts: account \(m.key) is listed twice")
                continue
            }
            let (account, isDefault) = loadAccount(m.value, id: m.key)
            world.accounts[m.key] = account
            order.append(m.key)
            if isDefault {
                if defaultAccount != nil { reader.error(m.value.location, "accounts.\(m.key): only one account can be the default") }
                defaultAccount = m.key
            }
        }
        guard let first = order.first else { return nil }
        return Inventory(accounts: order, defaultAccount: defaultAccount ?? first, world: world)
    }

    mutating func loadAccount(_ value: YAMLValue, id: String) -> (SimAccount, Bool) {
        var account = SimAccount()
        let path = "accounts.\(id)"
        if case .null = value.kind { return (account, false) }
        guard let f = reader.fields(value, path, allowed: ["default", "users", "roles", "buckets", "regions"]) else { return (account, false) }
        let isDefault = reader.bool(f, "default") ?? false
        for (i, item) in reader.list(f, "users").enumerated() {
            if let user = loadUser(item, "\(f.at("users"))[\(i)]") {
                if account.users[user.name] != nil { reader.error(item.location, "\(path): user \(user.name) is listed twice") }
                account.users[user.name] = user
            }
        }
        for (i, item) in reader.list(f, "roles").enumerated() {
            let p = "\(f.at("roles"))[\(i)]"
            guard let r = reader.fields(item, p, allowed: ["name", "inline_policies"], required: ["name"]),
                let name = reader.string(r, "name", pattern: Self.iamName, help: "IAM names use letters, digits and +=,.@_-")
            else { continue }
            if account.roles[name] != nil { reader.error(item.location, "\(path): role \(name) is listed twice") }
            account.roles[name] = SimRole(name: name, inlinePolicies: policies(r))
        }
        for (i, item) in reader.list(f, "buckets").enumerated() {
            let p = "\(f.at("buckets"))[\(i)]"
            guard let b = reader.fields(item, p, allowed: ["name", "public_access_block"], required: ["name"]), let name = reader.string(b, "name") else { continue }
            var bucket = SimBucket(name: name, publicAccessBlock: nil)
            if let pab = b["public_access_block"], let c = reader.fields(pab, b.at("public_access_block"), allowed: Self.pabKeys, required: Self.pabKeys) {
                bucket.publicAccessBlock = PublicAccessBlock(
                    blockPublicAcls: reader.bool(c, "block_public_acls") ?? false, ignorePublicAcls: reader.bool(c, "ignore_public_acls") ?? false,
                    blockPublicPolicy: reader.bool(c, "block_public_policy") ?? false, restrictPublicBuckets: reader.bool(c, "restrict_public_buckets") ?? false)
            }
            if account.buckets[name] != nil { reader.error(item.location, "\(path): bucket \(name) is listed twice") }
            account.buckets[name] = bucket
        }
        if let regions = f["regions"] {
            if let members = regions.members {
                for m in members {
                    guard Self.regionName(m.key) else {
                        reader.error(m.keyLocation, "\(f.at("regions")): \"\(m.key)\" is not a region name such as us-east-1")
                        continue
                    }
                    account.regions[m.key] = loadRegion(m.value, account: id, region: m.key, path: "\(f.at("regions")).\(m.key)")
                }
            } else if case .null = regions.kind {
            } else {
                reader.error(regions.location, "\(f.at("regions")): expected a mapping of region names to resources, found \(InventoryReader.found(regions))")
            }
        }
        return (account, isDefault)
    }

    static let pabKeys = ["block_public_acls", "ignore_public_acls", "block_public_policy", "restrict_public_buckets"]

    static func iamName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 128 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+=,.@_-".contains($0)) }
    }

    static func regionName(_ s: String) -> Bool {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        return parts.count >= 3 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber) } } && parts.last?.allSatisfy(\.isNumber) == true
    }

    mutating func policies(_ f: InventoryReader.Fields) -> [String: String] {
        guard let v = f["inline_policies"] else { return [:] }
        if case .null = v.kind { return [:] }
        guard let members = v.members else {
            reader.error(v.location, "\(f.at("inline_policies")): expected a mapping of policy names to documents, found \(InventoryReader.found(v))")
            return [:]
        }
        var out: [String: String] = [:]
        for m in members {
            switch m.value.kind {
            case .mapping: out[m.key] = JSONWriter.string(m.value.json)
            case .string(let text):
                guard case .object? = try? JSONParser.parse(text) else {
                    reader.error(m.value.location, "\(f.at("inline_policies")).\(m.key): the policy document is not a JSON object")
                    continue
                }
                out[m.key] = text
            default:
                reader.error(m.value.location, "\(f.at("inline_policies")).\(m.key): expected a policy document (a mapping or JSON text), found \(InventoryReader.found(m.value))")
            }
        }
        return out
    }

    mutating func loadUser(_ value: YAMLValue, _ path: String) -> SimUser? {
        guard let f = reader.fields(value, path, allowed: ["name", "access_keys", "login_profile", "inline_policies"], required: ["name"]),
            let name = reader.string(f, "name", pattern: Self.iamName, help: "IAM names use letters, digits and +=,.@_-")
        else { return nil }
        var user = SimUser(name: name, accessKeys: [], loginProfile: nil, inlinePolicies: policies(f))
        for (i, item) in reader.list(f, "access_keys").enumerated() {
            let p = "\(f.at("access_keys"))[\(i)]"
            guard let k = reader.fields(item, p, allowed: ["id", "status", "created"], required: ["id"]),
                let id = reader.string(k, "id", pattern: { $0.hasPrefix("AKIA") && $0.count >= 16 && $0.allSatisfy { $0.isASCII && ($0.isUppercase || $0.isNumber) } }, help: "access key ids start with AKIA (ASIA keys are temporary and belong to no user)")
            else { continue }
            if user.accessKeys.contains(where: { $0.id == id }) { reader.error(item.location, "\(p): access key \(id) is listed twice") }
            user.accessKeys.append(AccessKey(id: id, userName: name, status: reader.oneOf(k, "status", ["Active", "Inactive"]) ?? "Active", createDate: reader.string(k, "created")))
        }
        if user.accessKeys.count > 2, let v = f["access_keys"] { reader.error(v.location, "\(f.at("access_keys")): an IAM user has at most 2 access keys") }
        if let lp = f["login_profile"] {
            switch lp.kind {
            case .bool(let b): user.loginProfile = b ? LoginProfile(userName: name) : nil
            default:
                if let l = reader.fields(lp, f.at("login_profile"), allowed: ["created", "password_reset_required"]) {
                    user.loginProfile = LoginProfile(userName: name, createDate: reader.string(l, "created"), passwordResetRequired: reader.bool(l, "password_reset_required") ?? false)
                }
            }
        }
        return user
    }

    mutating func loadRegion(_ value: YAMLValue, account: String, region: String, path: String) -> SimRegion {
        var r = SimRegion()
        if case .null = value.kind { return r }
        guard let f = reader.fields(value, path, allowed: ["security_groups", "instances", "trails", "topics"]) else { return r }
        // Groups first: interfaces and rules refer to them.
        var pendingRefs: [(String, SourceLocation, String)] = []  // group id, where, what refers
        for (i, item) in reader.list(f, "security_groups").enumerated() {
            let p = "\(f.at("security_groups"))[\(i)]"
            guard let g = reader.fields(item, p, allowed: ["id", "name", "description", "vpc", "tags", "ingress", "egress"], required: ["id", "name"]),
                let id = reader.string(g, "id", pattern: Self.looksLike("sg"), help: "security group ids look like sg-0123456789abcdef0"),
                let name = reader.string(g, "name")
            else { continue }
            if r.securityGroups[id] != nil { reader.error(item.location, "\(p): security group \(id) is listed twice") }
            var group = SimSecurityGroup(
                id: id, name: name, description: reader.string(g, "description") ?? name, vpcId: reader.string(g, "vpc", pattern: Self.looksLike("vpc"), help: "VPC ids look like vpc-0123456789abcdef0"),
                rules: [], tags: reader.tags(g, "tags"))
            for (direction, egress) in [("ingress", false), ("egress", true)] {
                for (j, ruleValue) in reader.list(g, direction).enumerated() {
                    if let rule = loadRule(ruleValue, "\(g.at(direction))[\(j)]", groupId: id, egress: egress, refs: &pendingRefs) {
                        if group.rules.contains(where: { $0.sameEffect(as: rule) }) {
                            reader.error(ruleValue.location, "\(g.at(direction))[\(j)]: the same rule is listed twice")
                        } else if group.rules.contains(where: { $0.id == rule.id }) {
                            reader.error(ruleValue.location, "\(g.at(direction))[\(j)]: rule id \(rule.id) is used twice")
                        } else {
                            group.rules.append(rule)
                        }
                    }
                }
            }
            r.securityGroups[id] = group
        }
        for (i, item) in reader.list(f, "instances").enumerated() {
            if let instance = loadInstance(item, "\(f.at("instances"))[\(i)]", region: &r, refs: &pendingRefs) {
                if r.instances[instance.id] != nil { reader.error(item.location, "\(f.at("instances"))[\(i)]: instance \(instance.id) is listed twice") }
                r.instances[instance.id] = instance
            }
        }
        for (id, location, what) in pendingRefs where r.securityGroups[id] == nil {
            reader.error(location, "\(what): unknown security group \(id) (declare it under security_groups of this region)")
        }
        for (i, item) in reader.list(f, "trails").enumerated() {
            let p = "\(f.at("trails"))[\(i)]"
            guard let t = reader.fields(item, p, allowed: ["name", "logging"], required: ["name"]), let name = reader.string(t, "name") else { continue }
            r.trails[name] = SimTrail(name: name, arn: "arn:aws:cloudtrail:\(region):\(account):trail/\(name)", isLogging: reader.bool(t, "logging") ?? true)
        }
        for (i, item) in reader.list(f, "topics").enumerated() {
            let p = "\(f.at("topics"))[\(i)]"
            guard let t = reader.fields(item, p, allowed: ["name"], required: ["name"]), let name = reader.string(t, "name") else { continue }
            r.topics[name] = SimTopic(name: name, arn: "arn:aws:sns:\(region):\(account):\(name)", messages: [])
        }
        return r
    }

    mutating func loadRule(_ value: YAMLValue, _ path: String, groupId: String, egress: Bool, refs: inout [(String, SourceLocation, String)]) -> SecurityGroupRule? {
        guard let f = reader.fields(value, path, allowed: ["id", "protocol", "port", "from_port", "to_port", "cidr", "group", "prefix_list", "description"], required: ["protocol"]),
            let proto = reader.oneOf(f, "protocol", ["tcp", "udp", "icmp", "icmpv6", "all", "-1"]).map(IpPermission.normalizedProtocol)
        else { return nil }
        var from = reader.int(f, "from_port", range: -1...65535)
        var to = reader.int(f, "to_port", range: -1...65535)
        if let port = reader.int(f, "port", range: 0...65535) {
            if from != nil || to != nil, let v = f["port"] { reader.error(v.location, "\(path): give port, or from_port and to_port, not both") }
            from = port
            to = port
        }
        if proto == "-1" {
            from = nil
            to = nil
        } else if proto == "tcp" || proto == "udp" {
            guard let a = from, let b = to, a <= b, a >= 0 else {
                reader.error(value.location, "\(path): a \(proto) rule needs port, or from_port and to_port with from_port <= to_port")
                return nil
            }
        }
        let id = reader.string(f, "id", pattern: Self.looksLike("sgr"), help: "rule ids look like sgr-0123456789abcdef0") ?? nextRuleId()
        var rule = SecurityGroupRule(id: id, groupId: groupId, isEgress: egress, ipProtocol: proto, fromPort: from, toPort: to, description: reader.string(f, "description"))
        var sources = 0
        if let cidr = reader.string(f, "cidr", pattern: Self.cidr, help: "expected a CIDR block such as 10.0.0.0/16 or ::/0") {
            if cidr.contains(":") { rule.cidrIpv6 = cidr } else { rule.cidrIpv4 = cidr }
            sources += 1
        }
        if let g = reader.string(f, "group", pattern: Self.looksLike("sg"), help: "security group ids look like sg-0123456789abcdef0") {
            rule.referencedGroupId = g
            refs.append((g, f["group"]?.location ?? value.location, "\(path).group"))
            sources += 1
        }
        if let p = reader.string(f, "prefix_list", pattern: Self.looksLike("pl"), help: "prefix list ids look like pl-0123456789abcdef0") {
            rule.prefixListId = p
            sources += 1
        }
        guard sources == 1 else {
            let given = ["cidr", "group", "prefix_list"].filter { f[$0] != nil }
            if given.count != 1 { reader.error(value.location, "\(path): give exactly one of cidr, group or prefix_list") }
            return nil
        }
        return rule
    }

    mutating func nextRuleId() -> String {
        generatedRules += 1
        let hex = String(generatedRules, radix: 16)
        return "sgr-f" + String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }

    static func cidr(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let bits = Int(parts[1]) else { return false }
        if parts[0].contains(":") { return (0...128).contains(bits) && parts[0].allSatisfy { $0.isHexDigit || $0 == ":" } }
        let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false)
        return (0...32).contains(bits) && octets.count == 4 && octets.allSatisfy { Int($0).map { (0...255).contains($0) } ?? false }
    }

    mutating func loadInstance(_ value: YAMLValue, _ path: String, region r: inout SimRegion, refs: inout [(String, SourceLocation, String)]) -> SimInstance? {
        let allowed = [
            "id", "type", "state", "image", "vpc", "subnet", "private_ip", "public_ip", "launch_time", "instance_profile", "termination_protection", "tags",
            "network_interfaces", "volumes", "availability_zone",
        ]
        guard let f = reader.fields(value, path, allowed: allowed, required: ["id"]),
            let id = reader.string(f, "id", pattern: Self.looksLike("i"), help: "instance ids look like i-0123456789abcdef0")
        else { return nil }
        let vpc = reader.string(f, "vpc", pattern: Self.looksLike("vpc"), help: "VPC ids look like vpc-0123456789abcdef0")
        let subnet = reader.string(f, "subnet", pattern: Self.looksLike("subnet"), help: "subnet ids look like subnet-0123456789abcdef0")
        let zone = reader.string(f, "availability_zone")
        var instance = SimInstance(
            id: id, state: reader.oneOf(f, "state", ["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]) ?? "running",
            instanceType: reader.string(f, "type"), imageId: reader.string(f, "image"), vpcId: vpc, subnetId: subnet, privateIp: reader.string(f, "private_ip"),
            publicIp: reader.string(f, "public_ip"), launchTime: reader.string(f, "launch_time"), iamInstanceProfileArn: reader.string(f, "instance_profile"),
            tags: reader.tags(f, "tags"), networkInterfaces: [], blockDevices: [], terminationProtection: reader.bool(f, "termination_protection") ?? false)
        for (i, item) in reader.list(f, "network_interfaces").enumerated() {
            let p = "\(f.at("network_interfaces"))[\(i)]"
            guard let e = reader.fields(item, p, allowed: ["id", "groups", "private_ip", "public_ip", "subnet", "mac"], required: ["id", "groups"]),
                let eniId = reader.string(e, "id", pattern: Self.looksLike("eni"), help: "interface ids look like eni-0123456789abcdef0")
            else { continue }
            let groups = reader.strings(e, "groups")
            if groups.isEmpty, let v = e["groups"] { reader.error(v.location, "\(p).groups: an interface has at least one security group") }
            for (g, location) in groups { refs.append((g, location, "\(p).groups")) }
            if r.instances.values.contains(where: { $0.networkInterfaces.contains { $0.id == eniId } }) || instance.networkInterfaces.contains(where: { $0.id == eniId }) {
                reader.error(item.location, "\(p): interface \(eniId) is attached twice")
            }
            instance.networkInterfaces.append(
                SimInterface(
                    id: eniId, groupIds: groups.map(\.0), privateIp: reader.string(e, "private_ip"), publicIp: reader.string(e, "public_ip"),
                    subnetId: reader.string(e, "subnet") ?? subnet, vpcId: vpc, macAddress: reader.string(e, "mac"), deviceIndex: i))
        }
        if instance.privateIp == nil { instance.privateIp = instance.networkInterfaces.first?.privateIp }
        if instance.publicIp == nil { instance.publicIp = instance.networkInterfaces.first?.publicIp }
        for (i, item) in reader.list(f, "volumes").enumerated() {
            let p = "\(f.at("volumes"))[\(i)]"
            guard let v = reader.fields(item, p, allowed: ["id", "device", "size", "type", "encrypted", "tags"], required: ["id", "device"]),
                let volumeId = reader.string(v, "id", pattern: Self.looksLike("vol"), help: "volume ids look like vol-0123456789abcdef0"),
                let device = reader.string(v, "device")
            else { continue }
            if r.volumes[volumeId] != nil { reader.error(item.location, "\(p): volume \(volumeId) is attached twice") }
            r.volumes[volumeId] = Volume(
                id: volumeId, sizeGiB: reader.int(v, "size", range: 1...65536) ?? 8, state: "in-use", availabilityZone: zone, encrypted: reader.bool(v, "encrypted") ?? false,
                volumeType: reader.string(v, "type") ?? "gp3", attachedTo: [id], tags: reader.tags(v, "tags"))
            instance.blockDevices.append(BlockDevice(deviceName: device, volumeId: volumeId))
        }
        return instance
    }
}

extension InventoryError: CordonErrorConvertible {
    public var cordonError: CordonError { invalidInput }
}
