"""Writeback DLQ redrive under moto + a REAL PostgreSQL (tests/servers.py starts it).

The DLQ message is Lambda's on-failure record for a DynamoDB stream batch (stream positions,
no data); the redrive re-reads the range from moto's stream and hands it to the writeback's
own handler (in-process here; the command invokes the deployed function).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dms_event_bus.handlers import writeback
from tests.servers import DbServer, postgres  # noqa: F401
from tests.writeback_support import REGION, MotoStream, item
from tools import redrive_writeback

pytestmark = pytest.mark.servers


class World:
    def __init__(self, server: DbServer, monkeypatch: pytest.MonkeyPatch, port: int) -> None:
        self.db = server.fresh_database("wb_redrive")
        admin = self.db.admin_connect()
        admin.cursor().execute(
            "CREATE TABLE public.orders (order_id bigint PRIMARY KEY, amount numeric(12,2), "
            f"note text, customer varchar(20), row_version bigint); GRANT SELECT, INSERT, "
            f"UPDATE, DELETE ON public.orders TO {self.db.user}")
        admin.close()
        self.stream = MotoStream(f"dmsbus-rdw-ingest-orders-{secrets.token_hex(3)}")
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue_url = self.sqs.create_queue(QueueName="dmsbus-rdw-writeback-dlq")["QueueUrl"]
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"rdw-{secrets.token_hex(3)}",
            SecretString=json.dumps({"username": self.db.user, "password": self.db.password}),
        )["ARN"]
        config = {
            "target": {"kind": "postgres", "host": self.db.host, "port": port,
                       "database": self.db.dbname, "secret_arn": secret, "tls": False,
                       "connect_timeout_seconds": 2},
            "tables": {self.stream.table: {
                "legacy_table": "orders", "key_columns": {"id": "order_id"},
                "columns": {"amount": "amount", "note": "note", "customer": "customer"},
                "version_column": "row_version"}},
        }
        monkeypatch.setenv("WRITEBACK_CONFIG", json.dumps(config))
        monkeypatch.setattr(writeback, "_STATE", {})  # a fresh container

    def rows(self) -> dict[int, tuple[Any, ...]]:
        conn = self.db.connect(autocommit=True)
        cur = conn.cursor()
        cur.execute("SELECT order_id, amount, note, row_version FROM orders")
        rows = {r[0]: tuple(r[1:]) for r in cur.fetchall()}
        conn.close()
        return rows

    def failed_batch(self, count: int, *, poison: int | None = None) -> list[dict[str, Any]]:
        """`count` POSTs whose batch the writeback gave up on; its on-failure message is sent."""
        for i in range(count):
            customer = "x" * 21 if i == poison else "c1"
            self.stream.ddb.put_item(TableName=self.stream.table,
                                     Item=item(100 + i, 1, note=f"n{i}", customer=customer))
        records = self.stream.read()
        body = {
            "requestContext": {"condition": "RetryAttemptsExhausted",
                               "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:"
                               "dmsbus-rdw-writeback", "approximateInvokeCount": 3},
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "version": "1.0", "timestamp": "2026-12-04T20:00:00.000Z",
            "DDBStreamBatchInfo": {
                "shardId": self.stream.streams.describe_stream(StreamArn=self.stream.arn)[
                    "StreamDescription"]["Shards"][0]["ShardId"],
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "batchSize": len(records), "streamArn": self.stream.arn,
            },
        }
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body))
        return records

    def run(self) -> redrive_writeback.Report:
        def apply(records: list[dict[str, Any]]) -> Any:
            return writeback.handler({"Records": records}, None)

        return redrive_writeback.redrive(
            sqs=self.sqs, streams=self.stream.streams, apply=apply,
            queue_url=self.queue_url, wait_seconds=0)

    def visible(self) -> int:
        got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                       VisibilityTimeout=0).get("Messages", [])
        return len(got)

    def status(self, key: int) -> str:
        got = self.stream.ddb.get_item(TableName=self.stream.table,
                                       Key={"id": {"N": str(key)}})["Item"]
        return str(got["status"]["S"])


@pytest.fixture
def world(postgres: DbServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:  # noqa: F811
    with mock_aws():
        yield World(postgres, monkeypatch, postgres.port)


def test_a_failed_batch_is_written_back_and_its_message_deleted(world: World) -> None:
    # GIVEN a batch of three POSTs the writeback gave up on (its DLQ message)
    world.failed_batch(3)
    assert world.rows() == {}
    # WHEN the writeback redrive runs
    report = world.run()
    # THEN the range was re-read and written back through the handler, the message deleted
    assert [(o.status, o.records, o.deleted) for o in report.outcomes] == [
        ("redriven", 3, True)]
    assert world.rows() == {100 + i: (Decimal("10.50"), f"n{i}", 1) for i in range(3)}
    assert [world.status(100 + i) for i in range(3)] == ["applied"] * 3
    assert world.visible() == 0
    # AND a second run finds nothing
    assert world.run().outcomes == []


def test_a_batch_the_writeback_still_rejects_is_kept_visible(world: World) -> None:
    # GIVEN a failed batch whose second record the legacy table still cannot hold
    records = world.failed_batch(3, poison=1)
    # WHEN the redrive runs
    (outcome,) = world.run().outcomes
    # THEN the message is kept, visible again at once, naming the record
    assert (outcome.status, outcome.deleted) == ("failed", False)
    assert records[1]["dynamodb"]["SequenceNumber"] in outcome.detail
    assert world.visible() == 1
    assert world.status(101) == "error"


def test_an_unreachable_database_keeps_the_message_visible(
    postgres: DbServer, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    with mock_aws():
        # GIVEN the writeback's database cannot be reached (a closed port)
        world = World(postgres, monkeypatch, port=9)
        world.failed_batch(2)
        # WHEN the redrive runs THEN the invocation fails, the message stays visible
        (outcome,) = world.run().outcomes
        assert (outcome.status, outcome.deleted) == ("failed", False)
        assert "the writeback failed" in outcome.detail
        assert world.visible() == 1


def test_the_command_rejects_bad_input_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert redrive_writeback.main(["--queue-url", "https://sqs.eu-west-1.amazonaws.com/1/q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--function-name" in err[0] and "Traceback" not in err[0]
