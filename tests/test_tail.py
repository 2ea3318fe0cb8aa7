"""`python -m tools.tail`: the bus of a stack read from moto's Kinesis across shards, decoded
with the consumer kit (overflow pointers from moto's S3), printed as the demo prints envelopes
or as JSON lines; bad input and a missing region, credentials or stream as one line, exit 2.

Every test writes its own stack file into a temporary folder (`--stack-dir`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from dms_event_bus.consumer import decode, dumps, row_key
from dms_event_bus.handlers import bus as publisher
from dms_event_bus.handlers.envelope import Envelope, stream_envelope
from tools import tail

STACK = "tl"
STREAM = "dmsbus-tl-bus"
BIG = "12345678901234567890123456789012345678"


def write_stack(folder: Path, region: str | None = "eu-west-1", name: str = STACK) -> Path:
    config: dict[str, Any] = {
        "dms-event-bus:tables": {"orders": {"partition_key": {"name": "id", "type": "N"}}},
    }
    if region:
        config["aws:region"] = region
    (folder / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))
    return folder


def envelope(seq: int, op: str, key: int, table: str = "orders", value: str = "v") -> Envelope:
    """An envelope from the fan-in's converter."""
    keys = {"id": {"N": str(key)}}
    ddb: dict[str, Any] = {"Keys": keys, "SequenceNumber": str(seq),
                           "ApproximateCreationDateTime": 1767225600 + seq}
    if op != "delete":
        ddb["NewImage"] = {**keys, "v": {"S": value}, "amount": {"N": BIG}}
    if op != "insert":
        ddb["OldImage"] = {**keys, "v": {"S": "old"}}
    arn = (f"arn:aws:dynamodb:eu-west-1:123456789012:table/dmsbus-tl-{table}/stream/"
           "2026-01-01T00:00:00.000")
    name = {"insert": "INSERT", "update": "MODIFY", "delete": "REMOVE"}[op]
    return stream_envelope({"eventID": f"{table}-e{seq}", "eventName": name,
                            "eventSourceARN": arn, "dynamodb": ddb}, table)


@pytest.fixture
def world(moto_world: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    kinesis, s3 = moto_world.client("kinesis"), moto_world.client("s3")
    kinesis.create_stream(StreamName=STREAM, ShardCount=4)
    s3.create_bucket(Bucket="tl-overflow",
                     CreateBucketConfiguration={"LocationConstraint": moto_world.region})
    write_stack(tmp_path, moto_world.region)
    yield {"kinesis": kinesis, "s3": s3, "dir": tmp_path}


def put(world: dict[str, Any], envs: list[Envelope], max_record_bytes: int = 1_000_000) -> None:
    result = publisher.put_envelopes(envs, kinesis=world["kinesis"], s3=world["s3"],
                                     stream_name=STREAM, overflow_bucket="tl-overflow",
                                     max_record_bytes=max_record_bytes)
    assert result.first_failed is None


def run(world: dict[str, Any], *args: str, sleep: Any = None) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = tail.main(["--stack", STACK, "--stack-dir", str(world["dir"]), *args],
                     out=lines.append, sleep=sleep or (lambda s: None))
    return code, lines


def shards_holding(world: dict[str, Any]) -> int:
    k = world["kinesis"]
    used = 0
    for s in k.list_shards(StreamName=STREAM)["Shards"]:
        it = k.get_shard_iterator(StreamName=STREAM, ShardId=s["ShardId"],
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        used += bool(k.get_records(ShardIterator=it)["Records"])
    return used


def test_every_shard_is_read_and_each_rows_changes_stay_in_order(world: dict[str, Any]) -> None:
    # GIVEN 12 rows, 3 changes each, spread over the 4 shards by partition key
    envs = [envelope(100 + 12 * step + key, op, key)
            for step, op in enumerate(("insert", "update", "delete")) for key in range(12)]
    put(world, envs)
    assert shards_holding(world) >= 2
    # WHEN the tail reads the bus as JSON lines
    code, lines = run(world, "--json")
    # THEN every envelope is there once, byte for byte what the fan-in put (exact numbers)
    assert code == 0
    assert sorted(lines) == sorted(e.data.decode() for e in envs)
    per_row: dict[str, list[int]] = {}
    for line in lines:
        env = decode(line)
        per_row.setdefault(row_key(env["keys"]), []).append(int(env["seq"]))
    assert len(per_row) == 12 and all(seqs == sorted(seqs) for seqs in per_row.values())


def test_lines_are_printed_as_the_demo_prints_envelopes(world: dict[str, Any]) -> None:
    from tools.demo import envelope_line

    put(world, [envelope(1, "insert", 1, value="Grüße")])
    code, lines = run(world)
    env = decode(envelope(1, "insert", 1, value="Grüße").data)
    assert code == 0 and lines == [f"{env['ts']} {envelope_line(env).strip()}"]
    assert "bus <- insert   orders" in lines[0] and BIG[:20] in lines[0] and "Grüße" in lines[0]


def test_table_filter_and_limit(world: dict[str, Any]) -> None:
    put(world, [envelope(i, "insert", i, table="orders" if i % 2 else "parcels")
                for i in range(1, 11)])
    code, lines = run(world, "--json", "--table", "parcels")
    assert code == 0 and sorted(decode(x)["id"] for x in lines) == sorted(
        f"parcels-e{i}" for i in range(2, 11, 2))
    code, lines = run(world, "--json", "--limit", "3")
    assert code == 0 and len(lines) == 3


def test_from_a_timestamp_shows_only_what_arrived_after_it(world: dict[str, Any]) -> None:
    put(world, [envelope(i, "insert", i) for i in range(1, 6)])
    time.sleep(0.05)
    after = datetime.now(UTC)
    time.sleep(0.05)
    put(world, [envelope(i, "update", i - 5) for i in range(6, 9)])
    stamp = after.strftime("%Y-%m-%dT%H:%M:%S.%f")  # no zone: UTC
    code, lines = run(world, "--json", "--from", stamp)
    assert code == 0 and sorted(decode(x)["id"] for x in lines) == [
        "orders-e6", "orders-e7", "orders-e8"]
    code, lines = run(world, "--json", "--from", after.isoformat().replace("+00:00", "Z"))
    assert len(lines) == 3


def test_an_overflow_pointer_is_printed_as_the_full_envelope(
        world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    big = envelope(7, "update", 1, value="x" * 5000)
    put(world, [envelope(6, "insert", 1), big], max_record_bytes=3000)
    code, lines = run(world, "--json")
    assert code == 0 and lines[-1] == big.data.decode()
    # AND without read access to the bucket the pointer is shown and the reason goes to stderr
    for obj in world["s3"].list_objects_v2(Bucket="tl-overflow")["Contents"]:
        world["s3"].delete_object(Bucket="tl-overflow", Key=obj["Key"])
    capsys.readouterr()
    code, lines = run(world, "--json")
    assert code == 0 and json.loads(lines[-1])["overflow"].startswith("s3://tl-overflow/")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "could not read s3://tl-overflow/" in err[0] and "NoSuchKey" in err[0]


def test_follow_prints_what_arrives_later_from_latest(world: dict[str, Any]) -> None:
    put(world, [envelope(1, "insert", 1)])  # before the tail starts: not shown with LATEST
    later = [envelope(2, "update", 1), envelope(3, "insert", 2)]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        if not sleeps:
            put(world, later)
        sleeps.append(seconds)

    code, lines = run(world, "--json", "--follow", "--from", "LATEST", "--limit", "2",
                      sleep=sleep)
    assert code == 0 and sorted(lines) == sorted(e.data.decode() for e in later)
    assert sleeps and all(s == tail.POLL_SECONDS for s in sleeps)


class ReshardedKinesis:
    """A stream after a split: a closed parent holding a row's older changes, two children
    holding the newer ones. (moto keeps writing to a split shard, so it cannot show this.)"""

    def __init__(self, parent: list[bytes], children: list[bytes]) -> None:
        self.data = {"shardId-0": parent, "shardId-1": children, "shardId-2": []}

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        # children listed first: the reader must still wait for their parent
        return {"Shards": [
            {"ShardId": "shardId-1", "ParentShardId": "shardId-0",
             "SequenceNumberRange": {"StartingSequenceNumber": "10"}},
            {"ShardId": "shardId-2", "ParentShardId": "shardId-0",
             "SequenceNumberRange": {"StartingSequenceNumber": "20"}},
            {"ShardId": "shardId-0", "SequenceNumberRange": {
                "StartingSequenceNumber": "0", "EndingSequenceNumber": "9"}},
        ]}

    def get_shard_iterator(self, *, ShardId: str, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        return {"ShardIterator": f"{ShardId}|0"}

    def get_records(self, *, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        shard, _, pos = ShardIterator.partition("|")
        start = int(pos)
        page = self.data[shard][start:start + 1]  # one record per call: several rounds
        closed = shard == "shardId-0" and start + len(page) >= len(self.data[shard])
        return {"Records": [{"Data": d, "SequenceNumber": f"{start + i}"}
                            for i, d in enumerate(page)],
                "NextShardIterator": None if closed else f"{shard}|{start + len(page)}",
                "MillisBehindLatest": 0}


def test_after_a_reshard_the_parent_is_read_before_its_children() -> None:
    envs = [envelope(i, "update", 1, value=f"v{i}") for i in range(1, 6)]
    shown: list[dict[str, Any]] = []
    reader = tail.Tail(kinesis=ReshardedKinesis([e.data for e in envs[:3]],
                                                [e.data for e in envs[3:]]),
                       stream=STREAM, start="TRIM_HORIZON", overflow=None,  # type: ignore[arg-type]
                       emit=shown.append, warn=print, sleep=lambda s: None)
    reader.run(follow=False, limit=None)
    assert [e["seq"] for e in shown] == ["1", "2", "3", "4", "5"]


def test_a_record_that_is_not_an_envelope_is_named_and_the_rest_printed(
        world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    put(world, [envelope(1, "insert", 1)])
    world["kinesis"].put_record(StreamName=STREAM, Data=b"not json", PartitionKey="x")
    code, lines = run(world, "--json")
    err = capsys.readouterr().err.splitlines()
    assert code == tail.EXIT_MALFORMED and len(lines) == 1
    assert len(err) == 1 and "not an envelope: not JSON" in err[0]


def test_a_record_nested_too_deep_is_named_and_later_records_printed(
        world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    deep = json.loads(envelope(2, "insert", 2).data)
    for _ in range(600):
        deep["new"] = {"m": deep["new"]}
    world["kinesis"].put_record(StreamName=STREAM, Data=json.dumps(deep).encode(),
                                PartitionKey="orders|x")
    put(world, [envelope(3, "insert", 3)])
    code, lines = run(world, "--json")
    err = capsys.readouterr().err.splitlines()
    assert code == tail.EXIT_MALFORMED and [decode(line)["seq"] for line in lines] == ["3"]
    assert len(err) == 1 and "not an envelope: nested deeper than" in err[0]


@pytest.mark.parametrize("as_json", [False, True])
def test_a_record_that_cannot_be_shown_is_named_on_one_line_and_tail_goes_on(
        world: dict[str, Any], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    # a printer failing on one envelope (as `dumps` did on a record nested too deep)
    def fragile(show: Any) -> Any:
        def print_one(env: dict[str, Any]) -> str:
            if env["seq"] == "2":
                raise RecursionError("maximum recursion depth exceeded")
            return str(show(env))
        return print_one

    monkeypatch.setattr(tail, "dumps", fragile(tail.dumps))
    monkeypatch.setattr(tail, "line_of", fragile(tail.line_of))
    put(world, [envelope(1, "insert", 1), envelope(2, "update", 1), envelope(3, "update", 1)])
    code, lines = run(world, *(["--json"] if as_json else []))
    err = capsys.readouterr().err.splitlines()
    assert code == tail.EXIT_MALFORMED and len(lines) == 2
    assert len(err) == 1 and "cannot be shown: RecursionError" in err[0]
    assert "record" in err[0] and "\n" not in err[0]


def test_the_stream_name_is_the_one_the_program_declares(tmp_path: Path) -> None:
    from tools.mockrun import run_stack

    write_stack(tmp_path)
    plan = run_stack(STACK, stack_dir=tmp_path)
    assert tail.stack_stream(STACK, tmp_path) == (plan.exports["bus_stream_name"], "eu-west-1")


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        tail.main(argv)
    err = capsys.readouterr().err
    assert caught.value.code == 2 and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(("argv", "expected"), [
    ([], "the following arguments are required: --stack"),
    (["--stack", "tl", "--from", "yesterday"], "expected LATEST, TRIM_HORIZON or an ISO 8601"),
    (["--stack", "tl", "--limit", "0"], "expected a whole number >= 1"),
    (["--stack", "tl", "--table", "dmsbus-tl-orders"], "expected a logical table name"),
    (["--stack", "tl", "--region", "mars-1"], "--region"),
    (["--stack", "tl", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                           expected: str) -> None:
    assert expected in one_line_error(capsys, argv)


def fails(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = tail.main(argv, sleep=lambda s: None)
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_an_unknown_stack_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_stack(tmp_path)
    err = fails(capsys, ["--stack", "nope", "--stack-dir", str(tmp_path)])
    assert "no stack file Pulumi.nope.yaml (stacks found: tl)" in err


def test_an_invalid_stack_config_is_one_line(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  dms-event-bus:tables: 7\n")
    assert "Pulumi.bad.yaml" in fails(capsys, ["--stack", "bad", "--stack-dir", str(tmp_path)])


def test_no_region_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    write_stack(tmp_path, region=None)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    err = fails(capsys, ["--stack", STACK, "--stack-dir", str(tmp_path)])
    assert "no AWS region: pass --region or set aws:region in Pulumi.tl.yaml" in err


def test_no_credentials_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    write_stack(tmp_path)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    err = fails(capsys, ["--stack", STACK, "--stack-dir", str(tmp_path)])
    assert "no usable AWS credentials for Kinesis in eu-west-1" in err


def test_a_stream_that_does_not_exist_is_one_line(moto_world: Any, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_stack(tmp_path, moto_world.region)
    err = fails(capsys, ["--stack", STACK, "--stack-dir", str(tmp_path)])
    assert f"no stream {STREAM} in {moto_world.region}: is the stack deployed" in err


def test_json_lines_are_the_kits_exact_json() -> None:
    env = decode(envelope(1, "insert", 1).data)
    assert dumps(env) == envelope(1, "insert", 1).data.decode()


def _command(tmp_path: Path, **env: str) -> tuple[int, str, str]:
    """The real command line, with no AWS settings from this machine."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    write_stack(tmp_path)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    clean.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"),
                 AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                 AWS_EC2_METADATA_DISABLED="true", **env)
    proc = subprocess.run([sys.executable, "-m", "tools.tail", "--stack", STACK,
                           "--stack-dir", str(tmp_path)], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_the_command_without_credentials_is_one_line(tmp_path: Path) -> None:
    code, out, err = _command(tmp_path)
    assert (code, out) == (2, "") and len(err.splitlines()) == 1, err
    assert "no usable AWS credentials for Kinesis in eu-west-1" in err


def test_the_command_with_an_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = _command(tmp_path, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y",
                              AWS_MAX_ATTEMPTS="1",
                              AWS_ENDPOINT_URL_KINESIS=f"http://127.0.0.1:{port}")
    assert (code, out) == (2, "") and len(err.splitlines()) == 1, err
    assert "cannot reach Kinesis in eu-west-1" in err
