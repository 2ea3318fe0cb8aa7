"""Preflight for Oracle sources.

No Oracle server can run here, so each check's logic is tested against recorded catalog
answers: a fake DB-API connection (tests/fake_dbapi.py) answers the SQL text
`tools.preflight` really sends with rows shaped like the documented catalog columns
(V$DATABASE.LOG_MODE / SUPPLEMENTAL_LOG_DATA_MIN / _PK / _ALL, ALL_TABLES, ALL_CONSTRAINTS,
ALL_LOG_GROUPS.LOG_GROUP_TYPE, ALL_TAB_COLUMNS, SESSION_PRIVS, ALL_TAB_PRIVS). Argument
handling, the missing driver, a refused connection through the real python-oracledb
driver (thin mode) and the exit codes run for real.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import oracledb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fake_dbapi import FakeConnection
from tools import preflight

ROOT = Path(__file__).resolve().parent.parent
NO_TABLE = oracledb.DatabaseError("ORA-00942: table or view does not exist\nHelp: https://docs.oracle.com/error-help/db/ora-00942/")
CHECKS = ["ARCHIVELOG mode", "supplemental logging", "primary keys",
          "table supplemental logging", "LOB columns", "DMS user privileges"]
ALL_GRANTS = [(v, "SELECT") for v in preflight.ORACLE_SYS_VIEWS] + [("DBMS_LOGMNR", "EXECUTE")]


def catalog(
    *,
    rds: bool = False,
    log_mode: str = "ARCHIVELOG",
    log_min: str = "YES",
    log_pk: str = "YES",
    log_all: str = "NO",
    database: Any = None,
    tables: Sequence[tuple[str, str, int, int, str | None]] | None = None,
    lobs: list[tuple[str, str, str, str]] | None = None,
    privileges: tuple[str, ...] = ("CREATE SESSION", "SELECT ANY TRANSACTION", "LOGMINING"),
    objects: Any = None,
) -> FakeConnection:
    """A recorded Oracle catalog as user DMS_USER, tables owned by ERP: ready for DMS."""
    if tables is None:
        # owner, table, primary keys, primary/unique keys, its log group types (LISTAGG)
        tables = [("ERP", "ORDERS", 1, 1, None), ("ERP", "ORDER_LINES", 1, 1, None)]
    tables = list(tables)
    if lobs is None:
        lobs = [("ERP", "ORDERS", "NOTE", "CLOB")]
    if objects is None:
        objects = ALL_GRANTS

    def owned(rows: list[tuple[Any, ...]]) -> Any:
        def answer(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            return [r for r in rows if r[0] in params]
        return answer

    return FakeConnection([
        (r"^SELECT USER FROM dual$", [("DMS_USER",)]),
        (r"^SELECT log_mode, supplemental_log_data_min, supplemental_log_data_pk, "
         r"supplemental_log_data_all FROM v\$database$",
         database if database is not None else [(log_mode, log_min, log_pk, log_all)]),
        (r"^SELECT COUNT\(\*\) FROM all_users WHERE username = 'RDSADMIN'$", [(int(rds),)]),
        (r"^SELECT t\.owner, t\.table_name, .* FROM all_log_groups g .* FROM all_tables t "
         r"WHERE t\.owner IN \(:1(, :\d+)*\)", owned(tables)),
        (r"^SELECT owner, table_name, column_name, data_type FROM all_tab_columns "
         r"WHERE owner IN \(:1(, :\d+)*\) AND data_type IN \('BLOB', 'CLOB', 'NCLOB', 'LONG', "
         r"'LONG RAW', 'XMLTYPE'\)", owned(lobs)),
        (r"^SELECT privilege FROM session_privs$", [(p,) for p in privileges]),
        (r"^SELECT table_name, privilege FROM all_tab_privs WHERE table_schema = 'SYS' ", objects),
    ])


def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        conn: FakeConnection, *extra: str) -> tuple[int, dict[str, str], str]:
    monkeypatch.setenv("PF_ORACLE_PW", "s3cret")
    opened: list[Any] = []

    def fake_connect(params: Any) -> FakeConnection:
        opened.append(params)
        return conn

    monkeypatch.setattr(preflight, "connect", fake_connect)
    code = preflight.main(["--engine", "oracle", "--host", "ora.internal", "--database",
                           "ORCLPDB1", "--user", "dms_user", "--password-env", "PF_ORACLE_PW",
                           "--schemas", "ERP", *extra])
    out, err = capsys.readouterr()
    lines = {}
    for line in out.splitlines():
        if line.startswith(("PASS ", "FAIL ", "WARN ")):
            lines[line.split(" ", 1)[1].split(":", 1)[0]] = line
    if opened:
        assert (opened[0].engine, opened[0].port, opened[0].database) == (
            "oracle", 1521, "ORCLPDB1")
    return code, lines, err


def test_ready_database_passes_every_check(capsys, monkeypatch):
    code, lines, err = run(capsys, monkeypatch, catalog())
    assert (code, err) == (0, "")
    assert list(lines) == CHECKS
    assert all(line.startswith("PASS ") for line in lines.values()), lines
    assert lines["DMS user privileges"].startswith(
        "PASS DMS user privileges: user DMS_USER (self-managed Oracle): CREATE SESSION, SELECT "
        "ANY TRANSACTION, LOGMINING, SELECT on 26 SYS views, EXECUTE on DBMS_LOGMNR")


def test_noarchivelog_and_no_minimal_logging_fail_with_their_fixes(capsys, monkeypatch):
    code, lines, _ = run(capsys, monkeypatch, catalog(log_mode="NOARCHIVELOG", log_min="NO"))
    assert code == 1
    assert lines["ARCHIVELOG mode"].startswith(
        "FAIL ARCHIVELOG mode: log_mode=NOARCHIVELOG (need ARCHIVELOG)")
    assert "ALTER DATABASE ARCHIVELOG" in lines["ARCHIVELOG mode"]
    assert lines["supplemental logging"].startswith(
        "FAIL supplemental logging: supplemental_log_data_min=NO (need YES)")
    assert "ALTER DATABASE ADD SUPPLEMENTAL LOG DATA" in lines["supplemental logging"]


def test_implicit_minimal_logging_passes(capsys, monkeypatch):
    # V$DATABASE shows IMPLICIT when minimal logging comes with PK/UI/ALL logging
    code, lines, _ = run(capsys, monkeypatch, catalog(log_min="IMPLICIT"))
    assert code == 0 and lines["supplemental logging"].startswith("PASS ")


def test_keyless_table_needs_all_columns_logging(capsys, monkeypatch):
    tables = [("ERP", "ORDERS", 1, 1, None), ("ERP", "AUDIT_LOG", 0, 0, None),
              ("ERP", "EVENTS", 0, 0, "ALL COLUMN LOGGING")]
    code, lines, _ = run(capsys, monkeypatch, catalog(tables=tables))
    assert code == 1
    assert lines["table supplemental logging"].startswith(
        "FAIL table supplemental logging: without a primary key and without ALL COLUMNS "
        "logging: ERP.AUDIT_LOG — fix: ALTER TABLE ERP.AUDIT_LOG ADD SUPPLEMENTAL LOG DATA "
        "(ALL) COLUMNS"), lines
    assert lines["primary keys"].startswith("FAIL primary keys: 2 table(s) without a primary "
                                            "key in ERP: ERP.AUDIT_LOG, ERP.EVENTS")


def test_database_wide_all_columns_logging_covers_keyless_tables(capsys, monkeypatch):
    tables = [("ERP", "AUDIT_LOG", 0, 0, None)]
    code, lines, _ = run(capsys, monkeypatch, catalog(tables=tables, log_all="YES", lobs=[]))
    assert lines["table supplemental logging"].startswith("PASS "), lines


@pytest.mark.parametrize(("rds", "fix"), [
    (False, "ALTER DATABASE ADD SUPPLEMENTAL LOG DATA (PRIMARY KEY) COLUMNS"),
    (True, "EXEC rdsadmin.rdsadmin_util.alter_supplemental_logging('ADD', 'PRIMARY KEY')")])
def test_keyed_table_without_key_logging_fails(capsys, monkeypatch, rds, fix):
    tables = [("ERP", "ORDERS", 1, 1, None), ("ERP", "ITEMS", 1, 1, "PRIMARY KEY LOGGING")]
    code, lines, _ = run(capsys, monkeypatch, catalog(rds=rds, log_pk="NO", tables=tables))
    assert code == 1
    line = lines["table supplemental logging"]
    assert "without primary-key logging (database or table): ERP.ORDERS —" in line, line
    assert fix in line


@settings(max_examples=80, deadline=None)
@given(
    log_pk=st.booleans(),
    log_all=st.booleans(),
    rows=st.lists(
        st.tuples(st.booleans(), st.sampled_from(
            [None, "ALL COLUMN LOGGING", "PRIMARY KEY LOGGING", "UNIQUE KEY LOGGING",
             "FOREIGN KEY LOGGING"])),
        max_size=8),
)
def test_table_logging_verdict_follows_the_dms_rule(log_pk, log_all, rows):
    # GIVEN tables with or without a primary key, each with or without a log group, and
    # database-wide PK / ALL logging on or off
    tables = [("ERP", f"T{i}", int(pk), int(pk), group) for i, (pk, group) in enumerate(rows)]
    conn = catalog(log_pk="YES" if log_pk else "NO", log_all="YES" if log_all else "NO",
                   tables=tables, lobs=[])
    checks = {c.name: c for c in preflight.check_oracle(conn, ["ERP"])}
    # THEN a keyless table needs ALL COLUMNS logging (database or table), a keyed one its key
    # columns logged (database PK/ALL logging, or a table log group that logs them)
    def logged(pk: bool, group: str | None) -> bool:
        if log_all or group == "ALL COLUMN LOGGING":
            return True
        return pk and (log_pk or group in ("PRIMARY KEY LOGGING", "UNIQUE KEY LOGGING"))
    assert checks["table supplemental logging"].ok == all(logged(*r) for r in rows)


def test_lob_table_without_key_fails(capsys, monkeypatch):
    tables = [("ERP", "DOCS", 0, 0, "ALL COLUMN LOGGING"), ("ERP", "NOTES", 0, 1,
                                                            "ALL COLUMN LOGGING"),
              ("ERP", "ORDERS", 1, 1, None)]
    lobs = [("ERP", "DOCS", "BODY", "BLOB"), ("ERP", "DOCS", "META", "XMLTYPE"),
            ("ERP", "NOTES", "TEXT", "CLOB"), ("ERP", "ORDERS", "NOTE", "CLOB")]
    code, lines, _ = run(capsys, monkeypatch, catalog(tables=tables, lobs=lobs))
    assert code == 1
    assert lines["LOB columns"].startswith(
        "FAIL LOB columns: 1 table(s) with LOB columns and no primary or unique key in ERP: "
        "ERP.DOCS (BODY BLOB, META XMLTYPE) —"), lines


def test_missing_grants_self_managed_name_each_grant(capsys, monkeypatch):
    objects = [g for g in ALL_GRANTS if g[0] not in ("V_$LOGMNR_CONTENTS", "DBMS_LOGMNR")]
    code, lines, _ = run(capsys, monkeypatch, catalog(
        privileges=("CREATE SESSION",), objects=objects))
    assert code == 1
    line = lines["DMS user privileges"]
    assert line.startswith(
        "FAIL DMS user privileges: user DMS_USER (self-managed Oracle) lacks: SELECT ANY "
        "TRANSACTION, LOGMINING, SELECT on V_$LOGMNR_CONTENTS, EXECUTE on DBMS_LOGMNR — fix: "
        "GRANT SELECT ANY TRANSACTION TO DMS_USER; GRANT LOGMINING TO DMS_USER; GRANT SELECT "
        "ON SYS.V_$LOGMNR_CONTENTS TO DMS_USER; GRANT EXECUTE ON SYS.DBMS_LOGMNR TO DMS_USER"), line


def test_missing_grants_on_rds_use_rdsadmin(capsys, monkeypatch):
    objects = [g for g in ALL_GRANTS if g[0] != "V_$ARCHIVED_LOG"]
    code, lines, _ = run(capsys, monkeypatch, catalog(rds=True, objects=objects))
    assert code == 1
    line = lines["DMS user privileges"]
    assert "(RDS for Oracle) lacks: SELECT on V_$ARCHIVED_LOG" in line
    assert line.endswith("fix: EXEC rdsadmin.rdsadmin_util.grant_sys_object('V_$ARCHIVED_LOG', "
                         "'DMS_USER', 'SELECT')")


def test_select_any_dictionary_covers_the_views_not_logminer(capsys, monkeypatch):
    privileges = ("CREATE SESSION", "SELECT ANY TRANSACTION", "LOGMINING",
                  "SELECT ANY DICTIONARY")
    code, lines, _ = run(capsys, monkeypatch, catalog(privileges=privileges, objects=[]))
    assert lines["DMS user privileges"].startswith(
        "FAIL DMS user privileges: user DMS_USER (self-managed Oracle) lacks: EXECUTE on "
        "DBMS_LOGMNR —"), lines
    code, lines, _ = run(capsys, monkeypatch, catalog(
        privileges=privileges, objects=[("DBMS_LOGMNR", "EXECUTE")]))
    assert code == 0, lines


def test_grants_query_counts_roles_and_public(capsys, monkeypatch):
    conn = catalog()
    run(capsys, monkeypatch, conn)
    ((sql, _),) = conn.sent(r"FROM all_tab_privs")
    assert "grantee IN (USER, 'PUBLIC') OR grantee IN (SELECT role FROM session_roles)" in sql
    assert "'V_$LOGMNR_LOGS'" in sql and "'DBMS_LOGMNR'" in sql


def test_unreadable_v_database_fails_that_check_with_the_grant(capsys, monkeypatch):
    code, lines, err = run(capsys, monkeypatch, catalog(database=NO_TABLE))
    assert (code, err) == (1, "")
    assert lines["ARCHIVELOG mode"] == (
        "FAIL ARCHIVELOG mode: cannot read v$database as this login: ORA-00942: table or view "
        "does not exist Help: https://docs.oracle.com/error-help/db/ora-00942/ — fix: GRANT "
        "SELECT ON V_$DATABASE TO DMS_USER")
    assert "supplemental logging" not in lines
    assert lines["primary keys"].startswith("PASS ")


def test_owner_names_are_upper_cased_and_bound(capsys, monkeypatch):
    conn = catalog()
    code, lines, _ = run(capsys, monkeypatch, conn, "--schemas", "erp,Mixed")
    ((sql, params),) = conn.sent(r"FROM all_tables t")
    assert "t.owner IN (:1, :2)" in sql and params == ("ERP", "Mixed")
    assert lines["schemas"].startswith("FAIL schemas: no tables visible in: Mixed")


def test_default_owner_is_the_login(capsys, monkeypatch):
    conn = catalog(tables=[("DMS_USER", "T", 1, 1, None)], lobs=[])
    monkeypatch.setenv("PF_ORACLE_PW", "x")
    monkeypatch.setattr(preflight, "connect", lambda params: conn)
    code = preflight.main(["--engine", "oracle-ee", "--host", "h", "--database", "ORCL",
                           "--user", "dms_user", "--password-env", "PF_ORACLE_PW"])
    assert code == 0, capsys.readouterr()
    ((_, params),) = conn.sent(r"FROM all_tables t")
    assert params == ("DMS_USER",)


# --------------------------------------------------------------------------- for real


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*extra: str) -> list[str]:
    return ["--engine", "oracle", "--host", "127.0.0.1", "--database", "ORCLPDB1", "--user",
            "dms_user", "--password-env", "PF_ORACLE_PW", *extra]


@pytest.mark.parametrize("ssl", ["disable", "require"])
def test_refused_connection_through_the_real_driver_is_one_line_exit_2(capsys, monkeypatch,
                                                                       ssl):
    monkeypatch.setenv("PF_ORACLE_PW", "x")
    port = _closed_port()
    code = preflight.main(_cli("--port", str(port), "--ssl", ssl))
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith(f"preflight: cannot connect to oracle at 127.0.0.1:{port}/ORCLPDB1 "
                          "as dms_user: DPY-6005: cannot connect to database")
    assert "Connection refused" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_driver_names_the_pip_requirement(capsys, monkeypatch):
    monkeypatch.setenv("PF_ORACLE_PW", "x")
    monkeypatch.setitem(sys.modules, "oracledb", None)
    code = preflight.main(_cli())
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("preflight: the oracle driver is not installed (import oracledb "
                          "failed")
    assert err.rstrip().endswith(".venv/bin/pip install oracledb==26.1.0")


def test_cli_process_refused_port_prints_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "tools.preflight", *_cli("--port", str(_closed_port()))],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PF_ORACLE_PW": "x"},
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("preflight: cannot connect to oracle at 127.0.0.1:")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_database_is_one_line_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("PF_ORACLE_PW", "x")
    code = preflight.main(["--engine", "oracle", "--host", "h", "--user", "u",
                           "--password-env", "PF_ORACLE_PW"])
    assert code == 2
    assert capsys.readouterr().err == (
        "preflight: missing --database (not given and not in the secret)\n")
