"""How AWS DMS writes a relational value into a DynamoDB item, and canonical forms to compare.

DMS maps each source type to one of its own types, then to a DynamoDB scalar (DMS user guide,
"Using an Amazon DynamoDB database as a target", target data types):

================================  =====================  ===============================
source types (PostgreSQL / MySQL)  DMS type               DynamoDB attribute written
================================  =====================  ===============================
smallint int bigint, tinyint ...   INT1..INT8, UINT*      ``N``
numeric / decimal(p,s), money      NUMERIC                ``N`` (exact digits)
real, double, float                REAL4 / REAL8          ``N``
boolean (PostgreSQL)               STRING (varchar(5))    ``S`` "true"/"false" — or
                                                          ``BOOL`` when the source endpoint
                                                          sets ``MapBooleanAsBoolean``
date                               DATE                   ``S`` "YYYY-MM-DD"
timestamp, datetime                DATETIME               ``S`` "YYYY-MM-DD HH:MM:SS[.f]"
timestamptz / MySQL TIMESTAMP      DATETIME (UTC)         ``S`` as above, in UTC
time                               TIME                   ``S`` "HH:MM:SS[.f]"
bytea, blob, binary                BLOB / BYTES           not carried by the DynamoDB
                                                          target (``B`` in this module's
                                                          local stand-in only)
everything else (text, uuid,       STRING / WSTRING /     ``S`` (the source's text form)
json, arrays, enums, interval)     CLOB / NCLOB
NULL                               —                      attribute absent (dropped)
================================  =====================  ===============================

:func:`to_attribute` produces what DMS writes (the e2e work uses it to stand in for DMS).
:func:`canonical` turns an attribute read back from DynamoDB into a comparable
``(tag, text)`` — tolerant of formatting DMS may choose (``T`` or space in timestamps,
trailing zeros in fractions and decimals, booleans as ``S``/``BOOL``/``N``), strict about
values. Exact formats written by a real DMS task can only be confirmed on AWS; the
canonical comparison is what keeps reconcile correct either way.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

Category = Literal[
    "number", "boolean", "date", "datetime", "datetime_tz", "time", "binary", "string"
]
Attribute = dict[str, Any]
Canonical = tuple[str, str]

_CTX = decimal.Context(prec=400)
_FINITE_RE = re.compile(r"-?\d+(?:\.\d+)?")  # exact for any DynamoDB number (38 digits) and beyond

_PG = {
    "smallint": "number",
    "integer": "number",
    "bigint": "number",
    "numeric": "number",
    "decimal": "number",
    "real": "number",
    "double precision": "number",
    "money": "number",
    "boolean": "boolean",
    "date": "date",
    "timestamp without time zone": "datetime",
    "timestamp with time zone": "datetime_tz",
    "time without time zone": "time",
    "time with time zone": "time",
    "bytea": "binary",
}
_MYSQL = {
    "tinyint": "number",
    "smallint": "number",
    "mediumint": "number",
    "int": "number",
    "integer": "number",
    "bigint": "number",
    "decimal": "number",
    "numeric": "number",
    "float": "number",
    "double": "number",
    "real": "number",
    "year": "number",
    "bit": "number",
    "date": "date",
    "datetime": "datetime",
    "timestamp": "datetime_tz",
    "time": "time",
    "binary": "binary",
    "varbinary": "binary",
    "tinyblob": "binary",
    "blob": "binary",
    "mediumblob": "binary",
    "longblob": "binary",
}


#: PostgreSQL's internal / short names (test_decoding and pg_type use some of them)
_PG_ALIASES = {
    "int2": "smallint",
    "int4": "integer",
    "int": "integer",
    "int8": "bigint",
    "float4": "real",
    "float8": "double precision",
    "bool": "boolean",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
    "timetz": "time with time zone",
}
_MODIFIER_RE = re.compile(r"\(\s*\d+(?:\s*,\s*-?\d+)?\s*\)")


def _base_type(data_type: str) -> str:
    """``numeric(38,0)`` -> ``numeric``, ``timestamp(3) without time zone`` -> ``timestamp
    without time zone``; array types (``integer[]``) stay arrays (compared as text)."""
    base = " ".join(_MODIFIER_RE.sub("", data_type.lower()).split())
    return _PG_ALIASES.get(base, base)


def category_of(engine: str, data_type: str) -> Category:
    """The comparison category of a source column from ``information_schema.columns``
    ``data_type`` / ``format_type`` / a ``test_decoding`` type name (PostgreSQL), or
    ``DATA_TYPE`` / ``COLUMN_TYPE`` (MySQL, MariaDB). Unknown types compare as text."""
    if engine == "postgres":
        return _PG.get(_base_type(data_type), "string")  # type: ignore[return-value]
    base = _MODIFIER_RE.sub("", data_type.lower()).split(" ")[0]  # "int(10) unsigned"
    return _MYSQL.get(base, "string")  # type: ignore[return-value]


# --------------------------------------------------------------------------- formatting


def canonical_number(value: Any) -> str:
    """Exact decimal digits, no exponent, no trailing zeros: 1.50 -> "1.5", 1E+2 -> "100"."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        value = repr(value)  # shortest round-trip digits, as PostgreSQL/MySQL print doubles
    d = value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value).strip())
    if not d.is_finite():
        return str(d)
    text = format(d.normalize(_CTX), "f")
    return "0" if text in ("-0", "0") else text


def _fraction(digits: str) -> str:
    digits = digits.rstrip("0")
    return f".{digits}" if digits else ""


def format_datetime(value: dt.datetime) -> str:
    """DMS DATETIME text; aware values are written in UTC, without an offset."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S") + _fraction(f"{value.microsecond:06d}")


def format_time(value: dt.time | dt.timedelta | str) -> str:
    if isinstance(value, dt.timedelta):  # PyMySQL returns TIME as a timedelta
        total_us = value // dt.timedelta(microseconds=1)
        sign = "-" if total_us < 0 else ""
        secs, micro = divmod(abs(total_us), 1_000_000)
        h, rem = divmod(secs, 3600)
        return f"{sign}{h:02d}:{rem // 60:02d}:{rem % 60:02d}" + _fraction(f"{micro:06d}")
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S") + _fraction(f"{value.microsecond:06d}")
    return _canonical_time_text(str(value))


def to_attribute(
    value: Any, category: Category, *, boolean_as_boolean: bool = False
) -> Attribute | None:
    """The DynamoDB attribute DMS writes for ``value`` (``None``: DMS drops NULL columns)."""
    if value is None:
        return None
    if category == "number":
        digits = canonical_number(value)
        return {"N": digits} if _FINITE_RE.match(digits) else {"S": digits}
    if category == "boolean":
        flag = _as_bool(value)
        if flag is None:
            return {"S": str(value)}
        return {"BOOL": flag} if boolean_as_boolean else {"S": "true" if flag else "false"}
    if category == "date":
        if isinstance(value, dt.datetime):
            value = value.date()
        return {"S": value.isoformat() if isinstance(value, dt.date) else str(value)}
    if category in ("datetime", "datetime_tz"):
        if isinstance(value, dt.datetime):
            if category == "datetime_tz" and value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return {"S": format_datetime(value)}
        return {"S": str(value)}
    if category == "time":
        return {"S": format_time(value)}
    if category == "binary":
        if isinstance(value, memoryview | bytearray):
            value = bytes(value)
        return {"B": value if isinstance(value, bytes) else str(value).encode()}
    if isinstance(value, dict | list):
        return {"S": json.dumps(value)}
    return {"S": str(value)}


def postgres_text_to_dynamodb(
    pg_type: str, text: str | None, *, boolean_as_boolean: bool = False
) -> Attribute | None:
    """What DMS writes for one PostgreSQL column given its type name and its text output
    (what ``test_decoding`` and ``col::text`` give; ``None`` for NULL, which DMS drops).

    Numbers keep their exact digits (normalised as DynamoDB stores them: no trailing zeros);
    ``NaN``/``Infinity`` have no DynamoDB number and stay text. ``timestamptz`` text with an
    offset is written in UTC without it; ``bytea`` hex output becomes binary.
    """
    if text is None:
        return None
    category = category_of("postgres", pg_type)
    if category == "number":
        try:
            digits = canonical_number(text)
        except decimal.InvalidOperation:  # "$1,234.50" (money in some locales)
            return {"S": text}
        return {"N": digits} if _FINITE_RE.match(digits) else {"S": text}  # NaN, Infinity
    if category == "binary":
        if text.startswith("\\x"):
            return {"B": bytes.fromhex(text[2:])}
        raise ValueError(f"bytea text output must be hex (\\x...), got {text[:20]!r}")
    if category in ("datetime", "datetime_tz"):
        return {"S": _canonical_datetime_text(text, category)}
    if category == "time":
        return {"S": _canonical_time_text(text)}
    return to_attribute(text, category, boolean_as_boolean=boolean_as_boolean)


def dms_item(
    row: Mapping[str, Any],
    categories: Mapping[str, Category],
    *,
    boolean_as_boolean: bool = False,
) -> dict[str, Attribute]:
    """A whole DynamoDB item as DMS writes a source row (NULL columns left out)."""
    item: dict[str, Attribute] = {}
    for name, value in row.items():
        attr = to_attribute(
            value, categories.get(name, "string"), boolean_as_boolean=boolean_as_boolean
        )
        if attr is not None:
            item[name] = attr
    return item


# --------------------------------------------------------------------------- comparing

_DT_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?(?:\.(\d+))?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_TIME_RE = re.compile(r"^(-?\d{1,3}):(\d{2})(?::(\d{2}))?(?:\.(\d+))?\s*([+-]\d{2}(?::?\d{2})?)?$")


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "1", "yes", "y", "on"):
        return True
    if text in ("false", "f", "0", "no", "n", "off"):
        return False
    return None


def _canonical_datetime_text(text: str, category: Category) -> str:
    m = _DT_RE.match(text.strip())
    if not m:
        return text
    day, hh, mi, ss, frac, tz = m.groups()
    if category == "date":
        if hh is None or (hh, mi, ss or "00", (frac or "").strip("0")) == ("00", "00", "00", ""):
            return day
        return text
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        base = dt.datetime.fromisoformat(f"{day} {hh or '00'}:{mi or '00'}:{ss or '00'}")
        base -= sign * offset
        return base.strftime("%Y-%m-%d %H:%M:%S") + _fraction(frac or "")
    return f"{day} {hh or '00'}:{mi or '00'}:{ss or '00'}" + _fraction(frac or "")


def _canonical_time_text(text: str) -> str:
    m = _TIME_RE.match(text.strip())
    if not m:
        return text
    hh, mi, ss, frac, tz = m.groups()
    sign = "-" if hh.startswith("-") else ""
    out = f"{sign}{int(hh.lstrip('-')):02d}:{mi}:{ss or '00'}" + _fraction(frac or "")
    if tz:
        digits = tz[1:].replace(":", "")
        out += f"{tz[0]}{digits[:2]}" + (f":{digits[2:4]}" if digits[2:4].strip("0") else "")
    return out


def canonical(attr: Attribute | None, category: Category) -> Canonical | None:
    """A comparable ``(tag, text)`` for a DynamoDB attribute of a column of ``category``.
    ``None`` for an absent attribute (a NULL column)."""
    if attr is None:
        return None
    if "NULL" in attr:
        return None  # an explicit NULL attribute means the same as DMS's dropped column
    if "BOOL" in attr or category == "boolean":
        raw = attr.get("BOOL", attr.get("S", attr.get("N")))
        flag = _as_bool(raw)
        if flag is not None:
            return ("BOOL", "true" if flag else "false")
    if "N" in attr or ("S" in attr and category == "number"):
        raw = attr.get("N", attr.get("S"))
        try:
            return ("N", canonical_number(raw))
        except decimal.InvalidOperation:
            return ("S", str(raw))
    if "B" in attr:
        raw_b = attr["B"]
        if isinstance(raw_b, str):  # JSON form (Lambda events): base64 text
            raw_b = base64.b64decode(raw_b)
        return ("B", base64.b64encode(bytes(raw_b)).decode())
    if "S" in attr:
        text = str(attr["S"])
        if category in ("date", "datetime", "datetime_tz"):
            return ("S", _canonical_datetime_text(text, category))
        if category == "time":
            return ("S", _canonical_time_text(text))
        return ("S", text)
    # sets, lists, maps: DMS does not write them, compare their JSON form
    return ("JSON", json.dumps(attr, sort_keys=True, default=str))


def canonical_value(
    value: Any, category: Category, *, boolean_as_boolean: bool = False
) -> Canonical | None:
    """Canonical form of a source value: ``canonical(to_attribute(value))``."""
    return canonical(to_attribute(value, category, boolean_as_boolean=boolean_as_boolean), category)


def digest(columns: Mapping[str, Canonical | None]) -> bytes:
    """A 16-byte hash of the non-NULL canonical columns (order-independent)."""
    present = sorted((k, v[0], v[1]) for k, v in columns.items() if v is not None)
    blob = json.dumps(present, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(blob).digest()[:16]
