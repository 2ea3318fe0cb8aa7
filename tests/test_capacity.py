"""The concurrency / bus-throughput model (tools/capacity.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools import capacity
from tools.capacity import Load, model


def test_a_thousand_busy_tables_reach_the_account_concurrency() -> None:
    # GIVEN 1,000 tables all changing, parallelization factor 2
    cap = model(Load(tables=1000, changes_per_second=5000, parallelization_factor=2))
    # THEN every table has a shard with records, two invocations each: 2,000 > 1,000
    assert cap.shards_with_records == 1000
    assert cap.fanin_concurrency == 2000
    assert any("concurrent executions" in w for w in cap.warnings)


def test_few_changes_stay_below_the_limits() -> None:
    cap = model(Load(tables=1000, changes_per_second=50))
    assert cap.shards_with_records == 50
    assert cap.fanin_concurrency == 50
    assert cap.warnings == []


def test_a_provisioned_bus_too_small_names_the_shards_needed() -> None:
    # GIVEN 3,000 changes/s of 2,331-byte envelopes on 2 provisioned shards
    cap = model(Load(tables=10, changes_per_second=3000, stream_mode="provisioned", shards=2))
    # THEN the bus warning says how many shards it takes (7 MiB/s -> 7 shards)
    (warning,) = cap.warnings
    assert "raise bus.stream.shards to 7" in warning


@given(tables=st.integers(1, 5000), m=st.floats(0, 1e6), pf=st.integers(1, 10))
def test_concurrency_grows_with_load_and_never_below_the_busy_tables(
    tables: int, m: float, pf: int
) -> None:
    cap = model(Load(tables=tables, changes_per_second=m, parallelization_factor=pf))
    more = model(Load(tables=tables, changes_per_second=m * 2 + 1, parallelization_factor=pf))
    assert cap.fanin_concurrency == cap.shards_with_records * pf
    assert cap.shards_with_records >= min(tables, m)
    assert more.fanin_concurrency >= cap.fanin_concurrency
    assert (cap.fanin_concurrency > 1000) == any("concurrent" in w for w in cap.warnings)


@pytest.mark.parametrize("argv, phrase", [
    (["--tables", "0", "--changes-per-second", "1"], "tables: expected at least 1"),
    (["--tables", "5", "--changes-per-second", "1", "--parallelization-factor", "11"],
     "parallelization_factor: expected 1..10"),
    (["--tables", "5", "--changes-per-second", "1", "--stream-mode", "fast"],
     "stream_mode: expected on_demand or provisioned"),
])
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert capacity.main(argv) == 2
    err = capsys.readouterr().err
    assert phrase in err and len(err.strip().splitlines()) == 1


def test_cli_prints_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert capacity.main(["--tables", "1000", "--changes-per-second", "2000"]) == 0
    out = capsys.readouterr().out
    assert "up to 1000 concurrent fan-in executions" in out


@pytest.mark.parametrize("argv", [
    ["--tables", "x", "--changes-per-second", "1"],
    ["--tables", "5", "--changes-per-second", "inf"],
    ["--tables", "5"],
])
def test_unparsable_arguments_are_one_line_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        capacity.main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
