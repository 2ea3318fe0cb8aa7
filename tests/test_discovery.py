"""Discovery of DMS-created tables: which tables are adopted, and how they are wired."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pulumi
import pytest

from dms_event_bus.components.discovery import (
    ADOPT,
    AMBIGUOUS,
    UNADOPTABLE,
    UnadoptableTablesError,
    adoptable_tables,
    classify,
    discover,
    is_control_table,
    logical_name,
)
from tests.fixture_stacks import STACKS_DIR
from tools.mockrun import run_program

GET_TABLES = "aws:dynamodb/getTables:getTables"

#: What `ListTables` would answer in an account shared by dev and prod.
ACCOUNT_TABLES = [
    # declared in tests/stacks/Pulumi.dev.yaml (Pulumi owns them already)
    "dmsbus-dev-customers",
    "dmsbus-dev-orders",
    # another environment and unrelated tables in the same account
    "dmsbus-prod-orders",
    "dmsbus-prod-invoices",
    "dmsbus-devx-invoices",
    "billing-ledger",
    # DMS control tables, with and without the prefix
    "awsdms_apply_exceptions",
    "dmsbus-dev-awsdms_full_load_exceptions",
    "dmsbus-dev-AWSDMS_VALIDATION_FAILURES_V1",
    # created by DMS at runtime for wildcard-selected tables: these are adopted
    "dmsbus-dev-invoices",
    "dmsbus-dev-audit_login_events",
    # the bare prefix is not a table of ours
    "dmsbus-dev-",
    # Pulumi-owned IngestApi tables, and an environment "dev-eu" sharing the prefix
    "dmsbus-dev-ingest-order_requests",
    "dmsbus-dev-eu-orders",
]

#: Tables DMS wrote for dev whose names the bus cannot carry (discovery fails the plan).
UNFIT = {
    "dmsbus-dev-Invoices2": "upper case",
    "dmsbus-dev-" + "x" * 64: "64 characters",
    "dmsbus-dev-2019_archive": "starts with a digit",
    "dmsbus-dev-_staging": "starts with a digit or '_'",
    "dmsbus-dev-gl.lines": "holds '.'",
}


def test_adoptable_tables_keeps_only_new_tables_of_this_environment() -> None:
    # GIVEN the account's tables, two of them declared
    declared = ["dmsbus-dev-customers", "dmsbus-dev-orders"]
    # WHEN filtered for dev
    adopted = adoptable_tables(
        ACCOUNT_TABLES, name_prefix="dmsbus-dev-", declared_physical_names=declared
    )
    # THEN exactly the DMS-created data tables of dev are adopted, sorted
    assert adopted == ["dmsbus-dev-audit_login_events", "dmsbus-dev-invoices"]


def test_classify_says_why_each_table_of_the_environment_is_skipped() -> None:
    verdicts = classify(
        ACCOUNT_TABLES,
        name_prefix="dmsbus-dev-",
        declared_physical_names=["dmsbus-dev-customers", "dmsbus-dev-orders"],
        exclude=["audit_login_events"],
    )
    # names without the prefix are someone else's: not even listed
    assert not [n for n in verdicts if not n.startswith("dmsbus-dev-")]
    assert verdicts["dmsbus-dev-customers"] == "declared in the stack file"
    assert verdicts["dmsbus-dev-awsdms_full_load_exceptions"] == "a DMS control table"
    assert "IngestApi" in verdicts["dmsbus-dev-ingest-order_requests"]
    # a name with '-' may be another environment's ("dev-eu"): said so, not adopted, no error
    assert verdicts["dmsbus-dev-eu-orders"].startswith(AMBIGUOUS)
    assert "another environment" in verdicts["dmsbus-dev-eu-orders"]
    assert "IngestApi" not in verdicts["dmsbus-dev-eu-orders"]
    assert "bare environment prefix" in verdicts["dmsbus-dev-"]
    assert verdicts["dmsbus-dev-audit_login_events"] == "listed in adoption.exclude"
    assert [n for n, v in verdicts.items() if v == ADOPT] == ["dmsbus-dev-invoices"]


@pytest.mark.parametrize("name", sorted(UNFIT))
def test_a_dms_table_the_bus_cannot_carry_is_named_with_what_happened(name: str) -> None:
    # GIVEN a table DMS created for dev whose name is no bus table name
    verdicts = classify([*ACCOUNT_TABLES, name], name_prefix="dmsbus-dev-",
                        declared_physical_names=[])
    # THEN its verdict says it cannot be adopted, why, and how to fix it; not "IngestApi"
    verdict = verdicts[name]
    assert verdict.startswith(UNADOPTABLE), verdict
    assert UNFIT[name] in verdict
    assert "never reach the bus" in verdict and "adoption.exclude" in verdict
    assert "IngestApi" not in verdict
    # AND listing it in adoption.exclude leaves it out knowingly
    rest = name.removeprefix("dmsbus-dev-")
    assert classify([name], name_prefix="dmsbus-dev-", declared_physical_names=[],
                    exclude=[rest])[name] == "listed in adoption.exclude"


def test_discover_fails_the_plan_on_a_table_the_bus_cannot_carry() -> None:
    # GIVEN the account holds a dev table DMS wrote with an upper-case name
    def program() -> None:
        discover("dmsbus-dev-", ["dmsbus-dev-customers", "dmsbus-dev-orders"])

    # WHEN the program runs THEN it stops with one line naming the table and the fix
    with pytest.raises(UnadoptableTablesError) as caught:
        run_program(
            "dev",
            {"aws:region": "eu-west-1"},
            program,
            invoke_answers={
                GET_TABLES: lambda _args: {"names": [*ACCOUNT_TABLES, "dmsbus-dev-Invoices2"],
                                           "id": "eu-west-1"}
            },
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "dmsbus-dev-Invoices2" in message and "adoption.exclude" in message
    assert isinstance(caught.value, pulumi.RunError)  # the CLI prints it without a traceback


def test_adoptable_tables_for_another_environment() -> None:
    adopted = adoptable_tables(
        ACCOUNT_TABLES, name_prefix="dmsbus-prod-", declared_physical_names=["dmsbus-prod-orders"]
    )
    assert adopted == ["dmsbus-prod-invoices"]


def test_adoptable_tables_deduplicates_and_needs_a_prefix() -> None:
    assert adoptable_tables(
        ["dmsbus-dev-a", "dmsbus-dev-a"], name_prefix="dmsbus-dev-", declared_physical_names=[]
    ) == ["dmsbus-dev-a"]
    with pytest.raises(ValueError, match="name_prefix"):
        adoptable_tables(["a"], name_prefix="", declared_physical_names=[])


@pytest.mark.parametrize(
    ("name", "control"),
    [
        ("awsdms_apply_exceptions", True),
        ("dmsbus-dev-awsdms_status", True),
        ("dmsbus-dev-AWSDMS_HISTORY", True),
        ("dmsbus-dev-awsdmsish", False),
        ("dmsbus-dev-orders", False),
    ],
)
def test_control_tables(name: str, control: bool) -> None:
    assert is_control_table(name, "dmsbus-dev-") is control


def test_logical_name_strips_the_prefix() -> None:
    assert logical_name("dmsbus-dev-invoices", "dmsbus-dev-") == "invoices"
    assert logical_name("elsewhere", "dmsbus-dev-") == "elsewhere"


def test_discover_asks_get_tables_under_mocks() -> None:
    # GIVEN the mocks answer get_tables with the account's tables
    found: dict[str, Any] = {}

    def program() -> None:
        found["tables"] = discover("dmsbus-dev-", ["dmsbus-dev-customers", "dmsbus-dev-orders"])
        pulumi.export("adopted", found["tables"])

    # WHEN the program runs
    plan = run_program(
        "dev",
        {"aws:region": "eu-west-1"},
        program,
        invoke_answers={GET_TABLES: lambda _args: {"names": ACCOUNT_TABLES, "id": "eu-west-1"}},
    )
    # THEN it asked get_tables once and adopts exactly the new dev tables
    assert [token for token, _ in plan.invokes].count(GET_TABLES) == 1
    assert plan.exports["adopted"] == ["dmsbus-dev-audit_login_events", "dmsbus-dev-invoices"]


# -- adopted mode of StreamedTable, and what the program declares per adopted table ----------
ADOPTED_TYPE = "pulumi-python:dynamic/dms:AdoptedTable"


@pytest.fixture
def adopted_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mocks answer the AdoptedTable dynamic resource like the provider's `create` does."""
    from tools import mockrun

    original = mockrun.RecordingMocks.new_resource

    def new_resource(self: Any, args: Any) -> tuple[str | None, dict]:
        resource_id, outputs = original(self, args)
        if args.typ == ADOPTED_TYPE and "streamArn" not in outputs:
            name = args.inputs["table_name"]
            arn = f"arn:aws:dynamodb:{self.region}:{mockrun.ACCOUNT}:table/{name}"
            outputs.update(
                table_arn=arn,
                stream_arn=f"{arn}/stream/2026-01-01T00:00:00.000",
                stream_label="2026-01-01T00:00:00.000",
                key_names=["id"],
            )
            resource_id = name
        return resource_id, outputs

    monkeypatch.setattr(mockrun.RecordingMocks, "new_resource", new_resource)


def test_streamed_table_in_adopted_mode_adopts_instead_of_declaring(
    adopted_outputs: None,
) -> None:
    from dms_event_bus.components.streamed_table import (
        AdoptSpec,
        Scaling,
        StreamedTable,
        StreamedTableArgs,
    )

    # GIVEN a provisioned StreamedTable in adopted mode
    def program() -> None:
        table = StreamedTable(
            "invoices",
            StreamedTableArgs(
                table_name="dmsbus-dev-invoices",
                read=Scaling(2, 20, 60),
                write=Scaling(3, 30, 70),
                kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k",
                tags={"team": "data"},
                adopt=AdoptSpec(
                    logical_name="invoices",
                    backfill_function_name="dmsbus-dev-backfill",
                    wait_timeout_seconds=600,
                ),
            ),
        )
        pulumi.export("stream_arn", table.stream_arn)
        pulumi.export("table_arn", table.table_arn)
        pulumi.export("table_name", table.table_name)

    # WHEN the program runs under mocks
    plan = run_program("dev", {"aws:region": "eu-west-1"}, program)
    # THEN the table is adopted (dynamic resource), never declared, and parented
    assert plan.of_type("aws:dynamodb/table:Table") == []
    (adopted,) = plan.of_type(ADOPTED_TYPE)
    component = plan.named("invoices")
    assert adopted.name == "invoices-table" and adopted.parent == component.urn
    inputs = adopted.inputs
    assert inputs["table_name"] == "dmsbus-dev-invoices"
    assert inputs["logical_name"] == "invoices"
    assert inputs["billing_mode"] == "PROVISIONED"
    assert (inputs["read_capacity"], inputs["write_capacity"]) == (2, 3)
    assert inputs["point_in_time_recovery"] is True and inputs["sse_enabled"] is True
    # deletion protection not asked for: left as the table has it (never switched off)
    assert "deletion_protection" not in inputs
    assert inputs["kms_key_arn"] == "arn:aws:kms:eu-west-1:123456789012:key/k"
    assert inputs["backfill_function_name"] == "dmsbus-dev-backfill"
    assert inputs["wait_timeout_seconds"] == 600
    assert inputs["region"] == "eu-west-1"
    assert inputs["provider_version"]
    # AND the same outputs as a declared table
    assert plan.exports["table_name"] == "dmsbus-dev-invoices"
    assert plan.exports["stream_arn"].startswith(plan.exports["table_arn"] + "/stream/")
    # AND autoscaling and alarms are wired to the adopted table, like a declared one
    targets = plan.of_type("aws:appautoscaling/target:Target")
    assert sorted((t.inputs["scalableDimension"], t.inputs["minCapacity"],
                   t.inputs["maxCapacity"]) for t in targets) == [
        ("dynamodb:table:ReadCapacityUnits", 2, 20),
        ("dynamodb:table:WriteCapacityUnits", 3, 30),
    ]
    assert {t.inputs["resourceId"] for t in targets} == {"table/dmsbus-dev-invoices"}
    assert all(adopted.urn in t.dependencies for t in targets)
    policies = plan.of_type("aws:appautoscaling/policy:Policy")
    assert len(policies) == 2
    alarms = plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert [a.inputs["dimensions"] for a in alarms] == [{"TableName": "dmsbus-dev-invoices"}]


def test_declared_mode_still_needs_a_partition_key() -> None:
    from dms_event_bus.components.streamed_table import StreamedTableArgs

    with pytest.raises(ValueError, match="partition_key"):
        StreamedTableArgs(table_name="dmsbus-dev-x")


# -- the program: discovery -> adopted StreamedTables -> bus mappings, alarms, autoscaling ----
#: The project whose __main__.py runs (a module attribute, so a patched copy can be tried).
PROGRAM_ROOT = None

#: What ListTables answers in the prod account (shared with staging, and with other teams).
PROD_ACCOUNT_TABLES = [
    # declared in tests/stacks/Pulumi.prod.yaml
    "dmsbus-prod-customers", "dmsbus-prod-orders", "dmsbus-prod-order_lines",
    "dmsbus-prod-products", "dmsbus-prod-invoices",
    # foreign: other environments, other teams, an environment whose name starts like ours
    "dmsbus-staging-audit_login_events", "dmsbus-dev-orders", "billing-ledger",
    "dmsbus-prod-eu-orders",
    # DMS control tables
    "awsdms_apply_exceptions", "dmsbus-prod-awsdms_full_load_exceptions",
    # owned by the IngestApi (Pulumi), not by DMS
    "dmsbus-prod-ingest-order_requests",
    # created by DMS at runtime: adopted, except the one listed in adoption.exclude
    "dmsbus-prod-audit_login_events", "dmsbus-prod-legacy_notes", "dmsbus-prod-audit_tmp",
]
ADOPTED = {"audit_login_events": "dmsbus-prod-audit_login_events",
           "legacy_notes": "dmsbus-prod-legacy_notes"}
ADOPTION_CONFIG = {
    "capacity": {"mode": "provisioned", "read": {"min": 3, "max": 30, "target_utilization": 60},
                 "write": {"min": 4, "max": 40, "target_utilization": 65}},
    "wait_timeout_seconds": 900,
    "backfill_segments": 8,
    "backfill_memory_mb": 1024,
    "replace_stream": ["legacy_notes"],
    "exclude": ["audit_tmp"],
}


def run_prod_with_adoption(adoption: dict[str, Any] | None = None) -> Any:
    from tools.mockrun import ROOT, run_stack

    root = PROGRAM_ROOT or ROOT
    return run_stack(
        "prod",
        root=root,
        stack_dir=STACKS_DIR,
        overrides={"dms-event-bus:adoption": adoption or ADOPTION_CONFIG},
        invoke_answers={
            GET_TABLES: lambda _args: {"names": PROD_ACCOUNT_TABLES, "id": "eu-west-1"}
        },
    )


def test_program_adopts_exactly_the_new_tables_and_wires_them_like_declared_ones(
    adopted_outputs: None,
) -> None:
    # GIVEN get_tables answering declared, foreign-prefix, control, IngestApi, excluded and new
    # tables, and adoption configured with provisioned capacity
    # WHEN the prod program runs under mocks
    plan = run_prod_with_adoption()
    # THEN it listed the tables once and adopted exactly the two new DMS tables
    assert [token for token, _ in plan.invokes].count(GET_TABLES) == 1
    adopted = {r.inputs["table_name"]: r for r in plan.of_type(ADOPTED_TYPE)}
    assert sorted(adopted) == sorted(ADOPTED.values())
    assert plan.exports["adopted_tables"] == ADOPTED
    # AND nothing declared was adopted, nothing adopted was declared
    all_declared = {r.inputs["name"] for r in plan.of_type("aws:dynamodb/table:Table")}
    assert not all_declared & set(adopted)
    declared = {f"dmsbus-prod-{t}" for t in
                ("customers", "orders", "order_lines", "products", "invoices")}
    assert declared <= all_declared

    # AND each adoption carries the adoption settings and the KMS key, and starts its
    # backfill only once the backfill function and its invoke settings exist
    backfill_function = plan.named("backfill-function")
    invoke_settings = [plan.named("backfill-async"), plan.named("backfill-recursion")]
    key = "arn:aws:kms:eu-west-1:210987654321:key/1f2e3d4c-5b6a-4789-9abc-def012345678"
    for logical, physical in ADOPTED.items():
        res = adopted[physical]
        inputs = res.inputs
        assert inputs["logical_name"] == logical
        assert inputs["billing_mode"] == "PROVISIONED"
        assert (inputs["read_capacity"], inputs["write_capacity"]) == (3, 4)
        assert inputs["kms_key_arn"] == key and inputs["point_in_time_recovery"] is True
        assert inputs["wait_timeout_seconds"] == 900 and inputs["backfill_segments"] == 8
        assert inputs["replace_stream"] is (logical == "legacy_notes")
        assert inputs["backfill_function_name"] == "dmsbus-prod-backfill"
        assert inputs["tags"]["environment"] == "prod"
        for needed in [backfill_function, *invoke_settings]:
            assert needed.urn in res.dependencies, (physical, needed.name)

    # AND each adopted table gets its bus mapping, like the declared ones, from its stream
    mappings = plan.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    fanin_mappings = [m for m in mappings if m.inputs["functionName"] == "dmsbus-prod-fanin"]
    by_source = {m.inputs["eventSourceArn"]: m for m in fanin_mappings}
    fed = {arn.split("/")[1] for arn in by_source}
    assert fed == declared | set(adopted)  # the waypoint tables, declared and adopted alike
    assert len(fanin_mappings) == len(declared) + len(ADOPTED)
    declared_mapping = next(m for m in fanin_mappings if "table/dmsbus-prod-orders/" in
                            m.inputs["eventSourceArn"])
    for physical, res in adopted.items():
        stream = res.outputs["stream_arn"]
        mapping = by_source[stream]
        assert res.urn in mapping.dependencies
        same = ("startingPosition", "bisectBatchOnFunctionError", "maximumRetryAttempts",
                "functionResponseTypes", "destinationConfig", "batchSize",
                "parallelizationFactor", "maximumRecordAgeInSeconds")
        assert {k: mapping.inputs.get(k) for k in same} == {
            k: declared_mapping.inputs.get(k) for k in same}, physical
    # ... and the fan-in knows their logical names
    env = plan.named("bus-fanin").inputs["environment"]["variables"]
    assert env["TABLE_PREFIX"] == "dmsbus-prod-" and "TABLES" not in env
    for logical, physical in ADOPTED.items():
        assert physical == env["TABLE_PREFIX"] + logical

    # AND alarms and autoscaling like a declared provisioned table (orders)
    def child_kinds(component_name: str) -> list[str]:
        component = plan.named(component_name)
        return sorted(r.type for r in plan.children_of(component))

    orders_kinds = child_kinds("orders")
    for logical, physical in ADOPTED.items():
        kinds = child_kinds(f"adopted-{logical}")
        assert kinds == sorted(
            ADOPTED_TYPE if k == "aws:dynamodb/table:Table" else k for k in orders_kinds
        )
        component = plan.named(f"adopted-{logical}")
        children = plan.children_of(component)
        targets = [r for r in children if r.type == "aws:appautoscaling/target:Target"]
        assert sorted((t.inputs["scalableDimension"], t.inputs["minCapacity"],
                       t.inputs["maxCapacity"], t.inputs["resourceId"]) for t in targets) == [
            ("dynamodb:table:ReadCapacityUnits", 3, 30, f"table/{physical}"),
            ("dynamodb:table:WriteCapacityUnits", 4, 40, f"table/{physical}"),
        ]
        policies = [r for r in children if r.type == "aws:appautoscaling/policy:Policy"]
        targets_values = sorted(
            p.inputs["targetTrackingScalingPolicyConfiguration"]["targetValue"]
            for p in policies)
        assert targets_values == [60.0, 65.0]
        (alarm,) = [r for r in children if r.type == "aws:cloudwatch/metricAlarm:MetricAlarm"]
        assert alarm.inputs["dimensions"] == {"TableName": physical}
        assert alarm.inputs["alarmActions"] == [
            "arn:aws:sns:eu-west-1:210987654321:platform-oncall"]

    # AND one backfill function may scan this environment's tables (by its prefix, so the
    # policy does not grow with them, never another environment's) and put on the bus
    policy = json.loads(plan.named("backfill-policy").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    table_arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/"
    assert statements["ScanTheAdoptedTables"]["Resource"] == [f"{table_arn}dmsbus-prod-*"]
    assert statements["NotOtherEnvironmentsTables"]["Effect"] == "Deny"
    assert statements["NotOtherEnvironmentsTables"]["Resource"] == [f"{table_arn}dmsbus-prod-*-*"]
    for physical in ADOPTED.values():  # each adopted table is in the allowed, not the denied
        assert fnmatch.fnmatchcase(table_arn + physical, f"{table_arn}dmsbus-prod-*")
        assert not fnmatch.fnmatchcase(table_arn + physical, f"{table_arn}dmsbus-prod-*-*")
    assert backfill_function.inputs["memorySize"] == 1024
    env = backfill_function.inputs["environment"]["variables"]
    assert env["BUS_STREAM_NAME"] == plan.exports["bus_stream_name"]
    assert env["OVERFLOW_BUCKET"] == plan.exports["overflow_bucket"]


def test_program_with_adoption_disabled_lists_nothing_and_adopts_nothing(
    adopted_outputs: None,
) -> None:
    plan = run_prod_with_adoption({"enabled": False})
    assert GET_TABLES not in [token for token, _ in plan.invokes]
    assert plan.of_type(ADOPTED_TYPE) == []
    assert plan.of_type("dms-event-bus:index:Backfill") == []
