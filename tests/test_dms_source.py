"""DmsSource under Pulumi mocks, its pure table-mapping / task-settings builders, and the
`dms` config section's checks (bad config fails in `load_settings`, before any resource).

Each test builds a small program: declared StreamedTables, one stream mapping per table
(as KinesisBus declares them), then the DmsSource depending on both.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import functools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dms_event_bus.components.dms_source import (
    DMS_CONTROL_TABLES,
    DmsSource,
    DmsSourceArgs,
    build_table_mappings,
    build_task_settings,
    wildcard_limits,
)
from dms_event_bus.components.stream_mapping import MappingSettings, stream_mapping
from dms_event_bus.components.streamed_table import KeySpec, StreamedTable, StreamedTableArgs
from dms_event_bus.settings import ConfigError, StackSettings, load_settings
from dms_event_bus.settings.component_args import dms_source_args
from dms_event_bus.settings.dms import DmsSettings, dms_pattern_matches, wildcard_tables_not_carried
from dms_event_bus.settings.stackfile import project_config, read_stack_config
from tests.dms_simulator import (
    AMBIGUOUS,
    NOT_CARRIED,
    OBJECT_MAPPING,
    WILDCARD,
    like,
    simulate,
)
from tests.dms_simulator import Path as RulePath
from tests.fixture_stacks import STACKS_DIR
from tools.mockrun import ACCOUNT, Declared, Plan, run_program, run_stack
from tools.plan import main as plan_main

TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:dmsbus-test-alarms"
SECRET_ARN = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:erp-source-AbC123"
#: What the secret holds. It must never appear in any resource input or output.
SECRET_VALUE = "Erp-S3cret-4711!"
TASK = "aws:dms/replicationTask:ReplicationTask"
CONFIG = "aws:dms/replicationConfig:ReplicationConfig"
INSTANCE = "aws:dms/replicationInstance:ReplicationInstance"
ENDPOINT = "aws:dms/endpoint:Endpoint"
ROLE = "aws:iam/role:Role"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
TABLE = "aws:dynamodb/table:Table"
KMS_KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1f2e3d4c-5b6a-4789-9abc-def012345678"


def realistic_raw(**dms_overrides: Any) -> dict[str, Any]:
    """A legacy ERP: single and composite keys, a default schema, an audit wildcard."""
    raw: dict[str, Any] = {
        "tables": {
            "customers": {
                "source": {"schema": "sales", "table": "customers"},
                "partition_key": {"name": "customer_id", "type": "N"},
            },
            "orders": {"partition_key": {"name": "order_id", "type": "N"}},
            "order_lines": {
                "partition_key": {"name": "order_id", "type": "N"},
                "sort_key": {"name": "line_no", "type": "N"},
            },
            "price_list": {
                "source": {"schema": "catalog", "table": "PRICE_LIST"},
                "partition_key": {"name": "SKU", "type": "S"},
                "sort_key": {"name": "VALID_FROM", "type": "S"},
            },
        },
        "dms": {
            "capacity": {"mode": "serverless", "min_capacity_units": 1, "max_capacity_units": 8},
            "network": {
                "vpc_id": "vpc-0123456789abcdef0",
                "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                "source_cidrs": ["10.20.0.0/24"],
            },
            "source": {
                "engine": "postgres",
                "server": "erp.db.internal",
                "database": "erp",
                "secret_arn": SECRET_ARN,
            },
            "default_schema": "sales",
            "tables": {
                "order_lines": {"primary_key": ["order_id", "line_no"]},
                "customers": {"exclude_columns": ["internal_notes", "legacy_flags"]},
            },
            "wildcards": [
                {
                    "schema": "audit",
                    "table_pattern": "%",
                    "exclude": ["tmp_%", "%_bak"],
                    "table_prefix": "audit_",
                },
                {"schema": "sales", "table_pattern": "promo_%"},
            ],
            "task": {"start": True},
        },
    }
    raw["dms"].update(copy.deepcopy(dms_overrides))
    if raw["dms"]["source"]["engine"] == "oracle":
        return oracle_spelling(raw)
    return raw


def oracle_spelling(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` as an Oracle stack spells it: schemas, tables, columns and patterns in upper
    case (Oracle keeps unquoted names so, and DMS compares them case-sensitively), every
    declared table with its `source`."""
    raw = copy.deepcopy(raw)
    dms = raw["dms"]
    default = dms.pop("default_schema", None)
    for logical, table in raw["tables"].items():
        source = table.get("source") or {"schema": default, "table": logical}
        if source["schema"] is None:
            continue  # the caller replaces the tables
        table["source"] = {"schema": source["schema"].upper(), "table": source["table"].upper()}
        for key in ("partition_key", "sort_key"):
            if key in table:
                table[key]["name"] = table[key]["name"].upper()
    for extra in dms.get("tables", {}).values():
        for key in ("primary_key", "exclude_columns"):
            if key in extra:
                extra[key] = [column.upper() for column in extra[key]]
    for wildcard in dms.get("wildcards", []):
        wildcard["schema"] = wildcard["schema"].upper()
        wildcard["table_pattern"] = wildcard.get("table_pattern", "%").upper()
        wildcard["exclude"] = [pattern.upper() for pattern in wildcard.get("exclude", [])]
    return raw


def settings_of(raw: dict[str, Any], stack: str = "test") -> StackSettings:
    return load_settings(stack, raw)


def args_of(
    settings: StackSettings,
    environment: str = "test",
    *,
    dms: DmsSettings | None = None,
    tables: Any = None,
    **extra: Any,
) -> DmsSourceArgs:
    """DmsSource's args from validated settings, as the program makes them."""
    section = dms if dms is not None else settings.dms
    assert section is not None
    return dms_source_args(
        section,
        settings.tables if tables is None else tables,
        environment=environment,
        notification_topic_arn=TOPIC,
        **extra,
    )


def mappings_of(settings: StackSettings, name_prefix: str) -> dict[str, Any]:
    """The table-mapping document of `settings` for `dmsbus-<environment>-`."""
    args = args_of(settings, name_prefix.removeprefix("dmsbus-").removesuffix("-"))
    return build_table_mappings(args.tables, args.wildcards, name_prefix)


def run_dms(
    settings: StackSettings, *, kms_key_arn: str | None = None, name: str = "dms"
) -> Plan:
    """Declare the tables, one stream mapping per table, then the DmsSource."""
    assert settings.dms is not None

    def program() -> None:
        depends: list[pulumi.Resource] = []
        for logical, table in settings.tables.items():
            streamed = StreamedTable(
                f"table-{logical}",
                StreamedTableArgs(
                    table_name=settings.physical_table_name(logical),
                    partition_key=KeySpec(table.partition_key.name, table.partition_key.type),
                    sort_key=KeySpec(table.sort_key.name, table.sort_key.type)
                    if table.sort_key
                    else None,
                ),
            )
            mapping = stream_mapping(
                f"fanin-{logical}",
                function_name="dmsbus-test-fanin",
                stream_arn=streamed.stream_arn,
                dlq_arn=f"arn:aws:sqs:eu-west-1:{ACCOUNT}:dmsbus-test-dlq",
                settings=MappingSettings(),
                parent=streamed,
            )
            depends += [streamed, mapping]
        source = DmsSource(
            name,
            args_of(
                settings,
                settings.environment,
                depends_on=depends,
                kms_key_arn=kms_key_arn,
                tags={"environment": settings.environment},
            ),
        )
        pulumi.export("physical_table_names", source.physical_table_names)
        pulumi.export("table_mappings", source.table_mappings)
        pulumi.export("metric_dimensions", source.metric_dimensions)

    return run_program(settings.environment, {"aws:region": "eu-west-1"}, program)


def only(plan: Plan, type_: str) -> Declared:
    found = plan.of_type(type_)
    assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
    return found[0]


def endpoint(plan: Plan, kind: str) -> Declared:
    return next(r for r in plan.of_type(ENDPOINT) if r.inputs["endpointType"] == kind)


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, leaf) of nested inputs, JSON strings (policies, mappings) included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", key
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk(item, f"{path}[{i}]")
    elif isinstance(value, str) and value[:1] in "{[":
        try:
            yield from walk(json.loads(value), path)
        except ValueError:
            yield path, value
    else:
        yield path, value


# -- the pure table-mapping builder -------------------------------------------------------


def test_table_mappings_for_a_realistic_config() -> None:
    # GIVEN explicit tables (default schema, composite keys, excluded columns) and two
    # wildcards, one with exclusions and an extra name prefix
    settings = settings_of(realistic_raw())
    assert settings.dms is not None
    # WHEN the mapping document is built
    doc = mappings_of(settings, "dmsbus-test-")
    rules = doc["rules"]
    # THEN every rule has a unique id and name, in one sequence
    assert [r["rule-id"] for r in rules] == [str(i) for i in range(1, len(rules) + 1)]
    assert len({r["rule-name"] for r in rules}) == len(rules)
    # AND each declared table is selected exactly, from its own or the default schema (a
    # literal `_` is `[_]`: bare, DMS reads it as any one character)
    includes = {
        (r["object-locator"]["schema-name"], r["object-locator"]["table-name"])
        for r in rules
        if r["rule-type"] == "selection" and r["rule-action"] == "include"
    }
    assert includes == {
        ("sales", "customers"),
        ("sales", "orders"),
        ("sales", "order[_]lines"),
        ("catalog", "PRICE[_]LIST"),
        ("audit", "%"),
        ("sales", "promo_%"),
    }
    # AND each declared table is mapped record-to-record onto its prefixed table with its keys
    maps = {
        r["target-table-name"]: r for r in rules if r["rule-type"] == "object-mapping"
    }
    assert set(maps) == {
        "dmsbus-test-customers",
        "dmsbus-test-orders",
        "dmsbus-test-order_lines",
        "dmsbus-test-price_list",
    }
    assert all(r["rule-action"] == "map-record-to-record" for r in maps.values())
    assert maps["dmsbus-test-order_lines"]["mapping-parameters"] == {
        "partition-key-name": "order_id",
        "sort-key-name": "line_no",
    }
    assert maps["dmsbus-test-price_list"]["object-locator"] == {
        "schema-name": "catalog",
        "table-name": "PRICE[_]LIST",
    }
    assert maps["dmsbus-test-price_list"]["mapping-parameters"] == {
        "partition-key-name": "SKU",
        "sort-key-name": "VALID_FROM",
    }
    assert maps["dmsbus-test-orders"]["mapping-parameters"] == {"partition-key-name": "order_id"}
    assert maps["dmsbus-test-customers"]["mapping-parameters"] == {
        "partition-key-name": "customer_id",
        "exclude-columns": ["internal_notes", "legacy_flags"],
    }
    # AND the wildcard's exclusions are selection excludes in the wildcard's schema
    excludes = [
        r["object-locator"] for r in rules if r["rule-type"] == "selection" and
        r["rule-action"] == "exclude"
    ]
    assert excludes == [
        {"schema-name": "audit", "table-name": "tmp_%"},
        {"schema-name": "audit", "table-name": "%_bak"},
    ]
    # AND wildcard tables are lowercased and get the environment (+ extra) prefix
    transforms = [
        (r["object-locator"]["schema-name"], r["rule-action"], r.get("value"))
        for r in rules
        if r["rule-type"] == "transformation"
    ]
    assert transforms == [
        ("audit", "convert-lowercase", None),
        ("audit", "add-prefix", "dmsbus-test-audit_"),
        ("sales", "convert-lowercase", None),
        ("sales", "add-prefix", "dmsbus-test-"),
    ]
    assert all(
        r["rule-target"] == "table" for r in rules if r["rule-type"] == "transformation"
    )
    # AND the document is plain JSON DMS accepts in size
    assert len(json.dumps(doc)) < 2_000_000


def test_table_mappings_refuse_inconsistent_input() -> None:
    # GIVEN a wildcard (sales.%, prefix audit_) that also matches declared tables and would
    # name them differently
    raw = realistic_raw()
    raw["dms"]["wildcards"][0]["schema"] = "sales"
    # WHEN the stack config is loaded THEN it is refused, naming the table and the name it
    # would need
    with pytest.raises(ConfigError, match=r"tables\.customers.*'audit_customers'"):
        settings_of(raw)
    # AND settings that bypass the stack validation (models copied, a component used on its
    # own) are refused when they become the component's args, with the same message
    settings = settings_of(realistic_raw())
    assert settings.dms is not None
    overlapping = settings.dms.wildcards[0].model_copy(update={"schema_name": "sales"})
    bad = settings.dms.model_copy(update={"wildcards": [overlapping]})
    with pytest.raises(ValueError, match=r"tables\.customers: .*'audit_customers'"):
        args_of(settings, dms=bad)


def test_task_settings_keep_the_declared_tables_and_log() -> None:
    settings = settings_of(realistic_raw(task={"start": False, "parallel_load_threads": 4}))
    assert settings.dms is not None
    doc = build_task_settings(args_of(settings).task)
    assert doc["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"
    assert doc["Logging"]["EnableLogging"] is True
    assert {c["Id"] for c in doc["Logging"]["LogComponents"]} >= {
        "SOURCE_CAPTURE",
        "TARGET_APPLY",
        "TARGET_LOAD",
        "TASK_MANAGER",
    }
    assert doc["TargetMetadata"]["ParallelLoadThreads"] == 4
    errors = doc["ErrorBehavior"]
    assert errors["RecoverableErrorCount"] == -1  # transient errors: retry, never give up
    # nothing only logged: by default a data or truncation error stops the task
    assert errors["DataErrorPolicy"] == errors["DataTruncationErrorPolicy"] == "STOP_TASK"
    assert errors["FailOnNoTablesCaptured"] is True
    # a dropped or truncated source table never deletes waypoint data
    ddl = doc["ChangeProcessingDdlHandlingPolicy"]
    assert ddl["HandleSourceTableDropped"] is False and ddl["HandleSourceTableTruncated"] is False
    assert doc["ChangeProcessingTuning"]["BatchApplyPreserveTransaction"] is True


# -- the component under mocks ------------------------------------------------------------


@pytest.fixture(scope="module")
def serverless_plan() -> Plan:
    return run_dms(settings_of(realistic_raw()))


@pytest.fixture(scope="module")
def instance_plan() -> Plan:
    raw = realistic_raw(
        capacity={
            "mode": "instance",
            "instance_class": "dms.r6i.large",
            "allocated_storage_gb": 200,
            "multi_az": True,
            "engine_version": "3.5.4",
            "auto_minor_version_upgrade": False,
        },
    )
    return run_dms(settings_of(raw, "prod"), kms_key_arn=KMS_KEY)


@pytest.fixture(scope="module")
def serverless_cmk_plan() -> Plan:
    return run_dms(settings_of(realistic_raw(), "cmk"), kms_key_arn=KMS_KEY)


def test_component_type_and_children(instance_plan: Plan) -> None:
    component = only(instance_plan, "dms-event-bus:index:DmsSource")
    children = instance_plan.children_of(component)
    assert children, "every resource of the component is its child"
    assert all(c.name.startswith("dms-") for c in children)
    assert instance_plan.exports["physical_table_names"] == {
        "customers": "dmsbus-prod-customers",
        "order_lines": "dmsbus-prod-order_lines",
        "orders": "dmsbus-prod-orders",
        "price_list": "dmsbus-prod-price_list",
    }


def test_task_carries_the_generated_mappings_and_settings(instance_plan: Plan) -> None:
    task = only(instance_plan, TASK)
    prod = settings_of(realistic_raw(), "prod")
    assert prod.dms is not None
    assert json.loads(task.inputs["tableMappings"]) == mappings_of(prod, "dmsbus-prod-")
    assert task.inputs["migrationType"] == "full-load-and-cdc"
    assert task.inputs["startReplicationTask"] is True
    assert task.inputs["replicationTaskId"] == "dmsbus-prod-cdc"
    settings_doc = json.loads(task.inputs["replicationTaskSettings"])
    assert settings_doc["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"
    assert settings_doc["Logging"]["EnableLogging"] is True


def test_task_depends_on_every_table_and_its_stream_mapping(instance_plan: Plan) -> None:
    task = only(instance_plan, TASK)
    tables = instance_plan.of_type(TABLE)
    mappings = instance_plan.of_type(MAPPING)
    assert len(tables) == 4 and len(mappings) == 4
    for resource in tables + mappings:
        assert resource.urn in task.dependencies, f"task does not wait for {resource.name}"


def test_serverless_config_depends_on_every_table_and_mapping(serverless_plan: Plan) -> None:
    config = only(serverless_plan, CONFIG)
    for resource in serverless_plan.of_type(TABLE) + serverless_plan.of_type(MAPPING):
        assert resource.urn in config.dependencies, f"config does not wait for {resource.name}"


def test_replication_instance_is_private_sized_and_encrypted(instance_plan: Plan) -> None:
    instance = only(instance_plan, INSTANCE)
    assert instance.inputs["publiclyAccessible"] is False
    assert instance.inputs["multiAz"] is True
    assert instance.inputs["replicationInstanceClass"] == "dms.r6i.large"
    assert instance.inputs["allocatedStorage"] == 200
    assert instance.inputs["engineVersion"] == "3.5.4"
    assert instance.inputs["kmsKeyArn"].startswith("arn:aws:kms:")
    assert instance.inputs["replicationSubnetGroupId"] == "dmsbus-prod-dms"
    subnets = only(instance_plan, "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup")
    assert len(subnets.inputs["subnetIds"]) == 2
    group = only(instance_plan, "aws:ec2/securityGroup:SecurityGroup")
    assert not group.inputs.get("ingress"), "nothing may connect to the replication instance"
    ports = {(e["fromPort"], tuple(e.get("cidrBlocks", []))) for e in group.inputs["egress"]}
    assert (5432, ("10.20.0.0/24",)) in ports
    # the instance sits in exactly this group (the mock id of `dmsbus-prod-dms`)
    assert instance.inputs["vpcSecurityGroupIds"] == [f"{group.inputs['name']}-id"]
    assert not instance_plan.of_type(CONFIG), "instance mode declares no serverless config"


def test_serverless_capacity(serverless_plan: Plan) -> None:
    config = only(serverless_plan, CONFIG)
    compute = config.inputs["computeConfig"]
    assert compute["minCapacityUnits"] == 1 and compute["maxCapacityUnits"] == 8
    assert compute["replicationSubnetGroupId"] == "dmsbus-test-dms"
    assert len(compute["vpcSecurityGroupIds"]) == 1
    assert config.inputs["replicationType"] == "full-load-and-cdc"
    assert config.inputs["startReplication"] is True
    assert json.loads(config.inputs["replicationSettings"])["FullLoadSettings"][
        "TargetTablePrepMode"
    ] == "DO_NOTHING"
    assert not serverless_plan.of_type(INSTANCE) and not serverless_plan.of_type(TASK)
    # serverless state changes reach the topic through EventBridge
    target = only(serverless_plan, "aws:cloudwatch/eventTarget:EventTarget")
    assert target.inputs["arn"] == TOPIC
    pattern = json.loads(only(serverless_plan, "aws:cloudwatch/eventRule:EventRule").inputs[
        "eventPattern"
    ])
    assert pattern["source"] == ["aws.dms"]


def test_source_endpoint_uses_the_secret_and_tls(instance_plan: Plan) -> None:
    source = endpoint(instance_plan, "source")
    assert source.inputs["engineName"] == "postgres"
    assert source.inputs["endpointId"] == "dmsbus-prod-source"
    assert source.inputs["databaseName"] == "erp"
    assert source.inputs["sslMode"] == "require"
    assert source.inputs["secretsManagerArn"] == SECRET_ARN
    secrets_role = next(r for r in instance_plan.of_type(ROLE) if r.name == "dms-secrets-role")
    assert source.inputs["secretsManagerAccessRoleArn"] == secrets_role.outputs["arn"]
    for key in ("password", "username", "serverName", "port"):
        assert key not in source.inputs, f"{key} must come from the secret, not an input"
    pg = source.inputs["postgresSettings"]
    assert pg["heartbeatEnable"] is True and pg["failTasksOnLobTruncation"] is True
    # the secrets role reads this one secret only
    policy = json.loads(instance_plan.named("dms-secrets-policy").inputs["policy"])
    [statement] = policy["Statement"]
    assert statement["Resource"] == [SECRET_ARN]
    assert set(statement["Action"]) == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    }


@pytest.mark.parametrize(
    ("engine", "block", "extra"),
    [
        ("mysql", "mysqlSettings", {}),
        ("mariadb", "mysqlSettings", {}),
        ("aurora", "mysqlSettings", {}),
        ("aurora-postgresql", "postgresSettings", {"database": "erp"}),
        (
            "oracle",
            "oracleSettings",
            {
                "database": "ERPPDB",
                "ssl_mode": "verify-ca",
                "certificate_arn": f"arn:aws:dms:eu-west-1:{ACCOUNT}:cert:ORACLECA",
            },
        ),
        ("sqlserver", None, {"database": "erp", "ssl_mode": "verify-full",
                             "certificate_arn": f"arn:aws:dms:eu-west-1:{ACCOUNT}:cert:MSCA"}),
    ],
)
def test_source_endpoint_settings_per_engine(
    engine: str, block: str | None, extra: dict[str, Any]
) -> None:
    source_cfg = {
        "engine": engine,
        "server": "legacy.db.internal",
        "secret_arn": SECRET_ARN,
        **extra,
    }
    plan = run_dms(settings_of(realistic_raw(source=source_cfg), f"e{len(engine)}"))
    source = endpoint(plan, "source")
    assert source.inputs["engineName"] == engine
    assert source.inputs["sslMode"] == extra.get("ssl_mode", "require")
    if "certificate_arn" in extra:
        assert source.inputs["certificateArn"] == extra["certificate_arn"]
    blocks = {k for k in source.inputs if k.endswith("Settings")}
    assert blocks == ({block} if block else set())
    egress_ports = {e["fromPort"] for e in only(plan, "aws:ec2/securityGroup:SecurityGroup")
                    .inputs["egress"]}
    # Oracle over TLS: the TLS listener's port (RDS's SSL option default), not 1521
    assert {"postgres": 5432, "aurora-postgresql": 5432, "oracle": 2484, "sqlserver": 1433}.get(
        engine, 3306
    ) in egress_ports


def test_target_endpoint_is_dynamodb_with_a_scoped_role(instance_plan: Plan) -> None:
    target = endpoint(instance_plan, "target")
    assert target.inputs["engineName"] == "dynamodb"
    role = instance_plan.named("dms-target-role")
    assert target.inputs["serviceAccessRole"] == role.outputs["arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    [statement] = trust["Statement"]
    assert "dms.amazonaws.com" in statement["Principal"]["Service"]
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT
    policy = target_policy(instance_plan)
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert set(statements) == {
        "EnvironmentTables", "NoOtherEnvironment", "DmsControlTables", "ListTables",
        "TableKeyThroughDynamoDB",
    }
    # this environment's tables by its name prefix: one pattern, whatever the table count
    data = statements["EnvironmentTables"]
    assert data["Effect"] == "Allow"
    assert data["Resource"] == [f"{TABLE_ARN}dmsbus-prod-*"]
    assert "dynamodb:DeleteTable" not in data["Action"], "DMS never deletes waypoint tables"
    assert "dynamodb:CreateTable" in data["Action"]  # wildcard tables: DMS creates them
    # ... minus every name with a '-' after the prefix (another environment's, e.g. prod-eu)
    others = statements["NoOtherEnvironment"]
    assert others["Effect"] == "Deny"
    assert others["Resource"] == [f"{TABLE_ARN}dmsbus-prod-*-*"]
    assert others["Action"] == data["Action"]
    control = statements["DmsControlTables"]
    assert control["Resource"] == [f"{TABLE_ARN}{t}" for t in DMS_CONTROL_TABLES]
    assert statements["ListTables"]["Action"] == ["dynamodb:ListTables"]


def target_policy(plan: Plan) -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(plan.named("dms-target-policy").inputs["policy"])
    return policy


TABLE_ARN = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/"
VIA_DYNAMODB = "dynamodb.eu-west-1.amazonaws.com"


def _values(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _wildcard(pattern: str, value: str) -> bool:
    """IAM's `*` / `?` wildcards (ARNs and condition values here never hold `[`)."""
    assert "[" not in pattern, pattern
    return fnmatch.fnmatchcase(value, pattern)


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            found = context.get(key)
            if operator == "StringEquals":
                ok = found is not None and found in _values(expected)
            elif operator == "StringLike":
                ok = found is not None and any(_wildcard(p, found) for p in _values(expected))
            elif operator == "StringNotLike":
                ok = found is None or not any(_wildcard(p, found) for p in _values(expected))
            else:
                raise AssertionError(f"condition operator {operator} not evaluated by this test")
            if not ok:
                return False
    return True


def iam_allows(
    policy: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None
) -> bool:
    """IAM's evaluation of one identity policy: an applicable Deny wins, else an applicable
    Allow allows, else the request is implicitly denied."""
    allowed = False
    for statement in policy["Statement"]:
        applies = (
            any(_wildcard(a, action) for a in _values(statement["Action"]))
            and any(_wildcard(r, resource) for r in _values(statement["Resource"]))
            and _condition_holds(statement.get("Condition", {}), context or {})
        )
        if applies and statement["Effect"] == "Deny":
            return False
        allowed = allowed or applies
    return allowed


def dms_reaches(policy: dict[str, Any], table: str) -> bool:
    """May the DMS target role write this table, and decrypt its key through DynamoDB?"""
    return iam_allows(policy, "dynamodb:PutItem", f"{TABLE_ARN}{table}")


def key_reaches(policy: dict[str, Any], table: str) -> bool:
    return iam_allows(
        policy,
        "kms:Decrypt",
        KMS_KEY,
        {
            "kms:ViaService": VIA_DYNAMODB,
            "kms:EncryptionContext:aws:dynamodb:tableName": table,
            "kms:EncryptionContext:aws:dynamodb:subscriberId": ACCOUNT,
        },
    )


def wide_raw() -> dict[str, Any]:
    """The realistic ERP plus a bare `%` wildcard without a table prefix: the widest
    selection DMS can be given (its tables are named `<prefix><source table>`)."""
    raw = realistic_raw()
    # a whole schema; its own table_prefix, else its names could be the declared tables'
    raw["dms"]["wildcards"].append(
        {"schema": "staging", "table_pattern": "%", "table_prefix": "staging_"}
    )
    return raw


@functools.cache
def wide_policy(environment: str) -> dict[str, Any]:
    """The DMS target role's policy of one environment (a CMK stack), from the graph of the
    component alone (the tables it would wait for do not change the policy)."""
    settings = settings_of(wide_raw(), environment)
    assert settings.dms is not None
    args = args_of(settings, environment, kms_key_arn=KMS_KEY)
    return target_policy(
        run_program(environment, {"aws:region": "eu-west-1"}, lambda: DmsSource("dms", args))
    )


def dms_table_names(environment: str, logical_names: Sequence[str] = ()) -> list[str]:
    """Names of tables DMS writes for an environment: declared ones, ones its wildcards make
    (`audit_` prefix, `promo_%`, all of `staging`), and any other logical name given."""
    prefix = f"dmsbus-{environment}-"
    declared = [f"{prefix}{t}" for t in realistic_raw()["tables"]]
    made = [f"{prefix}audit_login_events", f"{prefix}promo_summer",
            f"{prefix}staging_stock_moves"]
    return declared + made + [f"{prefix}{name}" for name in logical_names]


def test_key_grant_is_scoped_to_dynamodb_and_this_environments_tables(
    instance_plan: Plan, serverless_cmk_plan: Plan
) -> None:
    # GIVEN a stack whose waypoint tables use its customer-managed key (both capacity modes)
    for plan, env in ((instance_plan, "prod"), (serverless_cmk_plan, "cmk")):
        policy = target_policy(plan)
        # THEN the target role may decrypt the tables' key, only through DynamoDB in this
        # region, only for this account's tables of this environment
        [grant] = [s for s in policy["Statement"] if s["Sid"] == "TableKeyThroughDynamoDB"]
        assert grant["Effect"] == "Allow"
        assert grant["Action"] == ["kms:Decrypt"]
        assert grant["Resource"] == [KMS_KEY]
        assert grant["Condition"] == {
            "StringEquals": {
                "kms:ViaService": VIA_DYNAMODB,
                "kms:EncryptionContext:aws:dynamodb:subscriberId": ACCOUNT,
            },
            "StringLike": {"kms:EncryptionContext:aws:dynamodb:tableName": [f"dmsbus-{env}-*"]},
            "StringNotLike": {
                "kms:EncryptionContext:aws:dynamodb:tableName": [f"dmsbus-{env}-*-*"]
            },
        }
        for table in dms_table_names(env):
            assert key_reaches(policy, table), table
        # AND not directly, nor through another service, nor for another account's table
        context = {
            "kms:EncryptionContext:aws:dynamodb:tableName": f"dmsbus-{env}-orders",
            "kms:EncryptionContext:aws:dynamodb:subscriberId": ACCOUNT,
        }
        assert not iam_allows(policy, "kms:Decrypt", KMS_KEY, context)
        via_s3 = {**context, "kms:ViaService": "s3.eu-west-1.amazonaws.com"}
        assert not iam_allows(policy, "kms:Decrypt", KMS_KEY, via_s3)
        assert not iam_allows(
            policy,
            "kms:Decrypt",
            KMS_KEY,
            {**context, "kms:ViaService": VIA_DYNAMODB,
             "kms:EncryptionContext:aws:dynamodb:subscriberId": "210987654321"},
        )


def test_no_key_grant_without_a_customer_key(serverless_plan: Plan) -> None:
    policy = target_policy(serverless_plan)
    assert not [s for s in policy["Statement"] if "kms:Decrypt" in _values(s["Action"])]


def test_environments_sharing_a_name_start_reach_none_of_each_others_tables() -> None:
    # GIVEN two environments in one account, one name starting like the other's (dev, dev-eu),
    # each with a bare `%` wildcard (the widest selection)
    dev, dev_eu = wide_policy("dev"), wide_policy("dev-eu")
    # THEN each role reaches its own tables and none of the other's, in both directions
    for own, other, policy in (("dev", "dev-eu", dev), ("dev-eu", "dev", dev_eu)):
        for table in dms_table_names(own):
            assert dms_reaches(policy, table), f"{own} cannot reach its own {table}"
        for table in dms_table_names(other):
            assert not dms_reaches(policy, table), f"{own} reaches {other}'s {table}"
            assert not key_reaches(policy, table), f"{own} decrypts {other}'s {table}"


ENV_NAME = st.from_regex(r"\A[a-z][a-z0-9-]{0,15}\Z")
LOGICAL = st.from_regex(r"\A[a-z][a-z0-9_]{0,62}\Z")


@st.composite
def environment_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """Two distinct environment names; often one is the other plus `-<more>` (dev, dev-eu)."""
    first = draw(ENV_NAME)
    if draw(st.booleans()):
        second = draw(ENV_NAME)
    else:
        more = draw(st.from_regex(r"\A[a-z0-9-]{1,14}\Z"))
        second = f"{first}-{more}"[:16]
    assume(second != first and re.fullmatch(r"[a-z][a-z0-9-]{0,15}", second))
    # the config refuses names that make DMS identifiers end in '-' or hold '--'
    assume(all(not n.endswith("-") and "--" not in n for n in (first, second)))
    return (first, second) if draw(st.booleans()) else (second, first)


@hypothesis_settings(
    max_examples=20,
    deadline=None,
    # the only function-scoped fixture is conftest's offline AWS environment: the same
    # for every example
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(pair=environment_pairs(), logical=st.lists(LOGICAL, min_size=1, max_size=6))
@example(pair=("dev", "dev-eu"), logical=["orders"])
@example(pair=("dev-eu", "dev"), logical=["eu_orders"])
def test_no_environment_reaches_another(pair: tuple[str, str], logical: list[str]) -> None:
    # GIVEN any two environments of one account, and any table names DMS may create for them
    mine, theirs = pair
    policy = wide_policy(mine)
    # THEN this environment's role reaches (tables and key) every table of its own ...
    for table in dms_table_names(mine, logical):
        assert dms_reaches(policy, table) and key_reaches(policy, table), table
    # ... and no table of the other environment
    for table in dms_table_names(theirs, logical):
        assert not dms_reaches(policy, table), f"{mine} reaches {table}"
        assert not key_reaches(policy, table), f"{mine} decrypts {table}"


def many_tables_raw(tables: int, wildcards: int) -> dict[str, Any]:
    raw = realistic_raw()
    raw["tables"] = {
        f"table_{i:03d}": {"partition_key": {"name": "id", "type": "N"}} for i in range(tables)
    }
    raw["dms"]["tables"] = {}
    raw["dms"]["default_schema"] = "main"
    raw["dms"]["wildcards"] = [
        {"schema": f"schema_{j}", "table_pattern": "%", "table_prefix": f"s{j}_"}
        for j in range(wildcards)
    ]
    return raw


def test_target_policy_does_not_grow_with_tables_or_wildcards() -> None:
    # GIVEN one table and no wildcard, and 25 tables with 6 wildcards (CMK stack)
    small = target_policy(run_dms(settings_of(many_tables_raw(1, 0), "grow"), kms_key_arn=KMS_KEY))
    large = target_policy(run_dms(settings_of(many_tables_raw(25, 6), "grow"), kms_key_arn=KMS_KEY))
    # THEN the policy is the same text: nothing in it is per table
    assert json.dumps(large) == json.dumps(small)
    # AND it still reaches every table of the large stack
    for i in range(25):
        assert dms_reaches(large, f"dmsbus-grow-table_{i:03d}")
    assert dms_reaches(large, "dmsbus-grow-s5_anything")


def test_no_secret_value_anywhere(instance_plan: Plan, serverless_plan: Plan) -> None:
    # GIVEN the secret holds the database password; WHEN both capacity modes are declared
    # THEN no input or output of any resource carries it, or any password-like key
    for plan in (instance_plan, serverless_plan):
        for resource in plan.resources:
            for where, value in [*walk(resource.inputs), *walk(resource.outputs)]:
                text = str(value)
                assert SECRET_VALUE not in text, f"{resource.name}{where}"
                assert not re.search(r"passw(or)?d", text, re.IGNORECASE), (
                    f"{resource.name}{where}: {text}"
                )
        # AND the program never reads the secret (nothing secret can reach the state)
        assert not [t for t, _ in plan.invokes if "secretsmanager" in t.lower()]


def _old_account_role_urns(stack: str) -> list[str]:
    """The URNs the account roles had when DmsSource still created them (component `dms`,
    children `dms-vpc-role`, `dms-logs-role` and their `-policy` attachments)."""

    def program() -> None:
        component = pulumi.ComponentResource("dms-event-bus:index:DmsSource", "dms")
        child = pulumi.ResourceOptions(parent=component)
        for short in ("vpc-role", "logs-role"):
            role = aws.iam.Role(f"dms-{short}", assume_role_policy="{}", opts=child)
            aws.iam.RolePolicyAttachment(
                f"dms-{short}-policy", role=role.name, policy_arn="arn:aws:iam::aws:policy/x",
                opts=child,
            )

    plan = run_program(stack, {"aws:region": "eu-west-1"}, program)
    return [r.urn for r in plan.resources if r.type.startswith("aws:iam/")]


def test_account_roles_create_is_refused_with_the_way_out() -> None:
    # GIVEN a stack file that still asks the stack to create the account-wide roles
    text = config_error(realistic_raw(account_roles="create"))
    # THEN it fails with one line at the key, naming the bootstrap command
    problems = [line for line in text.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1, text
    [line] = problems
    assert line.startswith("  - dms-event-bus:dms.account_roles: "), line
    assert "python -m tools.account_preflight bootstrap" in line
    assert "account_roles: existing" in line
    # AND, for a stack that created them, the state entries to drop so they stay in the
    # account: exactly the URNs the old component gave them, with the stack as a placeholder
    assert "pulumi state delete" in line
    old = _old_account_role_urns("dev")
    assert len(old) == 4
    for urn in old:
        assert urn.replace("urn:pulumi:dev::", "urn:pulumi:<stack>::") in line, urn


@pytest.mark.parametrize("roles", [None, "existing"])
def test_account_roles_are_never_declared(roles: str | None) -> None:
    # GIVEN `existing`, or no account_roles key (instance mode: subnet group and instance)
    raw = realistic_raw(capacity={"mode": "instance"})
    if roles is not None:
        raw["dms"]["account_roles"] = roles
    plan = run_dms(settings_of(raw, "roles"))
    # THEN no account-wide role or policy attachment is part of the stack
    names = {r.inputs.get("name") for r in plan.of_type(ROLE)}
    assert names == {"dmsbus-roles-dms-target", "dmsbus-roles-dms-secrets"}
    assert not plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    # AND the subnet group waits for nothing; the instance waits for the subnet group
    group = only(plan, "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup")
    assert group.dependencies == []
    instance = only(plan, INSTANCE)
    assert group.urn in instance.dependencies
    assert instance.inputs["replicationSubnetGroupId"] == "dmsbus-roles-dms"


def test_existing_account_roles_are_not_declared(serverless_plan: Plan) -> None:
    names = {r.inputs.get("name") for r in serverless_plan.of_type(ROLE)}
    assert not names & {"dms-vpc-role", "dms-cloudwatch-logs-role"}
    assert names == {"dmsbus-test-dms-target", "dmsbus-test-dms-secrets"}


#: Where each DMS resource type that can be encrypted names its KMS key.
KEY_INPUT: dict[str, tuple[str, ...]] = {
    "aws:cloudwatch/logGroup:LogGroup": ("kmsKeyId",),
    ENDPOINT: ("kmsKeyArn",),
    INSTANCE: ("kmsKeyArn",),
    CONFIG: ("computeConfig", "kmsKeyId"),
}
#: DmsSource's resource types that hold no data at rest (nothing to encrypt).
NO_DATA_AT_REST = {
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:dms/replicationSubnetGroup:ReplicationSubnetGroup",
    ROLE,
    "aws:iam/rolePolicy:RolePolicy",
    TASK,
    "aws:dms/eventSubscription:EventSubscription",
    "aws:cloudwatch/eventRule:EventRule",
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
}


def test_every_encrypted_dms_resource_names_the_stack_key(
    instance_plan: Plan, serverless_cmk_plan: Plan
) -> None:
    # GIVEN a stack with a customer-managed key, in both capacity modes
    for plan in (instance_plan, serverless_cmk_plan):
        component = only(plan, "dms-event-bus:index:DmsSource")
        children = plan.children_of(component)
        # THEN every resource type of the component is known: encrypted, or holding no data
        unknown = {c.type for c in children} - set(KEY_INPUT) - NO_DATA_AT_REST
        assert not unknown, f"classify these resource types: {unknown}"
        encrypted = [c for c in children if c.type in KEY_INPUT]
        # (the task log group, both endpoints, the instance or the serverless config)
        assert len(encrypted) == (4 if plan is instance_plan else 3), [c.name for c in encrypted]
        # AND each encrypted one names the stack's key
        for resource in encrypted:
            value: Any = resource.inputs
            for key in KEY_INPUT[resource.type]:
                value = (value or {}).get(key)
            assert value == KMS_KEY, f"{resource.name}: {'.'.join(KEY_INPUT[resource.type])}"


def test_whole_program_cmk_stack_dms_reaches_the_tables_key(tmp_path: Path) -> None:
    # GIVEN a stack file of its own: a customer-managed key, a replication instance
    raw = realistic_raw(
        capacity={"mode": "instance", "engine_version": "3.5.4",
                  "auto_minor_version_upgrade": False}
    )
    config = {
        "aws:region": "eu-west-1",
        "dms-event-bus:encryption": {"kms_key_arn": KMS_KEY},
        **{f"dms-event-bus:{k}": v for k, v in raw.items()},
    }
    (tmp_path / "Pulumi.keyed.yaml").write_text(yaml.safe_dump({"config": config}))
    # WHEN the whole program runs
    plan = run_stack("keyed", stack_dir=tmp_path)
    # THEN the waypoint tables DMS writes use the key ...
    tables = {t.inputs["name"]: t for t in plan.of_type(TABLE)}
    policy = target_policy(plan)
    for name in dms_table_names("keyed")[:4]:
        assert tables[name].inputs["serverSideEncryption"]["kmsKeyArn"] == KMS_KEY
        # ... and the DMS target role may write them and decrypt their key through DynamoDB
        assert dms_reaches(policy, name) and key_reaches(policy, name), name
    # AND every encryptable DMS resource names the same key
    component = only(plan, "dms-event-bus:index:DmsSource")
    encrypted = [c for c in plan.children_of(component) if c.type in KEY_INPUT]
    assert len(encrypted) == 4
    for resource in encrypted:
        value: Any = resource.inputs
        for key in KEY_INPUT[resource.type]:
            value = (value or {}).get(key)
        assert value == KMS_KEY, resource.name


def test_without_a_customer_key_nothing_names_one(serverless_plan: Plan) -> None:
    for resource in serverless_plan.children_of(
        only(serverless_plan, "dms-event-bus:index:DmsSource")
    ):
        for where, value in walk(resource.inputs):
            assert "arn:aws:kms:" not in str(value), f"{resource.name}{where}"


@pytest.mark.parametrize("automatic", [True, None], ids=["explicit", "default"])
def test_pinned_engine_version_with_automatic_upgrades_is_refused(automatic: bool | None) -> None:
    # GIVEN a pinned engine version while AWS applies minor upgrades (explicitly, or by default)
    capacity: dict[str, Any] = {"mode": "instance", "engine_version": "3.5.4"}
    if automatic is not None:
        capacity["auto_minor_version_upgrade"] = automatic
    text = config_error(realistic_raw(capacity=capacity))
    # THEN one line at engine_version says why and names both ways out
    problems = [line for line in text.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1, text
    [line] = problems
    assert line.startswith("  - dms-event-bus:dms.capacity.engine_version: "), line
    assert "remove engine_version" in line
    assert "auto_minor_version_upgrade: false" in line
    assert "downgrade" in line and "'3.5.4'" in line


@pytest.mark.parametrize(
    ("capacity", "version", "automatic"),
    [
        ({"engine_version": "3.5.4", "auto_minor_version_upgrade": False}, "3.5.4", False),
        ({}, None, True),
        ({"auto_minor_version_upgrade": False}, None, False),
    ],
    ids=["pinned-manual", "unpinned-automatic", "unpinned-manual"],
)
def test_engine_version_choices_that_plan(
    capacity: dict[str, Any], version: str | None, automatic: bool
) -> None:
    plan = run_dms(settings_of(realistic_raw(capacity={"mode": "instance", **capacity}), "ev"))
    instance = only(plan, INSTANCE)
    assert instance.inputs.get("engineVersion") == version
    assert instance.inputs["autoMinorVersionUpgrade"] is automatic


@pytest.mark.parametrize(
    ("dms_change", "key"),
    [
        (
            {"capacity": {"mode": "instance", "engine_version": "3.5.4"}},
            "dms.capacity.engine_version",
        ),
        ({"account_roles": "create"}, "dms.account_roles"),
    ],
    ids=["pinned-automatic", "account-roles-create"],
)
def test_offline_plan_exits_2_with_one_line(
    dms_change: dict[str, Any], key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stack file of its own with the mistake
    raw = realistic_raw(**dms_change)
    config = {"aws:region": "eu-west-1", **{f"dms-event-bus:{k}": v for k, v in raw.items()}}
    (tmp_path / "Pulumi.mistake.yaml").write_text(yaml.safe_dump({"config": config}))
    # WHEN the offline plan runs THEN it exits 2, naming the key, without a traceback
    assert plan_main(["--stack", "mistake", "--stack-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"dms-event-bus:{key}: " in err
    assert "Traceback" not in err


def test_events_and_alarms_instance_mode(instance_plan: Plan) -> None:
    subs = {r.inputs["sourceType"]: r for r in instance_plan.of_type(
        "aws:dms/eventSubscription:EventSubscription")}
    assert set(subs) == {"replication-task", "replication-instance"}
    task_sub = subs["replication-task"]
    assert set(task_sub.inputs["eventCategories"]) == {"failure", "state change"}
    assert task_sub.inputs["sourceIds"] == ["dmsbus-prod-cdc"]
    assert all(s.inputs["snsTopicArn"] == TOPIC for s in subs.values())
    alarms = [
        r
        for r in instance_plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if r.inputs.get("namespace") == "AWS/DMS"
    ]
    latency = [a for a in alarms if a.inputs["comparisonOperator"].startswith("Greater")]
    assert {a.inputs["metricName"] for a in latency} == {"CDCLatencySource", "CDCLatencyTarget"}
    for alarm in latency:
        assert alarm.inputs["dimensions"]["ReplicationTaskIdentifier"] == "dmsbus-prod-cdc"
        assert alarm.inputs["dimensions"]["ReplicationInstanceIdentifier"] == (
            "dmsbus-prod-replication"
        )
        assert alarm.inputs["alarmActions"] == [TOPIC]
    # the same dimensions are an output (for the dashboard)
    assert instance_plan.exports["metric_dimensions"] == latency[0].inputs["dimensions"]
    source_alarm = instance_plan.named("dms-cdclatencysource")
    assert source_alarm.inputs["threshold"] == 300
    not_running = instance_plan.named("dms-not-running")
    assert not_running.inputs["treatMissingData"] == "breaching"
    assert not_running.inputs["comparisonOperator"] == "LessThanThreshold"


def test_no_liveness_alarm_when_the_task_is_not_started() -> None:
    plan = run_dms(settings_of(realistic_raw(task={"start": False}), "idle"))
    assert only(plan, CONFIG).inputs["startReplication"] is False
    names = {r.name for r in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert "dms-not-running" not in names
    assert {"dms-cdclatencysource", "dms-cdclatencytarget"} <= names


def test_args_validation_names_the_field() -> None:
    settings = settings_of(realistic_raw())
    assert settings.dms is not None
    with pytest.raises(ValueError, match=r"DmsSourceArgs\.depends_on\[0\]"):
        args_of(settings, depends_on=["not-a-resource"])
    nothing = settings.dms.model_copy(update={"wildcards": [], "tables": {}})
    with pytest.raises(ValueError, match=r"DmsSourceArgs\.tables"):
        args_of(settings, dms=nothing, tables={})
    # an environment whose waypoint tables would be named like another's IngestApi tables
    # (dmsbus-shop-ingest-orders) cannot be scoped by its prefix
    with pytest.raises(ValueError, match=r"DmsSourceArgs\.environment"):
        args_of(settings, "shop-ingest")


# -- bad config fails in load_settings, with the key path ---------------------------------


def config_error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings("dev", raw)
    return str(caught.value)


def _mutate(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    raw = realistic_raw()
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            lambda r: r["dms"]["source"].update(engine="db2"),
            "dms-event-bus:dms.source.engine",
            ["'postgres'", "'db2'"],
        ),
        (
            lambda r: r["dms"]["wildcards"].append({"table_pattern": "%"}),
            "dms-event-bus:dms.wildcards[2].schema",
            ["source schema", "found nothing"],
        ),
        (
            lambda r: r["dms"]["tables"].update(orders={"primary_key": ["order_id", "region"]}),
            "dms-event-bus:tables.orders.sort_key",
            ["'region'", "overwrite"],
        ),
        (
            lambda r: r["dms"]["tables"].update(order_lines={"primary_key": ["order_id"]}),
            "dms-event-bus:dms.tables.order_lines.primary_key",
            ["'line_no'"],
        ),
        (
            lambda r: r["dms"]["tables"].update(orders={"exclude_columns": ["order_id"]}),
            "dms-event-bus:dms.tables.orders.exclude_columns[0]",
            ["key column", "'order_id'"],
        ),
        (
            lambda r: r["dms"]["tables"].update(invoices={"exclude_columns": []}),
            "dms-event-bus:dms.tables.invoices",
            ["declared table", "'invoices'"],
        ),
        (
            lambda r: r["dms"]["wildcards"].append(
                {"schema": "sales", "table_pattern": "order%", "table_prefix": "s_"}
            ),
            "dms-event-bus:tables.order_lines",
            ["sales.order_lines", "'s_order_lines'", "dms.wildcards[2]"],
        ),
        (
            lambda r: r["dms"]["wildcards"].append(
                {"schema": "sales", "table_pattern": "order%", "exclude": ["orders"]}
            ),
            "dms-event-bus:dms.wildcards[2].exclude",
            ["sales.orders", "removes it"],
        ),
        (
            lambda r: r["dms"]["wildcards"][0].update(exclude=["%"]),
            "dms-event-bus:dms.wildcards[0].exclude[0]",
            ["narrower"],
        ),
        (
            lambda r: r["dms"]["source"].update(password="hunter2"),
            "dms-event-bus:dms.source.password",
            ["no such key"],
        ),
        (
            lambda r: r["dms"]["source"].update(ssl_mode="none"),
            "dms-event-bus:dms.source.ssl_mode",
            ["allow_unencrypted"],
        ),
        (
            lambda r: r["dms"]["source"].update(ssl_mode="verify-full"),
            "dms-event-bus:dms.source.certificate_arn",
            ["verify-full"],
        ),
        (
            lambda r: r["dms"]["source"].update(engine="oracle", database="ERP"),
            "dms-event-bus:dms.source.ssl_mode",
            ["verify-ca", "'require'"],
        ),
        (
            lambda r: r["dms"]["source"].update(secret_arn="arn:aws:ssm:eu-west-1:1:parameter/x"),
            "dms-event-bus:dms.source.secret_arn",
            ["secretsmanager"],
        ),
        (
            lambda r: r["dms"]["capacity"].update(max_capacity_units=3),
            "dms-event-bus:dms.capacity.max_capacity_units",
            ["one of"],
        ),
        (
            lambda r: r["dms"]["capacity"].update(mode="provisioned"),
            "dms-event-bus:dms.capacity",
            ["'instance'", "'serverless'"],
        ),
        (
            lambda r: r["dms"].update(default_schema=None),
            "dms-event-bus:tables.orders.source",
            ["default_schema"],
        ),
        (
            lambda r: r["dms"]["network"].update(subnet_ids=["subnet-0123456789abcdef0"]),
            "dms-event-bus:dms.network.subnet_ids",
            ["at least 2"],
        ),
    ],
    ids=[
        "unknown-engine",
        "wildcard-without-schema",
        "key-column-missing",
        "key-column-not-in-source-key",
        "key-column-excluded",
        "dms-table-not-declared",
        "wildcard-overlaps-declared",
        "exclude-removes-declared",
        "exclude-everything",
        "password-key",
        "ssl-none",
        "verify-without-certificate",
        "oracle-ssl",
        "not-a-secret-arn",
        "bad-dcu",
        "unknown-capacity-mode",
        "no-schema-for-table",
        "one-subnet",
    ],
)
def test_bad_dms_config_fails_with_the_key_path(
    change: Callable[[dict[str, Any]], None], path: str, words: list[str]
) -> None:
    text = config_error(_mutate(change))
    assert "stack 'dev'" in text
    assert f"{path}:" in text, text
    for word in words:
        assert word in text, f"{word!r} not in {text}"


def test_bad_config_fails_before_any_resource_is_declared() -> None:
    # GIVEN a program that reads the config first, as __main__ does
    raw = _mutate(lambda r: r["dms"]["source"].update(engine="db2"))
    declared: list[str] = []

    def program() -> None:
        settings = load_settings("dev", raw)
        declared.append("reached")
        aws.sns.Topic("never")
        assert settings

    # WHEN it runs THEN it fails in the config step and nothing is declared
    with pytest.raises(ConfigError, match=r"dms\.source\.engine"):
        run_program("dev", {"aws:region": "eu-west-1"}, program)
    assert declared == []


@pytest.mark.parametrize(("stack", "mode"), [("dev", "serverless"), ("prod", "instance")])
def test_stack_files_declare_dms(stack: str, mode: str) -> None:
    settings = load_settings(stack, project_config(read_stack_config(stack, STACKS_DIR)))
    assert settings.dms is not None
    assert settings.dms.capacity.mode == mode
    plan = run_dms(settings)
    assert plan.exports["physical_table_names"] == {
        logical: settings.physical_table_name(logical) for logical in sorted(settings.tables)
    }
    if mode == "instance":
        instance = only(plan, INSTANCE)
        assert instance.inputs["multiAz"] is True
        assert instance.inputs["publiclyAccessible"] is False
        # the prod source uses full verification with a CA certificate
        assert endpoint(plan, "source").inputs["sslMode"] == "verify-full"
    else:
        assert only(plan, CONFIG).inputs["computeConfig"]["maxCapacityUnits"] <= 4


# -- issue 17: every selected table has one path; nothing lost silently ----------------------

ENGINE_SOURCES: dict[str, dict[str, Any]] = {
    "postgres": {"database": "erp"},
    "aurora-postgresql": {"database": "erp"},
    "mysql": {},
    "aurora": {},
    "mariadb": {},
    "oracle": {
        "database": "ERPPDB",
        "ssl_mode": "verify-ca",
        "certificate_arn": f"arn:aws:dms:eu-west-1:{ACCOUNT}:cert:ORACLECA",
    },
    "sqlserver": {"database": "erp"},
}
#: Engines whose source endpoint can fail a task when a LOB is truncated (DMS
#: `FailTasksOnLobTruncation`): only these may run limited-size LOB mode.
FAIL_ON_LOB_TRUNCATION = {"postgresSettings": "failTasksOnLobTruncation",
                          "oracleSettings": "failTaskOnLobTruncation"}
QUIET_POLICIES = {"LOG_ERROR", "IGNORE_RECORD"}
APPLY_POLICIES = ("ApplyErrorDeletePolicy", "ApplyErrorInsertPolicy", "ApplyErrorUpdatePolicy",
                  "ApplyErrorEscalationPolicy")


def _engine_raw(engine: str, **task: Any) -> dict[str, Any]:
    source = {"engine": engine, "server": "legacy.db.internal", "secret_arn": SECRET_ARN,
              **ENGINE_SOURCES[engine]}
    return realistic_raw(source=source, task={"start": True, **task})


def _task_settings(plan: Plan) -> dict[str, Any]:
    task = plan.of_type(TASK) or plan.of_type(CONFIG)
    inputs = task[0].inputs
    return json.loads(inputs.get("replicationTaskSettings") or inputs["replicationSettings"])


def _exceptions_alarms(plan: Plan) -> list[Declared]:
    return [
        a
        for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.inputs.get("namespace") == "AWS/DynamoDB"
        and a.inputs.get("dimensions", {}).get("TableName") == "awsdms_apply_exceptions"
        and TOPIC in a.inputs.get("alarmActions", [])
    ]


def _assert_nothing_only_logged(plan: Plan) -> None:
    settings = _task_settings(plan)
    errors = settings["ErrorBehavior"]
    policies = {k: v for k, v in errors.items() if k.endswith("Policy")}
    assert {"DataErrorPolicy", "DataTruncationErrorPolicy", *APPLY_POLICIES} <= set(policies)
    alarmed = bool(_exceptions_alarms(plan))
    for key, value in policies.items():
        if key in APPLY_POLICIES and alarmed:
            continue  # routed to awsdms_apply_exceptions, which has an alarm
        assert value not in QUIET_POLICIES, f"{key}: {value} without an alarm"
        # a suspended table shows only in DMS's table statistics: no alarm watches them
        assert value != "SUSPEND_TABLE", f"{key}: SUSPEND_TABLE stops a table silently"
    # limited-size LOB mode truncates; only where the source endpoint fails on truncation
    target = settings["TargetMetadata"]
    if target["LimitedSizeLobMode"]:
        source = endpoint(plan, "source").inputs
        assert any(source.get(block, {}).get(flag) is True
                   for block, flag in FAIL_ON_LOB_TRUNCATION.items()), "silent LOB truncation"
    else:
        assert target["FullLobMode"] is True


@pytest.mark.parametrize("on_apply_error", [None, "stop_task", "exceptions_table"])
@pytest.mark.parametrize("on_data_error", [None, "stop_task"])
@pytest.mark.parametrize("engine", sorted(ENGINE_SOURCES))
def test_no_task_setting_leaves_errors_only_in_a_log(
    engine: str, on_data_error: str | None, on_apply_error: str | None
) -> None:
    # GIVEN a stack of each engine with each error choice the config offers (None: default)
    task = {k: v for k, v in (("on_data_error", on_data_error),
                              ("on_apply_error", on_apply_error)) if v is not None}
    plan = run_dms(settings_of(_engine_raw(engine, **task), f"n{len(engine)}{engine[:3]}"))
    # THEN no truncation, data or apply error is only logged or ignored without an alarm,
    # and LOBs are never truncated silently
    _assert_nothing_only_logged(plan)


@pytest.mark.parametrize("engine", ["sqlserver", "mysql", "postgres"])
def test_apply_errors_to_the_exceptions_table_raise_an_alarm(engine: str) -> None:
    # GIVEN apply errors routed to DMS's exceptions table
    plan = run_dms(settings_of(_engine_raw(engine, on_apply_error="exceptions_table"),
                               f"x{engine[:4]}"))
    settings = _task_settings(plan)
    # THEN the apply policies log to the exceptions table
    assert {settings["ErrorBehavior"][k] for k in APPLY_POLICIES} == {"LOG_ERROR"}
    # AND an alarm on that table's writes notifies the topic
    (alarm,) = _exceptions_alarms(plan)
    assert alarm.inputs["metricName"] == "ConsumedWriteCapacityUnits"
    assert alarm.inputs["threshold"] == 0
    assert alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
    # AND data and truncation errors still fail loudly
    assert settings["ErrorBehavior"]["DataTruncationErrorPolicy"] == "STOP_TASK"
    _assert_nothing_only_logged(plan)


@pytest.mark.parametrize("key", ["on_data_error", "on_apply_error"])
def test_suspend_table_is_refused_with_the_reason(key: str) -> None:
    # GIVEN a stack asking DMS to suspend a table on errors (no alarm can see a suspended
    # table) THEN one line at the key names why and what to use instead
    text = config_error(_engine_raw("postgres", **{key: "suspend_table"}))
    assert f"dms-event-bus:dms.task.{key}:" in text, text
    assert "no alarm" in text and "stop_task" in text


def test_error_and_lob_choices_are_typed_settings() -> None:
    settings = settings_of(_engine_raw("postgres", on_data_error="stop_task",
                                       on_apply_error="exceptions_table", lob_mode="full",
                                       lob_chunk_size_kb=32))
    assert settings.dms is not None
    doc = build_task_settings(args_of(settings).task)
    errors = doc["ErrorBehavior"]
    assert errors["DataErrorPolicy"] == errors["DataTruncationErrorPolicy"] == "STOP_TASK"
    assert {errors[k] for k in APPLY_POLICIES} == {"LOG_ERROR"}
    # a table-level error (DDL the target cannot take) stops the task, never a silent suspend
    assert errors["TableErrorPolicy"] == "STOP_TASK"
    assert doc["TargetMetadata"]["FullLobMode"] is True
    assert doc["TargetMetadata"]["LimitedSizeLobMode"] is False
    assert doc["TargetMetadata"]["LobChunkSize"] == 32
    # AND the default engine choice: full LOB mode where DMS cannot fail on truncation
    sqlserver = settings_of(_engine_raw("sqlserver"))
    assert sqlserver.dms is not None
    assert build_task_settings(args_of(sqlserver).task)["TargetMetadata"]["FullLobMode"] is True
    postgres = settings_of(_engine_raw("postgres"))
    assert postgres.dms is not None
    limited = build_task_settings(args_of(postgres).task)["TargetMetadata"]
    assert limited["LimitedSizeLobMode"] is True


@pytest.mark.parametrize("engine", ["sqlserver", "mysql", "mariadb", "aurora"])
def test_limited_lob_mode_is_refused_where_truncation_would_be_silent(engine: str) -> None:
    text = config_error(_engine_raw(engine, lob_mode="limited"))
    assert "dms-event-bus:dms.task.lob_mode:" in text, text
    assert "'full'" in text and "truncat" in text


def _schema_wide_raw() -> dict[str, Any]:
    """`dbo.%` plus declared tables of dbo (composite keys), as an ERP stack would have."""
    raw = realistic_raw(
        source={"engine": "sqlserver", "server": "erp.db.internal", "database": "erp",
                "secret_arn": SECRET_ARN},
        default_schema="dbo",
        tables={"orderlines": {"primary_key": ["OrderId", "LineNo"]}},
        wildcards=[{"schema": "dbo", "table_pattern": "%", "exclude": ["tmp%"]}],
    )
    raw["tables"] = {
        "orderlines": {
            "source": {"schema": "dbo", "table": "OrderLines"},
            "partition_key": {"name": "OrderId", "type": "N"},
            "sort_key": {"name": "LineNo", "type": "N"},
        },
        "customers": {
            "source": {"schema": "dbo", "table": "Customers"},
            "partition_key": {"name": "CustomerId", "type": "N"},
        },
    }
    return raw


def test_a_schema_wildcard_and_declared_tables_each_get_one_path() -> None:
    # GIVEN dbo.% and two declared dbo tables (one with a composite key)
    settings = settings_of(_schema_wide_raw())
    assert settings.dms is not None
    doc = mappings_of(settings, "dmsbus-test-")
    catalog = {
        ("dbo", "OrderLines"): ["OrderId", "LineNo"],
        ("dbo", "Customers"): ["CustomerId"],
        ("dbo", "Invoices"): ["InvoiceId"],
        ("dbo", "InvoiceLines"): ["InvoiceId", "LineNo"],
        ("dbo", "tmpImport"): ["Id"],
        ("other", "Customers"): ["CustomerId"],
    }
    paths = simulate(doc, catalog)
    # THEN declared tables go by their explicit object mapping, with their keys
    assert paths[("dbo", "OrderLines")] == RulePath(
        OBJECT_MAPPING, "dmsbus-test-orderlines", ("OrderId", "LineNo"),
        rule_ids=paths[("dbo", "OrderLines")].rule_ids,  # type: ignore[union-attr]
    )
    customers = paths[("dbo", "Customers")]
    assert customers is not None and customers.kind == OBJECT_MAPPING
    assert customers.key == ("CustomerId",)
    # AND the other tables by the wildcard's names, with DMS's source key
    invoices = paths[("dbo", "Invoices")]
    assert invoices is not None
    assert (invoices.kind, invoices.target) == (WILDCARD, "dmsbus-test-invoices")
    # AND a composite-key table the stack does not declare is named as not carried
    lines = paths[("dbo", "InvoiceLines")]
    assert lines is not None and lines.kind == NOT_CARRIED
    # AND exclusions and other schemas are not selected
    assert paths[("dbo", "tmpImport")] is None and paths[("other", "Customers")] is None


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            # the wildcard would name dbo.Customers 'dmsbus-dev-customers'; declared as 'clients'
            lambda r: r["tables"].update(clients=r["tables"].pop("customers")),
            "dms-event-bus:tables.clients",
            ["'customers'", "dms.wildcards[0]"],
        ),
        (
            lambda r: r["dms"]["wildcards"].append({"schema": "dbo", "table_pattern": "Inv%"}),
            "dms-event-bus:dms.wildcards[1].table_pattern",
            ["dms.wildcards[0]", "both"],
        ),
        (
            lambda r: r["dms"]["wildcards"].append({"schema": "hist", "table_pattern": "%"}),
            "dms-event-bus:dms.wildcards[1].table_prefix",
            ["dms.wildcards[0]", "same"],
        ),
        (
            lambda r: r["dms"]["wildcards"].append(
                {"schema": "archive", "table_pattern": "cust%"}
            ),
            "dms-event-bus:dms.wildcards[1].table_prefix",
            ["tables.customers"],
        ),
        (
            lambda r: r["dms"]["wildcards"][0].update(exclude=["Customers"]),
            "dms-event-bus:dms.wildcards[0].exclude",
            ["dbo.Customers", "removes it"],
        ),
    ],
    ids=["declared-name-differs", "wildcards-overlap", "names-collide", "wildcard-names-declared",
         "exclude-removes-declared"],
)
def test_schema_wide_wildcards_refuse_what_has_no_single_path(
    change: Callable[[dict[str, Any]], None], path: str, words: list[str]
) -> None:
    raw = _schema_wide_raw()
    if "exclude" not in path:
        # the hist/archive wildcards get a prefix only where the test wants a collision
        pass
    change(raw)
    text = config_error(raw)
    assert f"{path}:" in text, text
    for word in words:
        assert word in text, f"{word!r} not in {text}"


def test_a_key_of_three_columns_is_concatenated() -> None:
    # GIVEN a source key of three columns, carried as one string partition key
    raw = _schema_wide_raw()
    raw["tables"]["stock"] = {
        "source": {"schema": "dbo", "table": "Stock"},
        "partition_key": {"name": "stock_key", "type": "S"},
    }
    raw["dms"]["tables"]["stock"] = {"primary_key": ["Company", "Site", "Sku"]}
    settings = settings_of(raw)
    assert settings.dms is not None
    doc = mappings_of(settings, "dmsbus-test-")
    (rule,) = [r for r in doc["rules"] if r.get("target-table-name") == "dmsbus-test-stock"]
    # THEN DMS builds the key from the three columns, and keeps the columns as attributes
    assert rule["mapping-parameters"] == {
        "partition-key-name": "stock_key",
        "attribute-mappings": [
            {
                "target-attribute-name": "stock_key",
                "attribute-type": "scalar",
                "attribute-sub-type": "string",
                "value": "${Company}|${Site}|${Sku}",
            }
        ],
    }
    path = simulate(doc, {("dbo", "Stock"): ["Company", "Site", "Sku"]})[("dbo", "Stock")]
    assert path is not None and path.kind == OBJECT_MAPPING
    assert path.key == ("stock_key",) and path.key_template == "${Company}|${Site}|${Sku}"


@pytest.mark.parametrize(
    ("table", "path", "words"),
    [
        ({"partition_key": {"name": "stock_key", "type": "N"}},
         "dms-event-bus:tables.stock.partition_key", ["type 'S'"]),
        ({"partition_key": {"name": "stock_key", "type": "S"},
          "sort_key": {"name": "Sku", "type": "S"}},
         "dms-event-bus:tables.stock.sort_key", ["concatenated"]),
        ({"partition_key": {"name": "Company", "type": "S"}},
         "dms-event-bus:tables.stock.partition_key", ["3 columns"]),
    ],
    ids=["number-key", "with-sort-key", "key-is-one-column"],
)
def test_concatenated_keys_refuse_what_dms_cannot_build(
    table: dict[str, Any], path: str, words: list[str]
) -> None:
    raw = _schema_wide_raw()
    raw["tables"]["stock"] = {"source": {"schema": "dbo", "table": "Stock"}, **table}
    raw["dms"]["tables"]["stock"] = {"primary_key": ["Company", "Site", "Sku"]}
    text = config_error(raw)
    assert f"{path}:" in text, text
    for word in words:
        assert word in text, f"{word!r} not in {text}"


NAME = st.text(alphabet="abAB_", min_size=1, max_size=4).filter(lambda s: s[0] != "_")
PATTERN = st.text(alphabet="abA%", min_size=1, max_size=3)


@st.composite
def catalogs_and_configs(draw: st.DrawFn) -> tuple[dict[tuple[str, str], list[str]],
                                                   dict[str, Any]]:
    schemas = draw(st.lists(st.sampled_from(["s1", "s2", "S3"]), min_size=1, max_size=3,
                            unique=True))
    catalog: dict[tuple[str, str], list[str]] = {}
    for schema in schemas:
        for name in draw(st.lists(NAME, min_size=1, max_size=6, unique=True)):
            catalog[(schema, name)] = draw(
                st.sampled_from([["id"], ["id", "no"], [], ["a", "b", "c"]])
            )
    def pattern_of(schema: str) -> str:
        # mostly patterns built from the schema's own names, so they select something
        names = sorted(n for s, n in catalog if s == schema)
        name = draw(st.sampled_from(names))
        cut = draw(st.integers(0, len(name)))
        return draw(st.sampled_from(
            ["%", name[:cut] + "%", "%" + name[cut:], name, draw(PATTERN)]
        ))

    wildcards: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 3))):
        schema = draw(st.sampled_from(schemas))
        pattern = pattern_of(schema)
        excludes = {pattern_of(schema) for _ in range(draw(st.integers(0, 2)))}
        wildcards.append(
            {
                "schema": schema,
                "table_pattern": pattern,
                "exclude": sorted(excludes - {"%", pattern}),
                "table_prefix": draw(st.sampled_from(["w_", "v_", "x_", "w_", ""])),
            }
        )
    declared = draw(st.lists(st.sampled_from(sorted(catalog)), min_size=1, max_size=5,
                             unique=True))
    tables: dict[str, Any] = {}
    dms_tables: dict[str, Any] = {}
    for schema, name in declared:
        pk = catalog[(schema, name)] or ["rowid"]
        # the name a wildcard selecting it would give (what the checks ask for), or another
        owner = next(
            (
                w for w in wildcards
                if w["schema"] == schema and dms_pattern_matches(w["table_pattern"], name)
            ),
            None,
        )
        agreed = f"{owner['table_prefix']}{name.lower()}" if owner else f"d_{name.lower()}"
        logical = draw(st.sampled_from([agreed, agreed, f"t_{name.lower()}"]))
        if logical in tables:
            continue
        if len(pk) > 2:
            key: dict[str, Any] = {"partition_key": {"name": "pk", "type": "S"}}
        else:
            key = {"partition_key": {"name": pk[0], "type": "S"}}
            if len(pk) == 2:
                key["sort_key"] = {"name": pk[1], "type": "S"}
        tables[logical] = {"source": {"schema": schema, "table": name}, **key}
        dms_tables[logical] = {"primary_key": pk}
    return catalog, {"tables": tables, "dms_tables": dms_tables, "wildcards": wildcards}


@hypothesis_settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(case=catalogs_and_configs())
def test_every_selected_table_has_exactly_one_path(
    case: tuple[dict[tuple[str, str], list[str]], dict[str, Any]],
) -> None:
    catalog, cfg = case
    assume(cfg["tables"] or cfg["wildcards"])  # else not a stack (check_dms)
    raw = realistic_raw(default_schema=None, tables=cfg["dms_tables"],
                        wildcards=cfg["wildcards"])
    raw["tables"] = cfg["tables"]
    try:
        settings = settings_of(raw)
    except ConfigError:
        assume(False)
        return
    assert settings.dms is not None
    doc = mappings_of(settings, "dmsbus-test-")
    paths = simulate(doc, catalog)
    declared = {
        (t.source.schema_name, t.source.table): logical
        for logical, t in settings.tables.items()
        if t.source is not None
    }
    # every table the task would select and not carry is named before deploy by the hook
    # discovery calls with the catalog (it matches names case-insensitively: it may name
    # more, never fewer)
    named = {found for _, _, found in wildcard_tables_not_carried(
        settings.dms, settings.tables, catalog)}
    not_carried = {".".join(s) for s, p in paths.items() if p and p.kind == NOT_CARRIED}
    assert not_carried <= named, (not_carried - named, doc)
    targets: dict[str, tuple[str, str]] = {}
    for source, path in paths.items():
        if source in declared:
            # a declared table always goes by its explicit object mapping, with its key
            logical = declared[source]
            table = settings.tables[logical]
            assert path is not None and path.kind == OBJECT_MAPPING, (source, path)
            assert path.target == f"dmsbus-test-{logical}"
            assert path.key == tuple(table.key_names)
        if path is None:
            continue
        # exactly one path: never two rules disagreeing about one table
        assert path.kind != AMBIGUOUS, (source, path, doc)
        if path.kind == NOT_CARRIED:
            assert len(catalog[source]) != 1 and source not in declared
            continue
        assert path.target is not None
        if path.target in targets:
            # the one collision no plan can see: two tables of one schema whose names differ
            # only in case (quoted names in PostgreSQL/Oracle) meet in convert-lowercase
            other = targets[path.target]
            assert other[0] == source[0] and other[1].lower() == source[1].lower(), (
                source, other, path.target)
            continue
        targets[path.target] = source
        if path.kind == WILDCARD:
            # selected by exactly one wildcard, named as adoption expects
            owners = [
                w for w in settings.dms.wildcards
                if w.schema_name == source[0] and like(w.table_pattern, source[1])
            ]
            assert len(owners) == 1, (source, owners)
            assert path.target == f"dmsbus-test-{owners[0].table_prefix}{source[1].lower()}"


def test_a_wildcard_only_source_is_a_valid_component() -> None:
    # GIVEN a DmsSource used on its own with a whole-schema wildcard and no declared table
    settings = settings_of(_schema_wide_raw())
    assert settings.dms is not None
    wildcard_only = settings.dms.model_copy(update={"tables": {}})
    args = args_of(settings, "solo", dms=wildcard_only, tables={})
    plan = run_program("solo", {"aws:region": "eu-west-1"}, lambda: DmsSource("dms", args))
    # THEN the task selects the schema and carries its single-key tables by their names
    doc = json.loads(only(plan, CONFIG).inputs["tableMappings"])
    paths = simulate(doc, {("dbo", "Invoices"): ["InvoiceId"], ("dbo", "Lines"): ["a", "b"]})
    invoices = paths[("dbo", "Invoices")]
    assert invoices is not None and invoices.target == "dmsbus-solo-invoices"
    assert paths[("dbo", "Lines")] == RulePath(NOT_CARRIED, None, (), rule_ids=paths[
        ("dbo", "Lines")].rule_ids)  # type: ignore[union-attr]
    # AND with neither tables nor wildcards the arguments are refused, naming both
    bare = wildcard_only.model_copy(update={"wildcards": []})
    with pytest.raises(ValueError, match=r"DmsSourceArgs\.tables: .*dms\.wildcards"):
        args_of(settings, "solo", dms=bare, tables={})


@pytest.mark.parametrize(("threads", "wcu"), [(0, 200), (1, 200), (4, 800), (80, 10_000)])
def test_wildcard_limits_name_the_key_contract_and_the_capacity(threads: int, wcu: int) -> None:
    settings = settings_of(realistic_raw(task={"parallel_load_threads": threads}))
    assert settings.dms is not None
    args = args_of(settings)
    lines = wildcard_limits(args.wildcards, args.task, "dmsbus-test-")
    assert len(lines) == len(settings.dms.wildcards) == 2
    assert lines[0].startswith("dms.wildcards[0] (audit.% -> dmsbus-test-audit_<table>)")
    assert all("one-column primary key" in line for line in lines)
    assert all(f"200 RCU / {wcu} WCU" in line for line in lines)


def test_a_wildcard_key_contract_other_than_single_column_is_refused() -> None:
    text = config_error(_mutate(lambda r: r["dms"]["wildcards"][0].update(keys="composite")))
    assert "dms-event-bus:dms.wildcards[0].keys:" in text and "single_column" in text


def _erp_stack(engine: str, schema: str, count: int) -> tuple[
    dict[str, Any], dict[tuple[str, str], list[str]]
]:
    """A discovered ERP: `count` declared tables of one schema (one-, two- and three-column
    keys, names with `_`), the whole schema also selected by a wildcard."""
    upper = engine == "oracle"
    catalog: dict[tuple[str, str], list[str]] = {}
    tables: dict[str, Any] = {}
    dms_tables: dict[str, Any] = {}
    for i in range(count):
        name = f"ERP_T{i:03d}" if upper else f"Erp_T{i:03d}"
        pk = [["ID"], ["DOC_NO", "LINE_NO"], ["CO", "SITE", "ITEM"]][i % 3]
        catalog[(schema, name)] = pk
        logical = name.lower()
        if len(pk) == 3:
            key: dict[str, Any] = {"partition_key": {"name": "row_key", "type": "S"}}
        else:
            key = {"partition_key": {"name": pk[0], "type": "N"}}
            if len(pk) == 2:
                key["sort_key"] = {"name": pk[1], "type": "N"}
        tables[logical] = {"source": {"schema": schema, "table": name}, **key}
        dms_tables[logical] = {"primary_key": pk}
    source = {"engine": engine, "server": "erp.db.internal", "secret_arn": SECRET_ARN,
              **ENGINE_SOURCES[engine]}
    raw = realistic_raw(source=source, default_schema=None, tables=dms_tables,
                        wildcards=[{"schema": schema, "table_pattern": "%"}])
    raw["tables"] = tables
    # tables created later, caught by the wildcard only
    catalog[(schema, "NEW_TABLE" if upper else "NewTable")] = ["ID"]
    catalog[(schema, "NEW_LINES" if upper else "NewLines")] = ["DOC_NO", "LINE_NO"]
    return raw, catalog


@pytest.mark.parametrize(("engine", "schema"), [("sqlserver", "dbo"), ("oracle", "FIN")])
def test_an_erp_stack_of_300_tables_gives_each_table_one_path(engine: str, schema: str) -> None:
    # GIVEN 300 declared tables (a third with keys of three columns) and the whole schema
    raw, catalog = _erp_stack(engine, schema, 300)
    settings = settings_of(raw)
    assert settings.dms is not None
    doc = mappings_of(settings, "dmsbus-erp-")
    assert len(json.dumps(doc)) < 2_000_000
    paths = simulate(doc, catalog)
    # THEN every declared table goes by its object mapping with a key DMS accepts
    kinds: dict[str, int] = {}
    for (src_schema, name), path in paths.items():
        assert path is not None and path.kind != AMBIGUOUS, (name, path)
        kinds[path.kind] = kinds.get(path.kind, 0) + 1
        if path.kind == OBJECT_MAPPING:
            assert path.target == f"dmsbus-erp-{name.lower()}"
            if len(catalog[(src_schema, name)]) == 3:
                assert path.key == ("row_key",) and path.key_template == "${CO}|${SITE}|${ITEM}"
            else:
                assert path.key == tuple(catalog[(src_schema, name)])
    # AND a later single-key table comes by the wildcard, a later composite one is named
    # as not carried
    assert kinds == {OBJECT_MAPPING: 300, WILDCARD: 1, NOT_CARRIED: 1}
    assert len({p.target for p in paths.values() if p and p.target}) == 301


def test_a_declared_name_with_underscores_is_compared_literally() -> None:
    # GIVEN a wildcard naming its tables w_a<...> and a declared table w_bx of another schema
    raw = _schema_wide_raw()
    raw["dms"]["wildcards"] = [{"schema": "hist", "table_pattern": "a%", "table_prefix": "w_"}]
    raw["tables"]["w_bx"] = {
        "source": {"schema": "dbo", "table": "Bx"},
        "partition_key": {"name": "Id", "type": "N"},
    }
    # THEN no collision is reported: 'w_bx' is a name, its '_' no wildcard
    settings = settings_of(raw)
    assert settings.dms is not None
    # AND a declared name the wildcard can give is still refused
    raw["tables"]["w_ax"] = raw["tables"].pop("w_bx")
    assert "dms-event-bus:dms.wildcards[0].table_prefix:" in config_error(raw)


def imported_modules(source: str) -> set[str]:
    """The top-level packages a module's own import statements name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_the_component_takes_plain_args_not_the_settings_models() -> None:
    # GIVEN the component's module THEN it imports neither the settings nor pydantic: the
    # conversion lives in settings.component_args (issue 16, one boundary)
    source = (Path(__file__).parents[1] / "components" / "dms_source.py").read_text()
    assert imported_modules(source) & {"settings", "pydantic"} == set()
    # AND the args hold plain values: converting a validated stack gives frozen dataclasses
    args = args_of(settings_of(realistic_raw()))
    assert not any(
        type(value).__module__.startswith(("settings", "pydantic"))
        for value in (args.capacity, args.network, args.source, args.task, args.alarms,
                      *args.tables.values(), *args.wildcards)
    )
    assert args.tables["orders"].schema_name == "sales"
    assert args.tables["order_lines"].primary_key == ("order_id", "line_no")
