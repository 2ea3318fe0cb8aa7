"""Shared test setup: the repo root on sys.path, offline AWS credentials, one region, the
moto world fixture, and the test kinds (markers `unit`, `servers`, `e2e`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers import SERVER_FIXTURES  # noqa: E402 - needs the root on sys.path
from tools.localpipe import aws  # noqa: E402

#: ../shared beside the repo (CI clones the repo with shared/ next to it)
SHARED = ROOT.parent / "shared"

#: The kinds of test; every collected test carries exactly one (tests/test_markers.py).
KINDS = ("unit", "servers", "e2e")
E2E_DIR = ROOT / "tests" / "e2e"


def kind_of(path: Path, fixturenames: Iterable[str], marked: Iterable[str] = ()) -> str:
    """`e2e` for a test under tests/e2e (the whole local pipeline); else the kind the test is
    explicitly marked with (e.g. a module's `pytestmark = pytest.mark.servers`, for tests
    that reach a server fixture through `request.getfixturevalue`); else `servers` for one
    that uses a database server fixture of tests/servers.py (directly or through another
    fixture); else `unit` (moto, mocks and pure code: no server, no pipeline)."""
    if path.resolve().is_relative_to(E2E_DIR):
        return "e2e"
    explicit = [k for k in KINDS if k in set(marked)]
    if explicit:
        return explicit[0]
    if SERVER_FIXTURES.intersection(fixturenames):
        return "servers"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marked = {m.name for m in item.iter_markers()}
        kind = kind_of(item.path, getattr(item, "fixturenames", ()), marked)
        if kind not in marked:  # an explicit second kind stays: tests/test_scaffolding.py
            item.add_marker(kind)  # fails on it


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach AWS: fake credentials, a fixed region, moto-friendly endpoints
    (current botocore routes DynamoDB Streams to account endpoints moto does not serve)."""
    for name, value in aws.OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def moto_world() -> Iterator[aws.MotoWorld]:
    """moto's AWS for one test (`tools.localpipe.aws.moto_world`): fresh state per test, in
    this process only (xdist workers do not share it)."""
    with aws.moto_world() as world:
        yield world
