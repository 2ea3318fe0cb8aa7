"""Concurrency and bus throughput at scale: what N tables and M changes/s ask of the account.

    python -m tools.capacity --tables 1000 --changes-per-second 2000 \\
        [--parallelization-factor 1] [--envelope-bytes 2331] \\
        [--stream-mode on_demand|provisioned] [--shards 1] [--account-concurrency 1000]

The model (docs/limits.md, *Sizing*):
- Lambda polls every DynamoDB stream shard that has records and runs at most
  `parallelization_factor` invocations of the fan-in per shard at once. A table has at least
  one shard; a shard follows a table partition, which takes at most 1,000 write units per
  second. Worst case for concurrency: the changes are spread over as many tables as there
  are changes, so the shards with records are max(min(tables, changes/s), changes/s / 1000).
- Each change becomes one envelope on the bus: M records/s of `envelope_bytes` each. A
  Kinesis shard takes 1 MiB/s and 1,000 records/s of writes; an on-demand stream starts at
  4 MiB/s (4,000 records/s) and adapts to up to twice its previous peak within 15 minutes;
  a provisioned stream has `shards` x a shard's capacity.
- Warnings: the fan-in's concurrency exceeding the account's concurrent executions (default
  1,000 per region; the account preflight reads the real quota), or the writes exceeding the
  bus's capacity (a burst over an on-demand stream's current capacity is throttled, retried
  by the fan-in, and absorbed within 15 minutes).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from tools.cli import OneLineParser, non_negative_float

#: https://docs.aws.amazon.com/streams/latest/dev/working-with-streams.html
KINESIS_SHARD_WRITE_BYTES = 1024 * 1024
KINESIS_SHARD_WRITE_RECORDS = 1_000
#: https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html (on-demand:
#: 4 MB/s write to start, up to double the previous peak within 15 minutes)
ON_DEMAND_INITIAL_SHARDS = 4
#: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.Partitions.html
DYNAMODB_PARTITION_WRITE_UNITS = 1_000
#: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
ACCOUNT_CONCURRENCY_DEFAULT = 1_000
#: mean envelope of the fan-in bench (bench/README.md, *Fan-in handler*)
ENVELOPE_BYTES_DEFAULT = 2_331


@dataclass(frozen=True)
class Load:
    tables: int
    changes_per_second: float
    parallelization_factor: int = 1
    envelope_bytes: int = ENVELOPE_BYTES_DEFAULT
    stream_mode: str = "on_demand"
    shards: int = 1
    account_concurrency: int = ACCOUNT_CONCURRENCY_DEFAULT

    def __post_init__(self) -> None:
        checks = [
            ("tables", self.tables >= 1, "at least 1"),
            ("changes_per_second", self.changes_per_second >= 0, ">= 0"),
            ("parallelization_factor", 1 <= self.parallelization_factor <= 10, "1..10"),
            ("envelope_bytes", 1 <= self.envelope_bytes <= 1024 * 1024, "1..1048576"),
            ("stream_mode", self.stream_mode in ("on_demand", "provisioned"),
             "on_demand or provisioned"),
            ("shards", self.shards >= 1, "at least 1"),
            ("account_concurrency", self.account_concurrency >= 1, "at least 1"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name}: expected {expected}, found {getattr(self, name)!r}")


@dataclass(frozen=True)
class Capacity:
    load: Load
    shards_with_records: int
    fanin_concurrency: int
    bus_bytes_per_second: float
    bus_records_per_second: float
    bus_capacity_bytes: float
    bus_capacity_records: float
    warnings: list[str] = field(default_factory=list)


def model(load: Load) -> Capacity:
    """What `load` asks of Lambda and of the bus, with a warning for each limit it passes."""
    m = load.changes_per_second
    spread = min(load.tables, math.ceil(m))
    shards = max(spread, math.ceil(m / DYNAMODB_PARTITION_WRITE_UNITS))
    concurrency = shards * load.parallelization_factor
    bus_shards = ON_DEMAND_INITIAL_SHARDS if load.stream_mode == "on_demand" else load.shards
    cap_bytes = float(bus_shards * KINESIS_SHARD_WRITE_BYTES)
    cap_records = float(bus_shards * KINESIS_SHARD_WRITE_RECORDS)
    need_bytes, need_records = m * load.envelope_bytes, m
    warnings: list[str] = []
    if concurrency > load.account_concurrency:
        warnings.append(
            f"the fan-in can run {concurrency} at once ({shards} stream shards with records x "
            f"parallelization factor {load.parallelization_factor}), more than the account's "
            f"{load.account_concurrency} concurrent executions: every other function of the "
            "region is throttled; lower bus.fanin.parallelization_factor, or ask for a higher "
            "Lambda concurrency quota"
        )
    if need_bytes > cap_bytes or need_records > cap_records:
        what = ("an on-demand stream's initial capacity (it doubles within 15 minutes; "
                "bursts meanwhile are throttled and retried)" if load.stream_mode == "on_demand"
                else f"{load.shards} provisioned shards: raise bus.stream.shards to "
                f"{_shards_for(need_bytes, need_records)} or use on_demand")
        warnings.append(
            f"the bus takes {need_bytes / 1024 / 1024:.1f} MiB/s and {need_records:.0f} "
            f"records/s, more than {cap_bytes / 1024 / 1024:.0f} MiB/s / {cap_records:.0f} "
            f"records/s of {what}"
        )
    return Capacity(load, shards, concurrency, need_bytes, need_records, cap_bytes,
                    cap_records, warnings)


def _shards_for(need_bytes: float, need_records: float) -> int:
    return max(math.ceil(need_bytes / KINESIS_SHARD_WRITE_BYTES),
               math.ceil(need_records / KINESIS_SHARD_WRITE_RECORDS), 1)


def render(cap: Capacity) -> str:
    lines = [
        f"capacity: {cap.load.tables} tables, {cap.load.changes_per_second:g} changes/s: "
        f"{cap.shards_with_records} stream shards with records -> up to "
        f"{cap.fanin_concurrency} concurrent fan-in executions "
        f"(account: {cap.load.account_concurrency}); bus "
        f"{cap.bus_bytes_per_second / 1024 / 1024:.2f} MiB/s, "
        f"{cap.bus_records_per_second:.0f} records/s (capacity "
        f"{cap.bus_capacity_bytes / 1024 / 1024:.0f} MiB/s, {cap.bus_capacity_records:.0f} "
        "records/s)"
    ]
    lines += [f"capacity warning: {w}" for w in cap.warnings]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.capacity", description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, required=True)
    parser.add_argument("--changes-per-second", type=non_negative_float, required=True)
    parser.add_argument("--parallelization-factor", type=int, default=1)
    parser.add_argument("--envelope-bytes", type=int, default=ENVELOPE_BYTES_DEFAULT)
    parser.add_argument("--stream-mode", default="on_demand")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--account-concurrency", type=int, default=ACCOUNT_CONCURRENCY_DEFAULT)
    args = parser.parse_args(argv)
    try:
        load = Load(args.tables, args.changes_per_second, args.parallelization_factor,
                    args.envelope_bytes, args.stream_mode, args.shards,
                    args.account_concurrency)
    except ValueError as exc:
        print(f"capacity: {exc}", file=sys.stderr)
        return 2
    print(render(model(load)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
