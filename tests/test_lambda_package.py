"""Lambda packages: the handler code plus what the runtime lacks, for the function's
architecture, byte-for-byte reproducible (same inputs, same archive hash)."""

from __future__ import annotations

import hashlib
import io
import zipfile

from components.kinesis_bus import FANIN_MODULES
from components.lambda_package import build_package, build_zip, package_hash


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
