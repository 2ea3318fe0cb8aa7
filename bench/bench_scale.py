"""Scale: the program under mocks with 10, 50 and 200 declared tables, and the fan-in on a
10,000-record batch.

    python -m bench.bench_scale [--repeat 5] [--records 10000]

1. Stack config = Pulumi.dev.yaml with its tables replaced by N generated ones (half with a
   sort key). Runs `__main__.py` under `tools.mockrun.run_program`, N = 10, 50, 200 (median
   of `--repeat`, interleaved, after a warm-up). Reports resources declared, resources per
   table beyond the fixed part ((R(N) - R(10)) / (N - 10), constant when the program is
   linear), evaluation time relative to N = 10 (linear: t(200)/t(10) <= 20 plus the fixed
   part, i.e. at most 22) and the time per added table between sizes (equal when linear).
2. The fan-in handler on one 10,000-record batch built from real moto stream records (Lambda's
   JSON form): wall time and peak Python heap (tracemalloc) of the handler with a Kinesis
   client that keeps nothing, and with moto's Kinesis; baseline measured in the same run:
   `json.loads` of the same event (what the Lambda runtime does before the handler runs).

Benchmarks are not tests: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from typing import Any

from bench.bench_fanin import FakeKinesis
from settings.base import PROJECT as NS
from settings.stackfile import as_engine_config, read_stack_config


def stack_config(n: int) -> dict[str, Any]:
    config = read_stack_config("dev")
    tables = {}
    for i in range(n):
        table: dict[str, Any] = {
            "source": {"schema": "sales", "table": f"t{i:03d}"},
            "partition_key": {"name": "id", "type": "N"},
        }
        if i % 2:
            table["sort_key"] = {"name": "line_no", "type": "N"}
        tables[f"t{i:03d}"] = table
    config[f"{NS}:tables"] = tables
    for key, value in list(config.items()):
        # sections that name the dev stack's own tables are dropped (they are not scaled)
        if key != f"{NS}:tables" and isinstance(value, dict) and key in (
            f"{NS}:writeback", f"{NS}:ingest_api"
        ):
            config.pop(key)
    dms = config.get(f"{NS}:dms")
    if isinstance(dms, dict):
        dms = dict(dms)
        dms["tables"] = {}
        config[f"{NS}:dms"] = dms
    return config


def program_run(n: int) -> tuple[float, int]:
    from tools.mockrun import main_program, run_program

    engine_config, secret_keys = as_engine_config(stack_config(n))
    # CPU time of this process: the machine may be shared, wall time would count the others
    started = time.process_time()
    plan = run_program("dev", engine_config, main_program(), secret_keys=secret_keys)
    return time.process_time() - started, len(plan.resources)


def bench_program(repeat: int, *, collector: bool = True) -> list[dict[str, Any]]:
    """Median of `repeat` runs per N, the sizes interleaved (10, 50, 200, 10, ...) after one
    warm-up run (imports), each after a full garbage collection. `collector=False` disables
    Python's cyclic garbage collector during each run (a diagnostic: how much of the time,
    and of its growth, is the collector walking Pulumi's growing object graph)."""
    import gc
    import statistics

    sizes = (10, 50, 200)
    program_run(10)  # warm-up: module imports are not evaluation time
    times: dict[int, list[float]] = {n: [] for n in sizes}
    counts: dict[int, int] = {}
    for _ in range(repeat):
        for n in sizes:
            gc.collect()
            if not collector:
                gc.disable()
            try:
                seconds, counts[n] = program_run(n)
            finally:
                gc.enable()
            times[n].append(seconds)
    rows: list[dict[str, Any]] = [
        {"tables": n, "resources": counts[n], "seconds": statistics.median(times[n])}
        for n in sizes
    ]
    base = rows[0]
    for prev, row in zip([None, *rows], rows, strict=False):
        extra = row["tables"] - base["tables"]
        row["per_table"] = (row["resources"] - base["resources"]) / extra if extra else None
        row["time_ratio"] = row["seconds"] / base["seconds"]
        row["ms_per_added_table"] = (
            (row["seconds"] - prev["seconds"]) * 1000 / (row["tables"] - prev["tables"])
            if prev else None
        )
    return rows


def _stream_event(records: int) -> tuple[dict[str, Any], str]:
    """A Lambda event of `records` real stream records read from moto (Lambda's JSON form)."""
    import boto3

    from tests.e2e.lambda_events import to_lambda_record

    region = "eu-west-1"
    ddb = boto3.client("dynamodb", region_name=region)
    streams = boto3.client("dynamodbstreams", region_name=region)
    table = "dmsbus-bench-orders"
    ddb.create_table(
        TableName=table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for i in range(records):
        ddb.put_item(TableName=table, Item={
            "id": {"N": str(i)}, "name": {"S": f"customer {i} ünïcødé"},
            "amount": {"N": "12345678901234567890123456789012345678"},
            "note": {"S": "x" * 200}, "blob": {"B": b"\x00\x01" * 16},
        })
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    raw: list[dict[str, Any]] = []
    while it and len(raw) < records:
        page = streams.get_records(ShardIterator=it, Limit=1000)
        raw.extend(page["Records"])
        it = page.get("NextShardIterator")
    return {"Records": [to_lambda_record(r, arn, region) for r in raw[:records]]}, table


def _measure(run: Any) -> tuple[Any, float, int]:
    """(result, seconds, peak traced bytes) of run()."""
    tracemalloc.start()
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak


def bench_fanin(records: int) -> dict[str, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"
    import boto3
    from moto import mock_aws

    from tests.e2e import fanin_adapter
    from tests.e2e.esm import LambdaContext

    with mock_aws():
        region = "eu-west-1"
        event, table = _stream_event(records)
        text = json.dumps(event)
        event_bytes = len(text)
        kinesis = boto3.client("kinesis", region_name=region)
        s3 = boto3.client("s3", region_name=region)
        kinesis.create_stream(StreamName="dmsbus-bench-bus", ShardCount=4)
        s3.create_bucket(Bucket="dmsbus-bench-overflow",
                         CreateBucketConfiguration={"LocationConstraint": region})
        os.environ.update(BUS_STREAM_NAME="dmsbus-bench-bus",
                          OVERFLOW_BUCKET="dmsbus-bench-overflow",
                          TABLES=json.dumps({table: "orders"}), MAX_RECORD_BYTES="1000000")

        # baseline, same run: the memory of parsing the event's JSON once (what the Lambda
        # runtime itself does with every batch before the handler runs)
        _, baseline_seconds, baseline_peak = _measure(lambda t=text: json.loads(t))

        # the handler alone (Kinesis client that keeps nothing)
        counting = FakeKinesis()
        fanin_adapter.reset(kinesis=counting, s3=s3)
        response, seconds, peak = _measure(
            lambda: fanin_adapter.invoke(event, LambdaContext("bench-fanin", 900_000)))

        # and with moto's Kinesis behind it (moto keeps the bus in this process's heap)
        fanin_adapter.reset(kinesis=kinesis, s3=s3)
        moto_response, moto_seconds, moto_peak = _measure(
            lambda: fanin_adapter.invoke(event, LambdaContext("bench-fanin", 900_000)))
        failures = len((response or {}).get("batchItemFailures", [])) + len(
            (moto_response or {}).get("batchItemFailures", []))
        return {"records": len(event["Records"]), "event_json_bytes": event_bytes,
                "published": counting.records, "put_calls": counting.calls,
                "bus_bytes": counting.bytes, "seconds": seconds, "peak_bytes": peak,
                "baseline_seconds": baseline_seconds, "baseline_peak_bytes": baseline_peak,
                "moto_seconds": moto_seconds, "moto_peak_bytes": moto_peak,
                "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--skip-program", action="store_true")
    parser.add_argument("--skip-fanin", action="store_true")
    args = parser.parse_args()
    if not args.skip_program:
        print("| declared tables | resources | resources/table beyond N=10 | evaluation CPU s "
              "(median) | t(N)/t(10) | CPU ms per added table |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        rows = bench_program(args.repeat)
        for row in rows:
            per = "-" if row["per_table"] is None else f"{row['per_table']:.2f}"
            slope = "-" if row["ms_per_added_table"] is None else \
                f"{row['ms_per_added_table']:.1f}"
            print(f"| {row['tables']} | {row['resources']} | {per} | {row['seconds']:.2f} "
                  f"| {row['time_ratio']:.2f} | {slope} |")
        nogc = bench_program(args.repeat, collector=False)
        print("| same, cyclic GC disabled during the run (diagnostic) | | | "
              + " / ".join(f"{r['seconds']:.2f}" for r in nogc)
              + f" | {nogc[-1]['time_ratio']:.2f} (N=200) | |")
        pers = {row["per_table"] for row in rows[1:]}
        fixed = rows[0]["resources"] - 10 * rows[1]["per_table"]
        print(f"resources per table: {', '.join(f'{x:.2f}' for x in sorted(pers))} "
              f"({'constant' if len(pers) == 1 else 'NOT constant'}; fixed part {fixed:.0f}); "
              f"t(200)/t(10) = {rows[-1]['time_ratio']:.2f} (linear: at most 22); without the "
              f"cyclic GC {nogc[-1]['time_ratio']:.2f}")
    if not args.skip_fanin:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF/log lines
            fan = bench_fanin(args.records)
        mb = 1024 * 1024
        print()
        print("| fan-in, one batch | records | s | peak traced MiB | peak / baseline |")
        print("| --- | ---: | ---: | ---: | ---: |")
        print(f"| baseline: json.loads of the event ({fan['event_json_bytes'] / mb:.1f} MiB "
              f"JSON) | {fan['records']} | {fan['baseline_seconds']:.2f} "
              f"| {fan['baseline_peak_bytes'] / mb:.1f} | 1.0 |")
        print(f"| handler, Kinesis client keeping nothing | {fan['published']} "
              f"| {fan['seconds']:.2f} | {fan['peak_bytes'] / mb:.1f} "
              f"| {fan['peak_bytes'] / fan['baseline_peak_bytes']:.2f} |")
        print(f"| handler + moto Kinesis (bus kept in-process) | {fan['records']} "
              f"| {fan['moto_seconds']:.2f} | {fan['moto_peak_bytes'] / mb:.1f} "
              f"| {fan['moto_peak_bytes'] / fan['baseline_peak_bytes']:.2f} |")
        print(f"PutRecords calls: {fan['put_calls']}, bus bytes {fan['bus_bytes'] / mb:.1f} MiB, "
              f"batchItemFailures {fan['failures']}")


if __name__ == "__main__":
    main()
