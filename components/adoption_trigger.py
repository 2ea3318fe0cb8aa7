"""AdoptionTrigger: DMS creates a table of this environment -> the adopt workflow runs.

A table DMS creates after a deploy is adopted by the next `pulumi up` (docs/adoption.md). The
repository's adopt workflow runs that `pulumi up` on a schedule and on a `repository_dispatch`
of type `adopt-tables`; this component sends the dispatch as soon as the table exists:

    DMS CreateTable -> CloudTrail -> EventBridge rule (this environment's tables only)
      -> API destination: POST https://api.github.com/repos/<owner>/<repo>/dispatches
         {"event_type":"adopt-tables","client_payload":{"environment":"<env>"}}
      -> failures retried (retry policy), then kept in an SQS DLQ (alarmed)

The rule matches only this environment's waypoint tables. A prefix alone is not enough: the
tables of an environment whose name starts like this one's (`dev-eu` for `dev`) start with
`dmsbus-dev-` too. Every waypoint table is `<prefix><logical>` and a logical name has no '-'
(components.common.env_table_patterns), so the rule wants the prefix AND not
`<prefix>*-*`. An event pattern cannot put two conditions on one field (a field's list of
conditions is an OR), but CloudTrail's CreateTable event names the table twice: in the request
(`requestParameters.tableName`) and, for a call that succeeded, in the response
(`responseElements.tableDescription.tableName`). The prefix is matched on the first,
`anything-but` `wildcard` `<prefix>*-*` on the second; `errorCode` must be absent (a failed
CreateTable created nothing). This also keeps out the environment's IngestApi tables
(`<prefix>ingest-<entity>`, owned by Pulumi).

The GitHub token comes from a Secrets Manager secret (its ARN is config): read at `pulumi up`,
handed to the EventBridge connection as a Pulumi secret (encrypted in the state), stored by
EventBridge in a secret of its own. The connection sends it as `Authorization: Bearer <token>`.

The DLQ is the stack's customer-managed key's (SSE-KMS) when the stack has one -- that key's
policy must then let `events.amazonaws.com` use it (docs/adoption.md) -- and SQS-managed SSE
otherwise: the AWS-managed `aws/sqs` key cannot be granted to EventBridge, whose deliveries to
a queue encrypted with it fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from dms_event_bus.components.common import (
    check_name_prefix,
    env_table_patterns,
    metric_alarm,
    policy_json,
    service_role,
)

TYPE = "dms-event-bus:index:AdoptionTrigger"

#: The `repository_dispatch` event type the adopt workflow listens to.
EVENT_TYPE = "adopt-tables"
#: GitHub's REST API (github.com; GitHub Enterprise Server has another host).
GITHUB_API = "https://api.github.com"
#: Headers GitHub asks every REST request to send (the token goes in the connection).
GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
#: The only action the target role may use, on the one API destination.
INVOKE_ACTION = "events:InvokeApiDestination"
#: EventBridge's limits of a target's retry policy.
MAX_EVENT_AGE_RANGE = (60, 86400)
MAX_RETRY_ATTEMPTS_RANGE = (0, 185)
#: EventBridge's limits of an API destination's invocation rate.
RATE_RANGE = (1, 300)

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
_REPOSITORY = re.compile(rf"{_OWNER}/[A-Za-z0-9._-]{{1,100}}")


def event_pattern(name_prefix: str) -> dict[str, Any]:
    """The rule's pattern: a successful CreateTable of one of this environment's waypoint
    tables (`<prefix><logical>`), never of another environment's (see the module doc)."""
    _allowed, denied = env_table_patterns(name_prefix)
    return {
        "source": ["aws.dynamodb"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["dynamodb.amazonaws.com"],
            "eventName": ["CreateTable"],
            "errorCode": [{"exists": False}],
            "requestParameters": {"tableName": [{"prefix": name_prefix}]},
            "responseElements": {
                "tableDescription": {"tableName": [{"anything-but": {"wildcard": denied}}]}
            },
        },
    }


def dispatch_payload(environment: str) -> dict[str, Any]:
    """The body GitHub's dispatch endpoint gets: the adopt workflow's contract."""
    return {"event_type": EVENT_TYPE, "client_payload": {"environment": environment}}


def input_template(environment: str) -> str:
    """The target's input transformer template (compact JSON, no placeholders: the body is
    the same for every table; the workflow discovers which tables are new)."""
    return json.dumps(dispatch_payload(environment), separators=(",", ":"))


def dispatch_url(repository: str) -> str:
    return f"{GITHUB_API}/repos/{repository}/dispatches"


@dataclass(frozen=True)
class AdoptionTriggerArgs:
    name_prefix: str
    """The environment's name prefix (`dmsbus-<env>-`): which tables, and physical names."""
    environment: str
    """The environment's name, sent as `client_payload.environment`."""
    repository: str
    """`owner/name` of the GitHub repository whose adopt workflow is dispatched."""
    token_secret_arn: str
    """ARN of the Secrets Manager secret whose SecretString is the GitHub token."""
    kms_key_arn: str | None = None
    """Customer-managed key of the DLQ (its policy lets EventBridge use it); None: SQS-managed
    SSE."""
    alarm_topic_arn: pulumi.Input[str] | None = None
    """Topic notified on ALARM and OK; None: no action."""
    max_event_age_seconds: int = 3600
    """How long EventBridge retries one dispatch (60..86400)."""
    max_retry_attempts: int = 185
    """Most retries of one dispatch (0..185)."""
    invocation_rate_per_second: int = 1
    """Most dispatches per second (1..300)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every resource."""

    def __post_init__(self) -> None:
        check_name_prefix("AdoptionTriggerArgs.name_prefix", self.name_prefix)
        if self.name_prefix != f"dmsbus-{self.environment}-":
            raise ValueError(
                "AdoptionTriggerArgs.environment: expected the environment of the prefix "
                f"{self.name_prefix!r}, found {self.environment!r}"
            )
        if not _REPOSITORY.fullmatch(self.repository) or self.repository.endswith(("/.", "/..")):
            raise ValueError(
                "AdoptionTriggerArgs.repository: expected 'owner/name' of a GitHub repository, "
                f"found {self.repository!r}"
            )
        if not re.fullmatch(
            r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+", self.token_secret_arn
        ):
            raise ValueError(  # the value is not shown: it may be a pasted token
                "AdoptionTriggerArgs.token_secret_arn: expected a Secrets Manager secret ARN "
                f"(arn:aws:secretsmanager:...), found a {len(self.token_secret_arn)}-character "
                "value that is not one"
            )
        for name, value, (low, high) in (
            ("max_event_age_seconds", self.max_event_age_seconds, MAX_EVENT_AGE_RANGE),
            ("max_retry_attempts", self.max_retry_attempts, MAX_RETRY_ATTEMPTS_RANGE),
            ("invocation_rate_per_second", self.invocation_rate_per_second, RATE_RANGE),
        ):
            if not low <= value <= high:
                raise ValueError(
                    f"AdoptionTriggerArgs.{name}: expected {low}..{high}, found {value}"
                )


def bearer(secret_string: str | None, secret_arn: str) -> str:
    """The Authorization header's value; an empty secret is an error at `pulumi up`."""
    token = (secret_string or "").strip()
    if not token:
        raise ValueError(
            f"adoption.trigger.token_secret_arn: the secret {secret_arn} holds no SecretString "
            "(put the GitHub token in it as plain text)"
        )
    return f"Bearer {token}"


class AdoptionTrigger(pulumi.ComponentResource):
    """EventBridge rule on this environment's CreateTable -> GitHub repository dispatch."""

    rule_name: pulumi.Output[str]
    api_destination_arn: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    dlq_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: AdoptionTriggerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._args = args
        self._tags = dict(args.tags)
        self._child = pulumi.ResourceOptions(parent=self)

        self.connection = self._create_connection()
        self.destination = aws.cloudwatch.EventApiDestination(
            f"{name}-destination",
            name=f"{args.name_prefix}github-dispatch",
            description=f"GitHub repository dispatch of {args.repository} ({EVENT_TYPE})",
            connection_arn=self.connection.arn,
            invocation_endpoint=dispatch_url(args.repository),
            http_method="POST",
            invocation_rate_limit_per_second=args.invocation_rate_per_second,
            opts=self._child,
        )
        self.rule = aws.cloudwatch.EventRule(
            f"{name}-rule",
            name=f"{args.name_prefix}table-created",
            description=f"DMS created a waypoint table {args.name_prefix}<logical>: dispatch "
            "the adopt workflow",
            event_pattern=json.dumps(event_pattern(args.name_prefix), sort_keys=True),
            state="ENABLED",
            tags=self._tags,
            opts=self._child,
        )
        self.dlq = self._create_dlq()
        self.role, self.policy = service_role(
            f"{name}-target",
            role_name=f"{args.name_prefix}adoption-trigger",
            service="events.amazonaws.com",
            statements=[
                {
                    "Sid": "DispatchTheAdoptWorkflow",
                    "Effect": "Allow",
                    "Action": [INVOKE_ACTION],
                    "Resource": [self.destination.arn],
                }
            ],
            parent=self,
            tags=self._tags,
        )
        self.target = aws.cloudwatch.EventTarget(
            f"{name}-target",
            rule=self.rule.name,
            target_id="github-dispatch",
            arn=self.destination.arn,
            role_arn=self.role.arn,
            input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_template=input_template(args.environment),
            ),
            http_target=aws.cloudwatch.EventTargetHttpTargetArgs(
                header_parameters=dict(GITHUB_HEADERS),
            ),
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=args.max_event_age_seconds,
                maximum_retry_attempts=args.max_retry_attempts,
            ),
            dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=self.dlq.arn),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy, self.dlq_policy]),
        )
        self.alarms = self._create_alarms()

        self.rule_name = self.rule.name
        self.api_destination_arn = self.destination.arn
        self.dlq_url = self.dlq.url
        self.dlq_name = self.dlq.name
        self.register_outputs(
            {
                "rule_name": self.rule_name,
                "api_destination_arn": self.api_destination_arn,
                "dlq_url": self.dlq_url,
                "dlq_name": self.dlq_name,
            }
        )

    # -- the connection: where the token lives -------------------------------------------
    def _create_connection(self) -> aws.cloudwatch.EventConnection:
        args = self._args
        secret = aws.secretsmanager.get_secret_version_output(
            secret_id=args.token_secret_arn, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        authorization: pulumi.Output[str] = pulumi.Output.secret(
            secret.secret_string.apply(lambda s: bearer(s, args.token_secret_arn))
        )
        return aws.cloudwatch.EventConnection(
            f"{self._name}-connection",
            name=f"{args.name_prefix}github",
            description=f"GitHub token from {args.token_secret_arn}",
            authorization_type="API_KEY",
            auth_parameters=aws.cloudwatch.EventConnectionAuthParametersArgs(
                api_key=aws.cloudwatch.EventConnectionAuthParametersApiKeyArgs(
                    key="Authorization", value=authorization
                ),
            ),
            opts=self._child,
        )

    # -- failed deliveries ----------------------------------------------------------------
    def _create_dlq(self) -> aws.sqs.Queue:
        args = self._args
        queue = aws.sqs.Queue(
            f"{self._name}-dlq",
            name=f"{args.name_prefix}adoption-trigger-dlq",
            # the customer key (its policy lets EventBridge use it), else SQS-managed SSE:
            # EventBridge cannot write to a queue under the AWS-managed aws/sqs key
            kms_master_key_id=args.kms_key_arn,
            kms_data_key_reuse_period_seconds=300 if args.kms_key_arn else None,
            sqs_managed_sse_enabled=None if args.kms_key_arn else True,
            message_retention_seconds=14 * 24 * 3600,
            tags=self._tags,
            opts=self._child,
        )
        self.dlq_policy = aws.sqs.QueuePolicy(
            f"{self._name}-dlq-policy",
            queue_url=queue.url,
            policy=policy_json(
                [
                    {
                        "Sid": "TheRuleKeepsFailedDispatches",
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": queue.arn,
                        "Condition": {"ArnEquals": {"aws:SourceArn": self.rule.arn}},
                    }
                ]
            ),
            opts=self._child,
        )
        return queue

    def _create_alarms(self) -> list[aws.cloudwatch.MetricAlarm]:
        args = self._args
        return [
            metric_alarm(
                f"{self._name}-dlq-depth",
                alarm_name=f"{args.name_prefix}adoption-trigger-dlq-depth",
                description="A dispatch of the adopt workflow failed after its retries (GitHub "
                "refused it: token expired or without access, rate limit, repository "
                "renamed): new tables wait for the workflow's schedule. Read the message's "
                "ERROR_CODE / ERROR_MESSAGE attributes, fix, then run the workflow by hand "
                "(docs/adoption.md).",
                namespace="AWS/SQS",
                metric="ApproximateNumberOfMessagesVisible",
                dimensions={"QueueName": self.dlq.name},
                statistic="Maximum",
                threshold=1,
                comparison="GreaterThanOrEqualToThreshold",
                topic_arn=args.alarm_topic_arn,
                parent=self,
                tags=self._tags,
            ),
            metric_alarm(
                f"{self._name}-dlq-failed",
                alarm_name=f"{args.name_prefix}adoption-trigger-dlq-failed",
                description="EventBridge could not put a failed dispatch into the trigger's DLQ "
                "(queue policy, or the DLQ's KMS key policy does not let events.amazonaws.com "
                "use the key): the dispatch is lost; new tables wait for the schedule.",
                namespace="AWS/Events",
                metric="InvocationsFailedToBeSentToDlq",
                dimensions={"RuleName": self.rule.name},
                threshold=0,
                topic_arn=args.alarm_topic_arn,
                parent=self,
                tags=self._tags,
            ),
        ]
