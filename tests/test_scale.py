"""Stacks of many tables plan clean, and nothing AWS caps grows with the table count.

Generated stack files (never the example stacks) with `SCALE` tables: declared, adopted
(discovery finds DMS-created tables in the account: the `get_tables` invoke is answered here)
and mixed (half of each), of `SCALE` = 1,000 tables each (`python -m bench.bench_scale --plan
1000` runs the same check and times it). When policies and environments grew per table, the
fan-in's inline policy passed 10,240 characters at about 60 tables and its environment 4 KB at
about 150.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from dms_event_bus.settings.aws_limits import Context, evaluate, lambda_env_size, policy_size
from tools import mockrun

#: tables per generated stack: the 1,000 of the scale goal (about 12 s per split, quiet machine)
SCALE = 1000
SMALL = 10
PREFIX = "dmsbus-gen-"
GET_TABLES = "aws:dynamodb/getTables:getTables"
ADOPTED_TYPE = "pulumi-python:dynamic/dms:AdoptedTable"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
MANAGED_POLICY = "aws:iam/policy:Policy"
FUNCTION = "aws:lambda/function:Function"

#: A DMS source for generated stacks (values made up here, not read from a stack file).
GENERATED_DMS: dict[str, Any] = {
    "capacity": {"mode": "serverless", "min_capacity_units": 1, "max_capacity_units": 4},
    "network": {"vpc_id": "vpc-0a1b2c3d4e5f60718",
                "subnet_ids": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                "source_cidrs": ["10.20.0.0/24"]},
    "account_roles": "existing",
    "source": {"engine": "postgres", "server": "db.example.com", "port": 5432,
               "database": "erp", "ssl_mode": "require",
               "secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gen-a1B2c3"},
    "default_schema": "sales",
}

#: how a generated stack's tables reach it: (declared, adopted) out of `tables` (a stack
#: file lists at least one table: "adopted" declares one, DMS created all the others)
SPLITS = {
    "declared": lambda n: (n, 0),
    "adopted": lambda n: (1, n - 1),
    "mixed": lambda n: (n // 2, n - n // 2),
}


@contextlib.contextmanager
def adopted_table_outputs() -> Iterator[None]:
    """The mocks answer the AdoptedTable dynamic resource as the provider's `create` does
    (table and stream ARNs of the named table)."""
    original = mockrun.RecordingMocks.new_resource

    def new_resource(self: Any, args: Any) -> tuple[str | None, dict]:
        resource_id, outputs = original(self, args)
        if args.typ == ADOPTED_TYPE:
            name = args.inputs["table_name"]
            arn = f"arn:aws:dynamodb:{self.region}:{mockrun.ACCOUNT}:table/{name}"
            outputs.update(table_arn=arn, stream_arn=f"{arn}/stream/2026-01-01T00:00:00.000",
                           stream_label="2026-01-01T00:00:00.000", key_names=["id"])
            resource_id = name
        return resource_id, outputs

    with mock.patch.object(mockrun.RecordingMocks, "new_resource", new_resource):
        yield


def plan_generated(folder: Path, tables: int, split: str) -> mockrun.Plan:
    """Plan a generated stack `gen` of `tables` tables reaching it as `split` says, fed by
    DMS; discovery finds the adopted ones (and a DMS control table, which it skips)."""
    declared, adopted = SPLITS[split](tables)
    config: dict[str, Any] = {
        "aws:region": "eu-west-1",
        "dms-event-bus:tables": {
            f"table_{i:04d}": {"partition_key": {"name": "id", "type": "S"},
                               **({"sort_key": {"name": "line", "type": "N"}} if i % 2 else {})}
            for i in range(declared)
        },
        "dms-event-bus:dms": GENERATED_DMS,
    }
    (folder / "Pulumi.gen.yaml").write_text(yaml.safe_dump({"config": config}))
    account = [f"{PREFIX}audit_{i:04d}" for i in range(adopted)] + [
        f"{PREFIX}awsdms_apply_exceptions"]

    def get_tables(_args: dict[str, Any]) -> dict[str, Any]:
        return {"names": account, "id": "eu-west-1"}

    with adopted_table_outputs():
        return mockrun.run_stack("gen", stack_dir=folder, invoke_answers={GET_TABLES: get_tables})


def capped_sizes(plan: mockrun.Plan) -> dict[str, int]:
    """Every size AWS caps that a table could make grow, per resource: each IAM policy
    document, each role's inline policies together, each Lambda environment and each of its
    variables."""
    ctx = Context(plan.resources)
    sizes: dict[str, int] = {}
    for r in plan.resources:
        if r.type in (ROLE_POLICY, MANAGED_POLICY):
            sizes[f"policy document {r.name}"] = policy_size(r.inputs["policy"])
        if r.type == ROLE_POLICY:
            role = ctx.role_of(r.inputs["role"])
            key = f"inline policies of {role.name if role else r.name}"
            sizes[key] = sizes.get(key, 0) + policy_size(r.inputs["policy"])
        if r.type == FUNCTION:
            env = (r.inputs.get("environment") or {}).get("variables") or {}
            sizes[f"environment of {r.name}"] = lambda_env_size(env)
            for var, value in env.items():
                sizes[f"variable {var} of {r.name}"] = len(var) + len(str(value))
    return sizes


def check_scale(folder: Path, tables: int, split: str) -> tuple[mockrun.Plan, list[str]]:
    """Plan `tables` and `SMALL` tables; the problems: limit violations at `tables`, the
    resources per table not constant, and every capped size that differs between the two."""
    small_dir, big_dir = folder / "small", folder / "big"
    small_dir.mkdir()
    big_dir.mkdir()
    small = plan_generated(small_dir, SMALL, split)
    big = plan_generated(big_dir, tables, split)
    problems = [v.line() for v in evaluate(big).violations]
    tiny = plan_generated(_fresh(folder / "tiny"), SMALL * 2, split)
    per_small = (len(tiny.resources) - len(small.resources)) / SMALL
    per_big = (len(big.resources) - len(small.resources)) / (tables - SMALL)
    if per_small != per_big:
        problems.append(f"resources per table not constant: {per_small} vs {per_big}")
    before, after = capped_sizes(small), capped_sizes(big)
    problems += [
        f"{key} grows with the table count: {before.get(key)} at {SMALL} tables, "
        f"{size} at {tables}"
        for key, size in sorted(after.items()) if before.get(key) != size
    ]
    return big, problems


def _fresh(folder: Path) -> Path:
    folder.mkdir()
    return folder


def summary(folder: Path, tables: int, split: str) -> dict[str, Any]:
    """`check_scale` as plain data (what the test reads back from a fresh interpreter)."""
    plan, problems = check_scale(folder, tables, split)
    return {
        "problems": problems,
        "declared": len(plan.of_type("aws:dynamodb/table:Table")),
        "adopted": len(plan.of_type(ADOPTED_TYPE)),
        "mappings": len(plan.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")),
        "sizes": sorted(capped_sizes(plan)),
    }


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_a_stack_of_many_tables_plans_clean_and_nothing_capped_grows(
    split: str, tmp_path: Path
) -> None:
    # GIVEN generated stacks of SMALL, 2*SMALL and SCALE tables, `split` says how they come
    # WHEN each is planned under mocks, in a fresh interpreter as `pulumi up` runs the
    # program (Pulumi's SDK wraps pickle once more for every dynamic resource a process
    # declares, never unwrapping: docs/limits.md; the suite's other tests must not add up)
    out = subprocess.run(
        [sys.executable, "-m", "tests.test_scale", str(tmp_path), str(SCALE), split],
        capture_output=True, text=True, cwd=Path(__file__).parent.parent, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # THEN the big one is within every limit the plan checks, the resources per table are
    # constant, and no policy document, role, environment or variable differs in size
    assert got["problems"] == []
    declared, adopted = SPLITS[split](SCALE)
    assert (got["declared"], got["adopted"], got["mappings"]) == (declared, adopted, SCALE)
    # AND the sizes were measured on the resources that used to grow
    sizes = set(got["sizes"])
    assert "environment of bus-fanin" in sizes
    assert "inline policies of bus-fanin-role" in sizes
    assert "inline policies of dms-target-role" in sizes
    if adopted:
        assert "inline policies of backfill-role" in sizes


def test_the_growth_check_catches_a_policy_that_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a plan whose fan-in policy gains one statement per table (what the code did)
    real = capped_sizes

    def grown(plan: mockrun.Plan) -> dict[str, int]:
        sizes = real(plan)
        tables = len(plan.of_type("aws:lambda/eventSourceMapping:EventSourceMapping"))
        sizes["policy document bus-fanin-policy"] += 120 * tables
        return sizes

    monkeypatch.setitem(globals(), "capped_sizes", grown)
    # WHEN the scale check runs
    _plan, problems = check_scale(tmp_path, 30, "declared")
    # THEN it names the policy that grows
    assert any(p.startswith("policy document bus-fanin-policy grows") for p in problems)


if __name__ == "__main__":
    print(json.dumps(summary(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])))
