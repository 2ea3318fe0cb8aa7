"""See the whole pipeline work on one machine, without AWS: `python -m tools.demo`.

Starts a real source database -- PostgreSQL (Debian package `postgresql`, the default) or
MariaDB (`mariadb-server`, `--engine mariadb`, the MySQL family) -- on loopback, in a temporary
directory, stopped at exit, and the local pipeline the end-to-end tests use too
(`tools.localpipe`, see docs/e2e.md): a CDC stand-in for DMS reading a logical replication
slot (PostgreSQL) or the binary log (MariaDB) into moto's DynamoDB, an event source mapping
simulator over moto's DynamoDB Streams calling the project's real fan-in, backfill and
writeback handlers in-process, moto's Kinesis as the bus, and a consumer keeping a replica by
the consumer rule.

It then runs the same scripted workload on either engine -- inserts, updates, deletes, a
38-digit number, unicode, a column added mid-run, a table created mid-run (created by "DMS",
adopted, backfilled) and a write from a new service written back to the source -- prints every
envelope as it reaches the bus, runs the preflight's checks that apply (PostgreSQL: replica
identity of the source tables, both REPLICA IDENTITY FULL; MariaDB: the binary log settings)
and ends with a reconcile summary: source = DynamoDB = replica.

    python -m tools.demo [--engine postgres|mariadb] [--full] [--install]

`--full` prints whole envelopes (JSON) instead of one line each. Missing Debian packages are
named with the exact `apt-get` line; `--install` installs them (as root, with apt-get).
Exit 0: everything reconciles; 1: differences; 2: bad arguments, something to install or
start-up failed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tools.cli import OneLineParser

#: engine -> (what the demo calls it, its Debian package, the Python modules it needs)
ENGINES = {
    "postgres": ("PostgreSQL", "postgresql", ("pg8000", "psycopg")),
    "mariadb": ("MariaDB", "mariadb-server", ("pymysql", "pymysqlreplication")),
}

EXIT_OK, EXIT_DIFFERENT, EXIT_SETUP = 0, 1, 2


# --------------------------------------------------------------------------- prerequisites


def missing_packages(pg_root: str = "/usr/lib/postgresql", engine: str = "postgres",
                     sbin: str = "/usr/sbin") -> list[str]:
    """Debian packages the demo needs for `engine` and this machine lacks."""
    if engine == "mariadb":
        found = shutil.which("mariadbd") or shutil.which("mariadbd", path=sbin)
        return [] if found else ["mariadb-server"]
    found_pg = glob.glob(os.path.join(pg_root, "*", "bin", "postgres"))
    return [] if found_pg else ["postgresql"]


def missing_modules(engine: str = "postgres") -> list[str]:
    import importlib.util

    wanted = ("boto3", "moto", *ENGINES[engine][2])
    return [m for m in wanted if importlib.util.find_spec(m) is None]


def install_line(packages: Sequence[str]) -> str:
    return "sudo apt-get install -y --no-install-recommends " + " ".join(packages)


def install(packages: Sequence[str]) -> bool:
    """apt-get install (root only); the server the package starts is stopped again (the demo
    runs its own)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=env,
    )
    for service in ("postgresql", "mariadb"):  # the packages' own instances are not used
        subprocess.run(["service", service, "stop"], check=False, capture_output=True)
    return True


# --------------------------------------------------------------------------- printing


def to_json(value: Any) -> str:
    """Compact JSON with exact numbers (the consumer parses numbers as Decimal)."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{to_json(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _short(value: Any, width: int) -> str:
    text = to_json(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def envelope_line(env: dict[str, Any]) -> str:
    """One line per envelope: op, table, keys, seq, and the row (inserts, snapshots), the
    changed columns (updates) or nothing more (deletes)."""
    seq = str(env.get("seq") or "-")
    old, new = env.get("old") or {}, env.get("new") or {}
    if env["op"] == "update":
        shown: Any = {k: v for k, v in new.items() if old.get(k) != v or k not in old}
        gone = [k for k in old if k not in new]
        detail = "changed " + _short(shown, 80) + (f" removed {gone}" if gone else "")
    elif env["op"] == "delete":
        detail = "(row deleted)"
    else:
        detail = _short(new, 90)
    ttl = " ttl" if (env.get("source") or {}).get("ttl") else ""
    return (
        f"  bus <- {env['op']:8} {env['table']:8} {_short(env['keys'], 14):14} "
        f"seq {seq[-6:]:>6}{ttl}  {detail}"
    )


def printer(full: bool, out: Callable[[str], None]) -> Callable[[dict[str, Any]], None]:
    def show(env: dict[str, Any]) -> None:
        if full:
            out(to_json(env))
        else:
            out(envelope_line(env))

    return show


# --------------------------------------------------------------------------- the workload


BIG = "12345678901234567890123456789012345678"  # 38 digits: DynamoDB's largest precision


def run(out: Callable[[str], None], full: bool = False, engine: str = "postgres") -> int:
    """The scripted workload on `engine` (postgres | mariadb); returns the exit code."""
    from tools.localpipe.aws import moto_world
    from tools.localpipe.harness import ENVELOPE_SCHEMA, Pipeline, Source
    from tools.localpipe.servers import get_server

    setting = "wal_level=logical" if engine == "postgres" else "binlog_format=ROW"
    out(f"starting {ENGINES[engine][0]} ({setting}) on 127.0.0.1 ...")
    db = get_server(engine).fresh_database("demo")
    out(f"  database {db.dbname} on port {db.port}")
    with moto_world():  # fake credentials, one region, moto
        p = Pipeline(db, [Source("orders", "orders", (("id", "N"),))],
                     env="demo", on_envelope=printer(full, out),
                     validate_envelopes=ENVELOPE_SCHEMA.exists())
        try:
            return _workload(p, out)
        finally:
            p.close()


def _phase(out: Callable[[str], None], title: str) -> None:
    out("")
    out(f"== {title}")


def _workload(p: Any, out: Callable[[str], None]) -> int:
    from decimal import Decimal

    name = ENGINES[p.engine.name][0]
    checkpoint = ("the replication slot" if p.engine.name == "postgres"
                  else "the binlog position")
    _phase(out, f"orders exists in {name} with 3 rows; the pipeline starts (waypoint table "
           f"with its stream first, then {checkpoint}, then the full load)")
    p.create_table("CREATE TABLE orders (id bigint PRIMARY KEY, customer text, "
                   "amount numeric(38,0), price numeric(12,2), note text, "
                   "version bigint NOT NULL DEFAULT 1)", "orders")
    p.sql("INSERT INTO orders (id, customer, amount, price, note) VALUES "
          "(1, 'Ada', 100, 9.99, 'first'), (2, 'Grace', 2500, 120.00, NULL), "
          "(3, 'Linus', 7, 0.01, 'to be deleted')")
    p.start()
    p.enable_wildcard(exclude=("orders",))
    p.run_until_quiet()

    _phase(out, "inserts: a 38-digit amount, unicode")
    p.sql("INSERT INTO orders (id, customer, amount, price, note) VALUES "
          "(4, 'Zoë Ångström 東京', %s, 19.99, 'emoji 🚚 ✓')", (Decimal(BIG),))
    p.sql("INSERT INTO orders (id, customer, amount, price) VALUES "
          "(5, 'Đorđe', -98765432109876543210987654321098765, 3.50)")
    p.run_until_quiet()

    _phase(out, "updates and a delete")
    p.sql("UPDATE orders SET price = price * 2, version = version + 1 WHERE id = 2")
    p.sql("UPDATE orders SET note = 'changed twice', version = version + 1 WHERE id = 1")
    p.sql("UPDATE orders SET note = 'changed twice (2)', version = version + 1 WHERE id = 1")
    p.sql("DELETE FROM orders WHERE id = 3")
    p.run_until_quiet()

    _phase(out, "schema change mid-run: ALTER TABLE orders ADD COLUMN region (no redeploy)")
    p.sql("ALTER TABLE orders ADD COLUMN region text")
    p.sql("UPDATE orders SET region = 'eu-west-1', version = version + 1 WHERE id IN (1, 4)")
    p.run_until_quiet()

    _phase(out, "a table created mid-run: DMS (wildcard mapping) creates its DynamoDB table "
           "without a stream and loads it -- nothing on the bus yet")
    p.create_table("CREATE TABLE parcels (code varchar(20) PRIMARY KEY, weight numeric(10,3), "
                   "label text)", "parcels")
    p.sql("INSERT INTO parcels VALUES ('P-1', 1.250, 'fragile ⚠'), ('P-2', 20.000, 'heavy'), "
          "('P-3', 0.005, 'ラベル')")
    p.run_until_quiet()
    out(f"  DMS created {p.physical('parcels')} (no stream)")

    _phase(out, "adoption (AdoptedTable provider): stream on, backfill publishes every existing "
           "row as a snapshot; later writes arrive as changes")
    outs = p.adopt("parcels")
    out(f"  stream {outs['stream_label']} on ({outs['live_billing_mode']}); backfill started "
        f"({outs['backfill_segments']} segments)")
    p.run_until_quiet()
    p.sql("UPDATE parcels SET label = 'handled with care' WHERE code = 'P-1'")
    p.sql("INSERT INTO parcels VALUES ('P-4', 2.000, 'after adoption')")
    p.run_until_quiet()

    _phase(out, "the write path: a new service writes order 9001 (version 1) to its table; the "
           f"writeback puts it into {name}; DMS captures it -- ONE bus event, no second "
           "writeback")
    p.add_writeback(
        "orders", "orders",
        columns={"customer": "customer", "amount": "amount", "price": "price", "note": "note"},
        key_columns={"id": "id"}, key_types={"id": "N"},
    )
    p.app_put("orders", {"id": {"N": "9001"}, "customer": {"S": "new service ✓"},
                         "amount": {"N": BIG}, "price": {"N": "42.00"},
                         "note": {"S": "written back"}, "version": {"N": "1"}})
    rounds = p.run_until_quiet()
    for table, op, key, version in p.writeback_writes():
        out(f"  writeback -> {name}: {op} {table} id={key} version={version}")
    out(f"  quiet after {rounds} round(s)")

    return _summary(p, out)


def _preflight(p: Any, out: Callable[[str], None]) -> bool:
    """The preflight's checks that apply to the demo's source: PostgreSQL's replica
    identity; MariaDB's binary log settings (the demo's server is configured for DMS)."""
    if p.engine.name == "postgres":
        return _replica_identity(p, out)
    from tools.preflight import check_mysql

    _phase(out, "preflight: the binary log DMS reads (log_bin, ROW format, FULL row image, "
           "retention)")
    checks = [c for c in check_mysql(p.conn, [p.schema])
              if c.name.startswith(("log_bin", "binlog"))]
    for check in checks:
        out(f"  {check.line()}")
    return bool(checks) and all(c.ok for c in checks)


def _replica_identity(p: Any, out: Callable[[str], None]) -> bool:
    """The preflight's replica-identity check on the demo's source tables (created with
    REPLICA IDENTITY FULL, as docs/preflight.md asks); True when it passes."""
    from tools.preflight import replica_identity_checks
    from tools.sourcedb import toast_tables

    _phase(out, "preflight: replica identity of the source tables (FULL keeps large values "
           "an UPDATE leaves unchanged in the replication stream)")
    names = sorted(s.source for s in {**p.sources, **p.adopted}.values())
    tables = toast_tables(p.conn, "(n.nspname || '.' || c.relname) = ANY(%s)", [names])
    checks = replica_identity_checks(tables, ", ".join(names))
    for check in checks:
        out(f"  {check.line()}")
    return all(c.ok for c in checks)


def _summary(p: Any, out: Callable[[str], None]) -> int:
    from tools.localpipe.harness import ENVELOPE_SCHEMA

    identity_ok = _preflight(p, out)
    source_name = ENGINES[p.engine.name][0]
    _phase(out, f"reconcile: {source_name} = DynamoDB waypoint tables = consumer replica")
    replica = p.consumer.replica
    reports = p.reconcile_reports()
    for where, report in reports:
        name = "DynamoDB" if where == "dynamodb" else "replica "
        out(f"  {'OK  ' if report.ok else 'DIFF'} {report.source:15} vs {name}: source "
            f"{report.source_rows} rows, {name.strip()} {report.target_items}, missing "
            f"{report.missing}, extra {report.extra}, different {report.different}")
    diffs = p.reconcile(reports)
    writes = p.writeback_writes()
    twice, echoes = p.written_back_twice(), p.echoes()
    out(f"  bus: {len(replica.received)} envelopes read, {replica.applied} applied, "
        f"{replica.duplicates} duplicates, {replica.stale} stale (consumer rule); "
        + (f"{p.consumer.validated} records valid against {ENVELOPE_SCHEMA.name}"
           if p.consumer.validate else "schema ../shared/envelope.schema.json not found: "
           "envelopes not validated"))
    out(f"  writeback: {len(writes)} row write(s) to {source_name}, "
        f"{len(twice)} repeated, {len(echoes)} echoes")
    for line in diffs:
        out(f"  {line}")
    if diffs or echoes or twice or not identity_ok:
        out("RESULT: DIFFERENCES (see above)")
        return EXIT_DIFFERENT
    out("RESULT: OK -- nothing lost, nothing echoed")
    return EXIT_OK


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] | None = None) -> int:
    """The command; `out` receives the demo's lines (default: this process's stdout, which
    stays the demo's while the handlers' own prints go to the log file)."""
    if out is None:
        stdout = sys.stdout

        def out(line: str) -> None:
            stdout.write(line + "\n")
            stdout.flush()

    parser = OneLineParser(prog="python -m tools.demo",
                           description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--engine", default="postgres", choices=sorted(ENGINES),
                        help="the source database (default: postgres)")
    parser.add_argument("--full", action="store_true", help="print whole envelopes (JSON)")
    parser.add_argument("--install", action="store_true",
                        help="install missing Debian packages with apt-get (root)")
    args = parser.parse_args(argv)

    modules = missing_modules(args.engine)
    if modules:
        out(f"demo: missing Python packages {', '.join(modules)}: run `tools/dev.sh test` once "
            "(it builds .venv), or: .venv/bin/pip install '.[dev,drivers]'")
        return EXIT_SETUP
    packages = missing_packages(engine=args.engine)
    if packages and args.install:
        install(packages)
        packages = missing_packages(engine=args.engine)
    if packages:
        out(f"demo: missing Debian package(s) {', '.join(packages)}; install with:\n"
            f"  {install_line(packages)}\n(or run this command as root with --install)")
        return EXIT_SETUP
    import contextlib
    import tempfile

    with tempfile.NamedTemporaryFile("w", prefix="dmsbus-demo-", suffix=".log",
                                     delete=False, encoding="utf-8") as logs:
        out(f"handler logs and metrics (JSON lines) and provider messages go to {logs.name}")
        try:
            with contextlib.redirect_stdout(logs), contextlib.redirect_stderr(logs):
                return run(out, full=args.full, engine=args.engine)
        except Exception as exc:  # a start-up problem of the local pieces: one clear line
            from tools.localpipe.servers import ServerStartError

            if isinstance(exc, ServerStartError):
                out(f"demo: {ENGINES[args.engine][0]} did not start: {exc}")
                return EXIT_SETUP
            raise


if __name__ == "__main__":
    sys.exit(main())
