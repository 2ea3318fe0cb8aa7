"""Source preflight against REAL PostgreSQL and MariaDB servers (tests/servers.py starts
them on loopback: one configured for DMS CDC, one not)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from tests.servers import (  # noqa: F401
    DbServer,
    mariadb,
    mariadb_misconfigured,
    postgres,
    postgres_misconfigured,
)
from tools import preflight
from tools.localpipe.cdc import parse_change
from tools.sourcedb import toast_tables

ROOT = Path(__file__).resolve().parent.parent


def _args(server: DbServer, engine: str, *extra: str, port: int | None = None) -> list[str]:
    return [
        "--engine",
        engine,
        "--host",
        server.host,
        "--port",
        str(port or server.port),
        "--database",
        server.dbname,
        "--user",
        server.user,
        "--password-env",
        "PREFLIGHT_TEST_PW",
        "--ssl",
        "disable",
        *extra,
    ]


def _run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    server: DbServer,
    engine: str,
    *extra: str,
    password: str | None = None,
    port: int | None = None,
) -> tuple[int, dict[str, str], str]:
    """Run the CLI entry point; return (exit code, {check: line}, stderr)."""
    monkeypatch.setenv("PREFLIGHT_TEST_PW", server.password if password is None else password)
    code = preflight.main(_args(server, engine, *extra, port=port))
    out, err = capsys.readouterr()
    lines = {}
    for line in out.splitlines():
        if line.startswith(("PASS ", "FAIL ")):
            name = line.split(" ", 1)[1].split(":", 1)[0]
            lines[name] = line
    return code, lines, err


@pytest.fixture
def pg(postgres: DbServer) -> DbServer:  # noqa: F811 - the session server imported above
    return postgres


@pytest.fixture
def pg_bad(postgres_misconfigured: DbServer) -> DbServer:  # noqa: F811
    return postgres_misconfigured


@pytest.fixture
def maria(mariadb: DbServer) -> DbServer:  # noqa: F811
    return mariadb


@pytest.fixture
def maria_bad(mariadb_misconfigured: DbServer) -> DbServer:  # noqa: F811
    return mariadb_misconfigured


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_configured_for_cdc_passes_every_check(pg, capsys, monkeypatch):
    # GIVEN a PostgreSQL with wal_level=logical, 10 slots/senders and a REPLICATION user
    # WHEN the preflight runs
    code, lines, err = _run(capsys, monkeypatch, pg, "postgres")
    # THEN every check passes and the exit code is 0
    assert code == 0, (lines, err)
    assert set(lines) == {
        "wal_level",
        "max_replication_slots",
        "max_wal_senders",
        "replication privilege",
        "primary keys",
        "replica identity",
    }
    assert all(line.startswith("PASS ") for line in lines.values())
    assert "wal_level=logical" in lines["wal_level"]


def test_postgres_misconfigured_reports_each_failing_check(pg_bad, capsys, monkeypatch):
    # GIVEN wal_level=replica, 1 slot, 1 sender and a user without REPLICATION
    code, lines, _ = _run(capsys, monkeypatch, pg_bad, "postgres")
    # THEN each of those checks fails, with what was found and the fix
    assert code == 1
    for name, found in (
        ("wal_level", "wal_level=replica"),
        ("max_replication_slots", "max_replication_slots=1"),
        ("max_wal_senders", "max_wal_senders=1"),
        ("replication privilege", "no REPLICATION attribute"),
    ):
        assert lines[name].startswith(f"FAIL {name}: "), lines[name]
        assert found in lines[name]
        assert " — fix: " in lines[name]
    assert "rds.logical_replication=1" in lines["wal_level"]
    assert "GRANT rds_replication TO app" in lines["replication privilege"]
    assert lines["primary keys"].startswith("PASS ")


def test_postgres_table_without_primary_key_is_found(pg, capsys, monkeypatch):
    # GIVEN a database with a keyed table and an unkeyed one in schema legacy
    db = pg.fresh_database("pf_nopk")
    conn = db.connect(autocommit=True)
    cur = conn.cursor()
    cur.execute("CREATE SCHEMA legacy")
    cur.execute("CREATE SCHEMA other")
    cur.execute("CREATE TABLE legacy.orders (id bigint PRIMARY KEY, note text)")
    cur.execute("CREATE TABLE legacy.audit_log (at timestamp, what text)")
    cur.execute("CREATE TABLE other.fine (id int PRIMARY KEY)")
    conn.close()
    # WHEN the preflight checks schema legacy
    code, lines, _ = _run(capsys, monkeypatch, db, "postgres", "--schemas", "legacy")
    # THEN the unkeyed table is named, the keyed one is not, and the run fails
    assert code == 1
    assert lines["primary keys"].startswith("FAIL primary keys: 1 table(s)")
    assert "legacy.audit_log" in lines["primary keys"]
    assert "legacy.orders" not in lines["primary keys"]
    # AND restricted to a schema without such tables, everything passes
    code, lines, _ = _run(capsys, monkeypatch, db, "postgres", "--schemas", "other")
    assert code == 0, lines
    # AND with no --schemas, every user schema is searched
    code, lines, _ = _run(capsys, monkeypatch, db, "postgres")
    assert "legacy.audit_log" in lines["primary keys"]


def test_postgres_unknown_schema_fails(pg, capsys, monkeypatch):
    code, lines, _ = _run(capsys, monkeypatch, pg, "postgres", "--schemas", "nope_pf")
    assert code == 1
    assert lines["schemas"].startswith("FAIL schemas: ")
    assert "not found: nope_pf" in lines["schemas"]


def test_postgres_rds_replication_membership_counts_as_privilege(pg, capsys, monkeypatch):
    # GIVEN a login without REPLICATION that is a member of rds_replication (as on RDS)
    user = f"pf_rds_{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    admin = pg.admin_connect()
    cur = admin.cursor()
    cur.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication') "
        "THEN CREATE ROLE rds_replication NOLOGIN; END IF; END $$"
    )
    cur.execute(f"CREATE ROLE {user} LOGIN NOREPLICATION PASSWORD '{password}'")
    cur.execute(f"GRANT rds_replication TO {user}")
    admin.close()
    server = replace(pg, user=user, password=password)
    # WHEN the preflight runs as that login
    code, lines, _ = _run(capsys, monkeypatch, server, "postgres")
    # THEN the privilege check passes through the membership
    assert code == 0, lines
    assert "member of rds_replication" in lines["replication privilege"]


def test_postgres_tasks_option_raises_the_slot_requirement(pg, capsys, monkeypatch):
    # GIVEN 10 slots: 12 DMS tasks would not fit
    code, lines, _ = _run(capsys, monkeypatch, pg, "postgres", "--tasks", "12")
    assert code == 1
    assert "need >= 12" in lines["max_replication_slots"]
    assert lines["max_replication_slots"].startswith("FAIL ")


# --------------------------------------------------------------------------- replica identity

#: columns whose values PostgreSQL can store out of line (TOAST): the table gets a TOAST table
TOASTABLE = [
    "text",
    "varchar",
    "varchar(5000)",
    "bytea",
    "json",
    "jsonb",
    "xml",
    "int[]",
    "numeric",
    "tsvector",
]
#: columns that cannot make a row of (id, column) large enough to be TOASTed
SMALL = [
    "int",
    "bigint",
    "timestamptz",
    "varchar(20)",
    "char(10)",
    "numeric(12,2)",
    "uuid",
    "boolean",
    "date",
    "bit(8)",
]


def _ri_lines(lines: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in lines.items() if k.startswith("replica identity")}


def _fresh(pg: DbServer, *statements: str) -> DbServer:
    db = pg.fresh_database("pf_ri")
    conn = db.connect(autocommit=True)
    cur = conn.cursor()
    for statement in statements:
        cur.execute(statement)
    conn.close()
    return db


def _fix_of(line: str) -> str:
    """The SQL statement of a replica-identity FAIL line's fix."""
    fix = line.split(" — fix: ", 1)[1]
    statement = fix.split(";", 1)[0] + ";"
    assert statement.startswith("ALTER TABLE ") and statement.endswith(" REPLICA IDENTITY FULL;")
    return statement


def test_postgres_large_text_column_under_default_identity_fails_with_the_exact_fix(
    pg, capsys, monkeypatch
):
    # GIVEN a table with a large text column under the default replica identity
    db = _fresh(pg, "CREATE SCHEMA legacy",
                "CREATE TABLE legacy.docs (id bigint PRIMARY KEY, title varchar(20), body text)")
    # WHEN the preflight runs
    code, lines, err = _run(capsys, monkeypatch, db, "postgres", "--schemas", "legacy")
    # THEN it fails (exit 1) naming the table, its identity, the column, the fix and its cost
    assert code == 1, (lines, err)
    line = lines["replica identity legacy.docs"]
    assert line.startswith("FAIL replica identity legacy.docs: replica identity DEFAULT")
    assert "body (text)" in line and "title" not in line.split(" — fix: ")[0]
    assert "fix: ALTER TABLE legacy.docs REPLICA IDENTITY FULL;" in line
    assert "WAL" in line and "old row" in line and "UPDATE and DELETE" in line
    # AND under FULL (the printed fix, run as printed) the same table passes
    _sql_as_admin(db, _fix_of(line))
    code, lines, err = _run(capsys, monkeypatch, db, "postgres", "--schemas", "legacy")
    assert code == 0, (lines, err)
    assert _ri_lines(lines) == {
        "replica identity": "PASS replica identity: 1 table(s) with columns that can be "
        "TOASTed in legacy, every one REPLICA IDENTITY FULL"
    }


def _sql_as_admin(db: DbServer, statement: str) -> None:
    conn = db.connect(autocommit=True)
    conn.cursor().execute(statement)
    conn.close()


def test_postgres_small_fixed_width_columns_pass_under_default_identity(pg, capsys, monkeypatch):
    # GIVEN tables of small columns only (no row can reach the TOAST threshold), DEFAULT
    db = _fresh(
        pg,
        "CREATE TABLE counters (id int PRIMARY KEY, n bigint, at timestamptz, "
        "code varchar(20), kind char(10), price numeric(12,2), ref uuid, ok boolean)",
        "CREATE TABLE ticks (id bigint PRIMARY KEY, at timestamptz)",
    )
    # WHEN the preflight runs
    code, lines, err = _run(capsys, monkeypatch, db, "postgres")
    # THEN the replica identity check passes: nothing there can be TOASTed
    assert code == 0, (lines, err)
    assert _ri_lines(lines) == {
        "replica identity": "PASS replica identity: no table with columns that can be "
        "TOASTed in all user schemas"
    }


def test_postgres_which_column_types_need_full_identity(pg, capsys, monkeypatch):
    # GIVEN one table per column type, each (id, that column), all under DEFAULT identity,
    # and a wide table of bounded columns whose longest possible row passes the ~2 KB
    # TOAST threshold (PostgreSQL gives it a TOAST table: its values can go out of line)
    tables = {f"t_{i}": t for i, t in enumerate(TOASTABLE + SMALL)}
    wide = ", ".join(f"c{i} varchar(20)" for i in range(30))
    db = _fresh(
        pg,
        "CREATE SCHEMA kinds",
        *(f"CREATE TABLE kinds.{name} (id int PRIMARY KEY, v {typ})"
          for name, typ in tables.items()),
        f"CREATE TABLE kinds.wide (id int PRIMARY KEY, {wide})",
        "CREATE TABLE kinds.plain (id int PRIMARY KEY, v text)",
        "ALTER TABLE kinds.plain ALTER COLUMN v SET STORAGE PLAIN",
    )
    # WHEN the preflight runs on that schema
    code, lines, _ = _run(capsys, monkeypatch, db, "postgres", "--schemas", "kinds")
    # THEN exactly the tables with a column that can be TOASTed fail (the decision is
    # PostgreSQL's own: a TOAST table and a varlena column not stored PLAIN)
    assert code == 1
    failing = {k.removeprefix("replica identity kinds.") for k in _ri_lines(lines)}
    expected = {name for name, typ in tables.items() if typ in TOASTABLE} | {"wide"}
    assert failing == expected, {tables.get(n, n) for n in failing ^ expected}
    assert all(v.startswith("FAIL ") for v in _ri_lines(lines).values())


def test_postgres_replica_identity_fix_quotes_identifiers(pg, capsys, monkeypatch):
    # GIVEN tables whose names need quoting, under DEFAULT and USING INDEX identities
    db = _fresh(
        pg,
        'CREATE SCHEMA "Sales Dept"',
        'CREATE TABLE "Sales Dept"."Order""Lines" (id int PRIMARY KEY, "Memo" jsonb)',
        'CREATE TABLE "Sales Dept".select (id int PRIMARY KEY, blob bytea)',
        'ALTER TABLE "Sales Dept".select REPLICA IDENTITY USING INDEX select_pkey',
    )
    # WHEN the preflight runs
    code, lines, _ = _run(capsys, monkeypatch, db, "postgres", "--schemas", "Sales Dept")
    assert code == 1
    ri = _ri_lines(lines)
    # THEN each fix is quoted as PostgreSQL needs it, and runs as printed
    order = ri['replica identity "Sales Dept"."Order""Lines"']
    assert 'fix: ALTER TABLE "Sales Dept"."Order""Lines" REPLICA IDENTITY FULL;' in order
    assert '"Memo" (jsonb)' in order
    select = ri['replica identity "Sales Dept"."select"']
    assert "replica identity USING INDEX" in select
    for line in ri.values():
        _sql_as_admin(db, _fix_of(line))
    code, lines, err = _run(capsys, monkeypatch, db, "postgres", "--schemas", "Sales Dept")
    assert code == 0, (lines, err)


# A column kind: (SQL type, strategy of its value as SQL text parameter, bounded?)
_CJK4 = st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF)  # 4 bytes in UTF-8


def _kind() -> st.SearchStrategy[tuple[str, st.SearchStrategy[str | None]]]:
    def chars(n: int, exact: bool) -> st.SearchStrategy[str | None]:
        return st.text(_CJK4, min_size=n if exact else 0, max_size=n) | st.none()

    bounded = st.integers(1, 300).flatmap(
        lambda n: st.sampled_from([
            (f"varchar({n})", chars(n, True)),
            (f"char({n})", chars(n, True)),
        ])
    )
    numeric = st.integers(1, 1000).map(
        lambda p: (f"numeric({p},0)", st.just("9" * p) | st.none()))
    unbounded = st.sampled_from([
        ("text", st.integers(0, 1500).flatmap(lambda n: chars(n, False))),
        ("varchar", st.integers(0, 1500).flatmap(lambda n: chars(n, False))),
        ("jsonb", st.integers(0, 1500).flatmap(
            lambda n: st.text(_CJK4, max_size=n).map(json.dumps))),
        ("bytea", st.binary(max_size=6000).map(lambda b: "\\x" + b.hex())),
    ])
    fixed = st.sampled_from([
        ("bigint", st.just("9223372036854775807")),
        ("timestamptz", st.just("2024-02-29 10:00:00+00")),
        ("uuid", st.just("00000000-0000-0000-0000-000000000001")),
    ])
    return st.one_of(bounded, numeric, unbounded, fixed)


@pytest.fixture(scope="module")
def slot_db(postgres):  # noqa: F811 - the session server imported above
    """A database with a test_decoding slot: what the replication stream carries."""
    db = postgres.fresh_database("pf_toast")
    conn = db.connect(autocommit=True)
    cur = conn.cursor()
    cur.execute("SET synchronous_commit = on")  # decoding sees flushed WAL only
    cur.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')",
                (f"pf_{db.dbname}",))
    yield db, conn, f"pf_{db.dbname}"
    cur.execute("SELECT pg_drop_replication_slot(%s)", (f"pf_{db.dbname}",))
    conn.close()


def _left_out(slot_db, kinds, values, *, target=None):
    """Create a table of these (type, _) columns, insert one row of ``values``, UPDATE another
    column; returns (columns the stream left out as unchanged-toast-datum, columns the check
    names, column names). DEFAULT replica identity; ``target``: toast_tuple_target."""
    _, conn, slot = slot_db
    cols = [f"c{i}" for i in range(len(kinds))]
    table = f"t_{secrets.token_hex(4)}"
    cur = conn.cursor()
    with_ = f" WITH (toast_tuple_target = {target})" if target else ""
    cur.execute(f"CREATE TABLE {table} (k int PRIMARY KEY, u int, "
                + ", ".join(f"{c} {t}" for c, (t, _) in zip(cols, kinds, strict=True))
                + ")" + with_)
    try:
        cur.execute(
            f"INSERT INTO {table} VALUES (1, 0, "
            + ", ".join(f"CAST(%s AS {t})" for t, _ in kinds) + ")", values)
        cur.execute(f"UPDATE {table} SET u = 1")
        cur.execute("SELECT lsn::text, data FROM pg_logical_slot_get_changes(%s, NULL, NULL)",
                    (slot,))
        changes = [parse_change(str(lsn), str(d)) for lsn, d in cur.fetchall()]
        (update,) = [c for c in changes if c is not None and c.op == "UPDATE"]
        left_out = {c.name for c in update.new if c.unchanged_toast}
        found = toast_tables(conn, "n.nspname = 'public' AND c.relname = %s", [table])
        return left_out, {name for t in found for name, _ in t.columns}, cols
    finally:
        cur.execute(f"DROP TABLE {table}")
        cur.execute("SELECT count(*) FROM pg_logical_slot_get_changes(%s, NULL, NULL)",
                    (slot,))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_value_the_stream_leaves_out_is_in_a_column_the_check_names(slot_db, data):
    # GIVEN a table of random columns (bounded, unbounded, fixed-width; up to 40 of them),
    # maybe a lower toast_tuple_target, and one row of incompressible values, some at their
    # longest, under DEFAULT identity
    kinds = data.draw(st.lists(_kind(), min_size=1, max_size=40))
    values = [data.draw(strategy) for _, strategy in kinds]
    big = data.draw(st.booleans())  # AND maybe a value far over the ~2 KB threshold
    if big:
        kinds.append(("bytea", st.nothing()))
        values.append("\\x" + secrets.token_hex(data.draw(st.integers(3000, 6000))))
    target = data.draw(st.none() | st.integers(128, 2032))
    # WHEN an UPDATE changes another column
    left_out, named, cols = _left_out(slot_db, kinds, values, target=target)
    # THEN every value the stream left out is in a column the check names (it never misses
    # one), and the check names this table whenever the stream left one out
    assert left_out <= named, (left_out - named, kinds, target)
    # AND the big incompressible value, when there is one, was left out: the property is
    # not vacuous
    if big:
        assert cols[-1] in left_out


def test_a_bounded_column_bigger_than_the_unbounded_values_is_moved_first(slot_db):
    # GIVEN a varchar(100) at its longest (404 bytes) and six text values of 364 bytes: the
    # row passes the threshold and the toaster moves the BIGGEST value first -- the varchar
    # WHEN another column is updated
    kinds = [("varchar(100)", None), *[("text", None)] * 6]
    memo = "".join(chr(0x20000 + i) for i in range(100))
    texts = ["".join(chr(0x21000 + 97 * j + i) for i in range(90)) for j in range(6)]
    left_out, named, cols = _left_out(slot_db, kinds, [memo, *texts])
    # THEN the stream leaves the varchar out, and the check names it
    assert cols[0] in left_out
    assert left_out <= named

# --------------------------------------------------------------------------- MariaDB


def test_mariadb_configured_for_cdc_passes_every_check(maria, capsys, monkeypatch):
    # GIVEN MariaDB with binlog on, ROW / FULL / NONE, 7-day retention, replication grants
    code, lines, err = _run(capsys, monkeypatch, maria, "mariadb")
    # THEN every check passes
    assert code == 0, (lines, err)
    assert set(lines) == {
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "binlog_checksum",
        "binlog retention",
        "replication privilege",
        "primary keys",
    }
    assert all(line.startswith("PASS ") for line in lines.values())


def test_mariadb_misconfigured_reports_each_failing_check(maria_bad, capsys, monkeypatch):
    # GIVEN binlog off, STATEMENT / MINIMAL / CRC32 and 1 hour of retention
    code, lines, _ = _run(capsys, monkeypatch, maria_bad, "mysql")
    # THEN each is reported as failing with what was found and the fix
    assert code == 1
    for name, found in (
        ("log_bin", "log_bin=OFF"),
        ("binlog_format", "binlog_format=STATEMENT"),
        ("binlog_row_image", "binlog_row_image=MINIMAL"),
        ("binlog_checksum", "binlog_checksum=CRC32"),
        ("binlog retention", "binlog_expire_logs_seconds=3600 (1.0 h)"),
    ):
        assert lines[name].startswith(f"FAIL {name}: "), lines[name]
        assert found in lines[name]
        assert " — fix: " in lines[name]
    assert "binlog_expire_logs_seconds >= 86400" in lines["binlog retention"]


def test_mariadb_table_without_primary_key_is_found(maria, capsys, monkeypatch):
    db = maria.fresh_database("pf_nopk")
    conn = db.connect(autocommit=True)
    cur = conn.cursor()
    cur.execute("CREATE TABLE orders (id bigint PRIMARY KEY, note text)")
    cur.execute("CREATE TABLE audit_log (at datetime, what text)")
    conn.close()
    code, lines, _ = _run(capsys, monkeypatch, db, "mariadb")
    assert code == 1
    assert lines["primary keys"].startswith("FAIL primary keys: 1 table(s)")
    assert f"{db.dbname}.audit_log" in lines["primary keys"]
    assert f"{db.dbname}.orders" not in lines["primary keys"]


def test_mariadb_user_without_replication_grants_fails(maria, capsys, monkeypatch):
    user = f"pf_nogrant_{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    admin = maria.admin_connect()
    cur = admin.cursor()
    cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
    cur.execute(f"GRANT SELECT ON {maria.dbname}.* TO %s@'127.0.0.1'", (user,))
    admin.close()
    server = replace(maria, user=user, password=password)
    code, lines, _ = _run(capsys, monkeypatch, server, "mariadb")
    assert code == 1
    assert lines["replication privilege"].startswith("FAIL replication privilege: ")
    assert "GRANT REPLICATION CLIENT, REPLICATION SLAVE" in lines["replication privilege"]


def _least_privileged(
    server: DbServer, database: str, *, replication: str = "REPLICATION CLIENT, REPLICATION SLAVE"
) -> DbServer:
    """A login with exactly the grants docs/preflight.md tells a user to give DMS on
    MySQL/MariaDB: SELECT on the replicated database plus the global replication grants
    (no SUPER, no ALL: what an RDS master user can hand out)."""
    user = f"pf_dms_{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    admin = server.admin_connect()
    cur = admin.cursor()
    for host in ("127.0.0.1", "localhost"):
        cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
        cur.execute(f"GRANT SELECT ON `{database}`.* TO %s@%s", (user, host))
        if replication:
            cur.execute(f"GRANT {replication} ON *.* TO %s@%s", (user, host))
    admin.close()
    return replace(server, user=user, password=password, dbname=database)


def _keyed_tables(db: DbServer) -> None:
    conn = db.admin_connect()
    cur = conn.cursor()
    cur.execute("CREATE TABLE orders (id bigint PRIMARY KEY, note text)")
    cur.execute("CREATE TABLE order_lines (order_id bigint, n int, qty int, "
                "PRIMARY KEY (order_id, n))")
    cur.execute("CREATE TABLE customers (code varchar(20) NOT NULL, name text, "
                "CONSTRAINT pk_customers PRIMARY KEY (code), UNIQUE KEY u_name (name(20)))")
    conn.close()


@pytest.mark.parametrize(
    "replication",
    ["REPLICATION CLIENT, REPLICATION SLAVE", "BINLOG MONITOR, REPLICATION SLAVE"],
)
def test_mariadb_least_privileged_user_passes_every_check(
    maria, replication, capsys, monkeypatch
):
    # GIVEN three tables that all have a primary key and a login with exactly the grants
    # the docs advise (SELECT on the database + replication; MariaDB's own privilege name)
    db = maria.fresh_database("pf_lp")
    _keyed_tables(db)
    server = _least_privileged(maria, db.dbname, replication=replication)
    # WHEN preflight runs as that login
    code, lines, err = _run(capsys, monkeypatch, server, "mariadb")
    # THEN every check passes: the keys are visible to it
    assert code == 0, (lines, err)
    assert len(lines) == 7
    assert all(line.startswith("PASS ") for line in lines.values()), lines


def test_mariadb_least_privileged_user_finds_the_table_without_primary_key(
    maria, capsys, monkeypatch
):
    db = maria.fresh_database("pf_lp_nopk")
    _keyed_tables(db)
    conn = db.admin_connect()
    conn.cursor().execute("CREATE TABLE audit_log (at datetime, what text, UNIQUE KEY (at))")
    conn.close()
    server = _least_privileged(maria, db.dbname)
    code, lines, _ = _run(capsys, monkeypatch, server, "mariadb")
    assert code == 1
    assert lines["primary keys"].startswith("FAIL primary keys: 1 table(s)"), lines
    assert f"{db.dbname}.audit_log" in lines["primary keys"]
    assert all(v.startswith("PASS ") for k, v in lines.items() if k != "primary keys")


def test_mariadb_least_privileged_user_on_misconfigured_server_fails_each_check(
    maria_bad, capsys, monkeypatch
):
    # GIVEN the misconfigured server, a login with only the advised grants and a keyless table
    db = maria_bad.fresh_database("pf_lp_bad")
    _keyed_tables(db)
    conn = db.admin_connect()
    conn.cursor().execute("CREATE TABLE audit_log (at datetime, what text)")
    conn.close()
    server = _least_privileged(maria_bad, db.dbname)
    code, lines, _ = _run(capsys, monkeypatch, server, "mariadb")
    # THEN each server setting fails, the grants pass, the keyless table (only) is named
    assert code == 1
    for name in ("log_bin", "binlog_format", "binlog_row_image", "binlog_checksum",
                 "binlog retention"):
        assert lines[name].startswith(f"FAIL {name}: "), lines[name]
    assert lines["replication privilege"].startswith("PASS "), lines
    assert lines["primary keys"].startswith("FAIL primary keys: 1 table(s)"), lines


def test_mariadb_least_privileged_user_without_replication_grants_fails(
    maria, capsys, monkeypatch
):
    db = maria.fresh_database("pf_lp_norepl")
    _keyed_tables(db)
    server = _least_privileged(maria, db.dbname, replication="")
    code, lines, _ = _run(capsys, monkeypatch, server, "mariadb")
    assert code == 1
    assert lines["replication privilege"].startswith("FAIL replication privilege: ")
    assert lines["primary keys"].startswith("PASS "), lines


def test_mariadb_least_privileged_user_with_unknown_schema_fails(maria, capsys, monkeypatch):
    db = maria.fresh_database("pf_lp_schema")
    _keyed_tables(db)
    server = _least_privileged(maria, db.dbname)
    code, lines, _ = _run(capsys, monkeypatch, server, "mariadb", "--schemas",
                          f"{db.dbname},nowhere_{secrets.token_hex(2)}")
    assert code == 1
    assert lines["schemas"].startswith("FAIL schemas: not found: nowhere_"), lines


# --------------------------------------------------------------------------- RDS-like MariaDB


@contextmanager
def _rds_like(server: DbServer, retention: str | None) -> Iterator[None]:
    """Make ``server`` look like RDS for MariaDB for as long as the block runs: RDS's
    ``mysql.rds_show_configuration`` procedure (its result set: name, value, description)
    reporting ``binlog retention hours`` = ``retention``. Dropped afterwards, so the shared
    server is itself again for the other tests."""
    value = "NULL" if retention is None else f"'{retention}'"
    admin = server.admin_connect()
    cur = admin.cursor()
    cur.execute("DROP PROCEDURE IF EXISTS mysql.rds_show_configuration")
    cur.execute(
        "CREATE DEFINER = CURRENT_USER PROCEDURE mysql.rds_show_configuration() "
        f"SQL SECURITY DEFINER SELECT 'binlog retention hours' AS name, {value} AS value, "
        "'binlog retention hours specifies the duration in hours before binary logs are "
        "automatically deleted.' AS description"
    )
    try:
        yield
    finally:
        cur.execute("DROP PROCEDURE IF EXISTS mysql.rds_show_configuration")
        admin.close()


def _grant_execute(server: DbServer, user: str) -> None:
    admin = server.admin_connect()
    cur = admin.cursor()
    for host in ("127.0.0.1", "localhost"):
        cur.execute("GRANT EXECUTE ON PROCEDURE mysql.rds_show_configuration TO %s@%s",
                    (user, host))
    admin.close()


@pytest.mark.parametrize(("retention", "ok"), [("24", True), ("168", True), ("1", False),
                                               (None, False)])
def test_mariadb_rds_like_least_privileged_user_reads_rds_retention(
    maria, retention, ok, capsys, monkeypatch
):
    # GIVEN an RDS-like server (rds_show_configuration, no SUPER for anyone but the admin)
    # and a DMS login with the advised grants plus EXECUTE on the procedure
    db = maria.fresh_database("pf_rds")
    _keyed_tables(db)
    server = _least_privileged(maria, db.dbname)
    with _rds_like(maria, retention):
        _grant_execute(maria, server.user)
        code, lines, err = _run(capsys, monkeypatch, server, "mariadb")
    # THEN the retention is RDS's setting (the server's expire settings say 7 days), and
    # every other check passes
    line = lines["binlog retention"]
    assert line.startswith("PASS " if ok else "FAIL "), line
    assert f"RDS binlog retention hours={retention or 'NULL'}" in line
    if not ok:
        assert "CALL mysql.rds_set_configuration('binlog retention hours', 24)" in line
    assert code == (0 if ok else 1), (lines, err)
    assert all(v.startswith("PASS ") for k, v in lines.items() if k != "binlog retention")


class _RdsDataDir:
    """A real PyMySQL connection whose SHOW GLOBAL VARIABLES reports datadir as RDS does
    (/rdsdbdata/db/): the one thing about RDS a local server cannot be. Everything else --
    the login's privileges, the procedure, the server's error for it -- is the real server's."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def cursor(self) -> Any:
        real = self.conn.cursor()

        class Cursor:
            def execute(self, sql: str, *args: Any) -> Any:
                self.variables = sql.startswith("SHOW GLOBAL VARIABLES")
                return real.execute(sql, *args)

            def fetchall(self) -> list[tuple[Any, ...]]:
                rows = [tuple(r) for r in real.fetchall()]
                if self.variables:
                    rows = [(n, "/rdsdbdata/db/") if n == "datadir" else (n, v) for n, v in rows]
                return rows

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        return Cursor()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


@pytest.mark.parametrize("call", ["denied", "granted"])
def test_mariadb_rds_like_user_who_cannot_call_rds_show_configuration_fails_retention(
    maria, call, capsys, monkeypatch
):
    # GIVEN an RDS-like server (its datadir under /rdsdbdata, rds_show_configuration saying
    # binlog retention hours NULL: binlogs purged at once) whose expire settings say 7 days,
    # and a DMS login with exactly the advised grants (no SUPER; EXECUTE on the procedure
    # only in the "granted" case)
    db = maria.fresh_database("pf_rds_denied")
    _keyed_tables(db)
    server = _least_privileged(maria, db.dbname)
    real_connect = preflight.connect
    monkeypatch.setattr(preflight, "connect", lambda params: _RdsDataDir(real_connect(params)))
    with _rds_like(maria, None):
        if call == "granted":
            _grant_execute(maria, server.user)
        code, lines, _ = _run(capsys, monkeypatch, server, "mariadb")
    # THEN retention is never passed on the expire settings, which RDS does not use: denied,
    # the check fails saying it cannot read the RDS setting and how to see it; granted, it
    # fails on the NULL it reads
    assert code == 1
    line = lines["binlog retention"]
    if call == "denied":
        assert line.startswith("FAIL binlog retention: RDS binlog retention hours cannot be "
                               "read by this login ((1370, \"execute command denied to user"), line
        assert "as the master user, CALL mysql.rds_show_configuration" in line
    else:
        assert line.startswith("FAIL binlog retention: RDS binlog retention hours=NULL"), line
    assert all(v.startswith("PASS ") for k, v in lines.items() if k != "binlog retention")


def test_mariadb_without_rds_markers_is_not_rds_even_with_the_procedure_denied(
    maria, capsys, monkeypatch
):
    # GIVEN the procedure exists but the server's variables do not say RDS (a self-managed
    # server: its expire settings are what purges binlogs)
    db = maria.fresh_database("pf_rds_no")
    _keyed_tables(db)
    server = _least_privileged(maria, db.dbname)
    with _rds_like(maria, None):
        code, lines, _ = _run(capsys, monkeypatch, server, "mariadb")
    assert code == 0, lines
    assert "binlog_expire_logs_seconds=604800" in lines["binlog retention"]


# ------------------------------------------------------------------- least-privileged PostgreSQL


def _pg_least_privileged(server: DbServer, db: DbServer, schemas: list[str], *,
                         rds: bool) -> DbServer:
    """A login with exactly the grants docs/preflight.md tells a user to give DMS on
    PostgreSQL: CONNECT on the database, USAGE and SELECT on the replicated schemas, and
    the replication privilege -- self-managed: the REPLICATION attribute; RDS-like: member
    of rds_replication (no REPLICATION attribute, as RDS's master user cannot give one).
    Never a superuser."""
    user = f"pf_dms_{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    admin = server.admin_connect()
    cur = admin.cursor()
    if rds:
        cur.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
            "'rds_replication') THEN CREATE ROLE rds_replication NOLOGIN; END IF; END $$"
        )
        cur.execute(f"CREATE ROLE {user} LOGIN NOSUPERUSER NOREPLICATION PASSWORD '{password}'")
        cur.execute(f"GRANT rds_replication TO {user}")
    else:
        cur.execute(f"CREATE ROLE {user} LOGIN NOSUPERUSER REPLICATION PASSWORD '{password}'")
    cur.execute(f'GRANT CONNECT ON DATABASE "{db.dbname}" TO {user}')
    admin.close()
    admin = server.admin_connect(db.dbname)
    cur = admin.cursor()
    for schema in schemas:
        cur.execute(f"GRANT USAGE ON SCHEMA {schema} TO {user}")
        cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {user}")
    admin.close()
    return replace(db, user=user, password=password)


def _pg_tables(db: DbServer, *extra: str) -> None:
    _sql_as_admin(db, "CREATE SCHEMA sales")
    for statement in (
        "CREATE TABLE sales.orders (id bigint PRIMARY KEY, note text)",
        "ALTER TABLE sales.orders REPLICA IDENTITY FULL",
        "CREATE TABLE sales.order_lines (order_id bigint, n int, qty int, "
        "PRIMARY KEY (order_id, n))",
        "CREATE TABLE sales.customers (code varchar(20) CONSTRAINT pk_customers PRIMARY KEY, "
        "name varchar(40))",
        *extra,
    ):
        _sql_as_admin(db, statement)


PG_CHECKS = ["wal_level", "max_replication_slots", "max_wal_senders", "replication privilege",
             "schemas", "primary keys", "replica identity"]


@pytest.mark.parametrize("rds", [False, True], ids=["self-managed", "rds-like"])
def test_postgres_least_privileged_user_passes_every_check(pg, rds, capsys, monkeypatch):
    # GIVEN keyed tables (the one with a large column REPLICA IDENTITY FULL) owned by the
    # application's login, and a DMS login with only the advised grants
    db = pg.fresh_database("pf_lp")
    _pg_tables(db)
    server = _pg_least_privileged(pg, db, ["sales"], rds=rds)
    # WHEN preflight runs as that login
    code, lines, err = _run(capsys, monkeypatch, server, "postgres", "--schemas", "sales")
    # THEN every check has its verdict: all pass
    assert code == 0, (lines, err)
    assert list(lines) == PG_CHECKS
    assert all(line.startswith("PASS ") for line in lines.values()), lines
    how = "member of rds_replication" if rds else "REPLICATION attribute"
    assert lines["replication privilege"] == (
        f"PASS replication privilege: user {server.user}: {how}")
    assert lines["replica identity"] == (
        "PASS replica identity: 1 table(s) with columns that can be TOASTed in sales, every "
        "one REPLICA IDENTITY FULL")


@pytest.mark.parametrize("rds", [False, True], ids=["self-managed", "rds-like"])
def test_postgres_least_privileged_user_sees_keyless_and_default_identity_tables(
    pg, rds, capsys, monkeypatch
):
    # GIVEN also a keyless table and a large-value table under DEFAULT identity, both
    # owned by the application's login (the DMS login can read them, not alter them)
    db = pg.fresh_database("pf_lp_bad")
    _pg_tables(db, "CREATE TABLE sales.audit_log (at timestamptz, what varchar(200))",
               "CREATE TABLE sales.docs (id int PRIMARY KEY, body text)")
    server = _pg_least_privileged(pg, db, ["sales"], rds=rds)
    code, lines, _ = _run(capsys, monkeypatch, server, "postgres", "--schemas", "sales")
    assert code == 1
    assert lines["primary keys"] == ("FAIL primary keys: 1 table(s) without a primary key in "
                                     "sales: sales.audit_log — fix: add a PRIMARY KEY to each "
                                     "(DMS cannot apply their UPDATE/DELETE to a keyed DynamoDB "
                                     "table), or exclude them from the task's table mappings")
    assert lines["replica identity sales.docs"].startswith(
        "FAIL replica identity sales.docs: replica identity DEFAULT; columns that can be "
        "TOASTed: body (text).")
    assert [k for k, v in lines.items() if v.startswith("FAIL")] == [
        "primary keys", "replica identity sales.docs"]


def test_postgres_least_privileged_user_on_misconfigured_server(pg_bad, capsys, monkeypatch):
    db = pg_bad.fresh_database("pf_lp_mis")
    _pg_tables(db)
    server = _pg_least_privileged(pg_bad, db, ["sales"], rds=False)
    code, lines, _ = _run(capsys, monkeypatch, server, "postgres", "--schemas", "sales")
    assert code == 1
    verdicts = {k: v.split(" ", 1)[0] for k, v in lines.items()}
    assert verdicts == {"wal_level": "FAIL", "max_replication_slots": "FAIL",
                        "max_wal_senders": "FAIL", "replication privilege": "PASS",
                        "schemas": "PASS", "primary keys": "PASS", "replica identity": "PASS"}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_unreachable_port_is_one_line_exit_2(kind, request, capsys, monkeypatch):
    server = request.getfixturevalue(kind)
    code, lines, err = _run(capsys, monkeypatch, server, kind, port=_closed_port())
    assert code == 2
    assert lines == {}
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("preflight: cannot connect to ")
    assert "Traceback" not in err


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_bad_password_is_one_line_exit_2(kind, request, capsys, monkeypatch):
    server = request.getfixturevalue(kind)
    code, lines, err = _run(capsys, monkeypatch, server, kind, password="wrong-password")
    assert code == 2
    assert lines == {}
    assert len(err.strip().splitlines()) == 1
    assert ("authentication failed" in err) or ("Access denied" in err)
    assert "wrong-password" not in err and server.password not in err


def test_cli_process_unreachable_host_prints_no_traceback(pg):
    # GIVEN the real command line (python -m tools.preflight) and a closed port
    env = {**os.environ, "PREFLIGHT_TEST_PW": "x"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.preflight",
            *_args(pg, "postgres", port=_closed_port()),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # THEN one line on stderr, exit 2, nothing on stdout
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_password_env_is_one_line_exit_2(pg, capsys, monkeypatch):
    monkeypatch.delenv("PREFLIGHT_TEST_PW", raising=False)
    code = preflight.main(_args(pg, "postgres"))
    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip() == "preflight: environment variable PREFLIGHT_TEST_PW is not set"


# --------------------------------------------------------------------------- Secrets Manager


def test_password_from_secrets_manager_secret(pg, capsys):
    # GIVEN an RDS-style secret (username, password, host, port, dbname) in moto
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="eu-west-1")
        arn = sm.create_secret(
            Name=f"dmsbus-test-source-{secrets.token_hex(3)}",
            SecretString=json.dumps(
                {
                    "engine": "postgres",
                    "username": pg.user,
                    "password": pg.password,
                    "host": pg.host,
                    "port": pg.port,
                    "dbname": pg.dbname,
                }
            ),
        )["ARN"]
        # WHEN the preflight gets only the secret ARN
        code = preflight.main(["--engine", "postgres", "--secret-arn", arn, "--ssl", "disable"])
        out, err = capsys.readouterr()
        # THEN it connects with the secret's credentials and everything passes
        assert code == 0, (out, err)
        assert f"user {pg.user}" in out
        assert pg.password not in out + err

        # AND a secret that does not exist is one line, exit 2
        missing = arn.rsplit(":", 1)[0] + ":dmsbus-test-nope-AbCdEf"
        code = preflight.main(["--engine", "postgres", "--secret-arn", missing, "--ssl", "disable"])
        out, err = capsys.readouterr()
        assert code == 2
        assert out == ""
        assert len(err.strip().splitlines()) == 1
        assert err.startswith(f"preflight: cannot read secret {missing}")


def test_unresolvable_host_is_one_line_exit_2(capsys, monkeypatch):
    # GIVEN a host name that cannot resolve (.invalid is reserved, RFC 2606)
    monkeypatch.setenv("PREFLIGHT_TEST_PW", "x")
    for engine in ("postgres", "mariadb"):
        code = preflight.main(
            [
                "--engine",
                engine,
                "--host",
                "db.example.invalid",
                "--database",
                "app",
                "--user",
                "dms",
                "--password-env",
                "PREFLIGHT_TEST_PW",
            ]
        )
        out, err = capsys.readouterr()
        # THEN one line naming where it tried to connect, exit 2
        assert code == 2
        assert out == ""
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith(
            f"preflight: cannot connect to {engine.replace('mariadb', 'mysql')}"
            " at db.example.invalid:"
        )


def test_password_is_never_a_command_line_option(capsys):
    # GIVEN --password on the command line (not an abbreviation of --password-env)
    with pytest.raises(SystemExit) as exc:
        preflight.main(["--engine", "postgres", "--host", "h", "--password", "s3cr3t-value"])
    # THEN a usage error (exit 2) that does not echo the value
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "--password is not accepted: use --password-env VAR or --secret-arn ARN" in err
    assert "s3cr3t-value" not in err


def test_no_password_source_is_one_line_exit_2(capsys):
    code = preflight.main(["--engine", "postgres", "--host", "h", "--database", "d", "--user", "u"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip() == (
        "preflight: no password source: give --password-env VAR or --secret-arn ARN"
    )


@pytest.mark.parametrize("engine", ["aurora-postgresql", "aurora", "mysql"])
def test_dms_engine_names_select_the_right_checks(engine, request, capsys, monkeypatch):
    # GIVEN a DMS engine name that speaks the PostgreSQL or MySQL protocol
    server = request.getfixturevalue("postgres" if "postgres" in engine else "mariadb")
    code, lines, err = _run(capsys, monkeypatch, server, engine)
    # THEN the engine's own checks run (all pass on the configured servers)
    assert code == 0, (lines, err)
    assert ("wal_level" in lines) == ("postgres" in engine)
    assert ("binlog_format" in lines) == ("postgres" not in engine)


# --------------------------------------------------------------------------- --stack


def _source_stack(tmp_path: Path, source: dict[str, Any], name: str = "src",
                  schemas: tuple[str, ...] = ("sales",)) -> Path:
    """A stack file (in tmp_path) with a table per schema in ``schemas`` and a DMS section
    whose source is ``source`` (secret_arn defaults to a made-up one)."""
    upper = source.get("engine") == "oracle"  # Oracle stacks spell names as Oracle stores them
    config: dict[str, Any] = {
        "aws:region": "eu-west-1",
        "dms-event-bus:tables": {f"orders_{i}": {
            "source": {"schema": schema.upper() if upper else schema,
                       "table": "ORDERS" if upper else "orders"},
            "partition_key": {"name": "ID" if upper else "id", "type": "N"}}
            for i, schema in enumerate(schemas)},
    }
    if source:
        config["dms-event-bus:dms"] = {
            "capacity": {"mode": "serverless", "min_capacity_units": 1,
                         "max_capacity_units": 4},
            "network": {"vpc_id": "vpc-0123456789abcdef0",
                        "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                        "source_cidrs": ["10.20.0.0/24"]},
            "source": {"secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
                       "src-AbCdEf", **source},
        }
    (tmp_path / f"Pulumi.{name}.yaml").write_text(json.dumps({"config": config}))
    return tmp_path


def _plain(server: DbServer, engine: str) -> dict[str, Any]:
    return {"engine": engine, "server": server.host, "port": server.port,
            "database": server.dbname, "ssl_mode": "none", "allow_unencrypted": True}


def test_stack_fills_engine_host_port_database(maria, tmp_path, capsys, monkeypatch):
    # GIVEN a stack file whose DMS source is the MariaDB server (unencrypted, as its TLS mode)
    stack_dir = _source_stack(tmp_path, _plain(maria, "mariadb"), schemas=(maria.dbname,))
    monkeypatch.setenv("PREFLIGHT_TEST_PW", maria.password)
    # WHEN preflight gets only --stack and the login (the password from the environment)
    code = preflight.main(["--stack", "src", "--stack-dir", str(stack_dir), "--user",
                           maria.user, "--password-env", "PREFLIGHT_TEST_PW"])
    out, err = capsys.readouterr()
    # THEN it connected to that server and ran the MariaDB checks on the stack's schemas
    assert code == 0, (out, err)
    assert "PASS binlog_format: binlog_format=ROW (need ROW)" in out
    assert f"PASS primary keys: every table in {maria.dbname} has a primary key" in out


def test_explicit_options_override_the_stack(maria, tmp_path, capsys, monkeypatch):
    # GIVEN a stack saying Aurora MySQL on a host and port that do not answer
    source = {**_plain(maria, "aurora"), "server": "aurora.db.invalid", "port": 3307,
              "database": "not_this_one"}
    stack_dir = _source_stack(tmp_path, source, schemas=(maria.dbname,))
    monkeypatch.setenv("PREFLIGHT_TEST_PW", maria.password)
    # WHEN host, port and database are given on the command line
    code = preflight.main(["--stack", "src", "--stack-dir", str(stack_dir), "--host",
                           maria.host, "--port", str(maria.port), "--database", maria.dbname,
                           "--user", maria.user, "--password-env", "PREFLIGHT_TEST_PW"])
    out, err = capsys.readouterr()
    # THEN those win, and the stack's engine (aurora = Aurora MySQL) chose the MySQL checks
    assert code == 0, (out, err)
    assert "PASS log_bin" in out


def test_stack_secret_gives_the_login_and_password(pg, tmp_path, capsys):
    # GIVEN an RDS-style secret with only username and password, named by the stack file
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="eu-west-1")
        arn = sm.create_secret(
            Name=f"dmsbus-test-src-{secrets.token_hex(3)}",
            SecretString=json.dumps({"username": pg.user, "password": pg.password}),
        )["ARN"]
        stack_dir = _source_stack(tmp_path, {**_plain(pg, "aurora-postgresql"),
                                             "secret_arn": arn}, schemas=("public",))
        # WHEN preflight gets only --stack
        code = preflight.main(["--stack", "src", "--stack-dir", str(stack_dir)],
                              secrets_client=sm)
    out, err = capsys.readouterr()
    # THEN the secret's login was used against the stack's server: PostgreSQL checks pass
    assert code == 0, (out, err)
    assert f"PASS replication privilege: user {pg.user}" in out
    assert pg.password not in out + err


def test_stack_schemas_are_checked_unless_given(pg, tmp_path, capsys, monkeypatch):
    # GIVEN a stack replicating tables of schemas public and legacy_pf (absent on the server)
    stack_dir = _source_stack(tmp_path, _plain(pg, "postgres"), schemas=("public", "legacy_pf"))
    monkeypatch.setenv("PREFLIGHT_TEST_PW", pg.password)
    base = ["--stack", "src", "--stack-dir", str(stack_dir), "--user", pg.user,
            "--password-env", "PREFLIGHT_TEST_PW"]
    # WHEN preflight reads the stack: those schemas are the ones checked
    assert preflight.main(base) == 1
    out = capsys.readouterr().out
    assert "FAIL schemas: not found: legacy_pf" in out
    assert "PASS primary keys: every table in legacy_pf, public has a primary key" in out
    # AND --schemas given on the command line wins
    assert preflight.main([*base, "--schemas", "public"]) == 0, capsys.readouterr()


def test_stack_engine_and_explicit_engine_names(tmp_path, capsys, monkeypatch):
    # GIVEN a SQL Server stack
    stack_dir = _source_stack(tmp_path, {"engine": "sqlserver", "server": "mssql.internal",
                                         "database": "erp", "ssl_mode": "none",
                                         "allow_unencrypted": True})
    opened: list[Any] = []

    def fake_connect(params: Any) -> Any:
        opened.append(params)
        raise preflight.SourceError("stop here")

    monkeypatch.setattr(preflight, "connect", fake_connect)
    monkeypatch.setenv("PREFLIGHT_TEST_PW", "x")
    base = ["--stack", "src", "--stack-dir", str(stack_dir), "--user", "u", "--password-env",
            "PREFLIGHT_TEST_PW"]
    assert preflight.main(base) == 2
    assert (opened[-1].engine, opened[-1].host, opened[-1].port, opened[-1].database,
            opened[-1].ssl) == ("sqlserver", "mssql.internal", 1433, "erp", "disable")
    # AND an explicit --engine wins (with its own default port), RDS's names accepted
    assert preflight.main([*base, "--engine", "oracle-se2", "--ssl", "require"]) == 2
    assert (opened[-1].engine, opened[-1].port, opened[-1].ssl) == ("oracle", 1521, "require")
    capsys.readouterr()


def test_oracle_stack_with_tls_connects_to_the_tls_port(tmp_path, capsys, monkeypatch):
    # GIVEN an Oracle stack with TLS and no port: DMS connects to the TLS listener, 2484
    stack_dir = _source_stack(tmp_path, {
        "engine": "oracle", "server": "ora.internal", "database": "ERPPDB.EU.EXAMPLE.COM",
        "ssl_mode": "verify-ca",
        "certificate_arn": "arn:aws:dms:eu-west-1:123456789012:cert:ABCDEFGHIJKLMNOP"})
    opened: list[Any] = []

    def fake_connect(params: Any) -> Any:
        opened.append(params)
        raise preflight.SourceError("stop here")

    monkeypatch.setattr(preflight, "connect", fake_connect)
    monkeypatch.setenv("PREFLIGHT_TEST_PW", "x")
    code = preflight.main(["--stack", "src", "--stack-dir", str(stack_dir), "--user", "u",
                           "--password-env", "PREFLIGHT_TEST_PW"])
    assert code == 2, capsys.readouterr()
    assert (opened[0].engine, opened[0].port, opened[0].database, opened[0].ssl) == (
        "oracle", 2484, "ERPPDB.EU.EXAMPLE.COM", "require")


def test_a_mysql_family_stack_without_database_is_checked_and_reconciled(
        maria, tmp_path, capsys, monkeypatch):
    # GIVEN a MariaDB stack with no dms.source.database (the config does not ask for one:
    # a MySQL-family endpoint connects to the server; an RDS secret has no dbname) and a
    # table in the schema (= database) the stack replicates
    db = maria.fresh_database("pf_nodb")
    conn = db.connect(autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute("INSERT INTO orders VALUES (1, 'a'), (2, 'b')")
    finally:
        conn.close()
    source = {k: v for k, v in _plain(db, "mariadb").items() if k != "database"}
    stack_dir = _source_stack(tmp_path, source, schemas=(db.dbname,))
    monkeypatch.setenv("PREFLIGHT_TEST_PW", db.password)
    base = ["--stack", "src", "--stack-dir", str(stack_dir), "--user", db.user,
            "--password-env", "PREFLIGHT_TEST_PW"]
    # WHEN preflight reads that stack THEN it connects without a default database and
    # checks the stack's schema
    code = preflight.main(base)
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    assert f"PASS primary keys: every table in {db.dbname} has a primary key" in out
    # AND reconcile reads the declared table qualified by its schema
    from tools import reconcile

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="eu-west-1")
        ddb.create_table(
            TableName="dmsbus-src-orders_0",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST")
        for i, v in ((1, "a"), (2, "b")):
            ddb.put_item(TableName="dmsbus-src-orders_0",
                         Item={"id": {"N": str(i)}, "v": {"S": v}})
        code = reconcile.main([*base, "--json"], dynamodb=ddb)
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    (table,) = json.loads(out)["tables"]
    assert (table["source"], table["source_rows"]) == (f"{db.dbname}.orders", 2)


def test_mysql_without_database_or_schemas_names_what_to_give(maria, capsys, monkeypatch):
    # GIVEN a MySQL-family connection with no default database and no --schemas
    args = _args(maria, "mysql")
    i = args.index("--database")
    del args[i : i + 2]
    monkeypatch.setenv("PREFLIGHT_TEST_PW", maria.password)
    # THEN the server checks run and the key check fails naming what to give (it would
    # otherwise pass having looked at no table)
    code = preflight.main(args)
    out = capsys.readouterr().out
    assert code == 1, out
    assert "PASS binlog_format" in out
    assert ("FAIL schemas: no database to check (no --schemas, no --database) — fix: give "
            "--schemas DB[,DB...] (or --stack NAME: the databases it replicates)") in out
    assert "primary keys" not in out


@pytest.mark.parametrize(("engine", "needs"), [
    ("postgres", True), ("aurora-postgresql", True), ("sqlserver", True), ("oracle", True),
    ("mysql", False), ("mariadb", False), ("aurora", False),
])
def test_only_the_engines_that_connect_to_a_database_need_one(engine, needs, monkeypatch):
    # GIVEN a connection without --database (and a secret without dbname)
    monkeypatch.setenv("PREFLIGHT_TEST_PW", "x")
    args = preflight.build_parser().parse_args(
        ["--engine", engine, "--host", "h", "--user", "u", "--password-env", "PREFLIGHT_TEST_PW"])
    # THEN PostgreSQL (it would pick the login's name), SQL Server (the login's default
    # database: the checks read DB_NAME()) and Oracle (the service) refuse it on one line;
    # the MySQL family connects to the server
    if needs:
        with pytest.raises(preflight.SourceError, match=r"^missing --database"):
            preflight.params_from_args(args, engine)
    else:
        params = preflight.params_from_args(args, engine)
        assert params.database is None
        assert params.describe() == "mysql at h:3306 as u"


@pytest.mark.parametrize(("source", "stack", "message"), [
    (None, "nope", "preflight: no stack file Pulumi.nope.yaml (stacks found: src)"),
    ({}, "src", "preflight: stack 'src' has no dms-event-bus:dms section (no DMS source): "
                "give --engine, --host, --database and a password source instead of --stack"),
])
def test_stack_problems_are_one_line_exit_2(tmp_path, capsys, source, stack, message):
    stack_dir = _source_stack(tmp_path, source or {})
    code = preflight.main(["--stack", stack, "--stack-dir", str(stack_dir)])
    out, err = capsys.readouterr()
    assert (code, out, err) == (2, "", message + "\n")


def test_invalid_stack_source_is_one_line_exit_2(tmp_path, capsys):
    stack_dir = _source_stack(tmp_path, {"engine": "aurora-mysql", "server": "db.internal"})
    code = preflight.main(["--stack", "src", "--stack-dir", str(stack_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("preflight: stack 'src': ") and "engine" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("engine", "hint"), [
    ("aurora-mysql5", "unknown engine 'aurora-mysql5' (Aurora MySQL is 'aurora')"),
    ("db2", "unknown engine 'db2': expected the stack's dms.source.engine"),
])
def test_unknown_engine_names_the_accepted_ones(capsys, engine, hint):
    with pytest.raises(SystemExit) as exc:
        preflight.main(["--engine", engine])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert hint in err
    assert "aurora (Aurora MySQL)" in err and "aurora-postgresql (Aurora PostgreSQL)" in err
    assert "aurora-mysql = aurora" in err and "sqlserver-se = sqlserver" in err
    assert len(err.strip().splitlines()) == 1


def test_help_says_which_engine_name_is_which(capsys):
    with pytest.raises(SystemExit):
        preflight.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "aurora (Aurora MySQL)" in out and "sqlserver (SQL Server / RDS for SQL Server)" in out
    assert "--stack NAME" in out


def test_no_engine_and_no_stack_is_one_line_exit_2(capsys):
    code = preflight.main(["--host", "db.internal"])
    assert code == 2
    assert capsys.readouterr().err.startswith("preflight: no engine: give --engine ENGINE or "
                                              "--stack NAME")


# --------------------------------------------------------------------------- writeback targets


def _writeback_stack(tmp_path: Path, legacy_table: str, kind: str, **mapping: object) -> Path:
    """A stack file (in tmp_path) whose writeback writes `legacy_table`."""
    body = {"legacy_table": legacy_table, "key_columns": {"id": "code"},
            "columns": {"qty": "qty"}, "version_column": "row_version", **mapping}
    config = {
        "aws:region": "eu-west-1",
        "dms-event-bus:tables": {"orders": {"source": {"schema": "s", "table": "orders"},
                                            "partition_key": {"name": "id", "type": "N"}}},
        "dms-event-bus:ingest_api": {"entities": {"order_requests": {"fields": {
            "qty": {"type": "integer"}}}}},
        "dms-event-bus:writeback": {
            "target": {"kind": kind, "host": "db.internal", "database": "erp", "secret_arn":
                       "arn:aws:secretsmanager:eu-west-1:123456789012:secret:w-AbCdEf"},
            "vpc": {"subnet_ids": ["subnet-0a1b2c3d4e5f60001"],
                    "security_group_ids": ["sg-0a1b2c3d4e5f60718"]},
            "tables": {"order_requests": body}},
    }
    (tmp_path / "Pulumi.wb.yaml").write_text(json.dumps({"config": config}))
    return tmp_path


def _writeback_run(capsys, monkeypatch, server: DbServer, engine: str, stack_dir: Path
                   ) -> tuple[int, dict[str, str]]:
    monkeypatch.setenv("PREFLIGHT_TEST_PW", server.password)
    code = preflight.main(_args(server, engine, "--writeback-stack", "wb",
                                "--stack-dir", str(stack_dir)))
    out, err = capsys.readouterr()
    assert err == "", err
    lines = {}
    for line in out.splitlines():
        if line.startswith(("PASS ", "FAIL ", "WARN ")):
            lines[line.split(" ", 1)[1].split(":", 1)[0]] = line
    return code, lines


def _create(server: DbServer, *statements: str) -> None:
    conn = server.connect(autocommit=True)
    cur = conn.cursor()
    for statement in statements:
        cur.execute(statement)
    conn.close()


def test_writeback_postgres_numeric_version_and_exact_keys_pass(pg, capsys, monkeypatch,
                                                                tmp_path):
    db = pg.fresh_database("pf_wb")
    _create(db, "CREATE SCHEMA sales", "CREATE TABLE sales.order_requests (code text PRIMARY "
            "KEY, qty integer, row_version bigint NOT NULL)")
    code, lines = _writeback_run(capsys, monkeypatch, db, "postgres",
                                 _writeback_stack(tmp_path, "sales.order_requests", "postgres"))
    assert code == 0, lines
    name = "writeback sales.order_requests"
    assert set(lines) == {name, f"{name} version column", f"{name} key collation"}
    assert all(line.startswith("PASS ") for line in lines.values()), lines
    assert "row_version bigint (numeric)" in lines[f"{name} version column"]


def test_writeback_postgres_text_version_fails_and_ci_collation_warns(pg, capsys, monkeypatch,
                                                                      tmp_path):
    # GIVEN a version column of a text type and a key under a nondeterministic (ICU) collation
    db = pg.fresh_database("pf_wb")
    _create(db, "CREATE SCHEMA sales",
            "CREATE COLLATION sales.ci (provider = icu, locale = 'und-u-ks-level2', "
            "deterministic = false)",
            "CREATE TABLE sales.order_requests (code text COLLATE sales.ci PRIMARY KEY, "
            "qty integer, row_version varchar(20) NOT NULL)")
    # WHEN the writeback preflight runs
    code, lines = _writeback_run(capsys, monkeypatch, db, "postgres",
                                 _writeback_stack(tmp_path, "sales.order_requests", "postgres"))
    # THEN the version column fails with its fix, the collation is a warning
    name = "writeback sales.order_requests"
    assert code == 1
    assert lines[f"{name} version column"].startswith(
        f"FAIL {name} version column: row_version character varying(20): not a number type")
    assert ("ALTER TABLE sales.order_requests ALTER COLUMN row_version TYPE bigint"
            in lines[f"{name} version column"])
    assert lines[f"{name} key collation"].startswith(f"WARN {name} key collation: code text")
    assert "case-insensitive" in lines[f"{name} key collation"]


def test_writeback_missing_table_and_column_fail(pg, capsys, monkeypatch, tmp_path):
    db = pg.fresh_database("pf_wb")
    code, lines = _writeback_run(capsys, monkeypatch, db, "postgres",
                                 _writeback_stack(tmp_path, "sales.order_requests", "postgres"))
    assert code == 1
    assert lines["writeback sales.order_requests"].startswith(
        "FAIL writeback sales.order_requests: table not found")
    _create(db, "CREATE SCHEMA sales", "CREATE TABLE sales.order_requests (code text PRIMARY "
            "KEY, row_version bigint)")
    code, lines = _writeback_run(capsys, monkeypatch, db, "postgres", tmp_path)
    assert code == 1
    assert "no column(s) qty" in lines["writeback sales.order_requests"]


@pytest.mark.parametrize(("collation", "warns"), [
    ("utf8mb4_general_ci", True), ("utf8mb4_unicode_ci", True), ("utf8mb4_bin", False),
    ("latin1_general_cs", False),
])
def test_writeback_mariadb_key_collations(maria, capsys, monkeypatch, tmp_path, collation,
                                          warns):
    # GIVEN a legacy table whose string key has the given collation, version a VARCHAR
    db = maria.fresh_database("pf_wb")
    charset = collation.split("_", 1)[0]
    _create(db, f"CREATE TABLE order_requests (code varchar(40) CHARACTER SET {charset} "
            f"COLLATE {collation} PRIMARY KEY, qty int, row_version varchar(20) NOT NULL)")
    legacy = f"{db.dbname}.order_requests"
    # WHEN the writeback preflight runs on the real server
    code, lines = _writeback_run(capsys, monkeypatch, db, "mariadb",
                                 _writeback_stack(tmp_path, legacy, "mysql"))
    # THEN a case-insensitive key collation warns (exit unaffected), a text version fails
    name = f"writeback {legacy}"
    assert code == 1
    assert lines[f"{name} key collation"].startswith("WARN " if warns else "PASS "), lines
    if warns:
        assert f"COLLATE {collation}" in lines[f"{name} key collation"]
        assert "COLLATE utf8mb4_bin" in lines[f"{name} key collation"]
    assert lines[f"{name} version column"].startswith(f"FAIL {name} version column: "
                                                      "row_version varchar(20)")
    assert f"ALTER TABLE {legacy} MODIFY row_version BIGINT NOT NULL" in (
        lines[f"{name} version column"])


def test_writeback_mariadb_numeric_version_passes(maria, capsys, monkeypatch, tmp_path):
    db = maria.fresh_database("pf_wb")
    _create(db, "CREATE TABLE order_requests (code varchar(40) COLLATE utf8mb4_bin PRIMARY "
            "KEY, qty int, row_version bigint unsigned NOT NULL)")
    legacy = f"{db.dbname}.order_requests"
    code, lines = _writeback_run(capsys, monkeypatch, db, "mariadb",
                                 _writeback_stack(tmp_path, legacy, "mysql"))
    assert code == 0, lines
    assert all(line.startswith("PASS ") for line in lines.values()), lines


def test_writeback_stack_without_writeback_is_one_line(pg, capsys, monkeypatch, tmp_path):
    (tmp_path / "Pulumi.wb.yaml").write_text(json.dumps({"config": {
        "dms-event-bus:tables": {"orders": {"source": {"schema": "s", "table": "orders"},
                                            "partition_key": {"name": "id", "type": "N"}}}}}))
    monkeypatch.setenv("PREFLIGHT_TEST_PW", pg.password)
    code = preflight.main(_args(pg, "postgres", "--writeback-stack", "wb",
                                "--stack-dir", str(tmp_path)))
    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip() == ("preflight: stack 'wb' has no dms-event-bus:writeback section: "
                           "nothing to check with --writeback-stack")
