"""The environments CI deploys, in order: `environments.yaml` at the repository root.

    python -m tools.environments matrix [--file environments.yaml]
        the deploy matrix (one JSON line): deploy.yml deploys these stacks in this order
    python -m tools.environments adoption [--environment NAME] [--deploying FILE] [--file ...]
        the adoption matrix of adopt.yml: every environment marked `scheduled_adoption: true`,
        or the one a dispatch names; stacks an unfinished deploy run will still apply are left
        to it (FILE: the `gh run view --json jobs` objects of the unfinished deploy runs)
    python -m tools.environments check-order --after STACK --jobs FILE
        exit 0 when STACK's deploy job succeeded in this run (FILE: the run's jobs pages from
        `gh api --paginate --slurp`); one `::error::` line and exit 1 otherwise
    python -m tools.environments deployed-commit --stack STACK --history FILE
        the commit of the stack's last successful update (FILE: `pulumi stack history --json`)

The file is the one place a user edits to add, remove or reorder environments:

    environments:
      - stack: dev                  # Pulumi.dev.yaml (its resources are dmsbus-dev-*)
        github_environment: dev     # the deploy job's GitHub environment: approval gate, variables
        scheduled_adoption: true    # adopt.yml runs `pulumi up` for it unattended (default false)
        adoption_environment: dev   # GitHub environment of that run (default github_environment;
                                    # must have no required reviewers to run without a human)

Bad input is one line naming the file, the key and the fix; the commands exit 2 on it.
Only the standard library and PyYAML are needed (CI runs it before `pulumi install`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.cli import OneLineParser

ROOT = Path(__file__).resolve().parent.parent
FILE_NAME = "environments.yaml"
#: The stack name is the environment's name in every physical name (settings.base.EnvName).
STACK_PATTERN = r"^[a-z][a-z0-9-]{0,15}$"
#: GitHub environment names: letters, digits, space, `.`, `_`, `-`; at most 255 characters.
GITHUB_ENVIRONMENT_PATTERN = r"^[A-Za-z0-9._-](?:[A-Za-z0-9 ._-]{0,253}[A-Za-z0-9._-])?$"
KEYS = ("stack", "github_environment", "scheduled_adoption", "adoption_environment")
#: `pulumi up` messages of deploy.yml and adopt.yml: `deploy <sha> (run <id>)`.
_MESSAGE_COMMIT = re.compile(r"^(?:deploy|adopt) ([0-9a-f]{40})\b")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class EnvironmentsError(ValueError):
    """environments.yaml (or a request against it) that CI cannot act on: one line."""


@dataclass(frozen=True)
class Environment:
    """One environment of environments.yaml."""

    stack: str
    github_environment: str
    scheduled_adoption: bool
    adoption_environment: str


def deploy_job_name(stack: str) -> str:
    """The name deploy.yml gives the job that deploys `stack` (`pulumi up ${{ matrix.stack }}`)."""
    return f"pulumi up {stack}"


# --- loading ----------------------------------------------------------------------------------


def load_environments(path: Path | None = None) -> tuple[Environment, ...]:
    """The environments of `path` (default: the repository's), checked against the stack files
    beside it. EnvironmentsError, one line, for anything CI could not act on."""
    path = path or ROOT / FILE_NAME
    if not path.is_file():
        raise EnvironmentsError(
            f"{path.name}: not found: list the stacks CI deploys, in order, as "
            "`environments: [{stack: <name>, github_environment: <name>}]` (docs/runbook.md)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EnvironmentsError(f"{path.name}: not UTF-8 text") from None
    stacks = sorted(
        p.name[len("Pulumi.") : -len(".yaml")] for p in path.parent.glob("Pulumi.*.yaml")
    )
    return parse_environments(text, path.name, stacks)


def parse_environments(text: str, name: str, stacks: Iterable[str]) -> tuple[Environment, ...]:
    """The environments of a file's text; `stacks`: the stack files that exist."""
    doc = _yaml(text, name)
    if not isinstance(doc, dict) or set(doc) != {"environments"}:
        raise EnvironmentsError(
            f"{name}: expected a mapping with the key 'environments' only, "
            f"holding the list of environments in deploy order"
        )
    items = doc["environments"]
    if not isinstance(items, list) or not items:
        raise EnvironmentsError(
            f"{name}: environments: expected at least one environment "
            "(a list of mappings with stack and github_environment)"
        )
    known = list(stacks)
    found: list[Environment] = []
    for index, item in enumerate(items):
        env = _environment(item, f"{name}: environments[{index}]", known)
        if env.stack in {e.stack for e in found}:
            raise EnvironmentsError(
                f"{name}: environments[{index}].stack: '{env.stack}' is "
                "listed twice (each stack deploys once per run)"
            )
        found.append(env)
    return tuple(found)


def _environment(item: Any, where: str, stacks: Sequence[str]) -> Environment:
    if not isinstance(item, dict):
        raise EnvironmentsError(
            f"{where}: expected a mapping with stack and github_environment, found {item!r}"
        )
    for key in item:
        if key not in KEYS:
            raise EnvironmentsError(f"{where}.{key}: no such key (keys: {', '.join(KEYS)})")
    for key in ("stack", "github_environment"):
        if key not in item:
            raise EnvironmentsError(f"{where}.{key}: expected a value (the key is required)")
    stack = item["stack"]
    if not isinstance(stack, str) or not re.fullmatch(STACK_PATTERN, stack):
        raise EnvironmentsError(
            f"{where}.stack: expected a stack name matching {STACK_PATTERN} "
            f"(the environment's name in every resource name), found {stack!r}"
        )
    if stack not in stacks:
        listed = ", ".join(stacks) or "none"
        raise EnvironmentsError(
            f"{where}.stack: no stack file Pulumi.{stack}.yaml (stack files: {listed})"
        )
    gate = _github_environment(item["github_environment"], f"{where}.github_environment")
    scheduled = item.get("scheduled_adoption", False)
    if not isinstance(scheduled, bool):
        raise EnvironmentsError(
            f"{where}.scheduled_adoption: expected true or false, found {scheduled!r}"
        )
    adoption = item.get("adoption_environment", gate)
    adoption = _github_environment(adoption, f"{where}.adoption_environment")
    return Environment(stack, gate, scheduled, adoption)


def _github_environment(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(GITHUB_ENVIRONMENT_PATTERN, value):
        raise EnvironmentsError(
            f"{where}: expected a GitHub environment name (letters, digits, "
            f"space, '.', '_', '-'; as in Settings > Environments), "
            f"found {value!r}"
        )
    return value


def _yaml(text: str, name: str) -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: Loader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)
            if key in seen:
                mark = key_node.start_mark
                raise EnvironmentsError(
                    f"{name}:{mark.line + 1}:{mark.column + 1}: duplicate key {key!r} (keep one)"
                )
            seen.add(key)
        return dict(loader.construct_pairs(node))

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise EnvironmentsError(
            f"{where}: not YAML: {' '.join(str(exc.problem).split())}"
        ) from None
    except yaml.YAMLError as exc:
        raise EnvironmentsError(f"{name}: not YAML: {' '.join(str(exc).split())}") from None


# --- what the workflows read ------------------------------------------------------------------


def deploy_matrix(environments: Sequence[Environment]) -> dict[str, list[dict[str, str]]]:
    """deploy.yml's matrix: the stacks in order, each naming the stack deployed before it."""
    return {
        "include": [
            {
                "stack": e.stack,
                "github_environment": e.github_environment,
                "after": environments[i - 1].stack if i else "",
            }
            for i, e in enumerate(environments)
        ]
    }


def adoption_matrix(
    environments: Sequence[Environment],
    requested: str | None,
    deploying: Iterable[Mapping[str, Any]] = (),
) -> dict[str, list[dict[str, str]]]:
    """adopt.yml's matrix. `requested`: None for every marked environment (the schedule), else
    the environment a dispatch names, which must be listed and marked. `deploying`: the
    unfinished deploy runs (`{"jobs": [{"name", "status"}]}`); a stack such a run has not
    finished yet is left out, its deploy adopts the tables (and an adoption queued in the
    stack's concurrency group would cancel a deploy waiting there)."""
    if requested is None:
        chosen = [e for e in environments if e.scheduled_adoption]
    else:
        shown = " ".join(str(requested).split())
        if not shown:
            raise EnvironmentsError(
                "the dispatch names no environment: send "
                '{"environment": "<stack>"} (environments.yaml lists them)'
            )
        match = [e for e in environments if e.stack == requested]
        if not match:
            listed = ", ".join(e.stack for e in environments)
            raise EnvironmentsError(
                f"unknown environment '{shown[:64]}' (environments.yaml: {listed})"
            )
        if not match[0].scheduled_adoption:
            raise EnvironmentsError(
                f"environment '{requested}' is not marked scheduled_adoption: "
                "true in environments.yaml: no unattended adoption for it"
            )
        chosen = match
    busy = covered_by_deploys(chosen, deploying)
    return {
        "include": [
            {"stack": e.stack, "adoption_environment": e.adoption_environment}
            for e in chosen
            if e.stack not in busy
        ]
    }


def covered_by_deploys(
    environments: Iterable[Environment], deploying: Iterable[Mapping[str, Any]]
) -> set[str]:
    """The stacks some unfinished deploy run has not finished deploying (it will adopt)."""
    covered: set[str] = set()
    for run in deploying:
        done = {j.get("name") for j in run.get("jobs") or [] if j.get("status") == "completed"}
        covered |= {e.stack for e in environments if deploy_job_name(e.stack) not in done}
    return covered


def predecessor_succeeded(pages: Iterable[Mapping[str, Any]], after: str) -> bool:
    """Whether the deploy job of stack `after` concluded `success` in the run whose jobs (all
    attempts, every page of `GET .../runs/{id}/jobs?filter=all`) are `pages`. Only its latest
    attempt counts (highest `run_attempt`, then `id`): after "re-run all jobs", an earlier
    attempt's success says nothing about what this attempt deployed."""
    name = deploy_job_name(after)

    def rank(job: Mapping[str, Any]) -> tuple[int, int]:
        def number(key: str) -> int:
            value = job.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        return number("run_attempt"), number("id")

    mine = [job for page in pages for job in page.get("jobs") or [] if job.get("name") == name]
    return bool(mine) and max(mine, key=rank).get("conclusion") == "success"


def deployed_commit(history: Sequence[Mapping[str, Any]], stack: str) -> str:
    """The commit of the stack's last update if it succeeded (`pulumi stack history --json`,
    newest first; refreshes do not count). Adoption runs exactly that commit again, so it
    changes nothing but the tables it adopts; anything else refuses with one line."""
    changes = [u for u in history if u.get("kind") not in ("refresh", "preview")]
    if not changes:
        raise EnvironmentsError(f"stack {stack} has no update yet: deploy it first (deploy.yml)")
    last = changes[0]
    if last.get("kind") != "update" or last.get("result") != "succeeded":
        said = " ".join(str(last.get("message") or "").split())[:80]
        raise EnvironmentsError(
            f"the last update of stack {stack} did not succeed ({last.get('kind')} "
            f"{last.get('result')}: {said}): adoption waits for a successful deploy"
        )
    found = _MESSAGE_COMMIT.match(str(last.get("message") or ""))
    if found:
        return found.group(1)
    environment = last.get("environment") or {}
    head = str(environment.get("git.head") or "")
    if _COMMIT.match(head):
        if str(environment.get("git.dirty") or "").lower() == "true":
            raise EnvironmentsError(
                f"the last update of stack {stack} was made from a working tree with "
                f"uncommitted changes (git.dirty, head {head[:12]}): re-running the commit "
                "would undo them; commit them and deploy through deploy.yml"
            )
        return head
    raise EnvironmentsError(
        f"the last update of stack {stack} records no commit (no "
        "`deploy <sha>` message, no git.head): deploy it through deploy.yml"
    )


# --- the CLI ----------------------------------------------------------------------------------


def _json_documents(text: str) -> Iterator[Any]:
    """Every JSON value of `text`, concatenated or one per line (gh prints either)."""
    decoder = json.JSONDecoder()
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return
        value, at = decoder.raw_decode(text, at)
        yield value


def _read_json(path: str, what: str) -> list[Any]:
    try:
        values = list(_json_documents(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise EnvironmentsError(f"{what} {path}: {' '.join(str(exc).split())}") from None
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    if not all(isinstance(v, dict) for v in flat):
        raise EnvironmentsError(f"{what} {path}: expected JSON objects")
    return flat


def main(argv: list[str] | None = None) -> int:
    prog = "python -m tools.environments"
    parser = OneLineParser(prog=prog, description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("matrix", "adoption"):
        sub = commands.add_parser(command)
        sub.error = parser.error  # type: ignore[method-assign]
        sub.add_argument("--file", type=Path, default=ROOT / FILE_NAME)
        if command == "adoption":
            sub.add_argument("--environment")
            sub.add_argument("--deploying")
    order = commands.add_parser("check-order")
    order.error = parser.error  # type: ignore[method-assign]
    order.add_argument("--after", required=True)
    order.add_argument("--jobs", required=True)
    commit = commands.add_parser("deployed-commit")
    commit.error = parser.error  # type: ignore[method-assign]
    commit.add_argument("--stack", required=True)
    commit.add_argument("--history", required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "check-order":
            if args.after and not predecessor_succeeded(_read_json(args.jobs, "jobs"), args.after):
                print(
                    f"::error::{deploy_job_name(args.after)} has not succeeded in this run: "
                    "the next stack does not deploy out of order (environments.yaml)",
                    file=sys.stderr,
                )
                return 1
            return 0
        if args.command == "deployed-commit":
            print(deployed_commit(_read_json(args.history, "history"), args.stack))
            return 0
        environments = load_environments(args.file)
        if args.command == "matrix":
            print(json.dumps(deploy_matrix(environments), separators=(",", ":")))
            return 0
        deploying = _read_json(args.deploying, "deploy runs") if args.deploying else []
        matrix = adoption_matrix(environments, args.environment, deploying)
        chosen = {e["stack"] for e in matrix["include"]}
        asked = [
            e
            for e in environments
            if (e.stack == args.environment if args.environment else e.scheduled_adoption)
        ]
        for env in asked:
            if env.stack not in chosen:
                print(
                    f"::notice::{env.stack}: a deploy run in progress applies it (and adopts "
                    "its tables); no separate adoption",
                    file=sys.stderr,
                )
        print(json.dumps(matrix, separators=(",", ":")))
        return 0
    except EnvironmentsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
