"""The whole program under mocks, for every stack file: the resource graph is asserted
property by property."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from dms_event_bus.components.common import check_name_prefix, env_table_patterns
from dms_event_bus.settings import ConfigError, load_settings
from dms_event_bus.settings.base import ENV_NAME_PATTERN, LOGICAL_NAME_PATTERN
from dms_event_bus.settings.stackfile import project_config, read_stack_config, stack_files
from tests.fixture_stacks import STACKS_DIR
from tests.iam_eval import Role, condition_allows, policy_texts, roles_of
from tools.mockrun import ACCOUNT, Plan, run_program, run_stack
from tools.plan import main as plan_main

STACKS = sorted(stack_files(STACKS_DIR))
KEY = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
TABLE = "aws:dynamodb/table:Table"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"

#: Actions that only exist account-wide (AWS accepts no narrower Resource for them).
ACCOUNT_WIDE_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "dynamodb:ListTables",  # DMS DynamoDB target: account-level listing, reads no data
}


@cache
def plan_of(stack: str) -> Plan:
    return run_stack(stack, stack_dir=STACKS_DIR)


def settings_of(stack: str) -> Any:
    return load_settings(stack, project_config(read_stack_config(stack, STACKS_DIR)))


def iam_statements(plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for r in plan.resources:
        docs = []
        if r.type in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
            docs.append(r.inputs["policy"])
        if r.type == "aws:iam/role:Role":
            docs += [p["policy"] for p in r.inputs.get("inlinePolicies") or []]
        for doc in docs:
            parsed = json.loads(doc) if isinstance(doc, str) else doc
            statements = parsed["Statement"]
            for s in statements if isinstance(statements, list) else [statements]:
                found.append((r.name, s))
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_table_streams_with_pitr_and_sse(stack: str) -> None:
    tables = plan_of(stack).of_type(TABLE)
    declared = settings_of(stack).tables
    assert len(tables) >= len(declared)
    for t in tables:
        i = t.inputs
        assert i["streamEnabled"] is True, t.name
        assert i["streamViewType"] == "NEW_AND_OLD_IMAGES", t.name
        assert i["pointInTimeRecovery"] == {"enabled": True}, t.name
        assert i["serverSideEncryption"]["enabled"] is True, t.name
        assert i["name"].startswith(f"dmsbus-{stack}-"), "physical names carry the environment"


@pytest.mark.parametrize("stack", STACKS)
def test_declared_tables_match_config(stack: str) -> None:
    settings = settings_of(stack)
    by_name = {t.inputs["name"]: t.inputs for t in plan_of(stack).of_type(TABLE)}
    for logical, cfg in settings.tables.items():
        table = by_name[settings.physical_table_name(logical)]
        assert table["hashKey"] == cfg.partition_key.name
        assert table.get("rangeKey") == (cfg.sort_key.name if cfg.sort_key else None)
        provisioned = cfg.capacity.mode == "provisioned"
        assert table["billingMode"] == ("PROVISIONED" if provisioned else "PAY_PER_REQUEST")
        assert table["deletionProtectionEnabled"] is cfg.deletion_protection
        assert (table["serverSideEncryption"].get("kmsKeyArn")) == settings.encryption.kms_key_arn


@pytest.mark.parametrize("stack", STACKS)
def test_autoscaling_follows_config(stack: str) -> None:
    settings = settings_of(stack)
    plan = plan_of(stack)
    targets = {r.name: r.inputs for r in plan.of_type("aws:appautoscaling/target:Target")}
    policies = {r.name: r.inputs for r in plan.of_type("aws:appautoscaling/policy:Policy")}
    for logical in settings.provisioned_tables:
        cap = settings.tables[logical].capacity
        for dim, scaling in (("read", cap.read), ("write", cap.write)):
            target = targets[f"{logical}-{dim}-target"]
            assert (target["minCapacity"], target["maxCapacity"]) == (scaling.min, scaling.max)
            assert target["resourceId"] == f"table/{settings.physical_table_name(logical)}"
            conf = policies[f"{logical}-{dim}-policy"]["targetTrackingScalingPolicyConfiguration"]
            assert conf["targetValue"] == scaling.target_utilization
    # on-demand tables get no autoscaling, so there is no 200 RCU/WCU default to pay for
    assert len(targets) == 2 * len(settings.provisioned_tables)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stream_mapping_is_safe(stack: str) -> None:
    plan = plan_of(stack)
    queues = {q.outputs["arn"] for q in plan.of_type("aws:sqs/queue:Queue")}
    mappings = plan.of_type(MAPPING)
    stream_mappings = [m for m in mappings if ":dynamodb:" in m.inputs["eventSourceArn"]]
    assert len(stream_mappings) >= len(settings_of(stack).tables)
    for m in stream_mappings:
        i = m.inputs
        assert i["startingPosition"] == "TRIM_HORIZON", m.name
        assert i["bisectBatchOnFunctionError"] is True, m.name
        assert 0 <= i["maximumRetryAttempts"] <= 10000, m.name
        assert 60 <= i["maximumRecordAgeInSeconds"] <= 86400, m.name
        assert i["functionResponseTypes"] == ["ReportBatchItemFailures"], m.name
        assert i["destinationConfig"]["onFailure"]["destinationArn"] in queues, m.name


@pytest.mark.parametrize("stack", STACKS)
def test_fanin_mapping_per_table_with_config_settings(stack: str) -> None:
    settings = settings_of(stack)
    plan = plan_of(stack)
    fanin = settings.bus.fanin
    for logical in settings.tables:
        m = plan.named(f"bus-{logical}-mapping").inputs
        assert m["eventSourceArn"].startswith(
            f"arn:aws:dynamodb:eu-west-1:123456789012:table/{settings.physical_table_name(logical)}"
        )
        assert m["batchSize"] == fanin.batch_size
        assert m["maximumBatchingWindowInSeconds"] == fanin.batching_window_seconds
        assert m["parallelizationFactor"] == fanin.parallelization_factor
        assert m["maximumRetryAttempts"] == fanin.maximum_retry_attempts


@pytest.mark.parametrize("stack", STACKS)
def test_no_iam_statement_grants_data_actions_on_star(stack: str) -> None:
    statements = iam_statements(plan_of(stack))
    assert statements
    for name, s in statements:
        if s.get("Effect") != "Allow":
            continue
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if any(r == "*" for r in resources):
            assert set(actions) <= ACCOUNT_WIDE_ACTIONS, (name, s)
        assert not any(a.endswith(":*") or a == "*" for a in actions), (name, s)


@pytest.mark.parametrize("stack", STACKS)
def test_fanin_role_is_scoped_to_exactly_its_resources(stack: str) -> None:
    plan = plan_of(stack)
    settings = settings_of(stack)
    policy = json.loads(plan.named("bus-fanin-policy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    fanin = roles_of(plan)[f"dmsbus-{stack}-fanin"]
    waypoint = {settings.physical_table_name(n) for n in settings.tables}
    for table in plan.of_type(TABLE):
        # every waypoint stream, and no other table's (IngestApi tables: the writeback's)
        readable = fanin.allows("dynamodb:GetRecords", table.outputs["streamArn"])
        assert readable is (table.inputs["name"] in waypoint), table.inputs["name"]
    assert by_sid["PutOnTheBus"]["Resource"] == [plan.named("bus-stream").outputs["arn"]]
    assert by_sid["OnFailureDestination"]["Resource"] == [plan.named("bus-dlq").outputs["arn"]]
    assert by_sid["WriteOverflow"]["Resource"] == [
        plan.named("bus-overflow").outputs["arn"] + "/*"
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_child_is_parented_to_its_component(stack: str) -> None:
    plan = plan_of(stack)
    components = {r.urn for r in plan.resources if not r.custom}
    for r in plan.resources:
        if r.custom:
            assert r.parent in components, f"{r.type} {r.name} is not inside a component"
        assert r.name.startswith(r.parent.rsplit("::", 1)[-1]) or r.parent.endswith(
            f"pulumi:pulumi:Stack::dms-event-bus-{stack}"
        ), f"{r.name} is not named after its parent component"


@pytest.mark.parametrize("stack", STACKS)
def test_bus_and_fanin_follow_config(stack: str) -> None:
    settings = settings_of(stack)
    plan = plan_of(stack)
    stream = plan.named("bus-stream").inputs
    assert stream["encryptionType"] == "KMS"
    assert stream["kmsKeyId"] == (settings.encryption.kms_key_arn or "alias/aws/kinesis")
    assert stream["retentionPeriod"] == settings.bus.stream.retention_hours
    assert stream["streamModeDetails"]["streamMode"] == settings.bus.stream.mode.upper()
    fn = plan.named("bus-fanin").inputs
    assert fn["runtime"] == "python3.14" and fn["architectures"] == ["arm64"]
    assert fn["memorySize"] == settings.bus.fanin.memory_mb
    assert fn["timeout"] == settings.bus.fanin.timeout_seconds
    env = fn["environment"]["variables"]
    assert env["BUS_STREAM_NAME"] == f"dmsbus-{stack}-bus"
    assert env["OVERFLOW_BUCKET"] == plan.named("bus-overflow").inputs["bucket"]
    # the logical table comes from the stream ARN and the prefix; no table is named off it
    assert env["TABLE_PREFIX"] == settings.name_prefix
    assert "TABLES" not in env
    assert all(settings.physical_table_name(n) == env["TABLE_PREFIX"] + n for n in settings.tables)
    queue = plan.named("bus-dlq").inputs
    assert queue["kmsMasterKeyId"] == (settings.encryption.kms_key_arn or "alias/aws/sqs")
    archive = [r for r in plan.resources if r.name == "bus-archive-delivery"]
    assert bool(archive) is settings.bus.archive.enabled
    if archive:
        prefix = archive[0].inputs["extendedS3Configuration"]["prefix"]
        assert "!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}" in prefix


@pytest.mark.parametrize("stack", STACKS)
def test_buckets_are_private_encrypted_versioned_and_expire(stack: str) -> None:
    plan = plan_of(stack)
    buckets = plan.of_type("aws:s3/bucket:Bucket")
    assert buckets
    for b in buckets:
        related = [r for r in plan.resources if r.name.startswith(f"{b.name}-")]
        kinds = {r.type.split(":")[-1]: r.inputs for r in related}
        block = kinds["BucketPublicAccessBlock"]
        assert all(block[k] for k in (
            "blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
        rule = kinds["BucketServerSideEncryptionConfiguration"]["rules"][0]
        assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        assert kinds["BucketVersioning"]["versioningConfiguration"]["status"] == "Enabled"
        assert kinds["BucketLifecycleConfiguration"]["rules"][0]["expiration"]["days"] >= 1


@pytest.mark.parametrize("stack", STACKS)
def test_alarms_notify_the_topic(stack: str) -> None:
    plan = plan_of(stack)
    settings = settings_of(stack)
    alarms = plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    metrics = {(a.inputs["namespace"], a.inputs["metricName"]) for a in alarms}
    assert {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Kinesis", "WriteProvisionedThroughputExceeded"),
    } <= metrics
    topic = settings.alarms.sns_topic_arn or plan.named("alarms-topic").outputs["arn"]
    for a in alarms:
        assert a.inputs["alarmActions"] == [topic], a.name


def test_offline_plan_prints_the_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_main(["--stack", "dev", "--stack-dir", str(STACKS_DIR)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("stack dev:")
    assert "- bus [dms-event-bus:index:KinesisBus]" in out
    assert "stream=NEW_AND_OLD_IMAGES pitr=True sse=True" in out
    assert "bisect=True" in out and "responses=ReportBatchItemFailures" in out


def test_offline_plan_exits_nonzero_on_bad_stack_file(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  dms-event-bus:tables:\n    orders:\n      partition_key: {name: id, type: X}\n"
    )
    assert plan_main(["--stack", "broken", "--stack-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "stack 'broken'" in err
    assert "dms-event-bus:tables.orders.partition_key.type" in err
    assert plan_main(["--stack", "nope", "--stack-dir", str(STACKS_DIR)]) == 2


@pytest.mark.parametrize("stack", STACKS)
def test_dashboard_references_only_resources_in_the_graph(stack: str) -> None:
    plan = plan_of(stack)
    (board,) = plan.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert board.inputs["dashboardName"] == f"dmsbus-{stack}-pipeline"
    body = json.loads(board.inputs["dashboardBody"])
    # every dimension value names a resource this stack declares, by its physical name
    declared: dict[str, set[str]] = {}
    for r in plan.resources:
        for key in ("name", "replicationTaskId", "replicationInstanceId",
                    "replicationConfigIdentifier"):
            if isinstance(r.inputs.get(key), str):
                declared.setdefault(r.type, set()).add(r.inputs[key])
    by_dimension = {
        "StreamName": declared.get("aws:kinesis/stream:Stream", set()),
        "FunctionName": declared.get("aws:lambda/function:Function", set()),
        "QueueName": declared.get("aws:sqs/queue:Queue", set()),
        "TableName": declared.get(TABLE, set()),
        "ReplicationTaskIdentifier": declared.get("aws:dms/replicationTask:ReplicationTask", set()),
        "ReplicationInstanceIdentifier": declared.get(
            "aws:dms/replicationInstance:ReplicationInstance", set()
        ),
    }
    seen_metrics = set()
    for widget in body["widgets"]:
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):  # a metric-math/search expression, not a metric
                assert f"TableName=dmsbus-{stack}'" in row[0]["expression"]
                continue
            namespace, metric, *rest = row
            seen_metrics.add((namespace, metric))
            dims = rest[:-1] if isinstance(rest[-1], dict) else rest
            for key, value in zip(dims[::2], dims[1::2], strict=True):
                if key in by_dimension:
                    assert value in by_dimension[key], f"{metric}: {key}={value} is dangling"
    assert {
        ("AWS/Kinesis", "IncomingRecords"),
        ("AWS/Kinesis", "IncomingBytes"),
        ("AWS/Kinesis", "WriteProvisionedThroughputExceeded"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/Lambda", "Errors"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    } <= seen_metrics
    # every stream-consumer function and every queue of the stack is on the board
    on_board = {
        v for row in (r for w in body["widgets"] for r in w["properties"]["metrics"])
        for v in row if isinstance(v, str)
    }
    assert declared["aws:sqs/queue:Queue"] <= on_board
    assert declared["aws:lambda/function:Function"] <= on_board


@pytest.mark.parametrize("stack", STACKS)
def test_every_alarm_is_named_after_its_environment(stack: str) -> None:
    # two environments in one account must be told apart in the CloudWatch console
    alarms = plan_of(stack).of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert len(alarms) >= 5
    names = [a.inputs.get("name") for a in alarms]
    assert all(isinstance(n, str) and n.startswith(f"dmsbus-{stack}-") for n in names), names
    assert len(set(names)) == len(names), "alarm names are unique"


# --------------------------------------------------- growth per table, and environments apart


def write_stack(folder: Path, stack: str, config: dict[str, Any]) -> Path:
    """A stack file of the test's own, `config` keys without the project namespace."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"config": {"aws:region": "eu-west-1",
                      **{f"dms-event-bus:{k}": v for k, v in config.items()}}}
    (folder / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def generated_tables(count: int) -> dict[str, Any]:
    return {
        f"table_{i:04d}": {"partition_key": {"name": "id", "type": "N"}} for i in range(count)
    }


def adopted_answer(stack: str, count: int) -> dict[str, Any]:
    """The discovery invoke answering with `count` tables DMS created (adopted)."""
    names = [f"dmsbus-{stack}-audit_{i:04d}" for i in range(count)]
    return {"aws:dynamodb/getTables:getTables": lambda _args: {"names": names, "id": "x"}}


def environment_texts(plan: Plan) -> dict[str, str]:
    return {
        f.name: json.dumps(f.inputs.get("environment", {}).get("variables", {}), sort_keys=True)
        for f in plan.of_type("aws:lambda/function:Function")
    }


def test_no_policy_or_environment_grows_with_the_tables(tmp_path: Path) -> None:
    # GIVEN the same stack with 10 and with 200 declared tables, as many adopted, and the
    # customer-managed key (its grants are in the policies too)
    def plan(count: int) -> Plan:
        config = {
            "tables": generated_tables(count),
            "encryption": {"kms_key_arn": KEY},
            "bus": {"archive": {"enabled": True}, "overflow": {"expire_days": 365}},
        }
        folder = write_stack(tmp_path / str(count), "scale", config)
        return run_stack("scale", stack_dir=folder, invoke_answers=adopted_answer("scale", count))

    small, large = plan(10), plan(200)

    # THEN resources per table are constant, and every policy and every function environment
    # is the same text: nothing in them names a table
    assert len(large.of_type(TABLE)) == 200 and len(small.of_type(TABLE)) == 10
    assert policy_texts(small) == policy_texts(large)
    assert environment_texts(small) == environment_texts(large)
    assert "backfill-policy" in policy_texts(large) and "bus-archive-policy" in policy_texts(large)


ENVIRONMENTS = ("dev", "dev-eu")


@pytest.fixture(scope="module")
def neighbours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    """Two environments in one account whose names start alike, each with waypoint tables,
    adopted tables and an IngestApi (tables of its own that the fan-in must not read)."""
    plans = {}
    for env in ENVIRONMENTS:
        config = {
            "tables": generated_tables(2),
            "encryption": {"kms_key_arn": KEY},
            "ingest_api": {"entities": {"orders": {"fields": {"n": {"type": "integer"}}}}},
        }
        folder = write_stack(tmp_path_factory.mktemp(env), env, config)
        plans[env] = run_stack(env, stack_dir=folder, invoke_answers=adopted_answer(env, 2))
    return plans


def test_no_environment_reaches_anothers_tables(neighbours: dict[str, Plan]) -> None:
    for env in ENVIRONMENTS:
        roles = roles_of(neighbours[env])
        fanin, backfill = roles[f"dmsbus-{env}-fanin"], roles[f"dmsbus-{env}-backfill"]
        for owner in ENVIRONMENTS:
            for table in neighbours[owner].of_type(TABLE):
                name = table.inputs["name"]
                waypoint = owner == env and "-ingest-" not in name
                assert fanin.allows("dynamodb:GetRecords", table.outputs["streamArn"]) is (
                    waypoint), (env, name)
                assert backfill.allows("dynamodb:Scan", table.outputs["arn"]) is waypoint, (
                    env, name)
            for adopted in (f"dmsbus-{owner}-audit_0000", f"dmsbus-{owner}-audit_0001"):
                arn = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/{adopted}"
                assert fanin.allows("dynamodb:GetRecords", f"{arn}/stream/x") is (owner == env)
                assert backfill.allows("dynamodb:Scan", arn) is (owner == env)


_ENV = st.from_regex(ENV_NAME_PATTERN, fullmatch=True)
_LOGICAL_NAMES = st.from_regex(LOGICAL_NAME_PATTERN, fullmatch=True)


@examples(max_examples=500, deadline=None)
@given(env=_ENV, other=_ENV, logical=_LOGICAL_NAMES, theirs=_LOGICAL_NAMES)
def test_the_prefix_scope_separates_every_pair_of_environments(
    env: str, other: str, logical: str, theirs: str
) -> None:
    """`<prefix>*` minus `<prefix>*-*` holds exactly the environment's waypoint tables, for
    any two environment names and any table names; as IAM resources (Allow and Deny) and as
    KMS conditions (StringLike and StringNotLike) alike."""
    assume(other != env)
    prefix = f"dmsbus-{env}-"
    if env.endswith("-ingest"):
        # the one naming collision: such a prefix is refused before any resource exists
        with pytest.raises(ValueError, match="-ingest-"):
            check_name_prefix("prefix", prefix)
        return
    check_name_prefix("prefix", prefix)
    allowed, denied = env_table_patterns(prefix)
    role = Role("r", [
        {"Effect": "Allow", "Action": ["dynamodb:Scan"], "Resource": [allowed]},
        {"Effect": "Deny", "Action": ["dynamodb:Scan"], "Resource": [denied]},
    ])
    kms = {"StringLike": {"k": [allowed]}, "StringNotLike": {"k": [denied]}}

    def reaches(name: str) -> bool:
        by_resource = role.allows("dynamodb:Scan", name)
        assert condition_allows(kms, {"k": name}) is by_resource, name
        return by_resource

    assert reaches(f"{prefix}{logical}")
    assert not reaches(f"{prefix}ingest-{logical}")
    assert not reaches(f"dmsbus-{other}-{theirs}")
    assert not reaches(f"dmsbus-{other}-ingest-{theirs}")


# ------------------------------------------------------------ destroying versioned buckets


@pytest.mark.parametrize("force_destroy", [False, True])
def test_bucket_force_destroy_is_the_typed_setting(force_destroy: bool) -> None:
    """`bus.buckets.force_destroy` (default false) reaches both versioned buckets; with false,
    `pulumi destroy` of a bucket holding object versions fails with BucketNotEmpty until it is
    emptied (docs/runbook.md "Destroying a stack")."""
    from dms_event_bus.components.kinesis_bus import (
        ArchiveArgs,
        BusTable,
        KinesisBus,
        KinesisBusArgs,
    )
    from dms_event_bus.settings.core import BusSettings

    bus = BusSettings.model_validate(
        {"buckets": {"force_destroy": force_destroy}, "archive": {"enabled": True},
         "overflow": {"expire_days": 365}}
    )
    assert BusSettings().buckets.force_destroy is False  # the safe default

    def program() -> None:
        KinesisBus("bus", KinesisBusArgs(
            name_prefix="dmsbus-fd-",
            tables=[BusTable("orders", "dmsbus-fd-orders",
                             f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/dmsbus-fd-orders/stream/x")],
            archive=ArchiveArgs(),
            force_destroy_buckets=bus.buckets.force_destroy,
        ))

    plan = run_program("fd", {"aws:region": "eu-west-1"}, program)
    buckets = plan.of_type("aws:s3/bucket:Bucket")
    assert sorted(b.name for b in buckets) == ["bus-archive", "bus-overflow"]
    assert all(b.inputs.get("forceDestroy", False) is force_destroy for b in buckets)


def test_bucket_force_destroy_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match=r"bus\.buckets\.force_destroy: expected true or false"):
        load_settings("x", {"tables": generated_tables(1),
                            "bus": {"buckets": {"force_destroy": "sometimes"}}})


@pytest.mark.parametrize("stack", STACKS)
def test_example_stacks_reserve_no_concurrency(stack: str) -> None:
    """New and sandbox accounts have a concurrency quota of 10 and Lambda keeps a minimum
    unreserved pool: any reservation is refused there. The example stacks deploy on such an
    account; a stack that reserves (docs/writeback.md "Concurrency" says when) is checked
    against the account's quota by the account preflight."""
    settings = settings_of(stack)
    if settings.writeback is not None:
        assert settings.writeback.function.reserved_concurrency is None
    for fn in plan_of(stack).of_type("aws:lambda/function:Function"):
        assert fn.inputs.get("reservedConcurrentExecutions") is None, fn.name


def test_tables_named_off_the_rule_are_listed_few_and_never_in_another_environments_name(
) -> None:
    """A KinesisBus used on its own may carry tables not named `<prefix><logical>`: each is
    named in the fan-in's policy and TABLES, so they are few; a name that starts with the
    prefix but has a '-' after it is another environment's (or an IngestApi table) and is
    refused."""
    from dms_event_bus.components.kinesis_bus import (
        MAX_TABLE_EXCEPTIONS,
        BusTable,
        KinesisBus,
        KinesisBusArgs,
    )

    def table(logical: str, physical: str) -> BusTable:
        arn = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/{physical}/stream/x"
        return BusTable(logical, physical, arn)

    ruled = table("orders", "dmsbus-ex-orders")
    legacy = table("invoices", "LegacyInvoices")

    def program() -> None:
        KinesisBus("bus", KinesisBusArgs(name_prefix="dmsbus-ex-", tables=[ruled, legacy]))

    plan = run_program("ex", {"aws:region": "eu-west-1"}, program)
    env = plan.named("bus-fanin").inputs["environment"]["variables"]
    assert env["TABLE_PREFIX"] == "dmsbus-ex-"
    assert json.loads(env["TABLES"]) == {"LegacyInvoices": "invoices"}
    fanin = roles_of(plan)["dmsbus-ex-fanin"]
    assert fanin.allows("dynamodb:GetRecords", str(ruled.stream_arn))
    assert fanin.allows("dynamodb:GetRecords", str(legacy.stream_arn))

    with pytest.raises(ValueError, match="belong to other environments"):
        KinesisBusArgs(name_prefix="dmsbus-ex-", tables=[table("orders", "dmsbus-ex-eu-orders")])
    with pytest.raises(ValueError, match=f"at most {MAX_TABLE_EXCEPTIONS} tables"):
        KinesisBusArgs(name_prefix="dmsbus-ex-", tables=[
            table(f"t{i}", f"Legacy{i}") for i in range(MAX_TABLE_EXCEPTIONS + 1)])
    with pytest.raises(ValueError, match="-ingest-"):
        KinesisBusArgs(name_prefix="dmsbus-ex-ingest-", tables=[ruled])
