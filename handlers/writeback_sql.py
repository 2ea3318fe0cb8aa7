"""SQL side of the legacy writeback: version-guarded multi-row statements and their executors.

Pure statement builders (one statement per table per batch) for PostgreSQL and MySQL/MariaDB,
and three executors with one interface: a DB-API connection (pg8000 or PyMySQL, both
pure Python) and the RDS Data API. No pulumi/pydantic imports; drivers are imported lazily.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

#: PostgreSQL's wire protocol caps bind parameters at 32767 per statement; the Data API has
#: its own request limits. Larger batches are split (still one transaction).
MAX_PARAMS = {"postgres": 30000, "mysql": 60000, "data_api": 1000}
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


class Params:
    """Collects parameter values and renders their placeholders (`%s` or `:pN`)."""

    def __init__(self, named: bool) -> None:
        self.named = named
        self.values: list[Any] = []

    def add(self, value: Any, sql_type: str | None = None) -> str:
        self.values.append(value)
        mark = f":p{len(self.values)}" if self.named else "%s"
        return f"CAST({mark} AS {sql_type})" if sql_type else mark


def build_statements(
    spec: TableSpec,
    upserts: Sequence[list[Any]],
    deletes: Sequence[tuple[list[Any], Any]],
    *,
    dialect: str,
    named: bool,
) -> list[Statement]:
    """The statements applying one table's collapsed changes.

    `upserts`: rows of values in `spec.upsert_columns` order. `deletes`: (key values, version).
    PostgreSQL: ONE statement (data-modifying CTEs) returning (deleted, upserted) counts.
    MySQL/MariaDB: one INSERT .. ON DUPLICATE KEY UPDATE, plus one DELETE only when the batch
    also deletes rows of this table (MySQL has no data-modifying CTEs).
    """
    if dialect == "postgres":
        return [_postgres_write(spec, upserts, deletes, named)]
    out = []
    if deletes:
        out.append(_mysql_delete(spec, deletes, named))
    if upserts:
        out.append(_mysql_upsert(spec, upserts, named))
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
    named: bool,
) -> Statement:
    d = "postgres"
    params = Params(named)
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


def _mysql_upsert(spec: TableSpec, rows: Sequence[list[Any]], named: bool) -> Statement:
    d = "mysql"
    params = Params(named)
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
    spec: TableSpec, deletes: Sequence[tuple[list[Any], Any]], named: bool
) -> Statement:
    params = Params(named)
    cond = _delete_condition(spec, deletes, params, "mysql", "")
    sql = f"DELETE FROM {quote_table(spec.legacy_table, 'mysql')} WHERE {cond}"
    return Statement(sql, params.values, spec.legacy_table, "delete")


# --------------------------------------------------------------------------- executors


class DataError(Exception):
    """The database rejected the data of a statement (type, constraint, value, SQL)."""


class Executor(Protocol):
    """Runs a batch's statements atomically; counts its round trips to the database."""

    dialect: str
    named: bool
    max_params: int
    round_trips: int

    def apply(self, statements: Sequence[Statement]) -> int:
        """Run and commit; return the number of rows changed. Raises DataError or other."""

    def probe(self, statements: Sequence[Statement]) -> str | None:
        """Run and roll back; return the DataError message, or None when it would apply."""


def _rows_changed(dialect: str, statement: Statement, rowcount: int, rows: Any) -> int:
    if statement.kind == "write":
        deleted, upserted = rows[0]
        return int(deleted) + int(upserted)
    if statement.kind == "upsert" and dialect == "mysql":
        # affected rows: 1 per insert, 2 per update, 0 when the guard kept the row
        return max(rowcount, 0)
    return max(rowcount, 0)


class DbApiExecutor:
    """A pg8000 (`postgres`) or PyMySQL (`mysql`) connection in autocommit mode.

    A batch of one statement is sent alone (atomic by itself: one round trip); more
    statements are wrapped in BEGIN/COMMIT.
    """

    named = False

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection = connection
        self.dialect = dialect
        self.max_params = MAX_PARAMS[dialect]
        self.round_trips = 0

    def _is_data_error(self, exc: BaseException) -> bool:
        return is_data_error(self.dialect, exc)

    def _run(self, statements: Sequence[Statement], commit: bool) -> int:
        cursor = self.connection.cursor()
        wrap = len(statements) > 1 or not commit
        changed = 0
        try:
            if wrap:
                self.round_trips += 1
                cursor.execute("BEGIN")
            for statement in statements:
                self.round_trips += 1
                cursor.execute(statement.sql, statement.params)
                rows = cursor.fetchall() if statement.kind == "write" else None
                changed += _rows_changed(self.dialect, statement, cursor.rowcount, rows)
            if wrap:
                self.round_trips += 1
                cursor.execute("COMMIT" if commit else "ROLLBACK")
        except Exception as exc:
            if wrap:
                self._rollback(cursor)
            if self._is_data_error(exc):
                raise DataError(_error_text(exc)) from exc
            raise
        finally:
            cursor.close()
        return changed

    def _rollback(self, cursor: Any) -> None:
        try:
            self.round_trips += 1
            cursor.execute("ROLLBACK")
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
        info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else None
        if info is None:  # pg8000 InterfaceError: connection lost, closed, ...
            return False
        code = str(info.get("C", ""))
        return code[:2] in _PG_DATA_CLASSES and code != "42501"
    number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if number is None or 2000 <= number < 3000:  # client errors: lost connection, ...
        return False
    return number >= 1000 and number not in _MYSQL_NOT_DATA


def _error_text(exc: BaseException) -> str:
    if exc.args and isinstance(exc.args[0], dict):  # pg8000: {'S': 'ERROR', 'C': .., 'M': ..}
        info = exc.args[0]
        return f"{info.get('C', '')} {info.get('M', '')}".strip()
    return " ".join(str(a) for a in exc.args) or type(exc).__name__


class DataApiExecutor:
    """Aurora through the RDS Data API (boto3 `rds-data`).

    One statement: `execute_statement` alone (atomic). More: begin_transaction,
    execute_statement per statement with the transactionId, commit_transaction.
    """

    named = True

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
    """Open a direct autocommit connection to the target (`kind` postgres or mysql)."""
    import ssl

    tls = target.get("tls", True)
    timeout = int(target.get("connect_timeout_seconds", 5))
    context: ssl.SSLContext | None = ssl.create_default_context() if tls else None
    if target["kind"] == "postgres":
        import pg8000.dbapi

        conn = pg8000.dbapi.connect(
            user=username,
            password=password,
            host=target["host"],
            port=int(target["port"]),
            database=target["database"],
            ssl_context=context,
            timeout=max(timeout, 30),
            application_name="dms-event-bus-writeback",
        )
        conn.autocommit = True
        return conn
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
