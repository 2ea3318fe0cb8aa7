"""Envelope v1: one row change as the bytes that go on the bus.

Shared by the fan-in handler (stream records), the backfill (snapshots) and the DLQ redrive
tool. The contract is `../shared/envelope.schema.json`; `docs/bus.md` explains it for
consumers.

Values are written straight to JSON text by a small hand-written serializer instead of going
through `TypeDeserializer` + `json.dumps`: it is several times faster (`bench/README.md`)
and it can copy DynamoDB's `N` digits byte for byte (a float never appears anywhere). Maps
whose attribute names recur, such as the rows of one table, are written by a function made
for their shape (a "plan", see below). Value mapping:

======  =====================================================================
S       JSON string
N       JSON number with exactly the stored digits
BOOL    true / false
NULL    null
B       base64 string
SS      array of strings;  NS: array of exact numbers;  BS: array of base64
L       array;  M: object
======  =====================================================================

Input records may be in the JSON form Lambda delivers (binary as base64 strings,
`ApproximateCreationDateTime` as epoch seconds) or in the form boto3's `get_records` returns
(binary as bytes, the time as a datetime); both give the same envelope.

Nothing heavy is imported here (no boto3, no dataclasses): the fan-in's cold start depends
on it.
"""

from __future__ import annotations

import base64
import operator
import re
import time
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring as _enc
from typing import TYPE_CHECKING, Any

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
        return _envelope_text(
            self.id, self.op, self.table, self.keys_json, "null", "null", self.ts, self.seq,
            self.source_json, overflow=uri,
        ).encode("utf-8")

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


def _binary(value: Any) -> str:
    """Base64 JSON string of a B value (Lambda form: already base64; boto3 form: bytes)."""
    if isinstance(value, str):
        return _enc(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return '"' + base64.b64encode(value).decode("ascii") + '"'
    raise EnvelopeError(f"B value must be base64 text or bytes, found {type(value).__name__}")


# Attribute names repeat from record to record: their JSON form (with the colon) is cached.
_KEY_CACHE: dict[str, str] = {}


def _key(name: str) -> str:
    text = _enc(name) + ":"
    if len(name) <= 256:  # names may be 64 KB long: those are not worth keeping
        if len(_KEY_CACHE) >= 20_000:
            _KEY_CACHE.clear()
        _KEY_CACHE[name] = text
    return text


# The hot path. Numbers are written as they come and collected in `nums`; `_image_text`
# checks them all with one regex call at the end and, if one is not a JSON number (DynamoDB
# never sends such), redoes the image from a copy whose numbers were checked and normalized
# one by one (`_careful`). Malformed shapes raise TypeError/AttributeError, which the public
# functions turn into EnvelopeError.
#
# Maps of six or more attributes whose attribute names (in order) recur get a *plan*: a
# function written for that shape (see "shape plans" below) that reads every value straight
# from its place, without the per-attribute type tests of the generic walk. A plan that meets
# a value of another type raises KeyError/TypeError/AttributeError and `_map` writes the map
# the generic way instead, so plans change speed, never output.


def _map(m: Mapping[str, Any], nums: list[str]) -> str:
    if _MIN_PLAN_KEYS <= len(m) <= _MAX_PLAN_KEYS and m.__class__ is dict:
        keys = tuple(m)
        plan = _PLANS.get(keys)
        if plan is None:
            plan = _plan_for(keys, m)
        if plan:
            try:
                return plan(m, nums)
            except (KeyError, TypeError, AttributeError):
                _plan_missed(keys)
    parts: list[str] = []
    append = parts.append
    cache = _KEY_CACHE
    for k, av in m.items():
        try:
            key = cache[k]
        except KeyError:
            key = _key(k)
        if "S" in av:
            append(key + _enc(av["S"]))
        elif "N" in av:
            n = av["N"]
            nums.append(n)
            append(key + n)
        elif "M" in av:
            append(key + _map(av["M"], nums))
        elif "L" in av:
            append(key + _list(av["L"], nums))
        else:
            append(key + _other(av, nums))
    return "{" + ",".join(parts) + "}"


def _list(items: list[Any], nums: list[str]) -> str:
    if items.__class__ is not list:
        raise EnvelopeError("L value must be an array")
    parts: list[str] = []
    append = parts.append
    for av in items:
        if "S" in av:
            append(_enc(av["S"]))
        elif "N" in av:
            n = av["N"]
            nums.append(n)
            append(n)
        elif "M" in av:
            append(_map(av["M"], nums))
        elif "L" in av:
            append(_list(av["L"], nums))
        else:
            append(_other(av, nums))
    return "[" + ",".join(parts) + "]"


def _value(av: Any, nums: list[str]) -> str:
    """JSON text of one attribute value of any type."""
    return _list([av], nums)[1:-1]


def _number_list(items: Any, nums: list[str]) -> str:
    """JSON text of an L value that plans expect to hold numbers only (else `_list`)."""
    if items.__class__ is list:
        try:
            numbers = [av["N"] for av in items]
        except (KeyError, TypeError):
            return _list(items, nums)
        nums += numbers
        return "[" + ",".join(numbers) + "]"
    return _list(items, nums)


def _other(av: Any, nums: list[str]) -> str:
    """JSON text of the less common attribute values (and of malformed ones: an error)."""
    if av.__class__ is not dict or len(av) != 1:
        raise EnvelopeError(f"attribute value must be a one-key object, found {av!r:.80}")
    for kind in av:
        v = av[kind]
    if kind == "B":
        return _enc(v) if v.__class__ is str else _binary(v)
    if v.__class__ is not list:
        if kind == "BOOL":
            if v is True:
                return "true"
            if v is False:
                return "false"
            raise EnvelopeError("BOOL value must be true or false")
        if kind == "NULL":
            return "null"
        if kind in _SETS:
            raise EnvelopeError(f"{kind} value must be an array")
        raise EnvelopeError(f"unknown DynamoDB type {kind!r}")
    if kind == "SS":
        return "[" + ",".join(map(_enc, v)) + "]"  # TypeError for a non-string: malformed
    if kind == "NS":
        nums.extend(v)
        return "[" + ",".join(v) + "]"
    if kind == "BS":
        if not v or v[0].__class__ is str:  # Lambda form: already base64 (bytes in it: error)
            return "[" + ",".join(map(_enc, v)) + "]"
        return "[" + ",".join([_binary(b) for b in v]) + "]"
    raise EnvelopeError(f"unknown DynamoDB type {kind!r}")


_SETS = frozenset({"SS", "NS", "BS"})


# ----------------------------------------------------------------------------- shape plans
#
# Rows of one table mostly share one shape: DMS writes every row of a source table with the
# same columns (a NULL column is left out, which makes another shape), so the same attribute
# names come in the same order with the same types, record after record. The second time
# `_map` sees a tuple of names it writes a plan for it: Python source that unpacks the
# values in order and formats them into one f-string, with nested maps and lists of the
# sample unrolled the same way (each nested map's names checked before use, else the generic
# walk writes it). The source holds no data: attribute names and JSON fragments reach it as
# constants in the namespace it is executed in, so any name is safe, and the only literals
# are the fixed DynamoDB type tags. The caches are bounded; a shape whose plan keeps missing
# (a type that changes from record to record) goes back to the generic walk for good.
# One difference from the generic walk, for input no AWS API produces: an attribute value
# with two type tags is read by the tag the plan expects there (the walk prefers S, N, M, L).

_PLANS: dict[tuple[str, ...], Any] = {}  # names -> plan, or False: generic walk only
# hash of names seen once -> 1 (plan on the next sighting) or 0 (names too long to keep)
_SEEN: dict[int, int] = {}
_MISSES: dict[tuple[str, ...], int] = {}
_MIN_PLAN_KEYS = 6  # below this the lookup costs about what a plan saves
_MAX_PLAN_KEYS = 256
_MAX_PLANS = 128
_MAX_PLAN_VALUES = 400  # values unrolled into one plan; the rest are written generically
_MAX_INLINE_KEYS = 32  # a bigger nested map is written by `_map` (and maybe its own plan)
_MAX_PLAN_NAME_CHARS = 4096  # a shape whose names are longer in all is never planned
# New plans are made while this budget of unrolled values lasts (one plan's nested values may
# overrun it). A value costs about 0.6 KiB of memory and 0.08 ms of compile time (measured: a
# 256-column shape holds 142 KiB and compiles in 20 ms; the benchmark's shape, 26 KiB, 4 ms).
_PLAN_BUDGET = {"values_left": 16_384}
_MAX_PLAN_DEPTH = 6  # nested maps unrolled; deeper ones are written generically
_MAX_PLAN_MISSES = 64
_BULK_READ_VALUES = 6  # maps of at least this many values read them in one C-level pass


def _plan_for(keys: tuple[str, ...], sample: dict[str, Any]) -> Any:
    """The plan for maps named like `sample`, from the second sighting on (else None)."""
    key = hash(keys)  # tuples do not cache their hash
    seen = _SEEN.get(key)
    if seen is None:
        if len(_SEEN) >= 4 * _MAX_PLANS:
            _SEEN.clear()
        _SEEN[key] = 1 if sum(map(len, keys)) <= _MAX_PLAN_NAME_CHARS else 0
        return None
    if not seen or len(_PLANS) >= _MAX_PLANS or _PLAN_BUDGET["values_left"] < len(keys):
        return None
    _SEEN.pop(key, None)
    try:
        writer = _PlanWriter()
        body: list[str] = []
        text = writer.members("m", sample, "    ", body, 0)
        body.append(f"    return {text}")
        writer.function("plan", "m, nums", body)
        exec(compile("\n".join(writer.functions), "<envelope plan>", "exec"), writer.names)
    except _Unplannable:
        return None  # a malformed sample: the generic walk (and a plan from a later one)
    except (SyntaxError, RecursionError, MemoryError):
        plan = False  # a shape Python cannot compile as one function: the generic walk
    else:
        plan = writer.names["plan"]
    _PLAN_BUDGET["values_left"] -= writer.values
    _PLANS[keys] = plan
    return plan


def _plan_missed(keys: tuple[str, ...]) -> None:
    misses = _MISSES.get(keys, 0) + 1
    _MISSES[keys] = misses
    if misses >= _MAX_PLAN_MISSES:
        _PLANS[keys] = False


class _Unplannable(Exception):
    """A sample value that is not a one-key DynamoDB attribute value of a known type."""


# The type tags, each mapped to itself: `_KINDS[tag]` is always this module's own string, so
# the tags written into plan source are ours even when the input's keys are str subclasses.
_KINDS = {kind: kind for kind in ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")}


def _kind(av: Any) -> str:
    if av.__class__ is dict and len(av) == 1:
        for kind in av:
            if kind.__class__ is str and kind in _KINDS:
                return _KINDS[kind]
    raise _Unplannable


class _PlanWriter:
    """Writes the source of one plan. `members` writes a map: it unpacks the attribute
    values (`v…`) and what each holds under its expected type tag (`w…`; a missing tag
    raises KeyError: a miss). A map of `_BULK_READ_VALUES` or more reads the latter with one
    C-level `map(getitem)`, which also brings all their memory into the cache at once
    instead of one dependent load at a time (measured: the largest single gain on big
    batches, whose records are never in the cache). `value` and `array` write one value;
    each appends statements to `out` and returns the expression that holds the JSON text."""

    def __init__(self) -> None:
        self.functions: list[str] = []
        self.names: dict[str, Any] = {
            "_enc": _enc,
            "_map": _map,
            "_list": _list,
            "_other": _other,
            "_number_list": _number_list,
            "_value": _value,
            "_getitem": operator.getitem,
        }
        self.count = 0
        self.values = 0

    def new(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value: Any) -> str:
        name = self.new("C")
        self.names[name] = value
        return name

    def fits(self, sample: Any, depth: int) -> bool:
        """Whether nested map `sample`, below `depth` levels, is unrolled into the plan (else
        `_map` writes it)."""
        return (
            depth < _MAX_PLAN_DEPTH
            and sample.__class__ is dict
            and len(sample) <= _MAX_INLINE_KEYS
            and self.values + len(sample) <= _MAX_PLAN_VALUES
        )

    def function(self, name: str, args: str, body: list[str]) -> None:
        self.functions.append(f"def {name}({args}):\n" + "\n".join(body) + "\n")

    def members(
        self, var: str, sample: Mapping[str, Any], pad: str, out: list[str], depth: int
    ) -> str:
        if not sample:
            return "'{}'"
        kinds = [_kind(av) for av in sample.values()]
        avs = [self.new("v") for _ in sample]
        inner = [self.new("w") for _ in sample]
        out.append(f"{pad}{', '.join(avs)}, = {var}.values()")
        if len(avs) >= _BULK_READ_VALUES:
            out.append(
                f"{pad}{', '.join(inner)}, = map(_getitem, ({', '.join(avs)},), "
                f"{self.const(tuple(kinds))})"
            )
        else:  # small maps: plain subscripts cost less than setting up the map()
            for av, held, kind in zip(avs, inner, kinds, strict=True):
                out.append(f"{pad}{held} = {av}['{kind}']")  # kind: one of _KINDS
        numbers: list[str] = []
        pieces = []
        for i, (key, av, kind) in enumerate(zip(sample, sample.values(), kinds, strict=True)):
            expr = self.value(avs[i], inner[i], kind, av[kind], pad, out, numbers, depth)
            pieces.append("{" + self.const(("{" if i == 0 else ",") + _enc(key) + ":") + "}")
            pieces.append("{" + expr + "}")
        if numbers:
            out.append(f"{pad}nums += ({', '.join(numbers)},)")
        return 'f"""' + "".join(pieces) + '}}"""'

    def value(
        self,
        v: str,
        w: str,
        kind: str,
        sample: Any,
        pad: str,
        out: list[str],
        numbers: list[str],
        depth: int,
    ) -> str:
        """`v` is the attribute value, `w` what it holds under `kind`, `sample` the same in
        the sample map."""
        self.values += 1
        one = f"{v}.__class__ is dict and len({v}) == 1"  # what `_other` insists on
        if kind == "S":
            return f"_enc({w})"
        if kind == "N":
            numbers.append(w)
            return w
        if kind == "M" and self.fits(sample, depth):
            x = self.new("x")
            out.append(
                f"{pad}if {w}.__class__ is dict and tuple({w}) == {self.const(tuple(sample))}:"
            )
            text = self.members(w, sample, pad + "    ", out, depth + 1)
            out.append(f"{pad}    {x} = {text}")
            out.append(f"{pad}else:")
            out.append(f"{pad}    {x} = _map({w}, nums)")
            return x
        if kind == "M":
            return f"_map({w}, nums)"
        if kind == "L":
            return self.array(w, sample, pad, out, depth)
        if kind == "BOOL":
            return (
                f"('true' if {w} is True and {one} else 'false' if {w} is False and {one} "
                f"else _other({v}, nums))"
            )
        if kind == "NULL":
            return f"('null' if {w} is True and {one} else _other({v}, nums))"
        if kind == "B":
            return f"(_enc({w}) if {w}.__class__ is str and {one} else _other({v}, nums))"
        if kind == "SS":
            return (
                f"('[' + ','.join(map(_enc, {w})) + ']' if {w}.__class__ is list and {one} "
                f"else _other({v}, nums))"
            )
        if kind == "BS":  # base64 text (Lambda) or bytes (boto3): `_other` tells them apart
            return (
                f"('[' + ','.join(map(_enc, {w})) + ']' if {w}.__class__ is list and {one} "
                f"and (not {w} or {w}[0].__class__ is str) else _other({v}, nums))"
            )
        x = self.new("x")  # NS
        out.append(f"{pad}if {w}.__class__ is list and {one}:")
        out.append(f"{pad}    nums += {w}")
        out.append(f"{pad}    {x} = '[' + ','.join({w}) + ']'")
        out.append(f"{pad}else:")
        out.append(f"{pad}    {x} = _other({v}, nums)")
        return x

    def array(self, w: str, items: Any, pad: str, out: list[str], depth: int) -> str:
        """An L value. A list of numbers only, or of maps with the same names only, gets a
        loop of its own (an item of another kind is written by the generic walk); other
        lists are written by `_list`."""
        if items.__class__ is not list or not items:
            return f"_list({w}, nums)"
        kinds = {_kind(e) for e in items}
        if kinds == {"N"}:
            return f"_number_list({w}, nums)"
        if kinds != {"M"}:
            return f"_list({w}, nums)"
        shapes = {tuple(e["M"]) if e["M"].__class__ is dict else None for e in items}
        if len(shapes) != 1 or None in shapes or not self.fits(items[0]["M"], depth):
            return f"_list({w}, nums)"
        item, x = self.new("E"), self.new("x")
        body = [
            "    if 'M' in av:",
            "        m = av['M']",
            f"        if m.__class__ is dict and tuple(m) == {self.const(next(iter(shapes)))}:",
        ]
        text = self.members("m", items[0]["M"], "            ", body, depth + 1)
        body.append(f"            return {text}")
        body.append("    return _value(av, nums)")
        self.function(item, "av, nums", body)
        out.append(f"{pad}if {w}.__class__ is list:")
        out.append(f"{pad}    {x} = '[' + ','.join([{item}(e, nums) for e in {w}]) + ']'")
        out.append(f"{pad}else:")
        out.append(f"{pad}    {x} = _list({w}, nums)")
        return x


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


def _numbers_ok(nums: list[str]) -> bool:
    """One regex call for all numbers of a record: are they all JSON numbers already?

    The comma count makes sure no single value holds a comma: "1,2" would otherwise pass as
    two numbers and break the JSON it is spliced into."""
    if not nums:
        return True
    try:
        text = ",".join(nums)
    except TypeError:  # a number that is not even a string
        return False
    return text.count(",") == len(nums) - 1 and _ALL_NUMBERS(text) is not None


def _image_text(image: Mapping[str, Any]) -> str:
    """JSON object text of an image: fast path, careful path if a number needs it."""
    nums: list[str] = []
    text = _map(image, nums)
    if _numbers_ok(nums):
        return text
    nums = []
    return _map({k: _careful(av) for k, av in image.items()}, nums)


def value_json(av: Mapping[str, Any]) -> str:
    """JSON text of one DynamoDB-JSON attribute value, exact numbers."""
    try:
        nums: list[str] = []
        text = _value(av, nums)
        return text if _numbers_ok(nums) else _value(_careful(av), [])
    except (TypeError, AttributeError, RecursionError) as error:
        raise EnvelopeError(f"malformed attribute value: {error}") from None


def image_json(image: Mapping[str, Any]) -> str:
    """JSON object text of a DynamoDB-JSON image (a stream record's NewImage, a scanned item)."""
    if not isinstance(image, dict):
        raise EnvelopeError(f"image must be an object, found {type(image).__name__}")
    try:
        return _image_text(image)
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
    parts = []
    cache = _KEY_CACHE
    try:
        for name in sorted(keys) if len(keys) > 1 else keys:
            av = keys[name]
            try:
                key = cache[name]
            except KeyError:
                key = _key(name)
            if "S" in av:
                parts.append(key + _enc(av["S"]))
            elif "N" in av:
                n = av["N"]
                parts.append(key + (n if n.__class__ is str and _JSON_NUMBER(n) else _number(n)))
            else:
                parts.append(key + value_json(av))
    except (TypeError, AttributeError, RecursionError) as error:
        raise EnvelopeError(f"malformed keys: {error}") from None
    return "{" + ",".join(parts) + "}"


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


def _envelope_text(
    id_: str,
    op: str,
    table: str,
    keys_json: str,
    old: str,
    new: str,
    ts: str,
    seq: str,
    source_json: str,
    overflow: str | None = None,
) -> str:
    tail = f',"overflow":{_enc(overflow)}' if overflow is not None else ""
    return (
        f'{{"v":{ENVELOPE_VERSION},"id":{_enc(id_)},"op":"{op}","table":{_enc(table)},"keys":{keys_json},'
        f'"old":{old},"new":{new},"ts":"{ts}","seq":{_enc(seq)},"source":{source_json}{tail}}}'
    )


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
        nums: list[str] = []
        old = _map(old_image, nums) if old_image is not None else "null"
        new = _map(new_image, nums) if new_image is not None else "null"
        if not _numbers_ok(nums):  # never with DynamoDB's own numbers: the careful path
            old = _image_text(old_image) if old_image is not None else "null"
            new = _image_text(new_image) if new_image is not None else "null"
        ts = iso_utc(ddb["ApproximateCreationDateTime"])
        identity = record.get("userIdentity")
        if identity and identity.get("principalId") == _TTL_PRINCIPAL:
            source_json = f'{{"table":{_enc(physical)},"ttl":true}}'
        else:
            source_json = f'{{"table":{_enc(physical)}}}'
        data = _envelope_text(
            event_id, op, logical_table, keys_json, old, new, ts, seq, source_json
        ).encode("utf-8")
    except EnvelopeError:
        raise
    except KeyError as error:
        raise EnvelopeError(f"record lacks {error}") from None
    except (TypeError, AttributeError, UnicodeError, RecursionError) as error:
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
        new = _image_text(item)
        ts = iso_utc(scanned_at)
        source_json = f'{{"table":{_enc(physical_table)}}}'
        event_id = snapshot_id(physical_table, keys_json)
        data = _envelope_text(
            event_id, "snapshot", logical_table, keys_json, "null", new, ts, "", source_json
        ).encode("utf-8")
    except EnvelopeError:
        raise
    except (TypeError, AttributeError, UnicodeError, RecursionError) as error:
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
