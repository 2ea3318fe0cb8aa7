"""Dashboard: every panel the issue asks for, and under mocks no widget names a resource that the
graph does not declare -- with the writeback and DMS wired in exactly as `__main__.py` is to wire
them (fan-in and writeback functions and DLQs, DMS metric dimensions in both capacity modes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hypothesis
import pulumi
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dms_event_bus.components.dashboard import (
    TOP_TABLES,
    Dashboard,
    DashboardArgs,
    dashboard_body,
    resource_name,
    throttle_search,
)
from dms_event_bus.components.dms_source import DmsSource
from dms_event_bus.components.kinesis_bus import BusTable, KinesisBus, KinesisBusArgs
from dms_event_bus.components.legacy_writeback import LegacyWriteback
from dms_event_bus.settings import StackSettings, load_settings
from dms_event_bus.settings.aws_limits import Violation, evaluate
from dms_event_bus.settings.component_args import (
    WritebackSource,
    dms_source_args,
    legacy_writeback_args,
)
from dms_event_bus.settings.stackfile import project_config, read_stack_config, stack_files
from dms_event_bus.settings.writeback import WritebackSettings
from tests.fixture_stacks import STACKS_DIR
from tools.mockrun import ACCOUNT, Declared, Plan, run_program, run_stack

REGION = "eu-west-1"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:dmsbus-alarms"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:legacy-pg-AbCdEf"
THROTTLES = f"Waypoint tables: write throttles (top {TOP_TABLES})"

#: A writeback section (the stack files have none yet): app-owned orders back to PostgreSQL.
WRITEBACK = WritebackSettings.model_validate({
    "target": {"kind": "postgres", "host": "legacy.internal", "database": "sales",
               "secret_arn": SECRET, "tls": True},
    "vpc": {"subnet_ids": ["subnet-0a1b2c3d4e5f60718"],
            "security_group_ids": ["sg-0a1b2c3d4e5f60718"]},
    "tables": {
        "orders": {"legacy_table": "sales.orders", "key_columns": {"id": "order_id"},
                   "columns": {"amount": "amount"}, "version_column": "row_version"},
    },
})


# --- the body (a pure function) ----------------------------------------------------------------


def body(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "region": REGION,
        "bus": "dmsbus-t-bus",
        "functions": {"fan-in": "dmsbus-t-fanin", "writeback": "dmsbus-t-writeback"},
        "queues": {"fan-in DLQ": "dmsbus-t-fanin-dlq", "writeback DLQ": "dmsbus-t-writeback-dlq"},
        "dms": {"ReplicationInstanceIdentifier": "dmsbus-t-replication",
                "ReplicationTaskIdentifier": "dmsbus-t-cdc"},
        "table_name_prefix": "dmsbus-t-",
    }
    args.update(changes)
    parsed: dict[str, Any] = json.loads(dashboard_body(**args))
    return parsed


def rows(board: dict[str, Any]) -> dict[str, list[list[Any]]]:
    return {w["properties"]["title"]: w["properties"]["metrics"] for w in board["widgets"]}


def test_every_panel_the_operator_needs() -> None:
    panels = rows(body())
    assert panels["Bus: records and bytes in"] == [
        ["AWS/Kinesis", "IncomingRecords", "StreamName", "dmsbus-t-bus",
         {"stat": "Sum", "label": "records"}],
        ["AWS/Kinesis", "IncomingBytes", "StreamName", "dmsbus-t-bus",
         {"stat": "Sum", "label": "bytes"}],
    ]
    assert panels["Bus: write throttling"] == [
        ["AWS/Kinesis", "WriteProvisionedThroughputExceeded", "StreamName", "dmsbus-t-bus",
         {"stat": "Sum", "label": "throttled writes"}],
    ]
    assert panels["Stream consumers: iterator age (ms)"] == [
        ["AWS/Lambda", "IteratorAge", "FunctionName", "dmsbus-t-fanin",
         {"stat": "Maximum", "label": "fan-in"}],
        ["AWS/Lambda", "IteratorAge", "FunctionName", "dmsbus-t-writeback",
         {"stat": "Maximum", "label": "writeback"}],
    ]
    assert [r[3] for r in panels["Stream consumers: errors"]] == [
        "dmsbus-t-fanin", "dmsbus-t-writeback"
    ]
    assert [(r[3], r[4]["label"]) for r in panels["DLQ depth (messages)"]] == [
        ("dmsbus-t-fanin-dlq", "fan-in DLQ"), ("dmsbus-t-writeback-dlq", "writeback DLQ")
    ]
    assert panels["DMS CDC latency (s)"] == [
        ["AWS/DMS", "CDCLatencySource", "ReplicationInstanceIdentifier", "dmsbus-t-replication",
         "ReplicationTaskIdentifier", "dmsbus-t-cdc", {"stat": "Maximum", "label": "source"}],
        ["AWS/DMS", "CDCLatencyTarget", "ReplicationInstanceIdentifier", "dmsbus-t-replication",
         "ReplicationTaskIdentifier", "dmsbus-t-cdc", {"stat": "Maximum", "label": "target"}],
    ]
    ((throttles,),) = panels[THROTTLES]
    assert throttles["expression"] == throttle_search("dmsbus-t-")
    assert throttles["id"] and throttles["label"]
    # the fan-in's embedded metrics, exactly as handlers.fanin emits them
    fanin_rows = panels["Fan-in: changes put on the bus"]
    assert {(r[0], r[2], r[3]) for r in fanin_rows} == {("DmsEventBus", "Stream", "dmsbus-t-bus")}
    assert {r[1] for r in fanin_rows} == {
        "Published", "RetriedEntries", "NotPublished", "Overflowed", "PoisonRecords"
    }
    for widget in body()["widgets"]:
        assert widget["properties"]["region"] == REGION
        assert widget["width"] in (12, 24) and widget["height"] == 6


def test_without_dms_or_tables_their_panels_are_left_out() -> None:
    titles = set(rows(body(dms=None, table_name_prefix=None)))
    assert "DMS CDC latency (s)" not in titles
    assert THROTTLES not in titles
    assert {"Bus: records and bytes in", "DLQ depth (messages)"} <= titles


def test_widgets_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for w in body()["widgets"]:
        mine = {(x, y) for x in range(w["x"], w["x"] + w["width"])
                for y in range(w["y"], w["y"] + w["height"])}
        assert not (mine & cells), w["properties"]["title"]
        assert w["x"] + w["width"] <= 24
        cells |= mine


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("dmsbus-t-writeback-dlq", "dmsbus-t-writeback-dlq"),
        (f"arn:aws:sqs:{REGION}:{ACCOUNT}:dmsbus-t-writeback-dlq", "dmsbus-t-writeback-dlq"),
        (f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/dmsbus-t-writeback-dlq",
         "dmsbus-t-writeback-dlq"),
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:dmsbus-t-writeback", "dmsbus-t-writeback"),
        (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:dmsbus-t-writeback:live",
         "dmsbus-t-writeback"),
    ],
)
def test_names_arns_and_queue_urls_all_give_the_dimension_name(given: str, name: str) -> None:
    assert resource_name(given) == name
    panels = rows(body(functions={"f": given}, queues={"q": given}))
    assert panels["DLQ depth (messages)"][0][3] == name
    assert panels["Stream consumers: errors"][0][3] == name


def test_args_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"DashboardArgs\.functions"):
        DashboardArgs("d", REGION, "bus", functions={}, queues={})
    with pytest.raises(ValueError, match=r"DashboardArgs\.dms_dimensions"):
        DashboardArgs("d", REGION, "bus", functions={"f": "f"}, queues={}, dms_dimensions={})
    with pytest.raises(ValueError, match=r"DashboardArgs\.table_name_prefix"):
        DashboardArgs("d", REGION, "bus", functions={"f": "f"}, queues={}, table_name_prefix="-")


# --- at scale: nothing grows with the table count ----------------------------------------------


def limit_violations(board: dict[str, Any]) -> list[Violation]:
    """The project's dashboard limit rules (settings/aws_limits.py) run on this body."""
    dashboard = Declared(type="aws:cloudwatch/dashboard:Dashboard", name="ops-dashboard",
                         inputs={"dashboardName": "dmsbus-t-pipeline",
                                 "dashboardBody": json.dumps(board)},
                         outputs={}, urn="urn:ops-dashboard", parent="", custom=True,
                         id="ops-dashboard-id")
    return evaluate(Plan("unit", [dashboard], [])).violations


@hypothesis.settings(max_examples=25, deadline=None)
@given(environment=st.from_regex(r"[a-z][a-z0-9]{0,9}(-[a-z0-9]{1,5})?", fullmatch=True))
def test_the_throttle_panel_searches_the_environments_prefix(environment: str) -> None:
    prefix = f"dmsbus-{environment}-"
    ((throttles,),) = rows(body(table_name_prefix=prefix))[THROTTLES]
    expression = throttles["expression"]
    assert expression.startswith("SORT(SEARCH('{AWS/DynamoDB,TableName} ")
    assert 'MetricName="WriteThrottleEvents"' in expression
    # a partial match on the whole prefix (not quoted: a quoted value matches exactly)
    assert f" TableName=dmsbus-{environment}'" in expression
    assert expression.endswith(f", SUM, DESC, {TOP_TABLES})")


@pytest.mark.parametrize("tables", [1, 1_000])
def test_a_thousand_tables_stay_within_the_dashboard_limits(tables: int) -> None:
    """1 and 1,000 tables give the same body (the panel searches the prefix: the body has no
    per-table input left), and the project's dashboard rules pass on it."""
    names = [f"dmsbus-t-table{i:04}" for i in range(tables)]
    board = body(table_name_prefix="dmsbus-t-")
    assert len(json.dumps(board)) == len(json.dumps(body(table_name_prefix="dmsbus-t-")))
    assert limit_violations(board) == []
    # the rule does count: the same panel with one metric row per table fails it
    per_table = [["AWS/DynamoDB", "WriteThrottleEvents", "TableName", n] for n in names]
    widgets = [{**w, "properties": {**w["properties"], "metrics": per_table}}
               if w["properties"]["title"] == THROTTLES else w for w in board["widgets"]]
    assert (limit_violations({"widgets": widgets}) == []) == (tables <= 500)


# --- wired as the program wires it, under mocks ------------------------------------------------


def stack_settings(stack: str) -> StackSettings:
    return load_settings(stack, project_config(read_stack_config(stack, STACKS_DIR)))


def wired_plan(stack: str) -> Plan:
    """Bus, DMS and writeback of the stack file, and the dashboard wired to all three as
    `__main__.py` wires it (the snippet in docs/runbook.md's dashboard section)."""
    settings = stack_settings(stack)
    prefix = settings.name_prefix

    def program() -> None:
        stream = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{{}}/stream/2026-01-01T00:00:00.000"
        bus = KinesisBus(
            "bus",
            KinesisBusArgs(
                name_prefix=prefix,
                tables=[BusTable(t, settings.physical_table_name(t),
                                 stream.format(settings.physical_table_name(t)))
                        for t in settings.tables],
                alarm_topic_arn=TOPIC,
            ),
        )
        dms = None
        if settings.dms is not None:
            dms = DmsSource(
                "dms",
                dms_source_args(settings.dms, settings.tables,
                                environment=settings.environment,
                                notification_topic_arn=TOPIC),
            )
        physical = {"orders": f"{prefix}ingest-orders"}
        writeback = LegacyWriteback(
            "writeback",
            legacy_writeback_args(
                WRITEBACK,
                {logical: WritebackSource(name,
                                          f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
                                          stream.format(name))
                 for logical, name in physical.items()},
                name_prefix=prefix,
                alarm_topic_arn=TOPIC,
            ),
        )
        # --- the snippet for __main__.py (the writeback is optional there) ---
        functions: dict[str, pulumi.Input[str]] = {"fan-in": bus.fanin_function_name}
        queues: dict[str, pulumi.Input[str]] = {"fan-in DLQ": bus.dlq_name}
        if writeback is not None:
            functions["writeback"] = writeback.function_name
            queues["writeback DLQ"] = writeback.dlq_url
        Dashboard(
            "ops",
            DashboardArgs(
                dashboard_name=f"{prefix}pipeline",
                region=REGION,
                bus_stream_name=bus.stream_name,
                functions=functions,
                queues=queues,
                dms_dimensions=dms.metric_dimensions if dms else None,
                table_name_prefix=prefix,
            ),
        )

    return run_program(stack, {"aws:region": REGION}, program)


#: Dimension -> (resource type, the input holding its physical name)
DIMENSIONS = {
    "StreamName": ("aws:kinesis/stream:Stream", "name"),
    "Stream": ("aws:kinesis/stream:Stream", "name"),  # the fan-in's embedded metrics
    "FunctionName": ("aws:lambda/function:Function", "name"),
    "QueueName": ("aws:sqs/queue:Queue", "name"),
    "ReplicationTaskIdentifier": ("aws:dms/replicationTask:ReplicationTask",
                                  "replicationTaskId"),
    "ReplicationInstanceIdentifier": ("aws:dms/replicationInstance:ReplicationInstance",
                                      "replicationInstanceId"),
    "ReplicationConfigIdentifier": ("aws:dms/replicationConfig:ReplicationConfig",
                                    "replicationConfigIdentifier"),
}


@pytest.mark.parametrize("stack", sorted(stack_files(STACKS_DIR)))
def test_wired_dashboard_names_only_resources_of_the_graph(stack: str) -> None:
    plan = wired_plan(stack)
    (board,) = plan.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert board.parent == plan.named("ops").urn
    widgets = json.loads(board.inputs["dashboardBody"])["widgets"]
    declared = {
        dim: {r.inputs.get(field) for r in plan.of_type(type_)}
        for dim, (type_, field) in DIMENSIONS.items()
    }
    checked: set[str] = set()
    for widget in widgets:
        for row in widget["properties"]["metrics"]:
            dims = row[2:-1]
            for key, value in zip(dims[::2], dims[1::2], strict=True):
                if key == "TableName":
                    continue  # waypoint tables: declared by StreamedTable in the program
                assert key in DIMENSIONS, f"unchecked dimension {key}"
                assert value in declared[key], f"{row[1]}: {key}={value} is dangling"
                checked.add(key)
    # both consumers, both DLQs and (when configured) DMS are on the board
    on_board = {v for w in widgets for row in w["properties"]["metrics"] for v in row
                if isinstance(v, str)}
    assert declared["FunctionName"] <= on_board
    assert declared["QueueName"] <= on_board
    expected = {"StreamName", "Stream", "FunctionName", "QueueName"}
    if stack_settings(stack).dms is not None:
        # instance mode: task + instance identifiers; serverless: the replication config's
        dms_dimensions = {k for k in DIMENSIONS if k.startswith("Replication") and declared[k]}
        assert dms_dimensions
        expected |= dms_dimensions
    assert expected <= checked


def test_fanin_panel_reads_the_metrics_the_handler_emits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The panel's namespace, dimension and metric names are those of the EMF line the fan-in
    handler prints for a batch (an empty batch: the handler still reports it)."""
    from dms_event_bus.handlers import fanin

    monkeypatch.setenv("BUS_STREAM_NAME", "dmsbus-t-bus")
    monkeypatch.setenv("TABLES", json.dumps({"dmsbus-t-orders": "orders"}))
    monkeypatch.setattr(fanin, "_client", lambda service: None)  # nothing to put
    assert fanin.handler({"Records": []}, None) == {"batchItemFailures": []}
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"_aws"' in x]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    emitted = {m["Name"] for m in directive["Metrics"]}
    panel = rows(body())["Fan-in: changes put on the bus"]
    for namespace, metric, dimension, value, _options in panel:
        assert namespace == directive["Namespace"]
        assert directive["Dimensions"] == [[dimension]] and line[dimension] == value
        assert metric in emitted, f"the fan-in emits no {metric}"


def generated_stack(folder: Path, tables: int) -> str:
    """A stack file of `tables` declared tables (no DMS: the dashboard is all this reads)."""
    config = {
        "aws:region": REGION,
        "dms-event-bus:tables": {
            f"table_{i:04d}": {"partition_key": {"name": "id", "type": "S"}}
            for i in range(tables)
        },
    }
    (folder / "Pulumi.gen.yaml").write_text(yaml.safe_dump({"config": config}))
    return "gen"


def test_the_programs_dashboard_does_not_grow_with_the_tables(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`__main__.py` wires the dashboard so that its body is the same for 1 and 40 tables
    (40 keeps the run short; the body has no per-table input, see the test above for 1,000)."""
    bodies = []
    for tables in (1, 40):
        folder = tmp_path_factory.mktemp(f"tables{tables}")
        plan = run_stack(generated_stack(folder, tables), stack_dir=folder)
        (board,) = plan.of_type("aws:cloudwatch/dashboard:Dashboard")
        bodies.append(board.inputs["dashboardBody"])
    assert bodies[0] == bodies[1]
    (throttles,) = [w for w in json.loads(bodies[0])["widgets"]
                    if w["properties"]["title"].startswith("Waypoint tables")]
    assert "TableName=dmsbus-gen'" in throttles["properties"]["metrics"][0][0]["expression"]
