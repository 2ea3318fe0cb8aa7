"""Fan-in: every change of every waypoint table onto the ONE Kinesis bus.

Entry point `handler(event, context)`, invoked by one DynamoDB Streams event source mapping
per table (ReportBatchItemFailures on, bisect on error, bounded retries, on-failure DLQ).

Environment:
    BUS_STREAM_NAME    the bus (Kinesis stream name)
    OVERFLOW_BUCKET    bucket for changes too large for one bus record
    TABLE_PREFIX       the environment's name prefix (`dmsbus-<env>-`): a table named
                       `<prefix><logical>`, with a logical name (lower snake case, no '-'), is
                       published as `<logical>` -- its name comes from the record's
                       eventSourceARN (`...:table/<name>/stream/<label>`)
    TABLES             JSON object {"<physical table>": "<logical name>"} of the exceptions:
                       tables whose name does not follow that rule (optional with
                       TABLE_PREFIX; a listed name wins over the rule)
    MAX_RECORD_BYTES   largest bus record (default 1000000); bigger -> overflow bucket
    MAX_PUT_ATTEMPTS   PutRecords attempts per chunk (default 5)

For each batch, in order: each record becomes an envelope (`handlers.envelope`); the
envelopes go on the bus through the shared publisher (`handlers.bus`: as few PutRecords calls
as the limits allow, only failed entries retried with backoff and jitter, oversize changes
through the overflow bucket). The response names the EARLIEST record not on the bus in
`batchItemFailures`, so Lambda checkpoints everything before it and retries from there —
never skipping ahead. A record that cannot be converted (a poison record) stops the batch at
that record: the ones before it are put and it is reported, with its reason in the log. When
the poison record is the FIRST of its batch, the handler raises `PoisonRecordError` instead: a
partial-batch response would only make Lambda retry the same batch (poison record first, the
good records after it) until it all went to the DLQ, while a function error makes Lambda
bisect the batch in halves, so the poison record ends alone in the on-failure DLQ after the
bounded retries and the records after it go on to the bus. (A record of a table neither
named by the prefix rule nor listed in `TABLES` is reported, never raised: every record of
that stream fails alike.)

Nothing in the environment grows with the number of tables (Lambda caps the environment at
4 KB): the prefix covers every table named by the rule, `TABLES` only the exceptions.

Logs are JSON lines; metrics are CloudWatch embedded metric format (no API calls), namespace
`DmsEventBus` (`handlers.observability`). `Config`, `Outcome` and `PoisonRecordError` mean
what `handlers.common` says.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import bus
from .common import ConfigError, Outcome, PoisonRecordError, config_from_env
from .envelope import Envelope, EnvelopeError, physical_table_of, stream_envelope
from .observability import BUS_NAMESPACE, LazyClient, client, emf, log

__all__ = [
    "Config",
    "FanInOutcome",
    "PoisonRecordError",
    "TableNames",
    "UnknownTableError",
    "config",
    "handler",
    "process_records",
]

#: Time kept back from Lambda's remaining time for the response and the logs.
RESERVE_SECONDS = 2.0

_clients: dict[str, Any] = {}


def _client(service: str) -> Any:
    return client(_clients, service)


#: A logical table name (settings.base.LOGICAL_NAME_PATTERN; a test keeps the two equal).
LOGICAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: What TABLE_PREFIX must look like: the environment's prefix, `dmsbus-<env>-`.
PREFIX = re.compile(r"^[a-z][a-z0-9-]*-$")


class TableNames:
    """Physical table name -> the logical name envelopes carry.

    By rule: `<prefix><logical>`, the logical name lower snake case (no '-', so a table of an
    environment whose name merely starts like this one's -- `dev-eu` next to `dev` -- never
    matches, nor an IngestApi table `<prefix>ingest-<entity>`). By the map: the exceptions,
    tables named otherwise."""

    __slots__ = ("exceptions", "prefix")

    def __init__(self, prefix: str = "", exceptions: Mapping[str, str] | None = None) -> None:
        self.prefix = prefix
        self.exceptions = dict(exceptions or {})

    def logical(self, physical: str) -> str | None:
        listed = self.exceptions.get(physical)
        if listed is not None:
            return listed
        if self.prefix and physical.startswith(self.prefix):
            rest = physical[len(self.prefix):]
            if LOGICAL_NAME.match(rest):
                return rest
        return None

    get = logical  # a Mapping's `get`, for callers holding a plain {physical: logical} map

    def describe(self) -> str:
        rule = f"TABLE_PREFIX {self.prefix!r} + a logical name" if self.prefix else "no prefix"
        listed = ", ".join(sorted(self.exceptions)) or "none"
        return f"{rule}; TABLES exceptions: {listed}"


class Config:
    """The fan-in's settings (a `handlers.common.Config`: `from_env` in Lambda)."""

    __slots__ = ("max_attempts", "max_record_bytes", "overflow_bucket", "stream_name", "tables")

    def __init__(
        self,
        *,
        stream_name: str,
        tables: Mapping[str, str] | None = None,
        table_prefix: str = "",
        overflow_bucket: str | None = None,
        max_record_bytes: int = bus.DEFAULT_MAX_RECORD_BYTES,
        max_attempts: int = bus.DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self.stream_name = stream_name
        self.tables = TableNames(table_prefix, tables)
        self.overflow_bucket = overflow_bucket or None
        self.max_record_bytes = max_record_bytes
        self.max_attempts = max_attempts

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        problems = []
        stream = env.get("BUS_STREAM_NAME", "")
        if not stream:
            problems.append("BUS_STREAM_NAME is not set (the bus stream name)")
        prefix = env.get("TABLE_PREFIX", "")
        if prefix and not PREFIX.match(prefix):
            problems.append(
                "TABLE_PREFIX must be a name prefix ending in '-' (lower-case letters, digits, "
                f"'-'), e.g. 'dmsbus-dev-', found {prefix!r:.80}"
            )
        tables: Any = {}
        listed = env.get("TABLES")
        if listed is None and not prefix:
            problems.append(
                "set TABLE_PREFIX (the environment's table name prefix) or TABLES (a JSON "
                "object of tables named otherwise): the fan-in would reject every record"
            )
        elif listed is not None:
            try:
                tables = json.loads(listed)
                if not isinstance(tables, dict) or not all(
                    isinstance(k, str) and k and isinstance(v, str) and v
                    for k, v in tables.items()
                ):
                    raise ValueError
            except ValueError:
                problems.append(
                    'TABLES must be a JSON object {"<physical table>": "<logical name>"}, '
                    f"found {listed!r:.80}"
                )
            else:
                if not tables and not prefix:
                    problems.append(
                        "TABLES names no table and TABLE_PREFIX is not set (the fan-in would "
                        "reject every record)"
                    )
        numbers = {}
        for name, default in (
            ("MAX_RECORD_BYTES", bus.DEFAULT_MAX_RECORD_BYTES),
            ("MAX_PUT_ATTEMPTS", bus.DEFAULT_MAX_ATTEMPTS),
        ):
            text = env.get(name, str(default))
            if not (text.isascii() and text.isdigit()) or int(text) < 1:
                problems.append(f"{name} must be a positive integer, found {text!r}")
            else:
                numbers[name] = int(text)
        if problems:
            raise ConfigError("fan-in configuration: " + "; ".join(problems))
        return cls(
            stream_name=stream,
            tables=tables,
            table_prefix=prefix,
            overflow_bucket=env.get("OVERFLOW_BUCKET"),
            max_record_bytes=numbers["MAX_RECORD_BYTES"],
            max_attempts=numbers["MAX_PUT_ATTEMPTS"],
        )


_config_cache: dict[tuple[str | None, ...], Config] = {}
_ENV_NAMES = ("BUS_STREAM_NAME", "OVERFLOW_BUCKET", "TABLE_PREFIX", "TABLES",
              "MAX_RECORD_BYTES", "MAX_PUT_ATTEMPTS")


def config() -> Config:
    """The configuration of the current environment (parsed once per distinct value)."""
    return config_from_env(_config_cache, _ENV_NAMES, Config.from_env, os.environ)


class FanInOutcome(Outcome):
    """What the fan-in did with one batch (an `Outcome`): `poison` is why a record could not
    be converted to an envelope (the batch stops there; nothing of it was put when it is the
    first record, and the handler then raises `PoisonRecordError`)."""

    __slots__ = ("converted", "per_table", "result", "unknown_table")

    def __init__(self) -> None:
        super().__init__()
        self.converted = 0
        self.per_table: dict[str, int] = {}  # logical table -> changes now on the bus
        self.unknown_table = False  # the poison record's table is neither by rule nor listed
        self.result = bus.PutResult()


def _sequence_number(record: Mapping[str, Any]) -> str:
    try:
        seq = record["dynamodb"]["SequenceNumber"]
    except (KeyError, TypeError):
        return ""  # Lambda then retries (and bisects) the whole batch
    return seq if isinstance(seq, str) else ""


class UnknownTableError(EnvelopeError):
    """The record's table is neither named by the prefix rule nor listed in TABLES: every
    record of its stream fails alike."""


def _convert(record: Mapping[str, Any], tables: TableNames) -> Envelope:
    physical = physical_table_of(record)
    logical = tables.logical(physical)
    if logical is None:
        raise UnknownTableError(
            f"table {physical!r} is neither named by the rule nor listed ({tables.describe()})"
            ": the fan-in's configuration does not cover this stream"
        )
    return stream_envelope(record, logical, physical_table=physical)


def process_records(
    records: Sequence[Mapping[str, Any]],
    cfg: Config,
    *,
    kinesis: Any,
    s3: Any,
    sleep: Callable[[float], None] = time.sleep,
    time_left: bus.TimeLeft | None = None,
) -> FanInOutcome:
    """Convert and publish one batch; see the module docstring."""
    outcome = FanInOutcome()
    envelopes: list[Envelope] = []
    for record in records:
        try:
            envelopes.append(_convert(record, cfg.tables))
        except EnvelopeError as error:
            outcome.poison = str(error)
            outcome.unknown_table = isinstance(error, UnknownTableError)
            log(
                "error",
                "poison record: cannot convert to an envelope; Lambda retries it (bisecting "
                "the batch when it is the first record) and, after its bounded retries, sends "
                "it to the on-failure DLQ",
                reason=str(error),
                eventID=record.get("eventID") if isinstance(record, Mapping) else None,
                sequenceNumber=_sequence_number(record),
                eventSourceARN=record.get("eventSourceARN")
                if isinstance(record, Mapping) else None,
            )
            break
    outcome.converted = len(envelopes)
    if envelopes:
        outcome.result = bus.put_envelopes(
            envelopes,
            kinesis=kinesis,
            s3=s3,
            stream_name=cfg.stream_name,
            overflow_bucket=cfg.overflow_bucket,
            max_record_bytes=cfg.max_record_bytes,
            max_attempts=cfg.max_attempts,
            sleep=sleep,
            time_left=time_left,
        )
    first_failed = outcome.result.first_failed
    for env in envelopes[:first_failed]:
        outcome.per_table[env.table] = outcome.per_table.get(env.table, 0) + 1
    if first_failed is None and outcome.poison is not None:
        first_failed = len(envelopes)  # the poison record itself
    if first_failed is not None:
        seq = _sequence_number(records[first_failed])
        outcome.failures = [seq]
        if outcome.result.error:
            log(
                "warning",
                "records not on the bus after bounded retries; Lambda retries from the "
                "earliest of them",
                reason=outcome.result.error,
                sequenceNumber=seq,
                notPut=len(records) - first_failed,
            )
    return outcome


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records") or []
    try:
        cfg = config()
    except ConfigError as error:
        log("error", "fan-in misconfigured: the whole batch fails until it is fixed",
            reason=str(error))
        raise
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    time_left = None
    if remaining is not None:

        def time_left() -> float:
            return float(remaining()) / 1000.0 - RESERVE_SECONDS

    outcome = process_records(
        records,
        cfg,
        kinesis=_client("kinesis"),
        s3=LazyClient(lambda: _client("s3")),
        time_left=time_left,
    )
    result = outcome.result
    emf(
        BUS_NAMESPACE,
        {"Stream": cfg.stream_name},
        {
            "Records": len(records),
            "Published": result.put,
            "PublishedBytes": result.bytes,
            "PutRecordsCalls": result.calls,
            "RetriedEntries": result.retried,
            "Overflowed": result.overflowed,
            "NotPublished": len(records) - result.put,
            "PoisonRecords": 1 if outcome.poison else 0,
        },
    )
    for table, count in outcome.per_table.items():
        emf(BUS_NAMESPACE, {"Table": table}, {"ChangesPublished": count})
    if outcome.poison is not None and outcome.converted == 0 and not outcome.unknown_table:
        # A table the configuration does not cover fails every record of its stream alike:
        # bisecting would only multiply invocations, so that batch is reported (one DLQ
        # message) instead.
        raise PoisonRecordError(
            f"first record of the batch ({outcome.failures[0]}) "
            f"cannot be converted: {outcome.poison}; raised so that Lambda bisects the batch"
        )
    return outcome.response()
