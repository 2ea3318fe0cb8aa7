"""Property: the writeback tells the truth, on the REAL PostgreSQL and MariaDB servers.

Random histories of the write path's items (moto DynamoDB with its stream), delivered to the
Lambda entry point `handlers.writeback.handler` the way an event source mapping does (random
batch sizes, a duplicate delivery of a batch, retry from the reported record, bisection on a
function error, bounded attempts, then the DLQ), mixed with what the rest of the world does:

* API creates (POST: version 1, also re-using an Idempotency-Key whose item TTL removed),
  updates (PUT: version + 1), deletes of items (a non-TTL REMOVE), TTL expiries (REMOVE by
  `dynamodb.amazonaws.com`), a PUT whose value the legacy table cannot hold (poison);
* the legacy application writing the row directly (UPDATE with a higher version, or INSERT of
  a row under a key the write path uses), between the API write and its delivery;
* the writeback's database connection killed between two invocations (a transient error).

Invariant after every delivery (every record so far delivered and retried to its end): each
legacy row is what applying the write path's changes ONE BY ONE in stream order, under the
version guard, gives (the legacy write in between where it happened): an upsert lands when the
row is absent or older; a delete when the row is not newer; a change the row already holds
(same version, same content) counts as landed; anything else is refused. And every item's
status (GetItem, as the API's GET reads it) says what happened to its current version:
`applied` (landed), `conflict` (refused: the legacy row is newer or holds other content) or
`error` (the database rejects the data); never `accepted` once its record was delivered. Only
poison records reach the DLQ.

Budget: WRITEBACK_PROPERTY_EXAMPLES examples per engine (default 100: about 30 s each on
2 shared cores); WRITEBACK_PROPERTY_SHRINK=0 skips shrinking for long hunts.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from dms_event_bus.handlers import writeback
from tests.servers import DbServer, mariadb, postgres  # noqa: F401
from tools.localpipe.lambda_events import to_lambda_record

pytestmark = pytest.mark.servers

EXAMPLES = int(os.environ.get("WRITEBACK_PROPERTY_EXAMPLES", "100"))
#: WRITEBACK_PROPERTY_SHRINK=0 reports the first failing history as found (no shrinking)
PHASES = [p for p in Phase if os.environ.get("WRITEBACK_PROPERTY_SHRINK", "1") != "0"
          or p is not Phase.shrink]
REGION = "eu-west-1"
TABLE = "dmsbus-prop-ingest-orders"
KEYS = (1, 2, 3)
POISON_CUSTOMER = "x" * 21  # the legacy column is varchar(20)
ATTEMPTS = 3  # the mapping's maximum_retry_attempts + 1, per (bisected) batch

# --------------------------------------------------------------------------- the history


@dataclass(frozen=True)
class Post:
    """POST with Idempotency-Key `key`: a new item at version 1 (a duplicate when it exists)."""

    key: int
    amount: str
    note: str


@dataclass(frozen=True)
class Put:
    """PUT of the item's next version; `poison`: a customer the legacy column cannot hold."""

    key: int
    amount: str
    note: str
    poison: bool = False


@dataclass(frozen=True)
class Delete:
    """The item deleted by a service (a REMOVE the writeback writes back)."""

    key: int


@dataclass(frozen=True)
class Expire:
    """TTL removes the item (REMOVE by dynamodb.amazonaws.com: not written back)."""

    key: int


@dataclass(frozen=True)
class LegacyWrite:
    """The legacy application writes the row itself: version + `bump` (a new row at version
    `bump` when there is none)."""

    key: int
    bump: int


@dataclass(frozen=True)
class Deliver:
    """Lambda delivers everything pending in batches of `batch_size`; `twice`: every batch
    that succeeds is delivered once more (a duplicate delivery)."""

    batch_size: int
    twice: bool = False


@dataclass(frozen=True)
class Kill:
    """The writeback's database connection dies before the next invocation."""


Op = Post | Put | Delete | Expire | LegacyWrite | Deliver | Kill

_amount = st.integers(0, 99_999).map(lambda c: f"{c // 100}.{c % 100:02d}")
_note = st.sampled_from(["a", "b", "ü'\"", ""])
_key = st.sampled_from(KEYS)
OPS = st.one_of(
    st.builds(Post, _key, _amount, _note),
    st.builds(Put, _key, _amount, _note, st.sampled_from([False, False, False, True])),
    st.builds(Delete, _key),
    st.builds(Expire, _key),
    st.builds(LegacyWrite, _key, st.integers(1, 2)),
    st.builds(Deliver, st.integers(1, 6), st.booleans()),
    st.just(Kill()),
)
HISTORIES = st.lists(OPS, min_size=1, max_size=24)


# --------------------------------------------------------------------------- the model


@dataclass
class Model:
    """What the legacy table and the items' statuses must be: the changes applied one by one,
    in stream order, under the version guard."""

    rows: dict[int, tuple[Decimal, str, str, int]] = field(default_factory=dict)
    #: key -> the item's current image as the write path holds it (absent: no item)
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: key -> status of the item's current version, once its change was delivered
    status: dict[int, str] = field(default_factory=dict)
    #: changes written to DynamoDB, not yet delivered: (key, op, row or version)
    pending: list[tuple[int, str, Any]] = field(default_factory=list)

    def apply(self) -> None:
        for key, op, payload in self.pending:
            row = self.rows.get(key)
            if op == "delete":
                if row is not None and row[3] <= payload:
                    del self.rows[key]
                continue
            if op == "poison":
                self.status[key] = "error"
                continue
            if row is None or row[3] < payload[3]:
                self.rows[key] = payload
                self.status[key] = "applied"
            elif row == payload:
                self.status[key] = "applied"
            else:
                self.status[key] = "conflict"
        self.pending.clear()


def image(key: int, version: int, amount: str, note: str, customer: str) -> dict[str, Any]:
    return {
        "id": {"N": str(key)},
        "amount": {"N": amount},
        "note": {"S": note},
        "customer": {"S": customer},
        "version": {"N": str(version)},
        "status": {"S": "accepted"},
        "received_at": {"S": "2026-12-04T19:00:00Z"},
    }


# --------------------------------------------------------------------------- the world


class Legacy:
    """The legacy table on one engine, the writeback's own login, and a checking login."""

    def __init__(self, server: DbServer) -> None:
        self.engine = server.engine
        self.db = server.fresh_database("wb_prop")
        admin = self.db.admin_connect()
        cur = admin.cursor()
        self.handler_user, self.handler_password = self.db.user, self.db.password
        if self.engine == "postgres":
            cur.execute("CREATE TABLE public.orders (order_id bigint PRIMARY KEY, "
                        "amount numeric(12,2), note text, customer varchar(20), "
                        "row_version bigint)")
            cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders TO {self.db.user}")
        else:
            cur.execute("CREATE TABLE orders (order_id bigint PRIMARY KEY, amount decimal(12,2), "
                        "note text, customer varchar(20), row_version bigint) "
                        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
            # its own login, so that its connection can be told apart (and killed)
            self.handler_user = f"wbp_{secrets.token_hex(4)}"
            self.handler_password = secrets.token_hex(16)
            for host in ("127.0.0.1", "localhost"):
                cur.execute("CREATE USER %s@%s IDENTIFIED BY %s",
                            (self.handler_user, host, self.handler_password))
                cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{self.db.dbname}`.orders "
                            "TO %s@%s", (self.handler_user, host))
        admin.close()
        self.check = self.db.connect(autocommit=True)
        self.admin = self.db.admin_connect()

    def target(self, secret_arn: str) -> dict[str, Any]:
        return {"kind": "postgres" if self.engine == "postgres" else "mysql",
                "host": self.db.host, "port": self.db.port, "database": self.db.dbname,
                "secret_arn": secret_arn, "tls": False}

    def rows(self) -> dict[int, tuple[Decimal, str, str, int]]:
        cur = self.check.cursor()
        cur.execute("SELECT order_id, amount, note, customer, row_version FROM orders")
        return {int(r[0]): (Decimal(r[1]), r[2], r[3], int(r[4])) for r in cur.fetchall()}

    def clear(self) -> None:
        self.check.cursor().execute("DELETE FROM orders")

    def legacy_write(self, key: int, bump: int, note: str) -> None:
        cur = self.check.cursor()
        cur.execute("UPDATE orders SET note = %s, row_version = row_version + %s "
                    "WHERE order_id = %s", (note, bump, key))
        if cur.rowcount == 0:
            cur.execute("INSERT INTO orders VALUES (%s, 1.00, %s, 'legacy', %s)",
                        (key, note, bump))

    def kill_writeback(self) -> None:
        cur = self.admin.cursor()
        if self.engine == "postgres":
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'dms-event-bus-writeback' AND datname = %s",
                        (self.db.dbname,))
            return
        cur.execute("SELECT id FROM information_schema.processlist WHERE user = %s",
                    (self.handler_user,))
        import pymysql

        for (pid,) in cur.fetchall():
            try:
                cur.execute(f"KILL CONNECTION {int(pid)}")
            except pymysql.OperationalError as exc:
                # 1094 unknown thread id: a connection killed a moment ago (a second Kill in
                # a row) may still be listed while the server tears it down
                if exc.args[0] != 1094:
                    raise

    def close(self) -> None:
        self.check.close()
        self.admin.close()


class Stream:
    """The write path's table in moto, re-created empty for each example, and its stream
    read in the form Lambda delivers (TTL removes carry the service's userIdentity)."""

    def __init__(self) -> None:
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.streams = boto3.client("dynamodbstreams", region_name=REGION)
        self.iterator: str | None = None
        self.arn = ""
        self.table = TABLE
        self.tables = 0

    def reset(self) -> None:
        # a new table (and stream) per example: moto's sequence numbers start over per
        # stream, and records of an earlier example must never be read again
        if self.arn:
            self.ddb.delete_table(TableName=self.table)
        self.tables += 1
        self.table = f"{TABLE}-{self.tables}"
        desc = self.ddb.create_table(
            TableName=self.table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
        self.arn = desc["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]
        self.iterator = self.streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def read(self, *, ttl: bool = False) -> list[dict[str, Any]]:
        out = self.streams.get_records(ShardIterator=self.iterator)
        self.iterator = out["NextShardIterator"]
        return [to_lambda_record(r, self.arn, REGION, ttl=ttl) for r in out["Records"]]

    def status(self, key: int) -> str | None:
        got = self.ddb.get_item(TableName=self.table, Key={"id": {"N": str(key)}},
                                ConsistentRead=True).get("Item")
        return got["status"]["S"] if got else None


@dataclass
class Mapping:
    """The event source mapping's delivery: batches, retry from the reported record,
    bisection on a function error (not counted as an attempt), bounded attempts, DLQ."""

    dlq: list[dict[str, Any]] = field(default_factory=list)
    invocations: int = 0
    errors: list[str] = field(default_factory=list)

    def invoke(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        self.invocations += 1
        response: dict[str, Any] = writeback.handler({"Records": records}, None)
        return response

    def deliver(self, records: list[dict[str, Any]], batch_size: int, twice: bool) -> None:
        for start in range(0, len(records), batch_size):
            self.batch(records[start:start + batch_size], twice)

    def batch(self, records: list[dict[str, Any]], twice: bool) -> None:
        attempts = 0
        while records:
            attempts += 1
            try:
                response = self.invoke(records)
            except Exception as exc:  # noqa: BLE001 - a function error: Lambda bisects or retries
                self.errors.append(f"{type(exc).__name__}: {exc}")
                if len(records) > 1:
                    half = len(records) // 2
                    self.batch(records[:half], twice)
                    self.batch(records[half:], twice)
                    return
                if attempts >= ATTEMPTS:
                    self.dlq.extend(records)
                    return
                continue
            failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
            if not failed:
                if twice:
                    twice = False
                    continue  # the same batch once more
                return
            seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
            records = records[seqs.index(failed[0]):]
            if attempts >= ATTEMPTS:
                self.dlq.extend(records)
                return


@dataclass
class World:
    legacy: Legacy
    stream: Stream
    mapping: Mapping = field(default_factory=Mapping)
    pending: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(params=["postgres", "mariadb"])
def world(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    server: DbServer = request.getfixturevalue(request.param)
    legacy = Legacy(server)
    with mock_aws():
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"wb-prop-{secrets.token_hex(4)}",
            SecretString=json.dumps({"username": legacy.handler_user,
                                     "password": legacy.handler_password}),
        )["ARN"]
        config = {
            "target": legacy.target(secret),
            "tables": {TABLE: {"legacy_table": "orders", "key_columns": {"id": "order_id"},
                               "columns": {"amount": "amount", "note": "note",
                                           "customer": "customer"},
                               "version_attribute": "version", "version_column": "row_version",
                               "deletes": True}},
        }
        monkeypatch.setenv("WRITEBACK_CONFIG", json.dumps(config))
        monkeypatch.setattr(writeback, "_STATE", {})  # a fresh container
        try:
            yield World(legacy, Stream())
        finally:
            executor = writeback._STATE.get("executor")
            if executor is not None:
                executor.connection.close()
            legacy.close()


# --------------------------------------------------------------------------- running


def run(world: World, ops: list[Op]) -> None:
    """Run one history against the world and the model; assert the invariant after every
    delivery."""
    world.stream.reset()
    config = json.loads(os.environ["WRITEBACK_CONFIG"])
    config["tables"] = {world.stream.table: next(iter(config["tables"].values()))}
    os.environ["WRITEBACK_CONFIG"] = json.dumps(config)
    writeback._STATE.pop("config", None)  # the handler reads its config again
    world.legacy.clear()
    world.mapping = Mapping()
    world.pending = []
    model = Model()
    ddb = world.stream.ddb
    legacy_writes = 0
    for op in [*ops, Deliver(batch_size=10)]:
        if isinstance(op, Post):
            if op.key in model.items:
                continue  # a retry under the key: the API creates nothing
            new = image(op.key, 1, op.amount, op.note, "c1")
            ddb.put_item(TableName=world.stream.table, Item=new,
                         ConditionExpression="attribute_not_exists(id)")
            model.items[op.key] = new
            model.pending.append((op.key, "upsert", (Decimal(op.amount), op.note, "c1", 1)))
        elif isinstance(op, Put):
            old = model.items.get(op.key)
            if old is None:
                continue  # 404
            version = int(old["version"]["N"]) + 1
            customer = POISON_CUSTOMER if op.poison else "c1"
            new = image(op.key, version, op.amount, op.note, customer)
            ddb.put_item(TableName=world.stream.table, Item=new, ConditionExpression="version = :v",
                         ExpressionAttributeValues={":v": old["version"]})
            model.items[op.key] = new
            model.pending.append((op.key, "poison", None) if op.poison else
                                 (op.key, "upsert", (Decimal(op.amount), op.note, customer,
                                                     version)))
        elif isinstance(op, Delete | Expire):
            old = model.items.pop(op.key, None)
            if old is None:
                continue
            model.status.pop(op.key, None)
            world.pending += world.stream.read()
            ddb.delete_item(TableName=world.stream.table, Key={"id": old["id"]})
            world.pending += world.stream.read(ttl=isinstance(op, Expire))
            if isinstance(op, Delete):
                model.pending.append((op.key, "delete", int(old["version"]["N"])))
        elif isinstance(op, LegacyWrite):
            legacy_writes += 1
            note = f"legacy {legacy_writes}"
            world.legacy.legacy_write(op.key, op.bump, note)
            row = model.rows.get(op.key)
            model.rows[op.key] = (row[0], note, row[2], row[3] + op.bump) if row else (
                Decimal("1.00"), note, "legacy", op.bump)
        elif isinstance(op, Kill):
            world.legacy.kill_writeback()
        elif isinstance(op, Deliver):
            world.pending += world.stream.read()
            records, world.pending = world.pending, []
            world.mapping.deliver(records, op.batch_size, op.twice)
            poison_seqs = {r["dynamodb"]["SequenceNumber"] for r in records
                           if (r["dynamodb"].get("NewImage") or {}).get("customer")
                           == {"S": POISON_CUSTOMER}}
            model.apply()
            check(world, model, poison_seqs, op)


def check(world: World, model: Model, poison_seqs: set[str], op: Op) -> None:
    blamed = [(r["eventName"], r["dynamodb"]["SequenceNumber"],
               (r["dynamodb"].get("NewImage") or {}).get("customer"))
              for r in world.mapping.dlq if r["dynamodb"]["SequenceNumber"] not in poison_seqs]
    world.mapping.dlq = []
    assert not blamed, f"innocent records sent to the DLQ: {blamed} {world.mapping.errors}"
    assert world.legacy.rows() == model.rows, "legacy rows differ from the changes applied " \
        "one by one in stream order"
    statuses = {key: world.stream.status(key) for key in model.items}
    expected = {key: model.status.get(key) for key in model.items}
    assert statuses == expected, "item statuses do not say what happened"


# Histories that found bugs in the handler as it was (issue 12), kept as regression cases:
# a legacy row at version 1 (a foreign row under the key), then the write path's POST at
# version 1 with other content: marked `applied`, the legacy row kept its own content
# two kills in a row: the second listed a connection the server was still tearing down
# (MariaDB 1094 unknown thread id), a harness race that failed CI once
@example(ops=[Post(1, "1.00", "a"), Deliver(1), Kill(), Kill(), Post(2, "2.00", "b"), Deliver(2)])
@example(ops=[LegacyWrite(3, 1), Post(3, "13.17", "")])
# the legacy application moved the row to version 2; the write path's PUT to version 2 was
# refused by the guard and marked `applied`
@example(ops=[LegacyWrite(2, 2), Post(2, "0.01", ""), Put(2, "22.01", "b")])
# an Idempotency-Key re-used after TTL removed its item: the new POST (version 1, other
# content) was refused by the old row and marked `applied`
@example(ops=[Post(1, "1.00", "a"), Deliver(1), Expire(1), Post(1, "2.00", "b")])
# delete (version 3) then re-create (version 1) of one key in one batch: collapsing kept the
# delete, the legacy row was gone and the new item stuck at `accepted`
@example(ops=[Post(1, "1.00", "a"), Put(1, "1.10", "a"), Put(1, "1.20", "a"), Deliver(5),
              Delete(1), Post(1, "2.00", "b"), Deliver(5)])
@settings(max_examples=EXAMPLES, deadline=None, database=None, phases=PHASES,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(ops=HISTORIES)
def test_legacy_rows_and_item_statuses_tell_the_truth(world: World, ops: list[Op]) -> None:
    run(world, ops)
