"""boto3 DynamoDB Streams records -> the JSON form Lambda delivers (local pipeline).

boto3 (and moto through it) returns binary values as bytes and `ApproximateCreationDateTime`
as a datetime; Lambda's event JSON carries base64 strings and epoch seconds, and adds
`eventSourceARN` (plus `userIdentity` for TTL deletes). Handlers are fed the Lambda form.
"""

from __future__ import annotations

import base64
import copy
from datetime import datetime
from typing import Any

TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def _attr(av: dict[str, Any]) -> dict[str, Any]:
    ((kind, value),) = av.items()
    if kind == "B":
        return {"B": _b64(value)}
    if kind == "BS":
        return {"BS": [_b64(v) for v in value]}
    if kind == "L":
        return {"L": [_attr(v) for v in value]}
    if kind == "M":
        return {"M": {k: _attr(v) for k, v in value.items()}}
    return {kind: copy.copy(value)}


def _b64(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def image(img: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB-JSON image with binary as base64 text."""
    return {k: _attr(v) for k, v in img.items()}


def to_lambda_record(
    record: dict[str, Any], stream_arn: str, region: str = "eu-west-1", *, ttl: bool = False
) -> dict[str, Any]:
    """One boto3 `get_records` record as Lambda's event record."""
    ddb = dict(record["dynamodb"])
    when = ddb.get("ApproximateCreationDateTime")
    if isinstance(when, datetime):
        ddb["ApproximateCreationDateTime"] = int(when.timestamp())
    for name in ("Keys", "NewImage", "OldImage"):
        if name in ddb:
            ddb[name] = image(ddb[name])
    out: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", region),
        "dynamodb": ddb,
        "eventSourceARN": stream_arn,
    }
    if ttl:
        out["userIdentity"] = dict(TTL_IDENTITY)
    return out
