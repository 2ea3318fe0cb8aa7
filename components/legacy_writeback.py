"""LegacyWriteback: changes of chosen tables' streams written back to the legacy database.

Owns the writeback Lambda (in the VPC: subnets and security groups from config), its
least-privilege role, an encrypted SQS DLQ, one DynamoDB Streams event source mapping per
table (the shared `stream_mapping`: bisect, bounded retries and record age,
ReportBatchItemFailures, on-failure DLQ, TRIM_HORIZON) and the alarms. The handler
(`handlers/writeback.py`) is version-guarded and loop-free; see docs/writeback.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from dms_event_bus.components.lambda_function import (
    FunctionNames,
    FunctionSpec,
    KmsUse,
    LambdaFunction,
    LambdaOwner,
    Opts,
    Shared,
    VpcPlacement,
)
from dms_event_bus.components.lambda_package import ENVELOPE_REQUIREMENTS
from dms_event_bus.components.stream_mapping import MappingSettings

TYPE = "dms-event-bus:index:LegacyWriteback"

#: Files of the writeback Lambda package (the handler writes map, list and set values with
#: `handlers.envelope.value_json`, the project's one DynamoDB-JSON -> JSON writer).
WRITEBACK_MODULES = ["handlers/writeback.py", "handlers/writeback_sql.py",
                     "handlers/envelope.py", "handlers/common.py", "handlers/observability.py"]
#: Driver bundled for each direct target, pinned (the Data API needs only boto3). PostgreSQL:
#: psycopg 3 with its binary wheel (libpq inside; the runtime has none), cp314 arm64/x86_64.
DRIVERS = {"postgres": ["psycopg==3.3.9", "psycopg-binary==3.3.9"],
           "mysql": ["PyMySQL==1.2.4"], "data_api": []}
#: Everything the package bundles per target: its driver and the envelope writer's orjson.
WRITEBACK_REQUIREMENTS = {kind: [*drivers, *ENVELOPE_REQUIREMENTS]
                          for kind, drivers in DRIVERS.items()}
#: Lambda's limit on the total size of a function's environment variables.
ENV_LIMIT_BYTES = 4096
#: The handler's own metrics (embedded metric format).
METRICS_NAMESPACE = "DmsEventBus/Writeback"


@dataclass(frozen=True)
class WritebackTable:
    """One DynamoDB table whose stream is written back."""

    logical_name: str
    """Logical name (resource names, `source` in the handler config)."""
    table_name: str
    """Physical DynamoDB table name: its key under `handler_config["tables"]`."""
    table_arn: pulumi.Input[str]
    """Table ARN: the handler's status UpdateItem is allowed on exactly this table."""
    stream_arn: pulumi.Input[str]
    """The table's stream ARN (NEW_AND_OLD_IMAGES)."""
    key_attributes: Sequence[str]
    """The items' key attributes (the status UpdateItem names them)."""
    version_attribute: str
    """The items' version attribute (the status UpdateItem is conditional on it)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """Resources the mapping waits for (e.g. the table, its adoption)."""


@dataclass(frozen=True)
class WritebackTarget:
    """The legacy database the function writes to."""

    kind: Literal["data_api", "postgres", "mysql"]
    """RDS Data API, or a direct PostgreSQL / MySQL connection (its driver is bundled)."""
    secret_arn: str
    """Secrets Manager secret the function signs in with (read: exactly it)."""
    cluster_arn: str | None = None
    """Aurora cluster ARN (`data_api` only: rds-data on exactly it)."""
    endpoint: str | None = None
    """`host:port` of a direct target (named in the function's description)."""


@dataclass(frozen=True)
class LegacyWritebackArgs:
    name_prefix: str
    """Prefix of every physical name, e.g. `dmsbus-dev-`."""
    target: WritebackTarget
    """The legacy database."""
    subnet_ids: Sequence[str]
    """Subnets the function's network interfaces are created in (they reach the database);
    the role may create and manage network interfaces in exactly these."""
    security_group_ids: Sequence[str]
    """Security groups of those network interfaces."""
    tables: Sequence[WritebackTable]
    """The tables whose streams are written back (at least one)."""
    handler_config: Mapping[str, Any]
    """The handler's WRITEBACK_CONFIG, plain JSON data (`target`, `contract`, `tables` keyed
    by each table's `table_name`); `settings.component_args.legacy_writeback_args` renders
    it from the validated config."""
    status_attributes: Sequence[str] = ("status", "status_detail")
    """Item attributes the handler writes a change's status into."""
    memory_mb: int = 512
    """Function memory (128..10240)."""
    timeout_seconds: int = 60
    """Function timeout (3..900)."""
    reserved_concurrency: int | None = None
    """Cap on concurrent writers to the database; None: unreserved."""
    log_retention_days: int = 30
    """Log retention."""
    mapping: MappingSettings = field(default_factory=MappingSettings)
    """Stream mapping tuning (batch size, window, retries, record age, parallelization)."""
    alarm_topic_arn: pulumi.Input[str] | None = None
    """SNS topic for alarms (None: alarms without actions)."""
    kms_key_arn: str | None = None
    """Customer-managed KMS key (DLQ, logs, environment); None: AWS-managed keys."""
    iterator_age_ms: int = 300_000
    """IteratorAge alarm threshold."""
    dlq_depth: int = 1
    """DLQ depth alarm threshold."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every resource."""

    def __post_init__(self) -> None:
        field_ = "LegacyWritebackArgs."
        if not self.name_prefix or not self.name_prefix.endswith("-"):
            raise ValueError(f"{field_}name_prefix: expected e.g. 'dmsbus-dev-', "
                             f"found {self.name_prefix!r}")
        if (self.target.kind == "data_api") is not bool(self.target.cluster_arn):
            raise ValueError(f"{field_}target.cluster_arn: expected a cluster ARN for the Data "
                             f"API and none otherwise, found {self.target.cluster_arn!r} for "
                             f"{self.target.kind!r}")
        for name, found in (("subnet_ids", self.subnet_ids),
                            ("security_group_ids", self.security_group_ids)):
            if not found:
                raise ValueError(f"{field_}{name}: expected at least one, found none")
        if not self.tables:
            raise ValueError(f"{field_}tables: expected at least one table, found none")
        given = [t.logical_name for t in self.tables]
        dupes = sorted({n for n in given if given.count(n) > 1})
        if dupes:
            raise ValueError(f"{field_}tables: expected each table once, found {dupes} twice")
        configured = sorted(self.handler_config.get("tables", {}))
        if configured != sorted(t.table_name for t in self.tables):
            raise ValueError(
                f"{field_}handler_config: expected a `tables` entry per table "
                f"{sorted(t.table_name for t in self.tables)}, found {configured}"
            )
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError(f"{field_}memory_mb: expected 128..10240, found {self.memory_mb}")
        if not 3 <= self.timeout_seconds <= 900:
            raise ValueError(f"{field_}timeout_seconds: expected 3..900, found "
                             f"{self.timeout_seconds}")
        size = len(self.handler_config_json()) + len("WRITEBACK_CONFIG")
        if size > ENV_LIMIT_BYTES:
            raise ValueError(
                f"{field_}handler_config: the handler config is {size} bytes, more than "
                f"Lambda's {ENV_LIMIT_BYTES}-byte environment limit (map fewer columns per "
                "table or split the tables over two LegacyWriteback components)"
            )

    def handler_config_json(self) -> str:
        return json.dumps(self.handler_config, separators=(",", ":"), sort_keys=True)


class LegacyWriteback(LambdaOwner[LegacyWritebackArgs]):
    """The writeback Lambda on the chosen streams, its DLQ and alarms."""


    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    dlq_arn: pulumi.Output[str]

    def __init__(self, name: str, args: LegacyWritebackArgs, opts: Opts = None) -> None:
        super().__init__(TYPE, name, args, opts)
        self.writeback = self._create_function()
        self.function, self.dlq, self.role = (
            self.writeback.function, self.writeback.dlq, self.writeback.role)
        self.log_group = self.writeback.log_group
        self.mappings = {
            table.logical_name: self.writeback.stream_mapping(
                f"{name}-{table.logical_name}-mapping", table.stream_arn, args.mapping,
                table.depends_on)
            for table in args.tables
        }
        self.alarms = self._create_alarms()

        self._outputs(
            function_name=self.function.name,
            function_arn=self.function.arn,
            role_arn=self.role.arn,
            dlq_url=self.dlq.url,
            dlq_arn=self.dlq.arn,
            dlq_name=self.dlq.name,
        )

    # -- the role -----------------------------------------------------------------------
    def _arn(self, service: str, resource: str) -> pulumi.Output[str]:
        return self._where.arn(service, resource)

    def _statements(self) -> list[dict[str, Any]]:
        args = self._args
        tables = list(args.tables)
        status_attributes = sorted(
            {*args.status_attributes}
            | {a for t in tables for a in t.key_attributes}
            | {t.version_attribute for t in tables}
        )
        return [
            {
                "Sid": "ReadTheChosenStreams",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                ],
                "Resource": [t.stream_arn for t in tables],
            },
            {
                "Sid": "ListTheChosenStreams",
                "Effect": "Allow",
                "Action": ["dynamodb:ListStreams"],
                "Resource": [
                    self._arn("dynamodb", f"table/{t.table_name}/stream/*") for t in tables
                ],
            },
            {
                # status/status_detail only, conditional on the version: see set_status()
                "Sid": "SetTheItemStatus",
                "Effect": "Allow",
                "Action": ["dynamodb:UpdateItem"],
                "Resource": [t.table_arn for t in tables],
                "Condition": {
                    "ForAllValues:StringEquals": {"dynamodb:Attributes": status_attributes},
                    "StringEqualsIfExists": {"dynamodb:ReturnValues": "NONE"},
                },
            },
            {
                "Sid": "ReadTheDatabaseSecret",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": [args.target.secret_arn],
            },
        ]

    def _vpc_and_target_statements(self) -> list[dict[str, Any]]:
        args = self._args
        target = args.target
        statements: list[dict[str, Any]] = [
            # What AWSLambdaVPCAccessExecutionRole grants, scoped where EC2 allows it:
            # Describe* has no resource-level permissions.
            {
                "Sid": "VpcDescribe",
                "Effect": "Allow",
                "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
                "Resource": ["*"],
            },
            {
                # a new interface names its subnet and security groups: exactly these
                "Sid": "VpcNetworkInterfaces",
                "Effect": "Allow",
                "Action": ["ec2:CreateNetworkInterface"],
                "Resource": [
                    *[self._arn("ec2", f"subnet/{s}") for s in args.subnet_ids],
                    *[self._arn("ec2", f"security-group/{g}") for g in args.security_group_ids],
                ],
            },
            {
                # the interfaces themselves: only in these subnets (`ec2:Subnet` is the
                # interface's subnet ARN), never another environment's or anyone's in the
                # account
                "Sid": "VpcNetworkInterfaceLifecycle",
                "Effect": "Allow",
                "Action": [
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                "Resource": [self._arn("ec2", "network-interface/*")],
                "Condition": {
                    "ArnEquals": {
                        "ec2:Subnet": [self._arn("ec2", f"subnet/{s}") for s in args.subnet_ids]
                    }
                },
            },
        ]
        if target.kind == "data_api":
            statements.append(
                {
                    "Sid": "RdsDataApiOnTheCluster",
                    "Effect": "Allow",
                    "Action": [
                        "rds-data:ExecuteStatement",
                        "rds-data:BatchExecuteStatement",
                        "rds-data:BeginTransaction",
                        "rds-data:CommitTransaction",
                        "rds-data:RollbackTransaction",
                    ],
                    "Resource": [target.cluster_arn],
                }
            )
        return statements

    def _kms(self) -> list[KmsUse]:
        # the chosen tables' streams and the status updates on their items
        return [KmsUse("TablesKey", ["kms:Decrypt", "kms:GenerateDataKey"], "dynamodb",
                       context=sorted(t.table_name for t in self._args.tables))]

    # -- the function -------------------------------------------------------------------
    def _create_function(self) -> LambdaFunction:
        args = self._args
        target = args.target
        kind = target.kind
        description = {
            "data_api": "Writeback to the legacy database through the RDS Data API",
            "postgres": "Writeback to the legacy PostgreSQL database (psycopg 3)",
            "mysql": "Writeback to the legacy MySQL/MariaDB database (PyMySQL)",
        }[kind]
        if target.endpoint:
            description += f" at {target.endpoint}"
        return LambdaFunction(
            self,
            FunctionNames(args.name_prefix, "writeback", base=self._name,
                          function=f"{self._name}-function", dlq=f"{self._name}-dlq"),
            FunctionSpec(
                description=description,
                handler="handlers.writeback.handler",
                modules=WRITEBACK_MODULES,
                requirements=WRITEBACK_REQUIREMENTS[kind],
                memory_mb=args.memory_mb,
                timeout_seconds=args.timeout_seconds,
                environment={"WRITEBACK_CONFIG": args.handler_config_json()},
                log_retention_days=args.log_retention_days,
                reserved_concurrency=args.reserved_concurrency,
                vpc=VpcPlacement(args.subnet_ids, args.security_group_ids),
            ),
            Shared(args.kms_key_arn, args.alarm_topic_arn, dict(args.tags)),
            statements=self._statements(),
            more_statements=self._vpc_and_target_statements(),
            kms=self._kms(),
            account=self._where,
        )

    # -- alarms -------------------------------------------------------------------------
    def _create_alarms(self) -> list[aws.cloudwatch.MetricAlarm]:
        args = self._args
        writeback = self.writeback
        return [
            *writeback.stream_alarms(
                errors=(
                    "Writeback invocations fail as a whole (database unreachable, credentials, "
                    "throttling): the batch is retried, then goes to the DLQ."
                ),
                iterator_age=(
                    "Changes wait too long before reaching the legacy database (writeback behind "
                    "or retrying a failing batch)."
                ),
                threshold_ms=args.iterator_age_ms,
            ),
            writeback.alarm(
                "poison",
                description="A record the legacy database rejects (type mismatch, missing "
                "key): its item has status 'error' with the reason; it ends in the DLQ.",
                namespace=METRICS_NAMESPACE,
                metric="Poison",
                dimensions={"Function": self.function.name},
            ),
            writeback.alarm(
                "conflicts",
                description="The legacy database refused writes: its row is newer, or a "
                "foreign row holds the key. The items have status 'conflict' with the legacy "
                "version and why; nothing is retried (docs/runbook.md).",
                namespace=METRICS_NAMESPACE,
                metric="Conflicts",
                dimensions={"Function": self.function.name},
            ),
            writeback.alarm(
                "schema-not-ready",
                description="A legacy table or column the mapping names is missing (deployed "
                "before the legacy migration?): whole batches are retried, then go to the DLQ "
                "when their records age out. Run the migration or fix the mapping.",
                namespace=METRICS_NAMESPACE,
                metric="SchemaNotReady",
                dimensions={"Function": self.function.name},
            ),
            writeback.dlq_depth_alarm(
                "Writeback batches that were given up on are in the DLQ (stream positions, not "
                "data): read the item, fix the cause, write it again.",
                args.dlq_depth,
            ),
        ]
