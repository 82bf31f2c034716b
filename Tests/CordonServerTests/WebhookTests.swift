import AsyncHTTPClient
import CordonCore
import CordonServer
import Foundation
import NIOCore
import Testing

@Suite("HTTP intake") struct WebhookTests {
    @Test("an authenticated finding is journaled, then 202 with its id, then handled")
    func accepted() async throws {
        let h = try await ServerHarness()
        let body = findingJSON(id: "f-accept")
        let (status, text) = try await h.post("/v1/findings", Array(body.utf8), headers: [("X-Cordon-Api-Key", ServerHarness.apiKey)])
        #expect(status == 202, "\(text)")
        #expect(text.contains("\"f-accept\""))
        // Durable before the answer: the record is in the file now.
        #expect(try h.count(RecordKind.findingReceived) == 1)
        #expect(await h.eventually { h.action.count == 1 })
        // Bearer, the configured EventBridge header, and a signature work too.
        for (i, headers) in [
            [("Authorization", "Bearer \(ServerHarness.apiKey)")], [("X-EventBridge-Key", ServerHarness.apiKey)],
            h.signed(findingJSON(id: "f-accept-3")),
        ].enumerated() {
            let (s, t) = try await h.post("/v1/findings", Array(findingJSON(id: "f-accept-\(i + 1)").utf8), headers: headers)
            #expect(s == 202, "\(t)")
        }
        #expect(try h.count(RecordKind.findingReceived) == 4)
        // The same delivery again is a duplicate: journaled as such, not run again.
        let (again, againText) = try await h.post("/v1/findings", Array(body.utf8), headers: [("X-Cordon-Api-Key", ServerHarness.apiKey)])
        #expect(again == 202)
        #expect(againText.contains("\"duplicates\":1"))
        #expect(await h.eventually { h.action.count == 4 })
        // The step's result is journaled just after the action returns: wait for it.
        var (ms, metrics) = try await h.get("/metrics")
        for _ in 0..<100 where !metrics.contains(#"outcome="succeeded"} 4"#) {
            try await Task.sleep(for: .milliseconds(50))
            (ms, metrics) = try await h.get("/metrics")
        }
        #expect(ms == 200)
        #expect(metrics.contains(#"cordon_findings_received_total{source="http",outcome="accepted"} 4"#), "\(metrics)")
        #expect(metrics.contains(#"cordon_findings_received_total{source="http",outcome="duplicate"} 1"#))
        #expect(metrics.contains(#"cordon_playbook_matches_total{playbook="demo"} 4"#))
        #expect(metrics.contains(#"cordon_steps_total{action="test.count",outcome="succeeded"} 4"#))
        #expect(metrics.contains("cordon_step_duration_seconds_count{action=\"test.count\"} 4"))
        #expect(metrics.contains("cordon_journal_append_seconds_count"))
        #expect(metrics.contains("cordon_approvals_pending 0.0\n"))
        #expect(try await h.get("/healthz").0 == 200)
        #expect(try await h.get("/readyz").0 == 200)
        await h.stop()
    }

    @Test("401, 413 and 400 journal nothing and say why")
    func rejects() async throws {
        let h = try await ServerHarness()
        let body = Array(findingJSON(id: "f-reject").utf8)
        let cases: [(String, [UInt8], [(String, String)], Int, String)] = [
            ("no credentials", body, [], 401, "missing credentials"),
            ("bad key", body, [("X-Cordon-Api-Key", "wrong")], 401, "invalid API key"),
            ("bad bearer", body, [("Authorization", "Bearer nope")], 401, "invalid API key"),
            ("bad signature", body, [("Cordon-Signature", "t=\(Int(Date().timeIntervalSince1970)),v1=" + String(repeating: "ab", count: 32))], 401, "bad signature"),
            ("signature of another body", body, h.signed(findingJSON(id: "other")), 401, "bad signature"),
            ("replayed", body, h.signed(findingJSON(id: "f-reject"), time: Date().addingTimeInterval(-600)), 401, "replay window"),
            ("from the future", body, h.signed(findingJSON(id: "f-reject"), time: Date().addingTimeInterval(600)), 401, "replay window"),
            ("no timestamp", body, [("Cordon-Signature", "v1=00")], 401, "t=UNIX-SECONDS"),
            ("too large", Array(repeating: UInt8(ascii: " "), count: 70_000) + body, [("X-Cordon-Api-Key", ServerHarness.apiKey)], 413, "larger than the limit"),
            ("not JSON", Array("{\"id\": oops}".utf8), [("X-Cordon-Api-Key", ServerHarness.apiKey)], 400, "malformed input"),
            ("not a finding", Array("{\"hello\": 1}".utf8), [("X-Cordon-Api-Key", ServerHarness.apiKey)], 400, "malformed input"),
            ("one bad line of two", Array((findingJSON(id: "f-good") + "\n{\"broken\n").utf8), [("X-Cordon-Api-Key", ServerHarness.apiKey)], 400, #""line":2"#),
            ("empty", [], [("X-Cordon-Api-Key", ServerHarness.apiKey)], 400, "malformed input"),
        ]
        for (name, payload, headers, expected, message) in cases {
            let (status, text) = try await h.post("/v1/findings", payload, headers: headers)
            #expect(status == expected, "\(name): \(status) \(text)")
            #expect(text.contains(message), "\(name): \(text)")
        }
        // A chunked body over the limit (no Content-Length) is cut off too.
        var request = HTTPClientRequest(url: h.base + "/v1/findings")
        request.method = .POST
        request.headers.add(name: "X-Cordon-Api-Key", value: ServerHarness.apiKey)
        let chunks = (0..<20).map { _ in ByteBuffer(repeating: UInt8(ascii: " "), count: 8192) }
        request.body = .stream(chunks.async, length: .unknown)
        if let response = try? await h.client.execute(request, timeout: .seconds(10)) {
            #expect(response.status.code == 413)
        }
        #expect(try h.count() == 0)
        let (_, metrics) = try await h.get("/metrics")
        #expect(metrics.contains(#"outcome="unauthorized""#))
        #expect(metrics.contains(#"outcome="too_large""#))
        #expect(metrics.contains(#"outcome="malformed""#))
        await h.stop()
    }

    @Test("a burst of concurrent signed requests: every finding journaled exactly once, in few commits")
    func burst() async throws {
        let h = try await ServerHarness()
        let n = 300
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<n {
                group.addTask {
                    let body = findingJSON(id: "burst-\(i)")
                    // 300 requests share the client's few connections: the last waits for
                    // the others, longer than one request's usual bound on a loaded machine
                    // (this test counts what is journaled; latency has its benchmark).
                    return try await h.post("/v1/findings", Array(body.utf8), headers: h.signed(body), timeout: .seconds(180)).0
                }
            }
            var all: [Int] = []
            for try await s in group { all.append(s) }
            return all
        }
        #expect(statuses.count == n)
        #expect(statuses.allSatisfy { $0 == 202 })
        #expect(try h.count(RecordKind.findingReceived) == n)
        #expect(try h.count(RecordKind.findingDuplicate) == 0)
        #expect(await h.eventually { h.action.count == n })
        #expect(Set(h.action.effects.withLock { $0 }).count == n)
        await h.stop()
    }

    @Test("a client sending its body slowly does not hold up the others")
    func slowBody() async throws {
        let h = try await ServerHarness()
        let body = Array(findingJSON(id: "slow").utf8)
        let (stream, feed) = AsyncStream.makeStream(of: ByteBuffer.self)
        var request = HTTPClientRequest(url: h.base + "/v1/findings")
        request.method = .POST
        request.headers.add(name: "X-Cordon-Api-Key", value: ServerHarness.apiKey)
        request.body = .stream(stream, length: .known(Int64(body.count)))
        let slow = Task { try await h.client.execute(request, timeout: .seconds(30)).status.code }
        feed.yield(ByteBuffer(bytes: body[0..<10]))
        try await Task.sleep(for: .milliseconds(200))
        // The others are answered while the slow body is still incomplete (bounded
        // generously: the suite shares two cores with other tests).
        let started = ContinuousClock.now
        for i in 0..<20 {
            let b = findingJSON(id: "fast-\(i)")
            #expect(try await h.post("/v1/findings", Array(b.utf8), headers: [("X-Cordon-Api-Key", ServerHarness.apiKey)]).0 == 202)
        }
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(try h.count(RecordKind.findingReceived) == 20)
        #expect(!slow.isCancelled)
        feed.yield(ByteBuffer(bytes: body[10...]))
        feed.finish()
        #expect(try await slow.value == 202)
        #expect(try h.count(RecordKind.findingReceived) == 21)
        await h.stop()
    }

    @Test("an exact replay of a signed request within the window is refused with 401 and journals nothing")
    func replay() async throws {
        let h = try await ServerHarness()
        let body = findingJSON(id: "f-replay")
        let signedAt = Date()
        let headers = h.signed(body, time: signedAt)
        var (status, text) = try await h.post("/v1/findings", Array(body.utf8), headers: headers)
        #expect(status == 202, "\(text)")
        (status, text) = try await h.post("/v1/findings", Array(body.utf8), headers: headers)
        #expect(status == 401, "\(text)")
        #expect(text.contains("replayed request"), "\(text)")
        #expect(try h.count(RecordKind.findingReceived) == 1)
        #expect(try h.count(RecordKind.findingDuplicate) == 0)
        // Signed anew (another t), the same finding is taken — and recorded as a duplicate.
        (status, text) = try await h.post("/v1/findings", Array(body.utf8), headers: h.signed(body, time: signedAt.addingTimeInterval(-5)))
        #expect(status == 202, "\(text)")
        #expect(text.contains("\"duplicates\":1"))
        // A signed request that journaled nothing may be sent again (and is refused again for what it is).
        let bad = #"{"hello": 1}"#
        let badHeaders = h.signed(bad)
        for _ in 0..<2 {
            (status, text) = try await h.post("/v1/findings", Array(bad.utf8), headers: badHeaders)
            #expect(status == 400, "\(text)")
        }
        // Identical requests racing: exactly one is taken.
        let raced = findingJSON(id: "f-race")
        let racedHeaders = h.signed(raced)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<10 { group.addTask { try await h.post("/v1/findings", Array(raced.utf8), headers: racedHeaders).0 } }
            var all: [Int] = []
            for try await s in group { all.append(s) }
            return all
        }
        #expect(statuses.sorted() == [202] + Array(repeating: 401, count: 9), "\(statuses)")
        #expect(try h.count(RecordKind.findingReceived) == 2)
        #expect(try h.count(RecordKind.findingDuplicate) == 1)
        await h.stop()
    }

    @Test("the replay cache forgets signatures outside the window and stays within its capacity, refusing what it can no longer vouch for")
    func replayCacheBounds() {
        let cache = ReplayCache(capacity: 3)
        func entry(_ t: Int64, _ mac: UInt8) -> ReplayCache.Entry { ReplayCache.Entry(time: t, mac: [mac]) }
        #expect(cache.insert(entry(100, 1), now: 100, window: 10) == .fresh)
        #expect(cache.insert(entry(100, 1), now: 100, window: 10) == .replayed)
        #expect(cache.insert(entry(100, 2), now: 100, window: 10) == .fresh)
        #expect(cache.insert(entry(102, 3), now: 101, window: 10) == .fresh)
        #expect(cache.count == 3)
        // Full: the oldest second goes, and signatures from it or before are refused.
        #expect(cache.insert(entry(103, 4), now: 103, window: 10) == .fresh)
        #expect(cache.count == 2)
        #expect(cache.insert(entry(100, 1), now: 103, window: 10) == .olderThanRemembered(100))
        #expect(cache.insert(entry(99, 9), now: 103, window: 10) == .olderThanRemembered(100))
        #expect(cache.insert(entry(102, 3), now: 103, window: 10) == .replayed)
        #expect(cache.insert(entry(101, 5), now: 103, window: 10) == .fresh)
        // Past the window, everything is forgotten (the timestamp check refuses those).
        #expect(cache.insert(entry(200, 6), now: 200, window: 10) == .fresh)
        #expect(cache.count == 1)
        // A released entry may be accepted again.
        cache.remove(entry(200, 6))
        #expect(cache.count == 0)
        #expect(cache.insert(entry(200, 6), now: 200, window: 10) == .fresh)
    }

    @Test("oversized bodies and stalled clients do not hold up the others, and none of them reaches the journal")
    func abusiveClients() async throws {
        let h = try await ServerHarness()
        // A client of our own, with room for every connection at once (the shared one has 8 per host).
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: HTTPClient.Configuration(connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)))
        func request(_ headers: [(String, String)]) -> HTTPClientRequest {
            var r = HTTPClientRequest(url: h.base + "/v1/findings")
            r.method = .POST
            for (k, v) in headers { r.headers.add(name: k, value: v) }
            return r
        }
        let key = [("X-Cordon-Api-Key", ServerHarness.apiKey)]
        // 8 clients announce a body and send 10 bytes of it (unauthenticated: when they
        // finally finish, 401).
        var feeds: [AsyncStream<ByteBuffer>.Continuation] = []
        var stalled: [Task<UInt, any Error>] = []
        let stalledBody = Array(findingJSON(id: "stalled").utf8)
        for _ in 0..<8 {
            let (stream, feed) = AsyncStream.makeStream(of: ByteBuffer.self)
            var r = request([("X-Cordon-Api-Key", "wrong")])
            r.body = .stream(stream, length: .known(Int64(stalledBody.count)))
            feed.yield(ByteBuffer(bytes: stalledBody[0..<10]))
            feeds.append(feed)
            let req = r
            stalled.append(Task { try await client.execute(req, timeout: .seconds(60)).status.code })
        }
        // 4 clients stream 2 MiB without a length, 4 announce 100 MiB: 413 (or the
        // connection is closed on them mid-upload).
        var oversized: [Task<UInt, any Error>] = []
        for i in 0..<8 {
            var r = request(key)
            if i < 4 {
                r.body = .stream(Spaces(chunks: 256), length: .unknown)
            } else {
                r.body = .stream(Spaces(chunks: 12_800), length: .known(Int64(100 << 20)))
            }
            let req = r
            oversized.append(Task { try await client.execute(req, timeout: .seconds(60)).status.code })
        }
        try await Task.sleep(for: .milliseconds(300))
        // Meanwhile, everyone else is answered.
        let started = ContinuousClock.now
        let good = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<30 {
                group.addTask {
                    var r = request(key)
                    r.body = .bytes(ByteBuffer(string: findingJSON(id: "good-\(i)")))
                    return Int(try await client.execute(r, timeout: .seconds(30)).status.code)
                }
            }
            var all: [Int] = []
            for try await s in group { all.append(s) }
            return all
        }
        #expect(good == Array(repeating: 202, count: 30))
        #expect(ContinuousClock.now - started < .seconds(20))
        for task in oversized {
            if let code = try? await task.value { #expect(code == 413) }
        }
        #expect(stalled.allSatisfy { !$0.isCancelled })
        for feed in feeds {
            feed.yield(ByteBuffer(bytes: stalledBody[10...]))
            feed.finish()
        }
        for task in stalled { #expect(try await task.value == 401) }
        #expect(try h.count(RecordKind.findingReceived) == 30)
        #expect(try h.count(RecordKind.findingDuplicate) == 0)
        try await client.shutdown()
        await h.stop()
    }
}

/// `chunks` × 8 KiB of spaces, made as they are sent.
struct Spaces: AsyncSequence, Sendable {
    let chunks: Int
    struct AsyncIterator: AsyncIteratorProtocol {
        var left: Int
        mutating func next() async -> ByteBuffer? {
            guard left > 0 else { return nil }
            left -= 1
            return ByteBuffer(repeating: UInt8(ascii: " "), count: 8192)
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(left: chunks) }
}

/// Signature headers built to overflow the server's arithmetic.
@Suite struct HostileSignatureTests {
    @Test(arguments: ["-9223372036854775808", "9223372036854775807"])
    func anExtremeTimestampIsRejectedNotACrash(_ t: String) {
        let authenticator = RequestAuthenticator(hmacSecrets: ["secret"])
        let result = authenticator.authenticate(header: { $0.lowercased() == "cordon-signature" ? "t=\(t),v1=00" : nil }, body: Array("{}".utf8))
        guard case .failure(let rejection) = result else {
            Issue.record("accepted")
            return
        }
        #expect(rejection.message.contains("replay window"), "\(rejection.message)")
    }
}
