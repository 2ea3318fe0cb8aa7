"""Writeback handler against a REAL PostgreSQL server (tests/servers.py starts it).

Rows changed are measured by AFTER row triggers counting into a side table (they fire only
for rows really inserted, updated or deleted) and by each row's xmin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from dms_event_bus.handlers import writeback, writeback_sql
from dms_event_bus.handlers.envelope import value_json
from dms_event_bus.handlers.writeback import (
    Config,
    DataError,
    DbApiExecutor,
    classify,
    process,
    statements_for,
)
from tests.servers import DbServer, postgres  # noqa: F401
from tests.writeback_support import MotoStream, Records, WireCounter, config, item, pg_connect

TABLE = "dmsbus-test-ingest-orders"
LEGACY = "sales.orders"

SCHEMA = """
CREATE SCHEMA sales;
CREATE TABLE sales.orders (
    order_id bigint PRIMARY KEY,
    amount numeric(12,2),
    note text,
    customer varchar(20),
    row_version bigint
);
CREATE TABLE sales.order_lines (
    order_id bigint,
    line_no integer,
    sku varchar(8),
    row_version bigint,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE sales.changes (n bigint NOT NULL);
INSERT INTO sales.changes VALUES (0);
CREATE FUNCTION sales.count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE sales.changes SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER counted AFTER INSERT OR UPDATE OR DELETE ON sales.orders
    FOR EACH ROW EXECUTE FUNCTION sales.count_change();
"""


class StatusRecorder:
    """Stands in for the DynamoDB client: records the conditional status updates."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {}

    def statuses(self) -> dict[str, str]:
        return {c["Key"]["id"]["N"]: c["ExpressionAttributeValues"][":s"]["S"]
                for c in self.calls}


class Legacy:
    """The legacy database of one test: its own database on the shared server."""

    def __init__(self, server: DbServer) -> None:
        self.db = server.fresh_database("wb_pg")
        admin = self.db.admin_connect()
        cur = admin.cursor()
        for statement in SCHEMA.split(";\n"):
            if statement.strip():
                cur.execute(statement)
        cur.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA sales TO {self.db.user}")
        cur.execute(f"GRANT USAGE ON SCHEMA sales TO {self.db.user}")
        admin.close()
        # the handler's connection, through a proxy counting its network round trips
        self.wire = WireCounter(self.db.host, self.db.port)
        self.conn = pg_connect(self.db, self.wire)
        self.wire.round_trips = 0  # from here on: the handler's work, not the login
        self.executor = DbApiExecutor(self.conn, "postgres")
        self.check = self.db.connect(autocommit=True)

    def rows(self) -> dict[int, tuple[Any, ...]]:
        cur = self.check.cursor()
        cur.execute("SELECT order_id, amount, note, customer, row_version FROM sales.orders")
        return {r[0]: tuple(r[1:]) for r in cur.fetchall()}

    def xmins(self) -> dict[int, str]:
        cur = self.check.cursor()
        cur.execute("SELECT order_id, xmin::text FROM sales.orders")
        return dict(cur.fetchall())

    def changes(self) -> int:
        cur = self.check.cursor()
        cur.execute("SELECT n FROM sales.changes")
        return int(cur.fetchone()[0])

    def lines(self) -> dict[tuple[int, int], tuple[Any, ...]]:
        cur = self.check.cursor()
        cur.execute("SELECT order_id, line_no, sku, row_version FROM sales.order_lines")
        return {(r[0], r[1]): tuple(r[2:]) for r in cur.fetchall()}

    def seed(self, order_id: int, version: int, amount: str = "1.00") -> None:
        cur = self.check.cursor()
        cur.execute(
            "INSERT INTO sales.orders VALUES (%s, %s, 'legacy', 'c0', %s)",
            (order_id, Decimal(amount), version),
        )


@pytest.fixture
def legacy(postgres: DbServer) -> Legacy:  # noqa: F811 - the fixture imported above
    return Legacy(postgres)


CFG = config(TABLE, LEGACY)


def test_inserts_updates_and_deletes_land_in_one_statement(legacy: Legacy) -> None:
    # GIVEN inserts of three orders, an update of one and a delete of another
    r = Records(TABLE)
    o1, o2, o3 = item(1, 1), item(2, 1), item(3, 1)
    o1b = item(1, 2, amount="99.99", note="it's \"quoted\"\nnew line ünïcode")
    batch = [r.insert(o1), r.insert(o2), r.insert(o3), r.modify(o1, o1b), r.remove(o2)]
    status = StatusRecorder()
    # WHEN the batch is written back
    result = process(batch, CFG, legacy.executor, status)
    # THEN the legacy table holds the newest state, in one round trip (counted on the wire)
    assert result.failures == []
    assert legacy.rows() == {
        1: (Decimal("99.99"), "it's \"quoted\"\nnew line ünïcode", "c1", 2),
        3: (Decimal("10.50"), "n", "c1", 1),
    }
    assert result.round_trips == 1
    assert legacy.wire.round_trips == 1
    assert legacy.changes() == 2  # o1 inserted at v2 (collapsed), o3 inserted; o2 never existed
    # AND the upserted items are marked applied, conditional on their version
    assert status.statuses() == {"1": "applied", "3": "applied"}
    call = next(c for c in status.calls if c["Key"]["id"]["N"] == "1")
    assert call["ConditionExpression"] == "#v = :v AND #s <> :s"
    assert call["ExpressionAttributeValues"][":v"] == {"N": "2"}


def test_update_and_delete_of_existing_rows_follow_the_version_guard(legacy: Legacy) -> None:
    # GIVEN legacy rows at versions 3 and 5
    legacy.seed(10, 3)
    legacy.seed(11, 5)
    r = Records(TABLE)
    # WHEN an update to v4 of 10, and deletes of 11 carrying v4 (older) and then v5
    result = process([r.modify(item(10, 3), item(10, 4, amount="4.00"))], CFG,
                     legacy.executor, None)
    process([r.remove(item(11, 4))], CFG, legacy.executor, None)
    # THEN 10 is updated, 11 survives the older delete
    assert result.rows_changed == 1
    assert legacy.rows()[10] == (Decimal("4.00"), "n", "c1", 4)
    assert 11 in legacy.rows()
    # AND a delete that is not older removes it
    deleted = process([r.remove(item(11, 5))], CFG, legacy.executor, None)
    assert deleted.rows_changed == 1
    assert 11 not in legacy.rows()


def test_out_of_order_versions_never_go_back(legacy: Legacy) -> None:
    # GIVEN order 20 at v3 already written back
    r = Records(TABLE)
    process([r.insert(item(20, 3, amount="3.00"))], CFG, legacy.executor, None)
    before = legacy.changes()
    # WHEN v2 arrives late (alone, and inside a batch with a v1 as well)
    late = process([r.insert(item(20, 2, amount="2.00"))], CFG, legacy.executor, None)
    mixed = process(
        [r.insert(item(21, 5, amount="5.00")), r.insert(item(21, 4, amount="4.00")),
         r.insert(item(20, 1, amount="1.00"))],
        CFG, legacy.executor, None,
    )
    # THEN the rows keep their newest versions
    assert late.rows_changed == 0
    assert mixed.rows_changed == 1
    assert legacy.rows()[20] == (Decimal("3.00"), "n", "c1", 3)
    assert legacy.rows()[21] == (Decimal("5.00"), "n", "c1", 5)
    assert legacy.changes() == before + 1


def test_duplicates_in_a_batch_collapse_to_one_row_change(legacy: Legacy) -> None:
    # GIVEN the same change delivered three times and two versions of another key
    r = Records(TABLE)
    same = item(30, 1)
    batch = [r.insert(same), r.insert(same), r.insert(same),
             r.insert(item(31, 1)), r.modify(item(31, 1), item(31, 2, note="second"))]
    # WHEN written back
    result = process(batch, CFG, legacy.executor, None)
    # THEN one row change per key
    assert result.rows_changed == 2
    assert legacy.changes() == 2
    assert legacy.rows()[31] == (Decimal("10.50"), "second", "c1", 2)


def test_replayed_batch_changes_zero_rows(legacy: Legacy) -> None:
    # GIVEN a mixed batch that was written back once
    legacy.seed(40, 1)
    r = Records(TABLE)
    batch = [r.insert(item(41, 1)), r.modify(item(41, 1), item(41, 2)),
             r.remove(item(40, 1)), r.insert(item(42, 7)), r.insert(item(43, 1))]
    first = process(batch, CFG, legacy.executor, None)
    rows, xmins, changes = legacy.rows(), legacy.xmins(), legacy.changes()
    # WHEN the very same batch is delivered again (Lambda retry / replay)
    again = process(batch, CFG, legacy.executor, None)
    # THEN nothing changes: no row touched (xmin), no trigger fired, same content
    assert first.rows_changed == 4
    assert again.rows_changed == 0
    assert legacy.changes() == changes
    assert legacy.xmins() == xmins
    assert legacy.rows() == rows


def test_poison_record_in_the_middle_is_isolated(legacy: Legacy) -> None:
    # GIVEN five changes; the third has a customer too long for varchar(20)
    r = Records(TABLE)
    batch = [r.insert(item(50, 1)), r.insert(item(51, 1)),
             r.insert(item(52, 1, customer="x" * 21)),
             r.insert(item(53, 1)), r.insert(item(54, 1))]
    status = StatusRecorder()
    # WHEN written back
    result = process(batch, CFG, legacy.executor, status)
    # THEN the two before it are applied, its sequence number is the batch item failure
    assert result.response() == {
        "batchItemFailures": [{"itemIdentifier": batch[2]["dynamodb"]["SequenceNumber"]}]
    }
    assert sorted(legacy.rows()) == [50, 51]
    assert "22001" in (result.poison or "")  # string_data_right_truncation, named in the log
    # AND its item is marked error with the reason; the others applied
    assert status.statuses() == {"50": "applied", "51": "applied", "52": "error"}
    error_call = next(c for c in status.calls if c["Key"]["id"]["N"] == "52")
    assert "22001" in error_call["ExpressionAttributeValues"][":d"]["S"]
    # AND the retry from the failed record (as Lambda does) isolates it again at once
    retry = process(batch[2:], CFG, legacy.executor, None)
    assert retry.failures == [batch[2]["dynamodb"]["SequenceNumber"]]
    assert sorted(legacy.rows()) == [50, 51]


LINES = "dmsbus-test-ingest-order_lines"
TWO_TABLES = Config.from_json({
    "target": {"kind": "postgres"},
    "tables": {
        TABLE: {"legacy_table": LEGACY, "key_columns": {"id": "order_id"},
                "columns": {"amount": "amount", "note": "note", "customer": "customer"},
                "version_column": "row_version"},
        LINES: {"legacy_table": "sales.order_lines",
                "key_columns": {"id": "order_id", "line": "line_no"},
                "columns": {"sku": "sku"}, "version_column": "row_version"},
    },
})


def line_insert(r: Records, order_id: int, line: int, sku: str, version: int = 1
                ) -> dict[str, Any]:
    image = {"id": {"N": str(order_id)}, "line": {"N": str(line)}, "sku": {"S": sku},
             "version": {"N": str(version)}, "status": {"S": "accepted"}}
    record = r.insert(image)
    record["dynamodb"]["Keys"] = {"id": image["id"], "line": image["line"]}
    return record


def test_two_tables_are_one_round_trip_and_one_transaction(legacy: Legacy) -> None:
    # GIVEN a batch touching two legacy tables (one has a composite key)
    orders, lines = Records(TABLE), Records(LINES)
    batch = [orders.insert(item(1, 1)), line_insert(lines, 1, 1, "A-1"),
             line_insert(lines, 1, 2, "B-2"), orders.remove(item(1, 1)),
             orders.insert(item(2, 3))]
    # WHEN written back
    result = process(batch, TWO_TABLES, legacy.executor, None)
    # THEN both tables changed, and the whole batch took ONE network round trip
    # (one pipeline: a statement per table, one Sync, one implicit transaction)
    assert result.failures == []
    assert legacy.rows() == {2: (Decimal("10.50"), "n", "c1", 3)}
    assert legacy.lines() == {(1, 1): ("A-1", 1), (1, 2): ("B-2", 1)}
    assert result.rows_changed == 3
    assert legacy.wire.round_trips == 1


def test_a_statement_failing_in_the_pipeline_rolls_back_the_others(legacy: Legacy) -> None:
    # GIVEN the statements of a batch whose second table's statement fails
    orders, lines = Records(TABLE), Records(LINES)
    records = [orders.insert(item(5, 1)), line_insert(lines, 5, 1, "TOO-LONG-SKU")]
    changes = [classify(i, rec, TWO_TABLES).change for i, rec in enumerate(records)]
    statements = statements_for([c for c in changes if c], TWO_TABLES, legacy.executor)
    assert [s.table for s in statements] == [LEGACY, "sales.order_lines"]
    # WHEN they are applied
    with pytest.raises(DataError, match="22001"):
        legacy.executor.apply(statements)
    # THEN the first table's row was rolled back with it: all or nothing
    assert legacy.rows() == {}
    assert legacy.changes() == 0
    # AND the connection is usable (not left inside a failed transaction)
    assert [r.changed for r in legacy.executor.apply(statements[:1])] == [1]
    assert sorted(legacy.rows()) == [5]


def test_poison_in_the_second_table_is_isolated(legacy: Legacy) -> None:
    # GIVEN orders 7 and 8 around a line of order 1 whose sku is too long
    orders, lines = Records(TABLE), Records(LINES)
    bad = line_insert(lines, 1, 1, "TOO-LONG-SKU")
    batch = [orders.insert(item(7, 1)), bad, orders.insert(item(8, 1))]
    status = StatusRecorder()
    # WHEN written back
    result = process(batch, TWO_TABLES, legacy.executor, status)
    # THEN the order before it is applied, the line is the failure, the order after waits
    assert result.failures == [bad["dynamodb"]["SequenceNumber"]]
    assert sorted(legacy.rows()) == [7]
    assert legacy.lines() == {}
    assert "22001" in (result.poison or "")
    # AND order 7's item is applied; the line's item is error (keyed by id and line)
    assert status.statuses() == {"7": "applied", "1": "error"}
    error_call = next(c for c in status.calls if c["Key"]["id"]["N"] == "1")
    assert error_call["Key"] == {"id": {"N": "1"}, "line": {"N": "1"}}


def test_type_mismatch_is_the_reported_record(legacy: Legacy) -> None:
    # GIVEN an amount sent as a string that is not a number, between two good changes
    r = Records(TABLE)
    bad = item(101, 1)
    bad["amount"] = {"S": "ten euros"}
    batch = [r.insert(item(100, 1)), r.insert(bad), r.insert(item(102, 1))]
    # WHEN written back
    result = process(batch, CFG, legacy.executor, None)
    # THEN PostgreSQL's invalid_text_representation names the record; the one before lands
    assert result.failures == [batch[1]["dynamodb"]["SequenceNumber"]]
    assert "22P02" in (result.poison or "")
    assert sorted(legacy.rows()) == [100]


def test_record_missing_a_key_attribute_is_poison_with_a_clear_reason(legacy: Legacy) -> None:
    # GIVEN an image without the mapped key attribute (the DynamoDB key is another one)
    r = Records(TABLE)
    record = r.insert(item(111, 1))
    del record["dynamodb"]["NewImage"]["id"]
    record["dynamodb"]["Keys"] = {"other": {"S": "x"}}
    # WHEN written back after a good change
    result = process([r.insert(item(110, 1)), record], CFG, legacy.executor, None)
    # THEN the good one is applied, the bad one reported with the missing attribute named
    assert result.failures == [record["dynamodb"]["SequenceNumber"]]
    assert result.poison == "missing key attribute(s) ['id'] for sales.orders"
    assert sorted(legacy.rows()) == [110]


def test_every_dynamodb_type_lands_exactly_in_its_column(legacy: Legacy) -> None:
    # GIVEN a legacy table with exact numerics, boolean, bytea, jsonb, text and date columns
    admin = legacy.db.admin_connect()
    admin.cursor().execute(
        "CREATE TABLE sales.kinds (id bigint PRIMARY KEY, big numeric(40,10), flag boolean, "
        "blob bytea, doc jsonb, doc_text text, day date, tags text, row_version bigint); "
        f"GRANT ALL ON sales.kinds TO {legacy.db.user}"
    )
    admin.close()
    table = "dmsbus-test-ingest-kinds"
    cfg = Config.from_json({"target": {"kind": "postgres"}, "tables": {table: {
        "legacy_table": "sales.kinds", "key_columns": {"id": "id"},
        "columns": {a: a for a in ("big", "flag", "blob", "doc", "doc_text", "day", "tags")},
        "version_column": "row_version"}}})
    doc = {"M": {"b": {"L": [{"S": "x \"q\" ü"}, {"N": "1E+3"}]}, "a": {"N": "1.50"}}}
    image: dict[str, Any] = {
        "id": {"N": "1"}, "big": {"N": "123456789012345678901234567890.1234567891"},
        "flag": {"BOOL": True}, "blob": {"B": "AP8Kgw=="}, "doc": doc, "doc_text": doc,
        "day": {"S": "2026-11-30"}, "tags": {"SS": ["b", "a"]}, "version": {"N": "1"},
        "status": {"S": "accepted"}}
    # WHEN written back (Lambda delivers B as base64)
    result = process([Records(table).insert(image)], cfg, legacy.executor, None)
    # THEN every value is exact: no float on the way, bytes as bytes, maps as JSON (jsonb
    # writes 1E+3 as 1000, its own canonical form; the text column keeps the digits sent)
    assert result.failures == []
    cur = legacy.check.cursor()
    cur.execute("SELECT big, flag, blob, doc::text, doc_text, day::text, tags, row_version "
                "FROM sales.kinds")
    assert cur.fetchall()[0] == [
        Decimal("123456789012345678901234567890.1234567891"), True, b"\x00\xff\n\x83",
        '{"a": 1.50, "b": ["x \\"q\\" ü", 1000]}', '{"b":["x \\"q\\" ü",1E+3],"a":1.50}',
        "2026-11-30", '["b","a"]', 1]
    # AND a text column holds what the project's one DynamoDB-JSON writer writes (the
    # envelope's): map attributes and set members in the order the item holds them
    cur.execute("SELECT doc_text, tags FROM sales.kinds")
    assert cur.fetchall()[0] == [value_json(doc), value_json(image["tags"])]


def test_record_missing_a_key_is_reported_without_touching_the_database(
    legacy: Legacy, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a change whose image lacks the version attribute, after a good one
    r = Records(TABLE)
    bad = item(61, 1)
    del bad["version"]
    batch = [r.insert(item(60, 1)), r.insert(bad), r.insert(item(62, 1))]
    # WHEN written back
    result = process(batch, CFG, legacy.executor, None)
    # THEN the good one before it is applied and the bad one is reported with a clear reason
    assert result.failures == [batch[1]["dynamodb"]["SequenceNumber"]]
    assert sorted(legacy.rows()) == [60]
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert any("version attribute 'version' missing" in e.get("reason", "") for e in logged)


def test_dms_echo_ttl_delete_and_status_only_update_are_not_written_back(
    legacy: Legacy,
) -> None:
    # GIVEN a row written back at v1
    r = Records(TABLE)
    process([r.insert(item(70, 1))], CFG, legacy.executor, None)
    changes = legacy.changes()
    # WHEN DMS replicates legacy rows (images without the status marker), the handler's own
    # status update comes back, and TTL expires an item
    dms_echo = [r.insert(item(71, 9, status=None)),
                r.modify(item(70, 1, status=None), item(70, 2, amount="7.77", status=None))]
    status_only = r.modify(item(70, 1, status="accepted"), item(70, 1, status="applied"))
    ttl = r.remove(item(70, 1, status="applied"), ttl=True)
    result = process([*dms_echo, status_only, ttl], CFG, legacy.executor, None)
    # THEN nothing is written back and nothing is reported
    assert result.failures == []
    assert result.applied == []
    assert result.round_trips == 0
    assert legacy.changes() == changes
    assert legacy.rows() == {70: (Decimal("10.50"), "n", "c1", 1)}
    assert sorted(result.skipped) == [
        "TTL delete (userIdentity dynamodb.amazonaws.com)",
        "no write-path marker 'status': not written by the write path (DMS replication "
        "or another writer)",
        "status-only update",
    ]


def test_moto_stream_end_to_end_marks_items_applied_without_a_loop(legacy: Legacy) -> None:
    with mock_aws():
        # GIVEN a write-path table in moto with a stream, written like the IngestApi does
        stream = MotoStream("dmsbus-test-ingest-orders-e2e")
        cfg = config(stream.table, LEGACY)
        ddb = stream.ddb
        ddb.put_item(TableName=stream.table, Item=item(80, 1))
        ddb.put_item(TableName=stream.table, Item=item(81, 1, note="to delete"))
        ddb.update_item(
            TableName=stream.table, Key={"id": {"N": "80"}},
            UpdateExpression="SET amount = :a, version = :v2, #s = :acc",
            ConditionExpression="version = :v1",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":a": {"N": "80.80"}, ":v1": {"N": "1"},
                                       ":v2": {"N": "2"}, ":acc": {"S": "accepted"}},
        )
        ddb.delete_item(TableName=stream.table, Key={"id": {"N": "81"}})
        # WHEN the stream's records are written back
        first = process(stream.read(), cfg, legacy.executor, ddb)
        # THEN the legacy row has v2 and the item says applied
        assert first.failures == []
        assert legacy.rows() == {80: (Decimal("80.80"), "n", "c1", 2)}
        got = ddb.get_item(TableName=stream.table, Key={"id": {"N": "80"}})["Item"]
        assert got["status"] == {"S": "applied"}
        changes = legacy.changes()
        # WHEN the status update's own stream record and a DMS-style put come back
        ddb.put_item(TableName=stream.table,
                     Item={"id": {"N": "82"}, "amount": {"N": "1"}, "version": {"N": "1"}})
        echo = stream.read()
        second = process(echo, cfg, legacy.executor, ddb)
        # THEN they are recognised and nothing is written back (no loop)
        assert [r["eventName"] for r in echo] == ["MODIFY", "INSERT"]
        assert second.applied == []
        assert second.skipped == {
            "status-only update": 1,
            "no write-path marker 'status': not written by the write path (DMS replication "
            "or another writer)": 1,
        }
        assert legacy.changes() == changes
        # AND a replay of the first batch writes nothing and no new status update
        assert stream.read() == []


def test_handler_entry_reads_the_secret_and_reports_failures(
    legacy: Legacy, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        # GIVEN the handler's config and its Secrets Manager secret (moto)
        secret = boto3.client("secretsmanager").create_secret(
            Name="legacy-writeback-pg",
            SecretString=json.dumps({"username": legacy.db.user,
                                     "password": legacy.db.password}),
        )
        raw = {
            "target": {"kind": "postgres", "host": legacy.db.host, "port": legacy.db.port,
                       "database": legacy.db.dbname, "secret_arn": secret["ARN"],
                       "tls": False},
            "tables": {TABLE: {"legacy_table": LEGACY, "key_columns": {"id": "order_id"},
                               "columns": {"amount": "amount"},
                               "version_column": "row_version"}},
        }
        monkeypatch.setenv("WRITEBACK_CONFIG", json.dumps(raw))
        monkeypatch.setattr(writeback, "_STATE", {})
        boto3.client("dynamodb").create_table(
            TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST",
        )
        r = Records(TABLE)
        bad = item(91, 1, amount="1e20")  # numeric(12,2) overflow
        event = {"Records": [r.insert(item(90, 1)), r.insert(bad), r.insert(item(92, 1))]}
        # WHEN Lambda invokes the handler
        response = writeback.handler(event, None)
        # THEN the record before the poison is applied; the poison is the failure
        assert response == {"batchItemFailures": [
            {"itemIdentifier": event["Records"][1]["dynamodb"]["SequenceNumber"]}]}
        assert sorted(legacy.rows()) == [90]
        # AND the connection is reused by the next invocation of the same container
        executor = writeback._STATE["executor"]
        writeback.handler({"Records": [r.insert(item(93, 1))]}, None)
        assert writeback._STATE["executor"] is executor
        assert sorted(legacy.rows()) == [90, 93]
        # WHEN Lambda retries from the poison record (now the first of its batch)
        retry = {"Records": event["Records"][1:]}
        # THEN the invocation fails, so Lambda bisects instead of retrying the same batch
        # (a partial response naming the first record would send record 92 to the DLQ too)
        with pytest.raises(writeback.PoisonRecordError, match="bisects"):
            writeback.handler(retry, None)
        assert sorted(legacy.rows()) == [90, 93]
        # AND once bisected, each half does the right thing: 92 applies, 91 alone is reported
        assert writeback.handler({"Records": retry["Records"][1:]}, None) == {
            "batchItemFailures": []}
        assert writeback.handler({"Records": retry["Records"][:1]}, None) == response
        assert sorted(legacy.rows()) == [90, 92, 93]


# --------------------------------------------------------------------------- property


@dataclass(frozen=True)
class Step:
    """One change of one key as the write path makes it: an upsert carrying its row, or a
    delete carrying the deleted item's version."""

    key: int
    version: int
    delete: bool
    amount: str = "0.00"
    note: str = ""
    customer: str = ""


_TEXT = st.characters(codec="utf-8", exclude_characters="\x00")


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Step], list[int], list[int]]:
    """Changes of up to five keys with distinct random versions per key, delivered in a
    random order (versions out of order), with exact redeliveries; a key whose newest change
    is a delete has it delivered after its upserts (DynamoDB orders one item's records, and
    without a tombstone nothing can tell a later-arriving older upsert from a re-insert).
    Then two random batch splits: the first delivery's and the replay's."""
    steps: list[Step] = []
    for key in draw(st.sets(st.integers(1, 5), min_size=1)):
        versions = draw(st.lists(st.integers(1, 10**12), min_size=1, max_size=6, unique=True))
        for version in versions:
            if draw(st.booleans()) and draw(st.booleans()):  # a quarter are deletes
                steps.append(Step(key, version, True))
            else:
                steps.append(Step(
                    key, version, False,
                    amount=f"{draw(st.integers(-10**9, 10**9))}.{draw(st.integers(0, 99)):02d}",
                    note=draw(st.text(_TEXT, max_size=30)),
                    customer=draw(st.text(_TEXT, max_size=20)),
                ))
    order = draw(st.permutations(steps))
    order += draw(st.lists(st.sampled_from(order), max_size=5))  # redeliveries
    order = [*draw(st.permutations(order))]
    for key in {s.key for s in steps}:  # the newest change, if a delete, arrives last
        newest = max((s for s in steps if s.key == key), key=lambda s: s.version)
        if newest.delete:
            order = [s for s in order if s != newest] + [newest]
    splits = [sorted(draw(st.sets(st.integers(1, max(1, len(order) - 1)), max_size=6)))
              for _ in range(2)]
    return order, splits[0], splits[1]


def _records(r: Records, steps: list[Step]) -> list[dict[str, Any]]:
    out = []
    for s in steps:
        image = item(s.key, s.version, amount=s.amount, note=s.note, customer=s.customer)
        out.append(r.remove(image) if s.delete else r.insert(image))
    return out


def _split(records: list[dict[str, Any]], cuts: list[int]) -> list[list[dict[str, Any]]]:
    bounds = [0, *cuts, len(records)]
    return [records[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=histories())
# found by this test: a batch whose plan deletes a key and re-creates it below the delete's
# version (v3, delete v4, v1); its redelivery deleted the row and wrote it again the same
@example(history=([Step(5, 3, False), Step(5, 4, True), Step(5, 1, False), Step(5, 5, False)],
                  [3], []))
def test_any_order_and_split_ends_at_the_newest_version_and_replay_changes_nothing(
    legacy: Legacy, history: tuple[list[Step], list[int], list[int]]
) -> None:
    # GIVEN an empty legacy table and a key-wise random history delivered out of order
    steps, cuts, replay_cuts = history
    legacy.check.cursor().execute("TRUNCATE sales.orders")
    records = _records(Records(TABLE), steps)
    # WHEN it is written back in random batches, each delivered twice in a row (a retry)
    for batch in _split(records, cuts):
        first = process(batch, CFG, legacy.executor, None)
        again = process(batch, CFG, legacy.executor, None)
        # THEN no batch fails, and the immediate redelivery changes no row
        assert first.failures == [] and again.failures == []
        assert again.rows_changed == 0
    # AND each key's legacy row is its highest-versioned change: that upsert's row, or no
    # row when it is a delete
    expected = {}
    for key in {s.key for s in steps}:
        newest = max((s for s in steps if s.key == key), key=lambda s: s.version)
        if not newest.delete:
            expected[key] = (Decimal(newest.amount), newest.note, newest.customer,
                             newest.version)
    assert legacy.rows() == expected
    # WHEN the whole stream is read again from its start, in other batches
    replayed = sum(process(batch, CFG, legacy.executor, None).rows_changed
                   for batch in _split(records, replay_cuts))
    # THEN the table is as it was; rows change on the way only where a delete is replayed
    # after older upserts of its key re-create the row (docs/writeback.md, version guard)
    assert legacy.rows() == expected
    if not any(s.delete for s in steps):
        assert replayed == 0


def test_tls_is_required_and_verified_by_default(postgres: DbServer) -> None:  # noqa: F811
    # GIVEN a target without `tls: false`, and a server that offers no TLS
    target = {"kind": "postgres", "host": postgres.host, "port": postgres.port,
              "database": postgres.dbname}
    # THEN the connection asks libpq for verify-full against a CA file that exists
    tls = writeback_sql._pg_tls()
    assert tls["sslmode"] == "verify-full"
    assert tls["sslrootcert"] == "system" or Path(tls["sslrootcert"]).is_file()
    # AND it refuses to fall back to plain text
    with pytest.raises(psycopg.OperationalError, match="SSL"):
        writeback_sql.connect(target, postgres.user, postgres.password)
