"""Writeback benchmark: batched, version-guarded handler vs a row-at-a-time idempotent upsert.

    python -m bench.bench_writeback [--changes 10000] [--batch-size 500] [--trials 5]

Starts the local PostgreSQL the way the tests do (tests/servers.py, loopback), generates a
stream of write-path changes (10% exact redeliveries, ~5% versions delivered out of order,
~2% deletes) and, in each trial, writes it back side by side, each writer into its own fresh
database:

* batched: `handlers.writeback.process` per Lambda-sized batch (collapse per key, one
  statement per table, the batch sent as one pipeline = one network round trip);
* baseline: the same records in the same order, parsed the same way, then one plain guarded
  single-row `INSERT .. ON CONFLICT .. DO UPDATE .. WHERE version <` (or guarded `DELETE`)
  per change, sent alone in autocommit over the same one-round-trip protocol path — what a
  careful row-at-a-time idempotent writer does, at its best;
* DB-API baseline: the same single-row statements through pg8000's own `cursor.execute` (the
  driver the Lambda bundles, used the ordinary way): three round trips per statement.

The three writers run batch by batch in turns, so load on the machine hits them alike. Each
writer's wall time and CPU time (this process while it runs + its server backend, from
/proc/<pid>/schedstat) are summed; the CPU ratio does not depend on other load on the machine.

Round trips are counted on the connection's socket (tests/writeback_support.WireCounter),
not by the executor. All writers must end with identical tables. Then two replays on the
batched database: every batch delivered a second time right after the first (what a Lambda
retry does: must change 0 rows), and the whole stream read again from its start.

The status UpdateItems to DynamoDB are not part of this benchmark (no status client): they
go to DynamoDB, not to the legacy database.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

from handlers.writeback import Config, DbApiExecutor, classify, process
from handlers.writeback_sql import TableSpec, no_delay, pg_pipeline, quote, quote_table
from tests.servers import DbServer, get_server
from tests.writeback_support import Records, WireCounter, config, item

TABLE = "dmsbus-bench-ingest-orders"
LEGACY = "sales.orders"
SCHEMA = [
    "CREATE SCHEMA sales",
    """CREATE TABLE sales.orders (
        order_id bigint PRIMARY KEY, amount numeric(12,2), note text,
        customer varchar(20), row_version bigint)""",
]


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


def fresh(server: DbServer) -> Any:
    """A new database with the legacy schema; the writer's autocommit connection."""
    db = server.fresh_database("bench_wb")
    admin = db.admin_connect()
    cur = admin.cursor()
    for statement in SCHEMA:
        cur.execute(statement)
    cur.execute(f"GRANT USAGE ON SCHEMA sales TO {db.user}")
    cur.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA sales TO {db.user}")
    admin.close()
    return db.connect(autocommit=True)


def batches(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def run_batched(records: list[dict[str, Any]], cfg: Config, conn: Any,
                batch_size: int) -> tuple[float, list[int], int]:
    """Seconds, wire round trips per batch, rows changed."""
    executor = DbApiExecutor(conn, "postgres")
    wire = WireCounter(conn)
    trips: list[int] = []
    changed = 0
    start = time.perf_counter()
    for batch in batches(records, batch_size):
        before = wire.round_trips
        result = process(batch, cfg, executor, None)
        if result.failures:
            raise SystemExit(f"batched writer reported failures: {result.poison}")
        trips.append(wire.round_trips - before)
        changed += result.rows_changed
    return time.perf_counter() - start, trips, changed


def single_row_sql(spec: TableSpec) -> tuple[str, str]:
    """The baseline's two statements, as a careful hand-written writer has them: a plain
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


def row_at_a_time(batch: list[dict[str, Any]], cfg: Config, conn: Any) -> int:
    """The baseline handler: parse each record as the batched one does, then one guarded
    single-row upsert or delete per change, sent alone in autocommit — one round trip per
    change (the same one-round-trip protocol path as the batched writer), nothing collapsed.
    Returns the statements sent."""
    spec = next(iter(cfg.tables.values()))
    upsert, delete = single_row_sql(spec)
    sent = 0
    for index, record in enumerate(batch):
        change = classify(index, record, cfg).change
        if change is None:
            continue
        if change.op == "upsert":
            pg_pipeline(conn, [(upsert, change.row)])
        else:
            pg_pipeline(conn, [(delete, [*change.key, change.version])])
        sent += 1
    return sent


def backend_pid(conn: Any) -> int:
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    return int(cur.fetchone()[0])


def cpu_ns(pid: int) -> int:
    """Time a process has spent on a CPU (Linux schedstat, nanoseconds)."""
    with open(f"/proc/{pid}/schedstat") as fh:
        return int(fh.read().split()[0])


class Writer:
    """One writer's connection, its wire counter and its accumulated wall and CPU time
    (client: this process while the writer runs; server: its backend process)."""

    def __init__(self, conn: Any, write: Callable[[list[dict[str, Any]]], object]) -> None:
        self.conn = conn
        self.write = write
        self.backend = backend_pid(conn)
        self.wire = WireCounter(conn)
        self.wall = 0.0
        self.client_cpu = 0.0
        self.server_cpu_ns = 0
        self.trips: list[int] = []

    def run(self, batch: list[dict[str, Any]]) -> None:
        trips, server = self.wire.round_trips, cpu_ns(self.backend)
        cpu, wall = time.process_time(), time.perf_counter()
        self.write(batch)
        self.wall += time.perf_counter() - wall
        self.client_cpu += time.process_time() - cpu
        self.server_cpu_ns += cpu_ns(self.backend) - server
        self.trips.append(self.wire.round_trips - trips)

    @property
    def cpu(self) -> float:
        return self.client_cpu + self.server_cpu_ns / 1e9


def trial(server: DbServer, records: list[dict[str, Any]], cfg: Config,
          batch_size: int) -> dict[str, Writer]:
    """The three writers, batch by batch in turns (so load on the machine hits them alike),
    each into its own fresh database; their final tables must be identical."""
    spec = next(iter(cfg.tables.values()))
    upsert, delete = single_row_sql(spec)
    dbapi_sql = [re.sub(r"\$\d+", "%s", sql) for sql in (upsert, delete)]

    batched_conn = fresh(server)
    executor = DbApiExecutor(batched_conn, "postgres")  # sets TCP_NODELAY

    def batched(batch: list[dict[str, Any]]) -> None:
        result = process(batch, cfg, executor, None)
        if result.failures:
            raise SystemExit(f"batched writer reported failures: {result.poison}")

    baseline_conn = fresh(server)
    no_delay(baseline_conn)
    dbapi_conn = fresh(server)
    no_delay(dbapi_conn)
    cursor = dbapi_conn.cursor()

    def dbapi(batch: list[dict[str, Any]]) -> None:
        for index, record in enumerate(batch):
            change = classify(index, record, cfg).change
            if change is None:
                continue
            if change.op == "upsert":
                cursor.execute(dbapi_sql[0], change.row)
            else:
                cursor.execute(dbapi_sql[1], [*change.key, change.version])

    writers = {
        "batched": Writer(batched_conn, batched),
        "baseline": Writer(baseline_conn, lambda b: row_at_a_time(b, cfg, baseline_conn)),
        "dbapi": Writer(dbapi_conn, dbapi),
    }
    for batch in batches(records, batch_size):
        for writer in writers.values():
            writer.run(batch)
    tables = {name: table_rows(w.conn) for name, w in writers.items()}
    if tables["batched"] != tables["baseline"] or tables["batched"] != tables["dbapi"]:
        raise SystemExit("the writers' final tables differ")
    return writers


def table_rows(conn: Any) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.execute("SELECT * FROM sales.orders ORDER BY order_id")
    return [tuple(r) for r in cur.fetchall()]


def replays(server: DbServer, records: list[dict[str, Any]], cfg: Config, batch_size: int,
            batched_conn: Any) -> tuple[int, int, int]:
    """(rows changed by delivering every batch a second time right after the first,
    rows changed by re-reading the whole stream, max wire round trips of that re-read)."""
    conn = fresh(server)
    executor = DbApiExecutor(conn, "postgres")
    redelivered = 0
    for batch in batches(records, batch_size):
        process(batch, cfg, executor, None)
        redelivered += process(batch, cfg, executor, None).rows_changed
    _, trips, reread = run_batched(records, cfg, batched_conn, batch_size)
    if table_rows(conn) != table_rows(batched_conn):
        raise SystemExit("replays changed the final table")
    return redelivered, reread, max(trips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()

    server = get_server("postgres")
    records = changes(args.changes)
    cfg = config(TABLE, LEGACY)
    redeliveries = len(records) - len({id(r) for r in records})
    n = len(records)
    print(f"{n} stream records ({redeliveries} redeliveries), batch size {args.batch_size}, "
          f"PostgreSQL on {server.host}:{server.port}, {args.trials} trial(s)")

    warm = fresh(server)  # warm-up: server caches, plans, first connections
    run_batched(records[:2000], cfg, warm, args.batch_size)
    row_at_a_time(records[:500], cfg, fresh(server))

    trials = [trial(server, records, cfg, args.batch_size) for _ in range(args.trials)]
    ratios = {name: [t[name].wall / t["batched"].wall for t in trials]
              for name in ("baseline", "dbapi")}
    cpu_ratios = {name: [t[name].cpu / t["batched"].cpu for t in trials]
                  for name in ("baseline", "dbapi")}
    order = sorted(range(len(trials)), key=ratios["baseline"].__getitem__)
    median = trials[order[len(order) // 2]]  # the median trial (speed-up vs the baseline)
    nb = len(median["batched"].trips)
    labels = {
        "batched": "batched handler (`process`, one pipeline per batch)",
        "baseline": "row-at-a-time guarded upsert, one round trip per change",
        "dbapi": "row-at-a-time guarded upsert via pg8000 `cursor.execute`",
    }
    print()
    print(f"median trial (by speed-up over the baseline), load average {os.getloadavg()[0]:.1f}"
          f" on {os.cpu_count()} CPUs:")
    print()
    print("| writer | changes/s | seconds | CPU µs/change: client + server = total "
          "| round trips/batch (mean) | max |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, label in labels.items():
        w = median[name]
        print(f"| {label} | {n / w.wall:,.0f} | {w.wall:.2f} | {w.client_cpu / n * 1e6:.1f} + "
              f"{w.server_cpu_ns / n / 1e3:.1f} = {w.cpu / n * 1e6:.1f} "
              f"| {sum(w.trips) / nb:.1f} | {max(w.trips)} |")
    print()
    for name, what in (("baseline", "one-round-trip row-at-a-time baseline"),
                       ("dbapi", "pg8000 DB-API row-at-a-time baseline")):
        print(f"speed-up over the {what}: wall "
              + ", ".join(f"{x:.1f}x" for x in ratios[name])
              + f" (median {statistics.median(ratios[name]):.1f}x); CPU "
              + ", ".join(f"{x:.1f}x" for x in cpu_ratios[name])
              + f" (median {statistics.median(cpu_ratios[name]):.1f}x); target >= 10x")
    batched_conn = median["batched"].conn
    redelivered, reread, reread_trips = replays(server, records, cfg, args.batch_size,
                                                batched_conn)
    print(f"every batch delivered twice in a row (a Lambda retry): {redelivered} rows changed "
          "by the second deliveries")
    print(f"whole stream re-read from its start: {reread} rows changed (rows deleted later "
          f"in the stream come back and are deleted again), max {reread_trips} round "
          "trip(s)/batch, final table unchanged")
    print("final tables identical across the three writers: True")
    _require(redelivered == 0, "a redelivered batch changed rows")
    _require(all(max(t["batched"].trips) <= 1 for t in trials),
             "a batch took more than one round trip")


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(what)


if __name__ == "__main__":
    main()
