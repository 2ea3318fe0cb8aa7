"""What differs between the source engines of the local pipeline (PostgreSQL, MariaDB).

`Pipeline` (harness.py) and the fault matrix are written once; every step that depends on the
source engine goes through one of these classes, chosen by the server's `engine`:

=====================  =================================  ===================================
step                   PostgreSQL                         MariaDB
=====================  =================================  ===================================
CDC stand-in           `cdc.CdcStandIn` (logical slot,    `binlog_cdc.BinlogCdc` (binlog
                       test_decoding; the slot is the     file/position `Checkpoint`)
                       checkpoint)
default schema         ``public``                         the database
table DDL              + ``REPLICA IDENTITY FULL``        + ``DEFAULT CHARSET=utf8mb4``
column type change     ``ALTER COLUMN c TYPE t``          ``MODIFY COLUMN c t``
writeback login        a role (``GRANT ALL`` on the       a user (``SELECT, INSERT, UPDATE,
                       schema's tables)                   DELETE`` on the database)
writeback target       ``kind: postgres``                 ``kind: mysql``
audit (who wrote)      one plpgsql row trigger            three row triggers (by the admin)
lock wait of the       ``pg_stat_activity``               ``INNODB_TRX`` + ``PROCESSLIST``
writeback              (``wait_event_type = 'Lock'``)     (``trx_state = 'LOCK WAIT'``)
new tables, keys       ``pg_class``, ``pg_index``         ``information_schema``
reconcile engine       ``postgres``                       ``mariadb``
=====================  =================================  ===================================
"""

from __future__ import annotations

import secrets
import time
from typing import Any

ENGINES = ("postgres", "mariadb")


def _pg_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _my_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _rows(conn: Any, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.execute(statement, params)
    try:
        rows = [tuple(r) for r in cur.fetchall()]
    except Exception:  # noqa: BLE001 - statements without a result set
        rows = []
    cur.close()
    return rows


class PostgresEngine:
    """A PostgreSQL source (logical decoding)."""

    name = "postgres"  # tools.reconcile / tools.dms_types engine name
    writeback_kind = "postgres"

    def __init__(self, db: Any) -> None:
        self.db = db
        self.schema = "public"

    def quote(self, name: str) -> str:
        return _pg_quote(name)

    def connect(self) -> Any:
        conn = self.db.connect(autocommit=True)
        # The test servers run with synchronous_commit=off; logical decoding only sees
        # flushed WAL, so commits of this database flush (every new session inherits it).
        _rows(conn, f"ALTER DATABASE {_pg_quote(self.db.dbname)} SET synchronous_commit = on")
        _rows(conn, "SET synchronous_commit = on")
        return conn

    # ------------------------------------------------------------------ the CDC stand-in

    def cdc(
        self,
        conn: Any,
        ddb: Any,
        tables: dict[str, Any],
        token: str,
        *,
        state: Any = None,
        **kwargs: Any,
    ) -> Any:
        """A stand-in reading from `state` (the slot name; a new one when None)."""
        from tools.localpipe.cdc import CdcStandIn

        return CdcStandIn(conn, ddb, tables, state or f"e2e_{token}", **kwargs)

    def cdc_state(self, cdc: Any) -> Any:
        return cdc.slot

    def table_map(self, source: str, target: str, keys: list[str]) -> Any:
        from tools.localpipe.cdc import TableMap

        return TableMap(source, target, keys)

    def cdc_start(self, cdc: Any, *, full_load: bool) -> None:
        """Rule 1: the slot first, then the full load (full-load-and-cdc)."""
        cdc.create_slot()
        if full_load:
            cdc.full_load()

    def cdc_reload(self, cdc: Any) -> None:
        """The task restarted after a crash during its full load: load again."""
        cdc.full_load()

    def cdc_reconnect(self, cdc: Any, conn: Any) -> None:
        cdc.conn = conn

    def cdc_close(self, cdc: Any) -> None:
        cdc.drop_slot()

    def cdc_discard(self, cdc: Any) -> None:
        """A killed stand-in: its connection is the harness's, its slot lives on."""
        del cdc

    # ------------------------------------------------------------------ catalog

    def source_items(self, conn: Any, qualified: str) -> list[dict[str, Any]]:
        """Every row as the item DMS writes."""
        from tools.localpipe.cdc import source_rows
        from tools.localpipe.dmsvalues import dms_item

        return [dms_item(cols) for cols in source_rows(conn, qualified)]

    def columns(self, conn: Any, qualified: str) -> list[tuple[str, str]]:
        from tools.localpipe.cdc import source_columns

        return source_columns(conn, qualified)

    def tables(self, conn: Any, schema: str) -> list[str]:
        return sorted(
            str(r[0])
            for r in _rows(
                conn,
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            )
        )

    def primary_key(self, conn: Any, qualified: str) -> list[tuple[str, str]]:
        schema, table = qualified.split(".", 1)
        rows = _rows(
            conn,
            "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass "
            "AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
            (schema, table),
        )
        numeric = {"smallint", "integer", "bigint", "numeric"}
        return [(str(n), "N" if str(t) in numeric else "S") for n, t in rows]

    # ------------------------------------------------------------------ DDL

    def create_table(self, conn: Any, ddl: str, table: str) -> None:
        _rows(conn, ddl)
        _rows(conn, f"ALTER TABLE {_pg_quote(table)} REPLICA IDENTITY FULL")

    def change_column_type(self, conn: Any, table: str, column: str, sql_type: str) -> None:
        _rows(
            conn, f"ALTER TABLE {_pg_quote(table)} ALTER COLUMN {_pg_quote(column)} TYPE {sql_type}"
        )

    # ------------------------------------------------------------------ the write path

    def writeback_login(self, token: str) -> tuple[str, str]:
        user, password = f"wb_{token}", secrets.token_urlsafe(12)
        admin = self.db.admin_connect(self.db.dbname)
        try:
            _rows(admin, f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
            _rows(admin, f"GRANT ALL ON SCHEMA public TO {user}")
            _rows(admin, f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {user}")
        finally:
            admin.close()
        return user, password

    def install_audit(self, conn: Any, qualified: str, writer: str | None) -> None:
        """Row trigger logging every committed write (who, key, version) in e2e_audit."""
        _rows(
            conn,
            "CREATE TABLE IF NOT EXISTS e2e_audit (n bigserial PRIMARY KEY, tbl text, op text, "
            "row_key text, version numeric, who text, at timestamptz DEFAULT clock_timestamp())",
        )
        _rows(
            conn,
            "CREATE OR REPLACE FUNCTION e2e_audit_row() RETURNS trigger AS $$ BEGIN "
            "IF TG_OP = 'DELETE' THEN INSERT INTO e2e_audit(tbl, op, row_key, version, who) "
            "VALUES (TG_TABLE_NAME, TG_OP, OLD.id::text, OLD.version, current_user); "
            "RETURN OLD; END IF; "
            "INSERT INTO e2e_audit(tbl, op, row_key, version, who) "
            "VALUES (TG_TABLE_NAME, TG_OP, NEW.id::text, NEW.version, current_user); "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
        )
        schema, name = qualified.split(".", 1)
        _rows(
            conn,
            f"CREATE TRIGGER e2e_audit_{name} AFTER INSERT OR UPDATE OR DELETE ON "
            f"{_pg_quote(schema)}.{_pg_quote(name)} FOR EACH ROW EXECUTE FUNCTION "
            "e2e_audit_row()",
        )
        if writer is not None:
            _rows(conn, f"GRANT ALL ON e2e_audit, e2e_audit_n_seq TO {writer}")

    def audit_writes(self, conn: Any, writer: str) -> list[tuple[str, str, str, Any]]:
        return [
            (str(r[0]), str(r[1]), str(r[2]), r[3])
            for r in _rows(
                conn,
                "SELECT tbl, op, row_key, version FROM e2e_audit WHERE who = %s ORDER BY n",
                (writer,),
            )
        ]

    def writeback_lock_waits(self, writer: str) -> int:
        """Sessions of the writeback waiting on a row lock (other roles' wait events are
        visible to a superuser only, or pg_read_all_stats)."""
        admin = self.db.admin_connect()
        try:
            return int(
                _rows(
                    admin,
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND application_name = 'dms-event-bus-writeback' AND usename = %s",
                    (writer,),
                )[0][0]
            )
        finally:
            admin.close()


class MariaDbEngine:
    """A MariaDB source (binlog ROW/FULL), the MySQL family's stand-in."""

    name = "mariadb"
    writeback_kind = "mysql"

    def __init__(self, db: Any) -> None:
        self.db = db
        self.schema = db.dbname

    def quote(self, name: str) -> str:
        return _my_quote(name)

    def settings(self) -> dict[str, Any]:
        return {
            "host": self.db.host,
            "port": self.db.port,
            "user": self.db.user,
            "password": self.db.password,
        }

    def connect(self) -> Any:
        conn = self.db.connect(autocommit=True)
        _rows(conn, "SET time_zone = '+00:00'")  # as the CDC stand-in reads
        return conn

    # ------------------------------------------------------------------ the CDC stand-in

    def cdc(
        self,
        conn: Any,
        ddb: Any,
        tables: dict[str, Any],
        token: str,
        *,
        state: Any = None,
        **kwargs: Any,
    ) -> Any:
        """A stand-in resuming from `state` (the binlog `Checkpoint`; a new one when None)."""
        from tools.localpipe.binlog_cdc import BinlogCdc, Checkpoint

        del conn, token  # it opens its own connection; the checkpoint needs no name
        return BinlogCdc(
            self.settings(), ddb, tables, state if state is not None else Checkpoint(), **kwargs
        )

    def cdc_state(self, cdc: Any) -> Any:
        return cdc.checkpoint

    def table_map(self, source: str, target: str, keys: list[str]) -> Any:
        from tools.localpipe.binlog_cdc import BinlogTableMap

        return BinlogTableMap(source, target, keys)

    def cdc_start(self, cdc: Any, *, full_load: bool) -> None:
        """The binlog position first, then the full load, then that position saved."""
        if full_load:
            cdc.start()
        else:
            cdc.checkpoint.save(*cdc.master_position())

    def cdc_reload(self, cdc: Any) -> None:
        cdc.start()  # no checkpoint yet: a new position, then the load again

    def cdc_reconnect(self, cdc: Any, conn: Any) -> None:
        del conn
        cdc.reconnect()

    def cdc_close(self, cdc: Any) -> None:
        cdc.close()

    def cdc_discard(self, cdc: Any) -> None:
        """A killed stand-in: its own connection goes; the checkpoint lives on."""
        cdc.close()

    # ------------------------------------------------------------------ catalog

    def source_items(self, conn: Any, qualified: str) -> list[dict[str, Any]]:
        from tools.localpipe.binlog_cdc import table_items

        return table_items(conn, qualified)

    def columns(self, conn: Any, qualified: str) -> list[tuple[str, str]]:
        database, table = qualified.split(".", 1)
        return [
            (str(n), str(t))
            for n, t in _rows(
                conn,
                "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (database, table),
            )
        ]

    def tables(self, conn: Any, schema: str) -> list[str]:
        return sorted(
            str(r[0])
            for r in _rows(
                conn,
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_TYPE = 'BASE TABLE'",
                (schema,),
            )
        )

    def primary_key(self, conn: Any, qualified: str) -> list[tuple[str, str]]:
        from tools.dms_types import category_of

        database, table = qualified.split(".", 1)
        rows = _rows(
            conn,
            "SELECT s.COLUMN_NAME, c.COLUMN_TYPE FROM information_schema.STATISTICS s "
            "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA "
            "AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME "
            "WHERE s.TABLE_SCHEMA = %s AND s.TABLE_NAME = %s AND s.INDEX_NAME = 'PRIMARY' "
            "ORDER BY s.SEQ_IN_INDEX",
            (database, table),
        )
        numeric = {"number"}
        return [(str(n), "N" if category_of("mysql", str(t)) in numeric else "S") for n, t in rows]

    # ------------------------------------------------------------------ DDL

    def create_table(self, conn: Any, ddl: str, table: str) -> None:
        del table
        _rows(conn, f"{ddl} DEFAULT CHARSET=utf8mb4")

    def change_column_type(self, conn: Any, table: str, column: str, sql_type: str) -> None:
        _rows(conn, f"ALTER TABLE {_my_quote(table)} MODIFY COLUMN {_my_quote(column)} {sql_type}")

    # ------------------------------------------------------------------ the write path

    def writeback_login(self, token: str) -> tuple[str, str]:
        user, password = f"wb_{token}", secrets.token_urlsafe(12)
        admin = self.db.admin_connect(self.db.dbname)
        try:
            for host in ("127.0.0.1", "localhost"):
                _rows(admin, "CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
                _rows(
                    admin,
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON "
                    f"{_my_quote(self.db.dbname)}.* TO %s@%s",
                    (user, host),
                )
        finally:
            admin.close()
        return user, password

    def install_audit(self, conn: Any, qualified: str, writer: str | None) -> None:
        """Row triggers logging every committed write (who, key, version) in e2e_audit;
        created by the admin (CREATE TRIGGER with the binlog on needs SUPER), so they run
        with its rights whoever writes."""
        del conn, writer
        admin = self.db.admin_connect(self.db.dbname)
        try:
            _rows(
                admin,
                "CREATE TABLE IF NOT EXISTS e2e_audit (n bigint AUTO_INCREMENT PRIMARY KEY, "
                "tbl varchar(64), op varchar(8), row_key varchar(200), version decimal(38,0), "
                "who varchar(80), at timestamp(6) DEFAULT CURRENT_TIMESTAMP(6)) "
                "DEFAULT CHARSET=utf8mb4",
            )
            schema, name = qualified.split(".", 1)
            table = f"{_my_quote(schema)}.{_my_quote(name)}"
            who = "SUBSTRING_INDEX(USER(), '@', 1)"
            # MySQL fires UPDATE triggers for rows an UPDATE (or the ON DUPLICATE KEY UPDATE
            # of an upsert) matched but left unchanged: such a row is not a write
            changed = " OR ".join(
                f"NOT (OLD.{_my_quote(c)} <=> NEW.{_my_quote(c)})"
                for c, _ in self.columns(admin, qualified)
            )
            for op, row, when in (
                ("INSERT", "NEW", "TRUE"),
                ("UPDATE", "NEW", changed),
                ("DELETE", "OLD", "TRUE"),
            ):
                _rows(
                    admin,
                    f"CREATE TRIGGER e2e_audit_{name}_{op.lower()} AFTER {op} ON {table} "
                    f"FOR EACH ROW INSERT INTO e2e_audit(tbl, op, row_key, version, who) "
                    f"SELECT '{name}', '{op}', CAST({row}.id AS CHAR), {row}.version, {who} "
                    f"FROM DUAL WHERE {when}",
                )
        finally:
            admin.close()

    def audit_writes(self, conn: Any, writer: str) -> list[tuple[str, str, str, Any]]:
        return [
            (str(r[0]), str(r[1]), str(r[2]), r[3])
            for r in _rows(
                conn,
                "SELECT tbl, op, row_key, version FROM e2e_audit WHERE who = %s ORDER BY n",
                (writer,),
            )
        ]

    def writeback_lock_waits(self, writer: str) -> int:
        """Transactions of the writeback's user waiting on a row lock."""
        admin = self.db.admin_connect()
        try:
            return int(
                _rows(
                    admin,
                    "SELECT count(*) FROM information_schema.INNODB_TRX t "
                    "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                    "WHERE t.trx_state = 'LOCK WAIT' AND p.USER = %s",
                    (writer,),
                )[0][0]
            )
        finally:
            admin.close()


SourceEngine = PostgresEngine | MariaDbEngine


def engine_for(db: Any) -> SourceEngine:
    """The engine helper for a server of `tools.localpipe.servers` (its `engine`)."""
    if db.engine == "postgres":
        return PostgresEngine(db)
    if db.engine == "mariadb":
        return MariaDbEngine(db)
    raise ValueError(f"no local pipeline for source engine {db.engine!r}: one of {ENGINES}")


def wait_until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    """Poll `predicate()` until it is true; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(what)
