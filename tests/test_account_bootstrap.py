"""Per-account bootstrap (python -m tools.account_preflight bootstrap) against moto: creates
only what is missing, never deletes, detaches or overwrites, and a second run (or a second
environment of the same account) changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tools import account_preflight as cli
from tools.account import bootstrap as boot
from tools.account.checks import APIGW_LOGS_POLICY, DMS_ACCOUNT_ROLES

REGION = "eu-west-1"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def _moto_session() -> Iterator[None]:
    # AWS's managed policies (loaded once: it takes seconds) are what the roles attach
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield


@pytest.fixture
def iam(_moto_session: None) -> Iterator[Any]:
    """A clean account: no role, no API Gateway setting (removed again after each test)."""
    client = boto3.client("iam")
    yield client
    for page in client.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            name = role["RoleName"]
            for p in client.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                client.detach_role_policy(RoleName=name, PolicyArn=p["PolicyArn"])
            client.delete_role(RoleName=name)
    for region in (REGION, "us-east-1"):
        boto3.client("apigateway", region_name=region).update_account(
            patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": ""}])


def attached(iam: Any, role: str) -> set[str]:
    return {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)[
        "AttachedPolicies"]}


def apigw_role(region: str = REGION) -> str | None:
    value = boto3.client("apigateway", region_name=region).get_account().get("cloudwatchRoleArn")
    return value or None


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["bootstrap", *args])
    return code, capsys.readouterr().out


def test_dry_run_prints_and_creates_nothing(iam: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "--region", REGION)
    assert code == 0
    assert "WOULD CREATE role dms-vpc-role (trust dms.amazonaws.com)" in out
    assert "WOULD CREATE role dms-cloudwatch-logs-role (trust dms.amazonaws.com)" in out
    assert f"WOULD CREATE role {boot.APIGW_ROLE} (trust apigateway.amazonaws.com)" in out
    assert "WOULD CREATE API Gateway account setting cloudwatchRoleArn=" in out
    assert "# dry run: run again with --apply" in out
    assert iam.list_roles()["Roles"] == []
    assert apigw_role() is None


def test_apply_creates_the_account_pieces(iam: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "--region", REGION, "--apply")
    assert code == 0
    for role, policy in DMS_ACCOUNT_ROLES.items():
        trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": "dms.amazonaws.com"}
        assert attached(iam, role) == {policy}
    role = iam.get_role(RoleName=boot.APIGW_ROLE)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"}
    assert attached(iam, boot.APIGW_ROLE) == {APIGW_LOGS_POLICY}
    assert apigw_role() == role["Arn"]
    assert out.count("CREATED ") == 7


def test_second_run_and_second_environment_are_no_ops(
    iam: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--region", REGION, "--apply")[0] == 0
    before = {r["RoleName"]: r["RoleId"] for r in iam.list_roles()["Roles"]}
    # a second run, e.g. for the second environment of the same account
    code, out = run(capsys, "--region", REGION, "--apply")
    assert code == 0
    assert "CREATED" not in out and "WOULD CREATE" not in out
    assert "# nothing to do" in out
    assert {r["RoleName"]: r["RoleId"] for r in iam.list_roles()["Roles"]} == before


def test_existing_pieces_are_kept_and_completed_never_overwritten(
    iam: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an account where the DMS console once ran (dms-vpc-role exists, with an extra
    # policy someone added) and API Gateway already logs through someone else's role
    iam.create_role(RoleName="dms-vpc-role", AssumeRolePolicyDocument=boot.trust(
        "dms.amazonaws.com"))
    extra = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    iam.attach_role_policy(RoleName="dms-vpc-role", PolicyArn=extra)
    theirs = iam.create_role(RoleName="platform-apigw-logs", AssumeRolePolicyDocument=boot.trust(
        "apigateway.amazonaws.com"))["Role"]["Arn"]
    boto3.client("apigateway", region_name=REGION).update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": theirs}])
    # WHEN bootstrap applies
    code, out = run(capsys, "--region", REGION, "--apply")
    # THEN the missing policy is attached, nothing is detached, the API Gateway setting stays
    assert code == 0
    assert attached(iam, "dms-vpc-role") == {extra, DMS_ACCOUNT_ROLES["dms-vpc-role"]}
    assert apigw_role() == theirs
    assert f"KEEP API Gateway CloudWatch role in {REGION}: {theirs}" in out
    assert "dms-vpc-role (trust" not in out  # not created again
    with pytest.raises(ClientError):
        iam.get_role(RoleName=boot.APIGW_ROLE)  # not created: a role was set already


def test_a_second_region_gets_its_api_gateway_setting_with_the_same_role(
    iam: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--region", REGION, "--apply")[0] == 0
    code, out = run(capsys, "--region", "us-east-1", "--apply")
    assert code == 0
    # IAM is global: the roles exist; only the regional API Gateway setting is new
    assert out.count("CREATED ") == 1
    assert "CREATED API Gateway account setting" in out and "in us-east-1" in out
    assert apigw_role("us-east-1") == apigw_role(REGION)


def test_only_what_was_asked(iam: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--region", REGION, "--apply", "--no-dms")[0] == 0
    names = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert names == {boot.APIGW_ROLE}
    assert run(capsys, "--region", REGION, "--apply", "--no-apigateway")[0] == 0
    assert {r["RoleName"] for r in iam.list_roles()["Roles"]} == names | set(DMS_ACCOUNT_ROLES)


def test_the_api_gateway_setting_waits_for_a_new_role() -> None:
    # A role just created is not assumable at once: API Gateway answers BadRequestException
    # for a few seconds. The setting is retried (bounded), and never written over a value
    # another run set meanwhile.
    class Apigw:
        def __init__(self, failures: int) -> None:
            self.failures = failures
            self.role: str | None = None
            self.calls = 0

        def get_account(self) -> dict[str, Any]:
            return {"cloudwatchRoleArn": self.role} if self.role else {}

        def update_account(self, patchOperations: list[dict[str, Any]]) -> None:
            self.calls += 1
            if self.failures:
                self.failures -= 1
                raise ClientError({"Error": {"Code": "BadRequestException",
                                             "Message": "role not assumable"}}, "UpdateAccount")
            self.role = patchOperations[0]["value"]

    slept: list[float] = []
    api = Apigw(failures=2)
    boot._set_apigw_role(api, "arn:aws:iam::1:role/r", sleep=slept.append)
    assert api.role == "arn:aws:iam::1:role/r" and slept == list(boot.SET_ROLE_DELAYS[:2])
    # never more than the bounded attempts
    api = Apigw(failures=100)
    with pytest.raises(ClientError):
        boot._set_apigw_role(api, "arn:aws:iam::1:role/r", sleep=slept.append)
    assert api.calls == len(boot.SET_ROLE_DELAYS) + 1
    # another run set a role between two attempts: it stays
    api = Apigw(failures=1)

    def someone_else_sets_it(seconds: float) -> None:
        api.role = "arn:aws:iam::1:role/theirs"

    boot._set_apigw_role(api, "arn:aws:iam::1:role/r", sleep=someone_else_sets_it)
    assert api.role == "arn:aws:iam::1:role/theirs" and api.calls == 1


def test_the_trust_policies_are_for_the_service_only() -> None:
    doc = json.loads(boot.trust("apigateway.amazonaws.com"))
    assert doc["Statement"] == [{"Effect": "Allow",
                                 "Principal": {"Service": "apigateway.amazonaws.com"},
                                 "Action": "sts:AssumeRole"}]


def test_access_denied_exits_2_with_one_line(
    iam: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*a: Any, **k: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}},
                          "GetRole")

    monkeypatch.setattr(boot, "_role_exists", denied)
    assert cli.main(["bootstrap", "--region", REGION]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "account preflight: an AWS call failed: AccessDenied: not allowed"
