"""environments.yaml: the deploy order, approval gates and scheduled adoption CI reads.

Every test writes its own environments file and stack files in a temporary directory; the
repository's examples are never read here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dms_event_bus.settings.base import ENV_NAME_PATTERN
from tools import environments as envs
from tools.environments import Environment, EnvironmentsError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, stacks: tuple[str, ...] = ()) -> Path:
    for stack in stacks:
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    path = tmp_path / "environments.yaml"
    path.write_text(text)
    return path


THREE = """\
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


def test_the_file_loads_in_order_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, THREE, ("qa", "staging-eu", "live"))
    assert envs.load_environments(path) == (
        Environment("qa", "qa", True, "qa"),
        Environment("staging-eu", "Staging EU", False, "Staging EU"),
        Environment("live", "live-approval", True, "live-unattended"),
    )


def test_the_deploy_matrix_chains_each_stack_after_the_one_before(tmp_path: Path) -> None:
    path = write(tmp_path, THREE, ("qa", "staging-eu", "live"))
    matrix = envs.deploy_matrix(envs.load_environments(path))
    assert matrix == {
        "include": [
            {"stack": "qa", "github_environment": "qa", "after": ""},
            {"stack": "staging-eu", "github_environment": "Staging EU", "after": "qa"},
            {"stack": "live", "github_environment": "live-approval", "after": "staging-eu"},
        ]
    }


BAD = [
    ("", "environments.yaml: expected a mapping with the key 'environments'"),
    ("- stack: qa\n", "environments.yaml: expected a mapping with the key 'environments'"),
    ("environments: []\n", "environments.yaml: environments: expected at least one environment"),
    ("environments:\n  - stack: qa\n", "environments[0].github_environment: expected a value"),
    (
        "environments:\n  - stack: QA\n    github_environment: qa\n",
        "environments[0].stack: expected a stack name matching",
    ),
    (
        "environments:\n  - stack: qa\n    github_environment: qa\n    schedule: true\n",
        "environments[0].schedule: no such key (keys: stack, github_environment, "
        "scheduled_adoption, adoption_environment)",
    ),
    (
        "environments:\n  - stack: qa\n    github_environment: qa\n    scheduled_adoption: 1\n",
        "environments[0].scheduled_adoption: expected true or false, found 1",
    ),
    (
        "environments:\n  - stack: qa\n    github_environment: qa\n"
        "  - stack: qa\n    github_environment: qa2\n",
        "environments[1].stack: 'qa' is listed twice (each stack deploys once per run)",
    ),
    (
        "environments:\n  - stack: qb\n    github_environment: qb\n",
        "environments[0].stack: no stack file Pulumi.qb.yaml (stack files: qa)",
    ),
    (
        "environments:\n  - stack: qa\n    github_environment: ' '\n",
        "environments[0].github_environment: expected a GitHub environment name",
    ),
    ("environments: [\n", "environments.yaml:2:1: not YAML:"),
    (
        "environments:\n  - stack: qa\n    stack: qa\n    github_environment: qa\n",
        "environments.yaml:3:5: duplicate key 'stack'",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_file_is_one_line_naming_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text, ("qa",))
    with pytest.raises(EnvironmentsError) as caught:
        envs.load_environments(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file_says_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentsError, match="environments.yaml: not found: list the stacks"):
        envs.load_environments(tmp_path / "environments.yaml")


def test_the_stack_name_rule_is_the_stack_configs_environment_name_rule() -> None:
    assert envs.STACK_PATTERN == ENV_NAME_PATTERN


# --- the CLI ----------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.environments", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONPATH": str(ROOT)},
    )


def test_matrix_prints_the_json_a_workflow_reads(tmp_path: Path) -> None:
    path = write(tmp_path, THREE, ("qa", "staging-eu", "live"))
    proc = run_cli("matrix", "--file", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1  # one line: fits $GITHUB_OUTPUT as name=value
    assert [e["stack"] for e in json.loads(proc.stdout)["include"]] == ["qa", "staging-eu", "live"]


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("environments: 3\n", ("matrix",)),
        (THREE, ("adoption", "--environment", "nope")),
        (THREE, ("matrix", "--bogus")),
    ],
)
def test_bad_input_to_the_cli_is_one_line_and_exit_2(
    tmp_path: Path, text: str, args: tuple[str, ...]
) -> None:
    path = write(tmp_path, text, ("qa", "staging-eu", "live"))
    proc = run_cli(*args, "--file", str(path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


# --- adoption: which environments, from which event -------------------------------------------


def loaded(tmp_path: Path) -> tuple[Environment, ...]:
    return envs.load_environments(write(tmp_path, THREE, ("qa", "staging-eu", "live")))


def test_a_schedule_adopts_every_marked_environment(tmp_path: Path) -> None:
    matrix = envs.adoption_matrix(loaded(tmp_path), None)
    assert matrix == {
        "include": [
            {"stack": "qa", "adoption_environment": "qa"},
            {"stack": "live", "adoption_environment": "live-unattended"},
        ]
    }


def test_a_dispatch_adopts_the_named_environment_only(tmp_path: Path) -> None:
    matrix = envs.adoption_matrix(loaded(tmp_path), "live")
    assert matrix == {"include": [{"stack": "live", "adoption_environment": "live-unattended"}]}


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("nope", "unknown environment 'nope' (environments.yaml: qa, staging-eu, live)"),
        ("", "the dispatch names no environment"),
        ("staging-eu", "environment 'staging-eu' is not marked scheduled_adoption: true"),
        ("qa\nlive", "unknown environment 'qa live'"),
    ],
)
def test_a_dispatch_naming_no_adoptable_environment_fails(
    tmp_path: Path, requested: str, message: str
) -> None:
    with pytest.raises(EnvironmentsError) as caught:
        envs.adoption_matrix(loaded(tmp_path), requested)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def _run(*jobs: tuple[str, str]) -> dict[str, object]:
    return {"jobs": [{"name": name, "status": status} for name, status in jobs]}


def test_a_stack_an_unfinished_deploy_will_still_apply_is_left_to_that_deploy(
    tmp_path: Path,
) -> None:
    # GIVEN a deploy run that has applied qa and waits for approval before live
    deploying = [
        _run(("checks", "completed"), ("pulumi up qa", "completed"), ("pulumi up live", "waiting"))
    ]
    # WHEN a schedule asks for adoption
    matrix = envs.adoption_matrix(loaded(tmp_path), None, deploying)
    # THEN qa is adopted now; live is not queued behind (and never cancels) that deploy
    assert [e["stack"] for e in matrix["include"]] == ["qa"]
    # AND a deploy run whose matrix is not expanded yet covers every stack
    assert envs.adoption_matrix(loaded(tmp_path), None, [_run(("checks", "in_progress"))]) == {
        "include": []
    }


def test_the_deploy_job_name_is_the_one_the_order_check_and_adoption_look_for() -> None:
    assert envs.deploy_job_name("live") == "pulumi up live"


# --- the deploy order check -------------------------------------------------------------------


def _page(*jobs: tuple[str, str | None]) -> dict[str, object]:
    return {
        "total_count": len(jobs),
        "jobs": [
            {"name": n, "conclusion": c, "status": "completed" if c else "in_progress"}
            for n, c in jobs
        ],
    }


@given(
    stacks=st.lists(st.from_regex(r"\A[a-z][a-z0-9-]{0,6}\Z"), min_size=1, max_size=6, unique=True),
    data=st.data(),
)
@settings(max_examples=60, deadline=None)
def test_a_stack_deploys_only_after_the_one_before_it_succeeded(
    stacks: list[str], data: st.DataObject
) -> None:
    # GIVEN the jobs of a deploy run (any attempts, any pages), each with some conclusion
    outcome = st.sampled_from([None, "success", "failure", "cancelled", "skipped"])
    jobs = [(envs.deploy_job_name(s), data.draw(outcome)) for s in stacks]
    split = data.draw(st.integers(0, len(jobs)))
    pages = [_page(*jobs[:split]), _page(*jobs[split:])]
    previous = data.draw(st.sampled_from(stacks))
    # THEN the next stack may go exactly when its predecessor's job succeeded
    expected = dict(jobs)[envs.deploy_job_name(previous)] == "success"
    assert envs.predecessor_succeeded(pages, previous) is expected


@given(
    attempts=st.lists(
        st.sampled_from(["success", "failure", "cancelled", "skipped"]), min_size=1, max_size=5
    ),
    order=st.randoms(use_true_random=False),
    split=st.integers(0, 6),
)
@settings(max_examples=80, deadline=None)
def test_only_the_latest_attempt_of_the_predecessor_counts(
    attempts: list[str], order: Any, split: int
) -> None:
    # GIVEN a deploy run re-run ("re-run all jobs"): the predecessor's job once per attempt,
    # listed in any order over two pages (filter=all lists every attempt)
    name = envs.deploy_job_name("qa")
    jobs = [
        {"name": name, "conclusion": c, "status": "completed", "run_attempt": n, "id": 100 + n}
        for n, c in enumerate(attempts, start=1)
    ]
    order.shuffle(jobs)
    pages = [{"jobs": jobs[:split]}, {"jobs": jobs[split:]}]
    # THEN the next stack goes exactly when the predecessor's latest attempt succeeded: an
    # earlier attempt's success says nothing about what this attempt deployed
    assert envs.predecessor_succeeded(pages, "qa") is (attempts[-1] == "success")


def test_check_order_cli(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([_page(("pulumi up qa", "success"), ("pulumi up live", None))]))
    assert run_cli("check-order", "--after", "qa", "--jobs", str(jobs)).returncode == 0
    proc = run_cli("check-order", "--after", "live", "--jobs", str(jobs))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "::error::pulumi up live has not succeeded in this run: the next stack does not "
        "deploy out of order (environments.yaml)"
    ]
    # the first stack has no predecessor
    assert run_cli("check-order", "--after", "", "--jobs", str(jobs)).returncode == 0


# --- the commit an adoption runs -------------------------------------------------------------

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def _update(
    kind: str, result: str, message: str = "", head: str | None = None, dirty: str | None = None
) -> dict:
    environment = {"exec.kind": "cli"} | ({"git.head": head} if head else {})
    environment |= {"git.dirty": dirty} if dirty is not None else {}
    return {"kind": kind, "result": result, "message": message, "environment": environment}


@pytest.mark.parametrize(
    ("history", "sha"),
    [
        ([_update("update", "succeeded", f"deploy {SHA} (run 7)", head=OTHER)], SHA),
        ([_update("update", "succeeded", f"adopt {SHA} (run 9)")], SHA),
        (
            [
                _update("refresh", "succeeded", "", head=OTHER),
                _update("update", "succeeded", "by hand", head=SHA),
            ],
            SHA,
        ),
        ([_update("update", "succeeded", "by hand", head=SHA, dirty="false")], SHA),
    ],
)
def test_adoption_reruns_the_commit_of_the_last_successful_update(
    history: list[dict], sha: str
) -> None:
    assert envs.deployed_commit(history, "live") == sha


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([], "stack live has no update yet"),
        (
            [
                _update("update", "failed", f"deploy {OTHER} (run 8)"),
                _update("update", "succeeded", f"deploy {SHA} (run 7)"),
            ],
            "the last update of stack live did not succeed (update failed: deploy fedcba9",
        ),
        ([_update("destroy", "succeeded")], "the last update of stack live did not succeed"),
        ([_update("update", "succeeded", "by hand")], "records no commit"),
        # made by hand from a tree with uncommitted changes: the commit alone would undo them
        (
            [_update("update", "succeeded", "by hand", head=SHA, dirty="true")],
            "made from a working tree with uncommitted changes",
        ),
    ],
)
def test_adoption_refuses_a_stack_whose_last_update_is_not_a_known_good_commit(
    history: list[dict], message: str
) -> None:
    with pytest.raises(EnvironmentsError) as caught:
        envs.deployed_commit(history, "live")
    assert message in str(caught.value)


def test_a_dirty_update_is_refused_by_the_cli_in_one_line(tmp_path: Path) -> None:
    # GIVEN a stack last updated by hand from a tree with uncommitted changes
    history = tmp_path / "history.json"
    history.write_text(json.dumps([_update("update", "succeeded", "by hand", SHA, "true")]))
    # WHEN the adoption asks for the commit to re-run
    proc = run_cli("deployed-commit", "--stack", "live", "--history", str(history))
    # THEN it refuses with one line: re-running the clean commit would undo those changes
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert "uncommitted changes" in line and "live" in line and proc.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ("check-order", "--after", "qa", "--jobs", "{missing}"),
        ("deployed-commit", "--stack", "qa", "--history", "{garbage}"),
        ("adoption", "--deploying", "{garbage}", "--file", "{file}"),
        ("deployed-commit", "--stack", "qa"),
    ],
)
def test_unreadable_inputs_of_the_cli_are_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"jobs": [')
    file = write(tmp_path, THREE, ("qa", "staging-eu", "live"))
    paths = {
        "{missing}": str(tmp_path / "missing.json"),
        "{garbage}": str(garbage),
        "{file}": str(file),
    }
    proc = run_cli(*[paths.get(a, a) for a in args], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_order_check_and_the_commit_lookup_need_only_the_standard_library(
    tmp_path: Path,
) -> None:
    # deploy.yml checks the order before `pulumi install`: no PyYAML on that runner yet
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([_page(("pulumi up qa", "success"))]))
    code = (
        "import sys; sys.modules['yaml'] = None; sys.modules['pydantic'] = None\n"
        "from tools.environments import main\n"
        f"sys.exit(main(['check-order', '--after', 'qa', '--jobs', {str(jobs)!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


_STATUS = st.sampled_from(["completed", "queued", "in_progress", "waiting", "pending"])


@given(
    marks=st.lists(st.booleans(), min_size=1, max_size=5),
    data=st.data(),
)
@settings(max_examples=80, deadline=None)
def test_adoption_leaves_a_stack_to_a_deploy_exactly_while_that_deploy_has_not_applied_it(
    marks: list[bool], data: st.DataObject
) -> None:
    # GIVEN environments, some marked for adoption, and unfinished deploy runs whose jobs for
    # some stacks exist in some status (a job not created yet: its stack still to come)
    environments = tuple(
        Environment(f"s{i}", f"s{i}", marked, f"s{i}") for i, marked in enumerate(marks)
    )
    runs = [
        {
            "jobs": [
                {"name": envs.deploy_job_name(e.stack), "status": data.draw(_STATUS)}
                for e in environments
                if data.draw(st.booleans())
            ]
        }
        for _ in range(data.draw(st.integers(0, 3)))
    ]
    # WHEN the schedule asks for adoption
    adopted = [e["stack"] for e in envs.adoption_matrix(environments, None, runs)["include"]]
    # THEN a marked stack is adopted iff every unfinished run has completed its job
    expected = [
        e.stack
        for e in environments
        if e.scheduled_adoption
        and all(
            {"name": envs.deploy_job_name(e.stack), "status": "completed"} in run["jobs"]
            for run in runs
        )
    ]
    assert adopted == expected
