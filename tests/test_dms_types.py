"""tools.dms_types: the DMS value conversions and the canonical forms reconcile compares."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from tools.dms_types import (
    canonical,
    canonical_number,
    canonical_value,
    category_of,
    digest,
    dms_item,
    postgres_text_to_dynamodb,
    to_attribute,
)

BIG = "12345678901234567890123456789012345678"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (BIG, BIG),
        (decimal.Decimal(BIG[:-1] + "7"), BIG[:-1] + "7"),
        ("-" + BIG[:30] + "." + BIG[30:], "-" + BIG[:30] + "." + BIG[30:]),
        ("1.50", "1.5"),
        ("100", "100"),
        ("1E+2", "100"),
        ("1e-07", "0.0000001"),
        ("-0.00", "0"),
        (0.1, "0.1"),
        (True, "1"),
        (9223372036854775807, "9223372036854775807"),
    ],
)
def test_canonical_number_is_exact(value, expected):
    assert canonical_number(value) == expected


def test_38_digit_numbers_differing_in_the_last_digit_stay_different():
    a = canonical_value(decimal.Decimal(BIG), "number")
    b = canonical({"N": BIG[:-1] + "9"}, "number")
    assert a == ("N", BIG) and a != b


@pytest.mark.parametrize(
    ("engine", "data_type", "category"),
    [
        ("postgres", "numeric", "number"),
        ("postgres", "numeric(38,0)", "number"),
        ("postgres", "timestamp(3) without time zone", "datetime"),
        ("postgres", "timestamptz", "datetime_tz"),
        ("postgres", "int8", "number"),
        ("postgres", "bool", "boolean"),
        ("postgres", "character varying(20)", "string"),
        ("postgres", "integer[]", "string"),
        ("postgres", "jsonb", "string"),
        ("mysql", "int(10) unsigned", "number"),
        ("mysql", "DECIMAL", "number"),
        ("mysql", "timestamp", "datetime_tz"),
        ("mysql", "varbinary", "binary"),
        ("mysql", "enum", "string"),
    ],
)
def test_category_of(engine, data_type, category):
    assert category_of(engine, data_type) == category


def test_to_attribute_follows_the_dms_dynamodb_target():
    # NULL: no attribute at all
    assert to_attribute(None, "string") is None
    # booleans: varchar(5) text by default, BOOL with MapBooleanAsBoolean
    assert to_attribute(True, "boolean") == {"S": "true"}
    assert to_attribute(False, "boolean", boolean_as_boolean=True) == {"BOOL": False}
    # aware timestamps in UTC, no offset; fractions without trailing zeros
    aware = dt.datetime(2024, 7, 1, 1, 30, 0, 500000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert to_attribute(aware, "datetime_tz") == {"S": "2024-06-30 23:30:00.5"}
    assert to_attribute(dt.date(2024, 2, 29), "date") == {"S": "2024-02-29"}
    assert to_attribute(dt.timedelta(hours=-1, minutes=-30), "time") == {"S": "-01:30:00"}
    assert to_attribute(memoryview(b"\x00\x01"), "binary") == {"B": b"\x00\x01"}
    assert to_attribute(decimal.Decimal("NaN"), "number") == {"S": "NaN"}  # not a DynamoDB N
    assert dms_item({"id": 1, "note": None, "ok": True}, {"id": "number", "ok": "boolean"}) == {
        "id": {"N": "1"},
        "ok": {"S": "true"},
    }


@pytest.mark.parametrize(
    ("pg_type", "text", "attr"),
    [
        ("numeric(38,0)", BIG, {"N": BIG}),
        ("numeric", "10.50", {"N": "10.5"}),
        ("numeric", "NaN", {"S": "NaN"}),
        ("double precision", "Infinity", {"S": "Infinity"}),
        ("integer", "-7", {"N": "-7"}),
        ("boolean", "t", {"S": "true"}),
        ("boolean", "f", {"S": "false"}),
        ("bytea", "\\xdeadbeef", {"B": b"\xde\xad\xbe\xef"}),
        ("timestamp with time zone", "2024-07-01 01:30:00.5+02", {"S": "2024-06-30 23:30:00.5"}),
        (
            "timestamp(3) without time zone",
            "2024-01-01 10:00:00.500",
            {"S": "2024-01-01 10:00:00.5"},
        ),
        ("date", "2024-02-29", {"S": "2024-02-29"}),
        ("time without time zone", "08:00:00", {"S": "08:00:00"}),
        ("text", "ünï ✓", {"S": "ünï ✓"}),
        ("jsonb", '{"a": 1}', {"S": '{"a": 1}'}),
        ("text", None, None),
    ],
)
def test_postgres_text_to_dynamodb(pg_type, text, attr):
    # the entry point the e2e CDC stand-in uses (tools/localpipe/dmsvalues.py)
    assert postgres_text_to_dynamodb(pg_type, text) == attr


def test_postgres_text_boolean_as_boolean_and_bad_bytea():
    assert postgres_text_to_dynamodb("boolean", "t", boolean_as_boolean=True) == {"BOOL": True}
    with pytest.raises(ValueError, match="hex"):
        postgres_text_to_dynamodb("bytea", "abc")


@pytest.mark.parametrize(
    ("a", "b", "category"),
    [
        ({"S": "2024-02-29T23:59:59.120"}, {"S": "2024-02-29 23:59:59.12"}, "datetime"),
        ({"S": "2024-02-29 23:59:59+01:00"}, {"S": "2024-02-29 22:59:59"}, "datetime_tz"),
        ({"S": "2000-01-01T00:00:00Z"}, {"S": "2000-01-01 00:00:00"}, "datetime_tz"),
        ({"S": "1999-12-31 00:00:00"}, {"S": "1999-12-31"}, "date"),
        ({"S": "08:00:00.000"}, {"S": "08:00:00"}, "time"),
        ({"S": "12.50"}, {"N": "12.5"}, "number"),
        ({"BOOL": True}, {"S": "true"}, "boolean"),
        ({"N": "0"}, {"S": "false"}, "boolean"),
        ({"B": "3q2+7w=="}, {"B": b"\xde\xad\xbe\xef"}, "binary"),  # Lambda JSON form: base64
        ({"NULL": True}, None, "string"),
    ],
)
def test_canonical_forms_that_mean_the_same_value_are_equal(a, b, category):
    assert canonical(a, category) == canonical(b, category)


@pytest.mark.parametrize(
    ("a", "b", "category"),
    [
        ({"S": "2024-02-29 23:59:59.12"}, {"S": "2024-02-29 23:59:59.13"}, "datetime"),
        ({"S": "2024-02-29 23:59:59+01:00"}, {"S": "2024-02-29 23:59:59"}, "datetime_tz"),
        ({"S": "2024-02-29"}, {"S": "2024-03-01"}, "date"),
        ({"S": "1.5"}, {"S": "1.50"}, "string"),  # text is text
        ({"S": "true"}, {"S": "false"}, "boolean"),
        ({"N": "1"}, {"S": "1"}, "string"),
        ({"S": ""}, None, "string"),  # empty string is a value, not NULL
    ],
)
def test_canonical_forms_of_different_values_differ(a, b, category):
    assert canonical(a, category) != canonical(b, category)


def test_digest_ignores_order_and_absent_columns_but_not_values():
    one = {"id": ("N", "1"), "note": None, "qty": ("N", "2")}
    same = {"qty": ("N", "2"), "id": ("N", "1")}
    other = {"id": ("N", "1"), "qty": ("N", "3")}
    assert digest(one) == digest(same)
    assert digest(one) != digest(other)
    assert len(digest(one)) == 16
