"""The Firehose archive of the bus (`bus.archive.enabled`): objects under
`bus/<yyyy>/<mm>/<dd>/` in the archive bucket, GZIP-compressed, each holding the envelopes of
a buffer **concatenated with no delimiter** (Firehose adds none): `{...}{...}{...}`.

`archive_envelopes(body)` splits one object into checked envelopes (exact numbers), so a replay
applies them with the same rule as the live consumer. Overflow pointers are archived as
pointers: resolve them with `OverflowReader` while their objects exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from .envelope import MalformedEnvelope, _no_constant, _problem

__all__ = ["archive_envelopes"]

_DECODER = json.JSONDecoder(parse_float=Decimal, parse_int=Decimal, parse_constant=_no_constant)
_SPACE = " \t\r\n"


def archive_envelopes(body: bytes) -> Iterator[dict[str, Any]]:
    """The envelopes of one archive object, in the order Firehose wrote them. `body`: the
    object's bytes, GZIP-compressed or not; envelopes may also be separated by whitespace or
    newlines. MalformedEnvelope names the byte offset of anything else."""
    if body[:2] == b"\x1f\x8b":
        import gzip  # only a replay needs it

        body = gzip.decompress(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEnvelope(f"archive object: not UTF-8 at byte {exc.start}") from None
    index, end = 0, len(text)
    while True:
        while index < end and text[index] in _SPACE:
            index += 1
        if index == end:
            return
        try:
            env, after = _DECODER.raw_decode(text, index)
        except (ValueError, RecursionError) as exc:
            raise MalformedEnvelope(f"archive object at character {index}: not JSON: "
                                    f"{' '.join(str(exc).split())}") from None
        problem = _problem(env)
        if problem:
            raise MalformedEnvelope(f"archive object at character {index}: {problem}")
        yield env
        index = after
