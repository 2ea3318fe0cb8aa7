"""What one stack needs from its AWS account, read from the stack's own resource graph.

`stack_needs(settings, plan)` turns the offline plan (the program run under Pulumi's mocks,
`tools.mockrun.run_stack`) into the facts the account preflight checks against AWS: which
services use the stack's KMS key, which log groups are encrypted with it, which roles the stack
creates, whether an API Gateway stage logs, whether DMS is declared, the Lambda reservations,
the alarm topic's publishers and the Secrets Manager secrets. Reading the graph, not a copy of
the components' naming rules, keeps the preflight true when a component changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dms_event_bus.settings import StackSettings

#: Resource-type module -> the service that calls KMS for it (kms:ViaService prefix).
_MODULE_SERVICE = {
    "dynamodb": "dynamodb",
    "kinesis": "kinesis",
    "sqs": "sqs",
    "s3": "s3",
    "lambda": "lambda",
    "dms": "dms",
    "sns": "sns",
    "secretsmanager": "secretsmanager",
}


@dataclass(frozen=True)
class SecretRef:
    """A Secrets Manager secret the stack names, and who reads it."""

    arn: str
    key_path: str
    """Where the stack file names it, e.g. `dms-event-bus:dms.source.secret_arn`."""
    declared_kms_key_arn: str | None = None
    """The key the stack grants its reader kms:Decrypt on (None: no grant beyond the stack key)."""


@dataclass(frozen=True)
class StackNeeds:
    stack: str
    name_prefix: str
    kms_key_arn: str | None
    key_services: frozenset[str] = frozenset()
    """Services that use the stack key on behalf of the stack's roles (kms:ViaService)."""
    key_log_groups: tuple[str, ...] = ()
    """Log groups encrypted with the stack key (CloudWatch Logs must be allowed to use it)."""
    roles: tuple[str, ...] = ()
    """Names of the roles the stack creates for itself (prefixed with the environment)."""
    api_logging: bool = False
    """An API Gateway stage writes access or execution logs: the account's CloudWatch role."""
    dms: bool = False
    reserved_concurrency: dict[str, int] = field(default_factory=dict)
    """Lambda function name -> reserved concurrent executions."""
    alarm_topic_arn: str | None = None
    """An existing topic (alarms.sns_topic_arn); None when the stack creates its own."""
    alarm_publishers: frozenset[str] = frozenset()
    """Service principals that publish to the alarm topic."""
    alarm_names: tuple[str, ...] = ()
    secrets: tuple[SecretRef, ...] = ()
    tag_scoped_alarms: bool = False
    """An alarm's Metrics Insights query filters on resource tags (`tag.<key>`): CloudWatch's
    resource tags on telemetry must be on in the account, or the alarm matches nothing."""
    cloudtrail_rules: tuple[str, ...] = ()
    """EventBridge rules matching `AWS API Call via CloudTrail` events: they fire only when a
    trail logs management (write) events in the region (the adoption trigger)."""
    key_event_rules: tuple[str, ...] = ()
    """EventBridge rules delivering to an SQS queue under the stack key (a target or a DLQ):
    events.amazonaws.com itself must be allowed to use the key by its key policy."""
    trigger_token_secret: str | None = None
    """The adoption trigger's GitHub token secret (read by the deployer at `pulumi up`)."""


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _service_of(type_token: str) -> str | None:
    """`aws:kinesis/firehoseDeliveryStream:...` -> firehose; `aws:iam/...` -> None."""
    parts = type_token.split(":")
    if len(parts) < 3 or parts[0] != "aws":
        return None
    module = parts[1].split("/")[0]
    if module == "kinesis" and "firehose" in parts[1].lower():
        return "firehose"
    return _MODULE_SERVICE.get(module)


def secrets_of(settings: StackSettings) -> tuple[SecretRef, ...]:
    """Every Secrets Manager secret the stack file names."""
    found: list[SecretRef] = []
    if settings.dms is not None:
        source = settings.dms.source
        found.append(SecretRef(source.secret_arn, "dms-event-bus:dms.source.secret_arn",
                               source.secret_kms_key_arn))
    if settings.writeback is not None:
        found.append(SecretRef(settings.writeback.target.secret_arn,
                               "dms-event-bus:writeback.target.secret_arn",
                               settings.encryption.kms_key_arn))
    return tuple(found)


def stack_needs(settings: StackSettings, plan: Any) -> StackNeeds:
    """The account-level needs of a stack from its settings and its offline plan."""
    key = settings.encryption.kms_key_arn
    prefix = settings.name_prefix
    key_services: set[str] = set()
    log_groups: list[str] = []
    roles: list[str] = []
    api_logging = False
    dms = False
    reserved: dict[str, int] = {}
    topic = settings.alarms.sns_topic_arn
    publishers: set[str] = set()
    alarm_names: list[str] = []
    tag_scoped = False
    cloudtrail_rules: list[str] = []
    key_queues: set[str] = set()  # names of SQS queues under the stack key
    event_targets: list[tuple[str, list[str]]] = []  # (rule, queue ARNs it delivers to)
    for res in plan.resources:
        inputs = res.inputs or {}
        type_token: str = res.type
        if type_token == "aws:iam/role:Role":
            name = inputs.get("name")
            if isinstance(name, str) and name.startswith(prefix):
                roles.append(name)
            continue
        if type_token.startswith("aws:iam/") or type_token.startswith("aws:kms/"):
            continue
        uses_key = bool(key) and key in set(_strings(inputs))
        if type_token == "aws:cloudwatch/logGroup:LogGroup":
            if uses_key and isinstance(inputs.get("name"), str):
                log_groups.append(inputs["name"])
        elif uses_key and (service := _service_of(type_token)):
            key_services.add(service)
        if type_token == "aws:apigateway/stage:Stage" and inputs.get("accessLogSettings"):
            api_logging = True
        if type_token == "aws:apigateway/methodSettings:MethodSettings":
            level = str((inputs.get("settings") or {}).get("loggingLevel") or "OFF")
            api_logging = api_logging or level.upper() != "OFF"
        if type_token.startswith("aws:dms/"):
            dms = True
        if type_token == "aws:sqs/queue:Queue" and uses_key and isinstance(inputs.get("name"),
                                                                              str):
            key_queues.add(inputs["name"])
        if type_token == "aws:cloudwatch/eventRule:EventRule" and isinstance(
                inputs.get("name"), str) and _matches_cloudtrail(inputs.get("eventPattern")):
            cloudtrail_rules.append(inputs["name"])
        if type_token == "aws:cloudwatch/eventTarget:EventTarget" and isinstance(
                inputs.get("rule"), str):
            arns = [inputs.get("arn"), (inputs.get("deadLetterConfig") or {}).get("arn")]
            event_targets.append((inputs["rule"], [a for a in arns if isinstance(a, str)
                                                   and a.split(":")[2:3] == ["sqs"]]))
        if type_token == "aws:lambda/function:Function":
            count = inputs.get("reservedConcurrentExecutions")
            if count is not None and float(count) >= 0 and isinstance(inputs.get("name"), str):
                reserved[inputs["name"]] = int(float(count))
        if type_token == "aws:cloudwatch/metricAlarm:MetricAlarm":
            tag_scoped = tag_scoped or any(
                "tag." in str(query.get("expression") or "")
                for query in inputs.get("metricQueries") or [] if isinstance(query, dict))
        if topic and topic in set(_strings(inputs)):
            if type_token == "aws:cloudwatch/metricAlarm:MetricAlarm":
                publishers.add("cloudwatch.amazonaws.com")
                if isinstance(inputs.get("name"), str):
                    alarm_names.append(inputs["name"])
            elif type_token.startswith("aws:cloudwatch/event"):
                publishers.add("events.amazonaws.com")
            elif type_token == "aws:dms/eventSubscription:EventSubscription":
                publishers.add("dms.amazonaws.com")
    return StackNeeds(
        stack=settings.environment,
        name_prefix=prefix,
        kms_key_arn=key,
        key_services=frozenset(key_services),
        key_log_groups=tuple(log_groups),
        roles=tuple(roles),
        api_logging=api_logging,
        dms=dms,
        reserved_concurrency=reserved,
        alarm_topic_arn=topic,
        alarm_publishers=frozenset(publishers),
        alarm_names=tuple(alarm_names),
        secrets=secrets_of(settings),
        tag_scoped_alarms=tag_scoped,
        cloudtrail_rules=tuple(cloudtrail_rules),
        key_event_rules=tuple(sorted({rule for rule, queues in event_targets
                                      if any(_queue_name(q) in key_queues for q in queues)})),
        trigger_token_secret=(settings.adoption.trigger.token_secret_arn
                              if settings.adoption.trigger is not None else None),
    )


def _matches_cloudtrail(pattern: Any) -> bool:
    """An event pattern (JSON) that matches CloudTrail's API-call events."""
    try:
        parsed = json.loads(pattern) if isinstance(pattern, str) else pattern
    except ValueError:
        return False
    if not isinstance(parsed, dict):
        return False
    return "AWS API Call via CloudTrail" in set(_strings(parsed.get("detail-type")))


def _queue_name(arn: str) -> str:
    """`arn:aws:sqs:<region>:<account>:<name>` -> name (the mocks' `...:queue/<name>` too)."""
    return arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def describe(needs: StackNeeds) -> str:
    """One JSON line of what the preflight will check (for --verbose and tests)."""
    return json.dumps(
        {
            "key": needs.kms_key_arn,
            "key_services": sorted(needs.key_services),
            "key_log_groups": list(needs.key_log_groups),
            "roles": list(needs.roles),
            "api_logging": needs.api_logging,
            "dms": needs.dms,
            "reserved_concurrency": needs.reserved_concurrency,
            "alarm_topic": needs.alarm_topic_arn,
            "alarm_publishers": sorted(needs.alarm_publishers),
            "secrets": [s.arn for s in needs.secrets],
            "cloudtrail_rules": list(needs.cloudtrail_rules),
            "key_event_rules": list(needs.key_event_rules),
            "trigger_token_secret": needs.trigger_token_secret,
        }
    )
