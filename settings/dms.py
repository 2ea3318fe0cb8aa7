"""Config models of the DMS source: capacity, network, source endpoint, selection, task, alarms.

The stack file's `dms-event-bus:dms` section. Credentials of the legacy database are only
ever a Secrets Manager ARN: there is no password field, so no password can reach config or
state. `check_dms(...)` cross-checks the section against the declared `tables` (key columns,
wildcard overlaps, exclusions); StackSettings calls it, so bad config fails before any
resource is declared, with each problem's key path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from .base import PROJECT, ColumnName, KmsKeyArn, LogicalName, Model, SecretArn
from .core import TableSettings

#: Source engines DMS can capture changes from (DMS `engine_name` values).
Engine = Literal[
    "postgres", "aurora-postgresql", "mysql", "aurora", "mariadb", "oracle", "sqlserver"
]
ENGINES: tuple[str, ...] = (
    "postgres",
    "aurora-postgresql",
    "mysql",
    "aurora",
    "mariadb",
    "oracle",
    "sqlserver",
)
DEFAULT_PORTS: dict[str, int] = {
    "postgres": 5432,
    "aurora-postgresql": 5432,
    "mysql": 3306,
    "aurora": 3306,
    "mariadb": 3306,
    "oracle": 1521,
    "sqlserver": 1433,
}
#: SSL modes DMS supports per source engine (besides `none`, which needs `allow_unencrypted`).
SSL_MODES: dict[str, tuple[str, ...]] = {
    "postgres": ("require", "verify-ca", "verify-full"),
    "aurora-postgresql": ("require", "verify-ca", "verify-full"),
    "mysql": ("require", "verify-ca", "verify-full"),
    "aurora": ("require", "verify-ca", "verify-full"),
    "mariadb": ("require", "verify-ca", "verify-full"),
    "oracle": ("verify-ca",),
    "sqlserver": ("require", "verify-full"),
}
#: Engines whose endpoint needs a database name (MySQL-family endpoints connect to the server).
NEEDS_DATABASE = ("postgres", "aurora-postgresql", "oracle", "sqlserver")
#: The command that creates DMS's account-wide roles, once per AWS account (without
#: `--apply` it only prints what it would create).
BOOTSTRAP_COMMAND = "python -m tools.account_preflight bootstrap --region <region> --apply"
#: The roles DMS looks up by name in every account, and the AWS managed policy each needs.
ACCOUNT_ROLES: dict[str, str] = {
    "dms-vpc-role": "arn:aws:iam::aws:policy/service-role/AmazonDMSVPCManagementRole",
    "dms-cloudwatch-logs-role": "arn:aws:iam::aws:policy/service-role/AmazonDMSCloudWatchLogsRole",
}
#: State entries of the account roles in stacks whose DmsSource (`dms`) created them, before
#: the bootstrap owned them: role attachments first, then the roles (a role cannot leave the
#: state while its attachment depends on it).
LEGACY_ACCOUNT_ROLE_URNS: tuple[str, ...] = tuple(
    f"urn:pulumi:<stack>::{PROJECT}::{PROJECT}:index:DmsSource${kind}::{name}"
    for role in ("dms-vpc-role", "dms-logs-role")
    for kind, name in (
        ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", f"{role}-policy"),
        ("aws:iam/role:Role", role),
    )
)
ACCOUNT_ROLES_CREATE_REFUSED = (
    f"expected 'existing' (or no key), found 'create': {' and '.join(ACCOUNT_ROLES)} belong "
    f"to the account, not to a stack; run `{BOOTSTRAP_COMMAND}` once per account and set "
    "account_roles: existing. A stack that created them must first drop them from its state "
    "so they stay in the account (else `pulumi up` detaches their policies); docs/dms.md "
    "(Account roles) gives the steps: `pulumi state delete` "
    + ", then ".join(f"'{urn}'" for urn in LEGACY_ACCOUNT_ROLE_URNS)
)
#: The port of Oracle's TLS listener when none is given: Amazon RDS for Oracle's SSL option
#: listens on 2484 by default (1521 stays the plain-text listener).
ORACLE_TLS_PORT = 2484
#: Engines whose catalog keeps unquoted names in upper case and whose names DMS compares
#: case-sensitively: the config must spell schemas, tables and columns in upper case.
UPPER_CASE_ENGINES = ("oracle",)
#: Engines whose DMS source endpoint takes a dotted database (service) name.
DOTTED_DATABASE_ENGINES = ("oracle",)
#: Most source key columns a declared table may name (SQL Server allows 16 key columns, Oracle 32).
MAX_KEY_COLUMNS = 16
#: Engines whose DMS source endpoint can fail the task when a LOB is truncated
#: (`FailTasksOnLobTruncation`, PostgreSQL and Oracle endpoint settings). Elsewhere a LOB
#: over `LobMaxSize` in limited-size LOB mode is truncated with only a log warning.
FAIL_ON_LOB_TRUNCATION = ("postgres", "aurora-postgresql", "oracle")
#: DMS Serverless capacity units (DCU) AWS accepts.
DCU_VALUES = (1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 384)

DmsCertificateArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:dms:[a-z0-9-]+:\d{12}:cert:.+$")
]
#: A source schema / table name as the database spells it (no wildcards).
SourceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_$#]{0,127}$")]
#: A DMS table-name pattern: a name where `%` matches any run of characters.
TablePattern = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_$#%]{1,128}$")]
SubnetId = Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]
SecurityGroupId = Annotated[str, StringConstraints(pattern=r"^sg-[0-9a-f]{8,17}$")]
VpcId = Annotated[str, StringConstraints(pattern=r"^vpc-[0-9a-f]{8,17}$")]
Cidr = Annotated[str, StringConstraints(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")]
HostName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")]


Problem = tuple[tuple[str | int, ...], str, Any]


def raise_problems(title: str, problems: list[Problem]) -> None:
    """Raise one ValidationError whose entries sit at their own key paths (pydantic
    prefixes the path of the enclosing model), so messages name the exact key."""
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(
                    type="value_error", loc=loc, input=found, ctx={"error": ValueError(msg)}
                )
                for loc, msg, found in problems
            ],
        )


class InstanceCapacity(Model):
    """A provisioned replication instance: fixed size, you pay while it exists."""

    mode: Literal["instance"]
    instance_class: str = Field(
        default="dms.t3.medium",
        pattern=r"^dms\.[a-z0-9]+\.[a-z0-9]+$",
        description="Replication instance class, e.g. dms.t3.medium, dms.r6i.large.",
    )
    allocated_storage_gb: int = Field(
        default=50, ge=5, le=6144, description="Storage for logs and cached changes (GiB)."
    )
    multi_az: bool = Field(default=False, description="Standby in a second AZ (production).")
    engine_version: str | None = Field(
        default=None,
        pattern=r"^\d+\.\d+\.\d+$",
        description="DMS engine version, e.g. 3.5.4; default: the current default version. "
        "Pinning it needs auto_minor_version_upgrade: false (else AWS upgrades past it and "
        "every `pulumi up` would try to downgrade).",
    )
    auto_minor_version_upgrade: bool = Field(
        default=True,
        description="Apply minor engine upgrades in the maintenance window; only without a "
        "pinned engine_version.",
    )
    preferred_maintenance_window: str | None = Field(
        default=None,
        pattern=r"^(mon|tue|wed|thu|fri|sat|sun):\d\d:\d\d-(mon|tue|wed|thu|fri|sat|sun):\d\d:\d\d$",
        description="Weekly maintenance window (UTC), e.g. sun:03:00-sun:04:00.",
    )

    @model_validator(mode="after")
    def _one_owner_of_the_version(self) -> InstanceCapacity:
        """A pinned version and automatic upgrades contradict each other: after AWS upgrades
        the instance, the stack asks for the older version, which DMS refuses to go back to."""
        version = self.engine_version
        if version is not None and self.auto_minor_version_upgrade:
            raise_problems(
                "InstanceCapacity",
                [
                    (
                        ("engine_version",),
                        f"expected no pinned engine_version while auto_minor_version_upgrade "
                        f"is true (AWS upgrades the instance past it, then every `pulumi up` "
                        f"tries a downgrade DMS refuses), found '{version}': remove "
                        f"engine_version to let AWS keep the engine current, or set "
                        f"auto_minor_version_upgrade: false to stay on '{version}' until you "
                        f"change it",
                        version,
                    )
                ],
            )
        return self


class ServerlessCapacity(Model):
    """DMS Serverless: capacity scales between min and max DCU; no instance to size."""

    mode: Literal["serverless"]
    min_capacity_units: int = Field(default=1, description=f"Lowest DCU, one of {DCU_VALUES}.")
    max_capacity_units: int = Field(default=4, description=f"Highest DCU, one of {DCU_VALUES}.")
    multi_az: bool = Field(default=False, description="Standby in a second AZ (production).")
    preferred_maintenance_window: str | None = Field(
        default=None,
        pattern=r"^(mon|tue|wed|thu|fri|sat|sun):\d\d:\d\d-(mon|tue|wed|thu|fri|sat|sun):\d\d:\d\d$",
        description="Weekly maintenance window (UTC), e.g. sun:03:00-sun:04:00.",
    )

    @model_validator(mode="after")
    def _dcu(self) -> ServerlessCapacity:
        problems: list[Problem] = []
        for key in ("min_capacity_units", "max_capacity_units"):
            value = getattr(self, key)
            if value not in DCU_VALUES:
                problems.append(((key,), f"expected one of {DCU_VALUES}, found {value}", value))
        if not problems and self.min_capacity_units > self.max_capacity_units:
            problems.append(
                (
                    ("min_capacity_units",),
                    f"expected min_capacity_units <= max_capacity_units, found "
                    f"{self.min_capacity_units} > {self.max_capacity_units}",
                    self.min_capacity_units,
                )
            )
        raise_problems("ServerlessCapacity", problems)
        return self


Capacity = Annotated[InstanceCapacity | ServerlessCapacity, Field(discriminator="mode")]


class NetworkSettings(Model):
    """Where replication runs. Never publicly accessible: private subnets only."""

    vpc_id: VpcId = Field(description="VPC of the replication subnets.")
    subnet_ids: list[SubnetId] = Field(
        min_length=2, description="Private subnets in at least two AZs (DMS requires two)."
    )
    source_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="CIDRs of the legacy database; the DMS security group may reach its port.",
    )
    source_security_group_id: SecurityGroupId | None = Field(
        default=None,
        description="Security group of the legacy database: an ingress rule from the DMS "
        "security group on the source port is added to it.",
    )
    https_egress_cidrs: list[Cidr] = Field(
        default_factory=lambda: ["0.0.0.0/0"],
        description="Where DMS may reach AWS APIs (DynamoDB, Secrets Manager, KMS) on 443: "
        "via NAT or VPC endpoints.",
    )

    @model_validator(mode="after")
    def _reachable(self) -> NetworkSettings:
        if not self.source_cidrs and self.source_security_group_id is None:
            raise ValueError(
                "expected source_cidrs or source_security_group_id (how DMS reaches the "
                "legacy database), found neither"
            )
        return self


class SqlServerEndpointSettings(Model):
    """SQL Server source endpoint settings (DMS's MicrosoftSQLServerSettings, given to the
    endpoint as extra connection attributes: pulumi-aws 7 has no typed block for them)."""

    safeguard_policy: (
        Literal["rely_on_sql_server_replication_agent", "exclusive_automatic_truncation"] | None
    ) = Field(
        default=None,
        description="How DMS keeps the transaction log from being truncated before it read "
        "it (`safeguardPolicy`): `rely_on_sql_server_replication_agent` (DMS's default: DMS "
        "holds an open transaction; needed when MS-Replication runs) or "
        "`exclusive_automatic_truncation` (DMS marks what it read with sp_repldone: only "
        "without MS-Replication, and only one DMS task on the database). Default: DMS's.",
    )
    read_backup_only: bool = Field(
        default=False,
        description="`readBackupOnly=Y`: read changes only from transaction-log backups, never "
        "the active log (controls log growth; adds latency). Not with tlog_access_mode.",
    )
    use_third_party_backup_device: bool = Field(
        default=False,
        description="`useThirdPartyBackupDevice=Y`: log backups are taken by a third-party "
        "tool DMS must read through (self-managed SQL Server).",
    )
    tlog_access_mode: Literal["BackupOnly", "PreferBackup", "PreferTlog", "TlogOnly"] | None = (
        Field(
            default=None,
            description="`TlogAccessMode`: where DMS reads changes from (`BackupOnly`, "
            "`PreferBackup`, `PreferTlog`, `TlogOnly`). Default: DMS's.",
        )
    )

    @model_validator(mode="after")
    def _one_log_mode(self) -> SqlServerEndpointSettings:
        if self.read_backup_only and self.tlog_access_mode not in (None, "BackupOnly"):
            raise_problems(
                "SqlServerEndpointSettings",
                [
                    (
                        ("tlog_access_mode",),
                        f"expected no tlog_access_mode (or 'BackupOnly') with read_backup_only: "
                        f"true, found '{self.tlog_access_mode}': both say where DMS reads the "
                        "log from; keep one",
                        self.tlog_access_mode,
                    )
                ],
            )
        return self

    @property
    def extra_connection_attributes(self) -> str | None:
        """The endpoint's extra connection attributes (`name=value;...`), None when empty."""
        parts = []
        if self.safeguard_policy is not None:
            parts.append(f"safeguardPolicy={self.safeguard_policy.upper()}")
        if self.read_backup_only:
            parts.append("readBackupOnly=Y")
        if self.use_third_party_backup_device:
            parts.append("useThirdPartyBackupDevice=Y")
        if self.tlog_access_mode is not None:
            parts.append(f"TlogAccessMode={self.tlog_access_mode}")
        return ";".join(parts) or None


class SourceEndpointSettings(Model):
    """The legacy database. Credentials (and host/port for DMS) come from the secret."""

    engine: Engine = Field(description=f"Source engine, one of {ENGINES}.")
    server: HostName = Field(
        description="Host name of the database (must match the secret's `host`); used by "
        "the preflight tool and in docs, DMS reads the host from the secret."
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port the security group opens; must be the secret's `port` (DMS "
        "connects to that one). Default: the engine's port; Oracle over TLS "
        f"{ORACLE_TLS_PORT}, the TLS listener of Amazon RDS for Oracle's SSL option.",
    )
    database: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_$#.-]{0,127}$",
        description="Database (PostgreSQL, SQL Server) or service name (Oracle; may hold "
        "dots, e.g. ERPPDB.EU.EXAMPLE.COM).",
    )
    secret_arn: SecretArn = Field(
        description="Secrets Manager secret with username, password, host, port (the format "
        "DMS reads). The only way to give credentials: there is no password key."
    )
    secret_kms_key_arn: KmsKeyArn | None = Field(
        default=None,
        description="Customer KMS key the secret is encrypted with (DMS needs kms:Decrypt); "
        "default: the AWS-managed aws/secretsmanager key.",
    )
    ssl_mode: Literal["none", "require", "verify-ca", "verify-full"] = Field(
        default="require",
        description="TLS to the source. `none` only with allow_unencrypted: true.",
    )
    certificate_arn: DmsCertificateArn | None = Field(
        default=None,
        description="DMS certificate (CA bundle) for verify-ca / verify-full.",
    )
    allow_unencrypted: bool = Field(
        default=False, description="Explicit opt-in to ssl_mode: none (never in production)."
    )
    slot_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]{1,63}$",
        description="PostgreSQL: an existing logical replication slot to use.",
    )

    sqlserver: SqlServerEndpointSettings | None = Field(
        default=None, description="SQL Server only: endpoint settings (see its keys)."
    )

    @property
    def effective_port(self) -> int:
        """The port DMS connects to and the security group opens."""
        if self.port is not None:
            return self.port
        if self.engine == "oracle" and self.ssl_mode != "none":
            return ORACLE_TLS_PORT
        return DEFAULT_PORTS[self.engine]

    @property
    def extra_connection_attributes(self) -> str | None:
        """Engine settings pulumi-aws has no typed block for (SQL Server's)."""
        return self.sqlserver.extra_connection_attributes if self.sqlserver else None

    @model_validator(mode="after")
    def _check(self) -> SourceEndpointSettings:
        problems: list[Problem] = []
        if self.ssl_mode == "none":
            if not self.allow_unencrypted:
                problems.append(
                    (
                        ("ssl_mode",),
                        f"expected one of {SSL_MODES[self.engine]} (or allow_unencrypted: "
                        "true to accept an unencrypted link), found 'none'",
                        self.ssl_mode,
                    )
                )
        elif self.ssl_mode not in SSL_MODES[self.engine]:
            problems.append(
                (
                    ("ssl_mode",),
                    f"expected one of {SSL_MODES[self.engine]} for engine "
                    f"'{self.engine}', found '{self.ssl_mode}'",
                    self.ssl_mode,
                )
            )
        if self.ssl_mode.startswith("verify-") and self.certificate_arn is None:
            problems.append(
                (
                    ("certificate_arn",),
                    f"expected a DMS certificate ARN for ssl_mode '{self.ssl_mode}', "
                    "found nothing",
                    None,
                )
            )
        if self.engine in NEEDS_DATABASE and not self.database:
            problems.append(
                (
                    ("database",),
                    f"expected the database name for engine '{self.engine}', found nothing",
                    None,
                )
            )
        if self.database and "." in self.database and self.engine not in DOTTED_DATABASE_ENGINES:
            problems.append(
                (
                    ("database",),
                    f"expected a database name without '.' for engine '{self.engine}' (only "
                    f"an Oracle service name holds dots), found '{self.database}'",
                    self.database,
                )
            )
        if self.sqlserver is not None and self.engine != "sqlserver":
            problems.append(
                (
                    ("sqlserver",),
                    f"expected only with engine 'sqlserver', found engine '{self.engine}'",
                    None,
                )
            )
        if self.slot_name and self.engine not in ("postgres", "aurora-postgresql"):
            problems.append(
                (
                    ("slot_name",),
                    f"expected only with a PostgreSQL engine, found engine '{self.engine}'",
                    self.slot_name,
                )
            )
        raise_problems("SourceEndpointSettings", problems)
        return self


class WildcardSelection(Model):
    """Tables selected by pattern. DMS creates their DynamoDB tables at runtime (adopted later)."""

    schema_name: SourceName | None = Field(
        default=None, alias="schema", description="Source schema (required, never a pattern)."
    )
    table_pattern: TablePattern = Field(
        default="%", description="Table-name pattern; `%` matches any run of characters."
    )
    exclude: list[TablePattern] = Field(
        default_factory=list, description="Table-name patterns of this schema to leave out."
    )
    table_prefix: str = Field(
        default="",
        pattern=r"^([a-z][a-z0-9_]{0,30})?$",
        description="Extra name prefix after the environment prefix, e.g. `audit_`, so "
        "tables of two schemas cannot get the same DynamoDB name.",
    )
    composite_key_tables: list[SourceName] = Field(
        default_factory=list,
        description="Tables of this schema the pattern selects whose primary key is not one "
        "column (composite or none), as the source catalog or discovery reports them: each "
        "must be declared under `tables` (it then gets its own key) or excluded, else the "
        "plan fails. DMS's DynamoDB target does not carry such a table from a wildcard.",
    )
    keys: Literal["single_column"] = Field(
        default="single_column",
        description="How DMS keys the tables this wildcard selects and the stack does not "
        "declare: `single_column`, the only way DMS's DynamoDB target can key a table it "
        "knows only by pattern (its one-column primary key becomes the partition key). A "
        "matched table with a composite or no primary key is NOT carried: declare it under "
        "`tables` (the wildcard may still match it; the declaration wins).",
    )

    @model_validator(mode="after")
    def _check(self) -> WildcardSelection:
        problems: list[Problem] = []
        if self.schema_name is None:
            problems.append(
                (
                    ("schema",),
                    "expected the source schema of the wildcard (a wildcard across all "
                    "schemas would also capture system and DMS control tables), found nothing",
                    None,
                )
            )
        for i, pattern in enumerate(self.exclude):
            if pattern in (self.table_pattern, "%"):
                problems.append(
                    (
                        ("exclude", i),
                        f"expected a pattern narrower than table_pattern "
                        f"'{self.table_pattern}' (it would exclude every table), "
                        f"found '{pattern}'",
                        pattern,
                    )
                )
        if len(set(self.exclude)) != len(self.exclude):
            problems.append(
                (("exclude",), f"expected distinct patterns, found {self.exclude}", self.exclude)
            )
        raise_problems("WildcardSelection", problems)
        return self


class DmsTableSettings(Model):
    """DMS details of one declared table (the key under `dms.tables` is its logical name)."""

    primary_key: list[ColumnName] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_KEY_COLUMNS,
        description="The source table's primary key columns, as a check: they must be "
        "exactly the table's partition_key (+ sort_key), else rows would overwrite each other. "
        "More than two columns (or two carried as one key): the table's partition_key is a "
        "string attribute that is not a source column, and DMS builds it by joining the "
        "columns' values with key_separator (`${c1}|${c2}|${c3}`).",
    )
    key_separator: str = Field(
        default="|",
        pattern=r"^[|#:~^]$",
        description="Separator of a concatenated key's column values (one of | # : ~ ^). "
        "DMS does not escape it: a key column whose values contain it can make two rows "
        "share one key.",
    )
    exclude_columns: list[ColumnName] = Field(
        default_factory=list,
        description="Columns not copied to DynamoDB (never a key column).",
    )


class TaskSettings(Model):
    """The replication task: always full load + CDC."""

    start: bool = Field(
        default=False,
        description="Start the task when it is created (after every declared table and its "
        "stream mapping exist).",
    )
    max_full_load_subtasks: int = Field(
        default=8, ge=1, le=49, description="Tables loaded in parallel during the full load."
    )
    parallel_load_threads: int = Field(
        default=0,
        ge=0,
        le=200,
        description="Threads per table writing to DynamoDB during the full load (0: one). "
        "Raise together with the tables' write capacity.",
    )
    commit_rate: int = Field(
        default=10000, ge=1000, le=50000, description="Records per full-load commit."
    )
    lob_mode: Literal["limited", "full"] | None = Field(
        default=None,
        description="`limited` (LimitedSizeLobMode: LOBs up to lob_max_size_kb, fast) or "
        "`full` (FullLobMode: every LOB whole, in lob_chunk_size_kb pieces, slower). Default: "
        f"`limited` where the source endpoint fails the task on a truncated LOB "
        f"({', '.join(FAIL_ON_LOB_TRUNCATION)}), else `full`; `limited` is refused on the "
        "other engines (DMS would truncate silently). A LOB that makes an item over "
        "DynamoDB's 400 KB fails as a data error either way.",
    )
    lob_max_size_kb: int = Field(
        default=64,
        ge=1,
        le=350,
        description="Limited LOB mode: largest LOB copied (KB); DynamoDB items are at most "
        "400 KB. A larger LOB fails the task (PostgreSQL/Oracle endpoint setting).",
    )
    lob_chunk_size_kb: int = Field(
        default=64,
        ge=1,
        le=350,
        description="Full LOB mode: size of the pieces a LOB is read in (KB).",
    )
    on_data_error: Literal["stop_task"] = Field(
        default="stop_task",
        description="A row DMS cannot convert or must truncate (DataErrorPolicy, "
        "DataTruncationErrorPolicy): `stop_task` (the task stops: a DMS failure event and the "
        "not-running alarm reach the alarm topic). DMS's SUSPEND_TABLE is refused: a "
        "suspended table shows only in the task's table statistics, which no alarm watches "
        "(docs/dms.md). Never only logged.",
    )
    on_apply_error: Literal["stop_task", "exceptions_table"] = Field(
        default="stop_task",
        description="A change DMS cannot apply to DynamoDB (ApplyError*Policy): `stop_task`, "
        "or `exceptions_table` (the change is written to DMS's awsdms_apply_exceptions table "
        "and an alarm on that table's writes notifies the alarm topic; replication goes on). "
        "DMS's SUSPEND_TABLE is refused (no alarm watches table states).",
    )

    @field_validator("on_data_error", "on_apply_error", mode="before")
    @classmethod
    def _no_silent_suspend(cls, value: object) -> object:
        if value == "suspend_table":
            raise ValueError(
                "suspend_table is refused: a suspended table shows only in DMS's table "
                "statistics and no alarm watches them, so its changes would stop silently; "
                "use stop_task (or, for on_apply_error, exceptions_table, which has an alarm)"
            )
        return value
    log_severity: Literal[
        "LOGGER_SEVERITY_ERROR",
        "LOGGER_SEVERITY_WARNING",
        "LOGGER_SEVERITY_INFO",
        "LOGGER_SEVERITY_DEFAULT",
        "LOGGER_SEVERITY_DEBUG",
    ] = Field(default="LOGGER_SEVERITY_DEFAULT", description="CloudWatch log severity.")
    log_retention_days: int = Field(
        default=30, ge=1, le=3653, description="Retention of the task's CloudWatch log group."
    )


class DmsAlarmSettings(Model):
    """Latency and liveness alarms of the task (to the stack's alarm topic)."""

    cdc_latency_source_seconds: int = Field(
        default=300, ge=10, description="CDCLatencySource threshold (seconds)."
    )
    cdc_latency_target_seconds: int = Field(
        default=600, ge=10, description="CDCLatencyTarget threshold (seconds)."
    )
    evaluation_minutes: int = Field(
        default=5, ge=1, le=1440, description="Minutes above the threshold before alarming."
    )
    not_reporting_minutes: int = Field(
        default=15,
        ge=5,
        le=1440,
        description="Alarm when the task publishes no CDC metrics this long (it left the "
        "running state); only declared when task.start is true.",
    )


class DmsSettings(Model):
    """`dms-event-bus:dms`: change data capture from the legacy database into the tables."""

    capacity: Capacity = Field(description="`instance` or `serverless` replication capacity.")
    network: NetworkSettings
    account_roles: Literal["existing"] = Field(
        default="existing",
        description="The account-wide roles dms-vpc-role and dms-cloudwatch-logs-role exist "
        f"before the stack: `{BOOTSTRAP_COMMAND}` creates them once per AWS account (no stack "
        "owns them). `create` is refused (see docs/dms.md, Account roles).",
    )
    source: SourceEndpointSettings
    default_schema: SourceName | None = Field(
        default=None,
        description="Schema of declared tables whose `source` is not given.",
    )
    tables: dict[LogicalName, DmsTableSettings] = Field(
        default_factory=dict, description="Per declared table: key check, excluded columns."
    )
    wildcards: list[WildcardSelection] = Field(
        default_factory=list, description="Extra tables selected by schema + pattern."
    )
    task: TaskSettings = Field(default_factory=TaskSettings)
    alarms: DmsAlarmSettings = Field(default_factory=DmsAlarmSettings)

    @field_validator("account_roles", mode="before")
    @classmethod
    def _account_roles_have_one_owner(cls, value: Any) -> Any:
        if value == "create":
            raise ValueError(ACCOUNT_ROLES_CREATE_REFUSED)
        return value

    @model_validator(mode="after")
    def _no_silent_lob_truncation(self) -> DmsSettings:
        engine = self.source.engine
        if self.task.lob_mode == "limited" and engine not in FAIL_ON_LOB_TRUNCATION:
            raise_problems(
                "DmsSettings",
                [
                    (
                        ("task", "lob_mode"),
                        f"expected 'full' (or no key) for engine '{engine}', found 'limited': "
                        f"DMS truncates a {engine} LOB over lob_max_size_kb with only a log "
                        "warning (only PostgreSQL and Oracle endpoints can fail the task on "
                        "truncation)",
                        self.task.lob_mode,
                    )
                ],
            )
        return self

    @property
    def lob_mode(self) -> Literal["limited", "full"]:
        """The LOB mode the task runs: the setting, else by engine (see TaskSettings.lob_mode)."""
        if self.task.lob_mode is not None:
            return self.task.lob_mode
        return "limited" if self.source.engine in FAIL_ON_LOB_TRUNCATION else "full"


# -- cross-checks against the declared tables -------------------------------------------


def dms_pattern_regex(pattern: str, *, case_sensitive: bool = False) -> re.Pattern[str]:
    """A DMS name pattern as a regex: `%` any run, `_` any one character (as SQL LIKE;
    treating `_` as a wildcard errs on the side of finding an overlap). Case-insensitive
    unless asked: DMS compares case-sensitively, but a case-insensitive source (SQL Server's
    default collation) matches either way, so the checks err towards a match."""
    parts = []
    for ch in pattern:
        if ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    flags = re.DOTALL if case_sensitive else re.IGNORECASE | re.DOTALL
    return re.compile("".join(parts), flags)


def dms_pattern_matches(pattern: str, name: str, *, case_sensitive: bool = False) -> bool:
    return dms_pattern_regex(pattern, case_sensitive=case_sensitive).fullmatch(name) is not None


def source_of(logical: str, table: TableSettings, default_schema: str | None) -> tuple[str, str]:
    """(schema, table) of a declared table in the source database."""
    if table.source is not None:
        return table.source.schema_name, table.source.table
    if default_schema is None:
        raise ValueError("no source and no dms.default_schema")
    return default_schema, logical


def dms_problems(dms: DmsSettings, tables: Mapping[str, TableSettings]) -> list[Problem]:
    """Problems of `dms` given the declared tables: (key path, message, value found)."""
    problems: list[Problem] = []
    sources: dict[tuple[str, str], str] = {}
    for logical, table in tables.items():
        if table.source is None and dms.default_schema is None:
            problems.append(
                (
                    ("tables", logical, "source"),
                    "expected {schema, table} or dms.default_schema, found neither",
                    None,
                )
            )
            continue
        schema, name = source_of(logical, table, dms.default_schema)
        key = (schema.lower(), name.lower())
        if key in sources:
            problems.append(
                (
                    ("tables", logical, "source"),
                    f"expected each source table once, found {schema}.{name} also "
                    f"declared as tables.{sources[key]}",
                    f"{schema}.{name}",
                )
            )
        sources.setdefault(key, logical)
        for i, wildcard in enumerate(dms.wildcards):
            if not _same_schema(wildcard.schema_name, schema):
                continue
            excluded = [p for p in wildcard.exclude if dms_pattern_matches(p, name)]
            if excluded:
                problems.append(
                    (
                        ("dms", "wildcards", i, "exclude"),
                        f"expected no pattern matching declared table {schema}.{name} "
                        f"(tables.{logical}; a DMS exclusion removes it from the task), "
                        f"found {excluded}",
                        wildcard.exclude,
                    )
                )
                continue
            if not dms_pattern_matches(wildcard.table_pattern, name):
                continue
            wanted = wildcard_table_name(wildcard, name)
            if wanted != logical:
                problems.append(
                    (
                        ("tables", logical),
                        f"expected the logical name '{wanted}' for {schema}.{name}, found "
                        f"'{logical}': dms.wildcards[{i}] ('{wildcard.schema_name}'.'"
                        f"{wildcard.table_pattern}') also matches it, and its name rules give "
                        f"<prefix>{wanted}; the AWS DMS guide does not say whether they or "
                        f"the declaration's object mapping name the table, so both must agree "
                        f"(rename the table to '{wanted}' or narrow the pattern)",
                        logical,
                    )
                )
        for i, wildcard in enumerate(dms.wildcards):
            if _same_schema(wildcard.schema_name, schema) and dms_pattern_matches(
                wildcard.table_pattern, name
            ):
                continue
            if names_may_overlap(wildcard.table_prefix, wildcard.table_pattern, logical, ""):
                problems.append(
                    (
                        ("dms", "wildcards", i, "table_prefix"),
                        f"expected a table_prefix with which no table this wildcard selects "
                        f"is named like declared tables.{logical} (<prefix>{logical}), found "
                        f"'{wildcard.table_prefix}' with pattern '{wildcard.table_pattern}': "
                        f"two source tables would write one DynamoDB table",
                        wildcard.table_prefix,
                    )
                )
    problems += _wildcard_pair_problems(dms.wildcards)
    problems += _composite_key_table_problems(dms, sources)
    case_problems: list[Problem] = []
    if dms.source.engine in UPPER_CASE_ENGINES:
        case_problems = _oracle_case_problems(dms, tables)
        problems += case_problems
    # a key in the wrong case is said once, by the case check, not again as a key mismatch
    miscased = {loc[1] for loc, _, _ in case_problems if loc[0] == "tables"} | {
        loc[2] for loc, _, _ in case_problems if loc[:2] == ("dms", "tables")
    }

    for logical, extra in dms.tables.items():
        if logical not in tables:
            problems.append(
                (
                    ("dms", "tables", logical),
                    f"expected the logical name of a declared table (one of "
                    f"{sorted(tables)}), found '{logical}'",
                    logical,
                )
            )
            continue
        table = tables[logical]
        keys = table.key_names
        for i, column in enumerate(extra.exclude_columns):
            if column in keys:
                problems.append(
                    (
                        ("dms", "tables", logical, "exclude_columns", i),
                        f"expected no key column of tables.{logical} (keys {keys}), "
                        f"found '{column}'",
                        column,
                    )
                )
        if extra.primary_key is not None and logical not in miscased:
            problems += _key_problems(logical, table, extra.primary_key)
    return problems


def _composite_key_table_problems(
    dms: DmsSettings, declared: Mapping[tuple[str, str], str]
) -> list[Problem]:
    """Each table a wildcard lists as composite-keyed is selected by it and declared."""
    problems: list[Problem] = []
    for i, wildcard in enumerate(dms.wildcards):
        if wildcard.schema_name is None:
            continue
        for k, name in enumerate(wildcard.composite_key_tables):
            loc: tuple[str | int, ...] = ("dms", "wildcards", i, "composite_key_tables", k)
            if not _wildcard_selects(wildcard, name):
                problems.append(
                    (
                        loc,
                        f"expected a table dms.wildcards[{i}] selects ('{wildcard.schema_name}'"
                        f".'{wildcard.table_pattern}' minus {wildcard.exclude}), found '{name}'"
                        ", which it does not select: remove it from the list",
                        name,
                    )
                )
            elif (wildcard.schema_name.lower(), name.lower()) not in declared:
                problems.append(
                    (
                        loc,
                        f"expected {wildcard.schema_name}.{name} declared under `tables` "
                        f"(source {{schema: {wildcard.schema_name}, table: {name}}}, its "
                        f"logical name '{wildcard_table_name(wildcard, name)}', with "
                        "partition_key + sort_key or a concatenated key) or added to "
                        f"dms.wildcards[{i}].exclude, found it only in the wildcard: DMS's "
                        "DynamoDB target does not carry a wildcard table whose primary key is "
                        "not one column, so its rows would never reach DynamoDB",
                        name,
                    )
                )
    return problems


def _wildcard_selects(wildcard: WildcardSelection, table: str) -> bool:
    """Whether the wildcard's include matches `table` and none of its exclusions do."""
    return dms_pattern_matches(wildcard.table_pattern, table) and not any(
        dms_pattern_matches(p, table) for p in wildcard.exclude
    )


def wildcard_tables_not_carried(
    dms: DmsSettings,
    tables: Mapping[str, TableSettings],
    catalog: Mapping[tuple[str, str], Sequence[str]],
) -> list[Problem]:
    """The hook for a source catalog (discovery, preflight): every table `catalog` holds
    ((schema, table) -> primary-key columns, empty for none) that only a wildcard selects
    and whose key is not one column — DMS's DynamoDB target would select it and write
    nothing ("only supports replication of tables with non-composite primary keys, unless
    you specify an object mapping", AWS DMS guide, DynamoDB target limitations). One
    problem per table, at the wildcard's key path, with the fix."""
    # Declared tables as written: DMS's object-locators compare names case-sensitively, so
    # `s.a` is not covered by a declared `s.A` (wildcard patterns are matched
    # case-insensitively below, which may name more tables, never fewer).
    declared = {
        source_of(logical, table, dms.default_schema)
        for logical, table in tables.items()
        if table.source is not None or dms.default_schema is not None
    }
    problems: list[Problem] = []
    for (schema, name), primary_key in sorted(catalog.items()):
        if len(primary_key) == 1 or (schema, name) in declared:
            continue
        for i, wildcard in enumerate(dms.wildcards):
            # may select: the include in any case, exclusions only as written
            if (
                _same_schema(wildcard.schema_name, schema)
                and dms_pattern_matches(wildcard.table_pattern, name)
                and not any(
                    dms_pattern_matches(p, name, case_sensitive=True) for p in wildcard.exclude
                )
            ):
                key = list(primary_key) if primary_key else "none"
                problems.append(
                    (
                        ("dms", "wildcards", i),
                        f"{schema}.{name} (primary key {key}) is selected by "
                        f"dms.wildcards[{i}] but not carried: DMS's DynamoDB target keys a "
                        "wildcard table only by a one-column primary key. Declare it under "
                        f"`tables` (logical name '{wildcard_table_name(wildcard, name)}', with "
                        "its own key; more than two columns: a concatenated key), or add it "
                        f"to dms.wildcards[{i}].exclude",
                        f"{schema}.{name}",
                    )
                )
                break
    return problems


def _oracle_case_problems(dms: DmsSettings, tables: Mapping[str, TableSettings]) -> list[Problem]:
    """Oracle names as Oracle stores them. DMS matches names case-sensitively ("DMS selection
    rules are case-sensitive", AWS DMS guide, Selection rules) and Oracle keeps unquoted
    names in upper case: `fin.gl_je_lines` selects nothing, and a key attribute
    `je_header_id` is not the `JE_HEADER_ID` DMS writes. Refused, with the name to write,
    rather than upper-cased behind the user's back (a quoted lower-case name is then
    unreachable: this stack does not support those)."""
    problems: list[Problem] = []

    def check(loc: tuple[str | int, ...], name: str | None, what: str) -> None:
        if name is not None and name != name.upper():
            problems.append(
                (
                    loc,
                    f"expected '{name.upper()}' ({what} as Oracle stores an unquoted name), "
                    f"found '{name}': DMS compares Oracle names case-sensitively, so "
                    f"'{name}' would match nothing (names created quoted in lower case are "
                    "not supported)",
                    name,
                )
            )

    check(("dms", "default_schema"), dms.default_schema, "the schema")
    for logical, table in tables.items():
        extra = dms.tables.get(logical)
        if table.source is None:
            if dms.default_schema is not None:
                problems.append(
                    (
                        ("tables", logical, "source"),
                        f"expected {{schema, table}} for an Oracle table, found none: the "
                        f"logical name '{logical}' is lower case and DMS compares Oracle "
                        f"names case-sensitively (write source: {{schema: "
                        f"{dms.default_schema.upper()}, table: {logical.upper()}}})",
                        None,
                    )
                )
        else:
            check(("tables", logical, "source", "schema"), table.source.schema_name, "the schema")
            check(("tables", logical, "source", "table"), table.source.table, "the table")
        primary_key = extra.primary_key if extra is not None else None
        built = (
            primary_key is not None
            and len(primary_key) >= 2
            and table.partition_key.name.upper() not in [c.upper() for c in primary_key]
        )
        if not built:
            check(
                ("tables", logical, "partition_key", "name"),
                table.partition_key.name,
                "the key column",
            )
        if table.sort_key is not None:
            check(("tables", logical, "sort_key", "name"), table.sort_key.name, "the key column")
        for j, column in enumerate(primary_key or []):
            check(("dms", "tables", logical, "primary_key", j), column, "the column")
        for j, column in enumerate(extra.exclude_columns if extra is not None else []):
            check(("dms", "tables", logical, "exclude_columns", j), column, "the column")
    for i, wildcard in enumerate(dms.wildcards):
        check(("dms", "wildcards", i, "schema"), wildcard.schema_name, "the schema")
        check(("dms", "wildcards", i, "table_pattern"), wildcard.table_pattern, "the pattern")
        for j, pattern in enumerate(wildcard.exclude):
            check(("dms", "wildcards", i, "exclude", j), pattern, "the pattern")
        for j, name in enumerate(wildcard.composite_key_tables):
            check(("dms", "wildcards", i, "composite_key_tables", j), name, "the table")
    return problems


def _same_schema(a: str | None, b: str) -> bool:
    return a is not None and a.lower() == b.lower()


def wildcard_table_name(wildcard: WildcardSelection, table: str) -> str:
    """The logical name DMS gives a table the wildcard selects (after the environment
    prefix): `convert-lowercase`, then `add-prefix` of table_prefix."""
    return f"{wildcard.table_prefix}{table.lower()}"


def _ends(literal: str, pattern: str) -> tuple[str, str, bool]:
    """(head, tail, has_wildcard) of the names `literal + pattern` matches, lowercased:
    head = everything before the first wildcard, tail = everything after the last."""
    pattern = pattern.lower()
    wild = [i for i, ch in enumerate(pattern) if ch in "%_"]
    if not wild:
        whole = literal.lower() + pattern
        return whole, whole, False
    return literal.lower() + pattern[: wild[0]], pattern[wild[-1] + 1 :], True


def names_may_overlap(literal_a: str, pattern_a: str, literal_b: str, pattern_b: str) -> bool:
    """Whether some name is both `literal_a + <a name pattern_a matches>` and
    `literal_b + <a name pattern_b matches>`, case-insensitively. Errs towards True: two
    patterns with wildcards overlap unless their literal heads or tails contradict."""
    head_a, tail_a, wild_a = _ends(literal_a, pattern_a)
    head_b, tail_b, wild_b = _ends(literal_b, pattern_b)
    if not wild_a and not wild_b:
        return head_a == head_b
    if not wild_a or not wild_b:
        (lit, pat, name) = (
            (literal_b, pattern_b, head_a) if not wild_a else (literal_a, pattern_a, head_b)
        )
        if not name.startswith(lit.lower()):
            return False
        return dms_pattern_matches(pat, name[len(lit) :])
    heads = head_a.startswith(head_b) or head_b.startswith(head_a)
    tails = tail_a.endswith(tail_b) or tail_b.endswith(tail_a)
    return heads and tails


def _wildcard_pair_problems(wildcards: list[WildcardSelection]) -> list[Problem]:
    """Each table selected by one wildcard at most, each wildcard name given to one table,
    no exclusion removing what another wildcard selects (DMS applies exclusions to every
    rule)."""
    problems: list[Problem] = []
    for j, later in enumerate(wildcards):
        if later.schema_name is None:
            continue
        for i, earlier in enumerate(wildcards):
            if i == j or earlier.schema_name is None:
                continue
            same = earlier.schema_name.lower() == later.schema_name.lower()
            if same:
                for k, pattern in enumerate(later.exclude):
                    if names_may_overlap("", pattern, "", earlier.table_pattern):
                        problems.append(
                            (
                                ("dms", "wildcards", j, "exclude", k),
                                f"expected an exclusion no table of dms.wildcards[{i}] "
                                f"('{earlier.table_pattern}') matches, found '{pattern}': "
                                "a DMS exclusion removes a table whichever rule selects it",
                                pattern,
                            )
                        )
            if i > j:
                continue
            if same and names_may_overlap("", earlier.table_pattern, "", later.table_pattern):
                problems.append(
                    (
                        ("dms", "wildcards", j, "table_pattern"),
                        f"expected a pattern that no table of schema '{later.schema_name}' "
                        f"matches together with dms.wildcards[{i}] ('{earlier.table_pattern}'), "
                        f"found '{later.table_pattern}': a table both select would get both "
                        "wildcards' name rules",
                        later.table_pattern,
                    )
                )
            elif names_may_overlap(
                earlier.table_prefix, earlier.table_pattern, later.table_prefix, later.table_pattern
            ):
                problems.append(
                    (
                        ("dms", "wildcards", j, "table_prefix"),
                        f"expected a table_prefix that keeps this wildcard's DynamoDB names "
                        f"apart from those of dms.wildcards[{i}] ('{earlier.table_prefix}' + "
                        f"'{earlier.table_pattern}'), found '{later.table_prefix}' + "
                        f"'{later.table_pattern}': a table of each could get the same name",
                        later.table_prefix,
                    )
                )
    return problems


def _key_problems(logical: str, table: TableSettings, primary_key: list[str]) -> list[Problem]:
    """The declared DynamoDB key against the source primary key: the same columns, or (two
    or more columns) one string partition key DMS concatenates from them."""
    problems: list[Problem] = []
    keys = table.key_names
    partition = table.partition_key
    if partition.name not in primary_key and len(primary_key) >= 2:
        # a concatenated key: DMS builds the partition key from every key column
        if partition.type != "S":
            problems.append(
                (
                    ("tables", logical, "partition_key"),
                    f"expected type 'S' for the concatenated key '{partition.name}' of "
                    f"{primary_key} (DMS joins the values into a string), found "
                    f"'{partition.type}'",
                    partition.type,
                )
            )
        if table.sort_key is not None:
            problems.append(
                (
                    ("tables", logical, "sort_key"),
                    f"expected no sort_key next to the concatenated key '{partition.name}' of "
                    f"{primary_key}, found '{table.sort_key.name}'",
                    table.sort_key.name,
                )
            )
        return problems
    if len(primary_key) > 2:
        problems.append(
            (
                ("tables", logical, "partition_key"),
                f"expected a string attribute that is not a source column as the key of a "
                f"primary key of {len(primary_key)} columns {primary_key} (DMS builds it "
                f"from them), found '{partition.name}'",
                partition.name,
            )
        )
        return problems
    declared = set(keys)
    source_key = set(primary_key)
    for column in primary_key:
        if column not in declared:
            loc: tuple[str | int, ...] = (
                ("tables", logical, "sort_key")
                if table.sort_key is None and len(primary_key) > 1
                else ("tables", logical, "partition_key")
            )
            problems.append(
                (
                    loc,
                    f"expected source key column '{column}' (dms.tables.{logical}."
                    f"primary_key {primary_key}) as a key of the table, found "
                    f"keys {keys}: without it rows sharing {keys} overwrite each other",
                    keys,
                )
            )
    for column in keys:
        if column not in source_key:
            problems.append(
                (
                    ("dms", "tables", logical, "primary_key"),
                    f"expected key column '{column}' of tables.{logical} in the source "
                    f"primary key, found {primary_key}",
                    primary_key,
                )
            )
    return problems


def check_dms(dms: DmsSettings | None, tables: Mapping[str, TableSettings]) -> None:
    """Raise a ValidationError (one entry per problem, each at its key path) if `dms` does
    not fit the declared tables. Called from StackSettings' validator. A stack without
    declared tables is one whose DMS wildcards select every table (a wildcard-only stack)."""
    if not tables and (dms is None or not dms.wildcards):
        raise_problems(
            "StackSettings",
            [
                (
                    ("tables",),
                    "expected at least one declared table, or a dms section whose "
                    "dms.wildcards select the tables, found neither",
                    {},
                )
            ],
        )
    if dms is not None:
        raise_problems("StackSettings", dms_problems(dms, tables))
