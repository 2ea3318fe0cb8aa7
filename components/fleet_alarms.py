"""FleetAlarms: one alarm per signal across all of an environment's waypoint tables.

A per-table alarm (`StreamedTable`'s `<table>-write-throttles`) costs about 0.10 USD a month
and is one more line in the console; at 1,000 tables that is 1,000 alarms. This component
declares ONE CloudWatch alarm on a Metrics Insights query that groups `WriteThrottleEvents` by
`TableName`: a multi-time-series alarm, whose contributors in ALARM are the offending tables
(each contributor is named by its `TableName` value).

How the query is scoped to this environment's tables -- and why not by the name prefix:
the Metrics Insights grammar (`SELECT FUNCTION(metric) FROM namespace | SCHEMA(...)
[WHERE labelKey OPERATOR 'labelValue' [AND ...]] [GROUP BY ...] [ORDER BY FUNCTION() ...]
[LIMIT n]`) documents the WHERE operators `=` and `!=` (joined by AND/OR), which match a
label value exactly. It documents no LIKE, wildcard or prefix match, so a query cannot say
"every TableName starting with `dmsbus-dev-`" without naming each table. An alarm over the
whole `AWS/DynamoDB` namespace would, in a shared account, page this environment for another
environment's (or another team's) tables: wrong. What CloudWatch does document for
Metrics Insights alarms is a filter on the resource's tags, `WHERE tag.<key> = '<value>'`,
and every waypoint table carries the stack's tags (`project`, `environment`). An exact match
on `environment` also keeps `dev` and `dev-eu` apart, which a name prefix would not.

Prerequisite (account-level, outside the stack): "resource tags on telemetry" must be enabled
in the account and region (CloudWatch settings; observabilityadmin `StartTelemetryEnrichment`).
Without it the tag filter matches no metric and the alarm never fires. Keep `per_table_alarms`
on (StreamedTable's default) until that is confirmed.

Limits (CloudWatch, "Limits that apply to alarms based on Metrics Insights queries"):
200 Metrics Insights alarms per account and region by default; only the latest 3 hours of
data are evaluated; at most 100 contributors in ALARM are named (beyond: "100+ time series");
a query returns at most 500 time series (more: PARTIAL_DATA) and processes at most 10,000
metrics. `ORDER BY SUM() DESC LIMIT 500` keeps the worst offenders among the 500 evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

TYPE = "dms-event-bus:index:FleetAlarms"

#: Metrics Insights: a query returns at most 500 time series.
MAX_SERIES = 500
#: Metrics Insights alarms: at most 100 contributors in ALARM are named.
MAX_NAMED_CONTRIBUTORS = 100
#: Metrics Insights alarms: default quota per account and region.
ALARMS_PER_REGION = 200
#: Metrics Insights alarms evaluate only the latest 3 hours.
EVALUATION_WINDOW_SECONDS = 3 * 3600
#: Aggregation functions of the grammar (SELECT and ORDER BY).
FUNCTIONS = ("AVG", "COUNT", "MAX", "MIN", "SUM")
#: The query's period (seconds) and how many periods breach before ALARM.
PERIOD = 300
EVALUATION_PERIODS = 1

#: A tag key usable unquoted after `tag.` (letters, digits, underscore).
_TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A label value we put between single quotes without escaping.
_LABEL_VALUE = re.compile(r"[^'\\]+")
#: The documented grammar, as this component writes it (one line, single spaces).
_QUERY = re.compile(
    r"SELECT (?P<fn>[A-Z]+)\((?P<metric>[A-Za-z0-9_]+)\) "
    r'FROM SCHEMA\("(?P<namespace>[^"]+)"(?P<schema_keys>(?:, [A-Za-z0-9_]+)+)\) '
    r"WHERE (?P<where>.+?) "
    r"GROUP BY (?P<group>[A-Za-z0-9_]+(?:, [A-Za-z0-9_]+)*) "
    r"ORDER BY (?P<order_fn>[A-Z]+)\(\) (?P<direction>ASC|DESC) "
    r"LIMIT (?P<limit>\d+)"
)
_CONDITION = re.compile(r"(?P<key>tag\.[A-Za-z_][A-Za-z0-9_]*|[A-Za-z0-9_]+) (?P<op>=|!=) "
                        r"'(?P<value>[^'\\]+)'")


@dataclass(frozen=True)
class FleetAlarmsArgs:
    name_prefix: str
    """The environment's name prefix (`dmsbus-<env>-`): alarm names and the description."""
    scope_tags: Mapping[str, str]
    """Tags every waypoint table of this environment carries (e.g. `{"project":
    "dms-event-bus", "environment": "dev"}`); the query matches them exactly. Required: an
    unscoped query would alarm on every DynamoDB table of the account."""
    alarm_topic_arn: pulumi.Input[str] | None = None
    """Topic notified on ALARM and OK; None: no action."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every resource."""

    def __post_init__(self) -> None:
        if not self.name_prefix or not self.name_prefix.endswith("-"):
            raise ValueError(
                "FleetAlarmsArgs.name_prefix: expected the environment's prefix ending in '-' "
                f"(e.g. 'dmsbus-dev-'), found {self.name_prefix!r}"
            )
        if not self.scope_tags:
            raise ValueError(
                "FleetAlarmsArgs.scope_tags: expected at least one tag every table of the "
                "environment carries (e.g. {'environment': 'dev'}), found none: an unscoped "
                "query would alarm on every DynamoDB table in the account"
            )
        for key, value in self.scope_tags.items():
            if not _TAG_KEY.fullmatch(key):
                raise ValueError(
                    f"FleetAlarmsArgs.scope_tags: expected keys of letters, digits and '_', "
                    f"found {key!r}"
                )
            if not _LABEL_VALUE.fullmatch(value):
                raise ValueError(
                    f"FleetAlarmsArgs.scope_tags[{key!r}]: expected a non-empty value without "
                    f"quotes or backslashes, found {value!r}"
                )


def write_throttles_alarm_name(name_prefix: str) -> str:
    """`<prefix>(all)-write-throttles`: '(' and ')' are not in DynamoDB's table-name alphabet
    ([a-zA-Z0-9_.-]), so no table's own `<table>-write-throttles` alarm can take this name
    (PutMetricAlarm on an existing name would silently overwrite the other alarm)."""
    return f"{name_prefix}(all)-write-throttles"


def write_throttle_query(scope_tags: Mapping[str, str]) -> str:
    """One time series per table (TableName) of the environment, worst first."""
    where = " AND ".join(f"tag.{key} = '{value}'" for key, value in sorted(scope_tags.items()))
    return (
        'SELECT SUM(WriteThrottleEvents) FROM SCHEMA("AWS/DynamoDB", TableName) '
        f"WHERE {where} GROUP BY TableName ORDER BY SUM() DESC LIMIT {MAX_SERIES}"
    )


def query_problems(query: str, scope_tags: Mapping[str, str]) -> list[str]:
    """What makes `query` invalid by the documented grammar, or unscoped; [] when fine.

    Checked: the function (AVG, COUNT, MAX, MIN, SUM) in SELECT and ORDER BY; FROM a SCHEMA
    whose namespace is quoted and whose keys include every GROUP BY key (so no `Other` group
    of metrics without the key); WHERE made only of `key = 'value'` / `key != 'value'` joined
    by AND, holding an exact `=` on every scope tag; LIMIT 1..500.
    """
    match = _QUERY.fullmatch(query)
    if match is None:
        return [f"not of the form SELECT ... FROM SCHEMA(...) WHERE ... GROUP BY ... ORDER BY "
                f"...() DESC|ASC LIMIT n: {query!r}"]
    problems: list[str] = []
    for part in ("fn", "order_fn"):
        if match[part] not in FUNCTIONS:
            problems.append(f"function {match[part]!r} is not one of {', '.join(FUNCTIONS)}")
    schema_keys = {k.strip() for k in match["schema_keys"].split(",") if k.strip()}
    group = {k.strip() for k in match["group"].split(",")}
    if not group <= schema_keys:
        problems.append(f"GROUP BY {sorted(group - schema_keys)} not in the SCHEMA keys")
    conditions = match["where"].split(" AND ")
    found: dict[str, str] = {}
    for condition in conditions:
        cond = _CONDITION.fullmatch(condition)
        if cond is None:
            problems.append(f"WHERE condition {condition!r} is not key =|!= 'value'")
        elif cond["op"] == "=":
            found[cond["key"]] = cond["value"]
    for key, value in scope_tags.items():
        if found.get(f"tag.{key}") != value:
            problems.append(f"WHERE has no exact scope tag.{key} = '{value}'")
    if not 1 <= int(match["limit"]) <= MAX_SERIES:
        problems.append(f"LIMIT {match['limit']} outside 1..{MAX_SERIES}")
    return problems


class FleetAlarms(pulumi.ComponentResource):
    """One alarm per signal for all of an environment's waypoint tables."""

    write_throttles_alarm_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: FleetAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._args = args
        self.write_throttles = self._create_write_throttles()
        self.write_throttles_alarm_name = self.write_throttles.name
        self.register_outputs({"write_throttles_alarm_name": self.write_throttles.name})

    def _create_write_throttles(self) -> aws.cloudwatch.MetricAlarm:
        args = self._args
        query = write_throttle_query(args.scope_tags)
        problems = query_problems(query, args.scope_tags)
        if problems:  # a bug in this module, not in the caller's input
            raise AssertionError(f"FleetAlarms: invalid Metrics Insights query: {problems}")
        actions = [args.alarm_topic_arn] if args.alarm_topic_arn is not None else []
        scope = ", ".join(f"{k}={v}" for k, v in sorted(args.scope_tags.items()))
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-write-throttles",
            name=write_throttles_alarm_name(args.name_prefix),
            alarm_description=(
                f"Writes to waypoint tables {args.name_prefix}* (tagged {scope}) are throttled: "
                "DMS (or the ingest API) is slowed down. Each contributor in ALARM is one "
                "table, named by its TableName (at most 100 are named). Raise that table's "
                "write capacity / max, or switch it to on-demand."
            ),
            metric_queries=[
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="throttles",
                    expression=query,
                    period=PERIOD,
                    label="WriteThrottleEvents by table",
                    return_data=True,
                )
            ],
            evaluation_periods=EVALUATION_PERIODS,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=actions,
            ok_actions=actions,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
