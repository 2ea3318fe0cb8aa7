"""The Lambda-owning components declare their functions through one building block
(`components.lambda_function`) without moving a single resource: every URN of a Lambda-related
resource is pinned here, as the components declared them before the block existed. A changed
URN makes `pulumi up` replace a live function, queue, role or log group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.mockrun import ACCOUNT, Plan, run_stack

REGION = "eu-west-1"
STACK = "pin"
PREFIX = f"dmsbus-{STACK}-"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
SECRETS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret"
ADOPTED = [f"{PREFIX}audit_logins"]


def stack_config() -> dict[str, Any]:
    key = {"partition_key": {"name": "id", "type": "N"}}
    return {
        "aws:region": REGION,
        "dms-event-bus:encryption": {"kms_key_arn": KEY},
        "dms-event-bus:tables": {
            "customers": {"source": {"schema": "sales", "table": "customers"}, **key},
        },
        "dms-event-bus:bus": {"archive": {"enabled": True}, "overflow": {"expire_days": 365}},
        "dms-event-bus:writeback": {
            "target": {"kind": "postgres", "host": "legacy.internal", "database": "erp",
                       "secret_arn": f"{SECRETS}:wb-f6G7h8"},
            "vpc": {"subnet_ids": ["subnet-0b1c2d3e4f5a60001"],
                    "security_group_ids": ["sg-0b1c2d3e4f5a60718"]},
            "tables": {"customers": {"origin": "tables", "legacy_table": "sales.customers",
                                     "key_columns": {"id": "customer_id"}}},
        },
    }


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    folder: Path = tmp_path_factory.mktemp(STACK)
    (folder / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": stack_config()}))
    tables = {"aws:dynamodb/getTables:getTables": lambda _a: {"names": ADOPTED, "id": REGION}}
    return run_stack(STACK, stack_dir=folder, invoke_answers=tables)


def urn(component: str, type_: str, name: str) -> str:
    return (f"urn:pulumi:{STACK}::dms-event-bus::dms-event-bus:index:{component}"
            f"${type_}::{name}")


QUEUE, LOGS = "aws:sqs/queue:Queue", "aws:cloudwatch/logGroup:LogGroup"
ROLE, POLICY = "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy"
FUNCTION, ALARM = "aws:lambda/function:Function", "aws:cloudwatch/metricAlarm:MetricAlarm"

#: component -> (type, logical name, physical name) of each Lambda-related resource, as the
#: components declared them before the building block (the writeback's conflicts and
#: schema-not-ready alarms came after it).
PINNED: dict[str, list[tuple[str, str, str]]] = {
    "KinesisBus": [
        (QUEUE, "bus-dlq", f"{PREFIX}fanin-dlq"),
        (LOGS, "bus-fanin-logs", f"/aws/lambda/{PREFIX}fanin"),
        (ROLE, "bus-fanin-role", f"{PREFIX}fanin"),
        (POLICY, "bus-fanin-policy", ""),
        (FUNCTION, "bus-fanin", f"{PREFIX}fanin"),
        (ALARM, "bus-fanin-errors", f"{PREFIX}fanin-errors"),
        (ALARM, "bus-fanin-iterator-age", f"{PREFIX}fanin-iterator-age"),
        (ALARM, "bus-dlq-depth", f"{PREFIX}fanin-dlq-depth"),
    ],
    "Backfill": [
        (QUEUE, "backfill-dlq", f"{PREFIX}backfill-dlq"),
        (LOGS, "backfill-logs", f"/aws/lambda/{PREFIX}backfill"),
        (ROLE, "backfill-role", f"{PREFIX}backfill"),
        (POLICY, "backfill-policy", ""),
        (FUNCTION, "backfill-function", f"{PREFIX}backfill"),
        (ALARM, "backfill-errors", f"{PREFIX}backfill-errors"),
        (ALARM, "backfill-dlq-depth", f"{PREFIX}backfill-dlq-depth"),
    ],
    "LegacyWriteback": [
        (QUEUE, "writeback-dlq", f"{PREFIX}writeback-dlq"),
        (LOGS, "writeback-logs", f"/aws/lambda/{PREFIX}writeback"),
        (ROLE, "writeback-role", f"{PREFIX}writeback"),
        (POLICY, "writeback-policy", ""),
        (FUNCTION, "writeback-function", f"{PREFIX}writeback"),
        (ALARM, "writeback-errors", f"{PREFIX}writeback-errors"),
        (ALARM, "writeback-iterator-age", f"{PREFIX}writeback-iterator-age"),
        (ALARM, "writeback-poison", f"{PREFIX}writeback-poison"),
        (ALARM, "writeback-conflicts", f"{PREFIX}writeback-conflicts"),
        (ALARM, "writeback-schema-not-ready", f"{PREFIX}writeback-schema-not-ready"),
        (ALARM, "writeback-dlq-depth", f"{PREFIX}writeback-dlq-depth"),
    ],
}


@pytest.mark.parametrize("component", sorted(PINNED))
def test_lambda_resources_keep_their_urns_and_physical_names(plan: Plan, component: str) -> None:
    by_urn = plan.by_urn()
    parent = next(r for r in plan.resources
                  if r.type == f"dms-event-bus:index:{component}")
    for type_, name, physical in PINNED[component]:
        # THEN each resource is where it always was: same URN (type, name, parent chain)
        found = by_urn.get(urn(component, type_, name))
        assert found is not None, f"{component}: {type_} {name} moved (its URN changed)"
        assert found.parent == parent.urn
        if physical:
            assert found.inputs["name"] == physical, (name, found.inputs["name"])


@pytest.mark.parametrize("component", sorted(PINNED))
def test_each_function_waits_for_its_policy_and_log_group(plan: Plan, component: str) -> None:
    named = {t: urn(component, t, n) for t, n, _ in PINNED[component] if t != ALARM}
    function = plan.by_urn()[named[FUNCTION]]
    policy, logs, role = named[POLICY], named[LOGS], named[ROLE]
    # THEN the function is created after its policy (else its first invocations fail) and its
    # log group (else Lambda creates one, unencrypted and kept forever)
    assert {policy, logs} <= set(function.dependencies)
    # AND it logs JSON into that group, runs as that role, with the key on its environment
    assert function.inputs["loggingConfig"] == {"logFormat": "JSON",
                                                "logGroup": plan.by_urn()[logs].inputs["name"]}
    assert function.inputs["role"] == plan.by_urn()[role].outputs["arn"]
    assert function.inputs["kmsKeyArn"] == KEY
    assert plan.by_urn()[logs].inputs["kmsKeyId"] == KEY


def test_every_lambda_role_sends_to_its_own_dlq_and_writes_its_own_logs(plan: Plan) -> None:
    for component, pinned in PINNED.items():
        names = {t: n for t, n, _ in pinned}
        policy = json.loads(plan.by_urn()[urn(component, POLICY, names[POLICY])].inputs["policy"])
        sids = {s["Sid"]: s for s in policy["Statement"]}
        dlq = plan.by_urn()[urn(component, QUEUE, names[QUEUE])]
        logs = plan.by_urn()[urn(component, LOGS, names[LOGS])]
        assert sids["OnFailureDestination"]["Resource"] == [dlq.outputs["arn"]], component
        assert sids["Logs"]["Resource"] == [f"{logs.outputs['arn']}:*"], component
        # the DLQ's key grant comes last, through SQS only
        assert policy["Statement"][-1]["Sid"] == "DlqKey"
        assert policy["Statement"][-1]["Condition"]["StringEquals"]["kms:ViaService"] == (
            f"sqs.{REGION}.amazonaws.com")
