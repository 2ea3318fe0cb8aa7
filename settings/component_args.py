"""Settings -> component args: the one place the validated stack config becomes the plain,
typed args the components take.

The components never see the pydantic models: each takes a frozen dataclass of plain values
(and `pulumi.Input`s where a value may be another resource's output), so it is usable on its
own from another program. Everything here runs after `settings` validated the whole stack
config and before the program declares any resource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pulumi

from dms_event_bus.components.dms_source import (
    DmsAlarms,
    DmsEndpoint,
    DmsInstance,
    DmsNetwork,
    DmsServerless,
    DmsSourceArgs,
    DmsTable,
    DmsTask,
    DmsWildcard,
)
from dms_event_bus.components.ingest_api import IngestApiArgs, IngestEntity, IngestField
from dms_event_bus.components.legacy_writeback import (
    LegacyWritebackArgs,
    WritebackTable,
    WritebackTarget,
)
from dms_event_bus.components.stream_mapping import MappingSettings
from dms_event_bus.components.streamed_table import KeySpec, Scaling, StreamedTableArgs
from dms_event_bus.settings.core import OnDemandCapacity, ProvisionedCapacity, TableSettings
from dms_event_bus.settings.dms import DmsSettings, InstanceCapacity, dms_problems, source_of
from dms_event_bus.settings.ingest import IngestSettings
from dms_event_bus.settings.writeback import DataApiTarget, SqlTarget, WritebackSettings

if TYPE_CHECKING:
    from dms_event_bus.settings import StackSettings

# -- StreamedTable -------------------------------------------------------------------------


def table_scaling(
    cap: OnDemandCapacity | ProvisionedCapacity,
) -> tuple[Scaling | None, Scaling | None]:
    """Read and write autoscaling of a provisioned table; (None, None) for on-demand."""
    if not isinstance(cap, ProvisionedCapacity):
        return None, None
    return (
        Scaling(cap.read.min, cap.read.max, cap.read.target_utilization),
        Scaling(cap.write.min, cap.write.max, cap.write.target_utilization),
    )


def streamed_table_args(
    stack: StackSettings,
    logical: str,
    table: TableSettings,
    *,
    alarm_topic_arn: pulumi.Input[str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> StreamedTableArgs:
    """One `tables` entry as a declared StreamedTable's args (its physical name, keys,
    capacity, the stack's key)."""
    read, write = table_scaling(table.capacity)
    return StreamedTableArgs(
        table_name=stack.physical_table_name(logical),
        partition_key=KeySpec(table.partition_key.name, table.partition_key.type),
        sort_key=KeySpec(table.sort_key.name, table.sort_key.type) if table.sort_key else None,
        read=read,
        write=write,
        kms_key_arn=stack.encryption.kms_key_arn,
        deletion_protection=table.deletion_protection,
        alarm_topic_arn=alarm_topic_arn,
        tags=dict(tags or {}),
    )


# -- IngestApi -----------------------------------------------------------------------------


class StreamMappingConfig(Protocol):
    """The event-source-mapping fields a settings section holds (bus.fanin, writeback)."""

    batch_size: int
    batching_window_seconds: int
    parallelization_factor: int
    maximum_retry_attempts: int
    maximum_record_age_seconds: int


def mapping_settings(config: StreamMappingConfig) -> MappingSettings:
    """The stream mapping of a Lambda from its settings section."""
    return MappingSettings(
        batch_size=config.batch_size,
        batching_window_seconds=config.batching_window_seconds,
        parallelization_factor=config.parallelization_factor,
        maximum_retry_attempts=config.maximum_retry_attempts,
        maximum_record_age_seconds=config.maximum_record_age_seconds,
    )


def ingest_api_args(
    ingest: IngestSettings,
    *,
    name_prefix: str,
    kms_key_arn: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> IngestApiArgs:
    """The `ingest_api` section as IngestApi's args (entities and fields in config order:
    the request models and the redeployment fingerprint follow it)."""
    return IngestApiArgs(
        name_prefix=name_prefix,
        entities={
            name: IngestEntity(
                fields={
                    field_name: IngestField(
                        type=spec.type,
                        required=spec.required,
                        max_length=spec.max_length,
                        min_length=spec.min_length,
                        pattern=spec.pattern,
                        enum=tuple(spec.enum) if spec.enum is not None else None,
                        minimum=spec.minimum,
                        maximum=spec.maximum,
                        description=spec.description,
                    )
                    for field_name, spec in entity.fields.items()
                },
                request_like=entity.request_like,
                ttl_days=entity.ttl_days,
                deletion_protection=entity.deletion_protection,
            )
            for name, entity in ingest.entities.items()
        },
        auth=ingest.auth,
        api_key_consumers=tuple(ingest.api_key_consumers),
        quota_per_day=ingest.quota_per_day,
        stage_name=ingest.stage_name,
        rate_limit=ingest.throttling.rate_limit,
        burst_limit=ingest.throttling.burst_limit,
        max_body_bytes=ingest.max_body_bytes,
        access_log_retention_days=ingest.access_log_retention_days,
        kms_key_arn=kms_key_arn,
        tags=dict(tags or {}),
    )


# -- LegacyWriteback -----------------------------------------------------------------------


@dataclass(frozen=True)
class WritebackSource:
    """Where the program found one `writeback.tables` source: its physical table, the
    table's and its stream's ARNs, and what the stream mapping waits for."""

    table_name: str
    table_arn: pulumi.Input[str]
    stream_arn: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = ()


def legacy_writeback_args(
    writeback: WritebackSettings,
    sources: Mapping[str, WritebackSource],
    *,
    name_prefix: str,
    alarm_topic_arn: pulumi.Input[str] | None = None,
    kms_key_arn: str | None = None,
    iterator_age_ms: int = 300_000,
    dlq_depth: int = 1,
    tags: Mapping[str, str] | None = None,
) -> LegacyWritebackArgs:
    """The `writeback` section as LegacyWriteback's args; `sources` holds one entry per
    `writeback.tables` key."""
    missing = sorted(set(writeback.tables) - set(sources))
    if missing:
        raise ValueError(f"writeback.tables: no table found for {missing}")
    target = writeback.target
    function = writeback.function
    mapping = writeback.mapping
    contract = writeback.item_contract
    return LegacyWritebackArgs(
        name_prefix=name_prefix,
        target=WritebackTarget(
            kind=target.kind,
            secret_arn=target.secret_arn,
            cluster_arn=target.cluster_arn if isinstance(target, DataApiTarget) else None,
            endpoint=f"{target.host}:{target.effective_port}"
            if isinstance(target, SqlTarget) else None,
        ),
        subnet_ids=list(writeback.vpc.subnet_ids),
        security_group_ids=list(writeback.vpc.security_group_ids),
        tables=[
            WritebackTable(
                logical,
                sources[logical].table_name,
                sources[logical].table_arn,
                sources[logical].stream_arn,
                key_attributes=list(table.key_columns),
                version_attribute=table.version_attribute,
                depends_on=list(sources[logical].depends_on),
            )
            for logical, table in writeback.tables.items()
        ],
        handler_config=writeback.handler_config(
            {logical: sources[logical].table_name for logical in writeback.tables}
        ),
        status_attributes=[contract.status_attribute, contract.status_detail_attribute],
        memory_mb=function.memory_mb,
        timeout_seconds=function.timeout_seconds,
        reserved_concurrency=function.reserved_concurrency,
        log_retention_days=function.log_retention_days,
        mapping=mapping_settings(mapping),
        alarm_topic_arn=alarm_topic_arn,
        kms_key_arn=kms_key_arn,
        iterator_age_ms=iterator_age_ms,
        dlq_depth=dlq_depth,
        tags=dict(tags or {}),
    )


# -- DmsSource -----------------------------------------------------------------------------


def dms_source_args(
    dms: DmsSettings,
    tables: Mapping[str, TableSettings],
    *,
    environment: str,
    notification_topic_arn: pulumi.Input[str],
    depends_on: Sequence[pulumi.Resource] = (),
    kms_key_arn: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> DmsSourceArgs:
    """The `dms` section and the declared tables as DmsSource's args.

    The section is checked against the tables first (`dms_problems`, what `load_settings`
    checks): models built or copied without the stack validation are refused here, with a
    ValueError naming each problem's key path, before anything is converted."""
    problems = dms_problems(dms, tables)
    if problems:
        raise ValueError(
            "dms_source_args: " + "; ".join(f"{_dotted(loc)}: {msg}" for loc, msg, _ in problems)
        )
    capacity = dms.capacity
    task = dms.task
    alarms = dms.alarms
    converted: dict[str, DmsTable] = {}
    for logical, table in tables.items():
        schema, name = source_of(logical, table, dms.default_schema)
        extra = dms.tables.get(logical)
        converted[logical] = DmsTable(
            schema_name=schema,
            table_name=name,
            partition_key=table.partition_key.name,
            sort_key=table.sort_key.name if table.sort_key is not None else None,
            primary_key=tuple(extra.primary_key)
            if extra is not None and extra.primary_key is not None else None,
            key_separator=extra.key_separator if extra is not None else "|",
            exclude_columns=tuple(extra.exclude_columns) if extra is not None else (),
        )
    wildcards = []
    for wildcard in dms.wildcards:
        if wildcard.schema_name is None:  # dms_problems refuses it; narrows the type
            raise ValueError("dms.wildcards: a wildcard without a schema")
        wildcards.append(
            DmsWildcard(
                schema_name=wildcard.schema_name,
                table_pattern=wildcard.table_pattern,
                exclude=tuple(wildcard.exclude),
                table_prefix=wildcard.table_prefix,
            )
        )
    return DmsSourceArgs(
        environment=environment,
        tables=converted,
        wildcards=tuple(wildcards),
        capacity=DmsInstance(
            instance_class=capacity.instance_class,
            allocated_storage_gb=capacity.allocated_storage_gb,
            multi_az=capacity.multi_az,
            engine_version=capacity.engine_version,
            auto_minor_version_upgrade=capacity.auto_minor_version_upgrade,
            preferred_maintenance_window=capacity.preferred_maintenance_window,
        )
        if isinstance(capacity, InstanceCapacity)
        else DmsServerless(
            min_capacity_units=capacity.min_capacity_units,
            max_capacity_units=capacity.max_capacity_units,
            multi_az=capacity.multi_az,
            preferred_maintenance_window=capacity.preferred_maintenance_window,
        ),
        network=DmsNetwork(
            vpc_id=dms.network.vpc_id,
            subnet_ids=tuple(dms.network.subnet_ids),
            https_egress_cidrs=tuple(dms.network.https_egress_cidrs),
            source_cidrs=tuple(dms.network.source_cidrs),
            source_security_group_id=dms.network.source_security_group_id,
        ),
        source=DmsEndpoint(
            engine=dms.source.engine,
            port=dms.source.effective_port,
            secret_arn=dms.source.secret_arn,
            database=dms.source.database,
            secret_kms_key_arn=dms.source.secret_kms_key_arn,
            ssl_mode=dms.source.ssl_mode,
            certificate_arn=dms.source.certificate_arn,
            slot_name=dms.source.slot_name,
            extra_connection_attributes=dms.source.extra_connection_attributes,
        ),
        task=DmsTask(
            start=task.start,
            lob_mode=dms.lob_mode,
            max_full_load_subtasks=task.max_full_load_subtasks,
            parallel_load_threads=task.parallel_load_threads,
            commit_rate=task.commit_rate,
            lob_max_size_kb=task.lob_max_size_kb,
            lob_chunk_size_kb=task.lob_chunk_size_kb,
            on_data_error=task.on_data_error,
            on_apply_error=task.on_apply_error,
            log_severity=task.log_severity,
            log_retention_days=task.log_retention_days,
        ),
        alarms=DmsAlarms(
            cdc_latency_source_seconds=alarms.cdc_latency_source_seconds,
            cdc_latency_target_seconds=alarms.cdc_latency_target_seconds,
            evaluation_minutes=alarms.evaluation_minutes,
            not_reporting_minutes=alarms.not_reporting_minutes,
        ),
        notification_topic_arn=notification_topic_arn,
        depends_on=tuple(depends_on),
        kms_key_arn=kms_key_arn,
        tags=dict(tags or {}),
    )


def _dotted(loc: tuple[str | int, ...]) -> str:
    """A problem's key path as written in the stack file (`tables.orders`, `wildcards[0]`)."""
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p)
                   for i, p in enumerate(loc))
