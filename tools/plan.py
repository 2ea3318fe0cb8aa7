"""Offline plan: run the program for one stack under Pulumi's mocks and print what it would
declare, as a tree by component, with the settings that matter.

    python -m tools.plan dev                        # tree (API Gateway: one line per API)
    python -m tools.plan dev --section dms          # one part: dms, bus, ingest, writeback, ops
    python -m tools.plan dev --summary              # counts by component and resource type
    python -m tools.plan dev --json > plan.json     # machine-readable (secrets masked)
    python -m tools.plan dev --against plan.json    # adds, changes, deletes; data-affecting first

`--stack NAME` is the same as the positional NAME. With `--against`, the exit status is 3
when a delete or replacement of a resource that holds data is planned (tools.plan_diff,
docs/plan.md), 2 for a missing, unreadable or other-stack base plan, else 0.

No AWS account, no Pulumi CLI needed. A bad stack file exits 2 with the config error.

AWS's own limits (name lengths, policy and environment sizes, mapping ranges, dashboard
size: `dms_event_bus.settings.aws_limits`, docs/limits.md) are checked twice: on the stack
config before anything is declared, then on every declared resource. Any violation exits 2
with one line per violation naming the resource, the limit and the fix; the last line sums
the checks:
`AWS limits: N rules, M resources checked, K violations`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi

from dms_event_bus.settings import ConfigError, load_settings
from dms_event_bus.settings.aws_limits import Report, config_problems, evaluate
from dms_event_bus.settings.stackfile import (
    ROOT,
    as_engine_config,
    project_config,
    read_stack_config,
)
from tools.capacity import Load, model
from tools.capacity import render as render_capacity
from tools.cli import OneLineParser, non_negative_float
from tools.cost import plan_estimate, stack_settings
from tools.cost import render as render_cost
from tools.mockrun import Declared, Plan, run_stack
from tools.plan_diff import (
    EXIT_DATA_AFFECTING,
    PlanFileError,
    mappings_summary,
    plan_document,
    plural,
)
from tools.plan_diff import as_json as diff_json
from tools.plan_diff import diff as plan_diff
from tools.plan_diff import load as load_plan
from tools.plan_diff import render as render_diff

#: The settings worth seeing per resource type: (label, function of inputs).
_Detail = Callable[[dict[str, Any]], Any]


def _get(*path: str) -> _Detail:
    def read(inputs: dict[str, Any]) -> Any:
        value: Any = inputs
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return read


def _policy_actions(inputs: dict[str, Any]) -> str:
    doc = json.loads(inputs.get("policy") or "{}")
    return ", ".join(
        f"{'/'.join(s['Action']) if isinstance(s['Action'], list) else s['Action']}"
        for s in doc.get("Statement", [])
    )


def _dcu(inputs: dict[str, Any]) -> str | None:
    compute = inputs.get("computeConfig") or {}
    low, high = compute.get("minCapacityUnits"), compute.get("maxCapacityUnits")
    if low is None and high is None:
        return None
    return f"serverless {_num(low) if low is not None else '?'}-{_num(high)} DCU"


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


DETAILS: dict[str, list[tuple[str, _Detail]]] = {
    "pulumi-python:dynamic/dms:AdoptedTable": [
        ("table", _get("table_name")),
        ("billing", _get("billing_mode")),
    ],
    "aws:dms/endpoint:Endpoint": [
        ("id", _get("endpointId")),
        ("type", _get("endpointType")),
        ("engine", _get("engineName")),
        ("database", _get("databaseName")),
        ("ssl", _get("sslMode")),
    ],
    "aws:dms/replicationConfig:ReplicationConfig": [
        ("id", _get("replicationConfigIdentifier")),
        ("type", _get("replicationType")),
        ("capacity", _dcu),
        ("multi_az", _get("computeConfig", "multiAz")),
        ("start", _get("startReplication")),
        ("mappings", lambda i: mappings_summary(i.get("tableMappings"))),
    ],
    "aws:dms/replicationTask:ReplicationTask": [
        ("id", _get("replicationTaskId")),
        ("type", _get("migrationType")),
        ("start", _get("startReplicationTask")),
        ("mappings", lambda i: mappings_summary(i.get("tableMappings"))),
    ],
    "aws:dms/replicationInstance:ReplicationInstance": [
        ("id", _get("replicationInstanceId")),
        ("class", _get("replicationInstanceClass")),
        ("storage_gb", _get("allocatedStorage")),
        ("multi_az", _get("multiAz")),
        ("engine_version", _get("engineVersion")),
    ],
    "aws:dynamodb/table:Table": [
        ("name", _get("name")),
        ("billing", _get("billingMode")),
        ("stream", _get("streamViewType")),
        ("pitr", _get("pointInTimeRecovery", "enabled")),
        ("sse", _get("serverSideEncryption", "enabled")),
        ("kms", lambda i: (i.get("serverSideEncryption") or {}).get("kmsKeyArn") or "aws-managed"),
        ("deletion_protection", _get("deletionProtectionEnabled")),
    ],
    "aws:appautoscaling/target:Target": [
        ("dimension", _get("scalableDimension")),
        ("min", _get("minCapacity")),
        ("max", _get("maxCapacity")),
    ],
    "aws:appautoscaling/policy:Policy": [
        ("target", _get("targetTrackingScalingPolicyConfiguration", "targetValue")),
    ],
    "aws:kinesis/stream:Stream": [
        ("name", _get("name")),
        ("mode", _get("streamModeDetails", "streamMode")),
        ("shards", _get("shardCount")),
        ("retention_h", _get("retentionPeriod")),
        ("encryption", _get("encryptionType")),
        ("kms", _get("kmsKeyId")),
    ],
    "aws:lambda/function:Function": [
        ("name", _get("name")),
        ("runtime", _get("runtime")),
        ("arch", lambda i: ",".join(i.get("architectures") or [])),
        ("memory", _get("memorySize")),
        ("timeout", _get("timeout")),
        ("vpc", lambda i: bool((i.get("vpcConfig") or {}).get("subnetIds"))),
    ],
    "aws:lambda/eventSourceMapping:EventSourceMapping": [
        ("start", _get("startingPosition")),
        ("batch", _get("batchSize")),
        ("window_s", _get("maximumBatchingWindowInSeconds")),
        ("parallel", _get("parallelizationFactor")),
        ("bisect", _get("bisectBatchOnFunctionError")),
        ("retries", _get("maximumRetryAttempts")),
        ("max_age_s", _get("maximumRecordAgeInSeconds")),
        ("responses", lambda i: ",".join(i.get("functionResponseTypes") or [])),
        ("on_failure", lambda i: bool(_get("destinationConfig", "onFailure", "destinationArn")(i))),
    ],
    "aws:sqs/queue:Queue": [("name", _get("name")), ("kms", _get("kmsMasterKeyId"))],
    "aws:s3/bucket:Bucket": [("bucket", _get("bucket"))],
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": [
        (
            "sse",
            lambda i: (i.get("rules") or [{}])[0]
            .get("applyServerSideEncryptionByDefault", {})
            .get("sseAlgorithm"),
        )
    ],
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": [
        ("all_blocked", lambda i: all(i.get(k) for k in (
            "blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")))
    ],
    "aws:iam/rolePolicy:RolePolicy": [("allows", _policy_actions)],
    "aws:cloudwatch/metricAlarm:MetricAlarm": [
        ("metric", lambda i: f"{i.get('namespace')}/{i.get('metricName')}"),
        ("threshold", _get("threshold")),
    ],
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": [
        ("name", _get("name")),
        ("prefix", _get("extendedS3Configuration", "prefix")),
    ],
}


def _details(resource: Declared) -> str:
    shown = []
    for label, read in DETAILS.get(resource.type, []):
        try:
            value = read(resource.inputs)
        except (KeyError, TypeError, ValueError, AttributeError):
            value = None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is not None and value != "":
            shown.append(f"{label}={value}")
    return "  " + " ".join(shown) if shown else ""


#: --section: the components (by type) each part of the tree holds.
SECTIONS: dict[str, tuple[str, ...]] = {
    "dms": ("DmsSource",),
    "bus": ("KinesisBus", "StreamedTable", "Backfill", "FleetAlarms", "AdoptionTrigger"),
    "ingest": ("IngestApi",),
    "writeback": ("LegacyWriteback",),
    "ops": ("AlarmTopic", "Dashboard"),
}
APIGW = "aws:apigateway/"
REST_API = "aws:apigateway/restApi:RestApi"


def section_of(resource: Declared) -> str:
    """The --section a root resource belongs to ("other" for none)."""
    component = resource.type.rsplit(":", 1)[-1]
    for section, components in SECTIONS.items():
        if component in components:
            return section
    return "bus" if resource.type == "pulumi-python:dynamic/dms:AdoptedTable" else "other"


def _dms_line(children: list[Declared]) -> str:
    """A DmsSource in one line: source engine, capacity, task/config type, mappings."""
    by_type: dict[str, list[Declared]] = {}
    for c in children:
        by_type.setdefault(c.type, []).append(c)
    shown = []
    for endpoint in by_type.get("aws:dms/endpoint:Endpoint", []):
        if endpoint.inputs.get("endpointType") == "source":
            shown.append(f"engine={endpoint.inputs.get('engineName')}")
    runners = (by_type.get("aws:dms/replicationConfig:ReplicationConfig")
               or by_type.get("aws:dms/replicationTask:ReplicationTask") or [])
    runner = runners[0] if runners else None
    for instance in by_type.get("aws:dms/replicationInstance:ReplicationInstance", []):
        shown.append(f"capacity=instance {instance.inputs.get('replicationInstanceClass')}")
    if runner is not None:
        capacity = _dcu(runner.inputs)
        if capacity:
            shown.append(f"capacity={capacity}")
        kind = runner.inputs.get("replicationType") or runner.inputs.get("migrationType")
        shown.append(f"type={kind}")
        summary = mappings_summary(runner.inputs.get("tableMappings"))
        if summary:
            shown.append(f"mappings={summary}")
    return "  " + " ".join(shown) if shown else ""


def _api_lines(apigw: list[Declared], indent: str) -> list[str]:
    """API Gateway resources under one parent, one line per REST API."""
    counts: dict[str, int] = {}
    for r in apigw:
        counts[r.short_type] = counts.get(r.short_type, 0) + 1
    paths: dict[str, tuple[str, str]] = {
        r.id: (str(r.inputs.get("parentId") or ""), str(r.inputs.get("pathPart") or ""))
        for r in apigw if r.type == "aws:apigateway/resource:Resource"}

    def full_path(resource_id: str) -> str:
        parts: list[str] = []
        while resource_id in paths and len(parts) < 20:
            resource_id, part = paths[resource_id]
            parts.append(part)
        return "/" + "/".join(reversed(parts))

    routes: dict[str, list[str]] = {}
    for r in apigw:
        if r.type == "aws:apigateway/method:Method":
            path = full_path(str(r.inputs.get("resourceId") or ""))
            routes.setdefault(path, []).append(str(r.inputs.get("httpMethod")))
    route_text = " ".join(f"{'|'.join(sorted(m))} {p}" for p, m in sorted(routes.items()))
    stages = [str(r.inputs.get("stageName")) for r in apigw
              if r.type == "aws:apigateway/stage:Stage"]
    kinds = ", ".join(f"{n} {t}" for t, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    apis: list[Declared | None] = [r for r in apigw if r.type == REST_API] or [None]
    lines = []
    for api in apis:
        head = f"{api.name} [{REST_API}]  name={api.inputs.get('name')}" if api \
            else "API Gateway"
        stage = f" stage={','.join(stages)}" if stages else ""
        lines.append(f"{indent}- {head}{stage} routes: {route_text or 'none'}")
    lines.append(f"{indent}  ({len(apigw)} API Gateway resources: {kinds}; "
                 "--api-detail lists them)")
    return lines


def render_tree(plan: Plan, *, section: str | None = None, api_detail: bool = False) -> str:
    """The plan as an indented tree: components with their children. API Gateway pieces are
    one line per API unless `api_detail`; `section` keeps one part of the stack."""
    children: dict[str, list[Declared]] = {}
    for r in plan.resources:
        children.setdefault(r.parent, []).append(r)
    urns = {r.urn for r in plan.resources}
    roots = [r for r in plan.resources if r.parent not in urns]
    if section:
        roots = [r for r in roots if section_of(r) == section]
    lines: list[str] = []
    count = 0

    def walk(node: Declared, depth: int) -> None:
        nonlocal count
        count += 1
        kids = sorted(children.get(node.urn, []), key=lambda r: (r.custom, r.type, r.name))
        extra = _dms_line(kids) if node.type.endswith(":DmsSource") else _details(node)
        lines.append(f"{'  ' * depth}- {node.name} [{node.type}]{extra}")
        apigw = [k for k in kids if k.type.startswith(APIGW)] if not api_detail else []
        for child in kids:
            if child not in apigw:
                walk(child, depth + 1)
        if apigw:
            count += len(apigw)
            lines.extend(_api_lines(apigw, "  " * (depth + 1)))

    for root in sorted(roots, key=lambda r: (r.custom, r.type, r.name)):
        walk(root, 1)
    where = f", section {section}: {count} shown" if section else ""
    head = [f"stack {plan.stack}: {len(plan.resources)} resources{where}"]
    if plan.exports and not section:
        lines.append("outputs:")
        for key, value in plan.exports.items():
            lines.append(f"  {key}: {json.dumps(value, default=str)}")
    return "\n".join(head + lines)


def render_summary(plan: Plan, *, section: str | None = None) -> str:
    """Counts by component type and resource type: one line per kind of component."""
    by_urn = plan.by_urn()

    def root_of(r: Declared) -> Declared:
        while r.parent in by_urn:
            r = by_urn[r.parent]
        return r

    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in plan.resources:
        root = root_of(r)
        if section and section_of(root) != section:
            continue
        key = (section_of(root), root.type)
        group = groups.setdefault(key, {"components": set(), "types": {}})
        group["components"].add(root.urn)
        if r is not root or r.custom:
            group["types"][r.short_type] = group["types"].get(r.short_type, 0) + 1
    total = sum(sum(g["types"].values()) for g in groups.values())
    lines = [f"stack {plan.stack}: {len(plan.resources)} resources"
             + (f", section {section}" if section else "") + " (summary)"]
    for (part, type_), group in sorted(groups.items()):
        n = len(group["components"])
        counted = sum(group["types"].values())
        kinds = ", ".join(f"{c} {t}" for t, c in
                          sorted(group["types"].items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"  {part:<9} {type_.rsplit(':', 1)[-1]} x{n}: "
                     f"{plural(counted, 'resource')} ({kinds})")
    components = sum(len(g["components"]) for g in groups.values())
    lines.append(f"  {plural(total, 'resource')} in {plural(components, 'component')}")
    return "\n".join(lines)


def check_config(stack: str, stack_dir: Path | None) -> list[str]:
    """The stack config's values AWS would refuse (before anything is declared).
    Raises ConfigError / FileNotFoundError like the program does."""
    engine_config, _secret = as_engine_config(read_stack_config(stack, stack_dir or ROOT))
    return config_problems(load_settings(stack, project_config(engine_config)))


def report_json(report: Report) -> dict[str, Any]:
    return {
        "rules": report.rules,
        "resources_checked": report.resources_checked,
        "violations": [
            {"resource": v.resource, "type": v.type, "rule": v.rule,
             "message": v.message, "fix": v.fix}
            for v in report.violations
        ],
    }


def _stable(value: Any) -> Any:
    """Inputs as plain JSON that is the same on every machine: an asset or archive becomes
    its file name (the Lambda packages are named by their content hash) or, for text, a hash."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, pulumi.asset.AssetArchive):
        return {"archive": {k: _stable(v) for k, v in value.assets.items()}}
    if isinstance(value, pulumi.asset.Archive | pulumi.asset.Asset):
        path = getattr(value, "path", None) or getattr(value, "uri", None)
        if path:
            kind = "archive" if isinstance(value, pulumi.asset.Archive) else "asset"
            return {kind: Path(str(path)).name}
        text = str(getattr(value, "text", ""))
        return {"asset": "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]}
    return value


def plan_json(plan: Plan, **extra: Any) -> dict[str, Any]:
    """The `--json` document (what `--against` reads back): format, stack, resources with
    URN, parent and inputs (sensitive inputs masked), and `extra` sections."""
    return plan_document(plan.stack, [
        {"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "custom": r.custom,
         "inputs": _stable(r.inputs)} for r in plan.resources], **extra)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911, PLR0912 - one exit per error
    parser = OneLineParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack_name", nargs="?", default=None, metavar="STACK",
                        help="stack name (Pulumi.<stack>.yaml); default: dev")
    parser.add_argument("--stack", default=None, help="the same as STACK")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    parser.add_argument(
        "--stack-dir", type=Path, default=None,
        help="folder holding Pulumi.<stack>.yaml (default: the project folder)",
    )
    parser.add_argument(
        "--changes-per-second", type=non_negative_float, default=None, metavar="M",
        help="also model the fan-in concurrency and bus throughput at M changes/s "
        "(docs/limits.md, Sizing); warnings never change the exit status",
    )
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--against", type=Path, default=None, metavar="PLAN_JSON",
                      help="compare with a plan written by --json: adds, changes, deletes; "
                      f"exit {EXIT_DATA_AFFECTING} when data-holding resources are deleted or "
                      "replaced (docs/plan.md)")
    view.add_argument("--summary", action="store_true",
                      help="counts by component and resource type instead of the tree")
    parser.add_argument("--section", choices=sorted(SECTIONS), default=None,
                        help="only this part of the stack in the tree or summary")
    parser.add_argument("--api-detail", action="store_true",
                        help="list every API Gateway resource (default: one line per API)")
    args = parser.parse_args(argv)
    if args.stack and args.stack_name and args.stack != args.stack_name:
        parser.error(f"two stacks given: {args.stack_name!r} and --stack {args.stack!r}")
    stack = args.stack or args.stack_name or "dev"
    os.environ.setdefault("AWS_REGION", "eu-west-1")
    base = None
    if args.against is not None:
        try:
            base = load_plan(args.against)
        except PlanFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        problems = check_config(stack, args.stack_dir)
    except ConfigError as exc:
        print(f"error: {exc.brief()}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:  # ValueError: StackFileError, one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if problems:
        print(f"error: stack '{stack}': config exceeds AWS limits (nothing declared):",
              file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    try:
        plan = run_stack(stack, stack_dir=args.stack_dir)
    except ConfigError as exc:
        print(f"error: {exc.brief()}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = evaluate(plan)
    if base is not None:
        try:
            changes = plan_diff(base, plan_json(plan), str(args.against))
        except PlanFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(diff_json(changes), indent=2, default=str))
        else:
            print(render_diff(changes))
        for violation in report.violations:
            print(f"error: {violation.line()}", file=sys.stderr)
        print(report.summary(), file=sys.stderr if args.json else sys.stdout)
        if report.violations:
            return 2
        return EXIT_DATA_AFFECTING if changes.data_affecting else 0
    estimate = plan_estimate(stack, plan, args.stack_dir)
    capacity = None
    if args.changes_per_second is not None:
        settings, _ = stack_settings(stack, args.stack_dir)
        capacity = model(Load(
            tables=max(1, estimate.tables), changes_per_second=args.changes_per_second,
            parallelization_factor=settings.bus.fanin.parallelization_factor,
            envelope_bytes=estimate.envelope_bytes, stream_mode=settings.bus.stream.mode,
            shards=settings.bus.stream.shards))
    if args.json:
        print(json.dumps(plan_json(
            plan, outputs=plan.exports, limits=report_json(report),
            cost=dataclasses.asdict(estimate),
            **({"capacity": dataclasses.asdict(capacity)} if capacity else {})),
            indent=2, default=str))
    else:
        if args.summary:
            print(render_summary(plan, section=args.section))
        else:
            print(render_tree(plan, section=args.section, api_detail=args.api_detail))
        print(render_cost(estimate))
        if capacity:
            print(render_capacity(capacity))
    for violation in report.violations:
        print(f"error: {violation.line()}", file=sys.stderr)
    print(report.summary(), file=sys.stderr if args.json else sys.stdout)
    return 2 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
