"""Discovery of DMS-created tables: which tables are adopted, and how they are wired."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.discovery import adoptable_tables, discover, is_control_table, logical_name
from tools.mockrun import run_program

GET_TABLES = "aws:dynamodb/getTables:getTables"

#: What `ListTables` would answer in an account shared by dev and prod.
ACCOUNT_TABLES = [
    # declared in Pulumi.dev.yaml (Pulumi owns them already)
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
]


def test_adoptable_tables_keeps_only_new_tables_of_this_environment() -> None:
    # GIVEN the account's tables, two of them declared
    declared = ["dmsbus-dev-customers", "dmsbus-dev-orders"]
    # WHEN filtered for dev
    adopted = adoptable_tables(
        ACCOUNT_TABLES, name_prefix="dmsbus-dev-", declared_physical_names=declared
    )
    # THEN exactly the DMS-created data tables of dev are adopted, sorted
    assert adopted == ["dmsbus-dev-audit_login_events", "dmsbus-dev-invoices"]


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
    from components.streamed_table import AdoptSpec, Scaling, StreamedTable, StreamedTableArgs

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
    from components.streamed_table import StreamedTableArgs

    with pytest.raises(ValueError, match="partition_key"):
        StreamedTableArgs(table_name="dmsbus-dev-x")
