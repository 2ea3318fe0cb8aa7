"""The consumer rule (docs/bus.md §2), implemented once: every replica in this repository
(the local pipeline's, the demo's, the end-to-end tests') and every consumer built on this kit
applies envelopes with `advance`.

1. Deduplicate on `id` (`Replica` keeps the ids it has seen).
2. Per row (`table` + `keys`), keep the highest `seq` applied; drop an envelope whose `seq` is
   not higher (compared as integers).
3. A delete leaves a tombstone holding its `seq`, so an older change arriving late cannot bring
   the row back.
4. A snapshot (`seq` "") applies only to a row nothing has touched (no state at all).
5. Overflow pointers are resolved before applying (`OverflowReader`); `Replica.apply` refuses
   a pointer.

Rules 2-4 alone already drop a redelivered change (same `id`, same `seq`); rule 1 tells a
duplicate from a stale change in the counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .envelope import row_key

__all__ = ["APPLIED", "DUPLICATE", "STALE", "Replica", "RowState", "advance", "position"]

APPLIED, DUPLICATE, STALE = "applied", "duplicate", "stale"


@dataclass
class RowState:
    """What a consumer remembers of one row."""

    seq: int | None  # the highest seq applied; None: only a snapshot so far
    row: dict[str, Any] | None  # the row image; None: deleted (a tombstone)


def position(env: dict[str, Any]) -> int | None:
    """The envelope's per-row position: its `seq` as an integer, None for a snapshot."""
    return None if env["op"] == "snapshot" else int(env["seq"])


def advance(state: RowState | None, env: dict[str, Any]) -> RowState | None:
    """The row's state after `env` (rules 2-4), or None when `env` must be dropped because it
    is not newer than what `state` holds. `state`: the row's state so far, None when the
    consumer holds nothing for the row (never seen, not even a tombstone)."""
    if "overflow" in env:
        raise ValueError(f"envelope {env['id']} is an overflow pointer: resolve it first "
                         "(OverflowReader.resolve)")
    seq = position(env)
    if seq is None:  # a snapshot: only into a row nothing has touched
        return RowState(None, env["new"]) if state is None else None
    if state is not None and state.seq is not None and seq <= state.seq:
        return None
    return RowState(seq, None if env["op"] == "delete" else env["new"])


@dataclass
class Replica:
    """An in-memory replica built only from bus envelopes: rows per logical table, each
    under `row_key(keys)`. For a replica kept elsewhere (a DynamoDB table, a database),
    store each row's `RowState` there and call `advance` (docs/consumers.md)."""

    rows: dict[str, dict[str, RowState]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    applied: int = 0
    duplicates: int = 0
    stale: int = 0

    def apply(self, env: dict[str, Any]) -> str:
        """Apply one (resolved) envelope; returns APPLIED, DUPLICATE or STALE."""
        if env["id"] in self.seen:
            self.duplicates += 1
            return DUPLICATE
        table = self.rows.setdefault(env["table"], {})
        key = row_key(env["keys"])
        after = advance(table.get(key), env)  # raises on a pointer, before marking it seen
        self.seen.add(env["id"])
        if after is None:
            self.stale += 1
            return STALE
        table[key] = after
        self.applied += 1
        return APPLIED

    def state(self, table: str, keys: dict[str, Any]) -> RowState | None:
        """What the replica holds for one row (a tombstone has `row` None)."""
        return self.rows.get(table, {}).get(row_key(keys))

    def get(self, table: str, keys: dict[str, Any]) -> dict[str, Any] | None:
        """The live row, or None (never seen, or deleted)."""
        state = self.state(table, keys)
        return state.row if state is not None else None

    def live(self, table: str) -> dict[str, dict[str, Any]]:
        """Live rows of a table: `row_key(keys)` -> row."""
        return {k: s.row for k, s in self.rows.get(table, {}).items() if s.row is not None}
