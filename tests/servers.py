"""pytest fixtures for the real PostgreSQL and MariaDB servers of `tools.localpipe.servers`.

Each server listens on 127.0.0.1 on a free port, keeps its data in a fresh temporary
directory, is started by the first test that asks for it and is stopped when the pytest
session ends (or, as a backstop, when the interpreter exits). Every pytest-xdist worker
starts its own. Nothing here needs a ``conftest.py``: a test module imports the fixtures
it uses::

    from tests.servers import postgres, mariadb  # noqa: F401

    def test_something(postgres):
        db = postgres.fresh_database("wb_guard")   # isolated database for this test
        with db.connect() as conn:                  # DB-API connection (pg8000.dbapi)
            ...

Servers are shared by the whole session (one instance per kind, even when several modules
import the fixtures). Use :meth:`DbServer.fresh_database` for isolation between tests. A test
using one of these fixtures is marked ``servers`` (tests/conftest.py).

Fixtures (the server kinds are described in tools/localpipe/servers.py)
--------
``postgres``, ``postgres_misconfigured``, ``mariadb``, ``mariadb_misconfigured`` (session),
``postgres_restartable`` (one test: a private PostgreSQL with ``restart()``).

When a binary is missing, the fixture fails (never skips) with a message naming the Debian
package to install.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.localpipe.servers import (
    DbServer,
    RestartablePostgres,
    ServerStartError,
    get_server,
    stop_server,
)

#: The fixtures that start a server: a test using one is a `servers` test.
SERVER_FIXTURES = frozenset({
    "postgres",
    "postgres_misconfigured",
    "mariadb",
    "mariadb_misconfigured",
    "postgres_restartable",
})


def _fixture(kind: str) -> Iterator[DbServer]:
    try:
        server = get_server(kind)
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    # Session end: the same server may be handed out by fixture definitions imported into
    # several modules, so stopping is idempotent and happens once.
    stop_server(kind)


@pytest.fixture(scope="session")
def postgres() -> Iterator[DbServer]:
    """PostgreSQL configured for DMS CDC (wal_level=logical, 10 slots/senders)."""
    yield from _fixture("postgres")


@pytest.fixture(scope="session")
def postgres_misconfigured() -> Iterator[DbServer]:
    """PostgreSQL NOT ready for CDC (wal_level=replica, 1 slot/sender, no REPLICATION)."""
    yield from _fixture("postgres_misconfigured")


@pytest.fixture(scope="session")
def mariadb() -> Iterator[DbServer]:
    """MariaDB configured for DMS CDC (ROW/FULL/NONE binlog, 7-day retention)."""
    yield from _fixture("mariadb")


@pytest.fixture(scope="session")
def mariadb_misconfigured() -> Iterator[DbServer]:
    """MariaDB NOT ready for CDC (no binlog, STATEMENT/MINIMAL/CRC32, 1 h retention)."""
    yield from _fixture("mariadb_misconfigured")


@pytest.fixture
def postgres_restartable() -> Iterator[RestartablePostgres]:
    """A private PostgreSQL (like ``postgres``) for one test, with ``restart()``."""
    try:
        handle = RestartablePostgres()
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield handle
    finally:
        handle.stop()


__all__ = [
    "SERVER_FIXTURES",
    "DbServer",
    "RestartablePostgres",
    "ServerStartError",
    "get_server",
    "mariadb",
    "mariadb_misconfigured",
    "postgres",
    "postgres_misconfigured",
    "postgres_restartable",
]
