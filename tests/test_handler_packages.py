"""Every Lambda package holds the project modules its handler imports: a handler module that
starts using a shared module (`handlers.observability`, `handlers.common`) cannot ship without
it, whatever the component lists."""

from __future__ import annotations

import ast
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

from dms_event_bus.components.backfill import BACKFILL_MODULES
from dms_event_bus.components.kinesis_bus import FANIN_MODULES
from dms_event_bus.components.lambda_package import (
    ENVELOPE_REQUIREMENTS,
    ROOT,
    build_zip,
    with_imported_modules,
)
from dms_event_bus.components.legacy_writeback import WRITEBACK_MODULES, WRITEBACK_REQUIREMENTS

PACKAGES = [
    (FANIN_MODULES, "handlers.fanin"),
    (BACKFILL_MODULES, "handlers.backfill"),
    (WRITEBACK_MODULES, "handlers.writeback"),
]


def project_imports(source: bytes) -> set[str]:
    """Dotted names of the `handlers.*` modules `source` imports (anywhere in it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("handlers.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "handlers":
            found |= {f"handlers.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("handlers."):
            found.add(node.module or "")
    return found


@pytest.mark.parametrize(("modules", "handler"), PACKAGES)
def test_every_handlers_module_a_packaged_module_imports_is_packaged(
    modules: list[str], handler: str
) -> None:
    # GIVEN the package of one Lambda, as its component lists it
    with zipfile.ZipFile(io.BytesIO(build_zip(modules))) as zf:
        entries = set(zf.namelist())
        sources = {n: zf.read(n) for n in entries if n.endswith(".py")}
    assert f"{handler.replace('.', '/')}.py" in entries
    # THEN each handlers.* module any packaged module imports is in it too
    needed = set().union(*(project_imports(s) for s in sources.values()))
    missing = {m for m in needed if f"{m.replace('.', '/')}.py" not in entries}
    assert not missing, f"{handler}: imports {sorted(missing)} that its package lacks"
    # AND what is packaged is what is on disk, byte for byte
    for name, source in sources.items():
        assert source == (ROOT / name).read_bytes(), name


@pytest.mark.parametrize(("modules", "handler"), PACKAGES)
def test_the_handler_imports_from_its_package_alone(
    tmp_path: Path, modules: list[str], handler: str
) -> None:
    # GIVEN the package's modules unpacked alone, beside this machine's orjson (the real
    # package carries the Lambda's build of it; the writeback's drivers load only on connect)
    with zipfile.ZipFile(io.BytesIO(build_zip(modules))) as zf:
        zf.extractall(tmp_path)
    shutil.copytree(Path(orjson.__file__).parent, tmp_path / "orjson")
    # WHEN a fresh interpreter without the project or site-packages imports the handler
    code = f"import sys, {handler} as h; print(callable(h.handler), 'boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, check=False,
                         capture_output=True, text=True)
    # THEN it loads, without boto3 (clients are made on first use)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False"]


def test_imports_are_followed_in_every_form_and_transitively(tmp_path: Path) -> None:
    # GIVEN a module that imports project modules in each form Python has, one of them only
    # inside a function, and a module of another package
    source = (
        "import json\n"
        "import handlers.bus\n"
        "from handlers import envelope\n"
        "from handlers.common import Outcome\n"
        "def f():\n"
        "    from . import observability\n"
        "    import components.common\n"
    )
    probe = ROOT / "handlers" / f"_probe_{tmp_path.name}.py"
    probe.write_text(source)
    try:
        found = with_imported_modules([probe.relative_to(ROOT).as_posix()])
    finally:
        probe.unlink()
    # THEN each handlers module is found once, with what those import in turn; the
    # standard library and non-handler packages are not
    assert found[0] == probe.relative_to(ROOT).as_posix()
    assert sorted(found[1:]) == sorted({"handlers/bus.py", "handlers/envelope.py",
                                        "handlers/common.py", "handlers/observability.py"})
    assert len(found) == len(set(found))


#: Modules the Lambda Python runtime provides (boto3 and its dependencies).
RUNTIME_MODULES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}


def import_time_libraries(source: bytes) -> set[str]:
    """Top-level names of the third-party modules `source` imports when it is imported (at
    module level: imports inside functions load only when called)."""
    found: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            found |= {a.name.split(".", maxsplit=1)[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".", maxsplit=1)[0])
    return found - set(sys.stdlib_module_names) - {"__future__", "handlers"}


def requirement_modules(requirements: list[str]) -> set[str]:
    return {r.partition("==")[0].lower().replace("-", "_") for r in requirements}


@pytest.mark.parametrize(
    ("modules", "requirement_sets"),
    [
        (FANIN_MODULES, [ENVELOPE_REQUIREMENTS]),
        (BACKFILL_MODULES, [ENVELOPE_REQUIREMENTS]),
        (WRITEBACK_MODULES, list(WRITEBACK_REQUIREMENTS.values())),
    ],
)
def test_what_a_handler_imports_at_load_is_in_every_package_it_ships_in(
    modules: list[str], requirement_sets: list[list[str]]
) -> None:
    # GIVEN every module of the package (the project modules the handler imports included)
    needed = set().union(*(import_time_libraries((ROOT / m).read_bytes())
                           for m in with_imported_modules(modules)))
    # THEN each library they import at load is a requirement of every variant of the
    # package (the writeback's differs per target) or part of the Lambda runtime
    for requirements in requirement_sets:
        missing = needed - RUNTIME_MODULES - requirement_modules(requirements)
        assert not missing, f"{modules[0]} imports {sorted(missing)}; {requirements} lacks it"
