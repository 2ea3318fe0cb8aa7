"""LegacyWriteback under Pulumi mocks: the Lambda in the VPC, the stream mappings' safety
settings, the role scoped to exactly the chosen streams/tables/secret/cluster, DLQ, alarms."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pulumi
import pytest
from pydantic import ValidationError

from dms_event_bus.components.legacy_writeback import (
    LegacyWriteback,
    LegacyWritebackArgs,
    WritebackTarget,
)
from dms_event_bus.settings.component_args import WritebackSource, legacy_writeback_args
from dms_event_bus.settings.writeback import WritebackSettings, writeback_problems
from policy import rules
from tools.mockrun import ACCOUNT, Plan, run_program

PREFIX = "dmsbus-wbt-"
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:legacy-pg-AbCdEf"
CLUSTER = "arn:aws:rds:eu-west-1:123456789012:cluster:legacy-aurora"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:dmsbus-wbt-alarms"


def table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/{name}"


def stream_arn(name: str) -> str:
    return f"{table_arn(name)}/stream/2026-01-01T00:00:00.000"


def writeback_settings(target: dict[str, Any]) -> WritebackSettings:
    return WritebackSettings.model_validate({
        "target": target,
        "vpc": {"subnet_ids": ["subnet-0a1b2c3d4e5f60718", "subnet-1a1b2c3d4e5f60718"],
                "security_group_ids": ["sg-0a1b2c3d4e5f60718"]},
        "tables": {
            "orders": {"legacy_table": "sales.orders", "key_columns": {"id": "order_id"},
                       "columns": {"amount": "amount", "note": "note"},
                       "version_column": "row_version"},
            "customers": {"origin": "tables", "legacy_table": "sales.customers",
                          "key_columns": {"customer_id": "customer_id"},
                          "columns": {"name": "name"}},
        },
        "function": {"memory_mb": 256, "timeout_seconds": 30, "reserved_concurrency": 4},
        "mapping": {"batch_size": 250, "batching_window_seconds": 2,
                    "maximum_retry_attempts": 3, "maximum_record_age_seconds": 3600},
    })


POSTGRES = {"kind": "postgres", "host": "legacy.internal", "database": "sales",
            "secret_arn": SECRET, "tls": True}
DATA_API = {"kind": "data_api", "cluster_arn": CLUSTER, "secret_arn": SECRET,
            "database": "sales"}

PHYSICAL = {"orders": f"{PREFIX}ingest-orders", "customers": f"{PREFIX}customers"}
STREAMS = sorted(stream_arn(p) for p in PHYSICAL.values())
TABLE_ARNS = sorted(table_arn(p) for p in PHYSICAL.values())
SOURCES = {logical: WritebackSource(p, table_arn(p), stream_arn(p))
           for logical, p in PHYSICAL.items()}


def plan_for(target: dict[str, Any], **extra: Any) -> Plan:
    args = legacy_writeback_args(writeback_settings(target), SOURCES, name_prefix=PREFIX,
                                 alarm_topic_arn=TOPIC, tags={"team": "t"}, **extra)

    def program() -> None:
        wb = LegacyWriteback("writeback", args)
        pulumi.export("writeback", {"function_name": wb.function_name,
                                    "function_arn": wb.function_arn, "role_arn": wb.role_arn,
                                    "dlq_name": wb.dlq_name, "dlq_url": wb.dlq_url,
                                    "dlq_arn": wb.dlq_arn})

    return run_program("wbt", {"aws:region": "eu-west-1"}, program)


@pytest.fixture(scope="module")
def pg_plan() -> Plan:
    return plan_for(POSTGRES)


@pytest.fixture(scope="module")
def data_api_plan() -> Plan:
    return plan_for(DATA_API)


def statements(plan: Plan) -> dict[str, dict[str, Any]]:
    policy = plan.named("writeback-policy")
    return {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}


def test_lambda_runs_in_the_configured_vpc_with_the_handler_config(pg_plan: Plan) -> None:
    # GIVEN the component for a direct PostgreSQL target
    fn = pg_plan.named("writeback-function")
    component = pg_plan.named("writeback")
    # THEN the function is a python3.14 arm64 Lambda in the configured subnets and SGs
    assert component.type == "dms-event-bus:index:LegacyWriteback"
    assert fn.parent == component.urn
    assert fn.inputs["runtime"] == "python3.14"
    assert fn.inputs["architectures"] == ["arm64"]
    assert fn.inputs["handler"] == "handlers.writeback.handler"
    assert fn.inputs["name"] == f"{PREFIX}writeback"
    assert fn.inputs["vpcConfig"] == {
        "subnetIds": ["subnet-0a1b2c3d4e5f60718", "subnet-1a1b2c3d4e5f60718"],
        "securityGroupIds": ["sg-0a1b2c3d4e5f60718"],
    }
    assert fn.inputs["memorySize"] == 256
    assert fn.inputs["timeout"] == 30
    assert fn.inputs["reservedConcurrentExecutions"] == 4
    # AND the handler's config maps physical tables to their legacy tables
    config = json.loads(fn.inputs["environment"]["variables"]["WRITEBACK_CONFIG"])
    assert config["target"] == {**POSTGRES, "port": 5432, "connect_timeout_seconds": 5}
    assert config["tables"][f"{PREFIX}ingest-orders"]["legacy_table"] == "sales.orders"
    assert config["tables"][f"{PREFIX}customers"]["key_columns"] == {
        "customer_id": "customer_id"}
    assert config["contract"]["status_attribute"] == "status"


def test_one_safe_stream_mapping_per_table(pg_plan: Plan) -> None:
    mappings = pg_plan.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    # THEN one mapping per chosen stream, with the configured tuning and every safety net
    assert sorted(m.inputs["eventSourceArn"] for m in mappings) == STREAMS
    dlq = pg_plan.named("writeback-dlq")
    for m in mappings:
        assert m.inputs["startingPosition"] == "TRIM_HORIZON"
        assert m.inputs["batchSize"] == 250
        assert m.inputs["maximumBatchingWindowInSeconds"] == 2
        assert m.inputs["bisectBatchOnFunctionError"] is True
        assert m.inputs["maximumRetryAttempts"] == 3
        assert m.inputs["maximumRecordAgeInSeconds"] == 3600
        assert m.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
        assert m.inputs["destinationConfig"]["onFailure"]["destinationArn"] == \
            dlq.outputs["arn"]
        assert m.inputs["functionName"] == f"{PREFIX}writeback"
    # AND the DLQ is KMS-encrypted
    assert dlq.inputs["kmsMasterKeyId"] == "alias/aws/sqs"
    assert dlq.inputs["name"] == f"{PREFIX}writeback-dlq"


def test_role_is_scoped_to_exactly_the_chosen_resources(pg_plan: Plan) -> None:
    sts = statements(pg_plan)
    # THEN stream reads on exactly the two streams, status writes on exactly the two tables
    assert sorted(sts["ReadTheChosenStreams"]["Resource"]) == STREAMS
    assert sts["SetTheItemStatus"]["Action"] == ["dynamodb:UpdateItem"]
    assert sorted(sts["SetTheItemStatus"]["Resource"]) == TABLE_ARNS
    assert sts["SetTheItemStatus"]["Condition"]["ForAllValues:StringEquals"][
        "dynamodb:Attributes"] == ["customer_id", "id", "status", "status_detail", "version"]
    # AND the secret is readable, exactly it; the DLQ takes messages; no Data API here
    assert sts["ReadTheDatabaseSecret"]["Resource"] == [SECRET]
    assert sts["OnFailureDestination"]["Resource"] == [
        pg_plan.named("writeback-dlq").outputs["arn"]]
    assert "RdsDataApiOnTheCluster" not in sts
    # AND ENI permissions for the VPC, scoped to the configured subnets and SGs
    ec2 = f"arn:aws:ec2:eu-west-1:{ACCOUNT}"
    subnets = [f"{ec2}:subnet/subnet-0a1b2c3d4e5f60718", f"{ec2}:subnet/subnet-1a1b2c3d4e5f60718"]
    assert sts["VpcNetworkInterfaces"]["Resource"] == [
        *subnets, f"{ec2}:security-group/sg-0a1b2c3d4e5f60718"]
    # AND the interfaces themselves only in those subnets (issue: any ENI of the account)
    lifecycle = sts["VpcNetworkInterfaceLifecycle"]
    assert lifecycle["Resource"] == [f"{ec2}:network-interface/*"]
    assert lifecycle["Condition"] == {"ArnEquals": {"ec2:Subnet": subnets}}
    # AND nothing grants a data action on '*' (the project's policy rule agrees)
    policy = pg_plan.named("writeback-policy")
    assert rules.statement_problems(policy.inputs["policy"]) == []


def test_data_api_target_gets_rds_data_on_exactly_the_cluster(data_api_plan: Plan) -> None:
    sts = statements(data_api_plan)
    assert sts["RdsDataApiOnTheCluster"]["Resource"] == [CLUSTER]
    assert "rds-data:ExecuteStatement" in sts["RdsDataApiOnTheCluster"]["Action"]
    assert sts["ReadTheDatabaseSecret"]["Resource"] == [SECRET]
    fn = data_api_plan.named("writeback-function")
    assert fn.inputs["vpcConfig"]["subnetIds"] == ["subnet-0a1b2c3d4e5f60718",
                                                   "subnet-1a1b2c3d4e5f60718"]


def test_alarms_go_to_the_topic(pg_plan: Plan) -> None:
    alarms = {a.name: a for a in pg_plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert sorted(alarms) == ["writeback-conflicts", "writeback-dlq-depth", "writeback-errors",
                              "writeback-iterator-age", "writeback-poison",
                              "writeback-schema-not-ready"]
    for alarm in alarms.values():
        assert alarm.inputs["alarmActions"] == [TOPIC]
        assert alarm.inputs["okActions"] == [TOPIC]
        assert alarm.inputs["name"] == f"{PREFIX}{alarm.name}"
    # the handler's own metrics (embedded metric format), per function, any one is an alarm
    for name, metric in (("writeback-poison", "Poison"), ("writeback-conflicts", "Conflicts"),
                         ("writeback-schema-not-ready", "SchemaNotReady")):
        i = alarms[name].inputs
        assert (i["namespace"], i["metricName"], i["statistic"]) == (
            "DmsEventBus/Writeback", metric, "Sum"), name
        assert i["dimensions"] == {"Function": f"{PREFIX}writeback"}, name
        assert (i["threshold"], i["comparisonOperator"]) == (0, "GreaterThanThreshold"), name
        assert i["treatMissingData"] == "notBreaching", name
    assert alarms["writeback-dlq-depth"].inputs["dimensions"] == {
        "QueueName": f"{PREFIX}writeback-dlq"}
    assert alarms["writeback-poison"].inputs["namespace"] == "DmsEventBus/Writeback"
    assert alarms["writeback-iterator-age"].inputs["threshold"] == 300000


def test_every_resource_passes_the_policy_rules(pg_plan: Plan) -> None:
    resources = [{"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs,
                  "dependencies": r.dependencies} for r in pg_plan.resources]
    assert rules.check_all(resources) == []


def test_args_name_the_bad_field() -> None:
    good = legacy_writeback_args(writeback_settings(POSTGRES), SOURCES, name_prefix=PREFIX)
    tables = list(good.tables)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tables": tables[:1]},
         r"LegacyWritebackArgs.handler_config: expected a `tables` entry per table"),
        ({"tables": [*tables, tables[0]]}, r"LegacyWritebackArgs.tables: expected each table once"),
        ({"tables": []}, r"LegacyWritebackArgs.tables: expected at least one"),
        ({"name_prefix": "dmsbus"}, r"LegacyWritebackArgs.name_prefix"),
        ({"subnet_ids": []}, r"LegacyWritebackArgs.subnet_ids: expected at least one"),
        ({"target": WritebackTarget("data_api", SECRET)},
         r"LegacyWritebackArgs.target.cluster_arn: expected a cluster ARN"),
        ({"memory_mb": 64}, r"LegacyWritebackArgs.memory_mb: expected 128..10240"),
        ({"timeout_seconds": 901}, r"LegacyWritebackArgs.timeout_seconds: expected 3..900"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(good, **change)


def test_args_are_plain_values_not_the_config_models() -> None:
    # GIVEN the args rendered from the validated config
    args = legacy_writeback_args(writeback_settings(DATA_API), SOURCES, name_prefix=PREFIX)
    # THEN the component gets plain values: no pydantic model anywhere in them
    from pydantic import BaseModel

    def models(value: Any) -> list[Any]:
        if isinstance(value, BaseModel):
            return [value]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return [m for f in dataclasses.fields(value) for m in models(getattr(value, f.name))]
        if isinstance(value, dict):
            return [m for v in value.values() for m in models(v)]
        if isinstance(value, list | tuple):
            return [m for v in value for m in models(v)]
        return []

    assert models(args) == []
    assert args.target == WritebackTarget("data_api", SECRET, cluster_arn=CLUSTER)
    assert [(t.logical_name, t.key_attributes, t.version_attribute) for t in args.tables] == [
        ("orders", ["id"], "version"), ("customers", ["customer_id"], "version")]
    # AND a source the program did not find is named
    with pytest.raises(ValueError, match=r"writeback.tables: no table found for \['orders'\]"):
        legacy_writeback_args(writeback_settings(POSTGRES), {"customers": SOURCES["customers"]},
                              name_prefix=PREFIX)


def test_outputs_name_the_function_and_the_dlq_for_the_dashboard(pg_plan: Plan) -> None:
    out = pg_plan.exports["writeback"]
    dlq = pg_plan.named("writeback-dlq")
    assert out["function_name"] == f"{PREFIX}writeback"
    assert out["dlq_name"] == f"{PREFIX}writeback-dlq"
    assert out["dlq_arn"] == dlq.outputs["arn"]
    assert out["role_arn"] == pg_plan.named("writeback-role").outputs["arn"]


def test_handler_config_carries_every_mapping_setting() -> None:
    # GIVEN a mapping with a renamed version attribute, column types and deletes off
    settings = WritebackSettings.model_validate({
        "target": POSTGRES,
        "vpc": {"subnet_ids": ["subnet-0a1b2c3d4e5f60718"],
                "security_group_ids": ["sg-0a1b2c3d4e5f60718"]},
        "tables": {"orders": {"legacy_table": "sales.orders",
                              "key_columns": {"id": "order_id"},
                              "columns": {"placed": "placed_at"},
                              "version_attribute": "rev", "version_column": "row_version",
                              "column_types": {"placed_at": "timestamp"},
                              "deletes": False}},
    })
    # WHEN the handler's config is rendered for the physical table
    config = settings.handler_config({"orders": f"{PREFIX}ingest-orders"})
    # THEN the handler reads exactly these settings
    from dms_event_bus.handlers.writeback import Config

    parsed = Config.from_json(json.loads(json.dumps(config)))
    spec = parsed.tables[f"{PREFIX}ingest-orders"]
    assert spec.upsert_columns == ["order_id", "placed_at", "row_version"]
    assert spec.version_attribute == "rev"
    assert spec.column_types == {"placed_at": "timestamp"}
    assert spec.deletes is False
    assert parsed.contract.status_attribute == "status"
    assert config["target"]["port"] == 5432


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        ({"columns": {"amount": "order_id"}}, ("tables", "orders"),
         "expected each legacy column mapped once, found ['order_id'] repeated"),
        ({"columns": {"amount": "row_version"}}, ("tables", "orders"),
         "expected version_column 'row_version' to be mapped only as the version"),
        ({"column_types": {"nope": "text"}}, ("tables", "orders"),
         "column_types: expected mapped legacy columns, found ['nope']"),
        ({"columns": {"status": "state"}}, (),
         "tables.orders: expected no written attribute among "
         "item_contract.status_only_attributes, found ['status']"),
        ({"legacy_table": "orders"}, ("tables", "orders", "legacy_table"),
         "String should match pattern"),
        ({"key_columns": {}}, ("tables", "orders", "key_columns"), "at least 1 item"),
    ],
)
def test_bad_mappings_fail_with_the_key_path(
    change: dict[str, Any], loc: tuple[str, ...], message: str
) -> None:
    raw = {
        "target": POSTGRES,
        "vpc": {"subnet_ids": ["subnet-0a1b2c3d4e5f60718"],
                "security_group_ids": ["sg-0a1b2c3d4e5f60718"]},
        "tables": {"orders": {"legacy_table": "sales.orders",
                              "key_columns": {"id": "order_id"},
                              "columns": {"amount": "amount"},
                              "version_column": "row_version", **change}},
    }
    with pytest.raises(ValidationError) as info:
        WritebackSettings.model_validate(raw)
    errors = info.value.errors()
    assert len(errors) == 1
    assert errors[0]["loc"] == loc
    assert message in errors[0]["msg"]


@pytest.mark.parametrize(
    ("target", "loc"),
    [
        ({"kind": "postgres", "host": "h", "database": "d", "secret_arn": "plain-password"},
         ("target", "postgres", "secret_arn")),
        ({"kind": "data_api", "cluster_arn": "arn:aws:rds:eu-west-1:1:cluster:x",
          "secret_arn": SECRET, "database": "d"}, ("target", "data_api", "cluster_arn")),
        ({"kind": "oracle", "host": "h"}, ("target",)),
    ],
)
def test_bad_targets_fail_with_the_key_path(target: dict[str, Any], loc: tuple) -> None:
    raw = {"target": target,
           "vpc": {"subnet_ids": ["subnet-0a1b2c3d4e5f60718"],
                   "security_group_ids": ["sg-0a1b2c3d4e5f60718"]},
           "tables": {"orders": {"legacy_table": "sales.orders",
                                 "key_columns": {"id": "order_id"}}}}
    with pytest.raises(ValidationError) as info:
        WritebackSettings.model_validate(raw)
    assert info.value.errors()[0]["loc"] == loc


def test_vpc_is_required_and_checked() -> None:
    raw = {"target": POSTGRES, "vpc": {"subnet_ids": [], "security_group_ids": ["sg-1"]},
           "tables": {"orders": {"legacy_table": "sales.orders",
                                 "key_columns": {"id": "order_id"}}}}
    with pytest.raises(ValidationError) as info:
        WritebackSettings.model_validate(raw)
    assert sorted(e["loc"] for e in info.value.errors()) == [
        ("vpc", "security_group_ids", 0), ("vpc", "subnet_ids")]


def test_sources_must_exist_where_their_origin_says() -> None:
    # GIVEN orders from the ingest API (not declared) and customers from tables (wrong key)
    settings = writeback_settings(POSTGRES)

    class Declared:
        key_names = ("id",)

    problems = writeback_problems(settings, {"customers": Declared()}, {})
    assert [(p[0], p[1]) for p in problems] == [
        (("writeback", "tables", "orders"),
         "expected an entity declared under `ingest_api.entities` (none), found 'orders' "
         "(set origin: tables for a waypoint table)"),
        (("writeback", "tables", "customers", "key_columns"),
         "expected the key attributes of tables.customers: ['id'], found ['customer_id']"),
    ]


def test_the_docs_example_config_is_valid() -> None:
    # GIVEN the example section in docs/writeback.md
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parent.parent / "docs" / "writeback.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S)
                 if "dms-event-bus:writeback" in b)
    # WHEN it is validated like a stack file's section
    settings = WritebackSettings.model_validate(
        yaml.safe_load(block)["dms-event-bus:writeback"])
    # THEN it is accepted as written
    assert settings.target.kind == "postgres"
    assert settings.tables["order_requests"].version_column == "row_version"
    assert settings.mapping.batch_size == 200


@pytest.mark.parametrize(
    ("target", "driver", "absent"),
    [(POSTGRES, "psycopg/", "pymysql/"),
     ({**POSTGRES, "kind": "mysql"}, "pymysql/", "psycopg/"),
     (DATA_API, None, "psycopg/")],
)
def test_package_bundles_exactly_the_targets_driver(
    target: dict[str, Any], driver: str | None, absent: str
) -> None:
    # GIVEN the component for a target
    import zipfile

    fn = plan_for(target).named("writeback-function")
    # THEN its package holds the handler modules and the target's driver, not the other one;
    # the only compiled code is orjson (the envelope writer's) and psycopg's binary wheel,
    # built for the function's architecture
    names = zipfile.ZipFile(fn.inputs["code"].path).namelist()
    assert {"handlers/writeback.py", "handlers/writeback_sql.py"} <= set(names)
    assert not any(n.startswith(absent) for n in names)
    compiled = [n for n in names if n.endswith((".so", ".pyd"))]
    assert all(n.startswith(("orjson/", "psycopg_binary/")) and "aarch64" in n
               for n in compiled), compiled
    assert any(n.startswith("orjson/") for n in compiled), compiled
    assert any(n.startswith("psycopg_binary/") for n in compiled) is (target["kind"] == "postgres")
    if driver:
        assert f"{driver}__init__.py" in names
    else:
        assert not any(n.startswith("pymysql/") for n in names)


# ------------------------------------------- the role grows per table, within its own bound


#: IAM's limit on a role's inline policies (characters without whitespace).
IAM_INLINE_LIMIT = 10_240


@pytest.mark.parametrize("name_length", [4, 16, 63])
def test_the_per_table_policy_stays_within_iam_while_the_environment_fits(
    name_length: int,
) -> None:
    """The writeback names each chosen table in its policy (its stream, its items' status
    updates, their KMS context): least privilege per table. That is bounded: the handler's
    config (one entry per table) must fit Lambda's 4 KB environment, so the most tables it can
    take still give a policy under IAM's limit -- for short and for the longest names, with
    the customer-managed key's grants and the longest environment prefix."""
    prefix = "dmsbus-abcdefghijklmnop-"  # an environment name of the maximum 16 characters

    def args(count: int) -> LegacyWritebackArgs:
        names = [f"t{i:03d}".ljust(name_length, "x")[:name_length] for i in range(count)]
        settings = WritebackSettings.model_validate({
            "target": DATA_API,
            "vpc": {"subnet_ids": ["subnet-0a1b2c3d4e5f60718"],
                    "security_group_ids": ["sg-0a1b2c3d4e5f60718"]},
            "tables": {n: {"origin": "tables", "legacy_table": "s.t", "key_columns": {"i": "i"},
                           "columns": {}} for n in names},
        })
        return legacy_writeback_args(
            settings,
            {n: WritebackSource(prefix + n, table_arn(prefix + n), stream_arn(prefix + n))
             for n in names},
            name_prefix=prefix,
            kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
        )

    # GIVEN the most tables whose handler config still fits the environment
    count = 1
    while True:
        try:
            args(count + 1)
        except ValueError as error:
            assert "environment limit" in str(error)
            break
        count += 1
    largest = args(count)
    # WHEN the component is declared with them
    plan = run_program("wb", {"aws:region": "eu-west-1"},
                       lambda: LegacyWriteback("writeback", largest))
    policy = json.loads(plan.named("writeback-policy").inputs["policy"])
    # THEN the role names every one of them and its policy is within IAM's limit
    text = "".join(json.dumps(policy, separators=(",", ":")).split())
    assert count >= 10 and all(t.table_name in text for t in largest.tables)
    assert len(text) <= IAM_INLINE_LIMIT, (count, len(text))
