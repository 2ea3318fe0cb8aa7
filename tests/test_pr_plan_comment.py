"""The pull-request comment of the plan diff (`python -m tools.pr_plan_comment`): the body built
from the diff text and the plan's exit status (marker, headline, truncation to GitHub's comment
limit), the label gate, and posting one comment per stack through `gh` (a stub here), with the
job summary as the fallback when the token cannot comment (pull requests from forks).

The real run of the workflow's steps on generated stacks is in tests/test_workflows.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from tools import pr_plan_comment as prc

ROOT = Path(__file__).resolve().parent.parent
DIFF = """\
plan diff, stack 'qa' against base.json: 0 to add, 0 to change, 2 to delete
DATA-AFFECTING (1): deletes or replaces resources that hold data; approve only if intended
  !! DELETE suppliers-table (dmsbus-qa-suppliers) [aws:dynamodb/table:Table]: DynamoDB table ...
delete (2):
  - suppliers-table (dmsbus-qa-suppliers) [aws:dynamodb/table:Table]
  - suppliers [dms-event-bus:index:StreamedTable]
"""


def _code_lines(body: str) -> list[str]:
    """The diff lines of a body: its indented code block, unindented."""
    return [ln[4:] for ln in body.splitlines() if ln.startswith("    ")]


# --- verdict: what the plan's exit status means for the pull request --------------------------


@pytest.mark.parametrize(("mode", "code", "kind"), [
    ("diff", 0, "ok"),
    ("diff", 3, "approval"),
    ("diff", 2, "failed"),
    ("diff", 1, "failed"),
    ("new-stack", 0, "ok"),
    ("new-stack", 2, "failed"),
    ("new-stack", 3, "failed"),  # a plain plan never exits 3: something else ran
    ("base-failed", 0, "approval"),  # no diff to prove nothing is deleted
    ("base-failed", 2, "failed"),
])
def test_the_exit_status_maps_to_a_verdict(mode: str, code: int, kind: str) -> None:
    assert prc.verdict(mode, code).kind == kind


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        prc.verdict("tree", 0)


# --- the body ---------------------------------------------------------------------------------


def test_the_body_starts_with_the_stacks_marker_and_says_what_to_do() -> None:
    body = prc.build_body("qa", DIFF, mode="diff", exit_code=3, label="data-change-approved")
    assert body.splitlines()[0] == prc.marker("qa")
    assert prc.marker("qa") != prc.marker("qa2") and prc.marker("qa") not in prc.marker("qa2")
    assert "DATA-AFFECTING" in body
    assert "`data-change-approved`" in body
    # the diff is verbatim, in a code block nothing in it can close
    assert _code_lines(body) == DIFF.splitlines()
    assert "truncated" not in body


def test_a_clean_diff_and_a_new_stack_say_so() -> None:
    clean = prc.build_body("qa", "plan diff: 1 to add\n", mode="diff", exit_code=0,
                          label="ok-label")
    assert "no data-affecting change" in clean
    assert "ok-label" not in clean
    new = prc.build_body("qa", "tree\n", mode="new-stack", exit_code=0, label="x")
    assert "new stack" in new.lower()
    assert "not on the base" in new


def test_a_failed_plan_says_the_pull_request_breaks_it() -> None:
    body = prc.build_body("qa", "error: tables.orders: bad\n", mode="diff", exit_code=2,
                          label="x")
    assert "plan failed" in body.lower()
    assert "error: tables.orders: bad" in _code_lines(body)


def test_the_body_names_the_commits_and_the_run() -> None:
    body = prc.build_body("qa", DIFF, mode="diff", exit_code=0, label="x",
                          base_sha="a" * 40, head_sha="b" * 40,
                          run_url="https://github.com/o/r/actions/runs/7")
    assert "aaaaaaaaaaaa" in body and "bbbbbbbbbbbb" in body
    assert "https://github.com/o/r/actions/runs/7" in body


def test_a_diff_over_the_limit_keeps_the_data_affecting_head_and_says_it_was_cut() -> None:
    # GIVEN a diff whose data-affecting lines come first and whose tail is 200k characters
    tail = "".join(f"  ~ resource-{i} [aws:x/y:Z]: update in place\n" for i in range(5000))
    text = DIFF + tail
    # WHEN the body is built
    body = prc.build_body("qa", text, mode="diff", exit_code=3, label="x",
                          run_url="https://github.com/o/r/actions/runs/7")
    # THEN it fits GitHub's limit, keeps the head whole, and says what was cut and where to look
    assert len(body) <= prc.LIMIT == 65_536
    kept = _code_lines(body)
    assert kept == text.splitlines()[: len(kept)]
    assert kept[:3] == DIFF.splitlines()[:3]
    note = re.search(r"truncated: (\d+) of (\d+) lines shown", body)
    assert note, body[-500:]
    assert int(note.group(1)) == len(kept) and int(note.group(2)) == len(text.splitlines())
    assert "plan-diff-qa" in body  # the artifact holding the full diff
    assert len(body) > prc.LIMIT - 2_000  # it uses the room it has


@examples(max_examples=60, deadline=None)
@given(text=st.text(st.characters(codec="utf-8"), max_size=3_000),
       limit=st.integers(1_500, 4_000), code=st.sampled_from([0, 2, 3]))
def test_any_text_fits_the_limit_and_stays_in_its_code_block(text: str, limit: int,
                                                             code: int) -> None:
    body = prc.build_body("qa", text, mode="diff", exit_code=code, label="x", limit=limit)
    assert len(body) <= limit
    assert body.splitlines()[0] == prc.marker("qa")
    kept = _code_lines(body)
    lines = text.splitlines()
    if "truncated:" in body:
        # whole lines kept in order, except a first line longer than the room, cut
        if kept:
            assert kept[:-1] == lines[: len(kept) - 1]
            assert lines[len(kept) - 1].startswith(kept[-1])
    else:
        assert [ln.rstrip("\n") for ln in kept] == [ln.rstrip("\n") for ln in lines]
    # every line of the diff is indented: none can end the block, be markup or the marker;
    # the only other lines are the frame the body has without a diff, and the note
    frame = set(prc.build_body("qa", "", mode="diff", exit_code=code, label="x").splitlines())
    for line in body.splitlines():
        assert line.startswith("    ") or not line.strip() or line in frame \
            or "truncated:" in line, line


# --- the label gate ---------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "code", "labels", "status"), [
    ("diff", 0, [], 0),
    ("diff", 3, [], 1),
    ("diff", 3, ["bug", "data-change-approved"], 0),
    ("diff", 3, ["Data-Change-Approved"], 1),  # labels are matched exactly
    ("diff", 2, ["data-change-approved"], 1),  # approval never excuses a broken plan
    ("base-failed", 0, [], 1),
    ("base-failed", 0, ["data-change-approved"], 0),
    ("new-stack", 0, [], 0),
])
def test_the_gate_needs_the_label_only_for_data_affecting_changes(
    mode: str, code: int, labels: list[str], status: int
) -> None:
    got, line = prc.gate(prc.verdict(mode, code), labels, "data-change-approved", "qa")
    assert got == status
    assert "\n" not in line and "qa" in line
    if status:
        assert line.startswith("::error::")
    if mode == "diff" and code == 3 and not status:
        assert "approved" in line


@pytest.mark.parametrize(("mode", "code"), [("diff", 3), ("base-failed", 0)])
def test_a_push_after_the_approval_needs_it_again(mode: str, code: int) -> None:
    # GIVEN a data-affecting change carrying the approval label
    v = prc.verdict(mode, code)
    labels = ["data-change-approved"]
    # WHEN new commits are pushed (the `synchronize` run)
    got, line = prc.gate(v, labels, "data-change-approved", "qa", action="synchronize")
    # THEN the label given for the earlier commit does not approve them
    assert got == 1 and line.startswith("::error::") and "\n" not in line
    assert "new commits since the approval: re-add the label after review" in line
    # AND the `labeled` run (a maintainer re-adds it on the new head), or any other, passes
    for action in ("labeled", "opened", "reopened", "unlabeled", ""):
        assert prc.gate(v, labels, "data-change-approved", "qa", action=action)[0] == 0
    # AND a push that changes nothing data-affecting needs no label
    ok = prc.gate(prc.verdict("diff", 0), [], "data-change-approved", "qa", action="synchronize")
    assert ok[0] == 0


# --- the command line, with a stub gh ---------------------------------------------------------

STUB_GH = r"""#!/usr/bin/env bash
# gh api as the comment step calls it: canned answers from $FAKE_GH, every call logged.
printf '%s\n' "$*" >> "$FAKE_GH/calls"
if [ -f "$FAKE_GH/fail" ]; then
  echo "gh: Resource not accessible by integration (HTTP 403)" >&2; exit 1
fi
case "$*" in
  *"--method DELETE"*) echo '[]' ;;
  *"--method POST"*|*"--method PATCH"*) cat > "$FAKE_GH/sent-$(wc -l < "$FAKE_GH/calls")"
                                         echo '{}' ;;
  *"/comments"*) cat "$FAKE_GH/comment-ids" 2>/dev/null || true ;;
  *"/pulls/"*) cat "$FAKE_GH/labels" 2>/dev/null || true ;;
  *) echo "unexpected gh call: $*" >&2; exit 3 ;;
esac
"""


@pytest.fixture
def gh(tmp_path: Path) -> Path:
    fake = tmp_path / "gh"
    fake.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(STUB_GH)
    (bin_dir / "gh").chmod(0o755)
    return fake


def cli(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GH": str(tmp_path / "gh"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GH_TOKEN": "token-for-the-stub",
        **env,
    }
    return subprocess.run([sys.executable, "-m", "tools.pr_plan_comment", *argv], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=60, check=False)


def _sent(fake: Path) -> list[tuple[str, dict[str, str]]]:
    calls = (fake / "calls").read_text().splitlines()
    return [(calls[int(p.name.split("-")[1]) - 1], json.loads(p.read_text()))
            for p in sorted(fake.glob("sent-*"))]


def _post(tmp_path: Path, body: str = "") -> subprocess.CompletedProcess[str]:
    path = tmp_path / "body.md"
    path.write_text(body or prc.build_body("qa", DIFF, mode="diff", exit_code=3, label="x"))
    return cli(tmp_path, "post", "--stack", "qa", "--body", str(path), "--pr", "17",
               "--repo", "acme/bus")


def test_the_first_post_creates_the_comment(tmp_path: Path, gh: Path) -> None:
    proc = _post(tmp_path)
    assert proc.returncode == 0, proc.stderr
    ((call, sent),) = _sent(gh)
    assert "--method POST repos/acme/bus/issues/17/comments" in call
    assert sent["body"].startswith(prc.marker("qa"))
    # looked for its own earlier comment first: a bot comment starting with the marker
    listing = (gh / "calls").read_text().splitlines()[0]
    assert "repos/acme/bus/issues/17/comments" in listing and "--paginate" in listing
    assert "github-actions[bot]" in listing and json.dumps(prc.marker("qa")) in listing
    # the summary shows the body too
    assert prc.marker("qa") in (tmp_path / "summary.md").read_text()


def test_a_later_post_edits_the_same_comment(tmp_path: Path, gh: Path) -> None:
    (gh / "comment-ids").write_text("555\n")
    proc = _post(tmp_path)
    assert proc.returncode == 0, proc.stderr
    ((call, sent),) = _sent(gh)
    assert "--method PATCH repos/acme/bus/issues/comments/555" in call
    assert "DELETE suppliers-table" in sent["body"]


def test_a_read_only_token_degrades_to_the_job_summary(tmp_path: Path, gh: Path) -> None:
    # GIVEN a token that cannot comment (a pull request from a fork)
    (gh / "fail").write_text("")
    # WHEN the comment is posted
    proc = _post(tmp_path)
    # THEN the step passes with a warning, and the summary holds the diff
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("::warning::")]
    assert len(warnings) == 1 and "job summary" in warnings[0] and "403" in warnings[0]
    assert "DELETE suppliers-table" in (tmp_path / "summary.md").read_text()


def test_the_gate_reads_the_labels_the_pull_request_has_now(tmp_path: Path, gh: Path) -> None:
    args = ("gate", "--stack", "qa", "--mode", "diff", "--exit-code", "3",
            "--label", "data-change-approved", "--pr", "17", "--repo", "acme/bus")
    # the event's labels (a re-run keeps the old event) are overruled by the live ones
    (gh / "labels").write_text("bug\n")
    proc = cli(tmp_path, *args, PR_LABELS='["data-change-approved"]')
    assert proc.returncode == 1
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("::error::")], proc.stderr
    assert "data-change-approved" in proc.stderr
    assert "repos/acme/bus/pulls/17" in (gh / "calls").read_text()
    (gh / "labels").write_text("bug\ndata-change-approved\n")
    assert cli(tmp_path, *args, PR_LABELS="[]").returncode == 0
    # the API unreachable: the event's labels decide
    (gh / "fail").write_text("")
    assert cli(tmp_path, *args, PR_LABELS='["data-change-approved"]').returncode == 0
    assert cli(tmp_path, *args, PR_LABELS="[]").returncode == 1


GATE = ("gate", "--stack", "qa", "--mode", "diff", "--exit-code", "3",
        "--label", "data-change-approved", "--pr", "17", "--repo", "acme/bus")


def test_a_synchronize_run_removes_the_stale_approval_and_fails(tmp_path: Path, gh: Path
                                                                 ) -> None:
    # GIVEN a pull request approved with the label
    (gh / "labels").write_text("bug\ndata-change-approved\n")
    # WHEN a push runs the gate (action synchronize)
    proc = cli(tmp_path, *GATE, "--event-action", "synchronize",
               PR_LABELS='["data-change-approved"]')
    # THEN it fails with one line saying the approval must be given again
    assert proc.returncode == 1, proc.stderr
    (error,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("::error::")]
    assert "new commits since the approval: re-add the label after review" in error
    # AND it removed the label, so that no later run passes on the stale approval
    calls = (gh / "calls").read_text()
    assert "--method DELETE repos/acme/bus/issues/17/labels/data-change-approved" in calls
    # WHEN a maintainer re-adds it after review (action labeled)
    proc = cli(tmp_path, *GATE, "--event-action", "labeled", PR_LABELS="[]")
    # THEN the gate passes
    assert proc.returncode == 0, proc.stderr


def test_a_token_that_cannot_remove_the_label_still_fails_the_push(tmp_path: Path, gh: Path
                                                                    ) -> None:
    # GIVEN a read-only token (a fork): the labels come from the event
    (gh / "fail").write_text("")
    proc = cli(tmp_path, *GATE, "--event-action", "synchronize",
               PR_LABELS='["data-change-approved"]')
    assert proc.returncode == 1, proc.stderr
    (error,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("::error::")]
    assert "re-add the label after review" in error and "could not remove" in error


@pytest.mark.parametrize("argv", [
    ("body", "--stack", "qa", "--mode", "diff", "--exit-code", "x", "--diff", "f"),
    ("body", "--stack", "qa", "--mode", "tree", "--exit-code", "0", "--diff", "f"),
    ("body", "--stack", "qa", "--mode", "diff", "--exit-code", "0", "--diff", "/nope/diff"),
    ("post", "--stack", "qa", "--body", "/nope/body.md", "--pr", "1", "--repo", "o/r"),
    ("gate", "--stack", "qa", "--mode", "diff", "--exit-code", "-1", "--pr", "1",
     "--repo", "o/r"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, gh: Path, argv: tuple[str, ...],
                                          ) -> None:
    proc = cli(tmp_path, *argv, PR_LABELS="not json")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_body_command_writes_the_body_of_the_diff_file(tmp_path: Path, gh: Path) -> None:
    diff = tmp_path / "qa.diff"
    diff.write_text(DIFF)
    proc = cli(tmp_path, "body", "--stack", "qa", "--mode", "diff", "--exit-code", "3",
               "--diff", str(diff), "--label", "data-change-approved")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == prc.build_body("qa", DIFF, mode="diff", exit_code=3,
                                         label="data-change-approved")
