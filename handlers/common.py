"""The words the stream handlers share, each defined once (fan-in, writeback; the backfill
uses `ConfigError`).

=====================  ==================================================================
`Config`               a handler's settings, built from its Lambda environment by
                       `Config.from_env(env)`; read through `config_from_env`, which parses
                       again only when one of the handler's variables changed
`ConfigError`          the environment holds a wrong or missing value; the message names
                       every variable to fix. The whole batch fails until it is fixed.
`Outcome`              what one invocation did with ONE batch of stream records: the
                       sequence number of the earliest record not done (Lambda retries from
                       there) and the partial-batch response (`response()`)
`PoisonRecordError`    raised when the FIRST record of a batch can never be processed, so
                       that the event source mapping bisects the batch and the record ends
                       alone in the on-failure DLQ
=====================  ==================================================================

Anything a handler decides about a single record (convert it, skip it, write it back) has a
name of its own in that handler, never one of these.

Only the standard library is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, Self, TypeVar

__all__ = [
    "Config",
    "ConfigError",
    "Outcome",
    "PoisonRecordError",
    "config_from_env",
]


class ConfigError(ValueError):
    """The handler's environment holds a wrong or missing value. The message names each
    variable, what it must hold and what was found; the handler logs it and fails the whole
    batch (Lambda retries it) until the environment is fixed."""


class Config(Protocol):
    """A handler's settings, read from its Lambda environment."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """The settings in `env`; raises `ConfigError` naming every wrong variable."""
        ...


C = TypeVar("C")


def config_from_env(
    cache: dict[tuple[str | None, ...], C],
    names: Sequence[str],
    parse: Callable[[Mapping[str, str]], C],
    env: Mapping[str, str],
) -> C:
    """The settings `parse(env)` gives, parsed once per distinct value of the variables
    `names` and kept in `cache` (a module's own dict: one entry, the current one)."""
    key = tuple(env.get(name) for name in names)
    found = cache.get(key)
    if found is None:
        cache.clear()
        found = cache[key] = parse(env)
    return found


class Outcome:
    """What one invocation did with one batch of stream records.

    `failures` holds the sequence number of the earliest record not done, or nothing: Lambda
    checkpoints every record before it and retries from it, never skipping ahead. `poison`
    is why a record can never be processed (None when none). Handlers add their own counts in
    a subclass."""

    __slots__ = ("failures", "poison")

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.poison: str | None = None

    @property
    def batch_item_failures(self) -> list[dict[str, str]]:
        """The `batchItemFailures` list of the partial-batch response."""
        return [{"itemIdentifier": seq} for seq in self.failures]

    def response(self) -> dict[str, Any]:
        """Lambda's partial-batch response: `{"batchItemFailures": [...]}`."""
        return {"batchItemFailures": self.batch_item_failures}


class PoisonRecordError(Exception):
    """The FIRST record of a stream batch can never be processed (a poison record).

    A partial-batch response naming the first record makes no progress: Lambda retries the
    same records, so the good ones after it would share its DLQ message. Raising instead is a
    function error, on which the event source mapping (BisectBatchOnFunctionError) splits the
    batch until the poison record is alone; after the mapping's bounded retries it lands in
    the on-failure DLQ and the records after it go on."""
