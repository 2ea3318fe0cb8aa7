"""SQL side of the legacy writeback: version-guarded multi-row statements and their executors.

Pure statement builders (one statement per table per batch) for PostgreSQL and MySQL/MariaDB,
and two executors with one interface: a database connection (psycopg 3, whose batch goes out
as one pipeline through its public `Connection.pipeline()`, or PyMySQL) and the RDS Data API.
No pulumi/pydantic imports; drivers are imported lazily (orjson, which writes a table's rows
as one json parameter, at load: the package bundles it).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import orjson

#: PostgreSQL's wire protocol caps bind parameters at 32767 per statement; the Data API has
#: its own request limits. Larger batches are split (still one transaction).
MAX_PARAMS = {"postgres": 30000, "mysql": 60000, "data_api": 1000,
              # json styles: one parameter per table; split only beyond 200,000 values
              "postgres_json": 200_000}
INT64 = (-(2**63), 2**63 - 1)


# --------------------------------------------------------------------------- statements


@dataclass(frozen=True)
class TableSpec:
    """How one DynamoDB table maps to one legacy table (the handler's config entry)."""

    legacy_table: str
    key_columns: dict[str, str]  # item attribute -> column
    columns: dict[str, str]  # item attribute -> column
    version_attribute: str = "version"
    version_column: str = "version"
    column_types: dict[str, str] = field(default_factory=dict)  # column -> SQL type
    deletes: bool = True

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> TableSpec:
        return cls(
            legacy_table=raw["legacy_table"],
            key_columns=dict(raw["key_columns"]),
            columns=dict(raw.get("columns") or {}),
            version_attribute=raw.get("version_attribute", "version"),
            version_column=raw.get("version_column", "version"),
            column_types=dict(raw.get("column_types") or {}),
            deletes=bool(raw.get("deletes", True)),
        )

    @property
    def upsert_columns(self) -> list[str]:
        """Key columns, then the other columns, then the version column LAST."""
        return [*self.key_columns.values(), *self.columns.values(), self.version_column]

    @functools.cached_property
    def json_columns(self) -> tuple[tuple[str, str], ...]:
        """(item attribute, column) for the key columns and the other columns, in
        `upsert_columns` order (the version column comes from the version attribute)."""
        return (*self.key_columns.items(), *self.columns.items())


@dataclass(frozen=True)
class Statement:
    """One SQL statement with its parameters in the executor's style.

    `kind`: "write" (PostgreSQL: the table's guarded deletes and upserts, answering with its
    refusals), "delete" / "upsert" (MySQL: the guarded writes, answering with affected rows),
    "report" (MySQL: the refusals, read back after the writes in the same transaction).
    `changes`: how many changes the statement writes (PostgreSQL: rows changed = `changes`
    minus the refusals it answers with).

    A refusal row is `(kind, n, legacy_version, same, same_key, stored_key)`: `kind` "u"
    (the n-th upsert) or "d" (the n-th delete), counted from 1 in the builder's order; the
    legacy row's version as text (None: no row); whether it holds exactly the change's values
    (None for a delete); whether its key equals the change's key byte for byte (None: not
    checked, PostgreSQL's deterministic collations); the row's (first) key column as text."""

    sql: str
    params: list[Any]
    table: str
    kind: str
    changes: int = 0


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]*$")


def quote(name: str, dialect: str) -> str:
    """Quote one identifier. Names are validated by the config; re-checked here."""
    if not _IDENT.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"' if dialect == "postgres" else f"`{name}`"


def quote_table(qualified: str, dialect: str) -> str:
    return ".".join(quote(part, dialect) for part in qualified.split("."))


#: Parameter styles: DB-API `format` (PyMySQL), `numbered` (PostgreSQL's own `$n`), `named`
#: (`:pN`, the Data API), and `json` / `json_named` (PostgreSQL, direct / through the Data
#: API: a table's rows travel as ONE json parameter, expanded by json_populate_recordset into
#: the legacy table's own row type).
STYLES = ("format", "numbered", "named", "json", "json_named")
JSON_STYLES = ("json", "json_named")
_MARKS: dict[str, Callable[[int], str]] = {
    "format": lambda _n: "%s",
    "json": "${}".format,
    "numbered": "${}".format,
    "named": ":p{}".format,
    "json_named": ":p{}".format,
}


class Params:
    """Collects parameter values and renders their placeholders in one style."""

    def __init__(self, style: str) -> None:
        if style not in STYLES:
            raise ValueError(f"placeholder style: expected one of {STYLES}, found {style!r}")
        self.style = style
        self.values: list[Any] = []
        self._mark = _MARKS[style]

    def add(self, value: Any, sql_type: str | None = None) -> str:
        self.values.append(value)
        mark = self._mark(len(self.values))
        return f"CAST({mark} AS {sql_type})" if sql_type else mark


def build_statements(
    spec: TableSpec,
    upserts: Sequence[list[Any] | dict[str, Any]],
    deletes: Sequence[tuple[list[Any], Any]],
    *,
    dialect: str,
    style: str,
    keep: Sequence[list[Any] | dict[str, Any] | None] = (),
) -> list[Statement]:
    """The statements applying one table's collapsed changes and reporting, per change,
    whether the legacy row refused it (see `Statement`).

    `upserts`: rows of values in `spec.upsert_columns` order (json styles: or the rows as
    JSON-ready objects, column -> value, `handlers.writeback._json_row`). `deletes`: (key
    values, version). When a key is both deleted and upserted (a delete, then its
    re-creation), the deletes must run first: call this twice, deletes alone and then
    upserts alone. `keep` (aligned with `deletes`): each delete's re-creation row (in the
    upserts' form; None: none); a delete leaves a row that already holds exactly its
    re-creation, so a replayed re-creation changes nothing (as one by one, the row would be
    deleted and written again the same).

    Versions are compared as numbers (`CAST(.. AS numeric)`), so a text version column
    orders "10" after "9".

    PostgreSQL: ONE statement (data-modifying CTEs) whose result rows are the refusals,
    read from the same snapshot the writes started from; the rows travel as one json
    parameter each for deletes and upserts (the legacy table's row type types every value).
    MySQL/MariaDB: a guarded DELETE (when there are deletes), one INSERT .. ON DUPLICATE KEY
    UPDATE whose guard also requires the stored key to equal the change's byte for byte (a
    case-insensitive collation must not let one item overwrite another's row), then a
    SELECT of the refusals after the writes, in the same transaction.
    """
    keeps = list(keep) or [None] * len(deletes)
    if len(keeps) != len(deletes):
        raise ValueError("keep: one entry per delete")
    if dialect == "postgres" and style in JSON_STYLES:
        return [_postgres_json_write(spec, upserts, deletes, style, keeps)]
    if style in JSON_STYLES:
        raise ValueError("the json parameter styles are for PostgreSQL only")
    rows = [row for row in upserts if not isinstance(row, dict)]
    if len(rows) != len(upserts):
        raise ValueError(f"JSON-ready rows need a json style, not {style!r}")
    if dialect == "postgres":
        raise ValueError("PostgreSQL statements use a json style")
    out = []
    if deletes:
        out.append(_mysql_delete(spec, deletes, style, keeps))
    if rows:
        out.append(_mysql_upsert(spec, rows, style))
    if rows or deletes:
        out.append(_mysql_report(spec, rows, deletes, style))
    return out


class JsonText(str):
    """A value that already is JSON text (a DynamoDB map, list or set): embedded as JSON in a
    `json` style payload, so a json/jsonb column receives the structure and a text column its
    text; everywhere else it is an ordinary string parameter."""


def json_rows(columns: Sequence[str], rows: Sequence[Sequence[Any] | dict[str, Any]]) -> str:
    """Rows as a JSON array of objects keyed by column name, for json_populate_recordset.

    Numbers travel as JSON strings of their exact digits (the column's own input function
    reads them: no float anywhere), bytes as bytea hex text, JsonText as embedded JSON. A row
    given as a dict is already that object, its values as orjson writes them
    (`handlers.writeback._json_row`): all such rows are written by one orjson call.
    """
    if all(row.__class__ is dict for row in rows):
        return orjson.dumps(rows).decode()
    keys = [_json_str(c) + ":" for c in columns]
    encoders = _JSON_ENCODERS
    return "[" + ",".join(
        orjson.dumps(row).decode() if isinstance(row, dict) else
        "{" + ",".join(k + encoders.get(type(v), _json_other)(v)
                       for k, v in zip(keys, row, strict=True)) + "}"
        for row in rows
    ) + "]"


def json_value(value: Any) -> str:
    """One parameter value as `json` style JSON (see json_rows)."""
    return _JSON_ENCODERS.get(type(value), _json_other)(value)


_json_str: Callable[[str], str] = json.encoder.encode_basestring


def _json_number(value: int | Decimal) -> str:
    return f'"{value}"'


def _json_other(value: Any) -> str:
    if isinstance(value, JsonText):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return _json_number(value)
    if isinstance(value, bytes | bytearray):
        return '"\\\\x' + bytes(value).hex() + '"'
    return _json_str(str(value))


_JSON_ENCODERS: dict[type, Callable[[Any], str]] = {
    str: _json_str,
    int: _json_number,
    Decimal: _json_number,
    type(None): lambda _v: "null",
    bool: lambda v: "true" if v else "false",
    JsonText: str,
}


def _postgres_json_write(
    spec: TableSpec,
    upserts: Sequence[list[Any] | dict[str, Any]],
    deletes: Sequence[tuple[list[Any], Any]],
    style: str,
    keep: Sequence[list[Any] | dict[str, Any] | None],
) -> Statement:
    """ONE statement per table whatever the batch size: deletes and upserts each travel as a
    single json parameter; the legacy table's row type gives every value its column's type
    (`column_types` casts are not needed here).

    The main query reads the legacy table in the snapshot the data-modifying CTEs start from
    (they cannot see one another's effects): for each change the CTEs did not write, the row
    as it was -- its version and whether it already held exactly the change's values."""
    d = "postgres"
    table = quote_table(spec.legacy_table, d)
    mark = _MARKS[style]
    rowtype = f"json_populate_recordset(NULL::{table}, CAST({{}} AS json))"
    keys = [quote(c, d) for c in spec.key_columns.values()]
    ver = quote(spec.version_column, d)

    def match(a: str, b: str) -> str:
        return " AND ".join(f"{a}.{k} = {b}.{k}" for k in keys)

    def num(expr: str) -> str:
        return f"CAST({expr} AS numeric)"

    params: list[Any] = []
    ctes, reports = [], []
    updated = [quote(c, d) for c in [*spec.columns.values(), spec.version_column]]

    def same(a: str, b: str) -> str:
        # text forms: every type has one (json has no equality operator)
        return " AND ".join(f"CAST({a}.{c} AS text) IS NOT DISTINCT FROM CAST({b}.{c} AS text)"
                            for c in updated)

    if deletes:
        params.append(json_rows([*spec.key_columns.values(), spec.version_column],
                                [[*k, version] for k, version in deletes]))
        ctes.append(f"dk AS (SELECT * FROM {rowtype.format(mark(len(params)))} "
                    "WITH ORDINALITY AS dk)")
        kept = [row for row in keep if row is not None]
        unless = ""
        if kept:  # a row that already is its re-creation stays (a replay changes nothing)
            params.append(json_rows(spec.upsert_columns, kept))
            ctes.append(f"rk AS (SELECT * FROM {rowtype.format(mark(len(params)))} AS rk)")
            unless = (f" AND NOT EXISTS (SELECT 1 FROM rk WHERE {match('rk', 't')} AND "
                      f"{same('t', 'rk')})")
        ctes.append(
            f"d AS (DELETE FROM {table} AS t USING dk WHERE {match('t', 'dk')} AND "
            f"(t.{ver} IS NULL OR {num(f't.{ver}')} <= {num(f'dk.{ver}')}){unless} "
            f"RETURNING {', '.join(f't.{k}' for k in keys)})"
        )
        reports.append(
            f"SELECT 'd' AS kind, dk.ordinality AS n, CAST(l.{ver} AS text) AS version, "
            "CAST(NULL AS boolean) AS same, CAST(NULL AS boolean) AS same_key, "
            f"CAST(l.{keys[0]} AS text) AS stored_key FROM dk "
            f"LEFT JOIN d ON {match('d', 'dk')} LEFT JOIN {table} AS l ON {match('l', 'dk')} "
            f"WHERE d.{keys[0]} IS NULL"
        )
    if upserts:
        cols = spec.upsert_columns
        params.append(json_rows(cols, upserts))
        listed = ", ".join(quote(c, d) for c in cols)
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in updated)
        ctes.append(f"k AS (SELECT * FROM {rowtype.format(mark(len(params)))} "
                    "WITH ORDINALITY AS k)")
        ctes.append(
            f"u AS (INSERT INTO {table} AS t ({listed}) SELECT {listed} FROM k "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets} "
            f"WHERE t.{ver} IS NULL OR {num(f't.{ver}')} < {num(f'EXCLUDED.{ver}')} "
            f"RETURNING {', '.join(f't.{k}' for k in keys)})"
        )
        reports.append(
            f"SELECT 'u' AS kind, k.ordinality AS n, CAST(l.{ver} AS text) AS version, "
            f"(l.{keys[0]} IS NOT NULL AND {same('l', 'k')}) AS same, "
            f"CAST(NULL AS boolean) AS same_key, CAST(l.{keys[0]} AS text) AS stored_key "
            "FROM k "
            f"LEFT JOIN u ON {match('u', 'k')} LEFT JOIN {table} AS l ON {match('l', 'k')} "
            f"WHERE u.{keys[0]} IS NULL"
        )
    sql = f"WITH {', '.join(ctes)} {' UNION ALL '.join(reports)}"
    return Statement(sql, params, spec.legacy_table, "write", len(upserts) + len(deletes))


def _mysql_num(expr: str) -> str:
    return f"CAST({expr} AS DECIMAL(65,30))"


def _mysql_upsert(spec: TableSpec, rows: Sequence[list[Any]], style: str) -> Statement:
    d = "mysql"
    params = Params(style)
    cols = spec.upsert_columns
    ver = quote(spec.version_column, d)
    # the row is this change's own (its key byte for byte, not only equal under the
    # column's collation) and older
    own = " AND ".join(f"BINARY {quote(c, d)} = BINARY VALUES({quote(c, d)})"
                       for c in spec.key_columns.values())
    newer = f"({ver} IS NULL OR {_mysql_num(f'VALUES({ver})')} > {_mysql_num(ver)}) AND {own}"
    # MySQL evaluates the assignments left to right and later ones see earlier results, so
    # every guard reads the OLD version: the version column is assigned last.
    updated = [*spec.columns.values(), spec.version_column]
    sets = ", ".join(
        f"{quote(c, d)} = IF({newer}, VALUES({quote(c, d)}), {quote(c, d)})" for c in updated
    )
    sql = (
        f"INSERT INTO {quote_table(spec.legacy_table, d)} "
        f"({', '.join(quote(c, d) for c in cols)}) VALUES {_values_rows(spec, rows, params)} "
        f"ON DUPLICATE KEY UPDATE {sets}"
    )
    return Statement(sql, params.values, spec.legacy_table, "upsert", len(rows))


def _values_rows(spec: TableSpec, rows: Sequence[list[Any]], params: Params) -> str:
    cols = spec.upsert_columns
    return ", ".join(
        "(" + ", ".join(params.add(v, spec.column_types.get(c)) for c, v in zip(cols, row,
                                                                                 strict=True))
        + ")"
        for row in rows
    )


def _mysql_delete(
    spec: TableSpec, deletes: Sequence[tuple[list[Any], Any]], style: str,
    keep: Sequence[list[Any] | dict[str, Any] | None],
) -> Statement:
    """`(k = ? AND BINARY k = BINARY ? AND (v IS NULL OR v <= ?)) OR ...`: applied only when
    the row is this key's own and not newer, and (a re-created key) not already its
    re-creation (`AND NOT (c <=> ? AND ... AND v <=> ?)`)."""
    d = "mysql"
    params = Params(style)
    ver = quote(spec.version_column, d)
    vtype = spec.column_types.get(spec.version_column)
    others = [*spec.columns.values(), spec.version_column]
    nkeys = len(spec.key_columns)
    terms = []
    for (keys, version), kept in zip(deletes, keep, strict=True):
        parts = []
        for col, val in zip(spec.key_columns.values(), keys, strict=True):
            ctype = spec.column_types.get(col)
            parts.append(f"{quote(col, d)} = {params.add(val, ctype)}")
            parts.append(f"BINARY {quote(col, d)} = BINARY {params.add(val, ctype)}")
        parts.append(f"({ver} IS NULL OR {_mysql_num(ver)} <= "
                     f"{_mysql_num(params.add(version, vtype))})")
        if isinstance(kept, list):
            parts.append("NOT (" + " AND ".join(
                f"{quote(c, d)} <=> {params.add(v, spec.column_types.get(c))}"
                for c, v in zip(others, kept[nkeys:], strict=True)) + ")")
        terms.append("(" + " AND ".join(parts) + ")")
    sql = f"DELETE FROM {quote_table(spec.legacy_table, d)} WHERE {' OR '.join(terms)}"
    return Statement(sql, params.values, spec.legacy_table, "delete", len(deletes))


def _mysql_report(
    spec: TableSpec, rows: Sequence[list[Any]], deletes: Sequence[tuple[list[Any], Any]],
    style: str,
) -> Statement:
    """The refusals, read after the writes (same transaction, the rows still locked): one
    primary-key lookup per change, answering only when the row does not hold the change.
    Values are compared by the server, in the column's own type and collation."""
    d = "mysql"
    params = Params(style)
    table = quote_table(spec.legacy_table, d)
    ver = quote(spec.version_column, d)
    key_cols = list(spec.key_columns.values())
    types = spec.column_types
    nkeys = len(key_cols)
    first = quote(key_cols[0], d)
    others = [*spec.columns.values(), spec.version_column]

    def own(keys: Sequence[Any]) -> str:
        return " AND ".join(f"BINARY {quote(c, d)} = BINARY {params.add(v, types.get(c))}"
                            for c, v in zip(key_cols, keys, strict=True))

    def where(keys: Sequence[Any]) -> str:
        return " AND ".join(f"{quote(c, d)} = {params.add(v, types.get(c))}"
                            for c, v in zip(key_cols, keys, strict=True))

    # placeholders are positional in the `format` style: parameters are added in text order
    parts = []
    for n, (keys, _version) in enumerate(deletes, start=1):
        mine = own(keys)
        parts.append(f"SELECT 'd' AS kind, {n} AS n, CAST({ver} AS CHAR) AS version, "
                     f"NULL AS same, ({mine}) AS same_key, CAST({first} AS CHAR) AS stored_key "
                     f"FROM {table} "
                     f"WHERE {where(keys)} HAVING same_key")
    for n, row in enumerate(rows, start=1):
        keys, values = row[:nkeys], row[nkeys:]
        same = " AND ".join(f"{quote(c, d)} <=> {params.add(v, types.get(c))}"
                            for c, v in zip(others, values, strict=True))
        mine = own(keys)
        parts.append(f"SELECT 'u' AS kind, {n} AS n, CAST({ver} AS CHAR) AS version, "
                     f"({same}) AS same, ({mine}) AS same_key, CAST({first} AS CHAR) AS "
                     f"stored_key FROM {table} "
                     f"WHERE {where(keys)} HAVING NOT (same AND same_key)")
    sql = " UNION ALL ".join(parts)
    return Statement(sql, params.values, spec.legacy_table, "report", 0)


# --------------------------------------------------------------------------- errors


class DataError(Exception):
    """The database rejected the data of a statement (type, constraint, value): a bad record,
    found by bisection."""


class SchemaNotReadyError(Exception):
    """A mapped legacy table or column does not exist (yet): the legacy migration has not run.
    Nothing is blamed on a record: the whole batch fails and is retried."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}".strip())
        self.code = code


#: What each error means for a batch, as data (docs/writeback.md, "When a batch fails"):
#: "retry" (transient or not about the data: the whole batch fails, Lambda retries it),
#: "schema" (a missing table or column: the whole batch fails, metric SchemaNotReady),
#: "record" (a bad record: bisection finds it, it ends as a poison record).
#:
#: PostgreSQL SQLSTATE: exact codes first, then the two-character class, else "retry".
PG_SQLSTATES: dict[str, str] = {
    "40P01": "retry",   # deadlock_detected
    "40001": "retry",   # serialization_failure
    "55P03": "retry",   # lock_not_available (lock_timeout)
    "57014": "retry",   # query_canceled (statement_timeout)
    "25P03": "retry",   # idle_in_transaction_session_timeout
    "42501": "retry",   # insufficient_privilege: the login, not the data
    "42P01": "schema",  # undefined_table
    "42703": "schema",  # undefined_column
    "42704": "schema",  # undefined_object (the table's row type)
    "3F000": "schema",  # invalid_schema_name
    "3D000": "schema",  # invalid_catalog_name (the database)
}
PG_SQLSTATE_CLASSES: dict[str, str] = {
    "08": "retry",   # connection exception
    "53": "retry",   # insufficient resources (too many connections, disk full, memory)
    "57": "retry",   # operator intervention (admin shutdown, crash shutdown, cannot connect)
    "58": "retry",   # system error (I/O)
    "40": "retry",   # transaction rollback
    "22": "record",  # data exception (value too long, invalid text, out of range, ...)
    "23": "record",  # integrity constraint violation (not null, unique, foreign key, check)
    "42": "record",  # syntax error or access rule violation (a value of the wrong type)
    "2B": "record",  # dependent privilege descriptors still exist
    "44": "record",  # with check option violation
    "P0": "record",  # PL/pgSQL raise (a trigger rejecting the row)
}
#: MySQL/MariaDB error numbers; a server error (1000-1999, 3000+) not listed is "record",
#: a client error (2000-2999: connection lost, gone away) "retry".
MYSQL_ERRNOS: dict[int, str] = {
    1205: "retry",  # ER_LOCK_WAIT_TIMEOUT
    1213: "retry",  # ER_LOCK_DEADLOCK
    1969: "retry",  # ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
    3024: "retry",  # ER_QUERY_TIMEOUT (MySQL max_execution_time)
    1317: "retry",  # ER_QUERY_INTERRUPTED
    1927: "retry",  # ER_CONNECTION_KILLED
    1053: "retry",  # ER_SERVER_SHUTDOWN
    1040: "retry",  # ER_CON_COUNT_ERROR (too many connections)
    1203: "retry",  # ER_TOO_MANY_USER_CONNECTIONS
    1290: "retry",  # ER_OPTION_PREVENTS_STATEMENT (read-only server)
    1792: "retry",  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
    1637: "retry",  # ER_TOO_MANY_CONCURRENT_TRXS
    1180: "retry",  # ER_ERROR_DURING_COMMIT
    4031: "retry",  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
    1044: "retry",  # ER_DBACCESS_DENIED_ERROR: the login, not the data
    1045: "retry",  # ER_ACCESS_DENIED_ERROR
    1142: "retry",  # ER_TABLEACCESS_DENIED_ERROR
    1143: "retry",  # ER_COLUMNACCESS_DENIED_ERROR
    1227: "retry",  # ER_SPECIFIC_ACCESS_DENIED_ERROR
    1146: "schema",  # ER_NO_SUCH_TABLE
    1054: "schema",  # ER_BAD_FIELD_ERROR (unknown column)
    1049: "schema",  # ER_BAD_DB_ERROR
}
#: RDS Data API error codes (botocore's rds-data model): everything but the SQL errors is
#: about the service, the cluster or the login: retry. DatabaseErrorException (and the
#: deprecated BadRequestException) carry the database's error in the message: classified
#: by `DATA_API_MESSAGES`.
DATA_API_CODES: dict[str, str] = {
    "StatementTimeoutException": "retry",
    "DatabaseResumingException": "retry",
    "DatabaseUnavailableException": "retry",
    "DatabaseNotFoundException": "retry",
    "ServiceUnavailableError": "retry",
    "InternalServerErrorException": "retry",
    "ThrottlingException": "retry",
    "TooManyRequestsException": "retry",
    "TransactionNotFoundException": "retry",
    "SecretsErrorException": "retry",
    "InvalidSecretException": "retry",
    "ForbiddenException": "retry",
    "AccessDeniedException": "retry",
    "HttpEndpointNotEnabledException": "retry",
    "InvalidResourceStateException": "retry",
}
#: Patterns of a DatabaseErrorException/BadRequestException message, first match wins: the
#: SQLSTATE (PostgreSQL: "...; SQLState: 40P01") or MySQL error number when the message
#: carries one, then the servers' own texts for the transient and schema errors.
DATA_API_MESSAGES: tuple[tuple[str, str], ...] = (
    (r"SQLState: (?P<sqlstate>[0-9A-Z]{5})", "sqlstate"),
    (r"(?:Error code|errno|ErrorCode)[:= ]+(?P<errno>\d{4})", "errno"),
    (r"Communications link failure|Connection reset|connection (?:is )?closed", "retry"),
    (r"deadlock", "retry"),
    (r"Lock wait timeout exceeded|could not obtain lock", "retry"),
    (r"could not serialize access", "retry"),
    (r"statement timeout|max_statement_time|maximum statement execution time|"
     r"Query execution was interrupted", "retry"),
    (r"[Tt]ransaction", "retry"),
    (r"Table '[^']*' doesn't exist|Unknown column|relation \"[^\"]*\" does not exist|"
     r"column \"[^\"]*\" (?:of relation \"[^\"]*\" )?does not exist|type \"[^\"]*\" does "
     r"not exist", "schema"),
)
_DATA_API_PATTERNS = [(re.compile(p, re.IGNORECASE), c) for p, c in DATA_API_MESSAGES]


def classify_sqlstate(code: str) -> str:
    """A PostgreSQL SQLSTATE's class: "retry", "schema" or "record"."""
    return PG_SQLSTATES.get(code) or PG_SQLSTATE_CLASSES.get(code[:2], "retry")


def classify_errno(number: int) -> str:
    """A MySQL/MariaDB error number's class: "retry", "schema" or "record"."""
    found = MYSQL_ERRNOS.get(number)
    if found:
        return found
    return "retry" if number < 1000 or 2000 <= number < 3000 else "record"


def error_class(dialect: str, exc: BaseException) -> str:
    """What an error of a direct connection means for the batch (see the tables above)."""
    if dialect == "postgres":
        # psycopg: the server's SQLSTATE; None when the server did not answer (connection
        # lost or closed, ...)
        code = getattr(exc, "sqlstate", None)
        return classify_sqlstate(code) if isinstance(code, str) else "retry"
    number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return "retry" if number is None else classify_errno(number)


def data_api_error_class(exc: BaseException) -> tuple[str, str]:
    """What a Data API error means for the batch, and the code it names ("" if none)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "retry", ""
    error = response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    if code not in ("DatabaseErrorException", "BadRequestException"):
        return DATA_API_CODES.get(code, "retry"), code
    for pattern, kind in _DATA_API_PATTERNS:
        found = pattern.search(message)
        if found is None:
            continue
        if kind == "sqlstate":
            state = found.group("sqlstate")
            return classify_sqlstate(state), state
        if kind == "errno":
            number = found.group("errno")
            return classify_errno(int(number)), number
        return kind, code
    return "record", code


def is_data_error(dialect: str, exc: BaseException) -> bool:
    """Whether the database rejected the statement's data (blame a record)."""
    return error_class(dialect, exc) == "record"


def _error_text(exc: BaseException) -> str:
    code = getattr(exc, "sqlstate", None)
    if isinstance(code, str):  # psycopg: SQLSTATE and the server's primary message
        diag = getattr(exc, "diag", None)
        message = getattr(diag, "message_primary", None) or str(exc)
        return f"{code} {message}".strip()
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore
        return str(response.get("Error", {}).get("Message", "")) or str(exc)
    return " ".join(str(a) for a in exc.args) or type(exc).__name__


def _raise_classified(dialect: str, exc: BaseException) -> None:
    """Re-raise a driver error as what it means: DataError (a bad record),
    SchemaNotReadyError, or the error itself (retry the batch)."""
    kind = error_class(dialect, exc)
    if kind == "record":
        raise DataError(_error_text(exc)) from exc
    if kind == "schema":
        code = getattr(exc, "sqlstate", None) if dialect == "postgres" \
            else (exc.args[0] if exc.args else "")
        raise SchemaNotReadyError(str(code), _error_text(exc)) from exc


# --------------------------------------------------------------------------- executors


@dataclass
class StatementResult:
    """What one statement did: rows it changed, and its refusal rows (see `Statement`)."""

    changed: int
    refusals: list[tuple[Any, ...]]


class Executor(Protocol):
    """Runs a batch's statements atomically; counts its round trips to the database."""

    dialect: str
    style: str
    max_params: int
    round_trips: int

    def apply(self, statements: Sequence[Statement]) -> list[StatementResult]:
        """Run and commit; one result per statement. Raises DataError, SchemaNotReadyError
        or the driver's own error (retry the batch)."""

    def probe(self, statements: Sequence[Statement]) -> str | None:
        """Run and roll back; return the DataError message, or None when it would apply."""


class _Runs:
    """`apply` and `probe` of an executor, from its `_run(statements, commit)`."""

    def _run(self, statements: Sequence[Statement], commit: bool) -> list[StatementResult]:
        raise NotImplementedError

    def apply(self, statements: Sequence[Statement]) -> list[StatementResult]:
        if not statements:
            return []
        return self._run(statements, commit=True)

    def probe(self, statements: Sequence[Statement]) -> str | None:
        try:
            self._run(statements, commit=False)
        except DataError as exc:
            return str(exc)
        return None


class DbApiExecutor(_Runs):
    """A psycopg 3 (`postgres`) or PyMySQL (`mysql`) connection in autocommit mode.

    `round_trips` counts network round trips: a request written and flushed, then its
    answer awaited.

    PostgreSQL: statements use the `json` parameter style (a table's rows in one json
    parameter), and a batch's statements go out in ONE psycopg pipeline (`conn.pipeline()`:
    no Sync until the block ends), so a batch is one round trip whatever its number of
    tables. In autocommit, everything up to that Sync runs in one implicit transaction: all
    statements commit together, or an error rolls all of them back. A probe runs inside
    `conn.transaction(force_rollback=True)` (BEGIN, the pipeline, ROLLBACK: three round
    trips, only when a batch is being bisected).

    MySQL/MariaDB: the batch's statements travel as ONE multi-statement query,
    `BEGIN; <writes and reports>; COMMIT` (one round trip; the connection is opened with
    CLIENT.MULTI_STATEMENTS, values are escaped by PyMySQL as for any query); on an error the
    server stops there, and a ROLLBACK follows. A probe ends with ROLLBACK instead of COMMIT.
    """

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection = connection
        self.dialect = dialect
        self.style = "json" if dialect == "postgres" else "format"
        self.max_params = MAX_PARAMS["postgres_json" if dialect == "postgres" else dialect]
        self.round_trips = 0

    # -- PostgreSQL ---------------------------------------------------------------------
    def _pipeline(self, statements: Sequence[Statement]) -> list[StatementResult]:
        """The statements in one pipeline; each one's refusals."""
        import psycopg

        conn = self.connection
        with conn.pipeline():
            cursors = []
            for statement in statements:
                # RawCursor: the statements' own `$n` placeholders; prepare=False: unnamed
                # statements only (nothing left behind on the server or a pooler)
                cursor = psycopg.RawCursor(conn)
                cursor.execute(statement.sql, statement.params, prepare=False)
                cursors.append(cursor)
        out = []
        for statement, cursor in zip(statements, cursors, strict=True):
            refusals = [tuple(row) for row in cursor.fetchall()]
            out.append(StatementResult(statement.changes - len(refusals), refusals))
            cursor.close()
        return out

    def _run_postgres(self, statements: Sequence[Statement],
                      commit: bool) -> list[StatementResult]:
        try:
            if commit:
                self.round_trips += 1
                return self._pipeline(statements)
            self.round_trips += 3
            with self.connection.transaction(force_rollback=True):
                return self._pipeline(statements)
        except Exception as exc:
            _raise_classified(self.dialect, exc)
            raise

    # -- MySQL/MariaDB ------------------------------------------------------------------
    def _run_mysql(self, statements: Sequence[Statement],
                   commit: bool) -> list[StatementResult]:
        """BEGIN, the statements and COMMIT (ROLLBACK for a probe) as one query: one round
        trip. PyMySQL interpolates each statement's own parameters (escaped) first."""
        cursor = self.connection.cursor()
        parts = ["BEGIN"]
        for statement in statements:
            parts.append(cursor.mogrify(statement.sql, statement.params or None))
        parts.append("COMMIT" if commit else "ROLLBACK")
        out: list[StatementResult] = []
        self.round_trips += 1
        try:
            cursor.execute(";\n".join(parts))  # the BEGIN's result
            for statement in statements:
                cursor.nextset()
                if statement.kind == "report":
                    out.append(StatementResult(0, [tuple(r) for r in cursor.fetchall()]))
                else:
                    out.append(StatementResult(max(int(cursor.rowcount), 0), []))
            cursor.nextset()  # COMMIT / ROLLBACK
        except Exception as exc:
            self._rollback()
            _raise_classified(self.dialect, exc)
            raise
        finally:
            cursor.close()
        return out

    def _rollback(self) -> None:
        try:
            self.round_trips += 1
            cursor = self.connection.cursor()
            cursor.execute("ROLLBACK")
            cursor.close()
        except Exception:  # noqa: BLE001 - the original error is what matters
            pass

    def _run(self, statements: Sequence[Statement], commit: bool) -> list[StatementResult]:
        if self.dialect == "postgres":
            return self._run_postgres(statements, commit)
        return self._run_mysql(statements, commit)


class DataApiExecutor(_Runs):
    """Aurora through the RDS Data API (boto3 `rds-data`).

    PostgreSQL: the `json_named` style (a table's rows as one json parameter, as on a direct
    connection). MySQL: typed `:pN` parameters. One statement: `execute_statement` alone
    (atomic). More: begin_transaction, execute_statement per statement with the
    transactionId, commit_transaction.
    """

    def __init__(
        self, client: Any, *, cluster_arn: str, secret_arn: str, database: str, dialect: str
    ) -> None:
        self.client = client
        self.dialect = dialect
        self.style = "json_named" if dialect == "postgres" else "named"
        self.max_params = MAX_PARAMS["data_api"]
        self.round_trips = 0
        self._base = {"resourceArn": cluster_arn, "secretArn": secret_arn, "database": database}

    def _run(self, statements: Sequence[Statement], commit: bool) -> list[StatementResult]:
        wrap = len(statements) > 1 or not commit
        tx: str | None = None
        out: list[StatementResult] = []
        try:
            if wrap:
                self.round_trips += 1
                tx = self.client.begin_transaction(**self._base)["transactionId"]
            for statement in statements:
                self.round_trips += 1
                request: dict[str, Any] = {
                    **self._base,
                    "sql": statement.sql,
                    "parameters": data_api_parameters(statement.params),
                }
                if tx:
                    request["transactionId"] = tx
                response = self.client.execute_statement(**request)
                if statement.kind in ("write", "report"):
                    refusals = [tuple(_cell(c) for c in record)
                                for record in response.get("records", [])]
                    changed = statement.changes - len(refusals) \
                        if statement.kind == "write" else 0
                    out.append(StatementResult(changed, refusals))
                else:
                    out.append(StatementResult(int(response.get("numberOfRecordsUpdated", 0)),
                                               []))
            if tx:
                self.round_trips += 1
                end = self.client.commit_transaction if commit \
                    else self.client.rollback_transaction
                end(resourceArn=self._base["resourceArn"], secretArn=self._base["secretArn"],
                    transactionId=tx)
        except Exception as exc:
            if tx:
                self._rollback(tx)
            kind, code = data_api_error_class(exc)
            if kind == "record":
                raise DataError(_error_text(exc)) from exc
            if kind == "schema":
                raise SchemaNotReadyError(code, _error_text(exc)) from exc
            raise
        return out

    def _rollback(self, tx: str) -> None:
        try:
            self.round_trips += 1
            self.client.rollback_transaction(
                resourceArn=self._base["resourceArn"], secretArn=self._base["secretArn"],
                transactionId=tx,
            )
        except Exception:  # noqa: BLE001 - the original error is what matters
            pass


def _cell(cell: dict[str, Any]) -> Any:
    """One Data API result cell as a Python value."""
    if cell.get("isNull"):
        return None
    return next(iter(cell.values()))


def data_api_parameters(values: Sequence[Any]) -> list[dict[str, Any]]:
    """Typed Data API parameters for `:p1..:pN`. Exact numbers: integers as longValue when
    they fit 64 bits, everything else as a DECIMAL-hinted string (no float rounding)."""
    out = []
    for i, value in enumerate(values, start=1):
        param: dict[str, Any] = {"name": f"p{i}"}
        if value is None:
            param["value"] = {"isNull": True}
        elif isinstance(value, bool):
            param["value"] = {"booleanValue": value}
        elif isinstance(value, int) and INT64[0] <= value <= INT64[1]:
            param["value"] = {"longValue": value}
        elif isinstance(value, int | Decimal):
            param["value"] = {"stringValue": str(value)}
            param["typeHint"] = "DECIMAL"
        elif isinstance(value, bytes | bytearray):
            param["value"] = {"blobValue": bytes(value)}
        else:
            param["value"] = {"stringValue": str(value)}
        out.append(param)
    return out


# --------------------------------------------------------------------------- connections


def connect(target: dict[str, Any], username: str, password: str) -> Any:
    """Open a direct autocommit connection to the target (`kind` postgres or mysql).

    TLS (`tls`, the default): the server's certificate and host name are verified against
    the CA certificates this Python trusts (what `ssl.create_default_context()` loads)."""
    import ssl

    tls = target.get("tls", True)
    timeout = int(target.get("connect_timeout_seconds", 5))
    if target["kind"] == "postgres":
        import psycopg

        tls_settings: dict[str, Any] = _pg_tls() if tls else {"sslmode": "disable"}
        return psycopg.connect(
            user=username,
            password=password,
            host=target["host"],
            port=int(target["port"]),
            dbname=target["database"],
            connect_timeout=timeout,
            application_name="dms-event-bus-writeback",
            autocommit=True,
            # a peer that stops acknowledging is given up after 30 s (not at the Lambda
            # timeout): the batch fails and is retried on a new connection
            tcp_user_timeout=30_000,
            **tls_settings,
        )
    context: ssl.SSLContext | None = ssl.create_default_context() if tls else None
    import pymysql
    import pymysql.constants.CLIENT

    return pymysql.connect(
        host=target["host"],
        port=int(target["port"]),
        user=username,
        password=password,
        database=target["database"],
        autocommit=True,
        connect_timeout=timeout,
        ssl=context,
        charset="utf8mb4",
        # a batch is one query: BEGIN; writes; reports; COMMIT (DbApiExecutor._run_mysql)
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
        # strict mode: a value that does not fit is an error, never silently truncated
        init_command="SET SESSION sql_mode = "
        "CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')",
    )


Connector = Callable[[], Any]


def _pg_tls() -> dict[str, str]:
    """libpq's TLS settings: verify-full against the CA file Python's own OpenSSL trusts
    (libpq in psycopg's binary wheel brings its own OpenSSL, whose default paths need not
    exist on the Lambda runtime); libpq's `system` store when there is no such file."""
    import os
    import ssl

    paths = ssl.get_default_verify_paths()
    cafile = next((f for f in (paths.cafile, paths.openssl_cafile) if f and os.path.isfile(f)),
                  "system")
    return {"sslmode": "verify-full", "sslrootcert": cafile}
