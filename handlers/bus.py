"""The bus publisher: envelopes onto the Kinesis bus, nothing lost, as few calls as possible.

Shared by the fan-in handler, the backfill and the DLQ redrive tool, so all three put
records the same way:

- **Packing.** Envelopes go out in their order, packed greedily into PutRecords calls of at
  most 500 records and 5 MiB (data plus partition key, as Kinesis counts). A chunk is sent
  only after every record of the chunks before it is on the bus, so two changes of one row
  in different chunks land in order.
- **Overflow.** An envelope larger than the record limit (`max_record_bytes`) is written
  whole to the overflow bucket (`overflow/<table>/<yyyy>/<mm>/<dd>/<id>.json`, the bucket's
  default KMS encryption applies) and a pointer envelope carrying `overflow: s3://...` takes
  its place on the bus. No overflow bucket configured: that envelope fails (it is reported,
  never dropped).
- **Retries.** Only the entries Kinesis rejected (`ErrorCode` set: throttling, internal
  errors) are retried -- plus, to keep per-row order, any entry of the same call that
  succeeded after a failed change of the same row (it is resent after the earlier change
  lands, so the row's latest change is again the last on the bus); a call that fails as a
  whole retries its whole chunk. Attempts
  are bounded, with exponential backoff and full jitter, and stop early when the caller's
  time is running out. What is still not on the bus is reported as the index of the first
  envelope not put: callers report that record (never skip ahead) or raise.

Per-row order: a row's later change never stays on the bus ahead of an earlier change of
that row that failed (it is resent after it). A consumer still sees such a later change
twice (same `id`) and may see an older change after a newer one it already applied; the
consumer rule (docs/bus.md: deduplicate on `id`, per row drop an envelope whose `seq` is
lower than the last applied) makes it end at the source state.

Nothing heavy is imported at module load: boto3 clients are passed in by the callers (who
make them with `handlers.observability.client`). Metrics and logs: `handlers.observability`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from .envelope import Envelope
from .observability import BUS_NAMESPACE

__all__ = [
    "MAX_BYTES_PER_CALL",
    "MAX_RECORDS_PER_CALL",
    "PublishError",
    "PutResult",
    "chunks",
    "overflow_key",
    "publisher",
    "put_envelopes",
    "redrive_publisher",
    "snapshot_publisher",
]

#: Kinesis PutRecords limits: records per call and bytes (data + partition keys) per call.
MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
DEFAULT_MAX_RECORD_BYTES = 1_000_000
DEFAULT_MAX_ATTEMPTS = 5
BASE_DELAY_S = 0.05
MAX_DELAY_S = 2.0
#: CloudWatch namespace of the fan-in's and the backfill's metrics.
METRIC_NAMESPACE = BUS_NAMESPACE

Sleep = Callable[[float], None]
TimeLeft = Callable[[], float]
"""Seconds the caller still has (Lambda: remaining time minus a reserve)."""


class PublishError(Exception):
    """Some envelopes are not on the bus after the bounded retries.

    `first_failed` is the index (in the list given) of the first envelope not put: every
    envelope before it is on the bus.
    """

    def __init__(self, message: str, first_failed: int, result: PutResult) -> None:
        super().__init__(message)
        self.first_failed = first_failed
        self.result = result


class PutResult:
    """What one `put_envelopes` call did."""

    __slots__ = ("bytes", "calls", "error", "first_failed", "overflowed", "put", "retried")

    def __init__(self) -> None:
        self.put = 0  # envelopes on the bus (pointer envelopes included)
        self.bytes = 0  # bytes put (data + partition keys)
        self.calls = 0  # PutRecords calls made, retries included
        self.retried = 0  # entries sent again after a failure
        self.overflowed = 0  # envelopes that went through the overflow bucket
        self.first_failed: int | None = None  # index of the first envelope not put
        self.error: str | None = None  # why it was not put

    def __repr__(self) -> str:
        return (
            f"PutResult(put={self.put}, calls={self.calls}, retried={self.retried}, "
            f"overflowed={self.overflowed}, first_failed={self.first_failed}, "
            f"error={self.error!r})"
        )


# ------------------------------------------------------------------------------ packing


def chunks(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """Greedy in-order packing of record sizes into PutRecords calls: [(begin, end), ...]."""
    out = []
    begin = count = total = 0
    for i, size in enumerate(sizes):
        if count and (count == MAX_RECORDS_PER_CALL or total + size > MAX_BYTES_PER_CALL):
            out.append((begin, i))
            begin, count, total = i, 0, 0
        count += 1
        total += size
    if count:
        out.append((begin, len(sizes)))
    return out


def overflow_key(env: Envelope) -> str:
    """Object key of an envelope's full copy in the overflow bucket (date from its `ts`)."""
    day = env.ts[:10].replace("-", "/") if len(env.ts) >= 10 else "undated"
    return f"overflow/{_key_safe(env.table)}/{day}/{_key_safe(env.id)}.json"


def _key_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _record_limit(max_record_bytes: int) -> int:
    return min(max_record_bytes, MAX_BYTES_PER_CALL)


def _prepare(
    envelopes: Sequence[Envelope],
    s3: Any,
    overflow_bucket: str | None,
    max_record_bytes: int,
    result: PutResult,
) -> tuple[list[dict[str, Any]], list[int]]:
    """The PutRecords entries (overflowed envelopes replaced by pointers) and their sizes.

    Stops at the first envelope that cannot be prepared (result.first_failed is set): the
    ones after it are not put either, so nothing skips ahead of it.
    """
    limit = _record_limit(max_record_bytes)
    entries: list[dict[str, Any]] = []
    sizes: list[int] = []
    for i, env in enumerate(envelopes):
        data = env.data
        size = env.record_bytes()
        if size > limit:
            if not overflow_bucket or s3 is None:
                result.first_failed = i
                result.error = (
                    f"envelope {env.id} is {size} bytes, over the {limit}-byte record limit, "
                    "and no overflow bucket is configured (OVERFLOW_BUCKET)"
                )
                break
            key = overflow_key(env)
            try:
                s3.put_object(
                    Bucket=overflow_bucket,
                    Key=key,
                    Body=env.data,
                    ContentType="application/json",
                )
            except Exception as exc:  # noqa: BLE001 - reported, the record is retried
                result.first_failed = i
                result.error = f"overflow put of {env.id} to s3://{overflow_bucket}/{key}: {exc}"
                break
            data = env.pointer(f"s3://{overflow_bucket}/{key}")
            size = len(data) + len(env.partition_key.encode("utf-8"))
            result.overflowed += 1
        entries.append({"Data": data, "PartitionKey": env.partition_key})
        sizes.append(size)
    return entries, sizes


# ------------------------------------------------------------------------------ putting


def _backoff(attempt: int, base: float, cap: float) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * (2**attempt)))  # noqa: S311 - jitter, not crypto


def _with_later_changes_of(
    failed: list[int], failed_set: set[int], sent: list[int], entries: list[dict[str, Any]]
) -> list[int]:
    """The entries to send again: the failed ones, plus every entry of this call that
    succeeded AFTER a failed entry of the same row (partition key). Resending those once the
    earlier change lands puts the row's latest change last on the bus again, so a row's later
    change never stays ahead of an earlier one that failed."""
    first_failed_of: dict[str, int] = {}
    for i in failed:
        first_failed_of.setdefault(entries[i]["PartitionKey"], i)
    out = []
    for i in sent:
        if i in failed_set:
            out.append(i)
            continue
        first = first_failed_of.get(entries[i]["PartitionKey"])
        if first is not None and first < i:
            out.append(i)
    return out


def put_envelopes(
    envelopes: Sequence[Envelope],
    *,
    kinesis: Any,
    s3: Any,
    stream_name: str,
    overflow_bucket: str | None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    base_delay: float = BASE_DELAY_S,
    max_delay: float = MAX_DELAY_S,
    sleep: Sleep = time.sleep,
    time_left: TimeLeft | None = None,
) -> PutResult:
    """Put envelopes on the bus in order; see the module docstring. Never raises for a
    Kinesis or S3 error: the result says which envelope is the first not put and why."""
    result = PutResult()
    entries, sizes = _prepare(envelopes, s3, overflow_bucket, max_record_bytes, result)
    for begin, end in chunks(sizes):
        pending = list(range(begin, end))
        landed: set[int] = set()
        attempt = 0
        while pending:
            result.calls += 1
            batch = [entries[i] for i in pending]
            try:
                response = kinesis.put_records(StreamName=stream_name, Records=batch)
                answers = response["Records"]
                failed = [i for i, a in zip(pending, answers, strict=True) if a.get("ErrorCode")]
                reason = next(
                    (f"{a['ErrorCode']}: {a.get('ErrorMessage', '')}" for a in answers
                     if a.get("ErrorCode")),
                    None,
                )
            except Exception as exc:  # noqa: BLE001 - the whole call failed: retry the chunk
                failed = pending
                reason = f"PutRecords failed: {type(exc).__name__}: {exc}"
            failed_set = set(failed)
            for i in pending:
                if i not in failed_set and i not in landed:
                    landed.add(i)
                    result.put += 1
                    result.bytes += sizes[i]
            if not failed:
                break
            attempt += 1
            delay = _backoff(attempt, base_delay, max_delay) if attempt < max_attempts else 0.0
            out_of_time = attempt < max_attempts and time_left is not None and time_left() <= delay
            if attempt >= max_attempts or out_of_time:
                result.first_failed = failed[0]
                result.error = (
                    f"{len(failed)} record(s) not on the bus after {attempt} attempt(s)"
                    f"{' (out of time)' if out_of_time else ''}; last error {reason}"
                )
                return result
            pending = _with_later_changes_of(failed, failed_set, pending, entries)
            result.retried += len(pending)
            sleep(delay)
    return result


def publisher(
    *,
    kinesis: Any,
    s3: Any,
    stream_name: str,
    overflow_bucket: str | None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    sleep: Sleep = time.sleep,
) -> Callable[[Sequence[Envelope]], PutResult]:
    """A publish function bound to clients and settings: puts envelopes exactly as the fan-in
    does and raises `PublishError` if any is not on the bus after the retries.

    The backfill uses it per page of snapshots (a failed page is retried as a whole), the
    DLQ redrive per redriven range (its DLQ message is then kept)."""

    def publish(envelopes: Sequence[Envelope]) -> PutResult:
        result = put_envelopes(
            envelopes,
            kinesis=kinesis,
            s3=s3,
            stream_name=stream_name,
            overflow_bucket=overflow_bucket,
            max_record_bytes=max_record_bytes,
            max_attempts=max_attempts,
            sleep=sleep,
        )
        if result.first_failed is not None:
            raise PublishError(result.error or "not on the bus", result.first_failed, result)
        return result

    return publish


#: The backfill's publisher (see `publisher`).
snapshot_publisher = publisher
#: The DLQ redrive's publisher (see `publisher`).
redrive_publisher = publisher
