"""Connections to the legacy source database for the operator tools (preflight, reconcile).

Credentials come from an environment variable or from a Secrets Manager secret (the JSON
that RDS writes and rotates: ``username``, ``password`` and optionally ``host``, ``port``,
``dbname``). A password is never taken from the command line. Every failure to get
credentials or to connect is raised as :class:`SourceError` with one readable line, so the
commands can print it and exit 2 without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tools.cli import aws_problem, default_region, port_number, region_arg, region_of_arn

#: engines a connection can be opened to from here (pure-Python drivers)
CONNECTABLE = ("postgres", "mysql", "mariadb")
#: DMS engine names that speak the PostgreSQL / MySQL protocol
POSTGRES_LIKE = {"postgres", "postgresql", "aurora-postgresql"}
MYSQL_LIKE = {"mysql", "mariadb", "aurora", "aurora-mysql"}
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "mariadb": 3306}
CONNECT_TIMEOUT_S = 10


class SourceError(Exception):
    """Cannot get credentials for, or connect to, the source database (one line)."""


@dataclass(frozen=True)
class SourceParams:
    """Where and as whom to connect. ``password`` is never printed."""

    engine: str  # postgres | mysql | mariadb
    host: str
    port: int
    database: str
    user: str
    password: str
    ssl: str = "require"  # disable | require | verify-full
    ssl_ca: str | None = None

    def describe(self) -> str:
        return f"{self.engine} at {self.host}:{self.port}/{self.database} as {self.user}"


def protocol_of(engine: str) -> str:
    """``postgres`` or ``mysql`` for a DMS engine name; SourceError for anything else."""
    if engine in POSTGRES_LIKE:
        return "postgres"
    if engine in MYSQL_LIKE:
        return "mysql"
    raise SourceError(f"engine {engine!r} cannot be connected to from here")


class _RefusePassword(argparse.Action):
    """``--password VALUE`` is refused without echoing VALUE (it would land in shell
    history and process lists; argparse would otherwise print it back)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        parser.error("--password is not accepted: use --password-env VAR or --secret-arn ARN")


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """The connection options shared by the tools. Build ``parser`` with
    ``allow_abbrev=False`` so ``--password`` is not taken for ``--password-env``."""
    parser.add_argument("--password", action=_RefusePassword, help=argparse.SUPPRESS)
    parser.add_argument("--host", help="source host (default: from the secret)")
    parser.add_argument("--port", type=port_number, help="source port (default: engine default)")
    parser.add_argument("--database", help="database name (default: from the secret)")
    parser.add_argument("--user", help="login (default: username from the secret)")
    pw = parser.add_mutually_exclusive_group()
    pw.add_argument("--password-env", metavar="VAR", help="read the password from env VAR")
    pw.add_argument(
        "--secret-arn",
        metavar="ARN",
        help="Secrets Manager secret with JSON username/password (as RDS writes it)",
    )
    parser.add_argument(
        "--region",
        type=region_arg,
        help="AWS region for Secrets Manager / DynamoDB (default: the secret ARN's region, "
        "then AWS_REGION / the profile's)",
    )
    parser.add_argument(
        "--ssl",
        choices=("disable", "require", "verify-full"),
        default="require",
        help="TLS to the source (default require; verify-full needs --ssl-ca)",
    )
    parser.add_argument("--ssl-ca", metavar="PEM", help="CA bundle, e.g. the RDS global bundle")


def read_secret(arn: str, region: str | None = None, client: Any = None) -> dict[str, Any]:
    """The JSON body of a Secrets Manager secret; SourceError (one line) on any problem."""
    # the ARN names the secret's region exactly; a bare name needs --region or a default
    region = region_of_arn(arn) or region
    try:
        if client is None:
            import boto3

            region = region or default_region()
            if not region:
                raise SourceError(
                    f"no AWS region for secret {arn}: pass --region or give the secret's full "
                    "ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)"
                )
            client = boto3.client("secretsmanager", region_name=region)
        body = client.get_secret_value(SecretId=arn)
    except SourceError:
        raise
    except Exception as exc:  # botocore ClientError, NoCredentialsError, endpoint errors
        why = aws_problem(exc, "Secrets Manager", region) or _one_line(exc)
        raise SourceError(f"cannot read secret {arn}: {why}") from exc
    text = body.get("SecretString")
    if not text:
        raise SourceError(f"secret {arn} has no SecretString (binary secrets are not supported)")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SourceError(f"secret {arn} is not JSON with username/password") from exc
    if not isinstance(data, dict) or "password" not in data:
        raise SourceError(f"secret {arn} has no 'password' key")
    return data


def params_from_args(
    args: argparse.Namespace, engine: str, secrets_client: Any = None
) -> SourceParams:
    """Resolve the connection from CLI args, env and (optionally) Secrets Manager."""
    proto = protocol_of(engine)
    secret: dict[str, Any] = {}
    if args.secret_arn:
        secret = read_secret(args.secret_arn, args.region, secrets_client)
        password = str(secret["password"])
    elif args.password_env:
        if args.password_env not in os.environ:
            raise SourceError(f"environment variable {args.password_env} is not set")
        password = os.environ[args.password_env]
    else:
        raise SourceError("no password source: give --password-env VAR or --secret-arn ARN")
    host = args.host or secret.get("host")
    user = args.user or secret.get("username")
    database = args.database or secret.get("dbname")
    port = args.port or secret.get("port") or DEFAULT_PORTS[proto]
    missing = [
        n for n, v in (("--host", host), ("--user", user), ("--database", database)) if not v
    ]
    if missing:
        raise SourceError(f"missing {', '.join(missing)} (not given and not in the secret)")
    if args.ssl == "verify-full" and not args.ssl_ca:
        raise SourceError("--ssl verify-full needs --ssl-ca PEM")
    return SourceParams(
        engine=proto,
        host=str(host),
        port=int(port),
        database=str(database),
        user=str(user),
        password=password,
        ssl=args.ssl,
        ssl_ca=args.ssl_ca,
    )


def _ssl_context(params: SourceParams) -> ssl.SSLContext | None:
    if params.ssl == "disable":
        return None
    if params.ssl == "verify-full":
        return ssl.create_default_context(cafile=params.ssl_ca)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # "require": encrypted, server not authenticated
    return ctx


def query_rows(conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """All rows of one query, as tuples (DB-API connection of either driver)."""
    cur = conn.cursor()
    try:
        cur.execute(sql, tuple(params)) if params else cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()]
    finally:
        cur.close()


# --------------------------------------------------------------------------- TOAST

#: pg_class.relreplident -> the words of ALTER TABLE ... REPLICA IDENTITY
REPLICA_IDENTITY = {"d": "DEFAULT", "f": "FULL", "n": "NOTHING", "i": "USING INDEX"}

#: The largest value (header included) of a column, in bytes, as PostgreSQL's own
#: type_maximum_size() computes it for the types whose type modifier bounds it
#: (char/varchar: characters x the encoding's longest character; numeric(p,s); bit(n));
#: NULL = unbounded (text, bytea, json, arrays, numeric without precision, ...).
_MAX_BYTES = (
    "CASE WHEN a.atttypmod < 0 THEN NULL "
    "WHEN a.atttypid IN ('pg_catalog.bpchar'::regtype, 'pg_catalog.varchar'::regtype) "
    "THEN (a.atttypmod - 4) * pg_encoding_max_length(d.encoding) + 4 "
    "WHEN a.atttypid = 'pg_catalog.numeric'::regtype "
    "THEN 8 + ((((a.atttypmod - 4) >> 16) & 65535) + 6) / 4 * 2 "
    "WHEN a.atttypid IN ('pg_catalog.bit'::regtype, 'pg_catalog.varbit'::regtype) "
    "THEN (a.atttypmod + 7) / 8 + 8 END"
)
#: a value no larger than a TOAST pointer (18 bytes, aligned to 24) is never moved out of line
TOAST_POINTER_BYTES = 24
#: pg_attribute.attalign -> bytes
_ALIGN = {"c": 1, "s": 2, "i": 4, "d": 8}


@dataclass(frozen=True)
class ToastTable:
    """A PostgreSQL table whose rows can hold values stored out of line (TOAST), and its
    replica identity. An UPDATE that leaves such a value unchanged does not carry it in
    the logical replication stream unless the identity is FULL (then the old row image
    does)."""

    schema: str
    table: str
    quoted: str  # schema.table as SQL needs it (quote_ident)
    replica_identity: str  # DEFAULT | FULL | NOTHING | USING INDEX
    columns: tuple[tuple[str, str], ...]  # (column, type) that can be TOASTed, in order

    @property
    def full(self) -> bool:
        return self.replica_identity == "FULL"

    @property
    def fix(self) -> str:
        return f"ALTER TABLE {self.quoted} REPLICA IDENTITY FULL;"


def _maxalign(n: int) -> int:
    return (n + 7) // 8 * 8


def toast_threshold(block_size: int) -> int:
    """PostgreSQL's TOAST_TUPLE_THRESHOLD: rows longer than this get values compressed or
    moved out of line (2032 bytes with the default 8 kB blocks)."""
    return ((block_size - 24) // 4 - 4) // 8 * 8


def toast_tables(conn: Any, condition: str, params: Sequence[Any] = ()) -> list[ToastTable]:
    """Ordinary tables (partitions included: each has its own identity) matching
    ``condition`` (SQL on ``n`` = pg_namespace and ``c`` = pg_class) whose values
    PostgreSQL can store out of line, with those columns.

    The table-level decision is PostgreSQL's own: the table has a TOAST table (created when
    its longest possible row can exceed the TOAST threshold). A column counts when it is
    variable-length (pg_attribute.attlen = -1), not stored PLAIN (attstorage, which starts
    as the type's typstorage) and either unbounded (text, bytea, json, arrays, numeric
    without precision, ...) or bounded by its type modifier (varchar(n), char(n),
    numeric(p,s), bit(n)) and movable by the toaster's rule (see ``_out_of_line``).
    """
    rows = query_rows(
        conn,
        "SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
        "c.relreplident, (SELECT o.option_value FROM pg_options_to_table(c.reloptions) o "
        "WHERE o.option_name = 'toast_tuple_target')::int, "
        "a.attname, format_type(a.atttypid, a.atttypmod), a.attlen, "
        f"a.attstorage, a.attalign, {_MAX_BYTES}, current_setting('block_size')::int "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "CROSS JOIN pg_database d "
        "WHERE d.datname = current_database() AND c.relkind = 'r' AND c.reltoastrelid <> 0 "
        f"AND {condition} ORDER BY n.nspname, c.relname, a.attnum",
        params,
    )
    grouped: dict[tuple[str, str, str, str, int], list[_Col]] = {}
    default_target = 0
    for (schema, table, quoted, ident, target, column, typ, attlen, storage, align, max_bytes,
         block) in rows:
        default_target = toast_threshold(int(block))
        key = (str(schema), str(table), str(quoted), str(ident), int(target or 0))
        size = None if max_bytes is None else int(max_bytes)
        grouped.setdefault(key, []).append(_Col(str(column), str(typ), int(attlen),
                                                str(storage), size, _ALIGN.get(str(align), 8)))
    out = []
    for (schema, table, quoted, ident, target), cols in grouped.items():
        chosen = _out_of_line(cols, target or default_target)
        if chosen:
            out.append(ToastTable(schema, table, quoted, REPLICA_IDENTITY.get(ident, ident),
                                  tuple((c.name, c.type) for c in chosen)))
    return out


@dataclass(frozen=True)
class _Col:
    name: str
    type: str
    attlen: int  # > 0 fixed width; -1 variable length
    storage: str  # attstorage: p (plain) never moves out of line
    max_bytes: int | None  # largest value, header included; None = unbounded
    align: int


def _out_of_line(cols: list[_Col], target: int) -> list[_Col]:
    """The columns of a table (that has a TOAST table) whose values can be moved out of line.

    PostgreSQL's toaster moves the biggest movable value first, again and again, while the
    row is longer than the target (``toast_tuple_target``, default the ~2 KB threshold), and
    never a value no bigger than a TOAST pointer. An unbounded column can always be the
    biggest. A bounded one of at most ``s`` bytes is moved only if, when it is the biggest
    value left, the row can still be longer than the target: every other movable value at
    most ``s`` (or a pointer), plain and fixed-width ones at their largest, plus the header
    and alignment padding -- an upper bound, so no column that can move is missed."""
    header = _maxalign(23 + (len(cols) + 7) // 8)
    chosen = []
    for col in cols:
        if col.attlen != -1 or col.storage == "p":
            continue
        if col.max_bytes is None:
            chosen.append(col)
            continue
        s = col.max_bytes
        if s <= TOAST_POINTER_BYTES:
            continue
        row = header + s + col.align - 1
        for other in cols:
            if other is col:
                continue
            if other.attlen > 0:
                width = other.attlen
            elif other.storage == "p":
                width = other.max_bytes if other.max_bytes is not None else 1 << 30
            else:
                width = s if other.max_bytes is None else min(other.max_bytes, s)
            row += width + other.align - 1
        if row > target:
            chosen.append(col)
    return chosen


def _one_line(exc: BaseException) -> str:
    # pg8000 puts a dict (severity, code, message) in args[0] for server errors
    if exc.args and isinstance(exc.args[0], dict):
        info = exc.args[0]
        msg = f"{info.get('M', '')} ({info.get('C', '?')})"
    else:
        msg = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and str(cause) not in msg:
        msg = f"{msg}: {cause.strerror or cause}"
    return " ".join(msg.split())


def connect(params: SourceParams) -> Any:
    """A DB-API connection (autocommit, read-only use) or SourceError with one line."""
    try:
        if params.engine == "postgres":
            import pg8000.dbapi

            conn = pg8000.dbapi.connect(
                user=params.user,
                password=params.password,
                host=params.host,
                port=params.port,
                database=params.database,
                ssl_context=_ssl_context(params),
                timeout=CONNECT_TIMEOUT_S,
                application_name="dmsbus-tools",
            )
            conn.autocommit = True
            return conn
        import pymysql

        return pymysql.connect(
            user=params.user,
            password=params.password,
            host=params.host,
            port=params.port,
            database=params.database,
            ssl=_ssl_context(params),
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=300,
            autocommit=True,
            charset="utf8mb4",
        )
    except Exception as exc:  # refused, timeout, DNS, auth failure, unknown database, TLS
        raise SourceError(f"cannot connect to {params.describe()}: {_one_line(exc)}") from exc
