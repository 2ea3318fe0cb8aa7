"""The adoption trigger's DLQ on the stack's dashboard: `__main__.py` wires it into the DLQ-depth
panel when `adoption.trigger` is set (and only then), with the same metric and queue as the
trigger's `...-adoption-trigger-dlq-depth` alarm, within the dashboard limits tests/
test_dashboard.py enforces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_dashboard import limit_violations
from tools.mockrun import ACCOUNT, Plan, run_stack

REGION = "eu-west-1"
STACK = "trig"
PREFIX = f"dmsbus-{STACK}-"
DLQ = f"{PREFIX}adoption-trigger-dlq"
PANEL = "DLQ depth (messages)"


def plan_of(folder: Path, *, trigger: bool, tables: int = 2) -> Plan:
    config: dict[str, Any] = {
        "aws:region": REGION,
        "dms-event-bus:tables": {
            f"table_{i:04d}": {"partition_key": {"name": "id", "type": "S"}} for i in range(tables)
        },
    }
    if trigger:
        config["dms-event-bus:adoption"] = {
            "trigger": {
                "repository": "acme/dms-event-bus",
                "token_secret_arn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:gh-AbCdEf",
            }
        }
    (folder / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": config}))
    return run_stack(STACK, stack_dir=folder)


def board_of(plan: Plan) -> dict[str, Any]:
    (board,) = plan.of_type("aws:cloudwatch/dashboard:Dashboard")
    parsed: dict[str, Any] = json.loads(board.inputs["dashboardBody"])
    return parsed


def dlq_rows(board: dict[str, Any]) -> list[list[Any]]:
    (panel,) = [w for w in board["widgets"] if w["properties"]["title"] == PANEL]
    rows: list[list[Any]] = panel["properties"]["metrics"]
    return rows


@pytest.fixture(scope="module")
def with_trigger(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_of(tmp_path_factory.mktemp("with"), trigger=True)


def test_the_trigger_dlq_is_on_the_dashboard(with_trigger: Plan) -> None:
    rows = dlq_rows(board_of(with_trigger))
    (row,) = [r for r in rows if r[3] == DLQ]
    assert row == [
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        DLQ,
        {"stat": "Maximum", "label": "adoption trigger DLQ"},
    ]
    # the queue the graph declares, and the one the trigger's depth alarm watches
    assert DLQ in {q.inputs.get("name") for q in with_trigger.of_type("aws:sqs/queue:Queue")}
    (alarm,) = [
        a
        for a in with_trigger.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.inputs.get("name") == f"{PREFIX}adoption-trigger-dlq-depth"
    ]
    assert (
        alarm.inputs["namespace"],
        alarm.inputs["metricName"],
        alarm.inputs["dimensions"],
        alarm.inputs["statistic"],
    ) == (row[0], row[1], {"QueueName": DLQ}, "Maximum")
    assert limit_violations(board_of(with_trigger)) == []


def test_without_the_trigger_the_dashboard_has_no_trigger_row(
    tmp_path: Path, with_trigger: Plan
) -> None:
    without = board_of(plan_of(tmp_path, trigger=False))
    assert all(r[3] != DLQ for r in dlq_rows(without))
    assert all("adoption" not in json.dumps(w) for w in without["widgets"])
    # the trigger adds exactly one metric row, nothing else
    with_rows = dlq_rows(board_of(with_trigger))
    assert len(with_rows) == len(dlq_rows(without)) + 1
    assert len(board_of(with_trigger)["widgets"]) == len(without["widgets"])
