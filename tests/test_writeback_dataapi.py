"""The RDS Data API path: the exact SQL and parameter sets sent, checked with botocore's
Stubber (no AWS, no moto: the stub fails on any unexpected call or argument)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from dms_event_bus.handlers.writeback import Config, DataApiExecutor, process
from dms_event_bus.handlers.writeback_sql import SchemaNotReadyError, data_api_error_class
from tests.test_writeback_pg import StatusRecorder
from tests.writeback_support import Records, item

TABLE = "dmsbus-test-ingest-orders"
LINES = "dmsbus-test-ingest-order_lines"
CLUSTER = "arn:aws:rds:eu-west-1:123456789012:cluster:legacy"
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:legacy-AbCdEf"
BASE = {"resourceArn": CLUSTER, "secretArn": SECRET, "database": "sales"}


def make_config(*, engine: str = "postgres") -> Config:
    return Config.from_json({
        "target": {"kind": "data_api", "cluster_arn": CLUSTER, "secret_arn": SECRET,
                   "database": "sales", "engine": engine},
        "tables": {
            TABLE: {"legacy_table": "sales.orders", "key_columns": {"id": "order_id"},
                    "columns": {"amount": "amount", "note": "note"},
                    "version_column": "row_version",
                    "column_types": {"note": "varchar(200)"}},
            LINES: {"legacy_table": "sales.order_lines",
                    "key_columns": {"id": "order_id", "line": "line_no"},
                    "columns": {"sku": "sku"}, "version_column": "row_version"},
        },
    })


@pytest.fixture
def rds() -> Any:
    client = boto3.client("rds-data", region_name="eu-west-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def executor(client: Any, engine: str = "postgres") -> DataApiExecutor:
    return DataApiExecutor(client, cluster_arn=CLUSTER, secret_arn=SECRET, database="sales",
                           dialect=engine)


def sent_json(request: dict[str, Any], name: str) -> list[dict[str, Any]]:
    (param,) = [p for p in request["parameters"] if p["name"] == name]
    return json.loads(param["value"]["stringValue"])


class Capture:
    """A botocore parameter matcher that keeps what it was given (and accepts it)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def __eq__(self, other: object) -> bool:
        self.seen.append(other)
        return True

    __hash__ = None  # type: ignore[assignment]


def test_one_table_batch_is_one_execute_statement_with_exact_json_rows(rds: Any) -> None:
    client, stub = rds
    # GIVEN two upserts (one with a 38-digit amount and a huge version) and a delete
    r = Records(TABLE)
    big = item(2, 2, amount="12345678901234567890123456789.123456789", note="ünï 'q'")
    big["version"] = {"N": "99999999999999999999"}
    batch = [r.insert(item(1, 1)), r.insert(big), r.remove(item(3, 4))]
    sql, params = Capture(), Capture()
    # THEN exactly one call: deletes and upserts as one json parameter each (digits exact),
    # answered with the refusals only (none here)
    stub.add_response("execute_statement", {"records": [], "numberOfRecordsUpdated": 0},
                      {**BASE, "sql": sql, "parameters": params})
    # WHEN written back
    result = process(batch, make_config(), executor(client), None)
    assert result.failures == []
    assert result.rows_changed == 3
    assert result.round_trips == 1
    (text,) = sql.seen
    assert 'json_populate_recordset(NULL::"sales"."orders", CAST(:p1 AS json))' in text
    assert 'json_populate_recordset(NULL::"sales"."orders", CAST(:p2 AS json))' in text
    assert ('WHERE t."row_version" IS NULL OR CAST(t."row_version" AS numeric) < '
            'CAST(EXCLUDED."row_version" AS numeric) RETURNING t."order_id"') in text
    request = {"parameters": params.seen[0]}
    assert sent_json(request, "p1") == [{"order_id": "3", "row_version": "4"}]
    assert sent_json(request, "p2") == [
        {"order_id": "1", "amount": "10.50", "note": "n", "row_version": "1"},
        {"order_id": "2", "amount": "12345678901234567890123456789.123456789",
         "note": "ünï 'q'", "row_version": "99999999999999999999"}]


def test_refusal_rows_become_conflicts_with_the_legacy_version(rds: Any) -> None:
    client, stub = rds
    # GIVEN two upserts; the legacy row of the second is at version 7
    r = Records(TABLE)
    batch = [r.insert(item(1, 1)), r.insert(item(2, 3))]
    stub.add_response("execute_statement", {"records": [[
        {"stringValue": "u"}, {"longValue": 2}, {"stringValue": "7"}, {"booleanValue": False},
        {"isNull": True}, {"stringValue": "2"}]]}, {**BASE, "sql": ANY, "parameters": ANY})
    # WHEN written back
    result = process(batch, make_config(), executor(client), None)
    # THEN the second is a conflict naming version 7; the first is applied
    assert result.conflicts == [(batch[1]["dynamodb"]["SequenceNumber"],
                                 "conflict: the legacy row is at version 7, newer than this "
                                 "change's version 3; not written")]
    assert [c.key for c in result.applied] == [(1,)]
    assert result.rows_changed == 1


def test_two_tables_run_in_one_transaction(rds: Any) -> None:
    client, stub = rds
    # GIVEN changes to two tables (composite key on the second)
    orders, lines = Records(TABLE), Records(LINES)
    line = {"id": {"N": "1"}, "line": {"N": "2"}, "sku": {"S": "A-1"}, "version": {"N": "3"},
            "status": {"S": "accepted"}}
    line_record = lines.insert(line)
    line_record["dynamodb"]["Keys"] = {"id": line["id"], "line": line["line"]}
    batch = [orders.insert(item(1, 1)), line_record]
    params = Capture()
    # THEN begin, one statement per table (config order), commit — all with the transaction
    stub.add_response("begin_transaction", {"transactionId": "tx-1"}, BASE)
    stub.add_response("execute_statement", {"records": []},
                      {**BASE, "sql": ANY, "parameters": ANY, "transactionId": "tx-1"})
    stub.add_response("execute_statement", {"records": []},
                      {**BASE, "sql": ANY, "parameters": params, "transactionId": "tx-1"})
    stub.add_response("commit_transaction", {"transactionStatus": "Transaction Committed"},
                      {"resourceArn": CLUSTER, "secretArn": SECRET, "transactionId": "tx-1"})
    # WHEN written back
    result = process(batch, make_config(), executor(client), None)
    # THEN both applied in 4 round trips
    assert result.failures == []
    assert result.rows_changed == 2
    assert result.round_trips == 4
    assert sent_json({"parameters": params.seen[0]}, "p1") == [
        {"order_id": "1", "line_no": "2", "sku": "A-1", "row_version": "3"}]


def test_aurora_mysql_guarded_upsert_then_its_refusals_in_one_transaction(rds: Any) -> None:
    client, stub = rds
    r = Records(TABLE)
    config = make_config(engine="mysql")
    guard = ("(`row_version` IS NULL OR CAST(VALUES(`row_version`) AS DECIMAL(65,30)) > "
             "CAST(`row_version` AS DECIMAL(65,30))) AND BINARY `order_id` = "
             "BINARY VALUES(`order_id`)")
    stub.add_response("begin_transaction", {"transactionId": "tx-m"}, BASE)
    stub.add_response(
        "execute_statement",
        {"numberOfRecordsUpdated": 1},
        {
            **BASE, "transactionId": "tx-m",
            "sql": "INSERT INTO `sales`.`orders` (`order_id`, `amount`, `note`, `row_version`) "
                   "VALUES (:p1, :p2, CAST(:p3 AS varchar(200)), :p4) ON DUPLICATE KEY UPDATE "
                   f"`amount` = IF({guard}, VALUES(`amount`), `amount`), "
                   f"`note` = IF({guard}, VALUES(`note`), `note`), "
                   f"`row_version` = IF({guard}, VALUES(`row_version`), `row_version`)",
            "parameters": [
                {"name": "p1", "value": {"longValue": 7}},
                {"name": "p2", "value": {"stringValue": "10.50"}, "typeHint": "DECIMAL"},
                {"name": "p3", "value": {"stringValue": "n"}},
                {"name": "p4", "value": {"longValue": 2}},
            ],
        },
    )
    stub.add_response("execute_statement", {"records": []},
                      {**BASE, "transactionId": "tx-m", "sql": ANY, "parameters": ANY})
    stub.add_response("commit_transaction", {"transactionStatus": "Transaction Committed"},
                      {"resourceArn": CLUSTER, "secretArn": SECRET, "transactionId": "tx-m"})
    result = process([r.insert(item(7, 2))], config, executor(client, "mysql"), None)
    assert result.failures == []
    assert result.rows_changed == 1
    assert result.conflicts == []


def test_rejected_record_is_isolated_with_rolled_back_probes(rds: Any) -> None:
    client, stub = rds
    # GIVEN three upserts; the database rejects any statement containing the second
    r = Records(TABLE)
    batch = [r.insert(item(1, 1)), r.insert(item(2, 1, note="x" * 300)),
             r.insert(item(3, 1))]
    reject = "ERROR: value too long for type character varying(200); SQLState: 22001"
    ok: dict[str, Any] = {"records": []}
    # the full batch fails
    stub.add_client_error("execute_statement", "DatabaseErrorException", reject)
    # binary search with probes in transactions that are always rolled back:
    # prefix [:1] applies, prefix [:2] is rejected -> the culprit is record 2
    stub.add_response("begin_transaction", {"transactionId": "probe-1"}, BASE)
    stub.add_response("execute_statement", ok,
                      {**BASE, "sql": ANY, "parameters": ANY, "transactionId": "probe-1"})
    stub.add_response("rollback_transaction", {"transactionStatus": "Rollback Complete"},
                      {"resourceArn": CLUSTER, "secretArn": SECRET, "transactionId": "probe-1"})
    stub.add_response("begin_transaction", {"transactionId": "probe-2"}, BASE)
    stub.add_client_error("execute_statement", "DatabaseErrorException", reject)
    stub.add_response("rollback_transaction", {"transactionStatus": "Rollback Complete"},
                      {"resourceArn": CLUSTER, "secretArn": SECRET, "transactionId": "probe-2"})
    # apply the records before it: one statement with record 1 only
    params = Capture()
    stub.add_response("execute_statement", ok, {**BASE, "sql": ANY, "parameters": params})
    # WHEN written back
    result = process(batch, make_config(), executor(client), None)
    # THEN record 2 is the batch item failure, with the database's reason
    assert result.failures == [batch[1]["dynamodb"]["SequenceNumber"]]
    assert "22001" in (result.poison or "")
    assert sent_json({"parameters": params.seen[0]}, "p1") == [
        {"order_id": "1", "amount": "10.50", "note": "n", "row_version": "1"}]


def test_throttling_is_not_blamed_on_a_record(rds: Any) -> None:
    client, stub = rds
    # GIVEN the Data API is throttling
    stub.add_client_error("execute_statement", "ThrottlingException", "slow down")
    r = Records(TABLE)
    # WHEN a batch is written back THEN the whole batch fails (Lambda retries it)
    with pytest.raises(client.exceptions.ClientError):
        process([r.insert(item(1, 1))], make_config(), executor(client), None)


#: The Data API's error shapes (botocore's rds-data model: code + message) for errors a
#: batch shares with every record: each must fail the whole batch (retry), never a record.
TRANSIENT = [
    ("DatabaseErrorException", "ERROR: deadlock detected\n  Detail: Process 1 waits for "
     "ShareLock on transaction 2; blocked by process 3.; SQLState: 40P01"),
    ("DatabaseErrorException", "ERROR: canceling statement due to lock timeout; "
     "SQLState: 55P03"),
    ("DatabaseErrorException", "ERROR: could not serialize access due to concurrent update; "
     "SQLState: 40001"),
    ("DatabaseErrorException", "ERROR: canceling statement due to statement timeout; "
     "SQLState: 57014"),
    ("DatabaseErrorException", "Deadlock found when trying to get lock; try restarting "
     "transaction"),
    ("DatabaseErrorException", "Lock wait timeout exceeded; try restarting transaction"),
    ("BadRequestException", "Communications link failure\n\nThe last packet sent "
     "successfully to the server was 0 milliseconds ago."),
    ("StatementTimeoutException", "Request timed out"),
    ("DatabaseResumingException", "The Aurora DB instance db-1 is resuming after being "
     "auto-paused. Please wait a few seconds and try again."),
    ("DatabaseUnavailableException", ""),
    ("ServiceUnavailableError", ""),
    ("InternalServerErrorException", ""),
    ("TransactionNotFoundException", "Transaction tx-1 is not found"),
]


@pytest.mark.parametrize(("code", "message"), TRANSIENT)
def test_transient_data_api_errors_retry_the_batch(rds: Any, code: str, message: str) -> None:
    client, stub = rds
    stub.add_client_error("execute_statement", code, message)
    r = Records(TABLE)
    status = StatusRecorder()
    with pytest.raises(client.exceptions.ClientError) as raised:
        process([r.insert(item(1, 1)), r.insert(item(2, 1))], make_config(), executor(client),
                status)
    assert data_api_error_class(raised.value)[0] == "retry"
    assert status.calls == []


@pytest.mark.parametrize(("engine", "message", "code"), [
    ("postgres", 'ERROR: relation "sales.orders" does not exist\n  Position: 42; '
     "SQLState: 42P01", "42P01"),
    ("postgres", 'ERROR: column "note" of relation "orders" does not exist; SQLState: 42703',
     "42703"),
    ("mysql", "Table 'sales.orders' doesn't exist", "DatabaseErrorException"),
    ("mysql", "Unknown column 'note' in 'field list'", "DatabaseErrorException"),
])
def test_missing_table_or_column_through_the_data_api_is_schema_not_ready(
    rds: Any, engine: str, message: str, code: str
) -> None:
    client, stub = rds
    if engine == "mysql":
        stub.add_response("begin_transaction", {"transactionId": "tx-s"}, BASE)
    stub.add_client_error("execute_statement", "DatabaseErrorException", message)
    if engine == "mysql":
        stub.add_response("rollback_transaction", {"transactionStatus": "Rollback Complete"},
                          {"resourceArn": CLUSTER, "secretArn": SECRET,
                           "transactionId": "tx-s"})
    r = Records(TABLE)
    status = StatusRecorder()
    with pytest.raises(SchemaNotReadyError) as raised:
        process([r.insert(item(1, 1))], make_config(engine=engine),
                executor(client, engine), status)
    assert raised.value.code == code
    assert status.calls == []


def test_lambda_entry_with_the_data_api_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the handler's config for the Data API (as the component writes it) and stubbed
    # rds-data and DynamoDB clients in the container's cache
    from dms_event_bus.handlers import writeback

    raw = {"target": {"kind": "data_api", "cluster_arn": CLUSTER, "secret_arn": SECRET,
                      "database": "sales", "engine": "postgres"},
           "tables": {TABLE: {"legacy_table": "sales.orders", "key_columns": {"id": "order_id"},
                              "columns": {"amount": "amount"},
                              "version_column": "row_version"}}}
    monkeypatch.setenv("WRITEBACK_CONFIG", json.dumps(raw))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "dmsbus-t-writeback")
    rds = boto3.client("rds-data", region_name="eu-west-1")
    ddb = boto3.client("dynamodb", region_name="eu-west-1")
    monkeypatch.setattr(writeback, "_STATE", {"client:rds-data": rds, "client:dynamodb": ddb})
    r = Records(TABLE)
    event = {"Records": [r.insert(item(1, 3)), r.modify(item(1, 2), item(1, 2, status="applied"))]}
    with Stubber(rds) as rds_stub, Stubber(ddb) as ddb_stub:
        rds_stub.add_response(
            "execute_statement", {"records": []},
            {**BASE, "sql": ANY, "parameters": [
                {"name": "p1", "value": {"stringValue": '[{"order_id":"1","amount":"10.50",'
                                                         '"row_version":"3"}]'}},
            ]},
        )
        ddb_stub.add_response("update_item", {}, {
            "TableName": TABLE, "Key": {"id": {"N": "1"}},
            "UpdateExpression": "SET #s = :s REMOVE #d",
            "ConditionExpression": "#v = :v AND #s <> :s",
            "ExpressionAttributeNames": {"#s": "status", "#d": "status_detail", "#v": "version"},
            "ExpressionAttributeValues": {":s": {"S": "applied"}, ":v": {"N": "3"}},
        })
        # WHEN Lambda invokes the entry point
        response = writeback.handler(event, None)
        # THEN one statement, one conditional status update, no failures
        rds_stub.assert_no_pending_responses()
        ddb_stub.assert_no_pending_responses()
    assert response == {"batchItemFailures": []}
    # AND the embedded metrics line the poison alarm and the dashboard read
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    (metrics,) = [x for x in lines if "_aws" in x]
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "DmsEventBus/Writeback"
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Function"]]
    assert (metrics["Function"], metrics["Applied"], metrics["Poison"], metrics["Skipped"],
            metrics["RoundTrips"]) == ("dmsbus-t-writeback", 1, 0, 1, 1)
