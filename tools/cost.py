"""Monthly cost estimate of one stack, before deploy, from the price table in tools/prices.json.

    python -m tools.cost --stack dev                       # the stack's own tables
    python -m tools.cost --stack prod --tables 1000 --changes-per-month 50000000 --row-bytes 1024

Two parts: what the stack costs every month whatever flows (DMS instance or DCU floor, KMS
keys, alarms, dashboard, the bus's stream- or shard-hours, the archive's S3 PUTs) and what
each million changes adds (DynamoDB writes by DMS, fan-in Lambda GB-s and requests, the bus's
payload from the real envelope of a B-byte row, Firehose and S3 when the archive is on).
Next to it, what DMS with a Kinesis target directly would cost for the same work.

Alarms, KMS keys and dashboards are counted in the program run under Pulumi's mocks (the same
run `tools.plan` makes); `estimate()` without counts falls back to a rule from the settings
and says so. Every price comes from the table with its region, date and source; prices the
table marks as assumptions, and every modelling assumption, are printed with the estimate.
Bad arguments or an unknown stack: one line on stderr, exit 2.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dms_event_bus.settings import ConfigError, load_settings
from dms_event_bus.settings.stackfile import (
    ROOT,
    as_engine_config,
    project_config,
    read_stack_config,
)
from tools.cli import OneLineParser, non_negative_int, positive_int

if TYPE_CHECKING:
    from dms_event_bus.settings import StackSettings
    from tools.mockrun import Plan

PRICES_FILE = Path(__file__).resolve().parent / "prices.json"

#: Fan-in throughput, whole handler end to end (bench/README.md, "Fan-in handler": 1,923
#: records/s on 2 shared cores with a fake Kinesis). A test keeps this equal to the README.
FANIN_RECORDS_PER_SECOND = 1923
#: Bytes DMS adds around a row in its Kinesis target message ({"data":…,"metadata":{…}}):
#: an assumption (timestamp, record-type, operation, partition-key-type, schema and table).
DMS_KINESIS_METADATA_BYTES = 300
#: Consumers reading the bus besides the archive (one downstream application).
BUS_CONSUMERS = 1
#: KMS requests: AWS services cache data keys about 5 minutes per table / stream / function.
KMS_REQUESTS_PER_CALLER_HOUR = 12
GIB = 1024**3
MILLION = 1_000_000

ALARM_TYPE = "aws:cloudwatch/metricAlarm:MetricAlarm"
KMS_TYPE = "aws:kms/key:Key"
DASHBOARD_TYPE = "aws:cloudwatch/dashboard:Dashboard"


class PriceTableError(ValueError):
    """The price table is missing a price or is malformed."""


@dataclass(frozen=True)
class Price:
    name: str
    value: float
    unit: str
    source: str
    assumption: bool
    note: str = ""


@dataclass(frozen=True)
class PriceTable:
    region: str
    date: str
    hours_per_month: float
    prices: dict[str, dict[str, Any]]

    def get(self, name: str, key: str | None = None) -> Price:
        entry = self.prices.get(name)
        if entry is None:
            raise PriceTableError(f"price table has no {name!r}")
        value = entry["by_class"].get(key) if key is not None else entry.get("value")
        if not isinstance(value, int | float):
            raise PriceTableError(f"price table has no value for {name!r} {key or ''}".strip())
        return Price(name if key is None else f"{name}[{key}]", float(value), entry["unit"],
                     entry["source"], bool(entry.get("assumption")), str(entry.get("note", "")))


def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    data = json.loads(path.read_text(encoding="utf-8"))
    return PriceTable(data["region"], data["date"], float(data["hours_per_month"]),
                      data["prices"])


@dataclass(frozen=True)
class Counts:
    """What the program declares that is priced per item."""

    alarms_fixed: int
    alarms_per_table: float
    insights_alarms: int
    kms_keys: int
    dashboards: int
    from_plan: bool


@dataclass(frozen=True)
class Line:
    component: str
    usd: float
    detail: str


@dataclass
class Estimate:
    stack: str
    stack_region: str
    price_region: str
    price_date: str
    tables: int
    changes_per_month: int
    row_bytes: int
    envelope_bytes: int
    fixed: list[Line] = field(default_factory=list)
    per_million: list[Line] = field(default_factory=list)
    direct_fixed: list[Line] = field(default_factory=list)
    direct_per_million: list[Line] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    @property
    def fixed_total(self) -> float:
        return sum(line.usd for line in self.fixed)

    @property
    def per_million_total(self) -> float:
        return sum(line.usd for line in self.per_million)

    @property
    def monthly_total(self) -> float:
        return self.fixed_total + self.per_million_total * self.changes_per_month / MILLION

    @property
    def direct_fixed_total(self) -> float:
        return sum(line.usd for line in self.direct_fixed)

    @property
    def direct_per_million_total(self) -> float:
        return sum(line.usd for line in self.direct_per_million)

    @property
    def direct_monthly_total(self) -> float:
        return (self.direct_fixed_total
                + self.direct_per_million_total * self.changes_per_month / MILLION)


# ------------------------------------------------------------------------------ counting


def counts_from_plan(plan: Plan, settings: StackSettings) -> Counts:
    """Alarms, KMS keys and dashboards as the mocked program declares them. An alarm named
    `<table>-…` after a declared table is per table; an alarm whose metric query is a
    Metrics Insights `SELECT` is priced per metric it analyzes (one per table)."""
    names = set(settings.tables)
    per_table = insights = fixed = 0
    for alarm in plan.of_type(ALARM_TYPE):
        queries = alarm.inputs.get("metricQueries") or []
        if any("SELECT" in str(q.get("expression") or "").upper() for q in queries):
            insights += 1
        elif alarm.name.split("-", 1)[0] in names:
            per_table += 1
        else:
            fixed += 1
    return Counts(
        alarms_fixed=fixed,
        alarms_per_table=per_table / len(names) if names else 0.0,
        insights_alarms=insights,
        kms_keys=len(plan.of_type(KMS_TYPE)),
        dashboards=len(plan.of_type(DASHBOARD_TYPE)),
        from_plan=True,
    )


def counts_from_settings(settings: StackSettings) -> Counts:
    """A rule of thumb when no program run is at hand: one throttling alarm per table,
    four for the bus, two or three for DMS, six for the writeback; one dashboard; one
    stack key unless a key ARN is configured."""
    fixed = 4
    if settings.dms is not None:
        fixed += 3
    if settings.writeback is not None:
        fixed += 6
    return Counts(fixed, 1.0, 0, 0 if settings.encryption.kms_key_arn else 1, 1, False)


# ------------------------------------------------------------------------------ sizes


def envelope_bytes(row_bytes: int, table: str = "table_0001") -> int:
    """Bytes Kinesis counts (data + partition key) for the envelope of an update of a row of
    about `row_bytes` bytes (old and new image, as the stream's NEW_AND_OLD_IMAGES gives)."""
    from dms_event_bus.handlers.envelope import stream_envelope

    filler = max(0, row_bytes - len("id") - 8 - len("payload"))
    image = {"id": {"N": "12345678"}, "payload": {"S": "x" * filler}}
    record = {
        "eventID": "c0ffee0123456789abcdef0123456789",
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {"id": {"N": "12345678"}},
            "OldImage": image,
            "NewImage": image,
            "SequenceNumber": "4000000000000000000000000001",
            "ApproximateCreationDateTime": 1767225600,
        },
    }
    return stream_envelope(record, table, physical_table=f"dmsbus-env-{table}").record_bytes()


# ------------------------------------------------------------------------------ estimate


def estimate(
    settings: StackSettings,
    *,
    tables: int | None = None,
    changes_per_month: int = MILLION,
    row_bytes: int = 1024,
    counts: Counts | None = None,
    prices: PriceTable | None = None,
    stack_region: str = "",
) -> Estimate:
    """Monthly estimate of `settings` at `tables` source tables (default: the stack's own)
    and `changes_per_month` changes of `row_bytes`-byte rows."""
    if tables is not None and tables < 1:
        raise ValueError(f"tables must be >= 1, found {tables}")
    if changes_per_month < 0 or row_bytes < 1:
        raise ValueError("changes_per_month must be >= 0 and row_bytes >= 1")
    p = prices or load_prices()
    n = tables if tables is not None else max(1, len(settings.tables))
    c = counts or counts_from_settings(settings)
    hours = p.hours_per_month
    env = envelope_bytes(row_bytes)
    est = Estimate(settings.environment, stack_region, p.region, p.date, n, changes_per_month,
                   row_bytes, env)
    used: list[Price] = []

    def price(name: str, key: str | None = None) -> float:
        found = p.get(name, key)
        used.append(found)
        return found.value

    note = est.assumptions.append

    # --- fixed
    dms_lines = _dms(settings, price, hours, note)
    est.fixed += dms_lines
    est.direct_fixed += dms_lines
    if c.kms_keys:
        est.fixed.append(Line("KMS keys", c.kms_keys * price("kms_key_month"),
                              f"{c.kms_keys} customer managed key(s)"))
    if c.kms_keys or settings.encryption.kms_key_arn:
        callers = n + 3  # tables, the bus, the fan-in, the queues/buckets
        requests = callers * KMS_REQUESTS_PER_CALLER_HOUR * hours
        est.fixed.append(Line("KMS requests", requests / 10_000 * price("kms_requests_per_10k"),
                              f"{requests:,.0f} requests"))
        note(f"KMS requests: each of {callers} callers (tables, bus, functions) asks for a data "
             f"key about every 5 minutes ({KMS_REQUESTS_PER_CALLER_HOUR}/hour)")
    alarms = c.alarms_fixed + c.alarms_per_table * n
    est.fixed.append(Line("CloudWatch alarms", alarms * price("cloudwatch_alarm_month"),
                          f"{alarms:,.0f} standard alarms ({c.alarms_fixed} fixed + "
                          f"{c.alarms_per_table:g} per table)"))
    if c.insights_alarms:
        metrics = c.insights_alarms * n
        est.fixed.append(Line("CloudWatch Metrics Insights alarms",
                              metrics * price("cloudwatch_insights_alarm_metric_month"),
                              f"{c.insights_alarms} alarm(s) x {n} metrics analyzed"))
        note("Metrics Insights alarms: one metric analyzed per table per alarm")
    if not c.from_plan:
        note("alarms, KMS keys and dashboards counted by a rule from the settings, not from a "
             "program run")
    if c.dashboards:
        est.fixed.append(Line("CloudWatch dashboard", c.dashboards * price(
            "cloudwatch_dashboard_month"), f"{c.dashboards} dashboard(s)"))
    stream = settings.bus.stream
    if stream.mode == "on_demand":
        bus = Line("Kinesis bus (on-demand stream-hours)",
                   hours * price("kinesis_on_demand_stream_hour"), f"{hours:g} stream-hours")
    else:
        bus = Line("Kinesis bus (provisioned shard-hours)",
                   stream.shards * hours * price("kinesis_shard_hour"),
                   f"{stream.shards} shard(s) x {hours:g} h")
    est.fixed.append(bus)
    est.direct_fixed.append(bus)
    if stream.retention_hours > 24:
        note(f"retention {stream.retention_hours} h: extended retention beyond 24 h is not "
             "included")
    archive = settings.bus.archive
    if archive.enabled:
        seconds = max(archive.buffer_seconds, 60)
        objects = hours * 3600 / seconds
        est.fixed.append(Line("S3 archive PUTs", objects / 1000 * price("s3_put_per_1000"),
                              f"{objects:,.0f} objects (one per {seconds} s buffer)"))
        note("archive: Firehose writes one object per buffer interval (at least 60 s assumed)")

    # --- per million changes
    wru = math.ceil(row_bytes / 1024)
    est.per_million.append(Line(
        "DynamoDB writes by DMS", wru * price("dynamodb_on_demand_wru_per_million"),
        f"{wru} WRU per change (item ~ row, on-demand)"))
    note("DynamoDB: the item is priced at the row's size, on-demand; storage of the tables "
         "is not included")
    if any(t.capacity.mode == "provisioned" for t in settings.tables.values()):
        note("some tables are provisioned: their WCU/RCU-hours are not included (priced as "
             "on-demand writes)")
    price("dynamodb_streams_rru_per_million")
    est.per_million.append(Line("DynamoDB Streams reads", 0.0,
                                "reads by Lambda triggers are free"))
    memory_gb = settings.bus.fanin.memory_mb / 1024
    gb_s = MILLION / FANIN_RECORDS_PER_SECOND * memory_gb
    est.per_million.append(Line("Lambda fan-in duration", gb_s * price("lambda_arm64_gb_second"),
                                f"{gb_s:,.0f} GB-s at {settings.bus.fanin.memory_mb} MB"))
    note(f"fan-in duration: {FANIN_RECORDS_PER_SECOND:,} records/s per invocation, the whole "
         "handler measured in bench/README.md (fake Kinesis); real PutRecords latency adds")
    invocations = MILLION / settings.bus.fanin.batch_size
    est.per_million.append(Line("Lambda fan-in requests",
                                invocations / MILLION * price("lambda_requests_per_million"),
                                f"{invocations:,.0f} invocations (full batches of "
                                f"{settings.bus.fanin.batch_size})"))
    note("fan-in invocations: full batches; smaller batches at low traffic cost more requests")
    est.per_million.append(_payload(stream.mode, env, price, "envelope",
                                    BUS_CONSUMERS + (1 if archive.enabled else 0)))
    direct_bytes = row_bytes + DMS_KINESIS_METADATA_BYTES
    est.direct_per_million.append(_payload(stream.mode, direct_bytes, price, "DMS message",
                                           BUS_CONSUMERS))
    note(f"DMS with a Kinesis target: a message of the row + {DMS_KINESIS_METADATA_BYTES} "
         "bytes of metadata, new image only")
    if stream.mode == "on_demand":
        note(f"bus reads: {BUS_CONSUMERS} consumer, plus the archive's Firehose when on")
    if archive.enabled:
        firehose_gb = MILLION * math.ceil(env / 5120) * 5120 / GIB
        est.per_million.append(Line("Firehose archive", firehose_gb * price("firehose_gb"),
                                    f"{firehose_gb:.2f} GB (5 KB per record rounding)"))
        stored_gb = MILLION * env / GIB * archive.expire_days / (hours / 24)
        est.per_million.append(Line("S3 archive storage", stored_gb * price("s3_gb_month"),
                                    f"{stored_gb:.2f} GB-month at steady state "
                                    f"({archive.expire_days} days kept)"))
        note("S3 storage priced uncompressed (the archive is GZIP: an upper bound)")

    region_note = f"stack region {stack_region}: " if stack_region else ""
    if stack_region and stack_region != p.region:
        note(f"{region_note}prices are {p.region} list prices; other regions differ")
    for name, remark in sorted({(u.name, u.note) for u in used if u.assumption}):
        note(f"price {name} not confirmed from a public page when the table was written"
             + (f" ({remark})" if remark else ""))
    return est


def _dms(settings: StackSettings, price: Any, hours: float, note: Any) -> list[Line]:
    dms = settings.dms
    if dms is None:
        note("no DMS in this stack")
        return []
    cap = dms.capacity
    if cap.mode == "serverless":
        copies = 2 if cap.multi_az else 1
        dcu = cap.min_capacity_units
        note(f"DMS Serverless priced at its floor of {dcu} DCU; it scales up to "
             f"{cap.max_capacity_units} DCU under load" + (", multi-AZ doubles" if copies > 1
                                                           else ""))
        return [Line("DMS Serverless (DCU floor)", copies * dcu * hours * price(
            "dms_serverless_dcu_hour"), f"{dcu} DCU x {hours:g} h" + (" x 2 (multi-AZ)"
                                                                   if copies > 1 else ""))]
    copies = 2 if cap.multi_az else 1
    try:
        hourly = price("dms_instance_hour", cap.instance_class)
    except PriceTableError:
        hourly = price("dms_instance_hour", "dms.t3.medium")
        note(f"{cap.instance_class} is not in the price table: priced as dms.t3.medium")
    lines = [Line("DMS instance", copies * hourly * hours,
                  f"{cap.instance_class} x {hours:g} h" + (" x 2 (multi-AZ)"
                                                          if copies > 1 else ""))]
    lines.append(Line("DMS storage", copies * cap.allocated_storage_gb * price(
        "dms_storage_gb_month"), f"{cap.allocated_storage_gb} GB"))
    return lines


def _payload(mode: str, record_bytes: int, price: Any, what: str, readers: int) -> Line:
    if mode == "on_demand":
        billed_in = math.ceil(record_bytes / 1024) * 1024
        usd = (MILLION * billed_in / GIB * price("kinesis_on_demand_gb_in")
               + MILLION * record_bytes * readers / GIB * price("kinesis_on_demand_gb_out"))
        return Line("Kinesis payload (on-demand in/out)", usd,
                    f"{record_bytes:,} B {what}, billed in as {billed_in:,} B")
    units = math.ceil(record_bytes / 25_600)
    return Line("Kinesis PUT payload units", units * price("kinesis_put_payload_units_per_million"),
                f"{record_bytes:,} B {what} = {units} unit(s) of 25 KB")


def stack_settings(stack: str, stack_dir: Path | None = None) -> tuple[StackSettings, str]:
    """The validated settings of `Pulumi.<stack>.yaml` and its `aws:region`. Raises
    ConfigError, FileNotFoundError or ValueError (a malformed stack file), each one line."""
    config = read_stack_config(stack, stack_dir or ROOT)
    engine_config, _secret = as_engine_config(config)
    return load_settings(stack, project_config(engine_config)), str(config.get("aws:region", ""))


def plan_estimate(stack: str, plan: Plan, stack_dir: Path | None = None,
                  **kwargs: Any) -> Estimate:
    """The estimate of a stack whose program already ran under mocks (`tools.plan`):
    alarms, KMS keys and dashboards counted in `plan`; `kwargs` as for `estimate`."""
    settings, region = stack_settings(stack, stack_dir)
    return estimate(settings, counts=counts_from_plan(plan, settings), stack_region=region,
                    **kwargs)


# ------------------------------------------------------------------------------ render


def _money(usd: float) -> str:
    return f"{usd:,.2f}" if usd >= 0.01 or usd == 0 else f"{usd:.4f}"


def render(est: Estimate) -> str:
    """The estimate as text: fixed, per million changes, the month, the direct comparison,
    the assumptions."""
    width = max(len(line.component) for line in
                est.fixed + est.per_million + est.direct_fixed + est.direct_per_million) + 2
    out = [f"Cost estimate, stack {est.stack!r}: {est.tables:,} tables, "
           f"{est.changes_per_month:,} changes/month of {est.row_bytes:,}-byte rows "
           f"(envelope {est.envelope_bytes:,} B); USD, {est.price_region} prices of "
           f"{est.price_date} (tools/prices.json)"]

    def block(title: str, lines: list[Line], total: float) -> None:
        out.append(title)
        for line in lines:
            out.append(f"  {line.component:<{width}}{_money(line.usd):>12}  {line.detail}")
        out.append(f"  {'total':<{width}}{_money(total):>12}")

    block("Fixed per month:", est.fixed, est.fixed_total)
    block("Per million changes:", est.per_million, est.per_million_total)
    out.append(f"Month at {est.changes_per_month:,} changes: {_money(est.monthly_total)}")
    out.append("DMS with a Kinesis target directly (no DynamoDB, no fan-in, new image only):")
    out.append(f"  fixed {_money(est.direct_fixed_total)}, per million changes "
               f"{_money(est.direct_per_million_total)}, month {_money(est.direct_monthly_total)}"
               f"; the waypoint and old/new images add "
               f"{_money(est.monthly_total - est.direct_monthly_total)}")
    out.append("Assumptions:")
    out.extend(f"  - {a}" for a in est.assumptions)
    return "\n".join(out)


# ------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name (Pulumi.<stack>.yaml)")
    parser.add_argument("--stack-dir", type=Path, default=None,
                        help="folder holding Pulumi.<stack>.yaml (default: the project folder)")
    parser.add_argument("--tables", type=positive_int, default=None,
                        help="source tables (default: the stack's declared tables)")
    parser.add_argument("--changes-per-month", type=non_negative_int, default=MILLION,
                        help="changes per month (default 1,000,000)")
    parser.add_argument("--row-bytes", type=positive_int, default=1024,
                        help="bytes of a source row (default 1024)")
    parser.add_argument("--no-program", action="store_true",
                        help="count alarms from the settings instead of a mocked program run")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_REGION", "eu-west-1")
    try:
        settings, region = stack_settings(args.stack, args.stack_dir)
        counts = None
        if not args.no_program:
            from tools.mockrun import run_stack

            counts = counts_from_plan(run_stack(args.stack, stack_dir=args.stack_dir), settings)
        est = estimate(settings, tables=args.tables, changes_per_month=args.changes_per_month,
                       row_bytes=args.row_bytes, counts=counts,
                       stack_region=region)
    except ConfigError as exc:
        print(f"error: {exc.brief()}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:  # StackFileError, PriceTableError
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(render(est))
    return 0


if __name__ == "__main__":
    sys.exit(main())
