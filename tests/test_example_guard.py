"""The guard of tests/conftest.py: a test (or a module at import) that opens a root-level
`Pulumi.<stack>.yaml` fails, unless it is marked `examples`; the tests' own stack files,
the project file `Pulumi.yaml` and stack files elsewhere are fine.

The probes run in a child pytest (the guard is this suite's conftest, so the probe module is
written under tests/, with a name pytest does not collect by itself). The stack file they
open does not exist: the guard sees the attempt, so it does not depend on the examples.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import root_stack_file
from tests.fixture_stacks import STACKS_DIR

ROOT = Path(__file__).resolve().parent.parent
PROBE_STACK = "Pulumi.guardprobe.yaml"

PROBES = f"""
import os
from pathlib import Path

import pytest

ROOT = Path({str(ROOT)!r})


def attempt(path):
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        pass


def test_absolute_root_stack():
    attempt(ROOT / {PROBE_STACK!r})


def test_relative_root_stack(monkeypatch):
    monkeypatch.chdir(ROOT)
    attempt({PROBE_STACK!r})


def test_os_open_root_stack():
    try:
        os.close(os.open(str(ROOT / {PROBE_STACK!r}), os.O_RDONLY))
    except FileNotFoundError:
        pass


@pytest.fixture(scope="module")
def read_in_fixture():
    attempt(ROOT / {PROBE_STACK!r})


def test_in_a_module_fixture(read_in_fixture):
    pass


@pytest.mark.examples
def test_marked_examples():
    attempt(ROOT / {PROBE_STACK!r})


def test_tests_stacks():
    attempt(ROOT / "tests" / "stacks" / "Pulumi.dev.yaml")


def test_project_file():
    attempt(ROOT / "Pulumi.yaml")


def test_other_folder(tmp_path):
    attempt(tmp_path / {PROBE_STACK!r})
"""

AT_IMPORT = f"""
from pathlib import Path

try:
    open(Path({str(ROOT)!r}) / {PROBE_STACK!r}).close()
except FileNotFoundError:
    pass


def test_nothing():
    pass
"""


@pytest.fixture
def probe_file() -> Iterator[Path]:
    path = ROOT / "tests" / f"_guard_probe_{uuid.uuid4().hex[:10]}.py"
    yield path
    path.unlink(missing_ok=True)


def outcomes(path: Path, text: str) -> tuple[str, dict[str, str]]:
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            str(path.relative_to(ROOT)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR") and "::" in rest:
            name = rest.split("::", 1)[1].split(" ", 1)[0]
            if word != "PASSED" or name not in found:  # a failed phase wins
                found[name] = "passed" if word == "PASSED" else "failed"
    return proc.stdout, found


def test_the_guard_fails_tests_that_open_a_root_stack_file(probe_file: Path) -> None:
    out, found = outcomes(probe_file, PROBES)
    assert found == {
        "test_absolute_root_stack": "failed",
        "test_relative_root_stack": "failed",
        "test_os_open_root_stack": "failed",
        "test_in_a_module_fixture": "failed",
        "test_marked_examples": "passed",
        "test_tests_stacks": "passed",
        "test_project_file": "passed",
        "test_other_folder": "passed",
    }, out
    assert f"read the example stack file(s) {PROBE_STACK}" in out


def test_the_guard_fails_a_module_that_opens_a_root_stack_file_at_import(
    probe_file: Path,
) -> None:
    out, _ = outcomes(probe_file, AT_IMPORT)
    assert "1 error" in out.splitlines()[-1], out
    assert f"read the example stack file(s) {PROBE_STACK}" in out


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (ROOT / "Pulumi.dev.yaml", "Pulumi.dev.yaml"),
        (str(ROOT / "Pulumi.prod-eu.yaml").encode(), "Pulumi.prod-eu.yaml"),
        (ROOT / "tests" / ".." / "Pulumi.qa.yaml", "Pulumi.qa.yaml"),
        (ROOT / "Pulumi.yaml", None),
        (ROOT / "Pulumi.dev.yml", None),
        (STACKS_DIR / "Pulumi.dev.yaml", None),
        (ROOT / "examples" / "Pulumi.minimal.yaml", None),
        (3, None),
    ],
)
def test_which_paths_are_root_stack_files(path: object, expected: str | None) -> None:
    assert root_stack_file(path) == expected
