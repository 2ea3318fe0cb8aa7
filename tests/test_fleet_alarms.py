"""FleetAlarms: one write-throttle alarm for all of an environment's tables, on a Metrics
Insights query checked against the documented grammar; StreamedTable without its own alarm
when `per_table_alarms=False`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dms_event_bus.components.fleet_alarms import (
    MAX_SERIES,
    FleetAlarms,
    FleetAlarmsArgs,
    query_problems,
    write_throttle_query,
    write_throttles_alarm_name,
)
from dms_event_bus.components.streamed_table import (
    AdoptSpec,
    KeySpec,
    StreamedTable,
    StreamedTableArgs,
)
from dms_event_bus.settings.aws_limits import evaluate
from tools.mockrun import ACCOUNT, run_program

REGION = "eu-west-1"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:dmsbus-dev-alarms"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DEV = {"project": "dms-event-bus", "environment": "dev"}


def where_matches(query: str, table_tags: Mapping[str, str]) -> bool:
    """Evaluate the query's WHERE on one table's tags as the grammar defines it: every
    `tag.k = 'v'` holds exactly (whole value, case-sensitive), every `!=` does not."""
    where = re.search(r" WHERE (.+?) GROUP BY ", query)
    assert where is not None
    for cond in where[1].split(" AND "):
        key, op, value = re.fullmatch(r"tag\.(\w+) (=|!=) '([^']*)'", cond).groups()  # type: ignore[union-attr]
        if (table_tags.get(key) == value) != (op == "="):
            return False
    return True


# --- the query (pure) ---------------------------------------------------------------------------


def test_query_is_valid_by_the_grammar_and_scoped_to_the_environment() -> None:
    query = write_throttle_query(DEV)
    assert query_problems(query, DEV) == []
    assert query.startswith(
        'SELECT SUM(WriteThrottleEvents) FROM SCHEMA("AWS/DynamoDB", TableName) WHERE '
    )
    assert "GROUP BY TableName" in query  # one contributor per table
    assert "tag.environment = 'dev'" in query and "tag.project = 'dms-event-bus'" in query
    assert query.endswith(f"ORDER BY SUM() DESC LIMIT {MAX_SERIES}")


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        # no WHERE at all: the whole account's DynamoDB namespace
        ('SELECT SUM(WriteThrottleEvents) FROM SCHEMA("AWS/DynamoDB", TableName) '
         "GROUP BY TableName ORDER BY SUM() DESC LIMIT 500", "not of the form"),
        # a prefix "match": the grammar has no LIKE
        ('SELECT SUM(WriteThrottleEvents) FROM SCHEMA("AWS/DynamoDB", TableName) '
         "WHERE TableName LIKE 'dmsbus-dev-%' GROUP BY TableName ORDER BY SUM() DESC LIMIT 500",
         "is not key"),
        # scoped to another environment
        ('SELECT SUM(WriteThrottleEvents) FROM SCHEMA("AWS/DynamoDB", TableName) '
         "WHERE tag.environment = 'dev-eu' AND tag.project = 'dms-event-bus' "
         "GROUP BY TableName ORDER BY SUM() DESC LIMIT 500", "no exact scope tag.environment"),
        # an excluded environment is not a scope
        ('SELECT SUM(WriteThrottleEvents) FROM SCHEMA("AWS/DynamoDB", TableName) '
         "WHERE tag.environment != 'dev' AND tag.project = 'dms-event-bus' "
         "GROUP BY TableName ORDER BY SUM() DESC LIMIT 500", "no exact scope tag.environment"),
        ('SELECT MEDIAN(WriteThrottleEvents) FROM SCHEMA("AWS/DynamoDB", TableName) '
         "WHERE tag.environment = 'dev' AND tag.project = 'dms-event-bus' "
         "GROUP BY TableName ORDER BY SUM() DESC LIMIT 500", "'MEDIAN' is not one of"),
        ('SELECT SUM(WriteThrottleEvents) FROM SCHEMA("AWS/DynamoDB", TableName) '
         "WHERE tag.environment = 'dev' AND tag.project = 'dms-event-bus' "
         "GROUP BY Operation ORDER BY SUM() DESC LIMIT 500", "not in the SCHEMA keys"),
        ('SELECT SUM(WriteThrottleEvents) FROM SCHEMA("AWS/DynamoDB", TableName) '
         "WHERE tag.environment = 'dev' AND tag.project = 'dms-event-bus' "
         "GROUP BY TableName ORDER BY SUM() DESC LIMIT 501", "LIMIT 501 outside"),
    ],
)
def test_the_check_refuses_what_the_grammar_or_the_scope_does_not_allow(
    query: str, problem: str
) -> None:
    problems = query_problems(query, DEV)
    assert any(problem in p for p in problems), problems


ENV = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?", fullmatch=True)


@given(ENV, ENV)
def test_one_environments_query_never_reaches_anothers_tables(mine: str, other: str) -> None:
    # GIVEN two environments of one account, e.g. dev and dev-eu (names sharing a prefix)
    query = write_throttle_query({"project": "dms-event-bus", "environment": mine})
    # THEN my query matches my tables, and another environment's only if it IS mine
    assert where_matches(query, {"project": "dms-event-bus", "environment": mine})
    assert where_matches(query, {"project": "dms-event-bus", "environment": other}) == (
        mine == other
    )
    # AND a table without the tags (another team's) is never matched
    assert not where_matches(query, {"team": "billing"})


def test_no_tables_own_alarm_can_take_the_fleet_alarms_name() -> None:
    # StreamedTable names its alarm f"{table_name}-write-throttles", a table name is
    # [a-zA-Z0-9_.-]{3,255} (DynamoDB), and PutMetricAlarm on a taken name overwrites that
    # alarm: the fleet alarm's name must not be of that form
    name = write_throttles_alarm_name("dmsbus-dev-")
    assert name.startswith("dmsbus-dev-") and name.endswith("-write-throttles")
    table_part = name[: -len("-write-throttles")]
    assert not re.fullmatch(r"[a-zA-Z0-9_.-]{3,255}", table_part)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name_prefix": "dmsbus-dev"}, "name_prefix"),
        ({"scope_tags": {}}, "scope_tags"),
        ({"scope_tags": {"env-name": "dev"}}, "scope_tags"),
        ({"scope_tags": {"environment": "it's"}}, "scope_tags"),
    ],
)
def test_bad_args_name_the_field(changes: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"name_prefix": "dmsbus-dev-", "scope_tags": DEV}
    args.update(changes)
    with pytest.raises(ValueError, match=f"FleetAlarmsArgs.{field}"):
        FleetAlarmsArgs(**args)  # type: ignore[arg-type]


# --- under mocks --------------------------------------------------------------------------------


def test_fleet_alarm_declares_one_scoped_query_alarm_to_the_topic() -> None:
    def program() -> None:
        FleetAlarms(
            "fleet",
            FleetAlarmsArgs(name_prefix="dmsbus-dev-", scope_tags=DEV, alarm_topic_arn=TOPIC,
                            tags={"team": "data"}),
        )

    plan = run_program("dev", {"aws:region": REGION}, program)
    (alarm,) = plan.of_type(ALARM)
    component = plan.named("fleet")
    assert alarm.parent == component.urn and alarm.name == "fleet-write-throttles"
    inputs = alarm.inputs
    assert inputs["name"] == "dmsbus-dev-(all)-write-throttles"
    assert "dmsbus-dev-*" in inputs["alarmDescription"]
    assert "contributor" in inputs["alarmDescription"]
    assert inputs["alarmActions"] == [TOPIC] and inputs["okActions"] == [TOPIC]
    assert inputs["comparisonOperator"] == "GreaterThanThreshold" and inputs["threshold"] == 0
    assert inputs["treatMissingData"] == "notBreaching"
    assert inputs["tags"] == {"team": "data"}
    # a query alarm: no single metric, one query that returns data
    assert "metricName" not in inputs and "namespace" not in inputs
    (query,) = inputs["metricQueries"]
    assert query["returnData"] is True and query["period"] in (60, 300)
    assert query_problems(query["expression"], DEV) == []
    assert "tag.environment = 'dev'" in query["expression"]
    # AND the alarm is within the plan's AWS limits (name, description, actions)
    assert evaluate(plan).violations == []


def table(name: str, **changes: object) -> StreamedTable:
    args: dict[str, object] = {
        "table_name": f"dmsbus-dev-{name}",
        "partition_key": KeySpec("id"),
        "alarm_topic_arn": TOPIC,
        "tags": DEV,
    }
    args.update(changes)
    return StreamedTable(name, StreamedTableArgs(**args))  # type: ignore[arg-type]


def test_a_table_without_per_table_alarms_declares_no_alarm() -> None:
    def program() -> None:
        table("orders")  # default: its own alarm, as before
        table("invoices", per_table_alarms=False)
        table("lines", per_table_alarms=False, partition_key=None,
              adopt=AdoptSpec(logical_name="lines"))

    plan = run_program("dev", {"aws:region": REGION}, program)
    alarms = plan.of_type(ALARM)
    assert [a.inputs["name"] for a in alarms] == ["dmsbus-dev-orders-write-throttles"]
    assert alarms[0].parent == plan.named("orders").urn
    assert plan.children_of(plan.named("invoices"))  # the table itself is still declared
    assert not [a for a in alarms if a.parent in (plan.named("invoices").urn,
                                                  plan.named("lines").urn)]


def test_per_table_alarms_default_keeps_the_alarm() -> None:
    assert StreamedTableArgs(table_name="dmsbus-dev-x", partition_key=KeySpec("id")
                             ).per_table_alarms is True
