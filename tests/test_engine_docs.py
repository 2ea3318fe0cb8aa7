"""docs/engines.md against the code it describes.

The page has one section per engine family. Its facts are read from the code here, not
copied into the test: the engines the stack config accepts (`settings.dms.Engine`), the
check names each `tools.preflight.check_<protocol>` can print (read from the module's
syntax tree, every branch, helpers and loops included), the LOB mode the task runs by
default per engine (`DmsSettings.lob_mode`), the engines whose names are upper case, and
the writeback target kinds (`settings.writeback`). A check added to preflight, an engine
added to the config, a new writeback kind or a changed LOB default fails here until the page
says it.
"""

from __future__ import annotations

import ast
import re
import typing
from functools import cache
from pathlib import Path

import pytest

from dms_event_bus.settings.dms import FAIL_ON_LOB_TRUNCATION, UPPER_CASE_ENGINES, Engine
from dms_event_bus.settings.writeback import DataApiTarget, SqlTarget
from tools import preflight
from tools.sourcedb import protocol_of

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "engines.md"
ENGINES: tuple[str, ...] = typing.get_args(Engine)
#: the line each engine section opens with, naming the `dms.source.engine` values it covers
ENGINE_LINE = re.compile(
    r"^Stack engines \(`dms\.source\.engine`\): ((?:`[a-z-]+`(?:, )?)+)\.", re.MULTILINE
)
#: a placeholder for the formatted part of a check name (`replica identity <…>`)
HOLE = "\0"


# --------------------------------------------------------------------------- the page


def sections(text: str) -> dict[str, str]:
    """Level-2 heading -> its text (up to the next level-2 heading)."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def engine_sections(text: str) -> dict[str, tuple[str, str]]:
    """Engine -> (heading, section text) for every engine a section's opening line names;
    an engine named by two sections is an error."""
    out: dict[str, tuple[str, str]] = {}
    for heading, body in sections(text).items():
        for line in ENGINE_LINE.findall(body):
            for engine in re.findall(r"`([a-z-]+)`", line):
                assert engine not in out, (
                    f"engine {engine} has two sections: {out[engine][0]}, {heading}"
                )
                out[engine] = (heading, body)
    return out


# --------------------------------------------------------------------------- the code


@cache
def _module() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(Path(preflight.__file__).read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _assigned(func: ast.FunctionDef, name: str) -> list[ast.expr]:
    """The values `name` is given in `func`: plain assignments, and the first items of the
    literal tuples a `for name, ... in (...)` loop walks."""
    values: list[ast.expr] = []
    for node in ast.walk(func):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    values.append(node.value)
        elif isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple | ast.List):
            target = node.target
            index = None
            if isinstance(target, ast.Name) and target.id == name:
                index = -1
            elif isinstance(target, ast.Tuple):
                for i, elt in enumerate(target.elts):
                    if isinstance(elt, ast.Name) and elt.id == name:
                        index = i
            if index is None:
                continue
            for item in node.iter.elts:
                if index == -1:
                    values.append(item)
                elif isinstance(item, ast.Tuple):
                    values.append(item.elts[index])
    return values


def _texts(expr: ast.expr, func: ast.FunctionDef) -> list[str] | None:
    """The strings `expr` can be (formatted parts as HOLE); None for a parameter of `func`
    (the name comes from its caller)."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return [expr.value]
    if isinstance(expr, ast.JoinedStr):
        out = [""]
        for part in expr.values:
            if isinstance(part, ast.Constant):
                out = [o + str(part.value) for o in out]
            else:
                inner = part.value if isinstance(part, ast.FormattedValue) else part
                resolved = _texts(inner, func) if isinstance(inner, ast.Name) else None
                out = [o + r for o in out for r in (resolved or [HOLE])]
        return out
    if isinstance(expr, ast.Name):
        if expr.id in [a.arg for a in func.args.args]:
            return None
        found: list[str] = []
        for value in _assigned(func, expr.id):
            found += _texts(value, func) or [HOLE]
        return found or [HOLE]
    raise AssertionError(f"{func.name}: a check name this test cannot read: {ast.dump(expr)}")


def _forwarded(func: ast.FunctionDef) -> int | None:
    """The index of `func`'s parameter that becomes a Check's name, if one does."""
    params = [a.arg for a in func.args.args]
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "Check" and node.args and isinstance(node.args[0], ast.Name):
                if node.args[0].id in params:
                    return params.index(node.args[0].id)
    return None


def check_names(function: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Every check name `tools.preflight.<function>` can print, through the module's own
    helpers (each branch counts, whether a server would take it or not)."""
    module = _module()
    func = module[function]
    names: set[str] = set()
    for node in ast.walk(func):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        callee = node.func.id
        if callee == "Check" and node.args:
            names.update(_texts(node.args[0], func) or [])
        elif callee in module and callee not in seen and callee != function:
            index = _forwarded(module[callee])
            if index is not None and len(node.args) > index:
                names.update(_texts(node.args[index], func) or [])
            names |= check_names(callee, seen | {function})
    return names


def check_functions() -> dict[str, str]:
    """protocol -> the preflight function that checks a CDC source of that protocol."""
    return {p: f"check_{p}" for p in ("postgres", "mysql", "sqlserver", "oracle")}


def _mentioned(name: str, text: str) -> bool:
    """A check name is on the page as `name` (a formatted part may be any placeholder:
    `replica identity <schema>.<table>`)."""
    pattern = ".+?".join(re.escape(p) for p in name.split(HOLE))
    return re.search(f"`{pattern}`", text) is not None


# --------------------------------------------------------------------------- the tests


def test_the_name_reader_sees_every_branch_and_helper() -> None:
    # a known set, spelled out once: the reader must find the loop-built MySQL names, the
    # helper-built ones (primary keys, replica identity) and the f-string per-table name
    assert {"binlog_format", "binlog_row_image", "binlog_checksum", "primary keys"} <= (
        check_names("check_mysql")
    )
    assert {"replica identity", f"replica identity {HOLE}", "wal_level"} <= check_names(
        "check_postgres"
    )
    assert {"table CDC", "LOB columns", "CDC polling interval"} <= check_names("check_sqlserver")
    assert {"DMS user privileges", "table supplemental logging"} <= check_names("check_oracle")
    assert {f"writeback {HOLE} version column"} <= check_names("check_writeback")


def test_every_engine_the_config_accepts_has_one_section() -> None:
    found = engine_sections(PAGE.read_text())
    assert sorted(found) == sorted(ENGINES), (
        f"docs/engines.md: engines without a section {sorted(set(ENGINES) - set(found))}, "
        f"sections for engines the config does not accept {sorted(set(found) - set(ENGINES))}"
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_every_preflight_check_of_an_engine_is_named_in_its_section(engine: str) -> None:
    heading, body = engine_sections(PAGE.read_text())[engine]
    function = check_functions()[protocol_of(engine)]
    names = check_names(function)
    assert len(names) >= 5, (function, names)
    missing = sorted(n.replace(HOLE, "<…>") for n in names if not _mentioned(n, body))
    assert not missing, f"docs/engines.md '{heading}' does not name preflight check(s) {missing}"


@pytest.mark.parametrize("engine", ENGINES)
def test_each_section_states_the_lob_mode_the_task_runs(engine: str) -> None:
    heading, body = engine_sections(PAGE.read_text())[engine]
    expected = "limited" if engine in FAIL_ON_LOB_TRUNCATION else "full"
    assert f"Default LOB mode: `{expected}`" in body, (heading, expected)
    other = "full" if expected == "limited" else "limited"
    assert f"Default LOB mode: `{other}`" not in body, (heading, other)


@pytest.mark.parametrize("engine", ENGINES)
def test_each_section_says_how_names_reach_the_bus(engine: str) -> None:
    heading, body = engine_sections(PAGE.read_text())[engine]
    names = re.search(r"^### Names on the bus\n(.*?)(?=^### |\Z)", body, re.M | re.S)
    assert names, f"docs/engines.md '{heading}' has no 'Names on the bus' subsection"
    upper = "upper case" in names.group(1)
    assert upper == (engine in UPPER_CASE_ENGINES), (heading, upper)


def writeback_kinds() -> dict[str, set[str]]:
    """protocol -> the writeback target kinds that can write a database of it."""
    out: dict[str, set[str]] = {}
    for kind in typing.get_args(SqlTarget.model_fields["kind"].annotation):
        out.setdefault(kind, set()).add(kind)
    (api_kind,) = typing.get_args(DataApiTarget.model_fields["kind"].annotation)
    for engine in typing.get_args(DataApiTarget.model_fields["engine"].annotation):
        out.setdefault(engine, set()).add(api_kind)
    return out


def test_writeback_kinds_are_read_from_the_config() -> None:
    assert writeback_kinds() == {
        "postgres": {"postgres", "data_api"},
        "mysql": {"mysql", "data_api"},
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_each_section_names_the_writeback_targets_that_exist(engine: str) -> None:
    heading, body = engine_sections(PAGE.read_text())[engine]
    write = re.search(r"^### Write path\n(.*?)(?=^### |\Z)", body, re.M | re.S)
    assert write, f"docs/engines.md '{heading}' has no 'Write path' subsection"
    kinds = writeback_kinds().get(protocol_of(engine), set())
    text = write.group(1)
    for kind in kinds:
        assert f"`kind: {kind}`" in text, (heading, kind)
    every_kind = set().union(*writeback_kinds().values())
    for kind in every_kind - kinds:
        assert f"`kind: {kind}`" not in text, (heading, kind)
    assert ("**No writeback target.**" in text) == (not kinds), heading


def test_every_writeback_check_name_is_on_the_page() -> None:
    text = PAGE.read_text()
    names = check_names("check_writeback")
    missing = sorted(n.replace(HOLE, "<…>") for n in names if not _mentioned(n, text))
    assert not missing, f"docs/engines.md does not name writeback check(s) {missing}"
