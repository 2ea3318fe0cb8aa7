"""Fan-in handler against moto: real DynamoDB stream records in, envelopes read back from Kinesis.

Every test GIVEN a moto table with a NEW_AND_OLD_IMAGES stream, WHEN rows are written and the
stream records (read back with `dynamodbstreams.get_records`, turned into the JSON form Lambda
delivers) are handed to `handlers.fanin.handler`, THEN what lands on moto's Kinesis bus is
checked: every envelope validates against ../shared/envelope.schema.json, values are mapped
exactly, per-row order holds (also when PutRecords fails some entries), and nothing is lost:
every change is on the bus at least once or reported in `batchItemFailures`.

Kinesis faults are injected by `FaultyKinesis`, a wrapping client that rejects chosen entries
(the rest of the call really goes to moto, in order, as Kinesis does) or fails whole calls.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from dms_event_bus.handlers import bus, fanin
from dms_event_bus.settings.base import ENV_NAME_PATTERN, LOGICAL_NAME_PATTERN
from tests.conftest import SHARED
from tools.localpipe import aws as aws_world
from tools.localpipe.aws import MotoWorld
from tools.localpipe.esm import StreamMapping
from tools.localpipe.lambda_events import to_lambda_record

SCHEMA = json.loads((SHARED / "envelope.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3})?Z").fullmatch
REGION = aws_world.REGION
BIG = "12345678901234567890123456789012345678"  # 38 digits
BIG_NEG_FRACTION = "-0.00000000000000000000000000000000000012345678901234567890123456789012345678"
BIG_EXP = "9.9999999999999999999999999999999999999E+125"


# --------------------------------------------------------------------------------- helpers


def loads(data: bytes | str) -> Any:
    """JSON with exact numbers."""
    return json.loads(data, parse_float=Decimal, parse_int=Decimal)


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def to_lambda(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A boto3 get_records record as the JSON Lambda delivers."""
    return to_lambda_record(record, stream_arn, REGION)


def expected_value(av: dict[str, Any]) -> Any:
    """The envelope value of a boto3-form attribute value, written independently of
    handlers.envelope (numbers as Decimal, binary base64, sets as arrays in stored order)."""
    ((kind, value),) = av.items()
    if kind == "S":
        return value
    if kind == "N":
        return Decimal(value)
    if kind == "B":
        return b64(bytes(value))
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "SS":
        return list(value)
    if kind == "NS":
        return [Decimal(n) for n in value]
    if kind == "BS":
        return [b64(bytes(v)) for v in value]
    if kind == "L":
        return [expected_value(v) for v in value]
    if kind == "M":
        return {k: expected_value(v) for k, v in value.items()}
    raise AssertionError(kind)


def expected_image(item: dict[str, Any]) -> dict[str, Any]:
    return {k: expected_value(v) for k, v in item.items()}


def row_of(keys: dict[str, Any]) -> str:
    return json.dumps(keys, sort_keys=True, default=str)


def consumer_state(envelopes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The consumer rule of docs/bus.md, applied by the consumer kit (`consumer.Replica`):
    live rows per table, keyed by `row_of(keys)`."""
    from dms_event_bus.consumer import Replica, row_key

    replica = Replica()
    keys_of: dict[tuple[str, str], dict[str, Any]] = {}
    for env in envelopes:
        replica.apply(env)
        keys_of[(env["table"], row_key(env["keys"]))] = env["keys"]
    return {table: {row_of(keys_of[(table, k)]): row for k, row in replica.live(table).items()}
            for table in replica.rows if replica.live(table)}


class FaultyKinesis:
    """Wraps moto's Kinesis client: counts PutRecords calls, checks the service limits, and
    injects faults. `reject(call_no, entry) -> error code or None` rejects single entries
    (the others really go to moto in one call, in order, as Kinesis does); `fail_call(call_no)
    -> exception or None` fails a whole call."""

    def __init__(
        self,
        real: Any,
        reject: Callable[[int, dict[str, Any]], str | None] | None = None,
        fail_call: Callable[[int], Exception | None] | None = None,
    ) -> None:
        self.real = real
        self.reject = reject
        self.fail_call = fail_call
        self.calls: list[list[dict[str, Any]]] = []
        self.rejected: list[dict[str, Any]] = []

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> Any:  # noqa: N803
        call_no = len(self.calls)
        self.calls.append(Records)
        assert 1 <= len(Records) <= bus.MAX_RECORDS_PER_CALL
        size = sum(len(r["Data"]) + len(r["PartitionKey"].encode()) for r in Records)
        assert size <= bus.MAX_BYTES_PER_CALL
        if self.fail_call is not None:
            error = self.fail_call(call_no)
            if error is not None:
                raise error
        codes = [self.reject(call_no, r) if self.reject else None for r in Records]
        accepted = [r for r, code in zip(Records, codes, strict=True) if code is None]
        answers = iter(
            self.real.put_records(StreamName=StreamName, Records=accepted)["Records"]
            if accepted
            else []
        )
        out = []
        for record, code in zip(Records, codes, strict=True):
            if code is None:
                out.append(next(answers))
            else:
                self.rejected.append(record)
                message = "Rate exceeded for shard" if "Throughput" in code else "Internal error"
                out.append({"ErrorCode": code, "ErrorMessage": message})
        return {"FailedRecordCount": len(Records) - len(accepted), "Records": out}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def event_id_of(entry: dict[str, Any]) -> str:
    return str(loads(entry["Data"])["id"])


def throttling(code: str = "ProvisionedThroughputExceededException") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "Rate exceeded"}}, "PutRecords")


class Context:
    def __init__(self, millis: int = 60_000) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


class World:
    """moto DynamoDB + Streams + Kinesis + S3, the fan-in's env and clients."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.suffix = uuid.uuid4().hex[:8]
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.streams = boto3.client("dynamodbstreams", region_name=REGION)
        self.kinesis = boto3.client("kinesis", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.bus_name = f"bus-{self.suffix}"
        self.bucket = f"overflow-{self.suffix}"
        self.kinesis.create_stream(StreamName=self.bus_name, ShardCount=2)
        self.s3.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        self.tables: dict[str, str] = {}  # physical -> logical
        self.arns: dict[str, str] = {}  # logical -> stream ARN
        self.physical: dict[str, str] = {}  # logical -> physical
        self.positions: dict[str, str] = {}  # shard iterator continuation per logical table
        self.client: Any = self.kinesis
        self.delays: list[float] = []  # backoff caps drawn by handlers.bus (see Jitter)
        self.configure()

    def configure(self, **extra: str | None) -> None:
        env = {
            "BUS_STREAM_NAME": self.bus_name,
            "OVERFLOW_BUCKET": self.bucket,
            "TABLES": json.dumps(self.tables),
            "MAX_RECORD_BYTES": None,
            "MAX_PUT_ATTEMPTS": None,
            "TABLE_PREFIX": None,
            **extra,
        }
        for name, value in env.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)
        self.monkeypatch.setattr(fanin, "_clients", {"kinesis": self.client, "s3": self.s3})

    def use(self, client: Any) -> Any:
        self.client = client
        self.monkeypatch.setattr(fanin, "_clients", {"kinesis": client, "s3": self.s3})
        return client

    def table(
        self, logical: str, keys: list[tuple[str, str]], *, physical: str | None = None
    ) -> str:
        """A table with its stream; named `physical` (then found by the fan-in's prefix rule,
        not listed in TABLES) or, by default, by a name off the rule (listed in TABLES)."""
        by_rule = physical is not None
        physical = physical or f"dmsbus-test-{logical}-{self.suffix}"
        schema = [{"AttributeName": keys[0][0], "KeyType": "HASH"}]
        if len(keys) > 1:
            schema.append({"AttributeName": keys[1][0], "KeyType": "RANGE"})
        out = self.ddb.create_table(
            TableName=physical,
            KeySchema=schema,
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in keys],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        if not by_rule:
            self.tables[physical] = logical
            self.monkeypatch.setenv("TABLES", json.dumps(self.tables))
        self.physical[logical] = physical
        self.arns[logical] = out["TableDescription"]["LatestStreamArn"]
        return physical

    def put(self, logical: str, item: dict[str, Any]) -> None:
        self.ddb.put_item(TableName=self.physical[logical], Item=item)

    def delete(self, logical: str, key: dict[str, Any]) -> None:
        self.ddb.delete_item(TableName=self.physical[logical], Key=key)

    def records(self, logical: str) -> list[dict[str, Any]]:
        """New stream records of the table (real ones, from moto), in Lambda's form."""
        arn = self.arns[logical]
        shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        out = []
        for shard in shards:
            position = f"{logical}/{shard['ShardId']}"
            iterator = self.positions.get(position) or self.streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while True:
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                out += [to_lambda(r, arn) for r in page["Records"]]
                iterator = page["NextShardIterator"]
                if not page["Records"]:
                    break
            self.positions[position] = iterator
        return out

    def invoke(self, records: list[dict[str, Any]], context: Any = None) -> dict[str, Any]:
        return fanin.handler({"Records": records}, context or Context())

    def deliver(self, records: list[dict[str, Any]], limit: int = 10) -> int:
        """Lambda's checkpointing: invoke, then retry from the reported record until the batch
        is done. Returns the number of invocations."""
        for attempt in range(1, limit + 1):
            failures = self.invoke(records)["batchItemFailures"]
            if not failures:
                return attempt
            seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
            records = records[seqs.index(failures[0]["itemIdentifier"]):]
        raise AssertionError(f"batch not done after {limit} invocations")

    def bus_records(self) -> list[tuple[str, str, bytes]]:
        """(shard, partition key, data) of every record on the bus, in shard order."""
        out = []
        for shard in self.kinesis.list_shards(StreamName=self.bus_name)["Shards"]:
            iterator = self.kinesis.get_shard_iterator(
                StreamName=self.bus_name, ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
            while iterator:
                page = self.kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                if not page["Records"]:
                    break
                out += [(shard["ShardId"], r["PartitionKey"], r["Data"]) for r in page["Records"]]
                iterator = page.get("NextShardIterator")
        return out

    def envelopes(self) -> list[dict[str, Any]]:
        """Every envelope on the bus, validated against the schema; overflow pointers resolved."""
        out = []
        for _shard, pkey, data in self.bus_records():
            env = loads(data)
            check_envelope(env)
            assert pkey == f"{env['table']}|{canonical(env['keys'])}"
            if "overflow" in env:
                env = self.fetch(env["overflow"])
                check_envelope(env)
            out.append(env)
        return out

    def fetch(self, uri: str) -> dict[str, Any]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        body: dict[str, Any] = loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return body

    def table_state(self, logical: str) -> dict[str, dict[str, Any]]:
        items = self.ddb.scan(TableName=self.physical[logical])["Items"]
        key_names = [k["AttributeName"] for k in self.ddb.describe_table(
            TableName=self.physical[logical])["Table"]["KeySchema"]]
        return {
            row_of({k: expected_value(item[k]) for k in key_names}): expected_image(item)
            for item in items
        }


def canonical(keys: dict[str, Any]) -> str:
    """Canonical keys JSON, written independently: names sorted, no spaces, exact numbers."""
    parts = []
    for name in sorted(keys):
        value = keys[name]
        text = str(value) if isinstance(value, Decimal) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{json.dumps(name, ensure_ascii=False)}:{text}")
    return "{" + ",".join(parts) + "}"


def check_envelope(env: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(json.loads(json.dumps(env, default=float))), key=str)
    assert not errors, [e.message for e in errors]
    assert ISO_UTC(env["ts"]), env["ts"]
    assert datetime.fromisoformat(env["ts"]).tzinfo is not None


def emf_lines(text: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def log_lines(text: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" not in line]


class Jitter:
    """Stands in for `random` in handlers.bus: records each backoff cap, draws 0 (no wait)."""

    def __init__(self) -> None:
        self.caps: list[float] = []

    def uniform(self, low: float, high: float) -> float:
        assert low == 0
        self.caps.append(high)
        return 0.0


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, moto_world: MotoWorld) -> World:
    jitter = Jitter()
    monkeypatch.setattr(bus, "random", jitter)
    w = World(monkeypatch)
    w.delays = jitter.caps
    return w


def orders_table(world: World) -> str:
    return world.table("orders", [("tenant", "S"), ("order_id", "N")])


def order(tenant: str, order_id: str, version: int, **extra: Any) -> dict[str, Any]:
    return {
        "tenant": {"S": tenant},
        "order_id": {"N": order_id},
        "version": {"N": str(version)},
        "status": {"S": f"v{version}"},
        **extra,
    }


def write_history(world: World, rows: int = 4, versions: int = 3) -> None:
    """INSERT, MODIFYs and a REMOVE over several rows, interleaved."""
    for version in range(1, versions + 1):
        for row in range(rows):
            world.put("orders", order("t1", f"{BIG[:-2]}{row:02d}", version))
    world.delete("orders", {"tenant": {"S": "t1"}, "order_id": {"N": f"{BIG[:-2]}00"}})


# ------------------------------------------------------------------------ value mapping


def test_insert_modify_remove_map_every_type_exactly(world: World) -> None:
    # GIVEN a row holding every DynamoDB type, 38-digit numbers among them
    orders_table(world)
    item: dict[str, Any] = {
        "tenant": {"S": "Grüße \"t\"\n✓"},
        "order_id": {"N": BIG},
        "amount": {"N": "1234567890123456789.0123456789012345678"},
        "tiny": {"N": BIG_NEG_FRACTION},
        "huge": {"N": BIG_EXP},
        "trailing": {"N": "1.50"},
        "blob": {"B": b"\x00\xff\x10binary"},
        "flag": {"BOOL": True},
        "off": {"BOOL": False},
        "nothing": {"NULL": True},
        "tags": {"SS": ["b2b", "vip"]},
        "lucky": {"NS": ["7", BIG, "-3.25"]},
        "blobs": {"BS": [b"\x01", b"\x02\x03"]},
        "nested": {
            "M": {
                "list": {"L": [{"N": BIG}, {"S": "x"}, {"M": {"deep": {"BOOL": False}}},
                               {"L": []}, {"NULL": True}]},
                "empty": {"M": {}},
            }
        },
    }
    world.put("orders", item)
    key = {"tenant": item["tenant"], "order_id": item["order_id"]}
    world.ddb.update_item(
        TableName=world.physical["orders"], Key=key,
        UpdateExpression="SET amount = :a", ExpressionAttributeValues={":a": {"N": "-" + BIG}},
    )
    world.delete("orders", key)
    records = world.records("orders")
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]

    # WHEN the real stream records go through the handler
    assert world.invoke(records) == {"batchItemFailures": []}

    # THEN three valid envelopes carry exactly the stored values
    raw = world.bus_records()
    assert len(raw) == 3
    assert len({shard for shard, _, _ in raw}) == 1  # one row -> one shard
    data = [d for _, _, d in raw]
    insert, update, delete = (loads(d) for d in data)
    for env in (insert, update, delete):
        check_envelope(env)
    for text in data:  # numbers byte for byte: never through a float
        assert f'"order_id":{BIG}'.encode() in text
    assert b'"amount":1234567890123456789.0123456789012345678' in data[0]
    assert f'"tiny":{BIG_NEG_FRACTION}'.encode() in data[0]
    assert f'"huge":{BIG_EXP}'.encode() in data[0]
    assert b'"trailing":1.50' in data[0]
    assert f'"amount":-{BIG}'.encode() in data[1]
    assert f'"lucky":[7,{BIG},-3.25]'.encode() in data[0]
    assert f'"list":[{BIG},"x",{{"deep":false}},[],null]'.encode() in data[0]

    expected = expected_image(item)
    assert insert["op"] == "insert" and insert["old"] is None
    assert insert["new"] == expected
    assert insert["new"]["blob"] == b64(b"\x00\xff\x10binary")
    assert insert["new"]["blobs"] == [b64(b"\x01"), b64(b"\x02\x03")]
    assert insert["new"]["tags"] == ["b2b", "vip"]
    assert insert["new"]["flag"] is True and insert["new"]["off"] is False
    assert insert["new"]["nothing"] is None
    assert insert["new"]["nested"]["empty"] == {}
    assert update["op"] == "update"
    assert update["old"] == expected
    assert update["new"] == {**expected, "amount": Decimal("-" + BIG)}
    assert delete["op"] == "delete" and delete["new"] is None
    assert delete["old"] == {**expected, "amount": Decimal("-" + BIG)}
    for env, record in zip((insert, update, delete), records, strict=True):
        assert env["v"] == 1
        assert env["id"] == record["eventID"]
        assert env["seq"] == record["dynamodb"]["SequenceNumber"]
        assert env["table"] == "orders"
        assert env["source"] == {"table": world.physical["orders"]}
        assert env["keys"] == {"tenant": item["tenant"]["S"], "order_id": Decimal(BIG)}
        when = datetime.fromtimestamp(record["dynamodb"]["ApproximateCreationDateTime"], UTC)
        assert env["ts"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")

    # the partition key is <table>|<canonical keys JSON>: names sorted, no spaces
    pkey = raw[0][1]
    assert pkey == 'orders|{"order_id":' + BIG + ',"tenant":"Grüße \\"t\\"\\n✓"}'
    assert {p for _, p, _ in raw} == {pkey}


def test_binary_keys_are_base64_in_keys_and_partition_key(world: World) -> None:
    world.table("blobs", [("id", "B")])
    blob = b"\xde\xad\xbe\xef"
    world.put("blobs", {"id": {"B": blob}, "n": {"N": "1"}})
    (record,) = world.records("blobs")
    # moto 5.2 base64-encodes binary key values in a stream record's Keys once too often
    # (its NewImage is right); real DynamoDB Streams send the key as in the image
    assert record["dynamodb"]["Keys"]["id"]["B"] == b64(b64(blob).encode())
    record["dynamodb"]["Keys"] = {"id": record["dynamodb"]["NewImage"]["id"]}
    assert world.invoke([record]) == {"batchItemFailures": []}
    ((_, pkey, data),) = world.bus_records()
    env = loads(data)
    check_envelope(env)
    assert env["keys"] == {"id": b64(blob)}
    assert pkey == f'blobs|{{"id":"{b64(blob)}"}}'


# --------------------------------------------------------------------- calls and packing


def test_puts_in_the_minimum_number_of_calls_by_count(world: World) -> None:
    # GIVEN 1,001 changes (the record limit allows 500 per call: 3 calls at least)
    orders_table(world)
    for i in range(1001):
        world.put("orders", order("t1", str(i), 1))
    records = world.records("orders")
    assert len(records) == 1001
    counting = world.use(FaultyKinesis(world.kinesis))

    # WHEN the handler publishes them
    assert world.invoke(records) == {"batchItemFailures": []}

    # THEN 3 calls, all within the limits, every change once
    assert [len(c) for c in counting.calls] == [500, 500, 1]
    envelopes = world.envelopes()
    assert sorted(e["id"] for e in envelopes) == sorted(r["eventID"] for r in records)


def test_puts_in_the_minimum_number_of_calls_by_bytes(world: World) -> None:
    # GIVEN 8 INSERTs (~300 KB envelopes) and 8 MODIFYs (~600 KB: old and new image) of
    # large rows: 7.2 MB, over the 5 MiB a call may carry -> 2 calls at least
    orders_table(world)
    for version in (1, 2):
        for i in range(8):
            world.put("orders", order("t1", str(i), version, payload={"S": f"{version}" * 300_000}))
    records = world.records("orders")
    assert [r["eventName"] for r in records] == ["INSERT"] * 8 + ["MODIFY"] * 8
    counting = world.use(FaultyKinesis(world.kinesis))

    # WHEN the handler publishes them
    assert world.invoke(records) == {"batchItemFailures": []}

    # THEN as few calls as the byte limit allows, each within it, every change once
    sizes = [
        sum(len(r["Data"]) + len(r["PartitionKey"].encode()) for r in call)
        for call in counting.calls
    ]
    minimum = max(
        math.ceil(len(records) / bus.MAX_RECORDS_PER_CALL),
        math.ceil(sum(sizes) / bus.MAX_BYTES_PER_CALL),
    )
    assert len(counting.calls) == minimum == 2
    assert all(size <= bus.MAX_BYTES_PER_CALL for size in sizes)
    assert sorted(e["id"] for e in world.envelopes()) == sorted(r["eventID"] for r in records)


# ---------------------------------------------------------------------- per-row order


def rows_on_bus(world: World) -> dict[str, list[dict[str, Any]]]:
    """Envelopes per partition key, in the order a shard reader sees them."""
    out: dict[str, list[dict[str, Any]]] = {}
    for _shard, pkey, data in world.bus_records():
        env = loads(data)
        check_envelope(env)
        out.setdefault(pkey, []).append(env)
    return out


def test_later_change_never_stays_ahead_of_an_earlier_failed_one(world: World) -> None:
    # GIVEN three versions of each of four rows (and one delete) in one batch, and a bus that
    # rejects the FIRST change of row 01 in the first call while later changes of that row
    # in the same call succeed
    orders_table(world)
    write_history(world)
    records = world.records("orders")
    row01 = [r for r in records if r["dynamodb"]["Keys"]["order_id"]["N"].endswith("01")]
    victim = row01[0]["eventID"]
    faulty = world.use(FaultyKinesis(
        world.kinesis,
        reject=lambda call, entry: "InternalFailure"
        if call == 0 and event_id_of(entry) == victim else None,
    ))

    # WHEN the handler publishes the batch
    assert world.invoke(records) == {"batchItemFailures": []}

    # THEN the first call carried all changes in order, the failed change was resent, and
    # every later change of that row after it: the row's last envelope is its latest change
    assert len(faulty.calls) == 2
    assert [event_id_of(e) for e in faulty.calls[0]] == [r["eventID"] for r in records]
    assert [event_id_of(e) for e in faulty.calls[1]] == [r["eventID"] for r in row01]
    per_row = rows_on_bus(world)
    key01 = {"order_id": Decimal(row01[0]["dynamodb"]["Keys"]["order_id"]["N"]), "tenant": "t1"}
    pkey01 = "orders|" + canonical(key01)
    assert [e["id"] for e in per_row[pkey01]] == [r["eventID"] for r in row01[1:] + row01]
    for envelopes in per_row.values():
        last = envelopes[-1]
        assert int(last["seq"]) == max(int(e["seq"]) for e in envelopes)
    # and a consumer following the rule (dedupe on id, drop lower seq) ends at the table
    assert consumer_state(world.envelopes()).get("orders", {}) == world.table_state("orders")
    # the resent later changes are duplicates: same id, same bytes
    raw: dict[str, set[bytes]] = {}
    for _shard, _pkey, data in world.bus_records():
        raw.setdefault(loads(data)["id"], set()).add(data)
    assert sum(1 for _ in world.bus_records()) == len(records) - 1 + len(row01)
    assert all(len(versions) == 1 for versions in raw.values())


def test_a_resent_later_change_that_fails_again_is_resent_after_the_earlier_one(
    world: World,
) -> None:
    # GIVEN a row whose first change fails in call 0 and whose second change (resent after
    # it) fails in call 1 while the first lands
    orders_table(world)
    write_history(world, rows=1, versions=3)
    records = world.records("orders")
    first, second = records[0]["eventID"], records[1]["eventID"]
    plan = {(0, first), (1, second)}
    faulty = world.use(FaultyKinesis(
        world.kinesis,
        reject=lambda call, entry: "ProvisionedThroughputExceededException"
        if (call, event_id_of(entry)) in plan else None,
    ))

    assert world.invoke(records) == {"batchItemFailures": []}

    # THEN each call resends the failed entry and every later change of its row behind it
    assert [[event_id_of(e) for e in call] for call in faulty.calls] == [
        [r["eventID"] for r in records],
        [r["eventID"] for r in records],
        [r["eventID"] for r in records[1:]],
    ]
    (envelopes,) = rows_on_bus(world).values()
    assert envelopes[-1]["id"] == records[-1]["eventID"]
    assert consumer_state(world.envelopes()).get("orders", {}) == world.table_state("orders")


# ---------------------------------------------------------------------- partial failures


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "InternalFailure"])
def test_injected_partial_failures_lose_nothing(world: World, code: str) -> None:
    # GIVEN 60 changes over 12 rows and a bus rejecting a random third of the entries of
    # every call (seeded), for a handler allowed 3 attempts per chunk
    orders_table(world)
    for version in range(1, 6):
        for row in range(12):
            world.put("orders", order("t1", str(row), version))
    for row in range(0, 12, 3):
        world.delete("orders", {"tenant": {"S": "t1"}, "order_id": {"N": str(row)}})
    records = world.records("orders")
    rng = random.Random(2)
    world.configure(MAX_PUT_ATTEMPTS="3")
    world.use(FaultyKinesis(
        world.kinesis, reject=lambda _c, _e: code if rng.random() < 0.34 else None
    ))
    all_ids = {r["eventID"] for r in records}

    # WHEN Lambda delivers the batch, retrying from each reported record (checkpointing)
    first = world.invoke(records)

    # THEN the first invocation reports the earliest record not on the bus (this seed makes
    # some entry fail 3 times), and every record before it is on the bus
    (failure,) = first["batchItemFailures"]
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    reported = seqs.index(failure["itemIdentifier"])
    on_bus = {e["id"] for e in world.envelopes()}
    assert {r["eventID"] for r in records[:reported]} <= on_bus
    assert records[reported]["eventID"] not in on_bus

    # WHEN Lambda retries from the reported record until the batch is done (checkpointing)
    world.deliver(records[reported:])

    # AND in the end every change is on the bus at least once; duplicates are byte-identical
    raw: dict[str, set[bytes]] = {}
    for _shard, _pkey, data in world.bus_records():
        raw.setdefault(loads(data)["id"], set()).add(data)
    assert set(raw) == all_ids
    assert all(len(versions) == 1 for versions in raw.values())
    # per-row order: each row's last envelope is its latest change, consumer = table
    for envelopes in rows_on_bus(world).values():
        assert int(envelopes[-1]["seq"]) == max(int(e["seq"]) for e in envelopes)
    assert consumer_state(world.envelopes()).get("orders", {}) == world.table_state("orders")


def test_whole_call_failure_is_retried(world: World) -> None:
    # GIVEN a bus whose first PutRecords call fails as a whole (throttled), then a network error
    orders_table(world)
    write_history(world)
    records = world.records("orders")
    errors = {0: throttling(), 1: EndpointConnectionError(endpoint_url="https://kinesis")}
    faulty = world.use(FaultyKinesis(world.kinesis, fail_call=errors.get))

    assert world.invoke(records) == {"batchItemFailures": []}

    # THEN the chunk was sent three times and landed once, in order
    assert len(faulty.calls) == 3
    assert all(len(call) == len(records) for call in faulty.calls)
    assert sorted(e["id"] for e in world.envelopes()) == sorted(r["eventID"] for r in records)
    assert len(world.bus_records()) == len(records)
    assert consumer_state(world.envelopes()).get("orders", {}) == world.table_state("orders")


def test_retries_are_bounded_with_backoff_and_report_the_earliest_failure(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a bus that always rejects two changes (records 3 and 7) and 4 attempts allowed
    orders_table(world)
    write_history(world)
    records = world.records("orders")
    bad = {records[3]["eventID"], records[7]["eventID"]}
    world.configure(MAX_PUT_ATTEMPTS="4")
    faulty = world.use(FaultyKinesis(
        world.kinesis,
        reject=lambda _c, entry: "InternalFailure" if event_id_of(entry) in bad else None,
    ))

    # WHEN the handler runs
    response = world.invoke(records)

    # THEN exactly 4 attempts, backoff caps doubling (full jitter draws from [0, cap])
    assert len(faulty.calls) == 4
    assert world.delays == [0.1, 0.2, 0.4]
    # the earliest failed record is reported; everything before it is on the bus
    assert response == {
        "batchItemFailures": [{"itemIdentifier": records[3]["dynamodb"]["SequenceNumber"]}]
    }
    on_bus = {e["id"] for e in world.envelopes()}
    assert {r["eventID"] for r in records[:3]} <= on_bus
    assert not bad & on_bus
    warning = [line for line in log_lines(capsys.readouterr().out) if line["level"] == "warning"]
    assert warning and "InternalFailure" in warning[0]["reason"]
    assert warning[0]["sequenceNumber"] == records[3]["dynamodb"]["SequenceNumber"]

    # AND when Lambda retries from there with the bus healthy again, nothing is skipped
    world.use(world.kinesis)
    assert world.invoke(records[3:]) == {"batchItemFailures": []}
    assert {e["id"] for e in world.envelopes()} == {r["eventID"] for r in records}
    assert consumer_state(world.envelopes()).get("orders", {}) == world.table_state("orders")


def test_failure_in_a_later_chunk_reports_it_and_sends_no_chunk_after_it(world: World) -> None:
    # GIVEN 36 large changes (3 calls by bytes) and a bus that always rejects record 15
    orders_table(world)
    for i in range(36):
        world.put("orders", order("t1", str(i), 1, payload={"S": "x" * 380_000}))
    records = world.records("orders")
    victim = records[15]["eventID"]
    world.configure(MAX_PUT_ATTEMPTS="2")
    faulty = world.use(FaultyKinesis(
        world.kinesis,
        reject=lambda _c, entry: "InternalFailure" if event_id_of(entry) == victim else None,
    ))

    response = world.invoke(records)

    # THEN chunk 1 landed, chunk 2 was tried twice, chunk 3 was never sent
    assert response["batchItemFailures"] == [
        {"itemIdentifier": records[15]["dynamodb"]["SequenceNumber"]}
    ]
    first_chunk = len(faulty.calls[0])
    assert first_chunk <= 15 < first_chunk + len(faulty.calls[1])
    assert len(faulty.calls) == 3
    sent = {event_id_of(e) for call in faulty.calls for e in call}
    last_sent = max(i for i, r in enumerate(records) if r["eventID"] in sent)
    assert last_sent < len(records) - 1
    on_bus = {e["id"] for e in world.envelopes()}
    assert {r["eventID"] for r in records[:15]} <= on_bus


def test_time_running_out_stops_retrying_and_reports(world: World) -> None:
    # GIVEN a bus rejecting record 2, and a Lambda with ~no time left beyond its reserve
    orders_table(world)
    write_history(world)
    records = world.records("orders")
    faulty = world.use(FaultyKinesis(
        world.kinesis,
        reject=lambda _c, entry: "InternalFailure"
        if event_id_of(entry) == records[2]["eventID"] else None,
    ))

    response = world.invoke(records, Context(millis=int(fanin.RESERVE_SECONDS * 1000)))

    # THEN no retry is attempted (it could not finish) and record 2 is reported
    assert len(faulty.calls) == 1
    assert response["batchItemFailures"] == [
        {"itemIdentifier": records[2]["dynamodb"]["SequenceNumber"]}
    ]


# ----------------------------------------------------------------------------- overflow


def big_row(world: World) -> dict[str, Any]:
    # a 390 KB binary (the 400 KB item limit): base64 in both images -> over 1 MB of envelope
    item = order("t1", BIG, 1, blob={"B": bytes(range(256)) * 1500})
    world.put("orders", item)
    item2 = order("t1", BIG, 2, blob={"B": bytes(reversed(range(256))) * 1500})
    world.put("orders", item2)
    return item2


def test_an_oversized_change_goes_through_the_overflow_bucket(world: World) -> None:
    # GIVEN a small change, then a MODIFY of a near-400 KB binary row (> 1 MB as an envelope)
    orders_table(world)
    world.put("orders", order("t1", "1", 1))
    item = big_row(world)
    records = world.records("orders")
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT", "MODIFY"]

    assert world.invoke(records) == {"batchItemFailures": []}

    # THEN the MODIFY is a valid pointer envelope on the bus: same id/op/keys/seq, no images
    raw = [loads(d) for _, _, d in world.bus_records()]
    pointers = [e for e in raw if "overflow" in e]
    assert len(raw) == 3
    (pointer,) = [e for e in pointers if e["op"] == "update"]
    check_envelope(pointer)
    assert pointer["id"] == records[2]["eventID"]
    assert pointer["seq"] == records[2]["dynamodb"]["SequenceNumber"]
    assert pointer["keys"] == {"tenant": "t1", "order_id": Decimal(BIG)}
    assert pointer["old"] is None and pointer["new"] is None
    assert pointer["overflow"].startswith(f"s3://{world.bucket}/overflow/orders/")
    # AND the S3 object is the full envelope, valid, with the exact images
    full = world.fetch(pointer["overflow"])
    check_envelope(full)
    assert "overflow" not in full
    assert {k: v for k, v in full.items() if k not in {"old", "new"}} == {
        k: v for k, v in pointer.items() if k not in {"old", "new", "overflow"}
    }
    assert full["new"] == expected_image(item)
    assert full["new"]["blob"] == b64(bytes(reversed(range(256))) * 1500)
    assert full["old"]["blob"] == b64(bytes(range(256)) * 1500)
    assert consumer_state(world.envelopes()).get("orders", {}) == world.table_state("orders")


def test_an_oversized_change_without_overflow_bucket_is_reported_not_dropped(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    orders_table(world)
    world.put("orders", order("t1", "1", 1))
    big_row(world)
    records = world.records("orders")
    world.configure(OVERFLOW_BUCKET=None)

    response = world.invoke(records)

    assert response == {
        "batchItemFailures": [{"itemIdentifier": records[2]["dynamodb"]["SequenceNumber"]}]
    }
    assert sorted(e["id"] for e in world.envelopes()) == sorted(
        r["eventID"] for r in records[:2]
    )
    (warning,) = [line for line in log_lines(capsys.readouterr().out) if line["level"] == "warning"]
    assert "OVERFLOW_BUCKET" in warning["reason"]


def test_max_record_bytes_from_config_sends_smaller_changes_to_overflow(world: World) -> None:
    orders_table(world)
    world.put("orders", order("t1", "1", 1, note={"S": "n" * 5000}))
    world.put("orders", order("t1", "2", 1))
    records = world.records("orders")
    world.configure(MAX_RECORD_BYTES="4000")

    assert world.invoke(records) == {"batchItemFailures": []}

    raw = {loads(d)["id"]: loads(d) for _, _, d in world.bus_records()}
    assert "overflow" in raw[records[0]["eventID"]]
    assert "overflow" not in raw[records[1]["eventID"]]
    assert world.fetch(raw[records[0]["eventID"]]["overflow"])["new"]["note"] == "n" * 5000


# ----------------------------------------------------------------- poison, config, logs


def test_poison_record_stops_the_batch_at_it(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN five real records, the fourth carrying a malformed number
    orders_table(world)
    for i in range(5):
        world.put("orders", order("t1", str(i), 1))
    records = world.records("orders")
    records[3]["dynamodb"]["NewImage"]["version"] = {"N": "12abc"}

    response = world.invoke(records)

    # THEN the three before it are on the bus, it is reported, none after it is put
    assert response == {
        "batchItemFailures": [{"itemIdentifier": records[3]["dynamodb"]["SequenceNumber"]}]
    }
    assert sorted(e["id"] for e in world.envelopes()) == sorted(r["eventID"] for r in records[:3])
    out = capsys.readouterr().out
    (error,) = [line for line in log_lines(out) if line["level"] == "error"]
    assert "12abc" in error["reason"]
    assert error["eventID"] == records[3]["eventID"]
    assert error["sequenceNumber"] == records[3]["dynamodb"]["SequenceNumber"]
    assert error["eventSourceARN"] == world.arns["orders"]
    (stream_metrics,) = [m for m in emf_lines(out) if "Stream" in m]
    assert stream_metrics["PoisonRecords"] == 1
    assert stream_metrics["Published"] == 3
    assert stream_metrics["NotPublished"] == 2


def test_poison_record_first_in_its_batch_raises_so_lambda_bisects(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a batch whose FIRST record is malformed (as Lambda retries it after a report)
    orders_table(world)
    for i in range(4):
        world.put("orders", order("t1", str(i), 1))
    records = world.records("orders")
    records[0]["dynamodb"]["NewImage"]["version"] = {"N": "12abc"}

    # WHEN the handler runs THEN it fails as a whole (a function error, which Lambda bisects;
    # a partial response would retry the same batch, good records and all, into the DLQ)
    with pytest.raises(fanin.PoisonRecordError, match="12abc") as caught:
        world.invoke(records)

    assert records[0]["dynamodb"]["SequenceNumber"] in str(caught.value)
    assert world.bus_records() == []
    out = capsys.readouterr().out
    (error,) = [line for line in log_lines(out) if line["level"] == "error"]
    assert error["sequenceNumber"] == records[0]["dynamodb"]["SequenceNumber"]
    (stream_metrics,) = [m for m in emf_lines(out) if "Stream" in m]
    assert stream_metrics["PoisonRecords"] == 1 and stream_metrics["Published"] == 0


def esm(world: World, records: list[dict[str, Any]], max_retries: int) -> list[list[str]]:
    """Lambda's DynamoDB stream mapping as documented, the local pipeline's simulator
    (`tools.localpipe.esm.StreamMapping`: ReportBatchItemFailures, bisect on function error,
    bounded retries, on-failure records) reading the table's stream in one batch; the function
    is handed `records` as given (a test may have spoiled one). Returns the DLQ'd batches
    (sequence numbers)."""
    given = {r["dynamodb"]["SequenceNumber"]: r for r in records}
    seqs = list(given)

    def function(event: dict[str, Any], context: Any) -> Any:
        return world.invoke([given[r["dynamodb"]["SequenceNumber"]] for r in event["Records"]],
                            context)

    mapping = StreamMapping(streams=world.streams, stream_arn=records[0]["eventSourceARN"],
                            function=function, function_name="fanin", batch_size=len(records),
                            maximum_retry_attempts=max_retries)
    while mapping.step():
        pass
    dlq = []
    for message in mapping.discarded:
        info = message["DDBStreamBatchInfo"]
        first = seqs.index(info["startSequenceNumber"])
        last = seqs.index(info["endSequenceNumber"])
        assert last - first + 1 == info["batchSize"]
        dlq.append(seqs[first:last + 1])
    return dlq


def test_a_poison_record_ends_alone_in_the_dlq_and_the_rest_reaches_the_bus(
    world: World,
) -> None:
    # GIVEN 20 changes, the 8th malformed, delivered by Lambda's mapping (2 retries)
    orders_table(world)
    for i in range(20):
        world.put("orders", order("t1", str(i), 1))
    records = world.records("orders")
    records[7]["dynamodb"]["NewImage"]["version"] = {"N": "not-a-number"}

    dlq = esm(world, records, max_retries=2)

    # THEN only the poison record is in the DLQ; the 19 others are on the bus, in order per row
    assert dlq == [[records[7]["dynamodb"]["SequenceNumber"]]]
    on_bus = [e["id"] for e in world.envelopes()]
    assert set(on_bus) == {r["eventID"] for i, r in enumerate(records) if i != 7}
    table = world.table_state("orders")
    poison_row = row_of({"tenant": "t1", "order_id": Decimal("7")})
    assert consumer_state(world.envelopes())["orders"] == {
        k: v for k, v in table.items() if k != poison_row
    }


def test_unknown_table_is_reported_with_its_reason(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    orders_table(world)
    world.put("orders", order("t1", "1", 1))
    records = world.records("orders")
    world.configure(TABLES=json.dumps({"some-other-table": "other"}))

    response = world.invoke(records)

    assert response == {
        "batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    }
    assert world.bus_records() == []
    (error,) = [line for line in log_lines(capsys.readouterr().out) if line["level"] == "error"]
    assert world.physical["orders"] in error["reason"] and "TABLES" in error["reason"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BUS_STREAM_NAME": None}, "BUS_STREAM_NAME is not set"),
        ({"TABLES": "orders"}, "TABLES must be a JSON object"),
        ({"TABLES": '["a"]'}, "TABLES must be a JSON object"),
        ({"TABLES": '{"a": 1}'}, "TABLES must be a JSON object"),
        ({"TABLES": "{}"}, "TABLES names no table"),
        ({"TABLES": None}, "set TABLE_PREFIX (the environment's table name prefix) or TABLES"),
        ({"TABLE_PREFIX": "dmsbus-dev"}, "TABLE_PREFIX must be a name prefix ending in '-'"),
        ({"TABLE_PREFIX": "dmsbus-*-"}, "TABLE_PREFIX must be a name prefix ending in '-'"),
        ({"MAX_RECORD_BYTES": "big"}, "MAX_RECORD_BYTES must be a positive integer, found 'big'"),
        ({"MAX_PUT_ATTEMPTS": "0"}, "MAX_PUT_ATTEMPTS must be a positive integer, found '0'"),
    ],
)
def test_bad_configuration_fails_with_a_clear_error(
    world: World, env: dict[str, str | None], message: str
) -> None:
    orders_table(world)
    world.put("orders", order("t1", "1", 1))
    records = world.records("orders")
    world.configure(**env)

    with pytest.raises(ValueError, match="fan-in configuration") as caught:
        world.invoke(records)

    assert message in str(caught.value)
    assert world.bus_records() == []


def test_logical_table_comes_from_the_stream_arn_and_the_prefix(world: World) -> None:
    # GIVEN tables named by the rule `<prefix><logical>` and a fan-in told only the prefix:
    # nothing in its environment grows with the table count
    prefix = f"dmsbus-t{world.suffix}-"
    world.table("orders", [("tenant", "S"), ("order_id", "N")], physical=f"{prefix}orders")
    world.table("order_lines", [("order_id", "N"), ("line_no", "N")],
                physical=f"{prefix}order_lines")
    world.configure(TABLE_PREFIX=prefix, TABLES=None)
    world.put("orders", order("t1", "1", 1))
    world.put("order_lines", {"order_id": {"N": "1"}, "line_no": {"N": "2"}})

    # WHEN each table's records reach the fan-in (one mapping per table)
    for logical in ("orders", "order_lines"):
        assert world.invoke(world.records(logical)) == {"batchItemFailures": []}

    # THEN each envelope names the logical table its stream ARN holds
    assert sorted(e["table"] for e in world.envelopes()) == ["order_lines", "orders"]


def test_a_table_off_the_prefix_rule_is_unknown_unless_listed(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the fan-in of environment `t<x>` and a table of environment `t<x>-eu` (whose
    # name starts with the same prefix) -- the IAM policy denies reading its stream, and the
    # handler must not take it for a table `eu_orders` or `eu-orders` of its own either
    prefix = f"dmsbus-t{world.suffix}-"
    world.table("orders", [("tenant", "S"), ("order_id", "N")], physical=f"{prefix}eu-orders")
    world.configure(TABLE_PREFIX=prefix, TABLES=None)
    world.put("orders", order("t1", "1", 1))
    records = world.records("orders")

    # WHEN its records arrive THEN they are reported, nothing is put
    assert world.invoke(records) == {
        "batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    }
    assert world.bus_records() == []
    (error,) = [line for line in log_lines(capsys.readouterr().out) if line["level"] == "error"]
    assert f"{prefix}eu-orders" in error["reason"] and "TABLE_PREFIX" in error["reason"]

    # AND listed as an exception (TABLES), the same table is published under its listed name
    world.configure(TABLE_PREFIX=prefix, TABLES=json.dumps({f"{prefix}eu-orders": "orders"}))
    assert world.invoke(records) == {"batchItemFailures": []}
    assert [e["table"] for e in world.envelopes()] == ["orders"]


_ENV = st.from_regex(ENV_NAME_PATTERN, fullmatch=True)
_LOGICAL_NAMES = st.from_regex(LOGICAL_NAME_PATTERN, fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(env=_ENV, other=_ENV, logical=_LOGICAL_NAMES, exception=_LOGICAL_NAMES)
def test_table_names_resolve_by_rule_only_within_the_environment(
    env: str, other: str, logical: str, exception: str
) -> None:
    assume(other != env and not env.endswith("-ingest"))  # components.common.check_name_prefix
    prefix = f"dmsbus-{env}-"
    names = fanin.TableNames(prefix, {"legacy-orders": exception})
    # this environment's waypoint tables: by rule
    assert names.logical(f"{prefix}{logical}") == logical
    # the exceptions: by the map, whatever their name
    assert names.logical("legacy-orders") == exception
    # another environment's tables, also when its name starts like this one's (`dev` and
    # `dev-eu`), and every IngestApi table: never
    assert names.logical(f"dmsbus-{other}-{logical}") is None
    assert names.logical(f"dmsbus-{other}-ingest-{logical}") is None
    assert names.logical(f"{prefix}ingest-{logical}") is None


def test_two_problems_are_named_in_one_message(world: World) -> None:
    world.configure(BUS_STREAM_NAME=None, MAX_RECORD_BYTES="-5")
    with pytest.raises(ValueError) as caught:
        world.invoke([])
    assert "BUS_STREAM_NAME" in str(caught.value)
    assert "MAX_RECORD_BYTES" in str(caught.value)


def test_emf_counts_per_stream_and_per_table(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two tables, one with 3 changes, one with 2 (one event source mapping each)
    orders_table(world)
    world.table("customers", [("id", "S")])
    for i in range(3):
        world.put("orders", order("t1", str(i), 1))
    world.put("customers", {"id": {"S": "c1"}})
    world.delete("customers", {"id": {"S": "c1"}})
    orders, customers = world.records("orders"), world.records("customers")

    assert world.invoke(orders) == {"batchItemFailures": []}
    assert world.invoke(customers) == {"batchItemFailures": []}

    # THEN one EMF line per invocation for the stream, one per table with its count
    lines = emf_lines(capsys.readouterr().out)
    per_table = [(m["Table"], m["ChangesPublished"]) for m in lines if "Table" in m]
    assert per_table == [("orders", 3), ("customers", 2)]
    stream = [m for m in lines if "Stream" in m]
    assert [(m["Records"], m["Published"], m["PutRecordsCalls"]) for m in stream] == [
        (3, 3, 1), (2, 2, 1)
    ]
    for metric in lines:
        (directive,) = metric["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "DmsEventBus"
        (dims,) = directive["Dimensions"]
        assert all(d in metric for d in dims)
        assert all(isinstance(metric[m["Name"]], int) for m in directive["Metrics"])
    tables = {e["table"] for e in world.envelopes()}
    assert tables == {"orders", "customers"}


def test_empty_batch_puts_nothing(world: World) -> None:
    orders_table(world)
    counting = world.use(FaultyKinesis(world.kinesis))
    assert world.invoke([]) == {"batchItemFailures": []}
    assert counting.calls == []


def test_the_handlers_logical_name_rule_is_the_stack_files() -> None:
    # the handler ships without the settings package: its copy of the rule must not drift
    from dms_event_bus.settings.base import LOGICAL_NAME_PATTERN

    assert fanin.LOGICAL_NAME.pattern == LOGICAL_NAME_PATTERN
