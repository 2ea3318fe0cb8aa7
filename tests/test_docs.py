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


def test_config_reference_shows_real_list_and_map_defaults() -> None:
    # GIVEN every settings field whose default is made by a factory (a list or a map, not a
    # nested model)
    import json

    from pydantic import BaseModel

    from dms_event_bus.settings import StackSettings

    seen: set[type[BaseModel]] = set()
    rows: list[tuple[str, str]] = []

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for key, field in model.model_fields.items():
            for sub in _models(field.annotation):
                walk(sub)
            if field.default_factory is not None and not _models(field.annotation):
                rows.append((key, json.dumps(field.default_factory())))  # type: ignore[call-arg]

    walk(StackSettings)
    text = render()
    # THEN the reference row of each shows the value the factory makes (a non-empty list
    # default such as https_egress_cidrs' 0.0.0.0/0 must not read as `{}`)
    assert any(value not in ("[]", "{}") for _k, value in rows), rows
    for key, value in rows:
        assert any(
            line.startswith(f"| `{key}` |") and f"`{value}`" in line for line in text.splitlines()
        ), f"{key}: default {value} not shown"


def _models(annotation: object) -> list[type]:
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]
