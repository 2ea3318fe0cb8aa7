"""The demo command (`python -m tools.demo`): run as a user runs it, output checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import demo

ROOT = Path(__file__).resolve().parents[2]
BIG = "12345678901234567890123456789012345678"


#: engine -> (its --engine arguments, its name in the output, the preflight lines it prints)
ENGINES = {
    "postgres": ([], "PostgreSQL", [
        "  PASS replica identity: 2 table(s) with columns that can be TOASTed in "
        "public.orders, public.parcels, every one REPLICA IDENTITY FULL"]),
    "mariadb": (["--engine", "mariadb"], "MariaDB", [
        "  PASS log_bin: log_bin=ON (need ON)",
        "  PASS binlog_format: binlog_format=ROW (need ROW)",
        "  PASS binlog_row_image: binlog_row_image=FULL (need FULL)"]),
}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_demo_runs_the_whole_pipeline_and_reconciles(engine: str) -> None:
    # WHEN the demo command runs in a fresh process (it starts its own source database;
    # PostgreSQL by default)
    args, name, preflight = ENGINES[engine]
    res = subprocess.run([sys.executable, "-m", "tools.demo", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=240, check=False)
    out = res.stdout

    # THEN it exits 0 with the reconcile summary, having shown every kind of change
    assert res.returncode == 0, out + res.stderr
    assert out.rstrip().endswith("RESULT: OK -- nothing lost, nothing echoed")
    lines = out.splitlines()
    bus = [line for line in lines if line.lstrip().startswith("bus <-")]
    ops = {line.split()[2] for line in bus}
    assert ops == {"insert", "update", "delete", "snapshot"}
    assert any(BIG in line and "東京" in line for line in bus)  # exact 38 digits, unicode
    assert any('"region":"eu-west-1"' in line for line in bus)  # the column added mid-run
    assert sum("snapshot parcels" in line for line in bus) == 3  # the table created mid-run
    assert sum('{"id":9001}' in line for line in bus) == 1  # one bus event per real change
    assert lines[1].startswith(f"starting {name} (")
    assert sum(f"writeback -> {name}: INSERT orders id=9001" in line for line in lines) == 1
    for line in lines:
        if " vs " in line:
            assert line.lstrip().startswith("OK"), line
    assert sum(" vs " in line for line in lines) == 4  # 2 tables x (DynamoDB, replica)
    assert not any(line.startswith('{"') for line in lines)  # handler logs go to the file
    assert "17 records valid against envelope.schema.json" in out
    assert f"  writeback: 1 row write(s) to {name}, 0 repeated, 0 echoes" in lines
    # AND the preflight's checks for the engine pass (PostgreSQL: its source tables use
    # REPLICA IDENTITY FULL; MariaDB: the binary log is what DMS reads)
    for line in preflight:
        assert line in lines


def test_demo_rejects_an_unknown_engine_in_one_line() -> None:
    # WHEN the demo is asked for an engine it has no local pipeline for
    res = subprocess.run([sys.executable, "-m", "tools.demo", "--engine", "oracle"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)

    # THEN one line names the engines it runs on, exit 2, nothing started
    assert res.returncode == 2
    assert res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert "--engine" in line and "'mariadb'" in line and "'postgres'" in line, line


def test_demo_names_the_debian_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a machine without the PostgreSQL server package
    assert demo.missing_packages(str(tmp_path)) == ["postgresql"]
    monkeypatch.setattr(demo, "missing_packages", lambda **_: ["postgresql"])
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)  # not root: nothing is installed
    lines: list[str] = []

    # WHEN the demo runs (even with --install)
    code = demo.main(["--install"], out=lines.append)

    # THEN it exits 2 and says exactly what to install
    assert code == demo.EXIT_SETUP
    assert "sudo apt-get install -y --no-install-recommends postgresql" in "\n".join(lines)


def test_demo_names_the_mariadb_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a machine without the MariaDB server (not on PATH, not in sbin)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert demo.missing_packages(engine="mariadb", sbin=str(tmp_path)) == ["mariadb-server"]
    real = demo.missing_packages
    monkeypatch.setattr(demo, "missing_packages",
                        lambda **kw: real(**kw, sbin=str(tmp_path)))
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)  # not root: nothing is installed
    lines: list[str] = []

    # WHEN the demo runs on MariaDB
    code = demo.main(["--engine", "mariadb", "--install"], out=lines.append)

    # THEN it exits 2 and says exactly what to install
    assert code == demo.EXIT_SETUP
    assert "sudo apt-get install -y --no-install-recommends mariadb-server" in "\n".join(lines)
