"""PostgreSQL column values -> DynamoDB attributes the way DMS's DynamoDB target writes them.

Input is what both the slot (`test_decoding`) and a `::text` select give: the column's type
name and its text output (None for NULL). When `tools/dms_types.py` (the project's table of
DMS's conversions) exists, the harness uses it; this module is the fallback with the same
rules for the types the e2e workload uses:

=============================================  =================================
integer types, numeric/decimal, real, double   N with the digits PostgreSQL prints
boolean                                        BOOL
bytea                                          B
NULL                                           attribute left out
everything else (text, dates, times, json..)   S with PostgreSQL's text output
=============================================  =================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_NUMERIC = {
    "smallint", "integer", "bigint", "numeric", "decimal", "real", "double precision",
    "int2", "int4", "int8", "float4", "float8", "oid",
}
_FINITE = re.compile(r"-?(?:0|[1-9][0-9]*)?(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?").fullmatch


def _base_type(pg_type: str) -> str:
    return re.sub(r"\(.*\)", "", pg_type).strip()


def dms_attribute(pg_type: str, text: str | None) -> dict[str, Any] | None:
    """One column value as a DynamoDB attribute (None = left out of the item)."""
    if text is None:
        return None
    base = _base_type(pg_type)
    if base in _NUMERIC:
        if text and _FINITE(text):
            return {"N": text}
        return {"S": text}  # NaN / Infinity have no DynamoDB number form
    if base == "boolean":
        return {"BOOL": text in ("t", "true")}
    if base == "bytea":
        if not text.startswith("\\x"):
            raise ValueError(f"bytea text output must be hex (\\x...): {text[:20]!r}")
        return {"B": bytes.fromhex(text[2:])}
    return {"S": text}


def _external() -> Any:
    try:
        from tools import dms_types  # C's table of DMS conversions, when present
    except ImportError:
        return None
    return getattr(dms_types, "postgres_text_to_dynamodb", None)


def dms_item(columns: Iterable[tuple[str, str, str | None]]) -> dict[str, Any]:
    """A row as DMS's `map-record-to-record` item: NULL columns dropped."""
    convert = _external() or dms_attribute
    item = {}
    for name, pg_type, text in columns:
        value = convert(pg_type, text)
        if value is not None:
            item[name] = value
    return item
