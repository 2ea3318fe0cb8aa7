"""Backfill: the Lambda that publishes the rows adopted tables held before their stream was on.

AdoptedTable invokes it once per table (asynchronously) right after enabling the stream; it
fans out one invocation per scan segment and re-invokes itself to continue large tables
(`handlers/backfill.py`). Owns the function, its log group, a least-privilege role (scan
exactly the adopted tables, put on the bus, write overflow objects, invoke itself), the
asynchronous-invoke settings (bounded retries, an encrypted on-failure queue holding the
event to redrive), the recursion setting that lets it continue itself, and two alarms.

Wiring (the function name is needed by the adopted tables before the bus exists, and the
function needs the bus): pass a `pulumi.deferred_output()` as the adopted tables'
`backfill_function_name` and resolve it with `Backfill.ready_function_name` -- the function
name, known only once the function, its asynchronous-invoke settings (retries, DLQ) and its
recursion setting exist, so no adoption starts a backfill that could fail unnoticed or be
stopped as a loop; see docs/adoption.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from dms_event_bus.components.common import check_name_prefix, env_table_patterns
from dms_event_bus.components.kinesis_bus import producer_kms, producer_statements
from dms_event_bus.components.lambda_function import (
    FunctionNames,
    FunctionSpec,
    KmsUse,
    LambdaFunction,
    LambdaOwner,
    Opts,
    Shared,
)
from dms_event_bus.components.lambda_package import ENVELOPE_REQUIREMENTS

TYPE = "dms-event-bus:index:Backfill"

#: Files of the backfill Lambda package (nothing beyond the runtime's boto3).
BACKFILL_MODULES = ["handlers/backfill.py", "handlers/envelope.py", "handlers/bus.py",
                    "handlers/common.py", "handlers/observability.py"]


@dataclass(frozen=True)
class BackfillArgs:
    name_prefix: str
    """Prefix of every physical name, e.g. `dmsbus-dev-`."""
    table_names: Sequence[str]
    """Physical names of the adopted tables it backfills (at least one), each
    `<name_prefix><logical name>`: the role may scan this environment's tables by prefix, so
    the policy does not grow with them."""
    bus_stream_name: pulumi.Input[str]
    """The bus (Kinesis stream) name."""
    bus_stream_arn: pulumi.Input[str]
    """The bus ARN (for the role)."""
    overflow_bucket: pulumi.Input[str]
    """Bucket for rows too large for one bus record."""
    overflow_bucket_arn: pulumi.Input[str]
    """Its ARN (for the role)."""
    memory_mb: int = 512
    """Function memory."""
    timeout_seconds: int = 900
    """Function timeout; the handler hands on to a new invocation well before it."""
    reserve_ms: int = 60_000
    """Time kept for one more page: below it the handler continues in a new invocation."""
    page_items: int = 500
    """Scan page size (500 = one PutRecords call)."""
    max_retry_attempts: int = 2
    """Lambda's retries of a failed asynchronous invocation (0..2)."""
    max_event_age_seconds: int = 6 * 3600
    """Oldest event Lambda still retries (60..21600)."""
    kms_key_arn: str | None = None
    """Customer-managed KMS key; None: AWS-managed keys."""
    alarm_topic_arn: pulumi.Input[str] | None = None
    """SNS topic for the alarms."""
    log_retention_days: int = 30
    """Log retention."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every resource."""

    def __post_init__(self) -> None:
        check_name_prefix("BackfillArgs.name_prefix", self.name_prefix)
        if not self.table_names:
            raise ValueError("BackfillArgs.table_names: expected at least one table, found none")
        off_rule = sorted(
            t for t in self.table_names
            if not t.startswith(self.name_prefix) or "-" in t[len(self.name_prefix):]
        )
        if off_rule:
            raise ValueError(
                f"BackfillArgs.table_names: expected '{self.name_prefix}<logical name>' (no '-' "
                f"after the prefix), found {off_rule}: the backfill's role covers this "
                "environment's tables by that rule only"
            )
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError(f"BackfillArgs.memory_mb: expected 128..10240, found {self.memory_mb}")
        if not 60 <= self.timeout_seconds <= 900:
            raise ValueError(
                f"BackfillArgs.timeout_seconds: expected 60..900, found {self.timeout_seconds}"
            )
        if not 1000 <= self.reserve_ms < self.timeout_seconds * 1000:
            raise ValueError(
                "BackfillArgs.reserve_ms: expected 1000..timeout, found "
                f"{self.reserve_ms} (timeout {self.timeout_seconds}s)"
            )
        if not 1 <= self.page_items <= 10000:
            raise ValueError(f"BackfillArgs.page_items: expected 1..10000, found {self.page_items}")
        if not 0 <= self.max_retry_attempts <= 2:
            raise ValueError(
                f"BackfillArgs.max_retry_attempts: expected 0..2, found {self.max_retry_attempts}"
            )
        if not 60 <= self.max_event_age_seconds <= 21600:
            raise ValueError(
                "BackfillArgs.max_event_age_seconds: expected 60..21600, found "
                f"{self.max_event_age_seconds}"
            )


class Backfill(LambdaOwner[BackfillArgs]):
    """The backfill function and what keeps a failed backfill from going unnoticed."""


    function_name: pulumi.Output[str]
    ready_function_name: pulumi.Output[str]
    """The function name, depending on the function and all its invoke settings."""
    function_arn: pulumi.Output[str]

    def __init__(self, name: str, args: BackfillArgs, opts: Opts = None) -> None:
        super().__init__(TYPE, name, args, opts)
        names = FunctionNames(args.name_prefix, "backfill", base=name,
                              function=f"{name}-function", dlq=f"{name}-dlq")
        self._function_name = names.function_name
        self.backfill = LambdaFunction(
            self,
            names,
            FunctionSpec(
                description="Backfill: rows adopted tables held before their stream, as "
                "snapshots",
                handler="handlers.backfill.handler",
                modules=BACKFILL_MODULES,
                requirements=ENVELOPE_REQUIREMENTS,
                memory_mb=args.memory_mb,
                timeout_seconds=args.timeout_seconds,
                environment={
                    "BUS_STREAM_NAME": args.bus_stream_name,
                    "OVERFLOW_BUCKET": args.overflow_bucket,
                    "BACKFILL_RESERVE_MS": str(args.reserve_ms),
                    "BACKFILL_PAGE_ITEMS": str(args.page_items),
                },
                log_retention_days=args.log_retention_days,
            ),
            Shared(args.kms_key_arn, args.alarm_topic_arn, dict(args.tags)),
            statements=self._statements(),
            kms=self._kms(),
            account=self._where,
        )
        self.function, self.dlq = self.backfill.function, self.backfill.dlq
        self.log_group = self.backfill.log_group
        settings = self._create_invoke_settings()
        self.alarms = self._create_alarms()

        self._outputs(
            function_name=self.function.name,
            ready_function_name=pulumi.Output.all(
                self.function.name, *(r.id for r in settings)
            ).apply(lambda values: str(values[0])),
            function_arn=self.function.arn,
            dlq_url=self.dlq.url,
            dlq_name=self.dlq.name,
        )

    def _statements(self) -> list[dict]:
        args = self._args
        allowed, denied = env_table_patterns(args.name_prefix)
        scan = ["dynamodb:Scan", "dynamodb:DescribeTable"]
        return [
            {
                # this environment's tables by prefix: the policy does not grow with them
                "Sid": "ScanTheAdoptedTables",
                "Effect": "Allow",
                "Action": scan,
                "Resource": [self._where.arn("dynamodb", f"table/{allowed}")],
            },
            {
                # `<prefix>*` also matches tables of an environment `<env>-eu` and IngestApi
                # tables (see components.common.env_table_patterns): never theirs
                "Sid": "NotOtherEnvironmentsTables",
                "Effect": "Deny",
                "Action": scan,
                "Resource": [self._where.arn("dynamodb", f"table/{denied}")],
            },
            *producer_statements(args.bus_stream_arn, args.overflow_bucket_arn),
            {
                "Sid": "ContinueItself",
                "Effect": "Allow",
                "Action": ["lambda:InvokeFunction"],
                "Resource": [self._where.arn("lambda", f"function:{self._function_name}")],
            },
        ]

    def _kms(self) -> list[KmsUse]:
        allowed, denied = env_table_patterns(self._args.name_prefix)
        return [
            KmsUse("TablesKey", ["kms:Decrypt"], "dynamodb", context=[allowed],
                   context_not=[denied]),
            *producer_kms(self._args.bus_stream_arn, self._args.overflow_bucket_arn),
        ]

    def _create_invoke_settings(self) -> list[pulumi.CustomResource]:
        args = self._args
        child = pulumi.ResourceOptions(parent=self)
        invoke_config = aws.lambda_.FunctionEventInvokeConfig(
            f"{self._name}-async",
            function_name=self.function.name,
            maximum_retry_attempts=args.max_retry_attempts,
            maximum_event_age_in_seconds=args.max_event_age_seconds,
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                    destination=self.dlq.arn
                )
            ),
            opts=child,
        )
        # The handler continues a large table by invoking itself: an intended loop.
        recursion = aws.lambda_.FunctionRecursionConfig(
            f"{self._name}-recursion",
            function_name=self.function.name,
            recursive_loop="Allow",
            opts=child,
        )
        return [invoke_config, recursion]

    def _create_alarms(self) -> list[aws.cloudwatch.MetricAlarm]:
        return [
            self.backfill.errors_alarm(
                "A backfill invocation failed; Lambda retries it, then the event goes to the "
                "backfill DLQ (redrive: invoke the function asynchronously with the message's "
                "requestPayload)."
            ),
            self.backfill.dlq_depth_alarm(
                "A backfill event gave up after its retries: some rows of an adopted table are "
                "not on the bus yet. Fix the cause, then invoke the function asynchronously "
                "with the message's requestPayload (docs/adoption.md).",
                0,
                comparison="GreaterThanThreshold",
            ),
        ]
