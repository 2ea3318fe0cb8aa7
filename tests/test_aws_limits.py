"""AWS's own limits as rules on the resource graph (settings/aws_limits.py) and in the offline plan.

Each rule gets a resource just over its limit (fails, naming the resource and the limit) and
one at the limit (passes); the whole program is planned for every stack file and for
generated stacks of 1 and 100 tables written by the test itself.
"""

from __future__ import annotations

import dataclasses
import json
import re
import string
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dms_event_bus.settings import StackSettings, aws_limits
from dms_event_bus.settings.aws_limits import (
    RULES,
    Context,
    Report,
    config_problems,
    evaluate,
    lambda_env_size,
    policy_size,
    s3_bucket_name_problem,
)
from dms_event_bus.settings.stackfile import stack_files
from tests.fixture_stacks import STACKS_DIR
from tools import plan as plan_tool
from tools.mockrun import Declared, Plan, run_stack

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION = "aws:lambda/function:Function"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
STREAM_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"


def res(type_: str, urn_name: str, /, *, id_: str = "", **inputs: Any) -> Declared:
    """A declared resource: `urn_name` is its name in the program, inputs as resolved."""
    return Declared(type=type_, name=urn_name, inputs=inputs, outputs={},
                    urn=f"urn:{urn_name}", parent="", custom=True, id=id_ or f"{urn_name}-id")


def graph(*resources: Declared) -> Plan:
    return Plan("unit", list(resources), [])


def violations(*resources: Declared) -> list[aws_limits.Violation]:
    return evaluate(graph(*resources)).violations


def policy_of(chars: int) -> str:
    """A policy document of exactly `chars` characters without white space."""
    head = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject",' \
        '"Resource":"arn:aws:s3:::'
    tail = '"}]}'
    pad = chars - len(head) - len(tail)
    assert pad > 0
    return head + "b" * pad + tail


def role_with(name: str, *policies: str) -> list[Declared]:
    role = res(ROLE, f"{name}-role", id_=f"{name}-id", name=name,
               assumeRolePolicy=json.dumps({"Version": "2012-10-17", "Statement": []}))
    return [role] + [
        res(ROLE_POLICY, f"{name}-policy-{i}", role=f"{name}-id", policy=p)
        for i, p in enumerate(policies)
    ]


# -- sizes as AWS measures them ----------------------------------------------------------
JSON_DOCS = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.text(string.ascii_letters + ":/*-_", max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(doc=JSON_DOCS, indent=st.sampled_from([None, 1, 2, 4, "\t"]))
def test_policy_size_ignores_white_space_between_tokens(doc: Any, indent: Any) -> None:
    # GIVEN one document serialised compactly and pretty-printed
    compact = json.dumps(doc, separators=(",", ":"))
    pretty = json.dumps(doc, indent=indent)
    # THEN IAM's count (white space not counted) is the same for both
    assert policy_size(pretty) == policy_size(compact) == len(compact.replace(" ", ""))


def test_policy_size_reads_the_document_text_or_a_dict() -> None:
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}
    assert policy_size(doc) == policy_size(json.dumps(doc, indent=2)) == len(
        json.dumps(doc, separators=(",", ":"))
    )


@given(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True),
                       st.text(max_size=200), max_size=12))
def test_lambda_env_size_is_the_json_of_the_map(variables: dict[str, str]) -> None:
    size = lambda_env_size(variables)
    assert size == len(json.dumps(variables, separators=(",", ":"),
                                  ensure_ascii=False).encode())
    assert size >= sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())


# -- IAM ---------------------------------------------------------------------------------
def test_inline_policies_of_one_role_add_up() -> None:
    # GIVEN a role with two inline policies of 6,000 characters: each fits, together not
    found = violations(*role_with("dmsbus-x-fanin", policy_of(6_000), policy_of(6_000)))
    assert [v.rule for v in found] == ["iam-role-inline-policies"]
    assert found[0].resource == "dmsbus-x-fanin-role"
    assert "12,000 characters" in found[0].message and "10,240" in found[0].message
    assert "dmsbus-x-fanin-policy-0" in found[0].message
    assert violations(*role_with("dmsbus-x-fanin", policy_of(6_000))) == []


def test_one_inline_policy_over_the_limit_names_the_policy() -> None:
    found = violations(*role_with("r", policy_of(10_241)))
    assert [(v.resource, v.rule) for v in found] == [("r-policy-0", "iam-role-inline-policies")]
    assert found[0].line().startswith("r-policy-0 [RolePolicy]: inline policies of role r")
    assert "fix:" in found[0].line()
    assert violations(*role_with("r", policy_of(10_240))) == []


def test_inline_policy_on_a_role_outside_the_stack_is_judged_alone() -> None:
    def policy(chars: int) -> Declared:
        return res(ROLE_POLICY, "extra-policy", role="platform-shared-role",
                   policy=policy_of(chars))

    found = violations(policy(10_241))
    assert [(v.resource, v.rule) for v in found] == [("extra-policy", "iam-role-inline-policies")]
    assert "role platform-shared-role" in found[0].message
    assert violations(policy(10_240)) == []


def test_pretty_printed_policy_is_counted_without_its_white_space() -> None:
    doc = json.loads(policy_of(10_240))
    assert violations(*role_with("r", json.dumps(doc, indent=8))) == []


def test_inline_policies_on_the_role_itself_count_too() -> None:
    role = res(ROLE, "r-role", name="r", inlinePolicies=[
        {"name": "a", "policy": policy_of(5_200)}, {"name": "b", "policy": policy_of(5_200)}])
    assert [v.rule for v in violations(role)] == ["iam-role-inline-policies"]


def test_managed_policy_size() -> None:
    big = res("aws:iam/policy:Policy", "p", policy=policy_of(6_145))
    assert [v.rule for v in violations(big)] == ["iam-managed-policy"]
    assert "6,144" in violations(big)[0].message
    assert violations(res("aws:iam/policy:Policy", "p", policy=policy_of(6_144))) == []


def test_trust_policy_size() -> None:
    assert [v.rule for v in violations(res(ROLE, "r", name="r",
                                           assumeRolePolicy=policy_of(2_049)))] == [
        "iam-trust-policy"]
    assert violations(res(ROLE, "r", name="r", assumeRolePolicy=policy_of(2_048))) == []


def test_managed_policies_attached_per_role() -> None:
    role = res(ROLE, "r-role", id_="r", name="r")
    attachments = [
        res("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"a{i}", role="r",
            policyArn=f"arn:aws:iam::aws:policy/P{i}")
        for i in range(11)
    ]
    assert [v.rule for v in violations(role, *attachments)] == ["iam-attached-policies"]
    assert violations(role, *attachments[:10]) == []


@pytest.mark.parametrize("name, ok", [("a" * 64, True), ("a" * 65, False),
                                      ("dmsbus-dev-fan in", False), ("x+=,.@_-", True)])
def test_role_name(name: str, ok: bool) -> None:
    found = violations(res(ROLE, "r", name=name))
    assert (found == []) is ok
    if not ok:
        assert found[0].rule == "iam-role-name" and repr(name) in found[0].message


# -- Lambda ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, ok", [("f" * 64, True), ("f" * 65, False), ("a.b", False)])
def test_function_name(name: str, ok: bool) -> None:
    found = violations(res(FUNCTION, "fn", name=name))
    assert (found == []) is ok
    if not ok:
        assert found[0].rule == "lambda-function-name"


def test_lambda_environment_over_4_kb_names_the_largest_variable() -> None:
    def fn(value_len: int) -> Declared:
        return res(FUNCTION, "bus-fanin", name="f",
                   environment={"variables": {"TABLES": "t" * value_len, "A": "1"}})

    # {"TABLES":"...","A":"1"}: 21 characters besides the value
    assert violations(fn(4_096 - 21)) == []
    found = violations(fn(4_096 - 20))
    assert [v.rule for v in found] == ["lambda-environment"]
    assert found[0].resource == "bus-fanin"
    assert "4,097 bytes" in found[0].message and "TABLES" in found[0].message


def test_lambda_description() -> None:
    assert [v.rule for v in violations(res(FUNCTION, "f", description="d" * 257))] == [
        "lambda-description"]
    assert violations(res(FUNCTION, "f", description="d" * 256)) == []


GOOD_MAPPING: dict[str, Any] = {
    "eventSourceArn": STREAM_ARN, "batchSize": 10_000, "maximumBatchingWindowInSeconds": 300,
    "parallelizationFactor": 10, "maximumRetryAttempts": 10_000,
    "maximumRecordAgeInSeconds": 604_800, "tumblingWindowInSeconds": 900,
}


@pytest.mark.parametrize("key, bad", [
    ("batchSize", 0), ("batchSize", 10_001),
    ("maximumBatchingWindowInSeconds", 301), ("maximumBatchingWindowInSeconds", -1),
    ("parallelizationFactor", 0), ("parallelizationFactor", 11),
    ("maximumRetryAttempts", -2), ("maximumRetryAttempts", 10_001),
    ("maximumRecordAgeInSeconds", 59), ("maximumRecordAgeInSeconds", 0),
    ("maximumRecordAgeInSeconds", 604_801),
    ("tumblingWindowInSeconds", 901),
])
def test_stream_mapping_ranges(key: str, bad: int) -> None:
    assert violations(res(MAPPING, "m", **GOOD_MAPPING)) == []
    found = violations(res(MAPPING, "m", **{**GOOD_MAPPING, key: bad}))
    assert [v.rule for v in found] == ["event-source-mapping"]
    assert key in found[0].message


def test_stream_mapping_edges_that_pass() -> None:
    for age in (-1, 60):
        assert violations(res(MAPPING, "m", **{**GOOD_MAPPING,
                                                "maximumRecordAgeInSeconds": age})) == []
    assert violations(res(MAPPING, "m", **{**GOOD_MAPPING, "maximumRetryAttempts": -1})) == []
    # the stream ranges do not apply to a queue source
    sqs = {**GOOD_MAPPING, "eventSourceArn": "arn:aws:sqs:eu-west-1:1:q", "batchSize": 0}
    assert violations(res(MAPPING, "m", **sqs)) == []


# -- names of the other services ---------------------------------------------------------
@pytest.mark.parametrize("name", [
    "ab", "a" * 64, "Dmsbus-dev", "dmsbus_dev", "-dmsbus", "dmsbus-", "a..b", "192.168.5.4",
    "xn--abc", "sthree-x", "amzn-s3-demo-x", "abc-s3alias", "abc--ol-s3", "abc.mrap",
])
def test_bad_bucket_names(name: str) -> None:
    found = violations(res("aws:s3/bucket:Bucket", "b", bucket=name))
    assert [v.rule for v in found] == ["s3-bucket-name"], name


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{1,61})[a-z0-9]", fullmatch=True))
def test_good_bucket_names(name: str) -> None:
    if not name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) and not name.endswith(
        ("-s3alias", "--ol-s3", "--x-s3")
    ):
        assert s3_bucket_name_problem(name) is None


RULE_CASES: list[tuple[str, str, str, Any, Any]] = [
    # rule, type, key, bad, good (at the limit)
    ("sqs-queue-name", "aws:sqs/queue:Queue", "name", "q" * 81, "q" * 75 + ".fifo"),
    ("sqs-queue-name", "aws:sqs/queue:Queue", "name", "q.q", "q-q_Q"),
    ("dynamodb-table-name", "aws:dynamodb/table:Table", "name", "t" * 256, "t" * 255),
    ("dynamodb-table-name", "aws:dynamodb/table:Table", "name", "tt", "t.t"),
    ("dynamodb-table-name", "aws:dynamodb/table:Table", "name", "t/t", "T_t-9"),
    ("kinesis-stream-name", "aws:kinesis/stream:Stream", "name", "s" * 129, "s" * 128),
    ("firehose-name", "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream", "name",
     "f" * 65, "f" * 64),
    ("log-group-name", "aws:cloudwatch/logGroup:LogGroup", "name", "/" + "l" * 512,
     "/" + "l" * 511),
    ("log-group-name", "aws:cloudwatch/logGroup:LogGroup", "name", "/aws/x y", "/aws/x#y"),
    ("sns-topic-name", "aws:sns/topic:Topic", "name", "t" * 257, "t" * 256),
    ("eventbridge-rule-name", "aws:cloudwatch/eventRule:EventRule", "name", "r" * 65,
     "r" * 64),
    ("kms-alias-name", "aws:kms/alias:Alias", "name", "alias/aws/x", "alias/dmsbus-dev-x"),
    ("kms-alias-name", "aws:kms/alias:Alias", "name", "dmsbus-dev-x", "alias/" + "a" * 250),
    ("dms-identifiers", "aws:dms/replicationInstance:ReplicationInstance",
     "replicationInstanceId", "dmsbus-a--replication", "dmsbus-a-replication"),
    ("dms-identifiers", "aws:dms/replicationInstance:ReplicationInstance",
     "replicationInstanceId", "d" * 64, "d" * 63),
    ("dms-task-identifiers", "aws:dms/replicationTask:ReplicationTask", "replicationTaskId",
     "dmsbus-a-", "dmsbus-a"),
    ("dms-config-identifiers", "aws:dms/replicationConfig:ReplicationConfig",
     "replicationConfigIdentifier", "9dmsbus", "d" * 255),
    ("dms-endpoint-identifiers", "aws:dms/endpoint:Endpoint", "endpointId", "d_source",
     "d-source"),
    ("apigateway-stage-name", "aws:apigateway/stage:Stage", "stageName", "v 1", "v" * 128),
    ("apigateway-names", "aws:apigateway/apiKey:ApiKey", "name", "k" * 1_025, "k" * 1_024),
    ("cloudwatch-alarm", "aws:cloudwatch/metricAlarm:MetricAlarm", "name", "a" * 256,
     "a" * 255),
    ("cloudwatch-alarm", "aws:cloudwatch/metricAlarm:MetricAlarm", "alarmDescription",
     "d" * 1_025, "d" * 1_024),
    ("cloudwatch-alarm", "aws:cloudwatch/metricAlarm:MetricAlarm", "alarmActions",
     ["arn:aws:sns:eu-west-1:1:t"] * 6, ["arn:aws:sns:eu-west-1:1:t"] * 5),
    ("iam-role-description", ROLE, "description", "d" * 1_001, "d" * 1_000),
    ("cloudwatch-dashboard", "aws:cloudwatch/dashboard:Dashboard", "dashboardName",
     "ops pipeline", "dmsbus-dev-pipeline"),
]


@pytest.mark.parametrize("rule, type_, key, bad, good", RULE_CASES)
def test_limit_over_fails_and_at_the_limit_passes(
    rule: str, type_: str, key: str, bad: Any, good: Any
) -> None:
    found = violations(res(type_, "the-resource", **{key: bad}))
    assert [v.rule for v in found] == [rule]
    assert found[0].resource == "the-resource"
    assert violations(res(type_, "the-resource", **{key: good})) == []


def dashboard(widgets: list[int]) -> Declared:
    body = {"widgets": [
        {"type": "metric", "properties": {"title": f"w{i}", "metrics": [
            ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", f"t{m}"] for m in range(n)]}}
        for i, n in enumerate(widgets)]}
    return res("aws:cloudwatch/dashboard:Dashboard", "ops-dashboard",
               dashboardName="d", dashboardBody=json.dumps(body))


def test_dashboard_widgets_and_metrics() -> None:
    assert violations(dashboard([1] * 500)) == []
    assert "501 widgets" in violations(dashboard([1] * 501))[0].message
    assert violations(dashboard([500, 500, 500, 500, 500])) == []
    per_widget = violations(dashboard([501]))
    assert [v.rule for v in per_widget] == ["cloudwatch-dashboard"]
    assert "'w0' has 501 metrics" in per_widget[0].message
    total = violations(dashboard([500, 500, 500, 500, 500, 1]))
    assert len(total) == 1 and "2,501 metrics" in total[0].message


def test_rest_api_resources() -> None:
    api = res("aws:apigateway/restApi:RestApi", "ingest-api", id_="api-1", name="a")
    paths = [res("aws:apigateway/resource:Resource", f"p{i}", restApi="api-1")
             for i in range(301)]
    assert [v.rule for v in violations(api, *paths)] == ["apigateway-resources"]
    assert violations(api, *paths[:300]) == []


@pytest.mark.parametrize("tags, phrase", [
    ({f"k{i}": "v" for i in range(51)}, "51 tags"),
    ({"k" * 129: "v"}, "129 characters"),
    ({"k": "v" * 257}, "257 characters"),
    ({"aws:owner": "me"}, "reserved prefix"),
])
def test_tags_on_any_resource(tags: dict[str, str], phrase: str) -> None:
    found = violations(res("aws:sqs/queue:Queue", "q", name="q", tags=tags))
    assert [v.rule for v in found] == ["tags"] and phrase in found[0].message
    ok = {f"k{i}": "v" * 256 for i in range(50)}
    assert violations(res("aws:sqs/queue:Queue", "q", name="q", tags=ok)) == []


def test_every_rule_has_a_failing_case() -> None:
    covered = {rule for rule, *_ in RULE_CASES} | {
        "iam-role-inline-policies", "iam-managed-policy", "iam-trust-policy",
        "iam-attached-policies", "iam-role-name", "lambda-function-name",
        "lambda-environment", "lambda-description", "event-source-mapping",
        "s3-bucket-name", "apigateway-resources", "tags",
    }
    assert {r.id for r in RULES} <= covered
    assert len({r.id for r in RULES}) == len(RULES), "rule ids are unique"
    for rule in RULES:
        assert rule.source.startswith("https://docs.aws.amazon.com/"), rule.id


def test_unknown_values_are_not_judged() -> None:
    unknown = aws_limits.UNKNOWN
    assert violations(*role_with("r", policy_of(10_300).replace("bbbb", unknown, 1))) == []


# -- the stack config, before anything is declared ---------------------------------------
def settings_with(**raw: Any) -> Any:
    """Typed settings as the models accept them (whether or not `load_settings` also runs
    `config_problems`, which these tests call directly)."""
    data = {"environment": "unit", "tables": {"t": {"partition_key": {"name": "id"}}}, **raw}
    return StackSettings.model_validate(data)


@pytest.mark.parametrize("env", ["qa-", "qa--eu", "a-"])
def test_environment_names_dms_refuses(env: str) -> None:
    problems = config_problems(settings_with(environment=env))
    assert len(problems) == 1
    assert problems[0].startswith(f"environment: {env!r}") and "DMS" in problems[0]


def test_config_tags_over_the_limits() -> None:
    assert config_problems(settings_with(environment="qa-eu-1", tags={"team": "x"})) == []
    many = config_problems(settings_with(tags={f"k{i}": "v" for i in range(49)}))
    assert len(many) == 1 and "50 tags per resource" in many[0] and "at most 48" in many[0]
    long_value = config_problems(settings_with(tags={"team": "t" * 257}))
    assert long_value == [
        "tags.team: value has 257 characters; AWS allows 256 per tag value; shorten it"]
    assert "128 per tag key" in config_problems(settings_with(tags={"k" * 129: "v"}))[0]
    assert "allowed" in config_problems(settings_with(tags={"team": "a;b"}))[0]


# -- the offline plan: every stack file and generated stacks -----------------------------
STACKS = sorted(stack_files(STACKS_DIR))


@cache
def planned(stack: str) -> tuple[Plan, Report]:
    plan = run_stack(stack, stack_dir=STACKS_DIR)
    return plan, evaluate(plan)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_plans_within_aws_limits(stack: str) -> None:
    _plan, report = planned(stack)
    assert [v.line() for v in report.violations] == []
    assert report.resources_checked > 20


@pytest.mark.parametrize("stack", STACKS)
def test_policies_are_judged_as_the_json_text_sent_to_aws(stack: str) -> None:
    # The mocks resolve every Output: each policy the rules measure is the final JSON text.
    plan, _report = planned(stack)
    policies = [r for r in plan.resources if r.type == ROLE_POLICY]
    assert policies
    for p in policies:
        text = p.inputs["policy"]
        assert isinstance(text, str) and aws_limits.known(text), p.name
        assert json.loads(text)["Version"] == "2012-10-17"
        assert policy_size(text) == len(json.dumps(json.loads(text), separators=(",", ":")))
        assert Context(plan.resources).role_of(p.inputs["role"]) is not None, p.name


#: A DMS source for generated stacks (values made up here, not read from a stack file).
GENERATED_DMS: dict[str, Any] = {
    "capacity": {"mode": "serverless", "min_capacity_units": 1, "max_capacity_units": 4},
    "network": {"vpc_id": "vpc-0a1b2c3d4e5f60718",
                "subnet_ids": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                "source_cidrs": ["10.20.0.0/24"]},
    "account_roles": "existing",
    "source": {"engine": "postgres", "server": "db.example.com", "port": 5432,
               "database": "erp", "ssl_mode": "require",
               "secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gen-a1B2c3"},
    "default_schema": "sales",
}


def write_stack(folder: Path, tables: int, *, dms: bool = False, **extra: Any) -> str:
    """A stack file of `tables` declared tables (and a DMS source feeding them if `dms`)."""
    config: dict[str, Any] = {
        "aws:region": "eu-west-1",
        "dms-event-bus:tables": {
            f"table_{i:04d}": {"partition_key": {"name": "id", "type": "S"}}
            for i in range(tables)
        },
        **({"dms-event-bus:dms": GENERATED_DMS} if dms else {}),
        **{f"dms-event-bus:{k}": v for k, v in extra.items()},
    }
    (folder / "Pulumi.gen.yaml").write_text(yaml.safe_dump({"config": config}))
    return "gen"


@pytest.mark.parametrize("tables", [1, 100])
def test_generated_stacks_plan_within_aws_limits(
    tables: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stack file of `tables` declared tables, fed by DMS
    stack = write_stack(tmp_path, tables, dms=True)
    # WHEN the offline plan runs it
    code = plan_tool.main(["--stack", stack, "--stack-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    # THEN no AWS limit is passed: nothing grows per table where AWS caps it
    assert [line for line in err.splitlines() if line.startswith("error:")] == []
    assert code == 0
    assert out.splitlines()[-1].endswith(" resources checked, 0 violations")
    assert out.splitlines()[-1].startswith(f"AWS limits: {len(RULES)} rules, ")


def test_plan_exits_2_naming_each_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a one-table stack, checked against a role name limit of 10 characters
    stack = write_stack(tmp_path, 1)
    tight = aws_limits._name_check("iam-role-name", "name", "role name",
                                   aws_limits._max_len(10, aws_limits.ROLE_NAME, "x"),
                                   "shorten")
    monkeypatch.setattr(aws_limits, "RULES", [
        dataclasses.replace(r, check=tight) if r.id == "iam-role-name" else r
        for r in aws_limits.RULES])
    # WHEN the plan runs, as JSON
    code = plan_tool.main(["--stack", stack, "--stack-dir", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    # THEN it exits 2 with one line per role, naming the resource, and the JSON says so too
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines and all("[Role]: role name 'dmsbus-gen-" in line for line in lines)
    assert any(line.startswith("error: bus-fanin-role [Role]") for line in lines)
    assert re.search(rf" {len(lines)} violations?$", err.splitlines()[-1])
    limits = json.loads(out)["limits"]
    assert len(limits["violations"]) == len(lines)
    assert {v["rule"] for v in limits["violations"]} == {"iam-role-name"}


@pytest.mark.parametrize("extra, phrase", [
    ({"environment": "qa--eu"}, "two consecutive hyphens"),
    ({"tags": {"owner": "o" * 300}}, "AWS allows 256 per tag value"),
])
def test_oversized_config_exits_2_before_anything_is_declared(
    extra: dict[str, Any], phrase: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = write_stack(tmp_path, 1, **extra)

    def must_not_run(*_a: Any, **_k: Any) -> Plan:
        raise AssertionError("the program ran: resources were declared")

    monkeypatch.setattr(plan_tool, "run_stack", must_not_run)
    assert plan_tool.main(["--stack", stack, "--stack-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert phrase in err
    assert "Traceback" not in err


def test_mis_keyed_config_exits_2_before_anything_is_declared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = write_stack(tmp_path, 1, tagz={"team": "x"})
    monkeypatch.setattr(plan_tool, "run_stack", lambda *a, **k: pytest.fail("declared"))
    assert plan_tool.main(["--stack", stack, "--stack-dir", str(tmp_path)]) == 2
    assert "dms-event-bus:tagz: no such key" in capsys.readouterr().err


def test_rules_evaluate_a_thousand_table_graph_in_seconds() -> None:
    # The rules stay linear in the graph: 1,000 tables' worth of resources evaluate in well
    # under a second. (Planning a whole 1,000-table stack under mocks takes minutes, the
    # program's evaluation, not the rules': measured in docs/limits.md.)
    tables = [res("aws:dynamodb/table:Table", f"t{i}-table", name=f"dmsbus-x-t{i}",
                  tags={"project": "p"}) for i in range(1_000)]
    mappings = [res(MAPPING, f"m{i}", **GOOD_MAPPING) for i in range(1_000)]
    roles = [r for i in range(50) for r in role_with(f"r{i}", policy_of(2_000))]
    started = time.perf_counter()
    report = evaluate(graph(*tables, *mappings, *roles))
    assert time.perf_counter() - started < 5
    # tables, mappings, roles and their policies (judged via their role)
    assert report.violations == [] and report.resources_checked == 2_100


@settings(max_examples=25, deadline=None)
@given(extra=st.integers(min_value=1, max_value=5_000), spaces=st.integers(0, 3))
def test_inline_policy_limit_is_exact_whatever_the_formatting(extra: int, spaces: int) -> None:
    doc = json.loads(policy_of(10_240 + extra))
    text = json.dumps(doc, indent=spaces or None)
    found = violations(*role_with("r", text))
    assert [v.rule for v in found] == ["iam-role-inline-policies"]
    assert f"{10_240 + extra:,} characters" in found[0].message


def test_docs_list_exactly_the_rules() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "limits.md").read_text()
    graph_rules = doc.split("## The rules")[1].split("\n## ")[0]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", graph_rules, flags=re.MULTILINE)
    assert listed == [r.id for r in RULES]
    assert f"{len(RULES)} rules" in doc


def test_longest_names_the_config_allows_plan_within_aws_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the longest environment (16), logical names (63) and region name the config takes
    longest = "t" + "_x" * 31  # 63 characters, the LogicalName pattern's maximum
    config: dict[str, Any] = {
        "aws:region": "ap-southeast-7",
        "dms-event-bus:environment": "abcdefghij-klmno",
        "dms-event-bus:tables": {
            longest: {"partition_key": {"name": "id"}},
            longest[:-1] + "y": {"partition_key": {"name": "id"}},
        },
        "dms-event-bus:bus": {"archive": {"enabled": True, "expire_days": 30},
                              "overflow": {"expire_days": 30}},
        "dms-event-bus:ingest_api": {
            "auth": "api_key",
            "api_key_consumers": [longest],
            "entities": {longest: {"fields": {"a": {"type": "string"}}}},
        },
    }
    (tmp_path / "Pulumi.long.yaml").write_text(yaml.safe_dump({"config": config}))
    # WHEN the offline plan runs it
    code = plan_tool.main(["--stack", "long", "--stack-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    # THEN every physical name built from them is within AWS's limits
    assert [line for line in err.splitlines() if line.startswith("error")] == []
    assert code == 0 and out.splitlines()[-1].endswith(", 0 violations")
    assert "dmsbus-abcdefghij-klmno-overflow-123456789012-ap-southeast-7" in out


def test_nothing_aws_caps_grows_per_table(tmp_path_factory: pytest.TempPathFactory) -> None:
    # GIVEN the same stack with 1 and with 100 declared tables (fed by DMS), and as many
    # tables DMS created at run time (adopted: discovery finds them in the account)
    sizes: dict[int, dict[str, int]] = {}
    for tables in (1, 100):
        folder = tmp_path_factory.mktemp(f"tables{tables}")
        found: dict[str, Any] = {
            "names": [f"dmsbus-gen-audit_{i:04d}" for i in range(tables)], "id": "x"}

        def discovered(_args: dict[str, Any], found: dict[str, Any] = found) -> dict[str, Any]:
            return found

        plan = run_stack(write_stack(folder, tables, dms=True), stack_dir=folder,
                         invoke_answers={"aws:dynamodb/getTables:getTables": discovered})
        # WHEN the sizes AWS caps are measured: each role's inline policies, each
        # function's environment
        ctx = Context(plan.resources)
        measured: dict[str, int] = {}
        for r in plan.resources:
            if r.type == ROLE_POLICY:
                role = ctx.role_of(r.inputs["role"])
                key = f"inline policies of {role.name if role else r.name}"
                measured[key] = measured.get(key, 0) + policy_size(r.inputs["policy"])
            if r.type == FUNCTION:
                env = (r.inputs.get("environment") or {}).get("variables") or {}
                measured[f"environment of {r.name}"] = lambda_env_size(env)
        sizes[tables] = measured
    # THEN none of them grows with the number of tables (the table counts never show up)
    assert "inline policies of bus-fanin-role" in sizes[1]
    assert "inline policies of dms-target-role" in sizes[1]
    assert "environment of bus-fanin" in sizes[1]
    assert "inline policies of backfill-role" in sizes[1], "adopted tables were found"
    grown = {k: (sizes[1][k], v) for k, v in sizes[100].items() if v != sizes[1].get(k)}
    assert grown == {}, f"grows per table (1 table, 100 tables): {grown}"


def test_malformed_stack_file_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  dms-event-bus:tables: [unclosed\n")
    assert plan_tool.main(["--stack", "bad", "--stack-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Pulumi.bad.yaml:3:1: not valid YAML: ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
