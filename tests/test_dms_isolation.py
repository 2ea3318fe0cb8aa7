"""Graph tests: one environment's DMS target role cannot delete or write another's tables,
nor delete anything at all — DMS's account-wide exception tables included.

Two environments share one AWS account and region (`dev` and `prod`, plus `dev-eu`, whose
name starts like dev's). Each stack is written into tmp_path and run under mocks; the DMS
target role of each is evaluated with IAM's wildcard rules (tests/iam_eval.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from dms_event_bus.components.dms_source import DMS_CONTROL_TABLES
from tests.iam_eval import Role, roles_of
from tools.mockrun import ACCOUNT, run_stack

ENVIRONMENTS = ("dev", "dev-eu", "prod")
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
TABLE_ARN = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/"
#: What the DynamoDB target role could do to a table's data or the table itself.
DESTROY = ("dynamodb:DeleteTable", "dynamodb:DeleteItem")
WRITE = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem",
         "dynamodb:DeleteItem", "dynamodb:CreateTable", "dynamodb:DeleteTable")
#: Every DynamoDB action that changes or removes data or a table.
MUTATIONS = (*WRITE, "dynamodb:UpdateTable", "dynamodb:RestoreTableToPointInTime",
             "dynamodb:UpdateTimeToLive", "dynamodb:PartiQLDelete", "dynamodb:PartiQLUpdate",
             "dynamodb:PartiQLInsert")


def stack_config() -> dict[str, Any]:
    """A stack with declared tables and a wildcard (DMS creates tables: CreateTable), a
    customer-managed key and DMS's apply exceptions table in use."""
    return {
        "aws:region": "eu-west-1",
        "dms-event-bus:encryption": {"kms_key_arn": KEY},
        "dms-event-bus:tables": {
            "orders": {"partition_key": {"name": "order_id", "type": "N"}},
            "order_lines": {
                "partition_key": {"name": "order_id", "type": "N"},
                "sort_key": {"name": "line_no", "type": "N"},
            },
        },
        "dms-event-bus:dms": {
            "capacity": {"mode": "serverless"},
            "network": {
                "vpc_id": "vpc-0123456789abcdef0",
                "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                "source_cidrs": ["10.20.0.0/24"],
            },
            "source": {
                "engine": "postgres",
                "server": "erp.db.internal",
                "database": "erp",
                "secret_arn": f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:erp-a1B2c3",
            },
            "default_schema": "sales",
            "wildcards": [{"schema": "audit", "table_pattern": "%", "table_prefix": "audit_"}],
            "task": {"on_apply_error": "exceptions_table"},
        },
    }


@pytest.fixture(scope="module")
def target_roles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Role]:
    roles = {}
    for env in ENVIRONMENTS:
        folder: Path = tmp_path_factory.mktemp(env)
        (folder / f"Pulumi.{env}.yaml").write_text(
            yaml.safe_dump({"config": stack_config()}, sort_keys=False)
        )
        roles[env] = roles_of(run_stack(env, stack_dir=folder))[f"dmsbus-{env}-dms-target"]
    return roles


def own_table(env: str, name: str) -> bool:
    """A table the environment's DMS task writes: `dmsbus-<env>-<logical>`, no further `-`."""
    prefix = f"dmsbus-{env}-"
    return name.startswith(prefix) and "-" not in name[len(prefix):]


def test_no_environment_can_delete_a_table_or_dms_exception_table(
    target_roles: dict[str, Role],
) -> None:
    # GIVEN every environment's waypoint tables, wildcard tables, IngestApi tables and the
    # exception tables DMS shares between all tasks of the account
    names = [
        *DMS_CONTROL_TABLES,
        *(f"dmsbus-{env}-{t}" for env in ENVIRONMENTS
          for t in ("orders", "order_lines", "audit_events", "ingest-orders")),
    ]
    for env, role in target_roles.items():
        for name in names:
            arn = f"{TABLE_ARN}{name}"
            # THEN no role may delete any table, its own included
            assert not role.allows("dynamodb:DeleteTable", arn), (env, name)
            # AND no role may change another environment's table, or the exception tables'
            # existing records (they hold prod's failed changes too)
            for action in MUTATIONS:
                if action in ("dynamodb:PutItem", "dynamodb:UpdateItem",
                              "dynamodb:BatchWriteItem", "dynamodb:CreateTable") and (
                        name in DMS_CONTROL_TABLES):
                    continue  # DMS appends its exception records (and creates the tables)
                assert role.allows(action, arn) is (
                    own_table(env, name) and action in WRITE and action != "dynamodb:DeleteTable"
                ), (env, name, action)


def test_the_exception_tables_are_append_only(target_roles: dict[str, Role]) -> None:
    # GIVEN DMS's exception tables, whose names DMS fixes for the whole account
    for env, role in target_roles.items():
        for name in DMS_CONTROL_TABLES:
            arn = f"{TABLE_ARN}{name}"
            # THEN DMS can create them and append to them ...
            for action in ("dynamodb:DescribeTable", "dynamodb:CreateTable",
                           "dynamodb:PutItem", "dynamodb:BatchWriteItem"):
                assert role.allows(action, arn), (env, name, action)
            # ... but not remove them or their records
            for action in DESTROY:
                assert not role.allows(action, arn), (env, name, action)


_TABLE_NAMES = st.from_regex(r"[A-Za-z0-9_.-]{3,255}", fullmatch=True)


@examples(max_examples=300, deadline=None)
@example(name="awsdms_apply_exceptions", env_index=0)
@example(name="awsdms_full_load_exceptions", env_index=2)
@example(name="dmsbus-prod-orders", env_index=0)
@example(name="dmsbus-dev-eu-orders", env_index=0)
@given(name=_TABLE_NAMES, env_index=st.integers(0, len(ENVIRONMENTS) - 1))
def test_a_role_deletes_or_writes_only_inside_its_prefix(
    target_roles: dict[str, Role], name: str, env_index: int
) -> None:
    """For any table name of the account: DeleteTable never; DeleteItem and every other
    write only on `dmsbus-<env>-<no dash>` (the exception tables take appends only)."""
    env = ENVIRONMENTS[env_index]
    role = target_roles[env]
    arn = f"{TABLE_ARN}{name}"
    assert not role.allows("dynamodb:DeleteTable", arn)
    assert role.allows("dynamodb:DeleteItem", arn) is own_table(env, name)
    if role.allows("dynamodb:PutItem", arn):
        assert own_table(env, name) or name in DMS_CONTROL_TABLES, name
    for other in ENVIRONMENTS:
        if other != env and own_table(other, name):
            for action in MUTATIONS:
                assert not role.allows(action, arn), (env, name, action)
