"""The multi-language component package (plugin/, components/multi_language.py): the schema
Pulumi's analyzer infers is the one checked in, structural inputs are plain and ARNs are
inputs, and every component constructs through the provider (`ComponentProvider.construct`,
what `pulumi up` of a TypeScript/Go/YAML program calls) under mocks, building exactly what the
Python component builds from the same values."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.provider.experimental.component import ComponentProvider

from dms_event_bus.components import multi_language as ml
from dms_event_bus.components.dms_source import DmsSource as PyDmsSource
from dms_event_bus.components.kinesis_bus import KinesisBus as PyKinesisBus
from dms_event_bus.components.streamed_table import StreamedTable as PyStreamedTable
from tests.conftest import ROOT
from tools.mockrun import Plan, run_program
from tools.package_schema import SCHEMA_FILE, package_schema, render

ACCOUNT = "123456789012"
REGION = {"aws:region": "eu-west-1"}
STREAM = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/dmsbus-ml-orders/stream/2026-01-01"
TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:dmsbus-ml-alarms"
SECRET = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:erp-AbCdEf"
SUBNET_A, SUBNET_B = "subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"


def provider() -> ComponentProvider:
    return ml.PackageProvider(ml.COMPONENTS, ml.PACKAGE, None, "0.0.0")


def token(component: str) -> str:
    return f"{ml.PACKAGE}:index:{component}"


def wire(path: str) -> str:
    """The provider's refusal of an output at `path` (schema names), as the engine shows it."""
    return re.escape(f"('{path}', \"expected a value known at plan time, found an output")


def _unknown() -> Any:
    """What the engine sends for a value unknown during preview."""
    return pulumi.output.Unknown()


# -- inputs as another language sends them (schema names: camelCase) -----------------------

TABLE_INPUTS: dict[str, Any] = {
    "tableName": "dmsbus-ml-orders",
    "partitionKey": {"name": "order_id", "type": "N"},
    "sortKey": {"name": "line"},
    "read": {"min": 5, "max": 50},
    "write": {"min": 5, "max": 20, "targetUtilization": 60},
    "alarmTopicArn": TOPIC,
    "tags": {"team": "erp"},
}

BUS_INPUTS: dict[str, Any] = {
    "namePrefix": "dmsbus-ml-",
    "tables": [{"logicalName": "orders", "tableName": "dmsbus-ml-orders", "streamArn": STREAM}],
    "streamMode": "provisioned",
    "shardCount": 2,
    "mapping": {"batchSize": 200},
    "archive": {"expireDays": 30},
    "alarmTopicArn": TOPIC,
}

DMS_INPUTS: dict[str, Any] = {
    "environment": "ml",
    "tables": {"orders": {"schemaName": "sales", "tableName": "orders",
                          "partitionKey": "order_id"}},
    "wildcards": [{"schemaName": "sales", "tablePattern": "audit_%"}],
    "instance": {"instanceClass": "dms.t3.medium", "allocatedStorageGb": 50},
    "network": {"vpcId": "vpc-0a1b2c3d", "subnetIds": [SUBNET_A, SUBNET_B],
                "httpsEgressCidrs": ["10.0.0.0/16"], "sourceCidrs": ["10.1.0.0/24"]},
    "source": {"engine": "postgres", "port": 5432, "secretArn": SECRET, "database": "erp",
               "slotName": "dmsbus_ml"},
    "task": {"start": False, "commitRate": 5000},
    "notificationTopicArn": TOPIC,
}

WRITEBACK_SECTION: dict[str, Any] = {
    "target": {"kind": "postgres", "host": "erp.db.internal", "port": 5432, "database": "erp",
               "secret_arn": SECRET},
    "vpc": {"subnet_ids": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
            "security_group_ids": ["sg-0a1b2c3d4e5f60718"]},
    "tables": {"order_requests": {"legacy_table": "sales.order_requests",
                                  "key_columns": {"id": "request_id"},
                                  "columns": {"sku": "sku", "quantity": "quantity"},
                                  "version_column": "row_version"}},
}

WRITEBACK_INPUTS: dict[str, Any] = {
    "namePrefix": "dmsbus-ml-",
    "writeback": WRITEBACK_SECTION,
    "tables": {"order_requests": {
        "tableName": "dmsbus-ml-ingest-order_requests",
        "tableArn": f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/dmsbus-ml-ingest-order_requests",
        "streamArn": f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/dmsbus-ml-ingest-order_"
                     "requests/stream/2026-01-01"}},
    "alarmTopicArn": TOPIC,
}

INPUTS: dict[str, dict[str, Any]] = {
    "StreamedTable": TABLE_INPUTS, "KinesisBus": BUS_INPUTS, "DmsSource": DMS_INPUTS,
          "LegacyWriteback": WRITEBACK_INPUTS}


def construct(component: str, inputs: dict[str, Any],
              opts: pulumi.ResourceOptions | None = None) -> Callable[[], None]:
    def program() -> None:
        result = provider().construct("x", token(component), inputs, opts)
        assert result.urn is not None

    return program


def custom(plan: Plan) -> list[tuple[str, str, str]]:
    """The AWS resources of a plan as (type, name, inputs): what the cloud would see."""
    def plain(value: Any) -> str:  # a Lambda's code: the archive's file, not the object
        return str(getattr(value, "path", value))

    return sorted((r.type, r.name, json.dumps(r.inputs, sort_keys=True, default=plain))
                  for r in plan.resources if r.custom)


# -- the schema -------------------------------------------------------------------------------


def test_the_checked_in_schema_is_what_the_analyzer_infers() -> None:
    # GIVEN the components' TypedDict args and Output annotations, analyzed as the provider
    # host does on `pulumi package add` / `pulumi package get-schema`
    inferred = render(package_schema(version=json.loads(SCHEMA_FILE.read_text())["version"]))
    # THEN plugin/schema.json is exactly that (regenerate: python -m tools.package_schema --write)
    assert SCHEMA_FILE.read_text(encoding="utf-8") == inferred


def test_the_schema_has_the_four_components_with_their_outputs() -> None:
    schema = package_schema()
    resources = schema["resources"]
    assert sorted(resources) == sorted(token(c) for c in INPUTS)
    assert all(r["isComponent"] for r in resources.values())
    assert sorted(resources[token("KinesisBus")]["properties"]) == [
        "faninFunctionName", "overflowBucket", "streamArn", "streamName"]
    names = resources[token("DmsSource")]["properties"]["physicalTableNames"]
    assert names["type"] == "object" and names["additionalProperties"]["type"] == "string"
    assert names["description"] == "Logical name -> DynamoDB table name of each declared table."
    assert sorted(resources[token("StreamedTable")]["requiredInputs"]) == ["tableName"]
    assert sorted(resources[token("DmsSource")]["requiredInputs"]) == [
        "environment", "network", "notificationTopicArn", "source"]
    assert [(e["name"], e["value"]) for e in schema["types"][token("KeyType")]["enum"]] == [
        ("S", "S"), ("N", "N"), ("B", "B")]


def test_structural_inputs_are_plain_and_arns_may_be_outputs() -> None:
    """Table names, keys, modes and capacities decide which resources exist: other languages
    must pass them as values (plain); ARNs may be another resource's output."""
    schema = package_schema()
    dms = schema["resources"][token("DmsSource")]["inputProperties"]
    assert all(dms[k].get("plain") for k in ("environment", "tables", "instance", "network"))
    assert not dms["notificationTopicArn"].get("plain")
    network = schema["types"][token("ReplicationNetwork")]["properties"]
    assert not network["vpcId"].get("plain")
    assert network["httpsEgressCidrs"].get("plain")
    table = schema["resources"][token("StreamedTable")]["inputProperties"]
    assert table["tableName"].get("plain") and table["partitionKey"].get("plain")
    assert not table["alarmTopicArn"].get("plain")
    bus_table = schema["types"][token("BusSourceTable")]["properties"]
    assert bus_table["tableName"].get("plain") and not bus_table["streamArn"].get("plain")


# -- Construct under mocks ------------------------------------------------------------------


@pytest.mark.parametrize("component", sorted(INPUTS))
def test_every_component_constructs_through_the_provider(component: str) -> None:
    plan = run_program("ml", REGION, construct(component, INPUTS[component]))
    # the package's component (the same token as the Python one: the provider serves it)
    (outer,) = [r for r in plan.of_type(token(component)) if "$" not in r.parent]
    assert outer.name == "x"
    # the Python component is its only child, under the same name
    children = [r for r in plan.resources if r.parent == outer.urn]
    assert [(c.name, c.custom) for c in children] == [("x", False)]
    assert any(r.custom for r in plan.resources)


def test_streamed_table_through_the_provider_declares_the_table() -> None:
    plan = run_program("ml", REGION, construct("StreamedTable", TABLE_INPUTS))
    (table,) = plan.of_type("aws:dynamodb/table:Table")
    assert table.inputs["name"] == "dmsbus-ml-orders"
    assert table.inputs["streamViewType"] == "NEW_AND_OLD_IMAGES"
    assert table.inputs["hashKey"] == "order_id" and table.inputs["rangeKey"] == "line"
    assert {"name": "order_id", "type": "N"} in table.inputs["attributes"]
    assert table.inputs["billingMode"] == "PROVISIONED"


def _python_table() -> None:
    from dms_event_bus.components.streamed_table import KeySpec, Scaling, StreamedTableArgs

    PyStreamedTable("x", StreamedTableArgs(
        table_name="dmsbus-ml-orders", partition_key=KeySpec("order_id", "N"),
        sort_key=KeySpec("line"), read=Scaling(5, 50), write=Scaling(5, 20, 60),
        alarm_topic_arn=TOPIC, tags={"team": "erp"}))


def _python_bus() -> None:
    from dms_event_bus.components.kinesis_bus import ArchiveArgs, BusTable, KinesisBusArgs
    from dms_event_bus.components.stream_mapping import MappingSettings

    PyKinesisBus("x", KinesisBusArgs(
        name_prefix="dmsbus-ml-", tables=[BusTable("orders", "dmsbus-ml-orders", STREAM)],
        stream_mode="provisioned", shard_count=2, mapping=MappingSettings(batch_size=200),
        archive=ArchiveArgs(expire_days=30), alarm_topic_arn=TOPIC))


def _python_dms() -> None:
    from dms_event_bus.components import dms_source as d

    PyDmsSource("x", d.DmsSourceArgs(
        environment="ml",
        tables={"orders": d.DmsTable("sales", "orders", "order_id")},
        wildcards=[d.DmsWildcard("sales", "audit_%")],
        capacity=d.DmsInstance("dms.t3.medium", 50),
        network=d.DmsNetwork("vpc-0a1b2c3d", (SUBNET_A, SUBNET_B), ("10.0.0.0/16",),
                             ("10.1.0.0/24",)),
        source=d.DmsEndpoint("postgres", 5432, SECRET, database="erp", slot_name="dmsbus_ml"),
        task=d.DmsTask(start=False, lob_mode="limited", max_full_load_subtasks=8,
                       parallel_load_threads=0, commit_rate=5000, lob_max_size_kb=64,
                       lob_chunk_size_kb=64, on_data_error="stop_task",
                       on_apply_error="stop_task", log_severity="LOGGER_SEVERITY_DEFAULT",
                       log_retention_days=30),
        alarms=d.DmsAlarms(300, 600, 5, 15),
        notification_topic_arn=TOPIC))


@pytest.mark.parametrize(("component", "python_program"), [
    ("StreamedTable", _python_table), ("KinesisBus", _python_bus), ("DmsSource", _python_dms)])
def test_the_package_builds_what_the_python_component_builds(
    component: str, python_program: Callable[[], None]
) -> None:
    # GIVEN the same values, once through the package (as another language sends them) and
    # once as the Python component's dataclass args
    through_provider = run_program("ml", REGION, construct(component, INPUTS[component]))
    direct = run_program("ml", REGION, python_program)
    # THEN the AWS resources, names and inputs are identical
    assert custom(through_provider) == custom(direct)


def test_an_arn_may_come_from_another_resource() -> None:
    def program() -> None:
        topic = pulumi.Output.from_input(TOPIC)
        stream = pulumi.Output.from_input(STREAM)
        tables = [{**BUS_INPUTS["tables"][0], "streamArn": stream}]
        provider().construct("x", token("KinesisBus"),
                             {**BUS_INPUTS, "tables": tables, "alarmTopicArn": topic}, None)

    plan = run_program("ml", REGION, program)
    (mapping,) = plan.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    assert mapping.inputs["eventSourceArn"] == STREAM


@pytest.mark.parametrize(("component", "inputs", "message"), [
    ("StreamedTable", {**TABLE_INPUTS, "tableName": pulumi.Output.from_input("t")},
     wire("tableName")),
    ("KinesisBus", {**BUS_INPUTS, "namePrefix": pulumi.Output.from_input("dmsbus-ml-")},
     wire("namePrefix")),
    ("DmsSource", {**DMS_INPUTS, "serverless": {"minCapacityUnits": 1, "maxCapacityUnits": 4}},
     "DmsSource: expected exactly one of `instance` and `serverless`, found both"),
    ("DmsSource", {**DMS_INPUTS, "environment": "Bad Env"}, "DmsSourceArgs.environment"),
    ("StreamedTable", {**TABLE_INPUTS, "partitionKey": {"name": "k", "type": "X"}},
     "Invalid value X of type <class 'str'> for enum 'KeyType'"),
    ("LegacyWriteback", {**WRITEBACK_INPUTS, "writeback": {**WRITEBACK_SECTION,
                                                           "target": {"kind": "oracle"}}},
     "LegacyWriteback.writeback.target"),
    ("LegacyWriteback", {**WRITEBACK_INPUTS, "tables": {}},
     r"writeback.tables: no table found for \['order_requests'\]"),
])
def test_bad_inputs_fail_before_any_resource_naming_the_input(
    component: str, inputs: dict[str, Any], message: str
) -> None:
    with pytest.raises(Exception, match=message) as caught:
        run_program("ml", REGION, construct(component, inputs))
    assert caught.value.declared == []  # type: ignore[attr-defined]


def test_a_required_input_missing_is_named_by_the_provider() -> None:
    inputs = {k: v for k, v in TABLE_INPUTS.items() if k != "tableName"}
    with pytest.raises(Exception, match="Missing required input 'tableName' on 'StreamedTable'"):
        run_program("ml", REGION, construct("StreamedTable", inputs))


def test_depends_on_of_the_dms_source_holds_back_its_task() -> None:
    """Other languages give the tables (and their mappings) as `dependsOn` of DmsSource: the
    replication task must wait for them, as the Python program's does."""

    def program() -> None:
        from dms_event_bus.components.streamed_table import KeySpec, StreamedTableArgs

        table = PyStreamedTable("orders", StreamedTableArgs(
            table_name="dmsbus-ml-orders", partition_key=KeySpec("order_id")))
        provider().construct("x", token("DmsSource"), DMS_INPUTS,
                             pulumi.ResourceOptions(depends_on=[table]))

    plan = run_program("ml", REGION, program)
    (task,) = plan.of_type("aws:dms/replicationTask:ReplicationTask")
    # (a dependency on a component is one on each resource in it)
    assert plan.named("orders-table").urn in task.dependencies


# -- the plugin folder -----------------------------------------------------------------------


def test_the_plugin_folder_is_a_python_component_package() -> None:
    plugin = ROOT / "plugin"
    spec = yaml.safe_load((plugin / "PulumiPlugin.yaml").read_text())
    assert spec["runtime"]["name"] == "python"
    # the plugin installs this repository (its parent folder) as a distribution
    lines = [ln for ln in (plugin / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines == ["..[drivers]"]
    # and its entry point serves exactly the listed components, under the package's name,
    # through the package's provider
    tree = ast.parse((plugin / "__main__.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", "") == "PackageProvider"]
    assert len(calls) == 1
    assert [getattr(a, "id", getattr(a, "value", None)) for a in calls[0].args] == [
        "COMPONENTS", "PACKAGE", None, "VERSION"]
    assert issubclass(ml.PackageProvider, ComponentProvider)
    assert ml.COMPONENTS == [ml.DmsSource, ml.StreamedTable, ml.KinesisBus, ml.LegacyWriteback]


# -- values as the engine sends them ---------------------------------------------------------


def test_numbers_arrive_as_floats_and_become_integers() -> None:
    """The engine sends every number as a float: an integer field gets an int (a fan-in
    environment of '900000.0' would fail every batch; DMS task settings of 5000.0)."""
    bus = {**BUS_INPUTS, "maxRecordBytes": 900000.0, "shardCount": 2.0,
           "mapping": {"batchSize": 200.0}}
    plan = run_program("ml", REGION, construct("KinesisBus", bus))
    fanin = plan.named("x-fanin")
    assert fanin.inputs["environment"]["variables"]["MAX_RECORD_BYTES"] == "900000"
    dms_inputs = {**DMS_INPUTS, "task": {"commitRate": 5000.0, "maxFullLoadSubtasks": 4.0}}
    plan = run_program("ml", REGION, construct("DmsSource", dms_inputs))
    (task,) = plan.of_type("aws:dms/replicationTask:ReplicationTask")
    settings = json.loads(task.inputs["replicationTaskSettings"])
    assert settings["FullLoadSettings"]["CommitRate"] == 5000
    assert "5000.0" not in task.inputs["replicationTaskSettings"]


@pytest.mark.parametrize(("component", "inputs", "message"), [
    ("KinesisBus", {**BUS_INPUTS, "shardCount": 2.5},
     r"KinesisBus.shard_count: expected an integer, found 2.5"),
    ("DmsSource", {**DMS_INPUTS, "source": {**DMS_INPUTS["source"],
                                            "engine": pulumi.Output.from_input("postgres")}},
     wire("source.engine")),
    ("DmsSource", {**DMS_INPUTS, "tables": {"orders": {
        **DMS_INPUTS["tables"]["orders"], "partitionKey": pulumi.Output.from_input("id")}}},
     wire("tables.orders.partitionKey")),
    ("DmsSource", {**DMS_INPUTS, "task": {"commitRate": 10}}, r"DmsSource.task.commit_rate"),
    ("LegacyWriteback", {**WRITEBACK_INPUTS, "writeback": {**WRITEBACK_SECTION, "target": {
        **WRITEBACK_SECTION["target"], "secret_arn": pulumi.Output.from_input(SECRET)}}},
     wire("writeback.target.secret_arn")),
    ("LegacyWriteback", {**WRITEBACK_INPUTS, "tables": {
        **WRITEBACK_INPUTS["tables"], "other": WRITEBACK_INPUTS["tables"]["order_requests"]}},
     "LegacyWriteback.tables: other not in writeback.tables"),
    ("DmsSource", {**DMS_INPUTS, "task": {"onApplyError": "bogus"}},
     r"DmsSource.task.on_apply_error"),
    ("DmsSource", {**DMS_INPUTS, "source": {**DMS_INPUTS["source"], "engine": "mysql",
                                            "port": 3306}, "task": {"lobMode": "limited"}},
     r"DmsSource.task.lob_mode: expected 'full' \(or none\) for engine 'mysql'"),
])
def test_values_other_languages_may_send_are_checked_by_name(
    component: str, inputs: dict[str, Any], message: str
) -> None:
    with pytest.raises(Exception, match=message) as caught:
        run_program("ml", REGION, construct(component, inputs))
    assert caught.value.declared == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("engine", "port", "lob"), [("postgres", 5432, "limited"),
                                                     ("mysql", 3306, "full"),
                                                     ("sqlserver", 1433, "full")])
def test_the_lob_mode_defaults_by_engine_as_a_stack_file_does(
    engine: str, port: int, lob: str
) -> None:
    source = {"engine": engine, "port": port, "secretArn": SECRET, "database": "erp"}
    inputs = {**DMS_INPUTS, "source": source, "task": {}}
    plan = run_program("ml", REGION, construct("DmsSource", inputs))
    (task,) = plan.of_type("aws:dms/replicationTask:ReplicationTask")
    settings = json.loads(task.inputs["replicationTaskSettings"])["TargetMetadata"]
    assert (settings["FullLobMode"], settings["LimitedSizeLobMode"]) == (
        (True, False) if lob == "full" else (False, True))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def test_every_property_is_described_and_stated_defaults_are_the_real_ones() -> None:
    """A generated SDK shows these descriptions: each says what the property is, on one line,
    and a `default X` it states is the value the component really uses."""
    from dms_event_bus.components.kinesis_bus import ArchiveArgs, KinesisBusArgs
    from dms_event_bus.components.stream_mapping import MappingSettings
    from dms_event_bus.components.streamed_table import AdoptSpec, KeySpec, Scaling
    from dms_event_bus.settings.dms import DmsAlarmSettings, TaskSettings

    schema = package_schema()
    described = [(where, name, spec) for where, props in [
        *((r, res["inputProperties"]) for r, res in schema["resources"].items()),
        *((r, res["properties"]) for r, res in schema["resources"].items()),
        *((t, ty.get("properties", {})) for t, ty in schema["types"].items())]
        for name, spec in props.items()]
    assert [(w, n) for w, n, spec in described
            if not spec.get("description") or "\n" in spec["description"]] == []
    real = {
        token("ReplicationTask"): TaskSettings(), token("ReplicationAlarms"): DmsAlarmSettings(),
        token("StreamMappingTuning"): MappingSettings(), token("Archive"): ArchiveArgs(),
        token("Adoption"): AdoptSpec("x"), token("ProvisionedScaling"): Scaling(1, 1),
        token("KeyAttribute"): KeySpec("k"),
        token("KinesisBus"): KinesisBusArgs(name_prefix="dmsbus-x-", tables=[]),
    }
    checked = 0
    for where, name, spec in described:
        stated = re.search(r"default ([\w.]+?)\.?$", spec["description"])
        if where in real and stated:
            value = getattr(real[where], _snake(name))
            value = getattr(value, "value", value)
            assert str(value).lower() == stated.group(1).lower(), (where, name)
            checked += 1
    assert checked >= 25


@pytest.mark.parametrize(("component", "inputs", "message"), [
    # an object section as an output: the SDK would map it to {} (the defaults)
    ("DmsSource", {**DMS_INPUTS, "task": pulumi.Output.from_input({"start": True})},
     wire("task")),
    ("KinesisBus", {**BUS_INPUTS, "mapping": pulumi.Output.secret({"batchSize": 500})},
     wire("mapping") + ".* or a secret somewhere inside it"),
    ("KinesisBus", {**BUS_INPUTS, "archive": _unknown()}, wire("archive")),
    # a secret ARN makes its whole (plain) object secret
    ("DmsSource", {**DMS_INPUTS, "source": pulumi.Output.secret(DMS_INPUTS["source"])},
     wire("source")),
    # unknown during preview where the schema says plain, at any depth
    ("KinesisBus", {**BUS_INPUTS, "shardCount": _unknown()}, wire("shardCount")),
    ("DmsSource", {**DMS_INPUTS, "task": {"commitRate": _unknown()}},
     wire("task.commitRate")),
    ("StreamedTable", {**TABLE_INPUTS, "write": {"min": _unknown(), "max": 5}},
     wire("write.min")),
    ("LegacyWriteback", {**WRITEBACK_INPUTS, "tags": {"team": pulumi.Output.secret("erp")}},
     wire("tags.team")),
    # types the schema gives but the SDK does not check
    ("StreamedTable", {**TABLE_INPUTS, "deletionProtection": 1.0},
     r"StreamedTable.deletion_protection: expected true or false, found 1.0"),
    ("KinesisBus", {**BUS_INPUTS, "forceDestroyBuckets": "false"},
     r"KinesisBus.force_destroy_buckets: expected true or false, found 'false'"),
    # the stack file's ranges and choices
    ("KinesisBus", {**BUS_INPUTS, "memoryMb": 0}, r"KinesisBus.memory_mb: Input should be"),
    ("StreamedTable", {**TABLE_INPUTS, "write": {"min": 5, "max": 20, "targetUtilization": 0}},
     r"StreamedTable.write.target_utilization: Input should be greater than or equal to 20"),
    ("DmsSource", {**DMS_INPUTS, "source": {**DMS_INPUTS["source"], "engine": "db2"}},
     r"DmsSource.source.engine: Input should be 'postgres'"),
    ("DmsSource", {**DMS_INPUTS, "instance": {"instanceClass": "dms.t3.medium",
                                              "allocatedStorageGb": 0}},
     r"DmsSource.instance.allocated_storage_gb: Input should be greater than or equal to 5"),
    ("DmsSource", {**DMS_INPUTS, "instance": None, "serverless": {
        "minCapacityUnits": 3, "maxCapacityUnits": 4}}, r"DmsSource.serverless"),
    ("DmsSource", {**DMS_INPUTS, "network": {**DMS_INPUTS["network"], "subnetIds": []}},
     r"DmsSource.network.subnet_ids: List should have at least 2 items"),
])
def test_what_the_engine_may_send_in_plain_places_is_refused_by_name(
    component: str, inputs: dict[str, Any], message: str
) -> None:
    with pytest.raises(Exception, match=message) as caught:
        run_program("ml", REGION, construct(component, inputs))
    assert caught.value.declared == []  # type: ignore[attr-defined]


def test_unknown_and_secret_arns_are_accepted_where_the_schema_says_input() -> None:
    inputs = {**DMS_INPUTS,
              "network": {**DMS_INPUTS["network"], "vpcId": _unknown(),
                          "subnetIds": [SUBNET_A, pulumi.Output.from_input(SUBNET_B)]},
              "notificationTopicArn": pulumi.Output.secret(TOPIC)}
    plan = run_program("ml", REGION, construct("DmsSource", inputs))
    assert plan.of_type("aws:dms/replicationTask:ReplicationTask")
