"""Writeback benchmark: the set-based handler vs per-row guarded upserts, pipelined and not.

    python -m bench.bench_writeback [--changes 10000] [--batch-size 500] [--trials 5]
                                    [--import-runs 9] [--no-write]

Starts the local PostgreSQL the way the tests do (tools.localpipe.servers, loopback), generates a
stream of write-path changes (10% exact redeliveries, ~5% versions delivered out of order,
~2% deletes) and, in each trial, writes it back with three writers side by side, each into
its own fresh database over its own psycopg connection (autocommit):

* set-based: `handlers.writeback.process` per Lambda-sized batch (plan per key, one
  `json_populate_recordset` statement per table that answers with the changes the legacy
  row refused -- the per-change status -- the batch in one pipeline);
* pipelined: the strongest simple alternative. The same records parsed the same way and
  collapsed per key the same way, then one plain guarded single-row
  `INSERT .. ON CONFLICT .. DO UPDATE .. WHERE version <` (or guarded `DELETE`) per change,
  all of a batch in ONE psycopg pipeline (one round trip, one implicit transaction, psycopg's
  automatic prepared statements). It learns nothing per change (no status): that would
  take a RETURNING and a read of the refused rows per statement, so the comparison favours
  it;
* per change: the same single-row statements without collapse, each sent alone (one round
  trip per change, prepared statements too).

The writers run batch by batch in turns, so load on the machine hits them alike. Each
writer's wall time and CPU time (this process while it runs + its server backend, from
/proc/<pid>/schedstat) are summed; the CPU ratio depends less on other load on the machine.
All writers must end with identical tables. Then, through a loopback proxy that counts
round trips on the wire (tools.localpipe.writeback_records.WireCounter), every batch is delivered
twice in a row (a Lambda retry: must change 0 rows) and the whole stream is read again.

Footprint: the writeback Lambda package's size with psycopg vs pg8000 (built for arm64 by
components.lambda_package) and the cold import of `handlers.writeback` plus the driver in
fresh interpreters, without bytecode as in the package (and with, for comparison), the
drivers installed for this machine's interpreter.

The status UpdateItems to DynamoDB are not part of this benchmark (no status client): they
go to DynamoDB, not to the legacy database. Writes bench/README.md's Writeback section.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.readme import write_section  # noqa: E402
from dms_event_bus.handlers.writeback import (  # noqa: E402
    Change,
    Config,
    DbApiExecutor,
    classify,
    collapse,
    process,
)
from dms_event_bus.handlers.writeback_sql import TableSpec, quote, quote_table  # noqa: E402
from tools.cli import OneLineParser, positive_int  # noqa: E402
from tools.localpipe.servers import DbServer, get_server  # noqa: E402
from tools.localpipe.writeback_records import (  # noqa: E402
    Records,
    WireCounter,
    config,
    item,
    pg_connect,
)

TABLE = "dmsbus-bench-ingest-orders"
LEGACY = "sales.orders"
SCHEMA = [
    "CREATE SCHEMA sales",
    """CREATE TABLE sales.orders (
        order_id bigint PRIMARY KEY, amount numeric(12,2), note text,
        customer varchar(20), row_version bigint)""",
]
Batch = list[dict[str, Any]]


def changes(total: int, seed: int = 7) -> list[dict[str, Any]]:
    """`total` stream records: inserts and updates of ~total/4 keys, 10% exact redeliveries,
    ~5% adjacent records swapped (out-of-order versions), ~2% deletes."""
    rng = random.Random(seed)
    r = Records(TABLE)
    keys = max(1, total // 4)
    versions = dict.fromkeys(range(1, keys + 1), 0)
    unique = total - total // 10
    out: list[dict[str, Any]] = []
    while len(out) < unique:
        key = rng.randint(1, keys)
        versions[key] += 1
        v = versions[key]
        new = item(key, v, amount=f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}",
                   note=f"note {key} v{v}", customer=f"c{rng.randint(1, 500)}")
        if rng.random() < 0.02 and v > 1:
            out.append(r.remove(item(key, v - 1)))
            versions[key] -= 1  # the next write of this key re-creates it at version v
        elif v == 1:
            out.append(r.insert(new))
        else:
            out.append(r.modify(item(key, v - 1), new))
    for i in range(len(out) - 1):  # out of order: swap some neighbours
        if rng.random() < 0.05:
            out[i], out[i + 1] = out[i + 1], out[i]
    for _ in range(total - len(out)):  # redeliveries of earlier records
        pos = rng.randint(0, len(out) - 1)
        out.insert(min(len(out), pos + rng.randint(1, 50)), out[pos])
    return out


def fresh(server: DbServer, *, counted: bool = False) -> tuple[Any, WireCounter | None]:
    """A new database with the legacy schema; the writer's autocommit psycopg connection
    (the handler's own `connect`), through a round-trip counting proxy when `counted`."""
    db = server.fresh_database("bench_wb")
    admin = db.admin_connect()
    cur = admin.cursor()
    for statement in SCHEMA:
        cur.execute(statement)
    cur.execute(f"GRANT USAGE ON SCHEMA sales TO {db.user}")
    cur.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA sales TO {db.user}")
    admin.close()
    wire = WireCounter(db.host, db.port) if counted else None
    return pg_connect(db, wire), wire


def batches(records: list[dict[str, Any]], size: int) -> list[Batch]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def single_row_sql(spec: TableSpec) -> tuple[str, str]:
    """The alternatives' two statements, as a careful hand-written writer has them: a plain
    guarded upsert and a guarded delete (no CTE, no counting), `$n` placeholders."""
    table = quote_table(spec.legacy_table, "postgres")
    cols = spec.upsert_columns
    keys = list(spec.key_columns.values())
    ver = quote(spec.version_column, "postgres")
    sets = ", ".join(f"{quote(c, 'postgres')} = EXCLUDED.{quote(c, 'postgres')}"
                     for c in [*spec.columns.values(), spec.version_column])
    upsert = (
        f"INSERT INTO {table} AS t ({', '.join(quote(c, 'postgres') for c in cols)}) "
        f"VALUES ({', '.join(f'${i}' for i in range(1, len(cols) + 1))}) "
        f"ON CONFLICT ({', '.join(quote(c, 'postgres') for c in keys)}) DO UPDATE SET {sets} "
        f"WHERE t.{ver} IS NULL OR t.{ver} < EXCLUDED.{ver}"
    )
    match = " AND ".join(f"{quote(c, 'postgres')} = ${i}" for i, c in enumerate(keys, 1))
    delete = (f"DELETE FROM {table} WHERE {match} AND "
              f"({ver} IS NULL OR {ver} <= ${len(keys) + 1})")
    return upsert, delete


def parsed(batch: Batch, cfg: Config) -> list[Change]:
    """The batch's changes, parsed as the handler parses them (rows as parameter lists)."""
    return [o.change for i, r in enumerate(batch)
            if (o := classify(i, r, cfg)).change is not None]


def set_based(conn: Any, cfg: Config) -> Callable[[Batch], None]:
    executor = DbApiExecutor(conn, "postgres")

    def write(batch: Batch) -> None:
        result = process(batch, cfg, executor, None)
        if result.failures:
            raise SystemExit(f"set-based writer reported failures: {result.poison}")
    return write


def pipelined(conn: Any, cfg: Config) -> Callable[[Batch], None]:
    """Collapsed changes, one guarded single-row statement each, the batch in one pipeline
    (one Sync: one round trip, one implicit transaction)."""
    upsert, delete = single_row_sql(next(iter(cfg.tables.values())))
    cursor = psycopg.RawCursor(conn)

    def write(batch: Batch) -> None:
        with conn.pipeline():
            for change in collapse(parsed(batch, cfg)):
                if change.op == "upsert":
                    cursor.execute(upsert, change.row)
                else:
                    cursor.execute(delete, [*change.key, change.version])
    return write


def per_change(conn: Any, cfg: Config) -> Callable[[Batch], None]:
    """Every change (nothing collapsed), one guarded single-row statement each, each sent
    alone in autocommit: one round trip per change."""
    upsert, delete = single_row_sql(next(iter(cfg.tables.values())))
    cursor = psycopg.RawCursor(conn)

    def write(batch: Batch) -> None:
        for change in parsed(batch, cfg):
            if change.op == "upsert":
                cursor.execute(upsert, change.row)
            else:
                cursor.execute(delete, [*change.key, change.version])
    return write


def parse_json_rows(_conn: Any, cfg: Config) -> Callable[[Batch], None]:
    """No database: only the handler's parsing (rows as JSON objects, its `json` style)."""
    def write(batch: Batch) -> None:
        for i, r in enumerate(batch):
            classify(i, r, cfg, json_row=True)
    return write


def parse_lists(_conn: Any, cfg: Config) -> Callable[[Batch], None]:
    """No database: only the alternatives' parsing (rows as parameter lists) and collapse."""
    def write(batch: Batch) -> None:
        collapse(parsed(batch, cfg))
    return write


WRITERS: dict[str, tuple[str, Callable[[Any, Config], Callable[[Batch], None]]]] = {
    "set": ("set-based handler (`process`: collapse, one statement per table, one pipeline "
            "per batch)", set_based),
    "pipelined": ("per-row guarded upserts, collapsed, ONE psycopg pipeline per batch",
                  pipelined),
    "per_change": ("per-row guarded upserts, one round trip per change", per_change),
}
#: Parsing alone, no database (to tell the database work from the parsing both share).
PARSERS: dict[str, tuple[str, Callable[[Any, Config], Callable[[Batch], None]]]] = {
    "parse_set": ("(parsing alone, as the set-based handler: rows as JSON objects)",
                  parse_json_rows),
    "parse_rows": ("(parsing and collapse alone, as the alternatives: parameter lists)",
                   parse_lists),
}


def cpu_ns(pid: int) -> int:
    """Time a process has spent on a CPU (Linux schedstat, nanoseconds)."""
    with open(f"/proc/{pid}/schedstat") as fh:
        return int(fh.read().split()[0])


class Writer:
    """One writer's connection and its accumulated wall and CPU time (client: this process
    while the writer runs; server: its backend process)."""

    def __init__(self, conn: Any, write: Callable[[Batch], None]) -> None:
        self.conn = conn
        self.write = write
        self.backend = int(conn.info.backend_pid) if conn is not None else None
        self.wall = 0.0
        self.client_cpu = 0.0
        self.server_cpu_ns = 0

    def run(self, batch: Batch) -> None:
        server = cpu_ns(self.backend) if self.backend else 0
        cpu, wall = time.process_time(), time.perf_counter()
        self.write(batch)
        self.wall += time.perf_counter() - wall
        self.client_cpu += time.process_time() - cpu
        if self.backend:
            self.server_cpu_ns += cpu_ns(self.backend) - server

    @property
    def cpu(self) -> float:
        return self.client_cpu + self.server_cpu_ns / 1e9


def table_rows(conn: Any) -> list[tuple[Any, ...]]:
    cur = conn.execute("SELECT * FROM sales.orders ORDER BY order_id")
    return [tuple(r) for r in cur.fetchall()]


def trial(server: DbServer, records: list[dict[str, Any]], cfg: Config,
          batch_size: int) -> dict[str, Writer]:
    """The writers, batch by batch in turns, each into its own fresh database; their final
    tables must be identical."""
    writers = {}
    for name, (_label, make) in WRITERS.items():
        conn, _ = fresh(server)
        writers[name] = Writer(conn, make(conn, cfg))
    for name, (_label, make) in PARSERS.items():
        writers[name] = Writer(None, make(None, cfg))
    order = list(writers.values())
    for i, batch in enumerate(batches(records, batch_size)):
        for writer in order[i % len(order):] + order[: i % len(order)]:  # rotate who goes first
            writer.run(batch)
    tables = {name: table_rows(writers[name].conn) for name in WRITERS}
    if any(t != tables["set"] for t in tables.values()):
        raise SystemExit("the writers' final tables differ")
    return writers


def wire_checks(server: DbServer, records: list[dict[str, Any]], cfg: Config,
                batch_size: int) -> dict[str, Any]:
    """Through the counting proxy: round trips per batch of the set-based and the pipelined
    writer; rows changed by delivering every batch twice in a row and by re-reading the
    whole stream (set-based)."""
    out: dict[str, Any] = {}
    conn, wire = fresh(server, counted=True)
    assert wire is not None
    executor = DbApiExecutor(conn, "postgres")
    trips, redelivered = [], 0
    for batch in batches(records, batch_size):
        before = wire.round_trips
        process(batch, cfg, executor, None)
        trips.append(wire.round_trips - before)
        redelivered += process(batch, cfg, executor, None).rows_changed
    final = table_rows(conn)
    reread = sum(process(b, cfg, executor, None).rows_changed
                 for b in batches(records, batch_size))
    out.update(set_trips=trips, redelivered=redelivered, reread=reread,
               reread_same=table_rows(conn) == final)
    conn, wire = fresh(server, counted=True)
    assert wire is not None
    write, trips = pipelined(conn, cfg), []
    for batch in batches(records, batch_size):
        before = wire.round_trips
        write(batch)
        trips.append(wire.round_trips - before)
    out.update(pipelined_trips=trips, pipelined_same=table_rows(conn) == final)
    return out


# --------------------------------------------------------------------------- footprint

DRIVER_IMPORTS = {"psycopg": (["psycopg==3.3.9", "psycopg-binary==3.3.9"], "psycopg"),
                  "pg8000": (["pg8000==1.31.6"], "pg8000.dbapi")}


def package_sizes() -> dict[str, tuple[int, int]]:
    """(zipped, unzipped) bytes of the writeback package for arm64 with each driver."""
    from dms_event_bus.components.lambda_package import ENVELOPE_REQUIREMENTS, build_zip
    from dms_event_bus.components.legacy_writeback import WRITEBACK_MODULES

    sizes = {}
    for name, (requirements, _module) in DRIVER_IMPORTS.items():
        data = build_zip(WRITEBACK_MODULES, [*requirements, *ENVELOPE_REQUIREMENTS], "arm64")
        unzipped = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
        sizes[name] = (len(data), unzipped)
    return sizes


def cold_imports(runs: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU ms of `import handlers.writeback, <driver>` in fresh interpreters
    (interleaved), the handler modules and each driver installed for this interpreter into
    their own folder; without bytecode (as in the Lambda package) and with it."""
    from dms_event_bus.components.lambda_package import ENVELOPE_REQUIREMENTS, with_imported_modules
    from dms_event_bus.components.legacy_writeback import WRITEBACK_MODULES

    work = Path(tempfile.mkdtemp(prefix="bench-wb-import-"))
    (work / "app" / "handlers").mkdir(parents=True)
    (work / "app" / "handlers" / "__init__.py").write_text("")
    for module in with_imported_modules(WRITEBACK_MODULES):  # the package's own modules
        (work / "app" / module).write_bytes((ROOT / module).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
                    "--disable-pip-version-check", "--target", str(work / "app"),
                    *ENVELOPE_REQUIREMENTS], check=True, capture_output=True)
    for name, (requirements, _module) in DRIVER_IMPORTS.items():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
                        "--disable-pip-version-check", "--target", str(work / name),
                        *requirements], check=True, capture_output=True)
    for folder in ["app", *DRIVER_IMPORTS]:  # a compiled copy of each: "with bytecode"
        shutil.copytree(work / folder, work / f"{folder}-bc")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(work / f"{folder}-bc")],
                       check=True, capture_output=True)
    cases: dict[str, tuple[list[str], str]] = {}
    for suffix, bc in (("", ""), (" (with bytecode)", "-bc")):
        cases["handler alone" + suffix] = ([str(work / f"app{bc}")],
                                           "import handlers.writeback")
        for name, (_requirements, module) in DRIVER_IMPORTS.items():
            cases[f"+ {name}{suffix}"] = ([str(work / f"app{bc}"), str(work / f"{name}{bc}")],
                                          f"import handlers.writeback, {module}")
    samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cases}
    probe = ("import time; w=time.perf_counter(); c=time.process_time(); {}; "
             "print(time.perf_counter()-w, time.process_time()-c)")
    for _ in range(runs):
        for label, (paths, statement) in cases.items():
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths),
                   "PYTHONDONTWRITEBYTECODE": "1"}  # the uncompiled copies stay uncompiled
            out = subprocess.run([sys.executable, "-c", probe.format(statement)], env=env,
                                 check=True, capture_output=True, text=True).stdout.split()
            samples[label][0].append(float(out[0]) * 1000)
            samples[label][1].append(float(out[1]) * 1000)
    shutil.rmtree(work, ignore_errors=True)
    return {label: {"wall": statistics.median(w), "cpu": statistics.median(c)}
            for label, (w, c) in samples.items()}


# --------------------------------------------------------------------------- report


def report(n: int, args: argparse.Namespace, trials: list[dict[str, Writer]],
           wire: dict[str, Any], sizes: dict[str, tuple[int, int]],
           imports: dict[str, dict[str, float]], load: float) -> tuple[str, bool]:
    ratios = {name: [t[name].wall / t["set"].wall for t in trials]
              for name in ("pipelined", "per_change")}
    cpu_ratios = {name: [t[name].cpu / t["set"].cpu for t in trials]
                  for name in ("pipelined", "per_change")}
    order = sorted(range(len(trials)), key=ratios["pipelined"].__getitem__)
    median = trials[order[len(order) // 2]]
    nb = len(wire["set_trips"])
    med = {k: statistics.median(v) for k, v in ratios.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu_ratios.items()}
    verdict = "met" if med["pipelined"] >= 3 else "NOT met"
    db_cpu = {"set": (median["set"].cpu - median["parse_set"].cpu) / n * 1e6,
              "pipelined": (median["pipelined"].cpu - median["parse_rows"].cpu) / n * 1e6}
    db_wall = {"set": median["set"].wall - median["parse_set"].wall,
               "pipelined": median["pipelined"].wall - median["parse_rows"].wall}
    parse_us = {"set": median["parse_set"].cpu / n * 1e6,
                "rows": median["parse_rows"].cpu / n * 1e6}
    server_us = {name: median[name].server_cpu_ns / n / 1e3 for name in ("set", "pipelined")}
    pipelining = statistics.median(
        t["per_change"].wall / t["pipelined"].wall for t in trials)
    met = (med["pipelined"] >= 3 and max(wire["set_trips"]) <= 1
           and wire["redelivered"] == 0 and wire["reread_same"] and wire["pipelined_same"])
    lines = [
        "## Writeback",
        "",
        f"`python -m bench.bench_writeback` (`--changes {args.changes} --batch-size "
        f"{args.batch_size} --trials {args.trials}`) — the local PostgreSQL the tests start "
        "(`tools.localpipe.servers`: loopback, `fsync=off`), psycopg 3.3.9, 2 shared cores, load "
        f"average {load:.1f} at the end. {n:,} stream records in Lambda's JSON form: inserts "
        f"and updates of {n // 4:,} keys, 10% exact redeliveries, ~5% neighbouring records "
        f"swapped (out-of-order versions), ~2% deletes, in {nb} batches. Three writers, each "
        "into its own fresh database over its own connection, run **batch by batch in "
        "turns** in one run and must end with identical tables (they do):",
        "",
        "- **set-based handler**: `handlers.writeback.process` (plan per key, one "
        "`json_populate_recordset` statement per table that also answers with the changes "
        "the legacy row refused — each item's truthful status — the batch in one psycopg "
        "pipeline);",
        "- **pipelined** (the strongest simple alternative): the same parsing and the same "
        "collapse, then one guarded single-row `INSERT … ON CONFLICT … DO UPDATE … WHERE "
        "version <` (or guarded `DELETE`) per change, the whole batch in ONE psycopg pipeline "
        "(one round trip, one implicit transaction, psycopg's automatic prepared statements). "
        "It learns nothing per change (it would need a `RETURNING` and a read of the refused "
        "rows per statement to set a truthful status), so the comparison favours it;",
        "- **per change**: the same single-row statements, nothing collapsed, one round trip "
        "each.",
        "",
        "CPU is this process while the writer runs plus the writer's PostgreSQL backend "
        "(`/proc/<pid>/schedstat`). Median trial (by the ratio over the pipelined writer):",
        "",
        "| writer | changes/s | seconds | CPU µs/change: client + server = total |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, (label, _make) in {**WRITERS, **PARSERS}.items():
        w = median[name]
        lines.append(f"| {label} | {n / w.wall:,.0f} | {w.wall:.2f} | "
                     f"{w.client_cpu / n * 1e6:.1f} + {w.server_cpu_ns / n / 1e3:.1f} = "
                     f"{w.cpu / n * 1e6:.1f} |")
    lines += [
        "",
        "Speed-up of the set-based handler, per trial:",
        "",
        "| over | wall, per trial | wall median | CPU median |",
        "| --- | --- | ---: | ---: |",
        f"| pipelined per-row upserts (target >= 3x) | "
        f"{', '.join(f'{x:.1f}' for x in ratios['pipelined'])} | **{med['pipelined']:.1f}x** "
        f"| {cpu_med['pipelined']:.1f}x |",
        f"| one round trip per change | "
        f"{', '.join(f'{x:.1f}' for x in ratios['per_change'])} | **{med['per_change']:.1f}x** "
        f"| {cpu_med['per_change']:.1f}x |",
        "",
        f"- **Target ≥ 3x over the pipelined writer: {verdict}** (median "
        f"{med['pipelined']:.1f}x wall, {cpu_med['pipelined']:.1f}x CPU). The "
        f"pipelined writer itself is {pipelining:.1f}x faster than one round trip per change "
        "here (median of the trials' ratios).",
        f"- **Without the parsing**: both writers first parse every record, which a faster "
        "database path cannot shorten. Taking each writer's own parsing off (the two "
        "*parsing alone* rows, run in the same turns), the database work per change is "
        f"{db_cpu['set']:.1f} µs CPU set-based vs {db_cpu['pipelined']:.1f} µs pipelined: "
        f"**{db_cpu['pipelined'] / db_cpu['set']:.1f}x** (wall "
        f"{db_wall['pipelined'] / db_wall['set']:.1f}x), median trial.",
        f"- **Where the set-based writer's time goes** (median trial, CPU µs per change): "
        f"parsing {parse_us['set']:.1f} (the alternatives parse too: {parse_us['rows']:.1f}), "
        f"the rest of the client (its client CPU minus the parsing-alone row: plan, "
        f"statements, orjson, psycopg) "
        f"{median['set'].client_cpu / n * 1e6 - parse_us['set']:.1f}, its PostgreSQL backend "
        f"{server_us['set']:.1f} against the pipelined writer's {server_us['pipelined']:.1f} "
        f"({server_us['pipelined'] / server_us['set']:.1f}x). Each row's guarded upsert is "
        "most of the server's work in both designs, so the set-based writer's lead is "
        "bounded: with no client work but its parsing it would be "
        f"{median['pipelined'].cpu / n * 1e6 / (parse_us['set'] + server_us['set']):.1f}x "
        "ahead in CPU. On an idle machine the pipelined writer also overlaps its client and "
        "the server (it sends while the server executes), which one statement per table "
        "cannot; under load the wall ratio moves towards the CPU ratio.",
        f"- **Round trips**, counted on the wire by a loopback proxy "
        f"(`tools.localpipe.writeback_records.WireCounter`), not by the code under test: set-based "
        f"{max(wire['set_trips'])} per batch at most ({sum(wire['set_trips']) / nb:.1f} mean), "
        f"pipelined {max(wire['pipelined_trips'])} at most; one round trip per change: "
        "one per change by construction.",
        f"- **Replay**: every batch delivered a second time right after the first (a Lambda "
        f"retry): **{wire['redelivered']} rows changed**. The whole stream re-read from its "
        f"start: {wire['reread']} rows changed — rows a later batch deleted come back when an "
        "older batch is replayed and are deleted again when the replay reaches the delete; "
        f"final table unchanged: {'yes' if wire['reread_same'] else 'NO'} (docs/writeback.md, "
        "*Version guard*).",
        "- On loopback with `fsync=off` a round trip costs tens of µs; on a network each one "
        "is ≥ 0.3 ms inside a VPC, so the per-change writer falls further behind there. The "
        "set-based and the pipelined writer both pay one round trip per batch: their ratio "
        "is the work per row (client and server), which a network does not change.",
        "",
        "**Footprint** of the PostgreSQL driver. Package: the handler's modules "
        "(`components.legacy_writeback.WRITEBACK_MODULES`), orjson and the "
        "driver with its dependencies, built for arm64 / python3.14 by "
        "`components.lambda_package`. Cold import: `import handlers.writeback, <driver>` "
        "(the handler imports its driver on the first connect), fresh interpreters, "
        f"interleaved, median of {args.import_runs}; the drivers installed for this "
        f"machine's Python {sys.version_info.major}.{sys.version_info.minor} (x86_64; the "
        "arm64 wheels do not load here), without bytecode as in the package:",
        "",
        "| driver | package zipped | unzipped | cold import wall ms | CPU ms | with bytecode: "
        "CPU ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in DRIVER_IMPORTS:
        zipped, unzipped = sizes[name]
        cold, warm = imports[f"+ {name}"], imports[f"+ {name} (with bytecode)"]
        lines.append(f"| {name} | {zipped / 1e6:.2f} MB | {unzipped / 1e6:.2f} MB | "
                     f"{cold['wall']:.0f} | {cold['cpu']:.0f} | {warm['cpu']:.0f} |")
    alone, alone_bc = imports["handler alone"], imports["handler alone (with bytecode)"]
    lines += [
        f"| (none: `handlers.writeback` alone) | | | {alone['wall']:.0f} | {alone['cpu']:.0f} "
        f"| {alone_bc['cpu']:.0f} |",
        "",
        "psycopg's binary wheel bundles libpq with OpenSSL, Kerberos and LDAP client "
        "libraries (the runtime has no libpq), hence the size; both stay far below Lambda's "
        "50 MB zipped / 250 MB unzipped. The import is paid once per container, on its first "
        "batch; the pipeline's gain is paid back on every batch.",
        "",
    ]
    return "\n".join(lines), met


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m bench.bench_writeback",
                           description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--changes", type=positive_int, default=10_000)
    parser.add_argument("--batch-size", type=positive_int, default=500)
    parser.add_argument("--trials", type=positive_int, default=5)
    parser.add_argument("--import-runs", type=positive_int, default=9)
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/README.md")
    args = parser.parse_args(argv)

    server = get_server("postgres")
    records = changes(args.changes)
    cfg = config(TABLE, LEGACY)
    print(f"{len(records)} stream records, batch size {args.batch_size}, PostgreSQL on "
          f"{server.host}:{server.port}, {args.trials} trial(s)", flush=True)
    trial(server, records[:2000], cfg, args.batch_size)  # warm-up: caches, plans, imports
    trials = []
    for i in range(args.trials):
        trials.append(trial(server, records, cfg, args.batch_size))
        t = trials[-1]
        print(f"trial {i + 1}: set {t['set'].wall:.2f}s, pipelined {t['pipelined'].wall:.2f}s,"
              f" per change {t['per_change'].wall:.2f}s", flush=True)
    wire = wire_checks(server, records, cfg, args.batch_size)
    sizes = package_sizes()
    imports = cold_imports(args.import_runs)
    text, met = report(len(records), args, trials, wire, sizes, imports, os.getloadavg()[0])
    print(text)
    if not args.no_write:
        write_section("## Writeback", text)
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
