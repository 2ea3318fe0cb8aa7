"""Read a `Pulumi.<stack>.yaml` file the way the Pulumi CLI hands it to the program."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .base import PROJECT

ROOT = Path(__file__).resolve().parent.parent


def stack_files(root: Path = ROOT) -> dict[str, Path]:
    """Every stack file of the project, by stack name (`Pulumi.dev.yaml` -> `dev`)."""
    return {
        p.name[len("Pulumi.") : -len(".yaml")]: p
        for p in sorted(root.glob("Pulumi.*.yaml"))
    }


def read_stack_config(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The stack file's `config:` block, keys as written (`namespace:key`)."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(stack_files(root)) or "none"
        raise FileNotFoundError(f"no stack file {path.name} (stacks found: {known})")
    doc = yaml.safe_load(path.read_text()) or {}
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path.name}: expected a mapping under 'config:'")
    return dict(config)


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
