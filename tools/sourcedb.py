"""Connections to the legacy source database for the operator tools (preflight, reconcile).

Engines: PostgreSQL (pg8000), MySQL/MariaDB (PyMySQL), SQL Server (python-tds, import name
``pytds``) and Oracle (python-oracledb in thin mode) -- all pure-Python drivers. Engine names
are the stack config's ``dms.source.engine`` values, which are DMS's own ``EngineName``
values (:data:`STACK_ENGINES`); RDS's engine names are accepted too (:func:`engine_arg`).
With ``--stack NAME`` the engine, host, port, database and secret come from the stack file.

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
from pathlib import Path
from typing import Any

from tools.cli import aws_problem, default_region, port_number, region_arg, region_of_arn

#: protocols a connection can be opened with from here (pure-Python drivers)
CONNECTABLE = ("postgres", "mysql", "sqlserver", "oracle")
#: the stack config's `dms.source.engine` values = DMS's endpoint EngineName values
STACK_ENGINES = (
    "postgres", "aurora-postgresql", "mysql", "aurora", "mariadb", "oracle", "sqlserver"
)
#: what each stack/DMS engine name is (for --help and errors)
ENGINE_MEANING = {
    "postgres": "PostgreSQL / RDS for PostgreSQL",
    "aurora-postgresql": "Aurora PostgreSQL",
    "mysql": "MySQL / RDS for MySQL",
    "aurora": "Aurora MySQL",
    "mariadb": "MariaDB / RDS for MariaDB",
    "oracle": "Oracle / RDS for Oracle",
    "sqlserver": "SQL Server / RDS for SQL Server",
}
#: other names people type (RDS's engine names, protocol names) -> the stack/DMS name
ENGINE_ALIASES = {
    "postgresql": "postgres",
    "aurora-mysql": "aurora",
    "sqlserver-ee": "sqlserver",
    "sqlserver-se": "sqlserver",
    "sqlserver-ex": "sqlserver",
    "sqlserver-web": "sqlserver",
    "oracle-ee": "oracle",
    "oracle-se2": "oracle",
    "oracle-ee-cdb": "oracle",
    "oracle-se2-cdb": "oracle",
}
#: protocols whose connection names a database: PostgreSQL (else the login's name is
#: taken), SQL Server (else the login's default database, while the checks read DB_NAME())
#: and Oracle (the service name). MySQL-family connections go to the server and the tools
#: qualify every name by its schema (= database), as DMS's MySQL endpoint has no database.
NEEDS_DATABASE = ("postgres", "sqlserver", "oracle")
#: DMS engine names that speak the PostgreSQL / MySQL protocol
POSTGRES_LIKE = {"postgres", "postgresql", "aurora-postgresql"}
MYSQL_LIKE = {"mysql", "mariadb", "aurora", "aurora-mysql"}
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "sqlserver": 1433, "oracle": 1521}
CONNECT_TIMEOUT_S = 10
#: the driver of each protocol: (import name, pip requirement)
DRIVERS = {
    "postgres": ("pg8000", "pg8000"),
    "mysql": ("pymysql", "PyMySQL"),
    "sqlserver": ("pytds", "python-tds==1.17.1"),
    "oracle": ("oracledb", "oracledb==26.1.0"),
}


class SourceError(Exception):
    """Cannot get credentials for, or connect to, the source database (one line)."""


@dataclass(frozen=True)
class SourceParams:
    """Where and as whom to connect. ``password`` is never printed."""

    engine: str  # protocol: postgres | mysql | sqlserver | oracle
    host: str
    port: int
    database: str | None  # None: MySQL family, connected to the server (no default database)
    user: str
    password: str
    ssl: str = "require"  # disable | require | verify-full
    ssl_ca: str | None = None

    def describe(self) -> str:
        where = f"{self.host}:{self.port}" + (f"/{self.database}" if self.database else "")
        return f"{self.engine} at {where} as {self.user}"


def engine_names() -> str:
    """The accepted engine names, each with what it is (for --help and errors)."""
    names = ", ".join(f"{n} ({ENGINE_MEANING[n]})" for n in STACK_ENGINES)
    aliases = ", ".join(f"{a} = {n}" for a, n in ENGINE_ALIASES.items())
    return f"{names}; also RDS's names: {aliases}"


def engine_name(text: str) -> str:
    """The stack/DMS engine name for ``text`` (a stack/DMS name or an alias), else
    ValueError naming the accepted ones."""
    name = text.strip().lower()
    if name in STACK_ENGINES:
        return name
    if name in ENGINE_ALIASES:
        return ENGINE_ALIASES[name]
    hint = " (Aurora MySQL is 'aurora')" if "aurora" in name and "postgres" not in name else ""
    raise ValueError(
        f"unknown engine {text!r}{hint}: expected the stack's dms.source.engine, which is "
        f"DMS's EngineName: {engine_names()}"
    )


def engine_arg(text: str) -> str:
    """argparse type: an engine name (see :func:`engine_name`)."""
    try:
        return engine_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def protocol_of(engine: str) -> str:
    """``postgres``, ``mysql``, ``sqlserver`` or ``oracle`` for an engine name; SourceError
    for anything else."""
    if engine in POSTGRES_LIKE:
        return "postgres"
    if engine in MYSQL_LIKE:
        return "mysql"
    name = ENGINE_ALIASES.get(engine, engine)
    if name in ("sqlserver", "oracle"):
        return name
    raise SourceError(f"engine {engine!r} cannot be connected to from here")


class _RefusePassword(argparse.Action):
    """``--password VALUE`` is refused without echoing VALUE (it would land in shell
    history and process lists; argparse would otherwise print it back)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        parser.error("--password is not accepted: use --password-env VAR or --secret-arn ARN")


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """The connection options shared by the tools, ``--engine`` and ``--stack`` included.
    Build ``parser`` with ``allow_abbrev=False`` so ``--password`` is not taken for
    ``--password-env``."""
    parser.add_argument(
        "--engine",
        type=engine_arg,
        metavar="ENGINE",
        help="the stack's dms.source.engine (= DMS's EngineName; default: from --stack): "
        + engine_names(),
    )
    parser.add_argument(
        "--stack",
        metavar="NAME",
        help="read engine, host (server), port, database and secret (secret_arn) from "
        "Pulumi.NAME.yaml's dms-event-bus:dms.source, and the region from aws:region; "
        "explicit options override them",
    )
    parser.add_argument(
        "--stack-dir", type=Path, default=None,
        help="folder holding Pulumi.<stack>.yaml (default: the project folder)",
    )
    parser.add_argument("--password", action=_RefusePassword, help=argparse.SUPPRESS)
    parser.add_argument("--host", help="source host (default: from --stack, then the secret)")
    parser.add_argument(
        "--port", type=port_number,
        help="source port (default: from --stack, the secret, then the engine's default)",
    )
    parser.add_argument(
        "--database",
        help="database name; Oracle: the service name (default: from --stack, then the "
        "secret; MySQL family: optional, tables are named by schema)",
    )
    parser.add_argument("--user", help="login (default: username from the secret)")
    pw = parser.add_mutually_exclusive_group()
    pw.add_argument("--password-env", metavar="VAR", help="read the password from env VAR")
    pw.add_argument(
        "--secret-arn",
        metavar="ARN",
        help="Secrets Manager secret with JSON username/password (as RDS writes it; "
        "default: the --stack's dms.source.secret_arn)",
    )
    parser.add_argument(
        "--region",
        type=region_arg,
        help="AWS region for Secrets Manager / DynamoDB (default: the secret ARN's region, "
        "then the --stack's aws:region, then AWS_REGION / the profile's)",
    )
    parser.add_argument(
        "--ssl",
        choices=("disable", "require", "verify-full"),
        default=None,
        help="TLS to the source (default require, or disable when the --stack's ssl_mode is "
        "none; verify-full needs --ssl-ca)",
    )
    parser.add_argument("--ssl-ca", metavar="PEM", help="CA bundle, e.g. the RDS global bundle")


@dataclass(frozen=True)
class StackSource:
    """What a stack file says about its DMS source (``dms-event-bus:dms.source``)."""

    engine: str
    host: str
    port: int  # the port DMS connects to (Oracle with TLS: 2484 unless set)
    database: str | None
    secret_arn: str
    ssl_mode: str
    region: str | None
    #: the source schemas the stack replicates (declared tables' and wildcards'), sorted
    schemas: tuple[str, ...] = ()


def stack_source(stack: str, stack_dir: Path | None = None) -> StackSource:
    """The DMS source of a stack file, read and validated as ``pulumi up`` would;
    SourceError (one line) when the file is missing, invalid or has no ``dms`` section."""
    from dms_event_bus.settings import ConfigError, load_settings
    from dms_event_bus.settings.stackfile import (
        ROOT,
        as_engine_config,
        project_config,
        read_stack_config,
    )

    try:
        raw = read_stack_config(stack, stack_dir or ROOT)
        engine_config, _ = as_engine_config(raw)
        loaded = load_settings(stack, project_config(engine_config))
    except ConfigError as exc:
        raise SourceError(" ".join(exc.brief().split())) from None
    except (FileNotFoundError, ValueError) as exc:
        raise SourceError(" ".join(str(exc).split())) from None
    if loaded.dms is None:
        raise SourceError(
            f"stack '{stack}' has no dms-event-bus:dms section (no DMS source): give "
            "--engine, --host, --database and a password source instead of --stack"
        )
    src = loaded.dms.source
    region = raw.get("aws:region")
    schemas = {w.schema_name for w in loaded.dms.wildcards if w.schema_name}
    for table in loaded.tables.values():
        if table.source is not None:
            schemas.add(table.source.schema_name)
        elif loaded.dms.default_schema:
            schemas.add(loaded.dms.default_schema)
    return StackSource(
        engine=str(src.engine),
        host=str(src.server),
        port=int(getattr(src, "effective_port", None) or src.port or DEFAULT_PORTS[
            protocol_of(str(src.engine))]),
        database=src.database,
        secret_arn=str(src.secret_arn),
        ssl_mode=str(src.ssl_mode),
        region=region if isinstance(region, str) else None,
        schemas=tuple(sorted(schemas)),
    )


def apply_stack(args: argparse.Namespace) -> argparse.Namespace:
    """Fill ``args``' unset connection options from ``--stack`` (explicit options win) and
    check an engine is known; SourceError (one line) otherwise. A command with a
    ``--schemas`` option gets the stack's replicated schemas there. Returns ``args``."""
    if getattr(args, "stack", None):
        src = stack_source(args.stack, getattr(args, "stack_dir", None))
        stack_engine = engine_name(src.engine)
        if args.engine is None:
            args.engine = stack_engine
        if args.host is None:
            args.host = src.host
        if args.port is None and args.engine == stack_engine:
            args.port = src.port
        if args.database is None:
            args.database = src.database
        if args.secret_arn is None and args.password_env is None:
            args.secret_arn = src.secret_arn
        if args.region is None:
            args.region = src.region
        if args.ssl is None and src.ssl_mode == "none":
            args.ssl = "disable"
        if getattr(args, "schemas", "") is None and src.schemas:
            args.schemas = ",".join(src.schemas)
    if args.engine is None:
        raise SourceError(
            "no engine: give --engine ENGINE or --stack NAME (the engines: "
            f"{', '.join(STACK_ENGINES)}; Aurora MySQL is 'aurora')"
        )
    if args.ssl is None:
        args.ssl = "require"
    return args


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
    needed = [("--host", host), ("--user", user)]
    if proto in NEEDS_DATABASE:
        needed.append(("--database", database))
    missing = [n for n, v in needed if not v]
    if missing:
        raise SourceError(f"missing {', '.join(missing)} (not given and not in the secret)")
    ssl_mode = args.ssl or "require"
    if ssl_mode == "verify-full" and not args.ssl_ca:
        raise SourceError("--ssl verify-full needs --ssl-ca PEM")
    return SourceParams(
        engine=proto,
        host=str(host),
        port=int(port),
        database=str(database) if database else None,
        user=str(user),
        password=password,
        ssl=ssl_mode,
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


def error_text(exc: BaseException) -> str:
    """A driver error as one line of text. python-tds keeps the server's message in
    ``.text`` (its str() is the args tuple); pg8000 puts a dict (severity, code, message)
    in ``args[0]``; the others print well."""
    text = getattr(exc, "text", None)
    if isinstance(text, str) and text:
        msg = text
    elif exc.args and isinstance(exc.args[0], dict):
        info = exc.args[0]
        msg = f"{info.get('M', '')} ({info.get('C', '?')})"
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())


def _one_line(exc: BaseException) -> str:
    msg = error_text(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and str(cause) not in msg:
        msg = f"{msg}: {cause.strerror or cause}"
    return " ".join(msg.split())


def _driver(proto: str) -> Any:
    """The driver module of a protocol; SourceError naming the pip requirement if absent."""
    import importlib

    module, requirement = DRIVERS[proto]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SourceError(
            f"the {proto} driver is not installed (import {module} failed: {_one_line(exc)}): "
            f".venv/bin/pip install {requirement}"
        ) from None


def connect(params: SourceParams) -> Any:
    """A DB-API connection (autocommit, read-only use) or SourceError with one line."""
    driver = _driver(params.engine)
    try:
        if params.engine == "postgres":
            conn = driver.dbapi.connect(
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
        if params.engine == "sqlserver":
            return _connect_sqlserver(driver, params)
        if params.engine == "oracle":
            return _connect_oracle(driver, params)
        return driver.connect(
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
    except SourceError:
        raise
    except Exception as exc:  # refused, timeout, DNS, auth failure, unknown database, TLS
        raise SourceError(f"cannot connect to {params.describe()}: {_one_line(exc)}") from exc


def _connect_sqlserver(pytds: Any, params: SourceParams) -> Any:
    """python-tds: TLS only through pyOpenSSL and always against a CA file (it has no
    "encrypt without verifying" mode), so ``require`` and ``verify-full`` need --ssl-ca."""
    tls: dict[str, Any] = {}
    if params.ssl != "disable":
        from pytds import tls as pytds_tls

        if not pytds_tls.OPENSSL_AVAILABLE:
            raise SourceError(
                "TLS to SQL Server through python-tds needs pyOpenSSL (.venv/bin/pip install "
                "pyopenssl) and --ssl-ca PEM; or --ssl disable on a trusted network"
            )
        if not params.ssl_ca:
            raise SourceError(
                f"--ssl {params.ssl} to SQL Server needs --ssl-ca PEM (python-tds always "
                "verifies the server certificate against a CA file, e.g. the RDS global bundle)"
            )
        tls = {"cafile": params.ssl_ca, "validate_host": params.ssl == "verify-full"}
    return pytds.connect(
        dsn=params.host,
        port=params.port,
        database=params.database,
        user=params.user,
        password=params.password,
        login_timeout=CONNECT_TIMEOUT_S,
        timeout=300,
        autocommit=True,
        appname="dmsbus-tools",
        disable_connect_retry=True,
        **tls,
    )


def _connect_oracle(oracledb: Any, params: SourceParams) -> Any:
    """python-oracledb in thin mode (no Oracle Client); ``--database`` is the service name.
    TLS is TCPS to the port given (DMS's Oracle TLS port, often 2484)."""
    # exact numbers and LOB text: NUMBER as Decimal, CLOB/BLOB as str/bytes (not LOB handles)
    oracledb.defaults.fetch_decimals = True
    oracledb.defaults.fetch_lobs = False
    tls: dict[str, Any] = {}
    if params.ssl != "disable":
        tls = {
            "protocol": "tcps",
            "ssl_context": _ssl_context(params),
            "ssl_server_dn_match": params.ssl == "verify-full",
        }
    conn = oracledb.connect(
        user=params.user,
        password=params.password,
        host=params.host,
        port=params.port,
        service_name=params.database,
        tcp_connect_timeout=CONNECT_TIMEOUT_S,
        retry_count=0,
        **tls,
    )
    conn.autocommit = True
    return conn
