"""Typed stack config: read once, validated before any resource is declared.

`load_settings(stack, raw)` takes the project's config keys (without the `dms-event-bus:`
namespace) and returns a frozen `StackSettings`, or raises `ConfigError` naming the stack,
each key path, what was expected and what was found.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, ValidationError, model_validator

from .adoption import AdoptionSettings
from .base import PROJECT, ConfigError, EnvName, LogicalName, Model, problems_of
from .core import (
    AlarmSettings,
    BusSettings,
    EncryptionSettings,
    ProvisionedCapacity,
    TableSettings,
)
from .dms import DmsSettings, check_dms
from .ingest import IngestSettings
from .writeback import WritebackSettings, check_writeback

__all__ = [
    "PROJECT",
    "ConfigError",
    "StackSettings",
    "load_settings",
    "settings_from_pulumi",
]


class StackSettings(Model):
    """Everything one stack (environment) configures. Keys are the stack file's keys."""

    environment: EnvName = Field(
        description="Environment name, part of every physical name; default: the stack name."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Tags on every resource.")
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    tables: dict[LogicalName, TableSettings] = Field(
        default_factory=dict,
        description="Declared waypoint tables, by logical name; may be left out when "
        "dms.wildcards select the tables (a wildcard-only stack).",
    )
    bus: BusSettings = Field(default_factory=BusSettings)
    alarms: AlarmSettings = Field(default_factory=AlarmSettings)
    ingest_api: IngestSettings | None = None
    dms: DmsSettings | None = None
    writeback: WritebackSettings | None = None
    adoption: AdoptionSettings = Field(default_factory=AdoptionSettings)

    @model_validator(mode="after")
    def _check_dms(self) -> StackSettings:
        check_dms(self.dms, self.tables)  # dms vs tables: key columns, wildcards
        return self

    @model_validator(mode="after")
    def _check_writeback(self) -> StackSettings:
        entities = self.ingest_api.entities if self.ingest_api else {}
        check_writeback(self.writeback, self.tables, entities)  # sources exist, keys match
        return self

    @model_validator(mode="after")
    def _check_tags(self) -> StackSettings:
        for key in self.tags:
            if key.lower().startswith("aws:"):
                raise ValueError(f"tags: expected no key starting with 'aws:', found '{key}'")
        return self

    @property
    def name_prefix(self) -> str:
        """Prefix of every physical name of this environment, e.g. `dmsbus-dev-`."""
        return f"dmsbus-{self.environment}-"

    def physical_table_name(self, logical: str) -> str:
        return f"{self.name_prefix}{logical}"

    @property
    def provisioned_tables(self) -> list[str]:
        return [n for n, t in self.tables.items() if isinstance(t.capacity, ProvisionedCapacity)]


def _parse_value(value: Any) -> Any:
    """Pulumi hands config values over as strings; structured values are JSON text."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "{[" or text in ("true", "false", "null") or _is_number(text):
            try:
                return json.loads(text)
            except ValueError:
                return value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_settings(stack: str, raw: Mapping[str, Any]) -> StackSettings:
    """Validate the project's config keys of one stack. Raises ConfigError."""
    data = {k: _parse_value(v) for k, v in raw.items()}
    data.setdefault("environment", stack)
    try:
        settings = StackSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(stack, problems_of(exc, data)) from None
    # Values AWS would refuse wherever they land (DMS identifiers, tag limits): refused here,
    # before any resource is declared, by `pulumi up` as by the offline plan.
    from dms_event_bus.settings.aws_limits import config_problems  # pure Python, no Pulumi import

    problems = config_problems(settings)
    if problems:
        raise ConfigError(stack, [f"{PROJECT}:{p}" for p in problems])
    return settings


def settings_from_pulumi(other_namespaces: Sequence[str] = ()) -> StackSettings:
    """Read every `dms-event-bus:*` key of the running stack (real engine or mocks).

    Keys of other namespaces are refused (a key in a namespace nobody reads, `dmseventbus:dms`,
    would be ignored in silence), except `aws:`, `pulumi:`, the running project's own (a
    program of your own that runs `dms_event_bus.program.main`) and `other_namespaces` (the
    other providers that program configures)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    from .stackfile import NAMESPACES, config_problems

    namespaces = (*NAMESPACES, pulumi.get_project(), *other_namespaces)
    problems = config_problems(merged, namespaces)
    if problems:
        raise ConfigError(pulumi.get_stack(), problems)
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}
    return load_settings(pulumi.get_stack(), raw)
