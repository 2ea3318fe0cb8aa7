"""Guardrails of dms-event-bus, as plain functions over resource properties.

Every rule works on the engine's property names (camelCase, e.g. `streamViewType`) — what
CrossGuard hands a Python policy in `args.props` and what `tools.mockrun` records as
`Declared.inputs`. Snake-case spellings are accepted too.

- A `ResourceRule` validates one resource: `rule.validate({"type": ..., "props": {...}})`
  returns the violation messages (empty: compliant).
- A `StackRule` validates the whole stack: `rule.validate([resource, ...])` returns
  `(urn, message)` pairs. A resource dict there also has `urn`, `name` and `dependencies`
  (URNs of the resources its inputs came from).

`crossguard_policies()` wraps the rules as `pulumi_policy` policies for `__main__.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

Resource = Mapping[str, Any]

KINESIS_STREAM = "aws:kinesis/stream:Stream"
SQS_QUEUE = "aws:sqs/queue:Queue"
SNS_TOPIC = "aws:sns/topic:Topic"
AWS_MANAGED_SNS_KEY = "alias/aws/sns"
DYNAMODB_TABLE = "aws:dynamodb/table:Table"
EVENT_SOURCE_MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
DMS_INSTANCE = "aws:dms/replicationInstance:ReplicationInstance"
DMS_ENDPOINT = "aws:dms/endpoint:Endpoint"
IAM_ROLE = "aws:iam/role:Role"
IAM_POLICY = "aws:iam/policy:Policy"
IAM_INLINE_POLICIES = (
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)
S3_SSE_ALGORITHMS = ("aws:kms", "aws:kms:dsse", "AES256")
DMS_SSL_MODES = ("require", "verify-ca", "verify-full")

# Actions that may be granted on Resource "*": they describe or list, or AWS offers no
# resource-level permission for them. Everything else must name its resources.
ALLOWED_ON_ANY_RESOURCE = (
    "sts:GetCallerIdentity",
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricData",
    "cloudwatch:GetMetricStatistics",
    "cloudwatch:ListMetrics",
    "cloudwatch:Describe*",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:DescribeLogGroups",
    "ec2:Describe*",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "dynamodb:ListTables",
    "dynamodb:ListStreams",
    "dynamodb:DescribeLimits",
    "dynamodb:DescribeEndpoints",
    "kinesis:ListStreams",
    "kinesis:DescribeLimits",
    "sqs:ListQueues",
    "s3:ListAllMyBuckets",
    "kms:ListAliases",
    "kms:ListKeys",
    "secretsmanager:ListSecrets",
    "secretsmanager:GetRandomPassword",
    "dms:Describe*",
    "application-autoscaling:Describe*",
    "tag:GetResources",
)

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


# --- helpers ----------------------------------------------------------------------------------


def _is_unknown(exc: BaseException) -> bool:
    # pulumi_policy raises UnknownValueError when a preview value is not known yet.
    return type(exc).__name__ == "UnknownValueError"


def prop(props: Mapping[str, Any] | None, name: str, default: Any = None) -> Any:
    """`props[name]` by its camelCase engine name, or its snake_case spelling."""
    if not isinstance(props, Mapping):
        return default
    for key in (name, _CAMEL.sub("_", name).lower()):
        if key in props:
            value = props[key]
            return default if value is None else value
    return default


def known(props: Mapping[str, Any] | None, name: str) -> Any:
    """Like `prop`, but an unknown (preview) value reads as None instead of raising."""
    try:
        return prop(props, name)
    except Exception as exc:
        if _is_unknown(exc):
            return None
        raise


def _one(value: Any) -> Mapping[str, Any] | None:
    """A nested block: the engine may hand a single-item list or the object itself."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        value = value[0] if value else None
    return value if isinstance(value, Mapping) else None


def _label(resource: Resource) -> str:
    name = resource.get("name")
    return f"{resource.get('type')} '{name}'" if name else str(resource.get("type"))


# --- rule types -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceRule:
    """A mandatory rule over one resource's properties."""

    name: str
    description: str
    types: tuple[str, ...]
    check: Callable[[str, Mapping[str, Any]], list[str]]

    def applies_to(self, resource_type: str) -> bool:
        return resource_type in self.types

    def validate(self, resource: Resource) -> list[str]:
        """Violation messages for `resource` ({"type", "props"[, "name"]})."""
        if not self.applies_to(str(resource.get("type"))):
            return []
        props = resource.get("props") or {}
        return [f"{_label(resource)}: {m}" for m in self.check(str(resource["type"]), props)]


@dataclass(frozen=True)
class StackRule:
    """A mandatory rule over all resources of a stack."""

    name: str
    description: str
    check: Callable[[Sequence[Resource]], list[tuple[str | None, str]]]

    def validate(self, resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
        """(urn, message) for each violation."""
        return self.check(resources)


# --- resource rules ---------------------------------------------------------------------------


def _kinesis_encrypted(_type: str, props: Mapping[str, Any]) -> list[str]:
    problems = []
    if prop(props, "encryptionType") != "KMS":
        problems.append(
            f"expected encryptionType 'KMS', found {prop(props, 'encryptionType')!r} "
            "(set encryption_type='KMS')"
        )
    if not prop(props, "kmsKeyId"):
        problems.append(
            "expected kmsKeyId, found none (a customer key ARN, or 'alias/aws/kinesis')"
        )
    return problems


def _sqs_encrypted(_type: str, props: Mapping[str, Any]) -> list[str]:
    if prop(props, "kmsMasterKeyId") or prop(props, "sqsManagedSseEnabled") is True:
        return []
    return [
        "expected server-side encryption, found none: set kms_master_key_id "
        "(a KMS key or 'alias/aws/sqs') or sqs_managed_sse_enabled=True"
    ]


def _sns_customer_key(_type: str, props: Mapping[str, Any]) -> list[str]:
    try:
        key = prop(props, "kmsMasterKeyId")
    except Exception as exc:
        if _is_unknown(exc):
            return []  # computed from a key declared in the same stack: not the AWS-managed one
        raise
    if not key:
        return [
            "expected kmsMasterKeyId (a customer-managed KMS key), found none: the topic is "
            "not encrypted"
        ]
    lowered = str(key).strip().lower()
    if lowered == AWS_MANAGED_SNS_KEY or lowered.endswith(":" + AWS_MANAGED_SNS_KEY):
        return [
            f"expected a customer-managed KMS key, found {key!r}: CloudWatch alarms, "
            "EventBridge rules and DMS event subscriptions cannot publish to a topic encrypted "
            "with the AWS-managed key (their notifications are dropped); use a key whose policy "
            "lets them use it (components.alarm_topic creates one)"
        ]
    return []


def _table_streams_and_protection(_type: str, props: Mapping[str, Any]) -> list[str]:
    problems = []
    if prop(props, "streamEnabled") is not True:
        problems.append(
            f"expected streamEnabled true, found {prop(props, 'streamEnabled')!r} "
            "(every change must reach the bus)"
        )
    if prop(props, "streamViewType") != "NEW_AND_OLD_IMAGES":
        problems.append(
            f"expected streamViewType 'NEW_AND_OLD_IMAGES', found {prop(props, 'streamViewType')!r}"
        )
    pitr = _one(prop(props, "pointInTimeRecovery"))
    if prop(pitr, "enabled") is not True:
        problems.append("expected pointInTimeRecovery.enabled true, found it off")
    sse = _one(prop(props, "serverSideEncryption"))
    if prop(sse, "enabled") is not True:
        problems.append(
            "expected serverSideEncryption.enabled true (KMS), found it off (AWS-owned key only)"
        )
    return problems


def _is_stream_mapping(props: Mapping[str, Any]) -> bool:
    # Only stream sources (DynamoDB Streams, Kinesis) take a starting position.
    if prop(props, "startingPosition"):
        return True
    arn = known(props, "eventSourceArn")
    return isinstance(arn, str) and (
        (":dynamodb:" in arn and "/stream/" in arn) or ":kinesis:" in arn
    )


def _mapping_safe(_type: str, props: Mapping[str, Any]) -> list[str]:
    if not _is_stream_mapping(props):
        return []
    problems = []
    if prop(props, "bisectBatchOnFunctionError") is not True:
        problems.append(
            "expected bisectBatchOnFunctionError true, found "
            f"{prop(props, 'bisectBatchOnFunctionError')!r} (a poison record must be isolated)"
        )
    retries = prop(props, "maximumRetryAttempts")
    if retries is None or not isinstance(retries, int | float) or retries < 0:
        problems.append(
            f"expected bounded maximumRetryAttempts (0..10000), found {retries!r} "
            "(unset or -1 retries for the whole 24 h retention and blocks the shard)"
        )
    if "ReportBatchItemFailures" not in list(prop(props, "functionResponseTypes", [])):
        problems.append(
            "expected functionResponseTypes to contain 'ReportBatchItemFailures', found "
            f"{prop(props, 'functionResponseTypes')!r} (retry from the failed record only)"
        )
    on_failure = _one(prop(_one(prop(props, "destinationConfig")), "onFailure"))
    if not prop(on_failure, "destinationArn"):
        problems.append(
            "expected destinationConfig.onFailure.destinationArn (the DLQ), found none "
            "(failed batches would be dropped)"
        )
    return problems


def _dms_instance_private(_type: str, props: Mapping[str, Any]) -> list[str]:
    if prop(props, "publiclyAccessible") is False:
        return []
    return [
        f"expected publiclyAccessible false, found {prop(props, 'publiclyAccessible')!r} "
        "(DMS defaults to a public address when unset)"
    ]


def _dms_source_ssl(_type: str, props: Mapping[str, Any]) -> list[str]:
    if prop(props, "endpointType") != "source":
        return []
    mode = prop(props, "sslMode")
    if mode in DMS_SSL_MODES:
        return []
    return [
        f"expected sslMode one of {', '.join(DMS_SSL_MODES)} on the source endpoint, "
        f"found {mode!r} (credentials and rows would cross the network in clear text)"
    ]


def policy_documents(resource_type: str, props: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(where, document) for every IAM policy document of an IAM resource."""
    if resource_type == IAM_ROLE:
        found = []
        for item in prop(props, "inlinePolicies", []) or []:
            where = f"inline policy {prop(item, 'name')!r}"
            found.append((where, prop(item, "policy")))
        return found
    return [("policy", prop(props, "policy"))]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | Mapping):
        return [value]
    return list(value)


def _allowed_on_any(action: str) -> bool:
    lowered = action.lower()
    return any(
        lowered == allowed.lower() or ("*" not in lowered and fnmatchcase(lowered, allowed.lower()))
        for allowed in ALLOWED_ON_ANY_RESOURCE
    )


def statement_problems(document: Any) -> list[str]:
    """Why an IAM policy document grants data actions on every resource (empty: it does not)."""
    if document in (None, ""):
        return []
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return [f"could not read the policy document as JSON: {document[:80]!r}"]
    if not isinstance(document, Mapping):
        return [f"expected a policy document object, found {type(document).__name__}"]
    problems = []
    for index, statement in enumerate(_as_list(document.get("Statement"))):
        if not isinstance(statement, Mapping):
            continue
        if str(statement.get("Effect", "")).lower() != "allow":
            continue
        sid = statement.get("Sid") or f"#{index}"
        everywhere = "NotResource" in statement or "*" in _as_list(statement.get("Resource"))
        if not everywhere:
            continue
        if "NotAction" in statement:
            problems.append(f"statement {sid}: NotAction with Resource '*' grants almost all")
            continue
        bad = [a for a in _as_list(statement.get("Action")) if not _allowed_on_any(str(a))]
        if bad:
            problems.append(
                f"statement {sid} grants {', '.join(map(str, bad))} on Resource '*' "
                "(name the table/stream/queue/bucket/secret ARNs instead)"
            )
    return problems


def _iam_no_data_actions_on_any(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    problems = []
    for where, document in policy_documents(resource_type, props):
        problems += [f"{where}: {p}" for p in statement_problems(document)]
    return problems


KINESIS_ENCRYPTED = ResourceRule(
    "kinesis-stream-encrypted",
    "Kinesis data streams are encrypted with KMS.",
    (KINESIS_STREAM,),
    _kinesis_encrypted,
)
SQS_ENCRYPTED = ResourceRule(
    "sqs-queue-encrypted",
    "SQS queues are encrypted (KMS or SSE-SQS).",
    (SQS_QUEUE,),
    _sqs_encrypted,
)
SNS_CUSTOMER_KEY = ResourceRule(
    "sns-topic-customer-managed-key",
    "SNS topics are encrypted with a customer-managed KMS key (never aws/sns, which alarms, "
    "EventBridge and DMS cannot publish through).",
    (SNS_TOPIC,),
    _sns_customer_key,
)
TABLE_STREAMS = ResourceRule(
    "dynamodb-table-streamed-and-protected",
    "Every DynamoDB table streams NEW_AND_OLD_IMAGES, with PITR and KMS encryption.",
    (DYNAMODB_TABLE,),
    _table_streams_and_protection,
)
STREAM_MAPPING_SAFE = ResourceRule(
    "stream-mapping-bounded",
    "Every stream event source mapping bisects, retries a bounded number of times, "
    "reports batch item failures and has an on-failure destination.",
    (EVENT_SOURCE_MAPPING,),
    _mapping_safe,
)
DMS_INSTANCE_PRIVATE = ResourceRule(
    "dms-instance-not-public",
    "DMS replication instances are not publicly accessible.",
    (DMS_INSTANCE,),
    _dms_instance_private,
)
DMS_SOURCE_SSL = ResourceRule(
    "dms-source-endpoint-ssl",
    "DMS source endpoints require SSL.",
    (DMS_ENDPOINT,),
    _dms_source_ssl,
)
IAM_NO_DATA_ON_ANY = ResourceRule(
    "iam-no-data-actions-on-any-resource",
    "No IAM policy statement grants data actions on Resource '*'.",
    (IAM_ROLE, IAM_POLICY, *IAM_INLINE_POLICIES),
    _iam_no_data_actions_on_any,
)


# --- stack rules ------------------------------------------------------------------------------


def _targets(item: Resource, buckets: Sequence[Resource]) -> list[Resource]:
    """The bucket(s) an S3 configuration resource applies to."""
    name = known(item.get("props"), "bucket")
    if isinstance(name, str) and name:
        by_name = [b for b in buckets if name in _bucket_ids(b)]
        if by_name:
            return by_name
    deps = set(item.get("dependencies") or [])
    return [b for b in buckets if b.get("urn") in deps]


def _bucket_ids(bucket: Resource) -> set[str]:
    props = bucket.get("props")
    ids = {str(v) for v in (known(props, "bucket"), known(props, "id")) if v}
    if bucket.get("id"):
        ids.add(str(bucket["id"]))
    return ids


def _sse_rules_ok(rules: Iterable[Any]) -> bool:
    for rule in rules:
        default = _one(prop(rule, "applyServerSideEncryptionByDefault"))
        if prop(default, "sseAlgorithm") in S3_SSE_ALGORITHMS:
            return True
    return False


def _inline_sse_ok(bucket: Resource) -> bool:
    config = _one(prop(bucket.get("props"), "serverSideEncryptionConfiguration"))
    return config is not None and _sse_rules_ok(_as_list(prop(config, "rule")))


def _s3_encrypted_and_private(resources: Sequence[Resource]) -> list[tuple[str | None, str]]:
    buckets = [r for r in resources if r.get("type") in S3_BUCKETS]
    encrypted: set[str] = set()
    private: set[str] = set()
    for item in resources:
        if item.get("type") in S3_ENCRYPTION:
            if _sse_rules_ok(_as_list(prop(item.get("props"), "rules"))):
                encrypted |= {str(b.get("urn")) for b in _targets(item, buckets)}
        elif item.get("type") == S3_PUBLIC_ACCESS_BLOCK:
            flags = [prop(item.get("props"), f) for f in PUBLIC_ACCESS_FLAGS]
            if all(flag is True for flag in flags):
                private |= {str(b.get("urn")) for b in _targets(item, buckets)}
    violations: list[tuple[str | None, str]] = []
    for bucket in buckets:
        urn = str(bucket.get("urn"))
        if urn not in encrypted and not _inline_sse_ok(bucket):
            violations.append(
                (
                    bucket.get("urn"),
                    f"{_label(bucket)}: expected default encryption, found none "
                    "(add a BucketServerSideEncryptionConfiguration with aws:kms or AES256)",
                )
            )
        if urn not in private:
            violations.append(
                (
                    bucket.get("urn"),
                    f"{_label(bucket)}: expected public access blocked, found no "
                    "BucketPublicAccessBlock with all of "
                    f"{', '.join(PUBLIC_ACCESS_FLAGS)} true",
                )
            )
    return violations


S3_ENCRYPTED_AND_PRIVATE = StackRule(
    "s3-bucket-encrypted-and-private",
    "Every S3 bucket has default encryption and a public access block with all four settings on.",
    _s3_encrypted_and_private,
)

RESOURCE_RULES: tuple[ResourceRule, ...] = (
    KINESIS_ENCRYPTED,
    SQS_ENCRYPTED,
    SNS_CUSTOMER_KEY,
    TABLE_STREAMS,
    STREAM_MAPPING_SAFE,
    DMS_INSTANCE_PRIVATE,
    DMS_SOURCE_SSL,
    IAM_NO_DATA_ON_ANY,
)
STACK_RULES: tuple[StackRule, ...] = (S3_ENCRYPTED_AND_PRIVATE,)


def check_all(resources: Sequence[Resource]) -> list[str]:
    """Every violation of every rule over `resources`, as '<rule>: <message>' lines."""
    found = []
    for resource in resources:
        for rule in RESOURCE_RULES:
            found += [f"{rule.name}: {m}" for m in rule.validate(resource)]
    for stack_rule in STACK_RULES:
        found += [f"{stack_rule.name}: {m}" for _urn, m in stack_rule.validate(resources)]
    return found


# --- CrossGuard -------------------------------------------------------------------------------


def _policy_resource_dict(resource: Any) -> dict[str, Any]:
    """A `pulumi_policy.PolicyResource` as the plain dict the stack rules read."""
    deps = {d.urn for d in (resource.dependencies or [])}
    for group in (resource.property_dependencies or {}).values():
        deps |= {d.urn for d in group}
    return {
        "type": resource.resource_type,
        "name": resource.name,
        "urn": resource.urn,
        "props": resource.props,
        "dependencies": sorted(deps),
    }


def crossguard_policies() -> list[Any]:
    """The rules as mandatory `pulumi_policy` policies (for `policy/__main__.py`)."""
    from pulumi_policy import (
        EnforcementLevel,
        ResourceValidationPolicy,
        StackValidationPolicy,
    )

    policies: list[Any] = []
    for rule in RESOURCE_RULES:

        def validate(args: Any, report: Any, rule: ResourceRule = rule) -> None:
            if not rule.applies_to(args.resource_type):
                return
            resource = {"type": args.resource_type, "name": args.name, "props": args.props}
            for message in rule.validate(resource):
                report(message)

        policies.append(
            ResourceValidationPolicy(
                name=rule.name,
                description=rule.description,
                validate=validate,
                enforcement_level=EnforcementLevel.MANDATORY,
            )
        )
    for stack_rule in STACK_RULES:

        def validate_stack(args: Any, report: Any, rule: StackRule = stack_rule) -> None:
            resources = [_policy_resource_dict(r) for r in args.resources]
            for urn, message in rule.validate(resources):
                report(message, urn)

        policies.append(
            StackValidationPolicy(
                name=stack_rule.name,
                description=stack_rule.description,
                validate=validate_stack,
                enforcement_level=EnforcementLevel.MANDATORY,
            )
        )
    return policies
