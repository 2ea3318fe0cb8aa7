"""Policy pack entry point: `pulumi preview --policy-pack policy` runs this file.

The rules live in `policy/rules.py` (plain functions, tested directly by tests/test_policy.py).
"""

import sys
from pathlib import Path

# The Pulumi CLI runs this directory as a program; make `policy.rules` importable from it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.rules import crossguard_policies  # noqa: E402

PolicyPack(
    name="dms-event-bus-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=crossguard_policies(),
)
