"""A Kinesis-triggered Lambda consumer of the bus, with partial batch failure reporting.

    from dms_event_bus.consumer import Replica, kinesis_handler

    def process(env):                      # one resolved envelope, in shard order
        ...                                # raise to fail this record (it is retried)

    handler = kinesis_handler(process)     # the Lambda entry point

Per invocation, records are handled in order. Each record's data is decoded
(`consumer.decode`), an overflow pointer is replaced by the full envelope from S3, and
`process(envelope)` is called. The first record that fails stops the batch (nothing after it is
processed, so order per row holds) and is reported:

* not the first record of the batch: `{"batchItemFailures": [{"itemIdentifier": <its
  sequenceNumber>}]}` -- Lambda checkpoints the records before it and retries from it;
* the first record: `FirstRecordFailed` is raised (a function error). A partial response naming
  the first record would make Lambda retry the whole batch until all of it ages out; a function
  error makes the mapping (with `BisectBatchOnFunctionError`) split the batch, so the failing
  record ends alone and, after `MaximumRetryAttempts`, goes to the mapping's on-failure
  destination while the shard moves on.

A **malformed** record (not a v1 envelope, or an overflow object that does not match its
pointer) is handed to `on_malformed(record, error)`. The default (`None`) fails it like any
other failure: it is retried, bisected down to itself and ends in the on-failure destination
(the message names the shard and sequence range; the record stays readable from the stream for
its retention, and from the Firehose archive), never silently dropped. A hook that returns
normally marks the record handled (e.g. after storing it in the team's own dead-letter place);
a hook that raises fails it. Either way an `error` log line names the record and the reason.

The mapping must bound the retries (`MaximumRetryAttempts`, `MaximumRecordAgeInSeconds`), turn
on `BisectBatchOnFunctionError` and `ReportBatchItemFailures`, and name an on-failure
destination, or a record that always fails blocks its shard until it expires
(docs/consumers.md).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from .envelope import MalformedEnvelope, decode
from .overflow import OverflowReader

__all__ = ["FirstRecordFailed", "KinesisConsumer", "kinesis_handler", "record_envelope"]

#: Milliseconds kept back from Lambda's remaining time: a record is not started with less.
RESERVE_MS = 2000

Process = Callable[[dict[str, Any]], object]
OnMalformed = Callable[[Mapping[str, Any], MalformedEnvelope], object]


class FirstRecordFailed(Exception):  # noqa: N818 - the name says what happened
    """The first record of the batch failed: raised so the mapping bisects the batch."""

    def __init__(self, sequence_number: str, reason: str) -> None:
        super().__init__(f"record {sequence_number} failed: {reason}")
        self.sequence_number = sequence_number
        self.reason = reason


def _log(level: str, message: str, **fields: Any) -> None:
    print(json.dumps({"level": level, "message": message, **fields}, default=str), flush=True)


def record_envelope(record: Mapping[str, Any]) -> dict[str, Any]:
    """A Lambda Kinesis event record's data as a checked envelope (MalformedEnvelope if not)."""
    try:
        data = base64.b64decode(record["kinesis"]["data"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEnvelope(f"data is not base64: {exc}") from None
    return decode(data)


class KinesisConsumer:
    """The handler `kinesis_handler` returns; `process`, `overflow`, `on_malformed` as there.
    Counters (`processed`, `malformed`, `failed`) add up over the container's invocations."""

    def __init__(self, process: Process, *, overflow: OverflowReader | None = None,
                 on_malformed: OnMalformed | None = None,
                 log: Callable[..., None] = _log) -> None:
        self.process = process
        self.overflow = overflow if overflow is not None else OverflowReader()
        self.on_malformed = on_malformed
        self.log = log
        self.processed = 0
        self.malformed = 0
        self.failed = 0

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        records = event.get("Records") or []
        for index, record in enumerate(records):
            seq = str(record["kinesis"]["sequenceNumber"])
            if index and _remaining_ms(context) < RESERVE_MS:
                # out of time: hand the rest back rather than be killed mid-record
                self.log("warning", "stopping early: invocation time nearly up",
                         sequenceNumber=seq, notProcessed=len(records) - index)
                return {"batchItemFailures": [{"itemIdentifier": seq}]}
            reason = self._one(record, seq)
            if reason is None:
                continue
            self.failed += 1
            if index == 0:
                raise FirstRecordFailed(seq, reason)
            return {"batchItemFailures": [{"itemIdentifier": seq}]}
        return {"batchItemFailures": []}

    def _one(self, record: Mapping[str, Any], seq: str) -> str | None:
        """None when the record is done; else why it failed."""
        where = {"sequenceNumber": seq, "partitionKey": record["kinesis"].get("partitionKey"),
                 "eventSourceARN": record.get("eventSourceARN"),
                 "eventID": record.get("eventID")}
        try:
            env = self.overflow.resolve(record_envelope(record))
        except MalformedEnvelope as exc:
            self.malformed += 1
            self.log("error", "malformed record", reason=str(exc), **where)
            if self.on_malformed is None:
                return f"malformed record: {exc}"
            try:
                self.on_malformed(record, exc)
            except Exception as hook_exc:
                return f"malformed record, on_malformed raised: {_text(hook_exc)}"
            return None
        except Exception as exc:  # S3 unreachable, access denied, ...: retried
            self.log("error", "record failed", reason=_text(exc), **where)
            return _text(exc)
        try:
            self.process(env)
        except Exception as exc:
            self.log("error", "record failed", reason=_text(exc), id=env["id"], **where)
            return _text(exc)
        self.processed += 1
        return None


def _remaining_ms(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return float(remaining()) if callable(remaining) else float("inf")


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def kinesis_handler(process: Process, *, s3: Any | None = None,
                    overflow: OverflowReader | None = None,
                    on_malformed: OnMalformed | None = None) -> KinesisConsumer:
    """A Lambda handler `(event, context) -> {"batchItemFailures": [...]}` calling
    `process(envelope)` for each record of a Kinesis batch from the bus, in order.

    `s3`: the S3 client for overflow pointers (default: created on the first pointer);
    `overflow`: an `OverflowReader` instead; `on_malformed(record, error)`: see the module
    docstring (default: a malformed record fails and ends in the on-failure destination)."""
    return KinesisConsumer(process, overflow=overflow or OverflowReader(s3),
                           on_malformed=on_malformed)
