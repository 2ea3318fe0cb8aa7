"""A CDC stand-in for AWS DMS: PostgreSQL logical decoding -> moto's DynamoDB (local pipeline).

It reads a logical replication slot with the built-in `test_decoding` plugin through the
SQL functions (`pg_logical_slot_peek_changes`), applies each committed transaction to
DynamoDB the way DMS's DynamoDB target does with `map-record-to-record`:

* one item per row, every column an attribute of the same name, NULL columns left out;
* the primary key columns are the item's key (the DynamoDB table's key schema);
* INSERT and UPDATE -> PutItem of the whole row as the stream carries it (UPDATE that
  changes the key: DeleteItem of the old key first); DELETE -> DeleteItem;
* a TOASTed value an UPDATE left unchanged is not in the new tuple (`unchanged-toast-datum`):
  under REPLICA IDENTITY FULL it is taken from the old image, otherwise it is ABSENT from the
  put -- the pessimistic model of DMS (docs/e2e.md);
* values converted by `tools.dms_types.postgres_text_to_dynamodb` (number types -> N with the exact
  digits, text/date/time -> S, bytea -> B, boolean -> BOOL).

The slot is the checkpoint: it is advanced (`pg_replication_slot_advance`) to a
transaction's COMMIT only after all of its changes were written to DynamoDB, so a crash
between the two replays the transaction (PutItem/DeleteItem are idempotent).

Full load: `full_load()` scans every mapped table (after the slot exists, as DMS's
full-load-and-cdc does) and puts every row.

DynamoDB itself writes no stream record for a PutItem that changes nothing; moto does. The
stand-in reproduces DynamoDB's behaviour by skipping puts of an identical item, so a replayed
transaction does not put duplicate change records on the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tools.localpipe.dmsvalues import dms_item

# ---------------------------------------------------------------- test_decoding text parser


class DecodeError(ValueError):
    """A test_decoding line this parser does not understand."""


@dataclass
class Column:
    name: str
    type: str
    text: str | None  # None = SQL NULL
    unchanged_toast: bool = False


@dataclass
class Change:
    """One row change decoded from the slot."""

    lsn: str
    schema: str
    table: str
    op: str  # INSERT | UPDATE | DELETE
    new: list[Column] = field(default_factory=list)
    old: list[Column] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def _ident(text: str, i: int) -> tuple[str, int]:
    """An identifier as quote_identifier prints it, starting at i, ending before stop."""
    if text[i] == '"':
        out = []
        i += 1
        while True:
            c = text[i]
            if c == '"':
                if i + 1 < len(text) and text[i + 1] == '"':
                    out.append('"')
                    i += 2
                    continue
                return "".join(out), i + 1
            out.append(c)
            i += 1
    j = i
    while j < len(text) and text[j] not in ".[: ":
        j += 1
    return text[i:j], j


def _columns(text: str, i: int, stop_words: tuple[str, ...] = ()) -> tuple[list[Column], int]:
    cols: list[Column] = []
    n = len(text)
    while i < n:
        while i < n and text[i] == " ":
            i += 1
        if i >= n or any(text.startswith(w, i) for w in stop_words):
            break
        name, i = _ident(text, i)
        if text[i] != "[":
            raise DecodeError(f"expected '[' at {i}: {text[i:i + 40]!r}")
        end = text.find("]:", i)
        if end < 0:
            raise DecodeError(f"no type end in {text[i:i + 40]!r}")
        typ = text[i + 1 : end]
        i = end + 2
        if text.startswith("null", i) and (i + 4 == n or text[i + 4] == " "):
            cols.append(Column(name, typ, None))
            i += 4
        elif text.startswith("unchanged-toast-datum", i):
            cols.append(Column(name, typ, None, unchanged_toast=True))
            i += len("unchanged-toast-datum")
        elif text[i] == "'":
            out = []
            i += 1
            while True:
                c = text[i]
                if c == "'":
                    if i + 1 < n and text[i + 1] == "'":
                        out.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                out.append(c)
                i += 1
            cols.append(Column(name, typ, "".join(out)))
        else:
            j = text.find(" ", i)
            j = n if j < 0 else j
            cols.append(Column(name, typ, text[i:j]))
            i = j
    return cols, i


def parse_change(lsn: str, data: str) -> Change | None:
    """A `table ...` line of test_decoding as a Change (None for BEGIN/COMMIT lines)."""
    if not data.startswith("table "):
        return None
    i = len("table ")
    schema, i = _ident(data, i)
    if data[i] != ".":
        raise DecodeError(f"expected schema.table: {data[:80]!r}")
    table, i = _ident(data, i + 1)
    if not data.startswith(": ", i):
        raise DecodeError(f"expected ': ' after the table: {data[:80]!r}")
    i += 2
    op_end = data.index(":", i)
    op = data[i:op_end]
    i = op_end + 1
    change = Change(lsn, schema, table, op)
    body = data[i:].lstrip(" ")
    if body.startswith("(no-tuple-data)"):
        return change
    if op == "UPDATE" and body.startswith("old-key:"):
        change.old, j = _columns(body, len("old-key:"), stop_words=("new-tuple:",))
        change.new, _ = _columns(body, j + len("new-tuple:"))
    elif op == "DELETE":
        change.old, _ = _columns(body, 0)
    else:
        change.new, _ = _columns(body, 0)
    return change


# ---------------------------------------------------------------------------- the stand-in


class SimulatedCrash(RuntimeError):
    """The CDC stand-in was 'killed' at an injected point."""


@dataclass
class TableMap:
    """One source table -> one DynamoDB table (DMS object mapping)."""

    source: str  # schema.table
    target: str  # physical DynamoDB table
    key_columns: list[str]


class CdcStandIn:
    """DMS task stand-in: full load + ongoing changes from a logical slot."""

    def __init__(
        self,
        conn: Any,
        dynamodb: Any,
        tables: dict[str, TableMap],
        slot: str,
        *,
        crash_hook: Callable[[str, int], None] | None = None,
        checkpoint_every: int = 1,
    ) -> None:
        """`conn`: an autocommit DB-API connection (user with REPLICATION) to the source
        database. `tables`: source `schema.table` -> mapping. `crash_hook(point, n)` is
        called at injection points ("applied" after each applied transaction, before the
        slot advances; "loaded" after each full-load row) and may raise SimulatedCrash.
        `checkpoint_every`: the slot is advanced after this many applied transactions (and
        at the end of each step) -- DMS also checkpoints periodically, not per transaction,
        so a crash replays every transaction applied since its last checkpoint."""
        self.conn = conn
        self.dynamodb = dynamodb
        self.tables = tables
        self.slot = slot
        self.crash_hook = crash_hook
        self.checkpoint_every = checkpoint_every
        self.applied_transactions = 0
        self.puts = 0
        self.deletes = 0
        self.skipped_identical = 0
        self.unchanged_toast_values = 0  # 'unchanged-toast-datum' columns seen in updates
        self.unchanged_toast_from_old_image = 0  # ... whose value the old image carried

    # --------------------------------------------------------------------- slot handling

    def create_slot(self) -> None:
        cur = self.conn.cursor()
        cur.execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
        )
        if not cur.fetchall():
            cur.execute(
                "SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (self.slot,)
            )
        cur.close()

    def drop_slot(self) -> None:
        cur = self.conn.cursor()
        cur.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s", (self.slot,)
        )
        cur.close()

    def _peek(self, upto_changes: int) -> list[tuple[str, str]]:
        cur = self.conn.cursor()
        cur.execute(
            "SELECT lsn::text, data FROM pg_logical_slot_peek_changes(%s, NULL, %s, "
            "'include-xids', '0', 'skip-empty-xacts', '1')",
            (self.slot, upto_changes),
        )
        rows = [(str(r[0]), str(r[1])) for r in cur.fetchall()]
        cur.close()
        return rows

    def _advance(self, lsn: str) -> None:
        cur = self.conn.cursor()
        cur.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self.slot, lsn))
        cur.fetchall()
        cur.close()

    # ---------------------------------------------------------------------- applying

    def step(self, max_changes: int = 500) -> int:
        """Apply the committed transactions waiting in the slot (about `max_changes` rows);
        returns how many transactions were applied (0 = quiet)."""
        rows = self._peek(max_changes)
        done = 0
        pending: list[Change] = []
        unacknowledged: str | None = None  # the last applied COMMIT not checkpointed yet
        since = 0
        for lsn, data in rows:
            if data.startswith("BEGIN"):
                pending = []
            elif data.startswith("COMMIT"):
                for change in pending:
                    self.apply(change)
                self.applied_transactions += 1
                unacknowledged, since = lsn, since + 1
                if self.crash_hook is not None:
                    self.crash_hook("applied", self.applied_transactions)
                if since >= self.checkpoint_every:
                    self._advance(lsn)
                    unacknowledged, since = None, 0
                done += 1
                pending = []
            else:
                parsed = parse_change(lsn, data)
                if parsed is not None:
                    pending.append(parsed)
        if unacknowledged is not None:
            self._advance(unacknowledged)
        return done

    def apply(self, change: Change) -> None:
        mapping = self.tables.get(change.qualified)
        if mapping is None:
            return  # not in the task's table mappings
        if change.op == "INSERT":
            self._put(mapping, change.new)
        elif change.op == "UPDATE":
            if change.old:
                old_key = self._key(mapping, change.old)
                if old_key != self._key(mapping, change.new):
                    self._delete(mapping, change.old)
            self._put(mapping, change.new, previous=change.old)
        elif change.op == "DELETE":
            self._delete(mapping, change.old)
        elif change.op == "TRUNCATE":
            raise DecodeError("TRUNCATE is not replicated by this stand-in")

    @staticmethod
    def _key(mapping: TableMap, cols: list[Column]) -> dict[str, Any]:
        item = dms_item([(c.name, c.type, c.text) for c in cols])
        return {k: item[k] for k in mapping.key_columns if k in item}

    def _put(
        self, mapping: TableMap, cols: list[Column], previous: list[Column] | None = None
    ) -> None:
        """PutItem of the row as the replication stream carries it. An unchanged TOASTed
        value ('unchanged-toast-datum') is not in the new tuple: under REPLICA IDENTITY FULL
        the old image carries it and it is written; otherwise the stream has no value for
        it and the column is ABSENT from the put (the pessimistic model of DMS: nobody here
        can confirm that DMS keeps the item's old value, see docs/e2e.md)."""
        old = {c.name: c for c in previous or [] if not c.unchanged_toast}
        row = []
        for c in cols:
            if not c.unchanged_toast:
                row.append(c)
                continue
            self.unchanged_toast_values += 1
            if c.name in old:  # the old image's value of that column
                self.unchanged_toast_from_old_image += 1
                row.append(old[c.name])
            # else: not in the stream, so not in the item
        item = dms_item([(c.name, c.type, c.text) for c in row])
        key = {k: item[k] for k in mapping.key_columns}
        current = self.dynamodb.get_item(
            TableName=mapping.target, Key=key, ConsistentRead=True
        ).get("Item")
        if current == item:
            self.skipped_identical += 1
            return
        self.dynamodb.put_item(TableName=mapping.target, Item=item)
        self.puts += 1

    def _delete(self, mapping: TableMap, cols: list[Column]) -> None:
        key = self._key(mapping, cols)
        self.dynamodb.delete_item(TableName=mapping.target, Key=key)
        self.deletes += 1

    # ---------------------------------------------------------------------- full load

    def full_load(self, tables: list[str] | None = None) -> int:
        """Put every row of the mapped tables (or of `tables`); returns rows loaded."""
        loaded = 0
        for source in tables or list(self.tables):
            mapping = self.tables[source]
            for cols in source_rows(self.conn, source):
                self._put(mapping, [Column(n, t, v) for n, t, v in cols])
                loaded += 1
                if self.crash_hook is not None:
                    self.crash_hook("loaded", loaded)
        return loaded


def source_columns(conn: Any, qualified: str) -> list[tuple[str, str]]:
    """(column, type name as test_decoding prints it) of a table, in column order."""
    schema, table = qualified.split(".", 1)
    cur = conn.cursor()
    cur.execute(
        "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        (schema, table),
    )
    out = [(str(r[0]), str(r[1])) for r in cur.fetchall()]
    cur.close()
    return out


def _qident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def source_rows(conn: Any, qualified: str) -> list[list[tuple[str, str, str | None]]]:
    """Every row of a source table as (column, type, text or None), like the slot gives."""
    cols = source_columns(conn, qualified)
    schema, table = qualified.split(".", 1)
    select = ", ".join(f"{_qident(n)}::text" for n, _ in cols)
    cur = conn.cursor()
    cur.execute(f"SELECT {select} FROM {_qident(schema)}.{_qident(table)}")
    rows = [
        [(n, t, None if v is None else str(v)) for (n, t), v in zip(cols, row, strict=True)]
        for row in cur.fetchall()
    ]
    cur.close()
    return rows
