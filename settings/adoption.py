"""Config of adoption: what happens to the tables DMS creates at runtime (see docs/adoption.md).

Stack file section `dms-event-bus:adoption`. Every key has a safe default, so a stack without
the section adopts every new table of its environment on demand, with PITR, KMS and a
backfill.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import LogicalName, Model
from .core import Capacity, OnDemandCapacity


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

    @model_validator(mode="after")
    def _distinct(self) -> AdoptionSettings:
        overlap = sorted(set(self.replace_stream) & set(self.exclude))
        if overlap:
            raise ValueError(
                f"expected replace_stream and exclude to be disjoint, found {overlap} in both"
            )
        return self
