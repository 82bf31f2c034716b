import CordonCore
import CordonEngine
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

final class ActionIAMTests: XCTestCase {
    let us = CloudScope(account: "123456789012", region: "us-east-1")

    func run(_ action: any Action, _ request: ActionRequest) async throws(ActionError) -> ActionOutcome { try await action.run(request) }

    func testRevokeRoleSessionsWritesTheConsolePolicy() async throws {
        let clock = VirtualClock("2026-03-10T01:30:00.250Z")
        let cloud = try Fixture.cloud(clock: clock)
        let action = Fixture.actions(cloud, clock: clock)["aws.iam.revoke_role_sessions"]!
        let request = Fixture.request("aws.iam.revoke_role_sessions", ["role_name": "web-role"])
        let snapshotBefore = cloud.snapshot()
        let notYet = try await action.check(request)
        XCTAssertNil(notYet)
        let outcome = try await run(action, request)
        XCTAssertEqual(outcome.outputs["revoked_before"], "2026-03-10T01:30:00.250Z")
        let document = try await cloud.iam(us).inlinePolicy(.role("web-role"), name: "AWSRevokeOlderSessions")
        XCTAssertEqual(
            document,
            #"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-03-10T01:30:00.250Z"}}}]}"#)
        XCTAssertNil(outcome.preState?["previousDocument"], "there was no policy before")
        // Idempotent: a retry later finds the policy covering the incident.
        clock.advance(60)
        let again = try await run(action, request)
        XCTAssertTrue(again.alreadyDone)
        XCTAssertEqual(again.outputs["revoked_before"], "2026-03-10T01:30:00.250Z")
        let checked = try await action.check(request)
        XCTAssertEqual(checked?.alreadyDone, true)
        // Rollback deletes it; twice is harmless; the state is exactly as before.
        let back = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
        XCTAssertFalse(back.alreadyDone)
        let twice = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
        XCTAssertTrue(twice.alreadyDone)
        XCTAssertEqual(cloud.snapshot(), snapshotBefore)
    }

    func testRevokeRoleSessionsReplacesAnOlderRevocationAndRollsBackToIt() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.iam.revoke_role_sessions"]!
        let request = Fixture.request("aws.iam.revoke_role_sessions", ["role_name": "old-role"])
        let snapshotBefore = cloud.snapshot()
        let outcome = try await run(action, request)
        XCTAssertFalse(outcome.alreadyDone, "a revocation from 2025 does not cover an incident of 2026")
        XCTAssertEqual(outcome.outputs["revoked_before"], "2026-03-10T01:30:00.000Z")
        XCTAssertTrue(outcome.preState?["previousDocument"]?.stringValue?.contains("2025-01-01") ?? false)
        _ = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
        XCTAssertEqual(cloud.snapshot(), snapshotBefore)
    }

    func testRevokeRoleSessionsErrors() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.iam.revoke_role_sessions"]!
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["role_name": "ghost"])), code: "NoSuchEntity", retryable: false, contains: "The role with name ghost cannot be found.")
        cloud.inject(.accessDenied("iam:PutRolePolicy"))
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["role_name": "web-role"])), code: "AccessDenied", retryable: false, contains: "iam:PutRolePolicy")
        cloud.clearFaults()
        cloud.inject(.throttle("iam:*", times: 2))
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["role_name": "web-role"])), code: "Throttling", retryable: true)
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["role_name": "web-role"])), code: "Throttling", retryable: true)
        let ok = try await run(action, Fixture.request("x", ["role_name": "web-role"]))
        XCTAssertFalse(ok.alreadyDone)
    }

    func testRollbackRefusesToClobberALaterChange() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.iam.revoke_role_sessions"]!
        let request = Fixture.request("aws.iam.revoke_role_sessions", ["role_name": "web-role"])
        let outcome = try await run(action, request)
        try await cloud.iam(us).putInlinePolicy(.role("web-role"), name: "AWSRevokeOlderSessions", document: RevokeRoleSessionsAction.document(revokedBefore: "2026-03-11T00:00:00.000Z"))
        let pre = try XCTUnwrap(outcome.preState)
        await XCTAssertThrowsActionError(try await action.rollback(request, preState: pre), code: "ChangedSinceStep", retryable: false)
    }

    func testDeactivateAllKeysAndRollback() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.iam.deactivate_access_keys"]!
        let request = Fixture.request("aws.iam.deactivate_access_keys", ["user_name": "mallory"])
        let snapshotBefore = cloud.snapshot()
        let outcome = try await run(action, request)
        XCTAssertEqual(outcome.outputs["deactivated"], [["access_key_id": "AKIAEXAMPLEMALLORY01", "previous_status": "Active"]])
        XCTAssertEqual(outcome.outputs["already_inactive"], ["AKIAEXAMPLEMALLORY02"])
        let keys = try await cloud.iam(us).listAccessKeys(userName: "mallory")
        XCTAssertTrue(keys.allSatisfy { $0.status == "Inactive" })
        let again = try await run(action, request)
        XCTAssertTrue(again.alreadyDone)
        let checked = try await action.check(request)
        XCTAssertEqual(checked?.alreadyDone, true)
        let back = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
        XCTAssertEqual(back.outputs["restored"]?.arrayValue?.count, 1)
        let twice = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
        XCTAssertTrue(twice.alreadyDone)
        XCTAssertEqual(cloud.snapshot(), snapshotBefore, "the key that was already inactive stays inactive")
    }

    func testDeactivateOneKey() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.iam.deactivate_access_keys"]!
        let outcome = try await run(action, Fixture.request("aws.iam.deactivate_access_keys", ["user_name": "mallory", "access_key_id": "AKIAEXAMPLEMALLORY01"]))
        XCTAssertEqual(outcome.outputs["deactivated"]?.arrayValue?.count, 1)
        await XCTAssertThrowsActionError(
            try await action.run(Fixture.request("x", ["user_name": "mallory", "access_key_id": "ASIAEXAMPLETEMPORARY"])), code: "NoSuchEntity", retryable: false,
            contains: "ASIAEXAMPLETEMPORARY")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["user_name": "ghost"])), code: "NoSuchEntity", contains: "The user with name ghost cannot be found.")
    }

    func testAttachDenyAllToUserAndRole() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.iam.attach_deny_all"]!
        let snapshotBefore = cloud.snapshot()
        for inputs: JSONObject in [["user_name": "mallory"], ["role_name": "web-role"]] {
            let request = Fixture.request("aws.iam.attach_deny_all", inputs)
            let outcome = try await run(action, request)
            XCTAssertFalse(outcome.alreadyDone)
            let principal: Principal = inputs["user_name"] != nil ? .user("mallory") : .role("web-role")
            let document = try await cloud.iam(us).inlinePolicy(principal, name: "CordonDenyAll")
            XCTAssertEqual(document, AttachDenyAllAction.document)
            let again = try await run(action, request)
            XCTAssertTrue(again.alreadyDone)
            let checked = try await action.check(request)
            XCTAssertEqual(checked?.alreadyDone, true)
            _ = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
            let twice = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
            XCTAssertTrue(twice.alreadyDone)
        }
        XCTAssertEqual(cloud.snapshot(), snapshotBefore)
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["user_name": "a", "role_name": "b"])), code: "InvalidInput")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", [:])), code: "InvalidInput")
    }

    func testAttachDenyAllRestoresAPreviousDocumentOfTheSameName() async throws {
        let cloud = try Fixture.cloud()
        let old = #"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#
        try await cloud.iam(us).putInlinePolicy(.user("mallory"), name: "CordonDenyAll", document: old)
        let action = Fixture.actions(cloud)["aws.iam.attach_deny_all"]!
        let request = Fixture.request("aws.iam.attach_deny_all", ["user_name": "mallory"])
        let outcome = try await run(action, request)
        _ = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
        let restored = try await cloud.iam(us).inlinePolicy(.user("mallory"), name: "CordonDenyAll")
        XCTAssertEqual(restored, old)
    }

    func testDeleteLoginProfileIsNotReversible() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.iam.delete_login_profile"]!
        XCTAssertFalse(action.reversible)
        let request = Fixture.request("aws.iam.delete_login_profile", ["user_name": "mallory"])
        let notYet = try await action.check(request)
        XCTAssertNil(notYet)
        let outcome = try await run(action, request)
        XCTAssertEqual(outcome.outputs["deleted"], true)
        XCTAssertNil(outcome.preState)
        XCTAssertTrue(outcome.outputs["note"]?.stringValue?.contains("cannot be restored") ?? false)
        let profile = try await cloud.iam(us).loginProfile(userName: "mallory")
        XCTAssertNil(profile)
        let again = try await run(action, request)
        XCTAssertTrue(again.alreadyDone)
        let checked = try await action.check(request)
        XCTAssertEqual(checked?.alreadyDone, true)
        await XCTAssertThrowsActionError(try await action.rollback(request, preState: .null), code: "NotReversible")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["user_name": "ghost"])), code: "NoSuchEntity")
    }
}
