"""The Python packages the Lambda functions ship with, one pinned requirement a line.

    python -m tools.lambda_requirements

The fan-in and backfill packages carry `components.lambda_package.ENVELOPE_REQUIREMENTS`, the
writeback package its engine's `components.legacy_writeback.DRIVERS`. tools/dev.sh installs
exactly these pins into the Python 3.13 virtualenv that runs the handlers' own tests (the
Lambdas run python3.14, which cannot be installed here; 3.13 is the newest CPython that can).
"""

from __future__ import annotations

import sys


def shipped() -> list[str]:
    """Every pinned requirement of every Lambda package, sorted, without duplicates."""
    from components.lambda_package import ENVELOPE_REQUIREMENTS
    from components.legacy_writeback import DRIVERS

    out = set(ENVELOPE_REQUIREMENTS)
    for requirements in DRIVERS.values():
        out.update(requirements)
    return sorted(out, key=str.lower)


def main() -> int:
    sys.stdout.write("".join(f"{line}\n" for line in shipped()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
