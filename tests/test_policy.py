"""Policy pack: every stack's mocked plan passes every rule; bad resources are each caught."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi_policy import (
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.policy import PolicyCustomTimeouts
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from dms_event_bus.settings.stackfile import stack_files
from policy import rules
from tests.fixture_stacks import STACKS_DIR
from tools.mockrun import Plan, run_stack

STREAM_ARN = (
    "arn:aws:dynamodb:eu-west-1:123456789012:table/dmsbus-t-orders/stream/2026-01-01T00:00:00.000"
)
DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:dmsbus-t-fanin-dlq"


def as_dicts(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "type": r.type,
            "name": r.name,
            "urn": r.urn,
            "props": r.inputs,
            "dependencies": r.dependencies,
        }
        for r in plan.resources
    ]


# --- (a) every stack of the repository -------------------------------------------------------


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return {stack: run_stack(stack, stack_dir=STACKS_DIR) for stack in stack_files(STACKS_DIR)}


@pytest.mark.parametrize("stack", sorted(stack_files(STACKS_DIR)))
def test_every_rule_passes_on_every_resource_of_the_stack(plans, stack):
    # GIVEN the resources the program declares for this stack file (mocked run)
    resources = as_dicts(plans[stack])
    # WHEN every resource rule checks every resource and every stack rule the whole stack
    violations = rules.check_all(resources)
    # THEN nothing is reported
    assert violations == [], "\n".join(violations)


def test_rules_see_the_kinds_of_resource_they_guard(plans):
    # The zero-violation test above is only worth something if rules meet their resources:
    # report which guarded kinds each stack declares (tables come first in the program).
    guarded = {t for rule in rules.RESOURCE_RULES for t in rule.types}
    guarded |= {*rules.S3_BUCKETS, *rules.S3_ENCRYPTION, rules.S3_PUBLIC_ACCESS_BLOCK}
    for stack, plan in plans.items():
        seen = {r.type for r in plan.resources} & guarded
        if plan.resources:
            assert seen, f"{stack}: none of the guarded resource kinds is declared"


# --- (b) deliberately bad resources ----------------------------------------------------------


def good_table() -> dict[str, Any]:
    return {
        "type": rules.DYNAMODB_TABLE,
        "name": "orders-table",
        "props": {
            "name": "dmsbus-t-orders",
            "streamEnabled": True,
            "streamViewType": "NEW_AND_OLD_IMAGES",
            "pointInTimeRecovery": {"enabled": True},
            "serverSideEncryption": {"enabled": True},
        },
    }


def good_mapping() -> dict[str, Any]:
    return {
        "type": rules.EVENT_SOURCE_MAPPING,
        "name": "fanin-orders",
        "props": {
            "eventSourceArn": STREAM_ARN,
            "startingPosition": "TRIM_HORIZON",
            "bisectBatchOnFunctionError": True,
            "maximumRetryAttempts": 5,
            "functionResponseTypes": ["ReportBatchItemFailures"],
            "destinationConfig": {"onFailure": {"destinationArn": DLQ_ARN}},
        },
    }


def with_props(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    props = dict(resource["props"])
    for key, value in changes.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    return {**resource, "props": props}


def test_compliant_resources_pass():
    good = [
        good_table(),
        good_mapping(),
        {
            "type": rules.KINESIS_STREAM,
            "props": {"encryptionType": "KMS", "kmsKeyId": "alias/aws/kinesis"},
        },
        {"type": rules.SQS_QUEUE, "props": {"sqsManagedSseEnabled": True}},
        {"type": rules.SQS_QUEUE, "props": {"kmsMasterKeyId": "alias/aws/sqs"}},
        {"type": rules.DMS_INSTANCE, "props": {"publiclyAccessible": False}},
        {"type": rules.DMS_ENDPOINT, "props": {"endpointType": "source", "sslMode": "require"}},
        {"type": rules.DMS_ENDPOINT, "props": {"endpointType": "target", "engineName": "dynamodb"}},
        # SQS as an event source has no starting position: the stream rule does not apply.
        {"type": rules.EVENT_SOURCE_MAPPING, "props": {"eventSourceArn": DLQ_ARN}},
    ]
    assert rules.check_all(good) == []


def test_snake_case_props_are_read_too():
    table = {
        "type": rules.DYNAMODB_TABLE,
        "props": {
            "stream_enabled": True,
            "stream_view_type": "NEW_AND_OLD_IMAGES",
            "point_in_time_recovery": [{"enabled": True}],
            "server_side_encryption": {"enabled": True},
        },
    }
    assert rules.TABLE_STREAMS.validate(table) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"streamEnabled": None}, "expected streamEnabled true, found None"),
        (
            {"streamViewType": "NEW_IMAGE"},
            "expected streamViewType 'NEW_AND_OLD_IMAGES', found 'NEW_IMAGE'",
        ),
        ({"pointInTimeRecovery": {"enabled": False}}, "pointInTimeRecovery.enabled"),
        ({"serverSideEncryption": None}, "serverSideEncryption.enabled"),
    ],
)
def test_table_rule_fires(changes, expected):
    # GIVEN a table missing one protection
    bad = with_props(good_table(), **changes)
    # WHEN the table rule checks it
    messages = rules.TABLE_STREAMS.validate(bad)
    # THEN exactly that problem is reported, naming the resource
    assert len(messages) == 1, messages
    assert expected in messages[0]
    assert "'orders-table'" in messages[0]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"bisectBatchOnFunctionError": False}, "expected bisectBatchOnFunctionError true"),
        (
            {"maximumRetryAttempts": -1},
            "expected bounded maximumRetryAttempts (0..10000), found -1",
        ),
        (
            {"maximumRetryAttempts": None},
            "expected bounded maximumRetryAttempts (0..10000), found None",
        ),
        ({"functionResponseTypes": None}, "'ReportBatchItemFailures'"),
        ({"destinationConfig": None}, "expected destinationConfig.onFailure.destinationArn"),
        ({"destinationConfig": {"onFailure": {}}}, "destinationArn (the DLQ), found none"),
    ],
)
def test_stream_mapping_rule_fires(changes, expected):
    bad = with_props(good_mapping(), **changes)
    messages = rules.STREAM_MAPPING_SAFE.validate(bad)
    assert len(messages) == 1, messages
    assert expected in messages[0]


def test_stream_mapping_rule_recognises_a_stream_source_by_its_arn():
    # GIVEN a DynamoDB stream mapping without a starting position and without any safeguard
    bad = {"type": rules.EVENT_SOURCE_MAPPING, "props": {"eventSourceArn": STREAM_ARN}}
    # THEN all four safeguards are reported
    assert len(rules.STREAM_MAPPING_SAFE.validate(bad)) == 4


@pytest.mark.parametrize(
    ("rule", "resource", "expected"),
    [
        (
            rules.KINESIS_ENCRYPTED,
            {"type": rules.KINESIS_STREAM, "name": "bus", "props": {"encryptionType": "NONE"}},
            "expected encryptionType 'KMS', found 'NONE'",
        ),
        (
            rules.SQS_ENCRYPTED,
            {"type": rules.SQS_QUEUE, "name": "dlq", "props": {"sqsManagedSseEnabled": False}},
            "expected server-side encryption, found none",
        ),
        (
            rules.DMS_INSTANCE_PRIVATE,
            {"type": rules.DMS_INSTANCE, "name": "dms", "props": {}},
            "expected publiclyAccessible false, found None",
        ),
        (
            rules.DMS_INSTANCE_PRIVATE,
            {"type": rules.DMS_INSTANCE, "name": "dms", "props": {"publiclyAccessible": True}},
            "expected publiclyAccessible false, found True",
        ),
        (
            rules.DMS_SOURCE_SSL,
            {
                "type": rules.DMS_ENDPOINT,
                "name": "src",
                "props": {"endpointType": "source", "sslMode": "none"},
            },
            "expected sslMode one of require, verify-ca, verify-full on the source endpoint, "
            "found 'none'",
        ),
        (
            rules.DMS_SOURCE_SSL,
            {"type": rules.DMS_ENDPOINT, "name": "src", "props": {"endpointType": "source"}},
            "found None",
        ),
    ],
)
def test_encryption_and_network_rules_fire(rule, resource, expected):
    messages = rule.validate(resource)
    assert messages, f"{rule.name} did not fire"
    assert any(expected in m for m in messages), messages
    assert f"'{resource['name']}'" in messages[0]


def topic(**props: Any) -> dict[str, Any]:
    return {"type": rules.SNS_TOPIC, "name": "alarms-topic", "props": props}


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({}, "expected kmsMasterKeyId (a customer-managed KMS key), found none"),
        ({"kmsMasterKeyId": ""}, "found none"),
        ({"kmsMasterKeyId": "alias/aws/sns"}, "found 'alias/aws/sns': CloudWatch alarms"),
        (
            {"kms_master_key_id": "arn:aws:kms:eu-west-1:123456789012:alias/aws/sns"},
            "cannot publish to a topic encrypted with the AWS-managed key",
        ),
    ],
)
def test_sns_rule_fires_without_a_customer_managed_key(props, expected):
    messages = rules.SNS_CUSTOMER_KEY.validate(topic(**props))
    assert len(messages) == 1, messages
    assert expected in messages[0]
    assert messages[0].startswith("aws:sns/topic:Topic 'alarms-topic': ")


def test_sns_rule_passes_a_customer_key_and_a_key_not_known_before_the_update():
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert rules.SNS_CUSTOMER_KEY.validate(topic(kmsMasterKeyId=key)) == []
    assert rules.SNS_CUSTOMER_KEY.validate(topic(kmsMasterKeyId="alias/dmsbus-dev-alarms")) == []
    # during a preview, the ARN of a key created in the same update is unknown: it cannot be
    # the AWS-managed alias, so the rule passes (CrossGuard raises on reading unknowns)
    preview = unknown_checking_proxy({"kmsMasterKeyId": UNKNOWN_STRING_VALUE, "name": "t"})
    assert rules.SNS_CUSTOMER_KEY.validate(
        {"type": rules.SNS_TOPIC, "name": "t", "props": preview}
    ) == []


def test_kinesis_rule_wants_a_key_too():
    messages = rules.KINESIS_ENCRYPTED.validate(
        {"type": rules.KINESIS_STREAM, "props": {"encryptionType": "KMS"}}
    )
    assert messages == [
        f"{rules.KINESIS_STREAM}: expected kmsKeyId, found none "
        "(a customer key ARN, or 'alias/aws/kinesis')"
    ]


def doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.mark.parametrize(
    "action",
    [
        "dynamodb:*",
        "dynamodb:GetRecords",
        "kinesis:PutRecords",
        "kinesis:Put*",
        "s3:GetObject",
        "s3:PutObject",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
        "*",
        "ec2:*",
    ],
)
@pytest.mark.parametrize(
    "shape",
    [
        rules.IAM_POLICY,
        "aws:iam/rolePolicy:RolePolicy",
        rules.IAM_ROLE,
    ],
)
def test_iam_rule_fires_on_data_actions_on_any_resource(action, shape):
    # GIVEN a statement granting a data action on Resource "*"
    statement = {"Sid": "Wide", "Effect": "Allow", "Action": [action], "Resource": "*"}
    if shape == rules.IAM_ROLE:
        props: dict[str, Any] = {"inlinePolicies": [{"name": "fanin", "policy": doc(statement)}]}
    else:
        props = {"policy": doc(statement)}
    # WHEN the IAM rule checks it
    messages = rules.IAM_NO_DATA_ON_ANY.validate(
        {"type": shape, "name": "fanin-role", "props": props}
    )
    # THEN it names the statement and the action
    assert len(messages) == 1, messages
    assert f"statement Wide grants {action} on Resource '*'" in messages[0]


def test_iam_rule_allows_scoped_data_actions_and_describe_on_any():
    good = doc(
        {
            "Effect": "Allow",
            "Action": ["kinesis:PutRecords", "kinesis:PutRecord"],
            "Resource": "arn:aws:kinesis:eu-west-1:123456789012:stream/dmsbus-t-bus",
        },
        {
            "Effect": "Allow",
            "Action": ["dynamodb:ListStreams", "ec2:DescribeSubnets"],
            "Resource": "*",
        },
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": ["*"]},
        {"Effect": "Deny", "Action": "*", "Resource": "*"},
    )
    # a policy document given as an object (pulumi-aws accepts both) is read too
    as_object = json.loads(good)
    for props in ({"policy": good}, {"policy": as_object}):
        assert rules.IAM_NO_DATA_ON_ANY.validate({"type": rules.IAM_POLICY, "props": props}) == []


def test_iam_rule_catches_not_resource_and_not_action_and_single_statement_objects():
    not_resource = {
        "Statement": {"Effect": "Allow", "Action": "sqs:SendMessage", "NotResource": "arn:x"}
    }
    not_action = doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    one = rules.IAM_NO_DATA_ON_ANY.validate(
        {"type": rules.IAM_POLICY, "props": {"policy": not_resource}}
    )
    two = rules.IAM_NO_DATA_ON_ANY.validate(
        {"type": rules.IAM_POLICY, "props": {"policy": not_action}}
    )
    assert "grants sqs:SendMessage on Resource '*'" in one[0]
    assert "NotAction with Resource '*'" in two[0]


def bucket(name: str) -> dict[str, Any]:
    return {
        "type": "aws:s3/bucket:Bucket",
        "name": name,
        "urn": f"urn:pulumi:t::p::aws:s3/bucket:Bucket::{name}",
        "props": {"bucket": f"dmsbus-t-{name}"},
        "dependencies": [],
    }


def sse_for(target: dict[str, Any], algorithm: str = "aws:kms") -> dict[str, Any]:
    return {
        "type": rules.S3_ENCRYPTION[0],
        "name": f"{target['name']}-sse",
        "urn": f"urn:pulumi:t::p::sse::{target['name']}",
        "props": {
            "bucket": f"{target['name']}-id",  # the bucket's id, as the mocks resolve it
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": algorithm}}],
        },
        "dependencies": [target["urn"]],
    }


def pab_for(target: dict[str, Any], **flags: bool) -> dict[str, Any]:
    props: dict[str, Any] = {"bucket": target["props"]["bucket"]}  # linked by name this time
    props.update(dict.fromkeys(rules.PUBLIC_ACCESS_FLAGS, True))
    props.update(flags)
    return {
        "type": rules.S3_PUBLIC_ACCESS_BLOCK,
        "name": f"{target['name']}-pab",
        "urn": f"urn:pulumi:t::p::pab::{target['name']}",
        "props": props,
        "dependencies": [],
    }


def test_s3_rule_passes_encrypted_private_buckets():
    archive, overflow = bucket("archive"), bucket("overflow")
    stack = [
        archive,
        overflow,
        sse_for(archive),
        sse_for(overflow, "AES256"),
        pab_for(archive),
        pab_for(overflow),
    ]
    assert rules.S3_ENCRYPTED_AND_PRIVATE.validate(stack) == []


def test_s3_rule_fires_for_the_bucket_without_encryption_or_block():
    # GIVEN two buckets; the second has no encryption config and a partial public access block
    archive, overflow = bucket("archive"), bucket("overflow")
    stack = [
        archive,
        overflow,
        sse_for(archive),
        pab_for(archive),
        pab_for(overflow, restrictPublicBuckets=False),
    ]
    # WHEN the stack rule checks the stack
    violations = rules.S3_ENCRYPTED_AND_PRIVATE.validate(stack)
    # THEN both problems are reported against the second bucket only
    assert [urn for urn, _ in violations] == [overflow["urn"], overflow["urn"]]
    assert "'overflow': expected default encryption, found none" in violations[0][1]
    assert "'overflow': expected public access blocked" in violations[1][1]


def test_s3_rule_accepts_inline_encryption():
    inline = bucket("legacy")
    inline["props"]["serverSideEncryptionConfiguration"] = {
        "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
    }
    assert rules.S3_ENCRYPTED_AND_PRIVATE.validate([inline, pab_for(inline)]) == []


# --- the CrossGuard wrappers -----------------------------------------------------------------


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def test_crossguard_policies_are_mandatory_and_report_through_the_sdk():
    policies = {p.name: p for p in rules.crossguard_policies()}
    names = {r.name for r in rules.RESOURCE_RULES} | {r.name for r in rules.STACK_RULES}
    assert set(policies) == names
    assert {p.enforcement_level.value for p in policies.values()} == {"mandatory"}

    # GIVEN the SDK's argument bag for an unencrypted queue
    reported: list[tuple[Any, ...]] = []
    args = ResourceValidationArgs(rules.SQS_QUEUE, {"name": "q"}, "urn:q", "dlq", _opts(), None)
    # WHEN the policy validates it
    policies["sqs-queue-encrypted"].validate(args, lambda *a: reported.append(a))
    # THEN the violation goes to report_violation
    assert len(reported) == 1 and "expected server-side encryption" in reported[0][0]

    # and a stack policy reports with the bucket's URN
    lone = PolicyResource(
        "aws:s3/bucket:Bucket", {"bucket": "b"}, "urn:b", "b", _opts(), None, None, [], {}
    )
    reported.clear()
    policies["s3-bucket-encrypted-and-private"].validate(
        StackValidationArgs([lone]), lambda *a: reported.append(a)
    )
    assert [urn for _msg, urn in reported] == ["urn:b", "urn:b"]
