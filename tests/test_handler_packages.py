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

from components.backfill import BACKFILL_MODULES
from components.kinesis_bus import FANIN_MODULES
from components.lambda_package import ROOT, build_zip, with_imported_modules
from components.legacy_writeback import WRITEBACK_MODULES

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
