"""Docs that match the code: the generated config reference is current, and the README's
two commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

from tools.config_reference import OUT, render

ROOT = Path(__file__).resolve().parent.parent


def test_config_reference_is_current() -> None:
    assert OUT.read_text() == render(), (
        "docs/config-reference.md is stale: run `python -m tools.config_reference --write`"
    )


def test_readme_gives_the_two_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "tools/dev.sh plan dev" in readme
    assert "tools/dev.sh test" in readme
    assert "tools/dev.sh test" in (ROOT / ".ci" / "run").read_text()


def test_every_doc_the_readme_links_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    import re

    for target in re.findall(r"\]\(((?:docs|bench)/[^)#]+)\)", readme):
        assert (ROOT / target).is_file(), f"README links {target}, which does not exist"
