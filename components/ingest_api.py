"""IngestApi: a REST API new services write through, straight into DynamoDB (no Lambda).

Per entity (`IngestEntity`; the stack config's `ingest_api` section is converted into
`IngestApiArgs` by `settings.component_args.ingest_api_args`):

- an app-owned DynamoDB table `<prefix>ingest-<entity>` (key `id`, stream NEW_AND_OLD_IMAGES,
  point-in-time recovery, KMS encryption, TTL on `expires_at` for request-like entities);
- `POST /<entity>`      -> PutItem, conditional on the id being new (idempotent retries);
- `PUT /<entity>/{id}`  -> UpdateItem, conditional on `version == expected_version` (409 else);
- `GET /<entity>/{id}`  -> GetItem, the item and its status (404 when absent).

Bodies are validated by request models (JSON schema draft-4) before any template runs;
the VTL mapping templates live in `components/ingest_templates/` and get a short generated
preamble (`#set` lines) per entity. The attribute contract the write path keeps is in
`docs/ingest-api.md`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import pulumi
import pulumi_aws as aws

from dms_event_bus.components.common import (
    assume_role_json,
    check_name_prefix,
    kms_grant,
    policy_json,
)

TEMPLATE_DIR = Path(__file__).with_name("ingest_templates")

#: What an id (Idempotency-Key header or path parameter) must look like; request ids match too.
ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
#: `updated_by` of every write the API makes (see docs/ingest-api.md).
WRITER = "ingest-api"
#: Longest string field when the config gives no max_length.
DEFAULT_MAX_LENGTH = 1024
#: JSON's largest exactly representable integer: the bound of `expected_version`.
MAX_VERSION = 9_007_199_254_740_991

Kind = Literal["post", "put", "get"]
ACTIONS: dict[Kind, str] = {"post": "PutItem", "put": "UpdateItem", "get": "GetItem"}

#: Per method: (success status, statuses the templates can answer with).
STATUSES: dict[Kind, tuple[str, tuple[str, ...]]] = {
    "post": ("202", ("202", "400", "429", "500")),
    "put": ("202", ("202", "400", "404", "409", "429", "500")),
    # GET's 400 template always overrides the status (429 or 500); 400 is only its carrier.
    "get": ("200", ("200", "400", "404", "429", "500")),
}

#: Method request parameters per method (True: required).
PARAMETERS: dict[Kind, dict[str, bool]] = {
    "post": {"method.request.header.Idempotency-Key": False},
    "put": {"method.request.path.id": True},
    "get": {"method.request.path.id": True},
}

#: Integration response selection: DynamoDB's HTTP status (regex) -> the method status it maps
#: to before the template's `responseOverride`; anything else takes the success mapping.
ERROR_PATTERNS: dict[str, str] = {"400": r"4\d{2}", "500": r"5\d{2}"}

#: Gateway responses: API Gateway's own errors (validation, auth, throttling) as JSON.
GATEWAY_RESPONSES: dict[str, str] = {
    "BAD_REQUEST_BODY": (
        '{"message": $context.error.messageString, '
        '"reason": "$context.error.validationErrorString", "request_id": "$context.requestId"}'
    ),
    "BAD_REQUEST_PARAMETERS": (
        '{"message": $context.error.messageString, '
        '"reason": "$context.error.validationErrorString", "request_id": "$context.requestId"}'
    ),
    "DEFAULT_4XX": '{"message": $context.error.messageString, "request_id": "$context.requestId"}',
    "DEFAULT_5XX": '{"message": "internal error", "request_id": "$context.requestId"}',
}

#: Access log line (JSON, one per request).
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "requestTime": "$context.requestTimeEpoch",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "responseLatency": "$context.responseLatency",
        "integrationStatus": "$context.integration.status",
        "integrationLatency": "$context.integration.latency",
        "integrationError": "$context.integration.error",
        "errorMessage": "$context.error.message",
        "validationError": "$context.error.validationErrorString",
        "sourceIp": "$context.identity.sourceIp",
        "caller": "$context.identity.caller",
        "userArn": "$context.identity.userArn",
        "apiKeyId": "$context.identity.apiKeyId",
        "userAgent": "$context.identity.userAgent",
    },
    separators=(",", ":"),
)


# --------------------------------------------------------------------------- entities

FieldType = Literal["string", "integer", "number", "boolean"]


class FieldSpec(Protocol):
    """What the schema and template builders read of a field (`IngestField` has it)."""

    @property
    def type(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def max_length(self) -> int | None: ...
    @property
    def min_length(self) -> int | None: ...
    @property
    def pattern(self) -> str | None: ...
    @property
    def enum(self) -> Sequence[str] | None: ...
    @property
    def minimum(self) -> float | None: ...
    @property
    def maximum(self) -> float | None: ...
    @property
    def description(self) -> str: ...
    @property
    def attribute_type(self) -> Literal["S", "N", "BOOL"]: ...


class EntitySpec(Protocol):
    """What the schema and template builders read of an entity (`IngestEntity` has it)."""

    @property
    def fields(self) -> Mapping[str, FieldSpec]: ...
    @property
    def request_like(self) -> bool: ...
    @property
    def ttl_days(self) -> int: ...


@dataclass(frozen=True)
class IngestField:
    """One top-level property of an entity's JSON body, stored as one typed item attribute."""

    type: FieldType
    """JSON type; stored as DynamoDB S (string), N (integer, number) or BOOL."""
    required: bool = False
    """The body must contain this property."""
    max_length: int | None = None
    """Longest string (characters); strings only. None: `DEFAULT_MAX_LENGTH`."""
    min_length: int | None = None
    """Shortest string; strings only."""
    pattern: str | None = None
    """ECMA regular expression; strings only."""
    enum: Sequence[str] | None = None
    """Allowed values; strings only."""
    minimum: float | None = None
    """Smallest value; numbers only."""
    maximum: float | None = None
    """Largest value; numbers only."""
    description: str = ""
    """Shown in the request model."""

    @property
    def attribute_type(self) -> Literal["S", "N", "BOOL"]:
        """The DynamoDB attribute type this field is stored as."""
        if self.type == "string":
            return "S"
        return "BOOL" if self.type == "boolean" else "N"


@dataclass(frozen=True)
class IngestEntity:
    """One entity new services write: one table and one route set."""

    fields: Mapping[str, IngestField]
    """The properties of the JSON body, by name (in the order of the request model)."""
    request_like: bool = False
    """Items are requests that expire (TTL on `expires_at`)."""
    ttl_days: int = 30
    """Days until a request-like item expires."""
    deletion_protection: bool = False
    """Refuse deletes of the entity's table."""


# --------------------------------------------------------------------------- pure helpers


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def field_schema(entity: EntitySpec) -> dict[str, dict[str, Any]]:
    """JSON schema (draft-4) of each body property."""
    props: dict[str, dict[str, Any]] = {}
    for fname, spec in entity.fields.items():
        prop: dict[str, Any] = {"type": spec.type}
        if spec.description:
            prop["description"] = spec.description
        if spec.type == "string":
            prop["maxLength"] = spec.max_length or DEFAULT_MAX_LENGTH
            if spec.min_length is not None:
                prop["minLength"] = spec.min_length
            if spec.pattern is not None:
                prop["pattern"] = spec.pattern
            if spec.enum is not None:
                prop["enum"] = list(spec.enum)
        if spec.minimum is not None:
            prop["minimum"] = spec.minimum
        if spec.maximum is not None:
            prop["maximum"] = spec.maximum
        props[fname] = prop
    return props


def request_schema(entity_name: str, entity: EntitySpec, kind: Literal["post", "put"]) -> dict:
    """The request model of POST (create) or PUT (update, adds `expected_version`)."""
    props = field_schema(entity)
    required = [n for n, f in entity.fields.items() if f.required]
    if kind == "put":
        props["expected_version"] = {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_VERSION,
            "description": "The version the caller read; the update applies only if it is "
            "still the current one (409 otherwise).",
        }
        required = [*required, "expected_version"]
    schema: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": f"{_pascal(entity_name)}{'Create' if kind == 'post' else 'Update'}",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
    }
    if required:
        schema["required"] = required
    return schema


def _vtl_string(value: str) -> str:
    if '"' in value or "$" in value or "#" in value:
        raise ValueError(f"cannot put {value!r} into a VTL string literal")
    return f'"{value}"'


def template_preamble(entity: EntitySpec, *, table_name: str, max_body_bytes: int) -> str:
    """The `#set` lines that parameterise the static templates for one entity."""
    fields = ", ".join(
        "{"
        f'"name": {_vtl_string(n)}, "type": {_vtl_string(f.attribute_type)}, '
        f'"required": {"true" if f.required else "false"}'
        "}"
        for n, f in entity.fields.items()
    )
    ttl_seconds = entity.ttl_days * 86_400 if entity.request_like else 0
    return (
        f"#set($table = {_vtl_string(table_name)})\n"
        f"#set($fields = [{fields}])\n"
        f"#set($ttlSeconds = {ttl_seconds})\n"
        f"#set($maxBody = {max_body_bytes})\n"
        f"#set($idPattern = {_vtl_string(ID_PATTERN)})\n"
    )


def read_template(name: str) -> str:
    return (TEMPLATE_DIR / f"{name}.vtl").read_text(encoding="utf-8")


def mapping_templates(
    entity: EntitySpec, *, table_name: str, max_body_bytes: int
) -> dict[str, str]:
    """Every mapping template of one entity, by `<kind>_<role>` (e.g. `post_request`)."""
    preamble = template_preamble(entity, table_name=table_name, max_body_bytes=max_body_bytes)
    out: dict[str, str] = {}
    for kind in ACTIONS:
        for role in ("request", "response_ok", "response_400"):
            out[f"{kind}_{role}"] = preamble + read_template(f"{kind}_{role}")
    out["response_500"] = read_template("response_500")
    return out


def integration_uri(region: str, kind: Kind) -> str:
    return f"arn:aws:apigateway:{region}:dynamodb:action/{ACTIONS[kind]}"


# --------------------------------------------------------------------------- component


@dataclass(frozen=True)
class IngestApiArgs:
    """Inputs of IngestApi: plain values (`settings.component_args.ingest_api_args` builds
    them from the validated stack config)."""

    name_prefix: str
    """Prefix of every physical name (the environment's, e.g. `dmsbus-dev-`)."""
    entities: Mapping[str, IngestEntity]
    """Entities by logical name: one route set and one table each."""
    auth: Literal["iam", "api_key"] = "iam"
    """iam: SigV4-signed requests (AWS_IAM); api_key: a usage plan's key in x-api-key."""
    api_key_consumers: Sequence[str] = ()
    """auth api_key only: one API key per consuming service."""
    quota_per_day: int | None = None
    """auth api_key only: requests per key and day; None: no quota."""
    stage_name: str = "v1"
    """Stage name, part of the URL."""
    rate_limit: float = 50
    """Stage-wide steady-state requests per second (and the usage plan's)."""
    burst_limit: int = 100
    """Stage-wide bucket size in requests (and the usage plan's)."""
    max_body_bytes: int = 65_536
    """Largest accepted body (characters, measured by the mapping template)."""
    access_log_retention_days: int = 90
    """Retention of the access log group (a CloudWatch Logs value)."""
    kms_key_arn: str | None = None
    """Customer-managed KMS key ARN (not an alias) for tables, the access log group and the
    integration role; None: AWS-managed keys for the tables and CloudWatch Logs' own
    encryption for the log group."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every taggable resource."""

    def __post_init__(self) -> None:
        check_name_prefix("IngestApiArgs.name_prefix", self.name_prefix)
        if not self.entities:
            raise ValueError("IngestApiArgs.entities: expected at least one entity, found none")
        if self.kms_key_arn is not None and not re.fullmatch(
            r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/.+", self.kms_key_arn
        ):
            # not an alias ARN: IAM statements on an alias ARN do not cover the key, and the
            # access log group takes key ARNs only
            raise ValueError(
                f"IngestApiArgs.kms_key_arn: expected a KMS key ARN (arn:...:key/<id>, not an "
                f"alias), found {self.kms_key_arn!r}"
            )

    def table_name(self, entity: str) -> str:
        """Physical name of an entity's table."""
        return f"{self.name_prefix}ingest-{entity}"


class IngestApi(pulumi.ComponentResource):
    """REST API (regional, IAM or API-key auth) writing straight into per-entity tables."""

    url: pulumi.Output[str]
    rest_api_id: pulumi.Output[str]
    stage_name: pulumi.Output[str]
    execution_arn: pulumi.Output[str]
    table_names: dict[str, pulumi.Output[str]]
    table_arns: dict[str, pulumi.Output[str]]
    stream_arns: dict[str, pulumi.Output[str]]
    role_arn: pulumi.Output[str]
    access_log_group: pulumi.Output[str]
    api_key_ids: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: IngestApiArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dms-event-bus:index:IngestApi", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        invoke = pulumi.InvokeOptions(parent=self)
        region = aws.get_region(opts=invoke).region
        dns_suffix = aws.get_partition(opts=invoke).dns_suffix
        self._account = aws.get_caller_identity(opts=invoke).account_id

        tables = {e: self._create_table(e, spec, tags) for e, spec in args.entities.items()}
        self.table_names = {e: t.name for e, t in tables.items()}
        self.table_arns = {e: t.arn for e, t in tables.items()}
        self.stream_arns = {e: t.stream_arn for e, t in tables.items()}

        api = aws.apigateway.RestApi(
            f"{name}-api",
            name=f"{args.name_prefix}ingest",
            description="IngestApi: validated, idempotent writes straight into DynamoDB",
            endpoint_configuration=aws.apigateway.RestApiEndpointConfigurationArgs(
                types="REGIONAL"
            ),
            api_key_source="HEADER",
            tags=tags,
            opts=self._child,
        )
        role = self._create_role(tables, region, tags)
        validator = aws.apigateway.RequestValidator(
            f"{name}-validator",
            rest_api=api.id,
            name="body-and-parameters",
            validate_request_body=True,
            validate_request_parameters=True,
            opts=self._child,
        )

        self._api, self._validator, self._role, self._region = api, validator, role, region
        deploy_deps: list[pulumi.Resource] = []
        fingerprint: dict[str, Any] = {"auth": args.auth, "entities": {}}
        for entity, spec in args.entities.items():
            deps, fp = self._create_routes(entity, spec)
            deploy_deps.extend(deps)
            fingerprint["entities"][entity] = fp
        for response_type, template in GATEWAY_RESPONSES.items():
            deploy_deps.append(
                aws.apigateway.Response(
                    f"{name}-{response_type.lower().replace('_', '-')}",
                    rest_api_id=api.id,
                    response_type=response_type,
                    response_templates={"application/json": template},
                    opts=self._child,
                )
            )
        fingerprint["gateway_responses"] = GATEWAY_RESPONSES
        # Everything else a deployment snapshots that comes from code, not config: a change to
        # any of it must redeploy the stage, or the stage keeps serving the old methods.
        fingerprint["shape"] = {
            "actions": ACTIONS,
            "statuses": STATUSES,
            "parameters": PARAMETERS,
            "error_patterns": ERROR_PATTERNS,
        }
        redeploy = hashlib.sha256(
            json.dumps(fingerprint, sort_keys=True).encode("utf-8")
        ).hexdigest()

        deployment = aws.apigateway.Deployment(
            f"{name}-deployment",
            rest_api=api.id,
            description="IngestApi routes, models and templates",
            triggers={"redeployment": redeploy},
            opts=pulumi.ResourceOptions(parent=self, depends_on=deploy_deps),
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-access-logs",
            name=f"/aws/apigateway/{args.name_prefix}ingest/access",
            retention_in_days=args.access_log_retention_days,
            kms_key_id=args.kms_key_arn,
            tags=tags,
            opts=self._child,
        )
        stage = aws.apigateway.Stage(
            f"{name}-stage",
            rest_api=api.id,
            deployment=deployment.id,
            stage_name=args.stage_name,
            xray_tracing_enabled=True,
            access_log_settings=aws.apigateway.StageAccessLogSettingsArgs(
                destination_arn=log_group.arn, format=ACCESS_LOG_FORMAT
            ),
            tags=tags,
            opts=self._child,
        )
        aws.apigateway.MethodSettings(
            f"{name}-method-settings",
            rest_api=api.id,
            stage_name=stage.stage_name,
            method_path="*/*",
            settings=aws.apigateway.MethodSettingsSettingsArgs(
                throttling_rate_limit=args.rate_limit,
                throttling_burst_limit=args.burst_limit,
                metrics_enabled=True,
                logging_level="OFF",
                data_trace_enabled=False,
            ),
            opts=self._child,
        )
        self.api_key_ids = (
            self._create_usage_plan(api, stage, tags) if args.auth == "api_key" else {}
        )

        self.url = pulumi.Output.concat(
            "https://", api.id, ".execute-api.", region, ".", dns_suffix, "/", stage.stage_name
        )
        self.rest_api_id = api.id
        self.stage_name = stage.stage_name
        self.execution_arn = api.execution_arn
        self.role_arn = role.arn
        self.access_log_group = log_group.name
        self.register_outputs(
            {
                "url": self.url,
                "rest_api_id": self.rest_api_id,
                "stage_name": self.stage_name,
                "execution_arn": self.execution_arn,
                "table_names": self.table_names,
                "table_arns": self.table_arns,
                "stream_arns": self.stream_arns,
                "role_arn": self.role_arn,
                "access_log_group": self.access_log_group,
                "api_key_ids": self.api_key_ids,
            }
        )

    # ------------------------------------------------------------------ tables and role

    def _create_table(
        self, entity: str, spec: IngestEntity, tags: dict[str, str]
    ) -> aws.dynamodb.Table:
        args = self._args
        return aws.dynamodb.Table(
            f"{self._name}-{entity}-table",
            name=args.table_name(entity),
            billing_mode="PAY_PER_REQUEST",
            hash_key="id",
            attributes=[aws.dynamodb.TableAttributeArgs(name="id", type="S")],
            stream_enabled=True,
            stream_view_type="NEW_AND_OLD_IMAGES",
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=args.kms_key_arn
            ),
            ttl=aws.dynamodb.TableTtlArgs(attribute_name="expires_at", enabled=True)
            if spec.request_like
            else None,
            deletion_protection_enabled=spec.deletion_protection,
            tags={**tags, "dms-event-bus:ingest-entity": entity},
            opts=self._child,
        )

    def _create_role(
        self, tables: dict[str, aws.dynamodb.Table], region: str, tags: dict[str, str]
    ) -> aws.iam.Role:
        """Role API Gateway assumes for the integrations: three actions on these tables only
        (and, with a customer-managed key, that key through DynamoDB).

        The trust policy has no `aws:SourceAccount`/`aws:SourceArn` condition on purpose: API
        Gateway does not set those keys when it assumes an integration's credentials role, so
        such a condition denies every AssumeRole and every request ends in a 500 ("API Gateway
        does not have permission to assume the provided role"). Only principals of this account
        with `iam:PassRole` on the role can attach it to an integration (PassRole never crosses
        accounts), and the role can do nothing but the three item actions on these tables.
        """
        role = aws.iam.Role(
            f"{self._name}-integration-role",
            name=f"{self._args.name_prefix}ingest-apigw",
            description="API Gateway -> DynamoDB integrations of the IngestApi",
            assume_role_policy=assume_role_json("apigateway.amazonaws.com"),
            tags=tags,
            opts=self._child,
        )
        statements: list[dict[str, Any]] = [
            {
                "Sid": "IngestTables",
                "Effect": "Allow",
                "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem"],
                "Resource": [t.arn for t in tables.values()],
            }
        ]
        if self._args.kms_key_arn:
            # Tables under a customer-managed key: DynamoDB uses the key on the caller's behalf,
            # so the caller needs it too -- only through DynamoDB in this region, only for
            # these tables (DynamoDB's encryption context names the table).
            statements.append(
                kms_grant(
                    "TableKeyThroughDynamoDB",
                    self._args.kms_key_arn,
                    ["kms:Decrypt", "kms:GenerateDataKey"],
                    service="dynamodb",
                    region=region,
                    context=sorted(self._args.table_name(e) for e in tables),
                    account=self._account,
                )
            )
        aws.iam.RolePolicy(
            f"{self._name}-integration-policy",
            role=role.id,
            policy=policy_json(statements),
            opts=self._child,
        )
        return role

    # ------------------------------------------------------------------ routes

    def _create_routes(
        self, entity: str, spec: IngestEntity
    ) -> tuple[list[pulumi.Resource], dict[str, Any]]:
        """Models, resources and the three methods of one entity."""
        name, args, api = f"{self._name}-{entity}", self._args, self._api
        templates = mapping_templates(
            spec,
            table_name=args.table_name(entity),
            max_body_bytes=args.max_body_bytes,
        )
        schemas = {k: request_schema(entity, spec, k) for k in ("post", "put")}
        models = {
            kind: aws.apigateway.Model(
                f"{name}-{kind}-model",
                rest_api=api.id,
                name=schema["title"],
                description=f"{kind.upper()} /{entity} body",
                content_type="application/json",
                schema=json.dumps(schema, sort_keys=True),
                opts=self._child,
            )
            for kind, schema in schemas.items()
        }
        collection = aws.apigateway.Resource(
            f"{name}-resource",
            rest_api=api.id,
            parent_id=api.root_resource_id,
            path_part=entity,
            opts=self._child,
        )
        item = aws.apigateway.Resource(
            f"{name}-id-resource",
            rest_api=api.id,
            parent_id=collection.id,
            path_part="{id}",
            opts=self._child,
        )
        deps: list[pulumi.Resource] = []
        routes: list[tuple[Kind, aws.apigateway.Resource, dict[str, bool]]] = [
            ("post", collection, PARAMETERS["post"]),
            ("put", item, PARAMETERS["put"]),
            ("get", item, PARAMETERS["get"]),
        ]
        for kind, resource, params in routes:
            deps.extend(
                self._create_method(
                    name,
                    kind,
                    resource,
                    params=params,
                    templates=templates,
                    model=models.get(kind) if kind != "get" else None,
                )
            )
        fingerprint = {"templates": templates, "schemas": schemas, "path": entity}
        return deps, fingerprint

    def _create_method(
        self,
        name: str,
        kind: Kind,
        resource: aws.apigateway.Resource,
        *,
        params: dict[str, bool],
        templates: dict[str, str],
        model: aws.apigateway.Model | None,
    ) -> list[pulumi.Resource]:
        """One method, its DynamoDB integration and its mapped responses."""
        api, validator, role, region = self._api, self._validator, self._role, self._region
        iam = self._args.auth == "iam"
        method = aws.apigateway.Method(
            f"{name}-{kind}",
            rest_api=api.id,
            resource_id=resource.id,
            http_method=kind.upper(),
            authorization="AWS_IAM" if iam else "NONE",
            api_key_required=not iam,
            request_validator_id=validator.id,
            request_parameters=params,
            request_models={"application/json": model.name} if model is not None else None,
            opts=self._child,
        )
        integration = aws.apigateway.Integration(
            f"{name}-{kind}-integration",
            rest_api=api.id,
            resource_id=resource.id,
            http_method=method.http_method,
            type="AWS",
            integration_http_method="POST",
            uri=integration_uri(region, kind),
            credentials=role.arn,
            passthrough_behavior="NEVER",
            request_templates={"application/json": templates[f"{kind}_request"]},
            opts=self._child,
        )
        success, statuses = STATUSES[kind]
        responses: list[pulumi.Resource] = [method, integration]
        method_responses = {
            status: aws.apigateway.MethodResponse(
                f"{name}-{kind}-{status}",
                rest_api=api.id,
                resource_id=resource.id,
                http_method=method.http_method,
                status_code=status,
                response_models={"application/json": "Empty"},
                opts=self._child,
            )
            for status in statuses
        }
        responses.extend(method_responses.values())
        mapped = [
            (success, None, templates[f"{kind}_response_ok"]),
            ("400", ERROR_PATTERNS["400"], templates[f"{kind}_response_400"]),
            ("500", ERROR_PATTERNS["500"], templates["response_500"]),
        ]
        for status, pattern, template in mapped:
            responses.append(
                aws.apigateway.IntegrationResponse(
                    f"{name}-{kind}-{'default' if pattern is None else status}-mapping",
                    rest_api=api.id,
                    resource_id=resource.id,
                    http_method=method.http_method,
                    status_code=method_responses[status].status_code,
                    selection_pattern=pattern,
                    response_templates={"application/json": template},
                    opts=pulumi.ResourceOptions(
                        parent=self, depends_on=[integration, method_responses[status]]
                    ),
                )
            )
        return responses

    # ------------------------------------------------------------------ api keys

    def _create_usage_plan(
        self,
        api: aws.apigateway.RestApi,
        stage: aws.apigateway.Stage,
        tags: dict[str, str],
    ) -> dict[str, pulumi.Output[str]]:
        args, prefix = self._args, self._args.name_prefix
        plan = aws.apigateway.UsagePlan(
            f"{self._name}-usage-plan",
            name=f"{prefix}ingest",
            api_stages=[
                aws.apigateway.UsagePlanApiStageArgs(api_id=api.id, stage=stage.stage_name)
            ],
            throttle_settings=aws.apigateway.UsagePlanThrottleSettingsArgs(
                rate_limit=args.rate_limit, burst_limit=args.burst_limit
            ),
            quota_settings=aws.apigateway.UsagePlanQuotaSettingsArgs(
                limit=args.quota_per_day, period="DAY"
            )
            if args.quota_per_day
            else None,
            tags=tags,
            opts=self._child,
        )
        ids: dict[str, pulumi.Output[str]] = {}
        for consumer in args.api_key_consumers:
            key = aws.apigateway.ApiKey(
                f"{self._name}-{consumer}-key",
                name=f"{prefix}ingest-{consumer}",
                description=f"IngestApi key of {consumer} (value generated by API Gateway)",
                enabled=True,
                tags=tags,
                opts=self._child,
            )
            aws.apigateway.UsagePlanKey(
                f"{self._name}-{consumer}-plan-key",
                key_id=key.id,
                key_type="API_KEY",
                usage_plan_id=plan.id,
                opts=self._child,
            )
            ids[consumer] = key.id
        return ids
