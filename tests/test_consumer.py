"""The consumer kit (`consumer/`): envelope decoding, overflow pointers from S3, the consumer
rule, and the Kinesis-triggered Lambda wrapper with partial batch failure reporting.

Envelopes are made by the project's own producer (`handlers.envelope`, the fan-in's and the
backfill's converter) from DynamoDB stream records and scanned items, so the kit is tested on
what the bus carries. The mapping driver below follows Lambda's documented semantics for
Kinesis event source mappings (partial responses cut the batch, function errors bisect it,
bounded retries, then the on-failure destination).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dms_event_bus import consumer
from dms_event_bus.consumer import (
    APPLIED,
    DUPLICATE,
    STALE,
    FirstRecordFailed,
    MalformedEnvelope,
    OverflowReader,
    Replica,
    RowState,
    advance,
    decode,
    dumps,
    kinesis_handler,
    row_key,
)
from dms_event_bus.handlers.envelope import snapshot_envelope, stream_envelope
from tests.conftest import ROOT

PHYSICAL = "dmsbus-t-orders"
ARN = f"arn:aws:dynamodb:eu-west-1:123456789012:table/{PHYSICAL}/stream/2026-01-01T00:00:00.000"
BUS_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/dmsbus-t-bus"
EVENT = {"insert": "INSERT", "update": "MODIFY", "delete": "REMOVE"}
BIG = "12345678901234567890123456789012345678"


def source_keys(key: int, wide: bool = False) -> dict[str, Any]:
    """Row `key`'s DynamoDB key: `id` (N), or when `wide` a composite key of two long strings
    (1,500 + 800 bytes: legal in DynamoDB, longer than its 2,048-byte partition key)."""
    if wide:
        return {"tenant": {"S": "t" * 1500}, "ref": {"S": f"{key:04d}" + "r" * 796}}
    return {"id": {"N": str(key)}}


def change(seq: int, op: str, key: int, value: str | None = None, *,
           eid: str | None = None, old: str = "before", wide: bool = False) -> bytes:
    """The bus record (envelope bytes) of one change of row `key`, by the fan-in's converter."""
    keys = source_keys(key, wide)
    ddb: dict[str, Any] = {"Keys": keys, "SequenceNumber": str(seq),
                           "ApproximateCreationDateTime": 1767225600 + seq % 10**6,
                           "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if op != "delete":
        ddb["NewImage"] = {**keys, "v": {"S": value or ""}, "amount": {"N": BIG}}
    if op != "insert":
        ddb["OldImage"] = {**keys, "v": {"S": old}}
    record = {"eventID": eid or f"e{seq}", "eventName": EVENT[op], "eventSourceARN": ARN,
              "dynamodb": ddb}
    return stream_envelope(record, "orders").data


def snapshot(key: int, value: str, wide: bool = False) -> bytes:
    """The backfill's snapshot of row `key`."""
    keys = source_keys(key, wide)
    item = {**keys, "v": {"S": value}, "amount": {"N": BIG}}
    return snapshot_envelope(item, logical_table="orders", physical_table=PHYSICAL,
                             key_names=list(keys), scanned_at=1767225600).data


def kinesis_record(data: bytes, seq: str, key: str = "orders|{}") -> dict[str, Any]:
    """One record of a Lambda event from a Kinesis event source mapping."""
    return {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": key, "sequenceNumber": seq,
                    "data": base64.b64encode(data).decode("ascii"),
                    "approximateArrivalTimestamp": 1767225600.0},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventName": "aws:kinesis:record",
        "eventID": f"shardId-000000000000:{seq}", "awsRegion": "eu-west-1",
        "eventSourceARN": BUS_ARN,
    }


def records(datas: list[bytes]) -> list[dict[str, Any]]:
    return [kinesis_record(d, f"4959{i:020d}") for i, d in enumerate(datas)]


def live(replica: Replica) -> dict[str, Any]:
    return {k: row["v"] for k, row in replica.live("orders").items()}


def key_of(key: int, wide: bool = False) -> str:
    if wide:
        return row_key({k: v["S"] for k, v in source_keys(key, wide).items()})
    return row_key({"id": Decimal(key)})


# --------------------------------------------------------------------------- the envelope


def test_decode_keeps_every_digit_and_dumps_writes_the_same_bytes_back() -> None:
    data = change(7, "update", 1, "Grüße 東京 \"q\" \\ \n\t")
    env = decode(data)
    assert env["new"]["amount"] == Decimal(BIG) and str(env["new"]["amount"]) == BIG
    assert env["keys"] == {"id": Decimal(1)} and env["seq"] == "7"
    # THEN the kit's writer gives back the producer's bytes exactly (digits, escapes, order)
    assert dumps(env).encode("utf-8") == data
    assert dumps({"p": Decimal("1.50"), "n": [Decimal("-0.0"), None, True]}) == (
        '{"p":1.50,"n":[-0.0,null,true]}')


def test_row_key_is_canonical_json_with_exact_numbers() -> None:
    assert row_key({"tenant": "acme", "order_id": Decimal(BIG)}) == (
        f'{{"order_id":{BIG},"tenant":"acme"}}')
    # a number key and a string key with the same digits are different rows
    assert row_key({"id": Decimal(42)}) != row_key({"id": "42"})


GOOD = json.loads(change(5, "update", 1, "x").decode())


def nested(levels: int) -> Any:
    """A value of `levels` nested maps and lists (DynamoDB allows 32 levels)."""
    value: Any = "leaf"
    for level in range(levels):
        value = {"m": value} if level % 2 else [value]
    return value


def mutated(**fields: Any) -> bytes:
    env = {**GOOD, **fields}
    return json.dumps({k: v for k, v in env.items() if v is not ...}).encode()


@pytest.mark.parametrize(("data", "reason"), [
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"v":1,', "not JSON"),
    (b"[1,2]", "expected a JSON object"),
    (b'{"v":1,"x":NaN}', "not JSON"),
    (mutated(v=2), "unsupported envelope version"),
    (mutated(v=True), "unsupported envelope version"),
    (mutated(id=...), "missing field(s) id"),
    (mutated(id=""), "id: expected a non-empty string"),
    (mutated(op="upsert"), "op: expected one of"),
    (mutated(table=7), "table: expected a non-empty string"),
    (mutated(keys={}), "keys: expected a non-empty object"),
    (mutated(seq="12a"), "seq: expected a decimal sequence number"),
    (mutated(seq=12), "seq: expected a decimal sequence number"),
    (mutated(op="snapshot", old=None, seq="5"), 'seq: expected "" for a snapshot'),
    (mutated(op="insert"), "old: expected null for insert"),
    (mutated(op="delete"), "new: expected null for delete"),
    (mutated(new=None), "new: expected the row image for update"),
    (mutated(new=[1]), "new: expected an object or null"),
    (mutated(source="t"), "source: expected an object"),
    (mutated(overflow="https://bucket/key", new=None, old=None), "overflow: expected s3://"),
    (mutated(overflow="s3://bucket-only", new=None, old=None), "overflow: expected s3://"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_malformed_records_are_refused_naming_the_problem(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEnvelope) as caught:
        decode(data)
    assert reason in str(caught.value)


@pytest.mark.parametrize(("data", "reason"), [
    pytest.param(mutated(seq="1" * 65), "seq: expected 1-64 digits, found 65", id="seq-65"),
    pytest.param(mutated(seq="1" * 5000), "seq: expected 1-64 digits, found 5000",
                 id="seq-5000"),
    pytest.param(mutated(new={"x": nested(34)}), "nested deeper than 35 levels", id="depth-36"),
    pytest.param(mutated(new={"x": nested(600)}), "nested deeper than 35 levels",
                 id="depth-602"),
    pytest.param(mutated(source={"s": nested(34)}), "nested deeper than", id="source-36"),
])
def test_a_seq_longer_or_a_nesting_deeper_than_dynamodbs_is_malformed(
        data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEnvelope) as caught:
        decode(data)
    assert reason in str(caught.value)


def test_sequence_numbers_of_up_to_64_digits_are_read() -> None:
    # DynamoDB stream sequence numbers have 21 to 40 digits
    for digits in ("1", "9" * 40, "1" * 64):
        assert decode(mutated(seq=digits))["seq"] == digits


def test_a_row_nested_as_deep_as_dynamodb_allows_is_read_and_written_back() -> None:
    # an item whose attribute holds 32 levels of maps and lists, the deepest a set (SS)
    deep: dict[str, Any] = {"SS": ["a", "b"]}
    for level in range(31):
        deep = {"M": {"m": deep}} if level % 2 else {"L": [deep]}
    keys = {"id": {"N": "1"}}
    record = {"eventID": "deep", "eventName": "INSERT", "eventSourceARN": ARN,
              "dynamodb": {"Keys": keys, "SequenceNumber": "9" * 40,
                           "ApproximateCreationDateTime": 1767225600,
                           "NewImage": {**keys, "x": {"M": {"m": deep}}}}}
    data = stream_envelope(record, "orders").data
    env = decode(data)
    assert dumps(env).encode("utf-8") == data
    assert Replica().apply(env) == APPLIED


def test_a_malformed_seq_or_nesting_reaches_the_on_malformed_hook() -> None:
    seen: list[str] = []
    parked: list[str] = []
    recs = records([change(1, "insert", 1, "a"), mutated(seq="7" * 5000),
                    mutated(new={"x": nested(600)}), change(3, "insert", 3, "c")])
    replica = Replica()

    def process(env: dict[str, Any]) -> None:
        seen.append(env["id"])
        replica.apply(env)  # the rule compares seq as an integer

    handler = kinesis_handler(process, on_malformed=lambda rec, err: parked.append(str(err)))
    # THEN both go to the hook (not retried into the DLQ) and the batch goes on
    assert handler({"Records": recs}) == {"batchItemFailures": []}
    assert seen == ["e1", "e3"] and handler.malformed == 2 and replica.applied == 2
    assert "seq" in parked[0] and "nested deeper than" in parked[1]


def test_unknown_fields_of_v1_are_kept() -> None:
    env = decode(mutated(trace="abc"))
    assert env["trace"] == "abc"


def test_the_kit_imports_no_pulumi_and_no_boto3() -> None:
    code = ("import sys, consumer; bad = [m for m in ('pulumi', 'boto3', 'botocore', 'handlers',"
            " 'settings', 'tools') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the rule


def test_in_order_changes_end_at_the_last_image() -> None:
    r = Replica()
    for data in (change(1, "insert", 1, "a"), change(2, "update", 1, "b"),
                 change(3, "insert", 2, "c")):
        assert r.apply(decode(data)) == APPLIED
    assert live(r) == {key_of(1): "b", key_of(2): "c"}
    assert (r.get("orders", {"id": Decimal(1)}) or {})["v"] == "b"


def test_a_redelivered_change_is_a_duplicate() -> None:
    r = Replica()
    data = change(1, "insert", 1, "a")
    assert [r.apply(decode(data)) for _ in range(3)] == [APPLIED, DUPLICATE, DUPLICATE]
    assert (r.applied, r.duplicates, r.stale) == (1, 2, 0)


def test_an_older_change_after_a_newer_one_is_stale() -> None:
    r = Replica()
    assert r.apply(decode(change(2, "update", 1, "new"))) == APPLIED
    assert r.apply(decode(change(1, "update", 1, "old"))) == STALE
    assert live(r) == {key_of(1): "new"}


def test_seq_is_compared_as_a_number_not_as_text() -> None:
    # "9" > "10" as text: a string comparison would drop the newer change
    r = Replica()
    r.apply(decode(change(9, "insert", 1, "nine")))
    assert r.apply(decode(change(10, "update", 1, "ten"))) == APPLIED
    assert r.apply(decode(change(9, "insert", 1, "nine", eid="again"))) == STALE
    assert live(r) == {key_of(1): "ten"}


def test_a_delete_leaves_a_tombstone_a_late_change_cannot_revive() -> None:
    r = Replica()
    r.apply(decode(change(5, "delete", 1)))
    assert r.apply(decode(change(4, "update", 1, "late"))) == STALE
    assert r.apply(decode(snapshot(1, "backfill"))) == STALE
    assert live(r) == {}
    assert r.state("orders", {"id": Decimal(1)}) == RowState(5, None)


def test_a_snapshot_applies_only_to_an_untouched_row() -> None:
    r = Replica()
    assert r.apply(decode(snapshot(1, "scanned"))) == APPLIED  # untouched: applied
    assert r.apply(decode(change(3, "update", 1, "live"))) == APPLIED  # a change wins
    r.apply(decode(change(4, "update", 2, "live2")))
    assert r.apply(decode(snapshot(2, "scanned2"))) == STALE  # touched: the change stays
    assert live(r) == {key_of(1): "live", key_of(2): "live2"}


def test_advance_refuses_an_unresolved_overflow_pointer() -> None:
    pointer = {**decode(change(1, "update", 1, "x")), "new": None, "old": None,
               "overflow": "s3://b/overflow/k.json"}
    r = Replica()
    with pytest.raises(ValueError, match="resolve it first"):
        r.apply(pointer)
    assert r.seen == set()  # not marked seen: the resolved envelope still applies
    with pytest.raises(ValueError):
        advance(None, pointer)


@st.composite
def histories(draw: st.DrawFn, wide: bool = False
              ) -> tuple[list[bytes], list[bytes], dict[str, str]]:
    """Snapshots of the rows that existed before the stream, then a change history of a few
    rows (seq crossing digit-count boundaries); and the source's final state. `wide`: the rows
    have long composite keys (`source_keys`)."""
    keys = range(4)
    existing = {k: f"initial{k}" for k in draw(st.sets(st.sampled_from(keys)))}
    snaps = [snapshot(k, v, wide) for k, v in existing.items()]
    rows = dict(existing)
    seq = draw(st.sampled_from([1, 95, 999_999_999_999_999_999_990]))
    changes = []
    for step in range(draw(st.integers(0, 14))):
        key = draw(st.sampled_from(keys))
        seq += draw(st.integers(1, 7))
        if key in rows and draw(st.booleans()):
            changes.append(change(seq, "delete", key, old=rows.pop(key), wide=wide))
        else:
            op = "update" if key in rows else "insert"
            rows[key] = f"v{step}"
            changes.append(change(seq, op, key, rows[key], wide=wide))
    return snaps, changes, {key_of(k, wide): v for k, v in rows.items()}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), history=histories())
def test_any_permutation_with_duplicates_ends_where_in_order_application_does(
        data: st.DataObject, history: tuple[list[bytes], list[bytes], dict[str, str]]) -> None:
    snaps, changes, source = history
    in_order = Replica()
    for d in snaps + changes:
        in_order.apply(decode(d))
    assert live(in_order) == source
    # WHEN the bus delivers the same envelopes in any order, some more than once
    every = snaps + changes
    extra = data.draw(st.lists(st.sampled_from(every), max_size=6)) if every else []
    delivered = data.draw(st.permutations(every + extra))
    r = Replica()
    for d in delivered:
        r.apply(decode(d))
    # THEN the replica is the same, tombstones included
    assert live(r) == source
    assert r.rows == in_order.rows
    assert r.duplicates == len(extra)


# --------------------------------------------------------------------------- overflow


@pytest.fixture
def bus(moto_world: Any) -> Iterator[dict[str, Any]]:
    """moto Kinesis (one shard) and S3 with an overflow bucket."""
    kinesis, s3 = moto_world.client("kinesis"), moto_world.client("s3")
    kinesis.create_stream(StreamName="dmsbus-t-bus", ShardCount=1)
    s3.create_bucket(Bucket="overflow-b",
                     CreateBucketConfiguration={"LocationConstraint": moto_world.region})
    yield {"kinesis": kinesis, "s3": s3}


def publish_and_read(bus: dict[str, Any], datas: list[bytes],
                     max_record_bytes: int = 1_000_000) -> list[dict[str, Any]]:
    """Put envelopes with the fan-in's publisher; read them back as Lambda event records."""
    from dms_event_bus.handlers import bus as publisher
    from dms_event_bus.handlers.envelope import Envelope

    envs = []
    for d in datas:
        env = decode(d)
        envs.append(Envelope(id=env["id"], table=env["table"], data=d, seq=env["seq"],
                             op=env["op"], keys_json=row_key(env["keys"]), ts=env["ts"],
                             partition_key="orders|" + row_key(env["keys"]),
                             source_json=dumps(env["source"])))
    result = publisher.put_envelopes(envs, kinesis=bus["kinesis"], s3=bus["s3"],
                                     stream_name="dmsbus-t-bus", overflow_bucket="overflow-b",
                                     max_record_bytes=max_record_bytes)
    assert result.first_failed is None
    shard = bus["kinesis"].list_shards(StreamName="dmsbus-t-bus")["Shards"][0]["ShardId"]
    it = bus["kinesis"].get_shard_iterator(StreamName="dmsbus-t-bus", ShardId=shard,
                                           ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = bus["kinesis"].get_records(ShardIterator=it)["Records"]
    return [kinesis_record(r["Data"], r["SequenceNumber"], r["PartitionKey"]) for r in got]


def test_an_overflow_pointer_is_replaced_by_the_full_envelope_from_s3(bus: dict[str, Any]) -> None:
    big = "x" * 3000
    datas = [change(1, "insert", 1, "small"), change(2, "update", 1, big)]
    recs = publish_and_read(bus, datas, max_record_bytes=2000)
    pointer = decode(base64.b64decode(recs[1]["kinesis"]["data"]))
    assert pointer["overflow"].startswith("s3://overflow-b/overflow/orders/")
    assert pointer["new"] is None
    # WHEN the Lambda wrapper resolves it with the injected S3 client
    r = Replica()
    reader = OverflowReader(bus["s3"])
    handler = kinesis_handler(r.apply, overflow=reader)
    assert handler({"Records": recs}) == {"batchItemFailures": []}
    # THEN the replica holds the full row, byte for byte the envelope that was too large
    assert live(r) == {key_of(1): big} and reader.fetched == 1
    assert (r.get("orders", {"id": Decimal(1)}) or {})["amount"] == Decimal(BIG)


def test_the_default_reader_creates_its_s3_client_on_the_first_pointer(
        bus: dict[str, Any]) -> None:
    recs = publish_and_read(bus, [change(2, "update", 1, "y" * 3000)], max_record_bytes=2000)
    reader = OverflowReader()
    assert reader._s3 is None
    full = reader.resolve(consumer.record_envelope(recs[0]))
    assert full["new"]["v"] == "y" * 3000 and reader._s3 is not None


def test_an_overflow_object_that_is_not_the_pointers_change_is_malformed(
        bus: dict[str, Any]) -> None:
    recs = publish_and_read(bus, [change(2, "update", 1, "y" * 3000)], max_record_bytes=2000)
    pointer = consumer.record_envelope(recs[0])
    bucket, key = consumer.split_uri(pointer["overflow"])
    bus["s3"].put_object(Bucket=bucket, Key=key, Body=change(3, "update", 1, "z" * 3000))
    with pytest.raises(MalformedEnvelope, match="id 'e3' is not the pointer's 'e2'"):
        OverflowReader(bus["s3"]).resolve(pointer)


def test_a_missing_overflow_object_fails_the_record_for_a_retry(bus: dict[str, Any]) -> None:
    recs = publish_and_read(bus, [change(1, "insert", 1, "a"),
                                  change(2, "update", 1, "y" * 3000)], max_record_bytes=2000)
    pointer = consumer.record_envelope(recs[1])
    bucket, key = consumer.split_uri(pointer["overflow"])
    bus["s3"].delete_object(Bucket=bucket, Key=key)
    r = Replica()
    handler = kinesis_handler(r.apply, s3=bus["s3"])
    assert handler({"Records": recs}) == {
        "batchItemFailures": [{"itemIdentifier": recs[1]["kinesis"]["sequenceNumber"]}]}
    assert live(r) == {key_of(1): "a"} and handler.malformed == 0


# --------------------------------------------------------------------------- the Lambda wrapper


def test_a_batch_is_processed_in_order_and_reports_no_failure() -> None:
    seen: list[str] = []
    handler = kinesis_handler(lambda env: seen.append(env["id"]))
    recs = records([change(i, "insert", i, "a") for i in range(1, 6)])
    assert handler({"Records": recs}, None) == {"batchItemFailures": []}
    assert seen == ["e1", "e2", "e3", "e4", "e5"]


def test_the_first_failing_record_is_reported_and_nothing_after_it_is_processed(
        capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    def process(env: dict[str, Any]) -> None:
        if env["id"] == "e3":
            raise RuntimeError("throttled")
        seen.append(env["id"])

    recs = records([change(i, "insert", i, "a") for i in range(1, 6)])
    handler = kinesis_handler(process)
    assert handler({"Records": recs}) == {
        "batchItemFailures": [{"itemIdentifier": recs[2]["kinesis"]["sequenceNumber"]}]}
    assert seen == ["e1", "e2"]
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert logged[0]["level"] == "error" and "throttled" in logged[0]["reason"]
    assert logged[0]["sequenceNumber"] == recs[2]["kinesis"]["sequenceNumber"]


def test_a_failing_first_record_is_a_function_error_so_the_mapping_bisects() -> None:
    recs = records([change(1, "insert", 1, "a"), change(2, "insert", 2, "b")])

    def process(env: dict[str, Any]) -> None:
        raise RuntimeError("down")

    with pytest.raises(FirstRecordFailed) as caught:
        kinesis_handler(process)({"Records": recs})
    assert caught.value.sequence_number == recs[0]["kinesis"]["sequenceNumber"]


def test_a_malformed_record_fails_by_default_and_is_logged(
        capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []
    recs = records([change(1, "insert", 1, "a"), b"not json", change(3, "insert", 3, "c")])
    handler = kinesis_handler(lambda env: seen.append(env["id"]))
    assert handler({"Records": recs}) == {
        "batchItemFailures": [{"itemIdentifier": recs[1]["kinesis"]["sequenceNumber"]}]}
    assert seen == ["e1"] and handler.malformed == 1
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["message"] == "malformed record" and "not JSON" in line["reason"]
    with pytest.raises(FirstRecordFailed, match="malformed record"):
        handler({"Records": recs[1:]})


def test_an_on_malformed_hook_that_returns_lets_the_batch_go_on() -> None:
    seen: list[str] = []
    parked: list[tuple[str, str]] = []
    recs = records([change(1, "insert", 1, "a"), b'{"v":2}', change(3, "insert", 3, "c")])
    handler = kinesis_handler(
        lambda env: seen.append(env["id"]),
        on_malformed=lambda rec, err: parked.append((rec["kinesis"]["sequenceNumber"],
                                                     str(err))))
    assert handler({"Records": recs}) == {"batchItemFailures": []}
    assert seen == ["e1", "e3"]
    assert parked == [(recs[1]["kinesis"]["sequenceNumber"],
                       "unsupported envelope version v=Decimal('2') (this consumer reads v=1)")]


def test_an_on_malformed_hook_that_raises_fails_the_record() -> None:
    def hook(rec: Any, err: Exception) -> None:
        raise OSError("dead-letter store unreachable")

    recs = records([change(1, "insert", 1, "a"), b"{}"])
    handler = kinesis_handler(lambda env: None, on_malformed=hook)
    assert handler({"Records": recs}) == {
        "batchItemFailures": [{"itemIdentifier": recs[1]["kinesis"]["sequenceNumber"]}]}


def test_data_that_is_not_base64_is_malformed() -> None:
    rec = kinesis_record(b"{}", "1")
    rec["kinesis"]["data"] = "***"
    with pytest.raises(MalformedEnvelope, match="not base64"):
        consumer.record_envelope(rec)


def test_with_little_time_left_the_rest_of_the_batch_is_handed_back() -> None:
    class Context:
        left = [60_000, 1_000]

        def get_remaining_time_in_millis(self) -> int:
            return self.left.pop(0) if self.left else 0

    seen: list[str] = []
    recs = records([change(i, "insert", i, "a") for i in range(1, 4)])
    result = kinesis_handler(lambda env: seen.append(env["id"]))({"Records": recs}, Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": recs[2]["kinesis"]
                                             ["sequenceNumber"]}]}
    assert seen == ["e1", "e2"]


def run_mapping(handler: Callable[[dict[str, Any], Any], Any], recs: list[dict[str, Any]],
                batch_size: int, max_retries: int) -> list[list[str]]:
    """Lambda's Kinesis event source mapping with ReportBatchItemFailures, bisect on function
    error, MaximumRetryAttempts and an on-failure destination, over one shard; returns the
    sequence numbers of each batch sent to the on-failure destination."""
    discarded: list[list[str]] = []

    def run(batch: list[dict[str, Any]], retries: int) -> None:
        while batch:
            seqs = [r["kinesis"]["sequenceNumber"] for r in batch]
            try:
                response = handler({"Records": batch}, None)
            except Exception:
                if len(batch) > 1:  # bisect; halves keep the retry count
                    half = len(batch) // 2
                    run(batch[:half], retries)
                    run(batch[half:], retries)
                    return
            else:
                failures = (response or {}).get("batchItemFailures") or []
                if not failures:
                    return
                batch = batch[min(seqs.index(f["itemIdentifier"]) for f in failures):]
            retries += 1
            if retries > max_retries:
                discarded.append([r["kinesis"]["sequenceNumber"] for r in batch])
                return

    for start in range(0, len(recs), batch_size):
        run(recs[start:start + batch_size], 0)
    return discarded


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), history=histories(), batch_size=st.integers(1, 8))
def test_under_the_mapping_malformed_records_end_alone_in_the_dlq_and_the_replica_converges(
        data: st.DataObject, history: tuple[list[bytes], list[bytes], dict[str, str]],
        batch_size: int) -> None:
    snaps, changes, source = history
    # GIVEN the history on the bus with malformed records among it and transient failures
    every = list(snaps + changes)
    bad_at = data.draw(st.lists(st.integers(0, len(every)), max_size=3, unique=True))
    for i in sorted(bad_at, reverse=True):
        every.insert(i, b'{"v":1,"id":"broken"}')
    recs = records(every)
    ids = [decode(d)["id"] for d in snaps + changes]
    flaky = set(data.draw(st.lists(st.sampled_from(ids), max_size=4))) if ids else set()
    r = Replica()

    def process(env: dict[str, Any]) -> None:
        if env["id"] in flaky:
            flaky.discard(env["id"])  # fails once (throttled), then works
            raise RuntimeError("throttled")
        r.apply(env)

    # WHEN a mapping with 3 retries delivers it
    discarded = run_mapping(kinesis_handler(process), recs, batch_size, max_retries=3)
    # THEN each malformed record is alone in the DLQ, nothing else is, and the replica is the
    # source's state
    bad_seqs = sorted(recs[i + k]["kinesis"]["sequenceNumber"]
                      for k, i in enumerate(sorted(bad_at)))
    assert sorted(s for batch in discarded for s in batch) == bad_seqs
    assert all(len(batch) == 1 for batch in discarded)
    assert live(r) == source


# --------------------------------------------------------------------------- the archive


def test_an_archive_object_splits_into_its_envelopes() -> None:
    import gzip

    from dms_event_bus.consumer import archive_envelopes

    datas = [change(1, "insert", 1, "a"), snapshot(2, "s"), change(2, "delete", 1)]
    for body in (b"".join(datas), gzip.compress(b"".join(datas)), b"\n".join(datas) + b"\n"):
        assert list(archive_envelopes(body)) == [decode(d) for d in datas]
    with pytest.raises(MalformedEnvelope, match="at character 0: missing field"):
        list(archive_envelopes(b'{"v":1}' + datas[0]))
    with pytest.raises(MalformedEnvelope, match=r"at character \d+: not JSON"):
        list(archive_envelopes(datas[0] + b"garbage"))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), history=histories())
def test_a_replay_of_archive_objects_in_any_order_ends_at_the_source_state(
        data: st.DataObject, history: tuple[list[bytes], list[bytes], dict[str, str]]) -> None:
    import gzip

    from dms_event_bus.consumer import archive_envelopes

    snaps, changes, source = history
    every = snaps + changes
    # GIVEN the bus's records in Firehose objects (buffers of consecutive records)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(every) - 1)), max_size=4)))
    bounds = [0, *cuts, len(every)]
    objects = [gzip.compress(b"".join(every[a:b])) for a, b in zip(bounds, bounds[1:],
                                                                   strict=False)]
    # WHEN a replay reads them in any order (S3 lists by key, not by arrival), into a replica
    # that already holds part of the history (a consumer catching up)
    r = Replica()
    for d in data.draw(st.lists(st.sampled_from(every), max_size=5)) if every else []:
        r.apply(decode(d))
    for body in data.draw(st.permutations(objects)):
        for env in archive_envelopes(body):
            r.apply(env)
    assert live(r) == source


# --------------------------------------------------------------------------- the guide's example


def guide_example() -> str:
    """The example consumer of docs/consumers.md, as written there."""
    text = (ROOT / "docs" / "consumers.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    (code,) = [b for b in blocks if b.startswith('"""replica_consumer.py')]
    return code


@pytest.mark.parametrize("wide", [False, True], ids=["id-key", "2300-byte-key"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_the_guides_example_consumer_keeps_a_replica_table(
        data: st.DataObject, wide: bool) -> None:
    import hashlib
    import os
    import types

    from boto3.dynamodb.types import TypeDeserializer

    from tools.localpipe import aws

    snaps, changes, source = data.draw(histories(wide))
    every = snaps + changes
    extra = data.draw(st.lists(st.sampled_from(every), max_size=4)) if every else []
    delivered = data.draw(st.permutations(every + extra))
    with aws.moto_world() as world:
        ddb = world.client("dynamodb")
        ddb.create_table(TableName="replica", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        os.environ["REPLICA_TABLE"] = "replica"
        try:
            module = types.ModuleType("replica_consumer")
            exec(compile(guide_example(), "docs/consumers.md", "exec"), module.__dict__)
            # WHEN the mapping delivers the history in any order, with duplicates, in batches
            for start in range(0, len(delivered), 3):
                batch = records(delivered[start:start + 3])
                assert module.handler({"Records": batch}, None) == {"batchItemFailures": []}
        finally:
            del os.environ["REPLICA_TABLE"]
        items = ddb.scan(TableName="replica")["Items"]
    # THEN the live items are the source's rows; deleted rows are tombstones with their seq
    keys = {i["pk"]["S"]: row_key(TypeDeserializer().deserialize(i["keys"])) for i in items}
    rows = {keys[i["pk"]["S"]]: i["row"]["M"]["v"]["S"] for i in items if "row" in i}
    assert rows == source
    assert all(i["seq"]["S"] for i in items if "row" not in i)
    # AND each item's pk fits DynamoDB's 2,048 bytes: a long one is the bus's digest form
    for pk, key in keys.items():
        full = f"orders|{key}"
        digest = "orders|#sha256:" + hashlib.sha256(full.encode("utf-8")).hexdigest()
        assert pk == (digest if wide else full) and len(pk.encode("utf-8")) <= 2048
