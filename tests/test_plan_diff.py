"""`python -m tools.plan <stack> --against <plan JSON>`: adds, changes and deletes between two
plans of generated stacks, data-affecting deletes and replacements first, and the exit status
CI gates on; the DMS lines, `--section`, `--summary` and the collapsed API Gateway lines.

Stack files are built here (never the example stacks): two folders hold the same stack name
with different configs, each planned to JSON the way the PR workflow does
(`python -m tools.plan <stack> --json > plan.json`).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from tests.test_scale import GENERATED_DMS
from tools import plan as plan_tool
from tools import plan_diff
from tools.plan_diff import EXIT_DATA_AFFECTING, REPLACE_RULES

STACK = "pd"
PREFIX = f"dmsbus-{STACK}-"
TABLE = "aws:dynamodb/table:Table"
#: the tables a generated stack picks from (logical name -> partition key column)
POOL = {"orders": "order_id", "customers": "customer_id", "products": "sku",
        "invoices": "invoice_id", "suppliers": "supplier_id"}


def config_of(tables: tuple[str, ...], *, keys: dict[str, str] | None = None,
              tags: dict[str, str] | None = None, iterator_age_ms: int = 300_000,
              wildcards: bool = False, ingest: bool = False) -> dict[str, Any]:
    keys = {**POOL, **(keys or {})}
    dms = copy.deepcopy(GENERATED_DMS)
    if wildcards:
        dms["wildcards"] = [{"schema": "audit", "table_pattern": "%", "exclude": ["tmp_%", "x_%"],
                             "table_prefix": "audit_"}]
    config: dict[str, Any] = {
        "aws:region": "eu-west-1",
        "dms-event-bus:tags": tags or {"team": "data"},
        "dms-event-bus:alarms": {"iterator_age_ms": iterator_age_ms},
        "dms-event-bus:tables": {t: {"partition_key": {"name": keys[t], "type": "S"}}
                                 for t in tables},
        "dms-event-bus:dms": dms,
    }
    if ingest:
        config["dms-event-bus:ingest_api"] = {"auth": "iam", "entities": {"requests": {
            "fields": {"sku": {"type": "string", "required": True}}}}}
    return config


def write_stack(folder: Path, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": config}))
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = plan_tool.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def plan_to_json(folder: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = run(capsys, STACK, "--stack-dir", str(folder), "--json")
    assert code == 0, err
    return json.loads(out)


@cache
def planned(tables: tuple[str, ...], rekeyed: tuple[str, ...] = ()) -> dict[str, Any]:
    """The --json plan of a generated stack whose `rekeyed` tables have another partition key
    (cached: hypothesis draws the same sets again)."""
    import tempfile  # noqa: PLC0415 - only for the cache's own folders

    keys = {t: f"{POOL[t]}_v2" for t in rekeyed}
    folder = write_stack(Path(tempfile.mkdtemp(prefix="plan-diff-")),
                         config_of(tables, keys=keys))
    from contextlib import redirect_stdout  # noqa: PLC0415
    from io import StringIO  # noqa: PLC0415

    buffer = StringIO()
    with redirect_stdout(buffer):
        assert plan_tool.main([STACK, "--stack-dir", str(folder), "--json"]) == 0
    return json.loads(buffer.getvalue())


def against(tmp_path: Path, capsys: pytest.CaptureFixture[str], base: dict[str, Any],
            head: Path, *extra: str) -> tuple[int, str, str]:
    base_file = tmp_path / "base-plan.json"
    base_file.write_text(json.dumps(base))
    return run(capsys, STACK, "--stack-dir", str(head), "--against", str(base_file), *extra)


def data_affecting(base: dict[str, Any], head: dict[str, Any]) -> list[tuple[str, str, str]]:
    d = plan_diff.diff(base, head)
    return [(f.action, f.res.type, f.res.physical) for f in d.data_affecting]


# -- the diff through the command: what a reviewer reads, and the exit status ---------------


def test_removing_a_table_is_a_data_affecting_delete_and_exit_3(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = planned(("orders", "suppliers"))
    head = write_stack(tmp_path / "head", config_of(("orders",)))
    code, out, _ = against(tmp_path, capsys, base, head)
    assert code == EXIT_DATA_AFFECTING
    lines = out.splitlines()
    flagged = [i for i, line in enumerate(lines) if line.startswith("  !! DELETE")]
    assert len(flagged) == 1, out
    assert f"{PREFIX}suppliers" in lines[flagged[0]] and TABLE in lines[flagged[0]]
    # at the top: right after the counts line and the DATA-AFFECTING heading
    assert lines[1].startswith("DATA-AFFECTING (1)") and flagged[0] == 2
    assert "urn:pulumi:" in lines[3] and "::suppliers-table" in lines[3]
    # the DMS mappings change is said in one line, then by rule name (not position)
    assert "mappings: 2 declared tables, 0 exclusions -> 1 declared table, 0 exclusions" in out
    assert "tableMappings.rules[2-select-suppliers]: {" in out
    deletes = out.split("\ndelete (")[1]
    assert "suppliers-table" in deletes and "suppliers-write-throttles" in deletes
    assert "orders-table" not in deletes


def test_changing_a_key_replaces_the_table_and_its_stream(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = planned(("orders", "customers"))
    head = write_stack(tmp_path / "head", config_of(("orders", "customers"),
                                                    keys={"orders": "order_no"}))
    code, out, _ = against(tmp_path, capsys, base, head)
    assert code == EXIT_DATA_AFFECTING
    assert f"!! REPLACE orders-table ({PREFIX}orders) [{TABLE}]" in out
    assert "because hashKey changed" in out
    assert f"!! REPLACE STREAM orders-table ({PREFIX}orders)" in out
    assert "customers-table" not in out.split("\nadd (")[0].split("\nchange (")[0]
    change = out.split("\nchange (")[1]
    assert "+- orders-table" in change and 'hashKey: "order_id" -> "order_no"' in change


def test_a_tag_or_alarm_threshold_change_is_a_plain_update(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = planned(("orders",))
    head = write_stack(tmp_path / "head", config_of(
        ("orders",), tags={"team": "platform"}, iterator_age_ms=120_000))
    code, out, _ = against(tmp_path, capsys, base, head)
    assert code == 0, out
    assert "no data-affecting change" in out and "(0 replace)" in out
    assert "0 to add" in out and "0 to delete" in out
    assert "~ orders-table" in out and 'tags.team: "data" -> "platform"' in out
    assert "threshold: 300000 -> 120000" in out
    assert "+-" not in out and "!!" not in out


def test_an_added_table_is_an_add(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = planned(("orders",))
    head = write_stack(tmp_path / "head", config_of(("orders", "invoices")))
    code, out, _ = against(tmp_path, capsys, base, head)
    assert code == 0, out
    adds = out.split("\nadd (")[1].split("\nchange (")[0]
    assert f"+ invoices-table ({PREFIX}invoices) [{TABLE}]" in adds
    assert "0 to delete" in out and "no data-affecting change" in out


def test_the_same_plan_has_no_changes(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    head = write_stack(tmp_path / "head", config_of(("orders",)))
    code, out, _ = against(tmp_path, capsys, plan_to_json(head, capsys), head)
    assert code == 0
    assert "0 to add, 0 to change (0 replace), 0 to delete" in out


def test_a_plan_file_from_before_urns_matches_by_parent_and_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Base plans written by the previous tools.plan (no format, no urn): same URNs."""
    head = write_stack(tmp_path / "head", config_of(("orders",)))
    old = plan_to_json(head, capsys)
    old.pop("format")
    for r in old["resources"]:
        del r["urn"], r["custom"]
        if "code" in r["inputs"]:  # the old --json wrote the archive's repr
            r["inputs"]["code"] = "<pulumi.asset.FileArchive object at 0x7f93384137d0>"
    code, out, _ = against(tmp_path, capsys, old, head)
    assert code == 0 and "0 to add, 0 to change (0 replace), 0 to delete" in out


def test_diff_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = planned(("orders", "suppliers"))
    head = write_stack(tmp_path / "head", config_of(("orders",)))
    code, out, _ = against(tmp_path, capsys, base, head, "--json")
    assert code == EXIT_DATA_AFFECTING
    doc = json.loads(out)
    assert [(f["action"], f["type"], f["physical"]) for f in doc["data_affecting"]] == [
        ("DELETE", TABLE, f"{PREFIX}suppliers")]
    assert all(r["urn"].startswith(f"urn:pulumi:{STACK}::") for r in doc["deletes"])


# -- bad base plans: one line, exit 2 --------------------------------------------------------


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such file"),
    ("{not json", "not JSON"),
    ('{"stack": "pd"}', "no 'resources' list"),
    ('{"resources": []}', "no 'stack' name"),
    ('{"format": 99, "stack": "pd", "resources": []}', "newer than this tool"),
    ('{"stack": "pd", "resources": [{"type": "x"}]}', "resource 0 is not a plan resource"),
    ('{"stack": "other", "resources": []}', "plan of stack 'other', not 'pd'"),
    ('[1, 2]', "not a plan"),
])
def test_a_bad_base_plan_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           content: str | None, expected: str) -> None:
    head = write_stack(tmp_path / "head", config_of(("orders",)))
    base_file = tmp_path / "base-plan.json"
    if content is not None:
        base_file.write_text(content)
    code, out, err = run(capsys, STACK, "--stack-dir", str(head), "--against", str(base_file))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and expected in err, err


def test_two_different_stack_names_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        plan_tool.main(["dev", "--stack", "prod"])
    assert done.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# -- secrets ---------------------------------------------------------------------------------


def test_secrets_are_masked_in_the_plan_json_and_the_diff() -> None:
    base = copy.deepcopy(planned(("orders",)))
    head = copy.deepcopy(base)
    source_old = next(r for r in base["resources"] if r["name"] == "dms-source")
    source_new = next(r for r in head["resources"] if r["name"] == "dms-source")
    source_old["inputs"]["password"] = "hunter2-old"
    source_old["inputs"]["kafkaSettings"] = {"saslPassword": "s3cr3t-old"}
    source_new["inputs"]["password"] = "hunter2-new"
    source_new["inputs"]["kafkaSettings"] = {"saslPassword": "s3cr3t-sasl"}
    table_new = next(r for r in head["resources"] if r["name"] == "orders-table")
    table_new["inputs"]["tags"]["owner"] = "<secret>"  # a `secure:` config value offline
    # what tools.plan --json writes
    written = json.dumps(plan_diff.plan_document(STACK, head["resources"]))
    assert "hunter2" not in written and "s3cr3t" not in written and "<secret>" not in written
    d = plan_diff.diff(base, head)
    text = plan_diff.render(d) + json.dumps(plan_diff.as_json(d))
    assert "hunter2" not in text and "s3cr3t" not in text and "<secret>" not in text
    assert "password: [secret] changed" in text
    assert "kafkaSettings.saslPassword: [secret] changed" in text
    assert "tags.owner: [secret] changed" in text
    # a masked value that did not change is no change
    assert plan_diff.diff(copy.deepcopy(base), copy.deepcopy(base)).changes == []


@pytest.mark.parametrize("key", ["password", "Password", "secretString", "sasl_password",
                                 "sslClientKeyPassword", "authToken", "privateKey"])
def test_sensitive_keys(key: str) -> None:
    assert plan_diff.is_sensitive(key)


@pytest.mark.parametrize("key", ["secretsManagerArn", "secretsManagerAccessRoleArn", "name",
                                 "apiKeyRequired", "apiKeySource", "credentials", "tokenUrl"])
def test_references_to_secrets_are_not_masked(key: str) -> None:
    assert not plan_diff.is_sensitive(key)


def test_secrets_the_program_marks_are_masked_by_type() -> None:
    """An EventBridge connection's API key value (a Pulumi secret in the program) is masked,
    the same on both sides when it did not change, changed when it did."""
    connection = "aws:cloudwatch/eventConnection:EventConnection"

    def raw(token: str) -> dict[str, Any]:
        inputs = {"name": "c", "authParameters": {"apiKey": {"key": "Authorization",
                                                             "value": f"Bearer {token}"}}}
        return {"stack": STACK, "resources": [_resource(connection, "c", inputs)]}

    def doc(token: str) -> dict[str, Any]:
        return plan_diff.plan_document(STACK, raw(token)["resources"])

    written = json.dumps(doc("ghp_abc"))
    assert "ghp_abc" not in written and '"key": "Authorization"' in written
    assert plan_diff.diff(doc("ghp_abc"), doc("ghp_abc")).changes == []
    # a base written unmasked (older tools.plan) compares equal to a masked one
    assert plan_diff.diff(raw("ghp_abc"), doc("ghp_abc")).changes == []
    d = plan_diff.diff(doc("ghp_abc"), doc("ghp_xyz"))
    assert "authParameters.apiKey.value: [secret] changed" in plan_diff.render(d)


# -- property: exactly the removed tables are data-affecting ---------------------------------

subsets = st.sets(st.sampled_from(sorted(POOL)), min_size=1).map(lambda s: tuple(sorted(s)))


@examples(max_examples=15, deadline=None)
@given(base_tables=subsets, head_tables=subsets, rekeyed=subsets)
def test_exactly_the_removed_and_rekeyed_tables_are_data_affecting(
        base_tables: tuple[str, ...], head_tables: tuple[str, ...],
        rekeyed: tuple[str, ...]) -> None:
    """Random tables removed, added, and given another partition key: every removed table is a
    data-affecting DELETE, every kept table with a new key a REPLACE (and its stream), and
    nothing else is data-affecting."""
    rekeyed = tuple(t for t in rekeyed if t in head_tables)
    d = plan_diff.diff(planned(base_tables), planned(head_tables, rekeyed))
    removed = set(base_tables) - set(head_tables)
    added = set(head_tables) - set(base_tables)
    replaced = set(rekeyed) & set(base_tables)
    assert sorted((f.action, f.res.type, f.res.physical) for f in d.data_affecting) == sorted(
        [("DELETE", TABLE, f"{PREFIX}{t}") for t in removed]
        + [(action, TABLE, f"{PREFIX}{t}") for t in replaced
           for action in ("REPLACE", "REPLACE STREAM")])
    assert {r.physical for r in d.adds if r.type == TABLE} == {f"{PREFIX}{t}" for t in added}
    assert {r.physical for r in d.deletes if r.type == TABLE} == {
        f"{PREFIX}{t}" for t in removed}
    assert {c.new.physical for c in d.changes if c.replace} == {f"{PREFIX}{t}" for t in replaced}


# -- the replace table -----------------------------------------------------------------------


def test_every_replace_rule_names_its_source_and_the_data_types_are_covered() -> None:
    for type_, rule in REPLACE_RULES.items():
        assert rule.replace_on and rule.source, type_
    holding = {t for t, r in REPLACE_RULES.items() if r.holds_data}
    assert {TABLE, "aws:kinesis/stream:Stream", "aws:s3/bucket:Bucket", "aws:kms/key:Key",
            "aws:dms/endpoint:Endpoint", "aws:dms/replicationTask:ReplicationTask",
            "aws:dms/replicationConfig:ReplicationConfig", "aws:sqs/queue:Queue"} <= holding


def _resource(type_: str, logical: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"urn": f"urn:pulumi:{STACK}::p::{type_}::{logical}", "type": type_,
            "name": logical, "inputs": inputs}


@pytest.mark.parametrize(("type_", "old", "new", "data"), [
    ("aws:kinesis/stream:Stream", {"name": "a"}, {"name": "b"}, True),
    ("aws:kinesis/stream:Stream", {"name": "a", "retentionPeriod": 24},
     {"name": "a", "retentionPeriod": 48}, False),
    ("aws:s3/bucket:Bucket", {"bucket": "a"}, {"bucket": "b"}, True),
    ("aws:kms/key:Key", {"keyUsage": "ENCRYPT_DECRYPT"}, {"keyUsage": "SIGN_VERIFY"}, True),
    ("aws:kms/key:Key", {"description": "a"}, {"description": "b"}, False),
    ("aws:dms/endpoint:Endpoint", {"endpointId": "a"}, {"endpointId": "b"}, True),
    ("aws:dms/endpoint:Endpoint", {"endpointId": "a", "sslMode": "none"},
     {"endpointId": "a", "sslMode": "require"}, False),
    ("aws:dms/replicationTask:ReplicationTask", {"replicationTaskId": "a"},
     {"replicationTaskId": "b"}, True),
    ("aws:dms/replicationConfig:ReplicationConfig", {"computeConfig": {
        "replicationSubnetGroupId": "a", "maxCapacityUnits": 4}},
     {"computeConfig": {"replicationSubnetGroupId": "b", "maxCapacityUnits": 4}}, True),
    ("aws:dms/replicationConfig:ReplicationConfig", {"computeConfig": {"maxCapacityUnits": 4}},
     {"computeConfig": {"maxCapacityUnits": 8}}, False),
    ("aws:sqs/queue:Queue", {"name": "x-dlq"}, {"name": "y-dlq"}, True),
    ("aws:sqs/queue:Queue", {"name": "work"}, {"name": "work2"}, False),
    (TABLE, {"name": "t", "streamEnabled": True, "streamViewType": "NEW_IMAGE"},
     {"name": "t", "streamEnabled": True, "streamViewType": "NEW_AND_OLD_IMAGES"}, True),
    ("pulumi-python:dynamic/dms:AdoptedTable", {"table_name": "t", "replace_stream": False},
     {"table_name": "t", "replace_stream": True}, True),
    ("pulumi-python:dynamic/dms:AdoptedTable", {"table_name": "t", "tags": {"a": "1"}},
     {"table_name": "t", "tags": {"a": "2"}}, False),
    (TABLE, {"name": "t", "billingMode": "PROVISIONED"},
     {"name": "t", "billingMode": "PAY_PER_REQUEST"}, False),
])
def test_replace_or_update_per_type(type_: str, old: dict[str, Any], new: dict[str, Any],
                                    data: bool) -> None:
    d = plan_diff.diff({"stack": STACK, "resources": [_resource(type_, "r", old)]},
                       {"stack": STACK, "resources": [_resource(type_, "r", new)]})
    assert len(d.changes) == 1
    assert bool(d.data_affecting) is data, plan_diff.render(d)


def test_deleting_an_adopted_table_only_forgets_it() -> None:
    adopted = _resource("pulumi-python:dynamic/dms:AdoptedTable", "a", {"table_name": "t"})
    d = plan_diff.diff({"stack": STACK, "resources": [adopted]},
                       {"stack": STACK, "resources": []})
    assert len(d.deletes) == 1 and d.data_affecting == []


# -- in-place updates that destroy data --------------------------------------------------------

KINESIS = "aws:kinesis/stream:Stream"
QUEUE = "aws:sqs/queue:Queue"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"


def _edit(doc: dict[str, Any], logical: str, edit: Any) -> dict[str, Any]:
    """A copy of the plan `doc` with `edit(inputs)` applied to the resource named `logical`."""
    out = copy.deepcopy(doc)
    (resource,) = [r for r in out["resources"] if r["name"] == logical]
    edit(resource["inputs"])
    return out


def _set(path: str, value: Any) -> Any:
    def edit(inputs: dict[str, Any]) -> None:
        *parents, key = path.split(".")
        holder = inputs
        for part in parents:
            holder = holder[int(part)] if isinstance(holder, list) else holder.setdefault(part, {})
        if value is None:
            holder.pop(key, None)
        else:
            holder[key] = value
    return edit


def test_a_shorter_kinesis_retention_is_data_affecting_first_and_exit_3(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The base kept 7 days of records; the program now declares 24 hours (its default)."""
    base = _edit(planned(("orders",)), "bus-stream", _set("retentionPeriod", 168))
    head = write_stack(tmp_path / "head", config_of(("orders",)))
    code, out, _ = against(tmp_path, capsys, base, head)
    assert code == EXIT_DATA_AFFECTING, out
    lines = out.splitlines()
    assert lines[1].startswith("DATA-AFFECTING (1)")
    assert lines[2].startswith(f"  !! UPDATE bus-stream ({PREFIX}bus) [{KINESIS}]: ")
    assert "retentionPeriod 168 -> 24" in lines[2]
    assert "(0 replace)" in lines[0] and "~ bus-stream" in out


@pytest.mark.parametrize(("logical", "path", "old", "new", "shown"), [
    ("bus-stream", "retentionPeriod", 168, 24, "retentionPeriod 168 -> 24"),
    ("bus-stream", "retentionPeriod", 48, None, "retentionPeriod 48 -> (none)"),
    ("bus-overflow-lifecycle", "rules.0.expiration.days", 30, 7, "expiration.days 30 -> 7"),
    ("bus-overflow-lifecycle", "rules.0.noncurrentVersionExpiration.noncurrentDays", 7, 1,
     "noncurrentVersionExpiration.noncurrentDays 7 -> 1"),
    ("bus-overflow-lifecycle", "rules.0.expiration", None, {"days": 365},
     "rules[expire].expiration.days (none) -> 365"),
    ("bus-dlq", "messageRetentionSeconds", 1_209_600, 86_400,
     "messageRetentionSeconds 1209600 -> 86400"),
    ("orders-table", "pointInTimeRecovery.enabled", True, False,
     "pointInTimeRecovery.enabled true -> false"),
    ("orders-table", "pointInTimeRecovery", {"enabled": True}, None,
     "pointInTimeRecovery.enabled true -> (none)"),
    ("orders-table", "ttl", None, {"attributeName": "expires_at", "enabled": True},
     "ttl"),
    ("orders-table", "ttl", {"attributeName": "expires_at", "enabled": True},
     {"attributeName": "valid_until", "enabled": True}, "ttl"),
    ("orders-table", "ttl", {"attributeName": "expires_at", "enabled": False},
     {"attributeName": "expires_at", "enabled": True}, "ttl"),
])
def test_an_update_that_destroys_data_is_data_affecting(
        logical: str, path: str, old: Any, new: Any, shown: str) -> None:
    """The inputs the program declares (planned, then set on each side): one UPDATE line."""
    plan = planned(("orders",))
    d = plan_diff.diff(_edit(plan, logical, _set(path, old)), _edit(plan, logical, _set(path, new)))
    (change,) = d.changes
    assert not change.replace
    (finding,) = d.data_affecting
    assert (finding.action, finding.res.name) == ("UPDATE", logical)
    assert shown in finding.why and "\n" not in finding.why
    assert plan_diff.render(d).splitlines()[2].startswith(f"  !! UPDATE {logical} ")


@pytest.mark.parametrize(("logical", "path", "old", "new"), [
    ("bus-stream", "retentionPeriod", 24, 168),
    ("bus-stream", "retentionPeriod", None, 24),
    ("bus-overflow-lifecycle", "rules.0.expiration.days", 7, 30),
    ("bus-overflow-lifecycle", "rules.0.expiration", {"days": 30}, None),
    ("bus-overflow-lifecycle", "rules.0.noncurrentVersionExpiration.noncurrentDays", 1, 7),
    ("bus-dlq", "messageRetentionSeconds", 86_400, 1_209_600),
    ("orders-table", "pointInTimeRecovery.enabled", False, True),
    ("orders-table", "ttl", {"attributeName": "expires_at", "enabled": True}, None),
    ("orders-table", "ttl", {"attributeName": "expires_at", "enabled": True},
     {"attributeName": "expires_at", "enabled": False}),
])
def test_a_longer_retention_or_more_protection_is_a_plain_update(
        logical: str, path: str, old: Any, new: Any) -> None:
    plan = planned(("orders",))
    d = plan_diff.diff(_edit(plan, logical, _set(path, old)), _edit(plan, logical, _set(path, new)))
    assert len(d.changes) == 1 and d.data_affecting == [], plan_diff.render(d)


def test_lifecycle_rules_are_paired_by_id_not_position() -> None:
    def lifecycle(*rules: tuple[str, int]) -> dict[str, Any]:
        return {"stack": STACK, "resources": [_resource(LIFECYCLE, "l", {"bucket": "b", "rules": [
            {"id": i, "status": "Enabled", "expiration": {"days": days}} for i, days in rules]})]}

    assert plan_diff.diff(lifecycle(("a", 30), ("b", 7)),
                          lifecycle(("b", 7), ("a", 30))).data_affecting == []
    (finding,) = plan_diff.diff(lifecycle(("a", 30), ("b", 7)),
                                lifecycle(("b", 7), ("a", 10))).data_affecting
    assert "rules[a].expiration.days 30 -> 10" in finding.why


def test_a_shorter_retention_on_a_work_queue_is_not_flagged() -> None:
    """Only a dead-letter queue holds records to keep (as for its replacement)."""
    def queue(seconds: int) -> dict[str, Any]:
        return {"stack": STACK, "resources": [_resource(QUEUE, "q", {
            "name": "work", "messageRetentionSeconds": seconds})]}

    assert plan_diff.diff(queue(1_209_600), queue(60)).data_affecting == []


def test_every_update_rule_is_for_a_data_holding_type() -> None:
    for type_, rules in plan_diff.UPDATE_RULES.items():
        assert type_.startswith("aws:s3/bucketLifecycle") or REPLACE_RULES[type_].holds_data
        assert rules, type_
        assert all(rule.path and rule.why for rule in rules), type_


retention = {"bus-stream": ("retentionPeriod", st.integers(24, 8760)),
             "bus-dlq": ("messageRetentionSeconds", st.integers(60, 1_209_600)),
             "bus-overflow-lifecycle": ("rules.0.expiration.days", st.integers(1, 3650)),
             "bus-overflow-lifecycle ": ("rules.0.noncurrentVersionExpiration.noncurrentDays",
                                         st.integers(1, 3650))}


@examples(max_examples=60, deadline=None)
@given(data=st.data(), which=st.sampled_from(sorted(retention)))
def test_a_retention_is_data_affecting_exactly_when_it_decreases(
        data: st.DataObject, which: str) -> None:
    path, values = retention[which]
    old, new = data.draw(values, "old"), data.draw(values, "new")
    plan = planned(("orders",))
    d = plan_diff.diff(_edit(plan, which.strip(), _set(path, old)),
                       _edit(plan, which.strip(), _set(path, new)))
    assert [(f.action, f.res.name) for f in d.data_affecting] == (
        [("UPDATE", which.strip())] if new < old else [])


# -- the tree: DMS lines, sections, summary, API Gateway -------------------------------------


def test_dms_lines_show_engine_capacity_type_and_mappings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_stack(tmp_path, config_of(("orders", "customers", "products"),
                                             wildcards=True))
    code, out, _ = run(capsys, STACK, "--stack-dir", str(folder), "--section", "dms")
    assert code == 0
    summary = "3 declared tables, 1 wildcard audit.%, 2 exclusions"
    (component,) = [line for line in out.splitlines() if "[dms-event-bus:index:DmsSource]" in line]
    for shown in ("engine=postgres", "capacity=serverless 1-4 DCU", "type=full-load-and-cdc",
                  f"mappings={summary}"):
        assert shown in component
    (config,) = [line for line in out.splitlines() if "ReplicationConfig]" in line]
    assert f"mappings={summary}" in config and "capacity=serverless 1-4 DCU" in config
    (source,) = [line for line in out.splitlines() if "- dms-source " in line]
    assert "type=source engine=postgres" in source


def test_instance_capacity_shows_the_class(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = config_of(("orders",))
    config["dms-event-bus:dms"]["capacity"] = {"mode": "instance",
                                               "instance_class": "dms.t3.medium"}
    folder = write_stack(tmp_path, config)
    code, out, _ = run(capsys, STACK, "--stack-dir", str(folder), "--section", "dms")
    assert code == 0
    (component,) = [line for line in out.splitlines() if "[dms-event-bus:index:DmsSource]" in line]
    assert "capacity=instance dms.t3.medium" in component
    assert "type=full-load-and-cdc" in component and "mappings=1 declared table" in component


def test_sections_keep_one_part(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_stack(tmp_path, config_of(("orders",), ingest=True))
    for section, inside, outside in [("dms", "DmsSource", "KinesisBus"),
                                     ("bus", "KinesisBus", "DmsSource"),
                                     ("ingest", "IngestApi", "StreamedTable"),
                                     ("ops", "AlarmTopic", "IngestApi")]:
        code, out, _ = run(capsys, STACK, "--stack-dir", str(folder), "--section", section)
        tree = out.split("Cost estimate")[0]
        assert code == 0 and inside in tree and outside not in tree, (section, tree)


def test_api_gateway_is_one_line_per_api(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_stack(tmp_path, config_of(("orders",), ingest=True))
    code, out, _ = run(capsys, STACK, "--stack-dir", str(folder), "--section", "ingest")
    tree = out.split("Cost estimate")[0].splitlines()
    apigw = [line for line in tree if "[aws:apigateway/" in line]
    assert code == 0 and len(apigw) == 1 and "routes: " in apigw[0]
    assert "/requests" in apigw[0] and "POST" in apigw[0]
    code, out, _ = run(capsys, STACK, "--stack-dir", str(folder), "--section", "ingest",
                       "--api-detail")
    detailed = [line for line in out.splitlines() if "[aws:apigateway/" in line]
    assert code == 0 and len(detailed) > 10


def test_summary_counts_by_component_and_type(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_stack(tmp_path, config_of(("orders", "customers")))
    code, out, _ = run(capsys, STACK, "--stack-dir", str(folder), "--summary")
    assert code == 0
    summary = out.split("Cost estimate")[0].splitlines()
    (tables,) = [line for line in summary if "StreamedTable" in line]
    assert "StreamedTable x2: 4 resources (2 MetricAlarm, 2 Table)" in tables
    total = json.loads(json.dumps(planned(("customers", "orders"))))["resources"]
    assert f"stack {STACK}: {len(total)} resources" in summary[0]
    assert len(summary) < 12
