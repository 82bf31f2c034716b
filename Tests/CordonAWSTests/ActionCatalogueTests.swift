import CordonCore
import CordonEngine
import Foundation
import XCTest

@testable import CordonAWS
@testable import CordonCloud
@testable import CordonSimulatedCloud

final class ActionCatalogueTests: XCTestCase {
    let us = CloudScope(account: "123456789012", region: "us-east-1")

    func run(_ action: any Action, _ request: ActionRequest) async throws(ActionError) -> ActionOutcome { try await action.run(request) }

    func testEveryCatalogueActionIsImplementedAndReversibilityAgrees() throws {
        let actions = AWSActions.all(cloud: try Fixture.cloud(), defaultRegion: "us-east-1")
        let specs = AWSActions.specs
        XCTAssertEqual(Set(actions.keys), Set(specs.map(\.name)))
        for spec in specs {
            let action = try XCTUnwrap(actions[spec.name], spec.name)
            XCTAssertEqual(action.reversible, spec.reversible, spec.name)
            XCTAssertEqual(action is any ReversibleAction, spec.reversible, spec.name)
        }
        XCTAssertFalse(actions["aws.sns.publish"]!.checkable, "SNS messages cannot be read back")
    }

    func testBlockPublicAccess() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.s3.block_public_access"]!
        let snapshotBefore = cloud.snapshot()
        for bucket in ["exports", "bare"] {
            let request = Fixture.request("aws.s3.block_public_access", ["bucket": .string(bucket)])
            let notYet = try await action.check(request)
            XCTAssertNil(notYet)
            let outcome = try await run(action, request)
            XCTAssertFalse(outcome.alreadyDone)
            let block = try await cloud.s3(us).publicAccessBlock(bucket: bucket)
            XCTAssertEqual(block, .allBlocked)
            XCTAssertEqual(outcome.outputs["previous"]?["blockPublicAcls"], bucket == "exports" ? true : nil)
            let again = try await run(action, request)
            XCTAssertTrue(again.alreadyDone)
            let checked = try await action.check(request)
            XCTAssertEqual(checked?.alreadyDone, true)
            _ = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
            let twice = try await action.rollback(request, preState: try XCTUnwrap(outcome.preState))
            XCTAssertTrue(twice.alreadyDone)
        }
        XCTAssertEqual(cloud.snapshot(), snapshotBefore, "the previous configuration is back, and the bucket without one has none again")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["bucket": "nope"])), code: "NoSuchBucket", retryable: false)
        cloud.inject(.accessDenied("s3:PutBucketPublicAccessBlock"))
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["bucket": "exports"])), code: "AccessDenied", contains: "s3:PutBucketPublicAccessBlock")
    }

    func testStartLogging() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.cloudtrail.start_logging"]!
        XCTAssertFalse(action.reversible)
        let arn = "arn:aws:cloudtrail:us-east-1:123456789012:trail/main"
        // The ARN gives the region, whatever the finding says.
        let request = Fixture.request("aws.cloudtrail.start_logging", ["trail": .string(arn)], region: "eu-west-1")
        let notYet = try await action.check(request)
        XCTAssertNil(notYet)
        let outcome = try await run(action, request)
        XCTAssertEqual(outcome.outputs["was_logging"], false)
        XCTAssertFalse(outcome.alreadyDone)
        let logging = try await cloud.cloudTrail(us).isLogging(trail: "main")
        XCTAssertTrue(logging)
        let again = try await run(action, request)
        XCTAssertTrue(again.alreadyDone)
        XCTAssertEqual(again.outputs["was_logging"], true)
        let checked = try await action.check(request)
        XCTAssertEqual(checked?.alreadyDone, true)
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["trail": "deleted-trail"])), code: "TrailNotFoundException", retryable: false)
    }

    func testSNSPublish() async throws {
        let cloud = try Fixture.cloud()
        let action = Fixture.actions(cloud)["aws.sns.publish"]!
        let topic = "arn:aws:sns:us-east-1:123456789012:alerts"
        // The topic's region wins over the finding's.
        let outcome = try await run(action, Fixture.request("aws.sns.publish", ["topic_arn": .string(topic), "subject": "Cordon isolated i-1", "message": "body"], region: "eu-west-1"))
        let id = try XCTUnwrap(outcome.outputs["message_id"]?.stringValue)
        XCTAssertEqual(cloud.messages(topicArn: topic).map(\.messageId), [id])
        XCTAssertEqual(cloud.messages(topicArn: topic).first?.subject, "Cordon isolated i-1")
        await XCTAssertThrowsActionError(
            try await action.run(Fixture.request("x", ["topic_arn": .string(topic), "subject": .string(String(repeating: "x", count: 101)), "message": "m"])), code: "InvalidInput",
            retryable: false, contains: "at most 100")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["topic_arn": .string(topic), "subject": "two\nlines", "message": "m"])), code: "InvalidInput")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["topic_arn": "not-an-arn", "message": "m"])), code: "InvalidInput")
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["topic_arn": "arn:aws:sns:us-east-1:123456789012:gone", "message": "m"])), code: "NotFound")
        cloud.inject(.throttle("sns:Publish", times: 1))
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["topic_arn": .string(topic), "message": "m"])), code: "Throttling", retryable: true)
        _ = try await run(action, Fixture.request("x", ["topic_arn": .string(topic), "message": "m"]))
        XCTAssertEqual(cloud.messages(topicArn: topic).count, 2)
        cloud.inject(.accessDenied("sns:Publish"))
        await XCTAssertThrowsActionError(try await action.run(Fixture.request("x", ["topic_arn": .string(topic), "message": "m"])), code: "AccessDenied", retryable: false, contains: "sns:Publish")
    }

    /// The same steps on two clouds from the same inventory give the same state and outputs.
    func testSameRunSameResult() async throws {
        func play() async throws -> (JSONValue, [JSONObject]) {
            let clock = VirtualClock()
            let cloud = try Fixture.cloud(clock: clock)
            let actions = Fixture.actions(cloud, clock: clock)
            var outputs: [JSONObject] = []
            for (name, inputs) in [
                ("aws.ec2.snapshot_volumes", ["instance_id": "i-0aaa0000000000001"]),
                ("aws.ec2.isolate_instance", ["instance_id": "i-0aaa0000000000001"]),
                ("aws.iam.revoke_role_sessions", ["role_name": "web-role"]),
                ("aws.sns.publish", ["topic_arn": "arn:aws:sns:us-east-1:123456789012:alerts", "message": "done"]),
            ] as [(String, JSONObject)] {
                outputs.append(try await actions[name]!.run(Fixture.request(name, inputs)).outputs)
                clock.advance(1)
            }
            return (cloud.snapshot(), outputs)
        }
        let a = try await play()
        let b = try await play()
        XCTAssertEqual(JSONWriter.string(a.0), JSONWriter.string(b.0))
        XCTAssertEqual(a.1, b.1)
    }
}
