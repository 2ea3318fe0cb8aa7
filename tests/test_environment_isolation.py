"""Two environments in one account (dev and prod, every part switched on, one shared
customer-managed key): no role of one reaches a resource of the other, the writeback's
network-interface actions stay in its own subnets, and no KMS grant works without the
service it names (`kms:ViaService`).

The roles' policies are evaluated by tests/iam_eval.py on the mocked resource graph of stack
files written here; the ARNs tried are the other environment's resources as the mocks name
them and as AWS names them (functions, queues, log groups, buckets, streams, tables, roles).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.iam_eval import Role, as_list, condition_allows, roles_of
from tests.test_kms_grants import REGION, SECRETS
from tests.test_kms_grants import stack_config as customer_key_stack
from tests.test_program import ACCOUNT_WIDE_ACTIONS
from tools.mockrun import ACCOUNT, Plan, run_stack

ENVIRONMENTS = ("dev", "prod")
#: Each environment's writeback subnets and security group (none shared).
NETWORK = {
    "dev": (["subnet-0d0d0d0d0d0d00001", "subnet-0d0d0d0d0d0d00002"], "sg-0d0d0d0d0d0d00001"),
    "prod": (["subnet-0f0f0f0f0f0f00001", "subnet-0f0f0f0f0f0f00002"], "sg-0f0f0f0f0f0f00001"),
}
ENI_ACTIONS = ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
               "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]


def adopted(env: str) -> list[str]:
    return [f"dmsbus-{env}-audit_logins", f"dmsbus-{env}-audit_events"]


def stack_config(env: str) -> dict[str, Any]:
    """The customer-key stack of the KMS grant tests, with this environment's writeback
    cluster, secret and network."""
    subnets, group = NETWORK[env]
    config = customer_key_stack()
    writeback = config["dms-event-bus:writeback"]
    writeback["target"] = {**writeback["target"],
                           "cluster_arn": f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:erp-{env}",
                           "secret_arn": f"{SECRETS}:wb-{env}-f6G7h8"}
    writeback["vpc"] = {"subnet_ids": subnets, "security_group_ids": [group]}
    return config


def discovered(names: list[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The discovery invoke's answer: these tables DMS created (adopted)."""
    return lambda _args: {"names": names, "id": REGION}


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    found = {}
    for env in ENVIRONMENTS:
        folder: Path = tmp_path_factory.mktemp(env)
        (folder / f"Pulumi.{env}.yaml").write_text(yaml.safe_dump({"config": stack_config(env)}))
        found[env] = run_stack(env, stack_dir=folder, invoke_answers={
            "aws:dynamodb/getTables:getTables": discovered(adopted(env))})
    return found


def arns_of(plan: Plan, env: str) -> list[str]:
    """Every ARN of an environment's resources: as the mocks gave them, and as AWS builds
    them from each physical name."""
    prefix = f"dmsbus-{env}-"
    found: set[str] = set()
    names = set(adopted(env))
    for r in plan.resources:
        for key in ("arn", "streamArn"):
            value = r.outputs.get(key)
            if isinstance(value, str) and prefix in value:
                found |= {value, f"{value}/*", f"{value}:*"}
        for key in ("name", "bucket"):
            value = r.inputs.get(key)
            if isinstance(value, str) and prefix in value:
                names.add(value.removeprefix("/aws/lambda/"))
    at = f"{REGION}:{ACCOUNT}"
    for n in names:
        found |= {
            f"arn:aws:dynamodb:{at}:table/{n}", f"arn:aws:dynamodb:{at}:table/{n}/stream/x",
            f"arn:aws:kinesis:{at}:stream/{n}", f"arn:aws:sqs:{at}:{n}",
            f"arn:aws:lambda:{at}:function:{n}", f"arn:aws:logs:{at}:log-group:/aws/lambda/{n}:*",
            f"arn:aws:s3:::{n}", f"arn:aws:s3:::{n}/some/object",
            f"arn:aws:iam::{ACCOUNT}:role/{n}",
            f"arn:aws:firehose:{at}:deliverystream/{n}", f"arn:aws:sns:{at}:{n}",
        }
    return sorted(found)


def reachable(role: Role, arn: str) -> list[str]:
    """The actions `role` may take on `arn`, conditions ignored (so: at most these); actions
    that exist only account-wide (Resource '*') read or change no environment's data."""
    actions = {str(a) for s in role.statements if s["Effect"] == "Allow"
               for a in as_list(s["Action"])
               if not (as_list(s["Resource"]) == ["*"] and a in ACCOUNT_WIDE_ACTIONS)}
    return sorted(a for a in actions if "*" not in a and role.allows(a, arn))


@pytest.mark.parametrize(("env", "other"), [("dev", "prod"), ("prod", "dev")])
def test_no_role_reaches_the_other_environments_resources(
    plans: dict[str, Plan], env: str, other: str
) -> None:
    roles = roles_of(plans[env])
    theirs = arns_of(plans[other], other)
    # the walk is only as good as the graph: every Lambda's and the archive's role is there
    for kind in ("fanin", "backfill", "writeback", "archive"):
        assert f"dmsbus-{env}-{kind}" in roles
    assert len(theirs) > 100
    reached = [f"{name}: {actions} on {arn}" for name, role in roles.items()
               for arn in theirs if (actions := reachable(role, arn))]
    assert not reached, "\n".join(reached[:20])


def eni(env: str, subnet: str) -> tuple[str, dict[str, str]]:
    """A network interface of the account and the subnet condition key its requests carry."""
    return (f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/eni-0123456789abcdef0",
            {"ec2:Subnet": f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/{subnet}"})


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_network_interface_actions_stay_in_the_stacks_subnets(
    plans: dict[str, Plan], env: str
) -> None:
    role = roles_of(plans[env])[f"dmsbus-{env}-writeback"]
    other = next(e for e in ENVIRONMENTS if e != env)
    own_subnets, own_group = NETWORK[env]
    ec2 = f"arn:aws:ec2:{REGION}:{ACCOUNT}"
    for action in ENI_ACTIONS:
        # GIVEN a network interface in one of the stack's writeback subnets: allowed
        for subnet in own_subnets:
            arn, context = eni(env, subnet)
            assert role.allows(action, arn, context), (action, subnet)
        # WHEN it is in the other environment's subnets, or any other: denied
        for subnet in [*NETWORK[other][0], "subnet-0123456789abcdef0"]:
            arn, context = eni(env, subnet)
            assert not role.allows(action, arn, context), (action, subnet)
        # AND a request that names no subnet is not allowed either
        assert not role.allows(action, eni(env, own_subnets[0])[0], {})
    # AND creating one names only the stack's own subnets and security group
    create = "ec2:CreateNetworkInterface"
    assert role.allows(create, f"{ec2}:subnet/{own_subnets[0]}", {})
    assert role.allows(create, f"{ec2}:security-group/{own_group}", {})
    assert not role.allows(create, f"{ec2}:subnet/{NETWORK[other][0][0]}", {})
    assert not role.allows(create, f"{ec2}:security-group/{NETWORK[other][1]}", {})
    # AND no other role of the stack may touch a network interface of its own
    for name, other_role in roles_of(plans[env]).items():
        if name != f"dmsbus-{env}-writeback" and not name.startswith(f"dmsbus-{env}-dms"):
            arn, context = eni(env, own_subnets[0])
            assert not any(other_role.allows(a, arn, context) for a in ENI_ACTIONS), name


def satisfying_request(condition: dict[str, Any]) -> dict[str, str]:
    """Condition keys of a request the grant was written for: its own values, a pattern's
    wildcard filled in."""
    request: dict[str, str] = {}
    for operator, keys in condition.items():
        if operator in ("StringEquals", "StringLike"):
            for key, wanted in keys.items():
                request[key] = str(as_list(wanted)[0]).replace("*", "x")
    return request


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_kms_grant_works_without_the_service_it_names(
    plans: dict[str, Plan], env: str
) -> None:
    grants = [(name, g) for name, role in roles_of(plans[env]).items()
              for g in role.kms_grants()]
    assert {name for name, _ in grants} >= {
        f"dmsbus-{env}-{kind}" for kind in ("fanin", "backfill", "writeback", "archive")}
    for name, grant in grants:
        condition = grant.get("Condition") or {}
        request = satisfying_request(condition)
        # GIVEN the request the grant was written for: allowed
        assert "kms:ViaService" in request, f"{name}: {grant.get('Sid')} without ViaService"
        assert condition_allows(condition, request), (name, grant.get("Sid"))
        # WHEN the same request comes straight to KMS (no service in between): denied
        direct = {k: v for k, v in request.items() if k != "kms:ViaService"}
        assert not condition_allows(condition, direct), (name, grant.get("Sid"))
        # AND through another service, or the same service in another region: denied
        for via in (f"lambda.{REGION}.amazonaws.com",
                    request["kms:ViaService"].replace(REGION, "us-east-1")):
            assert not condition_allows(condition, {**request, "kms:ViaService": via}), (
                name, grant.get("Sid"), via)
