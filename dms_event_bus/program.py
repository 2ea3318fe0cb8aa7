"""dms-event-bus, the Pulumi program: reads the typed stack config once, then composes the
components (`__main__.py` runs `main()`; so can a program of your own).

Nothing is declared before the whole stack config has been validated.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Sequence

import pulumi
import pulumi_aws as aws

from dms_event_bus.components.adoption_trigger import AdoptionTrigger, AdoptionTriggerArgs
from dms_event_bus.components.alarm_topic import AlarmTopic, AlarmTopicArgs
from dms_event_bus.components.backfill import Backfill, BackfillArgs
from dms_event_bus.components.dashboard import Dashboard, DashboardArgs
from dms_event_bus.components.discovery import discover, logical_name
from dms_event_bus.components.dms_source import DmsSource
from dms_event_bus.components.fleet_alarms import FleetAlarms, FleetAlarmsArgs
from dms_event_bus.components.ingest_api import IngestApi
from dms_event_bus.components.kinesis_bus import ArchiveArgs, BusTable, KinesisBus, KinesisBusArgs
from dms_event_bus.components.legacy_writeback import LegacyWriteback
from dms_event_bus.components.streamed_table import (
    AdoptSpec,
    StreamedTable,
    StreamedTableArgs,
)
from dms_event_bus.settings import StackSettings, settings_from_pulumi
from dms_event_bus.settings.component_args import (
    WritebackSource,
    dms_source_args,
    ingest_api_args,
    legacy_writeback_args,
    mapping_settings,
    streamed_table_args,
    table_scaling,
)


def keep_the_collector_off_the_provider_sdk() -> None:
    """Move what is already imported out of the cyclic garbage collector's reach, and collect
    the young generation less often.

    Why: the provider SDK imported above (pulumi_aws: hundreds of thousands of long-lived
    module objects) is never garbage, yet every collection the growing resource graph
    triggers walked it again: at 200 tables the collector took 58 % of the evaluation time
    and the time per added table grew with the number of tables.
    `gc.freeze()` takes everything alive now out of the collector's reach;
    `gc.set_threshold(50_000, 20, 20)` makes the young-generation collections rarer. The
    measurement (evaluation time stays linear in the tables) is in bench/README.md. Call it
    once, after the imports and before the first resource.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def main(settings: StackSettings | None = None, other_namespaces: Sequence[str] = ()) -> None:
    """The whole program: the stack config (read from the running stack, or `settings`
    already validated), then every component, then the stack outputs.

    A program of your own runs it with `from dms_event_bus.program import main; main()` and
    stack files holding `dms-event-bus:` keys (docs/reuse.md)."""
    keep_the_collector_off_the_provider_sdk()
    settings = settings if settings is not None else settings_from_pulumi(other_namespaces)
    tags = {"project": "dms-event-bus", "environment": settings.environment, **settings.tags}
    kms_key_arn = settings.encryption.kms_key_arn


    # -- alarms go to one topic ------------------------------------------------------------
    alarm_topic_arn: pulumi.Input[str]
    if settings.alarms.sns_topic_arn:
        alarm_topic_arn = settings.alarms.sns_topic_arn
    else:
        alarm_topic_arn = AlarmTopic(
            "alarms",
            AlarmTopicArgs(
                topic_name=f"{settings.name_prefix}alarms",
                # its own customer-managed key, whose policy lets CloudWatch, EventBridge and DMS
                # publish (a stack key would need those grants in its own policy)
                kms_key_arn=None,
                email=settings.alarms.email,
                tags=tags,
            ),
        ).topic_arn

    # -- one alarm per signal across the environment's tables (alarms.fleet) ---------------
    if settings.alarms.fleet:
        FleetAlarms(
            "fleet-alarms",
            FleetAlarmsArgs(
                name_prefix=settings.name_prefix,
                # the tags every waypoint table carries, declared or adopted
                scope_tags={k: tags[k] for k in ("project", "environment")},
                alarm_topic_arn=alarm_topic_arn,
                tags=tags,
            ),
        )

    # -- declared waypoint tables, streams on before anything writes to them ---------------
    tables = {
        logical: StreamedTable(logical, streamed_table_args(
            settings, logical, table, alarm_topic_arn=alarm_topic_arn, tags=tags))
        for logical, table in settings.tables.items()
    }

    # -- tables DMS created at runtime (wildcards, new source tables): adopted --------------
    # Adoption starts each table's backfill, so it waits for the backfill function and its
    # invoke settings; the function needs the bus, which needs the adopted streams: the name
    # is a deferred output, resolved below (docs/adoption.md).
    adoption = settings.adoption
    adopted: dict[str, StreamedTable] = {}
    backfill_function_name: pulumi.Output[str]
    resolve_backfill_function_name: Callable[[pulumi.Output[str]], None]
    backfill_function_name, resolve_backfill_function_name = pulumi.deferred_output()
    # An error before the name is resolved would leave the engine waiting for it forever: the
    # deferred output is resolved (empty) on the way out, and the error goes on to the user.
    try:
        if adoption.enabled:
            adopt_read, adopt_write = table_scaling(adoption.capacity)
            for physical in discover(
                settings.name_prefix,
                [settings.physical_table_name(logical) for logical in settings.tables],
                exclude=adoption.exclude,
            ):
                logical = logical_name(physical, settings.name_prefix)
                adopted[logical] = StreamedTable(
                    f"adopted-{logical}",
                    StreamedTableArgs(
                        table_name=physical,
                        read=adopt_read,
                        write=adopt_write,
                        kms_key_arn=kms_key_arn,
                        deletion_protection=adoption.deletion_protection,
                        alarm_topic_arn=alarm_topic_arn,
                        per_table_alarms=not settings.alarms.fleet,
                        tags=tags,
                        adopt=AdoptSpec(
                            logical_name=logical,
                            backfill_function_name=backfill_function_name,
                            wait_timeout_seconds=adoption.wait_timeout_seconds,
                            backfill_segments=adoption.backfill_segments,
                            replace_stream=logical in adoption.replace_stream,
                        ),
                    ),
                )

        # -- the bus ---------------------------------------------------------------------------
        fanin = settings.bus.fanin
        bus = KinesisBus(
            "bus",
            KinesisBusArgs(
                name_prefix=settings.name_prefix,
                tables=[
                    BusTable(logical, settings.physical_table_name(logical), t.stream_arn)
                    for logical, t in tables.items()
                ]
                + [
                    BusTable(logical, settings.physical_table_name(logical), t.stream_arn,
                             depends_on=[t])
                    for logical, t in adopted.items()
                ],
                stream_mode=settings.bus.stream.mode,
                shard_count=settings.bus.stream.shards,
                retention_hours=settings.bus.stream.retention_hours,
                memory_mb=fanin.memory_mb,
                timeout_seconds=fanin.timeout_seconds,
                mapping=mapping_settings(fanin),
                max_record_bytes=fanin.max_record_bytes,
                overflow_expire_days=settings.bus.overflow.expire_days,
                force_destroy_buckets=settings.bus.buckets.force_destroy,
                archive=ArchiveArgs(
                    buffer_seconds=settings.bus.archive.buffer_seconds,
                    buffer_mb=settings.bus.archive.buffer_mb,
                    expire_days=settings.bus.archive.expire_days,
                )
                if settings.bus.archive.enabled
                else None,
                kms_key_arn=kms_key_arn,
                alarm_topic_arn=alarm_topic_arn,
                iterator_age_ms=settings.alarms.iterator_age_ms,
                dlq_depth=settings.alarms.dlq_depth,
                log_retention_days=fanin.log_retention_days,
                tags=tags,
            ),
        )

        # -- backfill of the adopted tables' rows written before their stream -----------------
        backfill: Backfill | None = None
        if adopted:
            backfill = Backfill(
                "backfill",
                BackfillArgs(
                    name_prefix=settings.name_prefix,
                    table_names=[settings.physical_table_name(logical) for logical in adopted],
                    bus_stream_name=bus.stream_name,
                    bus_stream_arn=bus.stream_arn,
                    overflow_bucket=bus.overflow_bucket,
                    overflow_bucket_arn=bus.overflow.arn,
                    memory_mb=adoption.backfill_memory_mb,
                    kms_key_arn=kms_key_arn,
                    alarm_topic_arn=alarm_topic_arn,
                    log_retention_days=fanin.log_retention_days,
                    tags=tags,
                ),
            )
            resolve_backfill_function_name(backfill.ready_function_name)
        else:
            resolve_backfill_function_name(pulumi.Output.from_input(""))
    except BaseException:
        with contextlib.suppress(Exception):  # already resolved when the error came later
            resolve_backfill_function_name(pulumi.Output.from_input(""))
        raise

    # -- a table DMS creates dispatches the adopt workflow (adoption.trigger, off by default) --
    trigger: AdoptionTrigger | None = None
    if adoption.trigger is not None:
        trigger = AdoptionTrigger(
            "adoption-trigger",
            AdoptionTriggerArgs(
                name_prefix=settings.name_prefix,
                environment=settings.environment,
                repository=adoption.trigger.repository,
                token_secret_arn=adoption.trigger.token_secret_arn,
                kms_key_arn=kms_key_arn,
                alarm_topic_arn=alarm_topic_arn,
                max_event_age_seconds=adoption.trigger.max_event_age_seconds,
                max_retry_attempts=adoption.trigger.max_retry_attempts,
                invocation_rate_per_second=adoption.trigger.invocation_rate_per_second,
                tags=tags,
            ),
        )

    # -- change data capture from the legacy database (after every stream and mapping) -----
    dms: DmsSource | None = None
    if settings.dms is not None:
        dms = DmsSource(
            "dms",
            dms_source_args(
                settings.dms,
                settings.tables,
                environment=settings.environment,
                notification_topic_arn=alarm_topic_arn,
                depends_on=[*tables.values(), *bus.mappings.values()],
                kms_key_arn=kms_key_arn,
                tags=tags,
            ),
        )

    # -- the write path for new services: API Gateway straight into app-owned tables -------
    ingest: IngestApi | None = None
    if settings.ingest_api is not None:
        ingest_args = ingest_api_args(
            settings.ingest_api,
            name_prefix=settings.name_prefix,
            kms_key_arn=kms_key_arn,
            tags=tags,
        )
        ingest = IngestApi("ingest", ingest_args)

    # -- writeback: changes of the chosen tables back to the legacy database ---------------
    writeback: LegacyWriteback | None = None
    if settings.writeback is not None:
        writeback_sources: dict[str, WritebackSource] = {}
        for logical, mapping in settings.writeback.tables.items():
            if mapping.origin == "ingest_api":
                if ingest is None:  # StackSettings already rejects this; narrows the type
                    raise ValueError(f"writeback.tables.{logical}: needs ingest_api")
                writeback_sources[logical] = WritebackSource(
                    ingest_args.table_name(logical),
                    ingest.table_arns[logical],
                    ingest.stream_arns[logical],
                )
            else:  # origin: tables -- a declared waypoint table
                waypoint = tables[logical]
                writeback_sources[logical] = WritebackSource(
                    settings.physical_table_name(logical),
                    waypoint.table_arn,
                    waypoint.stream_arn,
                    depends_on=[waypoint],
                )
        writeback = LegacyWriteback(
            "writeback",
            legacy_writeback_args(
                settings.writeback,
                writeback_sources,
                name_prefix=settings.name_prefix,
                alarm_topic_arn=alarm_topic_arn,
                kms_key_arn=kms_key_arn,
                iterator_age_ms=settings.alarms.iterator_age_ms,
                dlq_depth=settings.alarms.dlq_depth,
                tags=tags,
            ),
        )

    # -- the first place an operator looks -------------------------------------------------
    dashboard = Dashboard(
        "ops",
        DashboardArgs(
            dashboard_name=f"{settings.name_prefix}pipeline",
            region=aws.get_region_output().region,
            bus_stream_name=bus.stream_name,
            functions={
                "fan-in": bus.fanin_function_name,
                **({"writeback": writeback.function_name} if writeback is not None else {}),
            },
            queues={
                "fan-in DLQ": bus.dlq_name,
                **({"backfill DLQ": backfill.dlq_name} if backfill is not None else {}),
                **({"writeback DLQ": writeback.dlq_name} if writeback is not None else {}),
                **({"adoption trigger DLQ": trigger.dlq_name} if trigger is not None else {}),
            },
            dms_dimensions=dms.metric_dimensions if dms else None,
            table_name_prefix=settings.name_prefix,
        ),
    )

    pulumi.export("bus_stream_name", bus.stream_name)
    pulumi.export("bus_stream_arn", bus.stream_arn)
    pulumi.export("fanin_dlq_url", bus.dlq_url)
    pulumi.export("overflow_bucket", bus.overflow_bucket)
    pulumi.export("dashboard", dashboard.dashboard_name)
    pulumi.export("tables", {logical: t.table_name for logical, t in tables.items()})
    pulumi.export("adopted_tables", {logical: t.table_name for logical, t in adopted.items()})
    if dms is not None:
        pulumi.export("dms_task_arn", dms.task_arn)
        pulumi.export("dms_tables", dms.physical_table_names)
    if ingest is not None:
        pulumi.export("ingest_api_url", ingest.url)
        pulumi.export("ingest_api_execution_arn", ingest.execution_arn)
        pulumi.export("ingest_tables", ingest.table_names)
        pulumi.export("ingest_access_log_group", ingest.access_log_group)
        pulumi.export("ingest_api_key_ids", ingest.api_key_ids)
    if writeback is not None:
        pulumi.export("writeback_function", writeback.function_name)
        pulumi.export("writeback_dlq_url", writeback.dlq_url)
