"""Reconcile against a REAL PostgreSQL (and MariaDB) source and moto's DynamoDB; SQL Server
and Oracle sources through recorded catalog answers and SQLite-evaluated data queries.

The DynamoDB items are written here the way DMS's DynamoDB target writes them: either typed
by hand (the DMS formats, independent of tools.dms_types) or converted from PostgreSQL's
text output with ``postgres_text_to_dynamodb`` (what the e2e CDC stand-in uses)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import secrets
import sqlite3
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from tests.fake_dbapi import FakeConnection, sqlite_answer
from tests.servers import DbServer, mariadb, postgres  # noqa: F401
from tools import reconcile
from tools.dms_types import postgres_text_to_dynamodb

BIG = "12345678901234567890123456789012345678"  # 38 digits: DynamoDB's maximum precision
REGION = "eu-west-1"


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def ddb() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


def _table(ddb: Any, keys: list[tuple[str, str]]) -> str:
    name = f"dmsbus-test-{secrets.token_hex(4)}"
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": k, "KeyType": "HASH" if i == 0 else "RANGE"}
            for i, (k, _) in enumerate(keys)
        ],
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": t} for k, t in keys],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _sql(db: DbServer, *statements: str) -> None:
    conn = db.connect(autocommit=True)
    cur = conn.cursor()
    for statement in statements:
        cur.execute(statement)
    conn.close()


def _load_like_dms(db: DbServer, qualified: str, ddb: Any, target: str) -> int:
    """Copy every row into DynamoDB as DMS does, from PostgreSQL's text output."""
    schema, table = qualified.split(".")
    conn = db.connect(autocommit=True)
    cur = conn.cursor()
    cur.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        (qualified,),
    )
    cols = [(str(n), str(t)) for n, t in cur.fetchall()]
    cur.execute(f"SELECT {', '.join(f'{n}::text' for n, _ in cols)} FROM {schema}.{table}")
    count = 0
    for row in cur.fetchall():
        item = {}
        for (name, pg_type), text in zip(cols, row, strict=True):
            attr = postgres_text_to_dynamodb(pg_type, text)
            if attr is not None:
                item[name] = attr
        ddb.put_item(TableName=target, Item=item)
        count += 1
    conn.close()
    return count


class _Counting:
    """Wraps a boto3 client or a DB-API connection and counts calls (to see the pages)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.scans = inner, 0
        self.selects: list[str] = []

    def scan(self, **kwargs: Any) -> Any:
        self.scans += 1
        return self.inner.scan(**kwargs)

    def cursor(self) -> Any:
        outer, cur = self, self.inner.cursor()

        class Cur:
            def execute(self, sql: str, params: Any = None) -> Any:
                if sql.startswith("SELECT") and " LIMIT " in sql:
                    outer.selects.append(sql)
                return cur.execute(sql, params) if params is not None else cur.execute(sql)

            def __getattr__(self, name: str) -> Any:
                return getattr(cur, name)

        return Cur()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _cli(db: DbServer, monkeypatch: pytest.MonkeyPatch, *tables: str, extra: tuple = ()) -> list:
    monkeypatch.setenv("RECONCILE_TEST_PW", db.password)
    return [
        "--engine",
        db.engine,
        "--host",
        db.host,
        "--port",
        str(db.port),
        "--database",
        db.dbname,
        "--user",
        db.user,
        "--password-env",
        "RECONCILE_TEST_PW",
        "--ssl",
        "disable",
        "--region",
        REGION,
        *[a for t in tables for a in ("--table", t)],
        *extra,
    ]


ORDERS = (
    "CREATE SCHEMA legacy",
    "CREATE TABLE legacy.orders (id bigint PRIMARY KEY, amount numeric(38,0), "
    "price numeric(12,2), ordered date, at timestamp(3), at_tz timestamptz, paid boolean, "
    "note text, blob bytea, doc jsonb, ratio double precision)",
    "INSERT INTO legacy.orders SELECT g, "
    f"CASE WHEN g % 5 = 0 THEN NULL ELSE {BIG} - g END, g * 1.25, "
    "date '2024-02-29' + g, timestamp '2024-01-01 10:00:00.5' + g * interval '1 minute', "
    "timestamptz '2024-06-30 23:30:00+02' + g * interval '1 second', g % 2 = 0, "
    "CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ✓ ü ' || g END, "
    "decode(lpad(to_hex(g), 4, '0'), 'hex'), jsonb_build_object('g', g), g / 3.0 "
    "FROM generate_series(1, 53) g",
)


@pytest.fixture
def orders(postgres: DbServer, ddb: Any) -> tuple[DbServer, str]:  # noqa: F811
    db = postgres.fresh_database("rc")
    _sql(db, *ORDERS)
    target = _table(ddb, [("id", "N")])
    assert _load_like_dms(db, "legacy.orders", ddb, target) == 53
    return db, target


# --------------------------------------------------------------------------- PostgreSQL


def test_identical_data_reports_zero_differences_reading_both_sides_in_pages(orders, ddb):
    # GIVEN 53 rows copied into DynamoDB as DMS writes them (NULLs dropped, 38-digit numbers,
    # dates, timestamps, timestamptz in UTC, booleans as "true"/"false", bytea as B)
    db, target = orders
    conn, client = _Counting(db.connect(autocommit=True)), _Counting(ddb)
    mapping = reconcile.TableMapping.parse(f"legacy.orders={target}:id")
    # WHEN reconciling with pages of 7
    result = reconcile.reconcile(conn, "postgres", [mapping], client, page_size=7)
    # THEN no differences, both counts 53
    (table,) = result.tables
    assert result.ok
    assert (table.source_rows, table.target_items) == (53, 53)
    assert (table.missing, table.extra, table.different) == (0, 0, 0)
    # AND both sides were read in pages: 8 keyset SELECTs (7*7 + 4) and at least 8 Scans
    assert len(conn.selects) == 8
    assert all("LIMIT 7" in s for s in conn.selects)
    assert client.scans >= 8


def test_cli_identical_data_exit_0(orders, monkeypatch, capsys):
    db, target = orders
    code = reconcile.main(_cli(db, monkeypatch, f"legacy.orders={target}:id"))
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    assert out.splitlines() == [
        f"OK   legacy.orders -> {target}: source 53 rows, target 53 items, "
        "missing 0, extra 0, different 0"
    ]


def test_missing_extra_and_changed_items_are_each_found(orders, ddb, monkeypatch, capsys):
    # GIVEN one item deleted, one item that is not in the source, one value changed
    db, target = orders
    ddb.delete_item(TableName=target, Key={"id": {"N": "7"}})
    ddb.put_item(TableName=target, Item={"id": {"N": "1000"}, "note": {"S": "stray"}})
    ddb.update_item(
        TableName=target,
        Key={"id": {"N": "12"}},
        UpdateExpression="SET price = :p",
        ExpressionAttributeValues={":p": {"N": "15.01"}},  # source: 15.00
    )
    # WHEN the command runs
    code = reconcile.main(
        _cli(db, monkeypatch, f"legacy.orders={target}:id", extra=("--page-size", "10"))
    )
    out, err = capsys.readouterr()
    # THEN exit 1 and each kind is reported with its key; the column, never the value
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0] == (
        f"DIFF legacy.orders -> {target}: source 53 rows, target 53 items, "
        "missing 1, extra 1, different 1"
    )
    assert '  missing   {"id": "7"}' in lines
    assert '  extra     {"id": "1000"}' in lines
    assert '  different {"id": "12"} columns: price' in lines
    assert "15.01" not in out and "stray" not in out


def test_json_output_has_totals_and_samples(orders, ddb, monkeypatch, capsys):
    db, target = orders
    for i in (2, 3, 4):
        ddb.delete_item(TableName=target, Key={"id": {"N": str(i)}})
    code = reconcile.main(
        _cli(db, monkeypatch, f"legacy.orders={target}:id", extra=("--json", "--sample", "2"))
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["ok"] is False
    (table,) = doc["tables"]
    assert table["missing"] == 3
    assert len(table["missing_sample"]) == 2  # a sample, and the total
    assert {s["id"] for s in table["missing_sample"]} <= {"2", "3", "4"}


def test_each_changed_column_kind_is_found(orders, ddb):
    # GIVEN one change per column kind, each on its own row
    db, target = orders
    changes = {
        1: ("amount", {"N": BIG}),  # last digit differs (source BIG - 1): no float rounding
        2: ("ordered", {"S": "2024-03-03"}),  # one day off
        3: ("note", {"S": "not NULL"}),  # NULL in the source (column dropped by DMS)
        4: ("paid", {"S": "false"}),  # source true
        5: ("at_tz", {"S": "2024-06-30 23:30:05"}),  # source is 21:30:05 UTC
        6: ("blob", {"B": b"\x00\x07"}),  # source 0x0006
    }
    for key, (col, attr) in changes.items():
        ddb.update_item(
            TableName=target,
            Key={"id": {"N": str(key)}},
            UpdateExpression="SET #c = :v",
            ExpressionAttributeNames={"#c": col},
            ExpressionAttributeValues={":v": attr},
        )
    # AND one column present in the source dropped from its item
    ddb.update_item(TableName=target, Key={"id": {"N": "8"}}, UpdateExpression="REMOVE note")
    conn = db.connect(autocommit=True)
    result = reconcile.reconcile(
        conn, "postgres", [reconcile.TableMapping.parse(f"legacy.orders={target}:id")], ddb
    )
    (table,) = result.tables
    assert table.different == 7
    found = {int(d["key"]["id"]): d["columns"] for d in table.different_sample}
    assert found == {**{k: [c] for k, (c, _) in changes.items()}, 8: ["note"]}


def test_dms_formats_compare_equal_when_the_values_are(postgres, ddb):  # noqa: F811
    # GIVEN rows with a 38-digit number, dates, times, NULL columns and decimals
    db = postgres.fresh_database("rc_fmt")
    _sql(
        db,
        "CREATE TABLE acct (id numeric(38,0) PRIMARY KEY, balance numeric(38,2), "
        "opened date, seen timestamp(6), seen_tz timestamptz, at time, active boolean, "
        "nick text, big bigint)",
        f"INSERT INTO acct VALUES ({BIG}, 12345678901234567890123456789012.50, "
        "'2024-02-29', '2024-02-29 23:59:59.120000', '2024-02-29 23:59:59+01', '08:00:00', "
        "true, NULL, NULL)",
        "INSERT INTO acct VALUES (-1, -0.10, '1999-12-31', '2000-01-01 00:00:00', "
        "'2000-01-01 00:00:00+00', '23:59:59.5', false, 'x', 9223372036854775807)",
    )
    target = _table(ddb, [("id", "N")])
    # WHEN DynamoDB holds them in the forms DMS may write (typed here by hand): NULL columns
    # absent, numbers without/with trailing zeros, ISO 'T' or space, fractions trimmed or not
    ddb.put_item(
        TableName=target,
        Item={
            "id": {"N": BIG},
            "balance": {"N": "12345678901234567890123456789012.5"},
            "opened": {"S": "2024-02-29"},
            "seen": {"S": "2024-02-29T23:59:59.12"},
            "seen_tz": {"S": "2024-02-29 22:59:59"},
            "at": {"S": "08:00:00.000000"},
            "active": {"S": "true"},
        },
    )
    ddb.put_item(
        TableName=target,
        Item={
            "id": {"N": "-1"},
            "balance": {"N": "-0.10"},
            "opened": {"S": "1999-12-31 00:00:00"},
            "seen": {"S": "2000-01-01 00:00:00.000"},
            "seen_tz": {"S": "2000-01-01T00:00:00Z"},
            "at": {"S": "23:59:59.500"},
            "active": {"BOOL": False},  # MapBooleanAsBoolean
            "nick": {"S": "x"},
            "big": {"N": "9223372036854775807"},
            "ignored": {"S": "attributes not in the source are not compared"},
        },
    )
    conn = db.connect(autocommit=True)
    result = reconcile.reconcile(
        conn, "postgres", [reconcile.TableMapping.parse(f"public.acct={target}:id")], ddb
    )
    # THEN they compare equal
    (table,) = result.tables
    assert table.ok, table.lines()
    assert (table.source_rows, table.target_items) == (2, 2)

    # AND an explicit NULL attribute means the same as a dropped column
    ddb.update_item(
        TableName=target,
        Key={"id": {"N": BIG}},
        UpdateExpression="SET nick = :n",
        ExpressionAttributeValues={":n": {"NULL": True}},
    )
    assert reconcile.reconcile(
        conn, "postgres", [reconcile.TableMapping.parse(f"public.acct={target}:id")], ddb
    ).ok


def test_composite_keys_and_chosen_columns(postgres, ddb):  # noqa: F811
    # GIVEN order lines keyed (order_id, line_no), 3 lines per order
    db = postgres.fresh_database("rc_lines")
    _sql(
        db,
        "CREATE TABLE lines (order_id text, line_no int, qty int, memo text, "
        "PRIMARY KEY (order_id, line_no))",
        "INSERT INTO lines SELECT 'o-' || lpad(o::text, 3, '0'), l, o * l, 'm' "
        "FROM generate_series(1, 9) o, generate_series(1, 3) l",
    )
    target = _table(ddb, [("order_id", "S"), ("line_no", "N")])
    assert _load_like_dms(db, "public.lines", ddb, target) == 27
    ddb.delete_item(TableName=target, Key={"order_id": {"S": "o-004"}, "line_no": {"N": "2"}})
    ddb.update_item(
        TableName=target,
        Key={"order_id": {"S": "o-009"}, "line_no": {"N": "3"}},
        UpdateExpression="SET memo = :m",
        ExpressionAttributeValues={":m": {"S": "changed"}},
    )
    conn = _Counting(db.connect(autocommit=True))
    # WHEN only the key and qty are compared, with pages of 4 (keyset over both key columns)
    mapping = reconcile.TableMapping.parse(f"public.lines={target}:order_id,line_no:qty")
    (table,) = reconcile.reconcile(conn, "postgres", [mapping], ddb, page_size=4).tables
    # THEN the missing line is found by its two-column key; memo was not compared
    assert (table.source_rows, table.missing, table.extra, table.different) == (27, 1, 0, 0)
    assert table.missing_sample == [{"order_id": "o-004", "line_no": "2"}]
    assert len(conn.selects) == 7  # 6 full pages of 4 + the last page of 3


def test_target_pages_compare_a_replica_the_same_way(orders):
    # GIVEN a replica (e.g. the e2e consumer's) that can give its rows as DynamoDB items
    db, _ = orders
    conn = db.connect(autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT id::text, price::text FROM legacy.orders o ORDER BY o.id")
    replica = [{"id": {"N": i}, "price": {"N": p}} for i, p in cur.fetchall()]
    replica[10]["price"] = {"N": "0"}
    mapping = reconcile.TableMapping.parse("legacy.orders=replica:id:price")
    # WHEN its pages are reconciled instead of a DynamoDB Scan
    table = reconcile.reconcile_table(
        conn, "postgres", mapping, None, target_pages=[replica[:20], replica[20:]]
    )
    # THEN the changed row is found
    assert (table.source_rows, table.target_items, table.different) == (53, 53, 1)
    assert table.different_sample == [{"key": {"id": "11"}, "columns": ["price"]}]


def _remove(ddb: Any, target: str, key: int, *columns: str) -> None:
    ddb.update_item(TableName=target, Key={"id": {"N": str(key)}},
                    UpdateExpression="REMOVE " + ", ".join(columns))


CAUSE = (
    "  cause     legacy.orders columns note, doc (absent from 3 item(s)): replica identity "
    "DEFAULT: unchanged TOASTed values are not in the replication stream; run "
    "ALTER TABLE legacy.orders REPLICA IDENTITY FULL;"
)


def test_missing_large_column_on_a_table_without_full_identity_names_the_cause(
    orders, ddb, monkeypatch, capsys
):
    # GIVEN a table under the default replica identity whose items lost large (TOASTable)
    # values -- as when an UPDATE left them unchanged and the stream did not carry them --
    # and one item that lost a small value (price numeric(12,2): never TOASTed)
    db, target = orders
    _remove(ddb, target, 1, "note")
    _remove(ddb, target, 2, "note", "doc")
    _remove(ddb, target, 4, "doc")
    _remove(ddb, target, 5, "price")
    # WHEN reconcile runs
    args = _cli(db, monkeypatch, f"legacy.orders={target}:id")
    code = reconcile.main(args)
    out = capsys.readouterr().out
    # THEN besides the differences it names the cause once: the table, the columns, the
    # identity and the fix
    assert code == 1
    lines = out.splitlines()
    assert lines[0].endswith("missing 0, extra 0, different 4")
    assert '  different {"id": "2"} columns: note, doc' in lines
    assert '  different {"id": "5"} columns: price' in lines
    assert [line for line in lines if line.lstrip().startswith("cause")] == [CAUSE]
    # AND the JSON output carries it too
    code = reconcile.main([*args, "--json"])
    (table,) = json.loads(capsys.readouterr().out)["tables"]
    assert (table["replica_identity"], table["absent_toastable"]) == (
        "DEFAULT", {"note": 2, "doc": 2})

    # WHEN the table is switched to REPLICA IDENTITY FULL (the lost values stay lost)
    _sql(db, "ALTER TABLE legacy.orders REPLICA IDENTITY FULL")
    code = reconcile.main(args)
    out = capsys.readouterr().out
    # THEN the differences remain, without that cause
    assert code == 1
    assert "different 4" in out.splitlines()[0]
    assert "cause" not in out


def test_missing_small_column_under_default_identity_names_no_cause(orders, ddb):
    # GIVEN a DEFAULT-identity table whose item lost only values too small to be TOASTed
    # (numeric(12,2), date, boolean), and a row whose large column is NULL in the source
    # (absent from its item: no difference)
    db, target = orders
    _remove(ddb, target, 5, "price", "ordered", "paid")
    conn = db.connect(autocommit=True)
    mapping = reconcile.TableMapping.parse(f"legacy.orders={target}:id")
    (table,) = reconcile.reconcile(conn, "postgres", [mapping], ddb).tables
    # THEN the difference is reported without the replica-identity cause
    assert table.different == 1
    assert table.absent_toastable == {}
    assert not any("cause" in line for line in table.lines())


# --------------------------------------------------------------------------- MariaDB


def test_mariadb_source_identical_then_changed(mariadb, ddb):  # noqa: F811
    db = mariadb.fresh_database("rc")
    _sql(
        db,
        "SET time_zone = '+00:00'",
        "CREATE TABLE orders (id int PRIMARY KEY, amount decimal(38,0), price decimal(10,2), "
        "at datetime(3), stamp timestamp NULL, t time, flags bit(3), note varchar(20)) "
        "DEFAULT CHARSET=utf8mb4",
        f"INSERT INTO orders VALUES (1, {BIG}, 9.90, '2024-02-29 10:00:00.250', "
        "'2024-02-29 10:00:00', '-01:30:00', b'101', NULL), "
        "(2, 0, 0.00, '1999-12-31 23:59:59.000', NULL, '12:00:00', b'000', 'ü ✓')",
    )
    target = _table(ddb, [("id", "N")])
    ddb.put_item(
        TableName=target,
        Item={
            "id": {"N": "1"},
            "amount": {"N": BIG},
            "price": {"N": "9.9"},
            "at": {"S": "2024-02-29 10:00:00.25"},
            "stamp": {"S": "2024-02-29 10:00:00"},  # the session/server zone is UTC here
            "t": {"S": "-01:30:00"},
            "flags": {"N": "5"},
        },
    )
    ddb.put_item(
        TableName=target,
        Item={
            "id": {"N": "2"},
            "amount": {"N": "0"},
            "price": {"N": "0"},
            "at": {"S": "1999-12-31 23:59:59"},
            "t": {"S": "12:00:00"},
            "flags": {"N": "0"},
            "note": {"S": "ü ✓"},
        },
    )
    conn = db.connect(autocommit=True)
    mapping = reconcile.TableMapping.parse(f"{db.dbname}.orders={target}:id")
    (table,) = reconcile.reconcile(conn, "mariadb", [mapping], ddb, page_size=1).tables
    assert table.ok, table.lines()
    ddb.update_item(
        TableName=target,
        Key={"id": {"N": "1"}},
        UpdateExpression="SET amount = :a",
        ExpressionAttributeValues={":a": {"N": BIG[:-1] + "9"}},
    )
    (table,) = reconcile.reconcile(conn, "mariadb", [mapping], ddb).tables
    assert table.different_sample == [{"key": {"id": "1"}, "columns": ["amount"]}]


# --------------------------------------------------------------------------- errors


def _one_line_exit_2(code: int, capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err.strip()


def test_unknown_source_table_is_one_line(orders, monkeypatch, capsys):
    db, target = orders
    code = reconcile.main(_cli(db, monkeypatch, f"legacy.nope={target}:id"))
    err = _one_line_exit_2(code, capsys)
    assert err == "reconcile: source table legacy.nope not found (or no access)"


def test_unknown_key_column_is_one_line(orders, monkeypatch, capsys):
    db, target = orders
    code = reconcile.main(_cli(db, monkeypatch, f"legacy.orders={target}:order_no"))
    assert _one_line_exit_2(code, capsys) == "reconcile: legacy.orders: no column(s) order_no"


def test_missing_dynamodb_table_is_one_line(orders, monkeypatch, capsys):
    db, _ = orders
    code = reconcile.main(_cli(db, monkeypatch, "legacy.orders=dmsbus-test-absent:id"))
    err = _one_line_exit_2(code, capsys)
    assert err.startswith("reconcile: ") and "ResourceNotFoundException" in err


def test_bad_table_spec_is_one_line(orders, monkeypatch, capsys):
    db, _ = orders
    code = reconcile.main(_cli(db, monkeypatch, "orders-without-schema"))
    err = _one_line_exit_2(code, capsys)
    assert err.startswith("reconcile: bad --table 'orders-without-schema'")


def test_bad_password_is_one_line(orders, monkeypatch, capsys):
    db, target = orders
    args = _cli(db, monkeypatch, f"legacy.orders={target}:id")
    monkeypatch.setenv("RECONCILE_TEST_PW", "wrong-password")
    err = _one_line_exit_2(reconcile.main(args), capsys)
    assert err.startswith("reconcile: cannot connect to postgres at ")
    assert "authentication failed" in err and "wrong-password" not in err


def test_password_option_is_refused_without_echo(capsys):
    with pytest.raises(SystemExit) as exc:
        reconcile.main(["--engine", "postgres", "--table", "a.b=t:id", "--password", "pw-value"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "--password is not accepted" in err and "pw-value" not in err


# --------------------------------------------------------------------------- SQL Server, Oracle
#
# No such server runs here: the catalog query is answered from recorded rows shaped like
# INFORMATION_SCHEMA.COLUMNS / ALL_TAB_COLUMNS, and the data queries reconcile really sends
# (TOP / FETCH FIRST pages, the spelled-out keyset condition, the key re-read) run on SQLite
# through tests.fake_dbapi.sqlite_answer, so paging and ordering are evaluated, not assumed.

def _sqlite(schema: str, create: str, rows: list[tuple[Any, ...]]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(f"ATTACH DATABASE ':memory:' AS {schema}")
    db.execute(create)
    table = create.split("(", 1)[0].rsplit(maxsplit=1)[-1]
    db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return db


def _mssql_lines(n: int = 23) -> list[tuple[Any, ...]]:
    return [(o, line, o * 10 + line, f"{o}.{line:02d}", None if line == 2 else f"note {o}/{line}",
             f"2026-0{1 + o % 9}-1{line} 08:30:00.123")
            for o in range(1, n + 1) for line in (1, 2, 3)]


def mssql_conn(rows: list[tuple[Any, ...]]) -> FakeConnection:
    """[sales].[order_lines] on a recorded SQL Server: composite key (order_id, line_no)."""
    db = _sqlite("sales", "CREATE TABLE sales.order_lines (order_id INT, line_no INT, qty INT, "
                 "price TEXT, note TEXT, shipped_at TEXT)", rows)

    def driver_types(r: tuple[Any, ...]) -> tuple[Any, ...]:
        # python-tds returns decimal.Decimal for decimal and datetime for datetime2
        out = list(r)
        out[3] = decimal.Decimal(out[3])
        out[5] = dt.datetime.fromisoformat(out[5])
        return tuple(out)

    return FakeConnection([
        (r"^SELECT COLUMN_NAME, DATA_TYPE, DATA_TYPE FROM INFORMATION_SCHEMA\.COLUMNS WHERE "
         r"TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION$",
         lambda sql, p: [("order_id", "int", "int"), ("line_no", "smallint", "smallint"),
                         ("qty", "int", "int"), ("price", "decimal", "decimal"),
                         ("note", "nvarchar", "nvarchar"), ("shipped_at", "datetime2", "datetime2")]
         if p == ("sales", "order_lines") else []),
        (r"^SELECT (TOP \(\d+\) )?\[order_id\], \[line_no\], \[qty\], \[price\], \[note\], "
         r"\[shipped_at\], \[order_id\], \[line_no\] FROM \[sales\]\.\[order_lines\]",
         sqlite_answer(db, driver_types)),
    ])


def _mssql_item(row: tuple[Any, ...]) -> dict[str, Any]:
    """The item DMS writes for one row (typed by hand: N for numbers, S for text/dates)."""
    o, line, qty, price, note, shipped = row
    item = {"order_id": {"N": str(o)}, "line_no": {"N": str(line)}, "qty": {"N": str(qty)},
            "price": {"N": price}, "shipped_at": {"S": shipped}}
    if note is not None:
        item["note"] = {"S": note}
    return item


def test_sqlserver_source_identical_then_each_difference_found(ddb, monkeypatch, capsys):
    # GIVEN 69 rows of a composite-key SQL Server table and their items as DMS writes them
    rows = _mssql_lines()
    target = _table(ddb, [("order_id", "N"), ("line_no", "N")])
    for row in rows:
        ddb.put_item(TableName=target, Item=_mssql_item(row))
    conn = mssql_conn(rows)
    mapping = reconcile.TableMapping.parse(f"sales.order_lines={target}:order_id,line_no")
    # WHEN reconciled in pages of 5
    result = reconcile.reconcile(conn, "sqlserver", [mapping], ddb, page_size=5)
    # THEN nothing differs, and the source was read in keyset pages with TOP
    (report,) = result.tables
    assert (report.source_rows, report.target_items, report.ok) == (69, 69, True)
    pages = conn.sent(r"^SELECT TOP \(5\) ")
    assert len(pages) == 14
    assert pages[1][0].endswith(
        "WHERE ([order_id] > %s) OR ([order_id] = %s AND [line_no] > %s) "
        "ORDER BY [order_id], [line_no]")
    assert pages[1][1] == (2, 2, 2)  # after (order_id 2, line_no 2): the 5th row
    # AND a deleted item, an extra item and a changed value are each found (CLI, exit 1)
    ddb.delete_item(TableName=target, Key={"order_id": {"N": "7"}, "line_no": {"N": "3"}})
    ddb.put_item(TableName=target, Item=_mssql_item((99, 1, 1, "1", None, "2026-01-01 00:00:00")))
    ddb.update_item(TableName=target, Key={"order_id": {"N": "3"}, "line_no": {"N": "1"}},
                    UpdateExpression="SET price = :p",
                    ExpressionAttributeValues={":p": {"N": "3.1"}})
    monkeypatch.setenv("RC_MSSQL_PW", "x")
    monkeypatch.setattr(reconcile, "connect", lambda params: mssql_conn(rows))
    code = reconcile.main(["--engine", "sqlserver", "--host", "mssql.internal", "--database",
                           "erp", "--user", "reader", "--password-env", "RC_MSSQL_PW",
                           "--table", f"sales.order_lines={target}:order_id,line_no",
                           "--page-size", "7"], dynamodb=ddb)
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0] == (f"DIFF sales.order_lines -> {target}: source 69 rows, target 69 items, "
                      "missing 1, extra 1, different 1")
    assert '  missing   {"order_id": "7", "line_no": "3"}' in out
    assert '  extra     {"order_id": "99", "line_no": "1"}' in out
    assert '  different {"order_id": "3", "line_no": "1"} columns: price' in out


ORA_ROWS = [(i, f"{i * 1.5:g}", f"2026-03-{1 + i % 28:02d} 12:00:0{i % 10}",
             f"2026-03-01 10:00:00+0{i % 3}:00", None if i % 4 == 0 else "x" * (i * 300))
            for i in range(1, 30)]


def oracle_conn() -> FakeConnection:
    """"ERP"."ORDERS" on a recorded Oracle: NUMBER key, DATE (with a time of day),
    TIMESTAMP WITH TIME ZONE (read as SYS_EXTRACT_UTC) and a CLOB."""
    db = _sqlite("ERP", 'CREATE TABLE ERP.ORDERS ("ID" INTEGER, "AMOUNT" TEXT, "PLACED" TEXT, '
                 '"PAID_AT" TEXT, "NOTE" TEXT)', ORA_ROWS)
    db.create_function("SYS_EXTRACT_UTC", 1, lambda v: dt.datetime.fromisoformat(v).astimezone(
        dt.UTC).replace(tzinfo=None).isoformat(sep=" "))

    def driver_types(r: tuple[Any, ...]) -> tuple[Any, ...]:
        # python-oracledb (fetch_decimals, fetch_lobs off): Decimal, datetime, str
        i, amount, placed, paid, note, key = r
        return (decimal.Decimal(i), decimal.Decimal(amount), dt.datetime.fromisoformat(placed),
                dt.datetime.fromisoformat(paid), note, decimal.Decimal(key))

    return FakeConnection([
        (r"^ALTER SESSION SET TIME_ZONE = '\+00:00'$", []),
        (r"^SELECT column_name, data_type, data_type FROM all_tab_columns WHERE owner = :1 AND "
         r"table_name = :2 ORDER BY column_id$",
         [("ID", "NUMBER", "NUMBER"), ("AMOUNT", "NUMBER", "NUMBER"), ("PLACED", "DATE", "DATE"),
          ("PAID_AT", "TIMESTAMP(6) WITH TIME ZONE", "TIMESTAMP(6) WITH TIME ZONE"),
          ("NOTE", "CLOB", "CLOB")]),
        (r'^SELECT "ID", "AMOUNT", "PLACED", SYS_EXTRACT_UTC\("PAID_AT"\), "NOTE", "ID" FROM '
         r'"ERP"\."ORDERS"', sqlite_answer(db, driver_types)),
    ])


def _oracle_item(row: tuple[Any, ...]) -> dict[str, Any]:
    i, amount, placed, paid, note = row
    utc = dt.datetime.fromisoformat(paid).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    item = {"ID": {"N": str(i)}, "AMOUNT": {"N": amount}, "PLACED": {"S": placed},
            "PAID_AT": {"S": utc}}
    if note is not None:
        item["NOTE"] = {"S": note}
    return item


def test_oracle_source_identical_then_changed(ddb):
    target = _table(ddb, [("ID", "N")])
    for row in ORA_ROWS:
        ddb.put_item(TableName=target, Item=_oracle_item(row))
    mapping = reconcile.TableMapping.parse(f"ERP.ORDERS={target}:ID")
    conn = oracle_conn()
    (report,) = reconcile.reconcile(conn, "oracle", [mapping], ddb, page_size=4).tables
    assert (report.source_rows, report.ok) == (29, True), report.lines()
    pages = conn.sent(r"FETCH FIRST 4 ROWS ONLY$")
    assert len(pages) == 8
    assert pages[1][0].endswith('WHERE ("ID" > :1) ORDER BY "ID" FETCH FIRST 4 ROWS ONLY')
    assert conn.executed[0][0] == "ALTER SESSION SET TIME_ZONE = '+00:00'"
    # a time zone value written in local time (not UTC) and a truncated CLOB are different
    bad = _oracle_item(ORA_ROWS[4])
    bad["PAID_AT"] = {"S": "2026-03-01 10:00:05"}
    bad["NOTE"] = {"S": bad["NOTE"]["S"][:100]}
    ddb.put_item(TableName=target, Item=bad)
    (report,) = reconcile.reconcile(oracle_conn(), "oracle", [mapping], ddb).tables
    assert (report.different, report.missing, report.extra) == (1, 0, 0)
    assert report.different_sample == [{"key": {"ID": "5"}, "columns": ["PAID_AT", "NOTE"]}]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    engine=st.sampled_from(["sqlserver", "oracle"]),
    keys=st.integers(1, 3),
    rows=st.sets(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
                 min_size=0, max_size=40),
    page=st.integers(1, 7),
)
def test_keyset_pages_read_every_row_once_in_key_order(engine, keys, rows, page):
    # GIVEN a table whose key is the first 1-3 columns (many ties in the leading columns)
    data = sorted({r[:keys] + (0,) * (3 - keys) for r in rows})
    if not data:
        data_rows: list[tuple[Any, ...]] = []
    else:
        data_rows = [(*r, f"v{n}") for n, r in enumerate(data)]
    db = sqlite3.connect(":memory:")
    db.execute("ATTACH DATABASE ':memory:' AS s")
    db.execute("CREATE TABLE s.t (a INTEGER, b INTEGER, c INTEGER, v TEXT)")
    db.executemany("INSERT INTO s.t VALUES (?, ?, ?, ?)", data_rows)
    cols = [("a", "int"), ("b", "int"), ("c", "int"), ("v", "varchar")]
    catalog = (r"INFORMATION_SCHEMA\.COLUMNS" if engine == "sqlserver" else r"all_tab_columns")
    conn = FakeConnection([(catalog, [(n, t, t) for n, t in cols]),
                           (r"^SELECT ", sqlite_answer(db))])
    mapping = reconcile.TableMapping("s.t", "target", tuple("abc"[:keys]), ("v",))
    src = reconcile._Source(conn, engine, mapping)
    # WHEN read in keyset pages (the spelled-out OR condition, TOP / FETCH FIRST)
    names = [c.name for c in src.columns]
    read = [dict(zip(names, row, strict=False)) for batch in src.pages(page) for row in batch]
    # THEN every row comes exactly once, in key order
    expected = [{**dict(zip("abc", r[:keys], strict=False)), "v": f"v{n}"}
                for n, r in enumerate(data)]
    assert read == expected
    placeholders = re.findall(r"%s|:\d+", conn.executed[-1][0])
    assert len(placeholders) in (0, keys * (keys + 1) // 2)


def test_stack_fills_the_sqlserver_connection_and_region(tmp_path, ddb, monkeypatch, capsys):
    # GIVEN a stack file whose DMS source is SQL Server
    stack_dir = _source_stack(tmp_path, {"engine": "sqlserver", "server": "mssql.internal",
                                         "port": 1533, "database": "erp",
                                         "ssl_mode": "none", "allow_unencrypted": True})
    rows = _mssql_lines(3)
    target = _table(ddb, [("order_id", "N"), ("line_no", "N")])
    for row in rows:
        ddb.put_item(TableName=target, Item=_mssql_item(row))
    opened: list[Any] = []

    def fake_connect(params: Any) -> FakeConnection:
        opened.append(params)
        return mssql_conn(rows)

    monkeypatch.setattr(reconcile, "connect", fake_connect)
    monkeypatch.setenv("RC_MSSQL_PW", "x")
    # WHEN reconcile gets only --stack (and a password source that overrides the secret)
    code = reconcile.main(["--stack", "src", "--stack-dir", str(stack_dir), "--user", "reader",
                           "--password-env", "RC_MSSQL_PW", "--table",
                           f"sales.order_lines={target}:order_id,line_no"], dynamodb=ddb)
    # THEN engine, host, port, database and TLS come from the stack file
    assert code == 0, capsys.readouterr()
    (params,) = opened
    assert (params.engine, params.host, params.port, params.database, params.ssl) == (
        "sqlserver", "mssql.internal", 1533, "erp", "disable")


def _source_stack(tmp_path: Any, source: dict[str, Any], name: str = "src") -> Any:
    """A stack file (in tmp_path) with one table and a DMS section with ``source``."""
    config = {
        "aws:region": REGION,
        "dms-event-bus:tables": {"orders": {"source": {"schema": "sales", "table": "orders"},
                                            "partition_key": {"name": "id", "type": "N"}}},
        "dms-event-bus:dms": {
            "capacity": {"mode": "serverless", "min_capacity_units": 1,
                         "max_capacity_units": 4},
            "network": {"vpc_id": "vpc-0123456789abcdef0",
                        "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                        "source_cidrs": ["10.20.0.0/24"]},
            "source": {"secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
                       "src-AbCdEf", **source},
        },
    }
    (tmp_path / f"Pulumi.{name}.yaml").write_text(json.dumps({"config": config}))
    return tmp_path


def test_stack_lists_every_declared_table_with_its_source_key_columns(tmp_path):
    # GIVEN a stack declaring a one-column key, a partition + sort key, and a key DMS
    # concatenates from three source columns
    stack_dir = _source_stack(tmp_path, {"engine": "postgres", "server": "db.internal",
                                         "port": 5432, "database": "erp"})
    path = stack_dir / "Pulumi.src.yaml"
    config = json.loads(path.read_text())["config"]
    config["dms-event-bus:tables"].update({
        "order_lines": {"source": {"schema": "sales", "table": "order_lines"},
                        "partition_key": {"name": "order_id", "type": "N"},
                        "sort_key": {"name": "line_no", "type": "N"}},
        "gl_lines": {"source": {"schema": "fin", "table": "gl_lines"},
                     "partition_key": {"name": "gl_key", "type": "S"}},
    })
    config["dms-event-bus:dms"]["tables"] = {
        "gl_lines": {"primary_key": ["ledger", "year", "line"]}}
    path.write_text(json.dumps({"config": config}))
    # WHEN reconcile reads the tables from the stack
    mappings = reconcile.stack_mappings("src", stack_dir)
    # THEN each maps its source table to its DynamoDB table by the source's key columns
    assert [(m.source, m.target, m.keys) for m in mappings] == [
        ("fin.gl_lines", "dmsbus-src-gl_lines", ("ledger", "year", "line")),
        ("sales.order_lines", "dmsbus-src-order_lines", ("order_id", "line_no")),
        ("sales.orders", "dmsbus-src-orders", ("id",)),
    ]


def test_no_table_and_no_stack_is_one_line_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("RC_PW", "x")
    code = reconcile.main(["--engine", "postgres", "--host", "127.0.0.1", "--database", "erp",
                           "--user", "u", "--password-env", "RC_PW"])
    err = capsys.readouterr().err
    assert code == 2 and "--table" in err and "--stack" in err
    assert len(err.strip().splitlines()) == 1


def test_stack_alone_compares_every_declared_table(tmp_path, ddb, monkeypatch, capsys):
    # GIVEN a SQL Server stack declaring sales.order_lines, and its DynamoDB table in sync
    stack_dir = _source_stack(tmp_path, {"engine": "sqlserver", "server": "mssql.internal",
                                         "database": "erp", "ssl_mode": "none",
                                         "allow_unencrypted": True})
    path = stack_dir / "Pulumi.src.yaml"
    config = json.loads(path.read_text())["config"]
    config["dms-event-bus:tables"] = {
        "order_lines": {"source": {"schema": "sales", "table": "order_lines"},
                        "partition_key": {"name": "order_id", "type": "N"},
                        "sort_key": {"name": "line_no", "type": "N"}}}
    path.write_text(json.dumps({"config": config}))
    rows = _mssql_lines(3)
    ddb.create_table(
        TableName="dmsbus-src-order_lines",
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"},
                   {"AttributeName": "line_no", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "N"},
                              {"AttributeName": "line_no", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST")
    for row in rows:
        ddb.put_item(TableName="dmsbus-src-order_lines", Item=_mssql_item(row))
    monkeypatch.setattr(reconcile, "connect", lambda _params: mssql_conn(rows))
    monkeypatch.setenv("RC_MSSQL_PW", "x")
    # WHEN reconcile gets --stack and no --table
    code = reconcile.main(["--stack", "src", "--stack-dir", str(stack_dir), "--user", "reader",
                           "--password-env", "RC_MSSQL_PW", "--json"], dynamodb=ddb)
    # THEN it compared the declared table, found it equal
    out = capsys.readouterr().out
    assert code == 0, out
    (table,) = json.loads(out)["tables"]
    assert (table["source"], table["target"]) == ("sales.order_lines", "dmsbus-src-order_lines")
    assert table["source_rows"] == table["target_items"] == len(rows) > 0
