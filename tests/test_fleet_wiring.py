"""`alarms.fleet`: one tag-scoped throttle alarm for the environment instead of one per
adopted table, and the account preflight checks the account setting it relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from dms_event_bus.settings.aws_limits import evaluate
from tests.test_scale import GENERATED_DMS, GET_TABLES, adopted_table_outputs
from tools import mockrun
from tools.account.checks import check_telemetry_tags
from tools.account.needs import stack_needs
from tools.account_preflight import load_stack

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
PREFIX = "dmsbus-fleet-"
DECLARED = ["orders", "customers"]
ADOPTED = ["audit_a", "audit_b", "audit_c"]


def plan(folder: Path, fleet: bool | None) -> tuple[Any, mockrun.Plan]:
    config: dict[str, Any] = {
        "aws:region": "eu-west-1",
        "dms-event-bus:tables": {t: {"partition_key": {"name": "id", "type": "S"}}
                                 for t in DECLARED},
        "dms-event-bus:dms": GENERATED_DMS,
    }
    if fleet is not None:
        config["dms-event-bus:alarms"] = {"fleet": fleet}
    (folder / "Pulumi.fleet.yaml").write_text(yaml.safe_dump({"config": config}))

    def get_tables(_args: dict[str, Any]) -> dict[str, Any]:
        return {"names": [PREFIX + t for t in ADOPTED], "id": "eu-west-1"}

    with adopted_table_outputs():
        result = mockrun.run_stack("fleet", stack_dir=folder,
                                   invoke_answers={GET_TABLES: get_tables})
    settings, _region = load_stack("fleet", folder)  # the account preflight's own loader
    return settings, result


def throttle_alarms(p: mockrun.Plan) -> set[str]:
    return {r.inputs["name"] for r in p.resources
            if r.type == ALARM and "throttles" in str(r.inputs.get("name"))}


@pytest.mark.parametrize("fleet", [None, False, True])
def test_fleet_replaces_the_adopted_tables_alarms_only(tmp_path: Path,
                                                       fleet: bool | None) -> None:
    settings, p = plan(tmp_path, fleet)
    declared = {f"{PREFIX}{t}-write-throttles" for t in DECLARED}
    adopted = {f"{PREFIX}{t}-write-throttles" for t in ADOPTED}
    if fleet:
        assert throttle_alarms(p) == declared | {f"{PREFIX}(all)-write-throttles"}
        (query,) = [q["expression"] for r in p.resources if r.type == ALARM
                    for q in r.inputs.get("metricQueries") or [] if q.get("expression")]
        assert "tag.environment = 'fleet'" in query and "tag.project = 'dms-event-bus'" in query
    else:
        assert throttle_alarms(p) == declared | adopted
    assert not evaluate(p).violations
    assert stack_needs(settings, p).tag_scoped_alarms is bool(fleet)


@pytest.mark.parametrize(("status", "ok"), [("Running", True), ("Stopped", False),
                                            ("Impaired", False)])
def test_the_account_preflight_checks_tags_on_telemetry(status: str, ok: bool) -> None:
    client = boto3.client("observabilityadmin", region_name="eu-west-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stub:
        stub.add_response("get_telemetry_enrichment_status", {"Status": status})
        check = check_telemetry_tags(lambda _s, _r: client, "eu-west-1")
    assert check.ok is ok
    assert status in check.found
    if not ok:
        assert "start-telemetry-enrichment" in check.fix


def test_an_unreadable_status_fails_with_the_permission_to_add() -> None:
    client = boto3.client("observabilityadmin", region_name="eu-west-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stub:
        stub.add_client_error("get_telemetry_enrichment_status", "AccessDeniedException")
        check = check_telemetry_tags(lambda _s, _r: client, "eu-west-1")
    assert not check.ok and "GetTelemetryEnrichmentStatus" in check.fix
