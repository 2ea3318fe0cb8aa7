"""The Python packages the Lambda functions ship with, one pinned requirement a line.

    python -m tools.lambda_requirements              # what the Lambda packages carry
    python -m tools.lambda_requirements --test-env   # plus what the handlers' tests need

The fan-in and backfill packages carry `components.lambda_package.ENVELOPE_REQUIREMENTS`, the
writeback package its engine's `components.legacy_writeback.WRITEBACK_REQUIREMENTS` (the
driver and the same orjson). tools/dev.sh installs
exactly these pins into the Python 3.13 virtualenv that runs the handlers' own tests (the
Lambdas run python3.14, which cannot be installed here; 3.13 is the newest CPython that can).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What the handlers' own tests need beside the handlers' packages: the AWS SDK the Lambda
#: runtime provides (boto3, locked in requirements.txt), pydantic (the fan-in tests check the
#: handler's name rules against the settings' patterns), and the test tools (pinned in
#: pyproject.toml's dev extra).
TEST_ENV = ("boto3", "pydantic", "pytest", "hypothesis", "moto", "jsonschema")


def shipped() -> list[str]:
    """Every pinned requirement of every Lambda package, sorted, without duplicates."""
    from dms_event_bus.components.lambda_package import ENVELOPE_REQUIREMENTS
    from dms_event_bus.components.legacy_writeback import WRITEBACK_REQUIREMENTS

    out = set(ENVELOPE_REQUIREMENTS)
    for requirements in WRITEBACK_REQUIREMENTS.values():
        out.update(requirements)
    return sorted(out, key=str.lower)


def test_env() -> list[str]:
    """`shipped()` plus TEST_ENV: unpinned names (boto3, pydantic) are constrained by
    requirements.txt when installed, the test tools are the dev extra's pinned lines."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    out = list(shipped())
    for name in TEST_ENV:
        pinned = [d for d in declared
                  if re.match(rf"{name}(\[[^\]]*\])?\s*[=<>~!]", d, re.IGNORECASE)]
        if not pinned:
            raise SystemExit(f"tools.lambda_requirements: {name} is not in pyproject.toml")
        out.append(pinned[0].split(";")[0].strip())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.lambda_requirements",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--test-env", action="store_true",
                        help="add what the handlers' own tests need (boto3, pytest, moto, ...)")
    args = parser.parse_args(argv)
    lines = test_env() if args.test_env else shipped()
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
