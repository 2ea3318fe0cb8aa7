"""Config models of the event bus core: tables, capacity, the Kinesis bus and its fan-in."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import ColumnName, KmsKeyArn, Model, SnsTopicArn


class KeyAttribute(Model):
    """One key attribute of a waypoint table (a key column of the legacy table)."""

    name: ColumnName = Field(description="Column / attribute name, as DMS writes it.")
    type: Literal["S", "N", "B"] = Field(
        default="S", description="DynamoDB scalar type: S string, N number, B binary."
    )


class ScalingRange(Model):
    """Provisioned capacity of one dimension, with target-tracking autoscaling."""

    min: int = Field(default=1, ge=1, le=40000, description="Lowest capacity units.")
    max: int = Field(default=10, ge=1, le=40000, description="Highest capacity units.")
    target_utilization: int = Field(
        default=70, ge=20, le=90, description="Target consumed/provisioned, percent."
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> ScalingRange:
        if self.min > self.max:
            raise ValueError(
                f"expected min <= max, found min={self.min} > max={self.max} "
                "(lower min or raise max)"
            )
        return self


class OnDemandCapacity(Model):
    """Pay per request: no idle cost, the right default for most waypoint tables."""

    mode: Literal["on_demand"] = "on_demand"


class ProvisionedCapacity(Model):
    """Provisioned capacity with application autoscaling on reads and writes.

    DMS's own default for tables it creates is 200 RCU/WCU each: the cost trap this avoids.
    """

    mode: Literal["provisioned"]
    read: ScalingRange = Field(default_factory=ScalingRange)
    write: ScalingRange = Field(default_factory=ScalingRange)


Capacity = Annotated[OnDemandCapacity | ProvisionedCapacity, Field(discriminator="mode")]


class SourceRef(Model):
    """Where a table comes from in the legacy database."""

    schema_name: str = Field(
        alias="schema", min_length=1, description="Source schema (owner / database)."
    )
    table: str = Field(min_length=1, description="Source table name as the database spells it.")


class TableSettings(Model):
    """One declared waypoint table (logical name = the key under `tables`)."""

    source: SourceRef | None = Field(
        default=None,
        description="Source schema and table; default: `dms.default_schema` and the logical name.",
    )
    partition_key: KeyAttribute = Field(description="Partition key: a key column of the source.")
    sort_key: KeyAttribute | None = Field(
        default=None, description="Sort key: the second key column of a composite primary key."
    )
    capacity: Capacity = Field(default_factory=OnDemandCapacity)
    deletion_protection: bool = Field(
        default=False, description="Refuse deletes of the table (turn on in production)."
    )

    @model_validator(mode="after")
    def _distinct_keys(self) -> TableSettings:
        if self.sort_key is not None and self.sort_key.name == self.partition_key.name:
            raise ValueError(
                f"expected sort_key to differ from partition_key, found both "
                f"'{self.partition_key.name}'"
            )
        return self

    @property
    def key_names(self) -> list[str]:
        return [self.partition_key.name] + ([self.sort_key.name] if self.sort_key else [])


class StreamSettings(Model):
    """The one Kinesis data stream every change goes to."""

    mode: Literal["on_demand", "provisioned"] = "on_demand"
    shards: int = Field(default=1, ge=1, le=500, description="Shard count (provisioned only).")
    retention_hours: int = Field(
        default=24, ge=24, le=8760, description="How long records stay readable (24..8760)."
    )


class FaninSettings(Model):
    """The fan-in Lambda and its DynamoDB Streams event source mappings."""

    memory_mb: int = Field(default=512, ge=128, le=10240)
    timeout_seconds: int = Field(default=60, ge=3, le=900)
    batch_size: int = Field(default=500, ge=1, le=10000, description="Records per invocation.")
    batching_window_seconds: int = Field(default=1, ge=0, le=300)
    parallelization_factor: int = Field(default=1, ge=1, le=10)
    maximum_retry_attempts: int = Field(
        default=5, ge=0, le=10000, description="Bounded retries before the on-failure DLQ."
    )
    maximum_record_age_seconds: int = Field(
        default=21600,
        ge=60,
        le=86400,
        description="Older records go to the DLQ instead of blocking the shard.",
    )
    max_record_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        le=5_242_880,  # one PutRecords call carries at most 5 MiB
        description="Largest bus record; a bigger change goes to the overflow bucket.",
    )
    log_retention_days: int = Field(default=30, ge=1, le=3653)


class ArchiveSettings(Model):
    """Optional Firehose copy of the bus to S3, partitioned by date."""

    enabled: bool = False
    buffer_seconds: int = Field(default=300, ge=0, le=900)
    buffer_mb: int = Field(default=64, ge=64, le=128)
    expire_days: int = Field(default=365, ge=1, le=36500)


class OverflowSettings(Model):
    """The bucket holding changes too large for one bus record."""

    expire_days: int = Field(
        default=30,
        ge=1,
        le=36500,
        description="Days until an object expires; at least the bus retention "
        "(stream.retention_hours / 24, rounded up) and, with the archive on, "
        "archive.expire_days: pointers must resolve as long as their records are readable.",
    )


class BucketSettings(Model):
    """The bus's versioned buckets (overflow and archive) when the stack is destroyed."""

    force_destroy: bool = Field(
        default=False,
        description="`pulumi destroy` deletes the overflow and archive buckets with every "
        "object version in them; false: destroy stops with BucketNotEmpty until they are "
        "emptied (docs/runbook.md). Takes effect after a `pulumi up`.",
    )


class BusSettings(Model):
    stream: StreamSettings = Field(default_factory=StreamSettings)
    fanin: FaninSettings = Field(default_factory=FaninSettings)
    overflow: OverflowSettings = Field(default_factory=OverflowSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    buckets: BucketSettings = Field(default_factory=BucketSettings)

    @model_validator(mode="after")
    def _pointers_resolve(self) -> BusSettings:
        # a pointer envelope stays readable on the bus for retention_hours after its object
        # was written (before it): the object must live at least that long
        needed = -(-self.stream.retention_hours // 24)
        if self.overflow.expire_days < needed:
            raise ValueError(
                f"expected overflow.expire_days >= {needed} (the bus keeps a pointer record "
                f"stream.retention_hours {self.stream.retention_hours} h; its S3 object must "
                f"still be there), found overflow.expire_days {self.overflow.expire_days} "
                f"(raise overflow.expire_days to {needed} or more)"
            )
        # the archive keeps overflow pointer envelopes; their S3 objects must live as long
        if self.archive.enabled and self.overflow.expire_days < self.archive.expire_days:
            raise ValueError(
                "expected overflow.expire_days >= archive.expire_days (archived overflow "
                f"pointers must still resolve), found overflow {self.overflow.expire_days} < "
                f"archive {self.archive.expire_days} (raise overflow.expire_days)"
            )
        return self


class AlarmSettings(Model):
    """Where alarms go and when they fire."""

    sns_topic_arn: SnsTopicArn | None = Field(
        default=None, description="Existing SNS topic for alarms; default: create one."
    )
    email: str | None = Field(
        default=None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Subscribe this address to the created topic.",
    )
    iterator_age_ms: int = Field(default=300_000, ge=1000, description="IteratorAge threshold.")
    dlq_depth: int = Field(default=1, ge=1, description="Alarm when the DLQ holds this many.")
    fleet: bool = Field(
        default=False,
        description="One Metrics Insights alarm on write throttles across all of the "
        "environment's tables (scoped by their tags; the account needs CloudWatch's resource "
        "tags on telemetry, which the account preflight checks) instead of one alarm per "
        "adopted table; declared tables keep theirs (docs/limits.md).",
    )


class EncryptionSettings(Model):
    """Encryption at rest. All data is KMS-encrypted; this only chooses the key."""

    kms_key_arn: KmsKeyArn | None = Field(
        default=None,
        description="Customer-managed KMS key for tables, bus, queues and buckets; "
        "default: the AWS-managed keys.",
    )
