"""Room on the call stack for the Pulumi SDK's dynamic-provider serialization.

`pulumi.dynamic.Resource.__init__` serializes its provider with `serialize_provider`, which
installs a key-sorting wrapper around the pure-Python pickler's batch writer and never removes
it: each dynamic resource a process declares adds one more wrapper in front of the previous
ones, and every later serialization walks the whole chain. With the interpreter's default limit
of 1,000 frames, a program that declares about 950 `AdoptedTable`s ends in `RecursionError`
(pulumi/pulumi `sdk/python/lib/pulumi/dynamic/dynamic.py`; measured in bench/README.md, Scale).

Until the SDK restores the pickler, `make_room()` is called once before each dynamic resource
is declared: it raises the recursion limit (never lowers it) to the frames the chain can need
by then plus the default headroom. The chain is plain Python calling Python, which the
interpreter runs without growing the C stack, so a higher limit is safe; the extra cost is one
call per wrapper per serialized dictionary (about 0.5 s in total at 1,000 tables).

This uses only public interpreter API (`sys.getrecursionlimit` / `sys.setrecursionlimit`) and
touches nothing inside pulumi or pickle.
"""

from __future__ import annotations

import sys

#: The interpreter's default limit: the headroom everything else in the program may use.
HEADROOM = 1_000
#: Frames one serialization adds per earlier dynamic resource (one wrapper call), doubled.
FRAMES_PER_RESOURCE = 2

_declared = [0]


def make_room() -> int:
    """Count one more dynamic resource and keep the limit above what its serialization needs.

    Returns the recursion limit in force afterwards.
    """
    _declared[0] += 1
    needed = HEADROOM + FRAMES_PER_RESOURCE * _declared[0]
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)
    return sys.getrecursionlimit()
