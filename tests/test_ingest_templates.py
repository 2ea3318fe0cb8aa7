"""IngestApi mapping templates: rendered with a Velocity engine on sample requests, the output
sent as-is to DynamoDB (moto), and the integration responses mapped from DynamoDB's real
(moto's) answers. Bodies are first validated by the request models, as API Gateway does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import jsonschema
import pytest
from moto import mock_aws

from dms_event_bus.components.ingest_api import (
    ID_PATTERN,
    WRITER,
    IngestApi,
    mapping_templates,
    request_schema,
)
from dms_event_bus.settings.component_args import ingest_api_args
from dms_event_bus.settings.ingest import EntitySettings, IngestSettings
from tests.apigw_vtl import (
    DeclaredApi,
    Request,
    Response,
    escape_javascript,
    render_request,
    render_response,
)
from tools.mockrun import Declared, Plan, run_program

MAX_BODY = 4096
SETTINGS = IngestSettings.model_validate(
    {
        "max_body_bytes": MAX_BODY,
        "entities": {
            "order_requests": {
                "request_like": True,
                "ttl_days": 7,
                "fields": {
                    "customer_id": {"type": "integer", "required": True, "minimum": 1},
                    "amount": {"type": "number", "required": True},
                    "currency": {"type": "string", "enum": ["EUR", "USD"]},
                    "note": {"type": "string", "max_length": 2000},
                    "express": {"type": "boolean"},
                },
            },
            "customer_profiles": {
                "fields": {
                    "name": {"type": "string", "required": True, "min_length": 1},
                    "vip": {"type": "boolean"},
                },
            },
        },
    }
)
ORDERS = SETTINGS.entities["order_requests"]
PROFILES = SETTINGS.entities["customer_profiles"]
ATTRIBUTE_TYPES = {"S", "N", "BOOL"}


# --------------------------------------------------------------------------- fixtures


class Dynamo:
    """A moto DynamoDB client that also keeps each call's raw HTTP answer, which is what
    API Gateway hands to the integration response templates."""

    def __init__(self) -> None:
        self.client = boto3.client("dynamodb", region_name="eu-west-1")
        self.last_status = 0
        self.last_body = ""
        self.client.meta.events.register("after-call.dynamodb", self._keep)

    def _keep(self, http_response: Any, **_: Any) -> None:
        self.last_status = http_response.status_code
        self.last_body = http_response.content.decode("utf-8")

    def create_table(self, name: str, *, ttl: bool) -> None:
        self.client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        if ttl:
            self.client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
            )

    def send(self, action: str, request_json: str) -> tuple[int, str]:
        """Send the rendered template, parsed, as the low-level call API Gateway makes."""
        method = {"PutItem": "put_item", "UpdateItem": "update_item", "GetItem": "get_item"}
        try:
            getattr(self.client, method[action])(**json.loads(request_json))
        except self.client.exceptions.ClientError:
            pass
        return self.last_status, self.last_body

    def items(self, table: str) -> list[dict[str, Any]]:
        return self.client.scan(TableName=table, ConsistentRead=True)["Items"]


@pytest.fixture
def dynamo() -> Iterator[tuple[Dynamo, dict[str, str]]]:
    with mock_aws():
        db = Dynamo()
        suffix = uuid.uuid4().hex[:8]
        names = {
            "order_requests": f"dmsbus-test{suffix}-ingest-order_requests",
            "customer_profiles": f"dmsbus-test{suffix}-ingest-customer_profiles",
        }
        db.create_table(names["order_requests"], ttl=True)
        db.create_table(names["customer_profiles"], ttl=False)
        yield db, names


def templates_for(entity: EntitySettings, table: str) -> dict[str, str]:
    return mapping_templates(entity, table_name=table, max_body_bytes=MAX_BODY)


def validated(entity: EntitySettings, kind: str, body: dict[str, Any]) -> str:
    """The body as the client sends it, after the request model accepted it."""
    jsonschema.Draft4Validator(request_schema("order_requests", entity, kind)).validate(body)  # type: ignore[arg-type]
    return json.dumps(body, ensure_ascii=False)


def assert_attribute_values(item: dict[str, Any]) -> None:
    """Every value is a DynamoDB attribute value: one type key, the right value shape."""
    for name, value in item.items():
        assert isinstance(value, dict) and len(value) == 1, (name, value)
        (kind, inner), = value.items()
        assert kind in ATTRIBUTE_TYPES, (name, value)
        if kind == "S":
            assert isinstance(inner, str)
        elif kind == "N":
            assert isinstance(inner, str)
            Decimal(inner)  # a number in text form
        else:
            assert isinstance(inner, bool)


def post(
    db: Dynamo, table: str, body: str, headers: dict[str, str] | None = None, **req: Any
) -> tuple[Request, dict[str, Any], int, str]:
    request = Request(body=body, headers=headers or {}, **req)
    rendered = render_request(templates_for(ORDERS, table)["post_request"], request)
    payload = rendered.json()
    status, answer = db.send("PutItem", rendered.text)
    return request, payload, status, answer


# --------------------------------------------------------------------------- POST


TRICKY_NOTES = [
    'she said "ship it"',
    "line one\nline two\r\n\ttabbed",
    "back\\slash \\n not a newline \\u0041",
    "ünïcödé — 日本語 — emoji 😀 — rtl עברית",
    "it's a single 'quote'",
    "$context.requestId #set($x = 1) ## not VTL",
    "</script><b>html</b> & {\"json\": [1, 2]}",
    "",
]


@pytest.mark.parametrize("note", TRICKY_NOTES, ids=range(len(TRICKY_NOTES)))
def test_post_renders_valid_put_item_for_tricky_strings(
    dynamo: tuple[Dynamo, dict[str, str]], note: str
) -> None:
    # GIVEN a valid body whose note holds quotes/newlines/backslashes/unicode/VTL syntax
    db, tables = dynamo
    table = tables["order_requests"]
    body = validated(
        ORDERS, "post", {"customer_id": 42, "amount": 19.99, "note": note, "currency": "EUR"}
    )
    # WHEN the POST template renders it and the output goes to DynamoDB
    request, payload, status, _ = post(db, table, body, {"Idempotency-Key": "order-42-a"})
    # THEN the output is a valid PutItem request, accepted, storing the note byte for byte
    assert payload["TableName"] == table
    assert_attribute_values(payload["Item"])
    assert payload["ConditionExpression"] == "attribute_not_exists(#id)"
    assert status == 200
    (stored,) = db.items(table)
    assert stored["note"] == {"S": note}
    assert stored["customer_id"] == {"N": "42"}
    assert stored["amount"] == {"N": "19.99"}
    assert stored["id"] == {"S": "order-42-a"}
    assert stored["version"] == {"N": "1"}
    assert stored["status"] == {"S": "accepted"}
    assert stored["updated_by"] == {"S": WRITER}
    assert stored["received_at"] == {"N": str(request.request_time_epoch)}
    assert stored["request_id"] == {"S": request.request_id}
    assert stored["expires_at"] == {"N": str(request.request_time_epoch // 1000 + 7 * 86400)}


def test_post_omits_missing_optional_fields(dynamo: tuple[Dynamo, dict[str, str]]) -> None:
    # GIVEN a body with only the required fields
    db, tables = dynamo
    table = tables["order_requests"]
    body = validated(ORDERS, "post", {"customer_id": 1, "amount": 0.5})
    # WHEN rendered and sent
    _, payload, status, _ = post(db, table, body, {"Idempotency-Key": "min-1"})
    # THEN the optional attributes are absent (not null, not empty), the put succeeds
    assert status == 200
    assert set(payload["Item"]) == {
        "customer_id", "amount", "id", "version", "status", "received_at", "updated_at",
        "updated_by", "expires_at", "request_id",
    }  # fmt: skip
    assert_attribute_values(payload["Item"])


def test_post_boolean_false_and_exact_number_digits(dynamo: tuple[Dynamo, dict[str, str]]) -> None:
    # GIVEN false and a number whose digits matter
    db, tables = dynamo
    table = tables["order_requests"]
    body = '{"customer_id": 12345678901234567890, "amount": 0.10, "express": false}'
    jsonschema.Draft4Validator(request_schema("order_requests", ORDERS, "post")).validate(
        json.loads(body)
    )
    # WHEN rendered and sent
    _, payload, status, _ = post(db, table, body, {"Idempotency-Key": "n-1"})
    # THEN BOOL false is kept (not dropped as "missing") and N carries the digits as sent
    assert status == 200
    assert payload["Item"]["express"] == {"BOOL": False}
    (stored,) = db.items(table)
    assert stored["customer_id"] == {"N": "12345678901234567890"}
    assert stored["amount"]["N"] in ("0.10", "0.1")


def test_post_without_idempotency_key_uses_the_request_id(
    dynamo: tuple[Dynamo, dict[str, str]],
) -> None:
    db, tables = dynamo
    table = tables["order_requests"]
    body = validated(ORDERS, "post", {"customer_id": 7, "amount": 1})
    # WHEN no Idempotency-Key header is sent
    request, payload, status, answer = post(db, table, body, request_id="req-0001-abc")
    # THEN the item id is the request id, and the 202 body says so
    assert status == 200
    assert payload["Item"]["id"] == {"S": "req-0001-abc"}
    ok = render_response(templates_for(ORDERS, table)["post_response_ok"], request, answer)
    assert ok.status_override == 0
    assert ok.json() == {"id": "req-0001-abc", "status": "accepted"}


def test_post_lower_case_idempotency_header_is_honoured(
    dynamo: tuple[Dynamo, dict[str, str]],
) -> None:
    # GIVEN an HTTP/2 client: header names arrive lower-cased
    db, tables = dynamo
    table = tables["order_requests"]
    body = validated(ORDERS, "post", {"customer_id": 7, "amount": 1})
    request, payload, _, answer = post(db, table, body, {"idempotency-key": "lower-1"})
    # THEN it is still the id, in the item and in the answer
    assert payload["Item"]["id"] == {"S": "lower-1"}
    ok = render_response(templates_for(ORDERS, table)["post_response_ok"], request, answer)
    assert ok.json() == {"id": "lower-1", "status": "accepted"}


def test_post_retry_creates_nothing_new_and_answers_202_with_the_same_id(
    dynamo: tuple[Dynamo, dict[str, str]],
) -> None:
    # GIVEN an accepted request
    db, tables = dynamo
    table = tables["order_requests"]
    key = {"Idempotency-Key": "retry-7"}
    first = validated(ORDERS, "post", {"customer_id": 7, "amount": 10, "note": "first"})
    _, _, status, _ = post(db, table, first, key, request_id="req-first")
    assert status == 200
    before = db.items(table)
    # WHEN the client retries with the same key (even with a different body) later
    retry = validated(ORDERS, "post", {"customer_id": 7, "amount": 99, "note": "retry"})
    request, _, status, answer = post(
        db, table, retry, key, request_id="req-retry", request_time_epoch=1_763_900_000_000
    )
    # THEN DynamoDB refused the conditional put, nothing changed
    assert status == 400
    assert "ConditionalCheckFailed" in json.loads(answer)["__type"]
    assert db.items(table) == before
    # AND the mapped answer is 202 with the ORIGINAL id and its current status
    mapped = render_response(templates_for(ORDERS, table)["post_response_400"], request, answer)
    assert mapped.status_override == 202
    assert mapped.json() == {"id": "retry-7", "status": "accepted", "version": 1, "duplicate": True}


def test_post_retry_reports_the_current_status_after_writeback(
    dynamo: tuple[Dynamo, dict[str, str]],
) -> None:
    # GIVEN an item the writeback already marked as applied
    db, tables = dynamo
    table = tables["order_requests"]
    body = validated(ORDERS, "post", {"customer_id": 7, "amount": 10})
    post(db, table, body, {"Idempotency-Key": "applied-1"})
    db.client.update_item(
        TableName=table,
        Key={"id": {"S": "applied-1"}},
        UpdateExpression="SET #s = :s, updated_by = :w",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "applied"}, ":w": {"S": "legacy-writeback"}},
    )
    # WHEN retried
    request, _, _, answer = post(db, table, body, {"Idempotency-Key": "applied-1"})
    mapped = render_response(templates_for(ORDERS, table)["post_response_400"], request, answer)
    # THEN the retry learns the truth: applied, not a fresh "accepted"
    assert mapped.status_override == 202
    assert mapped.json()["status"] == "applied"


@pytest.mark.parametrize("bad_key", ['quote"key', "new\nline", "spaced key", "x" * 129, "-lead"])
def test_post_malformed_idempotency_key_is_rejected_and_nothing_written(
    dynamo: tuple[Dynamo, dict[str, str]], bad_key: str
) -> None:
    db, tables = dynamo
    table = tables["order_requests"]
    body = validated(ORDERS, "post", {"customer_id": 7, "amount": 1})
    # WHEN the key does not fit the id pattern
    request, payload, status, answer = post(db, table, body, {"Idempotency-Key": bad_key})
    # THEN the request JSON is still valid (the key never reaches it), DynamoDB refuses it
    assert bad_key not in json.dumps(payload)
    assert status == 400
    assert db.items(table) == []
    mapped = render_response(templates_for(ORDERS, table)["post_response_400"], request, answer)
    assert mapped.status_override == 0  # stays 400
    assert mapped.json()["message"] == f"Idempotency-Key must match {ID_PATTERN}; nothing written"


def test_post_oversized_body_is_rejected_and_nothing_written(
    dynamo: tuple[Dynamo, dict[str, str]],
) -> None:
    db, tables = dynamo
    table = tables["order_requests"]
    # GIVEN a body the model accepts (note <= 2000 chars) but longer than max_body_bytes once
    # padded with whitespace, which no schema can bound
    body = json.dumps({"customer_id": 7, "amount": 1, "note": "x" * 1900}) + " " * MAX_BODY
    jsonschema.Draft4Validator(request_schema("order_requests", ORDERS, "post")).validate(
        json.loads(body)
    )
    # WHEN rendered and sent
    request, _, status, answer = post(db, table, body, {"Idempotency-Key": "big-1"})
    # THEN nothing is written and the answer is 400 with the reason
    assert status == 400
    assert db.items(table) == []
    mapped = render_response(templates_for(ORDERS, table)["post_response_400"], request, answer)
    assert mapped.status_override == 0
    assert mapped.json()["message"] == f"body larger than {MAX_BODY} bytes; nothing written"


def test_post_not_request_like_entity_has_no_ttl(dynamo: tuple[Dynamo, dict[str, str]]) -> None:
    db, tables = dynamo
    table = tables["customer_profiles"]
    body = json.dumps({"name": "Zoë \"Z\" O'Brien", "vip": True}, ensure_ascii=False)
    jsonschema.Draft4Validator(request_schema("customer_profiles", PROFILES, "post")).validate(
        json.loads(body)
    )
    rendered = render_request(
        templates_for(PROFILES, table)["post_request"], Request(body=body)
    )
    assert "expires_at" not in rendered.json()["Item"]
    status, _ = db.send("PutItem", rendered.text)
    assert status == 200
    (stored,) = db.items(table)
    assert stored["name"] == {"S": "Zoë \"Z\" O'Brien"}
    assert stored["vip"] == {"BOOL": True}


# --------------------------------------------------------------------------- PUT


def put(
    db: Dynamo, table: str, item_id: str, body: dict[str, Any]
) -> tuple[Request, dict[str, Any], int, str]:
    text = validated(ORDERS, "put", body)
    request = Request(body=text, path={"id": item_id}, request_id=f"put-{uuid.uuid4()}")
    rendered = render_request(templates_for(ORDERS, table)["put_request"], request)
    status, answer = db.send("UpdateItem", rendered.text)
    return request, rendered.json(), status, answer


def test_put_with_current_version_updates_and_answers_the_new_version(
    dynamo: tuple[Dynamo, dict[str, str]],
) -> None:
    # GIVEN an accepted item with a note, later marked error by the writeback
    db, tables = dynamo
    table = tables["order_requests"]
    post(db, table, validated(ORDERS, "post", {"customer_id": 7, "amount": 1, "note": "x"}),
         {"Idempotency-Key": "upd-1"})  # fmt: skip
    db.client.update_item(
        TableName=table,
        Key={"id": {"S": "upd-1"}},
        UpdateExpression="SET #s = :s, status_detail = :d",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "error"}, ":d": {"S": "legacy said no"}},
    )
    # WHEN the client PUTs with expected_version 1 and without the note
    request, payload, status, answer = put(
        db, table, "upd-1", {"customer_id": 8, "amount": 2.5, "expected_version": 1}
    )
    # THEN the update is valid and accepted: version 2, status accepted, note and detail gone
    assert_attribute_values(payload["ExpressionAttributeValues"])
    assert status == 200
    (stored,) = db.items(table)
    assert stored["version"] == {"N": "2"}
    assert stored["status"] == {"S": "accepted"}
    assert stored["customer_id"] == {"N": "8"}
    assert "note" not in stored and "status_detail" not in stored
    assert stored["updated_by"] == {"S": WRITER}
    assert stored["request_id"] == {"S": request.request_id}
    ok = render_response(templates_for(ORDERS, table)["put_response_ok"], request, answer)
    assert ok.json() == {"id": "upd-1", "status": "accepted", "version": 2}


def test_put_with_stale_version_is_409_and_changes_nothing(
    dynamo: tuple[Dynamo, dict[str, str]],
) -> None:
    db, tables = dynamo
    table = tables["order_requests"]
    post(db, table, validated(ORDERS, "post", {"customer_id": 7, "amount": 1}),
         {"Idempotency-Key": "race-1"})  # fmt: skip
    put(db, table, "race-1", {"customer_id": 7, "amount": 2, "expected_version": 1})
    before = db.items(table)
    # WHEN a second writer still holds version 1
    request, _, status, answer = put(
        db, table, "race-1", {"customer_id": 7, "amount": 3, "expected_version": 1}
    )
    # THEN DynamoDB refuses, nothing changes, the answer is 409 with the current version
    assert status == 400
    assert db.items(table) == before
    mapped = render_response(templates_for(ORDERS, table)["put_response_400"], request, answer)
    assert mapped.status_override == 409
    assert mapped.json()["current_version"] == 2
    assert mapped.json()["id"] == "race-1"
    assert "conditional request failed" not in mapped.text  # never DynamoDB's own message


def test_put_unknown_id_is_404_and_creates_nothing(dynamo: tuple[Dynamo, dict[str, str]]) -> None:
    db, tables = dynamo
    table = tables["order_requests"]
    request, _, status, answer = put(
        db, table, "nobody", {"customer_id": 7, "amount": 3, "expected_version": 1}
    )
    assert status == 400
    assert db.items(table) == []
    mapped = render_response(templates_for(ORDERS, table)["put_response_400"], request, answer)
    assert mapped.status_override == 404


def test_put_malformed_path_id_is_400_and_writes_nothing(
    dynamo: tuple[Dynamo, dict[str, str]],
) -> None:
    db, tables = dynamo
    table = tables["order_requests"]
    request, payload, status, answer = put(
        db, table, 'x"}, "evil": {"S', {"customer_id": 7, "amount": 3, "expected_version": 1}
    )
    assert "evil" not in json.dumps(payload)
    assert status == 400
    assert db.items(table) == []
    mapped = render_response(templates_for(ORDERS, table)["put_response_400"], request, answer)
    assert mapped.status_override == 0
    assert mapped.json()["message"].startswith("id must match")


def test_put_oversized_body_is_400(dynamo: tuple[Dynamo, dict[str, str]]) -> None:
    db, tables = dynamo
    table = tables["order_requests"]
    post(db, table, validated(ORDERS, "post", {"customer_id": 7, "amount": 1}),
         {"Idempotency-Key": "big-put"})  # fmt: skip
    before = db.items(table)
    text = json.dumps({"customer_id": 7, "amount": 1, "expected_version": 1}) + " " * MAX_BODY
    request = Request(body=text, path={"id": "big-put"})
    rendered = render_request(templates_for(ORDERS, table)["put_request"], request)
    status, answer = db.send("UpdateItem", rendered.text)
    assert status == 400
    assert db.items(table) == before
    mapped = render_response(templates_for(ORDERS, table)["put_response_400"], request, answer)
    assert mapped.json()["message"] == f"body larger than {MAX_BODY} bytes; nothing written"


# --------------------------------------------------------------------------- GET


@pytest.mark.parametrize("missing", [None, ""], ids=["missing-null", "missing-empty"])
def test_get_returns_item_status_and_detail(
    dynamo: tuple[Dynamo, dict[str, str]], missing: str | None
) -> None:
    # GIVEN an item the writeback marked as error with a detail full of JSON-hostile text
    db, tables = dynamo
    table = tables["order_requests"]
    note = 'multi\nline "quoted" \\ ünï 😀'
    post(db, table, validated(ORDERS, "post", {"customer_id": 5, "amount": 12.5, "note": note,
         "express": False}), {"Idempotency-Key": "get-1"})  # fmt: skip
    detail = 'ERROR: duplicate key value violates "orders_pkey"\n'
    db.client.update_item(
        TableName=table,
        Key={"id": {"S": "get-1"}},
        UpdateExpression="SET #s = :s, status_detail = :d",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "error"}, ":d": {"S": detail}},
    )
    # WHEN GET renders, DynamoDB answers, and the response template maps the answer
    request = Request(path={"id": "get-1"})
    rendered = render_request(templates_for(ORDERS, table)["get_request"], request)
    assert rendered.json() == {"TableName": table, "Key": {"id": {"S": "get-1"}},
                               "ConsistentRead": True}  # fmt: skip
    status, answer = db.send("GetItem", rendered.text)
    assert status == 200
    out = render_response(
        templates_for(ORDERS, table)["get_response_ok"], request, answer, missing=missing
    )
    # THEN valid JSON with the item, its status and the detail
    assert out.status_override == 0
    got = out.json()
    assert got["id"] == "get-1"
    assert got["status"] == "error"
    assert got["status_detail"] == detail
    assert got["version"] == 1
    assert got["data"] == {"customer_id": 5, "amount": 12.5, "note": note, "express": False}


@pytest.mark.parametrize("missing", [None, ""], ids=["missing-null", "missing-empty"])
@pytest.mark.parametrize("item_id", ["absent-1", 'bad"id'])
def test_get_absent_item_is_404(
    dynamo: tuple[Dynamo, dict[str, str]], missing: str | None, item_id: str
) -> None:
    db, tables = dynamo
    table = tables["order_requests"]
    request = Request(path={"id": item_id})
    rendered = render_request(templates_for(ORDERS, table)["get_request"], request)
    status, answer = db.send("GetItem", rendered.text)
    assert status == 200
    out = render_response(
        templates_for(ORDERS, table)["get_response_ok"], request, answer, missing=missing
    )
    assert out.status_override == 404
    assert out.json()["message"] == "no item with this id"


# --------------------------------------------------------------------------- errors


AWS_ERRORS = {
    "throttled": (
        '{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",'
        '"message":"The level of configured provisioned throughput for the table was exceeded"}',
        429,
    ),
    "denied": (
        '{"__type":"com.amazon.coral.service#AccessDeniedException","message":"User: '
        'arn:aws:sts::123456789012:assumed-role/x is not authorized to perform: dynamodb:PutItem"}',
        500,
    ),
    "no-table": (
        '{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",'
        '"message":"Requested resource not found"}',
        500,
    ),
}


@pytest.mark.parametrize("kind", ["post", "put", "get"])
@pytest.mark.parametrize("error", sorted(AWS_ERRORS))
def test_aws_errors_are_mapped_never_passed_through(kind: str, error: str) -> None:
    body, expected = AWS_ERRORS[error]
    templates = templates_for(ORDERS, "t")
    request = Request(path={"id": "abc"}, headers={"Idempotency-Key": "abc"})
    out = render_response(templates[f"{kind}_response_400"], request, body)
    assert out.status_override == expected
    assert set(out.json()) == {"message", "request_id"}
    assert "arn:aws" not in out.text and "Exception" not in out.text
    server = render_response(templates["response_500"], request, '{"__type":"InternalServerError"}')
    assert set(server.json()) == {"message", "request_id"}


def test_value_out_of_dynamodb_range_is_400_not_500(dynamo: tuple[Dynamo, dict[str, str]]) -> None:
    db, tables = dynamo
    table = tables["order_requests"]
    body = '{"customer_id": 1, "amount": 1e400}'
    request, _, status, answer = post(db, table, body, {"Idempotency-Key": "range-1"})
    assert status == 400
    assert db.items(table) == []
    mapped = render_response(templates_for(ORDERS, table)["post_response_400"], request, answer)
    assert mapped.status_override == 0
    assert "could not be stored" in mapped.json()["message"]


# --------------------------------------------------------------------------- request models


BAD_BODIES = {
    "missing required": {"amount": 1},
    "wrong type": {"customer_id": "seven", "amount": 1},
    "unknown property": {"customer_id": 1, "amount": 1, "is_admin": True},
    "too long": {"customer_id": 1, "amount": 1, "note": "x" * 2001},
    "not in enum": {"customer_id": 1, "amount": 1, "currency": "GBP"},
    "below minimum": {"customer_id": 0, "amount": 1},
    "not an object": ["customer_id", 1],
    "null value": {"customer_id": 1, "amount": None},
    "reserved attribute": {"customer_id": 1, "amount": 1, "status": "applied"},
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_post_body_is_rejected_by_the_request_model(case: str) -> None:
    # GIVEN the POST model as deployed (draft-4, as API Gateway validates)
    schema = request_schema("order_requests", ORDERS, "post")
    jsonschema.Draft4Validator.check_schema(schema)
    # WHEN a bad body is validated
    errors = list(jsonschema.Draft4Validator(schema).iter_errors(BAD_BODIES[case]))
    # THEN it is rejected (API Gateway answers 400 BAD_REQUEST_BODY before any template runs)
    assert errors, case


def test_put_model_requires_expected_version() -> None:
    schema = request_schema("order_requests", ORDERS, "put")
    validator = jsonschema.Draft4Validator(schema)
    assert list(validator.iter_errors({"customer_id": 1, "amount": 1}))
    assert list(validator.iter_errors({"customer_id": 1, "amount": 1, "expected_version": 0}))
    assert list(validator.iter_errors({"customer_id": 1, "amount": 1, "expected_version": "1"}))
    assert not list(validator.iter_errors({"customer_id": 1, "amount": 1, "expected_version": 3}))


def test_escape_javascript_emulation_matches_commons_lang() -> None:
    # The emulated $util.escapeJavaScript follows Commons Lang 2 (what API Gateway runs): it
    # escapes ' as \' (not valid JSON) — why the templates use $input.json for values instead.
    assert escape_javascript("it's \"x\"/\n😀é") == "it\\'s \\\"x\\\"\\/\\n\\uD83D\\uDE00\\u00E9"


# --------------------------------------------------------------------------- the declared API


PREFIX = "dmsbus-e2e-"
KEYS = {"shop_svc": "shop-key-value"}


def declared_plan(cfg: IngestSettings) -> Plan:
    def program() -> None:
        IngestApi("ingest", ingest_api_args(cfg, name_prefix=PREFIX))

    return run_program("e2e", {"aws:region": "eu-west-1"}, program)


@pytest.fixture(scope="module")
def iam_resources() -> list[Declared]:
    return declared_plan(SETTINGS).resources


@pytest.fixture(scope="module")
def key_resources() -> list[Declared]:
    cfg = SETTINGS.model_copy(
        update={"auth": "api_key", "api_key_consumers": list(KEYS)}
    )
    return declared_plan(IngestSettings.model_validate(cfg.model_dump())).resources


class Api:
    """The API as IngestApi declares it, in front of moto's DynamoDB (tables created here)."""

    def __init__(self, resources: list[Declared], *, api_keys: frozenset[str] = frozenset()):
        self.db = Dynamo()
        self.tables = {e: f"{PREFIX}ingest-{e}" for e in SETTINGS.entities}
        for entity, spec in SETTINGS.entities.items():
            self.db.create_table(self.tables[entity], ttl=spec.request_like)
        self.http = DeclaredApi(resources, self.db.send, api_keys=api_keys)

    def __call__(self, method: str, path: str, **kwargs: Any) -> Response:
        kwargs.setdefault("signed", True)
        return self.http.call(method, path, **kwargs)

    def items(self, entity: str = "order_requests") -> list[dict[str, Any]]:
        return self.db.items(self.tables[entity])

    def writeback_marks(self, item_id: str, status: str, detail: str | None = None) -> None:
        """What LegacyWriteback does after applying: a status-only update."""
        names = {"#s": "status"}
        values: dict[str, Any] = {":s": {"S": status}}
        update = "SET #s = :s"
        if detail is not None:
            update += ", status_detail = :d"
            values[":d"] = {"S": detail}
        self.db.client.update_item(
            TableName=self.tables["order_requests"], Key={"id": {"S": item_id}},
            UpdateExpression=update, ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )  # fmt: skip


@pytest.fixture
def api(iam_resources: list[Declared]) -> Iterator[Api]:
    with mock_aws():
        yield Api(iam_resources)


ORDER = {"customer_id": 42, "amount": 19.99, "currency": "EUR", "note": 'say "hi"\nünï 😀'}


def body_of(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def test_e2e_post_then_retry_returns_the_same_id_and_creates_nothing(api: Api) -> None:
    # GIVEN a POST with an Idempotency-Key
    first = api("POST", "/order_requests", body=body_of(ORDER),
                headers={"Idempotency-Key": "order-42"}, request_id="req-1")  # fmt: skip
    # THEN 202 with the id, one item written
    assert (first.status, first.json()) == (202, {"id": "order-42", "status": "accepted"})
    (stored,) = api.items()
    # WHEN the client retries (same key, later, even with another body)
    retry = api("POST", "/order_requests", body=body_of({**ORDER, "amount": 5}),
                headers={"Idempotency-Key": "order-42"}, request_id="req-2",
                request_time_epoch=1_763_900_000_000)  # fmt: skip
    # THEN 202 with the same id, and the table holds exactly the first item, unchanged
    assert retry.status == 202
    assert retry.json() == {"id": "order-42", "status": "accepted", "version": 1,
                            "duplicate": True}  # fmt: skip
    assert api.items() == [stored]
    assert stored["amount"] == {"N": "19.99"} and stored["request_id"] == {"S": "req-1"}


def test_e2e_without_key_the_request_id_is_the_id(api: Api) -> None:
    out = api("POST", "/order_requests", body=body_of(ORDER), request_id="req-77")
    assert (out.status, out.json()) == (202, {"id": "req-77", "status": "accepted"})
    assert [i["id"] for i in api.items()] == [{"S": "req-77"}]


def test_e2e_key_comes_from_the_header_not_the_query_string(api: Api) -> None:
    # a query parameter of the same name must not choose the id (nor smuggle one in)
    out = api("POST", "/order_requests", body=body_of(ORDER), query={"Idempotency-Key": "q-1"},
              headers={"Idempotency-Key": "h-1"})  # fmt: skip
    assert out.json()["id"] == "h-1"
    assert [i["id"] for i in api.items()] == [{"S": "h-1"}]
    only_query = api("POST", "/order_requests", body=body_of(ORDER),
                     query={"Idempotency-Key": "q-2"}, request_id="req-q2")  # fmt: skip
    assert only_query.json()["id"] == "req-q2"


def test_e2e_put_with_expected_version_then_conflict(api: Api) -> None:
    api("POST", "/order_requests", body=body_of(ORDER), headers={"Idempotency-Key": "o-1"})
    update = {"customer_id": 42, "amount": 25, "expected_version": 1}
    # WHEN the client updates with the version it read
    ok = api("PUT", "/order_requests/o-1", body=body_of(update))
    assert (ok.status, ok.json()) == (202, {"id": "o-1", "status": "accepted", "version": 2})
    after = api.items()
    # AND a second writer still holds version 1
    stale = api("PUT", "/order_requests/o-1", body=body_of({**update, "amount": 26}))
    # THEN 409 with the current version, nothing changed
    assert stale.status == 409
    assert stale.json()["current_version"] == 2
    assert api.items() == after
    assert after[0]["amount"] == {"N": "25"} and after[0]["version"] == {"N": "2"}


def test_e2e_put_unknown_id_is_404_and_creates_nothing(api: Api) -> None:
    out = api("PUT", "/order_requests/nobody",
              body=body_of({"customer_id": 1, "amount": 1, "expected_version": 1}))  # fmt: skip
    assert out.status == 404
    assert api.items() == []


@pytest.mark.parametrize(
    ("status", "detail"),
    [("accepted", None), ("applied", None), ("error", 'legacy said "no"\nconstraint x'),
     ("conflict", "conflict: the legacy row is at version 5, newer than this change's "
                  "version 1; not written")],
)
def test_e2e_get_reports_the_status(api: Api, status: str, detail: str | None) -> None:
    api("POST", "/order_requests", body=body_of(ORDER), headers={"Idempotency-Key": "g-1"})
    if status != "accepted":
        api.writeback_marks("g-1", status, detail)
    out = api("GET", "/order_requests/g-1")
    assert out.status == 200
    got = out.json()
    assert got["status"] == status
    assert got.get("status_detail") == detail
    assert got["id"] == "g-1" and got["version"] == 1
    assert got["data"] == ORDER


def test_e2e_get_unknown_is_404(api: Api) -> None:
    out = api("GET", "/order_requests/nope")
    assert out.status == 404
    assert out.json()["message"] == "no item with this id"


MALFORMED = {
    "not json": "{customer_id: 42, amount: 1",
    "empty body": "",
    "not an object": "[42, 1]",
    "missing required": body_of({"amount": 1}),
    "wrong type": body_of({"customer_id": "42", "amount": 1}),
    "unknown property": body_of({**ORDER, "status": "applied"}),
    "string too long": body_of({**ORDER, "note": "x" * 2001}),
    "not in enum": body_of({**ORDER, "currency": "GBP"}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("verb", ["POST", "PUT"])
def test_e2e_malformed_body_is_400_with_the_reason_and_nothing_written(
    api: Api, case: str, verb: str
) -> None:
    api("POST", "/order_requests", body=body_of(ORDER), headers={"Idempotency-Key": "m-1"})
    before = api.items()
    path = "/order_requests" if verb == "POST" else "/order_requests/m-1"
    out = api(verb, path, body=MALFORMED[case], headers={"Idempotency-Key": "m-2"})
    assert out.status == 400
    assert out.integration_status is None  # refused before any template ran
    got = out.json()  # the gateway response is valid JSON, quotes in the reason included
    assert got["message"] == "Invalid request body"
    assert got["reason"].startswith("[") and len(got["reason"]) > 2
    assert api.items() == before


@pytest.mark.parametrize("verb", ["POST", "PUT"])
def test_e2e_oversized_body_is_400_and_nothing_written(api: Api, verb: str) -> None:
    api("POST", "/order_requests", body=body_of(ORDER), headers={"Idempotency-Key": "big"})
    before = api.items()
    fields = {**ORDER, "expected_version": 1} if verb == "PUT" else ORDER
    padded = body_of(fields) + " " * MAX_BODY  # valid for the model, too large for the API
    path = "/order_requests" if verb == "POST" else "/order_requests/big"
    out = api(verb, path, body=padded, headers={"Idempotency-Key": "big-2"})
    assert out.status == 400
    assert out.integration_status == 400  # DynamoDB refused the marked request
    assert out.json()["message"] == f"body larger than {MAX_BODY} bytes; nothing written"
    assert api.items() == before


def test_e2e_other_content_types_are_415_and_nothing_written(api: Api) -> None:
    out = api("POST", "/order_requests", body=body_of(ORDER), content_type="text/plain")
    assert out.status == 415
    assert api.items() == []


def test_e2e_malformed_idempotency_key_is_400(api: Api) -> None:
    out = api("POST", "/order_requests", body=body_of(ORDER),
              headers={"Idempotency-Key": 'k", "x": "y'})  # fmt: skip
    assert out.status == 400
    assert out.json()["message"].startswith("Idempotency-Key must match")
    assert api.items() == []


def test_e2e_number_out_of_dynamodb_range_is_400(api: Api) -> None:
    out = api("POST", "/order_requests", body='{"customer_id": 1, "amount": 1e400}')
    assert out.status == 400
    assert "could not be stored" in out.json()["message"]
    assert api.items() == []


@pytest.mark.parametrize("verb", ["POST", "PUT", "GET"])
def test_e2e_missing_table_is_500_never_the_aws_error(api: Api, verb: str) -> None:
    # GIVEN the table is gone (DynamoDB answers ResourceNotFoundException, HTTP 400)
    api.db.client.delete_table(TableName=api.tables["order_requests"])
    body = body_of({**ORDER, "expected_version": 1}) if verb == "PUT" else body_of(ORDER)
    path = "/order_requests" if verb == "POST" else "/order_requests/x-1"
    out = api(verb, path, body="" if verb == "GET" else body)
    # THEN the client gets a plain 500, not DynamoDB's error body
    assert out.integration_status == 400
    assert out.status == 500
    assert set(out.json()) == {"message", "request_id"}
    assert "ResourceNotFound" not in out.text and "arn:aws" not in out.text


@pytest.mark.parametrize(
    ("verb", "path"),
    [("POST", "/order_requests"), ("PUT", "/order_requests/a"), ("GET", "/order_requests/a")],
)
def test_e2e_iam_auth_unsigned_is_403_and_nothing_written(api: Api, verb: str, path: str) -> None:
    body = body_of({**ORDER, "expected_version": 1}) if verb == "PUT" else body_of(ORDER)
    out = api(verb, path, body=body, signed=False)
    assert out.status == 403
    assert out.json()["message"] == "Missing Authentication Token"
    assert api.items() == []


@pytest.mark.parametrize(
    ("verb", "path"),
    [("DELETE", "/order_requests/a"), ("GET", "/order_requests"), ("POST", "/nothing_here"),
     ("POST", "/order_requests/a/b")],
)  # fmt: skip
def test_e2e_no_other_routes(api: Api, verb: str, path: str) -> None:
    api("POST", "/order_requests", body=body_of(ORDER), headers={"Idempotency-Key": "a"})
    before = api.items()
    out = api(verb, path, body=body_of(ORDER))
    assert out.status == 403
    assert api.items() == before


def test_e2e_api_key_auth(key_resources: list[Declared]) -> None:
    with mock_aws():
        api = Api(key_resources, api_keys=frozenset(KEYS.values()))
        # unsigned is fine with a key; without one, or with a wrong one, 403 and nothing written
        for key in (None, "guessed"):
            out = api("POST", "/order_requests", body=body_of(ORDER), signed=False, api_key=key)
            assert out.status == 403
        assert api.items() == []
        ok = api("POST", "/order_requests", body=body_of(ORDER), signed=False,
                 api_key=KEYS["shop_svc"], headers={"Idempotency-Key": "k-1"})  # fmt: skip
        assert (ok.status, ok.json()["id"]) == (202, "k-1")
        got = api("GET", "/order_requests/k-1", signed=False, api_key=KEYS["shop_svc"])
        assert got.json()["status"] == "accepted"


def test_e2e_both_entities_are_served_by_their_own_table(api: Api) -> None:
    out = api("POST", "/customer_profiles", body=body_of({"name": "Zoë", "vip": True}),
              headers={"Idempotency-Key": "p-1"})  # fmt: skip
    assert out.status == 202
    assert api.items("order_requests") == []
    (item,) = api.items("customer_profiles")
    assert item["name"] == {"S": "Zoë"} and "expires_at" not in item
    assert api("GET", "/order_requests/p-1").status == 404
    assert api("GET", "/customer_profiles/p-1").json()["data"] == {"name": "Zoë", "vip": True}


def test_e2e_get_leaves_out_a_value_stored_with_another_type(api: Api) -> None:
    # GIVEN an item written while `note` was configured as a number (the config changed since)
    api("POST", "/order_requests", body=body_of(ORDER), headers={"Idempotency-Key": "t-1"})
    api.db.client.update_item(
        TableName=api.tables["order_requests"], Key={"id": {"S": "t-1"}},
        UpdateExpression="SET note = :n", ExpressionAttributeValues={":n": {"N": "7"}},
    )  # fmt: skip
    # WHEN it is read THEN the answer is still valid JSON, without that value
    out = api("GET", "/order_requests/t-1")
    assert out.status == 200
    assert "note" not in out.json()["data"]
    assert out.json()["data"]["customer_id"] == 42


DYNAMODB_FAILURES = {
    "throttled": (400, AWS_ERRORS["throttled"][0], 429),
    "access denied": (400, AWS_ERRORS["denied"][0], 500),
    "internal error": (500, '{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError",'
                            '"message":"Internal server error"}', 500),
    "unavailable": (503, '{"__type":"com.amazonaws.dynamodb.v20120810#ServiceUnavailable"}', 500),
}  # fmt: skip


@pytest.mark.parametrize("failure", sorted(DYNAMODB_FAILURES))
@pytest.mark.parametrize("verb", ["POST", "PUT", "GET"])
def test_e2e_dynamodb_failures_are_mapped(
    iam_resources: list[Declared], verb: str, failure: str
) -> None:
    # GIVEN DynamoDB answers with an error (what moto cannot be made to do)
    status, answer, expected = DYNAMODB_FAILURES[failure]
    sent: list[str] = []

    def failing(action: str, request_json: str) -> tuple[int, str]:
        sent.append(action)
        json.loads(request_json)  # the template still rendered valid JSON
        return status, answer

    http = DeclaredApi(iam_resources, failing)
    body = body_of({**ORDER, "expected_version": 1}) if verb == "PUT" else body_of(ORDER)
    path = "/order_requests" if verb == "POST" else "/order_requests/x-1"
    # WHEN a valid request reaches it
    out = http.call(verb, path, body="" if verb == "GET" else body, signed=True)
    # THEN the client gets the mapped status and our own body, never DynamoDB's
    assert sent == [{"POST": "PutItem", "PUT": "UpdateItem", "GET": "GetItem"}[verb]]
    assert (out.integration_status, out.status) == (status, expected)
    assert set(out.json()) == {"message", "request_id"}
    assert "Exception" not in out.text and "arn:aws" not in out.text
    assert "InternalServerError" not in out.text
