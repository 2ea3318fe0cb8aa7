"""The example stacks plan clean: every `Pulumi.<stack>.yaml` at the repo root (the user's
stacks; examples until they are replaced) and under examples/ is read, validated, planned
under mocks (tools.mockrun) and checked against the AWS limits (settings/aws_limits.py): 0
violations.

The tests are parametrised over the files PRESENT, so a user who deletes the examples and
adds their own stacks gets their own stacks planned here, and nothing else breaks. These
are the only tests that may read the root stack files (marker `examples`, tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dms_event_bus.settings import load_settings
from dms_event_bus.settings.aws_limits import evaluate
from dms_event_bus.settings.stackfile import ROOT, project_config, read_stack_config, stack_files
from tools.mockrun import run_stack

pytestmark = pytest.mark.examples

EXAMPLES_DIR = ROOT / "examples"

#: (stack, folder) of every example stack present: the root's, then examples/'s.
EXAMPLES = [
    pytest.param(stack, folder, id=f"{folder.name}/{stack}" if folder != ROOT else stack)
    for folder in (ROOT, EXAMPLES_DIR)
    for stack in stack_files(folder)
]


@pytest.mark.parametrize(("stack", "folder"), EXAMPLES)
def test_an_example_stack_plans_within_the_aws_limits(stack: str, folder: Path) -> None:
    settings = load_settings(stack, project_config(read_stack_config(stack, folder)))
    plan = run_stack(stack, stack_dir=folder)

    report = evaluate(plan)
    assert report.violations == [], report.summary()
    # its resources are named for its environment
    assert plan.resources, f"{stack}: nothing planned"
    env = settings.environment
    assert any(f"dmsbus-{env}-" in str(r.inputs) for r in plan.resources)
    if folder == EXAMPLES_DIR:  # a shipped example says what it shows and what is optional
        text = (folder / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8")
        assert text.startswith("#"), f"examples/Pulumi.{stack}.yaml: start with what it shows"
        assert "optional" in text.lower(), f"examples/Pulumi.{stack}.yaml: mark what is optional"
