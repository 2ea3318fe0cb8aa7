"""A small fake DB-API connection for engines no server of which can run here (SQL Server,
Oracle): it answers the SQL text the code under test really sends with recorded catalog
rows.

A :class:`FakeConnection` holds rules, each a regular expression searched in the SQL text
(whitespace collapsed) and an answer: a list of row tuples, a callable ``(sql, params) ->
rows``, or an exception instance to raise (a catalog the login may not read). The first
matching rule answers. SQL that no rule matches raises :class:`UnexpectedSQL`, so a test
fails when the code sends something nobody recorded an answer for. Every statement is
kept in ``executed`` as ``(sql, params)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

Answer = list[tuple[Any, ...]] | Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]] | \
    BaseException


class UnexpectedSQL(AssertionError):
    """The code sent SQL no rule answers."""


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.rows = self.conn.answer(sql, tuple(params or ()))

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self.rows = self.rows, []
        return rows

    def nextset(self) -> bool:
        return False

    def close(self) -> None:
        pass


class FakeConnection:
    def __init__(self, rules: Sequence[tuple[str, Answer]]) -> None:
        self.rules = [(re.compile(pattern, re.S), answer) for pattern, answer in rules]
        self.executed: list[tuple[str, tuple[Any, ...]]] = []
        self.closed = False
        self.autocommit = True

    def answer(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        text = " ".join(sql.split())
        self.executed.append((text, params))
        for pattern, answer in self.rules:
            if pattern.search(text):
                if isinstance(answer, BaseException):
                    raise answer
                if callable(answer):
                    return [tuple(r) for r in answer(text, params)]
                return [tuple(r) for r in answer]
        raise UnexpectedSQL(f"no recorded answer for: {text} {params!r}")

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.closed = True

    def sent(self, pattern: str) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements sent that match ``pattern``."""
        rx = re.compile(pattern, re.S)
        return [(sql, params) for sql, params in self.executed if rx.search(sql)]
