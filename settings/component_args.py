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

import pulumi

from components.ingest_api import IngestApiArgs, IngestEntity, IngestField
from components.legacy_writeback import LegacyWritebackArgs, WritebackTable, WritebackTarget
from components.stream_mapping import MappingSettings
from settings.ingest import IngestSettings
from settings.writeback import DataApiTarget, SqlTarget, WritebackSettings

# -- IngestApi -----------------------------------------------------------------------------


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
        mapping=MappingSettings(
            batch_size=mapping.batch_size,
            batching_window_seconds=mapping.batching_window_seconds,
            parallelization_factor=mapping.parallelization_factor,
            maximum_retry_attempts=mapping.maximum_retry_attempts,
            maximum_record_age_seconds=mapping.maximum_record_age_seconds,
        ),
        alarm_topic_arn=alarm_topic_arn,
        kms_key_arn=kms_key_arn,
        iterator_age_ms=iterator_age_ms,
        dlq_depth=dlq_depth,
        tags=dict(tags or {}),
    )
