"""Shared building blocks of the typed stack config.

Every model forbids unknown keys, so a typo in a stack file fails instead of being ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

PROJECT = "dms-event-bus"

#: Logical names (tables, entities): lower snake case, as used in envelopes and physical names.
LOGICAL_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
LogicalName = Annotated[str, StringConstraints(pattern=LOGICAL_NAME_PATTERN)]
#: Column / attribute names of the legacy database (case kept as the database has it).
ColumnName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_$#]{0,127}$")]
#: An environment name: goes into every physical name.
#: Not ending in '-ingest': its waypoint tables would be named like the IngestApi tables of
#: the environment without that suffix, and the prefix-wide IAM scope would join the two.
def _not_an_ingest_suffix(name: str) -> str:
    if name.endswith("-ingest"):
        raise ValueError(
            f"expected a name not ending in '-ingest' (its tables would be named like the "
            f"IngestApi tables of environment '{name[: -len('-ingest')]}'), found '{name}'"
        )
    return name


ENV_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,15}$"
EnvName = Annotated[
    str,
    StringConstraints(pattern=ENV_NAME_PATTERN),
    AfterValidator(_not_an_ingest_suffix),
]

_ARN = r"^arn:aws[a-z-]*:{service}:[a-z0-9-]*:\d{{12}}:.+$"


def arn_type(service: str) -> Any:
    """A string that must be the ARN of a resource of ``service``."""
    return Annotated[str, StringConstraints(pattern=_ARN.format(service=service))]


#: A KMS key ARN. Not an alias ARN: IAM statements on an alias do not cover the key.
KmsKeyArn = Annotated[
    str, StringConstraints(pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
]
SecretArn = arn_type("secretsmanager")
SnsTopicArn = arn_type("sns")


class Model(BaseModel):
    """Base of every config model: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class ConfigError(Exception):
    """A stack file that does not fit the config models. One message, one line per problem."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"stack '{stack}': invalid config in Pulumi.{stack}.yaml "
            f"({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n{lines}"
        )

    def brief(self) -> str:
        """The message for a command's stderr: one line when there is one problem."""
        if len(self.problems) == 1:
            return (f"stack '{self.stack}': invalid config in Pulumi.{self.stack}.yaml: "
                    f"{self.problems[0]}")
        return str(self)


def _key_path(loc: tuple[int | str, ...]) -> str:
    """Pydantic's error location as the key path a user sees in the stack file."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif parts and re.fullmatch(r"[A-Za-z0-9_-]+", item):
            parts.append(f".{item}")
        elif parts:
            parts.append(f"[{item!r}]")
        else:
            parts.append(f"{PROJECT}:{item}")
    return "".join(parts) or f"{PROJECT}:<root>"


_EXPECTED = {
    "missing": "a value (the key is required)",
    "extra_forbidden": "no such key (check the spelling; see the README's config reference)",
    "string_pattern_mismatch": "a string matching {pattern}",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "list_type": "a list",
    "greater_than_equal": "a number >= {ge}",
    "less_than_equal": "a number <= {le}",
    "greater_than": "a number > {gt}",
    "less_than": "a number < {lt}",
    "too_short": "at least {min_length} item(s)",
    "too_long": "at most {max_length} item(s)",
}


def _document_loc(loc: tuple[int | str, ...], data: Any) -> tuple[int | str, ...]:
    """Keep only the parts of pydantic's location that exist in the document: union tags
    such as `provisioned` in `capacity.provisioned.read` are pydantic's, not the user's."""
    kept: list[int | str] = []
    node = data
    for item in loc:
        if isinstance(node, dict) and item in node:
            node = node[item]
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            node = node[item]
        elif isinstance(node, dict) and isinstance(item, str) and item not in node and (
            any(isinstance(v, str) and v == item for v in node.values())
        ):
            continue  # a discriminator tag: the value of a key, not a key
        else:
            node = None
        kept.append(item)
    return tuple(kept)


#: Key names whose values are never echoed in an error (`secret_arn`, `token_secret_arn`, ...).
_SECRET_WORDS = ("secret", "token", "password", "passwd", "credential", "api_key")


def _may_hold_a_secret(loc: tuple[int | str, ...] | list[int | str]) -> bool:
    return any(
        isinstance(part, str) and any(word in part.lower() for word in _SECRET_WORDS)
        for part in loc
    )


def _describe(err: Any, data: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    path = _key_path(_document_loc(tuple(err["loc"]), data))
    found = err.get("input")
    found_text = "nothing" if kind == "missing" else repr(found)
    if kind != "missing" and _may_hold_a_secret(err["loc"]):
        # a token or password pasted where an ARN belongs must not reach a CI log
        found_text = "a value that is not shown (it may be a secret)"
    if len(found_text) > 120:
        found_text = found_text[:117] + "..."
    if kind == "extra_forbidden":
        # never the value: an unknown key may be a secret typed under the wrong name
        return (f"{path}: no such key (check the spelling; see the README's config "
                "reference); its value is not shown")
    if kind in ("value_error", "assertion_error"):
        # Our own validators: the message already says what was expected and found.
        msg = str(ctx.get("error", err["msg"]))
        return f"{path}: {msg}"
    if kind in ("literal_error", "enum"):
        expected = f"one of {ctx.get('expected')}"
    elif kind == "union_tag_invalid":
        expected = f"'{ctx.get('discriminator')}' to be one of {ctx.get('expected_tags')}"
        found_text = repr(ctx.get("tag"))
    elif kind in _EXPECTED:
        try:
            expected = _EXPECTED[kind].format(**ctx)
        except KeyError:
            expected = err["msg"]
    else:
        expected = err["msg"]
    return f"{path}: expected {expected}, found {found_text}"


def problems_of(exc: ValidationError, data: Any = None) -> list[str]:
    """Readable problems of a pydantic ValidationError, de-duplicated, in document order.
    `data` is the validated document, used to show key paths as the user wrote them."""
    seen: dict[str, None] = {}
    for err in exc.errors(include_url=False):
        seen.setdefault(_describe(err, data), None)
    return list(seen)


def positive(default: int, *, le: int | None = None, ge: int = 1, doc: str = "") -> Any:
    """Field helper for bounded whole numbers."""
    return Field(default=default, ge=ge, le=le, description=doc)
