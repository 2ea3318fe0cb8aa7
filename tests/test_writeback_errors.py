"""Error classification of the writeback, on the REAL servers (tests/servers.py).

What the servers can produce is produced: a lock timeout behind a held row lock, a deadlock
between two sessions, a statement timeout, a dropped table and a dropped column. Each must be
classified as the table in handlers/writeback_sql.py says (docs/writeback.md, "When a batch
fails"): a transient error retries the whole batch (the original error is raised, nothing is
blamed on a record, no status is written), a missing table or column is `SchemaNotReady`
(the whole batch retried, never a poison record, never shown to API clients). The Data API's
error shapes are in tests/test_writeback_dataapi.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dms_event_bus.handlers import writeback_sql
from dms_event_bus.handlers.writeback import process
from dms_event_bus.handlers.writeback_sql import SchemaNotReadyError
from tests.servers import DbServer, mariadb, postgres  # noqa: F401
from tests.test_writeback_mariadb import Legacy as MariaLegacy
from tests.test_writeback_pg import CFG, TABLE, Legacy, StatusRecorder
from tests.writeback_support import Records, item


@pytest.fixture
def pg(postgres: DbServer) -> Legacy:  # noqa: F811 - the fixture imported above
    return Legacy(postgres)


@pytest.fixture
def maria(mariadb: DbServer) -> MariaLegacy:  # noqa: F811 - the fixture imported above
    return MariaLegacy(mariadb)


def run_expecting_error(batch: list[dict[str, Any]], cfg: Any, executor: Any
                        ) -> tuple[BaseException, StatusRecorder]:
    status = StatusRecorder()
    with pytest.raises(Exception) as raised:  # noqa: PT011 - classified below
        process(batch, cfg, executor, status)
    return raised.value, status


def in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


# --------------------------------------------------------------------------- PostgreSQL


def test_pg_lock_timeout_behind_a_held_row_lock_retries_the_batch(pg: Legacy) -> None:
    # GIVEN another session holding row 1's lock, and the handler's session lock_timeout
    pg.seed(1, 1)
    holder = pg.db.admin_connect()
    holder.cursor().execute("BEGIN; SELECT * FROM sales.orders WHERE order_id = 1 FOR UPDATE")
    pg.conn.execute("SET lock_timeout = '200ms'")
    r = Records(TABLE)
    # WHEN a batch updating row 1 is written back
    exc, status = run_expecting_error([r.insert(item(2, 1)), r.insert(item(1, 2))], CFG,
                                      pg.executor)
    holder.cursor().execute("ROLLBACK")
    # THEN it is lock_not_available, classified "retry the batch": no record blamed
    assert getattr(exc, "sqlstate", None) == "55P03"
    assert writeback_sql.error_class("postgres", exc) == "retry"
    assert status.calls == []
    assert sorted(pg.rows()) == [1]


def test_pg_statement_timeout_retries_the_batch(pg: Legacy) -> None:
    pg.seed(1, 1)
    holder = pg.db.admin_connect()
    holder.cursor().execute("BEGIN; SELECT * FROM sales.orders WHERE order_id = 1 FOR UPDATE")
    pg.conn.execute("SET statement_timeout = '200ms'")
    r = Records(TABLE)
    exc, status = run_expecting_error([r.insert(item(1, 2))], CFG, pg.executor)
    holder.cursor().execute("ROLLBACK")
    assert getattr(exc, "sqlstate", None) == "57014"  # query_canceled
    assert writeback_sql.error_class("postgres", exc) == "retry"
    assert status.calls == []


def test_pg_deadlock_between_two_sessions_retries_the_batch(pg: Legacy) -> None:
    # GIVEN rows 1 and 2; another session locks row 2 (its deadlock check waits 10 s, so
    # the handler's session is the one that detects the deadlock, after 1 s)
    pg.seed(1, 1)
    pg.seed(2, 1)
    other = pg.db.admin_connect()
    cur = other.cursor()
    cur.execute("SET deadlock_timeout = '10s'")
    cur.execute("BEGIN; UPDATE sales.orders SET note = 'other' WHERE order_id = 2")
    r = Records(TABLE)
    status = StatusRecorder()
    # WHEN the handler updates 1 then 2 (waiting for 2) and the other session then updates 1
    thread, out = in_thread(lambda: process([r.insert(item(1, 2)), r.insert(item(2, 2))],
                                            CFG, pg.executor, status))
    time.sleep(0.5)
    cur.execute("UPDATE sales.orders SET note = 'other' WHERE order_id = 1")
    thread.join(30)
    cur.execute("COMMIT")
    # THEN the handler's batch fails with deadlock_detected: retry the batch, blame nobody
    (exc,) = out
    assert getattr(exc, "sqlstate", None) == "40P01"
    assert writeback_sql.error_class("postgres", exc) == "retry"
    assert status.calls == []


@pytest.mark.parametrize("ddl", ["DROP TABLE sales.orders",
                                 "ALTER TABLE sales.orders DROP COLUMN note"])
def test_pg_missing_table_or_column_is_schema_not_ready(pg: Legacy, ddl: str) -> None:
    # GIVEN the legacy migration has not run yet (the table or a mapped column is missing)
    admin = pg.db.admin_connect()
    admin.cursor().execute(ddl)
    admin.close()
    r = Records(TABLE)
    # WHEN a batch is written back
    exc, status = run_expecting_error([r.insert(item(1, 1)), r.insert(item(2, 1))], CFG,
                                      pg.executor)
    # THEN the whole batch is "schema not ready": no poison record, no status shown to clients
    assert isinstance(exc, SchemaNotReadyError)
    assert exc.code in ("42P01", "42703", "42704")
    assert status.calls == []
    # AND once the migration has run, the same batch applies
    admin = pg.db.admin_connect()
    admin.cursor().execute("DROP TABLE IF EXISTS sales.orders; CREATE TABLE sales.orders ("
                           "order_id bigint PRIMARY KEY, amount numeric(12,2), note text, "
                           "customer varchar(20), row_version bigint); "
                           f"GRANT ALL ON sales.orders TO {pg.db.user}")
    admin.close()
    result = process([r.insert(item(1, 1)), r.insert(item(2, 1))], CFG, pg.executor, None)
    assert result.failures == []
    assert sorted(pg.rows()) == [1, 2]


# --------------------------------------------------------------------------- MariaDB


def _session(executor: Any, sql: str) -> None:
    cur = executor.connection.cursor()
    cur.execute(sql)
    cur.close()


def test_mariadb_lock_wait_timeout_retries_the_batch(maria: MariaLegacy) -> None:
    maria.seed(1, 1)
    holder = maria.db.admin_connect(maria.db.dbname)
    holder.cursor().execute("BEGIN")
    holder.cursor().execute("SELECT * FROM orders WHERE order_id = 1 FOR UPDATE")
    _session(maria.executor, "SET SESSION innodb_lock_wait_timeout = 1")
    r = Records(TABLE)
    exc, status = run_expecting_error([r.insert(item(1, 2))], maria.cfg, maria.executor)
    holder.rollback()
    assert exc.args[0] == 1205
    assert writeback_sql.error_class("mysql", exc) == "retry"
    assert status.calls == []


def test_mariadb_statement_timeout_retries_the_batch(maria: MariaLegacy) -> None:
    # GIVEN a held row lock and the handler's session max_statement_time of 0.3 s
    maria.seed(1, 1)
    holder = maria.db.admin_connect(maria.db.dbname)
    holder.cursor().execute("BEGIN")
    holder.cursor().execute("SELECT * FROM orders WHERE order_id = 1 FOR UPDATE")
    _session(maria.executor, "SET SESSION max_statement_time = 0.3")
    r = Records(TABLE)
    # WHEN a batch waits for the row past that time
    exc, status = run_expecting_error([r.insert(item(1, 2))], maria.cfg, maria.executor)
    holder.rollback()
    # THEN ER_STATEMENT_TIMEOUT (1969): retry the batch, never a poison record
    assert exc.args[0] == 1969
    assert writeback_sql.error_class("mysql", exc) == "retry"
    assert status.calls == []


def test_mariadb_deadlock_between_two_sessions_retries_the_batch(maria: MariaLegacy) -> None:
    # GIVEN rows 1..30; another session has changed rows 2..30 (InnoDB rolls back the
    # transaction that changed fewer rows: the handler's)
    for order_id in range(1, 31):
        maria.seed(order_id, 1)
    other = maria.db.admin_connect(maria.db.dbname)
    cur = other.cursor()
    cur.execute("BEGIN")
    cur.execute("UPDATE orders SET note = 'other' WHERE order_id >= 2")
    r = Records(TABLE)
    status = StatusRecorder()
    # WHEN the handler updates 1 then 2 (waiting for 2) and the other session then updates 1
    thread, out = in_thread(lambda: process([r.insert(item(1, 2)), r.insert(item(2, 2))],
                                            maria.cfg, maria.executor, status))
    time.sleep(0.5)
    cur.execute("UPDATE orders SET note = 'other' WHERE order_id = 1")
    thread.join(30)
    other.commit()
    (exc,) = out
    assert exc.args[0] == 1213
    assert writeback_sql.error_class("mysql", exc) == "retry"
    assert status.calls == []


@pytest.mark.parametrize(("ddl", "code"), [("DROP TABLE orders", 1146),
                                           ("ALTER TABLE orders DROP COLUMN note", 1054)])
def test_mariadb_missing_table_or_column_is_schema_not_ready(
    maria: MariaLegacy, ddl: str, code: int
) -> None:
    admin = maria.db.admin_connect(maria.db.dbname)
    admin.cursor().execute(ddl)
    admin.close()
    r = Records(TABLE)
    exc, status = run_expecting_error([r.insert(item(1, 1)), r.insert(item(2, 1))],
                                      maria.cfg, maria.executor)
    assert isinstance(exc, SchemaNotReadyError)
    assert exc.code == str(code)
    assert status.calls == []


# --------------------------------------------------------------------------- the tables


@pytest.mark.parametrize(("code", "expected"), [
    ("40P01", "retry"), ("55P03", "retry"), ("40001", "retry"), ("57014", "retry"),
    ("08006", "retry"), ("57P01", "retry"), ("53300", "retry"), ("42501", "retry"),
    ("42P01", "schema"), ("42703", "schema"), ("3F000", "schema"),
    ("22001", "record"), ("22P02", "record"), ("23505", "record"), ("23502", "record"),
    ("P0001", "record"),
])
def test_postgres_sqlstate_table(code: str, expected: str) -> None:
    assert writeback_sql.classify_sqlstate(code) == expected


@pytest.mark.parametrize(("errno", "expected"), [
    (1213, "retry"), (1205, "retry"), (1969, "retry"), (3024, "retry"), (2013, "retry"),
    (2006, "retry"), (1040, "retry"), (1142, "retry"), (1927, "retry"), (1317, "retry"),
    (1146, "schema"), (1054, "schema"), (1049, "schema"),
    (1264, "record"), (1406, "record"), (1366, "record"), (1048, "record"), (1062, "record"),
    (1452, "record"), (4025, "record"),
])
def test_mysql_errno_table(errno: int, expected: str) -> None:
    assert writeback_sql.classify_errno(errno) == expected
