"""AdoptedTable's provider against moto: create/diff/update/read/delete called directly."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dms_event_bus.providers import adopted_table
from dms_event_bus.providers.adopted_table import (
    MARKER_TAG,
    PROVIDER_VERSION,
    AdoptedTable,
    AdoptedTableProvider,
    AdoptionError,
)
from tools.localpipe.aws import MotoWorld

REGION = "eu-west-1"
ROOT = Path(__file__).resolve().parents[1]


class Calls:
    """Every AWS call the provider makes, by operation, with its parameters."""

    def __init__(self) -> None:
        self.made: list[tuple[str, dict[str, Any]]] = []

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.made.append((model.name, dict(params)))

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [p for op, p in self.made if op == operation]

    def clear(self) -> None:
        self.made.clear()


@pytest.fixture
def aws(moto_world: MotoWorld, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """moto (tests/conftest.py `moto_world`), and every call the provider makes recorded."""
    # credentials and AWS_DEFAULT_REGION: the moto world; the provider must not depend on
    # AWS_REGION
    monkeypatch.delenv("AWS_REGION", raising=False)
    calls = Calls()

    def recording_session() -> Any:
        sess = boto3.session.Session()
        sess.events.register("provide-client-params.*.*", calls.record)
        return sess

    monkeypatch.setattr(adopted_table, "session", recording_session)
    return calls


def ddb() -> Any:
    return boto3.client("dynamodb", region_name=REGION)


def unique(prefix: str = "dmsbus-test-") -> str:
    return f"{prefix}t{uuid.uuid4().hex[:8]}"


def dms_table(name: str, *, stream_view: str | None = None, sse: bool = True) -> None:
    """A table as DMS creates it: provisioned 200/200 (DMS's default), no stream."""
    extra: dict[str, Any] = {}
    if stream_view:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream_view}
    if sse:
        extra["SSESpecification"] = {"Enabled": True, "SSEType": "KMS"}
    ddb().create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "order_id", "KeyType": "HASH"},
            {"AttributeName": "line_no", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "order_id", "AttributeType": "N"},
            {"AttributeName": "line_no", "AttributeType": "N"},
        ],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 200, "WriteCapacityUnits": 200},
        **extra,
    )


def backfill_function(name: str) -> str:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handlers/backfill.py", "def handler(event, context):\n    return None\n")
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="handlers.backfill.handler",
        Code={"ZipFile": buf.getvalue()},
    )
    return name


def props(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "table_name": name,
        "logical_name": name.removeprefix("dmsbus-test-"),
        "wait_timeout_seconds": 10,
        "poll_seconds": 0.1,
        "tags": {"team": "data-platform"},
        "provider_version": PROVIDER_VERSION,
        **extra,
    }


def test_create_waits_for_a_table_that_appears_later(aws: Calls) -> None:
    # GIVEN no table yet; DMS creates it about a second after adoption starts
    name = unique()
    creator = threading.Timer(1.0, dms_table, args=(name,))
    creator.start()
    # WHEN the provider adopts it
    started = time.monotonic()
    result = AdoptedTableProvider().create(props(name))
    waited = time.monotonic() - started
    creator.join()
    # THEN it waited for the table, turned its stream on and returned its description
    assert waited >= 1.0
    assert result.id == name
    outs = result.outs or {}
    table = ddb().describe_table(TableName=name)["Table"]
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    assert outs["table_arn"] == table["TableArn"]
    assert outs["stream_arn"] == table["LatestStreamArn"]
    assert outs["key_schema"] == [
        {"name": "order_id", "key_type": "HASH", "attribute_type": "N"},
        {"name": "line_no", "key_type": "RANGE", "attribute_type": "N"},
    ]
    assert outs["key_names"] == ["order_id", "line_no"]
    # on-demand by default: DMS's 200/200 provisioned default is gone
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    pitr = ddb().describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    tags = ddb().list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
    assert {"Key": "team", "Value": "data-platform"} in tags


def test_create_times_out_with_a_message_that_says_what_to_check(aws: Calls) -> None:
    # GIVEN a table DMS never creates
    name = unique()
    # WHEN adoption waits at most half a second
    with pytest.raises(AdoptionError) as raised:
        AdoptedTableProvider().create(props(name, wait_timeout_seconds=0.5))
    # THEN the error names the table, how long it waited, and the DMS task/selection rule
    message = str(raised.value)
    assert f"'{name}'" in message
    assert REGION in message
    assert "after 0s" in message or "after 1s" in message
    assert "does not exist" in message
    assert "DMS task is running" in message
    assert "selection rule" in message
    assert "wait_timeout_seconds" in message
    assert aws.of("UpdateTable") == []


def test_a_stream_already_on_with_new_and_old_images_is_reused(aws: Calls) -> None:
    # GIVEN a table whose stream is already NEW_AND_OLD_IMAGES
    name = unique()
    dms_table(name, stream_view="NEW_AND_OLD_IMAGES")
    before = ddb().describe_table(TableName=name)["Table"]["LatestStreamArn"]
    # WHEN it is adopted
    outs = AdoptedTableProvider().create(props(name)).outs or {}
    # THEN the same stream is kept: no UpdateTable touched the stream
    assert outs["stream_arn"] == before
    assert not [p for p in aws.of("UpdateTable") if "StreamSpecification" in p]


def test_a_stream_with_another_view_type_is_an_error_that_says_how_to_resolve(
    aws: Calls,
) -> None:
    # GIVEN a table with a KEYS_ONLY stream
    name = unique()
    dms_table(name, stream_view="KEYS_ONLY")
    # WHEN it is adopted without replace_stream
    with pytest.raises(AdoptionError) as raised:
        AdoptedTableProvider().create(props(name))
    # THEN the error names the view types and both ways out; nothing was changed
    message = str(raised.value)
    assert "KEYS_ONLY" in message and "NEW_AND_OLD_IMAGES" in message
    assert "replace_stream: true" in message
    assert f"--table-name {name} --stream-specification StreamEnabled=false" in message
    assert aws.of("UpdateTable") == []
    spec = ddb().describe_table(TableName=name)["Table"]["StreamSpecification"]
    assert spec["StreamViewType"] == "KEYS_ONLY"


def test_replace_stream_disables_then_enables_a_new_and_old_images_stream(
    aws: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a KEYS_ONLY stream and replace_stream allowed
    name = unique()
    dms_table(name, stream_view="KEYS_ONLY")

    def like_aws(http_response: Any, parsed: dict, model: Any, **_: Any) -> None:
        # moto refuses to enable a stream on a table that ever had one; AWS allows it
        # (a new stream with a new label). Emulate AWS after the disable call.
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(name)
        if not (table.stream_specification or {}).get("StreamEnabled"):
            table.latest_stream_label = None

    original = adopted_table.session

    def session() -> Any:
        sess = original()
        sess.events.register("after-call.dynamodb.UpdateTable", like_aws)
        return sess

    monkeypatch.setattr(adopted_table, "session", session)
    # WHEN it is adopted
    outs = AdoptedTableProvider().create(props(name, replace_stream=True)).outs or {}
    # THEN the old stream was disabled first, then a NEW_AND_OLD_IMAGES one enabled
    streams = [p["StreamSpecification"] for p in aws.of("UpdateTable")
               if "StreamSpecification" in p]
    assert streams == [
        {"StreamEnabled": False},
        {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    ]
    table = ddb().describe_table(TableName=name)["Table"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert outs["stream_arn"] == table["LatestStreamArn"]


def test_running_create_twice_changes_nothing_the_second_time(aws: Calls) -> None:
    # GIVEN a DMS table adopted once, with a backfill function
    name = unique()
    dms_table(name)
    function = backfill_function(f"fn-{name}")
    first = AdoptedTableProvider().create(props(name, backfill_function_name=function))
    assert len(aws.of("UpdateTable")) >= 2  # stream, then capacity: one change at a time
    assert len(aws.of("Invoke")) == 1
    aws.clear()
    # WHEN create runs again (e.g. `pulumi up` after the state was lost)
    second = AdoptedTableProvider().create(props(name, backfill_function_name=function))
    # THEN no UpdateTable, no second backfill, no tag or PITR write, and the same outputs
    assert aws.of("UpdateTable") == []
    assert aws.of("Invoke") == []
    assert aws.of("TagResource") == [] and aws.of("UntagResource") == []
    assert aws.of("UpdateContinuousBackups") == []
    assert second.outs == first.outs


def test_each_update_table_call_carries_one_change(aws: Calls) -> None:
    # GIVEN a DMS table (provisioned 200/200, no stream, DynamoDB-owned encryption)
    name = unique()
    dms_table(name, sse=False)
    # WHEN adopted with a customer KMS key and deletion protection
    key = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    AdoptedTableProvider().create(
        props(name, kms_key_arn=key, deletion_protection=True)
    )
    # THEN stream, capacity, SSE and deletion protection went in separate calls, stream first
    changed = [sorted(k for k in p if k != "TableName") for p in aws.of("UpdateTable")]
    assert changed == [
        ["StreamSpecification"],
        ["BillingMode"],
        ["SSESpecification"],
        ["DeletionProtectionEnabled"],
    ]
    sse = aws.of("UpdateTable")[2]["SSESpecification"]
    assert sse == {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key}


def test_backfill_is_started_once_with_the_table_info(aws: Calls) -> None:
    # GIVEN a DMS table and the backfill function
    name = unique()
    dms_table(name)
    function = backfill_function(f"fn-{name}")
    # WHEN it is adopted
    outs = AdoptedTableProvider().create(
        props(name, backfill_function_name=function, backfill_segments=3)
    ).outs or {}
    # THEN the backfill was invoked asynchronously, after the stream was on, with the table
    (invoke,) = aws.of("Invoke")
    assert invoke["InvocationType"] == "Event"
    assert invoke["FunctionName"] == function
    table = ddb().describe_table(TableName=name)["Table"]
    assert json.loads(invoke["Payload"]) == {
        "table": name,
        "logical_table": name.removeprefix("dmsbus-test-"),
        "key_names": ["order_id", "line_no"],
        "total_segments": 3,
        "stream_label": table["LatestStreamLabel"],
    }
    ops = [op for op, _ in aws.made]
    assert ops.index("Invoke") > ops.index("UpdateTable")  # the stream came first
    # ... and the outputs and the table's marker tag record it
    assert outs["backfill_stream_label"] == table["LatestStreamLabel"]
    assert outs["backfill_started_at"]
    assert outs["backfill_request_id"]
    tags = {t["Key"]: t["Value"] for t in
            ddb().list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]}
    assert tags[MARKER_TAG].startswith(table["LatestStreamLabel"] + " ")


class Interrupted(Exception):
    """Stands for the `pulumi up` process dying at this point."""


def test_adoption_interrupted_between_stream_and_backfill_converges_on_rerun(
    aws: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an adoption that enabled the stream and died just before starting the backfill
    name = unique()
    dms_table(name)
    function = backfill_function(f"fn-{name}")
    recording = adopted_table.session

    def dying_session() -> Any:
        sess = recording()

        def die(**_: Any) -> None:
            raise Interrupted("killed before the backfill invoke")

        sess.events.register("before-call.lambda.Invoke", die)
        return sess

    monkeypatch.setattr(adopted_table, "session", dying_session)
    with pytest.raises(Interrupted):
        AdoptedTableProvider().create(props(name, backfill_function_name=function))
    table = ddb().describe_table(TableName=name)["Table"]
    assert table["StreamSpecification"]["StreamEnabled"] is True
    stream = table["LatestStreamArn"]
    aws.clear()
    # WHEN it is re-run
    monkeypatch.setattr(adopted_table, "session", recording)
    outs = AdoptedTableProvider().create(props(name, backfill_function_name=function)).outs
    # THEN the stream is kept (no stream change), and the backfill starts now, once
    assert not [p for p in aws.of("UpdateTable") if "StreamSpecification" in p]
    assert len(aws.of("Invoke")) == 1
    assert (outs or {})["stream_arn"] == stream
    assert (outs or {})["backfill_request_id"]
    # AND a third run changes nothing
    aws.clear()
    AdoptedTableProvider().create(props(name, backfill_function_name=function))
    assert aws.of("UpdateTable") == [] and aws.of("Invoke") == []


def test_diff_replaces_on_table_name_and_updates_on_other_inputs(aws: Calls) -> None:
    provider = AdoptedTableProvider()
    old = {**props("dmsbus-test-a"), "table_arn": "arn:aws:dynamodb:x:1:table/a"}
    # same inputs: no change
    same = provider.diff("dmsbus-test-a", old, props("dmsbus-test-a"))
    assert same.changes is False and same.replaces == []
    # another table: replace
    renamed = provider.diff("dmsbus-test-a", old, props("dmsbus-test-b"))
    assert renamed.changes is True and renamed.replaces == ["table_name"]
    # capacity, PITR, tags: update in place
    for change in (
        {"billing_mode": "PROVISIONED", "read_capacity": 5, "write_capacity": 5},
        {"point_in_time_recovery": False},
        {"tags": {"team": "other"}},
        {"provider_version": "new-code"},
    ):
        result = provider.diff("dmsbus-test-a", old, {**props("dmsbus-test-a"), **change})
        assert result.changes is True, change
        assert result.replaces == [], change


def test_update_applies_capacity_pitr_and_tag_changes(aws: Calls) -> None:
    # GIVEN an adopted on-demand table with tags {team, owner}
    name = unique()
    dms_table(name)
    provider = AdoptedTableProvider()
    olds = provider.create(props(name, tags={"team": "a", "owner": "x"})).outs or {}
    arn = olds["table_arn"]
    ddb().tag_resource(ResourceArn=arn, Tags=[{"Key": "dms", "Value": "theirs"}])
    # WHEN the config asks for provisioned 5/5, no PITR, and tags {team: b}
    news = props(name, billing_mode="PROVISIONED", read_capacity=5, write_capacity=5,
                 point_in_time_recovery=False, tags={"team": "b"})
    outs = provider.update(name, olds, news).outs or {}
    # THEN the live table follows; tags set by others stay; the table keeps its stream
    table = ddb().describe_table(TableName=name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 5
    pitr = ddb().describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    tags = {t["Key"]: t["Value"] for t in ddb().list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags["team"] == "b" and "owner" not in tags and tags["dms"] == "theirs"
    assert outs["stream_arn"] == olds["stream_arn"]
    assert outs["live_billing_mode"] == "PROVISIONED"
    # AND an update that only changes tags leaves the autoscaled capacity alone
    ddb().update_table(TableName=name, ProvisionedThroughput={
        "ReadCapacityUnits": 42, "WriteCapacityUnits": 42})
    aws.clear()
    provider.update(name, outs, {**news, "tags": {"team": "c"}})
    assert aws.of("UpdateTable") == []


def test_provisioned_adoption_replaces_dms_default_capacity(aws: Calls) -> None:
    # GIVEN DMS's default 200/200
    name = unique()
    dms_table(name)
    # WHEN adopted as provisioned with initial units 3/4
    AdoptedTableProvider().create(
        props(name, billing_mode="PROVISIONED", read_capacity=3, write_capacity=4)
    )
    # THEN the initial units are set (autoscaling takes over from there)
    throughput = ddb().describe_table(TableName=name)["Table"]["ProvisionedThroughput"]
    assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (3, 4)


def test_read_refreshes_outputs_and_reports_a_vanished_table(aws: Calls) -> None:
    # GIVEN an adopted table changed behind Pulumi's back
    name = unique()
    dms_table(name)
    provider = AdoptedTableProvider()
    outs = provider.create(props(name)).outs or {}
    ddb().update_table(
        TableName=name,
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 7, "WriteCapacityUnits": 8},
    )
    # WHEN refreshed
    read = provider.read(name, outs)
    # THEN the outputs show the live table
    assert read.id == name
    refreshed = read.outs or {}
    assert refreshed["live_billing_mode"] == "PROVISIONED"
    assert refreshed["live_read_capacity"] == 7
    assert refreshed["stream_arn"] == outs["stream_arn"]
    assert refreshed["key_names"] == ["order_id", "line_no"]
    # AND a table that no longer exists reads as gone
    ddb().delete_table(TableName=name)
    assert provider.read(name, outs).id is None


def test_delete_leaves_the_table_its_items_and_its_stream(aws: Calls) -> None:
    # GIVEN an adopted table holding items
    name = unique()
    dms_table(name)
    function = backfill_function(f"fn-{name}")
    provider = AdoptedTableProvider()
    outs = provider.create(props(name, backfill_function_name=function)).outs or {}
    for i in range(5):
        ddb().put_item(TableName=name, Item={"order_id": {"N": str(i)}, "line_no": {"N": "1"}})
    aws.clear()
    # WHEN the resource is deleted (stack destroyed, or table removed from the program)
    provider.delete(name, outs)
    # THEN table, items and stream are all still there; only the backfill marker is gone
    assert [op for op, _ in aws.made if op not in (
        "DescribeTable", "UntagResource")] == []
    table = ddb().describe_table(TableName=name)["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert ddb().scan(TableName=name)["Count"] == 5
    assert table["StreamSpecification"]["StreamEnabled"] is True
    tags = {t["Key"] for t in ddb().list_tags_of_resource(ResourceArn=outs["table_arn"])["Tags"]}
    assert MARKER_TAG not in tags and "team" in tags
    # AND deleting again, or a table already gone, is fine
    ddb().delete_table(TableName=name)
    provider.delete(name, outs)


def test_check_reports_bad_inputs_by_name(aws: Calls) -> None:
    result = AdoptedTableProvider().check(
        {}, {"table_name": "x", "billing_mode": "PROVISIONED", "bogus": 1}
    )
    failed = {f.property: f.reason for f in result.failures}
    assert set(failed) == {"table_name", "read_capacity", "write_capacity", "bogus"}
    assert "3..255" in failed["table_name"]


#: Run by a fresh interpreter in another directory: loads the serialized provider the way the
#: SDK's dynamic provider host does (pulumi/dynamic/__main__.py `get_provider`:
#: `dill.loads(base64.b64decode(props["__provider"]))`), then refreshes (read), diffs and
#: deletes an adopted table in moto.
REFRESH_ELSEWHERE = """\
import base64, json, sys

import boto3, dill
from moto import mock_aws

args = json.loads(sys.argv[1])
blob = sys.stdin.read()
with mock_aws():
    provider = dill.loads(base64.b64decode(blob))
    ddb = boto3.client("dynamodb", region_name=args["region"])
    name = args["table"]
    arn = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        Tags=[{"Key": args["marker"], "Value": "label 2026-01-01T00:00:00Z req-1"}],
    )["TableDescription"]["TableArn"]
    inputs = {"table_name": name, "region": args["region"], "poll_seconds": 0.1}
    read = provider.read(name, inputs)
    outs = read.outs
    diff = provider.diff(name, outs, {**inputs, "table_name": name + "-other"})
    provider.delete(name, outs)
    table = ddb.describe_table(TableName=name)["Table"]
    tags = [t["Key"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]]
print(json.dumps({
    "class": type(provider).__name__,
    "project_modules": sorted(m for m in sys.modules if m.split(".")[0] in args["own"]),
    "read_id": read.id,
    "read_arn": outs["table_arn"],
    "read_backfill": outs["backfill_request_id"],
    "key_names": outs["key_names"],
    "replaces": diff.replaces,
    "status_after_delete": table["TableStatus"],
    "tags_after_delete": tags,
    "arn": arn,
}))
"""


def test_the_serialized_provider_refreshes_and_deletes_from_any_directory(
    tmp_path: Path,
) -> None:
    # GIVEN the serialized provider an AdoptedTable registers (the SDK's dynamic.Resource pickles
    # it into the `__provider` input, which the engine stores in the state), under mocks
    from tools.mockrun import run_program

    plan = run_program(
        "dev", {"aws:region": REGION}, lambda: AdoptedTable("t", {"table_name": "dmsbus-dev-t"})
    )
    (registered,) = [r for r in plan.resources if r.name == "t"]
    blob = registered.inputs["__provider"]
    assert isinstance(blob, str) and blob
    # WHEN a fresh interpreter started in another directory, without the repository on its
    # path (an Automation API program, a CI job elsewhere, the module moved or renamed since),
    # loads it and runs refresh (read), diff and delete against moto
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = tmp_path / "refresh.py"
    script.write_text(REFRESH_ELSEWHERE)
    own = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())
    args = {"region": REGION, "table": unique(), "marker": MARKER_TAG, "own": own}
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(args)], input=blob, capture_output=True,
        text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )
    # THEN it works, without importing a single module of the project
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["class"] == "AdoptedTableProvider"
    assert result["project_modules"] == []
    # AND read refreshed the live table, diff replaces on another name, delete forgot the
    # table (only the backfill marker removed) and left it in place
    assert result["read_id"] == args["table"] and result["read_arn"] == result["arn"]
    assert result["read_backfill"] == "req-1" and result["key_names"] == ["id"]
    assert result["replaces"] == ["table_name"]
    assert result["status_after_delete"] == "ACTIVE"
    assert MARKER_TAG not in result["tags_after_delete"]


def test_sessions_share_one_data_loader_whose_search_paths_do_not_grow(
    moto_world: MotoWorld,
) -> None:
    # GIVEN the provider's own session factory (not the recording one of the other tests)
    first = adopted_table.session()
    loader = first._session.get_component("data_loader")
    paths = list(loader.search_paths)
    # WHEN many operations each build their session (boto3 appends its data path each time)
    sessions = [adopted_table.session() for _ in range(25)]
    # THEN they share the loader, its search paths stay as they were, without duplicates
    assert all(s._session.get_component("data_loader") is loader for s in sessions)
    assert list(loader.search_paths) == paths
    assert len(set(paths)) == len(paths)
    assert any(p.endswith("boto3/data") for p in paths)
    # AND clients from them work (moto)
    name = unique()
    dms_table(name)
    client = sessions[-1].client("dynamodb", region_name=REGION)
    assert name in client.list_tables()["TableNames"]


def test_adoptions_from_several_threads_at_once(moto_world: MotoWorld) -> None:
    # GIVEN 16 DMS tables, and the provider's own sessions (the engine calls the provider
    # from several threads)
    from concurrent.futures import ThreadPoolExecutor

    names = [unique() for _ in range(16)]
    for name in names:
        dms_table(name)
    provider = AdoptedTableProvider()
    # WHEN they are adopted by 8 threads at once
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: provider.create(props(n)), names))
    # THEN each table was adopted, on-demand with its stream, and the shared loader's
    # search paths did not grow
    for name, result in zip(names, results, strict=True):
        table = ddb().describe_table(TableName=name)["Table"]
        assert (result.outs or {})["stream_arn"] == table["LatestStreamArn"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    paths = adopted_table._LOADER[0].search_paths
    assert len(paths) == len(set(paths))


def test_deletion_protection_someone_turned_on_is_left_on(aws: Calls) -> None:
    # GIVEN a DMS table whose deletion protection an operator turned on
    name = unique()
    dms_table(name)
    ddb().update_table(TableName=name, DeletionProtectionEnabled=True)
    # WHEN it is adopted without asking for deletion protection (StreamedTable passes None)
    AdoptedTableProvider().create(props(name))
    # THEN it is still on: no UpdateTable touched it
    assert ddb().describe_table(TableName=name)["Table"]["DeletionProtectionEnabled"] is True
    assert not [p for p in aws.of("UpdateTable") if "DeletionProtectionEnabled" in p]


# --- provider_version: changes with behaviour, not with comments or docstrings --------------


def _version_of(source: str, where: Path) -> str:
    """PROVIDER_VERSION of the provider module with this source, loaded from another file."""
    where.mkdir(parents=True, exist_ok=True)
    path = where / "edited_adopted_table.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"edited_{uuid.uuid4().hex}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.PROVIDER_VERSION)


SOURCE = Path(adopted_table.__file__).read_text()
TOP_LEVEL = [i for i, line in enumerate(SOURCE.splitlines()) if line.startswith(("def ", "class "))]


def test_the_version_of_the_unedited_module_is_the_imported_one(tmp_path: Path) -> None:
    assert _version_of(SOURCE, tmp_path) == PROVIDER_VERSION


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    at=st.sampled_from(TOP_LEVEL),
    note=st.text(st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp"]), max_size=40),
)
def test_a_comment_anywhere_keeps_the_version(tmp_path: Path, at: int, note: str) -> None:
    # GIVEN the module with a comment line added before a top-level definition
    lines = SOURCE.splitlines(keepends=True)
    edited = "".join([*lines[:at], f"# {note}\n", *lines[at:]])
    # THEN its version is the same
    assert _version_of(edited, tmp_path) == PROVIDER_VERSION


def test_docstring_edits_keep_the_version(tmp_path: Path) -> None:
    # GIVEN the module docstring, a class docstring and a method docstring reworded
    edited = (
        SOURCE.replace("AdoptedTable: take over a DynamoDB table", "AdoptedTable: adopt a table", 1)
        .replace('"""CRUD of an adopted table.', '"""Create, read, update, delete.', 1)
        .replace('"""Forget the table. Never deletes', '"""Forgets the table; never deletes', 1)
    )
    assert edited.count('"""') == SOURCE.count('"""') and edited != SOURCE
    # AND a trailing comment on a code line
    edited = edited.replace("REPLACE_KEYS = (", "REPLACE_KEYS = (  # replace, never update\n", 1)
    # THEN the version is the same
    assert _version_of(edited, tmp_path) == PROVIDER_VERSION


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('MARKER_TAG = "dms-event-bus:backfill"', 'MARKER_TAG = "dms-event-bus:backfill-v2"'),
        ('"wait_timeout_seconds": 1800,', '"wait_timeout_seconds": 1801,'),
        ('REPLACE_KEYS = ("table_name", "region")', 'REPLACE_KEYS = ("table_name",)'),
        ("not 3 <= len(name) <= 255", "not 1 <= len(name) <= 255"),
    ],
)
def test_a_behaviour_edit_changes_the_version(tmp_path: Path, before: str, after: str) -> None:
    # GIVEN the module with one behaviour changed
    assert SOURCE.count(before) == 1, before
    edited = SOURCE.replace(before, after)
    # THEN its version differs
    assert _version_of(edited, tmp_path) != PROVIDER_VERSION
