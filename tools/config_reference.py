"""Generate the stack config reference (docs/config-reference.md) from the config models,
so the documentation is the code. `python -m tools.config_reference --write` refreshes it;
a test fails when the committed file is stale."""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dms_event_bus.settings import StackSettings
from dms_event_bus.settings.base import PROJECT
from dms_event_bus.settings.stackfile import NAMESPACES, TOP_LEVEL_KEYS

OUT = Path(__file__).resolve().parent.parent / "docs" / "config-reference.md"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found += _models_in(arg)
    return found


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(repr(a) for a in get_args(annotation))
    if origin is typing.Annotated:
        base, *meta = get_args(annotation)
        pattern = next((getattr(m, "pattern", None) for m in meta if getattr(m, "pattern", None)),
                       None)
        return f"{_type_name(base)} (`{pattern}`)" if pattern else _type_name(base)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in get_args(annotation) if a is not type(None))
    if origin is dict:
        key, value = get_args(annotation)
        return f"map of {_type_name(key)} → {_type_name(value)}"
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        described = "default:" in (field.description or "")
        return "see meaning" if described else "**required**"
    if field.default_factory is not None:
        if _models_in(field.annotation):
            return "see below"
        # the real default, not a placeholder: a list default such as
        # `https_egress_cidrs: ["0.0.0.0/0"]` must be visible in the reference
        made = field.default_factory()  # type: ignore[call-arg]
        return f"`{json.dumps(made)}`"
    if field.default is PydanticUndefined:
        return ""
    return f"`{field.default!r}`" if field.default is not None else "none"


def _constraints(field: FieldInfo) -> str:
    bits = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("le", "<="), ("gt", ">"), ("lt", "<"),
                           ("min_length", "min items"), ("max_length", "max items")):
            value = getattr(meta, attr, None)
            if value is not None:
                bits.append(f"{sign} {value}")
    return ", ".join(bits)


def render() -> str:
    lines = [
        "# Stack config reference",
        "",
        "Generated from the config models by `python -m tools.config_reference --write`;",
        "a test fails when this file and the code disagree. Every key lives under the",
        f"`{PROJECT}:` namespace of a `Pulumi.<stack>.yaml` file. Unknown keys are errors.",
        "",
        "The stack file itself is checked first, each problem as one line with",
        "`file:line:column` and the fix (`python -m tools.plan` exits 2): YAML syntax, bytes",
        "that are not UTF-8, duplicate keys (the Pulumi CLI refuses them), alias cycles, a top",
        f"level other than a mapping of {', '.join(f'`{k}`' for k in TOP_LEVEL_KEYS)}, keys",
        "outside `config:`, config keys without a namespace or in a namespace this program",
        f"does not read (only {', '.join(f'`{n}:`' for n in NAMESPACES)}; the closest is",
        "suggested), and an `aws:region` that is not an AWS region name. The program refuses",
        "the same namespaces and region under `pulumi up`.",
        "",
    ]
    seen: set[type[BaseModel]] = set()
    queue: list[tuple[type[BaseModel], str]] = [(StackSettings, f"{PROJECT}:")]
    while queue:
        model, path = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines += [f"## {model.__name__}", ""]
        doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        if doc:
            lines += [doc, ""]
        lines += [f"Path: `{path}`", "", "| key | type | default | limits | meaning |",
                  "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            key = field.alias or name
            desc = (field.description or "").replace("|", "\\|")
            lines.append(
                f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | "
                f"{_constraints(field)} | {desc} |"
            )
            sep = "" if path.endswith(":") else "."
            origin = get_origin(field.annotation)
            suffix = ".<name>" if origin is dict else "[]" if origin is list else ""
            for sub in _models_in(field.annotation):
                queue.append((sub, f"{path}{sep}{key}{suffix}"))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="stack config reference")
    parser.add_argument("--write", action="store_true", help=f"write {OUT}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
