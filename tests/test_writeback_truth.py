"""The write path tells the truth (issue: a refused write is never reported as `applied`).

Against the REAL PostgreSQL and MariaDB servers (tests/servers.py): per change, the writeback
learns in the batch's own round trip whether the legacy row now holds the change (`applied`:
written now, or already there with the same version and content) or refused it (`conflict`,
with the legacy row's version and why): legacy row newer, same version with other content,
a foreign row under the same key (MySQL/MariaDB case-insensitive keys). A delete followed
by a re-creation of one key in one batch ends as the re-creation.
"""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from dms_event_bus.handlers.writeback import Config, DbApiExecutor, process
from tests.servers import DbServer, mariadb, postgres  # noqa: F401
from tests.test_writeback_mariadb import Legacy as MariaLegacy
from tests.test_writeback_pg import CFG, TABLE, Legacy, StatusRecorder
from tests.writeback_support import Records, item


def details(status: StatusRecorder) -> dict[str, str]:
    return {c["Key"]["id"]["N" if "N" in c["Key"]["id"] else "S"]:
            c["ExpressionAttributeValues"].get(":d", {}).get("S", "") for c in status.calls}


@pytest.fixture
def pg(postgres: DbServer) -> Legacy:  # noqa: F811 - the fixture imported above
    return Legacy(postgres)


@pytest.fixture
def maria(mariadb: DbServer) -> MariaLegacy:  # noqa: F811 - the fixture imported above
    return MariaLegacy(mariadb)


class Engine:
    """One legacy database under test, PostgreSQL or MariaDB, with the same interface."""

    def __init__(self, legacy: Legacy | MariaLegacy, cfg: Config) -> None:
        self.legacy = legacy
        self.cfg = cfg
        self.executor: DbApiExecutor = legacy.executor

    def run(self, batch: list[dict[str, Any]]) -> tuple[Any, StatusRecorder]:
        status = StatusRecorder()
        return process(batch, self.cfg, self.executor, status), status

    def seed(self, order_id: int, version: int) -> None:
        self.legacy.seed(order_id, version)


@pytest.fixture(params=["postgres", "mariadb"])
def engine(request: pytest.FixtureRequest) -> Engine:
    if request.param == "postgres":
        return Engine(request.getfixturevalue("pg"), CFG)
    legacy = request.getfixturevalue("maria")
    return Engine(legacy, legacy.cfg)


def test_a_write_refused_because_the_legacy_row_is_newer_is_a_conflict(engine: Engine) -> None:
    # GIVEN a legacy row at version 5 (the legacy application moved it on)
    engine.seed(1, 5)
    before = engine.legacy.rows()
    r = Records(TABLE)
    # WHEN the write path's version 3 of that row and a new row 2 are written back
    result, status = engine.run([r.insert(item(1, 3, amount="3.00")), r.insert(item(2, 1))])
    # THEN the legacy row keeps version 5; row 2 is written
    assert engine.legacy.rows()[1] == before[1]
    assert engine.legacy.rows()[2][3] == 1
    # AND item 1 says `conflict` with the legacy version and why; item 2 says `applied`
    assert status.statuses() == {"1": "conflict", "2": "applied"}
    assert details(status)["1"] == (
        "conflict: the legacy row is at version 5, newer than this change's version 3; "
        "not written")
    assert result.failures == []
    assert [c[1] for c in result.conflicts] == [details(status)["1"]]


def test_a_change_already_in_the_legacy_row_is_applied(engine: Engine) -> None:
    # GIVEN a change written back once
    r = Records(TABLE)
    batch = [r.insert(item(3, 2, amount="7.25", note="same"))]
    engine.run(batch)
    # WHEN the same change is delivered again (retry, replay)
    result, status = engine.run(batch)
    # THEN nothing changed, and the item still truthfully says `applied`
    assert result.rows_changed == 0
    assert status.statuses() == {"3": "applied"}
    assert result.conflicts == []


def test_same_version_with_other_content_is_a_conflict(engine: Engine) -> None:
    # GIVEN a legacy row at version 1 written by an earlier request under the same
    # Idempotency-Key (its DynamoDB item expired through TTL and is gone)
    r = Records(TABLE)
    engine.run([r.insert(item(4, 1, note="the first request"))])
    # WHEN a new request re-uses the key: a new item, version 1 again, other content
    result, status = engine.run([r.insert(item(4, 1, note="a new request"))])
    # THEN the legacy row keeps the first request; the new item says `conflict`, and why
    assert engine.legacy.rows()[4][1] == "the first request"
    assert status.statuses() == {"4": "conflict"}
    assert details(status)["4"] == (
        "conflict: the legacy row holds version 1 with other content (an earlier request "
        "under this key?); not written")
    assert len(result.conflicts) == 1


def test_delete_then_re_create_in_one_batch_ends_as_the_re_creation(engine: Engine) -> None:
    # GIVEN a legacy row at version 3
    r = Records(TABLE)
    engine.run([r.insert(item(5, 3, note="old"))])
    # WHEN one batch carries the item's delete (v3) and then its re-creation (v1)
    result, status = engine.run([r.remove(item(5, 3, note="old")),
                                 r.insert(item(5, 1, note="re-created"))])
    # THEN the legacy row is the re-creation, and the new item says `applied`
    assert result.failures == []
    assert engine.legacy.rows()[5] == (Decimal("10.50"), "re-created", "c1", 1)
    assert status.statuses() == {"5": "applied"}


def test_a_replayed_re_creation_changes_no_row(engine: Engine) -> None:
    # GIVEN a legacy row at version 3, and the batch that deleted it and re-created the item
    # at version 1, written back once
    r = Records(TABLE)
    engine.run([r.insert(item(15, 3, note="old"))])
    batch = [r.remove(item(15, 3, note="old")), r.insert(item(15, 1, note="re-created"))]
    engine.run(batch)
    after = engine.legacy.rows()
    changes = engine.legacy.changes()
    # WHEN the same batch is delivered again (a Lambda retry)
    result, status = engine.run(batch)
    # THEN no row changes (the row already is the re-creation: it is neither deleted nor
    # written again), and the item still says `applied`
    assert result.failures == []
    assert result.rows_changed == 0
    assert engine.legacy.changes() == changes
    assert engine.legacy.rows() == after
    assert status.statuses() == {"15": "applied"}


def test_a_re_creation_replaces_a_row_at_its_version_with_other_content(engine: Engine) -> None:
    # GIVEN a legacy row at version 1 whose content is not the re-creation's
    r = Records(TABLE)
    engine.run([r.insert(item(16, 1, note="first life"))])
    # WHEN a batch deletes the item's v3 and re-creates it at v1 with other content
    result, status = engine.run([r.remove(item(16, 3)),
                                 r.insert(item(16, 1, note="second life"))])
    # THEN as one by one: the delete removes the row (1 <= 3), the re-creation is written
    assert result.failures == []
    assert engine.legacy.rows()[16][1] == "second life"
    assert status.statuses() == {"16": "applied"}


def test_delete_then_re_create_is_refused_when_the_legacy_row_is_newer(engine: Engine) -> None:
    # GIVEN a legacy row the legacy application moved on to version 9
    engine.seed(6, 9)
    before = engine.legacy.rows()[6]
    r = Records(TABLE)
    # WHEN the write path deletes its v3 and re-creates the item at v1 in one batch
    _, status = engine.run([r.remove(item(6, 3)), r.insert(item(6, 1))])
    # THEN neither applies: the row stays, the re-created item says `conflict`
    assert engine.legacy.rows()[6] == before
    assert status.statuses() == {"6": "conflict"}


def test_an_upsert_then_its_delete_in_one_batch_deletes(engine: Engine) -> None:
    # GIVEN a legacy row at v1; WHEN a batch updates it to v2 and deletes v2
    r = Records(TABLE)
    engine.run([r.insert(item(7, 1))])
    result, status = engine.run([r.modify(item(7, 1), item(7, 2)), r.remove(item(7, 2))])
    # THEN the row is gone, and no status is written for an item that is gone
    assert 7 not in engine.legacy.rows()
    assert status.statuses() == {}
    assert result.failures == []


def test_a_refused_delete_is_counted_as_a_conflict(engine: Engine) -> None:
    # GIVEN a legacy row at v4; WHEN the write path's delete of v2 arrives
    engine.seed(8, 4)
    r = Records(TABLE)
    result, status = engine.run([r.remove(item(8, 2))])
    # THEN the row stays and the refusal is reported (no item left for a status)
    assert 8 in engine.legacy.rows()
    assert status.statuses() == {}
    assert [c[1] for c in result.conflicts] == [
        "conflict: the legacy row is at version 4, newer than this change's version 2; "
        "not deleted"]


def test_conflicts_are_counted_in_the_metrics_line_and_logged_once(
    engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dms_event_bus.handlers import writeback

    engine.seed(9, 5)
    r = Records(TABLE)
    monkeypatch.setattr(writeback, "_config", lambda: engine.cfg)
    monkeypatch.setattr(writeback, "executor_for", lambda _t: engine.executor)
    monkeypatch.setattr(writeback, "_boto3_client", lambda _s: StatusRecorder())
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "dmsbus-t-writeback")
    capsys.readouterr()
    stale = r.insert(item(9, 2))
    writeback.handler({"Records": [stale, r.insert(item(10, 1))]}, None)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    (metrics,) = [x for x in lines if "_aws" in x]
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "DmsEventBus/Writeback"
    assert metrics["Conflicts"] == 1
    assert metrics["Applied"] == 1
    assert metrics["Function"] == "dmsbus-t-writeback"
    # AND the conflict is logged once: its sequence number, table and reason, in the batch's
    # one conflicts line
    (logged,) = [x for x in lines if x.get("level") == "warning"]
    assert logged["conflicts"] == [{
        "sequence_number": stale["dynamodb"]["SequenceNumber"],
        "table": TABLE,
        "reason": "conflict: the legacy row is at version 5, newer than this change's "
                  "version 2; not written"}]


# --------------------------------------------------------------------------- text versions


def test_a_text_version_column_is_compared_numerically(pg: Legacy) -> None:
    # GIVEN a legacy table whose version column is text, its row at version "9"
    admin = pg.db.admin_connect()
    admin.cursor().execute(
        "CREATE TABLE sales.texty (order_id bigint PRIMARY KEY, note text, row_version text);"
        "INSERT INTO sales.texty VALUES (1, 'v9', '9'), (2, 'v10', '10');"
        f"GRANT ALL ON sales.texty TO {pg.db.user}")
    admin.close()
    cfg = Config.from_json({"target": {"kind": "postgres"}, "tables": {TABLE: {
        "legacy_table": "sales.texty", "key_columns": {"id": "order_id"},
        "columns": {"note": "note"}, "version_column": "row_version"}}})
    r = Records(TABLE)
    status = StatusRecorder()
    # WHEN version 10 of row 1 and version 9 of row 2 arrive
    process([r.insert(item(1, 10, note="v10")), r.insert(item(2, 9, note="v9"))], cfg,
            pg.executor, status)
    # THEN "10" is newer than "9" (as numbers, not as text) and "9" older than "10"
    cur = pg.check.cursor()
    cur.execute("SELECT order_id, note, row_version FROM sales.texty ORDER BY 1")
    assert [list(r) for r in cur.fetchall()] == [[1, "v10", "10"], [2, "v10", "10"]]
    assert status.statuses() == {"1": "applied", "2": "conflict"}


def test_a_text_version_column_is_compared_numerically_on_mariadb(maria: MariaLegacy) -> None:
    admin = maria.db.admin_connect(maria.db.dbname)
    cur = admin.cursor()
    cur.execute("CREATE TABLE texty (order_id bigint PRIMARY KEY, note text, "
                "row_version varchar(20))")
    cur.execute("INSERT INTO texty VALUES (1, 'v9', '9'), (2, 'v10', '10')")
    for host in ("127.0.0.1", "localhost"):
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{maria.db.dbname}`.texty TO "
                    "%s@%s", (maria.executor.connection.user.decode()
                              if isinstance(maria.executor.connection.user, bytes)
                              else maria.executor.connection.user, host))
    admin.close()
    cfg = Config.from_json({"target": {"kind": "mysql"}, "tables": {TABLE: {
        "legacy_table": f"{maria.db.dbname}.texty", "key_columns": {"id": "order_id"},
        "columns": {"note": "note"}, "version_column": "row_version"}}})
    r = Records(TABLE)
    status = StatusRecorder()
    process([r.insert(item(1, 10, note="v10")), r.insert(item(2, 9, note="v9"))], cfg,
            maria.executor, status)
    cur = maria.check.cursor()
    cur.execute("SELECT order_id, note, row_version FROM texty ORDER BY 1")
    assert cur.fetchall() == ((1, "v10", "10"), (2, "v10", "10"))
    assert status.statuses() == {"1": "applied", "2": "conflict"}


# --------------------------------------------------------------------------- collations


def test_a_foreign_row_under_a_case_insensitive_key_is_a_conflict(maria: MariaLegacy) -> None:
    # GIVEN a legacy table keyed by a case-insensitive varchar, holding row 'Order-7' v1
    admin = maria.db.admin_connect(maria.db.dbname)
    cur = admin.cursor()
    cur.execute("CREATE TABLE named (code varchar(20) COLLATE utf8mb4_general_ci PRIMARY KEY,"
                " note text, row_version bigint) DEFAULT CHARSET=utf8mb4")
    cur.execute("INSERT INTO named VALUES ('Order-7', 'legacy', 1)")
    user = maria.executor.connection.user
    user = user.decode() if isinstance(user, bytes) else user
    for host in ("127.0.0.1", "localhost"):
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{maria.db.dbname}`.named TO "
                    "%s@%s", (user, host))
    admin.close()
    table = "dmsbus-test-ingest-named"
    cfg = Config.from_json({"target": {"kind": "mysql"}, "tables": {table: {
        "legacy_table": f"{maria.db.dbname}.named", "key_columns": {"id": "code"},
        "columns": {"note": "note"}, "version_column": "row_version"}}})
    r = Records(table)

    def named(code: str, version: int, note: str) -> dict[str, Any]:
        return {"id": {"S": code}, "note": {"S": note}, "version": {"N": str(version)},
                "status": {"S": "accepted"}}

    status = StatusRecorder()
    # WHEN items 'order-7' (another item: DynamoDB keys are case-sensitive) at v2, and the
    # new 'Row-1' and 'ROW-1' (one legacy key) arrive in one batch
    result = process([r.insert(named("order-7", 2, "foreign")),
                      r.insert(named("Row-1", 1, "first")),
                      r.insert(named("ROW-1", 1, "second"))], cfg, maria.executor, status)
    # THEN the legacy rows keep their own keys and content; the foreign ones are conflicts
    cur = maria.check.cursor()
    cur.execute("SELECT code, note, row_version FROM named ORDER BY code")
    assert cur.fetchall() == (("Order-7", "legacy", 1), ("Row-1", "first", 1))
    got = {c["Key"]["id"]["S"]: c["ExpressionAttributeValues"][":s"]["S"]
           for c in status.calls}
    assert got == {"order-7": "conflict", "Row-1": "applied", "ROW-1": "conflict"}
    reasons = sorted(c[1] for c in result.conflicts)
    assert reasons == [
        "conflict: the legacy row under this key is 'Order-7' (the legacy database "
        "compares these keys as equal): another item's row; not written",
        "conflict: the legacy row under this key is 'Row-1' (the legacy database "
        "compares these keys as equal): another item's row; not written",
    ]


def test_many_conflicts_are_logged_in_lines_of_a_bounded_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN 250 refused changes of one batch
    from dms_event_bus.handlers import writeback

    refusals = [SimpleNamespace(change=SimpleNamespace(seq=f"{n:021d}", table=TABLE),
                                reason=f"conflict: #{n}") for n in range(250)]
    # WHEN they are logged
    writeback.log_refusals(refusals)  # type: ignore[arg-type]
    # THEN every one is named once, in lines of at most 100 (a log event stays far below
    # CloudWatch's 256 KB), not a line per change
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [len(x["conflicts"]) for x in lines] == [100, 100, 50]
    assert [c["reason"] for x in lines for c in x["conflicts"]] == [
        f"conflict: #{n}" for n in range(250)]
    assert {x["level"] for x in lines} == {"warning"}
