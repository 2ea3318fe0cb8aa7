"""The consumer kit: read the bus the way docs/bus.md says (docs/consumers.md).

    from dms_event_bus.consumer import Replica, decode, kinesis_handler

* `decode(data)`: one record's bytes -> a checked envelope (dict; numbers are Decimals with the
  stored digits); `MalformedEnvelope` when it is not one. `dumps` writes such a dict back as
  compact JSON with the same digits; `row_key(keys)` is a row's identity in its table.
* `OverflowReader`: replaces an overflow pointer by the full envelope from S3 (boto3 imported
  and its client created on the first pointer, or injected).
* The consumer rule: `advance(state, envelope)` (one row's next state, or None to drop the
  envelope) and `Replica` (an in-memory replica applying it, with dedupe on `id`).
* `kinesis_handler(process)`: a Kinesis-triggered Lambda handler with partial batch failure
  reporting and a policy for malformed records.
* `archive_envelopes(body)`: the envelopes of one object of the bus's Firehose archive, for a
  replay.

Imports only the standard library (no Pulumi, no boto3 until an overflow pointer needs S3).
"""

from .archive import archive_envelopes
from .envelope import OPS, MalformedEnvelope, decode, dumps, loads, row_key
from .kinesis import FirstRecordFailed, KinesisConsumer, kinesis_handler, record_envelope
from .overflow import OverflowReader, split_uri
from .rule import APPLIED, DUPLICATE, STALE, Replica, RowState, advance, position

__all__ = [
    "APPLIED",
    "DUPLICATE",
    "OPS",
    "STALE",
    "FirstRecordFailed",
    "KinesisConsumer",
    "MalformedEnvelope",
    "OverflowReader",
    "Replica",
    "RowState",
    "advance",
    "archive_envelopes",
    "decode",
    "dumps",
    "kinesis_handler",
    "loads",
    "position",
    "record_envelope",
    "row_key",
    "split_uri",
]
