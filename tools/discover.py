"""Discover the source, declare from it: the stack's `tables` from the source catalog.

``python -m tools.discover --stack NAME [--stack-dir DIR] [--schema S ...] [--write] [--json]``

Reads the catalog of the stack's DMS source (every engine: PostgreSQL / Aurora PostgreSQL,
MySQL / MariaDB / Aurora MySQL, SQL Server, Oracle) for the tables the stack selects -- its
declared tables and every table its `dms.wildcards` select, plus every table of each
``--schema`` given -- and prints (or with ``--write`` writes into the stack file) one
`dms-event-bus:tables` entry per table and its `dms.tables` key check:

- the logical name: what a wildcard selecting the table names it (`table_prefix` + the name
  in lower case: the config requires the two to agree), else the name in lower case;
- the DynamoDB key from the primary key: one column -> partition key; two -> partition +
  sort key; more -> one string partition key DMS concatenates from every key column
  (`dms.tables.<t>.primary_key`, joined with `key_separator`);
- key attribute types as DMS's DynamoDB target writes the engine's types (numbers `N`,
  everything else it carries `S`; binary is not carried at all, a BOOLEAN is no key type);
- capacity on demand (never DMS's 200/200 default of the tables it creates itself).

What cannot be carried as is -- no primary key, binary columns (not carried by DMS's
DynamoDB target), LOB columns and their sizes against the task's LOB settings and
DynamoDB's 400 KB item, numbers over DynamoDB's 38 digits, names the config, DMS or
DynamoDB refuse -- is reported with the fix for each.

``--write`` edits only the two `tables` blocks of the stack file: entries that change are
rewritten, new ones appended, everything else (other keys, comments, unchanged entries) is
kept byte for byte; a declared table is never dropped (one the source lacks is kept and
reported). The result is validated with the stack's own config models before the file is
written.

Exit codes: 0 every selected table can be carried as is; 1 the report names a table or
column that is not carried (the file is still written with ``--write``); 2 bad input
(unknown stack, no dms section, unreachable database, missing driver), one line.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dms_event_bus.settings import ConfigError, StackSettings, load_settings
from dms_event_bus.settings.base import LOGICAL_NAME_PATTERN, PROJECT
from dms_event_bus.settings.dms import (
    MAX_KEY_COLUMNS,
    DmsSettings,
    WildcardSelection,
    dms_pattern_matches,
    source_of,
    wildcard_table_name,
    wildcard_tables_not_carried,
)
from dms_event_bus.settings.stackfile import ROOT, as_engine_config, load_stack_text, project_config
from tools.cli import OneLineParser, fail
from tools.dms_types import category_of
from tools.sourcedb import (
    SourceError,
    add_connection_args,
    apply_stack,
    connect,
    error_text,
    params_from_args,
    protocol_of,
    query_rows,
)

PROG = "python -m tools.discover"
TABLES_KEY = f"{PROJECT}:tables"
DMS_KEY = f"{PROJECT}:dms"
#: DynamoDB's largest item (names and values), bytes
MAX_ITEM_BYTES = 400 * 1024
#: DynamoDB numbers: at most 38 significant digits
MAX_NUMBER_DIGITS = 38
#: names the config accepts (settings.base / settings.dms)
_LOGICAL = re.compile(LOGICAL_NAME_PATTERN)
_SOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]{0,127}$")
_COLUMN_NAME = _SOURCE_NAME
#: DynamoDB table names
_DYNAMODB_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")

# -------------------------------------------------------------------------- catalog SQL
#: PostgreSQL and MySQL/MariaDB: the SQL standard's information_schema (MySQL: schema =
#: database). {marks}: one placeholder per schema.
INFO_COLUMNS = (
    "SELECT c.table_schema, c.table_name, c.column_name, c.data_type, "
    "c.character_maximum_length, c.character_octet_length, c.numeric_precision, "
    "c.numeric_scale FROM information_schema.columns c "
    "JOIN information_schema.tables t ON t.table_schema = c.table_schema "
    "AND t.table_name = c.table_name "
    "WHERE t.table_type = 'BASE TABLE' AND c.table_schema IN ({marks}) "
    "ORDER BY c.table_schema, c.table_name, c.ordinal_position"
)
INFO_PRIMARY_KEYS = (
    "SELECT k.table_schema, k.table_name, k.column_name "
    "FROM information_schema.table_constraints tc "
    "JOIN information_schema.key_column_usage k ON k.constraint_schema = tc.constraint_schema "
    "AND k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema "
    "AND k.table_name = tc.table_name "
    "WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema IN ({marks}) "
    "ORDER BY k.table_schema, k.table_name, k.ordinal_position"
)
#: SQL Server: sys.tables / sys.columns / sys.types (the base type of an alias type; CLR
#: types such as geography have no base row, hence the LEFT JOIN), max_length in bytes,
#: -1 for (max)
SQLSERVER_COLUMNS = (
    "SELECT s.name, t.name, c.name, COALESCE(bt.name, ty.name), c.max_length, c.precision, "
    "c.scale FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id "
    "JOIN sys.columns c ON c.object_id = t.object_id "
    "JOIN sys.types ty ON ty.user_type_id = c.user_type_id "
    "LEFT JOIN sys.types bt ON bt.user_type_id = c.system_type_id "
    "WHERE t.is_ms_shipped = 0 AND s.name IN ({marks}) "
    "ORDER BY s.name, t.name, c.column_id"
)
SQLSERVER_PRIMARY_KEYS = (
    "SELECT s.name, t.name, c.name FROM sys.indexes i "
    "JOIN sys.tables t ON t.object_id = i.object_id "
    "JOIN sys.schemas s ON s.schema_id = t.schema_id "
    "JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id "
    "JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id "
    "WHERE i.is_primary_key = 1 AND ic.key_ordinal > 0 AND t.is_ms_shipped = 0 "
    "AND s.name IN ({marks}) ORDER BY s.name, t.name, ic.key_ordinal"
)
#: Oracle: ALL_TABLES / ALL_TAB_COLUMNS / ALL_CONSTRAINTS / ALL_CONS_COLUMNS; names as Oracle
#: stores them (upper case unless created quoted), data_length in bytes
ORACLE_COLUMNS = (
    "SELECT t.owner, t.table_name, c.column_name, c.data_type, c.data_length, "
    "c.data_precision, c.data_scale FROM all_tables t "
    "JOIN all_tab_columns c ON c.owner = t.owner AND c.table_name = t.table_name "
    "WHERE t.owner IN ({marks}) AND t.temporary = 'N' AND t.nested = 'NO' "
    "AND t.secondary = 'N' ORDER BY t.owner, t.table_name, c.column_id"
)
ORACLE_PRIMARY_KEYS = (
    "SELECT k.owner, k.table_name, cc.column_name FROM all_constraints k "
    "JOIN all_cons_columns cc ON cc.owner = k.owner AND cc.constraint_name = k.constraint_name "
    "AND cc.table_name = k.table_name "
    "WHERE k.constraint_type = 'P' AND k.owner IN ({marks}) "
    "ORDER BY k.owner, k.table_name, cc.position"
)


#: capacity of the tables discovery declares (never DMS's 200/200 of the tables it creates)
ON_DEMAND: Mapping[str, Any] = {"mode": "on_demand"}
#: `--capacity provisioned`: autoscaled between the config's defaults (1..10 units, 70 %)
PROVISIONED: Mapping[str, Any] = {"mode": "provisioned"}


#: unique keys (constraints; SQL Server: unique indexes too) of tables without a primary key,
#: to name in the fix: (schema, table, key name, column, nullable)
INFO_UNIQUE_KEYS = (
    "SELECT k.table_schema, k.table_name, k.constraint_name, k.column_name, c.is_nullable "
    "FROM information_schema.table_constraints tc "
    "JOIN information_schema.key_column_usage k ON k.constraint_schema = tc.constraint_schema "
    "AND k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema "
    "AND k.table_name = tc.table_name "
    "JOIN information_schema.columns c ON c.table_schema = k.table_schema "
    "AND c.table_name = k.table_name AND c.column_name = k.column_name "
    "WHERE tc.constraint_type = 'UNIQUE' AND tc.table_schema IN ({marks}) "
    "ORDER BY k.table_schema, k.table_name, k.constraint_name, k.ordinal_position"
)
SQLSERVER_UNIQUE_KEYS = (
    "SELECT s.name, t.name, i.name, c.name, c.is_nullable FROM sys.indexes i "
    "JOIN sys.tables t ON t.object_id = i.object_id "
    "JOIN sys.schemas s ON s.schema_id = t.schema_id "
    "JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id "
    "JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id "
    "WHERE i.is_unique = 1 AND i.is_primary_key = 0 AND i.has_filter = 0 "
    "AND ic.key_ordinal > 0 AND t.is_ms_shipped = 0 AND s.name IN ({marks}) "
    "ORDER BY s.name, t.name, i.name, ic.key_ordinal"
)
ORACLE_UNIQUE_KEYS = (
    "SELECT k.owner, k.table_name, k.constraint_name, cc.column_name, tc.nullable "
    "FROM all_constraints k JOIN all_cons_columns cc ON cc.owner = k.owner "
    "AND cc.constraint_name = k.constraint_name AND cc.table_name = k.table_name "
    "JOIN all_tab_columns tc ON tc.owner = cc.owner AND tc.table_name = cc.table_name "
    "AND tc.column_name = cc.column_name "
    "WHERE k.constraint_type = 'U' AND k.owner IN ({marks}) "
    "ORDER BY k.owner, k.table_name, k.constraint_name, cc.position"
)


class DiscoverError(Exception):
    """Bad input or an unreadable source: one line, exit 2."""


@dataclass(frozen=True)
class Column:
    """One source column as its catalog describes it."""

    name: str
    data_type: str
    max_bytes: int | None = None  # largest value in bytes; None: not bounded by the type
    precision: int | None = None
    scale: int | None = None
    max_chars: int | None = None  # character types: declared length (PostgreSQL/MySQL)


@dataclass
class SourceTable:
    schema: str
    name: str
    columns: list[Column] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    #: unique keys, read only for a table without a primary key: name -> [(column, nullable)]
    unique_keys: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def _marks(engine: str, count: int) -> str:
    if engine == "oracle":
        return ", ".join(f":{i + 1}" for i in range(count))
    return ", ".join(["%s"] * count)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def read_catalog(conn: Any, engine: str, schemas: Sequence[str]) -> list[SourceTable]:
    """Every base table of `schemas` with its columns and primary key (in key order).
    `engine`: the protocol (postgres, mysql, sqlserver, oracle)."""
    if not schemas:
        return []
    marks = _marks(engine, len(schemas))
    if engine == "sqlserver":
        columns_sql, keys_sql = SQLSERVER_COLUMNS, SQLSERVER_PRIMARY_KEYS
    elif engine == "oracle":
        columns_sql, keys_sql = ORACLE_COLUMNS, ORACLE_PRIMARY_KEYS
    else:
        columns_sql, keys_sql = INFO_COLUMNS, INFO_PRIMARY_KEYS
    tables: dict[tuple[str, str], SourceTable] = {}
    for row in query_rows(conn, columns_sql.format(marks=marks), list(schemas)):
        schema, table, column, data_type = (str(v) for v in row[:4])
        table_entry = tables.setdefault((schema, table), SourceTable(schema, table))
        if engine in ("sqlserver", "oracle"):
            size, precision, scale = (_int(v) for v in row[4:7])
            max_bytes = None if size is None or size < 0 else size
            if engine == "oracle" and data_type.upper() in ORACLE_LOBS:
                max_bytes = None  # data_length of a LOB is its locator's, not its value's
            if engine == "sqlserver" and data_type.lower() in ("text", "ntext", "image"):
                max_bytes = None  # max_length 16: the text pointer
            table_entry.columns.append(Column(column, data_type, max_bytes, precision, scale))
        else:
            chars, octets, precision, scale = (_int(v) for v in row[4:8])
            table_entry.columns.append(
                Column(column, data_type, octets, precision, scale, max_chars=chars)
            )
    for schema, table, column in query_rows(conn, keys_sql.format(marks=marks), list(schemas)):
        entry = tables.get((str(schema), str(table)))
        if entry is not None:
            entry.primary_key.append(str(column))
    if any(not t.primary_key for t in tables.values()):
        unique_sql = {"sqlserver": SQLSERVER_UNIQUE_KEYS, "oracle": ORACLE_UNIQUE_KEYS}.get(
            engine, INFO_UNIQUE_KEYS
        )
        for schema, table, key, column, nullable in query_rows(
            conn, unique_sql.format(marks=marks), list(schemas)
        ):
            entry = tables.get((str(schema), str(table)))
            if entry is not None and not entry.primary_key:
                null = str(nullable).upper() in ("YES", "Y", "1", "TRUE")
                entry.unique_keys.setdefault(str(key), []).append((str(column), null))
    return list(tables.values())


# ------------------------------------------------------------------------------ types


@dataclass(frozen=True)
class Carried:
    """How DMS's DynamoDB target writes a column: `attribute` N / S / BOOL, or None when it
    does not carry the column at all; `lob` when DMS reads it as a LOB (BLOB/CLOB/NCLOB)."""

    attribute: str | None
    lob: bool
    dms_type: str


_CATEGORY_ATTRIBUTE = {
    "number": "N",
    "boolean": "S",  # PostgreSQL boolean: DMS STRING "true"/"false" (dms_types)
    "date": "S",
    "datetime": "S",
    "datetime_tz": "S",
    "time": "S",
    "string": "S",
    "binary": None,
}
_PG_LOBS = {"text", "json", "jsonb", "xml", "ARRAY", "bytea"}
_MYSQL_LOBS = {
    "tinytext",
    "text",
    "mediumtext",
    "longtext",
    "json",
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
}
_MYSQL_SPATIAL = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
}
_SQLSERVER_NUMBERS = {
    "tinyint",
    "smallint",
    "int",
    "bigint",
    "decimal",
    "numeric",
    "money",
    "smallmoney",
    "float",
    "real",
}
_SQLSERVER_BINARY = {"binary", "varbinary", "timestamp", "rowversion", "image"}
_SQLSERVER_CLOBS = {"text", "ntext", "xml", "geography", "geometry"}
_SQLSERVER_MAX = {"varchar", "nvarchar", "varbinary"}
_ORACLE_NUMBERS = {"NUMBER", "FLOAT", "BINARY_FLOAT", "BINARY_DOUBLE", "INTEGER"}
ORACLE_LOBS = {"BLOB", "CLOB", "NCLOB", "LONG", "LONG RAW", "XMLTYPE", "BFILE"}
_ORACLE_BINARY = {"BLOB", "RAW", "LONG RAW", "BFILE"}
_ORACLE_STRINGS = {
    "CHAR",
    "VARCHAR2",
    "VARCHAR",
    "NCHAR",
    "NVARCHAR2",
    "ROWID",
    "UROWID",
    "DATE",
    "CLOB",
    "NCLOB",
    "LONG",
    "XMLTYPE",
}


def carried(engine: str, column: Column) -> Carried:
    """What DMS's DynamoDB target writes for `column` of a source of `engine` (protocol)."""
    data_type = column.data_type
    if engine == "postgres":
        lob = data_type in _PG_LOBS or (
            data_type == "character varying" and column.max_chars is None
        )
        category = category_of("postgres", data_type)
        attribute = _CATEGORY_ATTRIBUTE[category]
        kind = "BLOB" if category == "binary" else "NCLOB" if lob else category.upper()
        return Carried(attribute, lob, kind)
    if engine == "mysql":
        base = data_type.lower()
        if base in _MYSQL_SPATIAL:
            return Carried(None, True, "BLOB")
        category = category_of("mysql", base)
        lob = base in _MYSQL_LOBS
        attribute = _CATEGORY_ATTRIBUTE[category]
        binary = category == "binary"
        return Carried(
            attribute,
            lob,
            ("BLOB" if lob else "BYTES") if binary else "CLOB" if lob else category.upper(),
        )
    if engine == "sqlserver":
        base = data_type.lower()
        is_max = base in _SQLSERVER_MAX and column.max_bytes is None
        if base in _SQLSERVER_NUMBERS:
            return Carried("N", False, "NUMERIC")
        if base == "bit":
            return Carried("BOOL", False, "BOOLEAN")
        if base in _SQLSERVER_BINARY:
            lob = base == "image" or is_max
            return Carried(None, lob, "BLOB" if lob else "BYTES")
        if base in _SQLSERVER_CLOBS or is_max or base == "sql_variant":
            return Carried("S", True, "NCLOB")
        return Carried("S", False, "STRING")
    # oracle
    base = " ".join(re.sub(r"\(\d+\)", "", data_type.upper()).split())
    if base in _ORACLE_NUMBERS:
        return Carried("N", False, "NUMERIC")
    if base in _ORACLE_BINARY:
        return Carried(None, base != "RAW", "BYTES" if base == "RAW" else "BLOB")
    if base in _ORACLE_STRINGS or base.startswith(("TIMESTAMP", "INTERVAL")):
        lob = base in ORACLE_LOBS
        return Carried("S", lob, "CLOB" if lob else "STRING")
    return Carried(None, False, f"unsupported ({data_type})")  # object types, ANYDATA, ...


def _size(max_bytes: int | None) -> str:
    if max_bytes is None:
        return "unbounded"
    for unit, step in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if max_bytes >= step:
            value = max_bytes / step
            return f"up to {value:.0f} {unit}" if value >= 10 else f"up to {value:.1f} {unit}"
    return f"up to {max_bytes} bytes"


def _type_text(engine: str, column: Column) -> str:
    if engine == "sqlserver" and column.data_type.lower() in _SQLSERVER_MAX:
        if column.max_bytes is None:
            return f"{column.data_type}(max)"
        per = 2 if column.data_type.lower() == "nvarchar" else 1
        return f"{column.data_type}({column.max_bytes // per})"
    if column.max_chars is not None and column.data_type in (
        "character varying",
        "varchar",
        "character",
        "char",
    ):
        return f"{column.data_type}({column.max_chars})"
    return column.data_type


# ---------------------------------------------------------------------------- findings

#: severities: the table is not carried / a column is lost / a value may be refused or
#: truncated / for information
BLOCKED, LOST, LIMIT, NOTE = "blocked", "lost", "limit", "note"


@dataclass(frozen=True)
class Finding:
    table: str  # schema.table
    severity: str
    kind: str
    detail: str
    fix: str
    column: str | None = None

    def line(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"[{self.severity}] {where}: {self.detail} -- fix: {self.fix}"


def _quote(engine: str, name: str) -> str:
    if engine == "mysql":
        return "`" + name.replace("`", "``") + "`"
    if engine == "sqlserver":
        return "[" + name.replace("]", "]]") + "]"
    if engine == "postgres" and name == name.lower() and _SOURCE_NAME.match(name):
        return name
    return '"' + name.replace('"', '""') + '"'  # Oracle: always, names as stored


def _measure_sql(engine: str, table: SourceTable, column: str) -> str:
    """The query that gives a column's largest value (bytes; Oracle CLOB/NCLOB: characters,
    DBMS_LOB.GETLENGTH's unit) to size the LOB limit. A full scan of the table."""
    q = f"{_quote(engine, table.schema)}.{_quote(engine, table.name)}"
    c = _quote(engine, column)
    if engine == "sqlserver":
        return f"SELECT MAX(DATALENGTH({c})) FROM {q}"
    if engine == "oracle":
        return f"SELECT MAX(DBMS_LOB.GETLENGTH({c})) FROM {q}"
    if engine == "postgres":
        return f"SELECT max(octet_length({c}::text)) FROM {q}"
    return f"SELECT MAX(LENGTH({c})) FROM {q}"


def measure_lobs(conn: Any, engine: str, catalog: Sequence[SourceTable], result: Discovery) -> None:
    """Run each LOB finding's measuring query and put the largest value into the finding;
    add one note with the task.lob_max_size_kb that would carry them all (or a limit
    finding per column whose values cannot fit a DynamoDB item)."""
    tables = {t.qualified: t for t in catalog}
    columns = {(t.qualified, c.name): c for t in catalog for c in t.columns}
    largest: tuple[int, str, str] | None = None
    for n, finding in enumerate(result.findings):
        if finding.kind != "lob_column" or finding.column is None:
            continue
        table = tables[finding.table]
        column = columns[(finding.table, finding.column)]
        if engine == "oracle" and column.data_type.upper() == "LONG":
            continue  # no SQL function takes a LONG
        sql = _measure_sql(engine, table, finding.column)
        try:
            rows = query_rows(conn, sql)
        except Exception as exc:  # no SELECT on the table
            raise DiscoverError(
                f"cannot measure {finding.table}.{finding.column} ({sql}): {error_text(exc)}"
            ) from None
        value = rows[0][0] if rows and rows[0] else None
        size = int(value) if value is not None else 0
        unit = "characters" if engine == "oracle" else "bytes"
        kb = -(-size // 1024)
        detail = f"{finding.detail}; largest value now {size} {unit} ({kb} KB)"
        severity = finding.severity
        if size > 350 * 1024:
            severity = LOST
            detail += ": over 350 KB, rows with it cannot be carried whole within DynamoDB's 400 KB"
        result.findings[n] = Finding(
            finding.table, severity, finding.kind, detail, finding.fix, finding.column
        )
        if size <= 350 * 1024 and (largest is None or size > largest[0]):
            largest = (size, finding.table, finding.column)
    if largest is not None:
        size, where, column_name = largest
        kb = max(1, -(-size // 1024))
        result.findings.append(
            Finding(
                where,
                NOTE,
                "lob_size",
                f"the largest LOB value that fits an item is {size} "
                f"{'characters' if engine == 'oracle' else 'bytes'}",
                f"task.lob_max_size_kb: {min(350, kb + max(1, kb // 4))} carries every value "
                "measured with a quarter to spare (values grow); task.lob_mode: limited only on "
                "PostgreSQL and Oracle, which fail the task on a longer one",
                column_name,
            )
        )


# ----------------------------------------------------------------------------- planning


@dataclass
class Change:
    logical: str
    source: str
    action: str  # added | updated | unchanged | kept (declared, not found in the source)
    detail: str = ""


@dataclass
class Discovery:
    engine: str
    schemas: list[str]
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # new/changed entries
    dms_tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    catalog: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: per wildcard index: declared tables it selects whose key is not one column, to add
    #: to its `composite_key_tables` (the plan then fails if a declaration is removed)
    composite: dict[int, list[str]] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if any(f.severity in (BLOCKED, LOST) for f in self.findings) else 0


def selected_schemas(dms: DmsSettings, tables: Mapping[str, Any]) -> list[str]:
    """The schemas the stack selects from: its wildcards', its declared tables' and
    dms.default_schema, in that order, each once."""
    found: list[str] = []
    for wildcard in dms.wildcards:
        if wildcard.schema_name:
            found.append(wildcard.schema_name)
    for logical, table in tables.items():
        if table.source is not None or dms.default_schema is not None:
            found.append(source_of(logical, table, dms.default_schema)[0])
    if dms.default_schema:
        found.append(dms.default_schema)
    return list(dict.fromkeys(found))


def _selecting_wildcard(
    wildcards: Sequence[WildcardSelection], schema: str, name: str
) -> tuple[int, WildcardSelection] | None:
    for i, wildcard in enumerate(wildcards):
        if (
            wildcard.schema_name is not None
            and wildcard.schema_name.lower() == schema.lower()
            and dms_pattern_matches(wildcard.table_pattern, name)
            and not any(dms_pattern_matches(p, name) for p in wildcard.exclude)
        ):
            return i, wildcard
    return None


def logical_name_for(name: str, taken: Iterable[str] = ()) -> str:
    """A valid logical name for a source table whose name is not one as it stands:
    lower case, other characters as `_`, a letter first, at most 63 characters (a short
    hash of the source name keeps truncated names apart), not one of `taken`."""
    taken = set(taken)
    base = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not base or not base[0].isalpha():
        base = f"t_{base}"
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    candidate = base if len(base) <= 63 else f"{base[:56]}_{digest}"
    if candidate in taken:
        candidate = f"{base[:56]}_{digest}"
    return candidate


def _concatenated_key_name(logical: str, columns: Sequence[Column]) -> str:
    names = {c.name.lower() for c in columns}
    for candidate in (f"{logical}_key", "dms_key", *(f"dms_key_{i}" for i in range(2, 100))):
        if candidate.lower() not in names and len(candidate) <= 128:
            return candidate
    raise AssertionError("no free key attribute name")  # pragma: no cover


def discovered_key(
    engine: str, table: SourceTable, logical: str
) -> tuple[dict[str, Any], list[Finding]]:
    """The `tables` key entries (partition_key, sort_key) for a table with a primary key,
    or the findings that say why it has none DMS can build."""
    findings: list[Finding] = []
    by_name = {c.name: c for c in table.columns}
    pk = table.primary_key
    types: dict[str, str] = {}
    for name in pk:
        column = by_name.get(name, Column(name, "unknown"))
        how = carried(engine, column)
        if not _COLUMN_NAME.match(name):
            findings.append(
                Finding(
                    table.qualified,
                    BLOCKED,
                    "column_name",
                    f"key column '{name}' is no name the stack config accepts "
                    "([A-Za-z_][A-Za-z0-9_$#]*, at most 128)",
                    "rename the column in the source, then run discovery again",
                    name,
                )
            )
        elif how.attribute is None:
            findings.append(
                Finding(
                    table.qualified,
                    BLOCKED,
                    "binary_key",
                    f"key column '{name}' is {_type_text(engine, column)} ({how.dms_type}): DMS's "
                    "DynamoDB target does not carry binary values, so it cannot build the key",
                    "key the table by a column DMS carries (add a character or number key), or "
                    "leave the table out of the task (a wildcard's exclude)",
                    name,
                )
            )
        elif how.attribute == "BOOL":
            findings.append(
                Finding(
                    table.qualified,
                    BLOCKED,
                    "boolean_key",
                    f"key column '{name}' is {column.data_type} (DMS BOOLEAN): a DynamoDB key is "
                    "S, N or B, never BOOL",
                    "key the table by other columns, or leave it out of the task",
                    name,
                )
            )
        else:
            types[name] = how.attribute
    if len(pk) > MAX_KEY_COLUMNS:
        findings.append(
            Finding(
                table.qualified,
                BLOCKED,
                "key_columns",
                f"primary key of {len(pk)} columns; the stack config takes at most "
                f"{MAX_KEY_COLUMNS}",
                "key the table by fewer columns",
            )
        )
    if findings:
        return {}, findings
    for name in pk:
        column = by_name.get(name, Column(name, "unknown"))
        if carried(engine, column).lob:
            findings.append(
                Finding(
                    table.qualified,
                    LIMIT,
                    "lob_key",
                    f"key column '{name}' is {_type_text(engine, column)}, which DMS reads as "
                    "a LOB (its premigration assessment flags LOB primary keys: DMS looks LOB "
                    "values up by the key)",
                    "give the column a bounded type (e.g. varchar(n)) if its values allow",
                    name,
                )
            )
    if len(pk) == 1:
        return {"partition_key": {"name": pk[0], "type": types[pk[0]]}}, findings
    if len(pk) == 2:
        return {
            "partition_key": {"name": pk[0], "type": types[pk[0]]},
            "sort_key": {"name": pk[1], "type": types[pk[1]]},
        }, findings
    key = _concatenated_key_name(logical, table.columns)
    text_columns = [c for c in pk if types[c] == "S"]
    if text_columns:
        findings.append(
            Finding(
                table.qualified,
                NOTE,
                "key_separator",
                f"the {len(pk)}-column key is concatenated into the string '{key}' "
                f"(${{{'}|${'.join(pk)}}}); DMS does not escape the separator, and key "
                f"column(s) {', '.join(text_columns)} hold text",
                f"if their values can contain '|', set dms.tables.{logical}.key_separator to one "
                "of # : ~ ^ they never contain",
            )
        )
    return {"partition_key": {"name": key, "type": "S"}}, findings


def column_findings(
    engine: str, table: SourceTable, logical: str | None, dms: DmsSettings
) -> list[Finding]:
    """Columns DMS's DynamoDB target does not carry, or carries only within limits."""
    findings: list[Finding] = []
    where = f"dms.tables.{logical}.exclude_columns" if logical else "the table's exclude_columns"
    lob_mode, lob_kb = dms.lob_mode, dms.task.lob_max_size_kb
    bounded_total = 0
    unbounded = []
    for column in table.columns:
        how = carried(engine, column)
        typ = _type_text(engine, column)
        if how.attribute is None:
            if how.dms_type.startswith("unsupported"):
                findings.append(
                    Finding(
                        table.qualified,
                        LOST,
                        "unsupported_type",
                        f"{typ}: a type DMS does not replicate (user-defined or object type)",
                        f"list it in {where} to say so, or expose its value in a column of a "
                        "standard type",
                        column.name,
                    )
                )
            else:
                findings.append(
                    Finding(
                        table.qualified,
                        LOST,
                        "binary_column",
                        f"{typ} ({how.dms_type}, {_size(column.max_bytes)}): DMS's DynamoDB target "
                        "does not carry binary data; the column never reaches DynamoDB",
                        f"list it in {where} to make the loss explicit, or keep the value as text "
                        "(hex or base64) in a character column",
                        column.name,
                    )
                )
            continue
        if how.lob:
            unbounded.append(column.name)
            if lob_mode == "limited":
                limit = (
                    f"limited LOB mode: a value over {lob_kb} KB (task.lob_max_size_kb) "
                    "fails the task"
                )
            else:
                limit = (
                    "full LOB mode: carried whole, but an item over DynamoDB's 400 KB "
                    "is refused (on_apply_error decides: the task stops, or the change "
                    "lands in awsdms_apply_exceptions with an alarm)"
                )
            findings.append(
                Finding(
                    table.qualified,
                    LIMIT,
                    "lob_column",
                    f"{typ} ({how.dms_type}, {_size(column.max_bytes)}): read as a LOB; {limit}",
                    f"measure it ({_measure_sql(engine, table, column.name)}); keep values well "
                    "under 400 KB per row (task.lob_max_size_kb up to 350), or list it in "
                    f"{where}",
                    column.name,
                )
            )
        elif column.max_bytes is not None:
            bounded_total += column.max_bytes
        if how.attribute == "N" and _too_many_digits(engine, column):
            digits = column.precision
            findings.append(
                Finding(
                    table.qualified,
                    LIMIT,
                    "number_digits",
                    f"{typ}: "
                    + (f"{digits} digits" if digits else "unconstrained precision")
                    + f"; DynamoDB numbers hold at most {MAX_NUMBER_DIGITS} significant digits "
                    "and refuse the item otherwise",
                    f"constrain it to numeric({MAX_NUMBER_DIGITS},s) if the values fit, or list "
                    f"it in {where}",
                    column.name,
                )
            )
        if engine == "sqlserver" and column.data_type.lower() == "sql_variant":
            findings.append(
                Finding(
                    table.qualified,
                    LIMIT,
                    "sql_variant",
                    "sql_variant: DMS reads it like a LOB and writes its text form (the base "
                    "type is lost)",
                    f"store one type per column, or list it in {where}",
                    column.name,
                )
            )
    if bounded_total > MAX_ITEM_BYTES:
        findings.append(
            Finding(
                table.qualified,
                LIMIT,
                "item_size",
                f"a row of the declared column sizes can reach {_size(bounded_total)[7:]}, over "
                "DynamoDB's 400 KB item limit",
                f"keep rows under 400 KB, or list wide columns in {where}",
            )
        )
    return findings


def _too_many_digits(engine: str, column: Column) -> bool:
    data_type = column.data_type.lower()
    if engine == "postgres" and data_type == "numeric":
        return column.precision is None or column.precision > MAX_NUMBER_DIGITS
    if engine == "mysql" and data_type in ("decimal", "numeric"):
        return column.precision is not None and column.precision > MAX_NUMBER_DIGITS
    return False


def _no_key_fix(
    engine: str, table: SourceTable, selected: tuple[int, WildcardSelection] | None
) -> str:
    q = f"{_quote(engine, table.schema)}.{_quote(engine, table.name)}"
    fix = f"add a primary key (ALTER TABLE {q} ADD PRIMARY KEY (<columns>)), then run discovery"
    if table.unique_keys:
        name, columns = next(iter(table.unique_keys.items()))
        names = ", ".join(_quote(engine, c) for c, _ in columns)
        nullable = [c for c, null in columns if null]
        fix = (
            f"make its unique key {name} ({', '.join(c for c, _ in columns)}) the primary key: "
            f"ALTER TABLE {q} ADD PRIMARY KEY ({names})"
            + (f" (first make {', '.join(nullable)} NOT NULL)" if nullable else "")
            + ", then run discovery"
        )
    if engine == "oracle":
        fix += (
            f"; until then Oracle needs ALTER TABLE {q} ADD SUPPLEMENTAL LOG DATA (ALL) "
            "COLUMNS to capture it at all"
        )
    if selected is not None:
        i, _ = selected
        fix += f"; or add '{table.name}' to dms.wildcards[{i}].exclude (it is not captured)"
    return fix


def _existing_key(
    logical: str, raw_table: Mapping[str, Any], raw_dms: Mapping[str, Any]
) -> tuple[list[str], dict[str, str], list[str] | None]:
    """(key attribute names, their types, dms primary_key) of a declared table, as written."""
    keys, types = [], {}
    for role in ("partition_key", "sort_key"):
        attr = raw_table.get(role)
        if isinstance(attr, Mapping) and "name" in attr:
            keys.append(str(attr["name"]))
            types[str(attr["name"])] = str(attr.get("type", "S"))
    pk = raw_dms.get("primary_key") if isinstance(raw_dms, Mapping) else None
    return keys, types, [str(c) for c in pk] if isinstance(pk, list) else None


def _key_text(entry: Mapping[str, Any], pk: Sequence[str] | None) -> str:
    parts = [f"{entry['partition_key']['name']} {entry['partition_key'].get('type', 'S')}"]
    if entry.get("sort_key"):
        parts.append(f"{entry['sort_key']['name']} {entry['sort_key'].get('type', 'S')}")
    text = " + ".join(parts)
    if pk and entry["partition_key"]["name"] not in pk:
        text += f" (concatenated from {list(pk)})"
    return text


def plan(
    engine: str,
    catalog: Sequence[SourceTable],
    settings: StackSettings,
    raw_tables: Mapping[str, Any],
    raw_dms_tables: Mapping[str, Any],
    schemas: Sequence[str],
    all_of: Sequence[str] = (),
    capacity: Mapping[str, Any] | None = None,
) -> Discovery:
    """What discovery declares for the stack given the source `catalog`: new and changed
    `tables` / `dms.tables` entries, what stays, and the findings. `all_of`: schemas whose
    every table is declared (else only the declared and wildcard-selected ones)."""
    dms = settings.dms
    assert dms is not None
    capacity = capacity or ON_DEMAND
    result = Discovery(engine, list(schemas))
    result.catalog = {(t.schema, t.name): list(t.primary_key) for t in catalog}
    declared: dict[tuple[str, str], str] = {}
    for name, settings_table in settings.tables.items():
        if settings_table.source is not None or dms.default_schema is not None:
            declared[source_of(name, settings_table, dms.default_schema)] = name
    declared_ci = {(s.lower(), n.lower()): lg for (s, n), lg in declared.items()}
    taken = set(settings.tables)
    every = {s.lower() for s in all_of}
    found_declared: set[str] = set()
    upper = engine == "oracle"

    for table in sorted(catalog, key=lambda t: (t.schema, t.name)):
        selected = _selecting_wildcard(dms.wildcards, table.schema, table.name)
        logical: str | None = declared.get((table.schema, table.name))
        if logical is None and not upper:  # the config compares names case-insensitively
            logical = declared_ci.get((table.schema.lower(), table.name.lower()))
        if logical is None and selected is None and table.schema.lower() not in every:
            continue  # not selected by the stack
        if logical is not None:
            found_declared.add(logical)
            _refresh_declared(result, engine, table, logical, raw_tables, raw_dms_tables, dms)
            continue
        if upper and (table.name != table.name.upper() or table.schema != table.schema.upper()):
            result.findings.append(
                Finding(
                    table.qualified,
                    BLOCKED,
                    "oracle_case",
                    "created with a quoted mixed- or lower-case name: the stack config takes "
                    "Oracle names only as Oracle stores unquoted ones (upper case)",
                    f'rename it: ALTER TABLE "{table.schema}"."{table.name}" RENAME TO '
                    f"{table.name.upper()}",
                )
            )
            continue
        if not _SOURCE_NAME.match(table.name) or not _SOURCE_NAME.match(table.schema):
            dynamodb = (
                ""
                if _DYNAMODB_NAME.match(table.name)
                else ("; DMS's CreateTable fails on it (DynamoDB names allow A-Z a-z 0-9 _ . -)")
            )
            result.findings.append(
                Finding(
                    table.qualified,
                    BLOCKED,
                    "table_name",
                    "a name the stack config cannot hold as a source (letters, digits, _ $ #; "
                    f"not starting with a digit){dynamodb}",
                    "rename the table in the source (then run discovery again)"
                    + (f", or exclude it from dms.wildcards[{selected[0]}]" if selected else ""),
                )
            )
            continue
        if selected is not None:
            i, wildcard = selected
            logical = wildcard_table_name(wildcard, table.name)
            if not _LOGICAL.match(logical):
                result.findings.append(
                    Finding(
                        table.qualified,
                        BLOCKED,
                        "table_name",
                        f"dms.wildcards[{i}] names it '{logical}', which is no logical name "
                        f"({LOGICAL_NAME_PATTERN}): declared, the config refuses it; left to the "
                        "wildcard, adoption skips its DynamoDB table and its rows never reach the "
                        "bus",
                        "rename the table in the source, or narrow dms.wildcards"
                        f"[{i}].table_pattern / add an exclude so no wildcard selects it, then "
                        "declare it under a name of your choice",
                    )
                )
                continue
        else:
            logical = table.name.lower()
            if not _LOGICAL.match(logical) or logical in taken:
                renamed = logical_name_for(table.name, taken)
                result.findings.append(
                    Finding(
                        table.qualified,
                        NOTE,
                        "logical_name",
                        f"declared as '{renamed}': '{logical}' is "
                        + (
                            "taken"
                            if logical in taken
                            else f"no logical name ({LOGICAL_NAME_PATTERN})"
                        ),
                        "rename the entry if you prefer another name",
                    )
                )
                logical = renamed
        if logical in taken:
            result.findings.append(
                Finding(
                    table.qualified,
                    BLOCKED,
                    "name_collision",
                    f"its logical name '{logical}' is already another table's",
                    "rename one of the tables in the source, or give the wildcard a table_prefix",
                )
            )
            continue
        if not table.primary_key:
            result.findings.append(
                Finding(
                    table.qualified,
                    BLOCKED,
                    "no_primary_key",
                    "no primary key: DMS's DynamoDB target cannot key its rows",
                    _no_key_fix(engine, table, selected),
                )
            )
            continue
        keys, key_findings = discovered_key(engine, table, logical)
        result.findings += key_findings
        if not keys:
            continue
        result.findings += column_findings(engine, table, logical, dms)
        taken.add(logical)
        result.tables[logical] = {
            "source": {"schema": table.schema, "table": table.name},
            **keys,
            "capacity": dict(capacity),
        }
        result.dms_tables[logical] = {"primary_key": list(table.primary_key)}
        _note_composite(result, dms, table)
        result.changes.append(
            Change(
                logical,
                table.qualified,
                "added",
                _key_text(result.tables[logical], table.primary_key),
            )
        )
    for name, settings_table in settings.tables.items():
        if name in found_declared:
            continue
        source = (
            ".".join(source_of(name, settings_table, dms.default_schema))
            if (settings_table.source is not None or dms.default_schema is not None)
            else name
        )
        if source.split(".")[0].lower() in {s.lower() for s in schemas}:
            result.changes.append(
                Change(name, source, "kept", "declared, not found in the source catalog: kept")
            )
        else:
            result.changes.append(
                Change(name, source, "kept", "in a schema not read this time: kept")
            )
    return result


def _note_composite(result: Discovery, dms: DmsSettings, table: SourceTable) -> None:
    """A declared table a wildcard also selects, with a key of two or more columns: listed
    in the wildcard's `composite_key_tables` unless it is there already."""
    selected = _selecting_wildcard(dms.wildcards, table.schema, table.name)
    if selected is None or len(table.primary_key) < 2:
        return
    i, wildcard = selected
    if table.name not in wildcard.composite_key_tables:
        result.composite.setdefault(i, []).append(table.name)


def _refresh_declared(
    result: Discovery,
    engine: str,
    table: SourceTable,
    logical: str,
    raw_tables: Mapping[str, Any],
    raw_dms_tables: Mapping[str, Any],
    dms: DmsSettings,
) -> None:
    """A table the stack already declares: keep it, update its key only if it differs."""
    raw = dict(raw_tables.get(logical) or {})
    raw_dms = dict(raw_dms_tables.get(logical) or {})
    keys, types, pk_declared = _existing_key(logical, raw, raw_dms)
    pk = list(table.primary_key)
    if not pk:
        result.findings.append(
            Finding(
                table.qualified,
                BLOCKED,
                "no_primary_key",
                f"declared as tables.{logical} (key {keys}), but the source has no primary key: "
                "nothing guarantees one item per row",
                _no_key_fix(engine, table, None),
            )
        )
        result.changes.append(
            Change(
                logical,
                table.qualified,
                "unchanged",
                "no primary key in the source: left as declared",
            )
        )
        return
    wanted, key_findings = discovered_key(engine, table, logical)
    result.findings += key_findings
    result.findings += column_findings(engine, table, logical, dms)
    if not wanted:
        result.changes.append(
            Change(
                logical, table.qualified, "unchanged", "its key cannot be built: left as declared"
            )
        )
        return
    _note_composite(result, dms, table)
    by_name = {c.name: carried(engine, c).attribute for c in table.columns}
    concatenated = len(pk) >= 2 and len(keys) == 1 and keys[0] not in pk
    if concatenated:
        same = (
            pk_declared is not None and sorted(pk_declared) == sorted(pk) and types[keys[0]] == "S"
        )
    else:
        same = sorted(keys) == sorted(pk) and all(types[k] == by_name.get(k) for k in keys)
        if len(pk) > 2:
            same = False  # a key of more than two columns is only ever concatenated
    old_text = _key_text(raw, pk_declared) if keys else "none"
    if same:
        if pk_declared is None:  # record the primary key as the config's check
            result.dms_tables[logical] = {**raw_dms, "primary_key": pk}
            result.changes.append(
                Change(
                    logical,
                    table.qualified,
                    "unchanged",
                    f"key {old_text}; primary key recorded in dms.tables",
                )
            )
        else:
            result.changes.append(Change(logical, table.qualified, "unchanged", f"key {old_text}"))
        return
    entry = {k: v for k, v in raw.items() if k not in ("partition_key", "sort_key")}
    entry.setdefault("source", {"schema": table.schema, "table": table.name})
    ordered = {"source": entry.pop("source"), **wanted, **entry}
    result.tables[logical] = ordered
    result.dms_tables[logical] = {**raw_dms, "primary_key": pk}
    result.changes.append(
        Change(
            logical,
            table.qualified,
            "updated",
            f"key was {old_text}, now {_key_text(ordered, pk)} (source primary key {pk})",
        )
    )


# --------------------------------------------------------------------------- stack file


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 20).strip()


def _key(name: str) -> str:
    if re.fullmatch(r"[a-z][a-z0-9-]*:[A-Za-z0-9_]+", name):
        return name  # a namespaced config key, written plain as Pulumi writes it
    return _flow([name])[1:-1]


def table_entry_lines(logical: str, entry: Mapping[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}{_key(logical)}:"]
    for key, value in entry.items():
        text = _flow(value) if isinstance(value, dict | list) else _flow([value])[1:-1]
        lines.append(f"{pad}  {key}: {text}")
    return lines


def dms_entry_lines(logical: str, entry: Mapping[str, Any], indent: int) -> list[str]:
    return [f"{' ' * indent}{_key(logical)}: {_flow(dict(entry))}"]


def _pairs(node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    return {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _last_end(node: yaml.Node) -> int:
    """Where a node's text ends (block collections: their last leaf)."""
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style:
        if node.value:
            last = node.value[-1]
            return _last_end(last[1] if isinstance(last, tuple) else last)
    return int(node.end_mark.index)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, end: int) -> int:
    """The index after the newline of the line holding the character before `end`."""
    j = text.find("\n", max(end - 1, 0))
    return len(text) if j < 0 else j + 1


Edit = tuple[int, int, str]
#: (index in the text, "anchor &name" / "alias *name") of every YAML anchor and alias
Marks = list[tuple[int, str]]


def _anchor_marks(text: str) -> Marks:
    marks: Marks = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        at = event.start_mark.index if event.start_mark is not None else 0
        if isinstance(event, yaml.AliasEvent):
            marks.append((at, f"alias *{event.anchor}"))
        elif isinstance(event, yaml.NodeEvent) and event.anchor:
            marks.append((at, f"anchor &{event.anchor}"))
    return marks


def _block_extent(text: str, start: int) -> int:
    """The end of the block-style entry whose key line starts at `start`: before the next
    line (not blank, not a comment) indented no deeper than the key. (A node's own end
    mark cannot tell: an alias in the entry is composed as the anchored node, elsewhere.)"""
    line = text[start : text.find("\n", start) + 1 or len(text)]
    indent = len(line) - len(line.lstrip(" "))
    at = start + len(line)
    while at < len(text):
        nxt = text.find("\n", at)
        end = len(text) if nxt < 0 else nxt + 1
        body = text[at:end].strip()
        if (
            body
            and not body.startswith("#")
            and len(text[at:end]) - len(text[at:end].lstrip(" ")) <= indent
        ):
            return at
        at = end
    return len(text)


def _refuse_anchors(
    text: str, name: str, marks: Marks | None, start: int, what: str, block: str
) -> None:
    """DiscoverError when the block-style entry whose key line starts at `start` (the text
    an edit replaces) holds a YAML anchor or alias: rewriting it would drop an anchor other
    entries use, or expand an alias."""
    if not marks:
        return
    end = _block_extent(text, start)
    held = [m for i, m in marks or () if start <= i < end]
    if held:
        raise DiscoverError(
            f"{name}: {what} holds a YAML {held[0]}, which discovery cannot rewrite: expand "
            f"the anchors in the {block} block (write each value out in full) and run again; "
            "nothing written"
        )


def _block_edits(
    text: str,
    parent: yaml.MappingNode,
    key: str,
    entries: Mapping[str, Mapping[str, Any]],
    all_entries: Mapping[str, Any],
    emit: Callable[[str, Mapping[str, Any], int], list[str]],
    name: str = "the stack file",
    marks: Marks | None = None,
    block: str = "",
) -> list[Edit]:
    """Edits that put `entries` (new or changed) into the mapping under `key` of `parent`,
    leaving the other entries' text alone. `all_entries`: every entry (existing merged with
    new), to write the whole block when it is not a block mapping yet. DiscoverError when
    a text to replace holds one of the YAML anchors / aliases `marks` (`block`: the block's
    name in that message)."""
    if not entries:
        return []
    block = block or key
    pairs = _pairs(parent)
    parent_indent = parent.value[0][0].start_mark.column if parent.value else 2
    if key in pairs:
        key_node, value = pairs[key]
        if isinstance(value, yaml.MappingNode) and not value.flow_style and value.value:
            indent = value.value[0][0].start_mark.column
            existing = _pairs(value)
            edits: list[Edit] = []
            new_lines: list[str] = []
            for logical, entry in entries.items():
                if logical in existing:
                    k, v = existing[logical]
                    start = _line_start(text, k.start_mark.index)
                    end = _line_end(text, _last_end(v))
                    _refuse_anchors(text, name, marks, start, f"{block} entry '{logical}'", block)
                    edits.append((start, end, "\n".join(emit(logical, entry, indent)) + "\n"))
                else:
                    new_lines += emit(logical, entry, indent)
            if new_lines:
                at = _line_end(text, _last_end(value))
                edits.append((at, at, "\n".join(new_lines) + "\n"))
            return edits
        # flow style, empty or null: write the whole block
        start = _line_start(text, key_node.start_mark.index)
        end = _line_end(text, _last_end(value))
        _refuse_anchors(text, name, marks, start, f"the {block} block", block)
        indent = key_node.start_mark.column
        lines = [f"{' ' * indent}{_key(key)}:"]
        for logical, entry in all_entries.items():
            lines += emit(logical, entry, indent + 2)
        return [(start, end, "\n".join(lines) + "\n")]
    at = _line_end(text, _last_end(parent)) if parent.value else len(text)
    lines = [f"{' ' * parent_indent}{_key(key)}:"]
    for logical, entry in all_entries.items():
        lines += emit(logical, entry, parent_indent + 2)
    prefix = "" if at == 0 or text[at - 1] == "\n" else "\n"
    return [(at, at, prefix + "\n".join(lines) + "\n")]


def updated_stack_text(text: str, name: str, discovery: Discovery) -> str:
    """The stack file's text with discovery's entries written into `tables` and
    `dms.tables`; everything else as it was."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode) or "config" not in _pairs(root):
        raise DiscoverError(f"{name}: no config: block to write into")
    config = _pairs(root)["config"][1]
    if not isinstance(config, yaml.MappingNode) or DMS_KEY not in _pairs(config):
        raise DiscoverError(f"{name}: no {DMS_KEY} section")
    dms_node = _pairs(config)[DMS_KEY][1]
    if not isinstance(dms_node, yaml.MappingNode) or dms_node.flow_style:
        raise DiscoverError(
            f"{name}: {DMS_KEY} is written in flow style ({{...}}); write it as "
            "a block mapping to let discovery edit its tables"
        )
    if not text.endswith("\n"):
        text += "\n"  # entries appended at the end start on a line of their own
    current = load_stack_text(text.encode(), name)
    old_tables = dict(current.get(TABLES_KEY) or {})
    old_dms_tables = dict((current.get(DMS_KEY) or {}).get("tables") or {})
    marks = _anchor_marks(text)
    edits = _block_edits(
        text,
        config,
        TABLES_KEY,
        discovery.tables,
        {**old_tables, **discovery.tables},
        table_entry_lines,
        name,
        marks,
    )
    edits += _block_edits(
        text,
        dms_node,
        "tables",
        discovery.dms_tables,
        {**old_dms_tables, **discovery.dms_tables},
        dms_entry_lines,
        name,
        marks,
        "dms.tables",
    )
    edits += _composite_edits(text, dms_node, current, discovery, name, marks)
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    _check_preserved(current, load_stack_text(text.encode(), name), discovery, name)
    return text


def _composite_edits(
    text: str,
    dms_node: yaml.MappingNode,
    current: Mapping[str, Any],
    discovery: Discovery,
    name: str = "the stack file",
    marks: Marks | None = None,
) -> list[Edit]:
    """Edits adding discovery's composite-key tables to each wildcard's
    `composite_key_tables`: a flow-style item is rewritten whole, a block-style one gets
    the key (re)written."""
    if not discovery.composite:
        return []
    wildcards_node = _pairs(dms_node).get("wildcards", (None, None))[1]
    items = (current.get(DMS_KEY) or {}).get("wildcards") or []
    if not isinstance(wildcards_node, yaml.SequenceNode) or wildcards_node.flow_style:
        raise DiscoverError(
            "dms.wildcards is not a block list (- {...} items): write it as one to let "
            "discovery list composite-key tables"
        )
    edits: list[Edit] = []
    for i, names in sorted(discovery.composite.items()):
        item_node = wildcards_node.value[i]
        item = dict(items[i])
        listed = [*item.get("composite_key_tables", []), *names]
        item["composite_key_tables"] = listed
        if not isinstance(item_node, yaml.MappingNode):
            continue
        what = f"dms.wildcards[{i}]"
        if item_node.flow_style:
            start = _line_start(text, item_node.start_mark.index)
            _refuse_anchors(text, name, marks, start, what, "dms.wildcards")
            edits.append((item_node.start_mark.index, item_node.end_mark.index, _flow(item)))
            continue
        indent = item_node.value[0][0].start_mark.column
        line = f"{' ' * indent}composite_key_tables: {_flow(listed)}\n"
        pairs = _pairs(item_node)
        if "composite_key_tables" in pairs:
            k, v = pairs["composite_key_tables"]
            start = _line_start(text, k.start_mark.index)
            _refuse_anchors(
                text, name, marks, start, f"{what}.composite_key_tables", "dms.wildcards"
            )
            edits.append((start, _line_end(text, _last_end(v)), line))
        else:
            at = _line_end(text, _last_end(item_node))
            edits.append((at, at, line))
    return edits


def _check_preserved(
    before: Mapping[str, Any], after: Mapping[str, Any], discovery: Discovery, name: str
) -> None:
    """Nothing but the two tables blocks changed, and no declared table was dropped."""
    lost = []
    for key in set(before) | set(after):
        if key in (TABLES_KEY, DMS_KEY):
            continue
        if before.get(key) != after.get(key):
            lost.append(key)
    dms_before = {k: v for k, v in (before.get(DMS_KEY) or {}).items() if k != "tables"}
    if discovery.composite:
        wildcards = [dict(w) for w in dms_before.get("wildcards") or []]
        for i, names in discovery.composite.items():
            wildcards[i]["composite_key_tables"] = [
                *wildcards[i].get("composite_key_tables", []),
                *names,
            ]
        dms_before["wildcards"] = wildcards
    dms_after = {k: v for k, v in (after.get(DMS_KEY) or {}).items() if k != "tables"}
    if dms_before != dms_after:
        lost.append(f"{DMS_KEY} (other than tables)")
    for key, block, wanted in (
        (TABLES_KEY, (before.get(TABLES_KEY) or {}), discovery.tables),
        ("dms.tables", (before.get(DMS_KEY) or {}).get("tables") or {}, discovery.dms_tables),
    ):
        now = (
            after.get(TABLES_KEY) if key == TABLES_KEY else (after.get(DMS_KEY) or {}).get("tables")
        ) or {}
        expected = {**block, **wanted}
        if now != expected:
            lost.append(key)
    if lost:
        raise DiscoverError(
            f"{name}: refusing to write: the edit would change "
            f"{', '.join(sorted(lost))} (please report this)"
        )


# ---------------------------------------------------------------------------------- CLI


@dataclass
class StackFile:
    name: str
    path: Path
    text: str
    raw: dict[str, Any]  # config: as written (namespaced keys)
    settings: StackSettings


def _settings(stack: str, raw: Mapping[str, Any]) -> StackSettings:
    engine_config, _ = as_engine_config(dict(raw))
    return load_settings(stack, project_config(engine_config))


def _without_composite_lists(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    dms = out.get(DMS_KEY)
    if isinstance(dms, Mapping) and isinstance(dms.get("wildcards"), list):
        wildcards = [
            {k: v for k, v in w.items() if k != "composite_key_tables"}
            if isinstance(w, Mapping)
            else w
            for w in dms["wildcards"]
        ]
        out[DMS_KEY] = {**dms, "wildcards": wildcards}
    return out


def read_stack(stack: str, stack_dir: Path | None) -> StackFile:
    path = (stack_dir or ROOT) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise DiscoverError(
            f"no stack file {path} (give --stack NAME of a Pulumi.NAME.yaml in --stack-dir)"
        )
    data = path.read_bytes()
    try:
        raw = load_stack_text(data, path.name)
        settings = _settings(stack, raw)
    except ConfigError as exc:
        # composite_key_tables may name the tables discovery is about to declare: read the
        # stack without them (the written result is checked with them)
        try:
            settings = _settings(stack, _without_composite_lists(raw))
        except (ConfigError, ValueError):
            raise DiscoverError(" ".join(exc.brief().split())) from None
    except ValueError as exc:
        raise DiscoverError(" ".join(str(exc).split())) from None
    if settings.dms is None:
        raise DiscoverError(
            f"stack '{stack}' has no {DMS_KEY} section: discovery reads the "
            "DMS source's catalog (add dms.source first)"
        )
    return StackFile(stack, path, data.decode("utf-8").removeprefix("\ufeff"), raw, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        allow_abbrev=False,
        prog=PROG,
        description="Read the DMS source's catalog for the tables the stack selects and "
        "print (or --write) the stack file's dms-event-bus:tables entries: logical name, "
        "DynamoDB key from the primary key, key types; with what cannot be carried as is.",
    )
    add_connection_args(parser)
    parser.add_argument(
        "--schema",
        action="extend",
        nargs="+",
        default=[],
        metavar="S",
        help="declare every table of schema S (repeatable; Oracle: the owner as stored, "
        "MySQL: the database); default: the stack's declared and wildcard-selected tables",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="write the entries into Pulumi.<stack>.yaml (only the tables "
        "blocks change; nothing declared is dropped)",
    )
    parser.add_argument(
        "--capacity",
        choices=("on_demand", "provisioned"),
        default="on_demand",
        help="capacity of the tables added (default on_demand; provisioned: autoscaled "
        "1..10 units, tune per table afterwards); declared tables keep theirs",
    )
    parser.add_argument(
        "--measure-lobs",
        action="store_true",
        help="measure each LOB column's largest value (one full scan per column: run it "
        "off-peak) and suggest task.lob_max_size_kb",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _connect(args: argparse.Namespace) -> Any:
    return connect(params_from_args(args, args.engine))


def _fill_connection(args: argparse.Namespace, stack: StackFile) -> None:
    """Unset connection options from the stack's dms.source, as `sourcedb.apply_stack`
    does (explicit options win), from the settings already read: a stack whose
    composite_key_tables name tables not declared yet is read here, not refused."""
    dms = stack.settings.dms
    assert dms is not None
    src = dms.source
    if args.engine is None:
        args.engine = str(src.engine)
    if args.host is None:
        args.host = str(src.server)
    if args.port is None and protocol_of(args.engine) == protocol_of(str(src.engine)):
        args.port = src.effective_port
    if args.database is None:
        args.database = src.database
    if args.secret_arn is None and args.password_env is None:
        args.secret_arn = str(src.secret_arn)
    region = stack.raw.get("aws:region")
    if args.region is None and isinstance(region, str):
        args.region = region
    if args.ssl is None:
        args.ssl = "disable" if src.ssl_mode == "none" else "require"
    apply_stack(argparse.Namespace(**{**vars(args), "stack": None}))


def discover(
    args: argparse.Namespace, stack: StackFile, connect_source: Callable[[Any], Any]
) -> Discovery:
    dms = stack.settings.dms
    assert dms is not None
    engine = protocol_of(str(dms.source.engine))
    if args.engine is not None and protocol_of(args.engine) != engine:
        raise DiscoverError(
            f"--engine {args.engine} is not the stack's engine "
            f"{dms.source.engine}: leave --engine out"
        )
    if engine == "oracle":  # owners as Oracle stores unquoted names (as the preflight does)
        args.schema = [s.upper() if s.islower() else s for s in args.schema]
    schemas = list(dict.fromkeys([*selected_schemas(dms, stack.settings.tables), *args.schema]))
    if not schemas:
        raise DiscoverError(
            f"stack '{stack.name}' selects no schema (no dms.wildcards, no "
            "declared tables, no dms.default_schema): give --schema S"
        )
    _fill_connection(args, stack)
    conn = connect_source(args)
    try:
        try:
            catalog = read_catalog(conn, engine, schemas)
        except Exception as exc:  # permission denied, a catalog view missing
            raise DiscoverError(
                f"cannot read the {engine} catalog of {', '.join(schemas)}: {error_text(exc)}"
            ) from None
        raw_tables = stack.raw.get(TABLES_KEY) or {}
        raw_dms_tables = (stack.raw.get(DMS_KEY) or {}).get("tables") or {}
        result = plan(
            engine,
            catalog,
            stack.settings,
            raw_tables,
            raw_dms_tables,
            schemas,
            all_of=args.schema,
            capacity=PROVISIONED if args.capacity == "provisioned" else ON_DEMAND,
        )
        if args.measure_lobs:
            measure_lobs(conn, engine, catalog, result)
    finally:
        close = getattr(conn, "close", None)
        if close is not None:
            close()
    present = {s.lower() for s, _ in result.catalog}
    for schema in schemas:
        if schema.lower() not in present:
            result.findings.append(
                Finding(
                    schema,
                    NOTE,
                    "schema",
                    "no tables found (or none this login may read)",
                    "check the schema name"
                    + (" (Oracle: the owner in upper case)" if engine == "oracle" else "")
                    + " and the login's grants",
                )
            )
    raw_wildcards = (stack.raw.get(DMS_KEY) or {}).get("wildcards") or []
    for i, names in list(result.composite.items()):
        listed = (
            raw_wildcards[i].get("composite_key_tables") or [] if i < len(raw_wildcards) else []
        )
        fresh = [n for n in names if n not in listed]
        if fresh:
            result.composite[i] = fresh
        else:
            del result.composite[i]
    return result


def _cross_check(stack: StackFile, text: str, discovery: Discovery) -> list[Finding]:
    """Load the updated stack with its own config models; run the composite-key hook."""
    raw = load_stack_text(text.encode(), stack.path.name)
    engine_config, _ = as_engine_config(raw)
    try:
        settings = load_settings(stack.name, project_config(engine_config))
    except ConfigError as exc:
        raise DiscoverError(
            f"the updated stack would not load, nothing written: {' '.join(exc.brief().split())}"
        ) from None
    assert settings.dms is not None
    reported = {f.table for f in discovery.findings if f.severity == BLOCKED}
    extra = []
    for _, message, found in wildcard_tables_not_carried(
        settings.dms, settings.tables, discovery.catalog
    ):
        if str(found) not in reported:
            extra.append(
                Finding(str(found), BLOCKED, "wildcard_not_carried", message, "see the message")
            )
    return extra


def _summary(discovery: Discovery) -> dict[str, int]:
    counts: dict[str, int] = {}
    for change in discovery.changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    return counts


def render_text(
    discovery: Discovery, stack: StackFile, diff: tuple[int, int] | None, written: bool
) -> str:
    counts = _summary(discovery)
    lines = [
        f"{PROG}: {discovery.engine} source of stack '{stack.name}', schemas "
        f"{', '.join(discovery.schemas)}: {len(discovery.catalog)} tables read; "
        + ", ".join(f"{n} {a}" for a, n in counts.items())
        if counts
        else f"{PROG}: {discovery.engine} source of stack '{stack.name}': nothing to declare",
    ]
    if discovery.tables:
        lines.append(f"{TABLES_KEY}:  # new or changed entries")
        for logical, entry in discovery.tables.items():
            lines += table_entry_lines(logical, entry, 2)
    if discovery.dms_tables:
        lines.append(f"{DMS_KEY}:\n  tables:  # new or changed entries")
        for logical, entry in discovery.dms_tables.items():
            lines += dms_entry_lines(logical, entry, 4)
    for i, names in sorted(discovery.composite.items()):
        lines.append(
            f"dms.wildcards[{i}].composite_key_tables += {_flow(names)}  # declared tables "
            "it also selects whose key is not one column: the plan fails if one is undeclared"
        )
    changed = [c for c in discovery.changes if c.action in ("updated", "kept")]
    if changed:
        lines.append("declared tables:")
        lines += [f"  {c.logical} ({c.source}): {c.action}: {c.detail}" for c in changed]
    shown = [f for f in discovery.findings if f.severity != NOTE] + [
        f for f in discovery.findings if f.severity == NOTE
    ]
    if shown:
        lines.append(f"cannot be carried as is ({len(shown)}):")
        lines += [f"  {f.line()}" for f in shown]
    if diff is not None:
        added, removed = diff
        verb = "wrote" if written else "would write"
        lines.append(
            f"{verb} {stack.path.name}: +{added} -{removed} lines "
            f"({counts.get('added', 0)} tables added, {counts.get('updated', 0)} "
            "updated; other keys and comments unchanged)"
        )
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None, connect_source: Callable[[Any], Any] | None = None
) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.stack:
        return fail(
            PROG,
            "--stack NAME is required: discovery reads and writes the tables of Pulumi.NAME.yaml",
        )
    try:
        stack = read_stack(args.stack, args.stack_dir)
        discovery = discover(args, stack, connect_source or _connect)
        new_text = updated_stack_text(stack.text, stack.path.name, discovery)
        discovery.findings += _cross_check(stack, new_text, discovery)
    except (SourceError, DiscoverError) as exc:
        return fail(PROG, str(exc))
    except ValueError as exc:  # the stack file's reader (StackFileError), read again to edit
        return fail(PROG, " ".join(str(exc).split()))
    diff = None
    if new_text != stack.text:
        ops = list(
            difflib.unified_diff(stack.text.splitlines(), new_text.splitlines(), lineterm="", n=0)
        )
        diff = (
            sum(1 for o in ops if o.startswith("+") and not o.startswith("+++")),
            sum(1 for o in ops if o.startswith("-") and not o.startswith("---")),
        )
    written = False
    if args.write and new_text != stack.text:
        stack.path.write_text(new_text, encoding="utf-8")
        written = True
    if args.json:
        print(
            json.dumps(
                {
                    "stack": stack.name,
                    "engine": discovery.engine,
                    "schemas": discovery.schemas,
                    "tables_read": len(discovery.catalog),
                    "tables": discovery.tables,
                    "dms_tables": discovery.dms_tables,
                    "composite_key_tables": {str(i): n for i, n in discovery.composite.items()},
                    "changes": [asdict(c) for c in discovery.changes],
                    "findings": [asdict(f) for f in discovery.findings],
                    "diff": None if diff is None else {"added": diff[0], "removed": diff[1]},
                    "written": written,
                },
                indent=2,
            )
        )
    else:
        print(render_text(discovery, stack, diff, written))
    return discovery.exit_code


if __name__ == "__main__":
    sys.exit(main())
