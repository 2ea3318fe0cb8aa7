"""The binlog CDC stand-in (tools/localpipe/binlog_cdc.py) against a REAL MariaDB (binlog ROW/FULL,
started by tests/servers.py) and moto's DynamoDB."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import DbServer, mariadb  # noqa: F401
from tools.localpipe import aws
from tools.localpipe.aws import MotoWorld
from tools.localpipe.binlog_cdc import BinlogCdc, BinlogTableMap, Checkpoint, SimulatedCrash

BIG = "12345678901234567890123456.1234567891"  # DECIMAL(36,10): 36 exact digits

TYPED = (
    "CREATE TABLE typed ("
    " id BIGINT NOT NULL PRIMARY KEY,"
    " amount DECIMAL(36,10),"
    " big BIGINT UNSIGNED,"
    " flag TINYINT(1),"
    " created DATETIME(6),"
    " seen TIMESTAMP(3) NULL DEFAULT NULL,"
    " day DATE,"
    " at TIME(3),"
    " status ENUM('new','paid','void'),"
    " tags SET('red','green','blue'),"
    " doc JSON,"
    " payload BLOB,"
    " note TEXT,"
    " bits BIT(8)) DEFAULT CHARSET=utf8mb4"
)


@pytest.fixture
def ddb(moto_world: MotoWorld) -> Any:
    return moto_world.client("dynamodb")


def _table(ddb: Any, keys: list[tuple[str, str]]) -> str:
    name = f"dmsbus-e2e-{secrets.token_hex(3)}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": k, "KeyType": "HASH" if i == 0 else "RANGE"}
                   for i, (k, _) in enumerate(keys)],
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": t} for k, t in keys],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _settings(db: DbServer) -> dict[str, Any]:
    return {"host": db.host, "port": db.port, "user": db.user, "password": db.password}


def _sql(db: DbServer, *statements: str) -> None:
    conn = db.connect(autocommit=True)
    cur = conn.cursor()
    cur.execute("SET time_zone = '+00:00'")
    for s in statements:
        cur.execute(s)
    conn.close()


def _items(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    out = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            out[item["id"]["N"]] = item
    return out


def test_full_load_and_changes_land_with_dms_types(mariadb, ddb):  # noqa: F811
    # GIVEN a table of every MySQL type family, one row before the task starts
    db = mariadb.fresh_database("blc_types")
    _sql(db, TYPED,
         "INSERT INTO typed VALUES (1, 1.5, 18446744073709551615, 1, "
         "'2024-02-29 23:59:58.123456', '2024-03-01 10:00:00.250', '2024-02-29', '-01:02:03.5',"
         " 'paid', 'blue,red', '{\"a\": [1, 2.50, \"x\"]}', X'00FF10', 'héllo 東京', b'101')")
    target = _table(ddb, [("id", "N")])
    q = f"{db.dbname}.typed"
    cdc = BinlogCdc(_settings(db), ddb, {q: BinlogTableMap(q, target, ["id"])}, Checkpoint())
    # WHEN the full load runs, then inserts, an update and a delete are made and applied
    assert cdc.start() == 1
    _sql(db,
         f"INSERT INTO typed (id, amount, big, flag, created, seen, status, tags, payload) "
         f"VALUES (2, {BIG}, 9223372036854775807, 0, '1999-12-31 00:00:00', "
         f"'2038-01-19 03:14:07.999', 'new', '', X'')",
         "INSERT INTO typed (id) VALUES (3)",
         "UPDATE typed SET amount = -0.0000000001, note = NULL, status = 'void' WHERE id = 1",
         "DELETE FROM typed WHERE id = 3")
    assert cdc.step() == 4
    items = _items(ddb, target)
    cdc.close()
    # THEN the items hold exactly what DMS writes for each type; NULLs are absent
    assert set(items) == {"1", "2"}
    assert items["1"] == {
        "id": {"N": "1"}, "amount": {"N": "-0.0000000001"},
        "big": {"N": "18446744073709551615"}, "flag": {"N": "1"},
        "created": {"S": "2024-02-29 23:59:58.123456"}, "seen": {"S": "2024-03-01 10:00:00.25"},
        "day": {"S": "2024-02-29"}, "at": {"S": "-01:02:03.5"}, "status": {"S": "void"},
        "tags": {"S": "red,blue"}, "doc": {"S": '{"a": [1, 2.50, "x"]}'},
        "payload": {"B": b"\x00\xff\x10"}, "bits": {"N": "5"},
    }
    assert items["2"] == {
        "id": {"N": "2"}, "amount": {"N": BIG}, "big": {"N": "9223372036854775807"},
        "flag": {"N": "0"}, "created": {"S": "1999-12-31 00:00:00"},
        "seen": {"S": "2038-01-19 03:14:07.999"}, "status": {"S": "new"}, "tags": {"S": ""},
        "payload": {"B": b""},
    }


def test_the_binlog_and_the_full_load_write_the_same_item(mariadb, ddb):  # noqa: F811
    # GIVEN rows written after the task started (they arrive through the binlog)
    db = mariadb.fresh_database("blc_same")
    _sql(db, TYPED)
    target = _table(ddb, [("id", "N")])
    q = f"{db.dbname}.typed"
    tables = {q: BinlogTableMap(q, target, ["id"])}
    cdc = BinlogCdc(_settings(db), ddb, tables, Checkpoint())
    cdc.start()
    _sql(db,
         "INSERT INTO typed VALUES (7, 99999999999999999999999999.9999999999, 0, 1, "
         "'2000-01-01 00:00:00.000001', '1970-01-02 00:00:00', '0001-01-01', '838:59:59',"
         " 'void', 'red,green,blue', '[]', X'FFFFFFFF', 'x''y', b'11111111')",
         "INSERT INTO typed (id, tags) VALUES (8, 'green')")
    cdc.step()
    via_binlog = _items(ddb, target)
    cdc.close()
    # WHEN a second task full-loads the same rows into another table
    other = _table(ddb, [("id", "N")])
    loader = BinlogCdc(_settings(db), ddb, {q: BinlogTableMap(q, other, ["id"])}, Checkpoint())
    loader.start()
    loader.close()
    # THEN both paths wrote identical items
    assert _items(ddb, other) == via_binlog
    assert via_binlog["7"]["tags"] == {"S": "red,green,blue"}


def test_an_update_of_the_key_moves_the_item(mariadb, ddb):  # noqa: F811
    db = mariadb.fresh_database("blc_key")
    _sql(db, "CREATE TABLE k (id INT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO k VALUES (1, 'a')")
    target = _table(ddb, [("id", "N")])
    q = f"{db.dbname}.k"
    cdc = BinlogCdc(_settings(db), ddb, {q: BinlogTableMap(q, target, ["id"])}, Checkpoint())
    cdc.start()
    _sql(db, "UPDATE k SET id = 2, v = 'b' WHERE id = 1")
    cdc.step()
    assert _items(ddb, target) == {"2": {"id": {"N": "2"}, "v": {"S": "b"}}}
    cdc.close()


def test_checkpoint_moves_only_after_the_transaction_is_applied(mariadb, ddb):  # noqa: F811
    # GIVEN a task whose process dies right after applying a transaction
    db = mariadb.fresh_database("blc_ckpt")
    _sql(db, "CREATE TABLE c (id INT PRIMARY KEY, v INT)")
    target = _table(ddb, [("id", "N")])
    q = f"{db.dbname}.c"
    tables = {q: BinlogTableMap(q, target, ["id"])}
    checkpoint = Checkpoint()

    def die(point: str, n: int) -> None:
        if point == "applied":
            raise SimulatedCrash(point)

    cdc = BinlogCdc(_settings(db), ddb, tables, checkpoint, crash_hook=die)
    cdc.start()
    before = (checkpoint.log_file, checkpoint.log_pos)
    _sql(db, "INSERT INTO c VALUES (1, 10)")
    with pytest.raises(SimulatedCrash):
        cdc.step()
    cdc.close()
    # THEN the change is in DynamoDB but the checkpoint did not move
    assert (checkpoint.log_file, checkpoint.log_pos) == before
    assert _items(ddb, target) == {"1": {"id": {"N": "1"}, "v": {"N": "10"}}}
    # WHEN a new process resumes, the transaction is replayed (an identical put: skipped)
    again = BinlogCdc(_settings(db), ddb, tables, checkpoint)
    assert again.step() == 1
    assert again.skipped_identical == 1
    assert (checkpoint.log_file, checkpoint.log_pos) != before
    assert again.step() == 0  # nothing after the new checkpoint
    again.close()


_OP = st.tuples(st.sampled_from(["insert", "update", "delete", "bump"]), st.integers(1, 6),
                st.integers(-10**18, 10**18))
#: transactions of 1-4 statements (a crash in the middle of one's writes must replay it all)
_TXS = st.lists(st.lists(_OP, min_size=1, max_size=4), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(txs=_TXS, preload=st.integers(0, 4), crash_at=st.integers(1, 12),
       point=st.sampled_from(["write", "applied", "loaded"]))
def test_a_crash_at_any_point_replays_and_converges(mariadb, txs, preload, crash_at,  # noqa: F811
                                                    point):
    # GIVEN rows before the start and a random history of transactions after it
    with aws.moto_world() as world:  # one per example (the fixture would be one per test)
        ddb = world.client("dynamodb")
        db = mariadb.fresh_database("blc_crash")
        _sql(db, "CREATE TABLE h (id INT PRIMARY KEY, n DECIMAL(30,0), at DATETIME(6))",
             *[f"INSERT INTO h VALUES ({i}, {i * 7}, '2020-01-01')" for i in range(1, preload + 1)])
        target = _table(ddb, [("id", "N")])
        q = f"{db.dbname}.h"
        tables = {q: BinlogTableMap(q, target, ["id"])}
        checkpoint = Checkpoint()
        crashed: list[tuple[str, int]] = []

        def die(where: str, n: int) -> None:
            if where == point and n == crash_at and not crashed:
                crashed.append((where, n))
                raise SimulatedCrash(where)

        statements = []
        for t, tx in enumerate(txs):
            statements.append("BEGIN")
            for i, (op, key, n) in enumerate(tx):
                if op == "insert":
                    statements.append(f"INSERT INTO h VALUES ({key}, {n}, "
                                      f"'2021-01-01 00:{t:02d}:{i:02d}') "
                                      f"ON DUPLICATE KEY UPDATE n = {n}")
                elif op == "update":
                    statements.append(f"UPDATE h SET n = {n}, at = NOW(6) WHERE id = {key}")
                elif op == "bump":  # many rows in one statement
                    statements.append(f"UPDATE h SET n = n + 1 WHERE id >= {key}")
                else:
                    statements.append(f"DELETE FROM h WHERE id = {key}")
            statements.append("COMMIT")
        # WHEN the task runs with a crash injected at one point and a new process resumes
        def make(hook: Any) -> BinlogCdc:
            return BinlogCdc(_settings(db), ddb, tables, checkpoint, crash_hook=hook)

        cdc = make(die)
        try:
            cdc.start()
        except SimulatedCrash:  # during the full load: no checkpoint yet, it loads again
            cdc.close()
            cdc = make(None)
            cdc.start()
        _sql(db, *statements)
        try:
            cdc.step()
        except SimulatedCrash:  # replays from the last checkpoint
            cdc.close()
            cdc = make(None)
            cdc.step()
        assert cdc.step() == 0
        # THEN DynamoDB holds exactly the source's rows, as a fresh full load writes them
        expected_table = _table(ddb, [("id", "N")])
        fresh = BinlogCdc(_settings(db), ddb, {q: BinlogTableMap(q, expected_table, ["id"])},
                          Checkpoint())
        fresh.start()
        fresh.close()
        assert _items(ddb, target) == _items(ddb, expected_table)
        cdc.close()
