"""StreamedTable: one waypoint DynamoDB table with its stream on.

Declared mode: Pulumi creates the table, stream on, before the DMS task starts, so the
full load itself flows through the stream. Adopted mode (`adopt=AdoptSpec(...)`): DMS created
the table at runtime; the AdoptedTable dynamic resource takes it over (stream on, capacity,
PITR, SSE, tags, backfill) and the component exposes the same outputs, autoscaling and alarms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_aws as aws

from dms_event_bus.components.common import metric_alarm
from dms_event_bus.providers.adopted_table import AdoptedTable
from dms_event_bus.providers.serialization_room import make_room

TYPE = "dms-event-bus:index:StreamedTable"


@dataclass(frozen=True)
class KeySpec:
    """A key attribute: name and DynamoDB scalar type (S, N or B)."""

    name: str
    type: Literal["S", "N", "B"] = "S"


@dataclass(frozen=True)
class Scaling:
    """Provisioned capacity of one dimension, autoscaled by target tracking."""

    min: int
    max: int
    target_utilization: int = 70


@dataclass(frozen=True)
class AdoptSpec:
    """Adopted mode: the table is created by DMS at runtime and taken over, not declared."""

    logical_name: str
    """Name in envelopes (`table`) of the backfilled rows."""
    backfill_function_name: pulumi.Input[str] | None = None
    """Backfill Lambda started once after the stream is on; None: no backfill."""
    wait_timeout_seconds: int = 1800
    """How long adoption waits for DMS to create the table."""
    backfill_segments: int = 4
    """Parallel scan segments of the backfill (one invocation each)."""
    replace_stream: bool = False
    """Allow replacing an existing stream of another view type."""

    def __post_init__(self) -> None:
        if self.wait_timeout_seconds <= 0:
            raise ValueError(
                f"AdoptSpec.wait_timeout_seconds: expected > 0, found {self.wait_timeout_seconds}"
            )
        if not 1 <= self.backfill_segments <= 1000:
            raise ValueError(
                f"AdoptSpec.backfill_segments: expected 1..1000, found {self.backfill_segments}"
            )


@dataclass(frozen=True)
class StreamedTableArgs:
    table_name: str
    """Physical table name (carries the environment prefix)."""
    partition_key: KeySpec | None = None
    """Partition key (first key column of the source table); required when declared.
    Adopted tables keep the key schema DMS gave them."""
    sort_key: KeySpec | None = None
    """Sort key (second key column), if the source key is composite."""
    read: Scaling | None = None
    """Provisioned reads with autoscaling; None with `write` None means on-demand."""
    write: Scaling | None = None
    """Provisioned writes with autoscaling; None with `read` None means on-demand."""
    kms_key_arn: str | None = None
    """Customer-managed KMS key; None: the AWS-managed key for DynamoDB."""
    deletion_protection: bool = False
    """Refuse table deletion."""
    alarm_topic_arn: pulumi.Input[str] | None = None
    """Topic for the table's throttling alarm."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every resource."""
    adopt: AdoptSpec | None = None
    """Adopted mode; None: declared (Pulumi creates the table)."""
    per_table_alarms: bool = True
    """Declare this table's own throttling alarm. False: the environment's one FleetAlarms
    alarm covers it (one alarm for all tables instead of one per table, see docs/limits.md)."""

    def __post_init__(self) -> None:
        if self.adopt is None and self.partition_key is None:
            raise ValueError(
                "StreamedTableArgs.partition_key: expected a key for a declared table "
                "(or adopt=AdoptSpec(...) for a table DMS creates), found None"
            )
        if not 3 <= len(self.table_name) <= 255:
            raise ValueError(
                f"StreamedTableArgs.table_name: expected 3..255 characters, "
                f"found {self.table_name!r}"
            )
        if (self.read is None) != (self.write is None):
            raise ValueError(
                "StreamedTableArgs.read/write: expected both (provisioned) or neither "
                f"(on-demand), found read={self.read} write={self.write}"
            )
        for dim, scaling in (("read", self.read), ("write", self.write)):
            if scaling is not None and not 1 <= scaling.min <= scaling.max:
                raise ValueError(
                    f"StreamedTableArgs.{dim}: expected 1 <= min <= max, found {scaling}"
                )
        if (
            self.sort_key is not None
            and self.partition_key is not None
            and self.sort_key.name == self.partition_key.name
        ):
            raise ValueError("StreamedTableArgs.sort_key: expected a different attribute")

    @property
    def provisioned(self) -> bool:
        return self.read is not None

    @property
    def mode(self) -> Literal["declared", "adopted"]:
        return "declared" if self.adopt is None else "adopted"


class StreamedTable(pulumi.ComponentResource):
    """A waypoint table whose every change is on its DynamoDB Stream (NEW_AND_OLD_IMAGES)."""

    table_name: pulumi.Output[str]
    table_arn: pulumi.Output[str]
    stream_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: StreamedTableArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._args = args
        self.table: aws.dynamodb.Table | AdoptedTable
        if args.adopt is None:
            table = self._create_table()
            self.table = table
            self.table_name = table.name
            self.table_arn = table.arn
            self.stream_arn = table.stream_arn
        else:
            adopted = self._adopt_table(args.adopt)
            self.table = adopted
            self.table_name = adopted.table_name
            self.table_arn = adopted.table_arn
            self.stream_arn = adopted.stream_arn
        self.scaling = self._create_autoscaling(self.table_name) if args.provisioned else []
        self.alarms = self._create_alarms(self.table_name) if args.per_table_alarms else []
        self.register_outputs(
            {
                "table_name": self.table_name,
                "table_arn": self.table_arn,
                "stream_arn": self.stream_arn,
            }
        )

    def _adopt_table(self, adopt: AdoptSpec) -> AdoptedTable:
        """The DMS-created table, taken over; `delete` never deletes it (see docs/adoption.md)."""
        args = self._args
        make_room()  # the SDK's serialization needs a frame per earlier dynamic resource
        return AdoptedTable(
            f"{self._name}-table",
            {
                "table_name": args.table_name,
                "logical_name": adopt.logical_name,
                "region": aws.config.region,
                "wait_timeout_seconds": adopt.wait_timeout_seconds,
                "billing_mode": "PROVISIONED" if args.provisioned else "PAY_PER_REQUEST",
                # initial units only: autoscaling owns the live capacity afterwards
                "read_capacity": args.read.min if args.read else None,
                "write_capacity": args.write.min if args.write else None,
                "point_in_time_recovery": True,
                "sse_enabled": True,
                "kms_key_arn": args.kms_key_arn,
                # on when asked; otherwise left as it is (never turned off behind someone's back)
                "deletion_protection": True if args.deletion_protection else None,
                "tags": dict(args.tags),
                "replace_stream": adopt.replace_stream,
                "backfill_function_name": adopt.backfill_function_name,
                "backfill_segments": adopt.backfill_segments,
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_table(self) -> aws.dynamodb.Table:
        args = self._args
        assert args.partition_key is not None  # checked in StreamedTableArgs
        keys = [args.partition_key] + ([args.sort_key] if args.sort_key else [])
        read_capacity = args.read.min if args.read is not None else None
        write_capacity = args.write.min if args.write is not None else None
        # autoscaling owns the live capacity; Pulumi must not reset it on every `up`
        ignore = ["readCapacity", "writeCapacity"] if args.provisioned else []
        return aws.dynamodb.Table(
            f"{self._name}-table",
            name=args.table_name,
            billing_mode="PROVISIONED" if args.provisioned else "PAY_PER_REQUEST",
            hash_key=args.partition_key.name,
            range_key=args.sort_key.name if args.sort_key else None,
            attributes=[aws.dynamodb.TableAttributeArgs(name=k.name, type=k.type) for k in keys],
            stream_enabled=True,
            stream_view_type="NEW_AND_OLD_IMAGES",
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=args.kms_key_arn
            ),
            deletion_protection_enabled=args.deletion_protection,
            tags=dict(args.tags),
            read_capacity=read_capacity,
            write_capacity=write_capacity,
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=ignore,
                protect=args.deletion_protection,
            ),
        )

    def _create_autoscaling(self, table_name: pulumi.Input[str]) -> list[pulumi.Resource]:
        """Target tracking on reads and writes, between the configured min and max."""
        created: list[pulumi.Resource] = []
        for dim, scaling, metric in (
            ("read", self._args.read, "DynamoDBReadCapacityUtilization"),
            ("write", self._args.write, "DynamoDBWriteCapacityUtilization"),
        ):
            assert scaling is not None
            unit = "ReadCapacityUnits" if dim == "read" else "WriteCapacityUnits"
            target = aws.appautoscaling.Target(
                f"{self._name}-{dim}-target",
                service_namespace="dynamodb",
                scalable_dimension=f"dynamodb:table:{unit}",
                resource_id=pulumi.Output.concat("table/", table_name),
                min_capacity=scaling.min,
                max_capacity=scaling.max,
                tags=dict(self._args.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            policy = aws.appautoscaling.Policy(
                f"{self._name}-{dim}-policy",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    target_value=float(scaling.target_utilization),
                    predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type=metric
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            created += [target, policy]
        return created

    def _create_alarms(self, table_name: pulumi.Input[str]) -> list[aws.cloudwatch.MetricAlarm]:
        """Writes throttled on the table mean DMS is slowed down (or capacity too low)."""
        return [
            metric_alarm(
                f"{self._name}-write-throttles",
                alarm_name=f"{self._args.table_name}-write-throttles",
                description=(
                    "Writes to this waypoint table are throttled: DMS (or the write path) is "
                    "slowed down. Raise write capacity / max, or switch to on-demand."
                ),
                namespace="AWS/DynamoDB",
                metric="WriteThrottleEvents",
                dimensions={"TableName": table_name},
                threshold=0,
                topic_arn=self._args.alarm_topic_arn,
                parent=self,
                tags=self._args.tags,
            )
        ]
