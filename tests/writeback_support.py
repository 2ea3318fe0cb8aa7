"""Helpers of the writeback tests: stream records (from moto or built like Lambda delivers
them), a mapping config, and the write path's item shape (docs/ingest-api.md)."""

from __future__ import annotations

import uuid
from typing import Any

import boto3

from handlers.writeback import Config
from tests.e2e.lambda_events import to_lambda_record

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def stream_arn(table: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/2026-01-01T00:00:00.000"


def config(table: str, legacy_table: str, *, kind: str = "postgres",
           deletes: bool = True, column_types: dict[str, str] | None = None) -> Config:
    """orders: item id -> order_id, amount -> amount, note -> note, version -> row_version."""
    return Config.from_json(
        {
            "target": {"kind": kind},
            "tables": {
                table: {
                    "legacy_table": legacy_table,
                    "key_columns": {"id": "order_id"},
                    "columns": {"amount": "amount", "note": "note", "customer": "customer"},
                    "version_attribute": "version",
                    "version_column": "row_version",
                    "column_types": column_types or {},
                    "deletes": deletes,
                }
            },
        }
    )


def item(order_id: int, version: int, *, amount: str = "10.50", note: str = "n",
         customer: str = "c1", status: str | None = "accepted") -> dict[str, Any]:
    """An item image as the write path stores it (DynamoDB JSON)."""
    image: dict[str, Any] = {
        "id": {"N": str(order_id)},
        "amount": {"N": amount},
        "note": {"S": note},
        "customer": {"S": customer},
        "version": {"N": str(version)},
        "received_at": {"S": "2026-11-22T22:00:00Z"},
    }
    if status is not None:
        image["status"] = {"S": status}
    return image


class Records:
    """Builds stream records the way Lambda delivers them, with increasing sequence numbers."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.seq = 1000

    def _record(self, event: str, keys: dict[str, Any], new: dict[str, Any] | None,
                old: dict[str, Any] | None, identity: dict[str, str] | None) -> dict[str, Any]:
        self.seq += 1
        body: dict[str, Any] = {
            "ApproximateCreationDateTime": 1795000000,
            "Keys": keys,
            "SequenceNumber": f"{self.seq:021d}",
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if new is not None:
            body["NewImage"] = new
        if old is not None:
            body["OldImage"] = old
        record: dict[str, Any] = {
            "eventID": uuid.uuid4().hex,
            "eventName": event,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": body,
            "eventSourceARN": stream_arn(self.table),
        }
        if identity:
            record["userIdentity"] = identity
        return record

    def insert(self, new: dict[str, Any]) -> dict[str, Any]:
        return self._record("INSERT", {"id": new["id"]}, new, None, None)

    def modify(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        return self._record("MODIFY", {"id": new["id"]}, new, old, None)

    def remove(self, old: dict[str, Any], *, ttl: bool = False) -> dict[str, Any]:
        identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"} if ttl else None
        return self._record("REMOVE", {"id": old["id"]}, None, old, identity)


class MotoStream:
    """A moto DynamoDB table with a NEW_AND_OLD_IMAGES stream, read from its start."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.streams = boto3.client("dynamodbstreams", region_name=REGION)
        desc = self.ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        self.arn = desc["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]
        self.iterator = self.streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        """Everything new on the stream since the last read, as Lambda would deliver it
        (Lambda adds the stream's ARN to each record)."""
        out = self.streams.get_records(ShardIterator=self.iterator)
        self.iterator = out["NextShardIterator"]
        return [to_lambda_record(r, self.arn, REGION) for r in out["Records"]]


class WireCounter:
    """Counts a DB-API connection's network round trips, independently of the executor: a
    request sent, then its answer read. pg8000: a flush of its socket file followed by a
    read; PyMySQL: a packet written followed by a read."""

    def __init__(self, connection: Any) -> None:
        self.round_trips = 0
        self._sent = False
        if hasattr(connection, "_write_bytes"):  # PyMySQL
            write, read = connection._write_bytes, connection._read_bytes

            def write_bytes(data: bytes) -> None:
                self._sent = True
                write(data)

            def read_bytes(num: int) -> bytes:
                self._answer()
                data: bytes = read(num)
                return data

            connection._write_bytes = write_bytes
            connection._read_bytes = read_bytes
        else:  # pg8000 writes to and reads from `_sock`, a buffered file over the socket
            connection._sock = _CountingFile(connection._sock, self)

    def _answer(self) -> None:
        if self._sent:
            self.round_trips += 1
            self._sent = False


class _CountingFile:
    def __init__(self, inner: Any, counter: WireCounter) -> None:
        self._inner = inner
        self._counter = counter

    def write(self, data: bytes) -> int:
        written: int = self._inner.write(data)
        return written

    def flush(self) -> None:
        self._counter._sent = True
        self._inner.flush()

    def read(self, size: int = -1) -> bytes:
        self._counter._answer()
        data: bytes = self._inner.read(size)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
