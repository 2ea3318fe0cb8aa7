"""The test scaffolding itself: every test has exactly one kind (unit, servers, e2e), and the
tools never import the tests (the local pipeline lives in tools/localpipe)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import KINDS, ROOT, kind_of
from tools.lambda_requirements import shipped

TOOLS = ROOT / "tools"


def kinds(item: pytest.Item) -> list[str]:
    return [m.name for m in item.iter_markers() if m.name in KINDS]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (top level or inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_the_kind_follows_the_path_then_the_server_fixtures() -> None:
    e2e, other = ROOT / "tests" / "e2e" / "test_x.py", ROOT / "tests" / "test_x.py"
    assert kind_of(e2e, ["moto_world"]) == "e2e"
    assert kind_of(e2e, ["postgres"]) == "e2e"  # the pipeline needs a server: still e2e
    for fixture in ("postgres", "postgres_misconfigured", "mariadb", "mariadb_misconfigured",
                    "postgres_restartable"):
        assert kind_of(other, ["tmp_path", fixture]) == "servers"
    assert kind_of(other, ["tmp_path", "moto_world", "monkeypatch"]) == "unit"
    assert kind_of(other, []) == "unit"
    # an explicit kind counts (a server reached through request.getfixturevalue)
    assert kind_of(other, ["request"], marked=["parametrize", "servers"]) == "servers"
    assert kind_of(e2e, ["request"], marked=["servers"]) == "e2e"


def test_every_collected_test_has_exactly_one_kind(request: pytest.FixtureRequest) -> None:
    # GIVEN what this session collected (the whole suite in CI)
    items = request.session.items
    assert request.node in items
    # THEN each test carries exactly one of unit / servers / e2e
    assert {i.nodeid: kinds(i) for i in items if len(kinds(i)) != 1} == {}
    assert kinds(request.node) == ["unit"]


def test_tools_never_import_the_tests_and_the_local_pipeline_never_imports_pytest() -> None:
    offenders = {}
    for path in sorted(TOOLS.rglob("*.py")):
        wrong = {m for m in imported_modules(path) if m == "tests" or m.startswith("tests.")}
        if path.is_relative_to(TOOLS / "localpipe"):
            wrong |= {m for m in imported_modules(path) if m.split(".")[0] == "pytest"}
        if wrong:
            offenders[str(path.relative_to(ROOT))] = sorted(wrong)
    assert offenders == {}
    # AND the check sees imports where they are (the demo imports the local pipeline lazily)
    assert "tools.localpipe.harness" in imported_modules(TOOLS / "demo.py")


def test_what_the_lambdas_ship_is_pinned() -> None:
    # the pins tools/dev.sh installs into the Python 3.13 virtualenv of the handlers' tests
    from dms_event_bus.components.lambda_package import ENVELOPE_REQUIREMENTS
    from dms_event_bus.components.legacy_writeback import DRIVERS

    lines = shipped()
    assert set(ENVELOPE_REQUIREMENTS) <= set(lines)
    assert all(set(reqs) <= set(lines) for reqs in DRIVERS.values())
    assert all(line.count("==") == 1 and " " not in line for line in lines), lines
