"""Reconcile: do the DynamoDB waypoint tables hold exactly the legacy rows?

DMS data validation does not support a DynamoDB target, so this is the proof. For each
chosen table it reads the source in keyset-paginated pages and the DynamoDB table in Scan
pages, converts each source row the way DMS writes it (``tools.dms_types``), and compares
per key a hash of the mapped columns. It reports the counts, and the missing (in the source,
not in DynamoDB), extra (in DynamoDB, not in the source) and different keys: totals and a
sample of each (differences name the columns, never their values). On a PostgreSQL table
whose replica identity is not FULL, items lacking a value the source holds in a column that
can be TOASTed get one ``cause`` line with the ``ALTER TABLE ... REPLICA IDENTITY FULL`` fix
(an UPDATE leaving such a value unchanged does not carry it in the replication stream).

    python -m tools.reconcile --engine postgres --host db.internal --database app \\
        --user reader --password-env PGPASSWORD --region eu-west-1 \\
        --table public.orders=dmsbus-prod-orders:order_id \\
        --table sales.order_lines=dmsbus-prod-order_lines:order_id,line_no:order_id,line_no,qty

``--table SCHEMA.TABLE=DYNAMODB_TABLE:KEY[,KEY2][:COL,COL...]`` (default with ``--stack``: every
table the stack declares, keyed by its source key columns; columns default to every
source column). Exit 0: no difference; 1: differences; 2: usage, credentials or connection
problem (one line on stderr). Memory: one entry (key + 16-byte hash) per source row.

Python API: :func:`reconcile` returns a :class:`ReconcileResult`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.cli import (
    OneLineParser,
    aws_problem,
    default_region,
    non_negative_int,
    one_line,
    positive_int,
    region_of_endpoint,
)
from tools.dms_types import Canonical, Category, canonical, canonical_value, category_of, digest
from tools.sourcedb import (
    SourceError,
    add_connection_args,
    apply_stack,
    connect,
    params_from_args,
    protocol_of,
    query_rows,
    toast_tables,
)

EXIT_OK, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2
DEFAULT_PAGE = 1000
DEFAULT_SAMPLE = 10


class ReconcileError(Exception):
    """A problem that stops the comparison (bad mapping, unknown table or column)."""


@dataclass(frozen=True)
class TableMapping:
    """One source table and the DynamoDB table DMS writes it to."""

    source: str  # "schema.table" (MySQL: "database.table")
    target: str  # physical DynamoDB table name
    keys: tuple[str, ...]  # key columns = the DynamoDB key attributes (DMS object mapping)
    columns: tuple[str, ...] | None = None  # compared columns; None = every source column

    @classmethod
    def parse(cls, spec: str) -> TableMapping:
        """``schema.table=target:key1,key2[:col1,col2]``."""
        source, sep, rest = spec.partition("=")
        parts = rest.split(":")
        if not sep or "." not in source or len(parts) not in (2, 3) or not parts[0]:
            raise ReconcileError(
                f"bad --table {spec!r}: expected SCHEMA.TABLE=DYNAMODB_TABLE:KEY[,KEY][:COLS]"
            )
        keys = tuple(k.strip() for k in parts[1].split(",") if k.strip())
        if not keys:
            raise ReconcileError(f"bad --table {spec!r}: no key column")
        cols = (
            tuple(c.strip() for c in parts[2].split(",") if c.strip()) if len(parts) == 3 else None
        )
        return cls(source=source.strip(), target=parts[0].strip(), keys=keys, columns=cols or None)


@dataclass
class TableReport:
    """The comparison of one table. Samples hold canonical key values (as text)."""

    source: str
    target: str
    keys: list[str]
    source_rows: int = 0
    target_items: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    missing_sample: list[dict[str, str]] = field(default_factory=list)
    extra_sample: list[dict[str, str]] = field(default_factory=list)
    different_sample: list[dict[str, Any]] = field(default_factory=list)
    #: PostgreSQL: the table's replica identity, when it has columns that can be TOASTed
    replica_identity: str = ""
    #: column that can be TOASTed -> items it is absent from while the source row has a
    #: value (counted only when the identity is not FULL: then that is the likely cause)
    absent_toastable: dict[str, int] = field(default_factory=dict)
    fix: str = ""  # the ALTER TABLE ... REPLICA IDENTITY FULL statement, with the above
    absent_items: int = 0  # items lacking at least one of those values

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.different)

    def lines(self) -> list[str]:
        head = (
            f"{'OK  ' if self.ok else 'DIFF'} {self.source} -> {self.target}: "
            f"source {self.source_rows} rows, target {self.target_items} items, "
            f"missing {self.missing}, extra {self.extra}, different {self.different}"
        )
        out = [head]
        out += [f"  missing   {json.dumps(k)}" for k in self.missing_sample]
        out += [f"  extra     {json.dumps(k)}" for k in self.extra_sample]
        out += [
            f"  different {json.dumps(d['key'])} columns: {', '.join(d['columns'])}"
            for d in self.different_sample
        ]
        if self.absent_toastable:
            cols = ", ".join(self.absent_toastable)
            word = "columns" if len(self.absent_toastable) > 1 else "column"
            out.append(
                f"  cause     {self.source} {word} {cols} (absent from {self.absent_items} "
                f"item(s)): replica identity {self.replica_identity}: unchanged TOASTed "
                f"values are not in the replication stream; run {self.fix}"
            )
        return out


@dataclass
class ReconcileResult:
    tables: list[TableReport]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, "tables": [asdict(t) for t in self.tables]}, indent=2)


# --------------------------------------------------------------------------- source side

#: SQL Server INFORMATION_SCHEMA.COLUMNS.DATA_TYPE -> comparison category (DMS's SQL Server
#: source types: BIT -> BOOLEAN, DATETIMEOFFSET -> the instant, (VAR)BINARY/IMAGE -> BLOB)
_SQLSERVER: dict[str, Category] = {
    **dict.fromkeys(("tinyint", "smallint", "int", "bigint", "decimal", "numeric", "money",
                     "smallmoney", "float", "real"), "number"),
    "bit": "boolean",
    "date": "date",
    **dict.fromkeys(("datetime", "datetime2", "smalldatetime"), "datetime"),
    "datetimeoffset": "datetime_tz",
    "time": "time",
    **dict.fromkeys(("binary", "varbinary", "image", "timestamp", "rowversion"), "binary"),
}
#: Oracle ALL_TAB_COLUMNS.DATA_TYPE (precision stripped) -> comparison category; Oracle
#: DATE holds a time of day, so it compares as a date and time
_ORACLE: dict[str, Category] = {
    **dict.fromkeys(("NUMBER", "FLOAT", "BINARY_FLOAT", "BINARY_DOUBLE", "INTEGER"), "number"),
    "DATE": "datetime",
    "TIMESTAMP": "datetime",
    "TIMESTAMP WITH TIME ZONE": "datetime_tz",
    "TIMESTAMP WITH LOCAL TIME ZONE": "datetime_tz",
    **dict.fromkeys(("BLOB", "RAW", "LONG RAW"), "binary"),
}


def source_category(engine: str, data_type: str) -> Category:
    """The comparison category of a source column (``engine``: a protocol name)."""
    if engine == "sqlserver":
        return _SQLSERVER.get(data_type.lower(), "string")
    if engine == "oracle":
        base = " ".join(re.sub(r"\(\d+\)", "", data_type.upper()).split())
        return _ORACLE.get(base, "string")
    return category_of(engine, data_type)



@dataclass(frozen=True)
class _Column:
    name: str
    category: Category
    sql_type: str  # PostgreSQL format_type / MySQL COLUMN_TYPE


class _Source:
    """Keyset-paginated reads of one source table through a DB-API connection."""

    def __init__(self, conn: Any, engine: str, mapping: TableMapping) -> None:
        self.conn, self.engine, self.mapping = conn, engine, mapping
        self.schema, _, self.table = mapping.source.partition(".")
        all_cols = self._columns()
        if not all_cols:
            raise ReconcileError(f"source table {mapping.source} not found (or no access)")
        by_name = {c.name: c for c in all_cols}
        wanted = list(mapping.columns) if mapping.columns else [c.name for c in all_cols]
        for k in mapping.keys:
            if k not in wanted:
                wanted.insert(0, k)
        unknown = [c for c in wanted if c not in by_name]
        if unknown:
            raise ReconcileError(f"{mapping.source}: no column(s) {', '.join(unknown)}")
        self.columns = [by_name[c] for c in wanted]
        self.key_columns = [by_name[k] for k in mapping.keys]

    def q(self, name: str) -> str:
        if self.engine == "mysql":
            return f"`{name.replace('`', '``')}`"
        if self.engine == "sqlserver":
            return f"[{name.replace(']', ']]')}]"
        return f'"{name.replace(chr(34), chr(34) * 2)}"'  # PostgreSQL, Oracle

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return query_rows(self.conn, sql, params)

    def _columns(self) -> list[_Column]:
        if self.engine == "postgres":
            rows = self._rows(
                "SELECT a.attname, c.data_type, format_type(a.atttypid, a.atttypmod) "
                "FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = t.relnamespace "
                "JOIN information_schema.columns c ON c.table_schema = n.nspname "
                "AND c.table_name = t.relname AND c.column_name = a.attname "
                "WHERE n.nspname = %s AND t.relname = %s AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum",
                (self.schema, self.table),
            )
        elif self.engine == "sqlserver":
            rows = self._rows(
                "SELECT COLUMN_NAME, DATA_TYPE, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (self.schema, self.table),
            )
        elif self.engine == "oracle":
            rows = self._rows(
                "SELECT column_name, data_type, data_type FROM all_tab_columns "
                "WHERE owner = :1 AND table_name = :2 ORDER BY column_id",
                (self.schema, self.table),
            )
        else:
            rows = self._rows(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (self.schema, self.table),
            )
        return [
            _Column(str(n), source_category(self.engine, str(t)), str(f)) for n, t, f in rows
        ]

    def _expr(self, col: _Column) -> str:
        """Select expression giving the value in the form DMS reads it."""
        q = self.q(col.name)
        if self.engine == "postgres":
            if col.sql_type == "money":
                return f"{q}::numeric"
            if col.category in ("string", "time"):
                return f"{q}::text"
            return q
        if self.engine == "sqlserver":
            if col.sql_type.lower() == "uniqueidentifier":
                return f"CAST({q} AS NVARCHAR(36))"  # SQL Server's own (upper-case) text
            return q
        if self.engine == "oracle":
            if col.category == "datetime_tz":
                return f"SYS_EXTRACT_UTC({q})"  # the instant, in UTC as DMS writes it
            return q
        if col.sql_type.startswith("bit"):
            return f"CAST({q} AS UNSIGNED)"
        if col.category == "time":
            return f"CAST({q} AS CHAR)"
        return q

    def _param(self, col: _Column, n: int) -> str:
        """The placeholder of bind parameter ``n`` (1-based) holding a value of ``col``."""
        if self.engine == "postgres":
            return f"CAST(%s AS {col.sql_type})"
        return f":{n}" if self.engine == "oracle" else "%s"

    def _select(self, limit: int | None = None) -> str:
        exprs = [self._expr(c) for c in self.columns] + [self.q(c.name) for c in self.key_columns]
        top = f"TOP ({int(limit)}) " if limit is not None and self.engine == "sqlserver" else ""
        return f"SELECT {top}{', '.join(exprs)} FROM {self.q(self.schema)}.{self.q(self.table)}"

    def _after(self) -> tuple[str, list[int]]:
        """The keyset condition "key > last key" and, per bind parameter, the index of the
        key value it takes. SQL Server and Oracle have no row-value comparison, so there it
        is spelled out: k1 > a OR (k1 = a AND k2 > b) OR ..."""
        keys = self.key_columns
        if self.engine in ("postgres", "mysql"):
            cols = ", ".join(self.q(c.name) for c in keys)
            marks = ", ".join(self._param(c, i + 1) for i, c in enumerate(keys))
            if len(keys) == 1:
                return f"{cols} > {marks}", [0]
            return f"({cols}) > ({marks})", list(range(len(keys)))
        terms, order = [], []
        for i, col in enumerate(keys):
            parts = []
            for j in range(i):
                order.append(j)
                parts.append(f"{self.q(keys[j].name)} = {self._param(keys[j], len(order))}")
            order.append(i)
            parts.append(f"{self.q(col.name)} > {self._param(col, len(order))}")
            terms.append("(" + " AND ".join(parts) + ")")
        return " OR ".join(terms), order

    def pages(self, page_size: int) -> Iterator[list[tuple[Any, ...]]]:
        """Rows in key order; the raw key values are appended to each row."""
        keys = ", ".join(self.q(c.name) for c in self.key_columns)
        if self.engine == "postgres":  # by position, the raw keys appended to the select
            # list: a key's name is ambiguous beside its converted copy ("code"::text, varchar)
            keys = ", ".join(str(len(self.columns) + i + 1) for i in range(len(self.key_columns)))
        after, order = self._after()
        tail = (
            f" FETCH FIRST {int(page_size)} ROWS ONLY" if self.engine == "oracle"
            else "" if self.engine == "sqlserver" else f" LIMIT {int(page_size)}"
        )
        last: tuple[Any, ...] | None = None
        while True:
            where = f" WHERE {after}" if last is not None else ""
            sql = f"{self._select(page_size)}{where} ORDER BY {keys}{tail}"
            rows = self._rows(sql, [last[i] for i in order] if last is not None else ())
            if not rows:
                return
            yield rows
            if len(rows) < page_size:
                return
            last = rows[-1][len(self.columns) :]

    def fetch(self, raw_key: tuple[Any, ...]) -> tuple[Any, ...] | None:
        cond = " AND ".join(
            f"{self.q(c.name)} = {self._param(c, i + 1)}" for i, c in enumerate(self.key_columns)
        )
        rows = self._rows(f"{self._select()} WHERE {cond}", raw_key)
        return rows[0] if rows else None


# --------------------------------------------------------------------------- comparison


def _canon_row(
    columns: list[_Column], values: Sequence[Any], boolean_as_boolean: bool
) -> dict[str, Canonical | None]:
    return {
        c.name: canonical_value(v, c.category, boolean_as_boolean=boolean_as_boolean)
        for c, v in zip(columns, values, strict=False)
    }


def _canon_item(columns: list[_Column], item: dict[str, Any]) -> dict[str, Canonical | None]:
    return {c.name: canonical(item.get(c.name), c.category) for c in columns}


def _key_text(key_columns: list[_Column], canon: dict[str, Canonical | None]) -> str:
    return json.dumps([canon[c.name] for c in key_columns], separators=(",", ":"))


def _key_sample(key_columns: list[_Column], canon: dict[str, Canonical | None]) -> dict[str, str]:
    return {c.name: (canon[c.name] or ("", "NULL"))[1] for c in key_columns}


def _scan(
    dynamodb: Any, table: str, names: list[str], page_size: int, consistent: bool
) -> Iterator[list[dict[str, Any]]]:
    placeholders = {f"#c{i}": n for i, n in enumerate(names)}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "Limit": page_size,
        "ProjectionExpression": ", ".join(placeholders),
        "ExpressionAttributeNames": placeholders,
        "ConsistentRead": consistent,
    }
    while True:
        page = dynamodb.scan(**kwargs)
        yield page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def reconcile_table(
    conn: Any,
    engine: str,
    mapping: TableMapping,
    dynamodb: Any,
    *,
    page_size: int = DEFAULT_PAGE,
    sample: int = DEFAULT_SAMPLE,
    boolean_as_boolean: bool = False,
    consistent_read: bool = False,
    target_pages: Iterable[list[dict[str, Any]]] | None = None,
) -> TableReport:
    """Compare one table. ``engine``: a stack/DMS engine name (postgres, aurora-postgresql,
    mysql, aurora, mariadb, sqlserver, oracle) or a protocol name.

    The target is ``mapping.target`` read with ``dynamodb`` (a boto3 client) in Scan pages,
    or, when given, ``target_pages``: pages of items in DynamoDB's attribute form from
    anywhere else (e.g. a consumer's replica), compared the same way."""
    proto = protocol_of(engine)
    src = _Source(conn, proto, mapping)
    cols, key_cols = src.columns, src.key_columns
    report = TableReport(source=mapping.source, target=mapping.target, keys=list(mapping.keys))
    # columns whose unchanged values the replication stream may not carry (TOAST, identity
    # not FULL): per source row, a bit per such column that holds a value
    risky = _toast_risk(conn, proto, src, report)

    # pass 1: the source, page by page -> {key: (hash, raw key, risky columns with a value)}
    seen: dict[str, tuple[bytes, tuple[Any, ...], int]] = {}
    for rows in src.pages(page_size):
        for row in rows:
            canon = _canon_row(cols, row[: len(cols)], boolean_as_boolean)
            held = sum(1 << i for i, c in enumerate(risky) if canon[c] is not None)
            seen[_key_text(key_cols, canon)] = (digest(canon), row[len(cols) :], held)
            report.source_rows += 1

    # pass 2: DynamoDB Scan pages, matched against the source hashes
    different: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    if target_pages is None:
        target_pages = _scan(
            dynamodb, mapping.target, [c.name for c in cols], page_size, consistent_read
        )
    for items in target_pages:
        for item in items:
            report.target_items += 1
            canon = _canon_item(cols, item)
            key = _key_text(key_cols, canon)
            found = seen.pop(key, None)
            if found is None:
                report.extra += 1
                if len(report.extra_sample) < sample:
                    report.extra_sample.append(_key_sample(key_cols, canon))
            elif found[0] != digest(canon):
                report.different += 1
                if len(different) < sample:
                    different.append((found[1], item))
                held = found[2]
                absent = [c for i, c in enumerate(risky) if held >> i & 1 and canon[c] is None]
                for c in absent:
                    report.absent_toastable[c] = report.absent_toastable.get(c, 0) + 1
                report.absent_items += bool(absent)

    report.missing = len(seen)
    counts = report.absent_toastable
    report.absent_toastable = {c: counts[c] for c in risky if c in counts}  # table order
    for key in list(seen)[:sample]:
        pairs = json.loads(key)
        report.missing_sample.append(
            {c.name: (p[1] if p else "NULL") for c, p in zip(key_cols, pairs, strict=True)}
        )

    # differing columns for the sample: re-read those source rows (names only, no values)
    for raw_key, item in different:
        target = _canon_item(cols, item)
        fresh = src.fetch(raw_key)
        source = _canon_row(cols, fresh[: len(cols)], boolean_as_boolean) if fresh else {}
        changed = [c.name for c in cols if source.get(c.name) != target.get(c.name)]
        report.different_sample.append(
            {"key": _key_sample(key_cols, target), "columns": changed or ["(changed since read)"]}
        )
    return report


def _toast_risk(conn: Any, engine: str, src: _Source, report: TableReport) -> list[str]:
    """The compared columns that can be TOASTed when the table's replica identity is not
    FULL (PostgreSQL); fills the report's identity and fix."""
    if engine != "postgres":
        return []
    found = toast_tables(conn, "n.nspname = %s AND c.relname = %s", (src.schema, src.table))
    if not found:
        return []
    (table,) = found
    report.replica_identity = table.replica_identity
    if table.full:
        return []
    report.fix = table.fix
    compared = {c.name for c in src.columns}
    return [name for name, _ in table.columns if name in compared]


def reconcile(
    conn: Any,
    engine: str,
    mappings: Sequence[TableMapping],
    dynamodb: Any,
    *,
    page_size: int = DEFAULT_PAGE,
    sample: int = DEFAULT_SAMPLE,
    boolean_as_boolean: bool = False,
    consistent_read: bool = False,
) -> ReconcileResult:
    """Compare every mapping; ``dynamodb`` is a boto3 DynamoDB client."""
    session = {
        "mysql": "SET time_zone = '+00:00'",  # TIMESTAMP values in UTC, as DMS reads them
        "oracle": "ALTER SESSION SET TIME_ZONE = '+00:00'",  # LOCAL TIME ZONE values in UTC
    }.get(protocol_of(engine))
    if session:
        cur = conn.cursor()
        cur.execute(session)
        cur.close()
    return ReconcileResult(
        [
            reconcile_table(
                conn,
                engine,
                m,
                dynamodb,
                page_size=page_size,
                sample=sample,
                boolean_as_boolean=boolean_as_boolean,
                consistent_read=consistent_read,
            )
            for m in mappings
        ]
    )


# --------------------------------------------------------------------------- CLI


def stack_mappings(stack: str, stack_dir: Path | None = None) -> list[TableMapping]:
    """Every table the stack declares: its source table, its DynamoDB table and the source's
    key columns (`dms.tables.<t>.primary_key`, else the partition and sort key). Tables DMS
    created from wildcards are not listed: name them with --table."""
    from dms_event_bus.settings import ConfigError, load_settings
    from dms_event_bus.settings.dms import source_of
    from dms_event_bus.settings.stackfile import (
        ROOT,
        as_engine_config,
        project_config,
        read_stack_config,
    )

    try:
        engine_config, _ = as_engine_config(read_stack_config(stack, stack_dir or ROOT))
        loaded = load_settings(stack, project_config(engine_config))
    except ConfigError as exc:
        raise ReconcileError(" ".join(exc.brief().split())) from None
    except (FileNotFoundError, ValueError) as exc:
        raise ReconcileError(" ".join(str(exc).split())) from None
    if loaded.dms is None or not loaded.tables:
        raise ReconcileError(
            f"stack '{stack}' declares no table DMS fills: name each with --table "
            "SCHEMA.TABLE=DDB_TABLE:KEYS"
        )
    mappings = []
    for logical, table in sorted(loaded.tables.items()):
        schema, name = source_of(logical, table, loaded.dms.default_schema)
        dms_table = loaded.dms.tables.get(logical)
        keys = (dms_table.primary_key if dms_table and dms_table.primary_key
                else table.key_names)
        mappings.append(TableMapping(source=f"{schema}.{name}",
                                     target=loaded.physical_table_name(logical),
                                     keys=tuple(keys)))
    return mappings


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        allow_abbrev=False,
        prog="python -m tools.reconcile",
        description="Compare legacy source tables with their DynamoDB waypoint tables. Give "
        "the engine and connection (--engine, --host, ...) or --stack NAME to read them from "
        "the stack file.",
    )
    add_connection_args(parser)
    parser.add_argument(
        "--table",
        action="append",
        default=None,
        metavar="SCHEMA.TABLE=DDB_TABLE:KEYS[:COLS]",
        help="a table to compare (repeat for more); default with --stack: every table the "
        "stack declares, with its source, DynamoDB name and key columns",
    )
    parser.add_argument("--endpoint-url", help="DynamoDB endpoint (e.g. DynamoDB Local)")
    parser.add_argument("--page-size", type=positive_int, default=DEFAULT_PAGE)
    parser.add_argument(
        "--sample", type=non_negative_int, default=DEFAULT_SAMPLE, help="keys shown per kind"
    )
    parser.add_argument(
        "--boolean-as-boolean",
        action="store_true",
        help="the DMS source endpoint sets MapBooleanAsBoolean (PostgreSQL)",
    )
    parser.add_argument(
        "--consistent-read", action="store_true", help="strongly consistent Scan (2x RCU)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _dynamodb_client(args: argparse.Namespace) -> tuple[Any, str]:
    """A DynamoDB client in the region given, the default one, or the endpoint URL's."""
    import boto3

    region = args.region or region_of_endpoint(args.endpoint_url) or default_region()
    if not region:
        raise ReconcileError(
            "no AWS region for DynamoDB: pass --region (the waypoint tables' region) or set "
            "AWS_REGION"
        )
    return boto3.client("dynamodb", region_name=region, endpoint_url=args.endpoint_url), region


def _describe_target(dynamodb: Any, table: str, region: str | None) -> None:
    """ReconcileError naming the fix when ``table`` is not there to be read."""
    from botocore.exceptions import ClientError

    try:
        dynamodb.describe_table(TableName=table)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            where = f" in {region}" if region else ""
            raise ReconcileError(
                f"DynamoDB table {table} not found{where} (ResourceNotFoundException): check "
                "the --table target and --region"
            ) from None
        raise


def main(
    argv: Sequence[str] | None = None, dynamodb: Any = None, secrets_client: Any = None
) -> int:
    args = build_parser().parse_args(argv)
    region = args.region
    try:
        apply_stack(args)
        region = args.region
        if args.table:
            mappings = [TableMapping.parse(spec) for spec in args.table]
        elif args.stack:
            mappings = stack_mappings(args.stack, args.stack_dir)
        else:
            raise ReconcileError(
                "no table to compare: give --table SCHEMA.TABLE=DDB_TABLE:KEYS (repeat for "
                "more) or --stack NAME to compare every table the stack declares"
            )
        if dynamodb is None:
            dynamodb, region = _dynamodb_client(args)
        # before the source is read (it can take long): every target table is there
        for mapping in mappings:
            _describe_target(dynamodb, mapping.target, region)
        params = params_from_args(args, args.engine, secrets_client)
        conn = connect(params)
        try:
            result = reconcile(
                conn,
                args.engine,
                mappings,
                dynamodb,
                page_size=args.page_size,
                sample=args.sample,
                boolean_as_boolean=args.boolean_as_boolean,
                consistent_read=args.consistent_read,
            )
        finally:
            conn.close()
    except (SourceError, ReconcileError) as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # DynamoDB errors (no credentials, endpoint), query failures
        msg = aws_problem(exc, "DynamoDB", region) or one_line(exc)
        print(f"reconcile: {msg}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(result.to_json())
    else:
        for table in result.tables:
            for line in table.lines():
                print(line)
    return EXIT_OK if result.ok else EXIT_DIFFERENT


if __name__ == "__main__":
    sys.exit(main())
