"""A PostgreSQL row (column name, type name, text output) as the item DMS's DynamoDB target
writes: each column converted by `tools.dms_types.postgres_text_to_dynamodb` (the project's
table of DMS's conversions), NULL columns left out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools.dms_types import postgres_text_to_dynamodb


def dms_item(columns: Iterable[tuple[str, str, str | None]]) -> dict[str, Any]:
    """A row as DMS's `map-record-to-record` item: NULL columns dropped."""
    item = {}
    for name, pg_type, text in columns:
        value = postgres_text_to_dynamodb(pg_type, text)
        if value is not None:
            item[name] = value
    return item
