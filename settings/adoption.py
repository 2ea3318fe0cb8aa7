"""Config of adoption: what happens to the tables DMS creates at runtime (see docs/adoption.md).

Stack file section `dms-event-bus:adoption`. Every key has a safe default, so a stack without
the section adopts every new table of its environment on demand, with PITR, KMS and a
backfill.

`adoption.trigger` (optional, off by default: it needs a GitHub token) asks the repository's
adopt workflow to run as soon as DMS creates a table of this environment, instead of at its
next scheduled run (components/adoption_trigger.py, docs/adoption.md).
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from .base import LogicalName, Model, SecretArn
from .core import Capacity, OnDemandCapacity

#: A GitHub owner (user or organization: letters, digits, single '-' inside, at most 39) and a
#: repository name (letters, digits, '.', '_', '-', at most 100; not '.' or '..').
_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
_REPOSITORY = re.compile(rf"(?P<owner>{_OWNER})/(?P<name>[A-Za-z0-9._-]{{1,100}})")


class AdoptionTriggerSettings(Model):
    """The adopt workflow dispatched when DMS creates a table of this environment."""

    repository: str = Field(
        description="The GitHub repository (`owner/name`) whose adopt workflow "
        "(`repository_dispatch`, type `adopt-tables`) runs the adoption.",
    )
    token_secret_arn: SecretArn = Field(
        description="Secrets Manager secret whose SecretString is the GitHub token (a "
        "fine-grained token with Contents: read and write on the repository). Read at "
        "`pulumi up` and kept as a Pulumi secret; never a plain value in the stack file.",
    )
    max_event_age_seconds: int = Field(
        default=3600,
        ge=60,
        le=86400,
        description="How long EventBridge retries a dispatch GitHub did not accept before it "
        "goes to the trigger's DLQ (alarmed).",
    )
    max_retry_attempts: int = Field(
        default=185, ge=0, le=185, description="Most retries of one dispatch."
    )
    invocation_rate_per_second: int = Field(
        default=1,
        ge=1,
        le=300,
        description="Most dispatches per second; DMS creating hundreds of tables at once "
        "stays under GitHub's secondary rate limit (the excess waits and is retried).",
    )

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        match = _REPOSITORY.fullmatch(value)
        if match is None or match["name"] in (".", ".."):
            raise ValueError(
                "expected a GitHub repository 'owner/name' (owner: letters, digits and single "
                "'-', at most 39; name: letters, digits, '.', '_', '-'), found "
                f"{value!r}"
            )
        return value


class AdoptionSettings(Model):
    """How DMS-created tables of this environment are discovered and adopted."""

    enabled: bool = Field(
        default=True,
        description="Discover DMS-created tables with this environment's prefix and adopt them "
        "(stream on, capacity, PITR, SSE, tags, backfill, bus mapping, alarms).",
    )
    capacity: Capacity = Field(
        default_factory=OnDemandCapacity,
        description="Capacity of adopted tables (replaces DMS's default of 200 RCU/WCU): "
        "on_demand, or provisioned with autoscaling (initial units = min).",
    )
    wait_timeout_seconds: int = Field(
        default=1800,
        ge=60,
        le=43200,
        description="How long adoption waits for a table to exist and be ACTIVE.",
    )
    backfill_segments: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="Parallel scan segments of each backfill (one Lambda invocation each).",
    )
    backfill_memory_mb: int = Field(
        default=512, ge=128, le=10240, description="Memory of the backfill Lambda."
    )
    replace_stream: list[LogicalName] = Field(
        default_factory=list,
        description="Adopted tables (logical names) whose existing stream of another view type "
        "may be disabled and replaced by a NEW_AND_OLD_IMAGES stream.",
    )
    exclude: list[LogicalName] = Field(
        default_factory=list,
        description="Logical names never adopted, even though DMS created them.",
    )
    deletion_protection: bool = Field(
        default=False, description="Turn on deletion protection of adopted tables."
    )
    trigger: AdoptionTriggerSettings | None = Field(
        default=None,
        description="Dispatch the adopt workflow when DMS creates a table of this environment "
        "(EventBridge on CloudTrail's CreateTable); none: tables wait for the workflow's "
        "schedule.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> AdoptionSettings:
        overlap = sorted(set(self.replace_stream) & set(self.exclude))
        if overlap:
            raise ValueError(
                f"expected replace_stream and exclude to be disjoint, found {overlap} in both"
            )
        return self

    @model_validator(mode="after")
    def _trigger_needs_adoption(self) -> AdoptionSettings:
        if self.trigger is not None and not self.enabled:
            raise ValueError(
                "expected no trigger when enabled is false (the dispatched workflow would "
                "adopt nothing), found a trigger; remove adoption.trigger or enable adoption"
            )
        return self
