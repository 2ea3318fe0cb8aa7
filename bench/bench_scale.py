"""Scale: the program under mocks with 10, 100 and 1,000 declared tables, and the fan-in on a
10,000-record batch.

    python -m bench.bench_scale [--repeat 3] [--sizes 10,100,1000] [--records 10000]
    python -m bench.bench_scale --garbage 100     # what the collector frees, by type

1. Stack config = tests/stacks/Pulumi.dev.yaml (the tests' dev stack, not the root example a
   user may delete) with its tables replaced by N generated ones (half with a
   sort key). Each measurement runs `__main__.py` under `tools.mockrun.run_program` in a fresh
   interpreter (after a warm-up run there: imports are not evaluation time), twice per size:
   with Python's default collector (the program's `gc.freeze()` / `gc.set_threshold()` made
   no-ops) and with the program's tuning as it ships. Sizes and modes are interleaved; the
   median of `--repeat` runs is reported. Per row: resources declared, resources per table
   beyond the first size (constant when linear), evaluation CPU time and its ratio to the
   first size (goal: t(1000)/t(10) <= 110), CPU ms per added table (flat when linear), the
   collector's collections and CPU time (gc.callbacks), and the growth of the process's peak
   RSS during the run (resource.getrusage).
2. The fan-in handler on one 10,000-record batch built from real moto stream records (Lambda's
   JSON form): wall time and peak Python heap (tracemalloc) of the handler with a Kinesis
   client that keeps nothing, and with moto's Kinesis; baseline measured in the same run:
   `json.loads` of the same event (what the Lambda runtime does before the handler runs).

Benchmarks are not tests: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any
from unittest import mock

from bench.bench_fanin import FakeKinesis
from dms_event_bus.settings.base import PROJECT as NS
from dms_event_bus.settings.stackfile import ROOT, as_engine_config, read_stack_config

#: the stack files the benchmark starts from: the tests' own (tests/fixture_stacks.py)
STACKS_DIR = ROOT / "tests" / "stacks"
#: the interpreter's own collector thresholds, read before any program run changes them
DEFAULT_THRESHOLD = gc.get_threshold()


def stack_config(n: int) -> dict[str, Any]:
    config = read_stack_config("dev", STACKS_DIR)
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


SIZES = (10, 100, 1000)
#: how the collector runs during a measured evaluation
MODES = ("untuned", "tuned")


def _untuned() -> contextlib.AbstractContextManager[Any]:
    """Python's default collector for the run: the program's own tuning (`gc.freeze()`,
    `gc.set_threshold(...)` in `__main__.py`) is undone before it and made a no-op during it,
    whatever function of the program makes those calls."""
    stack = contextlib.ExitStack()
    gc.unfreeze()
    gc.set_threshold(*DEFAULT_THRESHOLD)
    stack.enter_context(mock.patch.object(gc, "freeze", lambda: None))
    stack.enter_context(mock.patch.object(gc, "set_threshold", lambda *_: None))
    return stack


def measure_once(n: int, mode: str) -> dict[str, Any]:
    """One evaluation of the program with `n` tables in THIS process, after a warm-up run
    (imports are not evaluation time): CPU seconds, resources, the collector's collections
    and CPU seconds by generation, and the growth of the process's peak RSS during the run."""
    program_run(10)
    gc.collect()
    collections = [0, 0, 0]
    gc_seconds = [0.0, 0.0, 0.0]
    started: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.process_time())
        elif started:
            collections[info["generation"]] += 1
            gc_seconds[info["generation"]] += time.process_time() - started.pop()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gc.callbacks.append(on_gc)
    try:
        with _untuned() if mode == "untuned" else contextlib.nullcontext():
            seconds, resources = program_run(n)
    finally:
        gc.callbacks.remove(on_gc)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"tables": n, "mode": mode, "seconds": seconds, "resources": resources,
            "collections": collections, "gc_seconds": gc_seconds,
            "peak_rss_growth_kib": rss_after - rss_before}


def cyclic_garbage(n: int) -> list[tuple[str, int]]:
    """What the collector frees during an untuned evaluation of `n` tables: the types of the
    objects found in unreachable cycles (gc.DEBUG_SAVEALL keeps them for counting)."""
    import collections as col

    program_run(10)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        with _untuned():
            program_run(n)
        gc.collect()
        counts = col.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return counts.most_common(8)


def _in_child(n: int, mode: str) -> dict[str, Any]:
    """`measure_once` in a fresh interpreter, so no run inherits another's heap, frozen
    objects or collector thresholds, and the peak RSS is this run's own."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_scale", "--child", str(n), mode],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def bench_program(repeat: int, sizes: tuple[int, ...] = SIZES) -> dict[str, list[dict[str, Any]]]:
    """Median of `repeat` runs per size and mode, every run in a fresh interpreter, sizes and
    modes interleaved (10 untuned, 10 tuned, 100 untuned, ...) so both modes see the same
    machine load."""
    import statistics

    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(repeat):
        for n in sizes:
            for mode in MODES:
                runs.setdefault((mode, n), []).append(_in_child(n, mode))
    table: dict[str, list[dict[str, Any]]] = {}
    for mode in MODES:
        rows = []
        for n in sizes:
            got = sorted(runs[(mode, n)], key=lambda r: r["seconds"])
            row = dict(got[len(got) // 2])
            row["seconds"] = statistics.median(r["seconds"] for r in got)
            rows.append(row)
        base = rows[0]
        for prev, row in zip([None, *rows], rows, strict=False):
            extra = row["tables"] - base["tables"]
            row["per_table"] = (row["resources"] - base["resources"]) / extra if extra else None
            row["time_ratio"] = row["seconds"] / base["seconds"]
            row["ms_per_added_table"] = (
                (row["seconds"] - prev["seconds"]) * 1000 / (row["tables"] - prev["tables"])
                if prev else None
            )
        table[mode] = rows
    return table


def _stream_event(records: int) -> tuple[dict[str, Any], str]:
    """A Lambda event of `records` real stream records read from moto (Lambda's JSON form)."""
    import boto3

    from tools.localpipe.lambda_events import to_lambda_record

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

    from tools.localpipe import fanin_adapter
    from tools.localpipe.esm import LambdaContext

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
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="table counts, comma-separated, smallest first")
    parser.add_argument("--skip-program", action="store_true")
    parser.add_argument("--skip-fanin", action="store_true")
    parser.add_argument("--garbage", type=int, metavar="N",
                        help="only list what the collector frees evaluating N tables")
    parser.add_argument("--plan", type=int, metavar="N",
                        help="only plan N-table stacks (declared, adopted, mixed) and check "
                        "limits and that nothing capped grows (tests/test_scale.py at N)")
    parser.add_argument("--child", nargs=2, metavar=("N", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_once(int(args.child[0]), args.child[1])))
        return
    if args.plan:
        import tempfile

        from tests.test_scale import SPLITS

        for split in sorted(SPLITS):
            # one fresh interpreter per shape, as `pulumi up` runs the program once
            with tempfile.TemporaryDirectory() as folder:
                started = time.time()
                out = subprocess.run(
                    [sys.executable, "-m", "tests.test_scale", folder, str(args.plan), split],
                    capture_output=True, text=True, cwd=ROOT, check=False)
                lines = out.stdout.strip().splitlines()
                if out.returncode or not lines:
                    last = (out.stderr.strip().splitlines() or ["no output"])[-1]
                    print(f"{split}: {args.plan} tables FAILED: {last}")
                    continue
                got = json.loads(lines[-1])
                print(f"{split}: {got['declared']} declared + {got['adopted']} adopted, "
                      f"{len(got['problems'])} problems ({time.time() - started:.0f} s)")
                for problem in got["problems"]:
                    print(f"  {problem}")
        return
    if args.garbage:
        for name, count in cyclic_garbage(args.garbage):
            print(f"{count:>8} {name}")
        return
    if not args.skip_program:
        try:
            sizes = tuple(int(x) for x in args.sizes.split(","))
        except ValueError:
            parser.error(f"--sizes: expected integers like 10,100,1000, found {args.sizes!r}")
        table = bench_program(args.repeat, sizes)
        mib = 1024
        print("| collector | tables | resources | resources/table beyond the first size "
              "| evaluation CPU s (median) | t(N)/t(first) | CPU ms per added table "
              "| collections gen0/1/2 | collector CPU s (share) | peak RSS growth MiB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for mode, rows in table.items():
            label = {"untuned": "Python's default", "tuned": "`__main__.py`'s tuning"}[mode]
            for row in rows:
                per = "-" if row["per_table"] is None else f"{row['per_table']:.2f}"
                slope = "-" if row["ms_per_added_table"] is None else \
                    f"{row['ms_per_added_table']:.1f}"
                gc_s = sum(row["gc_seconds"])
                print(f"| {label} | {row['tables']} | {row['resources']} | {per} "
                      f"| {row['seconds']:.2f} | {row['time_ratio']:.1f} | {slope} "
                      f"| {'/'.join(map(str, row['collections']))} "
                      f"| {gc_s:.2f} ({gc_s / row['seconds']:.0%}) "
                      f"| {row['peak_rss_growth_kib'] / mib:.0f} |")
        for mode, rows in table.items():
            ratio = rows[-1]["time_ratio"]
            print(f"{mode}: t({rows[-1]['tables']})/t({rows[0]['tables']}) = {ratio:.1f} "
                  f"(goal at 1000/10: <= 110)")
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
