"""Dashboard: the first place an operator looks — one CloudWatch dashboard per stack.

Records and bytes into the bus, bus write throttling, iterator age and errors of every stream
consumer (fan-in, writeback), DLQ depths (fan-in, backfill, writeback and, with
`adoption.trigger`, the trigger's failed dispatches), DMS CDC latency at source and target,
what the fan-in put on the bus (its embedded metrics: put, retried, not put, overflowed,
poison) and the waypoint tables with the most write throttles (one search expression over the
environment's tables: nothing in the body grows with the table count).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from dms_event_bus.handlers.bus import METRIC_NAMESPACE

TYPE = "dms-event-bus:index:Dashboard"


@dataclass(frozen=True)
class DashboardArgs:
    dashboard_name: str
    """Physical dashboard name (carries the environment)."""
    region: pulumi.Input[str]
    """Region the metrics live in."""
    bus_stream_name: pulumi.Input[str]
    """The Kinesis bus."""
    functions: Mapping[str, pulumi.Input[str]]
    """Stream-consumer Lambda functions by label (e.g. `fan-in`, `writeback`): names or ARNs."""
    queues: Mapping[str, pulumi.Input[str]]
    """DLQs by label (e.g. `fan-in DLQ`, `writeback DLQ`, `adoption trigger DLQ`): names, ARNs
    or queue URLs; one row each in the DLQ-depth panel."""
    dms_dimensions: Mapping[str, pulumi.Input[str]] | None = None
    """Dimensions of the DMS CDC metrics (`DmsSource.metric_dimensions`: instance + task
    identifiers, or the serverless replication config identifier); None: no DMS."""
    table_name_prefix: str | None = None
    """Prefix of the environment's DynamoDB table names (`dmsbus-<env>-`): the write-throttle
    panel searches the tables by it; None: no table panel."""

    def __post_init__(self) -> None:
        if not self.functions:
            raise ValueError("DashboardArgs.functions: expected at least one function")
        if self.table_name_prefix is not None and not self.table_name_prefix.strip("-"):
            raise ValueError(
                "DashboardArgs.table_name_prefix: expected the environment's table name "
                f"prefix (e.g. 'dmsbus-dev-') or None, found {self.table_name_prefix!r}"
            )
        if self.dms_dimensions is not None and not self.dms_dimensions:
            raise ValueError(
                "DashboardArgs.dms_dimensions: expected the DMS metric dimensions or None, "
                "found an empty mapping"
            )


def resource_name(value: str) -> str:
    """The name CloudWatch dimensions use, from a name, an ARN or an SQS queue URL.

    `arn:aws:sqs:eu-west-1:123456789012:q` -> `q`; `https://sqs.../123456789012/q` -> `q`;
    `arn:aws:lambda:eu-west-1:123456789012:function:f` -> `f`.
    """
    if value.startswith("arn:"):
        tail = value.split(":", 6)[-1]
        return tail.removeprefix("function:").split(":")[0]
    if value.startswith(("https://", "http://")):
        return value.rstrip("/").rsplit("/", 1)[-1]
    return value


def _metric_rows(
    namespace: str, metric: str, dims: Mapping[str, Any], stat: str, label: str
) -> list[Any]:
    row: list[Any] = [namespace, metric]
    for key, value in dims.items():
        row += [key, value]
    row.append({"stat": stat, "label": label})
    return row


#: How many tables the write-throttle panel shows: the top offenders, whatever the table count.
TOP_TABLES = 10


def throttle_search(table_name_prefix: str) -> str:
    """The metric-math expression of the write-throttle panel: the `TOP_TABLES` tables of the
    environment with the most `WriteThrottleEvents` per minute.

    What it matches: SEARCH over `{AWS/DynamoDB,TableName}` (metrics with exactly the
    dimension TableName) named WriteThrottleEvents (exact: the name is in double quotes), with
    a PARTIAL match of the TableName value on the prefix without its trailing '-'
    (`TableName=dmsbus-dev`). CloudWatch's partial match is by tokens (words split at
    non-alphanumeric characters), not by a string prefix, and SEARCH has no prefix or wildcard
    match (a double-quoted value is an exact match of the whole value). So it matches every
    table of this environment -- waypoint, ingest and exception tables -- but may also show a
    table of another environment whose name holds the same words (`dmsbus-dev-eu-orders` on
    `dev`'s board). The panel is for finding the offender by name, not an alarm: the
    per-table throttle alarms stay exact.
    """
    term = table_name_prefix.rstrip("-")
    return (
        "SORT(SEARCH('{AWS/DynamoDB,TableName} MetricName=\"WriteThrottleEvents\" "
        f"TableName={term}', 'Sum', 60), SUM, DESC, {TOP_TABLES})"
    )


def dashboard_body(
    *,
    region: str,
    bus: str,
    functions: Mapping[str, str],
    queues: Mapping[str, str],
    dms: Mapping[str, str] | None,
    table_name_prefix: str | None,
) -> str:
    """The dashboard JSON for resolved names (a pure function, tested directly)."""

    def widget(title: str, rows: list[list[Any]], x: int, y: int, w: int = 12) -> dict:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": w,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "view": "timeSeries",
                "stacked": False,
                "period": 60,
                "metrics": rows,
            },
        }

    widgets = [
        widget(
            "Bus: records and bytes in",
            [
                _metric_rows("AWS/Kinesis", "IncomingRecords", {"StreamName": bus}, "Sum",
                             "records"),
                _metric_rows("AWS/Kinesis", "IncomingBytes", {"StreamName": bus}, "Sum",
                             "bytes"),
            ],
            0, 0,
        ),
        widget(
            "Bus: write throttling",
            [
                _metric_rows("AWS/Kinesis", "WriteProvisionedThroughputExceeded",
                             {"StreamName": bus}, "Sum", "throttled writes"),
            ],
            12, 0,
        ),
        widget(
            "Stream consumers: iterator age (ms)",
            [
                _metric_rows("AWS/Lambda", "IteratorAge", {"FunctionName": resource_name(fn)},
                             "Maximum", label)
                for label, fn in functions.items()
            ],
            0, 6,
        ),
        widget(
            "Stream consumers: errors",
            [
                _metric_rows("AWS/Lambda", "Errors", {"FunctionName": resource_name(fn)}, "Sum",
                             label)
                for label, fn in functions.items()
            ],
            12, 6,
        ),
        widget(
            "DLQ depth (messages)",
            [
                _metric_rows("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                             {"QueueName": resource_name(q)}, "Maximum", label)
                for label, q in queues.items()
            ],
            0, 12,
        ),
    ]
    if dms:
        widgets.append(
            widget(
                "DMS CDC latency (s)",
                [
                    _metric_rows("AWS/DMS", "CDCLatencySource", dms, "Maximum", "source"),
                    _metric_rows("AWS/DMS", "CDCLatencyTarget", dms, "Maximum", "target"),
                ],
                12, 12,
            )
        )
    widgets.append(
        widget(
            "Fan-in: changes put on the bus",
            [
                _metric_rows(METRIC_NAMESPACE, metric, {"Stream": bus}, "Sum", label)
                for metric, label in (
                    ("Published", "put"),
                    ("RetriedEntries", "retried"),
                    ("NotPublished", "not put (retried by Lambda)"),
                    ("Overflowed", "via overflow bucket"),
                    ("PoisonRecords", "poison"),
                )
            ],
            0, 18,
        )
    )
    if table_name_prefix:
        widgets.append(
            widget(
                f"Waypoint tables: write throttles (top {TOP_TABLES})",
                [[{
                    "expression": throttle_search(table_name_prefix),
                    "id": "throttles",
                    "label": "${PROP('Dim.TableName')}",
                }]],
                12, 18,
            )
        )
    return json.dumps({"widgets": widgets}, sort_keys=True)


class Dashboard(pulumi.ComponentResource):
    dashboard_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: DashboardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        labels_f, labels_q = list(args.functions), list(args.queues)
        dms_keys = list(args.dms_dimensions or {})
        body = pulumi.Output.all(
            args.region,
            args.bus_stream_name,
            pulumi.Output.all(*args.functions.values()),
            pulumi.Output.all(*args.queues.values()),
            pulumi.Output.all(*(args.dms_dimensions or {}).values()),
        ).apply(
            lambda v: dashboard_body(
                region=v[0],
                bus=v[1],
                functions=dict(zip(labels_f, v[2], strict=True)),
                queues=dict(zip(labels_q, v[3], strict=True)),
                dms=dict(zip(dms_keys, v[4], strict=True)) if dms_keys else None,
                table_name_prefix=args.table_name_prefix,
            )
        )
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=args.dashboard_name,
            dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.dashboard_name = dashboard.dashboard_name
        self.register_outputs({"dashboard_name": self.dashboard_name})
