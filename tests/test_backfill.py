"""Backfill under moto: every row of an adopted table reaches the bus, none is missing.

The rows DMS wrote before the stream existed come as `op: snapshot` envelopes from
`handlers/backfill.py`; the changes made after the stream was on come through the table's
stream and the fan-in (`handlers.fanin.process_records`, fed the stream records read from
moto). A consumer applying both with the rule of docs/adoption.md ends at the table's state.
Lambda's asynchronous self-invocations are played by an in-process queue that round-trips
each event through JSON, as Lambda does.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest

from dms_event_bus.handlers import backfill, bus, fanin
from dms_event_bus.handlers.common import ConfigError
from dms_event_bus.providers import adopted_table
from dms_event_bus.providers.adopted_table import AdoptedTableProvider
from tests.conftest import SHARED
from tests.iam_eval import Role
from tools.localpipe import aws as aws_world
from tools.localpipe.aws import MotoWorld
from tools.localpipe.lambda_events import to_lambda_record

REGION = aws_world.REGION
BUS = "dmsbus-test-bus"
OVERFLOW = "dmsbus-test-overflow"
SCHEMA = json.loads((SHARED / "envelope.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


# -- setup -------------------------------------------------------------------------------
@pytest.fixture
def aws(moto_world: MotoWorld) -> None:
    moto_world.client("kinesis").create_stream(StreamName=BUS, ShardCount=3)
    moto_world.client("s3").create_bucket(
        Bucket=OVERFLOW, CreateBucketConfiguration={"LocationConstraint": REGION}
    )


def ddb() -> Any:
    return boto3.client("dynamodb", region_name=REGION)


def kinesis() -> Any:
    return boto3.client("kinesis", region_name=REGION)


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def unique() -> str:
    return f"dmsbus-test-t{uuid.uuid4().hex[:8]}"


def dms_table(name: str, *, binary_key: bool = False) -> None:
    """A table as DMS creates it: provisioned 200/200, no stream (composite key)."""
    ddb().create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"},
                   {"AttributeName": "line", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "N"},
                              {"AttributeName": "line", "AttributeType":
                               "B" if binary_key else "S"}],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 200, "WriteCapacityUnits": 200},
    )


def item(i: int, note: str = "before the stream", *, binary_key: bool = False) -> dict[str, Any]:
    line: dict[str, Any] = ({"B": i.to_bytes(2, "big") + b"\x00\xff"} if binary_key
                            else {"S": f"L{i % 7}"})
    return {
        "order_id": {"N": str(i)},
        "line": line,
        "amount": {"N": f"12345678901234567890123456789.{i:09d}"},  # 38 digits: exact
        "note": {"S": f"{note} {i} — ünïcode"},
        "blob": {"B": bytes(range(i % 50))},
        "tags": {"SS": ["a", f"t{i % 3}"]},
        "lines": {"L": [{"M": {"sku": {"S": "X-1"}, "qty": {"N": "2"}}}]},
        "missing": {"NULL": True},
    }


def keys_of(it: dict[str, Any]) -> dict[str, Any]:
    return {"order_id": it["order_id"], "line": it["line"]}


def enable_stream(name: str) -> str:
    table = ddb().update_table(
        TableName=name,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    return str(table["LatestStreamArn"])


def start_event(name: str, segments: int) -> dict[str, Any]:
    """What AdoptedTable sends when it starts the backfill."""
    return {"table": name, "logical_table": "orders", "key_names": ["order_id", "line"],
            "total_segments": segments, "stream_label": "label"}


# -- Lambda played in process ----------------------------------------------------------------
@dataclass
class Lambda:
    """The backfill function: asynchronous invocations queued, each run with a time budget.

    `pages_per_invocation`: the remaining time drops below the reserve after that many
    pages, so the handler must hand on to a new invocation."""

    publish: Callable[[Any], Any]
    pages_per_invocation: int = 1000
    page_items: int = 25
    client: Any = None
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    results: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> None:
        self.queue.append(json.loads(json.dumps(event)))  # what Lambda delivers: JSON

    def run_one(self) -> dict[str, Any]:
        event = self.queue.popleft()
        self.events.append(event)
        if "segment" not in event:
            result = backfill.fan_out(event, invoke=self.invoke)
        else:
            scans = {"n": 0}
            client = self.client or ddb()

            class Counting:
                def scan(self, **kwargs: Any) -> Any:
                    scans["n"] += 1
                    return client.scan(**kwargs)

            budget = self.pages_per_invocation

            def remaining_ms() -> int:
                return 900_000 if scans["n"] < budget else 1_000

            result = backfill.scan_segment(
                event, ddb=Counting(), publish=self.publish, invoke=self.invoke,
                remaining_ms=remaining_ms, reserve_ms=60_000, page_items=self.page_items,
            )
        self.results.append(result)
        return result

    def run_all(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            self.run_one()
        raise AssertionError("the backfill did not finish")


def publisher(client: Any = None, **kwargs: Any) -> Callable[[Any], bus.PutResult]:
    return bus.snapshot_publisher(
        kinesis=client or kinesis(), s3=s3(), stream_name=BUS, overflow_bucket=OVERFLOW,
        sleep=lambda _s: None, **kwargs,
    )


# -- the stream side: moto's stream records through the fan-in ---------------------------
def stream_records(stream_arn: str) -> list[dict[str, Any]]:
    """Every record of the table's stream, as Lambda delivers them (JSON form)."""
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    out: list[dict[str, Any]] = []
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            out += [to_lambda_record(r, stream_arn, REGION) for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


def run_fanin(name: str, stream_arn: str, done: set[str] | None = None) -> int:
    """The fan-in over the stream records not yet in `done` (event ids); returns how many."""
    done = set() if done is None else done
    records = [r for r in stream_records(stream_arn) if r["eventID"] not in done]
    done.update(r["eventID"] for r in records)
    outcome = fanin.process_records(
        records,
        fanin.Config(stream_name=BUS, tables={name: "orders"}, overflow_bucket=OVERFLOW),
        kinesis=kinesis(), s3=s3(), sleep=lambda _s: None,
    )
    assert outcome.batch_item_failures == []
    return len(records)


# -- the consumer side -----------------------------------------------------------------------
def bus_envelopes() -> list[dict[str, Any]]:
    """Every record on the bus, shard by shard, parsed with exact numbers."""
    client = kinesis()
    out = []
    for shard in client.list_shards(StreamName=BUS)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=BUS, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            out += [json.loads(r["Data"], parse_float=Decimal, parse_int=Decimal)
                    for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


def apply_rule(envelopes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The consumer rule of docs/adoption.md, applied by the consumer kit (`consumer.Replica`):
    stream events win (by seq, tombstones kept); a snapshot only fills a row no stream event
    touched; duplicates (same id) ignored. Live rows keyed by their keys' sorted JSON."""
    from dms_event_bus.consumer import Replica, row_key

    replica = Replica()
    keys_of: dict[str, dict[str, Any]] = {}
    for env in envelopes:
        replica.apply(env)
        keys_of[row_key(env["keys"])] = env["keys"]
    return {json.dumps(keys_of[k], sort_keys=True, default=str): row
            for table in replica.rows for k, row in replica.live(table).items()}


def table_as_envelope_rows(name: str) -> dict[str, dict[str, Any]]:
    """The table's current rows in the envelope's JSON form (via a snapshot envelope)."""
    from dms_event_bus.handlers.envelope import snapshot_envelope

    out = {}
    for it in scan_all(name):
        env = json.loads(snapshot_envelope(it, logical_table="orders", physical_table=name,
                                           key_names=["order_id", "line"], scanned_at=0).data,
                         parse_float=Decimal, parse_int=Decimal)
        out[json.dumps(env["keys"], sort_keys=True, default=str)] = env["new"]
    return out


def scan_all(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": name, "ConsistentRead": True}
    while True:
        page = ddb().scan(**kwargs)
        items += page["Items"]
        if not page.get("LastEvaluatedKey"):
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def key_text(env_or_item: dict[str, Any]) -> str:
    return json.dumps(env_or_item["keys"], sort_keys=True, default=str)


def assert_valid_snapshot(env: dict[str, Any], name: str) -> None:
    VALIDATOR.validate(env)
    assert env["op"] == "snapshot" and env["old"] is None and env["seq"] == ""
    assert env["table"] == "orders" and env["source"]["table"] == name
    assert datetime.fromisoformat(env["ts"].replace("Z", "+00:00")).tzinfo is not None


# -- the tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("fanin_first", [False, True], ids=["backfill-first", "fanin-first"])
def test_rows_before_and_after_the_stream_all_reach_the_bus(
    aws: None, fanin_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a DMS table with 120 rows written before any stream existed
    name = unique()
    dms_table(name)
    for i in range(120):
        ddb().put_item(TableName=name, Item=item(i))
    before = {json.dumps({"line": it["line"]["S"], "order_id": Decimal(it["order_id"]["N"])},
                         sort_keys=True, default=str) for it in scan_all(name)}
    # WHEN it is adopted: the provider enables the stream and sends the backfill start event
    started: list[dict[str, Any]] = []
    recording = adopted_table.session

    def session() -> Any:
        sess = recording()

        def capture(params: dict[str, Any], **_: Any) -> None:
            started.append(json.loads(params["Payload"]))
            raise _Captured  # no real Lambda here: the queue below plays it

        sess.events.register("provide-client-params.lambda.Invoke", capture)
        return sess

    class _Captured(Exception):
        pass

    monkeypatch.setattr(adopted_table, "session", session)
    with pytest.raises(_Captured):
        AdoptedTableProvider().create({
            "table_name": name, "logical_name": "orders", "poll_seconds": 0.01,
            "wait_timeout_seconds": 5, "backfill_function_name": "dmsbus-test-backfill",
            "backfill_segments": 3,
        })
    stream_arn = ddb().describe_table(TableName=name)["Table"]["LatestStreamArn"]
    (event,) = started
    assert event["total_segments"] == 3 and event["key_names"] == ["order_id", "line"]
    # AND rows change after the stream is on: before the backfill starts ...
    for i in range(0, 20):
        ddb().put_item(TableName=name, Item=item(i, "updated after the stream"))
    for i in range(20, 30):
        ddb().delete_item(TableName=name, Key=keys_of(item(i)))
    for i in range(1000, 1015):
        ddb().put_item(TableName=name, Item=item(i, "inserted after the stream"))
    # ... and while it scans (after its first page)
    client = ddb()
    during = {"pages": 0}

    class WritingWhileScanning:
        def scan(self, **kwargs: Any) -> Any:
            page = client.scan(**kwargs)
            during["pages"] += 1
            if during["pages"] == 2:
                client.put_item(TableName=name, Item=item(40, "changed during the scan"))
                client.put_item(TableName=name, Item=item(41, "changed during the scan"))
                client.delete_item(TableName=name, Key=keys_of(item(42)))
                client.put_item(TableName=name, Item=item(2000, "inserted during the scan"))
            return page

    fn = Lambda(publish=publisher(), page_items=20, client=WritingWhileScanning())
    fn.invoke(event)
    done: set[str] = set()
    if fanin_first:
        # the fan-in puts the changes made so far on the bus before the backfill starts,
        # and those made during the scan after it
        streamed = run_fanin(name, stream_arn, done)
        fn.run_all()
        streamed += run_fanin(name, stream_arn, done)
    else:
        fn.run_all()
        streamed = run_fanin(name, stream_arn, done)
    assert streamed == 20 + 10 + 15 + 4

    # THEN every snapshot validates against the schema, each row's snapshot has one id
    envelopes = bus_envelopes()
    snapshots = [e for e in envelopes if e["op"] == "snapshot"]
    for env in snapshots:
        assert_valid_snapshot(env, name)
    assert len({e["id"] for e in snapshots}) == len(snapshots)
    for env in envelopes:
        VALIDATOR.validate(env)
    # AND every row that existed before the stream is on the bus: as a snapshot, or (deleted
    # before the scan reached it) as its delete event
    on_bus = {key_text(e) for e in envelopes}
    missing = before - on_bus
    assert missing == set()
    deleted_before_scan = {key_text(e) for e in envelopes if e["op"] == "delete"}
    assert before - {key_text(e) for e in snapshots} <= deleted_before_scan
    # AND the three segments together scanned every row once: no row twice, none missing
    segment_results = [r for r in fn.results if "segment" in r]
    assert sorted({r["segment"] for r in segment_results}) == [0, 1, 2]
    assert sum(r["published"] for r in segment_results) == len(snapshots)
    # AND a consumer applying the rule of docs/adoption.md ends at the table's state
    assert apply_rule(envelopes) == table_as_envelope_rows(name)
    assert apply_rule(list(reversed(envelopes))) == table_as_envelope_rows(name)


def test_segments_split_the_table_and_each_is_its_own_invocation(aws: None) -> None:
    # GIVEN 200 rows
    name = unique()
    dms_table(name)
    for i in range(200):
        ddb().put_item(TableName=name, Item=item(i))
    # WHEN the start event fans out to 4 segments, run interleaved (one page each, then the
    # next invocation of each segment queues behind the others)
    fn = Lambda(publish=publisher(), page_items=10, pages_per_invocation=1)
    fn.invoke(start_event(name, 4))
    fn.run_one()
    assert [e["segment"] for e in fn.queue] == [0, 1, 2, 3]
    assert all(e["pass"] == 0 and "exclusive_start_key" not in e for e in fn.queue)
    fn.run_all()
    # THEN the segments are disjoint and together cover every row exactly once
    by_segment: dict[int, set[str]] = {}
    envelopes = bus_envelopes()
    for result in fn.results[1:]:
        by_segment.setdefault(result["segment"], set())
    assert sorted(by_segment) == [0, 1, 2, 3]
    published = sum(r["published"] for r in fn.results[1:])
    assert published == 200 == len(envelopes)
    assert len({e["id"] for e in envelopes}) == 200
    # AND the segments ran interleaved: consecutive invocations belong to different segments
    order = [e["segment"] for e in fn.events[1:]]
    assert order[:8] == [0, 1, 2, 3, 0, 1, 2, 3]
    for env in envelopes:
        assert_valid_snapshot(env, name)


def test_a_segment_short_of_time_continues_in_a_new_invocation(aws: None) -> None:
    # GIVEN 130 rows with binary sort keys (the start key must survive JSON)
    name = unique()
    dms_table(name, binary_key=True)
    for i in range(130):
        ddb().put_item(TableName=name, Item=item(i, binary_key=True))
    # WHEN one segment runs with time for 2 pages of 20 per invocation
    fn = Lambda(publish=publisher(), page_items=20, pages_per_invocation=2)
    fn.invoke({**start_event(name, 1), "segment": 0})
    fn.run_all()
    # THEN it handed on 3 times (7 pages, the last one empty-ended), each time with the start
    # key of the first page not yet published and the next pass number
    passes = [e.get("pass", 0) for e in fn.events]
    assert passes == [0, 1, 2, 3]
    continued = [r["continued"] for r in fn.results]
    assert continued == [True, True, True, False]
    for handed_on in fn.events[1:]:
        start = handed_on["exclusive_start_key"]
        assert set(start) == {"order_id", "line"}
        assert isinstance(start["line"]["B"], str)  # base64 in the event JSON
    # AND every row is on the bus exactly once, binary keys intact
    envelopes = bus_envelopes()
    assert len(envelopes) == 130 == len({e["id"] for e in envelopes})
    assert sum(r["published"] for r in fn.results) == 130
    expected_lines = {base64.b64encode(i.to_bytes(2, "big") + b"\x00\xff").decode()
                      for i in range(130)}
    assert {e["keys"]["line"] for e in envelopes} == expected_lines


class FlakyKinesis:
    """moto's Kinesis, throttling the first attempt of chosen rows (or every entry)."""

    def __init__(self, fail_first: Callable[[dict[str, Any]], bool] | None = None,
                 always: bool = False) -> None:
        self._client = kinesis()
        self.fail_first = fail_first
        self.always = always
        self.attempted: set[str] = set()
        self.calls = 0
        self.failed = 0

    def _fails(self, record: dict[str, Any]) -> bool:
        if self.always:
            return True
        env = json.loads(record["Data"])
        first = env["id"] not in self.attempted
        self.attempted.add(env["id"])
        return first and self.fail_first is not None and self.fail_first(env)

    def put_records(self, **kwargs: Any) -> Any:
        self.calls += 1
        records = kwargs["Records"]
        failing = {i for i, r in enumerate(records) if self._fails(r)}
        ok = [r for i, r in enumerate(records) if i not in failing]
        landed = iter(self._client.put_records(StreamName=kwargs["StreamName"],
                                               Records=ok)["Records"] if ok else [])
        answers = []
        for i in range(len(records)):
            if i in failing:
                self.failed += 1
                answers.append({"ErrorCode": "ProvisionedThroughputExceededException",
                                "ErrorMessage": "Rate exceeded"})
            else:
                answers.append(next(landed))
        return {"FailedRecordCount": len(failing), "Records": answers}


def test_failed_puts_are_retried_and_nothing_is_missing(aws: None) -> None:
    # GIVEN 90 rows and a bus that throttles the first attempt of every sixth row
    name = unique()
    dms_table(name)
    for i in range(90):
        ddb().put_item(TableName=name, Item=item(i))
    flaky = FlakyKinesis(fail_first=lambda env: int(env["keys"]["order_id"]) % 6 == 0)
    fn = Lambda(publish=publisher(flaky), page_items=30)
    # WHEN the backfill runs
    fn.invoke({**start_event(name, 1), "segment": 0})
    fn.run_all()
    # THEN only the failed entries were sent again, and every row is on the bus once
    (result,) = fn.results
    assert flaky.failed == 15
    assert result["retried"] == 15
    assert result["calls"] == 3 + 3  # one call per page of 30, plus one retry each
    envelopes = bus_envelopes()
    assert len(envelopes) == 90 == len({e["id"] for e in envelopes})


def test_a_bus_that_stays_down_ends_in_lambda_retries_never_skips_a_page(aws: None) -> None:
    # GIVEN 60 rows and a bus that takes the first two pages, then rejects everything
    name = unique()
    dms_table(name)
    for i in range(60):
        ddb().put_item(TableName=name, Item=item(i))
    healthy = publisher()
    down = publisher(FlakyKinesis(always=True), max_attempts=3)
    pages = {"n": 0}

    def breaking(envelopes: Any) -> Any:
        pages["n"] += 1
        return (healthy if pages["n"] <= 2 else down)(envelopes)

    fn = Lambda(publish=breaking, page_items=20)
    event = {**start_event(name, 1), "segment": 0}
    fn.invoke(event)
    # WHEN the third page cannot be put after the publisher's retries
    first = fn.run_one()
    # THEN the progress is kept: a new invocation starts at the failed page
    assert first["continued"] is True and first["failed_page"] is True
    assert first["published"] == 40
    (handed_on,) = fn.queue
    assert handed_on["pass"] == 1 and handed_on["exclusive_start_key"]
    # AND that invocation, failing on its first page, raises: Lambda retries the same event
    # (same start key), then the DLQ keeps it
    with pytest.raises(backfill.BackfillError, match="not on the bus") as raised:
        fn.run_one()
    assert isinstance(raised.value.__cause__, bus.PublishError)
    assert str(handed_on["exclusive_start_key"]["order_id"]["N"]) in str(raised.value)
    # WHEN the bus is back and Lambda retries (or the DLQ message is redriven)
    fn.publish = healthy
    fn.invoke(handed_on)
    fn.run_all()
    # THEN the table is complete on the bus: nothing skipped, nothing twice
    envelopes = bus_envelopes()
    assert len(envelopes) == 60 == len({e["id"] for e in envelopes})


def test_a_rerun_publishes_the_same_ids(aws: None) -> None:
    # GIVEN a backfill that ran once (two segments)
    name = unique()
    dms_table(name)
    for i in range(50):
        ddb().put_item(TableName=name, Item=item(i))
    for _run in range(2):
        fn = Lambda(publish=publisher(), page_items=15)
        fn.invoke(start_event(name, 2))
        fn.run_all()
    # WHEN it runs again (adoption interrupted after the invoke, or a redrive)
    envelopes = bus_envelopes()
    # THEN each row's snapshot carries the same id both times, so consumers deduplicate
    ids: dict[str, list[str]] = {}
    for env in envelopes:
        ids.setdefault(key_text(env), []).append(env["id"])
    assert len(ids) == 50
    assert all(len(v) == 2 and v[0] == v[1] for v in ids.values())
    assert len(apply_rule(envelopes)) == 50


def test_handler_entry_point_fans_out_and_continues_through_lambda_invokes(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the Lambda environment and 70 rows with binary keys
    name = unique()
    dms_table(name, binary_key=True)
    for i in range(70):
        ddb().put_item(TableName=name, Item=item(i, binary_key=True))
    monkeypatch.setenv("BUS_STREAM_NAME", BUS)
    monkeypatch.setenv("OVERFLOW_BUCKET", OVERFLOW)
    monkeypatch.setenv("BACKFILL_PAGE_ITEMS", "10")
    monkeypatch.setenv("BACKFILL_RESERVE_MS", "60000")
    invoked: deque[dict[str, Any]] = deque()

    class LambdaClient:
        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            assert kwargs["InvocationType"] == "Event"
            assert kwargs["FunctionName"].endswith(":function:dmsbus-test-backfill")
            invoked.append(json.loads(kwargs["Payload"]))
            return {"StatusCode": 202}

    monkeypatch.setattr(backfill, "_clients", {"lambda": LambdaClient()})

    class Context:
        invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:dmsbus-test-backfill"
        function_name = "dmsbus-test-backfill"

        def __init__(self) -> None:
            self.calls = 0

        def get_remaining_time_in_millis(self) -> int:
            self.calls += 1  # asked before every page but the first: time for 3 pages
            return 900_000 if self.calls <= 2 else 30_000

    # WHEN the start event arrives and every asynchronous invoke is delivered in turn
    first = backfill.handler(start_event(name, 2), Context())
    assert first == {"table": name, "segments": 2}
    results = []
    while invoked:
        results.append(backfill.handler(invoked.popleft(), Context()))
    # THEN both segments finished, some after continuing, and every row is on the bus once
    assert {r["segment"] for r in results if not r["continued"]} == {0, 1}
    assert backfill._clients["dynamodb"].meta.config.retries["mode"] == "adaptive"
    assert any(r["continued"] for r in results)
    envelopes = bus_envelopes()
    assert len(envelopes) == 70 == len({e["id"] for e in envelopes})
    for env in envelopes:
        assert_valid_snapshot(env, name)


def test_the_emf_line_counts_what_the_invocation_put(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique()
    dms_table(name)
    for i in range(45):
        ddb().put_item(TableName=name, Item=item(i))
    fn = Lambda(publish=publisher(), page_items=20)
    fn.invoke({**start_event(name, 1), "segment": 0})
    fn.run_all()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    (metric,) = [m for m in lines if "_aws" in m]
    assert metric["Table"] == "orders"
    assert metric["SnapshotRecords"] == 45
    assert metric["SnapshotPages"] == math.ceil(45 / 20)
    assert metric["PutRecordsCalls"] == 3
    names = [m["Name"] for m in metric["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert "SnapshotRecords" in names and metric["_aws"]["CloudWatchMetrics"][0][
        "Namespace"] == bus.METRIC_NAMESPACE
    done = [m for m in lines if m.get("message") == "backfill segment done"]
    assert done and done[0]["published"] == 45


def test_a_start_event_without_its_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="key_names"):
        backfill.fan_out({"table": "t", "logical_table": "t", "total_segments": 1},
                         invoke=lambda _e: None)


# -- the Backfill component under Pulumi's mocks ----------------------------------------------
def test_backfill_component_scoped_role_async_retries_dlq_recursion_and_alarms() -> None:
    import pulumi

    from dms_event_bus.components.backfill import Backfill, BackfillArgs
    from tools.mockrun import run_program

    bus_arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/dmsbus-dev-bus"
    key = "arn:aws:kms:eu-west-1:123456789012:key/k-1"

    def program() -> None:
        fn = Backfill("backfill", BackfillArgs(
            name_prefix="dmsbus-dev-",
            table_names=["dmsbus-dev-invoices", "dmsbus-dev-audit_login_events"],
            bus_stream_name="dmsbus-dev-bus", bus_stream_arn=bus_arn,
            overflow_bucket="dmsbus-dev-overflow",
            overflow_bucket_arn="arn:aws:s3:::dmsbus-dev-overflow",
            memory_mb=1024, kms_key_arn=key,
            alarm_topic_arn="arn:aws:sns:eu-west-1:123456789012:alarms",
            tags={"environment": "dev"},
        ))
        pulumi.export("ready", fn.ready_function_name)

    # WHEN the component is declared under mocks
    plan = run_program("dev", {"aws:region": "eu-west-1"}, program)
    component = plan.named("backfill")
    # THEN every child is parented to it
    assert all(r.parent == component.urn for r in plan.resources if r is not component)
    # AND the function runs the backfill handler with the bus settings
    function = plan.named("backfill-function")
    assert function.inputs["name"] == "dmsbus-dev-backfill"
    assert function.inputs["handler"] == "handlers.backfill.handler"
    assert function.inputs["memorySize"] == 1024 and function.inputs["timeout"] == 900
    assert function.inputs["environment"]["variables"] == {
        "BUS_STREAM_NAME": "dmsbus-dev-bus", "OVERFLOW_BUCKET": "dmsbus-dev-overflow",
        "BACKFILL_RESERVE_MS": "60000", "BACKFILL_PAGE_ITEMS": "500"}
    # AND its role may scan this environment's tables (by prefix: the policy does not grow
    # with the adopted tables), put on the bus, write overflow objects, invoke itself, and
    # nothing on "*"
    policy = json.loads(plan.named("backfill-policy").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    role = Role("backfill", policy["Statement"])
    table = "arn:aws:dynamodb:eu-west-1:123456789012:table/"
    for name in ("dmsbus-dev-audit_login_events", "dmsbus-dev-invoices"):
        assert role.allows("dynamodb:Scan", table + name)
    for name in ("dmsbus-dev-eu-invoices", "dmsbus-dev-ingest-orders", "dmsbus-prod-invoices"):
        assert not role.allows("dynamodb:Scan", table + name)
    assert statements["PutOnTheBus"]["Resource"] == [bus_arn]
    assert statements["WriteOverflow"]["Resource"] == ["arn:aws:s3:::dmsbus-dev-overflow/*"]
    assert statements["ContinueItself"]["Resource"] == [
        "arn:aws:lambda:eu-west-1:123456789012:function:dmsbus-dev-backfill"]
    grants = {s["Sid"]: s for s in role.kms_grants()}
    assert sorted(grants) == ["BusKey", "DlqKey", "OverflowKey", "TablesKey"]
    assert all(g["Resource"] == [key] for g in grants.values())
    assert grants["BusKey"]["Condition"]["StringLike"] == {
        "kms:EncryptionContext:aws:kinesis:arn": [bus_arn]}
    assert all(r != "*" for s in policy["Statement"] for r in s["Resource"])
    # AND a failed invocation is retried twice, then kept in the encrypted DLQ
    invoke_config = plan.named("backfill-async")
    assert invoke_config.inputs["maximumRetryAttempts"] == 2
    dlq = plan.named("backfill-dlq")
    assert invoke_config.inputs["destinationConfig"]["onFailure"]["destination"] == (
        dlq.outputs["arn"])
    assert dlq.inputs["kmsMasterKeyId"] == key
    # AND continuing itself is an allowed loop
    assert plan.named("backfill-recursion").inputs["recursiveLoop"] == "Allow"
    # AND errors and DLQ depth alarm the topic
    alarms = {a.name: a for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert sorted(alarms) == ["backfill-dlq-depth", "backfill-errors"]
    assert all(a.inputs["alarmActions"] == ["arn:aws:sns:eu-west-1:123456789012:alarms"]
               for a in alarms.values())
    assert "requestPayload" in alarms["backfill-dlq-depth"].inputs["alarmDescription"]
    assert plan.exports["ready"] == "dmsbus-dev-backfill"


def test_backfill_component_refuses_bad_args_by_field() -> None:
    from dms_event_bus.components.backfill import BackfillArgs

    base: dict[str, Any] = {"name_prefix": "dmsbus-dev-", "table_names": ["dmsbus-dev-t"],
                            "bus_stream_name": "b", "bus_stream_arn": "a",
                            "overflow_bucket": "o", "overflow_bucket_arn": "oa"}
    for field_name, bad in (("table_names", []), ("memory_mb", 64), ("timeout_seconds", 1000),
                            ("reserve_ms", 900_000), ("max_retry_attempts", 3),
                            # off the rule: another environment's, an IngestApi table
                            ("table_names", ["dmsbus-dev-eu-t"]),
                            ("table_names", ["orders"]),
                            ("name_prefix", "dmsbus-dev-ingest-")):
        with pytest.raises(ValueError, match=f"BackfillArgs.{field_name}"):
            BackfillArgs(**{**base, field_name: bad})


def test_the_backfill_package_imports_without_the_project(tmp_path: Path) -> None:
    # GIVEN the function's zip, unpacked alone: its modules and its one requirement (orjson),
    # which the real package carries built for Lambda's Python and architecture -- here the
    # local interpreter's build of it stands in
    import io
    import shutil
    import subprocess
    import sys
    import zipfile

    import orjson

    from dms_event_bus.components.backfill import BACKFILL_MODULES
    from dms_event_bus.components.common import LAMBDA_ARCH
    from dms_event_bus.components.lambda_package import ENVELOPE_REQUIREMENTS, build_zip

    with zipfile.ZipFile(io.BytesIO(build_zip(BACKFILL_MODULES))) as zf:
        zf.extractall(tmp_path)
    shipped = zipfile.ZipFile(io.BytesIO(
        build_zip(BACKFILL_MODULES, ENVELOPE_REQUIREMENTS, LAMBDA_ARCH))).namelist()
    assert any(n.startswith("orjson/") for n in shipped)
    shutil.copytree(Path(orjson.__file__).parent, tmp_path / "orjson")
    # WHEN a fresh interpreter imports the handler from it (no project on the path, no
    # site-packages, no boto3 needed at import time)
    code = ("import sys; import handlers.backfill as b; "
            "print(callable(b.handler), 'boto3' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    # THEN it loads, lazily
    assert out.split() == ["True", "False"]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BUS_STREAM_NAME": ""}, ["BUS_STREAM_NAME"]),
        ({"BACKFILL_PAGE_ITEMS": "ten"}, ["BACKFILL_PAGE_ITEMS"]),
        ({"BACKFILL_PAGE_ITEMS": "0", "BACKFILL_RESERVE_MS": "-1"},
         ["BACKFILL_PAGE_ITEMS", "BACKFILL_RESERVE_MS"]),
    ],
)
def test_a_wrong_environment_fails_the_segment_naming_every_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    env: dict[str, str], named: list[str],
) -> None:
    # GIVEN the backfill's environment with wrong values, and clients that must not be used
    good = {"BUS_STREAM_NAME": BUS, "OVERFLOW_BUCKET": OVERFLOW,
            "BACKFILL_PAGE_ITEMS": "10", "BACKFILL_RESERVE_MS": "60000"}
    for name, value in {**good, **env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(backfill, "_clients", {"lambda": None, "dynamodb": None})

    class Context:
        invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:f"

        def get_remaining_time_in_millis(self) -> int:
            return 900_000

    # WHEN a segment event arrives
    with pytest.raises(ConfigError) as raised:
        backfill.handler({**start_event("t", 1), "segment": 0}, Context())
    # THEN the error (and the one error log line) names each wrong variable, nothing scanned
    for name in named:
        assert name in str(raised.value)
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert line["level"] == "error" and line["reason"] == str(raised.value)
