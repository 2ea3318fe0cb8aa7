"""Envelope v1: one row change as the bytes that go on the bus.

Shared by the fan-in handler (stream records), the backfill (snapshots) and the DLQ redrive
tool. The contract is `../shared/envelope.schema.json`; `docs/bus.md` explains it for
consumers.

A DynamoDB-JSON value is turned into plain Python values that orjson writes: a number
becomes an `orjson.Fragment` of its stored digits, so the `N` text is copied byte for byte
and a float never appears. Value mapping:

======  =====================================================================
S       JSON string
N       JSON number with exactly the stored digits
BOOL    true / false
NULL    null
B       base64 string
SS      array of strings;  NS: array of exact numbers;  BS: array of base64
L       array;  M: object (attribute names in the order stored)
======  =====================================================================

Map attributes and set members are written in the order the value holds them (as DynamoDB
delivered them; nothing is sorted): DynamoDB promises neither order, so a consumer compares
sets as sets, and sorting would cost the hot path for nothing. Only `keys` is sorted (by
name): it is the row's canonical identity. Every `N` of a record is checked with one regex
call before the record is written; one that is not a JSON number (DynamoDB never sends
such) is rewritten by `Decimal` or, if it is no finite number, makes the record an
`EnvelopeError`. So does nesting deeper than orjson writes (about 250 levels; DynamoDB allows
32).

`value_json` is the project's one DynamoDB-JSON -> JSON writer: the envelope's images are
written by the same code (an image's member is byte for byte `value_json` of its value), and
the writeback uses it for the map, list and set values it stores in JSON or text columns.

Input records may be in the JSON form Lambda delivers (binary as base64 strings,
`ApproximateCreationDateTime` as epoch seconds) or in the form boto3's `get_records` returns
(binary as bytes, the time as a datetime); both give the same envelope.

Nothing heavy is imported here (no boto3): the fan-in's cold start depends on it. orjson's
import brings a few standard modules that boto3 imports too; its cost before and after boto3
is measured in `bench/README.md`.
"""

from __future__ import annotations

import base64
import re
import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "ENVELOPE_VERSION",
    "MAX_PARTITION_KEY_CHARS",
    "Envelope",
    "EnvelopeError",
    "canonical_keys",
    "image_json",
    "image_to_python",
    "iso_utc",
    "partition_key",
    "physical_table_of",
    "snapshot_envelope",
    "snapshot_id",
    "stream_envelope",
    "value_json",
    "value_to_python",
]

ENVELOPE_VERSION = 1
#: Kinesis accepts partition keys of at most 256 Unicode characters.
MAX_PARTITION_KEY_CHARS = 256

_OPS = {"INSERT": "insert", "MODIFY": "update", "REMOVE": "delete"}
# A JSON number (RFC 8259), ASCII digits only. DynamoDB returns its numbers in this form.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?").fullmatch
_TTL_PRINCIPAL = "dynamodb.amazonaws.com"
_dumps = orjson.dumps
_Fragment = orjson.Fragment


class EnvelopeError(ValueError):
    """The record cannot be turned into an envelope (malformed input): a poison record."""


class Envelope:
    """One envelope ready for the bus.

    `data` is the UTF-8 JSON of the whole envelope; the other attributes repeat what the
    publisher needs without parsing it again.
    """

    __slots__ = (
        "data",
        "id",
        "keys_json",
        "op",
        "partition_key",
        "seq",
        "source_json",
        "table",
        "ts",
    )

    def __init__(
        self,
        *,
        id: str,
        table: str,
        partition_key: str,
        data: bytes,
        seq: str,
        op: str,
        keys_json: str,
        ts: str,
        source_json: str,
    ) -> None:
        self.id = id
        self.table = table
        self.partition_key = partition_key
        self.data = data
        self.seq = seq
        self.op = op
        self.keys_json = keys_json
        self.ts = ts
        self.source_json = source_json

    def record_bytes(self) -> int:
        """Size Kinesis counts against its limits: data plus UTF-8 partition key."""
        return len(self.data) + len(self.partition_key.encode("utf-8"))

    def pointer(self, uri: str) -> bytes:
        """The overflow pointer envelope: same id/op/keys/seq, no images, `overflow` = uri."""
        return _envelope_bytes(
            self.id, self.op, self.table, self.keys_json, None, None, self.ts, self.seq,
            self.source_json, uri,
        )

    def __repr__(self) -> str:
        return (
            f"Envelope(id={self.id!r}, op={self.op!r}, table={self.table!r}, "
            f"seq={self.seq!r}, bytes={len(self.data)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Envelope):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- values -> JSON
#
# `_map`, `_list` and `_value` turn DynamoDB JSON into what orjson writes. Each `N` is
# appended to `nums` as it comes and written as a Fragment; the caller checks all of them at
# once (`_numbers_ok`) before the text is used, and redoes the image from a copy whose numbers
# were checked one by one (`_careful`) if one is not a JSON number. Malformed shapes raise
# TypeError/AttributeError (orjson's JSONEncodeError is a TypeError too), which the public
# functions turn into EnvelopeError. A value with two type tags is read by the first of S, N,
# M, L it holds; values of the other types must hold exactly one tag (`_other`).


def _map(m: Mapping[str, Any], nums: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, av in m.items():
        if "S" in av:
            s = av["S"]
            out[k] = s if s.__class__ is str else _string(s)
        elif "N" in av:
            n = av["N"]
            nums.append(n)
            out[k] = _Fragment(n)
        elif "M" in av:
            out[k] = _map(av["M"], nums)
        elif "L" in av:
            out[k] = _list(av["L"], nums)
        else:
            out[k] = _other(av, nums)
    return out


def _list(items: list[Any], nums: list[Any]) -> list[Any]:
    if items.__class__ is not list:
        raise EnvelopeError("L value must be an array")
    out: list[Any] = []
    append = out.append
    for av in items:
        if "S" in av:
            s = av["S"]
            append(s if s.__class__ is str else _string(s))
        elif "N" in av:
            n = av["N"]
            nums.append(n)
            append(_Fragment(n))
        elif "M" in av:
            append(_map(av["M"], nums))
        elif "L" in av:
            append(_list(av["L"], nums))
        else:
            append(_other(av, nums))
    return out


def _value(av: Any, nums: list[Any]) -> Any:
    if "S" in av:
        s = av["S"]
        return s if s.__class__ is str else _string(s)
    if "N" in av:
        n = av["N"]
        nums.append(n)
        return _Fragment(n)
    if "M" in av:
        return _map(av["M"], nums)
    if "L" in av:
        return _list(av["L"], nums)
    return _other(av, nums)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise EnvelopeError(f"S value must be a string, found {type(value).__name__}")


def _binary(value: Any) -> str:
    """Base64 text of a B value (Lambda form: already base64; boto3 form: bytes)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    raise EnvelopeError(f"B value must be base64 text or bytes, found {type(value).__name__}")


def _other(av: Any, nums: list[Any]) -> Any:
    """The less common attribute values (and malformed ones: an error)."""
    if av.__class__ is not dict or len(av) != 1:
        raise EnvelopeError(f"attribute value must be a one-key object, found {av!r:.80}")
    ((kind, v),) = av.items()
    if kind == "BOOL":
        if v is True or v is False:
            return v
        raise EnvelopeError("BOOL value must be true or false")
    if kind == "NULL":
        return None
    if kind == "B":
        return _binary(v)
    if kind not in _SETS:
        raise EnvelopeError(f"unknown DynamoDB type {kind!r}")
    if v.__class__ is not list:
        raise EnvelopeError(f"{kind} value must be an array")
    if kind == "NS":
        nums += v
        return [_Fragment(n) for n in v]
    if kind == "BS":
        return [_binary(b) for b in v]
    for s in v:
        if not isinstance(s, str):
            raise EnvelopeError(f"SS value must hold strings, found {type(s).__name__}")
    return v


_SETS = frozenset({"SS", "NS", "BS"})


def _number(text: Any) -> str:
    """`text` as a JSON number: the stored digits when they already are one (always, for
    DynamoDB), else the same value rewritten by Decimal (never through a float)."""
    if not isinstance(text, str):
        raise EnvelopeError(f"N value must be a string of digits, found {type(text).__name__}")
    if _JSON_NUMBER(text):
        return text
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise EnvelopeError(f"N value is not a number: {text!r:.60}") from None
    if not value.is_finite():
        raise EnvelopeError(f"N value is not a finite number: {text!r:.60}")
    out = str(value)
    if not _JSON_NUMBER(out):  # str(Decimal) gives e.g. '0.5', '1E+5': JSON numbers
        raise EnvelopeError(f"N value has no JSON form: {text!r:.60}")
    return out


def _careful(av: Any) -> Any:
    """A copy of an attribute value whose numbers are checked and normalized one by one."""
    if not isinstance(av, dict) or len(av) != 1:
        raise EnvelopeError(f"attribute value must be a one-key object, found {av!r:.80}")
    ((kind, v),) = av.items()
    if kind == "N":
        return {"N": _number(v)}
    if kind == "NS" and isinstance(v, list):
        return {"NS": [_number(n) for n in v]}
    if kind == "M" and isinstance(v, dict):
        return {"M": {k: _careful(x) for k, x in v.items()}}
    if kind == "L" and isinstance(v, list):
        return {"L": [_careful(x) for x in v]}
    return av


# Possessive quantifiers (Python 3.11+) keep the one-call check of all numbers cheap.
_ONE_NUMBER = r"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+"
_ALL_NUMBERS = re.compile(f"{_ONE_NUMBER}(?:,{_ONE_NUMBER})*+").fullmatch


def _numbers_ok(nums: list[Any]) -> bool:
    """One regex call for all numbers of a record: are they all JSON numbers already?

    The comma count makes sure no single value holds a comma: "1,2" would otherwise pass as
    two numbers and be written into the JSON as two."""
    if not nums:
        return True
    try:
        text = ",".join(nums)
    except TypeError:  # a number that is not even a string
        return False
    return text.count(",") == len(nums) - 1 and _ALL_NUMBERS(text) is not None


def _image(image: Mapping[str, Any]) -> dict[str, Any]:
    """What orjson writes for an image: fast path, careful path if a number needs it."""
    nums: list[Any] = []
    out = _map(image, nums)
    if _numbers_ok(nums):
        return out
    return _map({k: _careful(av) for k, av in image.items()}, [])


def value_json(av: Mapping[str, Any]) -> str:
    """JSON text of one DynamoDB-JSON attribute value: the project's one DynamoDB-JSON -> JSON
    writer (the envelope's images, the writeback's JSON values).

    Compact (no whitespace), non-ASCII as is; numbers with their stored digits (rewritten by
    Decimal only when not already a JSON number); binary as base64 (bytes are encoded, base64
    text is copied); map attributes and set members in the order `av` holds them, nothing
    sorted. Lambda's form and boto3's give the same text. A malformed value raises
    `EnvelopeError` (a ValueError)."""
    try:
        nums: list[Any] = []
        value = _value(av, nums)
        if not _numbers_ok(nums):
            value = _value(_careful(av), [])
        return _dumps(value).decode()
    except (TypeError, AttributeError, RecursionError) as error:
        raise EnvelopeError(f"malformed attribute value: {error}") from None


def image_json(image: Mapping[str, Any]) -> str:
    """JSON object text of a DynamoDB-JSON image (a stream record's NewImage, a scanned item)."""
    if not isinstance(image, dict):
        raise EnvelopeError(f"image must be an object, found {type(image).__name__}")
    try:
        return _dumps(_image(image)).decode()
    except (TypeError, AttributeError, RecursionError) as error:
        raise EnvelopeError(f"malformed image: {error}") from None


# ---------------------------------------------------------------------- values -> Python


def value_to_python(av: Mapping[str, Any]) -> Any:
    """One DynamoDB-JSON attribute value as a plain Python value with exact numbers.

    S -> str, N -> Decimal (exact, any number of digits), B -> bytes, BOOL -> bool,
    NULL -> None, SS/NS/BS -> set, L -> list, M -> dict. Binary may be base64 text (Lambda)
    or bytes (boto3).
    """
    if not isinstance(av, dict) or len(av) != 1:
        raise EnvelopeError(f"attribute value must be a one-key object, found {av!r:.80}")
    ((kind, v),) = av.items()
    if kind == "S":
        return v
    if kind == "N":
        return Decimal(_number(v))
    if kind == "M":
        return {k: value_to_python(x) for k, x in v.items()}
    if kind == "L":
        return [value_to_python(x) for x in v]
    if kind == "BOOL":
        return bool(v)
    if kind == "NULL":
        return None
    if kind == "SS":
        return set(v)
    if kind == "NS":
        return {Decimal(_number(n)) for n in v}
    if kind == "B":
        return _to_bytes(v)
    if kind == "BS":
        return {_to_bytes(b) for b in v}
    raise EnvelopeError(f"unknown DynamoDB type {kind!r}")


def image_to_python(image: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB-JSON image as a dict of plain Python values (numbers as exact Decimal)."""
    return {name: value_to_python(av) for name, av in image.items()}


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return base64.b64decode(value, validate=True)
    return bytes(value)


# ----------------------------------------------------------------------- keys, time, names


def canonical_keys(keys: Mapping[str, Any]) -> str:
    """Canonical JSON of a row's key attributes: names sorted (code point order), no
    whitespace, strings escaped like `json.dumps(ensure_ascii=False)`, numbers as stored,
    binary as base64. The same row always gives the same text."""
    if not isinstance(keys, dict) or not keys:
        raise EnvelopeError("a change needs at least one key attribute")
    try:
        nums: list[Any] = []
        names = sorted(keys) if len(keys) > 1 else keys
        ordered = {name: _value(keys[name], nums) for name in names}
        if not _numbers_ok(nums):
            ordered = {name: _value(_careful(keys[name]), []) for name in names}
        return _dumps(ordered).decode()
    except (TypeError, AttributeError, RecursionError) as error:
        raise EnvelopeError(f"malformed keys: {error}") from None


def partition_key(table: str, keys_json: str) -> str:
    """Kinesis partition key of a row: `<table>|<canonical keys JSON>`.

    Kinesis caps partition keys at 256 characters; a longer one is replaced by
    `<table>|#sha256:<hex of the full key>` (still one fixed key per row, so per-row order
    holds). Consumers read `table`/`keys` from the envelope, never the partition key.
    """
    key = f"{table}|{keys_json}"
    if len(key) <= MAX_PARTITION_KEY_CHARS:
        return key
    import hashlib

    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    short = f"{table}|#sha256:{digest}"
    return short if len(short) <= MAX_PARTITION_KEY_CHARS else f"#sha256:{digest}"


_ISO_CACHE: dict[Any, str] = {}


def iso_utc(when: Any) -> str:
    """ISO 8601 UTC text (`2026-01-31T12:00:00Z`, milliseconds when not whole seconds) of
    epoch seconds (int/float/Decimal/digit string) or an aware datetime."""
    if when.__class__ is bool:  # checked first: True == 1 would hit 1's cache entry
        raise EnvelopeError("ApproximateCreationDateTime must be epoch seconds, found a boolean")
    try:
        cached = _ISO_CACHE.get(when)
    except TypeError:  # unhashable: not a time anyway
        raise EnvelopeError(
            f"ApproximateCreationDateTime must be epoch seconds, found {when!r:.40}"
        ) from None
    if cached is not None:
        return cached
    if hasattr(when, "timestamp"):
        seconds = float(when.timestamp())
    else:
        try:
            seconds = float(when)
        except (TypeError, ValueError):
            raise EnvelopeError(
                f"ApproximateCreationDateTime must be epoch seconds, found {when!r:.40}"
            ) from None
    try:
        whole, frac = divmod(round(seconds * 1000), 1000)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    except (OverflowError, OSError, ValueError):
        raise EnvelopeError(f"ApproximateCreationDateTime out of range: {when!r:.40}") from None
    text = f"{text}.{frac:03d}Z" if frac else f"{text}Z"
    if len(_ISO_CACHE) > 4096:
        _ISO_CACHE.clear()
    _ISO_CACHE[when] = text
    return text


_TABLE_OF_ARN: dict[str, str] = {}


def physical_table_of(record: Mapping[str, Any]) -> str:
    """Physical table name from a Lambda stream record's `eventSourceARN`
    (`arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`)."""
    arn = record.get("eventSourceARN")
    cached = _TABLE_OF_ARN.get(arn) if isinstance(arn, str) else None
    if cached is not None:
        return cached
    if not isinstance(arn, str):
        raise EnvelopeError("record has no eventSourceARN")
    parts = arn.split("/")
    if len(parts) < 2 or not parts[0].endswith(":table") or not parts[1]:
        raise EnvelopeError(f"eventSourceARN is not a DynamoDB stream ARN: {arn!r}")
    if len(_TABLE_OF_ARN) < 1024:
        _TABLE_OF_ARN[arn] = parts[1]
    return parts[1]


# ------------------------------------------------------------------------------ envelopes


def _envelope_bytes(
    id_: str,
    op: str,
    table: str,
    keys_json: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    ts: str,
    seq: str,
    source_json: str,
    overflow: str | None = None,
) -> bytes:
    document = {
        "v": ENVELOPE_VERSION,
        "id": id_,
        "op": op,
        "table": table,
        "keys": _Fragment(keys_json),
        "old": old,
        "new": new,
        "ts": ts,
        "seq": seq,
        "source": _Fragment(source_json),
    }
    if overflow is not None:
        document["overflow"] = overflow
    return _dumps(document)


def _source_json(physical_table: str, ttl: bool = False) -> str:
    source: dict[str, Any] = {"table": physical_table}
    if ttl:
        source["ttl"] = True
    return _dumps(source).decode()


def stream_envelope(
    record: Mapping[str, Any], logical_table: str, *, physical_table: str | None = None
) -> Envelope:
    """The envelope of one DynamoDB Streams record.

    `record` is one element of a Lambda event's `Records` (or a boto3 `get_records` record;
    pass `physical_table` then, since those carry no `eventSourceARN`). `logical_table` is
    the configured name the envelope's `table` carries. Raises `EnvelopeError` for a record
    that cannot be converted (a poison record).
    """
    try:
        ddb = record["dynamodb"]
        op = _OPS.get(record["eventName"])
        if op is None:
            raise EnvelopeError(f"unknown eventName {record['eventName']!r}")
        event_id = record["eventID"]
        seq = ddb["SequenceNumber"]
        if not isinstance(event_id, str) or not event_id:
            raise EnvelopeError("eventID must be a non-empty string")
        if not isinstance(seq, str):
            raise EnvelopeError("SequenceNumber must be a string")
        physical = physical_table if physical_table is not None else physical_table_of(record)
        keys_json = canonical_keys(ddb["Keys"])
        old_image = ddb.get("OldImage") if op != "insert" else None
        new_image = ddb.get("NewImage") if op != "delete" else None
        nums: list[Any] = []
        old = _map(old_image, nums) if old_image is not None else None
        new = _map(new_image, nums) if new_image is not None else None
        if not _numbers_ok(nums):  # never with DynamoDB's own numbers: the careful path
            old = _image(old_image) if old_image is not None else None
            new = _image(new_image) if new_image is not None else None
        ts = iso_utc(ddb["ApproximateCreationDateTime"])
        identity = record.get("userIdentity")
        ttl = identity.get("principalId") == _TTL_PRINCIPAL if identity else False
        source_json = _source_json(physical, ttl)
        data = _envelope_bytes(
            event_id, op, logical_table, keys_json, old, new, ts, seq, source_json
        )
    except EnvelopeError:
        raise
    except KeyError as error:
        raise EnvelopeError(f"record lacks {error}") from None
    except (TypeError, AttributeError, RecursionError) as error:
        raise EnvelopeError(f"malformed record: {error}") from None
    pkey = f"{logical_table}|{keys_json}"
    return Envelope(
        id=event_id,
        table=logical_table,
        partition_key=pkey
        if len(pkey) <= MAX_PARTITION_KEY_CHARS
        else partition_key(logical_table, keys_json),
        data=data,
        seq=seq,
        op=op,
        keys_json=keys_json,
        ts=ts,
        source_json=source_json,
    )


def snapshot_id(physical_table: str, keys_json: str) -> str:
    """Deterministic id of a row's snapshot: the same row of the same physical table always
    gets the same id, so a re-run backfill is deduplicated by consumers."""
    import hashlib

    return "snapshot-" + hashlib.sha256(f"{physical_table}|{keys_json}".encode()).hexdigest()


def snapshot_envelope(
    item: Mapping[str, Any],
    *,
    logical_table: str,
    physical_table: str,
    key_names: Iterable[str],
    scanned_at: Any,
) -> Envelope:
    """The envelope of a row found by the backfill scan: op `snapshot`, old null, seq "".

    `item` is a DynamoDB-JSON item as `scan` returns it (binary as bytes or base64 text),
    `key_names` the table's key attribute names, `scanned_at` epoch seconds or a datetime.
    """
    try:
        names = list(key_names)
        missing = [name for name in names if name not in item]
        if missing or not names:
            raise EnvelopeError(f"item lacks key attribute(s) {missing or names}")
        keys_json = canonical_keys({name: item[name] for name in names})
        new = _image(item)
        ts = iso_utc(scanned_at)
        source_json = _source_json(physical_table)
        event_id = snapshot_id(physical_table, keys_json)
        data = _envelope_bytes(
            event_id, "snapshot", logical_table, keys_json, None, new, ts, "", source_json
        )
    except EnvelopeError:
        raise
    except (TypeError, AttributeError, RecursionError) as error:
        raise EnvelopeError(f"malformed item: {error}") from None
    return Envelope(
        id=event_id,
        table=logical_table,
        partition_key=partition_key(logical_table, keys_json),
        data=data,
        seq="",
        op="snapshot",
        keys_json=keys_json,
        ts=ts,
        source_json=source_json,
    )
