"""`tools.plan` prints the cost estimate and, with --changes-per-second, the capacity model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_scale import GENERATED_DMS
from tools import plan as plan_tool


def stack(folder: Path, **bus: Any) -> Path:
    config: dict[str, Any] = {
        "aws:region": "eu-west-1",
        "dms-event-bus:tables": {"orders": {"partition_key": {"name": "id", "type": "S"}}},
        "dms-event-bus:dms": GENERATED_DMS,
    }
    if bus:
        config["dms-event-bus:bus"] = bus
    (folder / "Pulumi.est.yaml").write_text(yaml.safe_dump({"config": config}))
    return folder


def test_the_plan_prints_the_cost_and_the_capacity(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = stack(tmp_path, stream={"mode": "provisioned", "shards": 1})
    assert plan_tool.main(["--stack", "est", "--stack-dir", str(folder),
                           "--changes-per-second", "3000"]) == 0  # warnings keep exit 0
    out = capsys.readouterr().out
    assert "Cost estimate, stack 'est'" in out and "Month at 1,000,000 changes" in out
    assert "capacity: 1 tables, 3000 changes/s" in out
    assert "capacity warning:" in out  # 3,000 records/s on one provisioned shard (1,000/s)


def test_json_carries_cost_and_capacity(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = stack(tmp_path)
    assert plan_tool.main(["--stack", "est", "--stack-dir", str(folder), "--json",
                           "--changes-per-second", "10"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cost"]["stack"] == "est" and doc["cost"]["fixed"]
    assert doc["capacity"]["load"]["changes_per_second"] == 10


@pytest.mark.parametrize("value", ["-1", "lots", "inf", "nan"])
def test_a_bad_rate_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                value: str) -> None:
    with pytest.raises(SystemExit) as done:
        plan_tool.main(["--stack", "est", "--stack-dir", str(stack(tmp_path)),
                        "--changes-per-second", value])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--changes-per-second" in err
