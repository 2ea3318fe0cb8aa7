"""Read a `Pulumi.<stack>.yaml` file the way the Pulumi CLI hands it to the program.

The file is checked before its values are used, each problem as one line naming the file,
line and column and the fix: YAML syntax, bytes that are not UTF-8, duplicate keys (the
Pulumi CLI refuses them; a YAML library would silently keep the last), alias cycles, a
top level that is not a mapping, keys outside `config:`, config keys without a namespace or
in a namespace this program does not read (`dmseventbus:dms` would otherwise plan a stack
without DMS), and a malformed `aws:region`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .base import PROJECT

ROOT = Path(__file__).resolve().parent.parent

#: The keys a stack settings file may hold at its top level (Pulumi's stack settings file).
TOP_LEVEL_KEYS = ("config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt")
#: Config namespaces this program reads: its own, its one provider's, and Pulumi's.
NAMESPACES = (PROJECT, "aws", "pulumi")

#: AWS region names: <area>-<direction>-<n> (us-east-1, us-gov-west-1, eusc-de-east-1).
_AREAS = ("af", "ap", "ca", "cn", "eu", "eu-isoe", "eusc-de", "il", "me", "mx", "sa", "us",
          "us-gov", "us-iso", "us-isob", "us-isof")
_DIRECTIONS = ("central", "east", "north", "northeast", "northwest", "south", "southeast",
               "southwest", "west")
_REGION = re.compile(
    rf"^(?:{'|'.join(re.escape(a) for a in _AREAS)})-(?:{'|'.join(_DIRECTIONS)})-[1-9][0-9]?$"
)


class StackFileError(ValueError):
    """A stack file that cannot be read as Pulumi reads it: one line, with file:line:column."""


def stack_files(root: Path = ROOT) -> dict[str, Path]:
    """Every stack file of the project, by stack name (`Pulumi.dev.yaml` -> `dev`)."""
    return {
        p.name[len("Pulumi.") : -len(".yaml")]: p
        for p in sorted(root.glob("Pulumi.*.yaml"))
    }


def read_stack_config(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The stack file's `config:` block, keys as written (`namespace:key`).

    FileNotFoundError when there is no such file; StackFileError (a ValueError, one line)
    for anything the Pulumi CLI or this program would refuse in it."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(stack_files(root)) or "none"
        raise FileNotFoundError(f"no stack file {path.name} (stacks found: {known})")
    return load_stack_text(path.read_bytes(), path.name)


def load_stack_text(data: bytes, name: str) -> dict[str, Any]:
    """The `config:` block of a stack file's bytes; StackFileError naming `name`."""
    text = _decode(data, name)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise StackFileError(_yaml_problem(exc, name)) from None
    except yaml.YAMLError as exc:  # ReaderError: a character YAML does not allow
        raise StackFileError(_reader_problem(exc, text, name)) from None
    except RecursionError:
        raise StackFileError(f"{name}: nested too deeply to be a stack file") from None
    if root is None:
        return {}  # an empty stack file: no config
    problems = list(_node_problems(root, name))
    if not problems:
        problems = list(_shape_problems(root, name))
    if problems:
        raise StackFileError("; ".join(problems))
    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:  # e.g. a date that does not exist
        raise StackFileError(f"{name}: a value cannot be read: {_flat(str(exc))}") from None
    return dict(doc.get("config") or {})


def _flat(text: str) -> str:
    return " ".join(text.split())


def _at(name: str, mark: Any) -> str:
    return f"{name}:{mark.line + 1}:{mark.column + 1}"


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8", "replace")) + 1
        raise StackFileError(
            f"{name}:{line}:{column}: not UTF-8 (byte 0x{data[exc.start]:02x}): save the file "
            "as UTF-8 (Pulumi reads stack files as UTF-8)"
        ) from None


def _yaml_problem(exc: yaml.MarkedYAMLError, name: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = _at(name, mark) if mark is not None else name
    what = _flat(exc.problem or "") or _flat(str(exc))
    if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
        what += f" ({_flat(exc.context)} started at line {exc.context_mark.line + 1})"
    elif exc.context:
        what += f" ({_flat(exc.context)})"
    return f"{where}: not valid YAML: {what}"


def _reader_problem(exc: yaml.YAMLError, text: str, name: str) -> str:
    position = getattr(exc, "position", None)
    if isinstance(position, int):
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        where = f"{name}:{line}:{column}"
    else:
        where = name
    reason = getattr(exc, "reason", None) or str(exc)
    character = getattr(exc, "character", None)
    if isinstance(character, str) and len(character) == 1:
        character = ord(character)
    found = f" (character U+{character:04X})" if isinstance(character, int) else ""
    return f"{where}: not valid YAML: {_flat(str(reason))}{found}: remove or escape it"


def _node_problems(root: yaml.Node, name: str) -> Iterator[str]:
    """Alias cycles and duplicate mapping keys anywhere in the document."""
    done: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, leaving = stack.pop()
        if leaving:
            open_.discard(id(node))
            done.add(id(node))
            continue
        if id(node) in open_:
            yield (f"{_at(name, node.start_mark)}: this anchored node contains an alias to "
                   "itself (an alias cycle): replace the alias by the values it stands for")
            return
        if id(node) in done:
            continue
        open_.add(id(node))
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], Any] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    ident = (key.tag, key.value)
                    first = seen.get(ident)
                    if first is None:
                        seen[ident] = key.start_mark
                    else:
                        yield (
                            f"{_at(name, key.start_mark)}: duplicate key '{key.value}' (first "
                            f"defined at line {first.line + 1}; the Pulumi CLI refuses the "
                            "file): keep one definition and merge the two"
                        )
                stack.extend([(value, False), (key, False)])
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, False) for item in reversed(node.value))


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    return f"the value {node.value!r}"


def _shape_problems(root: yaml.Node, name: str) -> Iterator[str]:
    """The stack file's structure: top-level keys, `config:` and its keys."""
    if not isinstance(root, yaml.MappingNode):
        yield (f"{_at(name, root.start_mark)}: expected a mapping at the top of the stack file "
               f"(config: with namespace:key entries), found {_kind(root)}")
        return
    for key, value in root.value:
        label = key.value if isinstance(key, yaml.ScalarNode) else "?"
        if label in TOP_LEVEL_KEYS:
            if label == "config" and not (
                isinstance(value, yaml.MappingNode) or value.tag == "tag:yaml.org,2002:null"
            ):
                yield (f"{_at(name, value.start_mark)}: expected a mapping under 'config:' "
                       f"(namespace:key: value entries), found {_kind(value)}")
            elif label == "config" and isinstance(value, yaml.MappingNode):
                for ckey, cvalue in value.value:
                    yield from _config_key_problems(ckey, cvalue, name)
            continue
        if ":" in label:
            yield (f"{_at(name, key.start_mark)}: '{label}' is outside 'config:', where Pulumi "
                   "does not read it: move it under config: (indented)")
        else:
            near = difflib.get_close_matches(label, TOP_LEVEL_KEYS, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            yield (f"{_at(name, key.start_mark)}: unknown top-level key '{label}': {hint}a stack "
                   f"file holds only {', '.join(TOP_LEVEL_KEYS)}")


def _config_key_problems(key: yaml.Node, value: yaml.Node, name: str) -> Iterator[str]:
    where = _at(name, key.start_mark)
    if not isinstance(key, yaml.ScalarNode):
        yield f"{where}: expected a 'namespace:key' string as a config key, found {_kind(key)}"
        return
    if key.value == "aws:region" and not isinstance(value, yaml.ScalarNode):
        yield (f"{_at(name, value.start_mark)}: aws:region: expected an AWS region such as "
               f"eu-west-1, found {_kind(value)}")
        return
    plain = value.value if isinstance(value, yaml.ScalarNode) else None
    problem = key_problem(key.value, plain)
    if problem:
        where = _at(name, value.start_mark) if problem.startswith("aws:region") else where
        yield f"{where}: {problem}"


def key_problem(key: str, value: Any, namespaces: Sequence[str] = NAMESPACES) -> str | None:
    """What is wrong with one config key (and `aws:region`'s value), or None.

    Shared by the stack file reader and the program under the real engine; `namespaces`: the
    ones read (a program of your own adds its project's and its other providers')."""
    namespace, sep, rest = key.partition(":")
    if not sep:
        from . import StackSettings  # the project's keys, to suggest the namespace

        fields = {f.alias or n for n, f in StackSettings.model_fields.items()}
        example = f"{PROJECT}:{key}" if key in fields else f"{PROJECT}:{key} or aws:{key}"
        return (f"config key '{key}' has no namespace: write it as 'namespace:key' "
                f"(e.g. {example})")
    if namespace not in namespaces:
        near = difflib.get_close_matches(namespace, namespaces, n=1, cutoff=0.5)
        hint = f"did you mean '{near[0]}:{rest}'? " if near else ""
        return (f"unknown config namespace '{namespace}' in '{key}': {hint}this program reads "
                f"only {', '.join(n + ':' for n in namespaces)} keys, so the value would be "
                "ignored")
    if key == "aws:region":
        return region_problem(value)
    return None


def region_problem(value: Any) -> str | None:
    """None for an AWS region name (aws:region), else what is wrong with it."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        return "aws:region: expected a plain region name, found a secret"
    if not isinstance(value, str) or not value:
        return f"aws:region: expected an AWS region such as eu-west-1, found {value!r}"
    if _REGION.fullmatch(value) or value in known_regions():
        return None
    near = difflib.get_close_matches(value, sorted(known_regions()), n=1, cutoff=0.6)
    hint = f"did you mean '{near[0]}'? " if near else ""
    return (f"aws:region: expected an AWS region such as eu-west-1 or us-east-1, found "
            f"{value!r}: {hint}set the region the stack deploys to")


@cache
def known_regions() -> frozenset[str]:
    """Regions the installed botocore knows, every partition (for new ones and hints)."""
    try:
        import boto3

        session = boto3.session.Session()
        return frozenset(
            region
            for partition in session.get_available_partitions()
            for region in session.get_available_regions("sts", partition_name=partition)
        )
    except Exception:  # a broken AWS config file: only the pattern is checked
        return frozenset()


def config_problems(config: Mapping[str, Any],
                    namespaces: Sequence[str] = NAMESPACES) -> list[str]:
    """Config keys (and aws:region) this program would not read as written."""
    found = []
    for key, value in config.items():
        problem = key_problem(str(key), value, namespaces)
        if problem:
            found.append(problem if problem.startswith("aws:region") else f"{key}: {problem}")
    return found


def project_config(config: dict[str, Any]) -> dict[str, Any]:
    """The project's own keys, namespace stripped."""
    prefix = f"{PROJECT}:"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


def as_engine_config(config: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Config as the engine passes it to a program: strings, structured values as JSON.

    `secure:` values cannot be decrypted offline; they become a placeholder marked secret.
    """
    out: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in config.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            out[key] = "<secret>"
            secret_keys.append(key)
        elif isinstance(value, str):
            out[key] = value
        else:
            out[key] = json.dumps(value)
    return out, secret_keys
