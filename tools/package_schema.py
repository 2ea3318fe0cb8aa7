"""The multi-language package's schema, as Pulumi's component provider host infers it from
`dms_event_bus.components.multi_language` (what `pulumi package add plugin/` would read).

    python -m tools.package_schema            print it
    python -m tools.package_schema --write    write plugin/schema.json (checked in)
    python -m tools.package_schema --check    exit 1 when plugin/schema.json differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "plugin" / "schema.json"


def package_schema(version: str | None = None) -> dict[str, Any]:
    """The schema the SDK's analyzer infers (the provider's GetSchema answer)."""
    from dms_event_bus.components.multi_language import (
        COMPONENTS,
        PACKAGE,
        VERSION,
        PackageProvider,
    )

    provider = PackageProvider(COMPONENTS, PACKAGE, None, version or VERSION)
    return json.loads(provider.schema or "{}")


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.package_schema",
                                     description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {SCHEMA_FILE.name}")
    mode.add_argument("--check", action="store_true", help="exit 1 on a difference")
    args = parser.parse_args(argv)
    text = render(package_schema())
    if args.write:
        SCHEMA_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {SCHEMA_FILE.relative_to(ROOT)}")
        return 0
    if args.check:
        if not SCHEMA_FILE.is_file() or SCHEMA_FILE.read_text(encoding="utf-8") != text:
            print(f"{SCHEMA_FILE.relative_to(ROOT)} differs from the components: run "
                  "python -m tools.package_schema --write and review the diff", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
