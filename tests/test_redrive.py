"""DLQ redrive under moto: failed batches go back on the bus once; expired ones stay put.

The DLQ messages are built in the format Lambda documents for a DynamoDB Streams on-failure
destination, from the real sequence numbers of records moto's stream holds.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import jsonschema
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from moto import mock_aws

from dms_event_bus.handlers import bus, fanin
from dms_event_bus.handlers.envelope import stream_envelope
from tests.conftest import SHARED
from tools import redrive
from tools.localpipe import aws as aws_world
from tools.localpipe.aws import MotoWorld

REGION = aws_world.REGION
SCHEMA = SHARED / "envelope.schema.json"


@pytest.fixture
def aws(moto_world: MotoWorld) -> MotoWorld:
    return moto_world


@dataclass
class World:
    """A waypoint table with its stream, the bus, the overflow bucket and the fan-in DLQ."""

    prefix: str
    table: str
    stream_arn: str
    shard_id: str
    bus: str
    bucket: str
    queue_url: str

    @property
    def tables(self) -> dict[str, str]:
        return {self.table: "orders"}

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def write_rows(self, count: int) -> list[dict[str, Any]]:
        """Write `count` rows; return the stream records they produced (boto3 form)."""
        ddb = self.client("dynamodb")
        for i in range(count):
            ddb.put_item(
                TableName=self.table,
                Item={
                    "order_id": {"N": str(1000 + i)},
                    "amount": {"N": "12345678901234567890.000000000001"},
                    "blob": {"B": bytes([i, 0, 255])},
                    "note": {"S": f"row {i} – ünïcode"},
                },
            )
        return self.stream_records()

    def stream_records(self) -> list[dict[str, Any]]:
        streams = self.client("dynamodbstreams")
        it = streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=self.shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while it:
            page = streams.get_records(ShardIterator=it)
            if not page["Records"]:
                break
            records += page["Records"]
            it = page.get("NextShardIterator")
        return records

    def on_failure_body(self, first: str, last: str, size: int) -> str:
        """Lambda's on-failure record for a DynamoDB Streams batch (documented format)."""
        return json.dumps(
            {
                "requestContext": {
                    "requestId": "316aa6d0-8154-4a1b-9af7-85d5f4a6bc81",
                    "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:"
                    f"{self.prefix}fanin",
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": 6,
                },
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled",
                },
                "version": "1.0",
                "timestamp": "2026-11-22T10:13:49.717Z",
                "DDBStreamBatchInfo": {
                    "shardId": self.shard_id,
                    "startSequenceNumber": first,
                    "endSequenceNumber": last,
                    "approximateArrivalOfFirstRecord": "2026-11-22T10:13:19Z",
                    "approximateArrivalOfLastRecord": "2026-11-22T10:13:19Z",
                    "batchSize": size,
                    "streamArn": self.stream_arn,
                },
            }
        )

    def send_failure(self, records: list[dict[str, Any]]) -> str:
        body = self.on_failure_body(
            records[0]["dynamodb"]["SequenceNumber"],
            records[-1]["dynamodb"]["SequenceNumber"],
            len(records),
        )
        out = self.client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body)
        message_id: str = out["MessageId"]
        return message_id

    def bus_records(self, stream: str | None = None) -> list[dict[str, Any]]:
        """Every record on the bus (or on `stream`), shard by shard, in order."""
        kinesis = self.client("kinesis")
        name = stream or self.bus
        found: list[dict[str, Any]] = []
        for shard in kinesis.list_shards(StreamName=name)["Shards"]:
            it = kinesis.get_shard_iterator(
                StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            page = kinesis.get_records(ShardIterator=it, Limit=10000)
            found += page["Records"]
        return found

    def queue_messages(self) -> list[dict[str, Any]]:
        """Every message in the DLQ that is visible now (visible again right after)."""
        sqs = self.client("sqs")
        got = sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
        )
        messages: list[dict[str, Any]] = got.get("Messages", [])
        for message in messages:
            sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return messages

    def publisher(self) -> redrive.Publisher:
        return redrive.bus_publisher(
            self.client("kinesis"), self.client("s3"), self.bus, self.bucket, 1_000_000
        )

    def run(self, **kwargs: Any) -> redrive.Report:
        options: dict[str, Any] = {
            "sqs": self.client("sqs"),
            "streams": self.client("dynamodbstreams"),
            "publish": self.publisher(),
            "queue_url": self.queue_url,
            "tables": self.tables,
            "wait_seconds": 0,
        }
        options.update(kwargs)
        return redrive.redrive(**options)


def lambda_form(value: Any, stream_arn: str | None = None) -> Any:
    """A record read through boto3 as Lambda delivers it: binary as base64 text, the time as
    epoch seconds, plus `eventSourceARN` (GetRecords does not return it; Lambda adds it)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        out = {k: lambda_form(v) for k, v in value.items()}
        if stream_arn is not None:
            out["eventSourceARN"] = stream_arn
        return out
    if isinstance(value, list | set):
        return [lambda_form(v) for v in value]
    return value


def make_world(prefix: str) -> World:
    ddb = boto3.client("dynamodb", region_name=REGION)
    table = f"{prefix}orders"
    created = ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    stream_arn = created["TableDescription"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    shard_id = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0][
        "ShardId"
    ]
    kinesis = boto3.client("kinesis", region_name=REGION)
    bus = f"{prefix}bus"
    kinesis.create_stream(StreamName=bus, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    bucket = f"{prefix}overflow"
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    queue_url = boto3.client("sqs", region_name=REGION).create_queue(
        QueueName=f"{prefix}fanin-dlq"
    )["QueueUrl"]
    return World(prefix, table, stream_arn, shard_id, bus, bucket, queue_url)


# --- the redrive ------------------------------------------------------------------------------


def test_failed_batch_lands_on_the_bus_exactly_once_and_the_message_is_deleted(aws):
    # GIVEN five changes in the stream, of which the fan-in gave up on the middle three
    world = make_world("dmsbus-rd1-")
    records = world.write_rows(5)
    failed = records[1:4]
    message_id = world.send_failure(failed)

    # WHEN the redrive runs
    report = world.run()

    # THEN exactly those three records are on the bus, converted as the fan-in converts them
    assert [(o.message_id, o.status, o.records, o.deleted) for o in report.outcomes] == [
        (message_id, "redriven", 3, True)
    ]
    on_bus = world.bus_records()
    expected = [stream_envelope(r, "orders", physical_table=world.table) for r in failed]
    assert sorted(r["Data"] for r in on_bus) == sorted(e.data for e in expected)
    assert sorted(r["PartitionKey"] for r in on_bus) == sorted(e.partition_key for e in expected)
    # ... byte for byte what the fan-in itself puts for the batch Lambda delivered (JSON form)
    reference = f"{world.prefix}reference-bus"
    world.client("kinesis").create_stream(StreamName=reference, ShardCount=1)
    batch = [lambda_form(r, world.stream_arn) for r in failed]
    outcome = fanin.process_records(
        batch,
        fanin.Config(stream_name=reference, tables=world.tables),
        kinesis=world.client("kinesis"),
        s3=None,
    )
    assert outcome.batch_item_failures == []
    fanin_put = world.bus_records(reference)
    assert [(r["PartitionKey"], r["Data"]) for r in fanin_put] == [
        (r["PartitionKey"], r["Data"]) for r in on_bus
    ]
    schema = json.loads(SCHEMA.read_text())
    for record in on_bus:
        envelope = json.loads(record["Data"])
        jsonschema.validate(envelope, schema)
        assert envelope["table"] == "orders"
    ids = {json.loads(r["Data"])["id"] for r in on_bus}
    assert ids == {r["eventID"] for r in failed}
    # exact numbers are copied, not rounded through a float
    assert all(b"12345678901234567890.000000000001" in r["Data"] for r in on_bus)
    # AND the DLQ message is gone
    assert world.queue_messages() == []

    # WHEN the redrive runs again THEN nothing more is put on the bus
    again = world.run()
    assert again.outcomes == []
    assert len(world.bus_records()) == 3


def test_dry_run_reports_and_changes_nothing(aws):
    # GIVEN a failed batch in the DLQ
    world = make_world("dmsbus-rd2-")
    records = world.write_rows(3)
    message_id = world.send_failure(records)
    # WHEN the redrive runs with --dry-run
    report = world.run(dry_run=True)
    # THEN it says what it would do ...
    assert [(o.message_id, o.status, o.records, o.deleted) for o in report.outcomes] == [
        (message_id, "would-redrive", 3, False)
    ]
    assert report.clean
    # ... nothing reached the bus and the message is still there, visible again at once
    assert world.bus_records() == []
    assert [m["MessageId"] for m in world.queue_messages()] == [message_id]


def test_expired_range_is_reported_and_the_message_kept(aws):
    # GIVEN a failed batch whose table (and so its stream) no longer exists
    world = make_world("dmsbus-rd3-")
    records = world.write_rows(2)
    message_id = world.send_failure(records)
    world.client("dynamodb").delete_table(TableName=world.table)
    # WHEN the redrive runs
    report = world.run()
    # THEN the batch is reported as expired, nothing is put on the bus, the message stays
    (outcome,) = report.outcomes
    assert (outcome.message_id, outcome.status, outcome.deleted) == (message_id, "expired", False)
    assert "ResourceNotFoundException" in outcome.detail
    assert outcome.condition == "RetryAttemptsExhausted"
    assert not report.clean
    assert "1 expired (kept)" in report.summary()
    assert world.bus_records() == []
    assert [m["MessageId"] for m in world.queue_messages()] == [message_id]


class RetainedStreams:
    """moto's DynamoDB Streams client over a shard whose oldest records retention has removed.

    moto keeps every record and cannot represent a trim horizon (an iterator before its first
    record trips an assertion inside moto). This wrapper models a service that, asked for a
    position older than what it still holds, hands out an iterator at the oldest record it
    has (AWS documents TrimmedDataAccessException instead; that case is tested below). Either
    way the redrive must not put the readable tail of the range alone.
    """

    def __init__(self, inner: Any, horizon: str) -> None:
        self.inner = inner
        self.horizon = horizon

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        seq = kwargs.get("SequenceNumber")
        if seq is not None and int(seq) < int(self.horizon):
            kwargs = {**kwargs, "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                      "SequenceNumber": self.horizon}
        return self.inner.get_shard_iterator(**kwargs)

    def get_records(self, **kwargs: Any) -> Any:
        return self.inner.get_records(**kwargs)


def test_a_range_whose_head_was_trimmed_is_not_redriven_partially(aws):
    # GIVEN a failed batch of five records of which retention has removed the first two
    world = make_world("dmsbus-rd4-")
    records = world.write_rows(5)
    first = records[0]["dynamodb"]["SequenceNumber"]
    body = world.on_failure_body(first, records[-1]["dynamodb"]["SequenceNumber"], 5)
    world.client("sqs").send_message(QueueUrl=world.queue_url, MessageBody=body)
    streams = RetainedStreams(
        world.client("dynamodbstreams"), horizon=records[2]["dynamodb"]["SequenceNumber"]
    )
    # WHEN the redrive runs
    (outcome,) = world.run(streams=streams).outcomes
    # THEN the three readable records are not put alone: the batch is expired and kept
    assert outcome.status == "expired" and not outcome.deleted
    assert "head trimmed" in outcome.detail
    assert world.bus_records() == []
    assert len(world.queue_messages()) == 1


class ExpiringIterators:
    """moto's client, except that the first GetRecords finds its iterator expired (an
    iterator lives 15 minutes: a long redrive run meets this)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.expired = 0
        self.iterator_types: list[str] = []

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        self.iterator_types.append(kwargs["ShardIteratorType"])
        return self.inner.get_shard_iterator(**kwargs)

    def get_records(self, **kwargs: Any) -> Any:
        if not self.expired:
            self.expired += 1
            raise ClientError(
                {"Error": {"Code": "ExpiredIteratorException", "Message": "Iterator expired"}},
                "GetRecords",
            )
        return self.inner.get_records(**kwargs)


def test_an_expired_iterator_is_renewed_once_and_the_batch_still_goes(aws):
    world = make_world("dmsbus-rd11-")
    message_id = world.send_failure(world.write_rows(3))
    streams = ExpiringIterators(world.client("dynamodbstreams"))
    (outcome,) = world.run(streams=streams).outcomes
    assert (outcome.message_id, outcome.status, outcome.records) == (message_id, "redriven", 3)
    assert streams.iterator_types == ["AT_SEQUENCE_NUMBER", "AT_SEQUENCE_NUMBER"]
    assert len(world.bus_records()) == 3
    assert world.queue_messages() == []


class TrimmedStreams:
    """moto's DynamoDB Streams client, except that the stream has trimmed the records."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "TrimmedDataAccessException", "Message": "beyond trim horizon"}},
            "GetShardIterator",
        )

    def get_records(self, **kwargs: Any) -> Any:
        return self.inner.get_records(**kwargs)


def test_trimmed_data_access_is_expired_and_good_messages_still_go(aws):
    # GIVEN two failed batches: one still readable, one the service reports as trimmed
    world = make_world("dmsbus-rd5-")
    records = world.write_rows(4)
    good = world.send_failure(records[:2])
    world_b = make_world("dmsbus-rd5b-")
    expired_records = world_b.write_rows(2)
    expired_body = world_b.on_failure_body(
        expired_records[0]["dynamodb"]["SequenceNumber"],
        expired_records[-1]["dynamodb"]["SequenceNumber"],
        2,
    )
    expired = world.client("sqs").send_message(QueueUrl=world.queue_url, MessageBody=expired_body)[
        "MessageId"
    ]
    real = world.client("dynamodbstreams")

    class Streams(TrimmedStreams):
        def get_shard_iterator(self, **kwargs: Any) -> Any:
            if kwargs["StreamArn"] == world_b.stream_arn:
                return super().get_shard_iterator(**kwargs)
            return real.get_shard_iterator(**kwargs)

    # WHEN the redrive runs over both
    report = world.run(streams=Streams(real), tables={**world.tables, world_b.table: "orders"})
    # THEN the readable batch is on the bus and deleted; the trimmed one is kept and reported
    status = {o.message_id: (o.status, o.deleted) for o in report.outcomes}
    assert status == {good: ("redriven", True), expired: ("expired", False)}
    assert "TrimmedDataAccessException" in next(
        o.detail for o in report.outcomes if o.message_id == expired
    )
    assert len(world.bus_records()) == 2
    assert [m["MessageId"] for m in world.queue_messages()] == [expired]


class ThrottlingKinesis:
    """moto's Kinesis, except that every entry after the first `accept` is throttled."""

    def __init__(self, inner: Any, accept: int) -> None:
        self.inner = inner
        self.accept = accept

    def put_records(self, *, StreamName: str, Records: list[Any]) -> Any:  # noqa: N803
        taken = Records[: self.accept]
        self.accept -= len(taken)
        answers = []
        if taken:
            answers = self.inner.put_records(StreamName=StreamName, Records=taken)["Records"]
        throttled = {
            "ErrorCode": "ProvisionedThroughputExceededException",
            "ErrorMessage": "Rate exceeded for shard",
        }
        return {
            "FailedRecordCount": len(Records) - len(taken),
            "Records": [*answers, *[throttled] * (len(Records) - len(taken))],
        }


def test_a_message_is_kept_until_every_record_of_its_range_is_on_the_bus(aws):
    # GIVEN a failed batch of two records and a bus that takes only one more record
    world = make_world("dmsbus-rd6-")
    records = world.write_rows(2)
    message_id = world.send_failure(records)
    publish = bus.redrive_publisher(
        kinesis=ThrottlingKinesis(world.client("kinesis"), accept=1),
        s3=world.client("s3"),
        stream_name=world.bus,
        overflow_bucket=world.bucket,
        sleep=lambda _seconds: None,
    )
    # WHEN the redrive runs
    (outcome,) = world.run(publish=publish).outcomes
    # THEN the shared publisher retried and gave up; the message is kept, not deleted
    assert (outcome.status, outcome.deleted) == ("failed", False)
    assert "ProvisionedThroughputExceededException" in outcome.detail
    assert [m["MessageId"] for m in world.queue_messages()] == [message_id]
    # the first record is on the bus; the rerun, on a healthy bus, puts the batch again
    assert len(world.bus_records()) == 1
    (again,) = world.run().outcomes
    assert (again.status, again.deleted) == ("redriven", True)
    ids = [json.loads(r["Data"])["id"] for r in world.bus_records()]
    assert sorted(set(ids)) == sorted(r["eventID"] for r in records)  # consumers dedupe by id
    assert world.queue_messages() == []


def test_unknown_table_and_foreign_messages_are_kept(aws):
    world = make_world("dmsbus-rd7-")
    world.send_failure(world.write_rows(1))
    world.client("sqs").send_message(QueueUrl=world.queue_url, MessageBody='{"hello": 1}')
    report = world.run(tables={"dmsbus-rd7-other": "other"})
    assert sorted(o.status for o in report.outcomes) == ["failed", "unrecognised"]
    assert any("not the fan-in's" in o.detail and "TABLES" in o.detail
               for o in report.outcomes)
    assert len(world.queue_messages()) == 2
    assert world.bus_records() == []


def test_max_messages_stops_early(aws):
    world = make_world("dmsbus-rd8-")
    records = world.write_rows(3)
    for record in records:
        world.send_failure([record])
    report = world.run(max_messages=2)
    assert [o.status for o in report.outcomes] == ["redriven", "redriven"]
    assert len(world.bus_records()) == 2
    assert len(world.queue_messages()) == 1


# --- the command ------------------------------------------------------------------------------


def _fanin(world: World) -> str:
    iam = world.client("iam")
    role = iam.create_role(
        RoleName=f"{world.prefix}fanin",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    code = BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handlers/fanin.py", "def handler(event, context):\n    return {}\n")
    name = f"{world.prefix}fanin"
    world.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="handlers.fanin.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={
            "Variables": {
                "BUS_STREAM_NAME": world.bus,
                "OVERFLOW_BUCKET": world.bucket,
                # as KinesisBus deploys it: the prefix, no table listed
                "TABLE_PREFIX": world.prefix,
                "MAX_RECORD_BYTES": "1000000",
            }
        },
    )
    return name


def test_command_reads_the_fanin_environment_and_redrives(aws, capsys):
    # GIVEN a failed batch and the fan-in function whose environment names the environment's
    # table prefix (no table list) and the bus
    world = make_world("dmsbus-rd9-")
    world.send_failure(world.write_rows(2))
    function = _fanin(world)
    # WHEN the operator runs the command
    code = redrive.main(
        [
            "--queue-url",
            world.queue_url,
            "--function-name",
            function,
            "--region",
            REGION,
            "--wait-seconds",
            "0",
            "--json",
        ]
    )
    # THEN it exits 0, reports the redrive as JSON and the records are on the bus
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [m["status"] for m in report["messages"]] == ["redriven"]
    assert len(world.bus_records()) == 2


def test_command_with_explicit_tables_dry_run_and_expired_exit_status(aws, capsys):
    world = make_world("dmsbus-rd10-")
    world.send_failure(world.write_rows(1))
    argv = [
        "--queue-url",
        world.queue_url,
        "--tables",
        json.dumps(world.tables),
        "--stream-name",
        world.bus,
        "--region",
        REGION,
        "--wait-seconds",
        "0",
    ]
    assert redrive.main([*argv, "--dry-run"]) == 0
    assert "1 would be redriven (dry run)" in capsys.readouterr().out
    world.client("dynamodb").delete_table(TableName=world.table)
    assert redrive.main(argv) == 1
    out = capsys.readouterr().out
    assert "expired" in out and "1 expired (kept)" in out
    assert len(world.queue_messages()) == 1


def test_command_with_the_table_prefix(aws, capsys):
    # GIVEN a failed batch of a table named by the environment's prefix rule
    world = make_world("dmsbus-rd11-")
    world.send_failure(world.write_rows(2))
    argv = ["--queue-url", world.queue_url, "--stream-name", world.bus, "--region", REGION,
            "--wait-seconds", "0"]
    # WHEN the operator names another environment's prefix THEN nothing is redriven, kept
    assert redrive.main([*argv, "--table-prefix", "dmsbus-rd-"]) == 1
    assert world.bus_records() == [] and len(world.queue_messages()) == 1
    # WHEN the operator names this environment's prefix THEN the batch is on the bus
    assert redrive.main([*argv, "--table-prefix", world.prefix]) == 0
    assert [json.loads(r["Data"])["table"] for r in world.bus_records()] == ["orders"] * 2


def test_command_needs_a_table_mapping(capsys):
    assert redrive.main(["--queue-url", "https://x", "--region", REGION]) == 2
    assert "--function-name" in capsys.readouterr().err
    argv = ["--queue-url", "https://x", "--region", REGION, "--stream-name", "b"]
    assert redrive.main([*argv, "--table-prefix", "dmsbus-prod"]) == 2
    assert "--table-prefix must end in '-'" in capsys.readouterr().err
    assert redrive.main([*argv, "--tables", "[1]"]) == 2
    assert "--tables is not a JSON object" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "body is not JSON"),
        ('{"requestContext": {}}', "no DDBStreamBatchInfo"),
        ('{"DDBStreamBatchInfo": {"shardId": "s"}}', "lacks streamArn"),
    ],
)
def test_parse_rejects_what_is_not_an_on_failure_record(body, reason):
    with pytest.raises(ValueError, match=reason):
        redrive.parse_message(body)


# --- the runbook says what the command does ---------------------------------------------------

RUNBOOK = Path(__file__).resolve().parents[1] / "docs" / "runbook.md"


def _commands(text: str, program: str) -> list[str]:
    """Every command line starting with `program` in the runbook's code (blocks and inline
    spans), with backslash continuations joined."""
    code = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    outside = re.sub(r"```.*?```", "", text, flags=re.S)
    # an inline span wrapped over lines reads as one line
    code += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", outside)]
    found = []
    for chunk in code:
        joined = re.sub(r"\\\n\s*", " ", chunk)
        for line in joined.splitlines():
            for match in re.finditer(re.escape(program) + r"[^`)\n]*", line):
                found.append(" ".join(match.group(0).split()))
    return found


def test_the_runbook_redrive_commands_parse_and_every_option_and_status_is_explained():
    text = RUNBOOK.read_text()
    commands = _commands(text, "python -m tools.redrive")
    assert len(commands) >= 3, commands
    parser = redrive._parser()
    for command in commands:
        argv = shlex.split(command.replace("$DLQ_URL", "https://q").replace("${P}", "dmsbus-x-"))
        args = parser.parse_args(argv[3:])
        assert args.queue_url and (
            args.function_name or args.tables or args.table_prefix), command
    options = {o for action in parser._actions for o in action.option_strings if o.startswith("--")}
    assert {o for o in options if o != "--help"} <= set(re.findall(r"--[a-z-]+", text))
    for status in redrive.STATUSES:
        assert f"`{status}`" in text, f"the runbook does not explain status {status!r}"


#: Options the AWS CLI adds to every command.
AWS_CLI_GLOBAL = {"query", "output", "region", "profile", "no-paginate", "cli-input-json"}


def test_every_aws_cli_command_of_the_runbook_exists_with_its_options():
    """`aws <service> <command> --option` lines are checked against botocore's models: the
    operation (or waiter) exists and takes each option."""
    session = botocore.session.get_session()
    commands = _commands(RUNBOOK.read_text(), "aws ")
    assert len(commands) >= 10, commands
    for command in commands:
        service, name, *rest = command.split()[1:]
        # the AWS CLI names S3's API `s3api` (its `s3` commands are the high-level ones)
        model = session.get_service_model({"s3api": "s3"}.get(service, service))
        if name == "wait":
            waiter = session.get_waiter_model(service).get_waiter(
                {xform_name(w, "-"): w for w in session.get_waiter_model(service).waiter_names}[
                    rest[0]
                ]
            )
            operation = model.operation_model(waiter.operation)
        else:
            operations = {xform_name(op, "-"): op for op in model.operation_names}
            assert name in operations, f"{command}: no such command"
            operation = model.operation_model(operations[name])
        members = {xform_name(m, "-") for m in operation.input_shape.members}
        for option in re.findall(r"(?:^|\s)--([a-z0-9-]+)", command):
            assert option in members | AWS_CLI_GLOBAL, f"{command}: no option --{option}"


@pytest.mark.parametrize("missing", ["region", "credentials"])
def test_command_without_region_or_credentials_says_so_in_one_line(
    missing: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no region in the environment (the queue URL names it), or no credentials at all
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if missing == "region":
        monkeypatch.delenv("AWS_DEFAULT_REGION")
        monkeypatch.delenv("AWS_REGION")
    else:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                     "AWS_SECURITY_TOKEN"):
            monkeypatch.delenv(name)
    argv = ["--queue-url", "https://sqs.eu-west-1.amazonaws.com/123456789012/dmsbus-x-dlq",
            "--table-prefix", "dmsbus-x-", "--stream-name", "dmsbus-x-bus", "--dry-run"]
    if missing == "region":
        # THEN the region comes from the queue URL (moto answers in eu-west-1)
        with mock_aws():
            boto3.client("sqs", region_name=REGION).create_queue(QueueName="dmsbus-x-dlq")
            assert redrive.main(argv) == 0
        return
    # WHEN it runs without credentials THEN one line names the fix, exit 2, no traceback
    assert redrive.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "credentials" in err[0] and "Traceback" not in err[0], err


# --- bad input never tracebacks ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/dmsbus-x-fanin-dlq"
MAPPING = ["--table-prefix", "dmsbus-x-", "--stream-name", "dmsbus-x-bus"]

#: (id, argv, environment changes (None: unset), a word the one line must contain)
BAD_INPUTS: list[tuple[str, list[str], dict[str, str | None], str]] = [
    ("tables-not-an-object", ["--queue-url", QUEUE, "--tables", "[1]", "--stream-name", "b"],
     {}, "--tables"),
    ("tables-not-json", ["--queue-url", QUEUE, "--tables", "{x", "--stream-name", "b"], {},
     "--tables"),
    ("tables-not-strings", ["--queue-url", QUEUE, "--tables", '{"t": 1}', "--stream-name", "b"],
     {}, "--tables"),
    ("prefix-without-dash", ["--queue-url", QUEUE, "--table-prefix", "dmsbus-x",
                             "--stream-name", "b"], {}, "--table-prefix"),
    ("no-mapping", ["--queue-url", QUEUE], {}, "--function-name"),
    ("no-queue-url", MAPPING, {}, "--queue-url"),
    ("queue-url-not-a-url", ["--queue-url", "dmsbus-x-fanin-dlq", *MAPPING], {}, "--queue-url"),
    ("max-messages-zero", ["--queue-url", QUEUE, *MAPPING, "--max-messages", "0"], {},
     "--max-messages"),
    ("wait-seconds-too-long", ["--queue-url", QUEUE, *MAPPING, "--wait-seconds", "30"], {},
     "--wait-seconds"),
    ("unknown-option", ["--queue-url", QUEUE, *MAPPING, "--tabels", "{}"], {}, "--tabels"),
    ("no-region", ["--queue-url", "https://queue.example/123456789012/q", *MAPPING],
     {"AWS_REGION": None, "AWS_DEFAULT_REGION": None}, "--region"),
    ("no-credentials", ["--queue-url", QUEUE, *MAPPING],
     {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None,
      "AWS_SECURITY_TOKEN": None}, "credentials"),
    ("unreachable-endpoint", ["--queue-url", QUEUE, *MAPPING, "--wait-seconds", "0"],
     {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "cannot reach"),
]


def _isolated_env(changes: dict[str, str | None]) -> dict[str, str]:
    """The test's environment (fake credentials, conftest) without any AWS config file or
    instance metadata, with `changes` applied."""
    env = {**os.environ, "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"}
    for name, value in changes.items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    return env


@pytest.mark.parametrize(("argv", "changes", "word"),
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_as_a_process(
    argv: list[str], changes: dict[str, str | None], word: str
) -> None:
    # WHEN the command runs as an operator runs it, with one thing wrong
    done = subprocess.run([sys.executable, "-m", "tools.redrive", *argv], cwd=ROOT,
                          env=_isolated_env(changes), capture_output=True, text=True,
                          timeout=120, check=False)
    # THEN exit 2 and one line on stderr naming what to fix, no traceback
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, lines
    assert "Traceback" not in done.stderr and word in lines[0], lines
    assert lines[0].startswith("error: ")


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_an_unknown_queue_is_one_line(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/dmsbus-x-no-such-dlq"
    assert redrive.main(["--queue-url", url, *MAPPING, "--wait-seconds", "0"]) == 2
    assert "no such queue: check --queue-url" in _one_line(capsys)


def test_an_unknown_function_is_one_line(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    world = make_world("dmsbus-rd12-")
    argv = ["--queue-url", world.queue_url, "--function-name", "dmsbus-rd12-nofanin"]
    assert redrive.main(argv) == 2
    assert "no such function: check --function-name" in _one_line(capsys)


class DeniedStreams:
    """A DynamoDB Streams client whose caller lacks dynamodb:GetShardIterator."""

    def get_shard_iterator(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                          "GetShardIterator")


def test_an_error_half_way_leaves_no_message_invisible(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN three failed batches in the DLQ, and a caller not allowed to read the stream
    world = make_world("dmsbus-rd13-")
    records = world.write_rows(3)
    ids = sorted(world.send_failure([r]) for r in records)
    real = boto3.session.Session.client

    def client(self: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        return DeniedStreams() if service == "dynamodbstreams" else real(
            self, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", client)
    # WHEN the command runs THEN one line, exit 2
    argv = ["--queue-url", world.queue_url, "--tables", json.dumps(world.tables),
            "--stream-name", world.bus, "--wait-seconds", "0"]
    assert redrive.main(argv) == 2
    assert "access denied" in _one_line(capsys)
    # AND every message it received is visible again at once (not after 15 minutes)
    assert sorted(m["MessageId"] for m in world.queue_messages()) == ids
    assert world.bus_records() == []
