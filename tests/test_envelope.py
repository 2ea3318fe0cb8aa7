"""handlers.envelope: the envelope v1 conversion, checked against an independent oracle.

The oracle is boto3's TypeDeserializer plus json; numbers are compared as the exact text
the envelope carries (json's parse_int/parse_float hooks receive the literal digits).
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from jsonschema import Draft202012Validator

from handlers import envelope as E
from tests.conftest import SHARED

VALIDATOR = Draft202012Validator(json.loads((SHARED / "envelope.schema.json").read_text()))
ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/dev-orders/stream/2026-01-01T00:00:00.000"


class Num(str):
    """A number exactly as it appeared in the JSON text."""


def exact_loads(text: str | bytes) -> Any:
    return json.loads(text, parse_int=Num, parse_float=Num)


def oracle(av: dict[str, Any]) -> Any:
    """Expected JSON value of a Lambda-form attribute value, exact number text."""
    value = TypeDeserializer().deserialize(_for_boto3(av))
    return _plain(value, av)


def _for_boto3(av: dict[str, Any]) -> dict[str, Any]:
    ((kind, v),) = av.items()
    if kind == "B":
        return {"B": base64.b64decode(v)}
    if kind == "BS":
        return {"BS": [base64.b64decode(x) for x in v]}
    if kind == "M":
        return {"M": {k: _for_boto3(x) for k, x in v.items()}}
    if kind == "L":
        return {"L": [_for_boto3(x) for x in v]}
    return av


def _plain(value: Any, av: dict[str, Any]) -> Any:
    ((kind, v),) = av.items()
    if kind == "N":
        assert Decimal(v) == value  # the deserializer agrees on the value
        return Num(v)  # and the envelope must carry the stored digits
    if kind == "NS":
        assert {Decimal(x) for x in v} == value
        return [Num(x) for x in v]
    if kind == "B":
        return base64.b64encode(bytes(value)).decode()
    if kind == "BS":
        assert {bytes(x) for x in value} == {base64.b64decode(x) for x in v}
        return list(v)
    if kind == "SS":
        assert set(v) == value
        return list(v)
    if kind == "M":
        return {k: _plain(value[k], x) for k, x in v.items()}
    if kind == "L":
        return [_plain(a, x) for a, x in zip(value, v, strict=True)]
    return value


# ---------------------------------------------------------------------- random images


def _number(rng: random.Random) -> str:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 38)))
    digits = digits.lstrip("0") or "0"
    sign = rng.choice(["", "-"]) if digits != "0" else ""
    form = rng.randrange(4)
    if form == 0 or len(digits) == 1:
        return sign + digits
    if form == 1:  # fraction
        cut = rng.randrange(1, len(digits))
        return f"{sign}{digits[:cut]}.{digits[cut:]}"
    if form == 2:  # small fraction
        return f"{sign}0.{'0' * rng.randrange(5)}{digits}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{rng.choice(['+', '-', ''])}{rng.randrange(126)}"


def _string(rng: random.Random) -> str:
    alphabet = 'abcXYZ 09"\\/\n\t\x00\x1f\u00e9\u2713\U0001f600\u2028<>&%{}[],:'
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))


def _value(rng: random.Random, depth: int) -> dict[str, Any]:
    kind = rng.choice(["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"]
                      + (["M", "L"] * 2 if depth < 3 else []))
    return value_of_kind(rng, kind, depth)


def value_of_kind(rng: random.Random, kind: str, depth: int = 0) -> dict[str, Any]:
    """A random attribute value of one type (M and L: random contents below `depth`)."""
    if kind == "S":
        return {"S": _string(rng)}
    if kind == "N":
        return {"N": _number(rng)}
    if kind == "B":
        return {"B": base64.b64encode(rng.randbytes(rng.randrange(1, 20))).decode()}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "SS":
        return {"SS": list(dict.fromkeys(_string(rng) + str(i) for i in range(3)))}
    if kind == "NS":
        return {"NS": list(dict.fromkeys(_number(rng) for _ in range(3)))}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes([i]) + rng.randbytes(4)).decode() for i in range(2)]}
    if kind == "M":
        return {"M": _image(rng, depth + 1)}
    return {"L": [_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]}


def _image(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    return {_string(rng) + f"#{i}": _value(rng, depth) for i in range(rng.randrange(0, 8))}


def test_random_images_match_the_oracle_with_exact_digits() -> None:
    rng = random.Random(11)
    for _ in range(400):
        image = _image(rng)
        text = E.image_json(image)
        assert exact_loads(text) == {k: oracle(v) for k, v in image.items()}
        # and it is the same text json.dumps would give for strings (one JSON dialect)
        for name, av in image.items():
            if "S" in av:
                assert json.dumps({name: av["S"]}, ensure_ascii=False,
                                  separators=(",", ":"))[1:-1] in text


def test_lambda_form_and_boto3_form_give_the_same_envelope() -> None:
    rng = random.Random(5)
    for i in range(50):
        new, old = _image(rng), _image(rng)
        keys = {"id": {"B": base64.b64encode(b"k%d" % i).decode()}, "n": {"N": str(i)}}
        new.update(keys)
        old.update(keys)
        when = 1_769_900_000 + i
        record = {
            "eventID": f"e{i}", "eventName": "MODIFY", "eventSourceARN": ARN,
            "dynamodb": {"Keys": keys, "NewImage": new, "OldImage": old,
                         "SequenceNumber": str(100 + i), "ApproximateCreationDateTime": when},
        }
        boto3_form = {
            "eventID": f"e{i}", "eventName": "MODIFY",
            "dynamodb": {
                "Keys": {k: _for_boto3(v) for k, v in keys.items()},
                "NewImage": {k: _for_boto3(v) for k, v in new.items()},
                "OldImage": {k: _for_boto3(v) for k, v in old.items()},
                "SequenceNumber": str(100 + i),
                "ApproximateCreationDateTime": datetime.fromtimestamp(when, UTC),
            },
        }
        lam = E.stream_envelope(record, "orders")
        b3 = E.stream_envelope(boto3_form, "orders", physical_table="dev-orders")
        assert lam == b3
        assert not list(VALIDATOR.iter_errors(json.loads(lam.data)))


def test_boto3_client_binary_is_base64() -> None:
    assert E.value_json({"B": b"\x00\x01"}) == '"AAE="'
    assert E.value_json({"BS": [b"\x00", bytearray(b"\x01")]}) == '["AA==","AQ=="]'


# ------------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    ("stored", "json_text"),
    [
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        ("-0.000000000000000000000000000000000000012345678901234567890123456789012345678",
         "-0.000000000000000000000000000000000000012345678901234567890123456789012345678"),
        ("9.9999999999999999999999999999999999999E+125",
         "9.9999999999999999999999999999999999999E+125"),
        ("1.50", "1.50"),
        ("0", "0"),
        # not JSON numbers (DynamoDB never sends these): rewritten by Decimal, never a float
        ("+5", "5"),
        (" 7 ", "7"),
        ("5.", "5"),
        (".25", "0.25"),
        ("00012", "12"),
    ],
)
def test_numbers_keep_their_digits_or_are_rewritten_exactly(stored: str, json_text: str) -> None:
    assert E.value_json({"N": stored}) == json_text
    assert E.image_json({"a": {"N": stored}, "b": {"NS": [stored]}}) == (
        f'{{"a":{json_text},"b":[{json_text}]}}'
    )
    nested = {"m": {"M": {"l": {"L": [{"N": stored}]}}}}
    assert E.image_json(nested) == f'{{"m":{{"l":[{json_text}]}}}}'


@pytest.mark.parametrize(
    "bad", ["12abc", "NaN", "Infinity", "-Infinity", "", "1,2", "1e", "0x10", "1 2", 5, None]
)
def test_malformed_numbers_are_envelope_errors(bad: Any) -> None:
    with pytest.raises(E.EnvelopeError):
        E.image_json({"a": {"N": bad}})
    with pytest.raises(E.EnvelopeError):
        E.image_json({"a": {"L": [{"S": "x"}, {"NS": ["1", bad]}]}})


@pytest.mark.parametrize(
    "bad",
    [
        {"a": {"X": "1"}},
        {"a": {}},
        {"a": "S"},
        {"a": {"S": 5}},
        {"a": {"BOOL": 1}},
        {"a": {"L": {"S": "x"}}},
        {"a": {"M": [1]}},
        {"a": {"SS": "abc"}},
        {"a": {"SS": ["a", 1]}},
        {"a": {"BS": [1]}},
        {"a": {"B": 1}},
        {"a": {"NS": "1"}},
    ],
)
def test_malformed_values_are_envelope_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(E.EnvelopeError):
        E.image_json(bad)


def test_value_to_python_is_exact() -> None:
    value = E.image_to_python({
        "n": {"N": "12345678901234567890123456789012345678"},
        "ns": {"NS": ["1.10"]},
        "b": {"B": "AAE="},
        "bs": {"BS": [b"\x02"]},
        "m": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": False}, {"SS": ["x"]}]}}},
    })
    assert value == {
        "n": Decimal("12345678901234567890123456789012345678"),
        "ns": {Decimal("1.10")},
        "b": b"\x00\x01",
        "bs": {b"\x02"},
        "m": {"l": [None, False, {"x"}]},
    }
    assert str(value["n"]) == "12345678901234567890123456789012345678"


# -------------------------------------------------------------- keys, partition, time


def test_canonical_keys_sorted_compact_and_exact() -> None:
    keys = {"z": {"S": 'Grüße "x"\n'}, "a": {"N": "10.50"}, "m": {"B": "AAE="}}
    assert E.canonical_keys(keys) == '{"a":10.50,"m":"AAE=","z":"Grüße \\"x\\"\\n"}'
    assert E.canonical_keys(dict(reversed(list(keys.items())))) == E.canonical_keys(keys)
    with pytest.raises(E.EnvelopeError):
        E.canonical_keys({})
    with pytest.raises(E.EnvelopeError):
        E.canonical_keys({"a": {"N": "x1"}})


def test_partition_key_is_table_and_keys_or_a_stable_hash_when_too_long() -> None:
    short = E.partition_key("orders", '{"id":1}')
    assert short == 'orders|{"id":1}'
    long_keys = '{"id":"' + "x" * 300 + '"}'
    hashed = E.partition_key("orders", long_keys)
    assert hashed.startswith("orders|#sha256:") and len(hashed) <= E.MAX_PARTITION_KEY_CHARS
    assert hashed == E.partition_key("orders", long_keys)
    assert hashed != E.partition_key("orders", long_keys.replace("x", "y", 1))


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (1_769_900_000, "2026-01-31T22:53:20Z"),
        (1_769_900_000.5, "2026-01-31T22:53:20.500Z"),
        (Decimal("1769900000.123"), "2026-01-31T22:53:20.123Z"),
        ("1769900000", "2026-01-31T22:53:20Z"),
        (datetime(2026, 1, 31, 23, 53, 20, tzinfo=timezone(timedelta(hours=1))),
         "2026-01-31T22:53:20Z"),
    ],
)
def test_iso_utc(when: Any, text: str) -> None:
    assert E.iso_utc(when) == text


@pytest.mark.parametrize(
    "bad", [True, False, "yesterday", None, [1], 10**30, float("nan"), "inf", -1e20]
)
def test_iso_utc_rejects_what_is_not_epoch_seconds(bad: Any) -> None:
    E.iso_utc(1)  # a cached 1 must not make True acceptable
    E.iso_utc(0)
    with pytest.raises(E.EnvelopeError):
        E.iso_utc(bad)


# ------------------------------------------------------------------------ envelopes


def _record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventID": "ev-1",
        "eventName": "REMOVE",
        "eventSourceARN": ARN,
        "dynamodb": {
            "Keys": {"id": {"S": "a"}},
            "OldImage": {"id": {"S": "a"}, "v": {"N": "3"}},
            "SequenceNumber": "300",
            "ApproximateCreationDateTime": 1_769_900_000,
        },
    }
    record.update(overrides)
    return record


def test_ttl_delete_is_marked_in_source() -> None:
    ttl = _record(userIdentity={"type": "Service", "principalId": "dynamodb.amazonaws.com"})
    env = json.loads(E.stream_envelope(ttl, "orders").data)
    assert env["source"] == {"table": "dev-orders", "ttl": True}
    assert env["op"] == "delete" and env["new"] is None and env["old"] == {"id": "a", "v": 3}
    plain = json.loads(E.stream_envelope(_record(), "orders").data)
    assert plain["source"] == {"table": "dev-orders"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"eventName": "TRUNCATE"},
        {"eventID": ""},
        {"eventID": 5},
        {"eventSourceARN": "arn:aws:kinesis:eu-west-1:1:stream/x"},
        {"eventSourceARN": None},
        {"dynamodb": {"Keys": {"id": {"S": "a"}}, "SequenceNumber": "1"}},
        {"dynamodb": {"Keys": {}, "SequenceNumber": "1", "ApproximateCreationDateTime": 1}},
        {"dynamodb": {"Keys": {"id": {"S": "a"}}, "SequenceNumber": 1,
                      "ApproximateCreationDateTime": 1}},
        {"dynamodb": "nope"},
    ],
)
def test_malformed_records_are_envelope_errors(overrides: dict[str, Any]) -> None:
    with pytest.raises(E.EnvelopeError):
        E.stream_envelope(_record(**overrides), "orders")


def test_pointer_and_snapshot_envelopes_validate() -> None:
    env = E.stream_envelope(_record(eventName="MODIFY", dynamodb={
        **_record()["dynamodb"], "NewImage": {"id": {"S": "a"}, "v": {"N": "4"}},
    }), "orders")
    pointer = json.loads(env.pointer("s3://bucket/overflow/orders/x.json"))
    assert not list(VALIDATOR.iter_errors(pointer))
    assert pointer["old"] is None and pointer["new"] is None
    assert pointer["overflow"] == "s3://bucket/overflow/orders/x.json"
    assert {k: pointer[k] for k in ("id", "op", "keys", "seq", "ts", "table")} == {
        "id": "ev-1", "op": "update", "keys": {"id": "a"}, "seq": "300",
        "ts": "2026-01-31T22:53:20Z", "table": "orders",
    }
    snap = E.snapshot_envelope(
        {"id": {"S": "a"}, "n": {"N": "12345678901234567890123456789012345678"}},
        logical_table="orders", physical_table="dev-orders", key_names=["id"],
        scanned_at=1_769_900_000,
    )
    data = json.loads(snap.data)
    assert not list(VALIDATOR.iter_errors(data))
    assert data["op"] == "snapshot" and data["seq"] == "" and data["old"] is None
    assert b'"n":12345678901234567890123456789012345678' in snap.data
    again = E.snapshot_envelope(
        {"n": {"N": "1"}, "id": {"S": "a"}}, logical_table="orders",
        physical_table="dev-orders", key_names=["id"], scanned_at=1_769_999_999,
    )
    assert again.id == snap.id  # deterministic per row: re-run backfills dedupe
    with pytest.raises(E.EnvelopeError):
        E.snapshot_envelope({"n": {"N": "1"}}, logical_table="orders",
                            physical_table="dev-orders", key_names=["id"], scanned_at=1)
