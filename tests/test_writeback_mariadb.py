"""Writeback handler against a REAL MariaDB server (tests/servers.py starts it).

The handler logs in as a login holding only the grants docs/writeback.md lists for it
("Grants for the writeback login"), on the legacy tables only, and opens its connection with
the handler's own `connect` (its session setup included); a login missing one of them fails
the batch with the server's access-denied error, nothing blamed on a record.

MariaDB fires UPDATE triggers even when ON DUPLICATE KEY UPDATE leaves a row as it was, so
the change counter's trigger counts only rows whose values really differ; the statement's
affected-row count (0 when the guard kept the row) is checked as well.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import pymysql
import pytest
from moto import mock_aws

from dms_event_bus.handlers.writeback import Config, DbApiExecutor, process
from dms_event_bus.handlers.writeback_sql import connect
from tests.servers import DbServer, mariadb  # noqa: F401
from tests.writeback_support import MotoStream, Records, WireCounter, config, item

TABLE = "dmsbus-test-ingest-orders"

SCHEMA = [
    """CREATE TABLE orders (
        order_id bigint PRIMARY KEY,
        amount decimal(12,2),
        note text,
        customer varchar(20),
        row_version bigint
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE order_lines (
        order_id bigint, line_no int, sku varchar(8), row_version bigint,
        PRIMARY KEY (order_id, line_no)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "CREATE TABLE changes (n bigint NOT NULL)",
    "INSERT INTO changes VALUES (0)",
    """CREATE TRIGGER counted_insert AFTER INSERT ON orders FOR EACH ROW
        UPDATE changes SET n = n + 1""",
    """CREATE TRIGGER counted_update AFTER UPDATE ON orders FOR EACH ROW
        UPDATE changes SET n = n + IF(NEW.amount <=> OLD.amount AND NEW.note <=> OLD.note
            AND NEW.customer <=> OLD.customer AND NEW.row_version <=> OLD.row_version, 0, 1)""",
    """CREATE TRIGGER counted_delete AFTER DELETE ON orders FOR EACH ROW
        UPDATE changes SET n = n + 1""",
]

#: What docs/writeback.md ("Grants for the writeback login") tells a user to grant the
#: writeback login on each mapped legacy table, and nothing else.
WRITEBACK_GRANTS = ("SELECT", "INSERT", "UPDATE", "DELETE")
LEGACY_TABLES = ("orders", "order_lines")


def writeback_login(db: DbServer, grants: tuple[str, ...] = WRITEBACK_GRANTS) -> tuple[str, str]:
    """A new login holding `grants` on the legacy tables of `db` only: (user, password)."""
    user, password = f"wb_{secrets.token_hex(4)}", secrets.token_hex(16)
    admin = db.admin_connect(db.dbname)
    cur = admin.cursor()
    for host in ("127.0.0.1", "localhost"):
        cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
        for table in LEGACY_TABLES if grants else ():
            cur.execute(f"GRANT {', '.join(grants)} ON `{db.dbname}`.`{table}` TO %s@%s",
                        (user, host))
    admin.close()
    return user, password


class Legacy:
    def __init__(self, server: DbServer) -> None:
        self.db = server.fresh_database("wb_maria")
        admin = self.db.admin_connect(self.db.dbname)  # triggers need SUPER with a binlog
        cur = admin.cursor()
        for statement in SCHEMA:
            cur.execute(statement)
        admin.close()
        self.legacy_table = f"{self.db.dbname}.orders"
        self.cfg = config(TABLE, self.legacy_table, kind="mysql")
        # the handler's connection, through a proxy counting its network round trips
        self.wire = WireCounter(self.db.host, self.db.port)
        self.executor = self.login(WRITEBACK_GRANTS)
        self.check = self.db.connect(autocommit=True)

    def login(self, grants: tuple[str, ...]) -> DbApiExecutor:
        """An executor on the handler's own connection, as a login holding `grants`."""
        user, password = writeback_login(self.db, grants)
        target = {"kind": "mysql", "host": self.wire.host, "port": self.wire.port,
                  "database": self.db.dbname, "tls": False}
        conn = connect(target, user, password)
        self.wire.round_trips = 0  # from here on: the handler's work, not the login
        return DbApiExecutor(conn, "mysql")

    def rows(self) -> dict[int, tuple[Any, ...]]:
        cur = self.check.cursor()
        cur.execute("SELECT order_id, amount, note, customer, row_version FROM orders")
        return {r[0]: tuple(r[1:]) for r in cur.fetchall()}

    def changes(self) -> int:
        cur = self.check.cursor()
        cur.execute("SELECT n FROM changes")
        return int(cur.fetchone()[0])

    def seed(self, order_id: int, version: int) -> None:
        self.check.cursor().execute(
            "INSERT INTO orders VALUES (%s, 1.00, 'legacy', 'c0', %s)", (order_id, version)
        )


@pytest.fixture
def legacy(mariadb: DbServer) -> Legacy:  # noqa: F811 - the fixture imported above
    return Legacy(mariadb)


def test_inserts_updates_and_deletes(legacy: Legacy) -> None:
    # GIVEN inserts, an update that changes every column and a delete
    legacy.seed(5, 1)
    r = Records(TABLE)
    o1 = item(1, 1)
    o1b = item(1, 2, amount="99.99", note="O'Brien \"q\"\nünïcode ✓", customer="c2")
    batch = [r.insert(o1), r.insert(item(2, 1)), r.modify(o1, o1b), r.remove(item(5, 1))]
    # WHEN written back
    result = process(batch, legacy.cfg, legacy.executor, None)
    # THEN the newest state is there: the version column was updated LAST, so every
    # column's guard saw the old version and all of them changed
    assert result.failures == []
    assert legacy.rows() == {
        1: (Decimal("99.99"), "O'Brien \"q\"\nünïcode ✓", "c2", 2),
        2: (Decimal("10.50"), "n", "c1", 1),
    }
    # AND deletes + upserts of one table, and the read-back of their refusals, in one
    # transaction and ONE round trip: BEGIN; DELETE; INSERT .. ON DUPLICATE KEY; SELECT;
    # COMMIT as one multi-statement query
    assert result.round_trips == 1
    assert legacy.wire.round_trips == 1


def test_update_of_an_existing_row_changes_all_columns_then_the_version(
    legacy: Legacy,
) -> None:
    # GIVEN a legacy row at v3
    legacy.seed(10, 3)
    r = Records(TABLE)
    # WHEN a v4 update arrives (insert-only batch: one statement, one round trip)
    result = process([r.modify(item(10, 3), item(10, 4, amount="4.44", note="v4"))],
                     legacy.cfg, legacy.executor, None)
    # THEN all columns take the v4 values
    assert result.round_trips == 1
    assert legacy.wire.round_trips == 1
    assert legacy.rows()[10] == (Decimal("4.44"), "v4", "c1", 4)


def test_out_of_order_versions_and_delete_guard(legacy: Legacy) -> None:
    # GIVEN rows at v3 (20) and v5 (21)
    r = Records(TABLE)
    process([r.insert(item(20, 3, amount="3.00")), r.insert(item(21, 5))], legacy.cfg,
            legacy.executor, None)
    before = legacy.changes()
    # WHEN an older update of 20 and an older delete of 21 arrive late
    late = process([r.insert(item(20, 2, amount="2.00")), r.remove(item(21, 4))],
                   legacy.cfg, legacy.executor, None)
    # THEN nothing changes
    assert late.rows_changed == 0
    assert legacy.changes() == before
    assert legacy.rows()[20] == (Decimal("3.00"), "n", "c1", 3)
    assert 21 in legacy.rows()
    # AND a delete that is not older removes the row
    process([r.remove(item(21, 5))], legacy.cfg, legacy.executor, None)
    assert 21 not in legacy.rows()


def test_duplicates_collapse_and_replay_changes_zero_rows(legacy: Legacy) -> None:
    # GIVEN a batch with duplicates, written back once
    legacy.seed(30, 1)
    r = Records(TABLE)
    same = item(31, 1)
    batch = [r.insert(same), r.insert(same), r.modify(same, item(31, 2, note="b")),
             r.insert(item(32, 4)), r.remove(item(30, 1))]
    seeded = legacy.changes()
    first = process(batch, legacy.cfg, legacy.executor, None)
    rows, changes = legacy.rows(), legacy.changes()
    # WHEN the same batch is replayed
    again = process(batch, legacy.cfg, legacy.executor, None)
    # THEN no row changes: 0 affected rows, no real change counted, same content
    assert first.rows_changed > 0
    assert changes - seeded == 3  # 31 inserted once at v2, 32 inserted, 30 deleted
    assert again.rows_changed == 0
    assert legacy.changes() == changes
    assert legacy.rows() == rows


def test_poison_record_in_the_middle_is_isolated(legacy: Legacy) -> None:
    # GIVEN five changes; the third overflows decimal(12,2) (strict mode rejects it)
    r = Records(TABLE)
    batch = [r.insert(item(50, 1)), r.insert(item(51, 1)),
             r.insert(item(52, 1, amount="1e15")),
             r.insert(item(53, 1)), r.insert(item(54, 1))]
    # WHEN written back
    result = process(batch, legacy.cfg, legacy.executor, None)
    # THEN the two before it are applied and its sequence number is the failure
    assert result.failures == [batch[2]["dynamodb"]["SequenceNumber"]]
    assert sorted(legacy.rows()) == [50, 51]
    assert "1264" in (result.poison or "")  # ER_WARN_DATA_OUT_OF_RANGE, logged


def test_two_tables_commit_together_and_a_poison_line_is_isolated(legacy: Legacy) -> None:
    # GIVEN a mapping of two tables and a batch whose order line has a too-long sku
    lines_table = "dmsbus-test-ingest-order_lines"
    cfg = Config.from_json({
        "target": {"kind": "mysql"},
        "tables": {
            TABLE: {"legacy_table": legacy.legacy_table, "key_columns": {"id": "order_id"},
                    "columns": {"amount": "amount", "note": "note", "customer": "customer"},
                    "version_column": "row_version"},
            lines_table: {"legacy_table": f"{legacy.db.dbname}.order_lines",
                          "key_columns": {"id": "order_id", "line": "line_no"},
                          "columns": {"sku": "sku"}, "version_column": "row_version"},
        },
    })
    orders, lines = Records(TABLE), Records(lines_table)

    def line(order_id: int, line_no: int, sku: str) -> dict[str, Any]:
        image = {"id": {"N": str(order_id)}, "line": {"N": str(line_no)}, "sku": {"S": sku},
                 "version": {"N": "1"}, "status": {"S": "accepted"}}
        record = lines.insert(image)
        record["dynamodb"]["Keys"] = {"id": image["id"], "line": image["line"]}
        return record

    good = [orders.insert(item(1, 1)), line(1, 1, "A-1")]
    bad = line(1, 2, "TOO-LONG-SKU")
    # WHEN a good two-table batch is written back: one transaction, one statement per table
    first = process(good, cfg, legacy.executor, None)
    assert first.round_trips == 1  # BEGIN; per table upsert + read-back; COMMIT: one query
    assert legacy.wire.round_trips == 1
    assert sorted(legacy.rows()) == [1]
    # AND a batch with the poison line between two orders
    batch = [orders.insert(item(2, 1)), bad, orders.insert(item(3, 1))]
    result = process(batch, cfg, legacy.executor, None)
    # THEN the order before it is applied, the line is the failure, nothing after it
    assert result.failures == [bad["dynamodb"]["SequenceNumber"]]
    assert sorted(legacy.rows()) == [1, 2]
    cur = legacy.check.cursor()
    cur.execute("SELECT order_id, line_no, sku FROM order_lines")
    assert cur.fetchall() == ((1, 1, "A-1"),)
    assert "1406" in (result.poison or "")  # ER_DATA_TOO_LONG


def test_dms_echo_ttl_and_status_only_are_not_written_back(legacy: Legacy) -> None:
    # GIVEN a row written back at v1
    r = Records(TABLE)
    process([r.insert(item(70, 1))], legacy.cfg, legacy.executor, None)
    changes = legacy.changes()
    # WHEN a DMS echo, a status-only update and a TTL delete arrive
    batch = [r.modify(item(70, 1, status=None), item(70, 2, note="dms", status=None)),
             r.modify(item(70, 1), item(70, 1, status="applied")),
             r.remove(item(70, 1, status="applied"), ttl=True)]
    result = process(batch, legacy.cfg, legacy.executor, None)
    # THEN nothing reaches the database
    assert result.round_trips == 0
    assert result.failures == []
    assert legacy.changes() == changes
    assert legacy.rows()[70] == (Decimal("10.50"), "n", "c1", 1)


def test_moto_stream_records_write_back_to_mariadb(legacy: Legacy) -> None:
    with mock_aws():
        # GIVEN items written to a moto table with a stream
        stream = MotoStream("dmsbus-test-ingest-orders-maria")
        cfg = config(stream.table, legacy.legacy_table, kind="mysql")
        stream.ddb.put_item(TableName=stream.table, Item=item(80, 1, note="from moto"))
        stream.ddb.put_item(TableName=stream.table, Item=item(80, 2, note="second"))
        # WHEN the stream's records are written back, and the status records after them
        first = process(stream.read(), cfg, legacy.executor, stream.ddb)
        second = process(stream.read(), cfg, legacy.executor, stream.ddb)
        # THEN the row is at v2, the item applied, and the status record was ignored
        assert first.failures == []
        assert legacy.rows() == {80: (Decimal("10.50"), "second", "c1", 2)}
        got = stream.ddb.get_item(TableName=stream.table, Key={"id": {"N": "80"}})["Item"]
        assert got["status"] == {"S": "applied"}
        assert second.skipped == {"status-only update": 1}


@pytest.mark.parametrize("missing", WRITEBACK_GRANTS)
def test_a_login_missing_one_grant_fails_the_batch_with_access_denied(
    legacy: Legacy, missing: str
) -> None:
    # GIVEN legacy rows at v1, and a login holding every writeback grant but one
    legacy.seed(90, 1)
    legacy.seed(91, 1)
    before, changes = legacy.rows(), legacy.changes()
    executor = legacy.login(tuple(g for g in WRITEBACK_GRANTS if g != missing))
    r = Records(TABLE)
    # a batch needing all four: an insert, an update of an existing row, a delete
    batch = [r.insert(item(92, 1)), r.modify(item(90, 1), item(90, 2, note="v2")),
             r.remove(item(91, 1))]
    # WHEN written back
    with pytest.raises(pymysql.err.OperationalError) as raised:
        process(batch, legacy.cfg, executor, None)
    # THEN the invocation fails as a whole with the server's access-denied error naming the
    # command: not a poison record, not a silent skip; nothing is written
    code, message = raised.value.args[:2]
    assert code in (1142, 1143)  # ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR
    assert f"{missing} command denied" in message
    assert legacy.rows() == before
    assert legacy.changes() == changes
