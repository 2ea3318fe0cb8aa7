"""Config models of the DMS source: capacity, network, source endpoint, selection, task, alarms.

The stack file's `dms-event-bus:dms` section. Credentials of the legacy database are only
ever a Secrets Manager ARN: there is no password field, so no password can reach config or
state. `check_dms(...)` cross-checks the section against the declared `tables` (key columns,
wildcard overlaps, exclusions); StackSettings calls it, so bad config fails before any
resource is declared, with each problem's key path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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


class SourceEndpointSettings(Model):
    """The legacy database. Credentials (and host/port for DMS) come from the secret."""

    engine: Engine = Field(description=f"Source engine, one of {ENGINES}.")
    server: HostName = Field(
        description="Host name of the database (must match the secret's `host`); used by "
        "the preflight tool and in docs, DMS reads the host from the secret."
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Port; default: the engine's default port."
    )
    database: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_$#-]{0,127}$",
        description="Database (PostgreSQL, SQL Server) or service name (Oracle).",
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

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.engine]

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
        max_length=2,
        description="The source table's primary key columns, as a check: they must be "
        "exactly the table's partition_key (+ sort_key), else rows would overwrite each other.",
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
    lob_max_size_kb: int = Field(
        default=64,
        ge=1,
        le=350,
        description="Largest LOB copied (KB); DynamoDB items are at most 400 KB. Larger LOBs "
        "fail the table instead of being truncated silently (PostgreSQL/Oracle).",
    )
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


# -- cross-checks against the declared tables -------------------------------------------


def dms_pattern_regex(pattern: str) -> re.Pattern[str]:
    """A DMS name pattern as a regex: `%` any run, `_` any one character (as SQL LIKE;
    treating `_` as a wildcard errs on the side of finding an overlap)."""
    parts = []
    for ch in pattern:
        if ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def dms_pattern_matches(pattern: str, name: str) -> bool:
    return dms_pattern_regex(pattern).fullmatch(name) is not None


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
            if wildcard.schema_name is None or wildcard.schema_name.lower() != schema.lower():
                continue
            if not dms_pattern_matches(wildcard.table_pattern, name):
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
            else:
                problems.append(
                    (
                        ("dms", "wildcards", i, "table_pattern"),
                        f"expected a pattern not matching declared table {schema}.{name} "
                        f"(tables.{logical}; the wildcard's name rules would rename it too), "
                        f"found '{wildcard.table_pattern}'",
                        wildcard.table_pattern,
                    )
                )

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
        if extra.primary_key is not None:
            declared = set(keys)
            source_key = set(extra.primary_key)
            for column in extra.primary_key:
                if column not in declared:
                    loc: tuple[str | int, ...] = (
                        ("tables", logical, "sort_key")
                        if table.sort_key is None and len(extra.primary_key) > 1
                        else ("tables", logical, "partition_key")
                    )
                    problems.append(
                        (
                            loc,
                            f"expected source key column '{column}' (dms.tables.{logical}."
                            f"primary_key {extra.primary_key}) as a key of the table, found "
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
                            f"primary key, found {extra.primary_key}",
                            extra.primary_key,
                        )
                    )
    return problems


def check_dms(dms: DmsSettings | None, tables: Mapping[str, TableSettings]) -> None:
    """Raise a ValidationError (one entry per problem, each at its key path) if `dms` does
    not fit the declared tables. Called from StackSettings' validator."""
    if dms is not None:
        raise_problems("StackSettings", dms_problems(dms, tables))
