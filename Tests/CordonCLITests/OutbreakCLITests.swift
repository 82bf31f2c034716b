import CordonCore
import CordonEngine
import CordonJournal
import CordonTestSupport
import Foundation
import Testing

/// An outbreak: 40 instances in one VPC reported at once, isolated by `cordon run
/// --queue-dir --cloud aws` against moto. Every isolation
/// prepares the same new quarantine group at the same moment; each must hold, counted at
/// the target (moto's instances and group), not in the journal.
@Suite(.serialized) struct OutbreakCLITests {
    static let count = 40

    /// Runs a Python script with moto's environment; returns its standard output.
    static func python(_ script: String, _ moto: PythonServer) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        var env = ProcessInfo.processInfo.environment
        for (k, v) in Moto.environment(port: moto.port) { env[k] = v }
        process.environment = env
        let captured = try await offPool { try Spawn.capture(process, stdin: nil) }
        guard captured.status == 0 else { throw TestFailure("python3 failed (\(captured.status)): \(captured.stderrText)") }
        return String(decoding: captured.stdout, as: UTF8.self)
    }

    static let client = """
        import boto3, json, os
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        """

    /// A VPC with `count` running instances (no security groups given at launch: moto
    /// would keep those beside any group set later), their ids.
    static func seed(_ moto: PythonServer) async throws -> [String] {
        let out = try await python(
            client + """

                vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
                subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
                r = ec2.run_instances(ImageId="ami-12c6146b", MinCount=\(count), MaxCount=\(count), SubnetId=subnet, InstanceType="t3.micro")
                print(json.dumps([i["InstanceId"] for i in r["Instances"]]))
                """, moto)
        return try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String] ?? []
    }

    /// The instances whose every interface is in `cordon-quarantine` alone, with that group
    /// free of rules and termination protection on: isolated, as the target says.
    static func isolated(_ ids: [String], _ moto: PythonServer) async throws -> [String] {
        let out = try await python(
            client + """

                ids = \(String(decoding: try JSONSerialization.data(withJSONObject: ids), as: UTF8.self))
                groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["cordon-quarantine"]}])["SecurityGroups"]
                # Quarantine groups with no rule left (moto may make two of one name when
                # they are created at the same moment; AWS refuses the second).
                empty = {g["GroupId"] for g in groups if not g["IpPermissions"] and not g["IpPermissionsEgress"]}
                ok = []
                for res in ec2.describe_instances(InstanceIds=ids)["Reservations"]:
                    for i in res["Instances"]:
                        enis = i["NetworkInterfaces"]
                        protected = ec2.describe_instance_attribute(InstanceId=i["InstanceId"], Attribute="disableApiTermination")["DisableApiTermination"]["Value"]
                        if enis and all(len(e["Groups"]) == 1 and e["Groups"][0]["GroupId"] in empty for e in enis) and protected:
                            ok.append(i["InstanceId"])
                print(json.dumps({"isolated": ok, "groups": [{"id": g["GroupId"], "rules": len(g["IpPermissions"]) + len(g["IpPermissionsEgress"])} for g in groups]}))
                """, moto)
        let result = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        if let groups = result?["groups"] as? [[String: Any]], groups.count != 1 { print("quarantine groups on moto: \(groups)") }
        return result?["isolated"] as? [String] ?? []
    }

    /// Each incident's steps as `cordon incidents` shows them, for a failure's message.
    static func steps(_ data: String) async throws -> String {
        let shown = try await CLI.run(["incidents", "--data-dir", data, "--output", "json"])
        let incidents = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [[String: Any]] ?? []
        return incidents.map { "\($0["key"] ?? "?"): \($0["status"] ?? "?") \(($0["steps"] as? [[String: Any]])?.map { "\($0["id"] ?? "")=\($0["status"] ?? "")" } ?? [])" }
            .joined(separator: "\n")
    }

    /// Containment first, as a team expecting an outbreak writes it: every incident's
    /// first step is the isolation, so they all prepare the quarantine group at once.
    static let playbook = """
        name: outbreak-isolate
        version: 1
        description: Isolate every instance GuardDuty reports, before anything else.
        trigger: {source: [aws.guardduty], detail: {resource: {resourceType: [Instance]}}}
        incident: {key: "{{ detail.resource.instanceDetails.instanceId }}"}
        steps:
          - id: isolate
            action: aws.ec2.isolate_instance
            with: {instance_id: "{{ detail.resource.instanceDetails.instanceId }}", isolation_group: cordon-quarantine}
            retry: {attempts: 5, backoff: 2s, max_backoff: 60s}
            timeout: 60s
        """

    struct Setup {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cordon-outbreak-\(UUID().uuidString)")
        var queue: URL { root.appendingPathComponent("queue") }
        var data: String { root.appendingPathComponent("data").path }
        var playbooks: String { root.appendingPathComponent("Playbooks").path }

        init() throws {
            try FileManager.default.createDirectory(at: root.appendingPathComponent("queue/incoming"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: playbooks, withIntermediateDirectories: true)
            try OutbreakCLITests.playbook.write(toFile: playbooks + "/outbreak.yaml", atomically: true, encoding: .utf8)
        }

        /// One GuardDuty finding (the shipped high-severity fixture) per instance.
        func drop(_ ids: [String]) throws {
            let template = try String(
                contentsOf: CLI.packageRoot.appendingPathComponent("Fixtures/playbooks/guardduty-ec2-quarantine/fires-bitcoin-tool-staging-instance.json"),
                encoding: .utf8)
            for (n, id) in ids.enumerated() {
                let text = template.replacingOccurrences(of: "i-0b2c3d4e5f6a78901", with: id)
                    .replacingOccurrences(of: "c84641d40d3ccde4f57c9d02d7a45c2c", with: String(format: "c84641d40d3ccde4f57c9d02d7a4%04d", n))
                    .replacingOccurrences(of: "f78fdcbc-a64b-551f-b979-304e48fb57af", with: String(format: "f78fdcbc-a64b-551f-b979-304e48fb%04d", n))
                let tmp = queue.appendingPathComponent(".\(id).tmp")
                try text.write(to: tmp, atomically: true, encoding: .utf8)
                try FileManager.default.moveItem(at: tmp, to: queue.appendingPathComponent("incoming/\(id).json"))
            }
        }

        func start(_ moto: PythonServer) throws -> Process {
            let p = Process()
            p.executableURL = CLI.executable
            p.currentDirectoryURL = CLI.packageRoot
            p.arguments = ["run", "--queue-dir", queue.path, "--data-dir", data, "--playbooks", playbooks, "--cloud", "aws", "--concurrency", "40"]
            var env = ProcessInfo.processInfo.environment
            for (k, v) in DrillCLITests.environment(moto) {
                if v.isEmpty { env.removeValue(forKey: k) } else { env[k] = v }
            }
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            // Appended to by each runner in turn.
            let log = root.appendingPathComponent("stderr.log").path
            if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
            let handle = FileHandle(forWritingAtPath: log)
            handle?.seekToEndOfFile()
            p.standardError = handle ?? FileHandle.nullDevice
            try Spawn.run(p)
            return p
        }

        /// Incidents whose playbook has finished (read while a runner may be writing).
        func finished() async throws -> Int {
            guard FileManager.default.fileExists(atPath: data + "/journal.sqlite"), let journal = try? SQLiteJournal(directory: DataDirectory(data), readOnly: true),
                let index = try? await IncidentIndex.load(from: journal)
            else { return 0 }
            return index.incidents.values.filter { ["completed", "failed"].contains($0.status) }.count
        }

        func waitForFinished(_ n: Int, seconds: Double) async throws {
            let deadline = Date().addingTimeInterval(seconds)
            while try await finished() < n && Date() < deadline { try await Task.sleep(for: .milliseconds(250)) }
        }

        var stderr: String { (try? String(contentsOfFile: root.appendingPathComponent("stderr.log").path, encoding: .utf8)) ?? "" }
    }

    @Test func fortyConcurrentIsolationsInOneVPCAllHold() async throws {
        let moto = try await offPool { try Moto.dedicated("outbreak") }
        defer { moto.stop() }
        let ids = try await Self.seed(moto)
        #expect(ids.count == Self.count)
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        let runner = try s.start(moto)
        try s.drop(ids)
        try await s.waitForFinished(Self.count, seconds: 180)
        runner.terminate()
        await CLI.waitForExit(runner)
        let isolated = try await Self.isolated(ids, moto)
        let steps = try await Self.steps(s.data)
        #expect(isolated.count == Self.count, "\(isolated.count) of \(Self.count) isolated; not: \(Set(ids).subtracting(isolated).sorted())\n\(s.stderr)\n\(steps)")
        let shown = try await CLI.run(["incidents", "--data-dir", s.data, "--output", "json"])
        let incidents = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [[String: Any]] ?? []
        let isolateSteps = incidents.compactMap { ($0["steps"] as? [[String: Any]])?.first { $0["id"] as? String == "isolate" }?["status"] as? String }
        #expect(isolateSteps.count == Self.count && isolateSteps.allSatisfy { $0 == "succeeded" }, "\(isolateSteps)")
    }

    /// The same outbreak with the runner killed (`kill -9`) three times at random moments
    /// while the isolations run: after a last start, every instance is isolated.
    @Test func fortyIsolationsHoldThroughKillDashNine() async throws {
        let moto = try await offPool { try Moto.dedicated("outbreak-kill") }
        defer { moto.stop() }
        let ids = try await Self.seed(moto)
        let s = try Setup()
        defer { try? FileManager.default.removeItem(at: s.root) }
        try s.drop(ids)
        var random = SystemRandomNumberGenerator()
        for _ in 0..<3 {
            let runner = try s.start(moto)
            try await Task.sleep(for: .milliseconds(Int64.random(in: 300...2_500, using: &random)))
            kill(runner.processIdentifier, SIGKILL)
            await CLI.waitForExit(runner)
        }
        let started = s.stderr.components(separatedBy: "cordon: running").count
        let last = try s.start(moto)
        // Up (a SIGTERM before its handlers are installed would kill it), then done.
        let up = Date().addingTimeInterval(60)
        while s.stderr.components(separatedBy: "cordon: running").count == started && Date() < up { try await Task.sleep(for: .milliseconds(50)) }
        try await s.waitForFinished(Self.count, seconds: 180)
        last.terminate()
        await CLI.waitForExit(last)
        #expect(last.terminationStatus == 0, "\(s.stderr)")
        let isolated = try await Self.isolated(ids, moto)
        let steps = try await Self.steps(s.data)
        #expect(isolated.count == Self.count, "\(isolated.count) of \(Self.count) isolated; not: \(Set(ids).subtracting(isolated).sorted())\n\(s.stderr)\n\(steps)")
        let verify = try await CLI.run(["journal", "verify", "--data-dir", s.data])
        #expect(verify.status == 0, "\(verify.stdout)\n\(s.stderr)")
    }
}
