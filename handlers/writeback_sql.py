"""SQL side of the legacy writeback: version-guarded multi-row statements and their executors.

Pure statement builders (one statement per table per batch) for PostgreSQL and MySQL/MariaDB,
and two executors with one interface: a database connection (psycopg 3, whose batch goes out
as one pipeline through its public `Connection.pipeline()`, or PyMySQL) and the RDS Data API.
No pulumi/pydantic imports; drivers are imported lazily.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

#: PostgreSQL's wire protocol caps bind parameters at 32767 per statement; the Data API has
#: its own request limits. Larger batches are split (still one transaction).
MAX_PARAMS = {"postgres": 30000, "mysql": 60000, "data_api": 1000,
              # json style: one parameter per table; split only beyond 200,000 values
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
    def json_members(self) -> tuple[tuple[str, str], ...]:
        """(item attribute, `"column":`) for the key columns and the other columns, in
        `upsert_columns` order (the version column comes from the version attribute)."""
        return tuple((attr, _json_str(col) + ":")
                     for attr, col in [*self.key_columns.items(), *self.columns.items()])

    @functools.cached_property
    def json_version_member(self) -> str:
        return _json_str(self.version_column) + ":"


@dataclass(frozen=True)
class Statement:
    """One SQL statement with its parameters in the executor's style."""

    sql: str
    params: list[Any]
    table: str
    kind: str  # "write" (PostgreSQL CTE: deletes+upserts), "upsert", "delete"


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]*$")


def quote(name: str, dialect: str) -> str:
    """Quote one identifier. Names are validated by the config; re-checked here."""
    if not _IDENT.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"' if dialect == "postgres" else f"`{name}`"


def quote_table(qualified: str, dialect: str) -> str:
    return ".".join(quote(part, dialect) for part in qualified.split("."))


#: Parameter styles: DB-API `format` (PyMySQL), `numbered` (PostgreSQL's own `$n`), `named`
#: (`:pN`, the Data API), and `json` (PostgreSQL direct: a table's rows travel as ONE json
#: parameter, expanded by json_populate_recordset into the legacy table's own row type).
STYLES = ("format", "numbered", "named", "json")
_MARKS: dict[str, Callable[[int], str]] = {
    "format": lambda _n: "%s",
    "json": "${}".format,
    "numbered": "${}".format,
    "named": ":p{}".format,
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
    upserts: Sequence[list[Any] | str],
    deletes: Sequence[tuple[list[Any], Any]],
    *,
    dialect: str,
    style: str,
) -> list[Statement]:
    """The statements applying one table's collapsed changes.

    `upserts`: rows of values in `spec.upsert_columns` order (`json` style: or objects already
    encoded as JSON text). `deletes`: (key values, version).
    PostgreSQL: ONE statement (data-modifying CTEs) returning (deleted, upserted) counts; a
    direct connection uses the `json` style (two parameters at most, whatever the number of
    rows), the Data API typed `:pN` parameters with `column_types` casts.
    MySQL/MariaDB: one INSERT .. ON DUPLICATE KEY UPDATE, plus one DELETE only when the batch
    also deletes rows of this table (MySQL has no data-modifying CTEs).
    """
    if dialect == "postgres" and style == "json":
        return [_postgres_json_write(spec, upserts, deletes)]
    if style == "json":
        raise ValueError("the json parameter style is for PostgreSQL only")
    rows = [row for row in upserts if not isinstance(row, str)]
    if len(rows) != len(upserts):
        raise ValueError(f"pre-encoded JSON rows need the json style, not {style!r}")
    if dialect == "postgres":
        return [_postgres_write(spec, rows, deletes, style)]
    out = []
    if deletes:
        out.append(_mysql_delete(spec, deletes, style))
    if rows:
        out.append(_mysql_upsert(spec, rows, style))
    return out


def _delete_condition(
    spec: TableSpec, deletes: Sequence[tuple[list[Any], Any]], params: Params, dialect: str,
    alias: str,
) -> str:
    """`(k = ? AND (v IS NULL OR v <= ?)) OR ...` — applied only when the row is not newer."""
    ver = f"{alias}{quote(spec.version_column, dialect)}"
    vtype = spec.column_types.get(spec.version_column)
    terms = []
    for keys, version in deletes:
        parts = [
            f"{alias}{quote(col, dialect)} = {params.add(val, spec.column_types.get(col))}"
            for col, val in zip(spec.key_columns.values(), keys, strict=True)
        ]
        parts.append(f"({ver} IS NULL OR {ver} <= {params.add(version, vtype)})")
        terms.append("(" + " AND ".join(parts) + ")")
    return " OR ".join(terms)


def _values_rows(spec: TableSpec, rows: Sequence[list[Any]], params: Params) -> str:
    cols = spec.upsert_columns
    return ", ".join(
        "(" + ", ".join(params.add(v, spec.column_types.get(c)) for c, v in zip(cols, row,
                                                                                 strict=True))
        + ")"
        for row in rows
    )


def _postgres_write(
    spec: TableSpec,
    upserts: Sequence[list[Any]],
    deletes: Sequence[tuple[list[Any], Any]],
    style: str,
) -> Statement:
    d = "postgres"
    params = Params(style)
    table = quote_table(spec.legacy_table, d)
    ctes = []
    counts = []
    if deletes:
        cond = _delete_condition(spec, deletes, params, d, "t.")
        ctes.append(f"d AS (DELETE FROM {table} AS t WHERE {cond} RETURNING 1)")
        counts.append("(SELECT count(*) FROM d)")
    else:
        counts.append("0")
    if upserts:
        cols = spec.upsert_columns
        keys = ", ".join(quote(c, d) for c in spec.key_columns.values())
        updated = [*spec.columns.values(), spec.version_column]
        ver = quote(spec.version_column, d)
        sets = ", ".join(f"{quote(c, d)} = EXCLUDED.{quote(c, d)}" for c in updated)
        ctes.append(
            f"u AS (INSERT INTO {table} AS t ({', '.join(quote(c, d) for c in cols)}) "
            f"VALUES {_values_rows(spec, upserts, params)} "
            f"ON CONFLICT ({keys}) DO UPDATE SET {sets} "
            f"WHERE t.{ver} IS NULL OR t.{ver} < EXCLUDED.{ver} RETURNING 1)"
        )
        counts.append("(SELECT count(*) FROM u)")
    else:
        counts.append("0")
    sql = f"WITH {', '.join(ctes)} SELECT {counts[0]} AS deleted, {counts[1]} AS upserted"
    return Statement(sql, params.values, spec.legacy_table, "write")


class JsonText(str):
    """A value that already is JSON text (a DynamoDB map, list or set): embedded as JSON in a
    `json` style payload, so a json/jsonb column receives the structure and a text column its
    text; everywhere else it is an ordinary string parameter."""


def json_rows(columns: Sequence[str], rows: Sequence[Sequence[Any] | str]) -> str:
    """Rows as a JSON array of objects keyed by column name, for json_populate_recordset.

    Numbers travel as JSON strings of their exact digits (the column's own input function
    reads them: no float anywhere), bytes as bytea hex text, JsonText as embedded JSON. A row
    given as a str is an object already encoded that way (`handlers.writeback.json_row`).
    """
    keys = [_json_str(c) + ":" for c in columns]
    encoders = _JSON_ENCODERS
    return "[" + ",".join(
        row if isinstance(row, str) else
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
    upserts: Sequence[list[Any] | str],
    deletes: Sequence[tuple[list[Any], Any]],
) -> Statement:
    """ONE statement per table whatever the batch size: deletes and upserts each travel as a
    single json parameter; the legacy table's row type gives every value its column's type
    (`column_types` casts are not needed here)."""
    d = "postgres"
    table = quote_table(spec.legacy_table, d)
    rowtype = f"json_populate_recordset(NULL::{table}, $%d::json)"
    keys = list(spec.key_columns.values())
    ver = quote(spec.version_column, d)
    params: list[Any] = []
    ctes, counts = [], []
    if deletes:
        params.append(json_rows([*keys, spec.version_column],
                                [[*k, version] for k, version in deletes]))
        match = " AND ".join(f"t.{quote(c, d)} = k.{quote(c, d)}" for c in keys)
        ctes.append(
            f"d AS (DELETE FROM {table} AS t USING {rowtype % len(params)} AS k "
            f"WHERE {match} AND (t.{ver} IS NULL OR t.{ver} <= k.{ver}) RETURNING 1)"
        )
        counts.append("(SELECT count(*) FROM d)")
    else:
        counts.append("0")
    if upserts:
        cols = spec.upsert_columns
        params.append(json_rows(cols, upserts))
        listed = ", ".join(quote(c, d) for c in cols)
        updated = [*spec.columns.values(), spec.version_column]
        sets = ", ".join(f"{quote(c, d)} = EXCLUDED.{quote(c, d)}" for c in updated)
        ctes.append(
            f"u AS (INSERT INTO {table} AS t ({listed}) SELECT {listed} FROM "
            f"{rowtype % len(params)} ON CONFLICT ({', '.join(quote(c, d) for c in keys)}) "
            f"DO UPDATE SET {sets} WHERE t.{ver} IS NULL OR t.{ver} < EXCLUDED.{ver} "
            "RETURNING 1)"
        )
        counts.append("(SELECT count(*) FROM u)")
    else:
        counts.append("0")
    sql = f"WITH {', '.join(ctes)} SELECT {counts[0]} AS deleted, {counts[1]} AS upserted"
    return Statement(sql, params, spec.legacy_table, "write")


def _mysql_upsert(spec: TableSpec, rows: Sequence[list[Any]], style: str) -> Statement:
    d = "mysql"
    params = Params(style)
    cols = spec.upsert_columns
    ver = quote(spec.version_column, d)
    newer = f"{ver} IS NULL OR VALUES({ver}) > {ver}"
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
    return Statement(sql, params.values, spec.legacy_table, "upsert")


def _mysql_delete(
    spec: TableSpec, deletes: Sequence[tuple[list[Any], Any]], style: str
) -> Statement:
    params = Params(style)
    cond = _delete_condition(spec, deletes, params, "mysql", "")
    sql = f"DELETE FROM {quote_table(spec.legacy_table, 'mysql')} WHERE {cond}"
    return Statement(sql, params.values, spec.legacy_table, "delete")


# --------------------------------------------------------------------------- executors


class DataError(Exception):
    """The database rejected the data of a statement (type, constraint, value, SQL)."""


class Executor(Protocol):
    """Runs a batch's statements atomically; counts its round trips to the database."""

    dialect: str
    style: str
    max_params: int
    round_trips: int

    def apply(self, statements: Sequence[Statement]) -> int:
        """Run and commit; return the number of rows changed. Raises DataError or other."""

    def probe(self, statements: Sequence[Statement]) -> str | None:
        """Run and roll back; return the DataError message, or None when it would apply."""


class DbApiExecutor:
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

    MySQL/MariaDB: one statement per round trip; a batch of more than one statement is
    wrapped in BEGIN/COMMIT (PyMySQL has no pipelining; multi-statements stay disabled).
    """

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection = connection
        self.dialect = dialect
        self.style = "json" if dialect == "postgres" else "format"
        self.max_params = MAX_PARAMS["postgres_json" if dialect == "postgres" else dialect]
        self.round_trips = 0

    # -- PostgreSQL ---------------------------------------------------------------------
    def _pipeline(self, statements: Sequence[Statement]) -> int:
        """The statements in one pipeline; the sum of their (deleted, upserted) counts."""
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
        changed = 0
        for cursor in cursors:
            deleted, upserted = cursor.fetchone() or (0, 0)
            changed += int(deleted) + int(upserted)
            cursor.close()
        return changed

    def _run_postgres(self, statements: Sequence[Statement], commit: bool) -> int:
        try:
            if commit:
                self.round_trips += 1
                return self._pipeline(statements)
            self.round_trips += 3
            with self.connection.transaction(force_rollback=True):
                return self._pipeline(statements)
        except Exception as exc:
            if is_data_error(self.dialect, exc):
                raise DataError(_error_text(exc)) from exc
            raise

    # -- MySQL/MariaDB ------------------------------------------------------------------
    def _execute(self, sql: str, params: Sequence[Any] | None) -> int:
        """One statement, one round trip: its affected-row count."""
        self.round_trips += 1
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _run_mysql(self, statements: Sequence[Statement], commit: bool) -> int:
        wrap = len(statements) > 1 or not commit
        changed = 0
        try:
            if wrap:
                self._execute("BEGIN", None)
            for statement in statements:
                changed += max(self._execute(statement.sql, statement.params), 0)
            if wrap:
                self._execute("COMMIT" if commit else "ROLLBACK", None)
        except Exception as exc:
            if wrap:
                self._rollback()
            if is_data_error(self.dialect, exc):
                raise DataError(_error_text(exc)) from exc
            raise
        return changed

    def _rollback(self) -> None:
        try:
            self.round_trips += 1
            self.connection.cursor().execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the original error is what matters
            pass

    def _run(self, statements: Sequence[Statement], commit: bool) -> int:
        if self.dialect == "postgres":
            return self._run_postgres(statements, commit)
        return self._run_mysql(statements, commit)

    def apply(self, statements: Sequence[Statement]) -> int:
        if not statements:
            return 0
        return self._run(statements, commit=True)

    def probe(self, statements: Sequence[Statement]) -> str | None:
        try:
            self._run(statements, commit=False)
        except DataError as exc:
            return str(exc)
        return None


#: MySQL server errors that are not about the data: retry the batch, blame no record
#: (too many connections, shutdown, lock wait, deadlock, interrupted, killed, access denied,
#: read-only server).
_MYSQL_NOT_DATA = {1040, 1044, 1045, 1053, 1142, 1143, 1205, 1213, 1227, 1290, 1317, 1792,
                   1927}
#: PostgreSQL SQLSTATE classes that are about the statement's data: data exception,
#: integrity constraint, syntax/undefined column (a mapping error), invalid JSON, ...
_PG_DATA_CLASSES = {"22", "23", "42", "2B", "44", "P0"}


def is_data_error(dialect: str, exc: BaseException) -> bool:
    """Whether the database rejected the statement's data (blame a record) rather than
    failing for a reason every record shares (connection, deadlock, privileges)."""
    if dialect == "postgres":
        # psycopg: the server's SQLSTATE; None when the server did not answer (connection
        # lost or closed, ...)
        code = getattr(exc, "sqlstate", None)
        if not isinstance(code, str):
            return False
        return code[:2] in _PG_DATA_CLASSES and code != "42501"
    number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if number is None or 2000 <= number < 3000:  # client errors: lost connection, ...
        return False
    return number >= 1000 and number not in _MYSQL_NOT_DATA


def _error_text(exc: BaseException) -> str:
    code = getattr(exc, "sqlstate", None)
    if isinstance(code, str):  # psycopg: SQLSTATE and the server's primary message
        diag = getattr(exc, "diag", None)
        message = getattr(diag, "message_primary", None) or str(exc)
        return f"{code} {message}".strip()
    return " ".join(str(a) for a in exc.args) or type(exc).__name__


class DataApiExecutor:
    """Aurora through the RDS Data API (boto3 `rds-data`).

    One statement: `execute_statement` alone (atomic). More: begin_transaction,
    execute_statement per statement with the transactionId, commit_transaction.
    """

    style = "named"

    def __init__(
        self, client: Any, *, cluster_arn: str, secret_arn: str, database: str, dialect: str
    ) -> None:
        self.client = client
        self.dialect = dialect
        self.max_params = MAX_PARAMS["data_api"]
        self.round_trips = 0
        self._base = {"resourceArn": cluster_arn, "secretArn": secret_arn, "database": database}

    def _run(self, statements: Sequence[Statement], commit: bool) -> int:
        wrap = len(statements) > 1 or not commit
        tx: str | None = None
        changed = 0
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
                if statement.kind == "write":
                    record = response["records"][0]
                    changed += sum(int(next(iter(cell.values()))) for cell in record)
                else:
                    changed += int(response.get("numberOfRecordsUpdated", 0))
            if tx:
                self.round_trips += 1
                if commit:
                    self.client.commit_transaction(resourceArn=self._base["resourceArn"],
                                                   secretArn=self._base["secretArn"],
                                                   transactionId=tx)
                else:
                    self.client.rollback_transaction(resourceArn=self._base["resourceArn"],
                                                     secretArn=self._base["secretArn"],
                                                     transactionId=tx)
        except Exception as exc:
            if tx:
                self._rollback(tx)
            if _is_data_api_data_error(exc):
                raise DataError(_error_text(exc)) from exc
            raise
        return changed

    def _rollback(self, tx: str) -> None:
        try:
            self.round_trips += 1
            self.client.rollback_transaction(
                resourceArn=self._base["resourceArn"], secretArn=self._base["secretArn"],
                transactionId=tx,
            )
        except Exception:  # noqa: BLE001 - the original error is what matters
            pass

    def apply(self, statements: Sequence[Statement]) -> int:
        if not statements:
            return 0
        return self._run(statements, commit=True)

    def probe(self, statements: Sequence[Statement]) -> str | None:
        try:
            self._run(statements, commit=False)
        except DataError as exc:
            return str(exc)
        return None


def _is_data_api_data_error(exc: BaseException) -> bool:
    """The Data API reports SQL errors as BadRequestException (DatabaseErrorException in
    newer APIs); throttling, a paused cluster, etc. are other codes: retried as a batch."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = response.get("Error", {}).get("Code", "")
    message = response.get("Error", {}).get("Message", "")
    if code == "DatabaseErrorException":
        return True
    return code == "BadRequestException" and "Communications link failure" not in message \
        and "transaction" not in message.lower()


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
