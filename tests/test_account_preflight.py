"""Account preflight (tools/account_preflight.py): the key-policy evaluator as properties, and
the checks against moto accounts — one set up as docs/account.md says, one broken per check.

moto serves IAM (with AWS's managed policies loaded), API Gateway's account settings, KMS, SNS
and Secrets Manager. It does not serve Lambda's GetAccountSettings: a botocore Stubber answers
that one client's calls (the account's concurrency quota) and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from dms_event_bus.components.alarm_topic import publisher_key_statements
from tests.conftest import ROOT
from tools import account_preflight as cli
from tools.account.checks import (
    account_key_statement,
    events_key_statement,
    logs_key_statement,
)
from tools.account.keypolicy import Principal, Request, decide, glob_match, missing_actions
from tools.account.needs import SecretRef, StackNeeds
from tools.account.trail import check_cloudtrail, logs_management_writes

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
STACK = "acct"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-4000-8000-000000000000"
MOTO_CONFIG: Any = {"iam": {"load_aws_managed_policies": True}}

# =========================================================================== key policies

ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
ROLE = Principal.role(f"arn:aws:iam::{ACCOUNT}:role/dmsbus-{STACK}-fanin")
OTHER_ROLE = Principal.role("arn:aws:iam::999999999999:role/intruder")
LOGS = Principal.service(f"logs.{REGION}.amazonaws.com")
LOG_ARN = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/dmsbus-{STACK}-fanin"
LOGS_CONTEXT = {"kms:EncryptionContext:aws:logs:arn": LOG_ARN}
KMS_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey",
               "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey", "kms:CreateGrant"]


def one_or_list(value: str) -> st.SearchStrategy[Any]:
    return st.sampled_from([value, [value]])


def principal_forms(who: Principal) -> st.SearchStrategy[Any]:
    """Every way a key policy can name `who` (or everyone)."""
    if who.kind == "Service":
        named = one_or_list(who.name).map(lambda v: {"Service": v})
    else:
        named = st.sampled_from([who.name, who.account, ROOT_ARN]).flatmap(one_or_list).map(
            lambda v: {"AWS": v})
    return st.one_of(named, st.just("*"), one_or_list("*").map(lambda v: {"AWS": v}))


def action_forms(action: str) -> st.SearchStrategy[Any]:
    service, name = action.split(":")
    prefixes = [name[:i] + "*" for i in range(len(name) + 1)]
    patterns = [action, action.upper(), "*", f"{service}:*", *(f"{service}:{p}" for p in prefixes)]
    return st.sampled_from(patterns).flatmap(one_or_list)


@st.composite
def allowing_statement(draw: st.DrawFn, who: Principal, action: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": draw(principal_forms(who)),
            "Action": draw(action_forms(action)), "Resource": draw(one_or_list("*"))}


unrelated = st.fixed_dictionaries({
    "Effect": st.sampled_from(["Allow", "Deny"]),
    "Principal": st.sampled_from([{"AWS": OTHER_ROLE.name}, {"Service": "sns.amazonaws.com"},
                                  {"AWS": ["arn:aws:iam::999999999999:root"]}]),
    "Action": st.sampled_from(["kms:*", "*", ["kms:Decrypt", "kms:Encrypt"]]),
    "Resource": st.just("*"),
})


@settings(max_examples=150, deadline=None)
@given(data=st.data(), who=st.sampled_from([ROLE, LOGS]), action=st.sampled_from(KMS_ACTIONS))
def test_an_allowing_statement_allows_in_every_spelling(data: st.DataObject, who: Principal,
                                                        action: str) -> None:
    # GIVEN a statement naming the principal and matching the action, in any of the forms a
    # key policy may spell them, among statements about other principals
    statement = data.draw(allowing_statement(who, action))
    others = data.draw(st.lists(unrelated, max_size=3))
    order = data.draw(st.permutations([statement, *others]))
    policy = {"Version": "2012-10-17", "Statement": order}
    # THEN the request is allowed, whatever the order
    assert decide(policy, Request(who, action, KEY)) == "allow"


@settings(max_examples=150, deadline=None)
@given(data=st.data(), who=st.sampled_from([ROLE, LOGS]), action=st.sampled_from(KMS_ACTIONS))
def test_a_matching_deny_wins_over_any_allow(data: st.DataObject, who: Principal,
                                             action: str) -> None:
    allow = data.draw(allowing_statement(who, action))
    deny = {**data.draw(allowing_statement(who, action)), "Effect": "Deny"}
    policy = {"Statement": data.draw(st.permutations([allow, deny]))}
    assert decide(policy, Request(who, action, KEY)) == "deny"


@settings(max_examples=100, deadline=None)
@given(statements=st.lists(unrelated, max_size=4), action=st.sampled_from(KMS_ACTIONS))
def test_statements_about_other_principals_never_allow(statements: list[dict[str, Any]],
                                                       action: str) -> None:
    assert decide({"Statement": statements}, Request(ROLE, action, KEY)) != "allow"
    assert decide({"Statement": statements}, Request(LOGS, action, KEY)) != "allow"


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(KMS_ACTIONS), other=st.sampled_from(KMS_ACTIONS))
def test_wildcard_actions_match_by_prefix_only(name: str, other: str) -> None:
    # kms:GenerateDataKey* covers GenerateDataKey and ...WithoutPlaintext, not Decrypt
    pattern = name + "*"
    assert glob_match(pattern, other, ignore_case=True) == other.lower().startswith(name.lower())


def test_a_service_statement_does_not_cover_the_account_roles_and_vice_versa() -> None:
    policy = {"Statement": [
        {"Effect": "Allow", "Principal": {"Service": LOGS.name}, "Action": "kms:*",
         "Resource": "*"}]}
    assert decide(policy, Request(ROLE, "kms:Decrypt", KEY)) == "implicit"
    policy = {"Statement": [account_key_statement(account=ACCOUNT)]}
    assert decide(policy, Request(LOGS, "kms:Decrypt", KEY)) == "implicit"
    assert decide(policy, Request(ROLE, "kms:Decrypt", KEY)) == "allow"
    assert decide(policy, Request(OTHER_ROLE, "kms:Decrypt", KEY)) == "implicit"


def test_the_logs_statement_needs_the_log_group_context() -> None:
    policy = {"Statement": [logs_key_statement(account=ACCOUNT, region=REGION)]}
    assert missing_actions(policy, LOGS, ["kms:GenerateDataKey", "kms:Decrypt"], KEY,
                           LOGS_CONTEXT) == []
    # another account's log group, or no encryption context: not allowed
    foreign = {"kms:EncryptionContext:aws:logs:arn": LOG_ARN.replace(ACCOUNT, "999999999999")}
    assert missing_actions(policy, LOGS, ["kms:Decrypt"], KEY, foreign) == ["kms:Decrypt"]
    assert missing_actions(policy, LOGS, ["kms:Decrypt"], KEY, {}) == ["kms:Decrypt"]
    # the logs principal of another region is another principal
    other_region = Principal.service("logs.us-east-1.amazonaws.com")
    assert decide(policy, Request(other_region, "kms:Decrypt", KEY, LOGS_CONTEXT)) == "implicit"


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"StringEquals": {"kms:ViaService": "dynamodb.eu-west-1.amazonaws.com"}},
         {"kms:ViaService": "dynamodb.eu-west-1.amazonaws.com"}, "allow"),
        ({"StringEquals": {"kms:ViaService": ["sqs.eu-west-1.amazonaws.com",
                                              "dynamodb.eu-west-1.amazonaws.com"]}},
         {"kms:ViaService": "dynamodb.eu-west-1.amazonaws.com"}, "allow"),
        ({"StringEquals": {"kms:ViaService": "sqs.eu-west-1.amazonaws.com"}},
         {"kms:ViaService": "dynamodb.eu-west-1.amazonaws.com"}, "implicit"),
        ({"StringLike": {"kms:ViaService": "*.eu-west-1.amazonaws.com"}},
         {"kms:ViaService": "kinesis.eu-west-1.amazonaws.com"}, "allow"),
        # a key missing from the context: false, except negated operators and IfExists
        ({"StringEquals": {"kms:ViaService": "dynamodb.eu-west-1.amazonaws.com"}}, {},
         "implicit"),
        ({"StringNotEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}, {}, "allow"),
        ({"StringEqualsIfExists": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}, {},
         "allow"),
        # negated operator with several values: none may match
        ({"StringNotEquals": {"kms:ViaService": ["s3.eu-west-1.amazonaws.com",
                                                 "sqs.eu-west-1.amazonaws.com"]}},
         {"kms:ViaService": "sqs.eu-west-1.amazonaws.com"}, "implicit"),
        ({"Null": {"kms:ViaService": "false"}}, {"kms:ViaService": "x"}, "allow"),
        ({"Null": {"kms:ViaService": "false"}}, {}, "implicit"),
        ({"Bool": {"kms:GrantIsForAWSResource": "true"}},
         {"kms:GrantIsForAWSResource": "true"}, "allow"),
        # condition keys are case-insensitive
        ({"StringEquals": {"KMS:viaservice": "a"}}, {"kms:ViaService": "a"}, "allow"),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {}, "allow"),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}},
         {"aws:TagKeys": ["a", "c"]}, "implicit"),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}},
         {"aws:TagKeys": ["c", "b"]}, "allow"),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {}, "implicit"),
        # an operator we do not evaluate never allows
        ({"NumericLessThan": {"kms:ViaService": "1"}}, {"kms:ViaService": "0"}, "implicit"),
    ],
)
def test_conditions(condition: dict[str, Any], context: dict[str, Any], expected: str) -> None:
    policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROOT_ARN},
                             "Action": "kms:*", "Resource": "*", "Condition": condition}]}
    assert decide(policy, Request(ROLE, "kms:Decrypt", KEY, context)) == expected


def test_deny_with_an_unknown_operator_denies_and_not_principal_excludes() -> None:
    allow = account_key_statement(account=ACCOUNT)
    deny = {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}}
    assert decide({"Statement": [allow, deny]}, Request(ROLE, "kms:Decrypt", KEY)) == "deny"
    # Deny everyone except the account's roles: our role is not denied
    deny_others = {"Effect": "Deny", "NotPrincipal": {"AWS": ROOT_ARN}, "Action": "kms:*",
                   "Resource": "*"}
    assert decide({"Statement": [allow, deny_others]}, Request(ROLE, "kms:Decrypt", KEY)) \
        == "allow"
    # Deny by NotAction: everything but Decrypt is denied
    deny_but = {"Effect": "Deny", "Principal": "*", "NotAction": "kms:Decrypt", "Resource": "*"}
    policy = {"Statement": [allow, deny_but]}
    assert missing_actions(policy, ROLE, ["kms:Decrypt", "kms:Encrypt"], KEY) == ["kms:Encrypt"]


# =========================================================================== moto accounts


def runbook_key_policy(account: str, region: str) -> dict[str, Any]:
    """The external key's policy as docs/account.md and docs/runbook.md tell its owner to
    write it: the account's IAM policies decide, CloudWatch Logs of the region, the alarm
    topic's publishers."""
    return {"Version": "2012-10-17", "Statement": [
        account_key_statement(account=account),
        logs_key_statement(account=account, region=region),
        *publisher_key_statements(account=account, region=region),
    ]}


def stack_config(key: str, topic: str, dms_secret: str, wb_secret: str,
                 region: str | None = REGION, reserved: int = 4) -> dict[str, Any]:
    ns = "dms-event-bus"
    config: dict[str, Any] = {
        f"{ns}:encryption": {"kms_key_arn": key},
        f"{ns}:tables": {"orders": {"partition_key": {"name": "order_id", "type": "N"}}},
        f"{ns}:alarms": {"sns_topic_arn": topic},
        f"{ns}:dms": {
            "capacity": {"mode": "instance"},
            "network": {"vpc_id": "vpc-0a1b2c3d4e5f60718",
                        "subnet_ids": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                        "source_cidrs": ["10.1.0.0/16"]},
            "source": {"engine": "postgres", "server": "db.internal", "database": "erp",
                       "secret_arn": dms_secret, "secret_kms_key_arn": key},
            "default_schema": "sales",
        },
        f"{ns}:ingest_api": {"entities": {"order_requests": {
            "fields": {"sku": {"type": "string", "required": True}}}}},
        f"{ns}:writeback": {
            "target": {"kind": "data_api", "secret_arn": wb_secret, "database": "erp",
                       "cluster_arn": f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:erp"},
            "vpc": {"subnet_ids": ["subnet-0b1c2d3e4f5a60001"],
                    "security_group_ids": ["sg-0b1c2d3e4f5a60718"]},
            "tables": {"order_requests": {"legacy_table": "sales.order_requests",
                                          "key_columns": {"id": "request_id"},
                                          "columns": {"sku": "sku"},
                                          "version_column": "row_version"}},
            "function": {"reserved_concurrency": reserved},
        },
    }
    if region:
        config["aws:region"] = region
    return config


def write_stack(folder: Path, config: dict[str, Any], name: str = STACK) -> Path:
    path = folder / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return folder


class Account:
    """A moto account: what docs/account.md sets up, then broken one piece at a time."""

    made = 0

    def __init__(self, quota: int = 1000, unreserved: int | None = None) -> None:
        Account.made += 1
        n = Account.made
        self.quota = quota
        self.unreserved = quota if unreserved is None else unreserved
        self.kms = boto3.client("kms", region_name=REGION)
        created = self.kms.create_key(Description="stack key",
                                      Policy=json.dumps(runbook_key_policy(ACCOUNT, REGION)))
        self.key_id = created["KeyMetadata"]["KeyId"]
        self.key = created["KeyMetadata"]["Arn"]
        self.topic = boto3.client("sns", region_name=REGION).create_topic(
            Name=f"platform-oncall-{n}", Attributes={"KmsMasterKeyId": self.key})["TopicArn"]
        sm = boto3.client("secretsmanager", region_name=REGION)
        self.dms_secret = sm.create_secret(Name=f"dmsbus/erp-source-{n}", SecretString="{}",
                                           KmsKeyId=self.key)["ARN"]
        self.wb_secret = sm.create_secret(Name=f"dmsbus/erp-writeback-{n}",
                                          SecretString="{}")["ARN"]
        self.token_secret = sm.create_secret(Name=f"dmsbus-{STACK}-github-dispatch-{n}",
                                             SecretString="not-a-real-token")["ARN"]

    def config(self, **kw: Any) -> dict[str, Any]:
        return stack_config(self.key, self.topic, self.dms_secret, self.wb_secret, **kw)

    def clients(self, functions: tuple[str, ...] = (f"dmsbus-{STACK}-writeback",)) -> Any:
        """Real moto clients, except Lambda: a Stubber answers the quota and, for each of the
        stack's functions, that it does not exist yet."""
        lam = boto3.client("lambda", region_name=REGION)
        stub = Stubber(lam)
        stub.add_response("get_account_settings", {"AccountLimit": {
            "ConcurrentExecutions": self.quota,
            "UnreservedConcurrentExecutions": self.unreserved}})
        for name in functions:
            stub.add_client_error("get_function_concurrency", "ResourceNotFoundException",
                                  expected_params={"FunctionName": name})
        stub.activate()
        cache: dict[tuple[str, str], Any] = {("lambda", REGION): lam}

        def make(service: str, region: str) -> Any:
            if (service, region) not in cache:
                cache[(service, region)] = boto3.client(service, region_name=region)
            return cache[(service, region)]

        return make


@pytest.fixture(scope="module")
def _moto_session() -> Iterator[None]:
    """One moto session for the module: loading AWS's managed policies into moto's IAM takes
    seconds, so the account is shared and `aws` restores it before each test."""
    with mock_aws(config=MOTO_CONFIG):
        yield


@pytest.fixture
def aws(_moto_session: None) -> Iterator[None]:
    """The account as docs/account.md leaves it: bootstrap run (it recreates whatever an
    earlier test broke: it only adds what is missing). Each test then makes its own key,
    topic and secrets (`Account`)."""
    bootstrap()
    yield


def bootstrap(region: str = REGION) -> None:
    assert cli.main(["bootstrap", "--region", region, "--apply"]) == 0


def unset_apigateway_role() -> None:
    # (test setup only: moto lets the setting be emptied; the bootstrap never does this)
    boto3.client("apigateway", region_name=REGION).update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": ""}])


@pytest.fixture(scope="module")
def planned_needs(tmp_path_factory: pytest.TempPathFactory) -> StackNeeds:
    """The stack's needs from its offline plan (run once), with placeholder ARNs that each test
    binds to its own moto account (`bind`)."""
    folder = tmp_path_factory.mktemp("stack")
    config = stack_config(KEY, f"arn:aws:sns:{REGION}:{ACCOUNT}:placeholder",
                          f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:dms-AAAAAA",
                          f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:wb-BBBBBB")
    write_stack(folder, config)
    settings, _ = cli.load_stack(STACK, folder)
    return cli.needs_of(STACK, settings, folder, REGION)


def bind(needs: StackNeeds, account: Account) -> StackNeeds:
    return dataclasses.replace(
        needs,
        kms_key_arn=account.key,
        alarm_topic_arn=account.topic,
        secrets=(SecretRef(account.dms_secret, "dms-event-bus:dms.source.secret_arn",
                           account.key),
                 SecretRef(account.wb_secret, "dms-event-bus:writeback.target.secret_arn",
                           account.key)),
    )


def lines(checks: list[Any]) -> dict[str, str]:
    return {c.name: c.line() for c in checks}


def failed(checks: list[Any]) -> dict[str, str]:
    return {c.name: c.line() for c in checks if not c.ok}


def test_the_plan_tells_what_the_account_must_provide(planned_needs: StackNeeds) -> None:
    needs = planned_needs
    assert needs.api_logging and needs.dms
    assert needs.reserved_concurrency == {f"dmsbus-{STACK}-writeback": 4}
    assert f"/aws/lambda/dmsbus-{STACK}-fanin" in needs.key_log_groups
    assert f"/aws/apigateway/dmsbus-{STACK}-ingest/access" in needs.key_log_groups
    assert f"/aws/lambda/dmsbus-{STACK}-writeback" in needs.key_log_groups
    assert {"dynamodb", "kinesis", "sqs", "lambda"} <= needs.key_services
    assert f"dmsbus-{STACK}-fanin" in needs.roles
    assert not any(r.startswith("dms-") for r in needs.roles)  # account roles are not ours
    assert {"cloudwatch.amazonaws.com", "dms.amazonaws.com"} <= needs.alarm_publishers
    assert needs.alarm_names
    assert all(n.startswith(f"dmsbus-{STACK}-") for n in needs.alarm_names)
    assert [s.key_path for s in needs.secrets] == ["dms-event-bus:dms.source.secret_arn",
                                                  "dms-event-bus:writeback.target.secret_arn"]


def test_a_good_account_passes_every_check_through_the_command(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an account set up as docs/account.md says: bootstrap, then the key and secrets
    account = Account()
    folder = write_stack(tmp_path, account.config())
    # WHEN the preflight runs for the stack
    code = cli.main(["check", "--stack", STACK, "--stack-dir", str(folder)],
                    clients_factory=account.clients)
    out = capsys.readouterr().out
    # THEN every check passes, one line each
    assert code == 0, out
    passed = [line for line in out.splitlines() if line.startswith("PASS ")]
    expected = [
        "API Gateway CloudWatch role",
        "KMS key",
        "KMS key policy: CloudWatch Logs",
        "KMS key policy: account roles",
        "alarm topic key",
        "DMS role dms-vpc-role",
        "DMS role dms-cloudwatch-logs-role",
        "Lambda concurrency",
        "secret dms.source.secret_arn",
        "secret writeback.target.secret_arn",
    ]
    assert len(passed) == len(expected), out
    for line, name in zip(passed, expected, strict=True):
        assert line.startswith(f"PASS {name}: "), out
    assert "FAIL" not in out
    assert "# summary: 10/10 checks passed" in out


def test_no_api_gateway_role_fails_through_the_command(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, planned_needs: StackNeeds,
) -> None:
    unset_apigateway_role()
    account = Account()
    folder = write_stack(tmp_path, account.config())
    # the stack's needs as planned once for this module (planning again takes seconds)
    monkeypatch.setattr(cli, "needs_of", lambda *a: bind(planned_needs, account))
    code = cli.main(["check", "--stack", STACK, "--stack-dir", str(folder)],
                    clients_factory=account.clients)
    out = capsys.readouterr().out
    assert code == 1
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1, out
    assert fails[0].startswith("FAIL API Gateway CloudWatch role: no CloudWatch Logs role set")
    assert "CloudWatch Logs role ARN must be set in account settings" in fails[0]
    assert "bootstrap --region eu-west-1 --apply" in fails[0]


def test_api_gateway_role_that_api_gateway_cannot_assume(aws: None,
                                                         planned_needs: StackNeeds) -> None:
    iam = boto3.client("iam")
    wrong = iam.create_role(RoleName="not-for-apigw", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}],
    }))["Role"]["Arn"]
    apigw = boto3.client("apigateway", region_name=REGION)
    good = apigw.get_account()["cloudwatchRoleArn"]
    apigw.update_account(patchOperations=[
        {"op": "replace", "path": "/cloudwatchRoleArn", "value": wrong}])
    try:
        bad = failed(run(planned_needs, Account()))
    finally:
        apigw.update_account(patchOperations=[
            {"op": "replace", "path": "/cloudwatchRoleArn", "value": good}])
        iam.delete_role(RoleName="not-for-apigw")
    assert list(bad) == ["API Gateway CloudWatch role"]
    assert "does not let apigateway.amazonaws.com assume it" in bad["API Gateway CloudWatch role"]


def run(needs: StackNeeds, account: Account) -> list[Any]:
    return cli.run_checks(account.clients(), bind(needs, account), REGION, ACCOUNT,
                          f"arn:aws:iam::{ACCOUNT}:role/deployer")


def test_good_account_every_check_passes(aws: None, planned_needs: StackNeeds) -> None:
    account = Account()
    checks = run(planned_needs, account)
    assert failed(checks) == {}
    assert len(checks) == 10


def test_key_disabled(aws: None, planned_needs: StackNeeds) -> None:
    account = Account()
    account.kms.disable_key(KeyId=account.key_id)
    bad = failed(run(planned_needs, account))
    # the secret and the alarm topic use the same key here: they fail with it
    assert set(bad) == {"KMS key", "alarm topic key", "secret dms.source.secret_arn"}
    assert "Disabled" in bad["KMS key"] and "enable the key" in bad["KMS key"]


def test_key_policy_without_cloudwatch_logs(aws: None, planned_needs: StackNeeds) -> None:
    account = Account()
    policy = runbook_key_policy(ACCOUNT, REGION)
    policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "CloudWatchLogsUseKey"]
    account.kms.put_key_policy(KeyId=account.key_id, PolicyName="default",
                               Policy=json.dumps(policy))
    bad = failed(run(planned_needs, account))
    assert list(bad) == ["KMS key policy: CloudWatch Logs"]
    line = bad["KMS key policy: CloudWatch Logs"]
    assert f"logs.{REGION}.amazonaws.com may not use the key" in line
    assert f"/aws/lambda/dmsbus-{STACK}-fanin" in line
    assert "docs/runbook.md" in line


def test_key_policy_limited_to_some_services(aws: None, planned_needs: StackNeeds) -> None:
    # the account statement only lets DynamoDB use the key: Kinesis, SQS, Lambda... fail
    account = Account()
    policy = runbook_key_policy(ACCOUNT, REGION)
    policy["Statement"][0]["Condition"] = {
        "StringEquals": {"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com"}}
    account.kms.put_key_policy(KeyId=account.key_id, PolicyName="default",
                               Policy=json.dumps(policy))
    bad = failed(run(planned_needs, account))
    # the DMS source secret is on the same key: its readers are kept out of Secrets Manager
    assert list(bad) == ["KMS key policy: account roles", "secret dms.source.secret_arn"]
    line = bad["KMS key policy: account roles"]
    assert "through dms, kinesis, lambda, s3, sqs " in line, line
    assert "dynamodb" not in line.split(" — fix:")[0]


def test_alarm_topic_key_without_publishers(aws: None, planned_needs: StackNeeds) -> None:
    account = Account()
    policy = {"Version": "2012-10-17", "Statement": [
        account_key_statement(account=ACCOUNT), logs_key_statement(account=ACCOUNT,
                                                                   region=REGION)]}
    account.kms.put_key_policy(KeyId=account.key_id, PolicyName="default",
                               Policy=json.dumps(policy))
    bad = failed(run(planned_needs, account))
    assert list(bad) == ["alarm topic key"]
    assert "cloudwatch.amazonaws.com" in bad["alarm topic key"]
    assert "dms.amazonaws.com" in bad["alarm topic key"]


def test_missing_dms_vpc_role(aws: None, planned_needs: StackNeeds) -> None:
    iam = boto3.client("iam")
    iam.detach_role_policy(RoleName="dms-vpc-role", PolicyArn=(
        "arn:aws:iam::aws:policy/service-role/AmazonDMSVPCManagementRole"))
    iam.delete_role(RoleName="dms-vpc-role")
    account = Account()
    bad = failed(run(planned_needs, account))
    assert list(bad) == ["DMS role dms-vpc-role"]
    assert "missing" in bad["DMS role dms-vpc-role"]
    assert "bootstrap" in bad["DMS role dms-vpc-role"]


def test_dms_role_without_its_managed_policy(aws: None, planned_needs: StackNeeds) -> None:
    boto3.client("iam").detach_role_policy(
        RoleName="dms-cloudwatch-logs-role",
        PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonDMSCloudWatchLogsRole")
    bad = failed(run(planned_needs, Account()))
    assert list(bad) == ["DMS role dms-cloudwatch-logs-role"]
    assert "without AmazonDMSCloudWatchLogsRole" in bad["DMS role dms-cloudwatch-logs-role"]


def test_concurrency_quota_of_a_new_account(aws: None, planned_needs: StackNeeds) -> None:
    bad = failed(run(planned_needs, Account(quota=10)))
    assert list(bad) == ["Lambda concurrency"]
    line = bad["Lambda concurrency"]
    assert "account quota 10" in line and f"dmsbus-{STACK}-writeback=4" in line
    assert "unreserved after deploy 6" in line and "minimum 100" in line


@lru_cache(maxsize=1)
def _lambda_client() -> Any:
    return boto3.client("lambda", region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@settings(max_examples=40, deadline=None)
@given(unreserved=st.integers(0, 400), reserved=st.integers(0, 300))
def test_concurrency_rule(unreserved: int, reserved: int) -> None:
    # the rule itself: pass exactly when unreserved - reservations >= 100
    from tools.account.checks import check_concurrency

    needs = StackNeeds(stack=STACK, name_prefix=f"dmsbus-{STACK}-", kms_key_arn=None,
                       reserved_concurrency={"f": reserved} if reserved else {})
    lam = _lambda_client()
    with Stubber(lam) as stub:
        stub.add_response("get_account_settings", {"AccountLimit": {
            "ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": unreserved}})
        if reserved:
            stub.add_response("get_function_concurrency", {})
        check = check_concurrency(lambda s, r: lam, needs, REGION)
    assert check.ok == (unreserved - reserved >= 100)


def test_secret_missing(aws: None, planned_needs: StackNeeds) -> None:
    account = Account()
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId=account.wb_secret, ForceDeleteWithoutRecovery=True)
    bad = failed(run(planned_needs, account))
    assert list(bad) == ["secret writeback.target.secret_arn"]
    assert "ResourceNotFoundException" in bad["secret writeback.target.secret_arn"]
    assert "create the secret" in bad["secret writeback.target.secret_arn"]


def test_secret_on_a_key_the_stack_does_not_grant(aws: None, planned_needs: StackNeeds) -> None:
    account = Account()
    other = account.kms.create_key(Description="someone else's")["KeyMetadata"]["Arn"]
    sm = boto3.client("secretsmanager", region_name=REGION)
    sm.update_secret(SecretId=account.dms_secret, KmsKeyId=other)
    bad = failed(run(planned_needs, account))
    assert list(bad) == ["secret dms.source.secret_arn"]
    assert "set dms.source.secret_kms_key_arn" in bad["secret dms.source.secret_arn"]


def test_secret_key_policy_that_keeps_the_roles_out(aws: None,
                                                   planned_needs: StackNeeds) -> None:
    # GIVEN the DMS source secret on its own key, declared in the stack, whose policy lets the
    # account's roles use it only through DynamoDB: DMS cannot read the secret
    account = Account()
    policy = {"Version": "2012-10-17", "Statement": [{
        **account_key_statement(account=ACCOUNT),
        "Condition": {"StringEquals": {"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com"}},
    }]}
    secret_key = account.kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    boto3.client("secretsmanager", region_name=REGION).update_secret(
        SecretId=account.dms_secret, KmsKeyId=secret_key)
    needs = bind(planned_needs, account)
    needs = dataclasses.replace(needs, secrets=(
        SecretRef(account.dms_secret, "dms-event-bus:dms.source.secret_arn", secret_key),
        *needs.secrets[1:]))
    checks = cli.run_checks(account.clients(), needs, REGION, ACCOUNT)
    bad = failed(checks)
    assert list(bad) == ["secret dms.source.secret_arn"]
    line = bad["secret dms.source.secret_arn"]
    assert f"dmsbus-{STACK}-fanin" in line and "decrypt through Secrets Manager" in line
    assert f"secretsmanager.{REGION}.amazonaws.com" in line


# =========================================================================== adoption trigger
# With adoption.trigger the stack needs, from its account: a CloudTrail trail logging the
# region's management write events (EventBridge gets `AWS API Call via CloudTrail` events only
# then), the GitHub token secret, and (with a customer key) a key policy that lets
# events.amazonaws.com put failed dispatches into the trigger's DLQ.

TOKEN_PLACEHOLDER = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:gh-CCCCCC"
RULE = f"dmsbus-{STACK}-table-created"
TRAIL_CHECK = "CloudTrail management events"
EVENTS_KEY = "KMS key policy: EventBridge"
TOKEN_CHECK = "secret adoption.trigger.token_secret_arn"
MANAGEMENT_ALL = [{"ReadWriteType": "All", "IncludeManagementEvents": True}]


def trigger_key_policy(account: str = ACCOUNT, region: str = REGION) -> dict[str, Any]:
    """The runbook's key policy plus its EventBridge statement (docs/runbook.md)."""
    policy = runbook_key_policy(account, region)
    policy["Statement"].append(events_key_statement())
    return policy


def trigger_config(account: Account) -> dict[str, Any]:
    config = account.config()
    config["dms-event-bus:adoption"] = {"trigger": {"repository": "acme/dms-event-bus",
                                                    "token_secret_arn": account.token_secret}}
    return config


@pytest.fixture(scope="module")
def trigger_needs(tmp_path_factory: pytest.TempPathFactory) -> StackNeeds:
    """The needs of the same stack with adoption.trigger on (planned once)."""
    folder = tmp_path_factory.mktemp("trigger")
    config = stack_config(KEY, f"arn:aws:sns:{REGION}:{ACCOUNT}:placeholder",
                          f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:dms-AAAAAA",
                          f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:wb-BBBBBB")
    config["dms-event-bus:adoption"] = {"trigger": {"repository": "acme/dms-event-bus",
                                                    "token_secret_arn": TOKEN_PLACEHOLDER}}
    write_stack(folder, config)
    settings, _ = cli.load_stack(STACK, folder)
    return cli.needs_of(STACK, settings, folder, REGION)


def bind_trigger(needs: StackNeeds, account: Account) -> StackNeeds:
    return dataclasses.replace(bind(needs, account), trigger_token_secret=account.token_secret)


@pytest.fixture
def trails(aws: None) -> Iterator[Any]:
    """No trail in the account before and after the test; yields a trail maker."""
    made: list[tuple[str, str]] = []

    def clear() -> None:
        for region in (REGION, "us-east-1"):
            ct = boto3.client("cloudtrail", region_name=region)
            for trail in ct.describe_trails(includeShadowTrails=False)["trailList"]:
                ct.delete_trail(Name=trail["Name"])

    def make(name: str = "management", region: str = REGION, *, multi_region: bool = True,
             logging: bool = True, organization: bool = False,
             selectors: list[dict[str, Any]] | None = None,
             advanced: list[dict[str, Any]] | None = None) -> str:
        bucket = f"trail-logs-{len(made)}-{Account.made}"
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
        ct = boto3.client("cloudtrail", region_name=region)
        arn = ct.create_trail(Name=name, S3BucketName=bucket, IsMultiRegionTrail=multi_region,
                              IsOrganizationTrail=organization)["TrailARN"]
        if selectors is not None:
            ct.put_event_selectors(TrailName=name, EventSelectors=selectors)
        if advanced is not None:
            ct.put_event_selectors(TrailName=name, AdvancedEventSelectors=advanced)
        if logging:
            ct.start_logging(Name=name)
        made.append((name, region))
        return arn

    clear()
    yield make
    clear()


def trigger_account() -> Account:
    account = Account()
    account.kms.put_key_policy(KeyId=account.key_id, PolicyName="default",
                               Policy=json.dumps(trigger_key_policy()))
    return account


def run_trigger(needs: StackNeeds, account: Account) -> list[Any]:
    return cli.run_checks(account.clients(), bind_trigger(needs, account), REGION, ACCOUNT,
                          f"arn:aws:iam::{ACCOUNT}:role/deployer")


def test_the_plan_of_a_trigger_stack_asks_for_a_trail_the_token_and_the_key(
    trigger_needs: StackNeeds, planned_needs: StackNeeds
) -> None:
    # read from the graph: the rule on CloudTrail's events, the rule whose DLQ is under the key
    assert trigger_needs.cloudtrail_rules == (RULE,)
    assert trigger_needs.key_event_rules == (RULE,)
    assert trigger_needs.trigger_token_secret == TOKEN_PLACEHOLDER
    assert f"dmsbus-{STACK}-adoption-trigger" in trigger_needs.roles
    # without the trigger: none of it
    assert planned_needs.cloudtrail_rules == planned_needs.key_event_rules == ()
    assert planned_needs.trigger_token_secret is None


def test_trigger_account_with_a_multi_region_trail_passes_through_the_command(
    trails: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, trigger_needs: StackNeeds,
) -> None:
    # GIVEN a multi-region trail homed in another region, logging all management events
    trails(region="us-east-1", selectors=MANAGEMENT_ALL)
    account = trigger_account()
    folder = write_stack(tmp_path, trigger_config(account))
    monkeypatch.setattr(cli, "needs_of", lambda *a: bind_trigger(trigger_needs, account))
    code = cli.main(["check", "--stack", STACK, "--stack-dir", str(folder)],
                    clients_factory=account.clients)
    out = capsys.readouterr().out
    assert code == 0, out
    for name in (TRAIL_CHECK, EVENTS_KEY, TOKEN_CHECK):
        assert any(line.startswith(f"PASS {name}: ") for line in out.splitlines()), out
    (trail,) = [line for line in out.splitlines() if line.startswith(f"PASS {TRAIL_CHECK}")]
    assert "trail/management" in trail and "multi-region" in trail and "logging" in trail
    assert "FAIL" not in out


def test_no_trail_fails_with_the_fix(trails: Any, trigger_needs: StackNeeds) -> None:
    bad = failed(run_trigger(trigger_needs, trigger_account()))
    assert list(bad) == [TRAIL_CHECK]
    line = bad[TRAIL_CHECK]
    assert f"no CloudTrail trail covers {REGION}" in line
    assert "AWS API Call via CloudTrail" in line
    assert "aws cloudtrail create-trail" in line and "--is-multi-region-trail" in line
    assert "start-logging" in line


def test_a_trail_that_is_not_logging_fails(trails: Any, trigger_needs: StackNeeds) -> None:
    trails(logging=False, selectors=MANAGEMENT_ALL)
    bad = failed(run_trigger(trigger_needs, trigger_account()))
    assert list(bad) == [TRAIL_CHECK]
    assert "is not logging" in bad[TRAIL_CHECK]
    assert "aws cloudtrail start-logging --name arn:aws:cloudtrail:" in bad[TRAIL_CHECK]


def test_a_single_region_trail_of_another_region_does_not_cover_this_one(
    trails: Any, trigger_needs: StackNeeds
) -> None:
    trails(region="us-east-1", multi_region=False, selectors=MANAGEMENT_ALL)
    assert list(failed(run_trigger(trigger_needs, trigger_account()))) == [TRAIL_CHECK]


def test_a_listed_single_region_trail_of_another_region_is_not_counted(aws: None) -> None:
    # DescribeTrails (shadow trails included) may list a trail homed elsewhere: only a
    # multi-region one covers this region; the other is never asked for its status
    ct = boto3.client("cloudtrail", region_name=REGION)
    other = {"Name": "east", "TrailARN": f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/east",
             "HomeRegion": "us-east-1", "IsMultiRegionTrail": False}
    with Stubber(ct) as stub:
        stub.add_response("describe_trails", {"trailList": [other]})
        check = check_cloudtrail(lambda s, r: ct, REGION, ACCOUNT, [RULE])
    assert not check.ok and f"no CloudTrail trail covers {REGION}" in check.found


def test_a_single_region_trail_of_this_region_covers_it(trails: Any,
                                                         trigger_needs: StackNeeds) -> None:
    trails(multi_region=False, selectors=MANAGEMENT_ALL)
    checks = lines(run_trigger(trigger_needs, trigger_account()))
    assert checks[TRAIL_CHECK].startswith(f"PASS {TRAIL_CHECK}: trail arn:aws:cloudtrail:{REGION}")


DATA_ONLY_ADVANCED = [{"Name": "s3 objects", "FieldSelectors": [
    {"Field": "eventCategory", "Equals": ["Data"]},
    {"Field": "resources.type", "Equals": ["AWS::S3::Object"]}]}]


@pytest.mark.parametrize(
    ("selectors", "advanced", "ok"),
    [
        # data events only (a classic selector without management events, or advanced)
        ([{"ReadWriteType": "All", "IncludeManagementEvents": False, "DataResources": [
            {"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]}], None, False),
        (None, DATA_ONLY_ADVANCED, False),
        # management events, but reads only: CreateTable is a write
        ([{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}], None, False),
        (None, [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]},
                                    {"Field": "readOnly", "Equals": ["true"]}]}], False),
        # management writes: classic All / WriteOnly, advanced without readOnly or readOnly=false
        (MANAGEMENT_ALL, None, True),
        ([{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}], None, True),
        (None, [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}], True),
        (None, [*DATA_ONLY_ADVANCED, {"FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Management"]},
            {"Field": "readOnly", "Equals": ["false"]}]}], True),
        # management events without those of KMS: DynamoDB's are still logged
        (None, [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]},
                                    {"Field": "eventSource",
                                     "NotEquals": ["kms.amazonaws.com"]}]}], True),
    ],
)
def test_the_trail_must_select_management_write_events(
    trails: Any, trigger_needs: StackNeeds, selectors: Any, advanced: Any, ok: bool
) -> None:
    trails(selectors=selectors, advanced=advanced)
    checks = lines(run_trigger(trigger_needs, trigger_account()))
    assert checks[TRAIL_CHECK].startswith("PASS" if ok else "FAIL"), checks[TRAIL_CHECK]
    if not ok:
        assert "logs no management write events" in checks[TRAIL_CHECK]
        assert "put-event-selectors" in checks[TRAIL_CHECK]


def test_one_good_trail_among_bad_ones_is_enough(trails: Any,
                                                 trigger_needs: StackNeeds) -> None:
    trails("data-only", advanced=DATA_ONLY_ADVANCED)
    trails("stopped", logging=False, selectors=MANAGEMENT_ALL)
    trails("audit", region="us-east-1", selectors=MANAGEMENT_ALL)
    checks = lines(run_trigger(trigger_needs, trigger_account()))
    assert checks[TRAIL_CHECK].startswith(f"PASS {TRAIL_CHECK}: trail "), checks[TRAIL_CHECK]
    assert "trail/audit" in checks[TRAIL_CHECK]


def test_an_organization_trail_covers_the_account(trails: Any,
                                                  trigger_needs: StackNeeds) -> None:
    trails("org-trail", region="us-east-1", organization=True, selectors=MANAGEMENT_ALL)
    checks = lines(run_trigger(trigger_needs, trigger_account()))
    assert checks[TRAIL_CHECK].startswith(f"PASS {TRAIL_CHECK}: organization trail"), checks


def test_an_organization_trail_of_the_management_account_that_cannot_be_read_warns(
    aws: None, trigger_needs: StackNeeds
) -> None:
    # GIVEN a member account: DescribeTrails shows the organization's trail (homed in the
    # management account), whose status and selectors only that account may read
    org_arn = "arn:aws:cloudtrail:us-east-1:111111111111:trail/org-trail"
    account = trigger_account()
    clients = account.clients()
    ct = boto3.client("cloudtrail", region_name=REGION)
    stub = Stubber(ct)
    stub.add_response("describe_trails", {"trailList": [{
        "Name": "org-trail", "TrailARN": org_arn, "HomeRegion": "us-east-1",
        "IsMultiRegionTrail": True, "IsOrganizationTrail": True}]},
        {"includeShadowTrails": True})
    stub.add_client_error("get_trail_status", "TrailNotFoundException",
                          expected_params={"Name": org_arn})
    stub.activate()

    def with_stub(service: str, region: str) -> Any:
        return ct if service == "cloudtrail" else clients(service, region)

    checks = {c.name: c for c in cli.run_checks(with_stub, bind_trigger(trigger_needs, account),
                                                REGION, ACCOUNT)}
    trail = checks[TRAIL_CHECK]
    assert trail.ok and trail.warn
    assert trail.line().startswith(f"WARN {TRAIL_CHECK}: organization trail {org_arn}")
    assert "management account 111111111111" in trail.line()


def test_no_permission_to_read_trails_fails(aws: None, trigger_needs: StackNeeds) -> None:
    account = trigger_account()
    clients = account.clients()
    ct = boto3.client("cloudtrail", region_name=REGION)
    stub = Stubber(ct)
    stub.add_client_error("describe_trails", "AccessDeniedException", "not allowed")
    stub.activate()
    checks = lines(cli.run_checks(
        lambda s, r: ct if s == "cloudtrail" else clients(s, r),
        bind_trigger(trigger_needs, account), REGION, ACCOUNT))
    assert checks[TRAIL_CHECK].startswith(f"FAIL {TRAIL_CHECK}: cannot read")
    assert "cloudtrail:DescribeTrails" in checks[TRAIL_CHECK]


def test_token_secret_missing(trails: Any, trigger_needs: StackNeeds) -> None:
    trails(selectors=MANAGEMENT_ALL)
    account = trigger_account()
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId=account.token_secret, ForceDeleteWithoutRecovery=True)
    bad = failed(run_trigger(trigger_needs, account))
    assert list(bad) == [TOKEN_CHECK]
    assert "ResourceNotFoundException" in bad[TOKEN_CHECK]
    assert "aws secretsmanager create-secret" in bad[TOKEN_CHECK]


def test_token_secret_on_a_key_the_deployer_may_not_decrypt_with(
    trails: Any, trigger_needs: StackNeeds
) -> None:
    trails(selectors=MANAGEMENT_ALL)
    account = trigger_account()
    # the token's own key lets only another account's principals use it
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
        "Action": "kms:*", "Resource": "*"}]}
    token_key = account.kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    boto3.client("secretsmanager", region_name=REGION).update_secret(
        SecretId=account.token_secret, KmsKeyId=token_key)
    bad = failed(run_trigger(trigger_needs, account))
    assert list(bad) == [TOKEN_CHECK]
    assert "deployer" in bad[TOKEN_CHECK] and "kms:Decrypt" in bad[TOKEN_CHECK]


def test_the_token_is_never_read(trails: Any, trigger_needs: StackNeeds) -> None:
    trails(selectors=MANAGEMENT_ALL)
    account = trigger_account()
    clients = account.clients()
    called: list[str] = []

    def spy(service: str, region: str) -> Any:
        client = clients(service, region)
        if service == "secretsmanager":
            client.meta.events.register(
                "before-call.secrets-manager.GetSecretValue",
                lambda **kw: called.append("GetSecretValue"))
        return client

    checks = lines(cli.run_checks(spy, bind_trigger(trigger_needs, account), REGION, ACCOUNT,
                                  f"arn:aws:iam::{ACCOUNT}:role/deployer"))
    assert checks[TOKEN_CHECK].startswith(f"PASS {TOKEN_CHECK}")
    assert called == []
    assert "Bearer" not in "".join(checks.values())


def test_key_policy_without_the_eventbridge_statement_fails(
    trails: Any, trigger_needs: StackNeeds
) -> None:
    # GIVEN a key policy without any statement for events.amazonaws.com (here the alarm topic
    # is on the same key: its publishers' statements, EventBridge's among them, are gone too)
    trails(selectors=MANAGEMENT_ALL)
    account = Account()
    policy: dict[str, Any] = {"Version": "2012-10-17", "Statement": [
        account_key_statement(account=ACCOUNT), logs_key_statement(account=ACCOUNT,
                                                                   region=REGION)]}
    account.kms.put_key_policy(KeyId=account.key_id, PolicyName="default",
                               Policy=json.dumps(policy))
    bad = failed(run_trigger(trigger_needs, account))
    assert set(bad) == {EVENTS_KEY, "alarm topic key"}
    line = bad[EVENTS_KEY]
    assert "events.amazonaws.com may not use the key (kms:Decrypt, kms:GenerateDataKey)" in line
    assert RULE in line and "failed dispatches are lost" in line
    # WHEN the runbook's EventBridge statement is added, THEN it passes
    policy["Statement"].append(events_key_statement())
    account.kms.put_key_policy(KeyId=account.key_id, PolicyName="default",
                               Policy=json.dumps(policy))
    assert set(failed(run_trigger(trigger_needs, account))) == {"alarm topic key"}


def test_without_a_customer_key_there_is_no_eventbridge_key_check(
    trails: Any, trigger_needs: StackNeeds
) -> None:
    trails(selectors=MANAGEMENT_ALL)
    account = trigger_account()
    needs = dataclasses.replace(bind_trigger(trigger_needs, account), kms_key_arn=None)
    checks = lines(cli.run_checks(account.clients(), needs, REGION, ACCOUNT))
    assert EVENTS_KEY not in checks and TRAIL_CHECK in checks


def test_eventbridge_key_check_names_the_missing_actions(trails: Any,
                                                          trigger_needs: StackNeeds) -> None:
    trails(selectors=MANAGEMENT_ALL)
    account = Account()
    policy: dict[str, Any] = {"Version": "2012-10-17", "Statement": [
        account_key_statement(account=ACCOUNT), logs_key_statement(account=ACCOUNT,
                                                                   region=REGION),
        *publisher_key_statements(account=ACCOUNT, region=REGION)]}
    # the alarm topic's EventBridge statement lets events.amazonaws.com use the key too: drop
    # it, keep Decrypt only
    policy["Statement"] = [s for s in policy["Statement"]
                           if s.get("Principal") != {"Service": "events.amazonaws.com"}]
    policy["Statement"].append({"Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "kms:Decrypt", "Resource": "*"})
    account.kms.put_key_policy(KeyId=account.key_id, PolicyName="default",
                               Policy=json.dumps(policy))
    bad = failed(run_trigger(trigger_needs, account))
    assert EVENTS_KEY in bad, bad
    line = bad[EVENTS_KEY]
    assert "events.amazonaws.com may not use the key (kms:GenerateDataKey)" in line
    assert RULE in line
    assert "KMS key policy: EventBridge" in line.split(" — fix:")[1]


@settings(max_examples=60, deadline=None)
@given(include=st.sampled_from([True, False, None]),
       read_write=st.sampled_from(["All", "ReadOnly", "WriteOnly", None]))
def test_classic_selector_rule(include: bool | None, read_write: str | None) -> None:
    # a classic selector logs CreateTable exactly when it includes management events (the
    # default) and not only reads
    selector: dict[str, Any] = {}
    if include is not None:
        selector["IncludeManagementEvents"] = include
    if read_write is not None:
        selector["ReadWriteType"] = read_write
    expected = include is not False and read_write != "ReadOnly"
    assert logs_management_writes({"EventSelectors": [selector]}) == expected


# =========================================================================== could not run


def test_bad_stack_name_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "--stack", "nope", "--region", REGION]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no stack file Pulumi.nope.yaml" in err


def test_bad_stack_file_exits_2_with_the_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stack_config(KEY, "arn:aws:sns:eu-west-1:123456789012:t",
                          "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a",
                          "arn:aws:secretsmanager:eu-west-1:123456789012:secret:b")
    config["dms-event-bus:encryption"] = {"kms_key": KEY}  # typo
    folder = write_stack(tmp_path, config)
    assert cli.main(["check", "--stack", STACK, "--stack-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "dms-event-bus:encryption.kms_key" in err and "Traceback" not in err


def test_bad_trigger_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stack_config(KEY, "arn:aws:sns:eu-west-1:123456789012:t",
                          "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a",
                          "arn:aws:secretsmanager:eu-west-1:123456789012:secret:b")
    # a pasted token instead of the secret's ARN: refused with one line naming the key
    config["dms-event-bus:adoption"] = {"trigger": {"repository": "acme/dms-event-bus",
                                                    "token_secret_arn": "ghp_notarealtoken123"}}
    folder = write_stack(tmp_path, config)
    assert cli.main(["check", "--stack", STACK, "--stack-dir", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "dms-event-bus:adoption.trigger.token_secret_arn" in err


def test_no_region_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "empty"))
    folder = write_stack(tmp_path, stack_config(
        KEY, "arn:aws:sns:eu-west-1:123456789012:t",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:b", region=None))
    assert cli.main(["check", "--stack", STACK, "--stack-dir", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("account preflight: no AWS region: pass --region or set aws:region in "
                   f"Pulumi.{STACK}.yaml (or set AWS_REGION)")
    assert cli.main(["bootstrap"]) == 2
    assert "no AWS region: pass --region" in capsys.readouterr().err


def test_no_credentials_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN",
                "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for var in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    folder = write_stack(tmp_path, stack_config(
        KEY, "arn:aws:sns:eu-west-1:123456789012:t",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:b"))
    assert cli.main(["check", "--stack", STACK, "--stack-dir", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("account preflight: no usable AWS credentials for region eu-west-1")
    assert cli.main(["bootstrap", "--region", REGION]) == 2


def test_an_unexpected_answer_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken:
        def get_caller_identity(self) -> dict[str, Any]:
            return {}  # no Account: a shape no real STS answers with

    assert cli.main(["bootstrap", "--region", REGION],
                    clients_factory=lambda: lambda service, region: Broken()) == 2
    err = capsys.readouterr().err.strip()
    assert err == "account preflight: could not run: KeyError: 'Account'"


def test_region_flag_must_match_the_stack(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_stack(tmp_path, stack_config(
        KEY, "arn:aws:sns:eu-west-1:123456789012:t",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:b"))
    assert cli.main(["check", "--stack", STACK, "--stack-dir", str(folder),
                     "--region", "us-east-1"]) == 2
    assert "differs from the stack's aws:region eu-west-1" in capsys.readouterr().err


# =========================================================================== docs match code


def _json_blocks(section: str) -> list[Any]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 3)
    return text[start:end if end != -1 else None]


def test_the_runbook_statements_are_the_ones_the_preflight_accepts() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    fill = {"<region>": REGION, "<account-id>": ACCOUNT}

    def filled(block: Any) -> Any:
        text = json.dumps(block)
        for placeholder, value in fill.items():
            text = text.replace(placeholder, value)
        return json.loads(text)

    logs = [filled(b) for b in _json_blocks(_section(runbook, "KMS key policy: CloudWatch Logs"))]
    assert logs == [logs_key_statement(account=ACCOUNT, region=REGION)]
    roles = [filled(b) for b in _json_blocks(
        _section(runbook, "KMS key policy: the account's roles"))]
    assert roles == [account_key_statement(account=ACCOUNT)]
    publishers = [filled(b) for b in _json_blocks(
        _section(runbook, "KMS key policy: alarm topic publishers"))]
    assert publishers == [publisher_key_statements(account=ACCOUNT, region=REGION)]
    events = [filled(b) for b in _json_blocks(_section(runbook, "KMS key policy: EventBridge"))]
    assert events == [events_key_statement()]


def test_the_runbook_lists_the_trigger_alarms_the_component_declares() -> None:
    """Every alarm the adoption trigger declares has a row in the runbook's alarm table."""
    source = (ROOT / "components" / "adoption_trigger.py").read_text()
    names = re.findall(r'alarm_name=f"\{args\.name_prefix\}([a-z-]+)"', source)
    assert sorted(names) == ["adoption-trigger-dlq-depth", "adoption-trigger-dlq-failed"]
    table = _section((ROOT / "docs" / "runbook.md").read_text(),
                     "What each alarm means and what to do")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    for name in names:
        (row,) = [r for r in rows if r.startswith(f"| `${{P}}{name}`")]
        assert "gh workflow run adopt.yml -f environment=<env>" in row or "schedule" in row
