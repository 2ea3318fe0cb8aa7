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
