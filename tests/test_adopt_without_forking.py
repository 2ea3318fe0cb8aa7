"""A platform team adopts the project without forking: in a copy of the repository they delete
the example stacks, add their own stack and list it in environments.yaml; plan and the tests
pass with no other edit (issue 14, "Examples are not fixtures").

The copy is every file of the repository (tracked, or new and not ignored) except the root
`Pulumi.<stack>.yaml` examples and examples/, plus the user's `Pulumi.staging.yaml` (a MySQL
stack written here) and environments.yaml listing only `staging`; it is made a git repository
of its own (as a user's is), with what setup puts beside a checkout linked in: ../shared and
the pinned node tools. In the copy the test runs:

- `python -m tools.plan staging --summary`: exit 0, 0 AWS-limit violations;
- `python -m tools.environments matrix`: the deploy matrix is `staging` alone;
- `pytest --collect-only tests` of the WHOLE suite: every module imports and parametrises
  without the examples;
- in full, every test module whose source `ROOT_SENSITIVE` matches (today
  test_adoption_trigger, test_environments, test_example_guard, test_examples, test_workflows):
  the ones that list the root's stack files or read environments.yaml, the workflows or the
  examples. test_examples then plans the user's `staging` (it plans every root stack present).

Why that covers the whole suite: the copy differs from the repository only in those paths,
and a test can depend on them only by (1) OPENING a root stack file, which the suite's guard
(tests/conftest.py, an audit hook on `open`) fails in every normal run, here and in CI, except
in tests marked `examples`; or (2) LISTING or reading them without opening a stack file, which
the guard does not see: those modules are the ones run in full here. Tests that give a tool a
missing stack name with the default folder read only the root's listing for their one-line
error, and assert no stack name from it. Not run in the copy: the other modules (inputs
identical in both trees by (1) and (2); all of them take ~8 minutes on 2 cores) and tests/e2e
(the local pipeline; no stack file). Nothing is deployed.
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
#: Never run in the copy: this module (it would copy the repository again, forever).
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
        # deleted: not copied (never opened); a link (dms_event_bus/*) is copied as a link
        if is_example(name) or not (source.is_file() or source.is_symlink()):
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
    # (and the examples test now plans the user's stack, not the deleted examples)
    planned = [line for line in collect.stdout.splitlines() if "test_examples.py::" in line]
    assert planned == [
        "tests/test_examples.py::test_an_example_stack_plans_within_the_aws_limits[staging]"
    ], planned

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
