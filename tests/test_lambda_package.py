"""Lambda packages: the handler code plus what the runtime lacks, for the function's
architecture, byte-for-byte reproducible (same inputs, same archive hash)."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import io
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from dms_event_bus.components.backfill import BACKFILL_MODULES
from dms_event_bus.components.kinesis_bus import FANIN_MODULES
from dms_event_bus.components.lambda_package import (
    ENVELOPE_REQUIREMENTS,
    LAMBDA_PYTHON,
    build_package,
    build_zip,
    package_hash,
)
from tools.mockrun import run_stack


def names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_fanin_package_holds_exactly_the_handler_modules() -> None:
    data = build_zip(FANIN_MODULES)
    assert sorted(names(data)) == sorted({"handlers/__init__.py", *FANIN_MODULES})
    # what is in the zip is the source on disk, byte for byte
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for module in FANIN_MODULES:
            assert zf.read(module) == open(module, "rb").read()


def test_package_is_deterministic() -> None:
    first = build_zip(FANIN_MODULES)
    second = build_zip(FANIN_MODULES)
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()
    infos = zipfile.ZipFile(io.BytesIO(first)).infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert not [i for i in infos if i.filename.endswith((".pyc", ".pyo"))]


def test_archive_file_is_named_by_content_and_stable() -> None:
    a = build_package(FANIN_MODULES)
    b = build_package(FANIN_MODULES)
    assert a.path == b.path
    assert package_hash(a) == package_hash(b)


def test_dependencies_are_built_for_arm64_not_this_machine() -> None:
    # GIVEN a dependency with a compiled extension
    data = build_zip(["handlers/__init__.py"], ["pydantic-core==2.50.4"], arch="arm64")
    extensions = [n for n in names(data) if n.endswith(".so")]
    # THEN the extension in the package is the Lambda arm64 build for the runtime's Python
    assert extensions, "the compiled extension is in the package"
    assert all("aarch64" in n and "cpython-314" in n for n in extensions), extensions
    # and pip's per-install files that would break reproducibility are left out
    assert not [n for n in names(data) if n.endswith(("/INSTALLER", "/direct_url.json"))]
    assert data == build_zip(["handlers/__init__.py"], ["pydantic-core==2.50.4"], arch="arm64")


def test_x86_64_gets_x86_64_wheels() -> None:
    data = build_zip(["handlers/__init__.py"], ["pydantic-core==2.50.4"], arch="x86_64")
    extensions = [n for n in names(data) if n.endswith(".so")]
    assert extensions and all("x86_64" in n for n in extensions)


# ------------------------------------------- what the packaged handlers import is packaged

#: ELF e_machine of each Lambda architecture
ELF_MACHINE = {"arm64": 183, "x86_64": 62}
#: Modules the Lambda Python runtime provides (boto3 and its dependencies)
RUNTIME_MODULES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}


def third_party_imports(source: bytes) -> set[str]:
    """Top-level names of every module `source` imports that is neither the standard
    library nor the project's own `handlers` package (imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"__future__", "handlers"}


def test_envelope_requirements_are_pinned_to_the_version_the_tests_run() -> None:
    for requirement in ENVELOPE_REQUIREMENTS:
        name, _, version = requirement.partition("==")
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name) and re.fullmatch(r"\d+(\.\d+)*", version)
        # the handlers' tests exercise exactly the version the package ships
        assert importlib.metadata.version(name) == version, requirement


def test_fanin_and_backfill_packages_hold_every_library_their_handlers_import(
    tmp_path: Path,
) -> None:
    # GIVEN a stack with a declared table (the fan-in) and an adopted one (the backfill)
    doc = {"config": {"aws:region": "eu-west-1", "dms-event-bus:tables": {
        "orders": {"partition_key": {"name": "id", "type": "N"}}}}}
    (tmp_path / "Pulumi.pkg.yaml").write_text(yaml.safe_dump(doc))
    adopted = {"aws:dynamodb/getTables:getTables":
               lambda _args: {"names": ["dmsbus-pkg-audit_0001"], "id": "x"}}
    plan = run_stack("pkg", stack_dir=tmp_path, invoke_answers=adopted)
    functions = {f.name: f for f in plan.of_type("aws:lambda/function:Function")}
    assert {"bus-fanin", "backfill-function"} <= set(functions)
    for name in ("bus-fanin", "backfill-function"):
        function = functions[name]
        (arch,) = function.inputs["architectures"]
        assert function.inputs["runtime"] == f"python{LAMBDA_PYTHON}"
        package = zipfile.ZipFile(function.inputs["code"].path)
        entries = set(package.namelist())
        handlers = [n for n in entries if n.startswith("handlers/") and n.endswith(".py")]
        needed = set().union(*(third_party_imports(package.read(n)) for n in handlers))
        # THEN every library the handler modules import is in the package or the runtime
        assert "orjson" in needed, f"{name}: handlers.envelope imports orjson"
        missing = {m for m in needed - RUNTIME_MODULES
                   if f"{m}/__init__.py" not in entries and f"{m}.py" not in entries}
        assert not missing, f"{name} imports {sorted(missing)} but does not package them"
        # AND orjson's compiled extension is built for the function's interpreter and machine
        tag = f"cpython-{LAMBDA_PYTHON.replace('.', '')}-" + (
            "aarch64" if arch == "arm64" else "x86_64")
        extensions = [n for n in entries if n.startswith("orjson/") and n.endswith(".so")]
        assert extensions and all(tag in n for n in extensions), extensions
        for extension in extensions:
            header = package.read(extension)[:20]
            assert header[:4] == b"\x7fELF"
            assert struct.unpack_from("<H", header, 18)[0] == ELF_MACHINE[arch], extension


@pytest.mark.parametrize(
    ("modules", "handler"),
    [(FANIN_MODULES, "handlers.fanin"), (BACKFILL_MODULES, "handlers.backfill")],
)
def test_the_handler_imports_from_its_package_and_pinned_requirements_alone(
    tmp_path: Path, modules: list[str], handler: str
) -> None:
    # GIVEN the package's modules unpacked alone, beside this machine's build of each pinned
    # requirement (the package's own builds are for the Lambda's interpreter and machine and
    # cannot load here)
    with zipfile.ZipFile(io.BytesIO(build_zip(modules))) as zf:
        zf.extractall(tmp_path)
    for requirement in ENVELOPE_REQUIREMENTS:
        name = requirement.partition("==")[0]
        origin = importlib.util.find_spec(name)
        assert origin is not None and origin.origin is not None
        shutil.copytree(Path(origin.origin).parent, tmp_path / name)
    # WHEN a fresh interpreter without site-packages imports the handler from there
    code = f"import sys, {handler} as h; print(callable(h.handler), 'boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, check=False,
                         capture_output=True, text=True)
    # THEN it loads with nothing else, and boto3 only later (clients on first use)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False"]
