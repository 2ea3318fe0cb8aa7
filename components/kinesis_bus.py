"""KinesisBus: ONE Kinesis stream that carries every change of every waypoint table.

Owns the stream (KMS), the fan-in Lambda and its least-privilege role, one DynamoDB Streams
event source mapping per table (bisect, bounded retries, ReportBatchItemFailures, DLQ), the
overflow bucket for changes too large for one record, an optional Firehose archive to S3
partitioned by date, and the alarms.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws

from dms_event_bus.components.common import (
    check_name_prefix,
    env_table_patterns,
    follows_table_rule,
    kms_grant,
    metric_alarm,
    secure_bucket,
    service_role,
)
from dms_event_bus.components.lambda_function import (
    FunctionNames,
    FunctionSpec,
    KmsUse,
    LambdaFunction,
    LambdaOwner,
    Opts,
    Shared,
)
from dms_event_bus.components.lambda_package import ENVELOPE_REQUIREMENTS
from dms_event_bus.components.stream_mapping import MappingSettings

TYPE = "dms-event-bus:index:KinesisBus"

#: Files of the fan-in Lambda package (it needs nothing beyond the runtime's boto3).
FANIN_MODULES = ["handlers/fanin.py", "handlers/envelope.py", "handlers/bus.py",
                 "handlers/common.py", "handlers/observability.py"]
#: What the fan-in (its event source mappings) does on a waypoint table's stream.
STREAM_READ_ACTIONS = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
]
#: Most tables named off the rule `<prefix><logical>` one bus takes: each is listed in the
#: fan-in's policy and environment (IAM's 10,240 and Lambda's 4 KB limits), the rest are not.
MAX_TABLE_EXCEPTIONS = 10


@dataclass(frozen=True)
class BusTable:
    """A waypoint table whose stream feeds the bus."""

    logical_name: str
    """Name in envelopes (`table`)."""
    table_name: str
    """Physical DynamoDB table name."""
    stream_arn: pulumi.Input[str]
    """The table's DynamoDB Stream ARN."""
    depends_on: Sequence[pulumi.Resource] = ()
    """Resources the mapping waits for (e.g. the table's adoption)."""


@dataclass(frozen=True)
class ArchiveArgs:
    """Firehose copy of the bus to S3, partitioned by date."""

    buffer_seconds: int = 300
    buffer_mb: int = 64
    expire_days: int = 365


@dataclass(frozen=True)
class KinesisBusArgs:
    name_prefix: str
    """Prefix of every physical name, e.g. `dmsbus-dev-`."""
    tables: Sequence[BusTable]
    """Tables whose streams feed the bus (declared and adopted alike)."""
    stream_mode: Literal["on_demand", "provisioned"] = "on_demand"
    """Kinesis capacity mode."""
    shard_count: int = 1
    """Shards (provisioned mode only)."""
    retention_hours: int = 24
    """How long bus records stay readable."""
    memory_mb: int = 512
    """Fan-in Lambda memory."""
    timeout_seconds: int = 60
    """Fan-in Lambda timeout."""
    mapping: MappingSettings = field(default_factory=MappingSettings)
    """Stream mapping tuning (batch size, window, retries, record age, parallelization)."""
    max_record_bytes: int = 1_000_000
    """Largest bus record; larger changes go through the overflow bucket."""
    overflow_expire_days: int = 30
    """Lifetime of overflow objects."""
    archive: ArchiveArgs | None = None
    """Firehose archive; None: no archive."""
    kms_key_arn: str | None = None
    """Customer-managed KMS key; None: AWS-managed keys."""
    alarm_topic_arn: pulumi.Input[str] | None = None
    """SNS topic for alarms."""
    iterator_age_ms: int = 300_000
    """IteratorAge alarm threshold."""
    dlq_depth: int = 1
    """DLQ depth alarm threshold."""
    log_retention_days: int = 30
    """Fan-in log retention."""
    force_destroy_buckets: bool = False
    """`pulumi destroy` deletes the overflow and archive buckets with every object version in
    them; False: AWS refuses to delete a bucket that is not empty (docs/runbook.md)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every resource."""

    def __post_init__(self) -> None:
        check_name_prefix("KinesisBusArgs.name_prefix", self.name_prefix)
        names = [t.table_name for t in self.tables]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"KinesisBusArgs.tables: expected unique tables, found {dupes} twice")
        exceptions = self.exceptions
        for t in exceptions:
            if t.table_name.startswith(self.name_prefix):
                raise ValueError(
                    f"KinesisBusArgs.tables: {t.table_name!r} starts with the prefix "
                    f"{self.name_prefix!r} but is not '<prefix><logical name>' with the "
                    f"logical name {t.logical_name!r} (lower snake case): names with a '-' after "
                    "the prefix belong to other environments and IngestApi tables (the fan-in "
                    f"may not read them); name it {self.name_prefix}<logical name>"
                )
        if len(exceptions) > MAX_TABLE_EXCEPTIONS:
            raise ValueError(
                f"KinesisBusArgs.tables: expected at most {MAX_TABLE_EXCEPTIONS} tables named off "
                f"the rule '{self.name_prefix}<logical name>', found {len(exceptions)} "
                f"({', '.join(sorted(t.table_name for t in exceptions)[:5])}, ...): each one "
                "grows the fan-in's policy and environment; rename them by the rule"
            )
        if self.stream_mode == "provisioned" and self.shard_count < 1:
            raise ValueError(
                f"KinesisBusArgs.shard_count: expected >= 1, found {self.shard_count}"
            )
        if not 24 <= self.retention_hours <= 8760:
            raise ValueError(
                f"KinesisBusArgs.retention_hours: expected 24..8760, found {self.retention_hours}"
            )
        if not 1024 <= self.max_record_bytes <= 10 * 1024 * 1024:
            raise ValueError(
                "KinesisBusArgs.max_record_bytes: expected 1024..10485760, "
                f"found {self.max_record_bytes}"
            )

    @property
    def exceptions(self) -> list[BusTable]:
        """The tables not named `<prefix><logical>`: listed one by one in the fan-in's policy
        and its TABLES variable; every other table is covered by the prefix."""
        return [
            t for t in self.tables
            if not follows_table_rule(t.table_name, t.logical_name, self.name_prefix)
        ]


class KinesisBus(LambdaOwner[KinesisBusArgs]):
    """The bus, its fan-in and everything that keeps it from losing a change."""


    stream_name: pulumi.Output[str]
    stream_arn: pulumi.Output[str]
    fanin_function_name: pulumi.Output[str]
    overflow_bucket: pulumi.Output[str]

    def __init__(self, name: str, args: KinesisBusArgs, opts: Opts = None) -> None:
        super().__init__(TYPE, name, args, opts)
        self._tags = dict(args.tags)
        self._account = self._where.account_id
        self._region = self._where.region

        self.stream = self._create_stream()
        self.overflow = secure_bucket(
            f"{name}-overflow",
            bucket_name=pulumi.Output.concat(
                args.name_prefix, "overflow-", self._account, "-", self._region
            ),
            kms_key_arn=args.kms_key_arn,
            expire_days=args.overflow_expire_days,
            parent=self,
            tags=self._tags,
            force_destroy=args.force_destroy_buckets,
        )
        self.fanin = self._create_fanin()
        self.function, self.dlq = self.fanin.function, self.fanin.dlq
        self.log_group = self.fanin.log_group
        self.mappings = {
            table.table_name: self.fanin.stream_mapping(
                f"{name}-{table.logical_name}-mapping", table.stream_arn, args.mapping,
                table.depends_on)
            for table in args.tables
        }
        self.archive = self._create_archive() if args.archive else None
        self.alarms = self._create_alarms()

        self._outputs(
            stream_name=self.stream.name,
            stream_arn=self.stream.arn,
            fanin_function_name=self.function.name,
            dlq_url=self.dlq.url,
            dlq_name=self.dlq.name,
            overflow_bucket=self.overflow.bucket,
        )

    # -- the stream -------------------------------------------------------------------
    def _create_stream(self) -> aws.kinesis.Stream:
        args = self._args
        provisioned = args.stream_mode == "provisioned"
        max_kib = -(-args.max_record_bytes // 1024)
        return aws.kinesis.Stream(
            f"{self._name}-stream",
            name=f"{args.name_prefix}bus",
            stream_mode_details=aws.kinesis.StreamStreamModeDetailsArgs(
                stream_mode="PROVISIONED" if provisioned else "ON_DEMAND"
            ),
            shard_count=args.shard_count if provisioned else None,
            retention_period=args.retention_hours,
            encryption_type="KMS",
            kms_key_id=args.kms_key_arn or "alias/aws/kinesis",
            # Kinesis takes records above 1 MiB only when the stream is told so
            max_record_size_in_kib=max_kib if max_kib > 1024 else None,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    # -- the fan-in Lambda --------------------------------------------------------------
    def _table_arn(self, name: str) -> pulumi.Output[str]:
        return self._where.arn("dynamodb", f"table/{name}")

    def _create_fanin(self) -> LambdaFunction:
        """The fan-in; its policy does not grow with the tables.

        The waypoint streams are scoped by the environment's prefix (`<prefix>*` minus
        `<prefix>*-*`, see `components.common.env_table_patterns`), plus the few tables named
        off the rule (`KinesisBusArgs.exceptions`)."""
        args = self._args
        allowed, denied = env_table_patterns(args.name_prefix)
        exceptions = sorted(args.exceptions, key=lambda t: t.table_name)
        streams = [
            pulumi.Output.concat(self._table_arn(allowed), "/stream/*"),
            *(pulumi.Output.concat(self._table_arn(t.table_name), "/stream/*")
              for t in args.exceptions),
        ]
        statements: list[dict] = [
            {
                "Sid": "ReadTheWaypointStreams",
                "Effect": "Allow",
                "Action": STREAM_READ_ACTIONS,
                "Resource": streams,
            },
            {
                # `<prefix>*` also matches `<prefix>eu-orders` of an environment `<env>-eu`
                # and this environment's IngestApi tables: never theirs
                "Sid": "NotOtherEnvironmentsStreams",
                "Effect": "Deny",
                "Action": STREAM_READ_ACTIONS,
                "Resource": [pulumi.Output.concat(self._table_arn(denied), "/stream/*")],
            },
            *producer_statements(self.stream.arn, self.overflow.arn),
        ]
        variables: dict[str, pulumi.Input[str]] = {
            "BUS_STREAM_NAME": self.stream.name,
            "OVERFLOW_BUCKET": self.overflow.bucket,
            # a table's logical name comes from its stream ARN and the prefix
            "TABLE_PREFIX": args.name_prefix,
            "MAX_RECORD_BYTES": str(args.max_record_bytes),
        }
        if exceptions:
            variables["TABLES"] = json.dumps(
                {t.table_name: t.logical_name for t in exceptions}, separators=(",", ":")
            )
        return LambdaFunction(
            self,
            FunctionNames(args.name_prefix, "fanin", base=f"{self._name}-fanin",
                          function=f"{self._name}-fanin", dlq=f"{self._name}-dlq"),
            FunctionSpec(
                description="Fan-in: every change of every waypoint table onto the bus",
                handler="handlers.fanin.handler",
                modules=FANIN_MODULES,
                requirements=ENVELOPE_REQUIREMENTS,
                memory_mb=args.memory_mb,
                timeout_seconds=args.timeout_seconds,
                environment=variables,
                log_retention_days=args.log_retention_days,
            ),
            Shared(args.kms_key_arn, args.alarm_topic_arn, self._tags),
            statements=statements,
            kms=[
                KmsUse("WaypointStreamsKey", ["kms:Decrypt"], "dynamodb",
                       context=[allowed, *(t.table_name for t in args.exceptions)],
                       context_not=[denied]),
                *producer_kms(self.stream.arn, self.overflow.arn),
            ],
            account=self._where,
        )

    # -- the archive --------------------------------------------------------------------
    def _create_archive(self) -> aws.kinesis.FirehoseDeliveryStream:
        args = self._args
        assert args.archive is not None
        bucket = secure_bucket(
            f"{self._name}-archive",
            bucket_name=pulumi.Output.concat(
                args.name_prefix, "archive-", self._account, "-", self._region
            ),
            kms_key_arn=args.kms_key_arn,
            expire_days=args.archive.expire_days,
            parent=self,
            tags=self._tags,
            force_destroy=args.force_destroy_buckets,
        )
        statements: list[dict] = [
            {
                "Sid": "ReadTheBus",
                "Effect": "Allow",
                "Action": [
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetShardIterator",
                    "kinesis:GetRecords",
                    "kinesis:ListShards",
                ],
                "Resource": [self.stream.arn],
            },
            {
                "Sid": "WriteTheArchive",
                "Effect": "Allow",
                "Action": [
                    "s3:AbortMultipartUpload",
                    "s3:GetBucketLocation",
                    "s3:ListBucket",
                    "s3:ListBucketMultipartUploads",
                    "s3:PutObject",
                ],
                "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
            },
        ]
        if args.kms_key_arn:
            key, region = args.kms_key_arn, self._region
            statements += [
                kms_grant("BusKey", key, ["kms:Decrypt"], service="kinesis", region=region,
                          context=[self.stream.arn]),
                # Decrypt too: Firehose writes large objects in multipart uploads
                kms_grant("ArchiveKey", key, ["kms:Decrypt", "kms:GenerateDataKey"],
                          service="s3", region=region, context=[bucket.arn]),
            ]
        role, policy = service_role(
            f"{self._name}-archive",
            role_name=f"{args.name_prefix}archive",
            service="firehose.amazonaws.com",
            statements=statements,
            parent=self,
            tags=self._tags,
        )
        date = "!{timestamp:yyyy}/!{timestamp:MM}/!{timestamp:dd}"
        return aws.kinesis.FirehoseDeliveryStream(
            f"{self._name}-archive-delivery",
            name=f"{args.name_prefix}archive",
            destination="extended_s3",
            kinesis_source_configuration=aws.kinesis.FirehoseDeliveryStreamKinesisSourceConfigurationArgs(
                kinesis_stream_arn=self.stream.arn, role_arn=role.arn
            ),
            extended_s3_configuration=aws.kinesis.FirehoseDeliveryStreamExtendedS3ConfigurationArgs(
                bucket_arn=bucket.arn,
                role_arn=role.arn,
                prefix=f"bus/{date}/",
                error_output_prefix=f"errors/!{{firehose:error-output-type}}/{date}/",
                buffering_interval=args.archive.buffer_seconds,
                buffering_size=args.archive.buffer_mb,
                compression_format="GZIP",
                kms_key_arn=args.kms_key_arn,
            ),
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

    # -- alarms -------------------------------------------------------------------------
    def _create_alarms(self) -> list[aws.cloudwatch.MetricAlarm]:
        args = self._args
        fanin = self.fanin
        return [
            *fanin.stream_alarms(
                errors=(
                    "Fan-in invocations fail: records are retried, then go to the DLQ. "
                    "Read the fan-in logs (JSON) for the reason."
                ),
                iterator_age=(
                    "Changes wait too long before reaching the bus (fan-in behind or "
                    "stuck on a failing batch)."
                ),
                threshold_ms=args.iterator_age_ms,
            ),
            fanin.dlq_depth_alarm(
                "Batches the fan-in gave up on are in the DLQ: fix the cause, then "
                "run `python -m tools.redrive` within 24 hours.",
                args.dlq_depth,
            ),
            metric_alarm(
                f"{self._name}-bus-throttled",
                alarm_name=f"{self._args.name_prefix}bus-throttled",
                description="Writes to the bus are throttled: add shards (provisioned) or check "
                "for a hot partition key.",
                namespace="AWS/Kinesis",
                metric="WriteProvisionedThroughputExceeded",
                dimensions={"StreamName": self.stream.name},
                threshold=0,
                topic_arn=args.alarm_topic_arn,
                parent=self,
                tags=self._tags,
            ),
        ]


def producer_statements(
    stream_arn: pulumi.Input[str], overflow_bucket_arn: pulumi.Input[str]
) -> list[dict]:
    """What a function that puts envelopes on the bus needs (the fan-in, the backfill): put
    on the stream, write overflow objects for changes too large for one record."""
    return [
        {
            "Sid": "PutOnTheBus",
            "Effect": "Allow",
            "Action": [
                "kinesis:PutRecord",
                "kinesis:PutRecords",
                "kinesis:DescribeStreamSummary",
            ],
            "Resource": [stream_arn],
        },
        {
            "Sid": "WriteOverflow",
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [pulumi.Output.concat(overflow_bucket_arn, "/*")],
        },
    ]


def producer_kms(
    stream_arn: pulumi.Input[str], overflow_bucket_arn: pulumi.Input[str]
) -> list[KmsUse]:
    """The key uses of a bus producer: data keys for the stream and the overflow bucket."""
    return [
        KmsUse("BusKey", ["kms:GenerateDataKey"], "kinesis", context=[stream_arn]),
        KmsUse("OverflowKey", ["kms:GenerateDataKey"], "s3", context=[overflow_bucket_arn]),
    ]
