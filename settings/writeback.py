"""Config of the legacy writeback: DynamoDB stream changes written back to the legacy database.

Stack file section `dms-event-bus:writeback` (see docs/writeback.md for a full example).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from .base import ColumnName, LogicalName, Model, SecretArn
from .ingest import (
    INGEST_ITEM_ATTRIBUTES,
    INGEST_KEY,
    INGEST_STATUS,
    INGEST_TTL_ATTRIBUTE,
    INGEST_VERSION,
)

RdsClusterArn = Annotated[
    str, Field(pattern=r"^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:cluster:[A-Za-z0-9-]{1,63}$")
]

#: `schema.table` of the legacy database (both parts as the database spells them).
LegacyTableName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_$#]{0,127}\.[A-Za-z_][A-Za-z0-9_$#]{0,127}$"),
]
#: A SQL type used in an explicit CAST of a value (e.g. `date`, `numeric(12,2)`, `jsonb`).
SqlTypeName = Annotated[
    str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_ ]{0,40}(\(\s*\d{1,3}(\s*,\s*\d{1,3})?\s*\))?$")
]


class DataApiTarget(Model):
    """Aurora through the RDS Data API: no connection, no driver, no network path to port 5432."""

    kind: Literal["data_api"]
    cluster_arn: RdsClusterArn = Field(description="ARN of the Aurora cluster (Data API enabled).")
    secret_arn: SecretArn = Field(
        description="Secrets Manager secret the Data API signs in with (username/password)."
    )
    database: str = Field(min_length=1, max_length=64, description="Database name.")
    engine: Literal["postgres", "mysql"] = Field(
        default="postgres", description="Aurora engine: decides the SQL dialect."
    )


class SqlTarget(Model):
    """A direct connection (psycopg 3 / PyMySQL, bundled in the Lambda package)."""

    kind: Literal["postgres", "mysql"]
    host: str = Field(min_length=1, max_length=253, description="DNS name or IP, in the VPC.")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Default: 5432 (postgres) or 3306 (mysql)."
    )
    database: str = Field(min_length=1, max_length=64, description="Database name.")
    secret_arn: SecretArn = Field(
        description="Secrets Manager secret with JSON keys `username` and `password`."
    )
    tls: bool = Field(default=True, description="Require TLS on the connection.")
    connect_timeout_seconds: int = Field(default=5, ge=1, le=60)

    @property
    def effective_port(self) -> int:
        return self.port or (5432 if self.kind == "postgres" else 3306)


Target = Annotated[DataApiTarget | SqlTarget, Field(discriminator="kind")]


class VpcSettings(Model):
    """Where the writeback Lambda runs: subnets that reach the database."""

    subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(
        min_length=1, description="Private subnets (two or more AZs recommended)."
    )
    security_group_ids: list[Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]] = Field(
        min_length=1, description="Security groups allowed to reach the database port."
    )


class TableMapping(Model):
    """How the items of one DynamoDB table become rows of one legacy table."""

    origin: Literal["ingest_api", "tables"] = Field(
        default="ingest_api",
        description="Where the source table is declared: an `ingest_api.entities` entity "
        "(app-owned table) or a waypoint table under `tables`.",
    )
    legacy_table: LegacyTableName = Field(description="`schema.table` in the legacy database.")
    key_columns: dict[ColumnName, ColumnName] = Field(
        min_length=1,
        description="Item key attribute -> legacy primary key column (all key columns). "
        "origin ingest_api: exactly `{id: <column>}` (the IngestApi table's key).",
    )
    columns: dict[ColumnName, ColumnName] = Field(
        default_factory=dict,
        description="Item attribute -> legacy column for every written non-key column. "
        "origin ingest_api: the entity's fields or received_at, updated_at, updated_by, "
        "request_id (expires_at when request-like).",
    )
    version_attribute: ColumnName = Field(
        default="version",
        description="Item attribute holding the change's version (N); `version` for "
        "origin ingest_api.",
    )
    version_column: ColumnName = Field(
        default="version", description="Legacy column holding the row's version."
    )
    column_types: dict[ColumnName, SqlTypeName] = Field(
        default_factory=dict,
        description="Legacy column -> SQL type: the value is sent as CAST(value AS type). "
        "Needed where the driver cannot infer it (Data API: date/timestamp/uuid/json).",
    )
    deletes: bool = Field(
        default=True, description="Write deletes back (guarded by the version)."
    )

    @model_validator(mode="after")
    def _distinct_columns(self) -> TableMapping:
        targets = [*self.key_columns.values(), *self.columns.values()]
        dupes = sorted({c for c in targets if targets.count(c) > 1})
        if dupes:
            raise ValueError(f"expected each legacy column mapped once, found {dupes} repeated")
        if self.version_column in targets:
            raise ValueError(
                f"expected version_column '{self.version_column}' to be mapped only as the "
                "version, found it also under key_columns/columns"
            )
        if self.version_attribute in self.key_columns or self.version_attribute in self.columns:
            raise ValueError(
                f"expected version_attribute '{self.version_attribute}' to be mapped only as the "
                "version, found it also under key_columns/columns"
            )
        unknown = sorted(set(self.column_types) - {*targets, self.version_column})
        if unknown:
            raise ValueError(f"column_types: expected mapped legacy columns, found {unknown}")
        return self


class ItemContract(Model):
    """Attributes of the write path's items (agreed with the IngestApi, docs/ingest-api.md)."""

    status_attribute: ColumnName = Field(
        default="status",
        description="Write-path marker and status (accepted/applied/error). An item "
        "image without it did not come from the write path (e.g. DMS) and is never written back.",
    )
    status_detail_attribute: ColumnName = Field(
        default="status_detail", description="Reason written next to status `error`."
    )
    status_only_attributes: list[ColumnName] = Field(
        default_factory=lambda: ["status", "status_detail"],
        description="An update changing only these attributes is a status update: ignored.",
    )
    status_values: list[str] = Field(
        default_factory=lambda: ["accepted", "applied", "conflict", "error"],
        description="Status values the write path uses (`conflict`: the legacy row refused the "
        "change); any other value is not a marker.",
    )

    @model_validator(mode="after")
    def _status_is_status_only(self) -> ItemContract:
        missing = {self.status_attribute, self.status_detail_attribute} - set(
            self.status_only_attributes
        )
        if missing:
            raise ValueError(
                f"status_only_attributes: expected to include {sorted(missing)}, "
                f"found {self.status_only_attributes}"
            )
        return self


class WritebackFunctionSettings(Model):
    """The writeback Lambda."""

    memory_mb: int = Field(default=512, ge=128, le=10240)
    timeout_seconds: int = Field(default=60, ge=3, le=900)
    reserved_concurrency: int | None = Field(
        default=None, ge=1, le=1000, description="Cap on concurrent writers to the database."
    )
    log_retention_days: int = Field(default=30, ge=1, le=3653)


class WritebackMappingSettings(Model):
    """The DynamoDB Streams event source mappings (same knobs as the fan-in's)."""

    batch_size: int = Field(default=200, ge=1, le=10000, description="Records per invocation.")
    batching_window_seconds: int = Field(default=1, ge=0, le=300)
    parallelization_factor: int = Field(default=1, ge=1, le=10)
    maximum_retry_attempts: int = Field(
        default=5, ge=0, le=10000, description="Bounded retries before the on-failure DLQ."
    )
    maximum_record_age_seconds: int = Field(
        default=21600,
        ge=60,
        le=86400,
        description="Older records go to the DLQ instead of blocking the shard.",
    )


class WritebackSettings(Model):
    """Write changes of chosen tables' streams back to the legacy database."""

    target: Target
    vpc: VpcSettings
    tables: dict[LogicalName, TableMapping] = Field(
        min_length=1,
        description="Source table (logical name of a waypoint or write-path table) -> mapping.",
    )
    item_contract: ItemContract = Field(default_factory=ItemContract)
    function: WritebackFunctionSettings = Field(default_factory=WritebackFunctionSettings)
    mapping: WritebackMappingSettings = Field(default_factory=WritebackMappingSettings)

    @model_validator(mode="after")
    def _contract_vs_tables(self) -> WritebackSettings:
        reserved = set(self.item_contract.status_only_attributes)
        for name, table in self.tables.items():
            clash = sorted(reserved & {*table.key_columns, *table.columns,
                                       table.version_attribute})
            if clash:
                raise ValueError(
                    f"tables.{name}: expected no written attribute among "
                    f"item_contract.status_only_attributes, found {clash}"
                )
        return self

    def handler_config(self, physical_tables: dict[str, str]) -> dict[str, Any]:
        """The plain-JSON config the handler reads (WRITEBACK_CONFIG).

        `physical_tables` maps each logical source name to its physical DynamoDB table name.
        """
        target = self.target.model_dump()
        if isinstance(self.target, SqlTarget):
            target["port"] = self.target.effective_port
        return {
            "target": target,
            "contract": self.item_contract.model_dump(),
            "tables": {
                physical_tables[logical]: {
                    "source": logical,
                    **mapping.model_dump(),
                }
                for logical, mapping in self.tables.items()
            },
        }


Problem = tuple[tuple[str | int, ...], str, Any]


def writeback_problems(
    writeback: WritebackSettings,
    tables: Mapping[str, Any],
    ingest_entities: Mapping[str, Any],
) -> list[Problem]:
    """Problems of `writeback` against the rest of the stack: (key path, message, found).

    Every source must be declared where its `origin` says; a waypoint table's key attributes
    must be the mapping's key attributes.
    """
    problems: list[Problem] = []
    for name, mapping in writeback.tables.items():
        path: tuple[str | int, ...] = ("writeback", "tables", name)
        if mapping.origin == "tables":
            declared = tables.get(name)
            if declared is None:
                problems.append((path, "expected a table declared under `tables` "
                                 f"({', '.join(sorted(tables)) or 'none'}), found "
                                 f"'{name}'", name))
                continue
            keys = sorted(declared.key_names)
            if sorted(mapping.key_columns) != keys:
                problems.append(((*path, "key_columns"), f"expected the key attributes of "
                                 f"tables.{name}: {keys}, found {sorted(mapping.key_columns)}",
                                 dict(mapping.key_columns)))
        elif name not in ingest_entities:
            problems.append((path, "expected an entity declared under `ingest_api.entities` "
                             f"({', '.join(sorted(ingest_entities)) or 'none'}), found "
                             f"'{name}' (set origin: tables for a waypoint table)", name))
        else:
            problems += _ingest_problems(path, mapping, ingest_entities[name],
                                         writeback.item_contract)
    return problems


def _ingest_problems(
    path: tuple[str | int, ...], mapping: TableMapping, entity: Any, contract: ItemContract
) -> list[Problem]:
    """An IngestApi table's items as the IngestApi writes them (docs/ingest-api.md): key
    `id` alone, version in `version`, status in `status`, the entity's fields and the
    attributes the write path adds."""
    problems: list[Problem] = []
    keys = dict(mapping.key_columns)
    if list(keys) != [INGEST_KEY]:
        problems.append((
            (*path, "key_columns"),
            f"expected the IngestApi table's key alone: {{{INGEST_KEY}: <legacy key column>}}, "
            f"found {keys} (a body field is no key: an item whose value changes would become "
            "a second legacy row, and the status update would name the wrong key)",
            keys,
        ))
    if mapping.version_attribute != INGEST_VERSION:
        problems.append((
            (*path, "version_attribute"),
            f"expected '{INGEST_VERSION}' (the IngestApi's version attribute), found "
            f"'{mapping.version_attribute}'",
            mapping.version_attribute,
        ))
    readable = {*entity.fields, *INGEST_ITEM_ATTRIBUTES}
    if entity.request_like:
        readable.add(INGEST_TTL_ATTRIBUTE)
    unknown = sorted(set(mapping.columns) - readable)
    if unknown:
        problems.append((
            (*path, "columns"),
            f"expected attributes the IngestApi writes (the entity's fields "
            f"{sorted(entity.fields)} or {sorted(readable - set(entity.fields))}), found "
            f"{unknown} (their legacy columns would always be written NULL)",
            dict(mapping.columns),
        ))
    if contract.status_attribute != INGEST_STATUS:
        problems.append((
            ("writeback", "item_contract", "status_attribute"),
            f"expected '{INGEST_STATUS}' (the IngestApi marks its items there) while "
            f"tables.{path[-1]} has origin ingest_api, found '{contract.status_attribute}' "
            "(no item would carry the marker, none would be written back)",
            contract.status_attribute,
        ))
    return problems


def check_writeback(
    writeback: WritebackSettings | None,
    tables: Mapping[str, Any],
    ingest_entities: Mapping[str, Any],
) -> None:
    """Raise a ValidationError with one entry per problem at its key path (StackSettings'
    validator calls this)."""
    if writeback is None:
        return
    problems = writeback_problems(writeback, tables, ingest_entities)
    if problems:
        raise ValidationError.from_exception_data(
            "StackSettings",
            [
                InitErrorDetails(
                    type="value_error", loc=loc, input=found, ctx={"error": ValueError(msg)}
                )
                for loc, msg, found in problems
            ],
        )
