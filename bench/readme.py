"""bench/README.md holds one `## ` section per benchmark; each benchmark rewrites only its own."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def write_section(heading: str, text: str, path: Path = README) -> None:
    """Replace the section starting with `heading` (e.g. `## Fan-in handler`) by `text`, or
    append it; the other benchmarks' sections are left as they are."""
    current = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _m: text, current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)
