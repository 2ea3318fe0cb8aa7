"""DmsSource: change data capture from the legacy database into the waypoint tables.

Declares the replication capacity (a replication instance, or a DMS Serverless replication
config), its network (subnet group, security group: never public), the IAM roles (DynamoDB
target access scoped to this environment's name prefix, Secrets Manager access for the source
credentials), the source endpoint (credentials only from Secrets Manager, TLS by default), the
DynamoDB target endpoint, the full-load-and-CDC task with generated table mappings and task
settings, the event notifications and the latency / liveness alarms. The account-wide
dms-vpc-role / dms-cloudwatch-logs-role are not part of any stack: they exist before it
(`settings.dms.BOOTSTRAP_COMMAND` creates them once per account).

The table mappings and task settings are pure functions (`build_table_mappings`,
`build_task_settings`) so they are tested directly as well as through the component.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from dms_event_bus.components.common import (
    check_name_prefix,
    env_table_patterns,
    kms_grant,
    metric_alarm,
    policy_json,
)

TYPE = "dms-event-bus:index:DmsSource"

#: DynamoDB tables DMS itself writes to on a DynamoDB target (exceptions of full load / apply).
DMS_CONTROL_TABLES = ("awsdms_apply_exceptions", "awsdms_full_load_exceptions")
#: What the target role may do to DMS's exception tables: create them and append to them.
#: Their names are fixed by DMS for the whole account and region (a DynamoDB target has no
#: control schema or prefix to put them under), so every environment's task writes the same
#: two tables: no DeleteTable and no DeleteItem, or one environment could drop or empty the
#: records of another's failed changes (docs/dms.md, IAM).
CONTROL_TABLE_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:CreateTable",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
)
#: What the target role may do to this environment's tables (never DeleteTable). CreateTable:
#: DMS creates the tables of wildcard selections itself.
TABLE_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:CreateTable",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:GetItem",
)
#: Capacity DMS gives each DynamoDB table it creates (wildcard tables, before adoption):
#: 200 RCU, and 200 WCU per parallel load thread (the AWS DMS guide, DynamoDB target).
DMS_DEFAULT_RCU = 200
DMS_DEFAULT_WCU = 200
#: The DMS control table apply errors are written to with `on_apply_error: exceptions_table`.
APPLY_EXCEPTIONS_TABLE = "awsdms_apply_exceptions"
#: ErrorBehavior policy per `task.on_data_error` / `task.on_apply_error`.
ERROR_POLICY = {
    "stop_task": "STOP_TASK",
    "exceptions_table": "LOG_ERROR",
}
#: Task log components: source reads, target writes, the task itself.
LOG_COMPONENTS = (
    "SOURCE_UNLOAD",
    "SOURCE_CAPTURE",
    "TARGET_LOAD",
    "TARGET_APPLY",
    "TASK_MANAGER",
)


# -- args: plain values -----------------------------------------------------------------


@dataclass(frozen=True)
class DmsTable:
    """One declared table as DMS reads and writes it (the settings checked it: names are
    plain source names, the keys fit the source primary key)."""

    schema_name: str
    """The source schema."""
    table_name: str
    """The source table."""
    partition_key: str
    """The target table's partition key attribute."""
    sort_key: str | None = None
    """The target table's sort key attribute, if any."""
    primary_key: tuple[str, ...] | None = None
    """The source primary key columns, when declared (a longer one is concatenated)."""
    key_separator: str = "|"
    """Separator of a concatenated key's column values."""
    exclude_columns: tuple[str, ...] = ()
    """Columns not copied to DynamoDB."""


@dataclass(frozen=True)
class DmsWildcard:
    """Tables selected by pattern; DMS creates their DynamoDB tables at runtime."""

    schema_name: str
    table_pattern: str
    exclude: tuple[str, ...] = ()
    table_prefix: str = ""


@dataclass(frozen=True)
class DmsInstance:
    """A provisioned replication instance."""

    instance_class: str
    allocated_storage_gb: int
    multi_az: bool = False
    engine_version: str | None = None
    auto_minor_version_upgrade: bool = True
    preferred_maintenance_window: str | None = None


@dataclass(frozen=True)
class DmsServerless:
    """DMS Serverless capacity (DCU range)."""

    min_capacity_units: int
    max_capacity_units: int
    multi_az: bool = False
    preferred_maintenance_window: str | None = None


@dataclass(frozen=True)
class DmsNetwork:
    """Where replication runs, and what its security group may reach."""

    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    https_egress_cidrs: Sequence[str]
    source_cidrs: Sequence[str] = ()
    source_security_group_id: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class DmsEndpoint:
    """The source endpoint: credentials only from the secret."""

    engine: str
    port: int
    """The source port (the security group's egress to the database)."""
    secret_arn: pulumi.Input[str]
    database: str | None = None
    secret_kms_key_arn: pulumi.Input[str] | None = None
    ssl_mode: str = "require"
    certificate_arn: pulumi.Input[str] | None = None
    slot_name: str | None = None
    extra_connection_attributes: str | None = None
    """Engine settings pulumi-aws has no typed block for (SQL Server's `safeguardPolicy`,
    `readBackupOnly`, ...), as DMS's `name=value;...` text."""


@dataclass(frozen=True)
class DmsTask:
    """The full-load-and-CDC task's settings (`lob_mode` already resolved per engine)."""

    start: bool
    lob_mode: Literal["limited", "full"]
    max_full_load_subtasks: int
    parallel_load_threads: int
    commit_rate: int
    lob_max_size_kb: int
    lob_chunk_size_kb: int
    on_data_error: Literal["stop_task"]
    on_apply_error: Literal["stop_task", "exceptions_table"]
    log_severity: str
    """A DMS logger severity (LOGGER_SEVERITY_DEFAULT, ...)."""
    log_retention_days: int


@dataclass(frozen=True)
class DmsAlarms:
    """Latency and liveness alarm thresholds."""

    cdc_latency_source_seconds: int
    cdc_latency_target_seconds: int
    evaluation_minutes: int
    not_reporting_minutes: int


# -- pure builders ------------------------------------------------------------------------


def build_table_mappings(
    tables: Mapping[str, DmsTable],
    wildcards: Sequence[DmsWildcard],
    name_prefix: str,
) -> dict[str, Any]:
    """The DMS table-mapping document for the declared tables and the wildcards.

    - one `selection` include per declared table (exact schema + table, `_` escaped as
      `[_]`: DMS reads a bare `_` as a one-character wildcard);
    - one `object-mapping` rule `map-record-to-record` per declared table: target table
      `<name_prefix><logical>` (the table StreamedTable created), partition/sort key =
      the declared key columns (or one string key DMS concatenates from a longer source
      key, `concatenated_key_template`), excluded columns left out;
    - per wildcard: a `selection` include (schema + pattern), one `selection` exclude per
      excluded pattern, and `transformation` rules `convert-lowercase` + `add-prefix`
      (`<name_prefix><table_prefix>`), so DMS names the tables it creates at runtime
      `<name_prefix><table_prefix><lowercased source table>` — the names adoption expects.

    The inputs are checked where they are made (`settings.component_args.dms_source_args`
    runs the stack config's checks); here only the document's structure is (`_check_mappings`).
    """
    rules: list[dict[str, Any]] = []

    def add(rule: dict[str, Any]) -> None:
        number = len(rules) + 1
        rules.append({"rule-id": str(number), "rule-name": f"{number}-{rule.pop('name')}", **rule})

    for logical in sorted(tables):
        schema, name = tables[logical].schema_name, tables[logical].table_name
        add(
            {
                "name": f"select-{logical}",
                "rule-type": "selection",
                "object-locator": {"schema-name": literal(schema), "table-name": literal(name)},
                "rule-action": "include",
            }
        )
    for logical in sorted(tables):
        table = tables[logical]
        schema, name = table.schema_name, table.table_name
        params: dict[str, Any] = {"partition-key-name": table.partition_key}
        if table.sort_key is not None:
            params["sort-key-name"] = table.sort_key
        if table.exclude_columns:
            params["exclude-columns"] = list(table.exclude_columns)
        template = concatenated_key_template(table)
        if template is not None:
            params["attribute-mappings"] = [
                {
                    "target-attribute-name": table.partition_key,
                    "attribute-type": "scalar",
                    "attribute-sub-type": "string",
                    "value": template,
                }
            ]
        add(
            {
                "name": f"map-{logical}",
                "rule-type": "object-mapping",
                "rule-action": "map-record-to-record",
                "object-locator": {"schema-name": literal(schema), "table-name": literal(name)},
                "target-table-name": f"{name_prefix}{logical}",
                "mapping-parameters": params,
            }
        )
    for i, wildcard in enumerate(wildcards):
        rules.extend(_wildcard_rules(i, wildcard, name_prefix, len(rules)))
    document = {"rules": rules}
    _check_mappings(document)
    return document


def literal(name: str) -> str:
    """A source name as a DMS object-locator that matches only itself. In table mappings `_`
    matches any one character and `[_]` a literal underscore (the AWS DMS guide, "Wildcards
    in table mapping"): unescaped, declared `order_lines` would also select `orderXlines`
    and map it onto the same DynamoDB table. Source names hold no `%`, `[` or `]`
    (settings.dms.SourceName)."""
    return name.replace("_", "[_]")


def concatenated_key_template(table: DmsTable) -> str | None:
    """The DMS attribute-mapping template of a concatenated partition key
    (`${c1}|${c2}|${c3}`), or None when the key is source columns as they are.

    A key is concatenated when the source primary key (`dms.tables.<t>.primary_key`) has two
    or more columns and the table's partition key is none of them (the config check makes
    it a string and leaves no sort key). DMS fills it from the template with no escaping:
    the AWS DMS guide's DynamoDB example builds `CustomerName` from `${FirstName},${LastName}`.
    """
    if table.primary_key is None or len(table.primary_key) < 2:
        return None
    if table.partition_key in table.primary_key:
        return None
    return table.key_separator.join(f"${{{column}}}" for column in table.primary_key)


def wildcard_limits(
    wildcards: Sequence[DmsWildcard], task: DmsTask, name_prefix: str
) -> list[str]:
    """One line per wildcard: what DMS carries of it and what not (keys, capacity), for the
    plan output and the component's log. The tables behind a pattern are unknown before the
    task runs, so this is said per wildcard, not per table."""
    lines = []
    for i, wildcard in enumerate(wildcards):
        lines.append(
            f"dms.wildcards[{i}] ({wildcard.schema_name}.{wildcard.table_pattern} -> "
            f"{name_prefix}{wildcard.table_prefix}<table>): only tables with a one-column "
            "primary key are carried (declare the others under `tables`); DMS creates each "
            f"with {DMS_DEFAULT_RCU} RCU / {dms_created_wcu(task)} WCU provisioned until "
            "adoption sets its capacity"
        )
    return lines


def dms_created_wcu(task: DmsTask) -> int:
    """The write capacity DMS gives a DynamoDB table it creates (the AWS DMS guide, "Using an
    Amazon DynamoDB database as a target"): 200, or 200 x ParallelLoadThreads when that is
    above 1, at most 10,000 (40,000 in us-east-1; the lower cap is given here)."""
    threads = task.parallel_load_threads
    return min(DMS_DEFAULT_WCU * (threads if threads > 1 else 1), 10_000)


def _wildcard_rules(
    index: int, wildcard: DmsWildcard, name_prefix: str, offset: int
) -> list[dict[str, Any]]:
    schema = literal(wildcard.schema_name)
    locator = {"schema-name": schema, "table-name": wildcard.table_pattern}
    bodies: list[tuple[str, dict[str, Any]]] = [
        (
            f"wildcard{index}-select",
            {"rule-type": "selection", "object-locator": locator, "rule-action": "include"},
        )
    ]
    for j, pattern in enumerate(wildcard.exclude):
        bodies.append(
            (
                f"wildcard{index}-exclude{j}",
                {
                    "rule-type": "selection",
                    "object-locator": {"schema-name": schema, "table-name": pattern},
                    "rule-action": "exclude",
                },
            )
        )
    bodies.append(
        (
            f"wildcard{index}-lowercase",
            {
                "rule-type": "transformation",
                "rule-target": "table",
                "object-locator": dict(locator),
                "rule-action": "convert-lowercase",
            },
        )
    )
    bodies.append(
        (
            f"wildcard{index}-prefix",
            {
                "rule-type": "transformation",
                "rule-target": "table",
                "object-locator": dict(locator),
                "rule-action": "add-prefix",
                "value": f"{name_prefix}{wildcard.table_prefix}",
            },
        )
    )
    out = []
    for k, (name, body) in enumerate(bodies):
        number = offset + k + 1
        out.append({"rule-id": str(number), "rule-name": f"{number}-{name}", **body})
    return out


def _check_mappings(document: dict[str, Any]) -> None:
    """Structural checks DMS would otherwise report only when the task is created."""
    rules = document["rules"]
    ids = [r["rule-id"] for r in rules]
    if len(set(ids)) != len(ids):
        raise ValueError(f"table mappings: duplicate rule-id in {ids}")
    names = [r["rule-name"] for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"table mappings: duplicate rule-name in {names}")
    targets = [r["target-table-name"] for r in rules if r["rule-type"] == "object-mapping"]
    if len(set(targets)) != len(targets):
        raise ValueError(f"table mappings: two tables map to one target in {targets}")
    includes = [r for r in rules if r["rule-type"] == "selection" and r["rule-action"] == "include"]
    if not includes:
        raise ValueError("table mappings: no table selected")
    for rule in rules:
        if rule["rule-type"] == "object-mapping":
            target = rule["target-table-name"]
            if not 3 <= len(target) <= 255:
                raise ValueError(f"table mappings: DynamoDB table name {target!r} too long/short")
    if len(json.dumps(document)) > 2_000_000:
        raise ValueError("table mappings: larger than DMS's 2 MB limit; split the task")


def build_task_settings(task: DmsTask) -> dict[str, Any]:
    """Replication task settings: full load into the pre-created tables, then CDC.

    `TargetTablePrepMode: DO_NOTHING` keeps the declared tables (streams already on), so the
    full load itself flows onto the bus. Nothing is only logged, and no table is suspended
    silently: a row DMS cannot convert or must truncate stops the task (`task.on_data_error`);
    a change it cannot apply stops the task or goes to DMS's apply-exceptions table, which
    then has an alarm (`task.on_apply_error`); a table error stops the task. Recoverable
    errors (network, throttling) are retried with backoff. LOBs: limited-size mode only
    where the source endpoint fails the task on truncation
    (`task.lob_mode`, resolved per engine by the settings). A dropped or truncated source
    table never deletes target data.
    """
    full_lob = task.lob_mode == "full"
    data_policy = ERROR_POLICY[task.on_data_error]
    apply_policy = ERROR_POLICY[task.on_apply_error]
    return {
        "TargetMetadata": {
            "TargetSchema": "",
            "SupportLobs": True,
            "FullLobMode": full_lob,
            "LobChunkSize": task.lob_chunk_size_kb if full_lob else 0,
            "LimitedSizeLobMode": not full_lob,
            "LobMaxSize": 0 if full_lob else task.lob_max_size_kb,
            "BatchApplyEnabled": False,
            "ParallelLoadThreads": task.parallel_load_threads,
            "ParallelLoadBufferSize": 0 if task.parallel_load_threads == 0 else 500,
        },
        "FullLoadSettings": {
            "TargetTablePrepMode": "DO_NOTHING",
            "CreatePkAfterFullLoad": False,
            "StopTaskCachedChangesApplied": False,
            "StopTaskCachedChangesNotApplied": False,
            "MaxFullLoadSubTasks": task.max_full_load_subtasks,
            "TransactionConsistencyTimeout": 600,
            "CommitRate": task.commit_rate,
        },
        "Logging": {
            "EnableLogging": True,
            "LogComponents": [
                {"Id": component, "Severity": task.log_severity} for component in LOG_COMPONENTS
            ],
        },
        "ControlTablesSettings": {
            "HistoryTimeslotInMinutes": 5,
            "HistoryTableEnabled": False,
            "SuspendedTablesTableEnabled": False,
            "StatusTableEnabled": False,
        },
        "StreamBufferSettings": {
            "StreamBufferCount": 3,
            "StreamBufferSizeInMB": 8,
            "CtrlStreamBufferSizeInMB": 5,
        },
        "ChangeProcessingDdlHandlingPolicy": {
            "HandleSourceTableDropped": False,
            "HandleSourceTableTruncated": False,
            "HandleSourceTableAltered": True,
        },
        "ChangeProcessingTuning": {
            "BatchApplyPreserveTransaction": True,
            "BatchApplyTimeoutMin": 1,
            "BatchApplyTimeoutMax": 30,
            "BatchApplyMemoryLimit": 500,
            "BatchSplitSize": 0,
            "MinTransactionSize": 1000,
            "CommitTimeout": 1,
            "MemoryLimitTotal": 1024,
            "MemoryKeepTime": 60,
            "StatementCacheSize": 50,
        },
        "ErrorBehavior": {
            "DataErrorPolicy": data_policy,
            "DataTruncationErrorPolicy": data_policy,
            "DataErrorEscalationPolicy": data_policy,
            "DataErrorEscalationCount": 0,
            # a table error (DDL the target cannot take) stops the task: a suspended table
            # shows only in the task's table statistics, which no alarm watches
            "TableErrorPolicy": "STOP_TASK",
            "TableErrorEscalationPolicy": "STOP_TASK",
            "TableErrorEscalationCount": 0,
            "RecoverableErrorCount": -1,
            "RecoverableErrorInterval": 5,
            "RecoverableErrorThrottling": True,
            "RecoverableErrorThrottlingMax": 1800,
            "RecoverableErrorStopRetryAfterThrottlingMax": False,
            "ApplyErrorDeletePolicy": apply_policy,
            "ApplyErrorInsertPolicy": apply_policy,
            "ApplyErrorUpdatePolicy": apply_policy,
            "ApplyErrorEscalationPolicy": apply_policy,
            "ApplyErrorEscalationCount": 0,
            "ApplyErrorFailOnTruncationDdl": False,
            "FullLoadIgnoreConflicts": True,
            "FailOnTransactionConsistencyBreached": False,
            "FailOnNoTablesCaptured": True,
        },
        "ValidationSettings": {"EnableValidation": False},
    }


def physical_table_names(tables: Mapping[str, DmsTable], name_prefix: str) -> dict[str, str]:
    """Logical -> physical name of every declared table (what the task writes to)."""
    return {logical: f"{name_prefix}{logical}" for logical in sorted(tables)}


def _format(template: str, *values: pulumi.Input[str]) -> Any:
    """`template.format(*values)`, as an Output when a value is one (region, account)."""
    if all(isinstance(v, str) for v in values):
        return template.format(*values)
    return pulumi.Output.format(template, *values)


def target_policy_statements(
    *,
    name_prefix: str,
    region: pulumi.Input[str],
    account: pulumi.Input[str],
    kms_key_arn: str | None,
) -> list[dict[str, Any]]:
    """The DMS target role's policy: DynamoDB access to this environment's tables and to
    DMS's exception tables, and — when the tables use a customer-managed key — `kms:Decrypt`
    of that key, only through DynamoDB.

    Tables by name prefix (`common.env_table_patterns`): DMS writes only
    `<name_prefix><logical name>` — declared tables by their logical name, wildcard tables as
    `<table_prefix><source table, lowercased>`, names without `-`. The Allow of
    `<prefix>*` would also reach an environment whose name starts with this one's plus `-`
    (`dmsbus-dev-*` matches `dmsbus-dev-eu-orders`); the Deny of `<prefix>*-*` takes those
    out again. The policy text does not grow with the number of tables or wildcards.

    DynamoDB decrypts a table's key as the principal accessing the table, with the
    encryption context `aws:dynamodb:tableName` + `aws:dynamodb:subscriberId` (the AWS KMS
    developer guide, "How Amazon DynamoDB uses AWS KMS"); the grant is scoped by both, so the
    key serves this account's tables of this environment only. Creating a table's key
    (GenerateDataKey) is DynamoDB's own call under its grant, not the role's.
    """
    allowed, denied = env_table_patterns(name_prefix)

    def table_arn(name: str) -> Any:
        return _format("arn:aws:dynamodb:{0}:{1}:table/{2}", region, account, name)

    statements: list[dict[str, Any]] = [
        {
            "Sid": "EnvironmentTables",
            "Effect": "Allow",
            "Action": list(TABLE_ACTIONS),
            "Resource": [table_arn(allowed)],
        },
        {
            "Sid": "NoOtherEnvironment",
            "Effect": "Deny",
            "Action": list(TABLE_ACTIONS),
            "Resource": [table_arn(denied)],
        },
        {
            "Sid": "DmsControlTables",
            "Effect": "Allow",
            "Action": list(CONTROL_TABLE_ACTIONS),
            "Resource": [table_arn(t) for t in DMS_CONTROL_TABLES],
        },
        {
            # ListTables has no resource-level permissions; it reads no data.
            "Sid": "ListTables",
            "Effect": "Allow",
            "Action": ["dynamodb:ListTables"],
            "Resource": "*",
        },
    ]
    if kms_key_arn:
        grant = kms_grant(
            "TableKeyThroughDynamoDB",
            kms_key_arn,
            ["kms:Decrypt"],
            service="dynamodb",
            region=region,
            context=[allowed],
            context_not=[denied],
        )
        # DynamoDB's context also names the account: only this account's tables.
        grant["Condition"]["StringEquals"]["kms:EncryptionContext:aws:dynamodb:subscriberId"] = (
            account
        )
        statements.append(grant)
    return statements


# -- the component ------------------------------------------------------------------------


@dataclass(frozen=True)
class DmsSourceArgs:
    environment: str
    """Environment name; physical names start with `dmsbus-<environment>-`."""
    tables: Mapping[str, DmsTable]
    """The declared waypoint tables (logical name -> source and keys); they drive the mapping.
    May be empty when `wildcards` selects tables."""
    wildcards: Sequence[DmsWildcard]
    """Tables selected by pattern (DMS creates their tables)."""
    capacity: DmsInstance | DmsServerless
    """A replication instance, or a DMS Serverless replication config."""
    network: DmsNetwork
    source: DmsEndpoint
    task: DmsTask
    alarms: DmsAlarms
    notification_topic_arn: pulumi.Input[str]
    """SNS topic for DMS events and alarms (its policy must let events.amazonaws.com publish
    for serverless state-change events)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """Every declared StreamedTable AND its event source mapping: the task starts after them."""
    kms_key_arn: str | None = None
    """The stack's customer-managed KMS key: the replication storage, both endpoints and the
    task log group use it, and the target role may decrypt it through DynamoDB (the waypoint
    tables use it too). None: AWS-managed keys (aws/dms), no KMS grant."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every resource."""

    def __post_init__(self) -> None:
        check_name_prefix("DmsSourceArgs.environment", self.name_prefix)
        if not self.tables and not self.wildcards:
            raise ValueError(
                "DmsSourceArgs.tables: expected at least one declared table or one "
                "dms.wildcards entry, found neither"
            )
        for i, dep in enumerate(self.depends_on):
            if not isinstance(dep, pulumi.Resource):
                raise ValueError(
                    f"DmsSourceArgs.depends_on[{i}]: expected a pulumi.Resource, found {dep!r}"
                )

    @property
    def name_prefix(self) -> str:
        return f"dmsbus-{self.environment}-"


class DmsSource(pulumi.ComponentResource):
    """CDC from the legacy database into the declared (and wildcard-created) tables."""

    task_arn: pulumi.Output[str]
    physical_table_names: dict[str, str]
    table_mappings: str
    replication_instance_arn: pulumi.Output[str] | None
    security_group_id: pulumi.Output[str]
    metric_dimensions: dict[str, str]

    def __init__(
        self, name: str, args: DmsSourceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._args = args
        self._prefix = args.name_prefix
        self._tags = {**args.tags, "component": "DmsSource"}
        self._child = pulumi.ResourceOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self._account = identity.account_id
        self._region = region.region

        self.table_mappings = json.dumps(
            build_table_mappings(args.tables, args.wildcards, self._prefix), indent=None
        )
        task_settings = json.dumps(build_task_settings(args.task))
        for line in wildcard_limits(args.wildcards, args.task, self._prefix):
            pulumi.log.info(line, resource=self)
        self.physical_table_names = physical_table_names(args.tables, self._prefix)

        security_group = self._create_security_group()
        subnet_group = self._create_subnet_group()
        target_role, target_policy = self._create_target_role()
        secrets_role, secrets_policy = self._create_secrets_role()
        source = self._create_source_endpoint(secrets_role, secrets_policy)
        target = self._create_target_endpoint(target_role, target_policy)

        self.replication_instance_arn = None
        capacity = args.capacity
        if isinstance(capacity, DmsInstance):
            instance = self._create_instance(capacity, subnet_group, security_group)
            self.replication_instance_arn = instance.replication_instance_arn
            task = self._create_task(instance, source, target, task_settings)
            self.task_arn = task.replication_task_arn
            self._create_instance_events(instance, task)
            dimensions = {
                "ReplicationInstanceIdentifier": f"{self._prefix}replication",
                "ReplicationTaskIdentifier": f"{self._prefix}cdc",
            }
        else:
            config = self._create_serverless(
                capacity=capacity,
                subnet_group=subnet_group,
                security_group=security_group,
                source=source,
                target=target,
                task_settings=task_settings,
            )
            self.task_arn = config.arn
            self._create_serverless_events(config)
            dimensions = {"ReplicationConfigIdentifier": f"{self._prefix}cdc"}
        self.security_group_id = security_group.id
        self.metric_dimensions = dimensions
        self._create_alarms(dimensions)

        self.register_outputs(
            {
                "task_arn": self.task_arn,
                "physical_table_names": self.physical_table_names,
                "table_mappings": self.table_mappings,
                "security_group_id": self.security_group_id,
                "metric_dimensions": self.metric_dimensions,
            }
        )

    # -- IAM ---------------------------------------------------------------------------

    def _create_target_role(self) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        """DynamoDB target access: this environment's tables and DMS's control tables only
        (`target_policy_statements`), the stack's key through DynamoDB when it has one."""
        statements = target_policy_statements(
            name_prefix=self._prefix,
            region=self._region,
            account=self._account,
            kms_key_arn=self._args.kms_key_arn,
        )
        role = aws.iam.Role(
            f"{self._name}-target-role",
            name=f"{self._prefix}dms-target",
            assume_role_policy=self._dms_trust(),
            tags=self._tags,
            opts=self._child,
        )
        policy = aws.iam.RolePolicy(
            f"{self._name}-target-policy",
            role=role.id,
            policy=policy_json(statements),
            opts=self._child,
        )
        return role, policy

    def _dms_trust(self) -> pulumi.Output[str]:
        """Trust DMS (global and regional principal, as the Secrets Manager docs require),
        only on behalf of this account."""
        return pulumi.Output.json_dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {
                            "Service": [
                                "dms.amazonaws.com",
                                pulumi.Output.format("dms.{0}.amazonaws.com", self._region),
                            ]
                        },
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": self._account}},
                    }
                ],
            }
        )

    def _create_secrets_role(self) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        """Read the one source secret (and decrypt it with its key, through Secrets Manager)."""
        source = self._args.source
        statements: list[dict[str, Any]] = [
            {
                "Sid": "SourceSecret",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": [source.secret_arn],
            }
        ]
        if source.secret_kms_key_arn:
            statements.append(
                {
                    "Sid": "DecryptSecret",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt"],
                    "Resource": [source.secret_kms_key_arn],
                    "Condition": {
                        "StringEquals": {
                            "kms:ViaService": pulumi.Output.format(
                                "secretsmanager.{0}.amazonaws.com", self._region
                            )
                        }
                    },
                }
            )
        role = aws.iam.Role(
            f"{self._name}-secrets-role",
            name=f"{self._prefix}dms-secrets",
            assume_role_policy=self._dms_trust(),
            tags=self._tags,
            opts=self._child,
        )
        policy = aws.iam.RolePolicy(
            f"{self._name}-secrets-policy",
            role=role.id,
            policy=policy_json(statements),
            opts=self._child,
        )
        return role, policy

    # -- network -----------------------------------------------------------------------

    def _create_security_group(self) -> aws.ec2.SecurityGroup:
        """No ingress at all; egress to the source port and to AWS APIs on 443 only."""
        net = self._args.network
        port = self._args.source.port
        egress = [
            aws.ec2.SecurityGroupEgressArgs(
                description="AWS APIs (DynamoDB, Secrets Manager, KMS, CloudWatch)",
                protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_blocks=list(net.https_egress_cidrs),
            )
        ]
        if net.source_cidrs:
            egress.append(
                aws.ec2.SecurityGroupEgressArgs(
                    description="legacy database",
                    protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr_blocks=list(net.source_cidrs),
                )
            )
        if net.source_security_group_id:
            egress.append(
                aws.ec2.SecurityGroupEgressArgs(
                    description="legacy database (security group)",
                    protocol="tcp",
                    from_port=port,
                    to_port=port,
                    security_groups=[net.source_security_group_id],
                )
            )
        group = aws.ec2.SecurityGroup(
            f"{self._name}-sg",
            name=f"{self._prefix}dms",
            description=f"DMS replication of {self._prefix[:-1]}: no ingress",
            vpc_id=net.vpc_id,
            ingress=[],
            egress=egress,
            tags=self._tags,
            opts=self._child,
        )
        if net.source_security_group_id:
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-source-ingress",
                security_group_id=net.source_security_group_id,
                referenced_security_group_id=group.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=f"DMS replication of {self._prefix[:-1]}",
                tags=self._tags,
                opts=self._child,
            )
        return group

    def _create_subnet_group(self) -> aws.dms.ReplicationSubnetGroup:
        """DMS checks dms-vpc-role when the group is created: the role exists before the
        stack (the bootstrap), so nothing here waits for it."""
        return aws.dms.ReplicationSubnetGroup(
            f"{self._name}-subnets",
            replication_subnet_group_id=f"{self._prefix}dms",
            replication_subnet_group_description=f"DMS replication of {self._prefix[:-1]}",
            subnet_ids=list(self._args.network.subnet_ids),
            tags=self._tags,
            opts=self._child,
        )

    # -- endpoints ---------------------------------------------------------------------

    def _create_source_endpoint(
        self, secrets_role: aws.iam.Role, secrets_policy: aws.iam.RolePolicy
    ) -> aws.dms.Endpoint:
        """Credentials, host and port come from the secret; nothing secret is an input here."""
        source = self._args.source
        engine_settings: dict[str, Any] = {}
        if source.engine in ("postgres", "aurora-postgresql"):
            engine_settings["postgres_settings"] = aws.dms.EndpointPostgresSettingsArgs(
                heartbeat_enable=True,
                heartbeat_frequency=5,
                fail_tasks_on_lob_truncation=True,
                slot_name=source.slot_name,
            )
        elif source.engine in ("mysql", "aurora", "mariadb"):
            engine_settings["mysql_settings"] = aws.dms.EndpointMysqlSettingsArgs(
                events_poll_interval=5,
            )
        elif source.engine == "oracle":
            engine_settings["oracle_settings"] = aws.dms.EndpointOracleSettingsArgs(
                fail_task_on_lob_truncation=True,
                use_logminer_reader=True,
            )
        # sqlserver: no settings block in pulumi-aws 7; its settings are extra connection
        # attributes (DmsEndpoint.extra_connection_attributes).
        return aws.dms.Endpoint(
            f"{self._name}-source",
            endpoint_id=f"{self._prefix}source",
            endpoint_type="source",
            engine_name=source.engine,
            database_name=source.database,
            secrets_manager_arn=source.secret_arn,
            secrets_manager_access_role_arn=secrets_role.arn,
            ssl_mode=source.ssl_mode,
            certificate_arn=source.certificate_arn,
            extra_connection_attributes=source.extra_connection_attributes,
            kms_key_arn=self._args.kms_key_arn,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secrets_policy]),
            **engine_settings,
        )

    def _create_target_endpoint(
        self, target_role: aws.iam.Role, target_policy: aws.iam.RolePolicy
    ) -> aws.dms.Endpoint:
        """DynamoDB target; TLS is always on for DynamoDB (its ssl_mode setting is `none`)."""
        return aws.dms.Endpoint(
            f"{self._name}-target",
            endpoint_id=f"{self._prefix}target",
            endpoint_type="target",
            engine_name="dynamodb",
            service_access_role=target_role.arn,
            kms_key_arn=self._args.kms_key_arn,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[target_policy]),
        )

    # -- capacity and task -------------------------------------------------------------

    def _create_instance(
        self,
        capacity: DmsInstance,
        subnet_group: aws.dms.ReplicationSubnetGroup,
        security_group: aws.ec2.SecurityGroup,
    ) -> aws.dms.ReplicationInstance:
        instance_id = f"{self._prefix}replication"
        # DMS writes task logs to this group; creating it first sets its retention.
        aws.cloudwatch.LogGroup(
            f"{self._name}-task-logs",
            name=f"dms-tasks-{instance_id}",
            retention_in_days=self._args.task.log_retention_days,
            kms_key_id=self._args.kms_key_arn,
            tags=self._tags,
            opts=self._child,
        )
        return aws.dms.ReplicationInstance(
            f"{self._name}-instance",
            replication_instance_id=instance_id,
            replication_instance_class=capacity.instance_class,
            allocated_storage=capacity.allocated_storage_gb,
            multi_az=capacity.multi_az,
            engine_version=capacity.engine_version,
            auto_minor_version_upgrade=capacity.auto_minor_version_upgrade,
            preferred_maintenance_window=capacity.preferred_maintenance_window,
            publicly_accessible=False,
            kms_key_arn=self._args.kms_key_arn,
            replication_subnet_group_id=subnet_group.replication_subnet_group_id,
            vpc_security_group_ids=[security_group.id],
            tags=self._tags,
            opts=self._child,
        )

    def _create_task(
        self,
        instance: aws.dms.ReplicationInstance,
        source: aws.dms.Endpoint,
        target: aws.dms.Endpoint,
        task_settings: str,
    ) -> aws.dms.ReplicationTask:
        task_id = f"{self._prefix}cdc"
        return aws.dms.ReplicationTask(
            f"{self._name}-task",
            replication_task_id=task_id,
            resource_identifier=task_id,
            migration_type="full-load-and-cdc",
            replication_instance_arn=instance.replication_instance_arn,
            source_endpoint_arn=source.endpoint_arn,
            target_endpoint_arn=target.endpoint_arn,
            table_mappings=self.table_mappings,
            replication_task_settings=task_settings,
            start_replication_task=self._args.task.start,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self._args.depends_on)),
        )

    def _create_serverless(
        self,
        *,
        capacity: DmsServerless,
        subnet_group: aws.dms.ReplicationSubnetGroup,
        security_group: aws.ec2.SecurityGroup,
        source: aws.dms.Endpoint,
        target: aws.dms.Endpoint,
        task_settings: str,
    ) -> aws.dms.ReplicationConfig:
        """DMS Serverless: the replication config is capacity and task in one resource."""
        config_id = f"{self._prefix}cdc"
        return aws.dms.ReplicationConfig(
            f"{self._name}-replication",
            replication_config_identifier=config_id,
            resource_identifier=config_id,
            replication_type="full-load-and-cdc",
            source_endpoint_arn=source.endpoint_arn,
            target_endpoint_arn=target.endpoint_arn,
            table_mappings=self.table_mappings,
            replication_settings=task_settings,
            start_replication=self._args.task.start,
            compute_config=aws.dms.ReplicationConfigComputeConfigArgs(
                replication_subnet_group_id=subnet_group.replication_subnet_group_id,
                vpc_security_group_ids=[security_group.id],
                min_capacity_units=capacity.min_capacity_units,
                max_capacity_units=capacity.max_capacity_units,
                multi_az=capacity.multi_az,
                kms_key_id=self._args.kms_key_arn,
                preferred_maintenance_window=capacity.preferred_maintenance_window,
            ),
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self._args.depends_on)),
        )

    # -- operations --------------------------------------------------------------------

    def _create_instance_events(
        self, instance: aws.dms.ReplicationInstance, task: aws.dms.ReplicationTask
    ) -> None:
        topic = self._args.notification_topic_arn
        aws.dms.EventSubscription(
            f"{self._name}-task-events",
            name=f"{self._prefix}dms-task",
            sns_topic_arn=topic,
            source_type="replication-task",
            source_ids=[task.replication_task_id],
            event_categories=["failure", "state change"],
            enabled=True,
            tags=self._tags,
            opts=self._child,
        )
        aws.dms.EventSubscription(
            f"{self._name}-instance-events",
            name=f"{self._prefix}dms-instance",
            sns_topic_arn=topic,
            source_type="replication-instance",
            source_ids=[instance.replication_instance_id],
            event_categories=["failure", "failover", "low storage"],
            enabled=True,
            tags=self._tags,
            opts=self._child,
        )

    def _create_serverless_events(self, config: aws.dms.ReplicationConfig) -> None:
        """DMS event subscriptions do not cover serverless replications; their state
        changes arrive as EventBridge events, routed to the same topic."""
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-replication-events",
            name=f"{self._prefix}dms-replication",
            description="DMS Serverless replication state changes and failures",
            event_pattern=pulumi.Output.json_dumps(
                {"source": ["aws.dms"], "resources": [config.arn]}
            ),
            tags=self._tags,
            opts=self._child,
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-replication-events-target",
            rule=rule.name,
            arn=self._args.notification_topic_arn,
            opts=self._child,
        )

    def _create_alarms(self, dimensions: Mapping[str, str]) -> None:
        alarms = self._args.alarms
        topic = self._args.notification_topic_arn
        if self._args.task.on_apply_error == "exceptions_table":
            # Any write to DMS's apply-exceptions table is a change that did not reach its
            # waypoint table. The table's name is fixed by DMS, so it is shared by every DMS
            # task of the account and region: the alarm fires for all of them.
            metric_alarm(
                f"{self._name}-apply-exceptions",
                alarm_name=f"{self._prefix}dms-apply-exceptions",
                description=f"{self._prefix}cdc (or another DMS task of this account) wrote "
                f"to {APPLY_EXCEPTIONS_TABLE}: a change was not applied to DynamoDB",
                namespace="AWS/DynamoDB",
                metric="ConsumedWriteCapacityUnits",
                dimensions={"TableName": APPLY_EXCEPTIONS_TABLE},
                threshold=0,
                topic_arn=topic,
                parent=self,
                statistic="Sum",
                period=60,
                evaluation_periods=1,
                tags=self._tags,
            )
        for metric, threshold in (
            ("CDCLatencySource", alarms.cdc_latency_source_seconds),
            ("CDCLatencyTarget", alarms.cdc_latency_target_seconds),
        ):
            metric_alarm(
                f"{self._name}-{metric.lower()}",
                alarm_name=f"{self._prefix}{metric.lower()}",
                description=f"{self._prefix}cdc: {metric} above {threshold}s for "
                f"{alarms.evaluation_minutes} min",
                namespace="AWS/DMS",
                metric=metric,
                dimensions=dimensions,
                threshold=threshold,
                topic_arn=topic,
                parent=self,
                statistic="Maximum",
                period=60,
                evaluation_periods=alarms.evaluation_minutes,
                tags=self._tags,
            )
        if self._args.task.start:
            # No DMS metric reports the task state; a running CDC task publishes latency
            # every minute, so silence means it left the running state.
            aws.cloudwatch.MetricAlarm(
                f"{self._name}-not-running",
                name=f"{self._prefix}cdc-not-running",
                alarm_description=f"{self._prefix}cdc published no CDC metrics for "
                f"{alarms.not_reporting_minutes} min: the task is not running",
                namespace="AWS/DMS",
                metric_name="CDCLatencySource",
                dimensions=dict(dimensions),
                statistic="SampleCount",
                period=300,
                evaluation_periods=max(1, alarms.not_reporting_minutes // 5),
                threshold=1,
                comparison_operator="LessThanThreshold",
                treat_missing_data="breaching",
                alarm_actions=[topic],
                ok_actions=[topic],
                tags=self._tags,
                opts=self._child,
            )
