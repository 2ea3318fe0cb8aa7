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
    parser.add_argument("--port", type=int, help="source port (default: engine default)")
    parser.add_argument("--database", help="database name (default: from the secret)")
    parser.add_argument("--user", help="login (default: username from the secret)")
    pw = parser.add_mutually_exclusive_group()
    pw.add_argument("--password-env", metavar="VAR", help="read the password from env VAR")
    pw.add_argument(
        "--secret-arn",
        metavar="ARN",
        help="Secrets Manager secret with JSON username/password (as RDS writes it)",
    )
    parser.add_argument("--region", help="AWS region for Secrets Manager / DynamoDB")
    parser.add_argument(
        "--ssl",
        choices=("disable", "require", "verify-full"),
        default="require",
        help="TLS to the source (default require; verify-full needs --ssl-ca)",
    )
    parser.add_argument("--ssl-ca", metavar="PEM", help="CA bundle, e.g. the RDS global bundle")


def read_secret(arn: str, region: str | None = None, client: Any = None) -> dict[str, Any]:
    """The JSON body of a Secrets Manager secret; SourceError (one line) on any problem."""
    try:
        if client is None:
            import boto3

            client = boto3.client("secretsmanager", region_name=region or _region_of(arn))
        body = client.get_secret_value(SecretId=arn)
    except Exception as exc:  # botocore ClientError, NoCredentialsError, endpoint errors
        raise SourceError(f"cannot read secret {arn}: {_one_line(exc)}") from exc
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


def _region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[0] == "arn" and parts[3] else None


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
