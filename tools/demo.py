"""See the whole pipeline work on one machine, without AWS: `python -m tools.demo`.

Starts a real PostgreSQL (Debian package `postgresql`, on loopback, in a temporary directory,
stopped at exit) and the local pipeline the end-to-end tests use too (`tools.localpipe`, see
docs/e2e.md): a CDC stand-in for DMS reading a logical
replication slot into moto's DynamoDB, an event source mapping simulator over moto's DynamoDB
Streams calling the project's real fan-in, backfill and writeback handlers in-process, moto's
Kinesis as the bus, and a consumer keeping a replica by the consumer rule.

It then runs a scripted workload on PostgreSQL -- inserts, updates, deletes, a 38-digit
number, unicode, a column added mid-run, a table created mid-run (created by "DMS", adopted,
backfilled) and a write from a new service written back to PostgreSQL -- prints every envelope
as it reaches the bus, runs the preflight's replica-identity check on its source tables (both
REPLICA IDENTITY FULL) and ends with a reconcile summary: PostgreSQL = DynamoDB = replica.

    python -m tools.demo [--full] [--install]

`--full` prints whole envelopes (JSON) instead of one line each. Missing Debian packages are
named with the exact `apt-get` line; `--install` installs them (as root, with apt-get).
Exit 0: everything reconciles; 1: differences; 2: something to install or start-up failed.
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

APT_PACKAGES = ("postgresql",)
PYTHON_MODULES = ("boto3", "moto", "pg8000")

EXIT_OK, EXIT_DIFFERENT, EXIT_SETUP = 0, 1, 2


# --------------------------------------------------------------------------- prerequisites


def missing_packages(pg_root: str = "/usr/lib/postgresql") -> list[str]:
    """Debian packages the demo needs and this machine lacks."""
    found = glob.glob(os.path.join(pg_root, "*", "bin", "postgres"))
    return [] if found else ["postgresql"]


def missing_modules() -> list[str]:
    import importlib.util

    return [m for m in PYTHON_MODULES if importlib.util.find_spec(m) is None]


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
    subprocess.run(["service", "postgresql", "stop"], check=False, capture_output=True)
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


def run(out: Callable[[str], None], full: bool = False) -> int:  # noqa: PLR0915 - a script
    """The scripted workload; returns the exit code."""
    from tools.localpipe.aws import moto_world
    from tools.localpipe.harness import ENVELOPE_SCHEMA, Pipeline, Source
    from tools.localpipe.servers import get_server

    out("starting PostgreSQL (wal_level=logical) on 127.0.0.1 ...")
    db = get_server("postgres").fresh_database("demo")
    out(f"  database {db.dbname} on port {db.port}")
    with moto_world():  # fake credentials, one region, moto
        p = Pipeline(db, [Source("public.orders", "orders", (("id", "N"),))],
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
    _phase(out, "orders exists in PostgreSQL with 3 rows; the pipeline starts (waypoint table "
           "with its stream first, then the replication slot, then the full load)")
    p.sql("CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(38,0), "
          "price numeric(12,2), note text, version bigint NOT NULL DEFAULT 1)")
    p.sql("ALTER TABLE orders REPLICA IDENTITY FULL")
    p.sql("INSERT INTO orders (id, customer, amount, price, note) VALUES "
          "(1, 'Ada', 100, 9.99, 'first'), (2, 'Grace', 2500, 120.00, NULL), "
          "(3, 'Linus', 7, 0.01, 'to be deleted')")
    p.start()
    p.enable_wildcard("public", exclude=("orders",))
    p.run_until_quiet()

    _phase(out, "inserts: a 38-digit amount, unicode")
    p.sql("INSERT INTO orders (id, customer, amount, price, note) VALUES "
          "(4, 'Zoë Ångström 東京', %s::numeric, 19.99, 'emoji 🚚 ✓')", (BIG,))
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
    p.sql("CREATE TABLE parcels (code text PRIMARY KEY, weight numeric(10,3), label text)")
    p.sql("ALTER TABLE parcels REPLICA IDENTITY FULL")
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
           "writeback puts it into PostgreSQL; DMS captures it -- ONE bus event, no second "
           "writeback")
    p.add_writeback(
        "orders", "public.orders",
        columns={"customer": "customer", "amount": "amount", "price": "price", "note": "note"},
        key_columns={"id": "id"}, key_types={"id": "N"},
    )
    p.app_put("orders", {"id": {"N": "9001"}, "customer": {"S": "new service ✓"},
                         "amount": {"N": BIG}, "price": {"N": "42.00"},
                         "note": {"S": "written back"}, "version": {"N": "1"}})
    rounds = p.run_until_quiet()
    for table, op, key, version in p.writeback_writes():
        out(f"  writeback -> PostgreSQL: {op} {table} id={key} version={version}")
    out(f"  quiet after {rounds} round(s)")

    return _summary(p, out)


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

    identity_ok = _replica_identity(p, out)
    _phase(out, "reconcile: PostgreSQL = DynamoDB waypoint tables = consumer replica")
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
    out(f"  writeback: {len(writes)} row write(s) to PostgreSQL, "
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
    parser.add_argument("--full", action="store_true", help="print whole envelopes (JSON)")
    parser.add_argument("--install", action="store_true",
                        help="install missing Debian packages with apt-get (root)")
    args = parser.parse_args(argv)

    modules = missing_modules()
    if modules:
        out(f"demo: missing Python packages {', '.join(modules)}: run `tools/dev.sh test` once "
            "(it builds .venv), or: .venv/bin/pip install '.[dev,drivers]'")
        return EXIT_SETUP
    packages = missing_packages()
    if packages and args.install:
        install(packages)
        packages = missing_packages()
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
                return run(out, full=args.full)
        except Exception as exc:  # a start-up problem of the local pieces: one clear line
            from tools.localpipe.servers import ServerStartError

            if isinstance(exc, ServerStartError):
                out(f"demo: PostgreSQL did not start: {exc}")
                return EXIT_SETUP
            raise


if __name__ == "__main__":
    sys.exit(main())
