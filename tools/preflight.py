"""Source preflight: does the legacy database meet what AWS DMS needs for CDC?

    python -m tools.preflight --engine postgres --host db.internal --port 5432 \\
        --database app --user dms --password-env DMS_PASSWORD --schemas public,billing
    python -m tools.preflight --engine mysql --secret-arn arn:aws:secretsmanager:...

One line per check: ``PASS <check>: <found>`` or ``FAIL <check>: <found> — fix: <how>``.

Exit codes: 0 every check passed; 1 at least one check failed; 2 usage, credentials or
connection problem (one line on stderr, no traceback); 3 engine whose checks are only
listed (Oracle, SQL Server: no driver here) — run the printed queries by hand.
See docs/preflight.md.
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
    MYSQL_LIKE,
    POSTGRES_LIKE,
    SourceError,
    ToastTable,
    add_connection_args,
    connect,
    params_from_args,
    query_rows,
    toast_tables,
)

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_MANUAL = 0, 1, 2, 3
ENGINES = sorted(POSTGRES_LIKE | MYSQL_LIKE | {"oracle", "sqlserver"})
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


def _rds_binlog_retention_hours(conn: Any) -> tuple[bool, int | None]:
    """(is RDS, retention hours) from mysql.rds_show_configuration; (False, None) elsewhere."""
    cur = conn.cursor()
    try:
        cur.execute("CALL mysql.rds_show_configuration")
        rows = cur.fetchall()
        while cur.nextset():
            pass
    except Exception:  # not RDS: the procedure does not exist
        return False, None
    finally:
        cur.close()
    for row in rows:
        if str(row[0]).lower() == "binlog retention hours":
            return True, None if row[1] is None else int(row[1])
    return True, None


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
            "'binlog_expire_logs_seconds', 'version')",
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

    is_rds, rds_hours = _rds_binlog_retention_hours(conn)
    if is_rds:
        hours = rds_hours
        found = (
            "RDS binlog retention hours=NULL (binlogs purged as soon as possible)"
            if hours is None
            else f"RDS binlog retention hours={hours}"
        )
        ok = hours is not None and hours >= min_retention_hours
        fix = (
            f"CALL mysql.rds_set_configuration('binlog retention hours', "
            f"{max(min_retention_hours, 24)})"
        )
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
    from settings import ConfigError, load_settings
    from settings.stackfile import ROOT, as_engine_config, project_config, read_stack_config

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


# --------------------------------------------------------------------------- Oracle / SQL Server

#: (check, how to see it, fix) — listed, not run: no Oracle / SQL Server driver here
MANUAL_CHECKS: dict[str, list[tuple[str, str, str]]] = {
    "oracle": [
        (
            "ARCHIVELOG mode",
            "SELECT log_mode FROM v$database  -- need ARCHIVELOG",
            "RDS: automated backups on; self-managed: SHUTDOWN, STARTUP MOUNT, "
            "ALTER DATABASE ARCHIVELOG, ALTER DATABASE OPEN",
        ),
        (
            "archived log retention",
            "RDS: SELECT value FROM rdsadmin.rds_configuration "
            "WHERE name = 'archivelog retention hours'  -- need >= 24",
            "exec rdsadmin.rdsadmin_util.set_configuration('archivelog retention hours', 24)",
        ),
        (
            "minimal supplemental logging",
            "SELECT supplemental_log_data_min FROM v$database  -- need YES",
            "RDS: exec rdsadmin.rdsadmin_util.alter_supplemental_logging('ADD'); "
            "self-managed: ALTER DATABASE ADD SUPPLEMENTAL LOG DATA",
        ),
        (
            "primary-key supplemental logging",
            "SELECT supplemental_log_data_pk FROM v$database  -- need YES "
            "(or per-table log groups)",
            "RDS: exec rdsadmin.rdsadmin_util.alter_supplemental_logging('ADD','PRIMARY KEY'); "
            "self-managed: ALTER DATABASE ADD SUPPLEMENTAL LOG DATA (PRIMARY KEY) COLUMNS",
        ),
        (
            "DMS user privileges",
            "SELECT privilege FROM dba_sys_privs WHERE grantee = '<DMS_USER>'  -- need "
            "CREATE SESSION, SELECT ANY TRANSACTION, LOGMINING and SELECT on V_$LOGMNR_*",
            "grant what the DMS Oracle-source guide lists (RDS: "
            "rdsadmin.rdsadmin_util.grant_sys_object for the V_$ views)",
        ),
        (
            "primary keys",
            "SELECT owner, table_name FROM all_tables t WHERE owner IN (<schemas>) AND NOT "
            "EXISTS (SELECT 1 FROM all_constraints c WHERE c.owner = t.owner AND "
            "c.table_name = t.table_name AND c.constraint_type = 'P')  -- need no rows",
            "add a PRIMARY KEY or exclude the table from the task",
        ),
    ],
    "sqlserver": [
        (
            "recovery model",
            "SELECT recovery_model_desc FROM sys.databases WHERE name = DB_NAME()  -- need FULL",
            "ALTER DATABASE <db> SET RECOVERY FULL, then take a full backup to start the log chain",
        ),
        (
            "full backup taken",
            "SELECT MAX(backup_finish_date) FROM msdb.dbo.backupset WHERE "
            "database_name = DB_NAME() AND type = 'D'  -- need a row",
            "BACKUP DATABASE <db> TO ... (RDS: automated backups on)",
        ),
        (
            "MS-CDC on the database (RDS, or tables without a primary key)",
            "SELECT is_cdc_enabled FROM sys.databases WHERE name = DB_NAME()  -- need 1",
            "RDS: exec msdb.dbo.rds_cdc_enable_db '<db>'; self-managed: exec sys.sp_cdc_enable_db",
        ),
        (
            "MS-CDC on each replicated table",
            "SELECT name FROM sys.tables WHERE is_tracked_by_cdc = 0  -- need none of yours",
            "exec sys.sp_cdc_enable_table @source_schema='<s>', @source_name='<t>', "
            "@role_name=NULL (and supports_net_changes=1 where a PK exists)",
        ),
        (
            "MS-Replication (self-managed, tables with a primary key)",
            "exec sp_get_distributor  -- need a configured distributor; DMS user sysadmin",
            "configure distribution in SSMS (Replication > Configure Distribution) or "
            "use MS-CDC instead",
        ),
        (
            "CDC capture job and retention",
            "SELECT * FROM msdb.dbo.cdc_jobs  -- pollinginterval, retention",
            "exec sys.sp_cdc_change_job @job_type='capture', @pollinginterval=3599; "
            "keep retention >= 24 h; SQL Server Agent must be running",
        ),
    ],
}


def manual_lines(engine: str) -> list[str]:
    return [f"MANUAL {name}: {how} — fix: {fix}" for name, how, fix in MANUAL_CHECKS[engine]]


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        allow_abbrev=False,
        prog="python -m tools.preflight",
        description="Check a legacy database's CDC prerequisites for AWS DMS.",
    )
    parser.add_argument("--engine", required=True, choices=ENGINES)
    add_connection_args(parser)
    parser.add_argument(
        "--schemas",
        help="comma-separated schemas (PostgreSQL) / databases (MySQL) to check for tables "
        "without a primary key (default: all user schemas / the --database)",
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
        help=f"binlog retention needed (MySQL; default {DEFAULT_MIN_RETENTION_HOURS})",
    )
    parser.add_argument(
        "--writeback-stack",
        metavar="STACK",
        help="instead of the CDC checks, check the legacy tables the stack's writeback writes "
        "(version column numeric, key collation exact); connect as the writeback login",
    )
    parser.add_argument(
        "--stack-dir", type=Path, default=None,
        help="folder holding Pulumi.<stack>.yaml (default: the project folder)",
    )
    return parser


def run(args: argparse.Namespace, secrets_client: Any = None) -> tuple[int, list[Check]]:
    """Connect and run the checks; SourceError on credential / connection problems."""
    writeback = load_writeback(args.writeback_stack, args.stack_dir) if args.writeback_stack \
        else None
    params = params_from_args(args, args.engine, secrets_client)
    schemas = [s.strip() for s in args.schemas.split(",") if s.strip()] if args.schemas else None
    conn = connect(params)
    try:
        if writeback is not None:
            checks = check_writeback(conn, params.engine, writeback)
        elif params.engine == "postgres":
            checks = check_postgres(conn, schemas, tasks=args.tasks)
        else:
            checks = check_mysql(conn, schemas, min_retention_hours=args.min_retention_hours)
    finally:
        conn.close()
    return (EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED), checks


def main(argv: Sequence[str] | None = None, secrets_client: Any = None) -> int:
    args = build_parser().parse_args(argv)
    if args.engine in MANUAL_CHECKS:
        print(f"# {args.engine}: not connected (no driver here); run these by hand")
        for line in manual_lines(args.engine):
            print(line)
        return EXIT_MANUAL
    try:
        code, checks = run(args, secrets_client)
    except SourceError as exc:
        print(f"preflight: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a query failed mid-way (privileges, timeout): still one line
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"preflight: check failed to run: {msg}", file=sys.stderr)
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
