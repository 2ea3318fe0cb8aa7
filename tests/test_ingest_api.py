"""IngestApi under Pulumi mocks: routes, auth, validators, integrations, IAM, throttling,
access logs, error mapping, tables; and its config section."""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pytest

from dms_event_bus.components import ingest_api
from dms_event_bus.components.ingest_api import (
    GATEWAY_RESPONSES,
    IngestApi,
    IngestApiArgs,
    mapping_templates,
    request_schema,
)
from dms_event_bus.settings import ConfigError, load_settings
from dms_event_bus.settings.component_args import ingest_api_args
from dms_event_bus.settings.ingest import IngestSettings
from dms_event_bus.settings.stackfile import project_config, read_stack_config, stack_files
from policy import rules
from tests.fixture_stacks import STACKS_DIR
from tools.mockrun import ACCOUNT, Declared, Plan, run_program

KMS = "arn:aws:kms:eu-west-1:210987654321:key/1f2e3d4c-5b6a-4789-9abc-def012345678"
ENTITIES: dict[str, Any] = {
    "order_requests": {
        "request_like": True,
        "ttl_days": 14,
        "fields": {
            "customer_id": {"type": "integer", "required": True},
            "amount": {"type": "number", "required": True},
            "note": {"type": "string", "max_length": 500},
        },
    },
    "customer_profiles": {"fields": {"name": {"type": "string", "required": True}}},
}


def settings(**overrides: Any) -> IngestSettings:
    raw: dict[str, Any] = {
        "entities": ENTITIES,
        "throttling": {"rate_limit": 25, "burst_limit": 40},
        "access_log_retention_days": 30,
        "stage_name": "v2",
    }
    raw.update(overrides)
    return IngestSettings.model_validate(raw)


def plan_of(cfg: IngestSettings, *, name: str = "ingest", kms: str | None = None) -> Plan:
    def program() -> None:
        api = IngestApi(
            name,
            ingest_api_args(
                cfg, name_prefix="dmsbus-dev-", kms_key_arn=kms, tags={"team": "x"}
            ),
        )
        pulumi.export("url", api.url)
        pulumi.export("table_names", api.table_names)
        pulumi.export("stream_arns", api.stream_arns)
        pulumi.export("api_key_ids", api.api_key_ids)

    return run_program("dev", {"aws:region": "eu-west-1"}, program)


@pytest.fixture(scope="module")
def iam_plan() -> Plan:
    return plan_of(settings())


@pytest.fixture(scope="module")
def key_plan() -> Plan:
    return plan_of(
        settings(auth="api_key", api_key_consumers=["billing_svc", "shop_svc"], quota_per_day=1000),
        name="keyed",
        kms=KMS,
    )


def of(plan: Plan, short: str) -> list[Declared]:
    return [r for r in plan.resources if r.type.endswith(f"/{short}")]


def mock_id(r: Declared) -> str:
    """The id tools.mockrun gives a resource: its physical name (or resource name) + `-id`."""
    return f"{r.inputs.get('name') or r.name}-id"


def method(plan: Plan, entity: str, kind: str, name: str = "ingest") -> Declared:
    return plan.named(f"{name}-{entity}-{kind}")


# --------------------------------------------------------------------------- routes


def test_routes_per_entity(iam_plan: Plan) -> None:
    # GIVEN two entities WHEN the component runs THEN /<entity> and /<entity>/{id} exist with
    # POST on the collection, PUT and GET on the item, and nothing else
    resources = {r.name: r for r in of(iam_plan, "resource:Resource")}
    api = iam_plan.named("ingest-api")
    assert {r.inputs["pathPart"] for r in resources.values()} == {
        "order_requests", "customer_profiles", "{id}",
    }  # fmt: skip
    for entity in ENTITIES:
        collection = resources[f"ingest-{entity}-resource"]
        item = resources[f"ingest-{entity}-id-resource"]
        # parentId is the API's root resource id (unknown under mocks): the API is a dependency
        assert api.urn in collection.dependencies
        assert item.inputs["parentId"] == f"ingest-{entity}-resource-id"
        assert method(iam_plan, entity, "post").inputs["resourceId"] == f"{collection.name}-id"
        assert method(iam_plan, entity, "put").inputs["resourceId"] == f"{item.name}-id"
        assert method(iam_plan, entity, "get").inputs["resourceId"] == f"{item.name}-id"
    verbs = sorted(m.inputs["httpMethod"] for m in of(iam_plan, "method:Method"))
    assert verbs == ["GET", "GET", "POST", "POST", "PUT", "PUT"]


def test_api_is_regional_and_named_for_the_environment(iam_plan: Plan) -> None:
    api = iam_plan.named("ingest-api")
    assert api.inputs["endpointConfiguration"]["types"] == "REGIONAL"
    assert api.inputs["name"] == "dmsbus-dev-ingest"
    assert "policy" not in api.inputs  # no resource policy opening it up


def test_no_lambda_anywhere(iam_plan: Plan, key_plan: Plan) -> None:
    for plan in (iam_plan, key_plan):
        assert not [r for r in plan.resources if r.type.startswith("aws:lambda/")]
        for integration in of(plan, "integration:Integration"):
            assert ":lambda:" not in integration.inputs["uri"]


def test_every_child_is_parented_to_the_component(iam_plan: Plan) -> None:
    (component,) = [r for r in iam_plan.resources if r.type == "dms-event-bus:index:IngestApi"]
    for r in iam_plan.resources:
        if r is not component:
            assert r.parent == component.urn, r.name
            assert r.name.startswith("ingest-"), r.name


# --------------------------------------------------------------------------- auth


def test_iam_auth_on_every_method(iam_plan: Plan) -> None:
    for m in of(iam_plan, "method:Method"):
        assert m.inputs["authorization"] == "AWS_IAM", m.name
        assert not m.inputs.get("apiKeyRequired"), m.name
    assert not of(iam_plan, "usagePlan:UsagePlan")
    assert not of(iam_plan, "apiKey:ApiKey")


def test_api_key_auth_with_usage_plan(key_plan: Plan) -> None:
    # GIVEN auth api_key with two consumers and a daily quota
    for m in of(key_plan, "method:Method"):
        assert m.inputs["authorization"] == "NONE"
        assert m.inputs["apiKeyRequired"] is True, m.name  # never public without a key
    (plan,) = of(key_plan, "usagePlan:UsagePlan")
    assert plan.inputs["apiStages"] == [{"apiId": "dmsbus-dev-ingest-id", "stage": "v2"}]
    assert plan.inputs["throttleSettings"] == {"rateLimit": 25, "burstLimit": 40}
    assert plan.inputs["quotaSettings"] == {"limit": 1000, "period": "DAY"}
    keys = of(key_plan, "apiKey:ApiKey")
    assert sorted(k.inputs["name"] for k in keys) == [
        "dmsbus-dev-ingest-billing_svc", "dmsbus-dev-ingest-shop_svc",
    ]  # fmt: skip
    assert all("value" not in k.inputs for k in keys)  # values generated, never in config
    links = of(key_plan, "usagePlanKey:UsagePlanKey")
    assert sorted(x.inputs["keyId"] for x in links) == sorted(mock_id(k) for k in keys)
    assert all(x.inputs["usagePlanId"] == mock_id(plan) for x in links)
    assert sorted(key_plan.exports["api_key_ids"]) == ["billing_svc", "shop_svc"]


# --------------------------------------------------------------------------- validation


def test_validator_attached_to_every_method(iam_plan: Plan) -> None:
    (validator,) = of(iam_plan, "requestValidator:RequestValidator")
    assert validator.inputs["validateRequestBody"] is True
    assert validator.inputs["validateRequestParameters"] is True
    for m in of(iam_plan, "method:Method"):
        assert m.inputs["requestValidatorId"] == mock_id(validator)


def test_request_models_are_the_draft4_schemas(iam_plan: Plan) -> None:
    cfg = settings()
    models = {m.inputs["name"]: m for m in of(iam_plan, "model:Model")}
    for entity, spec in cfg.entities.items():
        for kind, title in (("post", "Create"), ("put", "Update")):
            schema = request_schema(entity, spec, kind)  # type: ignore[arg-type]
            model = models[schema["title"]]
            assert schema["title"].endswith(title)
            assert model.inputs["contentType"] == "application/json"
            assert json.loads(model.inputs["schema"]) == schema
            assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
            assert schema["additionalProperties"] is False
            m = method(iam_plan, entity, kind)
            assert m.inputs["requestModels"] == {"application/json": schema["title"]}
        assert "requestModels" not in method(iam_plan, entity, "get").inputs
    put_schema = json.loads(models["OrderRequestsUpdate"].inputs["schema"])
    assert "expected_version" in put_schema["required"]
    assert put_schema["properties"]["note"]["maxLength"] == 500


def test_request_parameters(iam_plan: Plan) -> None:
    for entity in ENTITIES:
        assert method(iam_plan, entity, "post").inputs["requestParameters"] == {
            "method.request.header.Idempotency-Key": False
        }
        for kind in ("put", "get"):
            assert method(iam_plan, entity, kind).inputs["requestParameters"] == {
                "method.request.path.id": True
            }


# --------------------------------------------------------------------------- integrations


@pytest.mark.parametrize(
    ("kind", "action"), [("post", "PutItem"), ("put", "UpdateItem"), ("get", "GetItem")]
)
def test_integrations_call_dynamodb_directly(iam_plan: Plan, kind: str, action: str) -> None:
    role = iam_plan.named("ingest-integration-role")
    for entity, spec in settings().entities.items():
        integration = iam_plan.named(f"ingest-{entity}-{kind}-integration")
        inputs = integration.inputs
        assert inputs["type"] == "AWS"
        assert inputs["integrationHttpMethod"] == "POST"
        assert inputs["uri"] == f"arn:aws:apigateway:eu-west-1:dynamodb:action/{action}"
        assert inputs["credentials"] == role.outputs["arn"]
        assert inputs["passthroughBehavior"] == "NEVER"  # no raw body ever reaches DynamoDB
        expected = mapping_templates(
            spec, table_name=f"dmsbus-dev-ingest-{entity}", max_body_bytes=65_536
        )[f"{kind}_request"]
        assert inputs["requestTemplates"] == {"application/json": expected}


# --------------------------------------------------------------------------- IAM


def test_role_policy_is_exactly_three_actions_on_exactly_these_tables(iam_plan: Plan) -> None:
    (policy,) = of(iam_plan, "rolePolicy:RolePolicy")
    doc = json.loads(policy.inputs["policy"])
    (statement,) = doc["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == [
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
    ]  # fmt: skip
    tables = of(iam_plan, "table:Table")
    assert sorted(statement["Resource"]) == sorted(t.outputs["arn"] for t in tables)
    assert "*" not in json.dumps(doc)
    assert policy.inputs["role"] == "dmsbus-dev-ingest-apigw-id"


def test_role_may_use_the_customer_key_only_through_dynamodb(key_plan: Plan) -> None:
    # GIVEN tables encrypted with a customer-managed key
    (policy,) = of(key_plan, "rolePolicy:RolePolicy")
    tables_statement, key_statement = json.loads(policy.inputs["policy"])["Statement"]
    # THEN the table statement is unchanged and the key is usable only via DynamoDB here,
    # only for these tables (DynamoDB's encryption context names the table)
    tables = of(key_plan, "table:Table")
    assert sorted(tables_statement["Resource"]) == sorted(t.outputs["arn"] for t in tables)
    assert key_statement == {
        "Sid": "TableKeyThroughDynamoDB",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": [KMS],
        "Condition": {
            "StringEquals": {
                "kms:ViaService": "dynamodb.eu-west-1.amazonaws.com",
                "kms:EncryptionContext:aws:dynamodb:subscriberId": ACCOUNT,
            },
            "StringLike": {
                "kms:EncryptionContext:aws:dynamodb:tableName": sorted(
                    t.inputs["name"] for t in tables
                )
            },
        },
    }


def test_role_trust_is_api_gateway_without_source_conditions(iam_plan: Plan) -> None:
    # API Gateway does not populate aws:SourceAccount / aws:SourceArn when it assumes an
    # integration's credentials role: a condition on them denies the AssumeRole and every
    # request answers 500 (seen on a live stack: aws-solutions-library-samples/
    # accelerated-intelligent-document-processing-on-aws PR #479). So: principal only.
    role = iam_plan.named("ingest-integration-role")
    doc = json.loads(role.inputs["assumeRolePolicy"])
    assert doc["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "apigateway.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    assert role.inputs["name"] == "dmsbus-dev-ingest-apigw"
    # the role is usable by these integrations only through its ARN, and only for the tables
    for integration in of(iam_plan, "integration:Integration"):
        assert integration.inputs["credentials"] == role.outputs["arn"]


def test_policy_pack_passes_on_the_component(iam_plan: Plan, key_plan: Plan) -> None:
    # The program does not compose IngestApi yet, so the stack-level policy test never sees
    # its resources: run every rule of the pack over both variants here.
    for plan in (iam_plan, key_plan):
        resources = [
            {"type": r.type, "name": r.name, "urn": r.urn, "props": r.inputs,
             "dependencies": r.dependencies}
            for r in plan.resources
        ]  # fmt: skip
        assert rules.check_all(resources) == []
        guarded = {t for rule in rules.RESOURCE_RULES for t in rule.types}
        # the rules meet the tables, the role and its policy (else the check proves nothing)
        assert {r.type for r in plan.resources} & guarded >= {
            rules.DYNAMODB_TABLE, rules.IAM_ROLE, "aws:iam/rolePolicy:RolePolicy",
        }  # fmt: skip


# --------------------------------------------------------------------------- stage


def test_stage_throttling_from_config(iam_plan: Plan) -> None:
    (ms,) = of(iam_plan, "methodSettings:MethodSettings")
    assert ms.inputs["methodPath"] == "*/*"
    assert ms.inputs["stageName"] == "v2"
    assert ms.inputs["settings"]["throttlingRateLimit"] == 25
    assert ms.inputs["settings"]["throttlingBurstLimit"] == 40
    assert ms.inputs["settings"]["metricsEnabled"] is True
    assert ms.inputs["settings"].get("dataTraceEnabled") is False  # no bodies in logs


def test_access_logging_to_encrypted_log_group(iam_plan: Plan, key_plan: Plan) -> None:
    for plan, name, kms in ((iam_plan, "ingest", None), (key_plan, "keyed", KMS)):
        log_group = plan.named(f"{name}-access-logs")
        stage = plan.named(f"{name}-stage")
        assert log_group.inputs["retentionInDays"] == 30
        assert log_group.inputs["name"] == "/aws/apigateway/dmsbus-dev-ingest/access"
        assert log_group.inputs.get("kmsKeyId") == kms
        settings_ = stage.inputs["accessLogSettings"]
        assert settings_["destinationArn"] == log_group.outputs["arn"]
        line = json.loads(settings_["format"])
        assert line["requestId"] == "$context.requestId"
        assert line["status"] == "$context.status"
        assert stage.inputs["stageName"] == "v2"


def test_deployment_redeploys_when_the_api_changes() -> None:
    # GIVEN two runs with the same config and one with an extra field
    def trigger(cfg: IngestSettings) -> str:
        plan = plan_of(cfg)
        dep = plan.named("ingest-deployment")
        assert plan.named("ingest-stage").inputs["deployment"] == f"{dep.name}-id"
        return dep.inputs["triggers"]["redeployment"]

    same_a, same_b = trigger(settings()), trigger(settings())
    entities = json.loads(json.dumps(ENTITIES))
    entities["customer_profiles"]["fields"]["vip"] = {"type": "boolean"}
    changed = trigger(settings(entities=entities))
    # THEN the hash is stable for the same API and changes with it
    assert same_a == same_b
    assert changed != same_a
    assert re.fullmatch(r"[0-9a-f]{64}", same_a)


def test_deployment_redeploys_when_the_method_shape_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Method responses, parameters and selection patterns come from code, not config; the
    # stage serves a snapshot, so a change to them must change the trigger too.
    def trigger() -> str:
        return plan_of(settings()).named("ingest-deployment").inputs["triggers"]["redeployment"]

    before = trigger()
    monkeypatch.setattr(ingest_api, "ERROR_PATTERNS", {"400": r"4\d{2}", "500": r"5\d\d"})
    patterns = trigger()
    monkeypatch.setattr(
        ingest_api, "STATUSES", {**ingest_api.STATUSES, "get": ("200", ("200", "400", "500"))}
    )
    statuses = trigger()
    assert len({before, patterns, statuses}) == 3


def test_deployment_waits_for_every_method_and_mapping(iam_plan: Plan) -> None:
    dep = iam_plan.named("ingest-deployment")
    needed = {
        r.urn
        for r in iam_plan.resources
        if r.short_type in {"Method", "Integration", "IntegrationResponse", "MethodResponse",
                            "Response"}
    }  # fmt: skip
    assert needed <= set(dep.dependencies)


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("kind", "success", "statuses"),
    [
        ("post", "202", {"202", "400", "429", "500"}),
        ("put", "202", {"202", "400", "404", "409", "429", "500"}),
        ("get", "200", {"200", "400", "404", "429", "500"}),
    ],
)
def test_integration_responses_are_mapped(
    iam_plan: Plan, kind: str, success: str, statuses: set[str]
) -> None:
    for entity in ENTITIES:
        prefix = f"ingest-{entity}-{kind}-"
        method_statuses = {
            r.inputs["statusCode"]
            for r in of(iam_plan, "methodResponse:MethodResponse")
            if r.name.startswith(prefix)
        }
        assert method_statuses == statuses
        mapped = {
            r.inputs.get("selectionPattern"): r
            for r in of(iam_plan, "integrationResponse:IntegrationResponse")
            if r.name.startswith(prefix)
        }
        assert set(mapped) == {None, r"4\d{2}", r"5\d{2}"}
        assert mapped[None].inputs["statusCode"] == success
        assert mapped[r"4\d{2}"].inputs["statusCode"] == "400"
        assert mapped[r"5\d{2}"].inputs["statusCode"] == "500"
        for r in mapped.values():
            template = r.inputs["responseTemplates"]["application/json"]
            assert "$input.body" not in template and "$input.json('$')" not in template


def test_gateway_responses_explain_validation_errors(iam_plan: Plan) -> None:
    responses = {r.inputs["responseType"]: r for r in of(iam_plan, "response:Response")}
    assert set(responses) == set(GATEWAY_RESPONSES)
    body = responses["BAD_REQUEST_BODY"].inputs["responseTemplates"]["application/json"]
    assert "$context.error.validationErrorString" in body
    assert "$context.requestId" in body


# --------------------------------------------------------------------------- tables


def test_app_owned_tables(iam_plan: Plan, key_plan: Plan) -> None:
    tables = {t.inputs["name"]: t for t in of(iam_plan, "table:Table")}
    assert set(tables) == {
        "dmsbus-dev-ingest-order_requests", "dmsbus-dev-ingest-customer_profiles",
    }  # fmt: skip
    for name, t in tables.items():
        inputs = t.inputs
        assert inputs["hashKey"] == "id"
        assert inputs["attributes"] == [{"name": "id", "type": "S"}]
        assert inputs["billingMode"] == "PAY_PER_REQUEST"
        assert inputs["streamEnabled"] is True
        assert inputs["streamViewType"] == "NEW_AND_OLD_IMAGES"
        assert inputs["pointInTimeRecovery"] == {"enabled": True}
        assert inputs["serverSideEncryption"]["enabled"] is True
        if name.endswith("order_requests"):
            assert inputs["ttl"] == {"attributeName": "expires_at", "enabled": True}
        else:
            assert "ttl" not in inputs
    for t in of(key_plan, "table:Table"):
        assert t.inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": KMS}


def test_outputs(iam_plan: Plan) -> None:
    assert iam_plan.exports["url"] == (
        "https://dmsbus-dev-ingest-id.execute-api.eu-west-1.amazonaws.com/v2"
    )
    assert iam_plan.exports["table_names"] == {
        "order_requests": "dmsbus-dev-ingest-order_requests",
        "customer_profiles": "dmsbus-dev-ingest-customer_profiles",
    }
    for entity, arn in iam_plan.exports["stream_arns"].items():
        assert arn.startswith(f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/dmsbus-dev-ingest-")
        assert entity in arn and "/stream/" in arn
    assert iam_plan.exports["api_key_ids"] == {}


# --------------------------------------------------------------------------- args and config


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name_prefix": "Dmsbus_dev"}, "name_prefix"),
        ({"kms_key_arn": "alias/mine"}, "kms_key_arn"),
        ({"kms_key_arn": "arn:aws:kms:eu-west-1:210987654321:alias/mine"}, "kms_key_arn"),
        ({"entities": {}}, "entities"),
    ],
)
def test_args_errors_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    good = ingest_api_args(settings(), name_prefix="dmsbus-dev-")
    base: dict[str, Any] = {"entities": good.entities, "name_prefix": good.name_prefix}
    base.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=rf"IngestApiArgs\.{field}"):
        IngestApiArgs(**base)


def _stack(ingest: Any) -> dict[str, Any]:
    return {
        "tables": {"orders": {"partition_key": {"name": "order_id", "type": "N"}}},
        "ingest_api": ingest,
    }


@pytest.mark.parametrize(
    ("ingest", "path", "words"),
    [
        (
            {"entities": {"o": {"fields": {"status": {"type": "string"}}}}},
            "dms-event-bus:ingest_api.entities.o",
            "found status",
        ),
        (
            {"entities": ENTITIES, "auth": "api_key"},
            "dms-event-bus:ingest_api",
            "api_key_consumers",
        ),
        (
            {"entities": ENTITIES, "access_log_retention_days": 10},
            "dms-event-bus:ingest_api",
            "found 10",
        ),
        ({"entities": ENTITIES, "auth": "cognito"}, "dms-event-bus:ingest_api.auth", "cognito"),
        (
            {"entities": {"o": {"fields": {"n": {"type": "integer", "max_length": 3}}}}},
            "dms-event-bus:ingest_api.entities.o.fields.n",
            "max_length only on a field of type string",
        ),
        (
            {"entities": ENTITIES, "throttling": {"rate_limit": 0}},
            "dms-event-bus:ingest_api.throttling.rate_limit",
            "> 0",
        ),
        ({"entities": {}}, "dms-event-bus:ingest_api.entities", "at least 1"),
        (
            {"entities": {"o": {"ttl_days": 3, "fields": {"n": {"type": "integer"}}}}},
            "dms-event-bus:ingest_api.entities.o",
            "ttl_days: expected it only with request_like: true",
        ),
    ],
)
def test_bad_config_names_the_key_path(ingest: Any, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings("dev", _stack(ingest))
    text = str(err.value)
    assert path in text, text
    assert words in text, text


def test_settings_survive_a_dump_and_validate_round_trip() -> None:
    for cfg in (settings(), settings(auth="api_key", api_key_consumers=["a_svc"])):
        assert IngestSettings.model_validate(cfg.model_dump()) == cfg


@pytest.mark.parametrize("stack", sorted(stack_files(STACKS_DIR)))
def test_stack_files_configure_the_api(stack: str) -> None:
    loaded = load_settings(stack, project_config(read_stack_config(stack, STACKS_DIR)))
    assert loaded.ingest_api is not None, f"Pulumi.{stack}.yaml has no ingest_api section"
    plan = plan_of(loaded.ingest_api)
    assert len(of(plan, "table:Table")) == len(loaded.ingest_api.entities)
    # throttling, auth and access-log retention of the stack file reach the stage
    cfg = loaded.ingest_api
    (ms,) = of(plan, "methodSettings:MethodSettings")
    assert ms.inputs["settings"]["throttlingRateLimit"] == cfg.throttling.rate_limit
    assert ms.inputs["settings"]["throttlingBurstLimit"] == cfg.throttling.burst_limit
    assert plan.named("ingest-access-logs").inputs["retentionInDays"] == (
        cfg.access_log_retention_days
    )
    methods = of(plan, "method:Method")
    if cfg.auth == "iam":
        assert {m.inputs["authorization"] for m in methods} == {"AWS_IAM"}
        assert not of(plan, "usagePlan:UsagePlan")
    else:
        assert {m.inputs.get("apiKeyRequired") for m in methods} == {True}
        (usage,) = of(plan, "usagePlan:UsagePlan")
        assert usage.inputs["throttleSettings"] == {
            "rateLimit": cfg.throttling.rate_limit, "burstLimit": cfg.throttling.burst_limit,
        }  # fmt: skip
        assert len(of(plan, "apiKey:ApiKey")) == len(cfg.api_key_consumers)
