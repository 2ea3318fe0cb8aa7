"""Shared test setup: the repo root on sys.path, offline AWS credentials, one region, the
moto world fixture, the test kinds (markers `unit`, `servers`, `e2e`), and the guard that keeps
the example stacks out of the tests (marker `examples`)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixture_stacks import STACKS_DIR  # noqa: E402,F401 - the tests' own stack files
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


# --- examples are not fixtures ------------------------------------------------------------------
#
# The root `Pulumi.<stack>.yaml` files are the user's stacks (examples until a user replaces
# them): a test that reads one breaks when a user deletes it. While a test runs (setup, call,
# teardown) and while a test module is collected, an audit hook records every open of a
# root-level stack file; the test (or module) fails naming the file, unless it is marked
# `examples` (tests/test_examples.py, which plans whatever examples are present).

_ROOT_STACK = re.compile(r"Pulumi\.[^/\\]+\.yaml")
_STACK_GUARD: dict[str, Any] = {"active": False, "opened": []}


def root_stack_file(path: Any, root: Path = ROOT) -> str | None:
    """The name of the root-level `Pulumi.<stack>.yaml` that `path` opens, else None
    (`Pulumi.yaml`, the project file, and every other folder's stack files are fine)."""
    if isinstance(path, int):
        return None
    try:
        name = os.fsdecode(os.fspath(path))
    except TypeError:
        return None
    if not _ROOT_STACK.fullmatch(os.path.basename(name)):
        return None
    try:  # (a relative path needs the working directory, which a test may have removed)
        full = (Path(name) if os.path.isabs(name) else Path.cwd() / name).resolve()
    except OSError:
        return None
    return full.name if full.parent == root else None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _STACK_GUARD["active"] or not args:
        return
    name = root_stack_file(args[0])
    if name is not None:
        _STACK_GUARD["opened"].append(name)


sys.addaudithook(_audit)


def _guarded(marked: bool) -> None:
    _STACK_GUARD["active"] = not marked
    _STACK_GUARD["opened"] = []


def _offence() -> str | None:
    opened = sorted(set(_STACK_GUARD["opened"]))
    _STACK_GUARD["active"] = False
    _STACK_GUARD["opened"] = []
    if not opened:
        return None
    return (
        f"read the example stack file(s) {', '.join(opened)} at the repo root: tests build "
        f"their own stacks (tests/stacks, stack_dir=STACKS_DIR, or tmp_path); only tests "
        f"marked `examples` may read the examples"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    problem = _offence()
    if problem and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: {problem}"


def _phase_guard(item: pytest.Item) -> None:
    _guarded(item.get_closest_marker("examples") is not None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _phase_guard(item)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    _phase_guard(item)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    _phase_guard(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    module = isinstance(collector, pytest.Module)
    if module:
        _guarded(False)
    outcome = yield
    if not module:
        return
    problem = _offence()
    report = outcome.get_result()
    exempt = report.outcome == "passed" and collector.get_closest_marker("examples") is not None
    if problem and not exempt and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid}: {problem}"
