"""The local pipeline's bus consumer: a thin adapter over the consumer kit (`consumer/`).

The consumer rule of docs/bus.md is implemented once, in `consumer.rule`; this module keeps
the names the harness, the demo and the end-to-end tests use (`Replica`, `RowState`, `loads`,
`row_key`, `BusConsumer`) and adds what only the harness needs: every envelope received, in
order, and a reader of every shard of moto's Kinesis from TRIM_HORIZON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import dms_event_bus.consumer as kit
from dms_event_bus.consumer import RowState, decode, loads, row_key

__all__ = ["BusConsumer", "Replica", "RowState", "loads", "row_key"]


@dataclass
class Replica(kit.Replica):
    """The kit's replica, also keeping every envelope it was given, in order (`received`)."""

    received: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, env: dict[str, Any]) -> str:
        """Apply one envelope; returns what happened (applied/duplicate/stale)."""
        self.received.append(env)
        return super().apply(env)


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
        self._overflow = kit.OverflowReader(client_factory=self._no_s3) if s3 is None \
            else kit.OverflowReader(s3)

    @property
    def overflow_fetched(self) -> int:
        return self._overflow.fetched

    def _no_s3(self) -> Any:
        raise AssertionError("overflow envelope but the consumer has no S3 client")

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
        env = self._overflow.resolve(decode(data), check=self._check)
        if self.on_envelope is not None:
            self.on_envelope(env)
        self.replica.apply(env)
