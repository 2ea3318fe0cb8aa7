"""AlarmTopic under Pulumi mocks: a customer-managed key (never aws/sns) that CloudWatch,
EventBridge and DMS may use, and a topic policy that lets exactly them (from this account)
publish.

The policies are checked by evaluating them for the requests the services make (a small
evaluator of the condition operators the component uses), not only by their text: a
CloudWatch alarm of this account may use the key and publish; one of another account may not.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pulumi
import pytest

from dms_event_bus.components.alarm_topic import (
    PUBLISHERS,
    AlarmTopic,
    AlarmTopicArgs,
    publisher_key_statements,
)
from dms_event_bus.settings import load_settings
from dms_event_bus.settings.stackfile import project_config, read_stack_config, stack_files
from policy import rules
from tests.fixture_stacks import STACKS_DIR
from tools.mockrun import ACCOUNT, Plan, run_program, run_stack

REGION = "eu-west-1"
TOPIC_NAME = "dmsbus-att-alarms"
#: The mocks' ARN of the topic (tools.mockrun spells every ARN `<service>:...:<kind>/<name>`).
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:topic/{TOPIC_NAME}"
STACK_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_ACCOUNT = "210987654321"

#: The request context each publisher's calls carry (EventBridge's KMS calls carry none).
SOURCES = {
    "cloudwatch.amazonaws.com": {
        "aws:SourceAccount": ACCOUNT,
        "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:bus-fanin-errors-3f2a1b0",
    },
    "events.amazonaws.com": {
        "aws:SourceAccount": ACCOUNT,
        "aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/dmsbus-dev-dms-replication",
    },
    "dms.amazonaws.com": {"aws:SourceAccount": ACCOUNT},
}


def plan_for(args: AlarmTopicArgs) -> Plan:
    def program() -> None:
        topic = AlarmTopic("alarms", args)
        pulumi.export("topic", {"arn": topic.topic_arn, "key": topic.kms_key_arn})

    return run_program("att", {"aws:region": REGION}, program)


@pytest.fixture(scope="module")
def created() -> Plan:
    return plan_for(AlarmTopicArgs(topic_name=TOPIC_NAME, email="oncall@example.com",
                                   tags={"team": "t"}))


@pytest.fixture(scope="module")
def given_key() -> Plan:
    return plan_for(AlarmTopicArgs(topic_name=TOPIC_NAME, kms_key_arn=STACK_KEY))


# --- a small policy evaluator ------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            if key not in context:
                return False  # an absent key never matches StringEquals / ArnLike
            actual = context[key]
            if operator == "StringEquals":
                ok = actual in _list(expected)
            elif operator == "ArnLike":
                ok = any(fnmatchcase(actual, pattern) for pattern in _list(expected))
            else:
                raise AssertionError(f"evaluator does not know {operator}")
            if not ok:
                return False
    return True


def allows(
    document: dict[str, Any], *, service: str, action: str, resource: str,
    context: dict[str, str],
) -> bool:
    """Whether a resource policy lets `service` do `action` on `resource` with `context`."""
    allowed = False
    for s in document["Statement"]:
        principal = s.get("Principal", {})
        if service not in _list(principal.get("Service", [])):
            continue
        if not any(fnmatchcase(action, a) for a in _list(s["Action"])):
            continue
        if not any(fnmatchcase(resource, r) for r in _list(s["Resource"])):
            continue
        if not _condition_holds(s.get("Condition", {}), context):
            continue
        if s["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def key_policy_of(plan: Plan) -> dict[str, Any]:
    return json.loads(plan.named("alarms-key").inputs["policy"])


def topic_policy_of(plan: Plan) -> dict[str, Any]:
    return json.loads(plan.named("alarms-policy").inputs["policy"])


# --- the created key ---------------------------------------------------------------------------


def test_topic_is_encrypted_with_a_created_customer_managed_key(created: Plan) -> None:
    component = created.named("alarms")
    key = created.named("alarms-key")
    topic = created.named("alarms-topic")
    assert component.type == "dms-event-bus:index:AlarmTopic"
    assert key.type == "aws:kms/key:Key"
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30
    assert key.inputs["tags"] == {"team": "t"}
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    assert topic.inputs["kmsMasterKeyId"] != "alias/aws/sns"
    assert topic.inputs["name"] == TOPIC_NAME
    alias = created.named("alarms-key-alias")
    assert alias.inputs["name"] == f"alias/{TOPIC_NAME}"
    for child in ("alarms-key", "alarms-key-alias", "alarms-topic", "alarms-policy",
                  "alarms-email"):
        assert created.named(child).parent == component.urn, child
    assert created.exports["topic"] == {"arn": topic.outputs["arn"], "key": key.outputs["arn"]}


@pytest.mark.parametrize("service", PUBLISHERS)
@pytest.mark.parametrize("action", ["kms:GenerateDataKey", "kms:Decrypt"])
def test_each_publisher_of_this_account_may_use_the_key(
    created: Plan, service: str, action: str
) -> None:
    context = SOURCES[service]
    if service == "events.amazonaws.com":
        context = {}  # EventBridge's KMS requests for an SNS target carry no source keys
    assert allows(key_policy_of(created), service=service, action=action, resource="*",
                  context=context)


@pytest.mark.parametrize("service", ["cloudwatch.amazonaws.com", "dms.amazonaws.com"])
def test_the_key_refuses_those_services_acting_for_another_account(
    created: Plan, service: str
) -> None:
    foreign = {**SOURCES[service], "aws:SourceAccount": OTHER_ACCOUNT}
    if "aws:SourceArn" in foreign:
        foreign["aws:SourceArn"] = foreign["aws:SourceArn"].replace(ACCOUNT, OTHER_ACCOUNT)
    assert not allows(key_policy_of(created), service=service, action="kms:GenerateDataKey",
                      resource="*", context=foreign)


def test_key_policy_grants_services_only_data_key_use_and_the_account_administration(
    created: Plan,
) -> None:
    statements = {s["Sid"]: s for s in key_policy_of(created)["Statement"]}
    assert statements["AccountAdministersKey"]["Principal"] == {
        "AWS": f"arn:aws:iam::{ACCOUNT}:root"
    }
    services = [s for s in statements.values() if "Service" in s["Principal"]]
    assert sorted(s["Principal"]["Service"] for s in services) == sorted(PUBLISHERS)
    for s in services:
        assert s["Action"] == ["kms:GenerateDataKey*", "kms:Decrypt"], s["Sid"]
    scoped = {s["Principal"]["Service"]: s.get("Condition", {}) for s in services}
    assert scoped["cloudwatch.amazonaws.com"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert scoped["dms.amazonaws.com"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert scoped["events.amazonaws.com"] == {}
    # the component's published statements are the ones in the key (for a key owned elsewhere)
    assert services == publisher_key_statements(account=ACCOUNT, region=REGION)


# --- the topic policy --------------------------------------------------------------------------


@pytest.mark.parametrize("service", PUBLISHERS)
def test_each_publisher_of_this_account_may_publish(created: Plan, service: str) -> None:
    policy = topic_policy_of(created)
    assert created.named("alarms-policy").inputs["arn"] == TOPIC_ARN
    assert allows(policy, service=service, action="sns:Publish", resource=TOPIC_ARN,
                  context=SOURCES[service])
    assert not allows(policy, service=service, action="sns:Subscribe", resource=TOPIC_ARN,
                      context=SOURCES[service])


@pytest.mark.parametrize("service", PUBLISHERS)
def test_publishers_acting_for_another_account_may_not_publish(
    created: Plan, service: str
) -> None:
    foreign = {k: v.replace(ACCOUNT, OTHER_ACCOUNT) for k, v in SOURCES[service].items()}
    assert not allows(topic_policy_of(created), service=service, action="sns:Publish",
                      resource=TOPIC_ARN, context=foreign)


def test_alarms_and_rules_are_scoped_to_this_region_and_kind_of_source(created: Plan) -> None:
    policy = topic_policy_of(created)
    elsewhere = {
        "aws:SourceAccount": ACCOUNT,
        "aws:SourceArn": f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:x",
    }
    assert not allows(policy, service="cloudwatch.amazonaws.com", action="sns:Publish",
                      resource=TOPIC_ARN, context=elsewhere)
    a_bus_not_a_rule = {
        "aws:SourceAccount": ACCOUNT,
        "aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
    }
    assert not allows(policy, service="events.amazonaws.com", action="sns:Publish",
                      resource=TOPIC_ARN, context=a_bus_not_a_rule)


def test_the_account_keeps_managing_the_topic(created: Plan) -> None:
    (owner,) = [s for s in topic_policy_of(created)["Statement"] if "AWS" in s["Principal"]]
    assert owner["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert owner["Resource"] == TOPIC_ARN
    assert {"sns:Subscribe", "sns:SetTopicAttributes", "sns:Publish"} <= set(owner["Action"])


def test_email_subscription(created: Plan) -> None:
    sub = created.named("alarms-email")
    assert sub.inputs == {"topic": TOPIC_ARN, "protocol": "email",
                          "endpoint": "oncall@example.com"}


# --- a key given -------------------------------------------------------------------------------


def test_a_given_key_is_used_and_no_key_is_created(given_key: Plan) -> None:
    assert given_key.of_type("aws:kms/key:Key") == []
    assert given_key.of_type("aws:kms/alias:Alias") == []
    assert given_key.named("alarms-topic").inputs["kmsMasterKeyId"] == STACK_KEY
    assert given_key.exports["topic"]["key"] == STACK_KEY
    assert given_key.of_type("aws:sns/topicSubscription:TopicSubscription") == []
    for service in PUBLISHERS:
        assert allows(topic_policy_of(given_key), service=service, action="sns:Publish",
                      resource=TOPIC_ARN, context=SOURCES[service])


@pytest.mark.parametrize(
    "key",
    ["alias/aws/sns", "ALIAS/AWS/SNS", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/sns", " "],
)
def test_the_aws_managed_key_is_refused_with_the_field_named(key: str) -> None:
    with pytest.raises(ValueError, match=r"AlarmTopicArgs\.kms_key_arn: .*aws/sns"):
        AlarmTopicArgs(topic_name=TOPIC_NAME, kms_key_arn=key)


def test_a_topic_name_is_required() -> None:
    with pytest.raises(ValueError, match=r"AlarmTopicArgs\.topic_name"):
        AlarmTopicArgs(topic_name="")


# --- in the program ----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", sorted(stack_files(STACKS_DIR)))
def test_no_topic_of_any_stack_uses_the_aws_managed_key(stack: str) -> None:
    plan = run_stack(stack, stack_dir=STACKS_DIR)
    for topic in plan.of_type("aws:sns/topic:Topic"):
        assert topic.inputs.get("kmsMasterKeyId"), topic.name
        assert topic.inputs["kmsMasterKeyId"] != "alias/aws/sns", topic.name
        (policy,) = [p for p in plan.of_type("aws:sns/topicPolicy:TopicPolicy")
                     if p.inputs["arn"] == topic.outputs["arn"]]
        assert policy.parent == topic.parent
    resources = [{"type": r.type, "props": r.inputs, "urn": r.urn, "name": r.name,
                  "dependencies": r.dependencies} for r in plan.resources]
    assert rules.check_all(resources) == []


def test_every_alarm_that_notifies_the_topic_is_explained_in_the_runbook() -> None:
    """docs/runbook.md names each alarm by its CloudWatch name (`${P}` = `dmsbus-<env>-`) --
    for every stack, with the writeback wired as __main__.py wires it."""
    from tests.test_dashboard import wired_plan

    runbook = (Path(__file__).resolve().parents[1] / "docs" / "runbook.md").read_text()
    names: set[str] = set()
    for stack in sorted(stack_files(STACKS_DIR)):
        settings = load_settings(stack, project_config(read_stack_config(stack, STACKS_DIR)))
        for plan in (run_stack(stack, stack_dir=STACKS_DIR), wired_plan(stack)):
            for alarm in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
                name = alarm.inputs["name"].replace(settings.name_prefix, "${P}", 1)
                table = next((t for t in settings.tables if name.startswith(f"${{P}}{t}-")),
                             None)
                names.add(name.replace(table, "<table>", 1) if table else name)
    assert {"${P}fanin-errors", "${P}writeback-errors", "${P}cdc-not-running",
            "${P}<table>-write-throttles"} <= names
    missing = sorted(n for n in names if f"`{n}`" not in runbook)
    assert missing == [], f"docs/runbook.md does not explain {missing}"
