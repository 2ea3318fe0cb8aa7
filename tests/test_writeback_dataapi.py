"""The RDS Data API path: the exact SQL and parameter sets sent, checked with botocore's
Stubber (no AWS, no moto: the stub fails on any unexpected call or argument)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from handlers.writeback import Config, DataApiExecutor, process
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


PG_ORDERS = (
    'WITH d AS (DELETE FROM "sales"."orders" AS t WHERE '
    '(t."order_id" = :p1 AND (t."row_version" IS NULL OR t."row_version" <= :p2)) '
    "RETURNING 1), "
    'u AS (INSERT INTO "sales"."orders" AS t ("order_id", "amount", "note", "row_version") '
    "VALUES (:p3, :p4, CAST(:p5 AS varchar(200)), :p6), "
    "(:p7, :p8, CAST(:p9 AS varchar(200)), :p10) "
    'ON CONFLICT ("order_id") DO UPDATE SET "amount" = EXCLUDED."amount", '
    '"note" = EXCLUDED."note", "row_version" = EXCLUDED."row_version" '
    'WHERE t."row_version" IS NULL OR t."row_version" < EXCLUDED."row_version" RETURNING 1) '
    "SELECT (SELECT count(*) FROM d) AS deleted, (SELECT count(*) FROM u) AS upserted"
)


def test_one_table_batch_is_one_execute_statement_with_exact_parameters(rds: Any) -> None:
    client, stub = rds
    # GIVEN two upserts (one with a 38-digit amount and a huge version) and a delete
    r = Records(TABLE)
    big = item(2, 2, amount="12345678901234567890123456789.123456789", note="ünï 'q'")
    big["version"] = {"N": "99999999999999999999"}
    batch = [r.insert(item(1, 1)), r.insert(big), r.remove(item(3, 4))]
    # THEN exactly one call: the statement and typed parameters (numbers stay exact)
    stub.add_response(
        "execute_statement",
        {"records": [[{"longValue": 1}, {"longValue": 2}]], "numberOfRecordsUpdated": 0},
        {
            **BASE,
            "sql": PG_ORDERS,
            "parameters": [
                {"name": "p1", "value": {"longValue": 3}},
                {"name": "p2", "value": {"stringValue": "4"}, "typeHint": "DECIMAL"},
                {"name": "p3", "value": {"longValue": 1}},
                {"name": "p4", "value": {"stringValue": "10.50"}, "typeHint": "DECIMAL"},
                {"name": "p5", "value": {"stringValue": "n"}},
                {"name": "p6", "value": {"longValue": 1}},
                {"name": "p7", "value": {"longValue": 2}},
                {"name": "p8", "value": {"stringValue": "12345678901234567890123456789.123456789"},
                 "typeHint": "DECIMAL"},
                {"name": "p9", "value": {"stringValue": "ünï 'q'"}},
                {"name": "p10", "value": {"stringValue": "99999999999999999999"},
                 "typeHint": "DECIMAL"},
            ],
        },
    )
    # WHEN written back
    result = process(batch, make_config(), executor(client), None)
    # THEN no failure, the counts come from the statement's result row
    assert result.failures == []
    assert result.rows_changed == 3
    assert result.round_trips == 1


def test_two_tables_run_in_one_transaction(rds: Any) -> None:
    client, stub = rds
    # GIVEN changes to two tables (composite key on the second)
    orders, lines = Records(TABLE), Records(LINES)
    line = {"id": {"N": "1"}, "line": {"N": "2"}, "sku": {"S": "A-1"}, "version": {"N": "3"},
            "status": {"S": "accepted"}}
    line_record = lines.insert(line)
    line_record["dynamodb"]["Keys"] = {"id": line["id"], "line": line["line"]}
    batch = [orders.insert(item(1, 1)), line_record]
    # THEN begin, one statement per table (config order), commit — all with the transaction
    stub.add_response("begin_transaction", {"transactionId": "tx-1"}, BASE)
    stub.add_response("execute_statement", {"records": [[{"longValue": 0}, {"longValue": 1}]]},
                      {**BASE, "sql": ANY, "parameters": ANY, "transactionId": "tx-1"})
    stub.add_response(
        "execute_statement",
        {"records": [[{"longValue": 0}, {"longValue": 1}]]},
        {
            **BASE,
            "transactionId": "tx-1",
            "sql": 'WITH u AS (INSERT INTO "sales"."order_lines" AS t '
                   '("order_id", "line_no", "sku", "row_version") VALUES (:p1, :p2, :p3, :p4) '
                   'ON CONFLICT ("order_id", "line_no") DO UPDATE SET "sku" = EXCLUDED."sku", '
                   '"row_version" = EXCLUDED."row_version" WHERE t."row_version" IS NULL OR '
                   't."row_version" < EXCLUDED."row_version" RETURNING 1) '
                   "SELECT 0 AS deleted, (SELECT count(*) FROM u) AS upserted",
            "parameters": [
                {"name": "p1", "value": {"longValue": 1}},
                {"name": "p2", "value": {"longValue": 2}},
                {"name": "p3", "value": {"stringValue": "A-1"}},
                {"name": "p4", "value": {"longValue": 3}},
            ],
        },
    )
    stub.add_response("commit_transaction", {"transactionStatus": "Transaction Committed"},
                      {"resourceArn": CLUSTER, "secretArn": SECRET, "transactionId": "tx-1"})
    # WHEN written back
    result = process(batch, make_config(), executor(client), None)
    # THEN both applied in 4 round trips
    assert result.failures == []
    assert result.rows_changed == 2
    assert result.round_trips == 4


def test_aurora_mysql_guarded_upsert_updates_the_version_last(rds: Any) -> None:
    client, stub = rds
    r = Records(TABLE)
    config = make_config(engine="mysql")
    stub.add_response(
        "execute_statement",
        {"numberOfRecordsUpdated": 1},
        {
            **BASE,
            "sql": "INSERT INTO `sales`.`orders` (`order_id`, `amount`, `note`, `row_version`) "
                   "VALUES (:p1, :p2, CAST(:p3 AS varchar(200)), :p4) ON DUPLICATE KEY UPDATE "
                   "`amount` = IF(`row_version` IS NULL OR VALUES(`row_version`) > "
                   "`row_version`, VALUES(`amount`), `amount`), "
                   "`note` = IF(`row_version` IS NULL OR VALUES(`row_version`) > "
                   "`row_version`, VALUES(`note`), `note`), "
                   "`row_version` = IF(`row_version` IS NULL OR VALUES(`row_version`) > "
                   "`row_version`, VALUES(`row_version`), `row_version`)",
            "parameters": [
                {"name": "p1", "value": {"longValue": 7}},
                {"name": "p2", "value": {"stringValue": "10.50"}, "typeHint": "DECIMAL"},
                {"name": "p3", "value": {"stringValue": "n"}},
                {"name": "p4", "value": {"longValue": 2}},
            ],
        },
    )
    result = process([r.insert(item(7, 2))], config, executor(client, "mysql"), None)
    assert result.failures == []
    assert result.rows_changed == 1


def test_rejected_record_is_isolated_with_rolled_back_probes(rds: Any) -> None:
    client, stub = rds
    # GIVEN three upserts; the database rejects any statement containing the second
    r = Records(TABLE)
    batch = [r.insert(item(1, 1)), r.insert(item(2, 1, note="x" * 300)),
             r.insert(item(3, 1))]
    reject = "ERROR: value too long for type character varying(200); SQLState: 22001"
    ok = {"records": [[{"longValue": 0}, {"longValue": 1}]]}
    # the full batch fails
    stub.add_client_error("execute_statement", "BadRequestException", reject)
    # binary search with probes in transactions that are always rolled back:
    # prefix [:1] applies, prefix [:2] is rejected -> the culprit is record 2
    stub.add_response("begin_transaction", {"transactionId": "probe-1"}, BASE)
    stub.add_response("execute_statement", ok,
                      {**BASE, "sql": ANY, "parameters": ANY, "transactionId": "probe-1"})
    stub.add_response("rollback_transaction", {"transactionStatus": "Rollback Complete"},
                      {"resourceArn": CLUSTER, "secretArn": SECRET, "transactionId": "probe-1"})
    stub.add_response("begin_transaction", {"transactionId": "probe-2"}, BASE)
    stub.add_client_error("execute_statement", "BadRequestException", reject)
    stub.add_response("rollback_transaction", {"transactionStatus": "Rollback Complete"},
                      {"resourceArn": CLUSTER, "secretArn": SECRET, "transactionId": "probe-2"})
    # apply the records before it: one statement with record 1 only
    stub.add_response("execute_statement", ok, {
        **BASE, "sql": ANY,
        "parameters": [
            {"name": "p1", "value": {"longValue": 1}},
            {"name": "p2", "value": {"stringValue": "10.50"}, "typeHint": "DECIMAL"},
            {"name": "p3", "value": {"stringValue": "n"}},
            {"name": "p4", "value": {"longValue": 1}},
        ],
    })
    # WHEN written back
    result = process(batch, make_config(), executor(client), None)
    # THEN record 2 is the batch item failure, with the database's reason
    assert result.failures == [batch[1]["dynamodb"]["SequenceNumber"]]
    assert "22001" in result.poison[0][1]


def test_throttling_is_not_blamed_on_a_record(rds: Any) -> None:
    client, stub = rds
    # GIVEN the Data API is throttling
    stub.add_client_error("execute_statement", "ThrottlingException", "slow down")
    r = Records(TABLE)
    # WHEN a batch is written back THEN the whole batch fails (Lambda retries it)
    with pytest.raises(client.exceptions.ClientError):
        process([r.insert(item(1, 1))], make_config(), executor(client), None)


def test_lambda_entry_with_the_data_api_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the handler's config for the Data API (as the component writes it) and stubbed
    # rds-data and DynamoDB clients in the container's cache
    import json

    from handlers import writeback

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
            "execute_statement", {"records": [[{"longValue": 0}, {"longValue": 1}]]},
            {**BASE, "sql": ANY, "parameters": [
                {"name": "p1", "value": {"longValue": 1}},
                {"name": "p2", "value": {"stringValue": "10.50"}, "typeHint": "DECIMAL"},
                {"name": "p3", "value": {"longValue": 3}},
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
