"""Source preflight: does the legacy database meet what AWS DMS needs for CDC?

    python -m tools.preflight --engine postgres --host db.internal --port 5432 \\
        --database app --user dms --password-env DMS_PASSWORD --schemas public,billing
    python -m tools.preflight --engine mysql --secret-arn arn:aws:secretsmanager:...
    python -m tools.preflight --stack dev      # engine, host, port, database, secret

Engines: PostgreSQL, MySQL, MariaDB, SQL Server (python-tds), Oracle (python-oracledb thin).
One line per check: ``PASS <check>: <found>`` or ``FAIL <check>: <found> — fix: <how>``.

Exit codes: 0 every check passed; 1 at least one check failed; 2 usage, credentials or
connection problem (one line on stderr, no traceback). See docs/preflight.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.cli import OneLineParser, non_negative_int, positive_int
from tools.sourcedb import (
    SourceError,
    ToastTable,
    add_connection_args,
    apply_stack,
    connect,
    error_text,
    params_from_args,
    protocol_of,
    query_rows,
    toast_tables,
)

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
#: DMS keeps binlogs / WAL only as long as the source does; a day covers a task restart
DEFAULT_MIN_RETENTION_HOURS = 24
PK_SAMPLE = 10


@dataclass(frozen=True)
class Check:
    """The outcome of one prerequisite check."""

    name: str
    ok: bool
    found: str
    fix: str = ""
    #: passed, but worth a look: printed as WARN with its fix, never fails the run
    warn: bool = False

    def line(self) -> str:
        if self.ok and self.warn:
            return f"WARN {self.name}: {self.found} — fix: {self.fix}"
        if self.ok:
            return f"PASS {self.name}: {self.found}"
        return f"FAIL {self.name}: {self.found} — fix: {self.fix}"


def _no_pk_check(tables: list[str], where: str) -> Check:
    if not tables:
        return Check("primary keys", True, f"every table in {where} has a primary key")
    shown = ", ".join(tables[:PK_SAMPLE]) + (" …" if len(tables) > PK_SAMPLE else "")
    return Check(
        "primary keys",
        False,
        f"{len(tables)} table(s) without a primary key in {where}: {shown}",
        "add a PRIMARY KEY to each (DMS cannot apply their UPDATE/DELETE to a keyed "
        "DynamoDB table), or exclude them from the task's table mappings",
    )


# --------------------------------------------------------------------------- PostgreSQL


def check_postgres(conn: Any, schemas: list[str] | None = None, tasks: int = 1) -> list[Check]:
    """Checks for a PostgreSQL / Aurora PostgreSQL source. ``tasks``: DMS tasks that will
    each hold one replication slot and one WAL sender on this server."""
    checks: list[Check] = []
    setting = {
        name: query_rows(conn, f"SELECT current_setting('{name}')")[0][0]
        for name in ("wal_level", "max_replication_slots", "max_wal_senders")
    }

    wal = str(setting["wal_level"])
    checks.append(
        Check(
            "wal_level",
            wal == "logical",
            f"wal_level={wal} (need logical)",
            "RDS/Aurora: set rds.logical_replication=1 in the DB (cluster) parameter group "
            "and reboot; self-managed: wal_level = logical in postgresql.conf and restart",
        )
    )

    slots = int(setting["max_replication_slots"])
    used_slots = int(query_rows(conn, "SELECT count(*) FROM pg_replication_slots")[0][0])
    need = max(2, used_slots + tasks)
    checks.append(
        Check(
            "max_replication_slots",
            slots >= need,
            f"max_replication_slots={slots}, {used_slots} in use, {tasks} DMS task(s) "
            f"(need >= {need})",
            f"set max_replication_slots >= {need} (parameter group on RDS) and restart",
        )
    )

    senders = int(setting["max_wal_senders"])
    used_senders = int(query_rows(conn, "SELECT count(*) FROM pg_stat_replication")[0][0])
    need = max(2, used_senders + tasks)
    checks.append(
        Check(
            "max_wal_senders",
            senders >= need,
            f"max_wal_senders={senders}, {used_senders} in use, {tasks} DMS task(s) "
            f"(need >= {need})",
            f"set max_wal_senders >= {need} (parameter group on RDS) and restart",
        )
    )

    user, superuser, replication = query_rows(
        conn, "SELECT rolname, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user"
    )[0]
    rds_repl = bool(
        query_rows(
            conn,
            "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication') "
            "AND pg_has_role(current_user, 'rds_replication', 'MEMBER')",
        )[0][0]
    )
    how = (
        "superuser"
        if superuser
        else "REPLICATION attribute"
        if replication
        else "member of rds_replication"
        if rds_repl
        else "no REPLICATION attribute, not superuser, not in rds_replication"
    )
    checks.append(
        Check(
            "replication privilege",
            bool(superuser or replication or rds_repl),
            f"user {user}: {how}",
            f"RDS/Aurora: GRANT rds_replication TO {user}; self-managed: "
            f"ALTER ROLE {user} WITH REPLICATION",
        )
    )

    system = (
        "n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'"
    )
    if schemas:
        existing = {r[0] for r in query_rows(conn, "SELECT nspname FROM pg_namespace")}
        missing = [s for s in schemas if s not in existing]
        checks.append(
            Check(
                "schemas",
                not missing,
                f"not found: {', '.join(missing)}" if missing else f"found: {', '.join(schemas)}",
                "correct --schemas (and the task's selection rules) to existing schema names",
            )
        )
        where_sql, params, where = "n.nspname = ANY(%s)", [list(schemas)], ", ".join(schemas)
    else:
        where_sql, params, where = system, [], "all user schemas"
    no_pk = query_rows(
        conn,
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {where_sql} "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k "
        "WHERE k.conrelid = c.oid AND k.contype = 'p') ORDER BY 1",
        params,
    )
    checks.append(_no_pk_check([r[0] for r in no_pk], where))
    checks.extend(replica_identity_checks(toast_tables(conn, where_sql, params), where))
    return checks


#: columns named per FAIL line at most (a wide table lists the rest as a count)
COLUMN_SAMPLE = 8
#: what REPLICA IDENTITY FULL costs, printed with its fix
FULL_COST = (
    "cost: PostgreSQL then writes the whole old row, large values included, to the WAL for "
    "every UPDATE and DELETE of the table: more WAL, slot disk and reading for DMS on "
    "update-heavy tables"
)


def replica_identity_checks(tables: list[ToastTable], where: str) -> list[Check]:
    """One FAIL per table that can hold TOASTed values without REPLICA IDENTITY FULL (with
    its exact fix), else one PASS. Under any other identity, an UPDATE that leaves a
    TOASTed value unchanged does not carry it in the replication stream (test_decoding:
    ``unchanged-toast-datum``), so DMS cannot write it: it may vanish from the item, the
    bus and every consumer."""
    failing = [t for t in tables if not t.full]
    if not failing:
        found = (
            f"{len(tables)} table(s) with columns that can be TOASTed in {where}, every one "
            "REPLICA IDENTITY FULL"
            if tables
            else f"no table with columns that can be TOASTed in {where}"
        )
        return [Check("replica identity", True, found)]
    checks = []
    for t in failing:
        cols = ", ".join(f"{_quote_ident(c)} ({typ})" for c, typ in t.columns[:COLUMN_SAMPLE])
        if len(t.columns) > COLUMN_SAMPLE:
            cols += f" and {len(t.columns) - COLUMN_SAMPLE} more"
        checks.append(
            Check(
                f"replica identity {t.quoted}",
                False,
                f"replica identity {t.replica_identity}; columns that can be TOASTed: {cols}. "
                "An UPDATE that leaves such a value unchanged does not carry it in the "
                "replication stream, so it can vanish from the DynamoDB item, the bus and "
                "every consumer",
                f"{t.fix} ({FULL_COST})",
            )
        )
    return checks


def _quote_ident(name: str) -> str:
    """A column name as PostgreSQL's quote_ident prints it (lower-case plain names bare)."""
    plain = name.isidentifier() and name == name.lower() and name.isascii()
    return name if plain else '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- MySQL / MariaDB


def rds_marker(var: dict[str, Any]) -> bool:
    """Whether server variables any login can read say RDS / Aurora MySQL: RDS installs
    the server under /rdsdbbin and keeps data under /rdsdbdata; Aurora MySQL has
    ``aurora_version``."""
    return (
        str(var.get("basedir") or "").startswith("/rdsdbbin/")
        or str(var.get("datadir") or "").startswith("/rdsdbdata/")
        or "aurora_version" in var
    )


def _rds_binlog_retention_hours(conn: Any, marked_rds: bool) -> tuple[bool, int | None, str]:
    """(is RDS, retention hours, error) from mysql.rds_show_configuration.

    A login without EXECUTE on a procedure gets the same error whether the procedure exists
    or not (1370, execute command denied), so a failed call says "not RDS" only when the
    server variables do not say RDS either (:func:`rds_marker`); on RDS it is an error:
    RDS purges binlogs by its own setting and ignores the expire settings."""
    cur = conn.cursor()
    try:
        cur.execute("CALL mysql.rds_show_configuration")
        rows = cur.fetchall()
        while cur.nextset():
            pass
    except Exception as exc:
        return (True, None, error_text(exc)) if marked_rds else (False, None, "")
    finally:
        cur.close()
    for row in rows:
        if str(row[0]).lower() == "binlog retention hours":
            return True, None if row[1] is None else int(row[1]), ""
    return True, None, ""


def _grants_ok(conn: Any) -> tuple[bool, str]:
    grants = [str(r[0]) for r in query_rows(conn, "SHOW GRANTS")]
    privs: set[str] = set()
    for g in grants:
        head, _, rest = g.partition(" ON ")
        if not rest.startswith("*.*"):
            continue
        privs.update(p.strip().upper() for p in head.removeprefix("GRANT ").split(","))
    if "ALL PRIVILEGES" in privs:
        return True, "ALL PRIVILEGES on *.*"
    client = {"REPLICATION CLIENT", "BINLOG MONITOR"} & privs
    has = sorted(privs & {"REPLICATION SLAVE", "REPLICATION CLIENT", "BINLOG MONITOR"})
    ok = "REPLICATION SLAVE" in privs and bool(client)
    return ok, ("global: " + ", ".join(has)) if has else "no replication privileges on *.*"


def check_mysql(
    conn: Any,
    schemas: list[str] | None = None,
    min_retention_hours: int = DEFAULT_MIN_RETENTION_HOURS,
) -> list[Check]:
    """Checks for a MySQL / Aurora MySQL / MariaDB source."""
    checks: list[Check] = []
    var = {
        str(k).lower(): v
        for k, v in query_rows(
            conn,
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', "
            "'binlog_row_image', 'binlog_checksum', 'expire_logs_days', "
            "'binlog_expire_logs_seconds', 'version', 'basedir', 'datadir', 'aurora_version')",
        )
    }

    log_bin = str(var.get("log_bin", "OFF")).upper()
    checks.append(
        Check(
            "log_bin",
            log_bin in ("ON", "1"),
            f"log_bin={log_bin} (need ON)",
            "RDS/Aurora: enable automated backups (backup retention >= 1 day), which turns the "
            "binary log on; self-managed: log_bin=<base name> and server_id in my.cnf, restart",
        )
    )
    for name, want, why in (
        ("binlog_format", "ROW", "DMS reads row events only"),
        ("binlog_row_image", "FULL", "DMS needs every column of the row"),
        ("binlog_checksum", "NONE", "DMS reads the binlog without event checksums"),
    ):
        found = str(var.get(name, "?")).upper()
        checks.append(
            Check(
                name,
                found == want,
                f"{name}={found} (need {want})",
                f"set {name}={want} in the DB parameter group (RDS/Aurora) or my.cnf and "
                f"restart ({why})",
            )
        )

    is_rds, rds_hours, rds_error = _rds_binlog_retention_hours(conn, rds_marker(var))
    if is_rds:
        hours = rds_hours
        found = (
            f"RDS binlog retention hours cannot be read by this login ({rds_error}); RDS "
            "ignores the expire settings"
            if rds_error
            else "RDS binlog retention hours=NULL (binlogs purged as soon as possible)"
            if hours is None
            else f"RDS binlog retention hours={hours}"
        )
        ok = hours is not None and hours >= min_retention_hours
        fix = (
            f"CALL mysql.rds_set_configuration('binlog retention hours', "
            f"{max(min_retention_hours, 24)})"
        )
        if rds_error:
            fix = (f"as the master user, CALL mysql.rds_show_configuration and, if retention is "
                   f"under {min_retention_hours} h, {fix}; or GRANT EXECUTE ON PROCEDURE "
                   "mysql.rds_show_configuration to this login and run preflight again")
    else:
        seconds = int(float(var.get("binlog_expire_logs_seconds") or 0))
        days = float(var.get("expire_logs_days") or 0)
        if seconds > 0:
            found, retention_h = f"binlog_expire_logs_seconds={seconds}", seconds / 3600
        elif days > 0:
            found, retention_h = f"expire_logs_days={days:g}", days * 24
        else:
            found, retention_h = "binlogs never expire (expire settings 0)", float("inf")
        if retention_h != float("inf"):
            found += f" ({retention_h:.1f} h)"
        ok = retention_h >= min_retention_hours
        fix = (
            f"set binlog_expire_logs_seconds >= {min_retention_hours * 3600} "
            f"(or expire_logs_days >= {max(1, -(-min_retention_hours // 24))})"
        )
    checks.append(
        Check(
            "binlog retention",
            ok,
            f"{found} (need >= {min_retention_hours} h)",
            fix + " so a stopped or lagging task can resume",
        )
    )

    ok, found = _grants_ok(conn)
    user = query_rows(conn, "SELECT CURRENT_USER()")[0][0]
    checks.append(
        Check(
            "replication privilege",
            ok,
            f"user {user}: {found}",
            f"GRANT REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO {user}",
        )
    )

    if not schemas:
        current = query_rows(conn, "SELECT DATABASE()")[0][0]
        schemas = [current] if current else []
    if not schemas:  # connected to the server (no --database): nothing to look for keys in
        checks.append(
            Check(
                "schemas",
                False,
                "no database to check (no --schemas, no --database)",
                "give --schemas DB[,DB...] (or --stack NAME: the databases it replicates)",
            )
        )
        return checks
    schemata = query_rows(conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
    existing = {r[0] for r in schemata}
    missing = [s for s in schemas if s not in existing]
    if missing:
        checks.append(
            Check(
                "schemas",
                False,
                f"not found: {', '.join(missing)}",
                "correct --schemas (and the task's selection rules) to existing databases",
            )
        )
    marks = ", ".join(["%s"] * len(schemas)) or "NULL"
    # Keys are read from STATISTICS (a primary key is always the index named PRIMARY):
    # MariaDB shows a login with only SELECT on the schema no TABLE_CONSTRAINTS rows, so a
    # least-privileged DMS user would see every table as keyless there.
    no_pk = query_rows(
        conn,
        "SELECT CONCAT(t.TABLE_SCHEMA, '.', t.TABLE_NAME) FROM information_schema.TABLES t "
        f"WHERE t.TABLE_TYPE = 'BASE TABLE' AND t.TABLE_SCHEMA IN ({marks}) "
        "AND NOT EXISTS (SELECT 1 FROM information_schema.STATISTICS s "
        "WHERE s.TABLE_SCHEMA = t.TABLE_SCHEMA AND s.TABLE_NAME = t.TABLE_NAME "
        "AND s.INDEX_NAME = 'PRIMARY') ORDER BY 1",
        schemas,
    )
    checks.append(_no_pk_check([r[0] for r in no_pk], ", ".join(schemas) or "(no database)"))
    return checks


# --------------------------------------------------------------------------- writeback targets

#: PostgreSQL type categories / MySQL data types compared as numbers
_NUMERIC_MYSQL = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal",
                  "numeric", "float", "double", "real"}


@dataclass(frozen=True)
class LegacyColumn:
    name: str
    sql_type: str
    numeric: bool
    text: bool  # a string type (its collation decides how keys compare)
    collation: str | None
    case_insensitive: bool  # the collation treats 'A' and 'a' (or 'é' and 'e') as equal


def legacy_columns(conn: Any, engine: str, schema: str, table: str) -> dict[str, LegacyColumn]:
    """The columns of one legacy table, as the database compares them."""
    if engine == "postgres":
        rows = query_rows(
            conn,
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory, "
            "co.collname, co.collisdeterministic FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_type t ON t.oid = a.atttypid "
            "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            (schema, table),
        )
        return {
            str(name): LegacyColumn(str(name), str(typ), str(cat) == "N", str(cat) == "S",
                                    None if coll is None else str(coll),
                                    coll is not None and deterministic is False)
            for name, typ, cat, coll, deterministic in rows
        }
    rows = query_rows(
        conn,
        "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, COLLATION_NAME "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (schema, table),
    )
    out = {}
    for name, col_type, data_type, coll in rows:
        parts = str(coll or "").lower().split("_")
        out[str(name)] = LegacyColumn(
            str(name), str(col_type), str(data_type).lower() in _NUMERIC_MYSQL,
            coll is not None, None if coll is None else str(coll),
            coll is not None and ("ci" in parts or "ai" in parts),
        )
    return out


def check_writeback_table(conn: Any, engine: str, legacy_table: str, keys: list[str],
                          version: str, columns: list[str]) -> list[Check]:
    """What the version-guarded writeback needs from one legacy table: the table and its
    mapped columns exist, the version column compares as a number (a text column compares
    '10' < '9'), and key columns compare exactly (under a case-insensitive collation
    'Order-7' and 'order-7' are one legacy row)."""
    schema, _, table = legacy_table.partition(".")
    name = f"writeback {legacy_table}"
    found = legacy_columns(conn, engine, schema, table)
    if not found:
        return [Check(name, False, "table not found (or no access for this login)",
                      "run the legacy migration before deploying the writeback, and grant "
                      "the writeback login access to the table")]
    missing = [c for c in [*keys, version, *columns] if c not in found]
    if missing:
        return [Check(name, False, f"no column(s) {', '.join(missing)}",
                      "run the legacy migration that adds them, or correct the stack's "
                      "writeback mapping")]
    checks = [Check(name, True, f"table and {len(keys) + 1 + len(columns)} mapped column(s) "
                    "found")]
    col = found[version]
    alter = (f"ALTER TABLE {legacy_table} ALTER COLUMN {version} TYPE bigint USING "
             f"{version}::bigint" if engine == "postgres"
             else f"ALTER TABLE {legacy_table} MODIFY {version} BIGINT NOT NULL")
    checks.append(Check(
        f"{name} version column", col.numeric,
        f"{version} {col.sql_type}" + (" (numeric)" if col.numeric else
                                         ": not a number type, so versions would compare "
                                         "as text ('10' < '9')"),
        f"{alter} (versions are whole numbers)",
    ))
    loose = [found[k] for k in keys if found[k].text and found[k].case_insensitive]
    if loose:
        shown = ", ".join(f"{c.name} {c.sql_type} COLLATE {c.collation}" for c in loose)
        fix = (f"give the key a binary collation, e.g. ALTER TABLE {legacy_table} MODIFY "
               f"{loose[0].name} {loose[0].sql_type} COLLATE utf8mb4_bin"
               if engine != "postgres" else
               f"give the key a deterministic collation, e.g. ALTER TABLE {legacy_table} "
               f"ALTER COLUMN {loose[0].name} TYPE {loose[0].sql_type} COLLATE \"C\"")
        checks.append(Check(
            f"{name} key collation", True,
            f"{shown}: case-insensitive, so item ids that differ only in case "
            "('Order-7', 'order-7') are one legacy row",
            f"{fix}; or make sure such ids never reach the writeback", warn=True,
        ))
    else:
        checks.append(Check(f"{name} key collation", True,
                            f"key column(s) {', '.join(keys)} compare exactly"))
    return checks


def check_writeback(conn: Any, engine: str, settings: Any) -> list[Check]:
    """The writeback checks of every mapping of a stack's `writeback` section."""
    checks: list[Check] = []
    for mapping in settings.tables.values():
        checks += check_writeback_table(
            conn, engine, mapping.legacy_table, list(mapping.key_columns.values()),
            mapping.version_column, list(mapping.columns.values()),
        )
    return checks


def load_writeback(stack: str, stack_dir: Path | None) -> Any:
    """The `writeback` settings of a stack file; SourceError (one line) if there are none."""
    from dms_event_bus.settings import ConfigError, load_settings
    from dms_event_bus.settings.stackfile import (
        ROOT,
        as_engine_config,
        project_config,
        read_stack_config,
    )

    try:
        engine_config, _ = as_engine_config(read_stack_config(stack, stack_dir or ROOT))
        loaded = load_settings(stack, project_config(engine_config))
    except ConfigError as exc:
        raise SourceError(" ".join(exc.brief().split())) from None
    except (FileNotFoundError, ValueError) as exc:
        raise SourceError(" ".join(str(exc).split())) from None
    if loaded.writeback is None:
        raise SourceError(f"stack '{stack}' has no dms-event-bus:writeback section: nothing "
                          "to check with --writeback-stack")
    return loaded.writeback


# --------------------------------------------------------------------------- catalog reads


def _read(
    conn: Any, sql: str, params: Sequence[Any] = ()
) -> tuple[list[tuple[Any, ...]] | None, str]:
    """(rows, "") or (None, the error as one line): a catalog this login may not read
    makes that one check fail with the grant to give, not the whole run."""
    try:
        return query_rows(conn, sql, params), ""
    except Exception as exc:  # permission denied, object not found
        return None, error_text(exc)


def _unreadable(name: str, what: str, error: str, fix: str) -> Check:
    return Check(name, False, f"cannot read {what} as this login: {error}", fix)


def _shown(items: Sequence[str], limit: int = PK_SAMPLE) -> str:
    return ", ".join(items[:limit]) + (" …" if len(items) > limit else "")


def _lob_check(lob: dict[str, list[str]], keyed: set[str], where: str, kinds: str) -> Check:
    """LOB columns need a primary (or unique) key: DMS looks LOB values up by key (AWS DMS
    premigration assessment table-with-lob-but-without-primary-key-or-unique-constraint)."""
    bad = [t for t in lob if t not in keyed]
    if not bad:
        found = (f"{len(lob)} table(s) with {kinds} columns in {where}, each with a primary "
                 "or unique key" if lob else f"no {kinds} columns in {where}")
        return Check("LOB columns", True, found)
    shown = "; ".join(f"{t} ({', '.join(lob[t])})" for t in bad[:PK_SAMPLE])
    return Check(
        "LOB columns",
        False,
        f"{len(bad)} table(s) with {kinds} columns and no primary or unique key in {where}: "
        f"{shown}" + (" …" if len(bad) > PK_SAMPLE else ""),
        "add a PRIMARY KEY (DMS reads LOB values by key; without one it cannot replicate "
        "them), or exclude the table or its LOB columns from the task",
    )


# --------------------------------------------------------------------------- SQL Server

#: the SQL Server types DMS replicates as LOBs (and sql_variant, which it reads like one)
SQLSERVER_LOB_TYPES = ("text", "ntext", "image", "xml", "sql_variant", "geography", "geometry")
#: DMS's recommendation for MS-CDC on RDS: the capture job polls once a day, so changes stay
#: in the transaction log about that long (the largest value sp_cdc_change_job accepts)
MAX_POLLING_INTERVAL_S = 86399

SQLSERVER_DATABASE = (
    "SELECT name, recovery_model_desc, is_cdc_enabled, is_published "
    "FROM sys.databases WHERE name = DB_NAME()"
)
SQLSERVER_TABLES = (
    "SELECT s.name, t.name, t.is_tracked_by_cdc, t.is_replicated, "
    "CASE WHEN EXISTS (SELECT 1 FROM sys.indexes i WHERE i.object_id = t.object_id "
    "AND i.is_primary_key = 1) THEN 1 ELSE 0 END, "
    "CASE WHEN EXISTS (SELECT 1 FROM sys.indexes i WHERE i.object_id = t.object_id "
    "AND (i.is_primary_key = 1 OR i.is_unique_constraint = 1 OR i.is_unique = 1)) "
    "THEN 1 ELSE 0 END "
    "FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id "
    "WHERE t.is_ms_shipped = 0 AND s.name NOT IN ('cdc', 'sys'){schemas} "
    "ORDER BY s.name, t.name"
)
SQLSERVER_LOBS = (
    "SELECT s.name, t.name, c.name, ty.name FROM sys.columns c "
    "JOIN sys.tables t ON t.object_id = c.object_id "
    "JOIN sys.schemas s ON s.schema_id = t.schema_id "
    "JOIN sys.types ty ON ty.user_type_id = c.system_type_id "
    "WHERE t.is_ms_shipped = 0 AND s.name NOT IN ('cdc', 'sys'){schemas} AND (ty.name IN ("
    + ", ".join(f"'{t}'" for t in SQLSERVER_LOB_TYPES)
    + ") OR (ty.name IN ('varchar', 'nvarchar', 'varbinary') AND c.max_length = -1)) "
    "ORDER BY s.name, t.name, c.column_id"
)
SQLSERVER_AGENT = "SELECT servicename, status_desc FROM sys.dm_server_services"
SQLSERVER_BACKUP = (
    "SELECT MAX(backup_finish_date) FROM msdb.dbo.backupset "
    "WHERE database_name = DB_NAME() AND type = 'D'"
)
SQLSERVER_POLLING = (
    "SELECT pollinginterval FROM msdb.dbo.cdc_jobs "
    "WHERE database_id = DB_ID() AND job_type = 'capture'"
)
SQLSERVER_RDS = "SELECT CASE WHEN DB_ID('rdsadmin') IS NULL THEN 0 ELSE 1 END"


def _in_list(column: str, values: Sequence[str], mark: str = "%s") -> str:
    return f" AND {column} IN ({', '.join([mark] * len(values))})" if values else ""


def check_sqlserver(
    conn: Any,
    schemas: list[str] | None = None,
    min_retention_hours: int = DEFAULT_MIN_RETENTION_HOURS,
) -> list[Check]:
    """Checks for a SQL Server / RDS for SQL Server source (MS-CDC or MS-Replication)."""
    checks: list[Check] = []
    user, db_name = query_rows(conn, "SELECT SUSER_SNAME(), DB_NAME()")[0]
    is_rds = bool(query_rows(conn, SQLSERVER_RDS)[0][0])
    name, recovery, cdc_db, published = query_rows(conn, SQLSERVER_DATABASE)[0]
    checks.append(Check(
        "recovery model",
        str(recovery).upper() == "FULL",
        f"database {name}: recovery model {recovery} (need FULL)",
        "RDS: turn automated backups on (backup retention >= 1 day), which sets FULL; "
        f"self-managed: ALTER DATABASE [{name}] SET RECOVERY FULL, then take a full backup",
    ))
    how = ("MS-CDC enabled" if cdc_db else
           "MS-Replication publishing (no MS-CDC)" if published and not is_rds else
           "neither MS-CDC nor MS-Replication enabled")
    checks.append(Check(
        "database CDC",
        bool(cdc_db) or (bool(published) and not is_rds),
        f"database {name}: {how}" + (" (RDS: only MS-CDC is available)" if is_rds else ""),
        f"RDS: EXEC msdb.dbo.rds_cdc_enable_db '{name}'; self-managed: USE [{name}]; "
        "EXEC sys.sp_cdc_enable_db (or configure MS-Replication distribution)",
    ))

    names = list(schemas or [])
    tables, error = _read(conn, SQLSERVER_TABLES.format(schemas=_in_list("s.name", names)),
                          names)
    where = ", ".join(names) if names else "all user schemas"
    if tables is None:
        checks.append(_unreadable("table CDC", "sys.tables", error,
                                  f"GRANT SELECT ON SCHEMA::<schema> TO [{user}]"))
    else:
        if names:
            existing = {str(r[0]) for r in query_rows(conn, "SELECT name FROM sys.schemas")}
            missing = [s for s in names if s not in existing]
            if missing:
                checks.append(Check("schemas", False, f"not found: {', '.join(missing)}",
                                    "correct --schemas (and the task's selection rules)"))
        uncaptured = [f"{s}.{t}" for s, t, cdc, repl, pk, _ in tables
                      if not cdc and not (repl and pk and not is_rds)]
        if uncaptured:
            first = uncaptured[0].split(".", 1)
            checks.append(Check(
                "table CDC",
                False,
                f"{len(uncaptured)} table(s) in {where} neither tracked by MS-CDC nor "
                f"replicated with a primary key: {_shown(uncaptured)}",
                f"for each: EXEC sys.sp_cdc_enable_table @source_schema = N'{first[0]}', "
                f"@source_name = N'{first[1]}', @role_name = NULL (MS-Replication needs a "
                "primary key and is not available on RDS)",
            ))
        else:
            checks.append(Check("table CDC", True,
                                f"{len(tables)} table(s) in {where}, each captured"))
        checks.append(_no_pk_check([f"{s}.{t}" for s, t, _, _, pk, _ in tables if not pk],
                                   where))
        lobs, error = _read(conn, SQLSERVER_LOBS.format(schemas=_in_list("s.name", names)),
                            names)
        if lobs is None:
            checks.append(_unreadable("LOB columns", "sys.columns", error,
                                      f"GRANT SELECT ON SCHEMA::<schema> TO [{user}]"))
        else:
            by_table: dict[str, list[str]] = {}
            for s, t, c, typ in lobs:
                by_table.setdefault(f"{s}.{t}", []).append(f"{c} {typ}")
            keyed = {f"{s}.{t}" for s, t, _, _, _, key in tables if key}
            checks.append(_lob_check(by_table, keyed, where, "LOB or sql_variant"))

    agents, error = _read(conn, SQLSERVER_AGENT)
    if agents is None:
        checks.append(_unreadable(
            "SQL Server Agent", "sys.dm_server_services", error,
            f"GRANT VIEW SERVER STATE TO [{user}] (the MS-CDC capture job runs in SQL Server "
            "Agent)"))
    else:
        agent = [(str(n), str(st)) for n, st in agents if str(n).startswith("SQL Server Agent")]
        running = any(st.lower() == "running" for _, st in agent)
        found = "; ".join(f"{n}: {st}" for n, st in agent) or "no SQL Server Agent service listed"
        checks.append(Check(
            "SQL Server Agent", running, found,
            "start SQL Server Agent and set it to start automatically (the MS-CDC capture "
            "job runs in it; Express edition has no Agent and cannot run MS-CDC)",
        ))

    backups, error = _read(conn, SQLSERVER_BACKUP)
    if backups is None:
        checks.append(_unreadable(
            "full backup", "msdb.dbo.backupset", error,
            f"USE msdb; CREATE USER [{user}] FOR LOGIN [{user}]; "
            f"GRANT SELECT ON dbo.backupset TO [{user}]"))
    else:
        last = backups[0][0] if backups else None
        checks.append(Check(
            "full backup",
            last is not None,
            f"last full backup of {db_name} finished {last}" if last is not None
            else f"no full backup of {db_name} in msdb.dbo.backupset",
            "RDS: automated backups on; self-managed: BACKUP DATABASE "
            f"[{db_name}] TO DISK = ... (starts the log chain DMS reads)",
        ))

    if is_rds or cdc_db:
        need = max(1, min(MAX_POLLING_INTERVAL_S, min_retention_hours * 3600 - 1))
        polls, error = _read(conn, SQLSERVER_POLLING)
        fix = (f"EXEC sys.sp_cdc_change_job @job_type = N'capture', @pollinginterval = "
               f"{need}; then EXEC sys.sp_cdc_stop_job N'capture'; EXEC sys.sp_cdc_start_job "
               "N'capture'")
        if polls is None:
            checks.append(_unreadable(
                "CDC polling interval", "msdb.dbo.cdc_jobs", error,
                f"USE msdb; GRANT SELECT ON dbo.cdc_jobs TO [{user}]"))
        elif not polls:
            checks.append(Check("CDC polling interval", False,
                                f"no MS-CDC capture job for {db_name}", fix))
        else:
            interval = int(polls[0][0])
            checks.append(Check(
                "CDC polling interval",
                interval >= need or not is_rds,
                f"capture job pollinginterval={interval} s (need >= {need} on RDS: changes stay "
                "in the log only until the capture job has read them)"
                + ("" if is_rds else "; self-managed: not required"),
                fix,
            ))
    return checks


# --------------------------------------------------------------------------- Oracle

ORACLE_DATABASE = (
    "SELECT log_mode, supplemental_log_data_min, supplemental_log_data_pk, "
    "supplemental_log_data_all FROM v$database"
)
#: tables of the chosen owners, whether each has a primary key / a primary or unique key,
#: and its log groups (ALL_LOG_GROUPS.log_group_type)
ORACLE_TABLES = (
    "SELECT t.owner, t.table_name, "
    "(SELECT COUNT(*) FROM all_constraints c WHERE c.owner = t.owner "
    "AND c.table_name = t.table_name AND c.constraint_type = 'P'), "
    "(SELECT COUNT(*) FROM all_constraints c WHERE c.owner = t.owner "
    "AND c.table_name = t.table_name AND c.constraint_type IN ('P', 'U')), "
    "(SELECT LISTAGG(g.log_group_type, ',') WITHIN GROUP (ORDER BY g.log_group_type) "
    "FROM all_log_groups g WHERE g.owner = t.owner AND g.table_name = t.table_name) "
    "FROM all_tables t WHERE t.owner IN ({owners}) AND t.temporary = 'N' "
    "AND t.nested = 'NO' AND t.secondary = 'N' AND t.dropped = 'NO' "
    "AND (t.iot_type IS NULL OR t.iot_type = 'IOT') ORDER BY t.owner, t.table_name"
)
ORACLE_LOB_TYPES = ("BLOB", "CLOB", "NCLOB", "LONG", "LONG RAW", "XMLTYPE")
ORACLE_LOBS = (
    "SELECT owner, table_name, column_name, data_type FROM all_tab_columns "
    "WHERE owner IN ({owners}) AND data_type IN ("
    + ", ".join(f"'{t}'" for t in ORACLE_LOB_TYPES)
    + ") ORDER BY owner, table_name, column_id"
)
ORACLE_SESSION_PRIVS = "SELECT privilege FROM session_privs"
ORACLE_RDS = "SELECT COUNT(*) FROM all_users WHERE username = 'RDSADMIN'"
#: system privileges the DMS user needs with LogMiner (AWS DMS user guide, "User account
#: privileges required on a self-managed / AWS-managed Oracle source"; AWS knowledge
#: center "dms-permissions-oracle-source"). LOGMINING exists from 12c.
ORACLE_SYSTEM_PRIVILEGES = ("CREATE SESSION", "SELECT ANY TRANSACTION", "LOGMINING")
#: SYS objects the DMS user reads (SELECT), from the same lists. Self-managed: GRANT SELECT
#: ON <object>; RDS (no SYS login): rdsadmin.rdsadmin_util.grant_sys_object. The ALL_*
#: views are granted to PUBLIC by Oracle itself, and PUBLIC grants count.
ORACLE_SYS_VIEWS = (
    "V_$ARCHIVED_LOG", "V_$LOG", "V_$LOGFILE", "V_$LOGMNR_LOGS", "V_$LOGMNR_CONTENTS",
    "V_$DATABASE", "V_$THREAD", "V_$PARAMETER", "V_$NLS_PARAMETERS", "V_$TIMEZONE_NAMES",
    "V_$TRANSACTION", "ALL_INDEXES", "ALL_OBJECTS", "ALL_TABLES", "ALL_USERS", "ALL_CATALOG",
    "ALL_CONSTRAINTS", "ALL_CONS_COLUMNS", "ALL_TAB_COLS", "ALL_IND_COLUMNS", "ALL_LOG_GROUPS",
    "ALL_TAB_PARTITIONS", "ALL_ENCRYPTED_COLUMNS", "DBA_REGISTRY", "OBJ$", "DBA_TABLESPACES",
)
#: packages the DMS user runs (EXECUTE): LogMiner
ORACLE_SYS_PACKAGES = ("DBMS_LOGMNR",)
ORACLE_OBJECT_PRIVS = (
    "SELECT table_name, privilege FROM all_tab_privs WHERE table_schema = 'SYS' "
    "AND table_name IN ("
    + ", ".join(f"'{v}'" for v in (*ORACLE_SYS_VIEWS, *ORACLE_SYS_PACKAGES))
    + ") AND privilege IN ('SELECT', 'READ', 'EXECUTE') AND (grantee IN (USER, 'PUBLIC') "
    "OR grantee IN (SELECT role FROM session_roles))"
)
#: ALL_LOG_GROUPS.log_group_type values that log every column / the key columns
ALL_COLUMN_LOGGING = "ALL COLUMN LOGGING"
KEY_LOGGING = {"ALL COLUMN LOGGING", "PRIMARY KEY LOGGING", "UNIQUE KEY LOGGING",
               "USER LOG GROUP"}


def _yes(value: Any) -> bool:
    return str(value or "").upper() in ("YES", "IMPLICIT")


def check_oracle(conn: Any, schemas: list[str] | None = None) -> list[Check]:
    """Checks for an Oracle / RDS for Oracle source read with LogMiner."""
    checks: list[Check] = []
    user = str(query_rows(conn, "SELECT USER FROM dual")[0][0])
    db, error = _read(conn, ORACLE_DATABASE)
    rds_rows, _ = _read(conn, ORACLE_RDS)
    is_rds = bool(rds_rows and rds_rows[0][0])
    grant_v = (f"EXEC rdsadmin.rdsadmin_util.grant_sys_object('V_$DATABASE', '{user}', "
               "'SELECT')" if is_rds else f"GRANT SELECT ON V_$DATABASE TO {user}")
    if db is None:
        checks.append(_unreadable("ARCHIVELOG mode", "v$database", error, grant_v))
        log_min = log_pk = log_all = False
    else:
        log_mode, min_, pk, all_ = db[0]
        log_min, log_pk, log_all = _yes(min_), _yes(pk), _yes(all_)
        checks.append(Check(
            "ARCHIVELOG mode",
            str(log_mode).upper() == "ARCHIVELOG",
            f"log_mode={log_mode} (need ARCHIVELOG)",
            "RDS: turn automated backups on (backup retention >= 1 day); self-managed: "
            "SHUTDOWN IMMEDIATE; STARTUP MOUNT; ALTER DATABASE ARCHIVELOG; ALTER DATABASE OPEN",
        ))
        checks.append(Check(
            "supplemental logging",
            log_min,
            f"supplemental_log_data_min={min_} (need YES)",
            "RDS: EXEC rdsadmin.rdsadmin_util.alter_supplemental_logging('ADD'); "
            "self-managed: ALTER DATABASE ADD SUPPLEMENTAL LOG DATA",
        ))

    owners = [s.upper() if s.isupper() or s.islower() else s for s in (schemas or [user])]
    marks = ", ".join(f":{i + 1}" for i in range(len(owners)))
    where = ", ".join(owners)
    tables, error = _read(conn, ORACLE_TABLES.format(owners=marks), owners)
    if tables is None:
        checks.append(_unreadable("primary keys", "all_tables / all_constraints", error,
                                  f"GRANT SELECT ON ALL_CONSTRAINTS TO {user}"))
    else:
        seen = {str(r[0]) for r in tables}
        missing = [o for o in owners if o not in seen]
        if schemas and missing:
            checks.append(Check(
                "schemas", False, f"no tables visible in: {', '.join(missing)}",
                f"correct --schemas (Oracle owners, upper case unless created quoted) or "
                f"GRANT SELECT ON <owner>.<table> TO {user}",
            ))
        no_pk = [f"{o}.{t}" for o, t, pk, _, _ in tables if not int(pk)]
        checks.append(_no_pk_check(no_pk, where))
        groups = {f"{o}.{t}": set(str(g or "").split(",")) - {""} for o, t, _, _, g in tables}
        keyless_unlogged = [
            name for name in no_pk if not log_all and ALL_COLUMN_LOGGING not in groups[name]
        ]
        keyed_unlogged = [
            f"{o}.{t}" for o, t, pk, _, _ in tables
            if int(pk) and not (log_pk or log_all) and not (groups[f"{o}.{t}"] & KEY_LOGGING)
        ]
        problems = []
        if keyless_unlogged:
            problems.append(f"without a primary key and without ALL COLUMNS logging: "
                            f"{_shown(keyless_unlogged)}")
        if keyed_unlogged:
            problems.append(f"without primary-key logging (database or table): "
                            f"{_shown(keyed_unlogged)}")
        first_keyless = (keyless_unlogged or ["<owner>.<table>"])[0]
        first_keyed = (keyed_unlogged or ["<owner>.<table>"])[0]
        fixes = []
        if keyless_unlogged:
            fixes.append(f"ALTER TABLE {first_keyless} ADD SUPPLEMENTAL LOG DATA (ALL) "
                         "COLUMNS (each table named)")
        if keyed_unlogged:
            fixes.append(
                "RDS: EXEC rdsadmin.rdsadmin_util.alter_supplemental_logging('ADD', "
                "'PRIMARY KEY')" if is_rds else
                "ALTER DATABASE ADD SUPPLEMENTAL LOG DATA (PRIMARY KEY) COLUMNS "
                f"(or per table: ALTER TABLE {first_keyed} ADD SUPPLEMENTAL LOG DATA "
                "(PRIMARY KEY) COLUMNS)")
        checks.append(Check(
            "table supplemental logging",
            not problems,
            "; ".join(problems) if problems else
            f"{len(tables)} table(s) in {where}: key columns logged, keyless tables log all "
            "columns",
            "; ".join(fixes),
        ))
        lobs, error = _read(conn, ORACLE_LOBS.format(owners=marks), owners)
        if lobs is None:
            checks.append(_unreadable("LOB columns", "all_tab_columns", error,
                                      f"GRANT SELECT ON ALL_TAB_COLS TO {user}"))
        else:
            by_table: dict[str, list[str]] = {}
            for o, t, c, typ in lobs:
                by_table.setdefault(f"{o}.{t}", []).append(f"{c} {typ}")
            keyed = {f"{o}.{t}" for o, t, _, key, _ in tables if int(key)}
            checks.append(_lob_check(by_table, keyed, where, "LOB"))

    checks.append(_oracle_grants(conn, user, is_rds))
    return checks


def _oracle_grants(conn: Any, user: str, is_rds: bool) -> Check:
    privs, error = _read(conn, ORACLE_SESSION_PRIVS)
    objects, error2 = _read(conn, ORACLE_OBJECT_PRIVS)
    if privs is None or objects is None:
        return _unreadable("DMS user privileges", "session_privs / all_tab_privs",
                           error or error2, f"GRANT CREATE SESSION TO {user}")
    have = {str(r[0]).upper() for r in privs}
    granted = {(str(t).upper(), str(p).upper()) for t, p in objects}
    any_dictionary = "SELECT ANY DICTIONARY" in have
    missing_sys = [p for p in ORACLE_SYSTEM_PRIVILEGES if p not in have]
    missing = [] if any_dictionary else [
        (v, "SELECT") for v in ORACLE_SYS_VIEWS
        if (v, "SELECT") not in granted and (v, "READ") not in granted
    ]
    missing += [(p, "EXECUTE") for p in ORACLE_SYS_PACKAGES if (p, "EXECUTE") not in granted]
    kind = "RDS for Oracle" if is_rds else "self-managed Oracle"
    if not missing_sys and not missing:
        return Check("DMS user privileges", True,
                     f"user {user} ({kind}): {', '.join(ORACLE_SYSTEM_PRIVILEGES)}, SELECT on "
                     f"{len(ORACLE_SYS_VIEWS)} SYS views"
                     + (" (SELECT ANY DICTIONARY)" if any_dictionary else "")
                     + f", EXECUTE on {', '.join(ORACLE_SYS_PACKAGES)}")
    fixes = [f"GRANT {p} TO {user}" for p in missing_sys]
    if is_rds:
        fixes += [f"EXEC rdsadmin.rdsadmin_util.grant_sys_object('{o}', '{user}', '{p}')"
                  for o, p in missing]
    else:
        fixes += [f"GRANT {p} ON SYS.{o} TO {user}" for o, p in missing]
    lacking = missing_sys + [f"{p} on {o}" for o, p in missing]
    return Check("DMS user privileges", False,
                 f"user {user} ({kind}) lacks: {', '.join(lacking)}", "; ".join(fixes))


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        allow_abbrev=False,
        prog="python -m tools.preflight",
        description="Check a legacy database's CDC prerequisites for AWS DMS. Give the "
        "engine and connection (--engine, --host, ...) or --stack NAME to read them from "
        "the stack file.",
    )
    add_connection_args(parser)
    parser.add_argument(
        "--schemas",
        help="comma-separated schemas (PostgreSQL, SQL Server) / databases (MySQL) / owners "
        "(Oracle) to check (default: all user schemas / the --database / the login's own "
        "schema)",
    )
    parser.add_argument(
        "--tasks",
        type=positive_int,
        default=1,
        help="DMS tasks that will read this server (PostgreSQL slots/senders; default 1)",
    )
    parser.add_argument(
        "--min-retention-hours",
        type=non_negative_int,
        default=DEFAULT_MIN_RETENTION_HOURS,
        help="binlog retention (MySQL) / CDC capture polling interval (RDS for SQL Server) "
        f"needed, in hours (default {DEFAULT_MIN_RETENTION_HOURS})",
    )
    parser.add_argument(
        "--writeback-stack",
        metavar="STACK",
        help="instead of the CDC checks, check the legacy tables the stack's writeback writes "
        "(version column numeric, key collation exact); connect as the writeback login",
    )
    return parser


def run(args: argparse.Namespace, secrets_client: Any = None) -> tuple[int, list[Check]]:
    """Connect and run the checks; SourceError on credential / connection problems."""
    apply_stack(args)
    writeback = load_writeback(args.writeback_stack, args.stack_dir) if args.writeback_stack \
        else None
    proto = protocol_of(args.engine)
    if writeback is not None and proto not in ("postgres", "mysql"):
        raise SourceError(f"--writeback-stack checks PostgreSQL / MySQL legacy tables, not "
                          f"engine {args.engine}")
    params = params_from_args(args, args.engine, secrets_client)
    schemas = [s.strip() for s in args.schemas.split(",") if s.strip()] if args.schemas else None
    conn = connect(params)
    try:
        if writeback is not None:
            checks = check_writeback(conn, params.engine, writeback)
        elif proto == "postgres":
            checks = check_postgres(conn, schemas, tasks=args.tasks)
        elif proto == "sqlserver":
            checks = check_sqlserver(conn, schemas, min_retention_hours=args.min_retention_hours)
        elif proto == "oracle":
            checks = check_oracle(conn, schemas)
        else:
            checks = check_mysql(conn, schemas, min_retention_hours=args.min_retention_hours)
    finally:
        conn.close()
    return (EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED), checks


def main(argv: Sequence[str] | None = None, secrets_client: Any = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code, checks = run(args, secrets_client)
    except SourceError as exc:
        print(f"preflight: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a query failed mid-way (privileges, timeout): still one line
        print(f"preflight: check failed to run: {error_text(exc)}", file=sys.stderr)
        return EXIT_ERROR
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    warned = sum(c.ok and c.warn for c in checks)
    extra = f", {warned} with a warning" if warned else ""
    print(f"# summary: {len(checks) - failed}/{len(checks)} checks passed{extra}")
    return code


if __name__ == "__main__":
    sys.exit(main())
