"""The components as a multi-language Pulumi package: what TypeScript, Go, C#, Java and YAML
programs get after `pulumi package add` of this repository's `plugin/` folder.

Pulumi's Python component provider host (`pulumi.provider.experimental`) infers the package
schema from the type annotations of the classes listed in `plugin/__main__.py`: args must be
TypedDicts whose fields are plain types (the caller must give a value known at plan time:
the schema marks them `plain`) or `pulumi.Input[...]` (may be another resource's output), and
the outputs are the class's `pulumi.Output[...]` annotations. The Python components take
frozen dataclasses instead, so each class here is a thin front: it turns its TypedDict into
the component's dataclass args (where the dataclass checks every value, with the same
messages a Python user gets) and declares the Python component as its only child, named as
itself. A Python program uses the classes of `dms_event_bus.components.*` directly.

The schema the analyzer infers from this module is checked in as `plugin/schema.json`
(tests/test_multi_language.py regenerates it and fails on any difference).

No `from __future__ import annotations` here: the analyzer reads the annotations as objects.
"""

import collections.abc
import enum
import importlib.metadata
import types
import typing
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import pulumi
from pulumi.errors import InputPropertyError
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.provider import ConstructResult

from dms_event_bus.components import dms_source as dms
from dms_event_bus.components import kinesis_bus as bus
from dms_event_bus.components import legacy_writeback as wb
from dms_event_bus.components import streamed_table as st
from dms_event_bus.components.stream_mapping import MappingSettings

#: The package's name: `pulumi package add` makes `dms-event-bus:index:<Component>` tokens.
PACKAGE = "dms-event-bus"


def _version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # a copy that was never installed
        return "0.0.0"


#: The package's version: the distribution's (pyproject.toml).
VERSION = _version()


class InputNotKnownError(ValueError):
    """A structural arg (one the schema marks plain) arrived as an output."""


def _known(value: Any, path: str) -> Any:
    """`value`, refused when it is an Output: table names, keys and modes decide which
    resources exist, so they must be known when the program is planned."""
    if isinstance(value, pulumi.Output | pulumi.output.Unknown):
        raise InputNotKnownError(
            f"{path}: expected a value known at plan time (a literal or config value), found "
            "an output of another resource"
        )
    return value


def _opt(args: Mapping[str, Any], key: str, path: str, default: Any = None) -> Any:
    return _known(args.get(key, default), f"{path}.{key}")


def _plain_data(value: Any, path: str) -> Any:
    """`value` (JSON-like data), refused with the path of the first output inside it."""
    _known(value, path)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _plain_data(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _plain_data(v, f"{path}[{i}]")
    return value


def _check_fields(models: tuple[Any, ...], values: Mapping[str, Any], path: str,
                  rename: Mapping[str, str] | None = None) -> None:
    """Each plain value given, checked against the stack file model's field of the same name
    (`rename`: front name -> model name): its type, range, pattern or choices, with the same
    messages a stack file gets."""
    from pydantic import TypeAdapter, ValidationError

    problems = []
    pending = pulumi.Output | pulumi.output.Unknown
    for key, given in values.items():
        name = (rename or {}).get(key, key)
        info = next((m.model_fields[name] for m in models if name in m.model_fields), None)
        # outputs (ids, ARNs) are not checked, nor a list holding one
        has_pending = isinstance(given, list) and any(isinstance(v, pending) for v in given)
        if info is None or given is None or isinstance(given, pending) or has_pending:
            continue
        value = given
        try:
            field_type: Any = typing.Annotated[info.annotation, info]
            TypeAdapter(field_type).validate_python(value)
        except ValidationError as exc:
            problems += [
                f"{path}.{key}" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                                         for p in e["loc"]) + f": {e['msg']}"
                for e in exc.errors()
            ]
    if problems:
        raise ValueError("; ".join(problems))


def _is_input(hint: Any) -> bool:
    """`pulumi.Input[T]`: a Union that admits an awaitable (and an Output)."""
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and any(
        typing.get_origin(a) is collections.abc.Awaitable for a in typing.get_args(hint))


def _fields(typed_dict: Any) -> dict[str, Any]:
    """A TypedDict's fields and their types as written (`NotRequired` taken off), without
    evaluating pulumi's forward references."""
    return {name: typing.get_args(hint)[0] if typing.get_origin(hint) is NotRequired else hint
            for name, hint in typed_dict.__annotations__.items()}


def _normalized(hint: Any, value: Any, path: str) -> Any:
    """`value` checked against its TypedDict annotation as another language sends it: numbers
    arrive as floats (whole ones become ints, others are refused for an integer field), an
    output is refused wherever the schema says plain, nested TypedDicts, lists and maps are
    walked with the path of each element."""
    if value is None:
        return None
    if _is_input(hint):
        return value
    _known(value, path)
    origin = typing.get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{path}: expected true or false, found {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{path}: expected an integer, found {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{path}: expected an integer, found {value!r}")
        return int(value)
    if typing.is_typeddict(hint):
        if not isinstance(value, Mapping):
            raise ValueError(f"{path}: expected an object, found {value!r}")
        hints = _fields(hint)
        unknown = sorted(set(value) - set(hints))
        if unknown:
            raise ValueError(f"{path}: unknown {', '.join(unknown)} (expected some of "
                             f"{', '.join(sorted(hints))})")
        return {k: _normalized(hints[k], v, f"{path}.{k}") for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ValueError(f"{path}: expected a list, found {value!r}")
        return [_normalized(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ValueError(f"{path}: expected a map, found {value!r}")
        return {k: _normalized(item, v, f"{path}.{k}") for k, v in value.items()}
    if hint is str and not isinstance(value, str):
        raise ValueError(f"{path}: expected a string, found {value!r}")
    return value


def _args(kind: Any, args: Mapping[str, Any], path: str) -> Any:
    """The component's args, normalized (see `_normalized`)."""
    return _normalized(kind, dict(args), path)


# -- StreamedTable ---------------------------------------------------------------------------


class KeyType(enum.StrEnum):
    """A DynamoDB key attribute's scalar type."""

    S = "S"
    N = "N"
    B = "B"


class KeyAttribute(TypedDict):
    name: str
    """Attribute name (the source key column)."""
    type: NotRequired[KeyType]
    """Scalar type; default S."""


class ProvisionedScaling(TypedDict):
    min: int
    """Lowest provisioned capacity units."""
    max: int
    """Highest provisioned capacity units."""
    target_utilization: NotRequired[int]
    """Target-tracking utilization percent; default 70."""


class Adoption(TypedDict):
    logical_name: str
    """Name in envelopes (`table`) of the backfilled rows."""
    backfill_function_name: NotRequired[pulumi.Input[str]]
    """Backfill Lambda started once after the stream is on; absent: no backfill."""
    wait_timeout_seconds: NotRequired[int]
    """How long adoption waits for DMS to create the table; default 1800."""
    backfill_segments: NotRequired[int]
    """Parallel scan segments of the backfill; default 4."""
    replace_stream: NotRequired[bool]
    """Allow replacing an existing stream of another view type; default false."""


class StreamedTableArgs(TypedDict):
    table_name: str
    """Physical table name (carries the environment prefix, e.g. `dmsbus-dev-orders`)."""
    partition_key: NotRequired[KeyAttribute]
    """Partition key; required unless `adopt` is given (DMS creates adopted tables)."""
    sort_key: NotRequired[KeyAttribute]
    """Sort key, if the source key is composite."""
    read: NotRequired[ProvisionedScaling]
    """Provisioned reads (with `write`); both absent: on-demand."""
    write: NotRequired[ProvisionedScaling]
    """Provisioned writes (with `read`); both absent: on-demand."""
    kms_key_arn: NotRequired[str]
    """Customer-managed KMS key; absent: the AWS-managed key for DynamoDB."""
    deletion_protection: NotRequired[bool]
    """Refuse table deletion; default false."""
    alarm_topic_arn: NotRequired[pulumi.Input[str]]
    """SNS topic of the table's throttling alarm."""
    tags: NotRequired[dict[str, str]]
    """Tags on every resource."""
    adopt: NotRequired[Adoption]
    """Adopt a table DMS creates at runtime instead of declaring it."""
    per_table_alarms: NotRequired[bool]
    """Declare this table's own throttling alarm; default true."""


def _key(value: Any, path: str) -> st.KeySpec | None:
    from dms_event_bus.settings.core import KeyAttribute as KeyModel

    if value is None:
        return None
    _known(value, path)
    _check_fields((KeyModel,), {"name": value.get("name")}, path)
    kind = value.get("type", KeyType.S)
    return st.KeySpec(name=_opt(value, "name", path), type=KeyType(kind).value)


def _scaling(value: Any, path: str) -> st.Scaling | None:
    from dms_event_bus.settings.core import ScalingRange

    if value is None:
        return None
    _known(value, path)
    _validated(ScalingRange, value, path)
    return st.Scaling(min=_opt(value, "min", path), max=_opt(value, "max", path),
                      target_utilization=_opt(value, "target_utilization", path, 70))


def streamed_table_args(args: StreamedTableArgs) -> st.StreamedTableArgs:
    """The package's StreamedTable args as the Python component's."""
    path = "StreamedTable"
    adopt = args.get("adopt")
    spec = None
    if adopt is not None:
        _known(adopt, f"{path}.adopt")
        spec = st.AdoptSpec(
            logical_name=_opt(adopt, "logical_name", f"{path}.adopt"),
            backfill_function_name=adopt.get("backfill_function_name"),
            wait_timeout_seconds=_opt(adopt, "wait_timeout_seconds", f"{path}.adopt", 1800),
            backfill_segments=_opt(adopt, "backfill_segments", f"{path}.adopt", 4),
            replace_stream=_opt(adopt, "replace_stream", f"{path}.adopt", False),
        )
    return st.StreamedTableArgs(
        table_name=_opt(args, "table_name", path),
        partition_key=_key(args.get("partition_key"), f"{path}.partition_key"),
        sort_key=_key(args.get("sort_key"), f"{path}.sort_key"),
        read=_scaling(args.get("read"), f"{path}.read"),
        write=_scaling(args.get("write"), f"{path}.write"),
        kms_key_arn=_opt(args, "kms_key_arn", path),
        deletion_protection=_opt(args, "deletion_protection", path, False),
        alarm_topic_arn=args.get("alarm_topic_arn"),
        tags=dict(_opt(args, "tags", path, {})),
        adopt=spec,
        per_table_alarms=_opt(args, "per_table_alarms", path, True),
    )


class StreamedTable(pulumi.ComponentResource):
    """A DynamoDB table with a NEW_AND_OLD_IMAGES stream: declared, or adopted after DMS
    created it."""

    table_name: pulumi.Output[str]
    """Physical table name."""
    table_arn: pulumi.Output[str]
    """Table ARN."""
    stream_arn: pulumi.Output[str]
    """The table's stream ARN."""

    def __init__(self, name: str, args: StreamedTableArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        converted = streamed_table_args(_args(StreamedTableArgs, args, "StreamedTable"))
        super().__init__(f"{PACKAGE}:index:StreamedTable", name, None, opts)
        table = st.StreamedTable(name, converted, pulumi.ResourceOptions(parent=self))
        self.table_name = pulumi.Output.from_input(table.table_name)
        self.table_arn = pulumi.Output.from_input(table.table_arn)
        self.stream_arn = pulumi.Output.from_input(table.stream_arn)
        self.register_outputs({"table_name": self.table_name, "table_arn": self.table_arn,
                               "stream_arn": self.stream_arn})


# -- KinesisBus ------------------------------------------------------------------------------


class StreamMode(enum.StrEnum):
    """Kinesis capacity mode."""

    ON_DEMAND = "on_demand"
    PROVISIONED = "provisioned"


class BusSourceTable(TypedDict):
    logical_name: str
    """Name in envelopes (`table`)."""
    table_name: str
    """Physical DynamoDB table name."""
    stream_arn: pulumi.Input[str]
    """The table's DynamoDB Stream ARN (e.g. a StreamedTable's `streamArn`)."""


class StreamMappingTuning(TypedDict):
    batch_size: NotRequired[int]
    """Records per invocation (1..10000); default 100."""
    batching_window_seconds: NotRequired[int]
    """How long Lambda gathers records before invoking (0..300); default 1."""
    parallelization_factor: NotRequired[int]
    """Concurrent batches per shard (1..10); default 1."""
    maximum_retry_attempts: NotRequired[int]
    """Retries of a failing batch before the DLQ (0..10000); default 5."""
    maximum_record_age_seconds: NotRequired[int]
    """Older records go to the DLQ (60..86400); default 21600."""


class Archive(TypedDict):
    buffer_seconds: NotRequired[int]
    """Firehose buffer time; default 300."""
    buffer_mb: NotRequired[int]
    """Firehose buffer size; default 64."""
    expire_days: NotRequired[int]
    """Lifetime of archived objects; default 365."""


class KinesisBusArgs(TypedDict):
    name_prefix: str
    """Prefix of every physical name, e.g. `dmsbus-dev-`."""
    tables: list[BusSourceTable]
    """Tables whose streams feed the bus."""
    stream_mode: NotRequired[StreamMode]
    """Kinesis capacity mode; default on_demand."""
    shard_count: NotRequired[int]
    """Shards (provisioned mode only); default 1."""
    retention_hours: NotRequired[int]
    """How long bus records stay readable (24..8760); default 24."""
    memory_mb: NotRequired[int]
    """Fan-in Lambda memory; default 512."""
    timeout_seconds: NotRequired[int]
    """Fan-in Lambda timeout; default 60."""
    mapping: NotRequired[StreamMappingTuning]
    """Stream mapping tuning of the fan-in."""
    max_record_bytes: NotRequired[int]
    """Largest bus record; larger changes go through the overflow bucket; default 1000000."""
    overflow_expire_days: NotRequired[int]
    """Lifetime of overflow objects; default 30."""
    archive: NotRequired[Archive]
    """Firehose copy of the bus to S3; absent: no archive."""
    kms_key_arn: NotRequired[str]
    """Customer-managed KMS key; absent: AWS-managed keys."""
    alarm_topic_arn: NotRequired[pulumi.Input[str]]
    """SNS topic for alarms."""
    iterator_age_ms: NotRequired[int]
    """IteratorAge alarm threshold; default 300000."""
    dlq_depth: NotRequired[int]
    """DLQ depth alarm threshold; default 1."""
    log_retention_days: NotRequired[int]
    """Fan-in log retention; default 30."""
    force_destroy_buckets: NotRequired[bool]
    """`pulumi destroy` deletes non-empty overflow/archive buckets; default false."""
    tags: NotRequired[dict[str, str]]
    """Tags on every resource."""


def _mapping(value: Any, path: str) -> MappingSettings:
    if value is None:
        return MappingSettings()
    _known(value, path)
    return MappingSettings(**{k: _opt(value, k, path) for k in value})


def _defaults_of(args: Mapping[str, Any], path: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The plain fields among `names` that `args` gives (absent: the dataclass default)."""
    return {k: _opt(args, k, path) for k in names if args.get(k) is not None}


def kinesis_bus_args(args: KinesisBusArgs) -> bus.KinesisBusArgs:
    """The package's KinesisBus args as the Python component's."""
    from dms_event_bus.settings import core

    path = "KinesisBus"
    tables = _opt(args, "tables", path) or []
    archive = args.get("archive")
    _check_fields((core.StreamSettings, core.FaninSettings), args, path,
                  rename={"shard_count": "shards"})
    if archive is not None:
        _known(archive, f"{path}.archive")
        _check_fields((core.ArchiveSettings,), archive, f"{path}.archive")
    return bus.KinesisBusArgs(
        name_prefix=_opt(args, "name_prefix", path),
        tables=[
            bus.BusTable(
                logical_name=_opt(t, "logical_name", f"{path}.tables[{i}]"),
                table_name=_opt(t, "table_name", f"{path}.tables[{i}]"),
                stream_arn=t["stream_arn"],
            )
            for i, t in enumerate(tables)
        ],
        stream_mode=StreamMode(args.get("stream_mode", StreamMode.ON_DEMAND)).value,
        mapping=_mapping(args.get("mapping"), f"{path}.mapping"),
        archive=bus.ArchiveArgs(**archive) if archive is not None else None,
        alarm_topic_arn=args.get("alarm_topic_arn"),
        tags=dict(_opt(args, "tags", path, {})),
        **_defaults_of(args, path, (
            "shard_count", "retention_hours", "memory_mb", "timeout_seconds",
            "max_record_bytes", "overflow_expire_days", "kms_key_arn", "iterator_age_ms",
            "dlq_depth", "log_retention_days", "force_destroy_buckets",
        )),
    )


class KinesisBus(pulumi.ComponentResource):
    """One Kinesis stream every change of every table goes to, as an envelope with the old and
    new row, written by a fan-in Lambda reading the tables' streams."""

    stream_name: pulumi.Output[str]
    """The bus's Kinesis stream name."""
    stream_arn: pulumi.Output[str]
    """The bus's Kinesis stream ARN (consumers read it)."""
    fanin_function_name: pulumi.Output[str]
    """The fan-in Lambda's name."""
    overflow_bucket: pulumi.Output[str]
    """Bucket of changes larger than a Kinesis record."""

    def __init__(self, name: str, args: KinesisBusArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        converted = kinesis_bus_args(_args(KinesisBusArgs, args, "KinesisBus"))
        super().__init__(f"{PACKAGE}:index:KinesisBus", name, None, opts)
        inner = bus.KinesisBus(name, converted, pulumi.ResourceOptions(parent=self))
        outputs = {k: pulumi.Output.from_input(getattr(inner, k)) for k in (
            "stream_name", "stream_arn", "fanin_function_name", "overflow_bucket")}
        for k, v in outputs.items():
            setattr(self, k, v)
        self.register_outputs(outputs)


# -- DmsSource -------------------------------------------------------------------------------


class SourceTable(TypedDict):
    schema_name: str
    """The source schema."""
    table_name: str
    """The source table."""
    partition_key: str
    """The target table's partition key attribute."""
    sort_key: NotRequired[str]
    """The target table's sort key attribute, if any."""
    primary_key: NotRequired[list[str]]
    """The source primary key columns, when longer than the target key (concatenated)."""
    key_separator: NotRequired[str]
    """Separator of a concatenated key's column values; default `|`."""
    exclude_columns: NotRequired[list[str]]
    """Columns not copied to DynamoDB."""


class Wildcard(TypedDict):
    schema_name: str
    """The source schema."""
    table_pattern: str
    """DMS table pattern (`%` wildcard)."""
    exclude: NotRequired[list[str]]
    """Table names left out."""
    table_prefix: NotRequired[str]
    """Prefix of the DynamoDB tables DMS creates (after the environment prefix)."""


class ReplicationInstance(TypedDict):
    instance_class: str
    """e.g. dms.t3.medium."""
    allocated_storage_gb: int
    """Replication storage."""
    multi_az: NotRequired[bool]
    """A standby in a second Availability Zone; default false."""
    engine_version: NotRequired[str]
    """DMS engine version; absent: the default AWS picks."""
    auto_minor_version_upgrade: NotRequired[bool]
    """Let AWS apply minor versions in the maintenance window; default true."""
    preferred_maintenance_window: NotRequired[str]
    """`ddd:hh24:mi-ddd:hh24:mi` (UTC); absent: AWS picks one."""


class ServerlessCapacity(TypedDict):
    min_capacity_units: int
    """Lowest DMS capacity units."""
    max_capacity_units: int
    """Highest DMS capacity units."""
    multi_az: NotRequired[bool]
    """A standby in a second Availability Zone; default false."""
    preferred_maintenance_window: NotRequired[str]
    """`ddd:hh24:mi-ddd:hh24:mi` (UTC); absent: AWS picks one."""


class ReplicationNetwork(TypedDict):
    vpc_id: pulumi.Input[str]
    """VPC of the replication."""
    subnet_ids: list[pulumi.Input[str]]
    """Private subnets (two Availability Zones at least)."""
    https_egress_cidrs: list[str]
    """Where the replication may reach AWS APIs over HTTPS (e.g. the VPC endpoints' CIDRs)."""
    source_cidrs: NotRequired[list[str]]
    """CIDRs of the source database (egress on its port)."""
    source_security_group_id: NotRequired[pulumi.Input[str]]
    """Or the source database's security group."""


class SourceEndpoint(TypedDict):
    engine: str
    """DMS engine: postgres, aurora-postgresql, mysql, aurora, mariadb, sqlserver, oracle."""
    port: int
    """The source port (the security group's egress to the database)."""
    secret_arn: pulumi.Input[str]
    """Secrets Manager secret with the DMS credentials, host and port."""
    database: NotRequired[str]
    """Database name (PostgreSQL, SQL Server, Oracle); absent: the secret's."""
    secret_kms_key_arn: NotRequired[pulumi.Input[str]]
    """Customer-managed key of the secret, if any (DMS's role may decrypt with it)."""
    ssl_mode: NotRequired[str]
    """DMS SSL mode; default `require`."""
    certificate_arn: NotRequired[pulumi.Input[str]]
    """DMS certificate for `verify-ca` / `verify-full`."""
    slot_name: NotRequired[str]
    """PostgreSQL logical replication slot (created beforehand: docs/preflight.md)."""
    extra_connection_attributes: NotRequired[str]
    """Engine settings without a typed block (`name=value;...`)."""


class LobMode(enum.StrEnum):
    """How the task copies large objects."""

    LIMITED = "limited"
    FULL = "full"


class ReplicationTask(TypedDict):
    start: NotRequired[bool]
    """Start the task once created; default false (start it after the account preflight)."""
    lob_mode: NotRequired[LobMode]
    """Default: limited for postgres, aurora-postgresql, oracle; full (only) elsewhere."""
    max_full_load_subtasks: NotRequired[int]
    """Tables loaded in parallel during the full load; default 8."""
    parallel_load_threads: NotRequired[int]
    """Threads writing to DynamoDB per table (0: DMS's default); default 0."""
    commit_rate: NotRequired[int]
    """Records per full-load batch; default 10000."""
    lob_max_size_kb: NotRequired[int]
    """Largest LOB in limited mode; default 64."""
    lob_chunk_size_kb: NotRequired[int]
    """LOB chunk size in full mode; default 64."""
    on_apply_error: NotRequired[str]
    """`stop_task` (default) or `exceptions_table`."""
    log_severity: NotRequired[str]
    """DMS logger severity; default LOGGER_SEVERITY_DEFAULT."""
    log_retention_days: NotRequired[int]
    """Task log retention; default 30."""


class ReplicationAlarms(TypedDict):
    cdc_latency_source_seconds: NotRequired[int]
    """CDCLatencySource alarm threshold; default 300."""
    cdc_latency_target_seconds: NotRequired[int]
    """CDCLatencyTarget alarm threshold; default 600."""
    evaluation_minutes: NotRequired[int]
    """Minutes over the threshold before the alarm; default 5."""
    not_reporting_minutes: NotRequired[int]
    """Minutes without task metrics before the liveness alarm; default 15."""


class DmsSourceArgs(TypedDict):
    environment: str
    """Environment name; physical names start with `dmsbus-<environment>-`."""
    tables: NotRequired[dict[str, SourceTable]]
    """Declared tables by logical name (StreamedTable `dmsbus-<environment>-<logical>`)."""
    wildcards: NotRequired[list[Wildcard]]
    """Tables selected by pattern (DMS creates their tables; adopt them)."""
    instance: NotRequired[ReplicationInstance]
    """A replication instance; exactly one of `instance` and `serverless`."""
    serverless: NotRequired[ServerlessCapacity]
    """DMS Serverless capacity; exactly one of `instance` and `serverless`."""
    network: ReplicationNetwork
    """Where replication runs (private subnets) and what it may reach."""
    source: SourceEndpoint
    """The legacy database (credentials only from its secret)."""
    task: NotRequired[ReplicationTask]
    """Full load + CDC task settings (the stack file's `dms.task`, same defaults and checks)."""
    alarms: NotRequired[ReplicationAlarms]
    """Latency and liveness alarm thresholds (the stack file's `dms.alarms`)."""
    notification_topic_arn: pulumi.Input[str]
    """SNS topic for DMS events and alarms."""
    kms_key_arn: NotRequired[str]
    """Customer-managed KMS key; absent: AWS-managed keys."""
    tags: NotRequired[dict[str, str]]
    """Tags on every resource."""


def _validated(model: Any, value: Mapping[str, Any], path: str) -> Any:
    """`value` through the stack config's model of the same section: its defaults, ranges
    and messages (each naming the key under `path`)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(dict(value))
    except ValidationError as exc:
        raise ValueError("; ".join(
            f"{path}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )) from None


def dms_source_args(args: DmsSourceArgs,
                    depends_on: tuple[pulumi.Resource, ...] = ()) -> dms.DmsSourceArgs:
    """The package's DmsSource args as the Python component's."""
    path = "DmsSource"
    instance, serverless = args.get("instance"), args.get("serverless")
    if (instance is None) == (serverless is None):
        raise ValueError(f"{path}: expected exactly one of `instance` and `serverless`, found "
                         f"{'both' if instance is not None else 'neither'}")
    from dms_event_bus.settings.dms import (
        FAIL_ON_LOB_TRUNCATION,
        DmsAlarmSettings,
        InstanceCapacity,
        NetworkSettings,
        ServerlessCapacity,
        SourceEndpointSettings,
        TaskSettings,
    )

    engine = args["source"]["engine"]
    task = _validated(TaskSettings, args.get("task") or {}, f"{path}.task")
    if task.lob_mode == "limited" and engine not in FAIL_ON_LOB_TRUNCATION:
        raise ValueError(
            f"{path}.task.lob_mode: expected 'full' (or none) for engine '{engine}', found "
            f"'limited': DMS truncates a {engine} LOB over lob_max_size_kb with only a log "
            "warning (only PostgreSQL and Oracle endpoints can fail the task on truncation)")
    lob_mode: typing.Literal["limited", "full"] = task.lob_mode or (
        "limited" if engine in FAIL_ON_LOB_TRUNCATION else "full")
    alarms = _validated(DmsAlarmSettings, args.get("alarms") or {}, f"{path}.alarms")
    # capacity: the stack file's models whole (all plain); network and source: field by field
    # (their ARNs and ids may be outputs)
    capacity: dms.DmsInstance | dms.DmsServerless
    if instance is not None:
        _validated(InstanceCapacity, {"mode": "instance", **_known(instance, f"{path}.instance")},
                   f"{path}.instance")
        capacity = dms.DmsInstance(**instance)
    else:
        _validated(ServerlessCapacity,
                   {"mode": "serverless", **_known(serverless, f"{path}.serverless")},
                   f"{path}.serverless")
        given: dict[str, Any] = dict(serverless or {})
        capacity = dms.DmsServerless(**given)
    network = _known(args["network"], f"{path}.network")
    source = _known(args["source"], f"{path}.source")
    _check_fields((NetworkSettings,), network, f"{path}.network")
    _check_fields((SourceEndpointSettings,), source, f"{path}.source")

    tables = _opt(args, "tables", path, {}) or {}
    return dms.DmsSourceArgs(
        environment=_opt(args, "environment", path),
        tables={
            logical: dms.DmsTable(**{
                **_known(t, f"{path}.tables.{logical}"),
                "primary_key": tuple(t["primary_key"]) if t.get("primary_key") else None,
                "exclude_columns": tuple(t.get("exclude_columns") or ()),
            })
            for logical, t in tables.items()
        },
        wildcards=tuple(
            dms.DmsWildcard(**{**_known(w, f"{path}.wildcards[{i}]"),
                               "exclude": tuple(w.get("exclude") or ())})
            for i, w in enumerate(_opt(args, "wildcards", path, []) or [])
        ),
        capacity=capacity,
        network=dms.DmsNetwork(
            vpc_id=network["vpc_id"],
            subnet_ids=tuple(network["subnet_ids"]),
            https_egress_cidrs=tuple(_opt(network, "https_egress_cidrs", f"{path}.network")),
            source_cidrs=tuple(_opt(network, "source_cidrs", f"{path}.network", ()) or ()),
            source_security_group_id=network.get("source_security_group_id"),
        ),
        source=dms.DmsEndpoint(**source),
        task=dms.DmsTask(
            start=task.start, lob_mode=lob_mode,
            max_full_load_subtasks=task.max_full_load_subtasks,
            parallel_load_threads=task.parallel_load_threads, commit_rate=task.commit_rate,
            lob_max_size_kb=task.lob_max_size_kb, lob_chunk_size_kb=task.lob_chunk_size_kb,
            on_data_error=task.on_data_error, on_apply_error=task.on_apply_error,
            log_severity=task.log_severity, log_retention_days=task.log_retention_days),
        alarms=dms.DmsAlarms(
            cdc_latency_source_seconds=alarms.cdc_latency_source_seconds,
            cdc_latency_target_seconds=alarms.cdc_latency_target_seconds,
            evaluation_minutes=alarms.evaluation_minutes,
            not_reporting_minutes=alarms.not_reporting_minutes),
        notification_topic_arn=args["notification_topic_arn"],
        depends_on=depends_on,
        kms_key_arn=_opt(args, "kms_key_arn", path),
        tags=dict(_opt(args, "tags", path, {}) or {}),
    )


class DmsSource(pulumi.ComponentResource):
    """AWS DMS full load and ongoing changes from the legacy database into one DynamoDB table
    per source table. Give the StreamedTables (and their bus) as `dependsOn`: the task starts
    after them."""

    task_arn: pulumi.Output[str]
    """The replication task's (or serverless config's) ARN."""
    table_mappings: pulumi.Output[str]
    """The task's table mappings JSON."""
    physical_table_names: pulumi.Output[dict[str, str]]
    """Logical name -> DynamoDB table name of each declared table."""
    security_group_id: pulumi.Output[str]
    """The replication's security group (allow it on the source database)."""

    def __init__(self, name: str, args: DmsSourceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        depends = (opts.depends_on if opts is not None else None) or []
        depends_on = tuple(depends) if isinstance(depends, list | tuple) else (depends,)
        converted = dms_source_args(_args(DmsSourceArgs, args, "DmsSource"), depends_on)
        super().__init__(f"{PACKAGE}:index:DmsSource", name, None, opts)
        inner = dms.DmsSource(name, converted, pulumi.ResourceOptions(parent=self))
        self.task_arn = pulumi.Output.from_input(inner.task_arn)
        self.table_mappings = pulumi.Output.from_input(inner.table_mappings)
        self.physical_table_names = pulumi.Output.from_input(inner.physical_table_names)
        self.security_group_id = pulumi.Output.from_input(inner.security_group_id)
        self.register_outputs({
            "task_arn": self.task_arn, "table_mappings": self.table_mappings,
            "physical_table_names": self.physical_table_names,
            "security_group_id": self.security_group_id,
        })


# -- LegacyWriteback -------------------------------------------------------------------------


class WritebackSourceTable(TypedDict):
    table_name: str
    """Physical DynamoDB table name."""
    table_arn: pulumi.Input[str]
    """Table ARN (the handler's status update is allowed on exactly it)."""
    stream_arn: pulumi.Input[str]
    """The table's stream ARN."""


class LegacyWritebackArgs(TypedDict):
    name_prefix: str
    """Prefix of every physical name, e.g. `dmsbus-dev-`."""
    writeback: dict[str, Any]
    """The stack file's `writeback` section, same keys, checks and messages (all plain)."""
    tables: dict[str, WritebackSourceTable]
    """One entry per `writeback.tables` key: the table its stream is written back from."""
    alarm_topic_arn: NotRequired[pulumi.Input[str]]
    """SNS topic for alarms."""
    kms_key_arn: NotRequired[str]
    """Customer-managed KMS key; absent: AWS-managed keys."""
    tags: NotRequired[dict[str, str]]
    """Tags on every resource."""


def legacy_writeback_args(args: LegacyWritebackArgs) -> wb.LegacyWritebackArgs:
    """The package's LegacyWriteback args as the Python component's: the section is validated
    by the stack config's own model."""
    from pydantic import ValidationError

    from dms_event_bus.settings.component_args import WritebackSource, legacy_writeback_args
    from dms_event_bus.settings.writeback import WritebackSettings

    path = "LegacyWriteback"
    section = _plain_data(args["writeback"], f"{path}.writeback")
    try:
        settings = WritebackSettings.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"{path}.writeback.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors()
        )
        raise ValueError(problems) from None
    sources = {
        logical: WritebackSource(
            table_name=_opt(t, "table_name", f"{path}.tables.{logical}"),
            table_arn=t["table_arn"],
            stream_arn=t["stream_arn"],
        )
        for logical, t in _known(args["tables"], f"{path}.tables").items()
    }
    extra = sorted(set(sources) - set(settings.tables))
    if extra:
        raise ValueError(f"{path}.tables: {', '.join(extra)} not in writeback.tables (expected "
                         f"exactly its keys: {', '.join(sorted(settings.tables)) or 'none'})")
    return legacy_writeback_args(
        settings, sources, name_prefix=_opt(args, "name_prefix", path),
        alarm_topic_arn=args.get("alarm_topic_arn"), kms_key_arn=_opt(args, "kms_key_arn", path),
        tags=_opt(args, "tags", path, {}) or {},
    )


class LegacyWriteback(pulumi.ComponentResource):
    """Writes the changes new services make to the tables back to the legacy database,
    version-guarded and without echo."""

    function_name: pulumi.Output[str]
    """The writeback Lambda's name."""
    function_arn: pulumi.Output[str]
    """The writeback Lambda's ARN."""
    role_arn: pulumi.Output[str]
    """Its role's ARN."""
    dlq_arn: pulumi.Output[str]
    """Its dead-letter queue's ARN."""

    def __init__(self, name: str, args: LegacyWritebackArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        converted = legacy_writeback_args(_args(LegacyWritebackArgs, args, "LegacyWriteback"))
        super().__init__(f"{PACKAGE}:index:LegacyWriteback", name, None, opts)
        inner = wb.LegacyWriteback(name, converted, pulumi.ResourceOptions(parent=self))
        outputs = {k: pulumi.Output.from_input(getattr(inner, k)) for k in (
            "function_name", "function_arn", "role_arn", "dlq_arn")}
        for k, v in outputs.items():
            setattr(self, k, v)
        self.register_outputs(outputs)


# -- the provider ---------------------------------------------------------------------------

#: Each component's args, by the name in its type token.
ARGS: dict[str, Any] = {"DmsSource": DmsSourceArgs, "StreamedTable": StreamedTableArgs,
                        "KinesisBus": KinesisBusArgs, "LegacyWriteback": LegacyWritebackArgs}


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _wire_check(hint: Any, value: Any, path: str) -> None:
    """Refuse, naming the schema path, an output where the schema says plain, before the SDK
    maps the inputs: it would turn an output object into `{}` (the component's defaults) or
    fail on it with a message that names no input. The engine sends an output there for a
    value unknown during preview, or for an object with a secret anywhere inside it."""
    if value is None or _is_input(hint):
        return
    if isinstance(value, pulumi.Output | pulumi.output.Unknown):
        raise InputPropertyError(path, (
            "expected a value known at plan time, found an output: another "
            "resource's output (unknown during preview), or a secret somewhere inside it "
            "(give ARNs and ids as plain values: secrets only by Secrets Manager ARN)"))
    if typing.is_typeddict(hint) and isinstance(value, Mapping):
        fields = {_camel(k): h for k, h in _fields(hint).items()}
        for key, item in value.items():
            _wire_check(fields.get(key, Any), item, f"{path}.{key}")
    elif typing.get_origin(hint) is list and isinstance(value, list):
        for i, item in enumerate(value):
            _wire_check(typing.get_args(hint)[0], item, f"{path}[{i}]")
    elif isinstance(value, Mapping):
        item_hint = typing.get_args(hint)[1] if typing.get_origin(hint) is dict else Any
        for key, item in value.items():
            _wire_check(item_hint, item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _wire_check(Any, item, f"{path}[{i}]")


class PackageProvider(ComponentProvider):
    """The SDK's component provider (schema inferred from this module's annotations), checking
    the engine's inputs for outputs in plain places before it maps them."""

    def construct(self, name: str, resource_type: str, inputs: Any,
                  options: pulumi.ResourceOptions | None = None) -> ConstructResult:
        kind = ARGS.get(resource_type.rsplit(":", maxsplit=1)[-1])
        if kind is not None and isinstance(inputs, Mapping):
            for key, hint in _fields(kind).items():
                _wire_check(hint, inputs.get(_camel(key)), _camel(key))
        return super().construct(name, resource_type, inputs, options)


#: What `plugin/__main__.py` hosts, in schema order.
COMPONENTS: list[type[pulumi.ComponentResource]] = [
    DmsSource, StreamedTable, KinesisBus, LegacyWriteback,
]
