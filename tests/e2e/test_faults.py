"""The fault matrix: the whole local pipeline keeps "nothing lost, nothing echoed" under faults.

Every test ends with the same invariant (`settle`): the pipeline goes quiet within a bounded
number of rounds, the source, the DynamoDB tables and the consumer replica hold the same rows
(reconcile: zero differences), and no change was written back more than once. See docs/e2e.md
for the table of cases.

Source engines. A case marked `@both` runs on PostgreSQL (logical slot, `cdc.py`) and on
MariaDB (binlog, `binlog_cdc.py`): every case where the source matters -- its CDC (crashes
before the checkpoint and during the full load, schema drift, a table added mid-run,
delete-then-reinsert), or the writeback into it (echo, out-of-order versions, the racing
legacy write, the restart mid-writeback) and the invariant's own detectors. The test bodies
are written once; what differs per engine (DDL, restart, lock waits, CDC checkpoint) is in
`tools/localpipe/engines.py` and `Pipeline`. The other cases run on PostgreSQL only:

* 1-4, 6 (bus faults: PutRecords failures, a killed or timed-out fan-in, a poison record,
  the bus replayed) start at the waypoint table's stream: the source is not involved, so a
  second engine would add run time and no coverage.
* 5 (a change larger than a bus record) is the fan-in's overflow path; the same.
* 5b (an UPDATE leaving a TOASTed value unchanged) is PostgreSQL's TOAST and replica
  identity; MariaDB's binlog under `binlog_row_image=FULL` always carries the whole row,
  so there is no such case to run there.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.servers import DbServer, mariadb, postgres  # noqa: F401 - fixtures, by engine name
from tools.localpipe.aws import MotoWorld
from tools.localpipe.cdc import SimulatedCrash
from tools.localpipe.harness import Injection, Pipeline, Source
from tools.localpipe.servers import ServerStartError, restartable_server

ORDERS = Source("orders", "orders", (("id", "N"),))  # in the engine's default schema
BIG = "12345678901234567890123456789012345678"  # 38 digits
ENGINES = ("postgres", "mariadb")

#: the case runs on every source engine (`engine` is the server fixture's name)
both = pytest.mark.parametrize("engine", ENGINES)


@pytest.fixture
def engine() -> str:
    """The source engine of a case not marked `@both`."""
    return "postgres"


def orders_table(p: Pipeline) -> None:
    p.create_table(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(38,0), "
        "price numeric(12,2), note text, version bigint)", "orders"
    )


def insert_rows(p: Pipeline, table: str, rows: list[tuple[Any, ...]]) -> None:
    """One multi-row INSERT (the same SQL on every engine)."""
    values = ", ".join("(" + ", ".join(["%s"] * len(rows[0])) + ")" for _ in rows)
    p.sql(f"INSERT INTO {table} VALUES {values}", tuple(v for r in rows for v in r))


def insert(p: Pipeline, first: int, count: int, note: str = "n") -> None:
    insert_rows(p, "orders", [
        (g, f"customer {g} ünï ✓", Decimal(BIG), g * Decimal("1.25"), note, 1)
        for g in range(first, first + count)])


def settle(p: Pipeline, max_rounds: int = 40) -> int:
    """The invariant every fault test ends with."""
    rounds = p.run_until_quiet(max_rounds)
    # every record read from the bus (and every overflow envelope) met the bus contract
    assert p.consumer.validated == p.consumer.records_read + p.consumer.overflow_fetched > 0
    assert p.reconcile() == []
    assert p.written_back_twice() == []
    assert p.echoes() == []
    return rounds


@pytest.fixture
def make(engine: str, request: pytest.FixtureRequest, moto_world: MotoWorld) -> Iterator[Any]:
    made: list[Pipeline] = []

    def factory(server: DbServer | None = None, **kwargs: Any) -> Pipeline:
        db = (server or request.getfixturevalue(engine)).fresh_database("e2e")
        p = Pipeline(db, [ORDERS], **kwargs)
        orders_table(p)
        made.append(p)
        return p

    yield factory
    for p in made:
        p.close()


@pytest.fixture
def restartable(engine: str) -> Iterator[Any]:
    """A private server of the case's engine that the test may crash and restart."""
    try:
        handle = restartable_server(engine)
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield handle
    finally:
        handle.stop()


def row(p: Pipeline, table: str, **keys: Any) -> dict[str, Any]:
    """The replica's live row of `table` with these keys (numbers as in the envelope)."""
    from tools.localpipe.consumer import row_key

    exact = {k: Decimal(v) if isinstance(v, int) else v for k, v in keys.items()}
    return p.consumer.replica.live(table)[row_key(exact)]


def bus_events(p: Pipeline, table: str = "orders") -> list[dict[str, Any]]:
    return [e for e in p.consumer.replica.received if e["table"] == table]


# ----------------------------------------------------------------------------- bus faults


def test_1_partial_putrecords_failures_including_earlier_change_of_a_row(make: Any) -> None:
    # GIVEN 60 rows loaded, then row 7 changed twice in one transaction window
    p = make(batch_size=50)
    insert(p, 1, 60)
    p.start()
    p.sql("UPDATE orders SET note = 'first' WHERE id = 7")
    p.sql("UPDATE orders SET note = 'second', version = 2 WHERE id = 7")

    # WHEN the first PutRecords calls fail some entries (throttling, internal errors),
    # including the EARLIER change of row 7 while its later change succeeds
    def plan(call: int, entries: list[dict[str, Any]]) -> Injection | None:
        if call > 4:
            return None
        failing: dict[int, str] = {}
        notes7 = {}
        for i, entry in enumerate(entries):
            data = json.loads(entry["Data"])
            if data["keys"] == {"id": 7} and data["new"]:
                notes7[data["new"]["note"]] = i
            if data["keys"] == {"id": 7} and data["new"] and data["new"]["note"] == "first":
                failing[i] = "ProvisionedThroughputExceededException"
            elif i % 7 == 3 and not (data["keys"] == {"id": 7} and data["new"]):
                failing[i] = "InternalFailure" if call % 2 else \
                    "ProvisionedThroughputExceededException"
        if "first" in notes7 and notes7.get("second", -1) > notes7["first"]:
            earlier_failed_later_put.append(call)
        return Injection(entries=failing)

    earlier_failed_later_put: list[int] = []
    p.kinesis.plan = plan

    # THEN everything arrives once in the replica's state; row 7 ends with its later change,
    # and on the bus itself row 7's later change is the last of its records (it was resent
    # after the earlier one landed)
    settle(p)
    assert earlier_failed_later_put, "the injection never hit row 7's earlier change"
    assert p.kinesis.failed_entries > 0
    assert row(p, "orders", id=7)["note"] == "second"
    on_bus = [e["new"]["note"] for e in bus_records(p) if e["keys"] == {"id": 7}]
    assert on_bus[-1] == "second" and "first" in on_bus
    assert p.dlq_messages() == []


def bus_records(p: Pipeline) -> list[dict[str, Any]]:
    """Every envelope on the bus, shard by shard in sequence order (read independently of
    the harness's consumer)."""
    from tools.localpipe.consumer import loads

    out: list[dict[str, Any]] = []
    for shard in p.kinesis_real.list_shards(StreamName=p.stream_name)["Shards"]:
        it = p.kinesis_real.get_shard_iterator(
            StreamName=p.stream_name, ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = p.kinesis_real.get_records(ShardIterator=it, Limit=10000)
            out.extend(loads(r["Data"]) for r in page["Records"])
            it = page.get("NextShardIterator") if page["Records"] else None
    return out


def test_2_whole_putrecords_call_failing(make: Any) -> None:
    # GIVEN rows flowing
    p = make()
    insert(p, 1, 30)
    p.start()
    p.sql("DELETE FROM orders WHERE id IN (3, 4)")

    # WHEN the first six PutRecords calls fail as a whole
    p.kinesis.plan = lambda call, _e: Injection(
        whole="ProvisionedThroughputExceededException" if call % 2 else "InternalFailure"
    ) if call <= 6 else None

    # THEN retries deliver everything, nothing is skipped, nothing ends in the DLQ
    settle(p)
    assert p.kinesis.calls > 6
    assert p.dlq_messages() == []


def test_3_fanin_killed_after_k_of_n_puts(make: Any) -> None:
    # GIVEN a batch of 80 changes
    p = make(batch_size=100)
    insert(p, 1, 80)
    p.start()

    # WHEN the fan-in is killed (timeout) after 30 of the first call's entries were put
    p.kinesis.plan = lambda call, _e: Injection(stop_after=30) if call == 1 else None

    # THEN the retry puts duplicates (same ids) and the consumer's state is still exact
    settle(p)
    assert p.consumer.replica.duplicates >= 30
    assert len({e["id"] for e in bus_events(p)}) == 80


def test_3b_fanin_runs_out_of_time_after_k_of_n_puts(make: Any) -> None:
    # GIVEN a batch of 1000 changes: two PutRecords calls of 500
    p = make(batch_size=1000)
    insert(p, 1, 1000)
    p.start()

    # WHEN the first call succeeds and the next ones are throttled and take 30 s each, in a
    # function with a 60 s timeout (2 s kept back for the response)
    def plan(call: int, _entries: list[dict[str, Any]]) -> Injection | None:
        if call in (2, 3):
            p.time_skew += 30
            return Injection(whole="ProvisionedThroughputExceededException")
        return None

    p.kinesis.plan = plan

    # THEN the fan-in stops on its own before Lambda would kill it, reports the first record
    # not on the bus (the 501st), Lambda checkpoints the 500 before it and retries from there
    settle(p)
    first = p.fanin_mappings["orders"].invocations[0]
    assert (first.outcome, len(first.sequence_numbers)) == ("partial", 1000)
    assert first.sequence_numbers[500] in first.detail
    assert len(p.fanin_mappings["orders"].invocations[1].sequence_numbers) == 500
    assert p.consumer.replica.duplicates == 0  # nothing was put twice
    assert p.dlq_messages() == []


def test_4_poison_record_dlq_then_redrive(make: Any, capsys: Any) -> None:
    # GIVEN 100 rows, one of which reaches the fan-in in a form it cannot convert
    p = make(batch_size=100, maximum_retry_attempts=2)
    insert(p, 1, 100)
    p.start()
    poison_id = "57"

    def corrupt(record: dict[str, Any]) -> dict[str, Any]:
        if record["dynamodb"]["Keys"]["id"]["N"] == poison_id:
            bad = json.loads(json.dumps(record))
            bad["dynamodb"]["NewImage"]["amount"] = {"N": "not-a-number"}
            return bad
        return record

    p.record_hook = corrupt

    # WHEN the pipeline runs
    rounds = p.run_until_quiet(40)

    # THEN the shard moved on (quiet, bounded), the other 99 are delivered and the poison
    # record is alone in the DLQ, with its reason in the fan-in's log: the fan-in reports it
    # when it follows good records (Lambda checkpoints before it) and fails the invocation
    # when it comes first (a function error, which Lambda bisects until it is alone)
    assert rounds < 40
    assert len(p.consumer.replica.live("orders")) == 99
    (message,) = p.dlq_messages()
    body = json.loads(message["Body"])
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    info = body["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert "not-a-number" in capsys.readouterr().out  # the reason, in the fan-in's log
    p.sql("UPDATE orders SET note = 'after the poison' WHERE id = 100")
    p.run_until_quiet(10)
    assert row(p, "orders", id=100)["note"] == "after the poison"  # the shard is not blocked

    # WHEN the fix is deployed (the record converts again) and the DLQ is redriven
    p.record_hook = None
    report = redrive(p)

    # THEN the poison record is delivered and the DLQ is empty
    assert report.count("redriven") == 1, report.summary()
    settle(p)
    assert row(p, "orders", id=100)["note"] == "after the poison"
    assert p.dlq_messages() == []


def redrive(p: Pipeline) -> Any:
    from tools import redrive as tool

    publish = tool.bus_publisher(p.kinesis, p.s3, p.stream_name, p.bucket, 1_000_000)
    return tool.redrive(sqs=p.sqs, streams=p.streams, publish=publish,
                        queue_url=p.fanin_dlq, tables=p.fanin_tables(), wait_seconds=0)


def test_5_change_too_large_for_one_bus_record(make: Any) -> None:
    # GIVEN a bus record limit of 4 KB
    p = make(max_record_bytes=4096)
    insert(p, 1, 5)
    p.start()

    # WHEN a row gets a 20 KB note
    p.sql("UPDATE orders SET note = repeat('ü', 10000) WHERE id = 2")

    # THEN the change went through the overflow bucket and the replica has the full row
    settle(p)
    assert p.consumer.overflow_fetched >= 1
    assert len(row(p, "orders", id=2)["note"]) == 10000
    assert p.s3.list_objects_v2(Bucket=p.bucket).get("KeyCount", 0) >= 1


LARGE = 400 * 32  # the note's length: md5 digests, hardly compressible, stored out of line


@pytest.mark.parametrize("identity", ["DEFAULT", "FULL"])
def test_5b_large_value_left_unchanged_by_an_update(make: Any, identity: str) -> None:
    # GIVEN a table under this replica identity and a row whose note is stored out of line
    # (TOAST); DEFAULT logs only the key as the old image, FULL the whole old row
    p = make(max_record_bytes=4096)
    p.sql(f"ALTER TABLE orders REPLICA IDENTITY {identity}")
    insert(p, 1, 3)
    p.sql("UPDATE orders SET note = (SELECT string_agg(md5(g::text), '') "
          "FROM generate_series(1, 400) g) WHERE id = 1")
    p.start()
    settle(p)
    assert len(row(p, "orders", id=1)["note"]) == LARGE

    # WHEN another column of that row changes: the new tuple in the slot carries
    # 'unchanged-toast-datum' for the note instead of its value
    p.sql("UPDATE orders SET price = 1.50, version = 2 WHERE id = 1")
    p.run_until_quiet(40)
    assert p.cdc.unchanged_toast_values == 1
    item = p.ddb.get_item(TableName=p.physical("orders"), Key={"id": {"N": "1"}},
                          ConsistentRead=True)["Item"]
    update = [e for e in bus_events(p) if e["keys"] == {"id": 1}][-1]
    replica_row = row(p, "orders", id=1)
    assert (item["price"], update["op"], str(replica_row["price"])) == ({"N": "1.5"},
                                                                       "update", "1.5")

    if identity == "FULL":
        # THEN the old image carried the value: it survives in DynamoDB, in the bus's new
        # image (through the overflow bucket) and in the consumer's replica
        assert p.cdc.unchanged_toast_from_old_image == 1
        assert len(item["note"]["S"]) == LARGE
        assert len(update["new"]["note"]) == LARGE
        assert len(replica_row["note"]) == LARGE
        settle(p)
        return

    # THEN (the pessimistic model: DMS writes what the stream carries) the note is absent
    # from the DynamoDB item, from the bus's new image and from the replica ...
    assert p.cdc.unchanged_toast_from_old_image == 0
    assert "note" not in item
    assert "note" not in update["new"] and len(update["old"]["note"]) == LARGE
    assert "note" not in replica_row
    # ... and the invariant check catches it: both comparisons report row 1's note, and the
    # project's reconcile tool names the cause and the fix
    diffs = p.reconcile()
    assert any(d.startswith("orders ") and "dynamodb" in d for d in diffs)
    assert any(d.startswith("orders ") and "replica" in d for d in diffs)
    for where in ("dynamodb", "replica"):
        tool = [d for d in diffs if d.startswith(f"tools.reconcile ({where})")]
        assert any('different {"id": "1"} columns: note' in d for d in tool), tool
        assert any(
            "cause     public.orders column note (absent from 1 item(s)): replica identity "
            "DEFAULT: unchanged TOASTed values are not in the replication stream; run "
            "ALTER TABLE public.orders REPLICA IDENTITY FULL;" in d for d in tool), tool
    with pytest.raises(AssertionError):
        settle(p)


def test_6_replay_whole_bus_from_trim_horizon(make: Any) -> None:
    # GIVEN a settled pipeline with inserts, updates and deletes
    p = make()
    insert(p, 1, 40)
    p.start()
    p.sql("UPDATE orders SET note = 'u', version = 2 WHERE id % 3 = 0")
    p.sql("DELETE FROM orders WHERE id % 5 = 0")
    settle(p)
    before = {k: dict(v) for k, v in p.consumer.replica.live("orders").items()}

    # WHEN the consumer re-reads the whole bus from TRIM_HORIZON (same replica)
    from tools.localpipe.consumer import BusConsumer

    again = BusConsumer(p.kinesis_real, p.stream_name, p.s3, p.consumer.replica)
    replayed = again.step()

    # THEN its state is unchanged: every replayed record was a duplicate
    assert replayed == len(bus_events(p)) // 2
    assert p.consumer.replica.live("orders") == before
    settle(p)
    # and a new consumer replaying the whole bus into an empty replica ends at the same state
    fresh = BusConsumer(p.kinesis_real, p.stream_name, p.s3)
    fresh.step()
    assert fresh.replica.live("orders") == before


# ---------------------------------------------------------------------------- write path


def writeback_orders(p: Pipeline) -> str:
    return p.add_writeback(
        "orders", "orders",
        columns={"customer": "customer", "amount": "amount", "price": "price", "note": "note"},
        key_columns={"id": "id"}, key_types={"id": "N"},
    )


def app_item(i: int, version: int, note: str) -> dict[str, Any]:
    return {"id": {"N": str(i)}, "customer": {"S": f"app {i}"}, "amount": {"N": BIG},
            "price": {"N": "9.99"}, "note": {"S": note}, "version": {"N": str(version)}}


@both
def test_7_out_of_order_versions_reaching_writeback(make: Any) -> None:
    # GIVEN the write path: an app table written back to PostgreSQL
    p = make()
    p.start()
    writeback_orders(p)
    for version in (1, 2, 3):
        p.app_put("orders", app_item(500, version, f"v{version}"))

    # WHEN the writeback gets the versions newest first (v3, v2, v1), then in order again
    from dms_event_bus.handlers import writeback

    mapping = p.writeback_mappings["orders"]
    mapping.pending()
    records = [r for b in mapping._buffers.values() for r in b]
    from tools.localpipe.lambda_events import to_lambda_record

    event = {"Records": [to_lambda_record(r, mapping.stream_arn) for r in reversed(records)]}
    assert writeback.handler(event, None) == {"batchItemFailures": []}

    # THEN only v3 was written, once; the later in-order delivery changes nothing
    settle(p)
    assert p.sql("SELECT note, version FROM orders WHERE id = 500") == [("v3", 3)]
    assert [w[1:] for w in p.writeback_writes()] == [("INSERT", "500", 3)]


@both
def test_8_writeback_echo_one_bus_event_no_second_writeback(make: Any) -> None:
    # GIVEN the write path and a settled pipeline
    p = make()
    insert(p, 1, 3)
    p.start()
    writeback_orders(p)
    settle(p)

    # WHEN a new service writes row 900 (v1) and later row 2 (v5)
    p.app_put("orders", app_item(900, 1, "from the app"))
    p.app_put("orders", app_item(2, 5, "app update"))
    settle(p)

    # THEN each reached PostgreSQL once, came back through the CDC stand-in as exactly one
    # bus event each, and nothing was written back again (the status update is ignored)
    assert sorted(w[1:3] for w in p.writeback_writes()) == [("INSERT", "900"),
                                                           ("UPDATE", "2")]
    row900 = [e for e in bus_events(p) if e["keys"] == {"id": 900}]
    assert [e["op"] for e in row900] == ["insert"]
    row2 = [e for e in bus_events(p) if e["keys"] == {"id": 2}]
    assert [e["op"] for e in row2] == ["insert", "update"]
    status = p.ddb.get_item(TableName=f"{p.prefix}app-orders-{p.token}",
                            Key={"id": {"N": "900"}})["Item"]["status"]["S"]
    assert status == "applied"


@both
def test_9_legacy_write_racing_a_writeback(make: Any, capsys: Any) -> None:
    # GIVEN row 1 at version 1 and the write path
    p = make()
    insert(p, 1, 2)
    p.start()
    writeback_orders(p)
    settle(p)

    # WHEN the legacy application updates row 1 to version 2 while holding the row lock and
    # the writeback of the app's version 2 of the same row runs against it
    legacy = p.db.connect()
    cur = legacy.cursor()
    cur.execute("UPDATE orders SET note = 'legacy wins', version = 2 WHERE id = 1")
    p.app_put("orders", app_item(1, 2, "app loses"))
    mapping = p.writeback_mappings["orders"]
    worker = threading.Thread(target=mapping.step)
    worker.start()
    try:
        p.wait_for_writeback_lock_wait()
    finally:
        legacy.commit()
        worker.join(30)
        legacy.close()
    assert not worker.is_alive()

    # THEN the outcome is deterministic: the committed legacy version 2 stays (no lost
    # update), the writeback changed no row, and says so: the app's version 2 is a conflict
    # (same version, other content), not applied
    assert p.sql("SELECT note, version FROM orders WHERE id = 1") == [("legacy wins", 2)]
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines()
            if line.startswith("{") and "batch written back" in line]
    assert logs and logs[-1]["rows_changed"] == 0
    assert logs[-1]["applied"] == 0 and logs[-1]["conflicts"] == 1
    settle(p)
    assert p.writeback_writes() == []

    # and a newer app version afterwards applies on top
    p.app_put("orders", app_item(1, 3, "app v3"))
    settle(p)
    assert p.sql("SELECT note, version FROM orders WHERE id = 1") == [("app v3", 3)]


@both
def test_10_source_restarted_in_the_middle_of_a_writeback_batch(make: Any,
                                                               restartable: Any) -> None:
    # GIVEN the write path on a server of its own, and a batch of 31 app writes (30 new
    # rows, then a newer version of row 5) waiting in the app table's stream
    pg = restartable
    p = make(server=pg.server)
    insert(p, 1, 20)
    p.start()
    writeback_orders(p)
    settle(p)
    for i in range(1000, 1030):
        p.app_put("orders", app_item(i, 1, f"new {i}"))
    p.app_put("orders", app_item(5, 2, "app v2"))

    # WHEN the writeback's statement is in flight (its 30 inserts done, uncommitted, waiting
    # on row 5, which a legacy session holds) and the server crashes and restarts
    legacy = pg.server.connect(dbname=p.db.dbname)
    legacy.cursor().execute("SELECT * FROM orders WHERE id = 5 FOR UPDATE")
    mapping = p.writeback_mappings["orders"]
    handler = mapping.function
    back = threading.Event()

    def function(event: dict[str, Any], context: Any) -> Any:
        try:
            return handler(event, context)
        except Exception:
            back.wait(60)  # Lambda's next attempt comes later; here: once the server is back
            raise

    mapping.function = function
    worker = threading.Thread(target=mapping.step)
    worker.start()
    try:
        p.wait_for_writeback_lock_wait()
        pg.restart(crash=True)
    finally:
        back.set()
        worker.join(60)
        legacy.close()
    assert not worker.is_alive()
    p.reconnect()

    # THEN the interrupted batch was retried (bisected), nothing went to the DLQ, every row
    # is in the source exactly once, and the pipeline settles to the same state everywhere
    assert pg.restarts == 1
    assert len(mapping.invocations[0].sequence_numbers) == 31
    assert [i.outcome for i in mapping.invocations][:1] == ["error"]
    assert "ok" in [i.outcome for i in mapping.invocations]
    assert mapping.discarded == []
    settle(p)
    assert p.sql("SELECT count(*) FROM orders WHERE id >= 1000") == [(30,)]
    assert p.sql("SELECT note, version FROM orders WHERE id = 5") == [("app v2", 2)]
    assert len(p.writeback_writes()) == 31
    assert p.dlq_messages("writeback") == []


# --------------------------------------------------------------------------- CDC faults


@both
def test_11_cdc_killed_between_dynamodb_write_and_slot_advance(make: Any) -> None:
    # GIVEN a pipeline whose CDC stand-in dies after applying its 3rd transaction, before
    # advancing the slot
    p = make()
    insert(p, 1, 10)
    p.start()

    def die(point: str, n: int) -> None:
        if point == "applied" and n == 3:
            raise SimulatedCrash("killed before the slot advanced")

    p.cdc.crash_hook = die
    for i in range(1, 6):
        p.sql("UPDATE orders SET note = %s, version = version + 1 WHERE id = %s",
              (f"change {i}", i))
    with pytest.raises(SimulatedCrash):
        p.cdc.step()

    # WHEN a new stand-in process starts from its checkpoint (the slot / binlog position)
    p.restart_cdc()

    # THEN the 3rd transaction is replayed, nothing is lost
    settle(p)
    assert p.cdc.applied_transactions == 3  # transactions 3, 4 and 5


@both
def test_11a_cdc_killed_with_several_transactions_since_its_checkpoint(make: Any) -> None:
    # GIVEN a stand-in that checkpoints every 4 transactions (as DMS checkpoints
    # periodically) and dies after applying the 7th; each transaction changes row 1
    p = make()
    insert(p, 1, 3)
    p.start()
    settle(p)

    def die(point: str, n: int) -> None:
        if point == "applied" and n == 7:
            raise SimulatedCrash("killed 3 transactions after the last checkpoint")

    p.restart_cdc(crash_hook=die, checkpoint_every=4)
    for i in range(1, 9):
        p.sql("UPDATE orders SET note = %s, version = %s WHERE id = 1", (f"change {i}", i + 1))
    with pytest.raises(SimulatedCrash):
        p.cdc.step()

    # WHEN a new stand-in process starts from the checkpoint
    p.restart_cdc()

    # THEN transactions 5-7 are replayed over their own later state (DynamoDB, and the bus,
    # see row 1 go back to 'change 5' and forward again: at least once, in order) and every
    # copy ends at the source's state
    settle(p)
    assert p.cdc.applied_transactions == 4  # 5, 6, 7 again, then 8
    notes = [e["new"]["note"] for e in bus_events(p) if e["keys"] == {"id": 1}]
    assert notes == ["n", *(f"change {i}" for i in range(1, 8)),
                     "change 5", "change 6", "change 7", "change 8"]
    assert row(p, "orders", id=1)["note"] == "change 8"


@both
def test_11b_cdc_killed_during_the_initial_load(make: Any) -> None:
    # GIVEN 50 rows and a stand-in that dies after loading 20 of them
    p = make()
    insert(p, 1, 50)

    def die(point: str, n: int) -> None:
        if point == "loaded" and n == 20:
            raise SimulatedCrash("killed during the full load")

    p.cdc.crash_hook = die
    with pytest.raises(SimulatedCrash):
        p.start()
    p.sql("UPDATE orders SET note = 'during the outage' WHERE id = 40")

    # WHEN the task restarts: the full load runs again, then CDC from the checkpoint
    p.restart_cdc(full_load=True)

    # THEN every row is there once, with its latest value
    settle(p)
    assert row(p, "orders", id=40)["note"] == "during the outage"


@both
def test_12_schema_drift_column_added_and_type_widened(make: Any) -> None:
    # GIVEN a running pipeline
    p = make()
    insert(p, 1, 10)
    p.start()
    settle(p)

    # WHEN a column is added and another one's type is widened mid-run
    p.sql("ALTER TABLE orders ADD COLUMN region text")
    p.sql("UPDATE orders SET region = 'eu-west-1 ✓' WHERE id <= 5")
    p.change_column_type("orders", "price", "numeric(30,6)")
    p.sql("UPDATE orders SET price = 123456789012345678901234.123456 WHERE id = 6")

    # THEN the new attribute and the wider value flow through to the replica
    settle(p)
    assert row(p, "orders", id=3)["region"] == "eu-west-1 ✓"
    assert str(row(p, "orders", id=6)["price"]) == "123456789012345678901234.123456"
    assert "region" not in row(p, "orders", id=7)  # NULL columns are left out, as DMS does


@both
def test_13_ttl_delete_not_written_back_and_delete_then_reinsert(make: Any) -> None:
    # GIVEN the write path with app rows written back
    p = make()
    insert(p, 1, 3)
    p.start()
    writeback_orders(p)
    p.app_put("orders", app_item(700, 1, "expires"))
    settle(p)

    # WHEN the app item expires by TTL, and a source row is deleted and re-inserted
    p.app_ttl_expire("orders", {"id": {"N": "700"}})
    p.sql("DELETE FROM orders WHERE id = 2")
    p.sql("INSERT INTO orders VALUES (2, 'back again', 1, 1.00, 'reinserted', 7)")

    # THEN the legacy row 700 is kept (the TTL delete is not written back) and row 2 lives
    settle(p)
    assert p.sql("SELECT count(*) FROM orders WHERE id = 700") == [(1,)]
    assert [w[1] for w in p.writeback_writes()] == ["INSERT"]
    assert row(p, "orders", id=2)["note"] == "reinserted"
    assert [e["op"] for e in bus_events(p) if e["keys"] == {"id": 2}] == [
        "insert", "delete", "insert"]


# ------------------------------------------------------------------------------ adoption


@both
def test_14_adoption_interrupted_before_backfill_then_rerun(make: Any) -> None:
    # GIVEN a table that DMS created (wildcard mapping) with 60 rows before any stream
    p = make()
    p.start()
    p.enable_wildcard(exclude=("orders",))
    p.create_table("CREATE TABLE parcels (code varchar(20) PRIMARY KEY, weight numeric(10,3), "
                   "label text)", "parcels")
    insert_rows(p, "parcels", [(f"P{g}", g * Decimal("0.5"), f"ラベル {g}")
                               for g in range(1, 61)])
    p.run_until_quiet(20)
    assert "parcels" in p.adopted

    # WHEN adoption is killed between enabling the stream and starting the backfill
    with pytest.raises(SimulatedCrash):
        p.adopt("parcels", interrupt_before_backfill=True)
    p.sql("UPDATE parcels SET label = 'changed after the stream' WHERE code = 'P1'")
    # and re-run
    p.adopt("parcels")

    # THEN it converges and every pre-existing row was published
    settle(p)
    snapshots = {e["keys"]["code"] for e in bus_events(p, "parcels") if e["op"] == "snapshot"}
    assert snapshots == {f"P{i}" for i in range(1, 61)}
    assert len(p.consumer.replica.live("parcels")) == 60


@both
def test_15_table_added_mid_run_adopted_and_backfilled(make: Any) -> None:
    # GIVEN a running pipeline
    p = make()
    insert(p, 1, 5)
    p.start()
    p.enable_wildcard(exclude=("orders",))
    settle(p)

    # WHEN a new table appears on the source, gets rows, is created by DMS, then adopted
    # while writes continue
    p.create_table("CREATE TABLE invoices (id int PRIMARY KEY, total numeric(38,2), memo text)",
                   "invoices")
    insert_rows(p, "invoices", [(g, g * Decimal("10.5"), f"memo {g}") for g in range(1, 81)])
    p.run_until_quiet(20)
    p.adopt("invoices")
    p.sql("UPDATE invoices SET memo = 'after adoption' WHERE id <= 10")
    p.sql("DELETE FROM invoices WHERE id = 80")
    p.sql("INSERT INTO invoices VALUES (81, 1.00, 'new')")

    # THEN none of its rows is missing anywhere
    settle(p)
    assert len(p.consumer.replica.live("invoices")) == 80


# ------------------------------------------------------------------- the invariant itself


@both
def test_invariant_detects_a_lost_change_an_extra_row_and_an_echo(make: Any) -> None:
    # GIVEN a settled pipeline with the write path
    p = make()
    insert(p, 1, 5)
    p.start()
    writeback_orders(p)
    settle(p)
    assert len(p.reconcile_reports()) == 2 and all(r.ok for _, r in p.reconcile_reports())

    # WHEN a change is lost on the way to DynamoDB and the replica holds a row the source
    # does not, and a write-back happens that no service asked for
    p.ddb.put_item(TableName=p.physical("orders"),
                   Item={**p.ddb.get_item(TableName=p.physical("orders"),
                                          Key={"id": {"N": "2"}})["Item"],
                         "note": {"S": "lost change"}})
    from tools.localpipe.consumer import RowState, row_key

    p.consumer.replica.rows["orders"][row_key({"id": Decimal(99)})] = RowState(
        10**9, {"id": Decimal(99), "note": "ghost"})
    assert p.writeback_role is not None
    wb = p.db.connect(user=p.writeback_role[0], password=p.writeback_role[1], autocommit=True)
    wb.cursor().execute("UPDATE orders SET note = 'echo', version = 9 WHERE id = 3")
    wb.close()

    # THEN both comparisons see the problems (rows 2 and 3 differ, 99 is extra), and the
    # echo is reported
    diffs = p.reconcile()
    assert any("2" in d and "dynamodb" in d and not d.startswith("tools") for d in diffs)
    assert any(d.startswith("tools.reconcile (dynamodb)") and "different 2" in d for d in diffs)
    assert any("in replica, not in source" in d for d in diffs)
    assert any(d.startswith("tools.reconcile (replica)") and "extra 1" in d for d in diffs)
    assert p.echoes() == [("orders", "UPDATE", "3", 9)]
