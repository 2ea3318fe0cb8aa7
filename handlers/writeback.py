"""Legacy writeback: DynamoDB Streams changes of the write path's tables -> the legacy database.

Entry point `handler(event, context)` (Lambda, DynamoDB Streams event source mapping with
ReportBatchItemFailures). The work is done by `process(records, config, ...)` with injected
executor and DynamoDB client, so it is testable without AWS.

Rules (docs/writeback.md):
* insert/update -> upsert applied only when the incoming version is newer than the row's;
  delete -> applied only when the row's version is not newer. Replaying a batch changes
  nothing.
* Not written back: images without the write path's status marker (DMS echoes: DMS writes
  the legacy row's columns only), status-only updates (the handler's own status writes), TTL
  deletes (userIdentity = the DynamoDB service).
* One multi-row statement per table per batch; several changes of one key collapse to the
  newest. A record the database rejects is isolated (bisection with rolled-back probes): the
  records before it are applied, its sequence number is reported as the batch item failure.
* Afterwards the item's status becomes `applied` (`conflict` or `error` with the reason)
  through a conditional UpdateItem; that update is status-only, so it is ignored when it
  comes back.

`Config`, `Outcome` (here `WritebackOutcome`), `ConfigError` and `PoisonRecordError` mean
what `handlers.common` says; what the writeback decides about one record is a `Verdict`.
Map, list and set values are written as JSON by `handlers.envelope.value_json`.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from .common import ConfigError, Outcome, PoisonRecordError, config_from_env
from .envelope import value_json
from .observability import WRITEBACK_NAMESPACE, client, emf, log
from .writeback_sql import (
    DataApiExecutor,
    DataError,
    DbApiExecutor,
    Executor,
    JsonText,
    SchemaNotReadyError,
    Statement,
    TableSpec,
    build_statements,
    connect,
)

NAMESPACE = WRITEBACK_NAMESPACE
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
#: The statuses the writeback sets (docs/ingest-api.md: what a client does with each).
WRITEBACK_STATUSES = frozenset({"applied", "conflict", "error"})


# --------------------------------------------------------------------------- DynamoDB values


def attr_value(attr: dict[str, Any]) -> Any:
    """One DynamoDB-JSON attribute as the SQL parameter value.

    S -> str, N -> int (integral) or exact Decimal, BOOL -> bool, NULL -> None,
    B -> bytes (Lambda delivers base64), SS/NS/BS/L/M -> JSON text written by
    `handlers.envelope.value_json` (exact numbers, map attributes and set members in the
    order the item holds them).
    """
    if "S" in attr:
        return attr["S"]
    if "N" in attr:
        return number(attr["N"])
    (kind, value), = attr.items()
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "B":
        return value if isinstance(value, bytes | bytearray) else base64.b64decode(value)
    return JsonText(value_json(attr))


def number(text: str) -> int | Decimal:
    """DynamoDB N text -> int when written as an integer, else the exact Decimal."""
    if "." in text or "e" in text or "E" in text:
        return Decimal(text)
    return int(text)


# --------------------------------------------------------------------------- parsing


@dataclass(slots=True)
class Change:
    """One stream record that must be written back."""

    index: int  # position in the batch
    seq: str
    table: str  # physical DynamoDB table
    spec: TableSpec
    op: str  # "upsert" | "delete"
    key: tuple[Any, ...]  # legacy key column values
    version: Decimal
    #: upsert values in spec.upsert_columns order (or, `json` styles, the row as the JSON
    #: object json_populate_recordset reads: column -> value, `_json_row`)
    row: list[Any] | dict[str, Any] = field(default_factory=list)
    item_keys: dict[str, Any] = field(default_factory=dict)  # DynamoDB JSON key of the item
    version_attr: dict[str, Any] = field(default_factory=dict)  # DynamoDB JSON version


@dataclass(slots=True)
class Verdict:
    """What one record means for the writeback: a change to write back, a skip (and why), or
    poison (a record that can never be written back, and why)."""

    index: int
    seq: str
    action: str  # "change", "skip", "poison"
    reason: str = ""
    change: Change | None = None
    item: StatusTarget | None = None  # poison only: the item whose status reports it


@dataclass(frozen=True)
class StatusTarget:
    """The DynamoDB item a record's status goes to, and the version it must still hold."""

    table: str
    keys: dict[str, Any]  # DynamoDB JSON
    version_name: str
    version: dict[str, Any]  # DynamoDB JSON, e.g. {"N": "3"}


class _Unwritable(Exception):
    """Raised while converting a record that can never apply (missing key, missing or bad
    version, a value that does not convert): the record's verdict is poison."""


@dataclass(frozen=True)
class Contract:
    """The write path's item attributes (docs/ingest-api.md)."""

    status_attribute: str = "status"
    status_detail_attribute: str = "status_detail"
    status_only_attributes: frozenset[str] = frozenset({"status", "status_detail"})
    status_values: frozenset[str] = frozenset({"accepted", *WRITEBACK_STATUSES})

    @classmethod
    def from_config(cls, raw: dict[str, Any] | None) -> Contract:
        raw = raw or {}
        status = raw.get("status_attribute", "status")
        detail = raw.get("status_detail_attribute", "status_detail")
        return cls(
            status_attribute=status,
            status_detail_attribute=detail,
            status_only_attributes=frozenset(
                raw.get("status_only_attributes", [status, detail])
            ),
            # the writeback's own statuses are always markers
            status_values=frozenset(raw.get("status_values", ["accepted"])) | WRITEBACK_STATUSES,
        )

    def is_write_path(self, image: dict[str, Any] | None) -> bool:
        """The image carries the write path's marker: `status` S with a known value."""
        if not image:
            return False
        status = image.get(self.status_attribute)
        return isinstance(status, dict) and status.get("S") in self.status_values

    def status_only(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
        """Old and new image differ only in status attributes."""
        if old is None or new is None:
            return False
        ignored = self.status_only_attributes
        for name, value in new.items():
            if name not in ignored and old.get(name) != value:
                return False
        return all(name in new or name in ignored for name in old)


@dataclass(frozen=True)
class Config:
    """The handler's settings (a `handlers.common.Config`): the JSON object in the environment
    variable WRITEBACK_CONFIG, written by the LegacyWriteback component."""

    target: dict[str, Any]
    tables: dict[str, TableSpec]  # physical DynamoDB table -> mapping
    contract: Contract

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Config:
        return cls(
            target=dict(raw["target"]),
            tables={name: TableSpec.from_config(t) for name, t in raw["tables"].items()},
            contract=Contract.from_config(raw.get("contract")),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """The settings in `env`; a `ConfigError` naming WRITEBACK_CONFIG when it is missing
        or does not hold the component's config."""
        text = env.get(CONFIG_VARIABLE)
        if text is None:
            raise ConfigError(f"{CONFIG_VARIABLE} is not set (the writeback's config, written "
                              "by the LegacyWriteback component)")
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{CONFIG_VARIABLE} is not JSON ({exc}), found {text!r:.80}") \
                from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{CONFIG_VARIABLE} must be a JSON object, found {text!r:.80}")
        missing = [k for k in ("target", "tables") if k not in raw]
        if missing:
            raise ConfigError(f"{CONFIG_VARIABLE} lacks {', '.join(map(repr, missing))}")
        for name, table in (raw["tables"] or {}).items():
            lacks = [k for k in ("legacy_table", "key_columns") if k not in table]
            if lacks:
                raise ConfigError(f"{CONFIG_VARIABLE}: table {name!r} lacks "
                                  f"{', '.join(map(repr, lacks))}")
        try:
            return cls.from_json(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{CONFIG_VARIABLE} does not hold the writeback's config: "
                              f"{type(exc).__name__} {exc}") from None


#: The environment variable holding the handler's config.
CONFIG_VARIABLE = "WRITEBACK_CONFIG"


def config(env: Mapping[str, str] | None = None) -> Config:
    """The settings of `env` (the process environment when None), parsed once per distinct
    value of WRITEBACK_CONFIG (the container's cache, `_STATE`)."""
    cache = _STATE.setdefault("configs", {})
    return config_from_env(cache, (CONFIG_VARIABLE,), Config.from_env,
                           os.environ if env is None else env)


def table_of(record: dict[str, Any]) -> str:
    """`arn:aws:dynamodb:<region>:<acct>:table/<name>/stream/<label>` -> `<name>`."""
    return _table_of_arn(record.get("eventSourceARN", ""))


@functools.lru_cache(maxsize=64)
def _table_of_arn(arn: str) -> str:
    try:
        return arn.split(":", 5)[5].split("/")[1]
    except IndexError:
        return ""


def is_ttl_delete(record: dict[str, Any]) -> bool:
    identity = record.get("userIdentity") or {}
    return identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL


def classify(
    index: int, record: dict[str, Any], config: Config, *, json_row: bool = False
) -> Verdict:
    """Decide what one record means: a change to write back, a skip (and why), or poison.

    `json_row`: build an upsert's row as the object json_populate_recordset reads
    (`_json_row`), for an executor of a `json` parameter style, instead of a list of
    parameter values."""
    ddb = record.get("dynamodb") or {}
    seq = str(ddb.get("SequenceNumber", ""))
    table = table_of(record)
    spec = config.tables.get(table)
    contract = config.contract
    if spec is None:
        return Verdict(index, seq, "skip", f"table {table!r} is not mapped")
    event = record.get("eventName")
    old, new = ddb.get("OldImage"), ddb.get("NewImage")
    if event == "REMOVE":
        if is_ttl_delete(record):
            return Verdict(index, seq, "skip", "TTL delete (userIdentity dynamodb.amazonaws.com)")
        if not spec.deletes:
            return Verdict(index, seq, "skip", "deletes are not written back for this table")
        image, op = old, "delete"
    elif event in ("INSERT", "MODIFY"):
        image, op = new, "upsert"
    else:
        return Verdict(index, seq, "skip", f"unknown eventName {event!r}")
    if image is None:
        return Verdict(index, seq, "poison",
                       f"{event} record without {'Old' if op == 'delete' else 'New'}Image: the "
                       "stream view type must be NEW_AND_OLD_IMAGES")
    if not contract.is_write_path(image):
        return Verdict(index, seq, "skip",
                       f"no write-path marker '{contract.status_attribute}': not written by the "
                       "write path (DMS replication or another writer)")
    if event == "MODIFY" and contract.status_only(old, new):
        return Verdict(index, seq, "skip", "status-only update")
    item_keys = ddb.get("Keys") or {a: image[a] for a in spec.key_columns if a in image}
    version_attr = image.get(spec.version_attribute)
    try:
        change = _change(index, seq, table, spec, op, image, item_keys, version_attr,
                         json_row)
    except _Unwritable as exc:
        item = StatusTarget(table, item_keys, spec.version_attribute, version_attr) \
            if version_attr else None
        return Verdict(index, seq, "poison", str(exc), item=item)
    return Verdict(index, seq, "change", change=change)


def _change(  # noqa: PLR0913, PLR0917 - one record's parts, called once
    index: int, seq: str, table: str, spec: TableSpec, op: str, image: dict[str, Any],
    item_keys: dict[str, Any], version_attr: dict[str, Any] | None, json_row: bool,
) -> Change:
    for attr in spec.key_columns:
        if attr not in image:
            missing = [a for a in spec.key_columns if a not in image]
            raise _Unwritable(f"missing key attribute(s) {missing} for {spec.legacy_table}")
    if not version_attr or "N" not in version_attr:
        raise _Unwritable(
            f"version attribute '{spec.version_attribute}' missing or not a number "
            f"(found {version_attr!r})"
        )
    try:
        version = Decimal(version_attr["N"])
        key = tuple([attr_value(image[a]) for a in spec.key_columns])
        row: list[Any] | dict[str, Any] = []
        if op == "upsert" and json_row:
            row = _json_row(spec, image, version_attr["N"])
        elif op == "upsert":
            row = [*key, *[attr_value(image[a]) if a in image else None for a in spec.columns],
                   number(version_attr["N"])]
    except (ValueError, ArithmeticError, TypeError, AttributeError) as exc:
        raise _Unwritable(f"cannot convert the item's values: {exc}") from exc
    if None in key:
        col = list(spec.key_columns.values())[key.index(None)]
        raise _Unwritable(f"key column {col} would be NULL")
    return Change(index, seq, table, spec, op, key, version, row, item_keys, version_attr)


def _json_row(spec: TableSpec, image: dict[str, Any], version: str) -> dict[str, Any]:
    """An upsert row as the JSON object json_populate_recordset reads (column -> value),
    straight from the DynamoDB JSON, for orjson to write (`writeback_sql.json_rows`): S as
    its string, N as a string of its exact digits (the column's own input function reads
    them; DynamoDB has validated them), anything else as `_json_value` says; an attribute
    the item lacks is left out (NULL)."""
    row: dict[str, Any] = {}
    for attr, column in spec.json_columns:
        value = image.get(attr)
        if value is None:
            continue
        text = value.get("S")
        if text is None:
            text = value.get("N")
        if text.__class__ is str:
            row[column] = text
        else:
            row[column] = _json_value(value)
    row[spec.version_column] = version
    return row


def _json_value(attr: dict[str, Any]) -> Any:
    """A value other than S or N as orjson writes it for json_populate_recordset: BOOL as
    true/false, NULL as null, B as bytea hex text, maps, lists and sets embedded as the JSON
    `handlers.envelope.value_json` writes (a json/jsonb column gets the structure, a text
    column the text)."""
    if len(attr) != 1:
        raise ValueError(f"attribute value must hold exactly one type, found {sorted(attr)}")
    ((kind, value),) = attr.items()
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "B":
        return "\\x" + attr_value(attr).hex()
    if kind in ("S", "N"):
        raise TypeError(f"{kind} value must be a string, found {type(value).__name__}")
    return orjson.Fragment(value_json(attr))


# --------------------------------------------------------------------------- applying


@dataclass(slots=True)
class KeyOp:
    """What a batch does to one legacy row: an optional guarded delete, then an optional
    guarded upsert (the sequential effect of all the batch's changes of that key, in stream
    order)."""

    delete: Change | None = None
    upsert: Change | None = None

    @property
    def index(self) -> int:
        first = self.delete or self.upsert
        assert first is not None
        return first.index


def plan(changes: Iterable[Change]) -> list[KeyOp]:
    """One KeyOp per (table, key), equivalent to applying the changes one by one in stream
    order under the version guard (upsert when the row is older or absent, delete when it is
    not newer):

    * upserts keep the highest version (the later record on a tie);
    * deletes keep the highest version;
    * an upsert then a delete that is not older than it: the delete alone;
    * a delete then an upsert (a re-creation, e.g. version 3 deleted, re-created at 1):
      both, the delete first, so the re-creation is written once the row is gone.
    """
    ops: dict[tuple[str, tuple[Any, ...]], KeyOp] = {}
    for change in changes:
        slot = (change.table, change.key)  # numerically equal keys are one legacy row
        op = ops.setdefault(slot, KeyOp())
        if change.op == "upsert":
            if op.upsert is None or change.version >= op.upsert.version:
                op.upsert = change
        elif op.upsert is None or op.upsert.version <= change.version:
            if op.delete is None or change.version >= op.delete.version:
                op.delete = change
            op.upsert = None
    return sorted(ops.values(), key=lambda o: o.index)


def collapse(changes: Iterable[Change]) -> list[Change]:
    """The changes `plan` keeps, in the order they are applied (a key's delete before its
    re-creation)."""
    return [c for op in plan(changes) for c in (op.delete, op.upsert) if c is not None]


@dataclass(frozen=True)
class Planned:
    """A statement and the changes its refusal rows number (`Statement`)."""

    statement: Statement
    upserts: tuple[Change, ...] = ()
    deletes: tuple[Change, ...] = ()


def planned_statements(
    changes: Sequence[Change], config: Config, executor: Executor
) -> list[Planned]:
    """Planned changes -> statements per table (config order), split only when a table's
    changes exceed the executor's parameter limit. A table where a key is deleted and
    re-created gets its deletes and its upserts as two statements, deletes first."""
    out: list[Planned] = []
    ops = plan(changes)
    for table, spec in config.tables.items():
        mine = [o for o in ops if (o.delete or o.upsert).table == table]  # type: ignore[union-attr]
        if not mine:
            continue
        per_row = len(spec.upsert_columns) * (1 if executor.style.startswith("json") else 3)
        chunk = max(1, executor.max_params // per_row)
        for start in range(0, len(mine), chunk):
            part = mine[start : start + chunk]
            ups = tuple(o.upsert for o in part if o.upsert is not None)
            dels = tuple(o.delete for o in part if o.delete is not None)
            both = any(o.upsert is not None and o.delete is not None for o in part)
            phases = [(dels, ()), ((), ups)] if both else [(dels, ups)]
            recreation = {(o.delete.table, o.delete.key): o.upsert.row for o in part
                          if o.delete is not None and o.upsert is not None}
            for d_part, u_part in phases:
                if not d_part and not u_part:
                    continue
                built = build_statements(
                    spec, [c.row for c in u_part], [(list(c.key), c.version) for c in d_part],
                    dialect=executor.dialect, style=executor.style,
                    keep=[recreation.get((c.table, c.key)) for c in d_part])
                out.extend(Planned(s, tuple(u_part), tuple(d_part)) for s in built)
    return out


def statements_for(
    changes: Sequence[Change], config: Config, executor: Executor
) -> list[Statement]:
    """The statements of `planned_statements`."""
    return [p.statement for p in planned_statements(changes, config, executor)]


@dataclass(frozen=True)
class Refusal:
    """A change the legacy row refused, and why (the item's `status_detail`)."""

    change: Change
    reason: str


def _refusal(change: Change, row: tuple[Any, ...]) -> Refusal | None:
    """A refusal row -> why, or None when the row holds the change after all."""
    kind, _n, version, same, same_key, stored_key = row
    noun = "deleted" if change.op == "delete" else "written"
    if kind == "d":
        if version is None or same_key in (0, False):
            return None  # the row is gone, or only another key's row is there
    elif same and same_key in (None, 1, True):
        return None  # already there: same version, same content
    if same_key in (0, False):
        return Refusal(change, "conflict: the legacy row under this key is "
                       f"{stored_key!r} (the legacy database compares these keys as "
                       f"equal): another item's row; not {noun}")
    if version is None:
        return Refusal(change, "conflict: a concurrent writer holds this key in the legacy "
                       f"database (version unknown); not {noun}")
    mine = _version_text(change.version)
    try:
        newer = Decimal(version) > change.version
    except ArithmeticError:
        newer = False
    if newer:
        return Refusal(change, f"conflict: the legacy row is at version {version}, newer than "
                       f"this change's version {mine}; not {noun}")
    if change.op == "upsert" and Decimal(version) == change.version:
        return Refusal(change, f"conflict: the legacy row holds version {version} with other "
                       f"content (an earlier request under this key?); not {noun}")
    return Refusal(change, f"conflict: the legacy row (version {version}) refused version "
                   f"{mine}; not {noun}")


def _version_text(version: Decimal) -> str:
    return format(version, "f")


def _results(planned: Sequence[Planned], results: Sequence[Any]) -> tuple[int, list[Refusal]]:
    """Rows changed, and the refusals of the planned statements' results. A delete that is
    the first half of a re-creation reports nothing itself (its re-creation does)."""
    changed = 0
    refusals: list[Refusal] = []
    recreated = {(p.table, p.key) for pl in planned for p in pl.upserts}
    for pl, result in zip(planned, results, strict=True):
        changed += result.changed
        for row in result.refusals:
            kind, n = row[0], int(row[1])
            change = (pl.upserts if kind == "u" else pl.deletes)[n - 1]
            if kind == "d" and (change.table, change.key) in recreated:
                continue
            found = _refusal(change, row)
            if found is not None:
                refusals.append(found)
    return changed, refusals


class WritebackOutcome(Outcome):
    """What `process` did with one batch (a `handlers.common.Outcome`): `failures` holds the
    earliest record not done, `poison` why a record can never be written back and
    `poison_sequence` which one (None when none)."""

    __slots__ = ("applied", "conflicts", "poison_sequence", "round_trips", "rows_changed",
                 "skipped")

    def __init__(self) -> None:
        super().__init__()
        self.applied: list[Change] = []
        self.rows_changed = 0
        self.skipped: dict[str, int] = {}
        self.poison_sequence: str | None = None
        self.round_trips = 0
        self.conflicts: list[tuple[str, str]] = []  # (seq, reason)


def process(
    records: Sequence[dict[str, Any]],
    config: Config,
    executor: Executor,
    status_client: Any | None,
) -> WritebackOutcome:
    """Write one batch back. Returns the failures (at most the earliest failing record).

    Raises SchemaNotReadyError (a mapped table or column is missing) or the driver's error
    (transient: retry the batch) without blaming any record or writing any status."""
    json_row = executor.style.startswith("json")
    verdicts = [classify(i, r, config, json_row=json_row) for i, r in enumerate(records)]
    skipped: dict[str, int] = {}
    for o in verdicts:
        if o.action == "skip":
            skipped[o.reason] = skipped.get(o.reason, 0) + 1
    first_poison = next((o for o in verdicts if o.action == "poison"), None)
    limit = first_poison.index if first_poison else len(verdicts)
    changes = [o.change for o in verdicts[:limit] if o.change is not None]
    poison_verdict = first_poison
    poison_reason = first_poison.reason if first_poison else ""

    round_trips_before = executor.round_trips
    try:
        planned = planned_statements(changes, config, executor)
        rows, refusals = _results(planned, executor.apply([p.statement for p in planned]))
        applied = changes
    except DataError as exc:
        bad, reason = _isolate(changes, config, executor, str(exc))
        applied = changes[:bad]
        planned = planned_statements(applied, config, executor)
        rows, refusals = _results(planned, executor.apply([p.statement for p in planned]))
        poison_verdict = verdicts[changes[bad].index]
        poison_verdict.item = _status_target(changes[bad])
        poison_reason = f"rejected by the database: {reason}"

    refused_keys = {(r.change.table, r.change.key) for r in refusals}
    applied = [c for c in applied if (c.table, c.key) not in refused_keys]
    failures: list[str] = []
    result = WritebackOutcome()
    if poison_verdict is not None:
        failures.append(poison_verdict.seq)
        result.poison, result.poison_sequence = poison_reason, poison_verdict.seq
        log("error", "record cannot be written back; reported as batch item failure (it goes "
            "to the DLQ after the mapping's retries)", sequence_number=poison_verdict.seq,
            reason=poison_reason, table=table_of(records[poison_verdict.index]))
    log_refusals(refusals)

    if status_client is not None:
        final = [op.upsert for op in plan(applied) if op.upsert is not None]
        status_failure = _write_statuses(status_client, config.contract, final, refusals,
                                         poison_verdict, poison_reason)
        if status_failure is not None and (not failures or _before(status_failure, failures[0],
                                                                   verdicts)):
            failures = [status_failure]
    result.failures, result.applied, result.rows_changed = failures, applied, rows
    result.skipped = skipped
    result.round_trips = executor.round_trips - round_trips_before
    result.conflicts = [(r.change.seq, r.reason) for r in refusals]
    return result


#: Conflicts named per log line: a line stays far below CloudWatch's 256 KB per log event.
REFUSALS_PER_LINE = 100


def log_refusals(refusals: Sequence[Refusal]) -> None:
    """Log the changes the legacy rows refused: their sequence numbers, tables and reasons,
    REFUSALS_PER_LINE to a line (a line per batch, not per change: a replayed batch can
    refuse every change)."""
    for start in range(0, len(refusals), REFUSALS_PER_LINE):
        log("warning", "changes refused by the legacy rows; their items say conflict",
            conflicts=[{"sequence_number": r.change.seq, "table": r.change.table,
                        "reason": r.reason}
                       for r in refusals[start : start + REFUSALS_PER_LINE]])


def _before(seq_a: str, seq_b: str, verdicts: Sequence[Verdict]) -> bool:
    order = {o.seq: o.index for o in verdicts}
    return order.get(seq_a, 0) < order.get(seq_b, 0)


def _isolate(
    changes: Sequence[Change], config: Config, executor: Executor, message: str
) -> tuple[int, str]:
    """Index of the first change whose prefix the database rejects (binary search with
    rolled-back probes), and the database's reason. A probe failing for another reason
    (transient, schema) raises: the whole batch is retried."""
    lo, hi, reason = 0, len(changes), message  # prefix [:lo] applies, [:hi] fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        error = executor.probe(statements_for(changes[:mid], config, executor))
        if error is None:
            lo = mid
        else:
            hi, reason = mid, error
    return hi - 1, reason


def _status_target(change: Change) -> StatusTarget:
    return StatusTarget(change.table, change.item_keys, change.spec.version_attribute,
                        change.version_attr)


def _write_statuses(  # noqa: PLR0913, PLR0917 - the batch's verdicts, called once
    client: Any, contract: Contract, applied: Sequence[Change], refusals: Sequence[Refusal],
    poison: Verdict | None, poison_reason: str,
) -> str | None:
    """Set `applied` on every upserted item the legacy row holds, `conflict` (with why) on
    every refused upsert, and `error` on the poison record's item, only while the item
    still holds that version and not already that status. Returns the sequence number of
    the first record whose status write failed for another reason."""
    writes = [(c.index, c.seq, _status_target(c), "applied", "") for c in applied]
    writes += [(r.change.index, r.change.seq, _status_target(r.change), "conflict",
                r.reason[:1000]) for r in refusals if r.change.op == "upsert"]
    if poison is not None and poison.item is not None:
        writes.append((poison.index, poison.seq, poison.item, "error", poison_reason[:1000]))
    if not writes:
        return None

    def one(write: tuple[int, str, StatusTarget, str, str]) -> tuple[int, str] | None:
        index, seq, target, status, detail = write
        try:
            set_status(client, contract, target, status, detail)
        except Exception as exc:  # noqa: BLE001 - classified below
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                return None  # the item moved on (newer version) or already has this status
            log("warning", "status update failed; the record is retried (SQL replay is a no-op)",
                sequence_number=seq, table=target.table, error=str(exc))
            return index, seq
        return None

    if len(writes) == 1:
        results = [one(writes[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(writes))) as pool:
            results = list(pool.map(one, writes))
    failed = sorted(r for r in results if r is not None)
    return failed[0][1] if failed else None


def set_status(
    client: Any, contract: Contract, target: StatusTarget, status: str, detail: str
) -> None:
    """Conditional UpdateItem of the status attributes only (so the resulting stream record
    is status-only and ignored by this handler)."""
    names = {"#s": contract.status_attribute, "#d": contract.status_detail_attribute,
             "#v": target.version_name}
    values: dict[str, Any] = {":s": {"S": status}, ":v": target.version}
    if detail:
        update = "SET #s = :s, #d = :d"
        values[":d"] = {"S": detail}
    else:
        update = "SET #s = :s REMOVE #d"
    client.update_item(
        TableName=target.table,
        Key=target.keys,
        UpdateExpression=update,
        ConditionExpression="#v = :v AND #s <> :s",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


# --------------------------------------------------------------------------- Lambda entry


#: The container's state: the config cache, clients, the secret, the connection.
_STATE: dict[str, Any] = {}


def _config() -> Config:
    return config()


def _boto3_client(service: str) -> Any:
    """The container's client for `service` (handlers.observability.client), kept in
    `_STATE` under `client:<service>`."""
    key = f"client:{service}"
    if key not in _STATE:
        _STATE[key] = client(_STATE.setdefault("clients", {}), service)
    return _STATE[key]


def _credentials(secret_arn: str) -> tuple[str, str]:
    """username/password from the Secrets Manager secret, cached per container."""
    key = f"secret:{secret_arn}"
    if key not in _STATE:
        secret = json.loads(
            _boto3_client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
        )
        _STATE[key] = (secret["username"], secret["password"])
    creds: tuple[str, str] = _STATE[key]
    return creds


def executor_for(
    target: dict[str, Any],
    *,
    rds_data: Any | None = None,
    connector: Callable[[], Any] | None = None,
) -> Executor:
    """The executor for the configured target; a direct connection is cached per container."""
    if target["kind"] == "data_api":
        return DataApiExecutor(
            rds_data if rds_data is not None else _boto3_client("rds-data"),
            cluster_arn=target["cluster_arn"],
            secret_arn=target["secret_arn"],
            database=target["database"],
            dialect=target.get("engine", "postgres"),
        )
    if "executor" not in _STATE:
        if connector is None:
            user, password = _credentials(target["secret_arn"])
            connection = connect(target, user, password)
        else:
            connection = connector()
        _STATE["executor"] = DbApiExecutor(connection, target["kind"])
    executor: Executor = _STATE["executor"]
    return executor


def _drop_connection() -> None:
    executor = _STATE.pop("executor", None)
    if executor is not None:
        try:
            executor.connection.close()
        except Exception:  # noqa: BLE001 - it is being thrown away
            pass
        # a rotated secret is re-read on the next connect
        for key in [k for k in _STATE if k.startswith("secret:")]:
            _STATE.pop(key)


def _sequence_of(record: dict[str, Any]) -> str | None:
    try:
        return str(record["dynamodb"]["SequenceNumber"])
    except (KeyError, TypeError):
        return None


def _dimensions() -> dict[str, str]:
    return {"Function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point for a DynamoDB Streams batch."""
    records = event.get("Records") or []
    try:
        cfg = _config()
    except ConfigError as error:
        log("error", "writeback misconfigured: the whole batch fails until it is fixed",
            reason=str(error))
        raise
    started = time.perf_counter()
    try:
        executor = executor_for(cfg.target)
        result = process(records, cfg, executor, _boto3_client("dynamodb"))
    except SchemaNotReadyError as exc:
        # a mapped table or column is missing (the legacy migration has not run): no record
        # is blamed, no status is written; the whole batch is retried (alarm on the metric)
        log("error", "legacy schema not ready; batch retried as a whole", error=str(exc),
            code=exc.code, records=len(records))
        emf(NAMESPACE, _dimensions(), {"SchemaNotReady": 1})
        raise
    except Exception as exc:
        # not the data's fault (connection, deadlock, lock or statement timeout,
        # throttling): fail the whole batch, so Lambda retries it (bounded) and the Errors
        # alarm sees it
        _drop_connection()
        log("error", "batch failed; retried as a whole", error=str(exc),
            error_type=type(exc).__name__, records=len(records))
        raise
    log("info", "batch written back", records=len(records), applied=len(result.applied),
        conflicts=len(result.conflicts),
        rows_changed=result.rows_changed, skipped=result.skipped, round_trips=result.round_trips,
        failures=result.failures, ms=round((time.perf_counter() - started) * 1000, 1))
    emf(NAMESPACE, _dimensions(), {
        "Records": len(records),
        "Applied": len(result.applied),
        "RowsChanged": result.rows_changed,
        "Skipped": sum(result.skipped.values()),
        "Poison": 0 if result.poison is None else 1,
        "Conflicts": len(result.conflicts),
        "RoundTrips": result.round_trips,
    })
    if result.poison is not None and len(records) > 1 \
            and result.failures == [_sequence_of(records[0])]:
        # A partial-batch response that names the FIRST record makes no progress: Lambda
        # cuts the batch at that record and retries the same records, so the good records
        # after the poison would share its DLQ message. A function error makes Lambda bisect
        # (BisectBatchOnFunctionError) until the poison record is alone.
        raise PoisonRecordError(
            f"record {result.poison_sequence} cannot be written back ({result.poison}) and "
            f"is the first of a batch of {len(records)}: failing the invocation so Lambda "
            "bisects the batch and sends only this record to the DLQ"
        )
    return result.response()


if __name__ == "__main__":  # pragma: no cover - local smoke run: python -m handlers.writeback
    print(json.dumps(handler(json.load(sys.stdin), None)))
