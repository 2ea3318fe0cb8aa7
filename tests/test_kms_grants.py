"""Every role that touches a resource under the stack's customer-managed key may use the key,
only through that resource's service, and no further.

The program runs under mocks for a stack of the test's own (a customer-managed key, waypoint
tables declared and adopted, the archive, an IngestApi, a writeback from both origins, DMS).
Then, for every IAM role of the graph and every encrypted resource (DynamoDB table and its
stream, Kinesis stream, SQS queue, S3 bucket, SNS topic under the key), the role's own policy
decides (tests/iam_eval.py) whether the role may read or write the resource; if it may, the
request the service then makes to KMS on the role's behalf -- the KMS action, `kms:ViaService`
and the encryption context the service documents -- must be allowed by one of the role's KMS
grants. And every KMS grant names a `kms:ViaService` of a service the role uses the key
through: none is unconditioned, none is for a service the role does not use.

What the services send (AWS documentation):
- DynamoDB: `kms:Decrypt` of the table key for any item or stream read or write by the caller,
  encryption context `aws:dynamodb:tableName` (and `aws:dynamodb:subscriberId`);
- Kinesis: producers `kms:GenerateDataKey`, consumers `kms:Decrypt`, context
  `aws:kinesis:arn` = the stream ARN;
- S3 (SSE-KMS with an S3 Bucket Key, as every bucket here): PutObject `kms:GenerateDataKey`,
  GetObject `kms:Decrypt`, context `aws:s3:arn` = the bucket ARN;
- SQS: senders `kms:GenerateDataKey` and `kms:Decrypt` (no context is relied on);
- SNS: publishers `kms:GenerateDataKey*` and `kms:Decrypt`.
CloudWatch Logs and Lambda's environment encryption use the key through the key policy and
grants Lambda creates, not through the roles: they are not checked here (the account preflight
checks the key policy). Nor is a service principal that writes to a queue under the key itself
(EventBridge putting a failed dispatch into the adoption trigger's DLQ): SQS asks KMS on that
service's behalf, so only the key policy can allow it. The last tests hold the account
preflight to every such writer the graph declares, with the real key-policy evaluator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dms_event_bus.components.common import ENCRYPTION_CONTEXT_KEYS
from dms_event_bus.settings import load_settings
from dms_event_bus.settings.stackfile import as_engine_config, project_config
from tests.iam_eval import Role, as_list, condition_allows, roles_of
from tools.account.checks import (
    account_key_statement,
    check_stack_key,
    events_key_statement,
    logs_key_statement,
)
from tools.account.needs import StackNeeds, stack_needs
from tools.mockrun import ACCOUNT, Plan, run_stack

REGION = "eu-west-1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
STACK = "cmk"
PREFIX = f"dmsbus-{STACK}-"
ADOPTED = [f"{PREFIX}audit_logins", f"{PREFIX}audit_events"]
SECRETS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret"
BUCKET_SSE = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)

#: Per service: data action -> the KMS actions the service then needs on the caller's behalf.
NEEDS: dict[str, dict[str, list[str]]] = {
    "dynamodb": {a: ["kms:Decrypt"] for a in (
        "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:Scan", "dynamodb:Query",
        "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
        "dynamodb:DeleteItem", "dynamodb:BatchWriteItem")},
    "kinesis": {"kinesis:PutRecord": ["kms:GenerateDataKey"],
                "kinesis:PutRecords": ["kms:GenerateDataKey"],
                "kinesis:GetRecords": ["kms:Decrypt"]},
    "s3": {"s3:PutObject": ["kms:GenerateDataKey"], "s3:GetObject": ["kms:Decrypt"]},
    "sqs": {"sqs:SendMessage": ["kms:GenerateDataKey", "kms:Decrypt"],
            "sqs:ReceiveMessage": ["kms:Decrypt"]},
    "sns": {"sns:Publish": ["kms:GenerateDataKey", "kms:Decrypt"]},
}


@dataclass(frozen=True)
class Encrypted:
    """One resource under the key: the ARNs its data actions name, its encryption context."""

    service: str
    name: str
    arns: dict[str, str]  # data action -> the ARN a request of that action names
    context: str | None  # value of the service's encryption-context key


def stack_config() -> dict[str, Any]:
    key_table = {"partition_key": {"name": "id", "type": "N"}}
    return {
        "aws:region": REGION,
        "dms-event-bus:encryption": {"kms_key_arn": KEY},
        "dms-event-bus:tables": {
            "orders": {"source": {"schema": "sales", "table": "orders"}, **key_table},
            "customers": {"source": {"schema": "sales", "table": "customers"}, **key_table},
        },
        "dms-event-bus:bus": {"archive": {"enabled": True}, "overflow": {"expire_days": 365}},
        "dms-event-bus:dms": {
            "capacity": {"mode": "serverless", "min_capacity_units": 1, "max_capacity_units": 4},
            "network": {"vpc_id": "vpc-0a1b2c3d4e5f60718",
                        "subnet_ids": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
                        "source_cidrs": ["10.20.0.0/24"]},
            "account_roles": "existing",
            "source": {"engine": "postgres", "server": "erp.example.com", "port": 5432,
                       "database": "erp", "ssl_mode": "require",
                       "secret_arn": f"{SECRETS}:erp-a1B2c3"},
            "default_schema": "sales",
            "wildcards": [{"schema": "audit", "table_pattern": "%", "table_prefix": "audit_"}],
        },
        "dms-event-bus:ingest_api": {
            "entities": {"order_requests": {"fields": {
                "customer_id": {"type": "integer", "required": True}}}},
        },
        "dms-event-bus:writeback": {
            "target": {"kind": "data_api", "engine": "postgres", "database": "erp",
                       "cluster_arn": f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:erp",
                       "secret_arn": f"{SECRETS}:wb-f6G7h8"},
            "vpc": {"subnet_ids": ["subnet-0b1c2d3e4f5a60001"],
                    "security_group_ids": ["sg-0b1c2d3e4f5a60718"]},
            "tables": {
                "order_requests": {"legacy_table": "sales.order_requests",
                                   "key_columns": {"id": "request_id"},
                                   "columns": {"customer_id": "customer_id"}},
                "customers": {"origin": "tables", "legacy_table": "sales.customers",
                              "key_columns": {"id": "customer_id"}, "columns": {}},
            },
        },
        # the trigger's DLQ is under the key, written by events.amazonaws.com itself
        "dms-event-bus:adoption": {"trigger": {"repository": "acme/dms-event-bus",
                                               "token_secret_arn": f"{SECRETS}:gh-k9L0m1"}},
    }


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    folder: Path = tmp_path_factory.mktemp("cmk")
    (folder / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": stack_config()}))
    tables = {"aws:dynamodb/getTables:getTables": lambda _a: {"names": ADOPTED, "id": REGION}}
    return run_stack(STACK, stack_dir=folder, invoke_answers=tables)


def _table(name: str, arn: str, stream_arn: str) -> Encrypted:
    return Encrypted("dynamodb", name, {
        **{a: arn for a in NEEDS["dynamodb"] if a not in ("dynamodb:GetRecords",
                                                           "dynamodb:GetShardIterator")},
        "dynamodb:GetRecords": stream_arn, "dynamodb:GetShardIterator": stream_arn,
    }, name)


def encrypted_resources(plan: Plan) -> list[Encrypted]:
    """Every resource of the graph under KEY (and the adopted tables, which the adoption
    encrypts with it), with the ARNs its data actions name."""
    found: list[Encrypted] = []
    for r in plan.resources:
        kind, i, o = r.type, r.inputs, r.outputs
        if kind == "aws:dynamodb/table:Table" and (
            (i.get("serverSideEncryption") or {}).get("kmsKeyArn") == KEY
        ):
            found.append(_table(i["name"], o["arn"], o["streamArn"]))
        elif kind == "aws:kinesis/stream:Stream" and i.get("kmsKeyId") == KEY:
            found.append(Encrypted("kinesis", i["name"],
                                   dict.fromkeys(NEEDS["kinesis"], o["arn"]), o["arn"]))
        elif kind == "aws:sqs/queue:Queue" and i.get("kmsMasterKeyId") == KEY:
            found.append(Encrypted("sqs", i["name"], dict.fromkeys(NEEDS["sqs"], o["arn"]), None))
        elif kind == "aws:sns/topic:Topic" and i.get("kmsMasterKeyId") == KEY:
            found.append(Encrypted("sns", i["name"], dict.fromkeys(NEEDS["sns"], o["arn"]), None))
        elif kind == BUCKET_SSE:
            rule = i["rules"][0]["applyServerSideEncryptionByDefault"]
            if rule.get("kmsMasterKeyId") == KEY:
                bucket = f"arn:aws:s3:::{i['bucket'].removesuffix('-id')}"
                found.append(Encrypted("s3", bucket,
                                       dict.fromkeys(NEEDS["s3"], f"{bucket}/some/object"),
                                       bucket))
    for name in ADOPTED:
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        found.append(_table(name, arn, f"{arn}/stream/2026-01-01T00:00:00.000"))
    return found


def kms_request(service: str, resource: Encrypted) -> dict[str, str]:
    """The condition keys of the KMS request `service` makes for `resource`."""
    context = {"kms:ViaService": f"{service}.{REGION}.amazonaws.com"}
    key = ENCRYPTION_CONTEXT_KEYS.get(service)
    if key is not None and resource.context is not None:
        context[f"kms:EncryptionContext:{key}"] = resource.context
    if service == "dynamodb":  # DynamoDB's context also names the table's account
        context["kms:EncryptionContext:aws:dynamodb:subscriberId"] = ACCOUNT
    return context


def grant_covers(role: Role, kms_action: str, resource: Encrypted) -> bool:
    request = kms_request(resource.service, resource)
    for grant in role.kms_grants():
        if KEY not in as_list(grant["Resource"]):
            continue
        if not any(kms_action.lower() == a.lower() or (
            a.endswith("*") and kms_action.lower().startswith(a[:-1].lower())
        ) for a in as_list(grant["Action"])):
            continue
        if condition_allows(grant.get("Condition") or {}, request):
            return True
    return False


def uses(plan: Plan) -> dict[str, dict[str, list[tuple[str, Encrypted]]]]:
    """role -> service -> (data action, resource) it may do on a resource under the key."""
    resources = encrypted_resources(plan)
    found: dict[str, dict[str, list[tuple[str, Encrypted]]]] = {}
    for name, role in roles_of(plan).items():
        for resource in resources:
            for action, arn in resource.arns.items():
                if role.allows(action, arn):
                    found.setdefault(name, {}).setdefault(resource.service, []).append(
                        (action, resource))
    return found


def test_the_stack_has_every_kind_of_encrypted_resource_and_role(plan: Plan) -> None:
    # the walk below is only as good as the graph: every kind is there and used by a role
    services = {r.service for r in encrypted_resources(plan)}
    assert {"dynamodb", "kinesis", "sqs", "s3"} <= services
    used = uses(plan)
    for role in (f"{PREFIX}fanin", f"{PREFIX}backfill", f"{PREFIX}writeback",
                 f"{PREFIX}archive", f"{PREFIX}ingest-apigw", f"{PREFIX}dms-target"):
        assert role in used, f"{role} touches no resource under the key"


def test_every_role_may_use_the_key_for_what_it_touches(plan: Plan) -> None:
    roles = roles_of(plan)
    missing = []
    for name, by_service in uses(plan).items():
        for service, pairs in by_service.items():
            for action, resource in pairs:
                for kms_action in NEEDS[service][action]:
                    if not grant_covers(roles[name], kms_action, resource):
                        missing.append(f"{name}: {action} on {resource.name} needs {kms_action} "
                                       f"via {service}")
    assert not missing, "\n".join(sorted(set(missing)))


def test_every_kms_grant_is_conditioned_on_the_services_its_role_uses(plan: Plan) -> None:
    used = uses(plan)
    for name, role in roles_of(plan).items():
        for grant in role.kms_grants():
            condition = grant.get("Condition") or {}
            via = as_list((condition.get("StringEquals") or {}).get("kms:ViaService", []))
            assert via, f"{name}: KMS grant {grant.get('Sid')} without kms:ViaService"
            assert "*" not in as_list(grant["Resource"]), f"{name}: KMS grant on '*'"
            services = {v.removesuffix(f".{REGION}.amazonaws.com") for v in via}
            assert services <= set(used.get(name, {})), (
                f"{name}: KMS grant {grant.get('Sid')} names {sorted(services)}, the role uses "
                f"the key through {sorted(used.get(name, {}))} only")
            for service in services:
                key = ENCRYPTION_CONTEXT_KEYS.get(service)
                if key is not None:
                    context = (condition.get("StringLike") or {}).get(
                        f"kms:EncryptionContext:{key}")
                    assert context, (f"{name}: KMS grant {grant.get('Sid')} via {service} "
                                     f"without the service's encryption context {key}")


def test_no_grant_reaches_another_resource_of_the_service(plan: Plan) -> None:
    """The encryption-context condition holds the grant to the role's own resources: the
    fan-in's Kinesis grant does not cover another stream, its DynamoDB grant not another
    environment's table."""
    fanin = roles_of(plan)[f"{PREFIX}fanin"]
    other_stream = Encrypted("kinesis", "x", {}, f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/x")
    assert not grant_covers(fanin, "kms:GenerateDataKey", other_stream)
    for name in (f"dmsbus-{STACK}-eu-orders", f"{PREFIX}ingest-order_requests", "orders"):
        assert not grant_covers(fanin, "kms:Decrypt", Encrypted("dynamodb", name, {}, name))
    own = Encrypted("dynamodb", "t", {}, f"{PREFIX}orders")
    assert grant_covers(fanin, "kms:Decrypt", own)
    # the same table name in another account (DynamoDB's context names the account too)
    elsewhere = {**kms_request("dynamodb", own),
                 "kms:EncryptionContext:aws:dynamodb:subscriberId": "999999999999"}
    for name in (f"{PREFIX}fanin", f"{PREFIX}backfill", f"{PREFIX}writeback",
                 f"{PREFIX}ingest-apigw"):
        grants = roles_of(plan)[name].kms_grants()
        assert not any(condition_allows(g["Condition"], elsewhere) for g in grants), name


# --- service principals writing to queues under the key: the key policy, checked ---------------


def queue_senders(plan: Plan) -> dict[str, set[str]]:
    """Queue under KEY -> the service principals its queue policy lets send to it."""
    under_key = {r.inputs["name"] for r in plan.of_type("aws:sqs/queue:Queue")
                 if r.inputs.get("kmsMasterKeyId") == KEY}
    found: dict[str, set[str]] = {}
    for policy in plan.of_type("aws:sqs/queuePolicy:QueuePolicy"):
        queue = str(policy.inputs["queueUrl"]).rstrip("/").rsplit("/", 1)[-1]
        if queue not in under_key:
            continue
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            actions = {a.lower() for a in as_list(statement.get("Action", []))}
            principal = statement.get("Principal") or {}
            if statement.get("Effect") == "Allow" and actions & {"sqs:sendmessage", "sqs:*"} \
                    and isinstance(principal, dict):
                found.setdefault(queue, set()).update(as_list(principal.get("Service", [])))
    return found


def preflight_needs(plan: Plan) -> StackNeeds:
    engine, _ = as_engine_config(stack_config())
    return stack_needs(load_settings(STACK, project_config(engine)), plan)


class OneKey:
    """KMS as the preflight sees it: KEY, enabled, customer-managed, with `policy`."""

    def __init__(self, policy: dict[str, Any]) -> None:
        self.policy = policy

    def describe_key(self, KeyId: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        return {"KeyMetadata": {"Arn": KEY, "KeyState": "Enabled", "KeyManager": "CUSTOMER"}}

    def get_key_policy(self, KeyId: str, PolicyName: str) -> dict[str, Any]:  # noqa: N803
        return {"Policy": json.dumps(self.policy)}


def key_policy_lines(plan: Plan, statements: list[dict[str, Any]]) -> dict[str, bool]:
    kms = OneKey({"Version": "2012-10-17", "Statement": statements})
    checks = check_stack_key(lambda service, region: kms, preflight_needs(plan), REGION, ACCOUNT,
                             f"arn:aws:iam::{ACCOUNT}:role/deployer")
    return {c.name: c.ok for c in checks}


def test_every_service_writing_to_a_queue_under_the_key_is_known_to_the_preflight(
    plan: Plan,
) -> None:
    senders = queue_senders(plan)
    # the trigger's DLQ is the one: EventBridge sends to it for the trigger's rule
    assert senders == {f"{PREFIX}adoption-trigger-dlq": {"events.amazonaws.com"}}
    # every such sender is one the account preflight checks the key policy for
    checked = {"events.amazonaws.com"} if preflight_needs(plan).key_event_rules else set()
    assert set().union(*senders.values()) <= checked
    assert preflight_needs(plan).key_event_rules == (f"{PREFIX}table-created",)


def test_a_key_policy_without_eventbridge_fails_the_preflight(plan: Plan) -> None:
    """The rule is in the preflight's code, evaluated on the policy (mocks accept any key)."""
    base = [account_key_statement(account=ACCOUNT),
            logs_key_statement(account=ACCOUNT, region=REGION)]
    assert key_policy_lines(plan, base)["KMS key policy: EventBridge"] is False
    # only Decrypt, or only for another service: still missing
    decrypt_only = {**events_key_statement(), "Action": "kms:Decrypt"}
    assert key_policy_lines(plan, [*base, decrypt_only])["KMS key policy: EventBridge"] is False
    other = {**events_key_statement(), "Principal": {"Service": "sns.amazonaws.com"}}
    assert key_policy_lines(plan, [*base, other])["KMS key policy: EventBridge"] is False
    # the runbook's statement: every key line passes
    lines = key_policy_lines(plan, [*base, events_key_statement()])
    assert lines["KMS key policy: EventBridge"] is True
    assert all(lines.values()), lines
