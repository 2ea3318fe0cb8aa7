"""Deterministic Lambda deployment packages.

A package is the named handler modules, the project modules they import (`handlers.x`,
found on their syntax trees, so a shared module such as `handlers.observability` cannot be
left out), plus every dependency the Lambda Python runtime lacks, installed for the
function's architecture (manylinux wheels for arm64 or x86_64, not this machine's). The zip
is byte-for-byte reproducible: sorted entries, fixed timestamps and permissions, no bytecode,
so the same inputs give the same archive hash and `pulumi preview` shows no change when
nothing changed.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pulumi

#: The folder holding `handlers/`: the repository in a checkout, `dms_event_bus/` installed.
ROOT = Path(__file__).resolve().parent.parent


def _build_dir() -> Path:
    """Where Lambda dependencies are cached: `$DMSBUS_BUILD_DIR`; else `.build/` of this
    checkout; else (the installed distribution, whose folder may be read-only and is shared by
    every program of the environment) `.build/dms-event-bus/` of the program's own folder."""
    if os.environ.get("DMSBUS_BUILD_DIR"):
        return Path(os.environ["DMSBUS_BUILD_DIR"])
    if (ROOT / "Pulumi.yaml").is_file():
        return ROOT / ".build"
    return Path.cwd() / ".build" / "dms-event-bus"


BUILD_DIR = _build_dir()
#: Python version of the Lambda runtime the packages are built for.
LAMBDA_PYTHON = "3.14"
PLATFORMS = {
    "arm64": ["manylinux2014_aarch64", "manylinux_2_28_aarch64"],
    "x86_64": ["manylinux2014_x86_64", "manylinux_2_28_x86_64"],
}
#: What the fan-in and backfill packages need beyond the Lambda runtime: `handlers.envelope`
#: writes its JSON with orjson (a compiled extension: installed per architecture like any
#: requirement). Pinned, so a release cannot change a deployed package unseen; its size and
#: cold-start cost are in bench/README.md (Fan-in handler).
ENVELOPE_REQUIREMENTS = ["orjson==3.13.0"]
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def _files_under(base: Path) -> Iterable[tuple[str, Path]]:
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if path.is_dir() or _SKIP_DIRS & set(rel.parts) or path.suffix in _SKIP_SUFFIXES:
            continue
        # pip writes the installer's name and a direct_url; neither belongs in the package
        if rel.parts[0].endswith(".dist-info") and rel.name in {"INSTALLER", "direct_url.json"}:
            continue
        yield rel.as_posix(), path


def _install_dependencies(requirements: list[str], arch: str) -> Path:
    """pip-install `requirements` for the Lambda platform into a cached folder."""
    key = hashlib.sha256(
        "\n".join([arch, LAMBDA_PYTHON, *sorted(requirements)]).encode()
    ).hexdigest()[:16]
    target = BUILD_DIR / f"deps-{arch}-{key}"
    if (target / ".complete").exists():
        return target
    staging = Path(tempfile.mkdtemp(prefix="deps-", dir=BUILD_DIR))
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
        "--disable-pip-version-check", "--target", str(staging),
        "--implementation", "cp", "--python-version", LAMBDA_PYTHON,
        "--only-binary=:all:",
    ]
    for platform in PLATFORMS[arch]:
        command += ["--platform", platform]
    result = subprocess.run(
        [*command, *requirements], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(
            f"could not install Lambda dependencies {requirements} for {arch}: "
            f"{result.stderr.strip()[-2000:]}"
        )
    (staging / ".complete").write_text("ok\n")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


#: The project's packages whose modules a handler module may import; they go into its package.
PROJECT_PACKAGES = ("handlers",)


def _imported_modules(module: str, source: bytes) -> list[str]:
    """Paths (relative to the repo root) of the project modules `source` imports, at any
    depth of its syntax tree (imports inside functions too): `import handlers.x`,
    `from handlers import x`, `from handlers.x import y`, `from . import x`."""
    package = Path(module).parent.as_posix()
    found: list[str] = []

    def add(dotted: str) -> None:
        if dotted.split(".", maxsplit=1)[0] not in PROJECT_PACKAGES:
            return
        as_file = dotted.replace(".", "/") + ".py"
        if (ROOT / as_file).is_file():
            found.append(as_file)

    for node in ast.walk(ast.parse(source, filename=module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package (one level supported)
                base = f"{package.replace('/', '.')}.{base}".rstrip(".")
            add(base)
            for alias in node.names:
                add(f"{base}.{alias.name}")
    return found


def with_imported_modules(modules: list[str]) -> list[str]:
    """`modules` plus every project module they import, transitively, each once, in order
    of discovery (the given ones first)."""
    out: list[str] = []
    todo = [Path(m).as_posix() for m in modules]
    while todo:
        module = todo.pop(0)
        if module in out:
            continue
        out.append(module)
        path = ROOT / module
        if path.suffix == ".py" and path.is_file():
            todo += [m for m in _imported_modules(module, path.read_bytes()) if m not in out]
    return out


def build_zip(modules: list[str], requirements: list[str] | None = None,
              arch: str = "arm64") -> bytes:
    """The package as zip bytes. `modules` are file paths relative to the repo root; the
    project modules they import are packaged with them (`with_imported_modules`)."""
    if arch not in PLATFORMS:
        raise ValueError(f"arch: expected one of {sorted(PLATFORMS)}, found {arch!r}")
    entries: dict[str, bytes] = {}
    for module in with_imported_modules(modules):
        path = ROOT / module
        if not path.is_file():
            raise FileNotFoundError(f"Lambda package module {module!r} not found under {ROOT}")
        entries[Path(module).as_posix()] = path.read_bytes()
        # every package folder on the way needs its __init__.py
        for parent in Path(module).parents:
            init = ROOT / parent / "__init__.py"
            if parent != Path(".") and init.is_file():
                entries.setdefault((parent / "__init__.py").as_posix(), init.read_bytes())
    if requirements:
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        deps = _install_dependencies(requirements, arch)
        for rel, path in _files_under(deps):
            if rel != ".complete":
                entries.setdefault(rel, path.read_bytes())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            zf.writestr(info, entries[name], compresslevel=9)
    return buffer.getvalue()


def build_package(modules: list[str], requirements: list[str] | None = None,
                  arch: str = "arm64") -> pulumi.FileArchive:
    """Build the package into `.build/` (named by content hash) as a Pulumi archive."""
    data = build_zip(modules, requirements, arch)
    digest = hashlib.sha256(data).hexdigest()
    BUILD_DIR.mkdir(exist_ok=True)
    path = BUILD_DIR / f"lambda-{digest[:20]}.zip"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return pulumi.FileArchive(str(path))


def package_hash(archive: pulumi.FileArchive) -> str:
    """base64 SHA-256 of a built package, as Lambda's `source_code_hash` expects."""
    import base64

    return base64.b64encode(hashlib.sha256(Path(archive.path).read_bytes()).digest()).decode()
