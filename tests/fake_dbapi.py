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

import datetime as dt
import decimal
import re
import sqlite3
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


def sqlite_answer(
    db: sqlite3.Connection, convert: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
) -> Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]:
    """An answer that runs a data query (SELECT ... FROM schema.table WHERE ... ORDER BY)
    on SQLite, so keyset conditions, ordering and paging are evaluated, not assumed.

    Only the dialect bits SQLite lacks are rewritten, mechanically: SQL Server's
    ``SELECT TOP (n)`` and Oracle's ``FETCH FIRST n ROWS ONLY`` become ``LIMIT n``, and the
    placeholders ``%s`` / ``:n`` become ``?`` / ``?n``. ``[name]`` and ``"name"`` quoting
    are SQLite's own; schemas are ATTACHed databases. ``convert`` maps each row to the
    Python types the real driver returns."""

    def answer(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        text, limit = sql, None
        top = re.search(r"^SELECT TOP \((\d+)\) ", text)
        if top:
            text, limit = "SELECT " + text[top.end():], top.group(1)
        fetch = re.search(r" FETCH FIRST (\d+) ROWS ONLY$", text)
        if fetch:
            text, limit = text[: fetch.start()], fetch.group(1)
        if limit:
            text += f" LIMIT {limit}"
        text = re.sub(r":(\d+)", r"?\1", text).replace("%s", "?")
        bound = tuple(_sqlite_value(p) for p in params)
        rows = [tuple(r) for r in db.execute(text, bound).fetchall()]
        return [convert(r) for r in rows] if convert else rows

    return answer


def _sqlite_value(value: Any) -> Any:
    """A bind value as SQLite stores it (drivers hand back Decimal keys, SQLite has none)."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    return value
