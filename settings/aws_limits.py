"""AWS's own limits as rules on the resource graph, and on the stack config before it.

Pulumi's mocks and moto accept any name and any size; AWS does not, and refuses in the middle
of a deploy, after other resources were already created. Every limit the stack can reach is
a rule here, evaluated on what the program declares (`tools.mockrun.Plan`: every resource's
type and resolved inputs) by the offline plan (`python -m tools.plan`), and importable for
tests. Each rule cites where the number comes from; docs/limits.md lists them.

    from dms_event_bus.settings.aws_limits import evaluate
    report = evaluate(plan)      # report.violations: one line each, naming the resource

`config_problems(settings)` checks the values of a stack config that reach AWS unchanged
(environment name, tags) before anything is declared.

No pulumi import here: the settings models may call `config_problems` at validation time.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: What Pulumi's RPC layer puts where a value is not known (preview of a real engine).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# -- the numbers, with their sources ------------------------------------------------------
IAM_QUOTAS = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"
#: "Role policy size cannot exceed 10,240 characters" -- the aggregate of all inline
#: policies of one role; IAM does not count white space (IAM quotas, "IAM and STS
#: character limits").
ROLE_INLINE_POLICIES_CHARS = 10_240
#: "Managed policy size cannot exceed 6,144 characters", white space not counted (same page).
MANAGED_POLICY_CHARS = 6_144
#: "Role trust policy length: 2,048 characters" (default quota, raisable to 4,096; same page).
TRUST_POLICY_CHARS = 2_048
#: "Managed policies attached to an IAM role: 10" (default quota, raisable to 20).
MANAGED_POLICIES_PER_ROLE = 10
#: Role names: 1-64 of [\w+=,.@-] (IAM API CreateRole.RoleName, roleNameType); role
#: descriptions at most 1,000 characters (roleDescriptionType).
ROLE_NAME_MAX = 64
ROLE_NAME = re.compile(r"[\w+=,.@-]+", re.ASCII)
ROLE_DESCRIPTION_MAX = 1_000

LAMBDA_QUOTAS = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"
#: "Environment variables: 4 KB, for all environment variables associated with the
#: function, in aggregate" (Lambda quotas, hard limit). Lambda measures the JSON of the
#: variables map: its error reads "... exceeded the 4KB limit. String measured: {"K":"V",...}".
LAMBDA_ENV_BYTES = 4 * 1024
#: A function name alone is limited to 64 characters of [a-zA-Z0-9-_] (Lambda API
#: CreateFunction.FunctionName: "If you specify only the function name, it is limited to
#: 64 characters in length"); descriptions at most 256 characters.
LAMBDA_NAME_MAX = 64
LAMBDA_NAME = re.compile(r"[a-zA-Z0-9_-]+")
LAMBDA_DESCRIPTION_MAX = 256

ESM_PARAMS = "https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html"
#: Lambda parameters for DynamoDB Streams (and Kinesis) event source mappings.
#: MaximumRecordAgeInSeconds: -1 (infinite) or 60..604,800 ("the minimum valid value for
#: maximum record age is 60s", Lambda API EventSourceMappingConfiguration).
ESM_RANGES: dict[str, tuple[int, int]] = {
    "batchSize": (1, 10_000),
    "maximumBatchingWindowInSeconds": (0, 300),
    "parallelizationFactor": (1, 10),
    "maximumRetryAttempts": (-1, 10_000),
    "maximumRecordAgeInSeconds": (-1, 604_800),
    "tumblingWindowInSeconds": (0, 900),
}
ESM_RECORD_AGE_MIN = 60

S3_NAMING = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html"
SQS_NAMING = (
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html"
)
#: "A queue name can have up to 80 characters ... alphanumeric characters, hyphens (-), and
#: underscores (_). A FIFO queue name must end with the .fifo suffix" (which counts).
SQS_NAME_MAX = 80
DYNAMODB_NAMING = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
    "HowItWorks.NamingRulesDataTypes.html"
)
#: "Table names and index names must be between 3 and 255 characters long" of [a-zA-Z0-9_.-].
DYNAMODB_NAME = re.compile(r"[a-zA-Z0-9_.-]{3,255}")
KINESIS_API = "https://docs.aws.amazon.com/kinesis/latest/APIReference/API_CreateStream.html"
#: StreamName: 1-128 of [a-zA-Z0-9_.-]. Firehose DeliveryStreamName: 1-64, same characters.
KINESIS_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}")
FIREHOSE_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,64}")
FIREHOSE_API = (
    "https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html"
)
CLOUDWATCH_ALARM_API = (
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html"
)
#: AlarmName 1-255, AlarmDescription 0-1,024, at most 5 actions per state.
ALARM_NAME_MAX = 255
ALARM_DESCRIPTION_MAX = 1_024
ALARM_ACTIONS_MAX = 5
DASHBOARD_BODY_DOC = (
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/"
    "CloudWatch-Dashboard-Body-Structure.html"
)
CLOUDWATCH_QUOTAS = (
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html"
)
#: "A DashboardBody ... can include an array of between 0 and 500 widget objects".
DASHBOARD_WIDGETS_MAX = 500
#: "Up to 500 metrics per dashboard widget. Up to 2500 metrics per dashboard, across all
#: widgets" (CloudWatch service quotas, Dashboards).
DASHBOARD_METRICS_PER_WIDGET = 500
DASHBOARD_METRICS_MAX = 2_500
#: DashboardName: at most 255 of A-Z, a-z, 0-9, "-" and "_" (PutDashboard).
DASHBOARD_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
LOGS_API = (
    "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/"
    "API_CreateLogGroup.html"
)
#: logGroupName: 1-512 of [\.\-_/#A-Za-z0-9].
LOG_GROUP_NAME = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")
SNS_API = "https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html"
#: "Topic names must be made up of only uppercase and lowercase ASCII letters, numbers,
#: underscores, and hyphens, and must be between 1 and 256 characters long" (+ .fifo).
SNS_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
EVENTS_API = "https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html"
#: Rule Name: 1-64 of [\.\-_A-Za-z0-9].
EVENT_RULE_NAME = re.compile(r"[.\-_A-Za-z0-9]{1,64}")
KMS_API = "https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html"
#: AliasName: "alias/" + name, 1-256 of [a-zA-Z0-9:/_-]; "alias/aws/" is reserved.
KMS_ALIAS = re.compile(r"alias/[a-zA-Z0-9:/_-]+")
KMS_ALIAS_MAX = 256
APIGW_QUOTAS = (
    "https://docs.aws.amazon.com/apigateway/latest/developerguide/"
    "api-gateway-execution-service-limits-table.html"
)
#: Resources per API: 300 (default quota). Stage names: alphanumeric, "-" and "_", at most
#: 128 characters (API Gateway Stage.stageName). API key names at most 1,024 characters.
APIGW_RESOURCES_PER_API = 300
APIGW_STAGE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
APIGW_KEY_NAME_MAX = 1_024
DMS_API = "https://docs.aws.amazon.com/dms/latest/APIReference/API_CreateReplicationInstance.html"
#: Replication instance identifier: 1-63 letters, digits or hyphens, first a letter, not
#: ending with a hyphen nor containing two consecutive hyphens. Task (and serverless
#: replication config) and endpoint identifiers follow the same rule, up to 255 characters.
DMS_INSTANCE_ID_MAX = 63
DMS_ID_MAX = 255
TAGGING = "https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html"
#: "Maximum number of tags per resource - 50; maximum key length - 128 Unicode characters;
#: maximum value length - 256"; the aws: prefix is reserved.
TAGS_MAX = 50
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256


class Resource(Protocol):
    """What a rule reads of a declared resource (`tools.mockrun.Declared`)."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


class Graph(Protocol):
    """What a rule reads of a plan (`tools.mockrun.Plan`)."""

    resources: list[Any]


@dataclass(frozen=True)
class Violation:
    """One resource over one limit."""

    resource: str
    """The resource's name in the program (its URN name), e.g. `bus-fanin-policy`."""
    type: str
    rule: str
    message: str
    """What is over, and the limit."""
    fix: str

    def line(self) -> str:
        short = self.type.rsplit(":", maxsplit=1)[-1]
        return f"{self.resource} [{short}]: {self.message}; fix: {self.fix}"


@dataclass(frozen=True)
class Rule:
    """One AWS limit, checked on every resource of the types it names."""

    id: str
    types: tuple[str, ...]
    limit: str
    source: str
    check: Callable[[Resource, Context], Iterable[Violation]]


@dataclass
class Report:
    """What `evaluate` found: the rules run, the resources they read, the violations."""

    rules: int
    resources_checked: int
    violations: list[Violation] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"AWS limits: {self.rules} rules, {self.resources_checked} resources checked, "
            f"{len(self.violations)} violation{'s' if len(self.violations) != 1 else ''}"
        )


@dataclass
class Context:
    """Lookups across resources (a role's inline policies, an API's resources)."""

    resources: list[Any]
    roles: dict[str, Any] = field(default_factory=dict)
    """Role resource by every handle a policy may name it with: id, name, ARN."""

    def __post_init__(self) -> None:
        for r in self.resources:
            if r.type == "aws:iam/role:Role":
                for handle in (getattr(r, "id", ""), r.inputs.get("name"),
                               r.outputs.get("name"), r.outputs.get("arn"), r.name):
                    if isinstance(handle, str) and handle:
                        self.roles.setdefault(handle, r)

    def role_of(self, handle: Any) -> Any | None:
        return self.roles.get(handle) if isinstance(handle, str) else None


# -- helpers ------------------------------------------------------------------------------
def known(value: Any) -> bool:
    """False for values the engine could not resolve (never the case under mocks)."""
    if isinstance(value, str):
        return UNKNOWN not in value
    if isinstance(value, dict):
        return all(known(v) for v in value.values())
    if isinstance(value, list):
        return all(known(v) for v in value)
    return True


def document_text(doc: Any) -> str:
    """A policy document as the JSON text sent to AWS (dicts serialised compactly)."""
    if isinstance(doc, str):
        return doc
    return json.dumps(doc, separators=(",", ":"))


def policy_size(doc: Any) -> int:
    """Characters of a policy document as IAM counts them: white space is not counted."""
    return sum(1 for ch in document_text(doc) if not ch.isspace())


def lambda_env_size(variables: Mapping[str, Any]) -> int:
    """Bytes of a function's environment as Lambda measures it: the JSON of the map."""
    text = json.dumps(dict(variables), separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8"))


def _violation(r: Resource, rule: str, message: str, fix: str) -> Violation:
    return Violation(resource=r.name, type=r.type, rule=rule, message=message, fix=fix)


def _name_check(
    rule: str, key: str, what: str, valid: Callable[[str], str | None], fix: str
) -> Callable[[Resource, Context], Iterator[Violation]]:
    """A rule reading the physical name in `inputs[key]`; `valid` returns what is wrong."""

    def check(r: Resource, _ctx: Context) -> Iterator[Violation]:
        name = r.inputs.get(key)
        if not isinstance(name, str) or not known(name):
            return
        wrong = valid(name)
        if wrong:
            yield _violation(r, rule, f"{what} {name!r} ({len(name)} characters) {wrong}", fix)

    return check


def _pattern(pattern: re.Pattern[str], expected: str) -> Callable[[str], str | None]:
    def valid(name: str) -> str | None:
        return None if pattern.fullmatch(name) else f"is not {expected}"

    return valid


def _max_len(limit: int, chars: re.Pattern[str], expected: str) -> Callable[[str], str | None]:
    def valid(name: str) -> str | None:
        if len(name) > limit:
            return f"is longer than {limit}"
        if not chars.fullmatch(name):
            return f"is not {expected}"
        return None

    return valid


# -- IAM ----------------------------------------------------------------------------------
def _role_inline_policies(r: Resource, ctx: Context) -> Iterator[Violation]:
    """Runs once per role: its inline policies (RolePolicy resources and inline_policies).
    A RolePolicy on a role outside the graph is judged alone (the least its role holds)."""
    if r.type == "aws:iam/rolePolicy:RolePolicy":
        if ctx.role_of(r.inputs.get("role")) is None:
            role = str(r.inputs.get("role"))
            yield from _inline_total(role, [(r.name, r.inputs.get("policy"))], r)
        return
    docs: list[tuple[str, Any]] = []
    for p in ctx.resources:
        if p.type == "aws:iam/rolePolicy:RolePolicy" and ctx.role_of(p.inputs.get("role")) is r:
            docs.append((p.name, p.inputs.get("policy")))
    for inline in r.inputs.get("inlinePolicies") or []:
        if isinstance(inline, dict) and inline.get("policy"):
            docs.append((f"{r.name}/{inline.get('name')}", inline["policy"]))
    yield from _inline_total(r.inputs.get("name") or r.name, docs, r)


def _inline_total(role: str, docs: list[tuple[str, Any]], r: Resource) -> Iterator[Violation]:
    if not docs or not all(known(d) for _, d in docs):
        return
    total = sum(policy_size(d) for _, d in docs)
    if total > ROLE_INLINE_POLICIES_CHARS:
        names = ", ".join(n for n, _ in docs)
        yield Violation(
            resource=docs[0][0] if len(docs) == 1 else r.name,
            type="aws:iam/rolePolicy:RolePolicy" if len(docs) == 1 else r.type,
            rule="iam-role-inline-policies",
            message=(
                f"inline policies of role {role} ({names}) total {total:,} characters "
                f"without white space; IAM allows {ROLE_INLINE_POLICIES_CHARS:,} per role"
            ),
            fix=(
                "scope statements by the environment's name prefix (one wildcard ARN) "
                "instead of one ARN per table, or split the permissions into managed policies"
            ),
        )


def _managed_policy(r: Resource, _ctx: Context) -> Iterator[Violation]:
    doc = r.inputs.get("policy")
    if doc is None or not known(doc):
        return
    size = policy_size(doc)
    if size > MANAGED_POLICY_CHARS:
        yield _violation(
            r, "iam-managed-policy",
            f"policy document has {size:,} characters without white space; IAM allows "
            f"{MANAGED_POLICY_CHARS:,} per managed policy",
            "scope statements by name prefix (wildcard ARNs) or split into several policies",
        )


def _trust_policy(r: Resource, _ctx: Context) -> Iterator[Violation]:
    doc = r.inputs.get("assumeRolePolicy")
    if doc is None or not known(doc):
        return
    size = policy_size(doc)
    if size > TRUST_POLICY_CHARS:
        yield _violation(
            r, "iam-trust-policy",
            f"trust policy has {size:,} characters without white space; IAM allows "
            f"{TRUST_POLICY_CHARS:,} (default quota)",
            "trust fewer principals per role, or raise the account's trust policy quota",
        )


def _attached_policies(r: Resource, ctx: Context) -> Iterator[Violation]:
    attached = {a for a in r.inputs.get("managedPolicyArns") or [] if isinstance(a, str)}
    for a in ctx.resources:
        if (a.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
                and ctx.role_of(a.inputs.get("role")) is r):
            attached.add(str(a.inputs.get("policyArn")))
    if len(attached) > MANAGED_POLICIES_PER_ROLE:
        yield _violation(
            r, "iam-attached-policies",
            f"{len(attached)} managed policies attached; IAM allows "
            f"{MANAGED_POLICIES_PER_ROLE} per role (default quota)",
            "merge the statements into fewer policies",
        )


def _role_description(r: Resource, _ctx: Context) -> Iterator[Violation]:
    text = r.inputs.get("description")
    if isinstance(text, str) and len(text) > ROLE_DESCRIPTION_MAX:
        yield _violation(
            r, "iam-role-description",
            f"description has {len(text):,} characters; IAM allows {ROLE_DESCRIPTION_MAX:,}",
            "shorten the description",
        )


# -- Lambda -------------------------------------------------------------------------------
def _lambda_environment(r: Resource, _ctx: Context) -> Iterator[Violation]:
    variables = (r.inputs.get("environment") or {}).get("variables") or {}
    if not variables or not known(variables):
        return
    size = lambda_env_size(variables)
    if size > LAMBDA_ENV_BYTES:
        biggest = max(variables, key=lambda k: len(str(variables[k])))
        yield _violation(
            r, "lambda-environment",
            f"environment variables take {size:,} bytes (largest: {biggest}, "
            f"{len(str(variables[biggest])):,} characters); Lambda allows {LAMBDA_ENV_BYTES:,}",
            "derive the value at run time (e.g. the table from the event's stream ARN) or "
            "read it from SSM Parameter Store / S3 instead of the environment",
        )


def _lambda_description(r: Resource, _ctx: Context) -> Iterator[Violation]:
    text = r.inputs.get("description")
    if isinstance(text, str) and len(text) > LAMBDA_DESCRIPTION_MAX:
        yield _violation(
            r, "lambda-description",
            f"description has {len(text)} characters; Lambda allows {LAMBDA_DESCRIPTION_MAX}",
            "shorten the description",
        )


def _mapping_ranges(r: Resource, _ctx: Context) -> Iterator[Violation]:
    source = str(r.inputs.get("eventSourceArn") or "")
    if ":dynamodb:" not in source and ":kinesis:" not in source:
        return  # the ranges below are those of stream sources
    for key, (low, high) in ESM_RANGES.items():
        value = r.inputs.get(key)
        if value is None or not isinstance(value, (int, float)):
            continue
        bad = not low <= value <= high
        if key == "maximumRecordAgeInSeconds" and value != -1 and value < ESM_RECORD_AGE_MIN:
            bad = True
        if bad:
            allowed = f"{low}..{high:,}"
            if key == "maximumRecordAgeInSeconds":
                allowed = f"-1 or {ESM_RECORD_AGE_MIN}..{high:,}"
            yield _violation(
                r, "event-source-mapping",
                f"{key} is {value:g}; Lambda allows {allowed} for stream sources",
                f"set the mapping's {key} within {allowed} in the stack config",
            )


# -- S3 -----------------------------------------------------------------------------------
def s3_bucket_name_problem(name: str) -> str | None:
    """What is wrong with a general purpose bucket name, or None (S3 bucket naming rules)."""
    if not 3 <= len(name) <= 63:
        return "is not 3 to 63 characters long"
    if not re.fullmatch(r"[a-z0-9.-]+", name):
        return "has characters other than lowercase letters, digits, '.' and '-'"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "does not begin and end with a letter or digit"
    if ".." in name:
        return "has two adjacent periods"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return "is formatted as an IP address"
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if name.startswith(prefix):
            return f"starts with the reserved prefix {prefix!r}"
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3"):
        if name.endswith(suffix):
            return f"ends with the reserved suffix {suffix!r}"
    return None


# -- SQS, SNS, DMS identifiers ------------------------------------------------------------
def _sqs_name(name: str) -> str | None:
    if len(name) > SQS_NAME_MAX:
        return f"is longer than {SQS_NAME_MAX} (a .fifo suffix counts)"
    base = name[: -len(".fifo")] if name.endswith(".fifo") else name
    if not re.fullmatch(r"[A-Za-z0-9_-]+", base):
        return "is not letters, digits, '-' and '_' (plus .fifo)"
    return None


def _sns_name(name: str) -> str | None:
    base = name[: -len(".fifo")] if name.endswith(".fifo") else name
    return None if SNS_NAME.fullmatch(base) and len(name) <= 256 else (
        "is not 1 to 256 letters, digits, '-' and '_' (plus .fifo)"
    )


def dms_identifier_problem(name: str, limit: int = DMS_ID_MAX) -> str | None:
    """What is wrong with a DMS identifier, or None."""
    if not 1 <= len(name) <= limit:
        return f"is not 1 to {limit} characters long"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name):
        return "is not letters, digits and hyphens starting with a letter"
    if name.endswith("-") or "--" in name:
        return "ends with a hyphen or has two consecutive hyphens"
    return None


# -- CloudWatch ---------------------------------------------------------------------------
def _alarm(r: Resource, _ctx: Context) -> Iterator[Violation]:
    name = r.inputs.get("name")
    if isinstance(name, str) and not 1 <= len(name) <= ALARM_NAME_MAX:
        yield _violation(
            r, "cloudwatch-alarm",
            f"alarm name {name!r} has {len(name)} characters; CloudWatch allows "
            f"{ALARM_NAME_MAX}", "shorten the name (it carries the environment and table)",
        )
    text = r.inputs.get("alarmDescription")
    if isinstance(text, str) and len(text) > ALARM_DESCRIPTION_MAX:
        yield _violation(
            r, "cloudwatch-alarm",
            f"alarm description has {len(text):,} characters; CloudWatch allows "
            f"{ALARM_DESCRIPTION_MAX:,}", "shorten the description",
        )
    for key in ("alarmActions", "okActions", "insufficientDataActions"):
        actions = r.inputs.get(key) or []
        if len(actions) > ALARM_ACTIONS_MAX:
            yield _violation(
                r, "cloudwatch-alarm",
                f"{key} has {len(actions)} actions; CloudWatch allows {ALARM_ACTIONS_MAX}",
                "send the alarm to one SNS topic and fan out from there",
            )


def _dashboard(r: Resource, _ctx: Context) -> Iterator[Violation]:
    name = r.inputs.get("dashboardName")
    if isinstance(name, str) and not DASHBOARD_NAME.fullmatch(name):
        yield _violation(
            r, "cloudwatch-dashboard",
            f"dashboard name {name!r} is not 1 to 255 letters, digits, '-' and '_'",
            "use only letters, digits, '-' and '_'",
        )
    body = r.inputs.get("dashboardBody")
    if not isinstance(body, str) or not known(body):
        return
    try:
        widgets = json.loads(body).get("widgets") or []
    except (ValueError, AttributeError):
        yield _violation(r, "cloudwatch-dashboard", "dashboard body is not a JSON object",
                         "build the body with json.dumps")
        return
    if len(widgets) > DASHBOARD_WIDGETS_MAX:
        yield _violation(
            r, "cloudwatch-dashboard",
            f"{len(widgets)} widgets; CloudWatch allows {DASHBOARD_WIDGETS_MAX} per dashboard",
            "aggregate across tables instead of one widget per table",
        )
    total = 0
    for widget in widgets:
        metrics = ((widget or {}).get("properties") or {}).get("metrics") or []
        total += len(metrics)
        if len(metrics) > DASHBOARD_METRICS_PER_WIDGET:
            title = (widget.get("properties") or {}).get("title") or "untitled"
            yield _violation(
                r, "cloudwatch-dashboard",
                f"widget {title!r} has {len(metrics):,} metrics; CloudWatch allows "
                f"{DASHBOARD_METRICS_PER_WIDGET} per widget",
                "graph a SEARCH() expression or the top N (metric math) instead of one "
                "metric per table",
            )
    if total > DASHBOARD_METRICS_MAX:
        yield _violation(
            r, "cloudwatch-dashboard",
            f"{total:,} metrics on the dashboard; CloudWatch allows {DASHBOARD_METRICS_MAX:,}",
            "graph SEARCH() expressions instead of one metric per table",
        )


# -- API Gateway --------------------------------------------------------------------------
def _api_resources(r: Resource, ctx: Context) -> Iterator[Violation]:
    handles = {getattr(r, "id", ""), r.outputs.get("id")} - {"", None}
    count = sum(
        1 for x in ctx.resources
        if x.type == "aws:apigateway/resource:Resource" and x.inputs.get("restApi") in handles
    )
    if count > APIGW_RESOURCES_PER_API:
        yield _violation(
            r, "apigateway-resources",
            f"{count} resources (paths); API Gateway allows {APIGW_RESOURCES_PER_API} per API "
            "(default quota)", "split the entities over two APIs or raise the quota",
        )


def _api_key_name(r: Resource, _ctx: Context) -> Iterator[Violation]:
    name = r.inputs.get("name")
    if isinstance(name, str) and len(name) > APIGW_KEY_NAME_MAX:
        yield _violation(
            r, "apigateway-names",
            f"API key name has {len(name):,} characters; API Gateway allows "
            f"{APIGW_KEY_NAME_MAX:,}", "shorten the consumer name",
        )


# -- tags on every resource ---------------------------------------------------------------
def tag_problems(tags: Mapping[str, Any]) -> list[str]:
    """What is wrong with one resource's tags (AWS tagging limits), as short phrases."""
    problems: list[str] = []
    if len(tags) > TAGS_MAX:
        problems.append(f"{len(tags)} tags, AWS allows {TAGS_MAX} per resource")
    for key, value in tags.items():
        if not 1 <= len(key) <= TAG_KEY_MAX:
            problems.append(f"tag key {key[:40]!r}... has {len(key)} characters, "
                            f"AWS allows 1..{TAG_KEY_MAX}")
        if isinstance(value, str) and len(value) > TAG_VALUE_MAX:
            problems.append(f"tag {key!r} value has {len(value)} characters, "
                            f"AWS allows {TAG_VALUE_MAX}")
        if key.lower().startswith("aws:"):
            problems.append(f"tag key {key!r} starts with the reserved prefix 'aws:'")
    return problems


def _tags(r: Resource, _ctx: Context) -> Iterator[Violation]:
    tags = r.inputs.get("tags")
    if not isinstance(tags, dict):
        return
    for problem in tag_problems(tags):
        yield _violation(r, "tags", problem, "fix the stack config's `tags`")


# -- the rules ----------------------------------------------------------------------------
ROLE = "aws:iam/role:Role"
FUNCTION = "aws:lambda/function:Function"

RULES: list[Rule] = [
    Rule("iam-role-inline-policies", (ROLE, "aws:iam/rolePolicy:RolePolicy"),
         f"all inline policies of one role <= {ROLE_INLINE_POLICIES_CHARS:,} characters "
         "(white space not counted)", IAM_QUOTAS, _role_inline_policies),
    Rule("iam-managed-policy", ("aws:iam/policy:Policy",),
         f"managed policy <= {MANAGED_POLICY_CHARS:,} characters (white space not counted)",
         IAM_QUOTAS, _managed_policy),
    Rule("iam-trust-policy", (ROLE,),
         f"role trust policy <= {TRUST_POLICY_CHARS:,} characters (default quota)",
         IAM_QUOTAS, _trust_policy),
    Rule("iam-attached-policies", (ROLE,),
         f"<= {MANAGED_POLICIES_PER_ROLE} managed policies attached per role (default quota)",
         IAM_QUOTAS, _attached_policies),
    Rule("iam-role-name", (ROLE,), f"role name 1..{ROLE_NAME_MAX} of [\\w+=,.@-]", IAM_QUOTAS,
         _name_check("iam-role-name", "name", "role name",
                     _max_len(ROLE_NAME_MAX, ROLE_NAME, "letters, digits and +=,.@_-"),
                     "shorten the environment or component name in the role's name")),
    Rule("iam-role-description", (ROLE,), f"role description <= {ROLE_DESCRIPTION_MAX:,}",
         IAM_QUOTAS, _role_description),
    Rule("lambda-function-name", (FUNCTION,),
         f"function name 1..{LAMBDA_NAME_MAX} of [a-zA-Z0-9-_]", LAMBDA_QUOTAS,
         _name_check("lambda-function-name", "name", "function name",
                     _max_len(LAMBDA_NAME_MAX, LAMBDA_NAME, "letters, digits, '-' and '_'"),
                     "shorten the environment or component name in the function's name")),
    Rule("lambda-environment", (FUNCTION,),
         f"environment variables <= {LAMBDA_ENV_BYTES:,} bytes (JSON of the map)",
         LAMBDA_QUOTAS, _lambda_environment),
    Rule("lambda-description", (FUNCTION,), f"description <= {LAMBDA_DESCRIPTION_MAX}",
         LAMBDA_QUOTAS, _lambda_description),
    Rule("event-source-mapping", ("aws:lambda/eventSourceMapping:EventSourceMapping",),
         "stream mapping batch 1..10,000, window 0..300 s, parallelization 1..10, retries "
         "-1..10,000, record age -1 or 60..604,800 s, tumbling window 0..900 s",
         ESM_PARAMS, _mapping_ranges),
    Rule("s3-bucket-name", ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"),
         "bucket name 3..63 lowercase letters, digits, '.', '-' (S3 naming rules)", S3_NAMING,
         _name_check("s3-bucket-name", "bucket", "bucket name", s3_bucket_name_problem,
                     "shorten the environment name (bucket names carry account and region)")),
    Rule("sqs-queue-name", ("aws:sqs/queue:Queue",),
         f"queue name 1..{SQS_NAME_MAX} of [A-Za-z0-9_-] (.fifo counts)", SQS_NAMING,
         _name_check("sqs-queue-name", "name", "queue name", _sqs_name,
                     "shorten the environment or component name in the queue's name")),
    Rule("dynamodb-table-name", ("aws:dynamodb/table:Table",),
         "table name 3..255 of [a-zA-Z0-9_.-]", DYNAMODB_NAMING,
         _name_check("dynamodb-table-name", "name", "table name",
                     _pattern(DYNAMODB_NAME, "3 to 255 of a-z A-Z 0-9 _ . -"),
                     "shorten the table's logical name")),
    Rule("kinesis-stream-name", ("aws:kinesis/stream:Stream",),
         "stream name 1..128 of [a-zA-Z0-9_.-]", KINESIS_API,
         _name_check("kinesis-stream-name", "name", "stream name",
                     _pattern(KINESIS_NAME, "1 to 128 of a-z A-Z 0-9 _ . -"),
                     "shorten the environment name")),
    Rule("firehose-name", ("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream",),
         "delivery stream name 1..64 of [a-zA-Z0-9_.-]", FIREHOSE_API,
         _name_check("firehose-name", "name", "delivery stream name",
                     _pattern(FIREHOSE_NAME, "1 to 64 of a-z A-Z 0-9 _ . -"),
                     "shorten the environment name")),
    Rule("cloudwatch-alarm", ("aws:cloudwatch/metricAlarm:MetricAlarm",),
         f"alarm name 1..{ALARM_NAME_MAX}, description <= {ALARM_DESCRIPTION_MAX:,}, "
         f"<= {ALARM_ACTIONS_MAX} actions per state", CLOUDWATCH_ALARM_API, _alarm),
    Rule("cloudwatch-dashboard", ("aws:cloudwatch/dashboard:Dashboard",),
         f"<= {DASHBOARD_WIDGETS_MAX} widgets, <= {DASHBOARD_METRICS_PER_WIDGET} metrics per "
         f"widget, <= {DASHBOARD_METRICS_MAX:,} metrics per dashboard, name 1..255 of "
         "[A-Za-z0-9_-]", f"{DASHBOARD_BODY_DOC} and {CLOUDWATCH_QUOTAS}", _dashboard),
    Rule("log-group-name", ("aws:cloudwatch/logGroup:LogGroup",),
         "log group name 1..512 of [.-_/#A-Za-z0-9]", LOGS_API,
         _name_check("log-group-name", "name", "log group name",
                     _pattern(LOG_GROUP_NAME, "1 to 512 of A-Z a-z 0-9 . - _ / #"),
                     "shorten the function or API name in the log group's name")),
    Rule("sns-topic-name", ("aws:sns/topic:Topic",),
         "topic name 1..256 of [A-Za-z0-9_-] (+ .fifo)", SNS_API,
         _name_check("sns-topic-name", "name", "topic name", _sns_name,
                     "shorten the environment name")),
    Rule("eventbridge-rule-name", ("aws:cloudwatch/eventRule:EventRule",),
         "rule name 1..64 of [.-_A-Za-z0-9]", EVENTS_API,
         _name_check("eventbridge-rule-name", "name", "rule name",
                     _pattern(EVENT_RULE_NAME, "1 to 64 of A-Z a-z 0-9 . - _"),
                     "shorten the environment name")),
    Rule("kms-alias-name", ("aws:kms/alias:Alias",),
         f"alias 'alias/' + [a-zA-Z0-9:/_-], <= {KMS_ALIAS_MAX}", KMS_API,
         _name_check("kms-alias-name", "name", "alias",
                     lambda n: None if KMS_ALIAS.fullmatch(n) and len(n) <= KMS_ALIAS_MAX
                     and not n.startswith("alias/aws/")
                     else "is not 'alias/' + up to 256 of a-z A-Z 0-9 : / _ - (not alias/aws/)",
                     "shorten the environment name")),
    Rule("dms-identifiers",
         ("aws:dms/replicationInstance:ReplicationInstance",),
         f"replication instance id 1..{DMS_INSTANCE_ID_MAX} letters, digits, single hyphens",
         DMS_API,
         _name_check("dms-identifiers", "replicationInstanceId", "replication instance id",
                     lambda n: dms_identifier_problem(n, DMS_INSTANCE_ID_MAX),
                     "use an environment name without '--' and not ending in '-'")),
    Rule("dms-task-identifiers",
         ("aws:dms/replicationTask:ReplicationTask",),
         f"replication task id 1..{DMS_ID_MAX} letters, digits, single hyphens", DMS_API,
         _name_check("dms-task-identifiers", "replicationTaskId", "replication task id",
                     dms_identifier_problem,
                     "use an environment name without '--' and not ending in '-'")),
    Rule("dms-config-identifiers",
         ("aws:dms/replicationConfig:ReplicationConfig",),
         f"replication config id 1..{DMS_ID_MAX} letters, digits, single hyphens", DMS_API,
         _name_check("dms-config-identifiers", "replicationConfigIdentifier",
                     "replication config id", dms_identifier_problem,
                     "use an environment name without '--' and not ending in '-'")),
    Rule("dms-endpoint-identifiers", ("aws:dms/endpoint:Endpoint",),
         f"endpoint id 1..{DMS_ID_MAX} letters, digits, single hyphens", DMS_API,
         _name_check("dms-endpoint-identifiers", "endpointId", "endpoint id",
                     dms_identifier_problem,
                     "use an environment name without '--' and not ending in '-'")),
    Rule("apigateway-resources", ("aws:apigateway/restApi:RestApi",),
         f"<= {APIGW_RESOURCES_PER_API} resources per REST API (default quota)", APIGW_QUOTAS,
         _api_resources),
    Rule("apigateway-stage-name", ("aws:apigateway/stage:Stage",),
         "stage name 1..128 of [A-Za-z0-9_-]", APIGW_QUOTAS,
         _name_check("apigateway-stage-name", "stageName", "stage name",
                     _pattern(APIGW_STAGE_NAME, "1 to 128 letters, digits, '-' and '_'"),
                     "change ingest_api.stage_name")),
    Rule("apigateway-names", ("aws:apigateway/apiKey:ApiKey",),
         f"API key name <= {APIGW_KEY_NAME_MAX:,}", APIGW_QUOTAS, _api_key_name),
    Rule("tags", ("*",),
         f"<= {TAGS_MAX} tags, keys 1..{TAG_KEY_MAX}, values <= {TAG_VALUE_MAX}, no 'aws:' keys",
         TAGGING, _tags),
]


def _applies(rule: Rule, r: Resource) -> bool:
    if rule.types == ("*",):
        return r.type.startswith("aws:") and "tags" in r.inputs
    return r.type in rule.types


def evaluate(plan: Graph, rules: list[Rule] | None = None) -> Report:
    """Run every rule on every resource it applies to."""
    rules = RULES if rules is None else rules
    ctx = Context(list(plan.resources))
    checked: set[int] = set()
    violations: list[Violation] = []
    for r in ctx.resources:
        for rule in rules:
            if _applies(rule, r):
                checked.add(id(r))
                violations.extend(rule.check(r, ctx))
    return Report(rules=len(rules), resources_checked=len(checked), violations=violations)


# -- the stack config, before anything is declared ----------------------------------------
#: Tags the program adds to every resource besides the stack config's (`__main__.py`).
PROGRAM_TAGS = ("project", "environment")


def config_problems(settings: Any) -> list[str]:
    """Values of a validated stack config that AWS would refuse wherever they land.

    `settings` is a `settings.StackSettings` (read by attribute: environment, tags). Each
    problem names the key, the limit and what to change; an empty list means fine.
    """
    problems: list[str] = []
    env = settings.environment
    # The environment goes into DMS identifiers (dmsbus-<env>-replication, -cdc, -source).
    wrong = dms_identifier_problem(f"dmsbus-{env}-cdc")
    if wrong:
        problems.append(
            f"environment: {env!r} makes DMS identifiers like 'dmsbus-{env}-cdc' that "
            f"{wrong.replace('ends with', 'end with').replace('has ', 'have ')} "
            f"(DMS allows letters, digits and single hyphens, not ending in '-'); "
            "use an environment name without '--' that does not end with '-'"
        )
    tags = dict(settings.tags)
    user_max = TAGS_MAX - len(PROGRAM_TAGS)
    if len(tags) > user_max:
        problems.append(
            f"tags: {len(tags)} tags, plus {len(PROGRAM_TAGS)} the program adds "
            f"({', '.join(PROGRAM_TAGS)}), exceed AWS's {TAGS_MAX} tags per resource; "
            f"keep at most {user_max}"
        )
    for key, value in tags.items():
        if len(key) > TAG_KEY_MAX:
            problems.append(
                f"tags: key {key[:40]!r}... has {len(key)} characters; AWS allows "
                f"{TAG_KEY_MAX} per tag key; shorten it"
            )
        if len(str(value)) > TAG_VALUE_MAX:
            problems.append(
                f"tags.{key}: value has {len(str(value))} characters; AWS allows "
                f"{TAG_VALUE_MAX} per tag value; shorten it"
            )
        if not re.fullmatch(r"[\w\s.:/=+\-@]*", f"{key}{value}"):
            problems.append(
                f"tags.{key}: only letters, digits, spaces and _ . : / = + - @ are allowed "
                "in tags by every AWS service; remove the other characters"
            )
    return problems
