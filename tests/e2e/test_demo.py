"""The demo command (`python -m tools.demo`): run as a user runs it, output checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import demo

ROOT = Path(__file__).resolve().parents[2]
BIG = "12345678901234567890123456789012345678"


def test_demo_runs_the_whole_pipeline_and_reconciles() -> None:
    # WHEN the demo command runs in a fresh process (it starts its own PostgreSQL)
    res = subprocess.run([sys.executable, "-m", "tools.demo"], cwd=ROOT, capture_output=True,
                         text=True, timeout=240, check=False)
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
    assert sum("writeback -> PostgreSQL" in line for line in lines) == 1
    for line in lines:
        if " vs " in line:
            assert line.lstrip().startswith("OK"), line
    assert sum(" vs " in line for line in lines) == 4  # 2 tables x (DynamoDB, replica)
    assert not any(line.startswith('{"') for line in lines)  # handler logs go to the file
    assert "17 records valid against envelope.schema.json" in out
    # AND its source tables use REPLICA IDENTITY FULL, as the preflight's check confirms
    assert ("  PASS replica identity: 2 table(s) with columns that can be TOASTed in "
            "public.orders, public.parcels, every one REPLICA IDENTITY FULL") in lines


def test_demo_names_the_debian_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a machine without the PostgreSQL server package
    assert demo.missing_packages(str(tmp_path)) == ["postgresql"]
    monkeypatch.setattr(demo, "missing_packages", lambda: ["postgresql"])
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)  # not root: nothing is installed
    lines: list[str] = []

    # WHEN the demo runs (even with --install)
    code = demo.main(["--install"], out=lines.append)

    # THEN it exits 2 and says exactly what to install
    assert code == demo.EXIT_SETUP
    assert "sudo apt-get install -y --no-install-recommends postgresql" in "\n".join(lines)
