"""Offline plan: run the program for one stack under Pulumi's mocks and print what it would
declare, as a tree by component, with the settings that matter.

    python -m tools.plan --stack dev          # tree
    python -m tools.plan --stack prod --json  # machine-readable

No AWS account, no Pulumi CLI needed. A bad stack file exits 2 with the config error.

AWS's own limits (name lengths, policy and environment sizes, mapping ranges, dashboard
size: `tools.aws_limits`, docs/limits.md) are checked twice: on the stack config before
anything is declared, then on every declared resource. Any violation exits 2 with one line
per violation naming the resource, the limit and the fix; the last line sums the checks:
`AWS limits: N rules, M resources checked, K violations`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from settings import ConfigError, load_settings
from settings.stackfile import ROOT, as_engine_config, project_config, read_stack_config
from tools.aws_limits import Report, config_problems, evaluate
from tools.capacity import Load, model
from tools.capacity import render as render_capacity
from tools.cli import OneLineParser, non_negative_float
from tools.cost import plan_estimate, stack_settings
from tools.cost import render as render_cost
from tools.mockrun import Declared, Plan, run_stack

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


DETAILS: dict[str, list[tuple[str, _Detail]]] = {
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


def render_tree(plan: Plan) -> str:
    """The plan as an indented tree: components with their children."""
    children: dict[str, list[Declared]] = {}
    for r in plan.resources:
        children.setdefault(r.parent, []).append(r)
    urns = {r.urn for r in plan.resources}
    roots = [r for r in plan.resources if r.parent not in urns]
    lines = [f"stack {plan.stack}: {len(plan.resources)} resources"]

    def walk(node: Declared, depth: int) -> None:
        lines.append(f"{'  ' * depth}- {node.name} [{node.type}]{_details(node)}")
        for child in sorted(children.get(node.urn, []), key=lambda r: (r.custom, r.type, r.name)):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda r: (r.custom, r.type, r.name)):
        walk(root, 1)
    if plan.exports:
        lines.append("outputs:")
        for key, value in plan.exports.items():
            lines.append(f"  {key}: {json.dumps(value, default=str)}")
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


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack name (Pulumi.<stack>.yaml)")
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
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_REGION", "eu-west-1")
    try:
        problems = check_config(args.stack, args.stack_dir)
    except ConfigError as exc:
        print(f"error: {exc.brief()}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:  # ValueError: StackFileError, one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if problems:
        print(f"error: stack '{args.stack}': config exceeds AWS limits (nothing declared):",
              file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    try:
        plan = run_stack(args.stack, stack_dir=args.stack_dir)
    except ConfigError as exc:
        print(f"error: {exc.brief()}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = evaluate(plan)
    estimate = plan_estimate(args.stack, plan, args.stack_dir)
    capacity = None
    if args.changes_per_second is not None:
        settings, _ = stack_settings(args.stack, args.stack_dir)
        capacity = model(Load(
            tables=max(1, estimate.tables), changes_per_second=args.changes_per_second,
            parallelization_factor=settings.bus.fanin.parallelization_factor,
            envelope_bytes=estimate.envelope_bytes, stream_mode=settings.bus.stream.mode,
            shards=settings.bus.stream.shards))
    if args.json:
        print(json.dumps(
            {"stack": plan.stack, "resources": [
                {"type": r.type, "name": r.name, "parent": r.parent, "inputs": r.inputs}
                for r in plan.resources], "outputs": plan.exports,
             "limits": report_json(report), "cost": dataclasses.asdict(estimate),
             **({"capacity": dataclasses.asdict(capacity)} if capacity else {})},
            indent=2, default=str))
    else:
        print(render_tree(plan))
        print(render_cost(estimate))
        if capacity:
            print(render_capacity(capacity))
    for violation in report.violations:
        print(f"error: {violation.line()}", file=sys.stderr)
    print(report.summary(), file=sys.stderr if args.json else sys.stdout)
    return 2 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
