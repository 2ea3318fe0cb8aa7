"""A CDC stand-in for AWS DMS on MySQL / MariaDB: the binary log -> moto's DynamoDB.

The MySQL-family sibling of ``tools/localpipe/cdc.py`` (PostgreSQL). It reads the source's binary
log (``binlog_format=ROW``, ``binlog_row_image=FULL``) with the maintained ``mysql-replication``
client (``BinLogStreamReader``: ``WriteRowsEvent`` / ``UpdateRowsEvent`` / ``DeleteRowsEvent``,
``XidEvent`` for the commit, ``resume_stream`` from ``log_file`` / ``log_pos``) and applies each
committed transaction the way DMS's DynamoDB target does with ``map-record-to-record``:

* one item per row, every column an attribute of the same name, NULL columns left out;
* the primary key columns are the item's key; INSERT and UPDATE -> PutItem of the whole row
  image (an UPDATE that changes the key: DeleteItem of the old key first); DELETE -> DeleteItem;
* values as DMS maps MySQL source types (DMS user guide, "Source data types for MySQL") and
  then to DynamoDB, converted by ``tools.dms_types.to_attribute`` with the column's category
  from ``tools.dms_types.category_of("mysql", COLUMN_TYPE)``: integers (``TINYINT(1)``
  included: DMS's INT1) and ``DECIMAL`` -> ``N`` with the exact digits; ``DATETIME`` and
  ``TIMESTAMP`` (in UTC) -> ``S`` ``YYYY-MM-DD HH:MM:SS[.f]``; ``DATE``/``TIME`` -> ``S``;
  ``ENUM``/``SET`` (WSTRING) -> ``S`` as MySQL prints them (a SET's members in definition
  order, comma-separated; the empty SET is ``""``); ``JSON`` (CLOB) -> ``S``; ``BLOB`` /
  ``BINARY`` -> ``B``; ``BIT`` -> ``N`` (the project's reconcile compares it as a number).

The checkpoint is the binlog file and position after a transaction's commit event (``Xid``),
saved only after all of the transaction's changes were written to DynamoDB; a crash between
the two replays the transaction from the previous checkpoint (PutItem of a full row image
and DeleteItem are idempotent). Like ``cdc.py`` it skips a put of an item identical to the
stored one, as DynamoDB writes no stream record for it (moto would).

Full load (``start``): the binlog position is taken first (``SHOW MASTER STATUS``), then every
mapped table is read and put, then that position becomes the checkpoint -- so changes made
during the load are replayed after it, as DMS's full-load-and-cdc caches them. A crash during
the load starts the load again.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import QueryEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from tools.dms_types import Attribute, category_of, to_attribute
from tools.localpipe.cdc import SimulatedCrash  # one class for both stand-ins

__all__ = ["BinlogCdc", "BinlogTableMap", "Checkpoint", "SimulatedCrash", "table_items"]


@dataclass
class BinlogTableMap:
    """One source table (``database.table``) -> one DynamoDB table."""

    source: str
    target: str
    key_columns: list[str]


@dataclass
class Checkpoint:
    """Where the next run resumes: the binlog file and position after the last applied
    commit (``None`` until the full load finished). Kept outside the stand-in, like DMS's
    task state, so a new instance after a crash resumes from it."""

    log_file: str | None = None
    log_pos: int | None = None
    saves: int = 0

    def save(self, log_file: str, log_pos: int) -> None:
        self.log_file, self.log_pos, self.saves = log_file, log_pos, self.saves + 1


@dataclass
class _Column:
    name: str
    column_type: str  # information_schema.COLUMNS.COLUMN_TYPE, e.g. "set('a','b')"
    set_members: list[str] = field(default_factory=list)


_MEMBER_RE = re.compile(r"'((?:[^']|'')*)'")


def _columns(conn: Any, qualified: str) -> list[_Column]:
    database, table = qualified.split(".", 1)
    cur = conn.cursor()
    cur.execute(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    out = []
    for name, raw in cur.fetchall():
        ctype = raw.decode() if isinstance(raw, bytes) else str(raw)
        members = []
        if ctype.lower().startswith("set("):
            members = [m.replace("''", "'") for m in _MEMBER_RE.findall(ctype)]
        out.append(_Column(str(name), ctype, members))
    cur.close()
    return out


def mysql_value_to_attribute(value: Any, column_type: str, set_members: list[str] | None = None,
                             *, empty_set: bool = False) -> Attribute | None:
    """What DMS writes for one MySQL/MariaDB column value, as the binlog client or PyMySQL
    returns it (``None``: NULL, dropped). ``empty_set``: the binlog client reports the empty
    SET as ``None``; it is ``''`` in MySQL, not NULL."""
    base = column_type.lower().split("(")[0].split(" ")[0]
    if value is None:
        return {"S": ""} if empty_set and base == "set" else None
    if base == "set":
        if isinstance(value, set | frozenset):  # binlog client: a Python set
            order = set_members or sorted(value)
            value = ",".join(m for m in order if m in value)
        return {"S": str(value)}
    if base == "bit":  # binlog client: "0101"; PyMySQL: big-endian bytes
        number = int.from_bytes(value, "big") if isinstance(value, bytes) else int(value, 2)
        return {"N": str(number)}
    category = category_of("mysql", column_type)
    if isinstance(value, bytes) and category != "binary":
        value = value.decode("utf-8")
    if base == "json" and isinstance(value, dict | list | int | float | bool):
        return {"S": json.dumps(value)}
    if category == "datetime_tz" and isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # binlog client and the UTC session: UTC
    return to_attribute(value, category)


class BinlogCdc:
    """DMS task stand-in for a MySQL-family source: full load + ongoing binlog changes."""

    def __init__(
        self,
        connection: dict[str, Any],
        dynamodb: Any,
        tables: dict[str, BinlogTableMap],
        checkpoint: Checkpoint,
        *,
        crash_hook: Callable[[str, int], None] | None = None,
        server_id: int | None = None,
        checkpoint_every: int = 1,
    ) -> None:
        """``connection``: PyMySQL keyword arguments (host, port, user, passwd) of a login with
        SELECT on the tables and REPLICATION SLAVE + BINLOG MONITOR (REPLICATION CLIENT).
        ``crash_hook(point, n)`` is called after each DynamoDB write ("write", n) and after
        each applied transaction before its checkpoint ("applied", n), and after each
        full-load row ("loaded", n); it may raise :class:`SimulatedCrash`.
        ``checkpoint_every``: the checkpoint is saved after this many applied transactions
        (and at the end of each step), as DMS checkpoints periodically: a crash replays
        every transaction applied since the last one."""
        self.connection = dict(connection)
        self.dynamodb = dynamodb
        self.tables = tables
        self.checkpoint = checkpoint
        self.crash_hook = crash_hook
        self.checkpoint_every = checkpoint_every
        self.server_id = server_id or 1000 + secrets.randbelow(1_000_000)
        self.conn = connect(self.connection)
        self._cols = {q: _columns(self.conn, q) for q in tables}
        self.writes = 0
        self.puts = 0
        self.deletes = 0
        self.skipped_identical = 0
        self.applied_transactions = 0
        self.loaded = 0

    def close(self) -> None:
        self.conn.close()

    def reconnect(self) -> None:
        """A new connection for the catalog and the full load (after a server restart)."""
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - the old connection is usually broken already
            pass
        self.conn = connect(self.connection)

    def columns(self, qualified: str) -> list[_Column]:
        """The table's columns as the stand-in converts them (read once, re-read after DDL)."""
        if qualified not in self._cols:
            self._cols[qualified] = _columns(self.conn, qualified)
        return self._cols[qualified]

    def _hook(self, point: str, n: int) -> None:
        if self.crash_hook is not None:
            self.crash_hook(point, n)

    # ------------------------------------------------------------------ items

    def item(self, qualified: str, values: dict[str, Any],
             none_sources: dict[str, str] | None = None) -> dict[str, Attribute]:
        """A row (column -> value) as the item DMS writes (NULL columns left out)."""
        item: dict[str, Attribute] = {}
        if set(values) - {c.name for c in self.columns(qualified)}:
            self._cols[qualified] = _columns(self.conn, qualified)  # a column added since
        for col in self.columns(qualified):
            empty = (none_sources or {}).get(col.name) == "empty set"
            attr = mysql_value_to_attribute(values.get(col.name), col.column_type,
                                            col.set_members, empty_set=empty)
            if attr is not None:
                item[col.name] = attr
        return item

    def _put(self, mapping: BinlogTableMap, item: dict[str, Attribute]) -> None:
        key = {k: item[k] for k in mapping.key_columns}
        current = self.dynamodb.get_item(TableName=mapping.target, Key=key,
                                         ConsistentRead=True).get("Item")
        if current == item:
            self.skipped_identical += 1
            return
        self.dynamodb.put_item(TableName=mapping.target, Item=item)
        self.puts += 1
        self.writes += 1
        self._hook("write", self.writes)

    def _delete(self, mapping: BinlogTableMap, item: dict[str, Attribute]) -> None:
        self.dynamodb.delete_item(TableName=mapping.target,
                                  Key={k: item[k] for k in mapping.key_columns})
        self.deletes += 1
        self.writes += 1
        self._hook("write", self.writes)

    # ------------------------------------------------------------------ full load

    def master_position(self) -> tuple[str, int]:
        cur = self.conn.cursor()
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        cur.close()
        if not row:
            raise RuntimeError("SHOW MASTER STATUS returned nothing: is log_bin on?")
        return str(row[0]), int(row[1])

    def start(self) -> int:
        """Full load unless the checkpoint says it finished; returns rows loaded."""
        if self.checkpoint.log_file is not None:
            return 0
        log_file, log_pos = self.master_position()
        loaded = self.full_load()
        self.checkpoint.save(log_file, log_pos)
        return loaded

    def full_load(self, tables: list[str] | None = None) -> int:
        """Put every row of the mapped tables (or of ``tables``, e.g. one that appeared
        mid-run under a wildcard mapping); returns rows loaded. Leaves the checkpoint alone."""
        loaded = 0
        for qualified in tables or list(self.tables):
            mapping = self.tables[qualified]
            self._cols[qualified] = _columns(self.conn, qualified)
            for item in table_items(self.conn, qualified, self._cols[qualified]):
                self._put(mapping, item)
                loaded += 1
                self.loaded += 1
                self._hook("loaded", self.loaded)
        return loaded

    # ------------------------------------------------------------------ changes

    def step(self) -> int:
        """Apply every committed transaction after the checkpoint (non-blocking: stops when
        the reader reaches the end of the binlog); returns transactions applied."""
        if self.checkpoint.log_file is None:
            raise RuntimeError("no checkpoint: run start() (the full load) first")
        schemas = sorted({q.split(".", 1)[0] for q in self.tables})
        stream = BinLogStreamReader(
            connection_settings=dict(self.connection),  # the library adds to it
            server_id=self.server_id,
            resume_stream=True,
            log_file=self.checkpoint.log_file,
            log_pos=self.checkpoint.log_pos,
            blocking=False,
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent,
                         QueryEvent],
            only_schemas=schemas,
            # by file/position: the library's MariaDB mode positions by GTID instead
            is_mariadb=False,
        )
        done = 0
        pending: list[tuple[str, Any]] = []
        touched = False  # the transaction changed rows (of any table of the schemas)
        since = 0  # applied transactions not checkpointed yet
        position: tuple[str, int] | None = None
        try:
            for event in stream:
                if isinstance(event, QueryEvent):
                    if _is_ddl(event.query):  # ALTER/CREATE...: read the columns again
                        self._cols = {q: _columns(self.conn, q) for q in self._cols}
                    continue
                if isinstance(event, XidEvent):
                    position = (stream.log_file, stream.log_pos)
                    if not touched:
                        continue
                    for qualified, change in pending:
                        self._apply(qualified, change)
                    pending, touched = [], False
                    self.applied_transactions += 1
                    since += 1
                    self._hook("applied", self.applied_transactions)
                    if since >= self.checkpoint_every:
                        self.checkpoint.save(*position)
                        since, position = 0, None
                    done += 1
                    continue
                touched = True
                qualified = f"{event.schema}.{event.table}"
                if qualified not in self.tables:
                    continue
                for row in event.rows:
                    pending.append((qualified, (type(event), row)))
            if position is not None:
                self.checkpoint.save(*position)
        finally:
            stream.close()
        return done

    def _apply(self, qualified: str, change: tuple[type, dict[str, Any]]) -> None:
        mapping = self.tables[qualified]
        kind, row = change
        if kind is WriteRowsEvent:
            self._put(mapping, self.item(qualified, row["values"], row.get("none_sources")))
        elif kind is DeleteRowsEvent:
            self._delete(mapping, self.item(qualified, row["values"], row.get("none_sources")))
        else:
            before = self.item(qualified, row["before_values"], row.get("before_none_sources"))
            after = self.item(qualified, row["after_values"], row.get("after_none_sources"))
            if {k: before[k] for k in mapping.key_columns} != {
                k: after[k] for k in mapping.key_columns
            }:
                self._delete(mapping, before)
            self._put(mapping, after)


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


_DDL_RE = re.compile(r"^\s*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE)


def _is_ddl(query: str | bytes) -> bool:
    text = query.decode("utf-8", "replace") if isinstance(query, bytes) else str(query)
    return bool(_DDL_RE.match(text))


def connect(connection: dict[str, Any]) -> Any:
    """A PyMySQL connection as the stand-in reads the source: autocommit, utf8mb4, UTC."""
    import pymysql

    settings = {**connection, "autocommit": True, "charset": "utf8mb4",
                "init_command": "SET time_zone = '+00:00'"}
    return pymysql.connect(**settings)


def table_items(conn: Any, qualified: str,
                columns: list[_Column] | None = None) -> list[dict[str, Attribute]]:
    """Every row of a source table as the item DMS writes (the full load's read; the
    harness's reconcile reads the source the same way)."""
    cols = columns if columns is not None else _columns(conn, qualified)
    database, table = qualified.split(".", 1)
    cur = conn.cursor()
    cur.execute(f"SELECT {', '.join(_q(c.name) for c in cols)} FROM {_q(database)}.{_q(table)}")
    items = []
    for row in cur.fetchall():
        item: dict[str, Attribute] = {}
        for col, value in zip(cols, row, strict=True):
            attr = mysql_value_to_attribute(value, col.column_type, col.set_members)
            if attr is not None:
                item[col.name] = attr
        items.append(item)
    cur.close()
    return items
