"""tools.cost: the monthly estimate's arithmetic, its monotonicity, the CLI's bad input."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dms_event_bus.settings import StackSettings, load_settings
from tools import cost
from tools.mockrun import run_stack

ROOT = Path(__file__).resolve().parent.parent

#: Round prices so the hand computation below stays readable (not AWS's prices).
PRICES = cost.PriceTable(
    region="test-region-1", date="2026-01-01", hours_per_month=100.0,
    prices={name: {"value": value, "unit": "u", "source": "https://example.com/p",
                   "assumption": name == "firehose_gb"}
            for name, value in {
                "dms_serverless_dcu_hour": 0.5, "dms_storage_gb_month": 0.1,
                "kms_key_month": 1.0, "kms_requests_per_10k": 0.03,
                "cloudwatch_alarm_month": 0.1, "cloudwatch_insights_alarm_metric_month": 0.2,
                "cloudwatch_dashboard_month": 3.0, "kinesis_on_demand_stream_hour": 0.04,
                "kinesis_on_demand_gb_in": 0.08, "kinesis_on_demand_gb_out": 0.04,
                "kinesis_shard_hour": 0.015, "kinesis_put_payload_units_per_million": 0.014,
                "firehose_gb": 0.029, "dynamodb_on_demand_wru_per_million": 0.625,
                "dynamodb_streams_rru_per_million": 0.2, "lambda_arm64_gb_second": 1e-5,
                "lambda_requests_per_million": 0.2, "s3_put_per_1000": 0.005,
                "s3_gb_month": 0.023}.items()}
    | {"dms_instance_hour": {"by_class": {"dms.t3.medium": 0.1}, "unit": "u",
                             "source": "https://example.com/p", "assumption": False}},
)

DMS: dict[str, Any] = {
    "capacity": {"mode": "serverless", "min_capacity_units": 2, "max_capacity_units": 4},
    "network": {"vpc_id": "vpc-0a1b2c3d4e5f60718",
                "subnet_ids": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                "source_cidrs": ["10.20.0.0/24"]},
    "account_roles": "existing",
    "source": {"engine": "postgres", "server": "db.example.com", "port": 5432,
               "database": "erp", "ssl_mode": "require",
               "secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gen-a1B2c3"},
    "default_schema": "sales",
}

COUNTS = cost.Counts(alarms_fixed=5, alarms_per_table=1.0, insights_alarms=0, kms_keys=1,
                     dashboards=1, from_plan=True)


def stack_settings(*, mode: str = "on_demand", shards: int = 1, archive: bool = False,
                   tables: int = 2, dms: dict[str, Any] | None = None) -> StackSettings:
    return load_settings("cost", {
        "tables": {f"t{i}": {"partition_key": {"name": "id", "type": "S"}}
                   for i in range(tables)},
        "bus": {"stream": {"mode": mode, "shards": shards},
                "fanin": {"memory_mb": 256, "batch_size": 100},
                "archive": {"enabled": archive, "buffer_seconds": 300, "expire_days": 30}},
        "dms": dms or DMS,
    })


def line(lines: list[cost.Line], component: str) -> float:
    [found] = [x.usd for x in lines if x.component == component]
    return found


def test_fixed_costs_match_a_hand_computation() -> None:
    # GIVEN 10 tables, DMS Serverless at a floor of 2 DCU, an on-demand bus, 100 h a month
    est = cost.estimate(stack_settings(), tables=10, changes_per_month=0, counts=COUNTS,
                        prices=PRICES)
    # THEN each fixed line is the hand-computed price x quantity
    assert line(est.fixed, "DMS Serverless (DCU floor)") == pytest.approx(2 * 100 * 0.5)
    assert line(est.fixed, "KMS keys") == pytest.approx(1.0)
    assert line(est.fixed, "KMS requests") == pytest.approx((10 + 3) * 12 * 100 / 1e4 * 0.03)
    assert line(est.fixed, "CloudWatch alarms") == pytest.approx((5 + 10) * 0.1)
    assert line(est.fixed, "CloudWatch dashboard") == pytest.approx(3.0)
    assert line(est.fixed, "Kinesis bus (on-demand stream-hours)") == pytest.approx(4.0)
    assert est.fixed_total == pytest.approx(100 + 1 + 0.0468 + 1.5 + 3 + 4)
    assert est.monthly_total == pytest.approx(est.fixed_total)


def test_per_million_costs_match_a_hand_computation() -> None:
    # GIVEN 1 KB rows (one write request unit each) and a 256 MB fan-in
    est = cost.estimate(stack_settings(), changes_per_month=3_000_000, row_bytes=1024,
                        counts=COUNTS, prices=PRICES)
    env = est.envelope_bytes
    # THEN the envelope carries both images of the row: more than twice its size
    assert 2 * 1024 < env < 2 * 1024 + 600
    assert line(est.per_million, "DynamoDB writes by DMS") == pytest.approx(0.625)
    assert line(est.per_million, "DynamoDB Streams reads") == 0.0
    assert line(est.per_million, "Lambda fan-in duration") == pytest.approx(
        1e6 / cost.FANIN_RECORDS_PER_SECOND * 0.25 * 1e-5)
    assert line(est.per_million, "Lambda fan-in requests") == pytest.approx(1e4 / 1e6 * 0.2)
    gib = 1024**3
    assert line(est.per_million, "Kinesis payload (on-demand in/out)") == pytest.approx(
        1e6 * 3072 / gib * 0.08 + 1e6 * env / gib * 0.04)  # in: 3 KB per record, rounded up
    assert est.monthly_total == pytest.approx(est.fixed_total + 3 * est.per_million_total)
    # AND the direct comparison carries the row plus DMS's metadata, new image only
    direct = 1024 + cost.DMS_KINESIS_METADATA_BYTES
    assert line(est.direct_per_million, "Kinesis payload (on-demand in/out)") == pytest.approx(
        1e6 * 2048 / gib * 0.08 + 1e6 * direct / gib * 0.04)
    assert est.direct_fixed_total == pytest.approx(100 + 4)


def test_rows_over_one_kilobyte_cost_more_write_units() -> None:
    est = cost.estimate(stack_settings(), row_bytes=2500, counts=COUNTS, prices=PRICES)
    assert line(est.per_million, "DynamoDB writes by DMS") == pytest.approx(3 * 0.625)


def test_provisioned_bus_costs_shard_hours_and_put_payload_units() -> None:
    # GIVEN the same stack with a provisioned bus of 3 shards
    on_demand = cost.estimate(stack_settings(), counts=COUNTS, prices=PRICES)
    provisioned = cost.estimate(stack_settings(mode="provisioned", shards=3), counts=COUNTS,
                                prices=PRICES)
    # THEN shard-hours replace stream-hours and 25 KB PUT payload units replace GB in/out
    assert line(provisioned.fixed, "Kinesis bus (provisioned shard-hours)") == pytest.approx(
        3 * 100 * 0.015)
    assert line(provisioned.per_million, "Kinesis PUT payload units") == pytest.approx(
        math.ceil(provisioned.envelope_bytes / 25_600) * 0.014)
    assert not [x for x in provisioned.fixed if "on-demand" in x.component]
    assert not [x for x in on_demand.per_million if "PUT payload" in x.component]


def test_archive_adds_firehose_and_s3_only_when_on() -> None:
    off = cost.estimate(stack_settings(), counts=COUNTS, prices=PRICES)
    on = cost.estimate(stack_settings(archive=True), counts=COUNTS, prices=PRICES)
    names_off = {x.component for x in off.fixed + off.per_million}
    assert not names_off & {"Firehose archive", "S3 archive storage", "S3 archive PUTs"}
    gib = 1024**3
    env = on.envelope_bytes
    assert line(on.per_million, "Firehose archive") == pytest.approx(
        1e6 * math.ceil(env / 5120) * 5120 / gib * 0.029)
    assert line(on.per_million, "S3 archive storage") == pytest.approx(
        1e6 * env / gib * 30 / (100 / 24) * 0.023)
    assert line(on.fixed, "S3 archive PUTs") == pytest.approx(100 * 3600 / 300 / 1000 * 0.005)
    assert on.monthly_total > off.monthly_total
    # the price table's own assumption flag is printed
    assert any("firehose_gb" in a for a in on.assumptions)
    assert not any("firehose_gb" in a for a in off.assumptions)


def test_dms_instance_multi_az_doubles_and_an_unknown_class_is_an_assumption() -> None:
    dms = {**DMS, "capacity": {"mode": "instance", "instance_class": "dms.t3.medium",
                               "allocated_storage_gb": 50, "multi_az": True}}
    est = cost.estimate(stack_settings(dms=dms), counts=COUNTS, prices=PRICES)
    assert line(est.fixed, "DMS instance") == pytest.approx(2 * 0.1 * 100)
    assert line(est.fixed, "DMS storage") == pytest.approx(2 * 50 * 0.1)
    other = {**dms, "capacity": {**dms["capacity"], "instance_class": "dms.c5.4xlarge"}}
    est = cost.estimate(stack_settings(dms=other), counts=COUNTS, prices=PRICES)
    assert any("dms.c5.4xlarge is not in the price table" in a for a in est.assumptions)


SETTINGS = stack_settings(archive=True)


@hsettings(max_examples=40, deadline=None)
@given(t1=st.integers(1, 3000), t2=st.integers(1, 3000),
       m1=st.integers(0, 10**10), m2=st.integers(0, 10**10), row=st.integers(1, 400_000))
def test_more_tables_or_changes_never_cost_less(t1: int, t2: int, m1: int, m2: int,
                                                row: int) -> None:
    (ta, tb), (ma, mb) = sorted((t1, t2)), sorted((m1, m2))
    small = cost.estimate(SETTINGS, tables=ta, changes_per_month=ma, row_bytes=row,
                          counts=COUNTS, prices=PRICES)
    big = cost.estimate(SETTINGS, tables=tb, changes_per_month=mb, row_bytes=row,
                        counts=COUNTS, prices=PRICES)
    assert big.monthly_total >= small.monthly_total
    assert big.fixed_total >= small.fixed_total


@hsettings(max_examples=25, deadline=None)
@given(r1=st.integers(1, 300_000), r2=st.integers(1, 300_000))
def test_bigger_rows_never_cost_less(r1: int, r2: int) -> None:
    ra, rb = sorted((r1, r2))
    small = cost.estimate(SETTINGS, row_bytes=ra, counts=COUNTS, prices=PRICES)
    big = cost.estimate(SETTINGS, row_bytes=rb, counts=COUNTS, prices=PRICES)
    assert big.envelope_bytes >= small.envelope_bytes
    assert big.per_million_total >= small.per_million_total


def test_the_shipped_price_table_names_region_date_and_a_source_for_every_price() -> None:
    table = cost.load_prices()
    assert re.fullmatch(r"[a-z]{2}-[a-z]+-\d", table.region)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table.date)
    for name, entry in table.prices.items():
        assert entry["source"].startswith("https://aws.amazon.com/"), name
        assert isinstance(entry.get("assumption"), bool), name
    # every price the estimate asks for is in it
    est = cost.estimate(stack_settings(archive=True), counts=COUNTS)
    assert est.fixed_total > 0


def test_fanin_rate_is_the_one_bench_readme_reports() -> None:
    text = (ROOT / "bench" / "README.md").read_text(encoding="utf-8")
    found = re.search(r"whole handler ([\d,]+) records/s end to end", text)
    assert found is not None
    assert int(found.group(1).replace(",", "")) == cost.FANIN_RECORDS_PER_SECOND


def write_stack(folder: Path, tables: int) -> str:
    config = {
        "aws:region": "eu-west-1",
        "dms-event-bus:tables": {f"t{i}": {"partition_key": {"name": "id", "type": "S"}}
                                 for i in range(tables)},
        "dms-event-bus:dms": DMS,
    }
    (folder / "Pulumi.cst.yaml").write_text(yaml.safe_dump({"config": config}))
    return "cst"


def test_counts_from_the_program_run_add_up_to_what_it_declares(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, 2)
    plan = run_stack(stack, stack_dir=tmp_path)
    settings = load_settings(stack, {"tables": {"t0": {"partition_key": {"name": "id",
                                                                         "type": "S"}},
                                                "t1": {"partition_key": {"name": "id",
                                                                         "type": "S"}}},
                                     "dms": DMS})
    counts = cost.counts_from_plan(plan, settings)
    alarms = plan.of_type(cost.ALARM_TYPE)
    assert counts.from_plan
    assert counts.alarms_fixed + counts.alarms_per_table * 2 + counts.insights_alarms == len(
        alarms)
    assert counts.kms_keys == len(plan.of_type(cost.KMS_TYPE))
    assert counts.dashboards == len(plan.of_type(cost.DASHBOARD_TYPE))
    # AND the call tools.plan makes prices exactly what the program declared, at 2 tables
    est = cost.plan_estimate(stack, plan, tmp_path, prices=PRICES)
    assert line(est.fixed, "CloudWatch alarms") == pytest.approx(
        (len(alarms) - counts.insights_alarms) * 0.1)
    assert est.stack_region == "eu-west-1"
    assert not any("not from a program run" in a for a in est.assumptions)


def test_cli_prints_the_estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = write_stack(tmp_path, 3)
    code = cost.main(["--stack", stack, "--stack-dir", str(tmp_path), "--tables", "7",
                      "--changes-per-month", "2000000", "--no-program"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "7 tables, 2,000,000 changes/month of 1,024-byte rows" in out
    assert "Assumptions:" in out and "not from a program run" in out
    assert "DMS with a Kinesis target directly" in out


def exit_code(argv: list[str]) -> int:
    try:
        return cost.main(argv)
    except SystemExit as exc:  # argparse errors exit through OneLineParser
        return int(exc.code or 0)


@pytest.mark.parametrize("argv", [
    ["--stack", "missing"],
    ["--stack", "cst", "--tables", "0"],
    ["--stack", "cst", "--row-bytes", "many"],
    ["--stack", "cst", "--changes-per-month", "-5"],
    [],
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_stack(tmp_path, 1)
    code = exit_code([*argv, "--stack-dir", str(tmp_path), "--no-program"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
