"""The writeback Lambda's PostgreSQL driver, as packaged for the function's runtime.

The function runs python3.14 on arm64 (components.lambda_package.LAMBDA_PYTHON, LAMBDA_ARCH).
psycopg's binary wheel brings libpq (the runtime has none); it must exist for exactly that
interpreter and architecture, and every driver the package bundles is pinned to one version.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile

import pytest

from dms_event_bus.components.common import LAMBDA_ARCH
from dms_event_bus.components.lambda_package import ENVELOPE_REQUIREMENTS, LAMBDA_PYTHON, build_zip
from dms_event_bus.components.legacy_writeback import (
    DRIVERS,
    WRITEBACK_MODULES,
    WRITEBACK_REQUIREMENTS,
)

#: ELF e_machine of each Lambda architecture
ELF_MACHINE = {"arm64": 183, "x86_64": 62}
#: The package stays far below Lambda's 50 MB zipped upload limit (psycopg + libpq measured
#: 4.4 MB zipped, 14.5 MB unzipped; bench/README.md, Writeback).
MAX_ZIP_BYTES = 8_000_000


def test_every_bundled_driver_is_pinned_to_one_version() -> None:
    # GIVEN the drivers the writeback package bundles per target
    # THEN each is `name==version`: a driver release cannot change a deployed package
    for requirements in DRIVERS.values():
        for requirement in requirements:
            assert re.fullmatch(r"[A-Za-z0-9._-]+==\d+(\.\d+)*", requirement), requirement


def test_the_postgres_package_holds_libpq_for_the_lambda_runtime() -> None:
    # WHEN the package of a PostgreSQL target is built for the function's architecture
    data = build_zip(WRITEBACK_MODULES, WRITEBACK_REQUIREMENTS["postgres"], LAMBDA_ARCH)
    package = zipfile.ZipFile(io.BytesIO(data))
    names = set(package.namelist())
    # THEN it holds the handler and psycopg, and no other PostgreSQL driver
    assert {*WRITEBACK_MODULES, "psycopg/__init__.py", "psycopg_binary/__init__.py"} <= names
    assert not any(n.startswith("pg8000/") for n in names)
    # AND psycopg's C extension is built for the runtime's interpreter and architecture
    tag = f"cpython-{LAMBDA_PYTHON.replace('.', '')}-" + (
        "aarch64" if LAMBDA_ARCH == "arm64" else "x86_64")
    extensions = [n for n in names if n.startswith("psycopg_binary/") and n.endswith(".so")]
    assert extensions and all(tag in n for n in extensions), extensions
    # AND libpq comes with it (the runtime has none), for the same machine
    libpq = [n for n in names if re.match(r"psycopg_binary\.libs/libpq[-.]", n)]
    assert len(libpq) == 1, libpq
    for name in [*extensions, *libpq]:
        header = package.read(name)[:20]
        assert header[:4] == b"\x7fELF"
        assert struct.unpack_from("<H", header, 18)[0] == ELF_MACHINE[LAMBDA_ARCH], name
    # AND the package stays light
    assert len(data) < MAX_ZIP_BYTES


@pytest.mark.parametrize("kind", sorted(DRIVERS))
def test_every_package_holds_orjson_for_the_envelope_writer(kind: str) -> None:
    # GIVEN the writeback writes map, list and set values with handlers.envelope.value_json
    # (the project's one DynamoDB-JSON -> JSON writer, which imports orjson)
    assert "handlers/envelope.py" in WRITEBACK_MODULES
    # THEN every target's requirements are its driver plus the envelope's pinned orjson
    assert WRITEBACK_REQUIREMENTS[kind] == [*DRIVERS[kind], *ENVELOPE_REQUIREMENTS]
    # AND the package built for the function holds the envelope module and orjson's
    # extension for the runtime's interpreter and architecture
    names = set(zipfile.ZipFile(io.BytesIO(
        build_zip(WRITEBACK_MODULES, WRITEBACK_REQUIREMENTS[kind], LAMBDA_ARCH))).namelist())
    assert {"handlers/envelope.py", "handlers/common.py", "orjson/__init__.py"} <= names
    tag = f"cpython-{LAMBDA_PYTHON.replace('.', '')}-" + (
        "aarch64" if LAMBDA_ARCH == "arm64" else "x86_64")
    assert any(n.startswith("orjson/") and n.endswith(".so") and tag in n for n in names)
