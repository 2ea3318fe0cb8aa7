"""Envelope v1 (docs/bus.md §1): decode bytes into a checked dict with exact numbers.

Only the standard library is imported here.
"""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
from typing import Any

__all__ = [
    "OPS",
    "MalformedEnvelope",
    "decode",
    "dumps",
    "loads",
    "row_key",
]

#: The envelope's operations: stream changes, and the backfill's snapshots.
OPS = frozenset({"insert", "update", "delete", "snapshot"})
_SEQ = re.compile(r"[0-9]+")
#: Digits of a `seq` read: DynamoDB stream sequence numbers have 21 to 40 (and Python's int()
#: refuses more than 4,300, which would fail every record of the row inside `process`).
MAX_SEQ_DIGITS = 64
#: JSON nesting read: the envelope object and its row image (`new`, `old`), then DynamoDB's
#: 32 levels of maps and lists, the deepest of which may hold a set (a JSON list). Deeper data
#: is no row of DynamoDB; reading it would hit Python's recursion limit in `dumps`.
MAX_DEPTH = 2 + 32 + 1


class MalformedEnvelope(ValueError):  # noqa: N818 - reads as what the record is
    """A record that is not a v1 envelope; the message names what is wrong."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(data: bytes | str) -> Any:
    """JSON with exact numbers: every number a Decimal (never a float); NaN/Infinity refused."""
    return json.loads(data, parse_float=Decimal, parse_int=Decimal, parse_constant=_no_constant)


def dumps(value: Any) -> str:
    """Compact JSON (no whitespace, not ASCII-escaped) with numbers written with their exact
    digits: `dumps(loads(b))` keeps 38-digit numbers and `1.50` as they were."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{dumps(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, bytes):
        return json.dumps(base64.b64encode(value).decode("ascii"))
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def row_key(keys: dict[str, Any]) -> str:
    """The row's identity within its table: its key attributes as canonical JSON (names
    sorted, no whitespace, exact numbers), as in the bus's partition key
    (`{"order_id":42,"tenant":"acme"}`)."""
    return dumps({k: keys[k] for k in sorted(keys)})


def _depth(value: Any) -> int:
    """How many objects and arrays are nested in `value` (0 for a scalar); no recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        children = (item.values() if isinstance(item, dict)
                    else item if isinstance(item, list) else None)
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        todo.extend((child, level + 1) for child in children)
    return deepest


def _problem(env: Any) -> str | None:
    """What makes a parsed value not a v1 envelope, or None."""
    if not isinstance(env, dict):
        return f"expected a JSON object, found {type(env).__name__}"
    v = env.get("v")
    if not (isinstance(v, Decimal) and v == 1):
        return f"unsupported envelope version v={v!r} (this consumer reads v=1)"
    missing = [f for f in ("id", "op", "table", "keys", "old", "new", "ts", "seq") if f not in env]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    for name in ("id", "table"):
        if not isinstance(env[name], str) or not env[name]:
            return f"{name}: expected a non-empty string, found {env[name]!r}"
    op = env["op"]
    if op not in OPS:
        return f"op: expected one of {', '.join(sorted(OPS))}, found {op!r}"
    if not isinstance(env["keys"], dict) or not env["keys"]:
        return f"keys: expected a non-empty object, found {env['keys']!r}"
    for name in ("old", "new"):
        if env[name] is not None and not isinstance(env[name], dict):
            return f"{name}: expected an object or null, found {type(env[name]).__name__}"
    if not isinstance(env["ts"], str):
        return f"ts: expected a string, found {env['ts']!r}"
    seq = env["seq"]
    if op == "snapshot":
        if seq != "":
            return f"seq: expected \"\" for a snapshot, found {seq!r}"
    elif not (isinstance(seq, str) and _SEQ.fullmatch(seq)):
        return f"seq: expected a decimal sequence number, found {seq!r}"
    elif len(seq) > MAX_SEQ_DIGITS:
        return (f"seq: expected 1-{MAX_SEQ_DIGITS} digits, found {len(seq)} "
                f"({seq[:20]}...)")
    if "source" in env and not isinstance(env["source"], dict):
        return f"source: expected an object, found {env['source']!r}"
    if op in ("insert", "snapshot") and env["old"] is not None:
        return f"old: expected null for {op}"
    if op == "delete" and env["new"] is not None:
        return "new: expected null for delete"
    if "overflow" in env:
        uri = env["overflow"]
        if not (isinstance(uri, str) and uri.startswith("s3://")
                and "/" in uri[5:] and not uri[5:].startswith("/")
                and not uri[5:].endswith("/")):
            return f"overflow: expected s3://<bucket>/<key>, found {uri!r}"
    elif op != "delete" and env["new"] is None:
        return f"new: expected the row image for {op}, found null"
    return None


def decode(data: bytes | str) -> dict[str, Any]:
    """One bus record's data as a checked envelope: a dict whose numbers are Decimals with the
    stored digits. Raises MalformedEnvelope (naming what is wrong) for bytes that are not
    UTF-8, text that is not JSON, or JSON that is not a v1 envelope. Fields this version does
    not know are kept (additions within v1 do not break a consumer)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        env = loads(text)
    except UnicodeDecodeError as exc:
        raise MalformedEnvelope(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise MalformedEnvelope("nested too deeply") from None
    except ValueError as exc:
        raise MalformedEnvelope(f"not JSON: {' '.join(str(exc).split())}") from None
    problem = _problem(env)
    if problem is None and _depth(env) > MAX_DEPTH:
        problem = (f"nested deeper than {MAX_DEPTH} levels (the envelope's 2 and DynamoDB's "
                   "32 levels of maps and lists, the deepest holding a set)")
    if problem:
        raise MalformedEnvelope(problem)
    return env
