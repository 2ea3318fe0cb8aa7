"""No module of the project touches a library's private attributes.

A library's underscore names (and the internals of its connection objects) change in minor
releases without notice; the project uses public APIs only. Checked on the syntax tree of
every module under the scanned folders: an attribute read or written as `x._name` (or
through `getattr`/`setattr`/`hasattr`/`delattr` with a literal `"_name"`) must be a name the
project itself defines somewhere in those folders; nothing is imported from a library's
private module (`from psycopg._x import ...`); and the pg8000 connection internals the
writeback once drove by hand (`_sock`, `handle_messages`, `py_types`, ...) appear nowhere.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("handlers", "tools", "components", "providers", "settings", "consumer", "plugin")
PROJECT_PACKAGES = {"handlers", "tools", "components", "providers", "settings", "tests",
                    "bench", "consumer", "dms_event_bus", "plugin"}
#: Names of pg8000's connection internals that the writeback used to drive by hand.
FORBIDDEN = re.compile(r"\b(_sock|_usock|handle_messages|py_types|make_params|"
                       r"_client_encoding|_transaction_status)\b|pg8000\.core")

_ATTR_FUNCTIONS = {"getattr", "setattr", "hasattr", "delattr"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _modules(root: Path, folders: tuple[str, ...]) -> dict[Path, ast.Module]:
    files = [p for folder in folders for p in sorted((root / folder).rglob("*.py"))]
    main = root / "__main__.py"
    if main.is_file():
        files.append(main)
    # the distribution's own modules (program.py); its subfolders are links to the scanned ones
    files += sorted((root / "dms_event_bus").glob("*.py"))
    return {p: ast.parse(p.read_text(), filename=str(p)) for p in files}


def _defined_names(trees: dict[Path, ast.Module]) -> set[str]:
    """Every name the project binds itself: functions, classes, variables, parameters,
    attributes it assigns, import aliases."""
    names: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.alias) and node.asname:
                names.add(node.asname)
    return names


def private_accesses(root: Path, folders: tuple[str, ...] = SCANNED) -> list[str]:
    """`path:line: what` for every access to a private attribute the project does not
    define, every import from a library's private module, and every forbidden name."""
    trees = _modules(root, folders)
    own = _defined_names(trees)
    found: list[str] = []
    for path, tree in trees.items():
        rel = path.relative_to(root)
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute) and _private(node.attr):
                name = node.attr
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in _ATTR_FUNCTIONS and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant)
                  and isinstance(node.args[1].value, str) and _private(node.args[1].value)):
                name = node.args[1].value
            if name is not None and name not in own:
                line = getattr(node, "lineno", 0)
                found.append(f"{rel}:{line}: private attribute {name!r} in "
                             f"`{ast.unparse(node)}`")
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] not in PROJECT_PACKAGES and any(_private(p) for p in parts):
                    found.append(f"{rel}:{node.lineno}: import from private module "
                                 f"{node.module!r}")
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            found.extend(f"{rel}:{number}: driver internals {match.group(0)!r}"
                         for match in FORBIDDEN.finditer(line))
    return found


def test_no_module_touches_a_librarys_private_attributes() -> None:
    # GIVEN every module of the handlers, tools, components, providers and settings
    # WHEN their syntax trees are scanned
    found = private_accesses(ROOT)
    # THEN none reaches into a library's private attributes or private modules
    assert found == []


def test_the_scan_finds_private_access_in_every_form(tmp_path: Path) -> None:
    # GIVEN a module that reaches into driver internals the ways the old writeback did,
    # next to one that only uses its own underscore names
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "bad.py").write_text(
        "from pg8000.converters import make_params\n"
        "from psycopg._pipeline import BasePipeline\n"
        "def run(connection, cursor):\n"
        "    sock = getattr(connection, '_usock', None)\n"
        "    connection._sock.write(b'')\n"
        "    connection.handle_messages(None)\n"
        "    return cursor._rows\n"
    )
    (tmp_path / "handlers" / "good.py").write_text(
        "class Counter:\n"
        "    def __init__(self):\n"
        "        self._count = 0\n"
        "    def bump(self, other):\n"
        "        other._count += 1\n"
        "        return self.__class__, _helper()\n"
        "def _helper():\n"
        "    return 1\n"
    )
    # WHEN scanned
    found = private_accesses(tmp_path, ("handlers",))
    # THEN each private access of the bad module is reported, nothing of the good one
    assert all(line.startswith("handlers/bad.py:") for line in found)
    text = "\n".join(found)
    for what in ("'_usock'", "'_sock'", "'_rows'", "'psycopg._pipeline'", "'make_params'",
                 "'handle_messages'"):
        assert what in text
