"""A platform team adopts the project without forking: in a copy of the repository they delete
the example stacks, add their own stack and list it in environments.yaml; plan and the tests
pass with no other edit (issue 14, "Examples are not fixtures").

What the test runs in the copy, and why that proves the claim for the whole suite:

The copy differs from the repository in three places only: no root `Pulumi.<stack>.yaml`
examples (and no examples/), a new root `Pulumi.staging.yaml`, and environments.yaml listing
`staging` instead of the examples. A test's outcome can change only if it touches those
paths, in one of two ways:

1. It OPENS a root stack file. The suite's own guard (tests/conftest.py, an audit hook on
   `open`) fails every such test in every normal run, except tests marked `examples`
   (tests/test_examples.py, parametrised over the examples present). So in the normal CI run
   of this repository, a test that would break without the examples is already red.
2. It LISTS the root's stack files or reads environments.yaml, the workflows or examples/
   (the guard does not see a directory listing). Every test module whose source mentions
   `ROOT_SENSITIVE` matches is run in the copy, in full, with `-p no:xdist`.

Plus `pytest --collect-only` of the whole suite in the copy (a module that cannot be
imported, or a parametrisation built from the missing files, fails collection), and
`python -m tools.plan staging` (exit 0) and `python -m tools.environments matrix` in the copy
(what the PR and deploy workflows run for the stack).

What it does not do: run the other test modules in the copy (their inputs are identical in
both trees by (1) and (2); running all of them takes minutes), or deploy anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent

#: A test module mentioning any of these may depend on the root's stack files, environments
#: or workflows through something other than opening a stack file: it runs in the copy.
ROOT_SENSITIVE = re.compile(
    r"(?<!\w)stack_files\((?:ROOT)?\)"  # the root's stack files (no STACKS_DIR, no tmp folder)
    r"|environments\.yaml|load_environments|tools\.environments"  # the deploy order
    r"|\.github"  # the workflows
    r"|[\"']examples\b"  # examples/ (and the `examples` marker)
    r"|glob\(\"Pulumi"  # any stack file listing
)
#: Modules never run here: this one (it would copy itself forever) and the end-to-end ones
#: (the local pipeline with database servers; they read no stack file of the root).
NOT_RUN = ("test_adopt_without_forking.py",)

NODE_MODULES = "tools/node/node_modules"

#: A MySQL team's staging stack, as a user writes it (not one of the examples).
STAGING: dict[str, Any] = {
    "config": {
        "aws:region": "eu-north-1",
        "dms-event-bus:tags": {"team": "erp-platform"},
        "dms-event-bus:tables": {
            "erp_suppliers": {
                "source": {"schema": "erp", "table": "suppliers"},
                "partition_key": {"name": "supplier_id", "type": "N"},
            },
        },
        "dms-event-bus:dms": {
            "capacity": {"mode": "instance", "instance_class": "dms.t3.medium"},
            "network": {
                "vpc_id": "vpc-0aa11bb22cc33dd44",
                "subnet_ids": ["subnet-0aa11bb22cc33dd01", "subnet-0aa11bb22cc33dd02"],
                "source_cidrs": ["172.16.4.0/24"],
            },
            "source": {
                "engine": "mysql",
                "server": "erp-staging.mysql.internal.example.org",
                "secret_arn": "arn:aws:secretsmanager:eu-north-1:111122223333:secret:erp-Xy12Ab",
            },
            "wildcards": [
                {
                    "schema": "erp",
                    "table_pattern": "%",
                    "exclude": ["tmp_%"],
                    "table_prefix": "erp_",
                }
            ],
            "task": {"start": True},
        },
    }
}

ENVIRONMENTS = """\
environments:
  - stack: staging
    github_environment: staging
"""


def tracked_files(root: Path) -> list[str]:
    """The repository's files: tracked ones and new ones not ignored (a clean clone in CI)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    )
    return sorted({name for name in out.stdout.decode().split("\0") if name})


def is_example(name: str) -> bool:
    """A root stack file (not the project file Pulumi.yaml) or anything under examples/."""
    return bool(re.fullmatch(r"Pulumi\.[^/]+\.yaml", name)) or name.startswith("examples/")


def adopted_copy(dest: Path) -> Path:
    """The repository as a user leaves it, a git repository of its own: examples gone, their
    staging stack added and listed in environments.yaml."""
    names = tracked_files(ROOT)
    examples = [n for n in names if is_example(n)]
    assert any(n.startswith("Pulumi.") for n in examples), "no root example stack to delete"
    for name in names:
        source = ROOT / name
        if is_example(name) or not source.is_file():  # deleted: not copied (never opened)
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    (dest / "Pulumi.staging.yaml").write_text(yaml.safe_dump(STAGING, sort_keys=False))
    # what setup provides beside a checkout (not files of the repository): ../shared, as CI
    # clones it, and the pinned node tools `npm ci --prefix tools/node` installs
    for installed, link in (
        (ROOT.parent / "shared", dest.parent / "shared"),
        (ROOT / NODE_MODULES, dest / NODE_MODULES),
    ):
        if installed.is_dir():
            link.symlink_to(installed, target_is_directory=True)
    environments = dest / "environments.yaml"
    text = environments.read_text(encoding="utf-8")
    head = text[: text.index("\nenvironments:") + 1]  # the file's comments stay
    environments.write_text(head + ENVIRONMENTS, encoding="utf-8")
    git_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "adopter",
        "GIT_AUTHOR_EMAIL": "a@example.org",
        "GIT_COMMITTER_NAME": "adopter",
        "GIT_COMMITTER_EMAIL": "a@example.org",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "adopt"]):
        subprocess.run(["git", *args], cwd=dest, env=git_env, capture_output=True, check=True)
    return dest


def sensitive_modules(tests: Path) -> list[str]:
    return sorted(
        f"tests/{p.name}"
        for p in tests.glob("test_*.py")
        if p.name not in NOT_RUN and ROOT_SENSITIVE.search(p.read_text(encoding="utf-8"))
    )


def run(copy: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    return subprocess.run(
        [sys.executable, *args],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_the_repository_without_its_examples_plans_and_tests_a_users_own_stack(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    # GIVEN a copy of the repository whose example stacks are deleted and replaced by the
    # user's staging stack, listed in environments.yaml
    copy = adopted_copy(tmp_path / "repo")
    assert not list(copy.glob("Pulumi.*.*.yaml"))
    assert sorted(p.name for p in copy.glob("Pulumi.*.yaml")) == ["Pulumi.staging.yaml"]
    assert not (copy / "examples").exists()

    # WHEN the user plans their stack THEN it plans clean
    plan = run(copy, "-m", "tools.plan", "staging", "--summary")
    assert plan.returncode == 0, plan.stderr + plan.stdout
    assert "0 violations" in plan.stdout, plan.stdout
    matrix = run(copy, "-m", "tools.environments", "matrix")
    assert matrix.returncode == 0, matrix.stderr
    assert '"staging"' in matrix.stdout and '"dev"' not in matrix.stdout, matrix.stdout

    # AND the whole suite still collects
    collect = run(
        copy,
        "-m",
        "pytest",
        "-p",
        "no:xdist",
        "-p",
        "no:cacheprovider",
        "--collect-only",
        "-q",
        "tests",
    )
    assert collect.returncode == 0, collect.stdout[-3000:] + collect.stderr[-2000:]

    # AND every test module that could see the root's stack files, environments or
    # workflows passes
    modules = sensitive_modules(copy / "tests")
    assert "tests/test_examples.py" in modules and "tests/test_environments.py" in modules
    suite = run(
        copy,
        "-m",
        "pytest",
        "-p",
        "no:xdist",
        "-p",
        "no:cacheprovider",
        "-q",
        "-x",
        *modules,
        timeout=300,
    )
    assert suite.returncode == 0, suite.stdout[-4000:] + suite.stderr[-2000:]
    assert " passed" in suite.stdout.splitlines()[-1], suite.stdout[-500:]
    print(f"{len(modules)} modules in the copy, {time.monotonic() - started:.0f} s: {modules}")
