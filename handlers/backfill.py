"""Backfill: publish every row an adopted table held before its stream was on, as `snapshot`.

Started once per table by the AdoptedTable provider (asynchronous invoke), right after the
table's stream is ENABLED. Two kinds of events:

- start `{table, logical_table, key_names, total_segments, stream_label}`: fans out one
  asynchronous invocation of this function per scan segment (`segment` 0..total-1);
- segment `{..., segment, exclusive_start_key?, pass?}`: scans its segment page by page
  (consistent reads, so a row written just before the stream was on is seen in its latest
  state), publishes each page's rows as `op: snapshot` envelopes through the shared bus
  publisher (PutRecords in as few calls as the limits allow, only failed entries retried,
  oversize rows through the overflow bucket), and, when the remaining time gets short,
  re-invokes itself with the next page's start key.

Why one invocation per segment rather than threads in one: every segment gets its own
15-minute budget, memory and network, continues on its own, and a failure retries only that
segment's current page; threads would share one budget and one retry. The start key handed on
is always that of the first page not yet published. A crash or a timeout makes Lambda retry the
invocation's event, which repeats the pages that invocation had published (duplicate snapshots
carry the same `id`); nothing ever skips a page.

A page the bus publisher could not put after its bounded retries (`bus.PublishError`):
- after pages of this invocation were published, the segment hands on to a new invocation
  starting at that page (what is done stays done; the log says why);
- on the first page of an invocation (no progress), it raises `BackfillError`: Lambda's
  asynchronous retries run the same event again (same start key), then the on-failure
  destination (the backfill DLQ, alarmed) keeps it for a redrive. So a bus that stays broken
  ends in the DLQ after a bounded number of attempts, never in an endless loop.

Environment (`Config`): `BUS_STREAM_NAME`, `OVERFLOW_BUCKET` (the bus publisher's), optional
`BACKFILL_PAGE_ITEMS` (scan page size, default 500 = one PutRecords call) and
`BACKFILL_RESERVE_MS` (time kept for one more page, default 60000).

Logs and metrics (namespace `DmsEventBus`) go through `handlers.observability`.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import bus
from .common import ConfigError, config_from_env
from .envelope import Envelope, snapshot_envelope
from .observability import BUS_NAMESPACE, LazyClient, client, emf, log

DEFAULT_PAGE_ITEMS = 500
DEFAULT_RESERVE_MS = 60_000

Publish = Callable[[Sequence[Envelope]], bus.PutResult]
"""Puts envelopes on the bus (`bus.snapshot_publisher`); raises `bus.PublishError` when some
could not be put after its retries. Its result's counters (calls, retried, overflowed) feed the
metrics."""
Invoke = Callable[[dict[str, Any]], None]
"""Invokes this function asynchronously with an event."""

_clients: dict[str, Any] = {}


class BackfillError(Exception):
    """The first page of an invocation could not be published: Lambda retries the event."""


def _client(service: str) -> Any:
    boto_config = None
    if service == "dynamodb" and service not in _clients:
        from botocore.config import Config as BotoConfig

        # The scan may meet a provisioned table's low read capacity (autoscaling catches up
        # in minutes): adaptive retries slow the client down instead of failing the page.
        boto_config = BotoConfig(retries={"mode": "adaptive", "max_attempts": 10})
    return client(_clients, service, boto_config)


class Config:
    """The backfill's settings (a `handlers.common.Config`: `from_env` in Lambda)."""

    __slots__ = ("overflow_bucket", "page_items", "reserve_ms", "stream_name")

    def __init__(
        self,
        *,
        stream_name: str,
        overflow_bucket: str | None = None,
        page_items: int = DEFAULT_PAGE_ITEMS,
        reserve_ms: int = DEFAULT_RESERVE_MS,
    ) -> None:
        self.stream_name = stream_name
        self.overflow_bucket = overflow_bucket or None
        self.page_items = page_items
        self.reserve_ms = reserve_ms

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        problems = []
        stream = env.get("BUS_STREAM_NAME", "")
        if not stream:
            problems.append("BUS_STREAM_NAME is not set (the bus stream name)")
        numbers: dict[str, int] = {}
        for name, default, low, high in (
            # the same bounds as the Backfill component's arguments (timeout at most 15 min)
            ("BACKFILL_PAGE_ITEMS", DEFAULT_PAGE_ITEMS, 1, 10_000),
            ("BACKFILL_RESERVE_MS", DEFAULT_RESERVE_MS, 0, 900_000),
        ):
            text = env.get(name, str(default))
            if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
                problems.append(f"{name} must be an integer from {low} to {high}, found {text!r}")
            else:
                numbers[name] = int(text)
        if problems:
            raise ConfigError("backfill configuration: " + "; ".join(problems))
        return cls(
            stream_name=stream,
            overflow_bucket=env.get("OVERFLOW_BUCKET"),
            page_items=numbers["BACKFILL_PAGE_ITEMS"],
            reserve_ms=numbers["BACKFILL_RESERVE_MS"],
        )


_config_cache: dict[tuple[str | None, ...], Config] = {}
_ENV_NAMES = ("BUS_STREAM_NAME", "OVERFLOW_BUCKET", "BACKFILL_PAGE_ITEMS", "BACKFILL_RESERVE_MS")


def config() -> Config:
    """The configuration of the current environment (parsed once per distinct value)."""
    return config_from_env(_config_cache, _ENV_NAMES, Config.from_env, os.environ)


def _metric(table: str, published: int, pages: int, put: Mapping[str, int]) -> None:
    """CloudWatch embedded metric format: what this invocation put on the bus, per table."""
    emf(
        BUS_NAMESPACE,
        {"Table": table},
        {"SnapshotRecords": published, "SnapshotPages": pages,
         "PutRecordsCalls": put["calls"], "RetriedRecords": put["retried"],
         "OverflowedRecords": put["overflowed"]},
    )


# -- start keys travel as JSON: binary key values as base64 --------------------------------
def encode_key(key: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if key is None:
        return None
    out: dict[str, Any] = {}
    for name, value in key.items():
        if "B" in value and isinstance(value["B"], bytes | bytearray):
            out[name] = {"B": base64.b64encode(bytes(value["B"])).decode("ascii")}
        else:
            out[name] = dict(value)
    return out


def decode_key(key: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not key:
        return None
    out: dict[str, Any] = {}
    for name, value in key.items():
        if "B" in value and isinstance(value["B"], str):
            out[name] = {"B": base64.b64decode(value["B"])}
        else:
            out[name] = dict(value)
    return out


# -- the work ---------------------------------------------------------------------------
def _check(event: Mapping[str, Any]) -> None:
    missing = [k for k in ("table", "logical_table", "key_names", "total_segments")
               if not event.get(k)]
    if missing:
        raise ValueError(f"backfill event: missing {missing}: {sorted(event)}")


def fan_out(event: Mapping[str, Any], *, invoke: Invoke) -> dict[str, Any]:
    """One asynchronous invocation per scan segment."""
    _check(event)
    total = int(event["total_segments"])
    for segment in range(total):
        invoke({**event, "segment": segment, "pass": 0})
    log("info", "backfill fanned out", table=event["table"], segments=total)
    return {"table": event["table"], "segments": total}


def scan_segment(
    event: Mapping[str, Any],
    *,
    ddb: Any,
    publish: Publish,
    invoke: Invoke,
    remaining_ms: Callable[[], int],
    reserve_ms: int = DEFAULT_RESERVE_MS,
    page_items: int = DEFAULT_PAGE_ITEMS,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Scan one segment from its start key, publishing page by page; hand on when short
    of time. Returns what was done (for logs and tests)."""
    _check(event)
    table = str(event["table"])
    logical = str(event["logical_table"])
    key_names = list(event["key_names"])
    segment, total = int(event["segment"]), int(event["total_segments"])
    this_pass = int(event.get("pass", 0))
    start_key = decode_key(event.get("exclusive_start_key"))
    published = pages = 0
    put = {"calls": 0, "retried": 0, "overflowed": 0}

    def done(continued: bool, **extra: Any) -> dict[str, Any]:
        _metric(logical, published, pages, put)
        return {"table": table, "segment": segment, "published": published, "pages": pages,
                "continued": continued, **put, **extra}

    def hand_on(why: str) -> None:
        invoke({**event, "exclusive_start_key": encode_key(start_key), "pass": this_pass + 1})
        log("info", "backfill continues in a new invocation", table=table, segment=segment,
                published=published, pages=pages, next_pass=this_pass + 1, why=why)

    while True:
        if pages and remaining_ms() < reserve_ms:
            hand_on("time")
            return done(True)
        kwargs: dict[str, Any] = {
            "TableName": table, "Segment": segment, "TotalSegments": total,
            "ConsistentRead": True, "Limit": page_items,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        scanned_at = now()
        page = ddb.scan(**kwargs)
        envelopes = [
            snapshot_envelope(item, logical_table=logical, physical_table=table,
                              key_names=key_names, scanned_at=scanned_at)
            for item in page.get("Items", [])
        ]
        if envelopes:
            try:
                result = publish(envelopes)
            except bus.PublishError as error:
                _count(put, error.result)
                log("warning", "backfill page not on the bus", table=table,
                        segment=segment, pass_no=this_pass, error=str(error),
                        first_failed=error.first_failed, progress_pages=pages)
                if pages:  # progress made: keep it, continue from this page
                    hand_on(f"page not on the bus: {error}")
                    return done(True, failed_page=True)
                raise BackfillError(
                    f"backfill of {table} segment {segment}/{total}: the page from "
                    f"{encode_key(start_key)} is not on the bus after the publisher's retries: "
                    f"{error}"
                ) from error
            _count(put, result)
        published += len(envelopes)
        pages += 1
        start_key = page.get("LastEvaluatedKey")
        if not start_key:
            log("info", "backfill segment done", table=table, segment=segment,
                    published=published, passes=this_pass + 1)
            return done(False)


def _count(put: dict[str, int], result: bus.PutResult) -> None:
    for name in put:
        put[name] += getattr(result, name)


# -- Lambda entry point ----------------------------------------------------------------------
def _bus_publish(cfg: Config) -> Publish:
    return bus.snapshot_publisher(
        kinesis=_client("kinesis"),
        s3=LazyClient(lambda: _client("s3")),
        stream_name=cfg.stream_name,
        overflow_bucket=cfg.overflow_bucket,
    )


def _self_invoker(context: Any) -> Invoke:
    function = getattr(context, "invoked_function_arn", None) or context.function_name

    def invoke(event: dict[str, Any]) -> None:
        _client("lambda").invoke(
            FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode()
        )

    return invoke


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    invoke = _self_invoker(context)
    if "segment" not in event:
        return fan_out(event, invoke=invoke)
    try:
        cfg = config()
    except ConfigError as error:
        log("error", "backfill misconfigured: the segment fails until it is fixed",
            reason=str(error))
        raise
    return scan_segment(
        event,
        ddb=_client("dynamodb"),
        publish=_bus_publish(cfg),
        invoke=invoke,
        remaining_ms=context.get_remaining_time_in_millis,
        reserve_ms=cfg.reserve_ms,
        page_items=cfg.page_items,
    )
