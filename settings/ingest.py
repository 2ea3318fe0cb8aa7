"""Config of the IngestApi: the REST API new services write through, and its app-owned tables.

Each entity gets its own DynamoDB table, created and owned by the IngestApi component
(physical name `dmsbus-<env>-ingest-<entity>`; the hyphen keeps it apart from the declared
waypoint tables, whose logical names cannot contain one). The body of a write is described by
`fields`; the component turns it into the JSON schema (draft-4) API Gateway validates against.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from .base import LogicalName, Model

#: Attributes the write path itself writes (see docs/ingest-api.md); not usable as fields.
RESERVED_ATTRIBUTES = frozenset(
    {
        "id",
        "version",
        "status",
        "status_detail",
        "received_at",
        "updated_at",
        "updated_by",
        "request_id",
        "expires_at",
        "expected_version",
    }
)

#: The IngestApi table's key, version and status attributes, and the attributes it writes on
#: every item besides the body's fields (docs/ingest-api.md); `expires_at` on request-like
#: entities only. The writeback's mappings of these tables are checked against them.
INGEST_KEY = "id"
INGEST_VERSION = "version"
INGEST_STATUS = "status"
INGEST_TTL_ATTRIBUTE = "expires_at"
INGEST_ITEM_ATTRIBUTES = frozenset({"received_at", "updated_at", "updated_by", "request_id"})

#: Retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

#: A DynamoDB item is at most 400 KB; leave room for the attributes the write path adds.
MAX_BODY_LIMIT = 350_000

StageName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_]{1,64}$")]


class FieldSettings(Model):
    """One top-level property of an entity's JSON body, stored as one typed item attribute."""

    type: Literal["string", "integer", "number", "boolean"] = Field(
        description="JSON type; stored as DynamoDB S (string), N (integer, number) or BOOL."
    )
    required: bool = Field(default=False, description="The body must contain this property.")
    max_length: int | None = Field(
        default=None,
        ge=1,
        le=MAX_BODY_LIMIT,
        description="Longest string (characters); strings only. Default: 1024.",
    )
    min_length: int | None = Field(
        default=None, ge=0, le=MAX_BODY_LIMIT, description="Shortest string; strings only."
    )
    pattern: str | None = Field(
        default=None, min_length=1, description="ECMA regular expression; strings only."
    )
    enum: list[str] | None = Field(
        default=None, min_length=1, description="Allowed values; strings only."
    )
    minimum: float | None = Field(default=None, description="Smallest value; numbers only.")
    maximum: float | None = Field(default=None, description="Largest value; numbers only.")
    description: str = Field(default="", description="Shown in the request model.")

    @model_validator(mode="after")
    def _constraints_fit_type(self) -> FieldSettings:
        string_only: dict[str, object] = {
            "max_length": self.max_length,
            "min_length": self.min_length,
            "pattern": self.pattern,
            "enum": self.enum,
        }
        number_only: dict[str, object] = {"minimum": self.minimum, "maximum": self.maximum}
        if self.type != "string":
            for key, value in string_only.items():
                if value is not None:
                    raise ValueError(
                        f"expected {key} only on a field of type string, found it on a "
                        f"field of type {self.type}"
                    )
        if self.type not in ("integer", "number"):
            for key, value in number_only.items():
                if value is not None:
                    raise ValueError(
                        f"expected {key} only on a field of type integer or number, found it "
                        f"on a field of type {self.type}"
                    )
        if (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            raise ValueError(
                f"expected min_length <= max_length, found {self.min_length} > {self.max_length}"
            )
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(
                f"expected minimum <= maximum, found {self.minimum} > {self.maximum}"
            )
        return self

    @property
    def attribute_type(self) -> Literal["S", "N", "BOOL"]:
        """The DynamoDB attribute type this field is stored as."""
        return {"string": "S", "integer": "N", "number": "N", "boolean": "BOOL"}[self.type]  # type: ignore[return-value]


class EntitySettings(Model):
    """One entity new services write (logical name = the key under `entities`)."""

    fields: dict[LogicalName, FieldSettings] = Field(
        min_length=1, description="The properties of the JSON body, by name."
    )
    request_like: bool = Field(
        default=False,
        description="Items are requests that expire: a TTL attribute `expires_at` is written "
        "and the table's TTL is enabled on it.",
    )
    ttl_days: int = Field(
        default=30, ge=1, le=3650, description="Days until a request-like item expires."
    )
    deletion_protection: bool = Field(
        default=False, description="Refuse deletes of the entity's table (turn on in production)."
    )

    @model_validator(mode="after")
    def _no_reserved_fields(self) -> EntitySettings:
        clash = sorted(set(self.fields) & RESERVED_ATTRIBUTES)
        if clash:
            raise ValueError(
                f"fields: expected no name the write path uses itself "
                f"({', '.join(sorted(RESERVED_ATTRIBUTES))}), found {', '.join(clash)}"
            )
        # Compared with the default, not with model_fields_set: a dumped and re-validated
        # config carries the default explicitly and must stay valid.
        default_ttl = type(self).model_fields["ttl_days"].default
        if self.ttl_days != default_ttl and not self.request_like:
            raise ValueError(
                "ttl_days: expected it only with request_like: true (only request-like items "
                f"expire), found ttl_days {self.ttl_days} with request_like false"
            )
        return self


class ThrottleSettings(Model):
    """Stage-wide request limits (token bucket), applied to every method."""

    rate_limit: float = Field(
        default=50, gt=0, le=10000, description="Steady-state requests per second."
    )
    burst_limit: int = Field(default=100, ge=1, le=5000, description="Bucket size (requests).")


class IngestSettings(Model):
    """The IngestApi: a REST API writing straight into DynamoDB (no Lambda in the path)."""

    entities: dict[LogicalName, EntitySettings] = Field(
        min_length=1, description="Entities, by logical name: one route set and one table each."
    )
    auth: Literal["iam", "api_key"] = Field(
        default="iam",
        description="iam: every method needs SigV4-signed requests (AWS_IAM); api_key: an API "
        "key of a usage plan in the x-api-key header.",
    )
    api_key_consumers: list[LogicalName] = Field(
        default_factory=list,
        description="auth api_key only: one API key per consuming service (values are "
        "generated by API Gateway, never in config).",
    )
    quota_per_day: int | None = Field(
        default=None, ge=1, description="auth api_key only: requests per key and day."
    )
    stage_name: StageName = Field(default="v1", description="Stage name, part of the URL.")
    throttling: ThrottleSettings = Field(
        default_factory=ThrottleSettings,
        description="Stage-wide rate and burst limits (and the usage plan's, with api_key).",
    )
    max_body_bytes: int = Field(
        default=65_536,
        ge=256,
        le=MAX_BODY_LIMIT,
        description="Largest accepted body (measured in characters by the mapping template, "
        "see docs/ingest-api.md); larger bodies get 400 and nothing is written.",
    )
    access_log_retention_days: int = Field(
        default=90, description="Retention of the access log group (a CloudWatch value)."
    )

    @model_validator(mode="after")
    def _check(self) -> IngestSettings:
        if self.access_log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"access_log_retention_days: expected one of {list(LOG_RETENTION_DAYS)}, "
                f"found {self.access_log_retention_days}"
            )
        if self.auth == "api_key" and not self.api_key_consumers:
            raise ValueError(
                "api_key_consumers: expected at least one consumer when auth is api_key, "
                "found none"
            )
        if self.auth == "iam" and (self.api_key_consumers or self.quota_per_day):
            raise ValueError(
                "api_key_consumers/quota_per_day: expected them only with auth api_key, "
                "found them with auth iam"
            )
        if len(set(self.api_key_consumers)) != len(self.api_key_consumers):
            raise ValueError(
                f"api_key_consumers: expected distinct names, found {self.api_key_consumers}"
            )
        return self
