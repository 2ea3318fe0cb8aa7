"""Discovery: the stack's `tables` from the source catalog (tools/discover.py).

PostgreSQL and MariaDB catalogs are read from the real local servers (tests/servers.py):
schemas with composite keys, keys of three and four columns, tables without a key, bytea /
blob / text columns and odd names. SQL Server and Oracle cannot run here: their catalogs are
recorded answers (rows shaped like sys.tables / sys.columns / sys.types / sys.indexes /
sys.index_columns and ALL_TABLES / ALL_TAB_COLUMNS / ALL_CONSTRAINTS / ALL_CONS_COLUMNS)
given through a fake DB-API connection (tests/fake_dbapi.py) to the SQL the command really
sends. The SQL Server stack of 300 discovered tables and the Oracle stack are then planned
under Pulumi mocks and their table mappings checked as DMS would (tests/test_dms_mappings.py,
tests/dms_simulator.py): every selected table exactly one path and a key DMS accepts.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dms_event_bus.settings import load_settings
from dms_event_bus.settings.stackfile import (
    StackFileError,
    as_engine_config,
    load_stack_text,
    project_config,
)
from tests.dms_simulator import OBJECT_MAPPING
from tests.fake_dbapi import FakeConnection
from tests.servers import DbServer, mariadb, postgres  # noqa: F401
from tests.test_dms_mappings import paths_and_problems, planned_mappings
from tools import discover, mockrun, sourcedb

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:erp-source-AbC123"
CERT_ARN = "arn:aws:dms:eu-west-1:123456789012:cert:ORACLECA"

DMS_BASE = """\
    capacity: {mode: serverless, min_capacity_units: 1, max_capacity_units: 8}
    network:
      vpc_id: vpc-0123456789abcdef0
      subnet_ids: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]
      source_cidrs: [10.20.0.0/24]
"""


def stack_text(source: str, rest: str = "", tables: str = "") -> str:
    """A stack file with comments, tags and a dms section (`source`, `rest`: YAML lines
    indented under dms)."""
    return (
        "# ERP stack: the tables below are declared by discovery\n"
        "config:\n"
        "  aws:region: eu-west-1\n"
        "  dms-event-bus:tags:\n"
        "    team: erp  # who pays\n" + tables + "  dms-event-bus:dms:\n"
        "    # DMS Serverless\n" + DMS_BASE + source + rest + "  dms-event-bus:alarms:\n"
        "    iterator_age_ms: 600000  # ten minutes\n"
    )


def load(path: Path, stack: str) -> Any:
    raw = load_stack_text(path.read_bytes(), path.name)
    engine_config, _ = as_engine_config(raw)
    return load_settings(stack, project_config(engine_config))


def run(capsys: Any, argv: list[str], conn: Any = None) -> tuple[int, str, str]:
    connect = None if conn is None else (lambda _args: conn)
    try:
        code = discover.main(argv, connect_source=connect)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# -- SQL Server: recorded catalog ---------------------------------------------------------

#: (schema, table, column, type, max_length, precision, scale) as sys.columns / sys.types give
SqlColumn = tuple[str, str, str, str, int, int, int]


def sqlserver_erp(count: int = 300) -> tuple[list[SqlColumn], list[tuple[str, str, str]]]:
    """A SQL Server ERP schema `dbo` of `count` tables the stack can carry (keys of one to
    four columns), plus tables it cannot: no key, a name with a space, a varbinary key, and
    `tmp` tables the wildcard excludes."""
    columns: list[SqlColumn] = []
    keys: list[tuple[str, str, str]] = []

    def table(name: str, cols: list[tuple[str, str, int, int, int]], pk: list[str]) -> None:
        columns.extend(("dbo", name, *c) for c in cols)
        keys.extend(("dbo", name, k) for k in pk)

    table(
        "OrderLines",
        [
            ("OrderId", "int", 4, 10, 0),
            ("LineNo", "smallint", 2, 5, 0),
            ("Qty", "decimal", 9, 18, 4),
            ("Note", "nvarchar", -1, 0, 0),
        ],
        ["OrderId", "LineNo"],
    )
    table(
        "PriceList",
        [
            ("Sku", "nvarchar", 80, 0, 0),
            ("ValidFrom", "date", 3, 10, 0),
            ("Price", "money", 8, 19, 4),
        ],
        ["Sku", "ValidFrom"],
    )
    table(
        "StockLevels",
        [
            ("Company", "nvarchar", 20, 0, 0),
            ("Site", "int", 4, 10, 0),
            ("Sku", "varchar", 40, 0, 0),
            ("Qty", "float", 8, 53, 0),
        ],
        ["Company", "Site", "Sku"],
    )
    table(
        "JournalLines",
        [
            ("CompanyCode", "char", 4, 0, 0),
            ("FiscalYear", "smallint", 2, 5, 0),
            ("DocNo", "bigint", 8, 19, 0),
            ("LineNo", "int", 4, 10, 0),
            ("Memo", "xml", -1, 0, 0),
        ],
        ["CompanyCode", "FiscalYear", "DocNo", "LineNo"],
    )
    table(
        "Documents",
        [
            ("DocId", "uniqueidentifier", 16, 0, 0),
            ("Body", "varbinary", -1, 0, 0),
            ("Thumb", "varbinary", 8000, 0, 0),
            ("Version", "timestamp", 8, 0, 0),
        ],
        ["DocId"],
    )
    table("EventLog", [("At", "datetime2", 8, 27, 7), ("Text", "nvarchar", 4000, 0, 0)], [])
    table("Order Details", [("Id", "int", 4, 10, 0)], ["Id"])
    table("Blobs", [("Hash", "binary", 32, 0, 0), ("Size", "int", 4, 10, 0)], ["Hash"])
    table("tmpImport", [("Id", "int", 4, 10, 0), ("Row", "int", 4, 10, 0)], ["Id", "Row"])
    for i in range(count - 5):
        table(
            f"Erp_T{i:03d}",
            [
                ("Id", "int", 4, 10, 0),
                ("Name", "nvarchar", 200, 0, 0),
                ("Amount", "money", 8, 19, 4),
                ("Active", "bit", 1, 1, 0),
                ("Created", "datetime2", 8, 27, 7),
            ],
            ["Id"],
        )
    return columns, keys


def sqlserver_connection(
    columns: list[SqlColumn], keys: list[tuple[str, str, str]]
) -> FakeConnection:
    """Answers the two catalog queries, only for the schemas asked for (SQL Server's
    default collation compares names case-insensitively)."""

    def only(rows: list[Any]) -> Any:
        def answer(_sql: str, params: tuple[Any, ...]) -> list[Any]:
            wanted = {str(p).lower() for p in params}
            return [r for r in rows if r[0].lower() in wanted]

        return answer

    return FakeConnection(
        [
            (
                r"FROM sys\.tables t JOIN sys\.schemas s .* JOIN sys\.columns c .* "
                r"JOIN sys\.types ty ON ty\.user_type_id = c\.user_type_id",
                only(columns),
            ),
            (
                r"FROM sys\.indexes i .* i\.is_primary_key = 1 .* ORDER BY .*ic\.key_ordinal",
                only(keys),
            ),
            (
                # sys.indexes: unique indexes and constraints besides the primary key
                r"FROM sys\.indexes i .* WHERE i\.is_unique = 1 AND i\.is_primary_key = 0 .*"
                r"ORDER BY s\.name, t\.name, i\.name, ic\.key_ordinal",
                only([("dbo", "EventLog", "UX_EventLog_At", "At", False)]),
            ),
        ]
    )


SQLSERVER_SOURCE = f"""\
    source:
      engine: sqlserver
      server: erp.db.internal
      database: erp
      secret_arn: {SECRET_ARN}
    wildcards:
      - {{schema: dbo, table_pattern: "%", exclude: ["tmp%"]}}
    task: {{start: true}}
"""
SQLSERVER_DECLARED = """\
  dms-event-bus:tables:
    # declared by hand before discovery
    orderlines:
      source: {schema: dbo, table: OrderLines}
      partition_key: {name: OrderId, type: S}  # the wrong type: discovery corrects it
      sort_key: {name: LineNo, type: N}
      deletion_protection: true
    pricelist:
      source: {schema: dbo, table: PriceList}
      partition_key: {name: Sku, type: S}  # as the source key: kept as written
      sort_key: {name: ValidFrom, type: S}
    gonetable:
      source: {schema: dbo, table: GoneTable}
      partition_key: {name: Id, type: N}
"""


def test_a_sqlserver_catalog_of_300_tables_is_declared_and_plans_clean(
    tmp_path: Path, capsys: Any
) -> None:
    # GIVEN a SQL Server stack selecting dbo.% (three tables declared by hand) and a
    # recorded catalog of 300 tables it can carry and four it cannot
    columns, keys = sqlserver_erp(300)
    path = tmp_path / "Pulumi.erp.yaml"
    original = stack_text(SQLSERVER_SOURCE, tables=SQLSERVER_DECLARED)
    path.write_text(original)
    conn = sqlserver_connection(columns, keys)
    # WHEN discovery writes the stack
    code, out, err = run(
        capsys,
        [
            "--stack",
            "erp",
            "--stack-dir",
            str(tmp_path),
            "--write",
            "--json",
            "--password-env",
            "NO_SUCH_VAR",
        ],
        conn,
    )
    assert err == ""
    report = json.loads(out)
    # THEN it read the catalog with the documented catalog columns, for the stack's schema
    (sent_columns,) = conn.sent(r"c\.max_length")
    assert sent_columns[1] == ("dbo",)
    assert "c.max_length" in sent_columns[0] and "sys.types" in sent_columns[0]
    (sent_keys,) = conn.sent(r"i\.is_primary_key = 1")
    assert "ic.key_ordinal" in sent_keys[0] and "sys.index_columns" in sent_keys[0]
    # (unique keys are read because some tables have no primary key)
    (sent_unique,) = conn.sent(r"i\.is_unique = 1")
    assert sent_unique[1] == ("dbo",)
    # AND exits 1: some tables cannot be carried, each named with its fix
    assert code == 1 and report["written"] is True
    blocked = {(f["table"], f["kind"]) for f in report["findings"] if f["severity"] == "blocked"}
    assert blocked == {
        ("dbo.EventLog", "no_primary_key"),
        ("dbo.Order Details", "table_name"),
        ("dbo.Blobs", "binary_key"),
    }
    fixes = {f["table"]: f["fix"] for f in report["findings"] if f["severity"] == "blocked"}
    assert "dms.wildcards[0].exclude" in fixes["dbo.EventLog"]
    assert (
        "make its unique key UX_EventLog_At (At) the primary key: ALTER TABLE [dbo].[EventLog] "
        "ADD PRIMARY KEY ([At]), then run discovery" in fixes["dbo.EventLog"]
    )
    # AND binary columns are reported lost, LOBs with their size, never silently
    lost = {(f["table"], f["column"]) for f in report["findings"] if f["severity"] == "lost"}
    assert lost == {
        ("dbo.Documents", "Body"),
        ("dbo.Documents", "Thumb"),
        ("dbo.Documents", "Version"),
    }
    lobs = {
        (f["table"], f["column"]): f["detail"]
        for f in report["findings"]
        if f["kind"] == "lob_column"
    }
    assert set(lobs) == {("dbo.OrderLines", "Note"), ("dbo.JournalLines", "Memo")}
    assert "nvarchar(max)" in lobs[("dbo.OrderLines", "Note")]
    assert "full LOB mode" in lobs[("dbo.OrderLines", "Note")]
    # AND the stack file declares every carried table, the hand-declared ones kept
    settings = load(path, "erp")
    assert len(settings.tables) == 300 + 1  # GoneTable kept though the source lacks it
    assert "gonetable" in settings.tables
    changes = {c["logical"]: c for c in report["changes"]}
    assert changes["gonetable"]["action"] == "kept"
    assert changes["orderlines"]["action"] == "updated"
    assert "OrderId S" in changes["orderlines"]["detail"]
    assert "OrderId N" in changes["orderlines"]["detail"]
    assert changes["pricelist"]["action"] == "unchanged"
    lines = settings.tables["orderlines"]
    assert (lines.partition_key.type, lines.deletion_protection) == ("N", True)
    # keys: one column, two columns, three and four columns concatenated
    assert settings.tables["erp_t007"].key_names == ["Id"]
    assert settings.tables["erp_t007"].partition_key.type == "N"
    stock = settings.tables["stocklevels"]
    assert (stock.partition_key.name, stock.partition_key.type, stock.sort_key) == (
        "stocklevels_key",
        "S",
        None,
    )
    assert settings.dms is not None
    assert settings.dms.tables["stocklevels"].primary_key == ["Company", "Site", "Sku"]
    assert settings.dms.tables["journallines"].primary_key == [
        "CompanyCode",
        "FiscalYear",
        "DocNo",
        "LineNo",
    ]
    # AND the wildcard names the composite-key tables it also selects (declared now: the
    # plan fails if a declaration is removed)
    assert settings.dms.wildcards[0].composite_key_tables == [
        "JournalLines",
        "OrderLines",
        "PriceList",
        "StockLevels",
    ]
    assert settings.dms.wildcards[0].exclude == ["tmp%"]
    # capacity: on demand, never DMS's 200/200
    assert all(t.capacity.mode == "on_demand" for t in settings.tables.values())
    # AND the rest of the file is byte for byte what it was: comments, other keys
    text = path.read_text()
    for line in original.splitlines():
        if "OrderId, type: S" in line or "table_pattern" in line:
            continue
        assert line in text.splitlines(), line
    # WHEN the stack is planned under mocks
    plan = mockrun.run_stack("erp", stack_dir=tmp_path)
    document = planned_mappings(plan)
    carried = {
        (s, t): [k for (s2, t2, k) in keys if (s2, t2) == (s, t)]
        for s, t in {(s, t) for s, t, *_ in columns}
    }
    paths, problems = paths_and_problems(document, carried)
    # THEN every table the wildcard selects has exactly one path, with a key DMS accepts,
    # except exactly the ones discovery named as not carried
    named = {tuple(b[0].split(".", 1)) for b in blocked}
    assert {p.split(":")[0] for p in problems} == {
        f"{s}.{t}" for s, t in named if len(carried[(s, t)]) != 1
    }
    object_mapped = [s for s, p in paths.items() if p is not None and p.kind == OBJECT_MAPPING]
    assert len(object_mapped) == 300
    assert paths[("dbo", "tmpImport")] is None
    journal = paths[("dbo", "JournalLines")]
    assert journal is not None and journal.key_template == (
        "${CompanyCode}|${FiscalYear}|${DocNo}|${LineNo}"
    )
    # AND a second run changes nothing
    code, out, _ = run(
        capsys,
        [
            "--stack",
            "erp",
            "--stack-dir",
            str(tmp_path),
            "--write",
            "--json",
            "--password-env",
            "X",
        ],
        sqlserver_connection(columns, keys),
    )
    again = json.loads(out)
    assert again["diff"] is None and again["tables"] == {} and again["written"] is False


def test_following_the_fixes_leaves_nothing_uncarried(tmp_path: Path, capsys: Any) -> None:
    # GIVEN the fixes discovery names: the keyless, odd-named and binary-keyed tables
    # excluded from the wildcard
    columns, keys = sqlserver_erp(12)
    source = SQLSERVER_SOURCE.replace('["tmp%"]', '["tmp%", EventLog, "Order%Details", Blobs]')
    (tmp_path / "Pulumi.erp.yaml").write_text(stack_text(source))
    code, out, _ = run(
        capsys,
        [
            "--stack",
            "erp",
            "--stack-dir",
            str(tmp_path),
            "--write",
            "--json",
            "--password-env",
            "X",
        ],
        sqlserver_connection(columns, keys),
    )
    report = json.loads(out)
    # THEN only lost binary columns remain (exit 1), no table is blocked
    assert code == 1
    assert {f["severity"] for f in report["findings"]} == {"lost", "limit", "note"}
    # AND the plan gives every selected table one path and a key
    carried = {
        (s, t): [k for (s2, t2, k) in keys if (s2, t2) == (s, t)]
        for s, t in {(s, t) for s, t, *_ in columns}
    }
    paths, problems = paths_and_problems(
        planned_mappings(mockrun.run_stack("erp", stack_dir=tmp_path)), carried
    )
    assert problems == []
    assert sum(1 for p in paths.values() if p is not None) == 12


def test_sqlserver_lobs_are_measured_with_the_real_sql(tmp_path: Path, capsys: Any) -> None:
    columns, keys = sqlserver_erp(6)
    (tmp_path / "Pulumi.erp.yaml").write_text(stack_text(SQLSERVER_SOURCE))
    conn = sqlserver_connection(columns, keys)
    conn.rules[:0] = [
        (
            re.compile(re.escape("SELECT MAX(DATALENGTH([Note])) FROM [dbo].[OrderLines]")),
            [(3000,)],
        ),
        (
            re.compile(re.escape("SELECT MAX(DATALENGTH([Memo])) FROM [dbo].[JournalLines]")),
            [(None,)],
        ),  # an empty table
    ]
    code, out, _ = run(
        capsys,
        [
            "--stack",
            "erp",
            "--stack-dir",
            str(tmp_path),
            "--json",
            "--password-env",
            "X",
            "--measure-lobs",
        ],
        conn,
    )
    found = {(f["kind"], f["column"]): f for f in json.loads(out)["findings"]}
    assert "largest value now 3000 bytes (3 KB)" in found[("lob_column", "Note")]["detail"]
    assert "largest value now 0 bytes" in found[("lob_column", "Memo")]["detail"]
    assert "task.lob_max_size_kb: 4 " in found[("lob_size", "Note")]["fix"]
    assert len(conn.sent("DATALENGTH")) == 2


def test_printing_without_write_leaves_the_file_alone(tmp_path: Path, capsys: Any) -> None:
    columns, keys = sqlserver_erp(6)
    path = tmp_path / "Pulumi.erp.yaml"
    path.write_text(stack_text(SQLSERVER_SOURCE))
    before = path.read_bytes()
    code, out, _ = run(
        capsys,
        ["--stack", "erp", "--stack-dir", str(tmp_path), "--password-env", "X"],
        sqlserver_connection(columns, keys),
    )
    assert path.read_bytes() == before
    assert code == 1
    assert "dms-event-bus:tables:  # new or changed entries" in out
    assert "    source: {schema: dbo, table: StockLevels}" in out
    assert "    partition_key: {name: stocklevels_key, type: S}" in out
    assert "[blocked] dbo.EventLog: no primary key" in out
    assert re.search(r"would write Pulumi\.erp\.yaml: \+\d+ -\d+ lines", out)


# -- Oracle: recorded catalog -------------------------------------------------------------

OracleColumn = tuple[str, str, str, str, int, int | None, int | None]

ORACLE_SOURCE = f"""\
    source:
      engine: oracle
      server: erp.db.internal
      database: ERPPDB.EU.EXAMPLE.COM
      ssl_mode: verify-ca
      certificate_arn: {CERT_ARN}
      secret_arn: {SECRET_ARN}
    wildcards:
      - {{schema: FIN, table_pattern: "%"}}
"""


def oracle_fin(count: int = 40) -> tuple[list[OracleColumn], list[tuple[str, str, str]]]:
    """An Oracle 19c schema FIN: upper-case names, keys of one to three columns, a CLOB, a
    RAW key, a table created quoted in lower case."""
    columns: list[OracleColumn] = []
    keys: list[tuple[str, str, str]] = []

    def table(
        name: str, cols: list[tuple[str, str, int, int | None, int | None]], pk: list[str]
    ) -> None:
        columns.extend(("FIN", name, *c) for c in cols)
        keys.extend(("FIN", name, k) for k in pk)

    table(
        "GL_JE_LINES",
        [
            ("JE_HEADER_ID", "NUMBER", 22, 15, 0),
            ("JE_LINE_NUM", "NUMBER", 22, None, None),
            ("DESCRIPTION", "VARCHAR2", 240, None, None),
            ("ATTACHMENT", "CLOB", 4000, None, None),
        ],
        ["JE_HEADER_ID", "JE_LINE_NUM"],
    )
    table(
        "GL_BALANCES",
        [
            ("LEDGER_ID", "NUMBER", 22, 15, 0),
            ("CODE_COMBINATION_ID", "NUMBER", 22, 15, 0),
            ("PERIOD_NAME", "VARCHAR2", 15, None, None),
            ("PERIOD_NET_DR", "NUMBER", 22, None, None),
        ],
        ["LEDGER_ID", "CODE_COMBINATION_ID", "PERIOD_NAME"],
    )
    table(
        "AP_CHECKS",
        [("CHECK_ID", "RAW", 16, None, None), ("AMOUNT", "NUMBER", 22, None, None)],
        ["CHECK_ID"],
    )
    table("gl_import", [("ID", "NUMBER", 22, 10, 0)], ["ID"])
    table(
        "AUDIT_TRAIL",
        [("AT", "TIMESTAMP(6) WITH TIME ZONE", 13, None, 6), ("DATA", "BLOB", 4000, None, None)],
        [],
    )
    for i in range(count - 5):
        table(
            f"FIN_T{i:02d}",
            [
                ("ID", "NUMBER", 22, 10, 0),
                ("NAME", "NVARCHAR2", 200, None, None),
                ("CREATED", "DATE", 7, None, None),
            ],
            ["ID"],
        )
    return columns, keys


def oracle_connection(
    columns: list[OracleColumn], keys: list[tuple[str, str, str]]
) -> FakeConnection:
    def only(rows: list[Any]) -> Any:
        def answer(_sql: str, params: tuple[Any, ...]) -> list[Any]:
            return [r for r in rows if r[0] in params]  # Oracle compares names exactly

        return answer

    return FakeConnection(
        [
            (
                r"FROM all_tables t JOIN all_tab_columns c .* WHERE t\.owner IN \(:1\)",
                only(columns),
            ),
            (
                r"FROM all_constraints k JOIN all_cons_columns cc .* k\.constraint_type = 'P' .* "
                r"ORDER BY k\.owner, k\.table_name, cc\.position",
                only(keys),
            ),
            (
                r"FROM all_constraints k JOIN all_cons_columns cc .* JOIN all_tab_columns tc .* "
                r"k\.constraint_type = 'U'",
                only([("FIN", "AUDIT_TRAIL", "AUDIT_UK", "AT", "Y")]),
            ),
        ]
    )


def test_an_oracle_catalog_is_declared_in_upper_case_and_plans_clean(
    tmp_path: Path, capsys: Any
) -> None:
    # GIVEN an Oracle stack selecting FIN.% and the recorded catalog of 40 tables
    columns, keys = oracle_fin(40)
    path = tmp_path / "Pulumi.ora.yaml"
    path.write_text(stack_text(ORACLE_SOURCE))
    conn = oracle_connection(columns, keys)
    # WHEN discovery writes the stack
    code, out, _ = run(
        capsys,
        [
            "--stack",
            "ora",
            "--stack-dir",
            str(tmp_path),
            "--write",
            "--json",
            "--password-env",
            "X",
        ],
        conn,
    )
    report = json.loads(out)
    assert conn.sent(r"all_tab_columns")[0][1] == ("FIN",)
    # THEN names stay as Oracle stores them, logical names are lower case
    settings = load(path, "ora")
    lines = settings.tables["gl_je_lines"]
    assert lines.source is not None
    assert (lines.source.schema_name, lines.source.table) == ("FIN", "GL_JE_LINES")
    assert [(k.name, k.type) for k in (lines.partition_key, lines.sort_key) if k] == [
        ("JE_HEADER_ID", "N"),
        ("JE_LINE_NUM", "N"),
    ]
    balances = settings.tables["gl_balances"]
    assert (balances.partition_key.name, balances.partition_key.type) == ("gl_balances_key", "S")
    # AND what cannot be carried is named: the RAW key, the keyless table (with ALL COLUMNS
    # logging in the fix), the quoted lower-case table, the BLOB; the CLOB with its limit
    blocked = {
        (f["table"], f["kind"]): f["fix"] for f in report["findings"] if f["severity"] == "blocked"
    }
    assert set(blocked) == {
        ("FIN.AP_CHECKS", "binary_key"),
        ("FIN.AUDIT_TRAIL", "no_primary_key"),
        ("FIN.gl_import", "oracle_case"),
    }
    audit_fix = blocked[("FIN.AUDIT_TRAIL", "no_primary_key")]
    assert "SUPPLEMENTAL LOG DATA (ALL) COLUMNS" in audit_fix
    assert 'ADD PRIMARY KEY ("AT") (first make AT NOT NULL)' in audit_fix
    (clob,) = [f for f in report["findings"] if f["kind"] == "lob_column"]
    assert clob["column"] == "ATTACHMENT" and "limited LOB mode" in clob["detail"]
    assert "DBMS_LOB.GETLENGTH" in clob["fix"]
    assert code == 1
    # WHEN planned THEN every carried table has one object mapping with its key
    carried = {
        (s, t): [k for (s2, t2, k) in keys if (s2, t2) == (s, t)]
        for s, t in {(s, t) for s, t, *_ in columns}
    }
    paths, problems = paths_and_problems(
        planned_mappings(mockrun.run_stack("ora", stack_dir=tmp_path)), carried
    )
    assert {p.split(":")[0] for p in problems} == {"FIN.AUDIT_TRAIL"}  # keyless: as reported
    assert sum(1 for p in paths.values() if p and p.kind == OBJECT_MAPPING) == 37
    balance_path = paths[("FIN", "GL_BALANCES")]
    assert balance_path is not None and balance_path.key_template == (
        "${LEDGER_ID}|${CODE_COMBINATION_ID}|${PERIOD_NAME}"
    )


# -- the key and type mapping ---------------------------------------------------------------

#: per engine: catalog types with the key attribute DMS's DynamoDB target writes for them
#: (None: not carried, BOOL: carried but no key type)
KEY_TYPES: dict[str, list[tuple[str, str | None]]] = {
    "sqlserver": [
        ("int", "N"),
        ("bigint", "N"),
        ("decimal", "N"),
        ("money", "N"),
        ("nvarchar", "S"),
        ("varchar", "S"),
        ("char", "S"),
        ("date", "S"),
        ("datetime2", "S"),
        ("uniqueidentifier", "S"),
        ("binary", None),
        ("varbinary", None),
        ("bit", "BOOL"),
    ],
    "oracle": [
        ("NUMBER", "N"),
        ("FLOAT", "N"),
        ("VARCHAR2", "S"),
        ("CHAR", "S"),
        ("DATE", "S"),
        ("TIMESTAMP(6)", "S"),
        ("RAW", None),
    ],
    "postgres": [
        ("integer", "N"),
        ("bigint", "N"),
        ("numeric", "N"),
        ("text", "S"),
        ("character varying", "S"),
        ("uuid", "S"),
        ("date", "S"),
        ("timestamp without time zone", "S"),
        ("boolean", "S"),
        ("bytea", None),
    ],
    "mysql": [
        ("int", "N"),
        ("bigint", "N"),
        ("decimal", "N"),
        ("varchar", "S"),
        ("char", "S"),
        ("datetime", "S"),
        ("varbinary", None),
        ("binary", None),
    ],
}


@st.composite
def keyed_table(draw: Any) -> tuple[str, discover.SourceTable, list[str | None]]:
    engine = draw(st.sampled_from(sorted(KEY_TYPES)))
    width = draw(st.integers(1, 6))
    names = draw(
        st.lists(
            st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True),
            min_size=width,
            max_size=width,
            unique_by=str.lower,
        )
    )
    chosen = [draw(st.sampled_from(KEY_TYPES[engine])) for _ in names]
    columns = [discover.Column(n, t, 16) for n, (t, _) in zip(names, chosen, strict=True)]
    columns.append(discover.Column("PAYLOAD", "NUMBER" if engine == "oracle" else "int", 4))
    table = discover.SourceTable("S1", "T1", columns, list(names))
    return engine, table, [a for _, a in chosen]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keyed_table())
def test_keys_follow_the_primary_key_with_the_types_dms_writes(
    case: tuple[str, discover.SourceTable, list[str | None]],
) -> None:
    engine, table, attributes = case
    keys, findings = discover.discovered_key(engine, table, "t1")
    pk = table.primary_key
    if any(a in (None, "BOOL") for a in attributes):
        # a binary (not carried) or BOOLEAN key column: no key, the table is named
        assert keys == {}
        assert {f.kind for f in findings} <= {"binary_key", "boolean_key"}
        assert {f.column for f in findings} == {
            c for c, a in zip(pk, attributes, strict=True) if a in (None, "BOOL")
        }
        return
    if len(pk) == 1:
        assert keys == {"partition_key": {"name": pk[0], "type": attributes[0]}}
    elif len(pk) == 2:
        assert keys == {
            "partition_key": {"name": pk[0], "type": attributes[0]},
            "sort_key": {"name": pk[1], "type": attributes[1]},
        }
    else:
        built = keys["partition_key"]
        assert set(keys) == {"partition_key"} and built["type"] == "S"
        assert built["name"].lower() not in {c.name.lower() for c in table.columns}
    # AND the config accepts what discovery declares, with the primary key as its check
    upper = engine == "oracle"
    config = {
        "tables": {"t1": {"source": {"schema": "S1", "table": "T1"}, **keys}},
        "dms": {
            "capacity": {"mode": "serverless"},
            "network": {
                "vpc_id": "vpc-0123456789abcdef0",
                "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                "source_cidrs": ["10.0.0.0/24"],
            },
            "source": {
                "engine": engine,
                "server": "db.internal",
                "secret_arn": SECRET_ARN,
                "database": "ERP" if upper else "erp",
                **({"ssl_mode": "verify-ca", "certificate_arn": CERT_ARN} if upper else {}),
            },
            "tables": {"t1": {"primary_key": pk}},
        },
    }
    load_settings("prop", config)


@settings(max_examples=100, deadline=None)
@given(
    # short names, long ones (SQL Server and Oracle allow 128 characters) and odd ones
    st.text(min_size=1, max_size=12) | st.text(min_size=60, max_size=128),
    st.sets(st.from_regex(r"[a-z][a-z0-9_]{0,62}", fullmatch=True), max_size=5),
)
def test_a_logical_name_is_always_one_the_config_accepts(name: str, taken: set[str]) -> None:
    logical = discover.logical_name_for(name, taken)
    assert re.fullmatch(r"[a-z][a-z0-9_]{0,62}", logical)
    assert logical not in taken


@pytest.mark.parametrize(
    ("engine", "column", "attribute", "lob"),
    [
        ("sqlserver", discover.Column("c", "nvarchar", None), "S", True),
        ("sqlserver", discover.Column("c", "nvarchar", 200), "S", False),
        ("sqlserver", discover.Column("c", "varbinary", None), None, True),
        ("sqlserver", discover.Column("c", "image", None), None, True),
        ("sqlserver", discover.Column("c", "rowversion", 8), None, False),
        ("sqlserver", discover.Column("c", "xml", None), "S", True),
        ("sqlserver", discover.Column("c", "geography", None), "S", True),
        ("oracle", discover.Column("c", "CLOB", None), "S", True),
        ("oracle", discover.Column("c", "BLOB", None), None, True),
        ("oracle", discover.Column("c", "LONG RAW", None), None, True),
        ("oracle", discover.Column("c", "SDO_GEOMETRY", 1), None, False),
        ("postgres", discover.Column("c", "bytea", None), None, True),
        ("postgres", discover.Column("c", "jsonb", None), "S", True),
        ("mysql", discover.Column("c", "longtext", 4294967295), "S", True),
        ("mysql", discover.Column("c", "mediumblob", 16777215), None, True),
    ],
)
def test_binary_is_never_carried_and_lobs_are_named(
    engine: str, column: discover.Column, attribute: str | None, lob: bool
) -> None:
    how = discover.carried(engine, column)
    assert (how.attribute, how.lob) == (attribute, lob)


# -- PostgreSQL and MariaDB: real catalogs ------------------------------------------------


def local_stack(server: DbServer, engine: str, schema: str, wildcard: bool = True) -> str:
    source = (
        "    source:\n"
        f"      engine: {engine}\n"
        f"      server: {server.host}\n"
        f"      port: {server.port}\n"
        f"      database: {server.dbname}\n"
        f"      secret_arn: {SECRET_ARN}\n"
        "      ssl_mode: none\n"
        "      allow_unencrypted: true\n"
    )
    if wildcard:
        source += f'    wildcards:\n      - {{schema: {schema}, table_pattern: "%"}}\n'
    else:
        source += f"    default_schema: {schema}\n"
    return stack_text(
        source,
        tables=""
        if wildcard
        else (
            "  dms-event-bus:tables:\n"
            "    placeholder:\n"
            f"      source: {{schema: {schema}, table: placeholder}}\n"
            "      partition_key: {name: id, type: N}\n"
        ),
    )


def local_args(tmp_path: Path, server: DbServer, stack: str) -> list[str]:
    return [
        "--stack",
        stack,
        "--stack-dir",
        str(tmp_path),
        "--user",
        server.user,
        "--password-env",
        "DISCOVER_TEST_PASSWORD",
        "--json",
    ]


PG_SCHEMA = """
CREATE SCHEMA erp;
CREATE TABLE erp.orders (order_id bigint PRIMARY KEY, note text, placed timestamptz);
CREATE TABLE erp.order_lines (order_id bigint, line_no int, sku varchar(40), qty numeric(12,2),
    PRIMARY KEY (order_id, line_no));
CREATE TABLE erp.stock (company char(4), site int, sku varchar(40), qty numeric,
    CONSTRAINT stock_pk PRIMARY KEY (company, site, sku));
CREATE TABLE erp.journal (a int, b int, c date, d uuid, amount numeric(50,0),
    PRIMARY KEY (a, b, c, d));
CREATE TABLE erp.attachments (id uuid PRIMARY KEY, body bytea, meta jsonb);
CREATE TABLE erp.audit_log (at timestamptz, what text);
CREATE TABLE erp."Order Details" (id int PRIMARY KEY);
CREATE TABLE erp."2fa_codes" (id int PRIMARY KEY);
CREATE TABLE erp.blob_keyed (hash bytea PRIMARY KEY, n int);
CREATE TABLE erp.codes (code text PRIMARY KEY, label varchar(80));
CREATE TABLE erp.sessions (token varchar(64) CONSTRAINT sessions_token_uk UNIQUE, started date);
CREATE TABLE other_schema_table (id int PRIMARY KEY);
"""


def test_a_postgres_catalog_is_read_from_the_real_server(
    postgres: DbServer,  # noqa: F811 - the session fixture imported above
    tmp_path: Path,
    capsys: Any,
    monkeypatch: Any,
) -> None:
    # GIVEN a real PostgreSQL schema with keys of 1-4 columns, no key, bytea, odd names
    db = postgres.fresh_database("disc_pg")
    with db.connect(autocommit=True) as conn:
        cur = conn.cursor()
        for statement in filter(str.strip, PG_SCHEMA.split(";")):
            cur.execute(statement)
    monkeypatch.setenv("DISCOVER_TEST_PASSWORD", db.password)
    (tmp_path / "Pulumi.pg.yaml").write_text(local_stack(db, "postgres", "erp"))
    # WHEN discovery runs through the real driver
    code, out, err = run(capsys, [*local_args(tmp_path, db, "pg"), "--write"])
    assert err == ""
    report = json.loads(out)
    # THEN the composite keys are found in key order, with DMS's types
    settings = load(tmp_path / "Pulumi.pg.yaml", "pg")
    assert settings.dms is not None
    tables = settings.tables
    assert [
        (k.name, k.type)
        for k in (tables["order_lines"].partition_key, tables["order_lines"].sort_key)
        if k
    ] == [("order_id", "N"), ("line_no", "N")]
    assert settings.dms.tables["stock"].primary_key == ["company", "site", "sku"]
    assert tables["stock"].partition_key.name == "stock_key"
    assert settings.dms.tables["journal"].primary_key == ["a", "b", "c", "d"]
    assert tables["attachments"].partition_key.type == "S"  # uuid
    assert "other_schema_table" not in tables  # public is not selected
    # AND each problem is named with its fix
    kinds = {(f["table"], f["kind"], f["column"]) for f in report["findings"]}
    assert ("erp.audit_log", "no_primary_key", None) in kinds
    assert ("erp.Order Details", "table_name", None) in kinds
    assert ("erp.2fa_codes", "table_name", None) in kinds
    assert ("erp.blob_keyed", "binary_key", "hash") in kinds
    assert ("erp.attachments", "binary_column", "body") in kinds
    assert ("erp.attachments", "lob_column", "meta") in kinds
    assert ("erp.orders", "lob_column", "note") in kinds
    assert ("erp.journal", "number_digits", "amount") in kinds
    assert ("erp.stock", "number_digits", "qty") in kinds  # numeric without precision
    assert ("erp.codes", "lob_key", "code") in kinds  # declared, with the warning
    sessions = next(f for f in report["findings"] if f["table"] == "erp.sessions")
    assert sessions["kind"] == "no_primary_key"
    assert (
        "make its unique key sessions_token_uk (token) the primary key: ALTER TABLE "
        "erp.sessions ADD PRIMARY KEY (token) (first make token NOT NULL)" in sessions["fix"]
    )
    assert tables["codes"].partition_key.type == "S"
    lob = next(f for f in report["findings"] if f["column"] == "note")
    assert "limited LOB mode" in lob["detail"]  # PostgreSQL fails the task on truncation
    assert "octet_length(note::text)) FROM erp.orders" in lob["fix"]
    assert code == 1
    # WHEN the LOBs are measured THEN each finding has its largest value, a value too big
    # for an item is lost, and the note sizes task.lob_max_size_kb from the others
    with db.connect(autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("INSERT INTO erp.orders VALUES (1, repeat('x', 100000), now())")
        cur.execute(
            "INSERT INTO erp.attachments VALUES (gen_random_uuid(), NULL, "
            "jsonb_build_object('k', repeat('y', 400000)))"
        )
    code, out, _ = run(capsys, [*local_args(tmp_path, db, "pg"), "--measure-lobs"])
    found = {(f["kind"], f["column"]): f for f in json.loads(out)["findings"]}
    note = found[("lob_column", "note")]
    assert note["severity"] == "limit"
    assert "largest value now 100000 bytes (98 KB)" in note["detail"]
    meta = found[("lob_column", "meta")]
    assert meta["severity"] == "lost" and "over 350 KB" in meta["detail"]
    size = found[("lob_size", "note")]
    assert size["table"] == "erp.orders" and "task.lob_max_size_kb: 122" in size["fix"]


def test_a_postgres_schema_given_is_declared_whole(
    postgres: DbServer,  # noqa: F811 - the session fixture imported above
    tmp_path: Path,
    capsys: Any,
    monkeypatch: Any,
) -> None:
    # GIVEN a stack without wildcards (one declared table) and --schema naming a schema
    db = postgres.fresh_database("disc_pg2")
    with db.connect(autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("CREATE SCHEMA sales")
        cur.execute("CREATE TABLE sales.placeholder (id int PRIMARY KEY, v text)")
        cur.execute("CREATE TABLE sales.customers (customer_id int PRIMARY KEY)")
        cur.execute("CREATE TABLE sales.Invoices (inv_no varchar(20) PRIMARY KEY)")
    monkeypatch.setenv("DISCOVER_TEST_PASSWORD", db.password)
    path = tmp_path / "Pulumi.pg.yaml"
    path.write_text(local_stack(db, "postgres", "sales", wildcard=False))
    # WHEN printed without --schema THEN only the declared table is looked at
    code, out, _ = run(capsys, local_args(tmp_path, db, "pg"))
    report = json.loads(out)
    assert code == 0 and report["tables"] == {}
    assert [c["action"] for c in report["changes"]] == ["unchanged"]
    # WHEN --schema sales is given THEN every table of it is declared
    code, out, _ = run(capsys, [*local_args(tmp_path, db, "pg"), "--schema", "sales", "--write"])
    report = json.loads(out)
    assert code == 0
    assert sorted(report["tables"]) == ["customers", "invoices"]
    assert report["tables"]["invoices"]["partition_key"] == {"name": "inv_no", "type": "S"}
    settings = load(path, "pg")
    assert sorted(settings.tables) == ["customers", "invoices", "placeholder"]
    assert settings.dms is not None and settings.dms.tables["placeholder"].primary_key == ["id"]


MARIA_SCHEMA = """
CREATE TABLE orders (order_id INT UNSIGNED PRIMARY KEY, note LONGTEXT, placed DATETIME(3));
CREATE TABLE order_lines (order_id INT, line_no SMALLINT, sku VARCHAR(40), qty DECIMAL(12,2),
    PRIMARY KEY (line_no, order_id));
CREATE TABLE stock (company CHAR(4), site INT, sku VARCHAR(40), PRIMARY KEY (company, site, sku));
CREATE TABLE photos (photo_id BIGINT PRIMARY KEY, image MEDIUMBLOB, caption TEXT);
CREATE TABLE event_log (at DATETIME, what VARCHAR(200));
CREATE TABLE `odd-name` (id INT PRIMARY KEY);
CREATE TABLE big_numbers (id INT PRIMARY KEY, amount DECIMAL(65,0));
"""


def test_a_mariadb_catalog_is_read_from_the_real_server(
    mariadb: DbServer,  # noqa: F811 - the session fixture imported above
    tmp_path: Path,
    capsys: Any,
    monkeypatch: Any,
) -> None:
    db = mariadb.fresh_database("disc_my")
    with db.connect(autocommit=True) as conn:
        cur = conn.cursor()
        for statement in filter(str.strip, MARIA_SCHEMA.split(";")):
            cur.execute(statement)
    monkeypatch.setenv("DISCOVER_TEST_PASSWORD", db.password)
    path = tmp_path / "Pulumi.my.yaml"
    path.write_text(local_stack(db, "mariadb", db.dbname))
    code, out, err = run(capsys, [*local_args(tmp_path, db, "my"), "--write"])
    assert err == ""
    report = json.loads(out)
    settings = load(path, "my")
    assert settings.dms is not None
    # the key in the primary key's order, not the columns' order
    lines = settings.tables["order_lines"]
    assert [(k.name, k.type) for k in (lines.partition_key, lines.sort_key) if k] == [
        ("line_no", "N"),
        ("order_id", "N"),
    ]
    assert settings.dms.tables["stock"].primary_key == ["company", "site", "sku"]
    assert settings.tables["stock"].partition_key.type == "S"
    kinds = {(f["table"], f["kind"], f["column"]) for f in report["findings"]}
    assert (f"{db.dbname}.event_log", "no_primary_key", None) in kinds
    assert (f"{db.dbname}.odd-name", "table_name", None) in kinds
    assert (f"{db.dbname}.photos", "binary_column", "image") in kinds
    assert (f"{db.dbname}.photos", "lob_column", "caption") in kinds
    assert (f"{db.dbname}.big_numbers", "number_digits", "amount") in kinds
    lob = next(f for f in report["findings"] if f["column"] == "note")
    assert "full LOB mode" in lob["detail"] and "up to 4.0 GB" in lob["detail"]
    assert code == 1


def test_a_mariadb_stack_without_database_is_discovered(
    mariadb: DbServer,  # noqa: F811 - the session fixture imported above
    tmp_path: Path,
    capsys: Any,
    monkeypatch: Any,
) -> None:
    # GIVEN a MariaDB stack without dms.source.database (optional for the MySQL family)
    # whose wildcard selects one database
    db = mariadb.fresh_database("disc_nodb")
    with db.connect(autocommit=True) as conn:
        conn.cursor().execute("CREATE TABLE orders (order_id INT PRIMARY KEY, v INT)")
    monkeypatch.setenv("DISCOVER_TEST_PASSWORD", db.password)
    path = tmp_path / "Pulumi.my.yaml"
    text = local_stack(db, "mariadb", db.dbname)
    assert f"      database: {db.dbname}\n" in text
    path.write_text(text.replace(f"      database: {db.dbname}\n", ""))
    # WHEN discovery runs THEN it connects to the server and reads that database's catalog
    code, out, err = run(capsys, [*local_args(tmp_path, db, "my"), "--write"])
    assert (code, err) == (0, "")
    assert json.loads(out)["tables"]["orders"]["partition_key"] == {
        "name": "order_id",
        "type": "N",
    }
    source = load(path, "my").tables["orders"].source
    assert source is not None and source.table == "orders"


# -- bad input: one line, exit 2 ----------------------------------------------------------


def one_line_exit_2(capsys: Any, argv: list[str], conn: Any = None) -> str:
    code, out, err = run(capsys, argv, conn)
    assert code == 2, (out, err)
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    (tmp_path / "Pulumi.erp.yaml").write_text(stack_text(SQLSERVER_SOURCE))
    (tmp_path / "Pulumi.nodms.yaml").write_text(
        "config:\n  dms-event-bus:tables:\n    t:\n      partition_key: {name: id}\n"
    )
    base = ["--stack-dir", str(tmp_path), "--password-env", "X"]
    assert "--stack NAME is required" in one_line_exit_2(capsys, base)
    assert "no stack file" in one_line_exit_2(capsys, ["--stack", "nope", *base])
    assert "no dms-event-bus:dms section" in one_line_exit_2(capsys, ["--stack", "nodms", *base])
    assert "--password is not accepted" in one_line_exit_2(
        capsys, ["--stack", "erp", "--password", "secret"]
    )
    # an unreachable database, through the real driver (pg8000: python-tds would retry a
    # refused connection until its 10 s login timeout): a closed local port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pg_source = (
        "    source:\n      engine: postgres\n      server: 127.0.0.1\n"
        f"      port: {port}\n      database: erp\n      secret_arn: {SECRET_ARN}\n"
        '    wildcards:\n      - {schema: sales, table_pattern: "%"}\n'
    )
    (tmp_path / "Pulumi.pg.yaml").write_text(stack_text(pg_source))
    monkeypatch.setenv("X", "pw")
    err = one_line_exit_2(capsys, ["--stack", "pg", *base, "--user", "dms", "--ssl", "disable"])
    assert f"cannot connect to postgres at 127.0.0.1:{port}/erp as dms" in err
    # a missing driver
    monkeypatch.setitem(sourcedb.DRIVERS, "sqlserver", ("no_such_tds_driver", "python-tds"))
    err = one_line_exit_2(capsys, ["--stack", "erp", *base, "--user", "dms"])
    assert "driver is not installed" in err and "pip install python-tds" in err
    # a catalog the login may not read
    denied = FakeConnection([(r"sys\.columns", PermissionError("SELECT permission denied"))])
    err = one_line_exit_2(capsys, ["--stack", "erp", *base], denied)
    assert "cannot read the sqlserver catalog of dbo" in err


def test_the_written_file_keeps_flow_style_and_missing_blocks_working(
    tmp_path: Path, capsys: Any
) -> None:
    # GIVEN `tables: {}` in flow style is not a valid stack, but a flow-style dms.tables is:
    # the block is rewritten whole, its entries kept
    columns, keys = sqlserver_erp(6)
    source = SQLSERVER_SOURCE + "    tables: {orderlines: {exclude_columns: [Note]}}\n"
    path = tmp_path / "Pulumi.erp.yaml"
    path.write_text(
        stack_text(
            source,
            tables=(
                "  dms-event-bus:tables: {orderlines: {source: {schema: dbo, table: OrderLines}, "
                "partition_key: {name: OrderId, type: N}, sort_key: {name: LineNo, type: N}}}\n"
            ),
        )
    )
    code, out, _ = run(
        capsys,
        [
            "--stack",
            "erp",
            "--stack-dir",
            str(tmp_path),
            "--write",
            "--json",
            "--password-env",
            "X",
        ],
        sqlserver_connection(columns, keys),
    )
    settings = load(path, "erp")
    assert settings.dms is not None
    assert settings.dms.tables["orderlines"].exclude_columns == ["Note"]
    assert settings.dms.tables["orderlines"].primary_key == ["OrderId", "LineNo"]
    assert "stocklevels" in settings.tables and "orderlines" in settings.tables
    assert yaml.safe_load(path.read_text())["config"]["dms-event-bus:alarms"] == {
        "iterator_age_ms": 600000
    }
    assert os.path.getsize(path) > 0 and code == 1


def test_a_block_style_wildcard_gets_its_composite_tables_listed(
    tmp_path: Path, capsys: Any
) -> None:
    # GIVEN block-style wildcards (with a comment) and a file without a final newline
    columns, keys = sqlserver_erp(6)
    source = SQLSERVER_SOURCE.replace(
        '      - {schema: dbo, table_pattern: "%", exclude: ["tmp%"]}\n',
        "      - schema: dbo  # the whole ERP schema\n"
        '        table_pattern: "%"\n'
        '        exclude: ["tmp%", EventLog]\n'
        "        composite_key_tables: [PriceList]\n",
    )
    path = tmp_path / "Pulumi.erp.yaml"
    path.write_text(stack_text(source).rstrip("\n"))
    code, out, _ = run(
        capsys,
        ["--stack", "erp", "--stack-dir", str(tmp_path), "--write", "--password-env", "X"],
        sqlserver_connection(columns, keys),
    )
    text = path.read_text()
    # THEN the list is extended in place, the comment and the other keys kept
    assert "      - schema: dbo  # the whole ERP schema\n" in text
    assert (
        "        composite_key_tables: [PriceList, JournalLines, OrderLines, StockLevels]\n" in text
    )
    # AND the missing tables block is added after the last key, on a line of its own
    assert "    iterator_age_ms: 600000  # ten minutes\n  dms-event-bus:tables:\n" in text
    settings = load(path, "erp")
    assert settings.dms is not None
    assert settings.dms.wildcards[0].exclude == ["tmp%", "EventLog"]
    assert "composite_key_tables +=" in out
    assert code == 1  # Blobs (binary key) and the odd name are still named


def test_an_entry_appended_to_a_last_block_without_final_newline_is_its_own_line() -> None:
    # GIVEN a stack file whose tables block is last and has no final newline
    text = stack_text(SQLSERVER_SOURCE) + SQLSERVER_DECLARED.rstrip("\n")
    found = discover.Discovery("sqlserver", ["dbo"])
    found.tables["erp_t000"] = {
        "source": {"schema": "dbo", "table": "Erp_T000"},
        "partition_key": {"name": "Id", "type": "N"},
        "capacity": {"mode": "on_demand"},
    }
    # WHEN discovery's entry is written THEN both the old last entry and the new one load
    written = discover.updated_stack_text(text, "Pulumi.erp.yaml", found)
    tables = load_stack_text(written.encode(), "Pulumi.erp.yaml")["dms-event-bus:tables"]
    assert tables["gonetable"]["partition_key"] == {"name": "Id", "type": "N"}
    assert tables["erp_t000"]["capacity"] == {"mode": "on_demand"}
    assert written.startswith(text)


def test_capacity_provisioned_on_request_and_oracle_owners_in_upper_case(
    tmp_path: Path, capsys: Any
) -> None:
    # GIVEN --capacity provisioned THEN every table added is provisioned (autoscaled), the
    # hand-declared ones keep their capacity
    columns, keys = sqlserver_erp(6)
    path = tmp_path / "Pulumi.erp.yaml"
    path.write_text(stack_text(SQLSERVER_SOURCE, tables=SQLSERVER_DECLARED))
    argv = ["--stack", "erp", "--stack-dir", str(tmp_path), "--write", "--password-env", "X"]
    run(capsys, [*argv, "--capacity", "provisioned"], sqlserver_connection(columns, keys))
    tables = load(path, "erp").tables
    assert tables["erp_t000"].capacity.mode == "provisioned"
    assert tables["stocklevels"].capacity.mode == "provisioned"
    assert tables["orderlines"].capacity.mode == "on_demand"  # declared: kept
    # AND an Oracle owner typed in lower case is read as Oracle stores it
    ora_columns, ora_keys = oracle_fin(6)
    (tmp_path / "Pulumi.ora.yaml").write_text(stack_text(ORACLE_SOURCE))
    conn = oracle_connection(ora_columns, ora_keys)
    run(capsys, ["--stack", "ora", "--stack-dir", str(tmp_path), "--schema", "fin"], conn)
    assert [params for _, params in conn.sent(r"c\.data_length")] == [("FIN",)]


def _entry(i: int) -> dict[str, Any]:
    return {
        "source": {"schema": "dbo", "table": f"T{i}"},
        "partition_key": {"name": "Id", "type": "N"},
    }


@st.composite
def stack_edits(draw: Any) -> tuple[str, discover.Discovery, dict[str, Any], dict[str, Any]]:
    """A stack file with declared tables written in block or flow style (with comments),
    its tables block before or after dms (or missing), dms.tables block, flow or missing;
    and a discovery adding some tables and changing some declared ones."""
    existing = draw(st.lists(st.integers(0, 30), unique=True, max_size=6))
    styles = [draw(st.sampled_from(["block", "flow"])) for _ in existing]
    tables_at = draw(st.sampled_from(["before", "after", "missing", "flow"]))
    dms_tables = draw(st.sampled_from(["block", "flow", "missing"]))
    old_tables = {f"t{i}": _entry(i) for i in existing}
    if tables_at == "missing":
        old_tables = {}
    lines = []
    for (name, entry), style in zip(old_tables.items(), styles, strict=False):
        lines.append(f"    # {name}, declared by hand")
        if style == "flow":
            lines.append(f"    {name}: {discover._flow(entry)}  # kept as written")
        else:
            lines += discover.table_entry_lines(name, entry, 4)
    if tables_at == "flow" and old_tables:
        block = f"  dms-event-bus:tables: {discover._flow(old_tables)}\n"
    elif old_tables:
        block = "  dms-event-bus:tables:\n" + "\n".join(lines) + "\n"
    else:
        block = ""
    old_dms = {name: {"primary_key": ["Id"]} for name in old_tables}
    dms_block = ""
    if dms_tables == "block" and old_dms:
        dms_block = "    tables:\n" + "".join(
            f"      {n}: {discover._flow(e)}  # check\n" for n, e in old_dms.items()
        )
    elif dms_tables == "flow" and old_dms:
        dms_block = f"    tables: {discover._flow(old_dms)}\n"
    else:
        old_dms = {}
    text = (
        "config:\n  aws:region: eu-west-1  # Ireland\n"
        + (block if tables_at in ("before", "flow") else "")
        + "  dms-event-bus:dms:\n"
        + DMS_BASE
        + SQLSERVER_SOURCE
        + dms_block
        + "  # alarms\n  dms-event-bus:alarms: {iterator_age_ms: 600000}\n"
        + (block if tables_at == "after" else "")
    )
    found = discover.Discovery("sqlserver", ["dbo"])
    added = draw(st.lists(st.integers(31, 60), unique=True, max_size=5))
    changed = draw(st.lists(st.sampled_from(sorted(old_tables)), unique=True)) if old_tables else []
    for i in added:
        found.tables[f"t{i}"] = {**_entry(i), "capacity": {"mode": "on_demand"}}
        found.dms_tables[f"t{i}"] = {"primary_key": ["Id"]}
    for name in changed:
        found.tables[name] = {**old_tables[name], "partition_key": {"name": "Id", "type": "S"}}
        found.dms_tables[name] = {"primary_key": ["Id"]}
    return text, found, old_tables, old_dms


@settings(max_examples=150, deadline=None)
@given(stack_edits())
def test_writing_changes_only_the_entries_discovery_names(
    case: tuple[str, discover.Discovery, dict[str, Any], dict[str, Any]],
) -> None:
    text, found, old_tables, old_dms = case
    written = discover.updated_stack_text(text, "Pulumi.p.yaml", found)
    config = load_stack_text(written.encode(), "Pulumi.p.yaml")
    before = load_stack_text(text.encode(), "Pulumi.p.yaml")
    # THEN the tables are the old ones updated by discovery's, none dropped
    assert (config.get("dms-event-bus:tables") or {}) == {**old_tables, **found.tables}
    assert (config["dms-event-bus:dms"].get("tables") or {}) == {**old_dms, **found.dms_tables}
    # AND everything else is as it was
    for key in set(before) | set(config):
        if key not in ("dms-event-bus:tables", "dms-event-bus:dms"):
            assert config.get(key) == before.get(key)
    rest = {k: v for k, v in config["dms-event-bus:dms"].items() if k != "tables"}
    assert rest == {k: v for k, v in before["dms-event-bus:dms"].items() if k != "tables"}
    # AND every line of an entry discovery did not change is still in the file, comments too
    changed = set(found.tables)
    kept = [
        line
        for line in text.splitlines()
        if not any(f" {name}:" in line or f"{{{name}:" in line for name in changed)
        and "dms-event-bus:tables: {" not in line
        and "    tables: {" not in line
    ]
    for line in kept:
        if "partition_key" in line or "source:" in line:
            continue  # lines of block entries: shared shapes, checked through the values
        assert line in written.splitlines(), line


def test_the_module_runs_as_a_command(tmp_path: Path) -> None:
    # the real entry point: one line on stderr, exit 2, no traceback
    done = subprocess.run(
        [sys.executable, "-m", "tools.discover", "--stack", "nope", "--stack-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "no stack file" in done.stderr


def test_an_anchor_in_an_entry_to_rewrite_is_refused_on_one_line(
    tmp_path: Path, capsys: Any
) -> None:
    # GIVEN a tables block sharing a value through a YAML anchor: the entry discovery
    # corrects (orderlines) holds the anchor, another entry the alias
    columns, keys = sqlserver_erp(6)
    declared = SQLSERVER_DECLARED.replace(
        "      deletion_protection: true\n",
        "      deletion_protection: true\n      capacity: &od {mode: on_demand}\n",
    ).replace(
        "      partition_key: {name: Id, type: N}\n",
        "      partition_key: {name: Id, type: N}\n      capacity: *od\n",
    )
    path = tmp_path / "Pulumi.erp.yaml"
    path.write_text(stack_text(SQLSERVER_SOURCE, tables=declared))
    before = path.read_bytes()
    argv = ["--stack", "erp", "--stack-dir", str(tmp_path), "--write", "--password-env", "X"]
    # WHEN discovery would rewrite the anchored entry THEN one line names the fix, exit 2,
    # and the file is untouched
    err = one_line_exit_2(capsys, argv, sqlserver_connection(columns, keys))
    assert "orderlines" in err and "anchor" in err and "expand" in err
    assert path.read_bytes() == before
    # AND the same for an entry holding an alias (its anchor in an entry before it)
    gone = (
        "    gonetable:\n      source: {schema: dbo, table: GoneTable}\n"
        "      partition_key: {name: Id, type: N}\n"
    )
    aliased = (
        SQLSERVER_DECLARED.replace(gone, "")
        .replace(
            "    # declared by hand before discovery\n",
            gone + "      capacity: &od {mode: on_demand}\n",
        )
        .replace(
            "      deletion_protection: true\n",
            "      deletion_protection: true\n      capacity: *od\n",
        )
    )
    swapped = stack_text(SQLSERVER_SOURCE, tables=aliased)
    path.write_text(swapped)
    err = one_line_exit_2(capsys, argv, sqlserver_connection(columns, keys))
    assert "orderlines" in err and "alias" in err and "expand" in err
    assert path.read_text() == swapped


def test_a_stack_file_problem_found_while_writing_is_one_line(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    # GIVEN the stack file cannot be read again when the edit is made (any ValueError of
    # the stack-file reader) THEN one line, exit 2, nothing written
    columns, keys = sqlserver_erp(6)
    path = tmp_path / "Pulumi.erp.yaml"
    path.write_text(stack_text(SQLSERVER_SOURCE, tables=SQLSERVER_DECLARED))
    before = path.read_bytes()
    real = discover.load_stack_text
    calls: list[int] = []

    def second_read_fails(data: bytes, name: str) -> Any:
        calls.append(1)
        if len(calls) > 1:
            raise StackFileError(f"{name}: line 3: found undefined alias 'od'")
        return real(data, name)

    monkeypatch.setattr(discover, "load_stack_text", second_read_fails)
    argv = ["--stack", "erp", "--stack-dir", str(tmp_path), "--write", "--password-env", "X"]
    err = one_line_exit_2(capsys, argv, sqlserver_connection(columns, keys))
    assert err == "python -m tools.discover: Pulumi.erp.yaml: line 3: found undefined alias 'od'\n"
    assert path.read_bytes() == before


def test_an_anchored_wildcard_item_is_not_rewritten_for_its_composite_tables() -> None:
    # GIVEN a flow-style wildcard item holding an anchor, and discovery adding a
    # composite-key table to it
    source = SQLSERVER_SOURCE.replace("      - {schema: dbo,", "      - &w {schema: dbo,")
    text = stack_text(source, tables=SQLSERVER_DECLARED)
    found = discover.Discovery("sqlserver", ["dbo"])
    found.composite[0] = ["OrderLines"]
    # THEN the rewrite is refused naming the item and the fix
    with pytest.raises(discover.DiscoverError, match=r"dms.wildcards\[0\] holds a YAML anchor &w"):
        discover.updated_stack_text(text, "Pulumi.erp.yaml", found)
    # AND without the anchor the item gets the table
    written = discover.updated_stack_text(
        stack_text(SQLSERVER_SOURCE, tables=SQLSERVER_DECLARED), "Pulumi.erp.yaml", found
    )
    assert "composite_key_tables: [OrderLines]" in written
