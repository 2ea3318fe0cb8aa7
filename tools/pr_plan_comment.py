"""The plan diff of a pull request as one comment per stack, and the gate on data-affecting
changes. Run by `.github/workflows/pr.yml` (job `plan-diff`) after
`.github/scripts/plan-diff.sh` has planned the base commit and the pull request:

    python -m tools.pr_plan_comment body --stack S --mode M --exit-code N --diff FILE > body.md
    python -m tools.pr_plan_comment post --stack S --body body.md --pr N --repo OWNER/NAME
    python -m tools.pr_plan_comment gate --stack S --mode M --exit-code N --pr N --repo OWNER/NAME \
        --event-action ACTION

`--mode`: `diff` (the exit status is `tools.plan --against`'s: 0 nothing data-affecting, 3
data-affecting, 2 bad input), `new-stack` (no stack file on the base: the plain plan),
`base-failed` (the base could not be planned: the plain plan, and nothing proves that no data
is deleted, so it needs the approval label too).

`post` edits the comment of the github-actions bot that starts with the stack's marker, or
creates it (`gh api`, GH_TOKEN); the body always goes to the job summary as well. A token that
cannot comment (a pull request from a fork gets a read-only one) is a warning, not a failure.

`gate` exits 1 with one `::error::` line when the change is data-affecting and the pull
request does not carry the approval label (read live through the API, so re-running the job
after labelling works; the event's labels in PR_LABELS when the API cannot be read), or when
the plan failed. The approval binds to the commits it was given for: on a `synchronize` run (new
commits pushed) the gate ignores the label, removes it when the token may, and fails until a
maintainer adds it again after review (the `labeled` run on the new head then passes).
docs/plan.md ("In pull requests").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from tools.cli import OneLineParser, non_negative_int

#: GitHub's limit on a comment body, in characters.
LIMIT = 65_536
DEFAULT_LABEL = "data-change-approved"
#: The author of comments made with the workflow's GITHUB_TOKEN.
BOT = "github-actions[bot]"
MODES = ("diff", "new-stack", "base-failed")
EXIT_DATA_AFFECTING = 3  # tools.plan_diff.EXIT_DATA_AFFECTING (not imported: no Pulumi needed)
INDENT = "    "


def marker(stack: str) -> str:
    """The hidden first line that finds the stack's comment again."""
    return f"<!-- dms-event-bus plan diff: stack {stack} -->"


@dataclass(frozen=True)
class Verdict:
    kind: Literal["ok", "approval", "failed"]
    headline: str


def verdict(mode: str, exit_code: int) -> Verdict:
    """What the plan's exit status in `mode` means for the pull request."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
    if mode == "diff":
        if exit_code == 0:
            return Verdict("ok", "no data-affecting change (adds and in-place updates only)")
        if exit_code == EXIT_DATA_AFFECTING:
            return Verdict(
                "approval",
                "**DATA-AFFECTING**: deletes, replaces or updates resources that hold data so "
                "that data is lost",
            )
    elif exit_code == 0:
        if mode == "new-stack":
            return Verdict(
                "ok",
                "a new stack: its stack file is not on the base commit, so this is its whole plan",
            )
        return Verdict(
            "approval",
            "**the base commit could not be planned**: no diff, so "
            "nothing shows that no data is deleted; the plan of this pull request "
            "follows",
        )
    return Verdict(
        "failed",
        f"**plan failed** (exit status {exit_code}): this pull request "
        "breaks the offline plan of the stack",
    )


def _approval_note(v: Verdict, label: str) -> str:
    if v.kind != "approval":
        return ""
    return (
        f"\n\nA maintainer approves it by adding the label `{label}` to the pull request "
        "(the check then runs again); until then the `plan diff` check fails."
    )


def build_body(
    stack: str,
    text: str,
    *,
    mode: str,
    exit_code: int,
    label: str,
    base_sha: str = "",
    head_sha: str = "",
    run_url: str = "",
    limit: int = LIMIT,
) -> str:
    """The comment: marker, headline, then the diff as an indented code block (nothing in the
    text can end it or render as markup), cut at whole lines to fit `limit` characters with a
    note saying so. The diff lists data-affecting lines first, so a cut keeps them."""
    v = verdict(mode, exit_code)
    commits = ""
    if base_sha or head_sha:
        commits = f" (`{base_sha[:12] or '?'}` → `{head_sha[:12] or '?'}`)"
    if run_url:
        commits += f", [run]({run_url})"
    head = (
        f"{marker(stack)}\n### Offline plan of stack `{stack}`{commits}\n\n{v.headline}"
        f"{_approval_note(v, label)}\n\n"
    )
    lines = text.splitlines()
    block = [INDENT + ln for ln in lines]
    full = head + "\n".join(block) + "\n"
    if len(full) <= limit:
        return full
    where = f" ({run_url})" if run_url else ""
    total = len(lines)

    def note(shown: int) -> str:
        return (
            f"\n_truncated: {shown} of {total} lines shown (GitHub's limit is {LIMIT} "
            f"characters); the full diff is the `plan-diff-{stack}` artifact of the "
            f"run{where}._\n"
        )

    room = limit - len(head) - len(note(total))
    kept: list[str] = []
    used = 0
    for line in block:
        if used + len(line) + 1 > room:
            break
        kept.append(line)
        used += len(line) + 1
    if not kept and block and room > len(INDENT) + 1:
        kept = [block[0][: room - 1]]  # a first line longer than the room: its start
    return head + "".join(ln + "\n" for ln in kept) + note(len(kept))


#: The pull_request action of a push to the pull request's branch.
PUSH = "synchronize"


def gate(
    v: Verdict, labels: list[str], label: str, stack: str, *, action: str = "", note: str = ""
) -> tuple[int, str]:
    """(exit status, one line for the log) of the gate. `action` is the pull_request event's:
    on a push (`synchronize`) the label, given for earlier commits, approves nothing. `note`
    is added to that refusal (what became of the stale label)."""
    if v.kind == "ok":
        return 0, f"::notice::stack {stack}: no data-affecting change"
    if v.kind == "failed":
        return 1, (
            f"::error::stack {stack}: the offline plan failed; the comment and the job "
            "log show the error to fix"
        )
    if action == PUSH and label in labels:
        return 1, (
            f"::error::stack {stack}: the change deletes or replaces data and the label "
            f"{label!r} was given before the last push: new commits since the approval: "
            f"re-add the label after review{note}"
        )
    if label in labels:
        return 0, (
            f"::notice::stack {stack}: data-affecting change approved by the label {label!r}"
        )
    return 1, (
        f"::error::stack {stack}: the plan deletes, replaces or updates resources that hold data "
        f"(or could not be compared); add the label {label!r} to the pull request to "
        "approve it"
    )


# -- GitHub API through gh ----------------------------------------------------------------


class GhError(RuntimeError):
    pass


def _gh(*args: str, stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(
            ["gh", *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GhError(f"gh: {exc.__class__.__name__}: {exc}") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise GhError(lines[-1])
    return proc.stdout


def post(stack: str, body: str, pr: int, repo: str, author: str = BOT) -> str:
    """Edit the stack's comment, or create it; returns what was done."""
    query = (
        f".[] | select(.user.login == {json.dumps(author)}) | "
        f'select((.body // "") | startswith({json.dumps(marker(stack))})) | .id'
    )
    found = _gh("api", "--paginate", f"repos/{repo}/issues/{pr}/comments", "--jq", query).split()
    payload = json.dumps({"body": body})
    if found:
        _gh(
            "api",
            "--method",
            "PATCH",
            f"repos/{repo}/issues/comments/{found[0]}",
            "--input",
            "-",
            stdin=payload,
        )
        return f"updated comment {found[0]}"
    _gh(
        "api",
        "--method",
        "POST",
        f"repos/{repo}/issues/{pr}/comments",
        "--input",
        "-",
        stdin=payload,
    )
    return "created the comment"


def live_labels(pr: int, repo: str) -> list[str]:
    return _gh("api", f"repos/{repo}/pulls/{pr}", "--jq", ".labels[].name").splitlines()


def remove_label(pr: int, repo: str, label: str) -> None:
    _gh(
        "api",
        "--method",
        "DELETE",
        f"repos/{repo}/issues/{pr}/labels/{quote(label, safe='')}",
        "--silent",
    )


# -- command line --------------------------------------------------------------------------


def _parser() -> OneLineParser:
    parser = OneLineParser(
        prog="python -m tools.pr_plan_comment", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, outcome: bool) -> None:
        p.add_argument("--stack", required=True)
        if outcome:
            p.add_argument("--mode", required=True, choices=MODES)
            p.add_argument("--exit-code", required=True, type=non_negative_int)
            p.add_argument(
                "--label",
                default=DEFAULT_LABEL,
                help=f"the approval label (default {DEFAULT_LABEL})",
            )

    body = sub.add_parser("body", help="print the comment body")
    common(body, outcome=True)
    body.add_argument("--diff", required=True, type=Path, help="the plan or diff text")
    body.add_argument("--base-sha", default="")
    body.add_argument("--head-sha", default="")
    body.add_argument("--run-url", default="")
    for name in ("post", "gate"):
        p = sub.add_parser(name, help=f"{name} (GH_TOKEN)")
        common(p, outcome=name == "gate")
        if name == "post":
            p.add_argument("--body", required=True, type=Path)
        else:
            p.add_argument(
                "--event-action",
                default="",
                help="the pull_request event's action; on synchronize the label approves nothing",
            )
        p.add_argument("--pr", required=True, type=non_negative_int)
        p.add_argument("--repo", required=True)
    return parser


def _read(parser: OneLineParser, path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        parser.error(f"{what} {path}: cannot read it ({exc.strerror or exc})")


def _summary(text: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "body":
        text = _read(parser, args.diff, "diff")
        sys.stdout.write(
            build_body(
                args.stack,
                text,
                mode=args.mode,
                exit_code=args.exit_code,
                label=args.label,
                base_sha=args.base_sha,
                head_sha=args.head_sha,
                run_url=args.run_url,
            )
        )
        return 0
    if args.command == "post":
        body = _read(parser, args.body, "comment body")
        _summary(body)
        try:
            print(f"stack {args.stack}: {post(args.stack, body, args.pr, args.repo)}")
        except GhError as exc:
            print(
                f"::warning::stack {args.stack}: could not comment on the pull request "
                f"({exc}); a pull request from a fork gets a read-only token: the plan diff "
                "is in the job summary",
                file=sys.stderr,
            )
        return 0
    v = verdict(args.mode, args.exit_code)
    labels: list[str] = []
    if v.kind == "approval":
        try:
            labels = live_labels(args.pr, args.repo)
        except GhError as exc:
            try:
                event = json.loads(os.environ.get("PR_LABELS") or "[]")
            except json.JSONDecodeError:
                parser.error("PR_LABELS: not a JSON list of label names")
            if not isinstance(event, list):
                parser.error("PR_LABELS: not a JSON list of label names")
            labels = [str(name) for name in event]
            print(f"labels from the event (the API could not be read: {exc})", file=sys.stderr)
    note = ""
    if v.kind == "approval" and args.event_action == PUSH and args.label in labels:
        try:
            remove_label(args.pr, args.repo, args.label)
            note = " (the label was removed)"
        except GhError as exc:
            note = f" (could not remove the label: {exc})"
    status, line = gate(v, labels, args.label, args.stack, action=args.event_action, note=note)
    print(line, file=sys.stderr if status else sys.stdout)
    return status


if __name__ == "__main__":
    sys.exit(main())
