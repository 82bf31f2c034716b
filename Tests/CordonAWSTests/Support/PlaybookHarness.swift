import CordonCore
import CordonJournal
import Foundation
import XCTest

@testable import CordonAWS

/// Runs the shipped playbooks (`Playbooks/`, `Integrations/`) through the real engine
/// with an `SQLiteJournal` in a temporary directory, against any `Cloud`.
enum PlaybookHarness {
    static var root: URL { Fixture.root }
    static let topicArn = "arn:aws:sns:us-east-1:123456789012:cordon-alerts"

    static func config() throws -> LoadedConfig {
        let loaded = ConfigLoader().load([root.appendingPathComponent("Playbooks").path], integrationPaths: [root.appendingPathComponent("Integrations").path])
        XCTAssertTrue(loaded.isValid, loaded.errors.map(\.description).joined(separator: "\n"))
        return loaded
    }

    /// The shipped playbooks' firing fixtures, in name order: `[(playbook, file)]`.
    static func firingFixtures(_ playbook: String? = nil) throws -> [(String, URL)] {
        let dir = root.appendingPathComponent("Fixtures/playbooks")
        var out: [(String, URL)] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where playbook == nil || playbook == name {
            for file in try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent(name).path).sorted() where file.hasPrefix("fires-") {
                out.append((name, dir.appendingPathComponent(name).appendingPathComponent(file)))
            }
        }
        return out
    }

    /// Decodes a fixture after replacing inventory ids by the cloud's (`ids`).
    static func findings(_ file: URL, ids: [String: String] = [:]) throws -> [Finding] {
        var text = try String(contentsOf: file, encoding: .utf8)
        for (from, to) in ids.sorted(by: { $0.key.count > $1.key.count }) where from != to {
            text = text.replacingOccurrences(of: from, with: to)
        }
        let result = FindingDecoder().decode(Array(text.utf8), source: file.lastPathComponent)
        XCTAssertTrue(result.issues.isEmpty, "\(file.lastPathComponent): \(result.issues)")
        return result.findings
    }

    /// Integration actions (Slack, PagerDuty…) answer success without calling anything:
    /// these tests are about the cloud.
    struct NoopAction: Action {
        func run(_ request: ActionRequest) async throws(ActionError) -> ActionOutcome { ActionOutcome(outputs: ["stub": true]) }
    }

    static func actions(_ config: LoadedConfig, cloud: any Cloud, wrap: (String, any Action) -> any Action = { $1 }) -> [String: any Action] {
        var actions = CoreActions.all
        for name in config.registry.names where !name.hasPrefix("aws.") && !name.hasPrefix("core.") { actions[name] = NoopAction() }
        for (name, action) in AWSActions.all(cloud: cloud, defaultRegion: "us-east-1") { actions[name] = wrap(name, action) }
        return actions
    }

    static func secrets() -> SecretStore { SecretStore(environment: ["CORDON_SNS_TOPIC_ARN": topicArn]) }

    static func engine(_ dir: URL, _ config: LoadedConfig, _ actions: [String: any Action]) async throws -> (SQLiteJournal, Engine) {
        let secrets = secrets()
        let journal = try SQLiteJournal(directory: DataDirectory(dir.path), secrets: secrets)
        let engine = Engine(
            config: config, actions: actions, journal: journal, evidence: journal.evidence, secrets: secrets, actor: "cordon/test",
            index: try await IncidentIndex.load(from: journal))
        return (journal, engine)
    }

    static func tempDir(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs every firing fixture (approving every approval it asks for); returns the
    /// engine's incidents.
    static func runAll(_ cloud: any Cloud, ids: [String: String] = [:], playbook: String? = nil) async throws -> IncidentIndex {
        let config = try config()
        let dir = try tempDir("playbooks")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (journal, engine) = try await engine(dir, config, actions(config, cloud: cloud))
        for (_, file) in try firingFixtures(playbook) {
            _ = try await engine.process(try findings(file, ids: ids))
            for incident in await engine.index.incidents.values {
                if let step = incident.pendingApproval {
                    try await engine.decide(incident: incident.id, step: step, by: "test", approve: true, reason: "test")
                }
            }
        }
        let index = await engine.index
        try await journal.close()
        return index
    }

    // MARK: - Normalised state

    /// The state of every resource of the inventory that the playbooks may touch, read
    /// through the `Cloud` seam and keyed by inventory ids, so that the simulated cloud
    /// and moto (with its own ids, `ids` maps inventory → cloud) compare equal.
    static func state(_ cloud: any Cloud, inventory: JSONValue, account: String = "123456789012", ids: [String: String] = [:]) async throws -> JSONValue {
        func id(_ s: String) -> String { ids[s] ?? s }
        let back = Dictionary(ids.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        guard let acct = inventory["accounts"]?[account] else { throw PythonServer.ServerError(message: "no account \(account) in the inventory") }
        var out = JSONObject()
        for (region, r) in acct["regions"]?.objectValue ?? [:] {
            let ec2 = try await cloud.ec2(CloudScope(account: account, region: region))
            var regional = JSONObject()
            for (instanceId, _) in r["instances"]?.objectValue ?? [:] {
                let instance = try await ec2.describeInstance(id(instanceId))
                let groupIds = Array(Set(instance.networkInterfaces.flatMap { $0.groups.map(\.id) }))
                let names = Dictionary(try await ec2.describeSecurityGroups(ids: groupIds).map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
                var enis = JSONObject()
                for eni in instance.networkInterfaces {
                    enis[back[eni.id] ?? eni.id] = .array(eni.groups.map { JSONValue.string(names[$0.id] ?? "?") }.sorted { $0.stringValue! < $1.stringValue! })
                }
                var snapshots = JSONObject()
                for device in instance.blockDevices {
                    snapshots[back[device.volumeId] ?? device.volumeId] = .number(JSONNumber(try await ec2.describeSnapshots(tagKey: "cordon:volume", tagValue: device.volumeId).count))
                }
                regional["instance " + instanceId] = [
                    "interfaces": .object(enis), "snapshots_per_volume": .object(snapshots),
                    "termination_protection": .bool(try await ec2.terminationProtection(id(instanceId))),
                    "cordon_tags": .array(instance.tags.map(\.key).filter { $0.hasPrefix("cordon:") }.sorted().map(JSONValue.string)),
                ]
            }
            var vpcs = Set<String>()
            for (groupId, group) in r["securityGroups"]?.objectValue ?? [:] {
                if let vpc = group["vpcId"]?.stringValue { vpcs.insert(vpc) }
                regional["group " + groupId] = .array(try await rules(ec2, id(groupId), back).map(JSONValue.string))
            }
            for vpc in vpcs.sorted() {
                for name in ["cordon-quarantine", "cordon-quarantine-untrack"] {
                    if let g = try await ec2.findSecurityGroup(name: name, vpcId: id(vpc)) {
                        regional["group \(name) in \(vpc)"] = .array(try await rules(ec2, g.id, back).map(JSONValue.string))
                    }
                }
            }
            let trails = try await cloud.cloudTrail(CloudScope(account: account, region: region))
            for (name, _) in r["trails"]?.objectValue ?? [:] {
                regional["trail " + name + " logging"] = .bool(try await trails.isLogging(trail: name))
            }
            if !regional.isEmpty { out[region] = .object(regional) }
        }
        let iam = try await cloud.iam(CloudScope(account: account, region: "us-east-1"))
        let policies = [RevokeRoleSessionsAction.policyName, AttachDenyAllAction.policyName]
        for (name, user) in acct["users"]?.objectValue ?? [:] {
            var keys = JSONObject()
            for key in try await iam.listAccessKeys(userName: name) { keys[back[key.id] ?? key.id] = .string(key.status) }
            var inline = JSONObject()
            for p in policies + (user["inlinePolicies"]?.objectValue?.keys.map { $0 } ?? []) {
                inline[p] = .bool(try await iam.inlinePolicy(.user(name), name: p) != nil)
            }
            out["user " + name] = ["access_keys": .object(keys), "login_profile": .bool(try await iam.loginProfile(userName: name) != nil), "inline_policies": .object(inline)]
        }
        for (name, role) in acct["roles"]?.objectValue ?? [:] {
            var inline = JSONObject()
            for p in policies + (role["inlinePolicies"]?.objectValue?.keys.map { $0 } ?? []) {
                inline[p] = .bool(try await iam.inlinePolicy(.role(name), name: p) != nil)
            }
            out["role " + name] = ["inline_policies": .object(inline)]
        }
        let s3 = try await cloud.s3(CloudScope(account: account, region: "us-east-1"))
        for (name, _) in acct["buckets"]?.objectValue ?? [:] {
            out["bucket " + name] = try await s3.publicAccessBlock(bucket: name).map(JSONBridge.value) ?? .null
        }
        var sorted = JSONObject()
        for (k, v) in out.sorted(by: { $0.key < $1.key }) { sorted[k] = v }
        return .object(sorted)
    }

    /// A group's rules as sorted text, with inventory ids.
    static func rules(_ ec2: any EC2API, _ groupId: String, _ back: [String: String]) async throws -> [String] {
        try await ec2.describeSecurityGroupRules(groupId: groupId).map { r in
            let source = r.cidrIpv4 ?? r.cidrIpv6 ?? r.referencedGroupId.map { back[$0] ?? $0 } ?? r.prefixListId ?? "?"
            let ports = r.ipProtocol == "-1" ? "" : " \(r.fromPort ?? -1)-\(r.toPort ?? -1)"
            return "\(r.isEgress ? "out" : "in") \(r.ipProtocol)\(ports) \(source)"
        }.sorted()
    }
}

/// Seeds moto with the resources of an inventory (through boto3, which moto serves) and
/// answers the map from inventory ids to moto's ids.
enum MotoSeeder {
    static func seed(_ inventory: JSONValue, port: Int) throws -> [String: String] {
        let dir = FileManager.default.temporaryDirectory
        let script = dir.appendingPathComponent("cordon-seed-\(getpid())-\(UUID().uuidString).py")
        try Self.script.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let input = dir.appendingPathComponent("cordon-seed-\(UUID().uuidString).json")
        try Data(JSONWriter.bytes(inventory)).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, input.path]
        var env = ProcessInfo.processInfo.environment
        env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:\(port)"
        env["AWS_ACCESS_KEY_ID"] = "testing"
        env["AWS_SECRET_ACCESS_KEY"] = "testing"
        env["AWS_DEFAULT_REGION"] = "us-east-1"
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let map = try? JSONDecoder().decode([String: String].self, from: data) else {
            throw PythonServer.ServerError(message: "seeding moto failed: \(String(decoding: errors, as: UTF8.self).suffix(3000))")
        }
        return map
    }

    static let script = #"""
        # Creates the resources of a simulated-cloud snapshot (JSON file argv[1]) in moto
        # through boto3 and prints {inventory id: moto id} as JSON.
        import json, sys, ipaddress
        import boto3

        world = json.load(open(sys.argv[1]))
        ids = {}
        ACCOUNT = "123456789012"
        acct = world["accounts"][ACCOUNT]

        def c(service, region="us-east-1"):
            return boto3.client(service, region_name=region)

        def perm(rule, groups):
            p = {"IpProtocol": rule["ipProtocol"]}
            if rule.get("fromPort") is not None: p["FromPort"] = rule["fromPort"]
            if rule.get("toPort") is not None: p["ToPort"] = rule["toPort"]
            if rule.get("cidrIpv4"): p["IpRanges"] = [{"CidrIp": rule["cidrIpv4"]}]
            if rule.get("cidrIpv6"): p["Ipv6Ranges"] = [{"CidrIpv6": rule["cidrIpv6"]}]
            if rule.get("referencedGroupId"): p["UserIdGroupPairs"] = [{"GroupId": groups[rule["referencedGroupId"]]}]
            if rule.get("prefixListId"): p["PrefixListIds"] = [{"PrefixListId": rule["prefixListId"]}]
            if rule.get("description"):
                for k in ("IpRanges", "Ipv6Ranges", "UserIdGroupPairs"):
                    for r in p.get(k, []): r["Description"] = rule["description"]
            return p

        for region, r in sorted(acct.get("regions", {}).items()):
            ec2 = c("ec2", region)
            image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
            vpc_ips, subnet_ips, subnet_vpc, subnet_az = {}, {}, {}, {}
            for inst in r.get("instances", {}).values():
                az = None
                for dev in inst.get("blockDevices", []):
                    az = r.get("volumes", {}).get(dev["volumeId"], {}).get("availabilityZone") or az
                for eni in inst["networkInterfaces"]:
                    vpc = eni.get("vpcId") or inst.get("vpcId")
                    sub = eni.get("subnetId") or inst.get("subnetId")
                    ip = eni.get("privateIp")
                    if vpc and ip: vpc_ips.setdefault(vpc, []).append(ip)
                    if sub:
                        subnet_vpc[sub] = vpc
                        subnet_az[sub] = az or region + "a"
                        if ip: subnet_ips.setdefault(sub, []).append(ip)
            vpcs = set(vpc_ips) | {g["vpcId"] for g in r.get("securityGroups", {}).values() if g.get("vpcId")} | {v for v in subnet_vpc.values() if v}
            spare = 200
            for vpc in sorted(vpcs):
                if vpc in vpc_ips:
                    cidr = str(ipaddress.ip_network(vpc_ips[vpc][0] + "/16", strict=False))
                else:
                    spare += 1
                    cidr = "10.%d.0.0/16" % spare
                ids[vpc] = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
            for sub in sorted(subnet_vpc):
                ip = (subnet_ips.get(sub) or [None])[0]
                cidr = str(ipaddress.ip_network(ip + "/24", strict=False))
                ids[sub] = ec2.create_subnet(VpcId=ids[subnet_vpc[sub]], CidrBlock=cidr, AvailabilityZone=subnet_az[sub])["Subnet"]["SubnetId"]
            groups = {}
            for g in sorted(r.get("securityGroups", {}).values(), key=lambda g: g["id"]):
                kw = {"GroupName": g["name"], "Description": g["description"]}
                if g.get("vpcId"): kw["VpcId"] = ids[g["vpcId"]]
                gid = ec2.create_security_group(**kw)["GroupId"]
                groups[g["id"]] = gid
                ids[g["id"]] = gid
            for g in r.get("securityGroups", {}).values():
                gid = groups[g["id"]]
                # AWS gives a new group an allow-all egress rule; the inventory lists every rule.
                default = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]["IpPermissionsEgress"]
                if default: ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=default)
                for rule in g.get("rules", []):
                    call = ec2.authorize_security_group_egress if rule["isEgress"] else ec2.authorize_security_group_ingress
                    made = call(GroupId=gid, IpPermissions=[perm(rule, groups)]).get("SecurityGroupRules") or []
                    if rule.get("id") and made: ids[rule["id"]] = made[0]["SecurityGroupRuleId"]
            for inst in sorted(r.get("instances", {}).values(), key=lambda i: i["id"]):
                enis = sorted(inst["networkInterfaces"], key=lambda e: e["deviceIndex"])
                first = enis[0]
                kw = {"ImageId": image, "MinCount": 1, "MaxCount": 1, "InstanceType": inst.get("instanceType") or "t3.micro",
                      "SubnetId": ids[first.get("subnetId") or inst["subnetId"]],
                      "DisableApiTermination": inst.get("terminationProtection", False)}
                if first.get("privateIp"): kw["PrivateIpAddress"] = first["privateIp"]
                if inst.get("tags"): kw["TagSpecifications"] = [{"ResourceType": "instance", "Tags": [{"Key": t["key"], "Value": t["value"]} for t in inst["tags"]]}]
                bdm = []
                for dev in inst.get("blockDevices", []):
                    v = r.get("volumes", {}).get(dev["volumeId"], {})
                    ebs = {"VolumeSize": v.get("sizeGiB") or 8, "DeleteOnTermination": True}
                    if v.get("volumeType"): ebs["VolumeType"] = v["volumeType"]
                    if v.get("encrypted"): ebs["Encrypted"] = True
                    bdm.append({"DeviceName": dev["deviceName"], "Ebs": ebs})
                if bdm: kw["BlockDeviceMappings"] = bdm
                made = ec2.run_instances(**kw)["Instances"][0]
                ids[inst["id"]] = made["InstanceId"]
                # Groups go on the interface, not in RunInstances: moto adds an instance's
                # launch groups to every interface it describes, even after they change.
                primary = made["NetworkInterfaces"][0]["NetworkInterfaceId"]
                ec2.modify_network_interface_attribute(NetworkInterfaceId=primary, Groups=[groups[g] for g in first["groupIds"]])
                for e in enis[1:]:
                    n = ec2.create_network_interface(SubnetId=ids[e.get("subnetId") or inst["subnetId"]], Groups=[groups[g] for g in e["groupIds"]])["NetworkInterface"]["NetworkInterfaceId"]
                    ec2.attach_network_interface(NetworkInterfaceId=n, InstanceId=made["InstanceId"], DeviceIndex=e["deviceIndex"])
                described = ec2.describe_instances(InstanceIds=[made["InstanceId"]])["Reservations"][0]["Instances"][0]
                for e in described["NetworkInterfaces"]:
                    for want in enis:
                        if want["deviceIndex"] == e["Attachment"]["DeviceIndex"]: ids[want["id"]] = e["NetworkInterfaceId"]
                for m in described.get("BlockDeviceMappings", []):
                    for dev in inst.get("blockDevices", []):
                        if dev["deviceName"] == m["DeviceName"]: ids[dev["volumeId"]] = m["Ebs"]["VolumeId"]
            if r.get("trails"):
                bucket = "cordon-seed-trail-logs-" + region
                if region == "us-east-1": c("s3", region).create_bucket(Bucket=bucket)
                else: c("s3", region).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
                ct = c("cloudtrail", region)
                for t in r["trails"].values():
                    ct.create_trail(Name=t["name"], S3BucketName=bucket)
                    if t["isLogging"]: ct.start_logging(Name=t["name"])
            for t in r.get("topics", {}).values():
                c("sns", region).create_topic(Name=t["name"])

        iam = c("iam")
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
        for u in acct.get("users", {}).values():
            iam.create_user(UserName=u["name"])
            for k in u.get("accessKeys", []):
                made = iam.create_access_key(UserName=u["name"])["AccessKey"]["AccessKeyId"]
                ids[k["id"]] = made
                if k["status"] != "Active": iam.update_access_key(UserName=u["name"], AccessKeyId=made, Status=k["status"])
            if u.get("loginProfile"): iam.create_login_profile(UserName=u["name"], Password="Seed-Password-1!")
            for name, doc in u.get("inlinePolicies", {}).items(): iam.put_user_policy(UserName=u["name"], PolicyName=name, PolicyDocument=doc)
        for ro in acct.get("roles", {}).values():
            iam.create_role(RoleName=ro["name"], AssumeRolePolicyDocument=trust)
            for name, doc in ro.get("inlinePolicies", {}).items(): iam.put_role_policy(RoleName=ro["name"], PolicyName=name, PolicyDocument=doc)
        s3 = c("s3")
        for b in acct.get("buckets", {}).values():
            s3.create_bucket(Bucket=b["name"])
            p = b.get("publicAccessBlock")
            if p is not None:
                s3.put_public_access_block(Bucket=b["name"], PublicAccessBlockConfiguration={
                    "BlockPublicAcls": p["blockPublicAcls"], "IgnorePublicAcls": p["ignorePublicAcls"],
                    "BlockPublicPolicy": p["blockPublicPolicy"], "RestrictPublicBuckets": p["restrictPublicBuckets"]})
        print(json.dumps(ids, sort_keys=True))
        """#
}
