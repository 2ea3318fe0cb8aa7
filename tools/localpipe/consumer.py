"""A bus consumer that keeps a replica, following the consumer rule of docs/bus.md (local pipeline).

Rule: deduplicate on `id`; per row (table + keys) keep the highest `seq` applied and drop a
change with a lower one; a `delete` leaves a tombstone holding its seq, so an older change
arriving late cannot resurrect the row. Snapshots (`op: snapshot`, seq "") are applied only
to a row no stream change has touched yet (docs/adoption.md): a live change always wins over
the backfill's copy. An envelope with `overflow` is replaced by the full envelope read from
the overflow bucket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


def loads(data: bytes | str) -> Any:
    """JSON with exact numbers (every number a Decimal)."""
    return json.loads(data, parse_float=Decimal, parse_int=Decimal)


def row_key(keys: dict[str, Any]) -> str:
    return json.dumps(keys, sort_keys=True, default=str, ensure_ascii=False)


@dataclass
class RowState:
    seq: int | None  # None: only a snapshot so far
    row: dict[str, Any] | None  # None: deleted (tombstone)


@dataclass
class Replica:
    """Rows per logical table, built only from bus envelopes."""

    rows: dict[str, dict[str, RowState]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    received: list[dict[str, Any]] = field(default_factory=list)  # every envelope, in order
    applied: int = 0
    duplicates: int = 0
    stale: int = 0

    def apply(self, env: dict[str, Any]) -> str:
        """Apply one envelope; returns what happened (applied/duplicate/stale)."""
        self.received.append(env)
        if env["id"] in self.seen:
            self.duplicates += 1
            return "duplicate"
        self.seen.add(env["id"])
        table = self.rows.setdefault(env["table"], {})
        key = row_key(env["keys"])
        state = table.get(key)
        if env["op"] == "snapshot":
            if state is not None:
                self.stale += 1
                return "stale"
            table[key] = RowState(None, env["new"])
            self.applied += 1
            return "applied"
        seq = int(env["seq"])
        if state is not None and state.seq is not None and seq <= state.seq:
            self.stale += 1
            return "stale"
        table[key] = RowState(seq, None if env["op"] == "delete" else env["new"])
        self.applied += 1
        return "applied"

    def live(self, table: str) -> dict[str, dict[str, Any]]:
        """Live rows of a table: canonical keys -> row."""
        return {k: s.row for k, s in self.rows.get(table, {}).items() if s.row is not None}


class BusConsumer:
    """Reads every shard of the bus (moto Kinesis) from TRIM_HORIZON and feeds a Replica."""

    def __init__(self, kinesis: Any, stream_name: str, s3: Any | None = None,
                 replica: Replica | None = None, on_envelope: Any = None,
                 validate: Any = None) -> None:
        """`validate(envelope)`: called with every record's JSON (and every overflow
        envelope's) before it is applied, e.g. a JSON-schema check; raises to fail."""
        self.kinesis = kinesis
        self.stream_name = stream_name
        self.s3 = s3
        self.replica = replica if replica is not None else Replica()
        self.on_envelope = on_envelope
        self.validate = validate
        self.validated = 0
        self._iterators: dict[str, str | None] = {}
        self.records_read = 0
        self.overflow_fetched = 0

    def _shards(self) -> list[str]:
        shards = self.kinesis.list_shards(StreamName=self.stream_name)["Shards"]
        return [s["ShardId"] for s in shards]

    def step(self) -> int:
        """Read what is new on every shard and apply it; returns records read."""
        count = 0
        for sid in self._shards():
            if sid not in self._iterators:
                self._iterators[sid] = self.kinesis.get_shard_iterator(
                    StreamName=self.stream_name, ShardId=sid, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            while self._iterators[sid]:
                page = self.kinesis.get_records(ShardIterator=self._iterators[sid], Limit=10000)
                self._iterators[sid] = page.get("NextShardIterator")
                if not page["Records"]:
                    break
                for record in page["Records"]:
                    self._one(record["Data"])
                    count += 1
        self.records_read += count
        return count

    def _check(self, data: bytes) -> None:
        if self.validate is not None:
            self.validate(json.loads(data))
            self.validated += 1

    def _one(self, data: bytes) -> None:
        self._check(data)
        env = loads(data)
        if "overflow" in env:
            env = self._fetch(env["overflow"])
        if self.on_envelope is not None:
            self.on_envelope(env)
        self.replica.apply(env)

    def _fetch(self, uri: str) -> dict[str, Any]:
        if self.s3 is None:
            raise AssertionError(f"overflow envelope {uri} but the consumer has no S3 client")
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        self._check(body)
        self.overflow_fetched += 1
        full: dict[str, Any] = loads(body)
        return full
