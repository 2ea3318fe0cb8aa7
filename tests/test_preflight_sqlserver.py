"""Preflight for SQL Server sources.

No SQL Server can run here, so each check's logic is tested against recorded catalog
answers: a fake DB-API connection (tests/fake_dbapi.py) answers the SQL text
`tools.preflight` really sends with rows shaped like the documented catalog columns
(sys.databases, sys.tables, sys.indexes, sys.columns/sys.types, sys.dm_server_services,
msdb.dbo.backupset, msdb.dbo.cdc_jobs). Argument handling, the missing driver, a refused
connection through the real python-tds driver and the exit codes run for real.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytds
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fake_dbapi import FakeConnection
from tools import preflight

ROOT = Path(__file__).resolve().parent.parent
DENIED = pytds.ProgrammingError(
    "The SELECT permission was denied on the object 'backupset', database 'msdb', schema 'dbo'."
)
VIEW_SERVER_STATE = pytds.ProgrammingError(
    "VIEW SERVER STATE permission was denied on object 'server', database 'master'."
)
CHECKS = ["recovery model", "database CDC", "table CDC", "primary keys", "LOB columns",
          "SQL Server Agent", "full backup", "CDC polling interval"]


def catalog(
    *,
    rds: bool = False,
    recovery: str = "FULL",
    cdc_db: bool = True,
    published: bool = False,
    tables: list[tuple[str, str, bool, bool, bool, bool]] | None = None,
    lobs: list[tuple[str, str, str, str]] | None = None,
    services: Any = None,
    backup: Any = dt.datetime(2026, 12, 4, 23, 10, 5),
    polling: Any = None,
    schemas: tuple[str, ...] = ("dbo", "sales"),
) -> FakeConnection:
    """A recorded SQL Server catalog: every table MS-CDC tracked, keyed, Agent running."""
    if tables is None:
        # sys.tables: schema, name, is_tracked_by_cdc, is_replicated, has PK, has PK/unique
        tables = [("dbo", "orders", True, False, True, True),
                  ("sales", "order_lines", True, False, True, True)]
    if lobs is None:
        lobs = [("dbo", "orders", "note", "nvarchar")]  # nvarchar(max): max_length = -1
    if services is None:
        services = [("SQL Server (MSSQLSERVER)", "Running"),
                    ("SQL Server Agent (MSSQLSERVER)", "Running")]
    if polling is None:
        polling = [(86399,)]

    def in_schemas(rows: list[tuple[Any, ...]]) -> Any:
        def answer(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            return [r for r in rows if not params or r[0] in params]
        return answer

    return FakeConnection([
        (r"^SELECT SUSER_SNAME\(\), DB_NAME\(\)$", [("dms_user", "erp")]),
        (r"^SELECT CASE WHEN DB_ID\('rdsadmin'\) IS NULL THEN 0 ELSE 1 END$", [(int(rds),)]),
        (r"^SELECT name, recovery_model_desc, is_cdc_enabled, is_published FROM sys\.databases "
         r"WHERE name = DB_NAME\(\)$", [("erp", recovery, cdc_db, published)]),
        (r"^SELECT s\.name, t\.name, t\.is_tracked_by_cdc, t\.is_replicated, .* FROM sys\.tables t",
         in_schemas([tuple(r) for r in tables])),
        (r"^SELECT name FROM sys\.schemas$", [(s,) for s in schemas]),
        (r"^SELECT s\.name, t\.name, c\.name, ty\.name FROM sys\.columns c", in_schemas(lobs)),
        (r"FROM sys\.dm_server_services$", services),
        (r"FROM msdb\.dbo\.backupset WHERE database_name = DB_NAME\(\) AND type = 'D'$",
         backup if isinstance(backup, BaseException) else [(backup,)]),
        (r"FROM msdb\.dbo\.cdc_jobs WHERE database_id = DB_ID\(\) AND job_type = 'capture'$",
         polling),
    ])


def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        conn: FakeConnection, *extra: str) -> tuple[int, dict[str, str], str]:
    """preflight.main for SQL Server with the fake connection in place of the driver's."""
    monkeypatch.setenv("PF_SQLSERVER_PW", "s3cret")
    opened: list[Any] = []

    def fake_connect(params: Any) -> FakeConnection:
        opened.append(params)
        return conn

    monkeypatch.setattr(preflight, "connect", fake_connect)
    code = preflight.main(["--engine", "sqlserver", "--host", "mssql.internal", "--database",
                           "erp", "--user", "dms_user", "--password-env", "PF_SQLSERVER_PW",
                           *extra])
    out, err = capsys.readouterr()
    lines = {}
    for line in out.splitlines():
        if line.startswith(("PASS ", "FAIL ", "WARN ")):
            lines[line.split(" ", 1)[1].split(":", 1)[0]] = line
    if opened:
        assert opened[0].engine == "sqlserver" and opened[0].port == 1433
        assert conn.closed
    return code, lines, err


def test_cdc_ready_database_passes_every_check(capsys, monkeypatch):
    code, lines, err = run(capsys, monkeypatch, catalog())
    assert (code, err) == (0, "")
    assert list(lines) == CHECKS
    assert all(line.startswith("PASS ") for line in lines.values()), lines
    assert "last full backup of erp finished 2026-12-04 23:10:05" in lines["full backup"]
    assert "SQL Server Agent (MSSQLSERVER): Running" in lines["SQL Server Agent"]


def test_simple_recovery_model_fails_with_the_alter(capsys, monkeypatch):
    code, lines, _ = run(capsys, monkeypatch, catalog(recovery="SIMPLE"))
    assert code == 1
    assert lines["recovery model"].startswith(
        "FAIL recovery model: database erp: recovery model SIMPLE (need FULL)")
    assert "ALTER DATABASE [erp] SET RECOVERY FULL" in lines["recovery model"]
    assert sum(v.startswith("FAIL") for v in lines.values()) == 1


@pytest.mark.parametrize(("rds", "published", "ok"), [
    (False, False, False), (False, True, True), (True, True, False), (True, False, False)])
def test_database_cdc_needs_ms_cdc_or_self_managed_replication(capsys, monkeypatch, rds,
                                                               published, ok):
    code, lines, _ = run(capsys, monkeypatch,
                         catalog(rds=rds, cdc_db=False, published=published, polling=[]))
    assert lines["database CDC"].startswith("PASS " if ok else "FAIL "), lines
    if not ok:
        assert code == 1
        assert "EXEC msdb.dbo.rds_cdc_enable_db 'erp'" in lines["database CDC"]


def test_table_not_captured_is_named_with_the_enable_statement(capsys, monkeypatch):
    tables = [("dbo", "orders", True, False, True, True),
              ("sales", "refunds", False, False, True, True),
              ("sales", "published", False, True, True, True)]
    code, lines, _ = run(capsys, monkeypatch, catalog(tables=tables))
    assert code == 1
    line = lines["table CDC"]
    assert line.startswith("FAIL table CDC: 1 table(s) in all user schemas neither tracked by "
                           "MS-CDC nor replicated with a primary key: sales.refunds —"), line
    assert ("EXEC sys.sp_cdc_enable_table @source_schema = N'sales', @source_name = "
            "N'refunds', @role_name = NULL") in line


@settings(max_examples=60, deadline=None)
@given(
    rds=st.booleans(),
    rows=st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), max_size=12),
)
def test_table_cdc_verdict_follows_the_dms_rule(rds, rows):
    # GIVEN tables with every combination of MS-CDC tracking, replication and primary key
    tables = [("dbo", f"t{i}", cdc, repl, pk, pk) for i, (cdc, repl, pk) in enumerate(rows)]
    conn = catalog(rds=rds, tables=tables, lobs=[])
    checks = {c.name: c for c in preflight.check_sqlserver(conn)}
    # THEN a table passes when MS-CDC tracks it, or (self-managed only) when it is published
    # for MS-Replication and has a primary key, which MS-Replication needs
    captured = [cdc or (repl and pk and not rds) for cdc, repl, pk in rows]
    found = checks["table CDC"].found
    assert checks["table CDC"].ok == all(captured)
    named = set(found.split(": ", 1)[1].removesuffix(" …").split(", ")) if ": " in found else set()
    uncaptured = [f"dbo.t{i}" for i, ok in enumerate(captured) if not ok]
    assert named == set(uncaptured[: preflight.PK_SAMPLE])  # the first ten, by name
    assert checks["primary keys"].ok == all(pk for _, _, pk in rows)


def test_agent_stopped_or_missing_fails(capsys, monkeypatch):
    stopped = [("SQL Server Agent (MSSQLSERVER)", "Stopped")]
    code, lines, _ = run(capsys, monkeypatch, catalog(services=stopped))
    assert code == 1
    assert lines["SQL Server Agent"].startswith(
        "FAIL SQL Server Agent: SQL Server Agent (MSSQLSERVER): Stopped — fix: start SQL Server "
        "Agent")
    code, lines, _ = run(capsys, monkeypatch,
                         catalog(services=[("SQL Server (SQLEXPRESS)", "Running")]))
    assert lines["SQL Server Agent"].startswith(
        "FAIL SQL Server Agent: no SQL Server Agent service listed")


def test_no_full_backup_fails(capsys, monkeypatch):
    code, lines, _ = run(capsys, monkeypatch, catalog(backup=None))
    assert code == 1
    assert lines["full backup"].startswith(
        "FAIL full backup: no full backup of erp in msdb.dbo.backupset")


def test_catalogs_the_login_cannot_read_fail_that_check_with_the_grant(capsys, monkeypatch):
    # GIVEN a least-privileged login: no VIEW SERVER STATE, no SELECT on msdb.dbo.backupset
    conn = catalog(services=VIEW_SERVER_STATE, backup=DENIED)
    code, lines, err = run(capsys, monkeypatch, conn)
    # THEN those two checks fail naming the grant; every other check still ran and passed
    assert (code, err) == (1, "")
    assert lines["SQL Server Agent"].startswith(
        "FAIL SQL Server Agent: cannot read sys.dm_server_services as this login: VIEW SERVER "
        "STATE permission was denied")
    assert "GRANT VIEW SERVER STATE TO [dms_user]" in lines["SQL Server Agent"]
    assert "GRANT SELECT ON dbo.backupset TO [dms_user]" in lines["full backup"]
    assert [k for k, v in lines.items() if v.startswith("FAIL")] == [
        "SQL Server Agent", "full backup"]


@pytest.mark.parametrize(("rds", "interval", "hours", "ok"), [
    (True, 86399, 24, True), (True, 5, 24, False), (True, 3599, 1, True),
    (True, 3598, 1, False), (False, 5, 24, True)])
def test_rds_polling_interval(capsys, monkeypatch, rds, interval, hours, ok):
    code, lines, _ = run(capsys, monkeypatch, catalog(rds=rds, polling=[(interval,)]),
                         "--min-retention-hours", str(hours))
    line = lines["CDC polling interval"]
    assert line.startswith("PASS " if ok else "FAIL "), line
    assert f"pollinginterval={interval} s" in line
    if not ok:
        need = min(86399, hours * 3600 - 1)
        assert (f"EXEC sys.sp_cdc_change_job @job_type = N'capture', @pollinginterval = {need}"
                in line)


def test_missing_capture_job_fails(capsys, monkeypatch):
    code, lines, _ = run(capsys, monkeypatch, catalog(polling=[]))
    assert code == 1
    assert lines["CDC polling interval"].startswith(
        "FAIL CDC polling interval: no MS-CDC capture job for erp")


def test_lob_and_sql_variant_columns_need_a_key(capsys, monkeypatch):
    tables = [("dbo", "docs", True, False, False, False),
              ("dbo", "notes", True, False, False, True),  # unique key, no primary key
              ("dbo", "orders", True, False, True, True)]
    lobs = [("dbo", "docs", "body", "varbinary"), ("dbo", "docs", "extra", "sql_variant"),
            ("dbo", "notes", "text", "ntext"), ("dbo", "orders", "note", "nvarchar")]
    code, lines, _ = run(capsys, monkeypatch, catalog(tables=tables, lobs=lobs))
    assert code == 1
    assert lines["LOB columns"].startswith(
        "FAIL LOB columns: 1 table(s) with LOB or sql_variant columns and no primary or unique "
        "key in all user schemas: dbo.docs (body varbinary, extra sql_variant) —"), lines
    assert lines["primary keys"].startswith("FAIL primary keys: 2 table(s)")


def test_lob_query_selects_max_types_and_sql_variant(capsys, monkeypatch):
    conn = catalog()
    run(capsys, monkeypatch, conn)
    ((sql, _),) = conn.sent(r"FROM sys\.columns c")
    assert "c.max_length = -1" in sql and "ty.name IN ('varchar', 'nvarchar', 'varbinary')" in sql
    for typ in ("text", "ntext", "image", "xml", "sql_variant"):
        assert f"'{typ}'" in sql


def test_schemas_option_filters_and_names_missing_ones(capsys, monkeypatch):
    conn = catalog()
    code, lines, _ = run(capsys, monkeypatch, conn, "--schemas", "sales,nowhere")
    assert code == 1
    assert lines["schemas"] == ("FAIL schemas: not found: nowhere — fix: correct --schemas "
                                "(and the task's selection rules)")
    ((sql, params),) = conn.sent(r"FROM sys\.tables t")
    assert "AND s.name IN (%s, %s)" in sql and params == ("sales", "nowhere")
    assert "1 table(s) in sales, nowhere, each captured" in lines["table CDC"]


# --------------------------------------------------------------------------- for real


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*extra: str) -> list[str]:
    return ["--engine", "sqlserver", "--host", "127.0.0.1", "--database", "erp", "--user",
            "dms_user", "--password-env", "PF_SQLSERVER_PW", *extra]


def test_refused_connection_through_the_real_driver_is_one_line_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("PF_SQLSERVER_PW", "x")
    port = _closed_port()
    code = preflight.main(_cli("--port", str(port), "--ssl", "disable"))
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith(f"preflight: cannot connect to sqlserver at 127.0.0.1:{port}/erp as "
                          "dms_user: ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _ca_file(folder: Path) -> Path:
    """A self-signed CA certificate (PEM), made here: the test builds its own inputs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = folder / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_tls_without_pyopenssl_or_ca_is_one_line_exit_2(capsys, monkeypatch, tmp_path):
    from pytds import tls

    monkeypatch.setenv("PF_SQLSERVER_PW", "x")
    # pyOpenSSL is installed (pyproject's `sources` extra): TLS without a CA file is refused
    assert tls.OPENSSL_AVAILABLE
    code = preflight.main(_cli("--port", str(_closed_port())))
    err = capsys.readouterr().err
    assert code == 2 and "needs --ssl-ca PEM" in err
    assert len(err.strip().splitlines()) == 1
    # AND with a CA file, TLS goes as far as the (closed) port: one line, exit 2
    ca = _ca_file(tmp_path)
    code = preflight.main(_cli("--port", str(_closed_port()), "--ssl-ca", str(ca)))
    err = capsys.readouterr().err
    assert code == 2 and "cannot connect to sqlserver" in err, err
    assert len(err.strip().splitlines()) == 1
    # AND where pyOpenSSL is missing, the line says to install it
    monkeypatch.setattr(tls, "OPENSSL_AVAILABLE", False)
    code = preflight.main(_cli("--port", str(_closed_port())))
    err = capsys.readouterr().err
    assert code == 2 and "needs pyOpenSSL" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_driver_names_the_pip_requirement(capsys, monkeypatch):
    monkeypatch.setenv("PF_SQLSERVER_PW", "x")
    monkeypatch.setitem(sys.modules, "pytds", None)  # import pytds raises ImportError
    code = preflight.main(_cli("--ssl", "disable"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("preflight: the sqlserver driver is not installed (import pytds "
                          "failed")
    assert err.rstrip().endswith(".venv/bin/pip install python-tds==1.17.1")


def test_cli_process_refused_port_prints_no_traceback():
    port = _closed_port()
    proc = subprocess.run(
        [sys.executable, "-m", "tools.preflight", *_cli("--port", str(port), "--ssl",
                                                        "disable")],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PF_SQLSERVER_PW": "x"},
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("preflight: cannot connect to sqlserver at 127.0.0.1:")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["sqlserver-se", "SQLSERVER", "sqlserver-ee"])
def test_rds_engine_names_are_accepted(capsys, monkeypatch, name):
    monkeypatch.setenv("PF_SQLSERVER_PW", "x")
    monkeypatch.setattr(preflight, "connect", lambda params: catalog())
    code = preflight.main(["--engine", name, *_cli()[2:]])
    assert code == 0, capsys.readouterr()
