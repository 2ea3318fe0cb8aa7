"""Account preflight and per-account bootstrap: what a stack needs from its AWS account.

    python -m tools.account_preflight bootstrap --region eu-west-1          # dry run
    python -m tools.account_preflight bootstrap --region eu-west-1 --apply  # create
    python -m tools.account_preflight check --stack prod [--region eu-west-1]

`check` loads the stack file with the project's settings code, runs the program offline (the
same mocked run as `python -m tools.plan`) to learn what the stack declares, then makes
read-only AWS calls against the stack's account and region. One line per check:
``PASS <check>: <found>`` or ``FAIL <check>: <found> — fix: <how>``.

- API Gateway's account CloudWatch Logs role is set (a stage logs: the ingest API);
- the stack's KMS key exists, is enabled, is in the stack's region, and its key policy lets
  CloudWatch Logs (for the log groups on the key) and the account's roles (through each service
  that uses the key: DynamoDB, Kinesis, SQS, S3, Lambda, DMS, ...) use it;
- an existing alarm topic's key lets CloudWatch / EventBridge / DMS publish;
- DMS's account roles exist with their managed policies (the stack has DMS);
- Lambda's unreserved concurrency stays >= 100 after the stack's reservations;
- every Secrets Manager secret the stack names exists, and its key is enabled and granted;
- with `adoption.trigger`: a CloudTrail trail that is logging covers the region and selects
  management write events (EventBridge receives `AWS API Call via CloudTrail` events only from
  such a trail); the GitHub token secret exists and the caller may decrypt it (DescribeSecret
  and the key policy only: the token is never read); with a customer key, its policy lets
  events.amazonaws.com use it (the trigger's DLQ).

`bootstrap` creates, only when missing, the per-account pieces no stack owns (see
tools/account/bootstrap.py); never deletes, detaches or overwrites; a second run is a no-op.

Exit codes (both commands): 0 ok; 1 a check failed; 2 could not run (bad stack file, no
region, no credentials, an AWS call that could not be made) — one line on stderr, no traceback.
See docs/account.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from dms_event_bus.settings import ConfigError, StackSettings, load_settings
from dms_event_bus.settings.stackfile import (
    ROOT,
    as_engine_config,
    project_config,
    read_stack_config,
)
from tools.account import bootstrap as boot
from tools.account.checks import (
    Clients,
    check_alarm_topic,
    check_apigateway_role,
    check_concurrency,
    check_dms_roles,
    check_secrets,
    check_stack_key,
    check_telemetry_tags,
    partition_of,
)
from tools.account.needs import StackNeeds, stack_needs
from tools.account.trail import check_cloudtrail, check_token_secret
from tools.cli import OneLineParser, aws_problem, region_arg
from tools.preflight import Check

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


class CannotRun(Exception):
    """The preflight cannot run: one line for the user."""


def boto_clients() -> Clients:
    import boto3

    session = boto3.session.Session()
    cache: dict[tuple[str, str], Any] = {}

    def make(service: str, region: str) -> Any:
        if (service, region) not in cache:
            cache[(service, region)] = session.client(service, region_name=region)
        return cache[(service, region)]

    return make


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        text = f"{err.get('Code', 'error')}: {err.get('Message', '')}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def load_stack(stack: str, stack_dir: Path | None) -> tuple[StackSettings, str | None]:
    """The stack's settings and its `aws:region` (None when the file does not set one)."""
    try:
        config = read_stack_config(stack, stack_dir or ROOT)
    except (FileNotFoundError, ValueError) as exc:  # ValueError: StackFileError, one line
        raise CannotRun(str(exc)) from None
    engine, _ = as_engine_config(config)
    settings = load_settings(stack, project_config(engine))  # ConfigError: the caller prints it
    region = config.get("aws:region")
    return settings, region if isinstance(region, str) and region else None


def resolve_region(given: str | None, stack_region: str | None, stack: str | None) -> str:
    if given and stack_region and given != stack_region:
        raise CannotRun(f"--region {given} differs from the stack's aws:region {stack_region} "
                        f"in Pulumi.{stack}.yaml: check the account the stack deploys to")
    region = given or stack_region or os.environ.get("AWS_REGION") or os.environ.get(
        "AWS_DEFAULT_REGION")
    if not region:
        try:
            import boto3

            region = boto3.session.Session().region_name
        except Exception:  # a broken AWS config file: no region either
            region = None
    if not region:
        where = f" or set aws:region in Pulumi.{stack}.yaml" if stack else ""
        raise CannotRun(f"no AWS region: pass --region{where} (or set AWS_REGION)")
    return region


def caller(clients: Clients, region: str) -> tuple[str, str]:
    """(account id, caller principal ARN as an IAM ARN). No credentials -> CannotRun."""
    try:
        identity = clients("sts", region).get_caller_identity()
    except EndpointConnectionError as exc:  # not a credentials problem: say so
        raise CannotRun(str(aws_problem(exc, "STS", region))) from None
    except (BotoCoreError, ClientError) as exc:
        raise CannotRun(f"no usable AWS credentials for region {region}: {_one_line(exc)} "
                        "(set AWS_PROFILE or credentials for the target account)") from None
    arn = str(identity.get("Arn", ""))
    # arn:aws:sts::123:assumed-role/Name/session -> arn:aws:iam::123:role/Name
    parts = arn.split(":")
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        arn = f"arn:{parts[1]}:iam::{parts[4]}:role/{parts[5].split('/')[1]}"
    return str(identity["Account"]), arn


def needs_of(stack: str, settings: StackSettings, stack_dir: Path | None,
             region: str) -> StackNeeds:
    """Run the program offline for this stack and read what it declares."""
    from tools.mockrun import run_stack

    saved = os.environ.get("AWS_REGION")
    os.environ["AWS_REGION"] = region
    try:
        plan = run_stack(stack, stack_dir=stack_dir)
    except ConfigError:
        raise
    except Exception as exc:
        raise CannotRun(f"the offline plan of stack '{stack}' failed: {_one_line(exc)} "
                        f"(run `python -m tools.plan --stack {stack}`)") from None
    finally:
        if saved is None:
            os.environ.pop("AWS_REGION", None)
        else:
            os.environ["AWS_REGION"] = saved
    return stack_needs(settings, plan)


def run_checks(clients: Clients, needs: StackNeeds, region: str, account: str,
               caller_arn: str = "") -> list[Check]:
    checks: list[Check] = []
    if needs.api_logging:
        checks.append(check_apigateway_role(clients, region))
    checks.extend(check_stack_key(clients, needs, region, account, caller_arn))
    checks.extend(check_alarm_topic(clients, needs, region, account))
    if needs.dms:
        checks.extend(check_dms_roles(clients, region))
    checks.append(check_concurrency(clients, needs, region))
    if needs.tag_scoped_alarms:
        checks.append(check_telemetry_tags(clients, region))
    checks.extend(check_secrets(clients, needs, account))
    if needs.cloudtrail_rules:  # adoption.trigger: its rule needs CloudTrail's events
        checks.append(check_cloudtrail(clients, region, account, needs.cloudtrail_rules))
    if needs.trigger_token_secret:
        checks.append(check_token_secret(clients, needs.trigger_token_secret, account,
                                         caller_arn))
    return checks


def cmd_check(args: argparse.Namespace, clients: Clients) -> int:
    try:
        settings, stack_region = load_stack(args.stack, args.stack_dir)
    except ConfigError as exc:
        print(f"account preflight: {exc.brief()}", file=sys.stderr)
        return EXIT_ERROR
    region = resolve_region(args.region, stack_region, args.stack)
    account, caller_arn = caller(clients, region)
    needs = needs_of(args.stack, settings, args.stack_dir, region)
    checks = run_checks(clients, needs, region, account, caller_arn)
    print(f"# stack {args.stack}: account {account}, region {region}")
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    print(f"# summary: {len(checks) - failed}/{len(checks)} checks passed")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_bootstrap(args: argparse.Namespace, clients: Clients) -> int:
    region = resolve_region(args.region, None, None)
    account, _ = caller(clients, region)
    steps, kept = boot.plan(clients, region, account, partition_of(region),
                            apigateway=not args.no_apigateway, dms=not args.no_dms)
    print(f"# account {account}, region {region}")
    for line in kept:
        print(f"KEEP {line}")
    for step in steps:
        if args.apply:
            step.run()
        print(step.line(args.apply))
    if not steps:
        print("# nothing to do: every per-account piece is in place")
    elif not args.apply:
        print("# dry run: run again with --apply to create these")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m tools.account_preflight",
        description="Account preflight and per-account bootstrap (docs/account.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="read-only checks of a stack's account and region")
    check.add_argument("--stack", required=True, help="stack name (Pulumi.<stack>.yaml)")
    check.add_argument("--region", type=region_arg, help="default: the stack's aws:region")
    check.add_argument("--stack-dir", type=Path, default=None,
                       help="folder holding Pulumi.<stack>.yaml (default: the project folder)")
    bootstrap = sub.add_parser("bootstrap", help="create the per-account pieces (once)")
    bootstrap.add_argument("--region", type=region_arg,
                           help="region of API Gateway's account setting "
                           "(default: AWS_REGION / the profile's region)")
    bootstrap.add_argument("--apply", action="store_true", help="create (default: print only)")
    bootstrap.add_argument("--no-dms", action="store_true", help="skip DMS's account roles")
    bootstrap.add_argument("--no-apigateway", action="store_true",
                           help="skip API Gateway's CloudWatch role")
    return parser


def main(argv: Sequence[str] | None = None,
         clients_factory: Callable[[], Clients] = boto_clients) -> int:
    args = build_parser().parse_args(argv)
    try:
        clients = clients_factory()
        if args.command == "check":
            return cmd_check(args, clients)
        return cmd_bootstrap(args, clients)
    except CannotRun as exc:
        print(f"account preflight: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (BotoCoreError, ClientError) as exc:
        print(f"account preflight: an AWS call failed: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # an answer of an unexpected shape: still one line, exit 2
        print(f"account preflight: could not run: {type(exc).__name__}: {_one_line(exc)}",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
