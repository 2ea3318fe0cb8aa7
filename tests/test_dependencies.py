"""A fresh checkout installs what the program imports: the file Pulumi.yaml's toolchain reads
exists, is locked, stays inside pyproject.toml's ranges, and names every third-party import of
the modules `__main__.py` (and the policy pack, which shares the virtualenv) import.

The Pulumi CLI cannot run here, so the toolchain's behaviour is taken from its source
(pulumi/pulumi `sdk/python/toolchain/pip.go`: `pip install -r requirements.txt` in the project
directory, after creating the `virtualenv` of Pulumi.yaml).
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools import lock

ROOT = Path(__file__).resolve().parents[1]

#: What each Pulumi Python toolchain installs from, relative to the project directory.
TOOLCHAIN_FILES = {"pip": "requirements.txt"}


# --- the project's import graph -------------------------------------------------------------


def _module_file(root: Path, dotted: str) -> Path | None:
    # (`dms_event_bus.components.x`: dms_event_bus/components is a link to components/)
    path = root.joinpath(*dotted.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, lazy ones inside functions included; not `if TYPE_CHECKING:`."""
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def third_party_imports(root: Path, entries: list[Path]) -> dict[str, set[str]]:
    """Top-level names of third-party modules imported by `entries` and, transitively, by
    every module of the project (a module or package under `root`) they import, mapped to the
    files importing them. The standard library is left out."""
    found: dict[str, set[str]] = {}
    seen: set[Path] = set()
    todo: list[tuple[Path, str]] = [(entry, "__main__") for entry in entries]
    while todo:
        path, module = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".") if package else []
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for name in names:
                top = name.split(".")[0]
                if not top or top == "__future__" or top in sys.stdlib_module_names:
                    continue
                own = _module_file(root, name)
                if own is not None:
                    todo.append((own, name))
                elif _module_file(root, top) is None:
                    found.setdefault(top, set()).add(str(path.relative_to(root)))
    return found


def missing_from(requirements: str, imports: dict[str, set[str]]) -> dict[str, str]:
    """Imports whose distribution the requirements do not name: import -> why."""
    named = {canonicalize_name(r.name) for r in parse_requirements(requirements)}
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for top, where in sorted(imports.items()):
        dists = {canonicalize_name(d) for d in providers.get(top, [])}
        if not dists:
            missing[top] = f"imported by {sorted(where)}, but no installed distribution has it"
        elif not dists & named:
            missing[top] = f"imported by {sorted(where)}: add one of {sorted(dists)}"
    return missing


def parse_requirements(text: str) -> list[Requirement]:
    reqs = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            assert not line.startswith("-"), f"options are not expected in the lock: {raw!r}"
            reqs.append(Requirement(line))
    return reqs


# --- what Pulumi.yaml asks for ---------------------------------------------------------------


def project_options() -> dict[str, str]:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    runtime = project["runtime"]
    assert runtime["name"] == "python"
    return dict(runtime.get("options") or {})


def dependency_file() -> Path:
    toolchain = project_options().get("toolchain", "pip")
    assert toolchain in TOOLCHAIN_FILES, f"Pulumi.yaml: toolchain {toolchain!r} is not handled"
    return ROOT / TOOLCHAIN_FILES[toolchain]


def program_entries() -> list[Path]:
    """The program's `__main__.py` and, when it shares the project's virtualenv, the policy
    pack's."""
    entries = [ROOT / "__main__.py"]
    policy = ROOT / "policy"
    pack = yaml.safe_load((policy / "PulumiPolicy.yaml").read_text())
    venv = (pack["runtime"].get("options") or {}).get("virtualenv")
    if venv and (policy / venv).resolve() == (ROOT / project_options()["virtualenv"]).resolve():
        entries.append(policy / "__main__.py")
    return entries


def pyproject() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return {
        "dependencies": [Requirement(r) for r in project["dependencies"]],
        **{name: [Requirement(r) for r in reqs] for name, reqs in extras.items()},
    }


# --- tests ---------------------------------------------------------------------------------


def test_the_toolchain_of_pulumi_yaml_reads_a_file_that_exists() -> None:
    # GIVEN Pulumi.yaml's Python runtime options
    options = project_options()
    # THEN the virtualenv Pulumi creates is the project's, and the file its toolchain installs
    # from exists and is not empty
    assert options["virtualenv"] == ".venv"
    path = dependency_file()
    assert path.is_file(), (
        f"Pulumi.yaml's toolchain {options.get('toolchain', 'pip')!r} installs {path.name}, "
        "which does not exist: `pulumi install` on a fresh checkout would install nothing"
    )
    assert parse_requirements(path.read_text())


def test_the_dependency_file_names_every_third_party_import_of_the_program() -> None:
    # GIVEN the third-party modules the program and the policy pack import, transitively
    imports = third_party_imports(ROOT, program_entries())
    assert {"pulumi", "pulumi_aws", "pydantic", "boto3", "pulumi_policy"} <= set(imports)
    # WHEN they are compared with the distributions the toolchain's file installs
    path = dependency_file()
    text = path.read_text() if path.is_file() else ""
    # THEN each comes from a named distribution
    assert missing_from(text, imports) == {}


def test_the_import_walk_follows_project_modules_lazy_imports_and_relative_imports(
    tmp_path: Path,
) -> None:
    # GIVEN a project whose __main__ imports a package that imports yaml inside a function,
    # a sibling module relatively, which imports pydantic; a TYPE_CHECKING-only import
    (tmp_path / "__main__.py").write_text("import json\nfrom pkg import run\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nfrom .models import Model\n"
        "if TYPE_CHECKING:\n    import mypy_boto3_s3\n"
        "def run():\n    import yaml\n    return yaml\n"
    )
    (tmp_path / "pkg" / "models.py").write_text("from pydantic import BaseModel as Model\n")
    # WHEN the walk runs
    found = third_party_imports(tmp_path, [tmp_path / "__main__.py"])
    # THEN it finds both third-party imports, not the stdlib, not typing-only ones
    assert found == {"yaml": {"pkg/__init__.py"}, "pydantic": {"pkg/models.py"}}
    # AND a requirements file without PyYAML is reported, naming the distribution to add
    missing = missing_from("pydantic==2.14.4\n", found)
    assert set(missing) == {"yaml"} and "pyyaml" in missing["yaml"]
    assert missing_from("pydantic==2.14.4\nPyYAML==6.0.4\n", found) == {}


def test_every_pin_is_exact_and_inside_pyproject_ranges() -> None:
    # GIVEN the dependency file and pyproject.toml
    path = dependency_file()
    assert path.is_file(), f"{path.name} is missing"
    pins = {}
    for req in parse_requirements(path.read_text()):
        (spec,) = req.specifier
        assert spec.operator == "==" and "*" not in spec.version, f"not locked: {req}"
        assert not req.marker and not req.extras, f"lock lines are plain pins: {req}"
        pins[canonicalize_name(req.name)] = spec.version
    declared = pyproject()
    # THEN every runtime dependency is pinned inside its range
    for req in declared["dependencies"]:
        key = canonicalize_name(req.name)
        assert key in pins, f"{req.name} (pyproject dependencies) is not in {path.name}"
        assert req.specifier.contains(pins[key], prereleases=True), (
            f"{path.name} pins {req.name}=={pins[key]}, outside pyproject's {req.specifier}"
        )
    # AND a pin of a distribution an extra also names agrees with that extra
    for extra, reqs in declared.items():
        for req in reqs:
            key = canonicalize_name(req.name)
            if key in pins:
                assert req.specifier.contains(pins[key], prereleases=True), (
                    f"{path.name} pins {req.name}=={pins[key]}, pyproject [{extra}] says "
                    f"{req.specifier}"
                )


def test_the_lock_is_closed_and_is_what_the_tests_ran_against() -> None:
    # GIVEN the dependency file
    path = dependency_file()
    assert path.is_file(), f"{path.name} is missing"
    pins = {
        canonicalize_name(r.name): str(r.specifier).removeprefix("==")
        for r in parse_requirements(path.read_text())
    }
    # WHEN the lock is computed from this environment (pyproject's roots, every dependency)
    computed = {key: version for key, (_, version, _) in lock.closure(lock.roots()).items()}
    # THEN the file holds exactly those distributions at exactly the versions installed here
    assert pins == computed, (
        "requirements.txt is not this environment's lock: install with "
        "`pip install -c requirements.txt '.[dev,drivers]'`, or after changing pyproject.toml "
        "regenerate it with `python -m tools.lock --write`"
    )
    assert path.read_text() == lock.render(lock.closure(lock.roots()))


def test_pulumi_install_in_the_project_directory_installs_the_project() -> None:
    # `pulumi install` (pulumi/pulumi pkg/cmd/pulumi/install/install.go) installs a plugin's or a
    # policy pack's dependencies instead of the project's when a PulumiPlugin.yaml or
    # PulumiPolicy.yaml sits in the project directory or above it: keep them in subdirectories.
    for directory in (ROOT, *ROOT.parents):
        for name in ("PulumiPlugin.yaml", "PulumiPolicy.yaml"):
            assert not (directory / name).exists(), (
                f"{directory / name}: `pulumi install` in {ROOT} would install its dependencies "
                "instead of the program's; move it into a subdirectory (like policy/)"
            )
