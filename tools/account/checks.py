"""The account preflight's checks: read-only AWS calls against one stack's account and region.

Every check returns `tools.preflight.Check` lines (``PASS``/``FAIL`` with the fix). Clients come
from an injected factory ``clients(service, region)`` so tests run against moto (and a botocore
Stubber for the one call moto does not serve, Lambda's GetAccountSettings).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from dms_event_bus.settings.dms import ACCOUNT_ROLES as DMS_ACCOUNT_ROLES
from tools.account.keypolicy import ContextValue, Principal, Request, decide, missing_actions
from tools.account.needs import StackNeeds
from tools.preflight import Check

Clients = Callable[[str, str], Any]

#: AWS keeps this much of the account's Lambda concurrency unreserved; a reservation that would
#: leave less is refused (InvalidParameterValueException).
MIN_UNRESERVED_CONCURRENCY = 100

APIGW_LOGS_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"

#: What CloudWatch Logs does with a log group's key, under the log group's encryption context
#: (AWS's documented statement grants kms:Encrypt*, kms:Decrypt*, kms:ReEncrypt*,
#: kms:GenerateDataKey*, kms:Describe*, all conditioned on kms:EncryptionContext:aws:logs:arn).
LOGS_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
)
#: What the stack's roles (and the deployer) need through DynamoDB, Kinesis, SQS, S3, Lambda,
#: DMS, Firehose: the services create grants when the resource is created, then use data keys.
DELEGATED_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:DescribeKey",
    "kms:CreateGrant",
)
#: What an alarm-topic publisher needs on the topic's key.
PUBLISHER_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
#: What EventBridge needs on the key of an SQS queue it delivers to (a target or a DLQ): SQS
#: encrypts the message with a data key for the sender, the service principal itself.
EVENTS_QUEUE_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")


def logs_key_statement(*, account: str, region: str, partition: str = "aws") -> dict[str, Any]:
    """The key-policy statement that lets CloudWatch Logs of `region` use the key for this
    account's log groups (docs/runbook.md, 'KMS key policy: CloudWatch Logs')."""
    return {
        "Sid": "CloudWatchLogsUseKey",
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.amazonaws.com"},
        "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                   "kms:Describe*"],
        "Resource": "*",
        "Condition": {"ArnLike": {
            "kms:EncryptionContext:aws:logs:arn":
                f"arn:{partition}:logs:{region}:{account}:log-group:*"
        }},
    }


def account_key_statement(*, account: str, partition: str = "aws") -> dict[str, Any]:
    """The key-policy statement that lets the account's IAM policies decide (the stack's roles
    hold kms grants scoped with kms:ViaService; docs/runbook.md)."""
    return {
        "Sid": "AccountIamPoliciesDecide",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def events_key_statement() -> dict[str, Any]:
    """The key-policy statement that lets EventBridge put messages into SQS queues under the
    key: the adoption trigger's DLQ (docs/runbook.md, 'KMS key policy: EventBridge'). No source
    condition: the preflight cannot rely on SQS passing aws:SourceArn for EventBridge."""
    return {
        "Sid": "EventBridgeUsesKeyForQueues",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
        "Resource": "*",
    }


def _error(exc: ClientError) -> str:
    err = exc.response.get("Error", {})
    return f"{err.get('Code', 'error')}: {err.get('Message', '')}".strip().rstrip(":")


def partition_of(region: str) -> str:
    """The ARN partition of a region."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _short(items: Iterable[str], limit: int = 4) -> str:
    items = list(items)
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit
                                       else "")


# --------------------------------------------------------------------------- API Gateway


def check_apigateway_role(clients: Clients, region: str) -> Check:
    name = "API Gateway CloudWatch role"
    fix = (f"run `python -m tools.account_preflight bootstrap --region {region} --apply` once "
           "for this account and region (docs/account.md)")
    try:
        account = clients("apigateway", region).get_account()
    except ClientError as exc:
        return Check(name, False, f"cannot read API Gateway's account settings ({_error(exc)})",
                     "run with a principal allowed apigateway:GET on /account")
    role = account.get("cloudwatchRoleArn")
    if not role:
        return Check(
            name, False,
            f"no CloudWatch Logs role set in {region}: every stage with access logging fails "
            "(BadRequestException: CloudWatch Logs role ARN must be set in account settings)",
            fix,
        )
    role_name = role.rsplit("/", 1)[-1]
    try:
        found = clients("iam", region).get_role(RoleName=role_name)["Role"]
    except ClientError as exc:
        return Check(name, False, f"the role set in API Gateway ({role}) cannot be read "
                     f"({_error(exc)})", "set an existing role (bootstrap creates one when "
                     "none is set; a set but deleted role must be fixed by hand: "
                     "docs/runbook.md 'API Gateway account CloudWatch role')")
    trust = found.get("AssumeRolePolicyDocument") or {}
    if isinstance(trust, str):
        trust = json.loads(unquote(trust))
    who = Principal.service("apigateway.amazonaws.com")
    if decide(trust, Request(who, "sts:AssumeRole", role)) != "allow":
        return Check(name, False, f"set: {role}, but its trust policy does not let "
                     "apigateway.amazonaws.com assume it", "let apigateway.amazonaws.com "
                     "assume the role (sts:AssumeRole), or set another role")
    return Check(name, True, f"set: {role}")


# --------------------------------------------------------------------------- KMS


def _key_policy(kms: Any, key: str) -> tuple[dict[str, Any] | None, Check | None]:
    try:
        text = kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
        return json.loads(text), None
    except ClientError as exc:
        return None, Check("KMS key policy", False, f"cannot read the policy of {key} "
                           f"({_error(exc)})", "run with a principal allowed "
                           "kms:GetKeyPolicy on the key, or have its owner run this preflight")
    except ValueError:
        return None, Check("KMS key policy", False, f"the policy of {key} is not JSON",
                           "fix the key policy")


def _describe_key(kms: Any, key: str) -> tuple[dict[str, Any] | None, str]:
    try:
        return kms.describe_key(KeyId=key)["KeyMetadata"], ""
    except ClientError as exc:
        return None, _error(exc)


def check_stack_key(clients: Clients, needs: StackNeeds, region: str, account: str,
                    caller_arn: str) -> list[Check]:
    """The stack key exists, is enabled, is in the stack's region, and its policy lets
    CloudWatch Logs and the account's roles (through each service) use it."""
    key = needs.kms_key_arn
    if not key:
        return []
    key_region = key.split(":")[3]
    kms = clients("kms", key_region)
    meta, error = _describe_key(kms, key)
    if meta is None:
        return [Check("KMS key", False, f"{key}: {error}",
                      "create the key or fix encryption.kms_key_arn in the stack file")]
    state = meta.get("KeyState", "?")
    checks = [
        Check("KMS key", state == "Enabled" and key_region == region,
              f"{key}: {state}, region {key_region}"
              + ("" if key_region == region else f" (the stack deploys to {region})"),
              "enable the key (aws kms enable-key / cancel-key-deletion)" if state != "Enabled"
              else f"use a key in {region}: the services encrypt only with keys of their region")
    ]
    if meta.get("KeyManager") == "AWS":
        checks.append(Check("KMS key policy", False, f"{key} is an AWS-managed key: its policy "
                            "cannot grant CloudWatch Logs", "use a customer-managed key"))
        return checks
    policy, failed = _key_policy(kms, key)
    if policy is None:
        return [*checks, failed] if failed else checks
    partition = partition_of(region)
    arn = meta.get("Arn", key)

    if needs.key_log_groups:
        logs = Principal.service(f"logs.{region}.amazonaws.com")
        bad: dict[str, list[str]] = {}
        for group in needs.key_log_groups:
            group_arn = f"arn:{partition}:logs:{region}:{account}:log-group:{group}"
            context: dict[str, ContextValue] = {
                "kms:EncryptionContext:aws:logs:arn": group_arn,
                "aws:SourceAccount": account,
                "aws:SourceArn": group_arn,
            }
            missing = missing_actions(policy, logs, LOGS_ACTIONS, arn, context)
            if missing:
                bad[group] = missing
        checks.append(Check(
            "KMS key policy: CloudWatch Logs",
            not bad,
            f"logs.{region}.amazonaws.com may use the key for {len(needs.key_log_groups)} "
            "log group(s)" if not bad else
            f"logs.{region}.amazonaws.com may not use the key ({_short(sorted({a for m in bad.values() for a in m}))}) "  # noqa: E501
            f"for {_short(bad)}: these log groups, and every Lambda that depends on them, fail",
            "add the statement of docs/runbook.md 'KMS key policy: CloudWatch Logs' to the "
            "key policy",
        ))

    services = sorted(needs.key_services)
    if services:
        principals = [f"arn:{partition}:iam::{account}:role/{r}" for r in needs.roles]
        if caller_arn:
            principals.append(caller_arn)
        bad_services: list[str] = []
        bad_principals: set[str] = set()
        bad_actions: set[str] = set()
        for service in services:
            via = f"{service}.{region}.amazonaws.com"
            for who in principals:
                via_context: dict[str, ContextValue] = {
                    "kms:ViaService": via,
                    "kms:CallerAccount": account,
                    "aws:PrincipalAccount": account,
                    "aws:PrincipalArn": who,
                    "kms:GrantIsForAWSResource": "true",
                }
                missing = missing_actions(policy, Principal.role(who), DELEGATED_ACTIONS, arn,
                                          via_context)
                if missing:
                    if service not in bad_services:
                        bad_services.append(service)
                    bad_principals.add(who.rsplit("/", 1)[-1])
                    bad_actions.update(missing)
        checks.append(Check(
            "KMS key policy: account roles",
            not bad_services,
            f"the account's IAM policies decide for {len(principals)} principal(s) through "
            f"{', '.join(services)}" if not bad_services else
            f"the key policy does not let {_short(sorted(bad_principals))} use the key through "
            f"{', '.join(bad_services)} ({_short(sorted(bad_actions))})",
            "keep the key policy's statement that lets the account root "
            f"(arn:{partition}:iam::{account}:root) use the key (kms:*), without conditions "
            "that exclude these services (docs/runbook.md 'KMS key policy: the account's "
            "roles')",
        ))

    if needs.key_event_rules:
        # SQS calls KMS for EventBridge itself: an IAM grant cannot help, only the key policy
        missing = missing_actions(policy, Principal.service("events.amazonaws.com"),
                                  EVENTS_QUEUE_ACTIONS, arn, {})
        rules = _short(needs.key_event_rules)
        checks.append(Check(
            "KMS key policy: EventBridge",
            not missing,
            f"events.amazonaws.com may use the key for the SQS queues of rule {rules}"
            if not missing else
            f"events.amazonaws.com may not use the key ({', '.join(sorted(missing))}) for the "
            f"SQS queue of rule {rules} (the adoption trigger's DLQ): failed dispatches are "
            "lost (alarm ...-adoption-trigger-dlq-failed)",
            "add the statement of docs/runbook.md 'KMS key policy: EventBridge' to the key "
            "policy",
        ))
    return checks


def check_alarm_topic(clients: Clients, needs: StackNeeds, region: str,
                      account: str) -> list[Check]:
    """An existing alarm topic: its key (if any) lets the stack's publishers use it."""
    topic = needs.alarm_topic_arn
    if not topic or not needs.alarm_publishers:
        return []
    name = "alarm topic key"
    topic_region = topic.split(":")[3]
    try:
        attrs = clients("sns", topic_region).get_topic_attributes(TopicArn=topic)["Attributes"]
    except ClientError as exc:
        return [Check(name, False, f"{topic}: {_error(exc)}",
                      "create the topic or fix alarms.sns_topic_arn")]
    key = attrs.get("KmsMasterKeyId")
    if not key:
        return [Check(name, True, f"{topic} is not encrypted: publishers need no key grant")]
    if key.lower().endswith("alias/aws/sns"):
        return [Check(name, False, f"{topic} uses the AWS-managed aws/sns key: CloudWatch, "
                      "EventBridge and DMS notifications are dropped",
                      "encrypt the topic with a customer-managed key holding the statements "
                      "of docs/runbook.md 'KMS key policy: alarm topic publishers'")]
    if not key.startswith("arn:"):
        key = f"arn:{partition_of(region)}:kms:{topic_region}:{account}:" + (
            key if key.startswith("alias/") else f"key/{key}")
    kms = clients("kms", topic_region)
    meta, error = _describe_key(kms, key)
    if meta is None:
        return [Check(name, False, f"{topic} key {key}: {error}", "fix the topic's key")]
    if meta.get("KeyState") != "Enabled":
        return [Check(name, False, f"{topic} key {meta.get('Arn')}: {meta.get('KeyState')}",
                      "enable the key")]
    policy, failed = _key_policy(kms, meta["Arn"])
    if policy is None:
        return [failed] if failed else []
    partition = partition_of(region)
    problems: list[str] = []
    for service in sorted(needs.alarm_publishers):
        contexts: list[dict[str, ContextValue]]
        if service.startswith("cloudwatch."):
            contexts = [{"aws:SourceAccount": account,
                         "aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account}:"
                                          f"alarm:{a}"} for a in needs.alarm_names or ("x",)]
        elif service.startswith("dms."):
            contexts = [{"aws:SourceAccount": account}]
        else:
            contexts = [{}]  # EventBridge's KMS calls for an SNS target carry no source keys
        for context in contexts:
            missing = missing_actions(policy, Principal.service(service), PUBLISHER_ACTIONS,
                                      meta["Arn"], context)
            if missing:
                problems.append(f"{service} ({', '.join(missing)})")
                break
    return [Check(
        name, not problems,
        f"{meta['Arn']} lets {', '.join(sorted(needs.alarm_publishers))} publish"
        if not problems else f"{meta['Arn']} does not let {_short(problems)} use it: "
        "their notifications are dropped",
        "add the statements of docs/runbook.md 'KMS key policy: alarm topic publishers'",
    )]


# --------------------------------------------------------------------------- DMS roles


def check_dms_roles(clients: Clients, region: str) -> list[Check]:
    iam = clients("iam", region)
    checks = []
    fix = (f"run `python -m tools.account_preflight bootstrap --region {region} --apply` "
           "(docs/account.md)")
    for role, policy in DMS_ACCOUNT_ROLES.items():
        try:
            iam.get_role(RoleName=role)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
                checks.append(Check(f"DMS role {role}", False, "missing: DMS cannot create "
                                    "the replication subnet group / task logs", fix))
            else:
                checks.append(Check(f"DMS role {role}", False, f"cannot read ({_error(exc)})",
                                    "run with a principal allowed iam:GetRole"))
            continue
        attached = {
            p["PolicyArn"]
            for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role)
            for p in page["AttachedPolicies"]
        }
        ok = policy in attached
        checks.append(Check(f"DMS role {role}", ok,
                            "exists with " + policy.rsplit("/", 1)[-1] if ok else
                            f"exists without {policy.rsplit('/', 1)[-1]}",
                            f"aws iam attach-role-policy --role-name {role} --policy-arn {policy}"))
    return checks


# --------------------------------------------------------------------------- Lambda


def check_concurrency(clients: Clients, needs: StackNeeds, region: str) -> Check:
    name = "Lambda concurrency"
    wanted = sum(needs.reserved_concurrency.values())
    lam = clients("lambda", region)
    try:
        settings = lam.get_account_settings()
    except ClientError as exc:
        return Check(name, False, f"cannot read Lambda's account settings ({_error(exc)})",
                     "run with a principal allowed lambda:GetAccountSettings")
    limit = settings.get("AccountLimit", {})
    quota = int(limit.get("ConcurrentExecutions", 0))
    unreserved = int(limit.get("UnreservedConcurrentExecutions", quota))
    held = 0  # what this stack's functions reserve already (an update, not a new reservation)
    for function in needs.reserved_concurrency:
        try:
            held += int(lam.get_function_concurrency(FunctionName=function)
                        .get("ReservedConcurrentExecutions") or 0)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                return Check(name, False, f"cannot read {function}'s concurrency "
                             f"({_error(exc)})", "run with lambda:GetFunctionConcurrency")
    left = unreserved + held - wanted
    reserved_text = (", ".join(f"{f}={n}" for f, n in sorted(needs.reserved_concurrency.items()))
                     or "nothing")
    found = (f"account quota {quota}, unreserved {unreserved}; this stack reserves "
             f"{reserved_text}; unreserved after deploy {left} (AWS's minimum "
             f"{MIN_UNRESERVED_CONCURRENCY})")
    return Check(
        name, left >= MIN_UNRESERVED_CONCURRENCY, found,
        f"request a higher 'Concurrent executions' quota (Service Quotas, L-B99A9384) of at "
        f"least {quota + MIN_UNRESERVED_CONCURRENCY - left}, or drop the reservation "
        "(writeback.function.reserved_concurrency)",
    )


def check_telemetry_tags(clients: Clients, region: str) -> Check:
    """Alarms whose Metrics Insights query filters on `tag.<key>` see metrics only when the
    account's resource tags on telemetry (CloudWatch telemetry enrichment) is running."""
    name = "Resource tags on telemetry"
    try:
        status = clients("observabilityadmin", region).get_telemetry_enrichment_status()
    except ClientError as exc:
        return Check(name, False, f"cannot read the telemetry enrichment status ({_error(exc)})",
                     "run with a principal allowed observabilityadmin:GetTelemetryEnrichmentStatus")
    state = str(status.get("Status") or "Stopped")
    return Check(
        name, state == "Running",
        f"{state}: the fleet alarm (alarms.fleet) filters DynamoDB metrics by table tags",
        "turn it on (CloudWatch settings, or `aws observabilityadmin start-telemetry-enrichment "
        f"--region {region}`), or set alarms.fleet: false",
    )


# --------------------------------------------------------------------------- Secrets


def _roles_that_cannot_decrypt(policy: dict[str, Any], key_arn: str, needs: StackNeeds,
                               region: str, account: str) -> list[str]:
    """The stack's roles the key policy does not let read a secret through Secrets Manager."""
    partition = partition_of(region)
    out = []
    for role in needs.roles:
        who = f"arn:{partition}:iam::{account}:role/{role}"
        context: dict[str, ContextValue] = {
            "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
            "kms:CallerAccount": account,
            "aws:PrincipalAccount": account,
            "aws:PrincipalArn": who,
        }
        if missing_actions(policy, Principal.role(who), ["kms:Decrypt"], key_arn, context):
            out.append(role)
    return out


def check_secrets(clients: Clients, needs: StackNeeds, account: str = "") -> list[Check]:
    checks = []
    for secret in needs.secrets:
        region = secret.arn.split(":")[3]
        name = f"secret {secret.key_path.split(':', 1)[-1]}"
        try:
            desc = clients("secretsmanager", region).describe_secret(SecretId=secret.arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            checks.append(Check(name, False, f"{secret.arn}: {_error(exc)}",
                                "create the secret (username, password, ...) or fix "
                                f"{secret.key_path}" if code == "ResourceNotFoundException"
                                else "run with a principal allowed secretsmanager:DescribeSecret"))
            continue
        if desc.get("DeletedDate"):
            checks.append(Check(name, False, f"{secret.arn} is scheduled for deletion",
                                "aws secretsmanager restore-secret --secret-id <arn>"))
            continue
        key = desc.get("KmsKeyId")
        if not key or key.lower().endswith("alias/aws/secretsmanager"):
            checks.append(Check(name, True, f"{secret.arn} exists (AWS-managed key)"))
            continue
        meta, error = _describe_key(clients("kms", region), key)
        if meta is None:
            checks.append(Check(name, False, f"{secret.arn} key {key}: {error}",
                                "re-encrypt the secret with an existing key"))
            continue
        problems = []
        if meta.get("KeyState") != "Enabled":
            problems.append(f"its key {meta['Arn']} is {meta.get('KeyState')}")
        fix = ("enable the key" if meta.get("KeyState") != "Enabled" else
               "set dms.source.secret_kms_key_arn to the secret's key"
               if secret.key_path.endswith("dms.source.secret_arn") else
               "encrypt the secret with the stack key (encryption.kms_key_arn) or the "
               "AWS-managed aws/secretsmanager key")
        if meta.get("KeyManager") != "AWS" and meta["Arn"] != secret.declared_kms_key_arn:
            problems.append(f"its key {meta['Arn']} is not the key the stack grants its reader "
                            f"kms:Decrypt on ({secret.declared_kms_key_arn or 'none'})")
        elif meta.get("KeyManager") != "AWS" and account:
            policy, failed = _key_policy(clients("kms", region), meta["Arn"])
            if policy is None:
                problems.append(failed.found if failed else "its key policy cannot be read")
            elif blocked := _roles_that_cannot_decrypt(policy, meta["Arn"], needs, region,
                                                       account):
                problems.append(f"its key policy does not let {_short(blocked)} decrypt "
                                "through Secrets Manager")
                fix = ("let the account's IAM policies decide in the key policy (docs/runbook.md "
                       "'KMS key policy: the account's roles'), including kms:ViaService "
                       f"secretsmanager.{region}.amazonaws.com")
        checks.append(Check(name, not problems,
                            f"{secret.arn} exists, key {meta['Arn']} "
                            + ("; ".join(problems) if problems else "enabled"), fix))
    return checks
