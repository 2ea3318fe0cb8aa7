"""The per-account pieces, created once per account (and region), owned by nobody's stack.

- API Gateway's account-level CloudWatch Logs role (`dmsbus-apigateway-cloudwatch`, trust
  apigateway.amazonaws.com, AmazonAPIGatewayPushToCloudWatchLogs) and the account setting that
  points at it, per region — only when no role is set yet;
- DMS's account roles `dms-vpc-role` (AmazonDMSVPCManagementRole) and
  `dms-cloudwatch-logs-role` (AmazonDMSCloudWatchLogsRole), with the names DMS looks for.

Only what is missing is created: a role that exists gets its managed policy attached if it lacks
it, nothing else. Nothing is ever deleted, detached or overwritten (an API Gateway role that is
already set stays, whoever set it). Running it again, or for a second environment of the same
account, changes nothing. A stack never creates these: destroying an environment cannot take
them away from the others (or from DMS users outside this project).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from tools.account.checks import APIGW_LOGS_POLICY, DMS_ACCOUNT_ROLES, Clients

#: The role bootstrap creates for API Gateway when the account has none set.
APIGW_ROLE = "dmsbus-apigateway-cloudwatch"
TAGS = [{"Key": "managed-by", "Value": "dms-event-bus account bootstrap"}]


def trust(service: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                       "Action": "sts:AssumeRole"}],
    })


@dataclass(frozen=True)
class Step:
    """One change bootstrap makes (or would make)."""

    what: str
    run: Callable[[], Any]

    def line(self, applied: bool) -> str:
        return f"{'CREATED' if applied else 'WOULD CREATE'} {self.what}"


def _role_exists(iam: Any, name: str) -> dict[str, Any] | None:
    try:
        role: dict[str, Any] = iam.get_role(RoleName=name)["Role"]
        return role
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
            return None
        raise


def _attached(iam: Any, name: str) -> set[str]:
    return {
        p["PolicyArn"]
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
        for p in page["AttachedPolicies"]
    }


def _role_steps(iam: Any, name: str, service: str, policy: str, steps: list[Step],
                kept: list[str]) -> None:
    """Steps that make role `name` exist with `policy` attached."""
    role = _role_exists(iam, name)
    if role is None:
        steps.append(Step(f"role {name} (trust {service})",
                          lambda: iam.create_role(RoleName=name,
                                                  AssumeRolePolicyDocument=trust(service),
                                                  Description="Per-account role, created by "
                                                  "the dms-event-bus account bootstrap",
                                                  Tags=TAGS)))
        attached: set[str] = set()
    else:
        attached = _attached(iam, name)
    if policy not in attached:
        steps.append(Step(f"attachment of {policy.rsplit('/', 1)[-1]} to role {name}",
                          lambda: iam.attach_role_policy(RoleName=name, PolicyArn=policy)))
    elif role is not None:
        kept.append(f"role {name} with {policy.rsplit('/', 1)[-1]}")


def plan(clients: Clients, region: str, account: str, partition: str = "aws",
         *, apigateway: bool = True, dms: bool = True) -> tuple[list[Step], list[str]]:
    """(steps to take, pieces already in place) for this account and region."""
    iam = clients("iam", region)
    steps: list[Step] = []
    kept: list[str] = []
    if dms:
        for name, policy in DMS_ACCOUNT_ROLES.items():
            _role_steps(iam, name, "dms.amazonaws.com", policy, steps, kept)
    if apigateway:
        apigw = clients("apigateway", region)
        current = apigw.get_account().get("cloudwatchRoleArn")
        if current:
            kept.append(f"API Gateway CloudWatch role in {region}: {current} (left as it is)")
        else:
            _role_steps(iam, APIGW_ROLE, "apigateway.amazonaws.com", APIGW_LOGS_POLICY, steps,
                        kept)
            role_arn = f"arn:{partition}:iam::{account}:role/{APIGW_ROLE}"
            steps.append(Step(
                f"API Gateway account setting cloudwatchRoleArn={role_arn} in {region}",
                lambda: _set_apigw_role(apigw, role_arn),
            ))
    return steps, kept


#: A new role takes a few seconds until API Gateway can assume it; until then UpdateAccount
#: answers BadRequestException. Bounded: about a minute in all.
SET_ROLE_DELAYS = (2.0, 4.0, 8.0, 16.0, 30.0)


def _set_apigw_role(apigw: Any, role_arn: str,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    for delay in (*SET_ROLE_DELAYS, None):
        # Never overwrite: read again right before the write (another run may have set it).
        if apigw.get_account().get("cloudwatchRoleArn"):
            return
        try:
            apigw.update_account(patchOperations=[
                {"op": "replace", "path": "/cloudwatchRoleArn", "value": role_arn}
            ])
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BadRequestException" or delay is None:
                raise
            sleep(delay)
