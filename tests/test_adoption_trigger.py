"""adoption.trigger: DMS creates a table of this environment -> EventBridge -> the GitHub
repository dispatch of the adopt workflow.

What is checked offline: the rule's pattern against realistic CloudTrail CreateTable events in
moto's EventBridge (put_events -> rule -> SQS target with the declared input transformer:
a real round trip), including an environment whose name starts like this one's; the dispatch
body rendered from the declared transformer; config errors (one line); the graph under
Pulumi's mocks (least-privilege target role, the token only as a Pulumi secret, DLQ, retry
policy, alarms); and that a stack without the section plans exactly as before.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from pulumi.runtime import mocks as pulumi_mocks

from dms_event_bus.components.adoption_trigger import (
    EVENT_TYPE,
    GITHUB_HEADERS,
    INVOKE_ACTION,
    AdoptionTriggerArgs,
    bearer,
    event_pattern,
    input_template,
)
from dms_event_bus.settings import ConfigError, load_settings
from dms_event_bus.settings.aws_limits import evaluate
from tools import mockrun
from tools.mockrun import ACCOUNT, Declared, Plan, dumps, run_stack
from tools.plan import main as plan_main

REGION = "eu-west-1"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:github-dispatch-AbCdEf"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
TOKEN = "github_pat_11ABCDEFG0123456789_TestTokenNeverPlain"
REPOSITORY = "acme-corp/erp-event-bus"
CONTRACT_DEV = '{"event_type":"adopt-tables","client_payload":{"environment":"dev"}}'

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
CONNECTION = "aws:cloudwatch/eventConnection:EventConnection"
DESTINATION = "aws:cloudwatch/eventApiDestination:EventApiDestination"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPONENT = "dms-event-bus:index:AdoptionTrigger"
SECRET_INVOKE = "aws:secretsmanager/getSecretVersion:getSecretVersion"


# --- stacks of the tests' own ----------------------------------------------------------------


def stack_config(env: str = "dev", *, trigger: bool = True, key: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {
        "tables": {"orders": {"partition_key": {"name": "order_id", "type": "N"}}},
        "adoption": {"backfill_segments": 2},
    }
    if trigger:
        config["adoption"]["trigger"] = {"repository": REPOSITORY, "token_secret_arn": SECRET_ARN}
    if key:
        config["encryption"] = {"kms_key_arn": KEY}
    return config


def write_stack(folder: Path, stack: str, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"config": {"aws:region": REGION, **{f"dms-event-bus:{k}": v for k, v in config.items()}}}
    (folder / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def secret_answer(secret_string: str = TOKEN) -> dict[str, Any]:
    def answer(args: dict[str, Any]) -> dict[str, Any]:
        assert args["secretId"] == SECRET_ARN, "the configured secret is the one read"
        return {
            "arn": SECRET_ARN,
            "secretString": secret_string,
            "versionId": "v1",
            "id": SECRET_ARN,
        }

    return {SECRET_INVOKE: answer}


class RawMonitor(mockrun.RecordingMonitor):
    """Also keeps each resource's inputs as registered, secrets still wrapped: the recorded
    `Declared.inputs` are stripped of Pulumi's secret markers."""

    raw: dict[str, Any]

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        type(self).raw[request.name] = pulumi_mocks.rpc.deserialize_properties(request.object)
        return response


def plan_of(tmp_path: Path, env: str = "dev", **kwargs: Any) -> tuple[Plan, dict[str, Any]]:
    """The program run under mocks with a stack of the test's own; (plan, raw inputs)."""
    answers = kwargs.pop("answers", secret_answer())
    folder = write_stack(tmp_path / env, env, stack_config(env, **kwargs))
    RawMonitor.raw = {}
    original = mockrun.RecordingMonitor
    mockrun.RecordingMonitor = RawMonitor  # type: ignore[misc]
    try:
        plan = run_stack(env, stack_dir=folder, invoke_answers=answers)
    finally:
        mockrun.RecordingMonitor = original  # type: ignore[misc]
    return plan, dict(RawMonitor.raw)


def one(plan: Plan, type_: str, name_part: str = "adoption-trigger") -> Declared:
    found = [r for r in plan.of_type(type_) if name_part in r.name]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


@pytest.fixture(scope="module")
def dev_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, dict[str, Any]]:
    return plan_of(tmp_path_factory.mktemp("dev"))


# --- realistic CloudTrail events ----------------------------------------------------------------

DMS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/dmsbus-dev-dms-target"


def create_table_detail(
    table: str, *, event_name: str = "CreateTable", error: str | None = None
) -> dict[str, Any]:
    """The `detail` of an "AWS API Call via CloudTrail" event of a DynamoDB table API call made
    by DMS's target role, as CloudTrail records it (request, and the response when it
    succeeded; a failed call has errorCode/errorMessage and no response)."""
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    detail: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLEDMSROLE:dms-session",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/dmsbus-dev-dms-target/dms-session",
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLEDMSROLE",
                    "arn": DMS_ROLE,
                    "accountId": ACCOUNT,
                    "userName": "dmsbus-dev-dms-target",
                },
                "attributes": {"creationDate": "2026-12-05T07:00:00Z", "mfaAuthenticated": "false"},
            },
            "invokedBy": "dms.amazonaws.com",
        },
        "eventTime": "2026-12-05T07:01:02Z",
        "eventSource": "dynamodb.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "dms.amazonaws.com",
        "userAgent": "dms.amazonaws.com",
        "requestParameters": {
            "tableName": table,
            "attributeDefinitions": [{"attributeName": "order_id", "attributeType": "N"}],
            "keySchema": [{"attributeName": "order_id", "keyType": "HASH"}],
            "provisionedThroughput": {"readCapacityUnits": 200, "writeCapacityUnits": 200},
        },
        "responseElements": {
            "tableDescription": {
                "tableName": table,
                "tableArn": arn,
                "tableId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                "tableStatus": "CREATING",
                "itemCount": 0,
                "tableSizeBytes": 0,
                "creationDateTime": "Dec 5, 2026, 7:01:02 AM",
                "attributeDefinitions": [{"attributeName": "order_id", "attributeType": "N"}],
                "keySchema": [{"attributeName": "order_id", "keyType": "HASH"}],
                "provisionedThroughput": {
                    "readCapacityUnits": 200,
                    "writeCapacityUnits": 200,
                    "numberOfDecreasesToday": 0,
                },
            }
        },
        "requestID": "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGHIJKLMNOP",
        "eventID": "9a8b7c6d-5e4f-3a2b-1c0d-0e1f2a3b4c5d",
        "readOnly": False,
        "resources": [{"accountId": ACCOUNT, "type": "AWS::DynamoDB::Table", "ARN": arn}],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    if error is not None:
        detail["errorCode"] = error
        detail["errorMessage"] = f"Table already exists: {table}"
        detail["responseElements"] = None
    return detail


class Bus:
    """moto's default event bus with the declared rule and, as its target, an SQS queue with
    the declared input transformer (moto does not send API destinations' bodies)."""

    def __init__(self, pattern: str, template: str, paths: dict[str, str]) -> None:
        self.events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        self.sqs = sqs
        self.url = sqs.create_queue(QueueName=f"probe-{abs(hash(pattern))}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        name = f"rule-{abs(hash(pattern))}"
        self.events.put_rule(Name=name, EventPattern=pattern, State="ENABLED")
        transformer: dict[str, Any] = {"InputTemplate": template}
        if paths:
            transformer["InputPathsMap"] = paths
        self.events.put_targets(
            Rule=name, Targets=[{"Id": "probe", "Arn": arn, "InputTransformer": transformer}]
        )

    def deliveries(
        self,
        detail: dict[str, Any],
        *,
        source: str = "aws.dynamodb",
        detail_type: str = "AWS API Call via CloudTrail",
    ) -> list[str]:
        """Put one event; the bodies the rule's target received for it."""
        answer = self.events.put_events(
            Entries=[{"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}]
        )
        assert answer["FailedEntryCount"] == 0
        bodies: list[str] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10)
            if not got.get("Messages"):
                return bodies
            for m in got["Messages"]:
                bodies.append(m["Body"])
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def aws_env(credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


def declared_bus(plan: Plan) -> Bus:
    rule, target = one(plan, RULE), one(plan, TARGET)
    transformer = target.inputs["inputTransformer"]
    return Bus(
        rule.inputs["eventPattern"],
        transformer["inputTemplate"],
        transformer.get("inputPaths") or {},
    )


# --- the pattern: which CreateTable events dispatch -----------------------------------------------


@pytest.mark.parametrize(
    ("detail", "source", "dispatched"),
    [
        # DMS created a waypoint table of this environment: dispatch
        (create_table_detail("dmsbus-dev-orders"), "aws.dynamodb", True),
        (create_table_detail("dmsbus-dev-order_lines2"), "aws.dynamodb", True),
        # ... of an environment whose name starts like this one's (dev-eu): never
        (create_table_detail("dmsbus-dev-eu-orders"), "aws.dynamodb", False),
        # this environment's IngestApi table (Pulumi's own): never
        (create_table_detail("dmsbus-dev-ingest-order_requests"), "aws.dynamodb", False),
        # another environment, another team's table, a name that only starts alike
        (create_table_detail("dmsbus-prod-orders"), "aws.dynamodb", False),
        (create_table_detail("orders"), "aws.dynamodb", False),
        (create_table_detail("dmsbus-devx-orders"), "aws.dynamodb", False),
        # other calls on this environment's table
        (create_table_detail("dmsbus-dev-orders", event_name="UpdateTable"), "aws.dynamodb", False),
        (create_table_detail("dmsbus-dev-orders", event_name="DeleteTable"), "aws.dynamodb", False),
        # a CreateTable that failed created nothing
        (
            create_table_detail("dmsbus-dev-orders", error="ResourceInUseException"),
            "aws.dynamodb",
            False,
        ),
        # the same detail from somebody else's source
        (create_table_detail("dmsbus-dev-orders"), "acme.erp", False),
    ],
    ids=[
        "dev-table",
        "dev-table-digits",
        "dev-eu-table",
        "ingest-table",
        "prod-table",
        "foreign-table",
        "devx-table",
        "update-table",
        "delete-table",
        "failed-create",
        "other-source",
    ],
)
def test_the_rule_dispatches_only_this_environments_new_tables(
    aws_env: None,
    dev_plan: tuple[Plan, dict[str, Any]],
    detail: dict[str, Any],
    source: str,
    dispatched: bool,
) -> None:
    # GIVEN the rule and transformer the program declares for environment dev, in moto
    bus = declared_bus(dev_plan[0])
    # WHEN CloudTrail's event reaches the default bus
    bodies = bus.deliveries(detail, source=source)
    # THEN exactly the new waypoint tables of dev dispatch, once, with the contract's body
    assert len(bodies) == (1 if dispatched else 0)
    for body in bodies:
        assert json.loads(body) == json.loads(CONTRACT_DEV)


def test_dev_eu_dispatches_its_own_tables_and_not_devs(aws_env: None, tmp_path: Path) -> None:
    # GIVEN the neighbour environment dev-eu's declared rule and transformer
    plan, _raw = plan_of(tmp_path, "dev-eu")
    bus = declared_bus(plan)
    # THEN its tables dispatch its own workflow run, dev's tables do not
    assert [json.loads(b) for b in bus.deliveries(create_table_detail("dmsbus-dev-eu-orders"))] == [
        {"event_type": "adopt-tables", "client_payload": {"environment": "dev-eu"}}
    ]
    assert bus.deliveries(create_table_detail("dmsbus-dev-orders")) == []


ENV = st.from_regex(r"[a-z][a-z0-9]{0,5}(-[a-z0-9]{1,4}){0,2}", fullmatch=True)
LOGICAL = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
SUFFIX = st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True)


@st.composite
def environment_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """(mine, other): other is any environment, or one whose name starts like mine
    (`dev` / `dev-eu`, `dev` / `dev2`), or mine's own."""
    mine = draw(ENV)
    other = draw(
        st.one_of(
            ENV,
            st.just(mine),
            SUFFIX.map(lambda s: f"{mine}-{s}"),
            SUFFIX.map(lambda s: f"{mine}{s}"),
        )
    )
    return mine, other


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pair=environment_pairs(), logical=LOGICAL)
def test_no_environment_dispatches_for_anothers_table(
    credentials: None, pair: tuple[str, str], logical: str
) -> None:
    mine, other = pair
    with mock_aws():  # a fresh account per example: no rule of an earlier one
        # GIVEN my environment's pattern (the pure function the component declares, checked
        # against the declared one in test_the_declared_rule_is_the_pattern) in moto
        pattern = json.dumps(event_pattern(f"dmsbus-{mine}-"))
        bus = Bus(pattern, input_template(mine), {})
        # WHEN DMS creates a waypoint table of any environment, e.g. dev and dev-eu
        bodies = bus.deliveries(create_table_detail(f"dmsbus-{other}-{logical}"))
    # THEN it dispatches my workflow if and only if the table is mine
    assert len(bodies) == (1 if other == mine else 0)


def test_the_declared_rule_is_the_pattern(dev_plan: tuple[Plan, dict[str, Any]]) -> None:
    rule = one(dev_plan[0], RULE)
    assert json.loads(rule.inputs["eventPattern"]) == event_pattern("dmsbus-dev-")
    assert rule.inputs["state"] == "ENABLED"
    assert rule.inputs.get("eventBusName") in (None, "default")  # AWS events: default bus


# --- the dispatch: what GitHub receives -----------------------------------------------------------


def render(template: str, paths: dict[str, str], event: dict[str, Any]) -> str:
    """EventBridge's input transformation: each `<name>` of the template replaced by the
    value the JSON path `paths[name]` selects in the event (dot notation only)."""

    def value(path: str) -> Any:
        node: Any = event
        for part in path.removeprefix("$.").split("."):
            node = node[part]
        return node

    def replace(match: re.Match[str]) -> str:
        found = value(paths[match[1]])
        return found if isinstance(found, str) else json.dumps(found)

    return re.sub(r"<([A-Za-z0-9_.-]+)>", replace, template) if paths else template


@pytest.mark.parametrize("env", ["dev", "dev-eu"])
def test_the_dispatch_body_is_the_workflows_contract(tmp_path: Path, env: str) -> None:
    # GIVEN the target the program declares
    plan, _raw = plan_of(tmp_path, env)
    transformer = one(plan, TARGET).inputs["inputTransformer"]
    event = {
        "source": "aws.dynamodb",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": create_table_detail(f"dmsbus-{env}-orders"),
    }
    # WHEN EventBridge transforms a matched event
    body = render(transformer["inputTemplate"], transformer.get("inputPaths") or {}, event)
    # THEN GitHub gets exactly the adopt workflow's contract
    assert body == ('{"event_type":"adopt-tables","client_payload":{"environment":"' + env + '"}}')
    assert json.loads(body) == {"event_type": EVENT_TYPE, "client_payload": {"environment": env}}
    # AND it is POSTed to the repository's dispatch endpoint, with GitHub's headers
    destination = one(plan, DESTINATION)
    assert destination.inputs["invocationEndpoint"] == (
        f"https://api.github.com/repos/{REPOSITORY}/dispatches"
    )
    assert destination.inputs["httpMethod"] == "POST"
    assert destination.inputs["invocationRateLimitPerSecond"] == 1
    assert one(plan, TARGET).inputs["httpTarget"]["headerParameters"] == GITHUB_HEADERS


# --- config: one line naming the key --------------------------------------------------------------


def raw_config(trigger: dict[str, Any] | None, **adoption: Any) -> dict[str, Any]:
    raw = copy.deepcopy(stack_config(trigger=False))
    raw["adoption"].update(adoption)
    if trigger is not None:
        raw["adoption"]["trigger"] = trigger
    return raw


@pytest.mark.parametrize(
    ("trigger", "adoption", "expected"),
    [
        (
            {"repository": REPOSITORY},
            {},
            "dms-event-bus:adoption.trigger.token_secret_arn: expected a value",
        ),
        (
            {"repository": REPOSITORY, "token_secret_arn": "github_pat_123"},
            {},
            "dms-event-bus:adoption.trigger.token_secret_arn: expected a string matching",
        ),
        (
            {"token_secret_arn": SECRET_ARN},
            {},
            "dms-event-bus:adoption.trigger.repository: expected a value",
        ),
        (
            {"repository": "erp-event-bus", "token_secret_arn": SECRET_ARN},
            {},
            "dms-event-bus:adoption.trigger.repository: expected a GitHub repository",
        ),
        (
            {"repository": "https://github.com/acme/erp", "token_secret_arn": SECRET_ARN},
            {},
            "dms-event-bus:adoption.trigger.repository: expected a GitHub repository",
        ),
        (
            {"repository": "-acme/erp", "token_secret_arn": SECRET_ARN},
            {},
            "dms-event-bus:adoption.trigger.repository: expected a GitHub repository",
        ),
        (
            {"repository": "acme--corp/erp", "token_secret_arn": SECRET_ARN},
            {},
            "dms-event-bus:adoption.trigger.repository: expected a GitHub repository",
        ),
        (
            {"repository": "acme/..", "token_secret_arn": SECRET_ARN},
            {},
            "dms-event-bus:adoption.trigger.repository: expected a GitHub repository",
        ),
        (
            {"repository": "acme/erp bus", "token_secret_arn": SECRET_ARN},
            {},
            "dms-event-bus:adoption.trigger.repository: expected a GitHub repository",
        ),
        (
            {"repository": "acme/erp\n", "token_secret_arn": SECRET_ARN},
            {},
            "dms-event-bus:adoption.trigger.repository: expected a GitHub repository",
        ),
        (
            {"repository": REPOSITORY, "token_secret_arn": SECRET_ARN, "token": "x"},
            {},
            "dms-event-bus:adoption.trigger.token: no such key",
        ),
        (
            {"repository": REPOSITORY, "token_secret_arn": SECRET_ARN, "max_event_age_seconds": 30},
            {},
            "dms-event-bus:adoption.trigger.max_event_age_seconds: expected a number >= 60",
        ),
        (
            {
                "repository": REPOSITORY,
                "token_secret_arn": SECRET_ARN,
                "invocation_rate_per_second": 0,
            },
            {},
            "dms-event-bus:adoption.trigger.invocation_rate_per_second: expected a number >= 1",
        ),
        (
            {"repository": REPOSITORY, "token_secret_arn": SECRET_ARN},
            {"enabled": False},
            "dms-event-bus:adoption: expected no trigger when enabled is false",
        ),
    ],
    ids=[
        "no-secret",
        "token-not-arn",
        "no-repository",
        "no-owner",
        "url",
        "owner-leading-dash",
        "owner-double-dash",
        "dot-dot",
        "space",
        "trailing-newline",
        "plain-token-key",
        "short-age",
        "zero-rate",
        "adoption-off",
    ],
)
def test_bad_trigger_config_is_one_line_naming_the_key(
    trigger: dict[str, Any], adoption: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings("dev", raw_config(trigger, **adoption))
    brief = caught.value.brief()
    assert "\n" not in brief
    assert expected in brief, brief


def test_good_trigger_config_keeps_the_values() -> None:
    trigger = {
        "repository": "a/b.c_d-e",
        "token_secret_arn": SECRET_ARN,
        "max_event_age_seconds": 86400,
        "max_retry_attempts": 0,
        "invocation_rate_per_second": 300,
    }
    loaded = load_settings("dev", raw_config(trigger)).adoption.trigger
    assert loaded is not None
    assert loaded.model_dump() == trigger


def test_the_offline_plan_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stack_config()
    del config["adoption"]["trigger"]["token_secret_arn"]
    write_stack(tmp_path, "dev", config)
    assert plan_main(["--stack", "dev", "--stack-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "dms-event-bus:adoption.trigger.token_secret_arn" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name_prefix": "dmsbus-dev"}, "name_prefix"),
        ({"environment": "prod"}, "environment"),
        ({"repository": "acme"}, "repository"),
        ({"token_secret_arn": "github_pat_123"}, "token_secret_arn"),
        ({"max_event_age_seconds": 86401}, "max_event_age_seconds"),
        ({"max_retry_attempts": 186}, "max_retry_attempts"),
        ({"invocation_rate_per_second": 301}, "invocation_rate_per_second"),
    ],
)
def test_bad_component_args_name_the_field(changes: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {
        "name_prefix": "dmsbus-dev-",
        "environment": "dev",
        "repository": REPOSITORY,
        "token_secret_arn": SECRET_ARN,
    }
    args.update(changes)
    with pytest.raises(ValueError, match=f"AdoptionTriggerArgs.{field}") as caught:
        AdoptionTriggerArgs(**args)
    assert "github_pat_123" not in str(caught.value), "a pasted token is not echoed"


# --- the graph ------------------------------------------------------------------------------------


def policy_of(plan: Plan, role: Declared) -> dict[str, Any]:
    policies = [p for p in plan.of_type(ROLE_POLICY) if p.inputs["role"] == role.id]
    assert len(policies) == 1
    return json.loads(policies[0].inputs["policy"])


def test_the_target_role_may_only_invoke_this_api_destination(
    dev_plan: tuple[Plan, dict[str, Any]],
) -> None:
    plan = dev_plan[0]
    role, target, destination = one(plan, ROLE), one(plan, TARGET), one(plan, DESTINATION)
    # EventBridge assumes the role ...
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "events.amazonaws.com"}]
    # ... to invoke exactly this destination, nothing else
    statements = policy_of(plan, role)["Statement"]
    assert statements == [
        {
            "Sid": "DispatchTheAdoptWorkflow",
            "Effect": "Allow",
            "Action": [INVOKE_ACTION],
            "Resource": [destination.outputs["arn"]],
        }
    ]
    assert target.inputs["roleArn"] == role.outputs["arn"]
    assert target.inputs["arn"] == destination.outputs["arn"]
    assert target.inputs["rule"] == one(plan, RULE).outputs["name"]


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any, bool]]:
    """(path, leaf, under a secret marker) of every leaf of registered inputs."""
    if isinstance(value, dict) and value.get(pulumi_mocks.rpc._special_sig_key) == (
        pulumi_mocks.rpc._special_secret_sig
    ):
        for p, leaf, _secret in walk(value.get("value"), path):
            yield p, leaf, True
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, value, False


def test_the_token_is_never_a_plain_value(dev_plan: tuple[Plan, dict[str, Any]]) -> None:
    plan, raw = dev_plan
    # GIVEN the secret's value as the program read it (the only place it comes from)
    assert (SECRET_INVOKE, {"secretId": SECRET_ARN}) in [
        (t, {k: v for k, v in a.items() if k == "secretId"}) for t, a in plan.invokes
    ]
    # THEN it is in exactly one input, the connection's API key, marked secret; nowhere else
    # (descriptions, tags, outputs of other resources) is it plain
    holding = [
        (name, path, secret)
        for name, inputs in raw.items()
        for path, leaf, secret in walk(inputs)
        if isinstance(leaf, str) and TOKEN in leaf
    ]
    assert holding == [("adoption-trigger-connection", ".authParameters.apiKey.value", True)]
    connection = one(plan, CONNECTION)
    assert connection.inputs["authorizationType"] == "API_KEY"
    assert connection.inputs["authParameters"]["apiKey"] == {
        "key": "Authorization",
        "value": f"Bearer {TOKEN}",
    }
    assert SECRET_ARN in connection.inputs["description"]  # where to rotate it


@pytest.mark.parametrize("secret_string", [None, "", "  \n"])
def test_an_empty_secret_fails_the_deploy_naming_the_key(secret_string: str | None) -> None:
    # (the connection's value is `bearer(SecretString)`, applied at `pulumi up`; a failing
    # program run is not repeated here: its pending outputs would leak into the next run)
    with pytest.raises(
        ValueError,
        match=r"^adoption\.trigger\.token_secret_arn: .* no "
        r"SecretString",
    ):
        bearer(secret_string, SECRET_ARN)
    assert bearer(f" {TOKEN}\n", SECRET_ARN) == f"Bearer {TOKEN}"


@pytest.mark.parametrize("key", [False, True], ids=["aws-keys", "customer-key"])
def test_failed_dispatches_are_retried_kept_and_alarmed(tmp_path: Path, key: bool) -> None:
    plan, _raw = plan_of(tmp_path, key=key)
    target, queue, rule = one(plan, TARGET), one(plan, QUEUE), one(plan, RULE)
    # retried for an hour, then kept in the DLQ
    assert target.inputs["retryPolicy"] == {
        "maximumEventAgeInSeconds": 3600,
        "maximumRetryAttempts": 185,
    }
    assert target.inputs["deadLetterConfig"] == {"arn": queue.outputs["arn"]}
    assert queue.inputs["name"] == "dmsbus-dev-adoption-trigger-dlq"
    assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    # encrypted: the stack's key, else SQS-managed SSE -- never aws/sqs (EventBridge cannot
    # use it)
    if key:
        assert queue.inputs["kmsMasterKeyId"] == KEY
        assert not queue.inputs.get("sqsManagedSseEnabled")
    else:
        assert queue.inputs["sqsManagedSseEnabled"] is True
        assert "kmsMasterKeyId" not in queue.inputs
    # only this rule may write to it
    policy = one(plan, QUEUE_POLICY)
    assert policy.inputs["queueUrl"] == queue.outputs["url"]
    assert json.loads(policy.inputs["policy"])["Statement"] == [
        {
            "Sid": "TheRuleKeepsFailedDispatches",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue.outputs["arn"],
            "Condition": {"ArnEquals": {"aws:SourceArn": rule.outputs["arn"]}},
        }
    ]
    # alarmed: a message in the DLQ, and a dispatch EventBridge could not even put there
    alarms = {
        a.inputs["name"]: a.inputs for a in plan.of_type(ALARM) if "adoption-trigger" in a.name
    }
    depth = alarms["dmsbus-dev-adoption-trigger-dlq-depth"]
    assert (depth["namespace"], depth["metricName"], depth["dimensions"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": queue.outputs["name"]},
    )
    assert depth["threshold"] == 1 and depth["comparisonOperator"] == (
        "GreaterThanOrEqualToThreshold"
    )
    lost = alarms["dmsbus-dev-adoption-trigger-dlq-failed"]
    assert (lost["namespace"], lost["metricName"], lost["dimensions"]) == (
        "AWS/Events",
        "InvocationsFailedToBeSentToDlq",
        {"RuleName": rule.outputs["name"]},
    )
    topic = next(r for r in plan.of_type("aws:sns/topic:Topic"))
    for alarm in alarms.values():
        assert alarm["alarmActions"] == [topic.outputs["arn"]] == alarm["okActions"]


def test_every_resource_is_the_components_child_named_and_tagged(
    dev_plan: tuple[Plan, dict[str, Any]],
) -> None:
    plan = dev_plan[0]
    component = one(plan, COMPONENT)
    children = plan.children_of(component)
    assert sorted(c.short_type for c in children) == sorted(
        [
            "EventApiDestination",
            "EventConnection",
            "EventRule",
            "EventTarget",
            "MetricAlarm",
            "MetricAlarm",
            "Queue",
            "QueuePolicy",
            "Role",
            "RolePolicy",
        ]
    )
    for child in children:
        assert child.name.startswith("adoption-trigger-")
        name = child.inputs.get("name")
        assert name is None or name.startswith("dmsbus-dev-"), name
        if "tags" in child.inputs:
            assert child.inputs["tags"] == {"project": "dms-event-bus", "environment": "dev"}
    report = evaluate(plan)
    assert report.violations == [], report.violations


def declared(plan: Plan) -> list[dict[str, Any]]:
    """Every resource's type, name, inputs and parent, in a stable order (registration
    order depends on when each resource's inputs resolved)."""
    text = re.sub(r" object at 0x[0-9a-f]+", " object", dumps(plan))  # assets' reprs
    return sorted(json.loads(text), key=lambda r: (r["type"], r["name"]))


def test_a_stack_without_the_section_plans_exactly_as_before(tmp_path: Path) -> None:
    # GIVEN one stack without adoption.trigger and the same stack with it
    without, _ = plan_of(tmp_path / "without", trigger=False)
    with_trigger, _ = plan_of(tmp_path / "with", trigger=True)
    # THEN the one without declares no trigger and reads no secret
    assert not any("adoption-trigger" in r.name for r in without.resources)
    assert not any(t == SECRET_INVOKE for t, _a in without.invokes)
    # AND the trigger adds its own resources and changes nothing else
    component = one(with_trigger, COMPONENT)
    rest = Plan(
        with_trigger.stack,
        [r for r in with_trigger.resources if component.urn not in (r.urn, r.parent)],
        [],
    )
    # (but the dashboard's DLQ-depth panel, which gains the trigger's DLQ: test_dashboard_trigger)
    dlq_row = ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
               "dmsbus-dev-adoption-trigger-dlq",
               {"label": "adoption trigger DLQ", "stat": "Maximum"}]

    def without_trigger_row(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in resources:
            if "dashboardBody" in r["inputs"]:
                body = json.loads(r["inputs"]["dashboardBody"])
                for widget in body["widgets"]:
                    widget["properties"]["metrics"] = [
                        m for m in widget["properties"]["metrics"] if m != dlq_row]
                r["inputs"]["dashboardBody"] = json.dumps(body, sort_keys=True)
        return resources

    board = json.loads(one(with_trigger, "aws:cloudwatch/dashboard:Dashboard", "ops")
                       .inputs["dashboardBody"])
    assert any(dlq_row in w["properties"]["metrics"] for w in board["widgets"])
    assert without_trigger_row(declared(rest)) == declared(without)
    assert len(with_trigger.resources) == len(without.resources) + 11
