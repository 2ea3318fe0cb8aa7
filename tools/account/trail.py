"""The account preflight's checks for the adoption trigger (`adoption.trigger`).

The trigger's EventBridge rule matches `AWS API Call via CloudTrail` events of DynamoDB's
`CreateTable`. EventBridge receives those events only when a CloudTrail trail with logging
enabled records them: "To record events with a detail-type value of AWS API Call via
CloudTrail, a CloudTrail trail with logging enabled is required"
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-service-event-cloudtrail.html).
CloudTrail's 90-day event history alone delivers nothing. `CreateTable` is a management event
and a write, so the trail must select management write events, and cover the stack's region
(a multi-region trail, one homed in the region, or an organization trail of the account's
organization).

The token secret is described, never read: `secretsmanager:DescribeSecret` only (the preflight
must not hold the token); its key's policy must let the deployer decrypt through Secrets
Manager, since `pulumi up` reads the token as the deployer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from tools.account.checks import Clients, _describe_key, _error, _key_policy, _short
from tools.account.keypolicy import ContextValue, Principal, missing_actions
from tools.preflight import Check

TRAIL_CHECK = "CloudTrail management events"
TOKEN_KEY_PATH = "dms-event-bus:adoption.trigger.token_secret_arn"

#: The event the trigger waits for, as advanced event selectors' fields see it.
CREATE_TABLE = {
    "eventCategory": "Management",
    "readOnly": "false",
    "eventSource": "dynamodb.amazonaws.com",
    "eventName": "CreateTable",
}


def _field_matches(field: Mapping[str, Any], value: str) -> bool:
    """One advanced field selector against one value (every operator given must hold)."""
    checks = {
        "Equals": lambda vs: value in vs,
        "NotEquals": lambda vs: value not in vs,
        "StartsWith": lambda vs: any(value.startswith(v) for v in vs),
        "NotStartsWith": lambda vs: not any(value.startswith(v) for v in vs),
        "EndsWith": lambda vs: any(value.endswith(v) for v in vs),
        "NotEndsWith": lambda vs: not any(value.endswith(v) for v in vs),
    }
    given = [(op, [str(v) for v in field.get(op) or []]) for op in checks if op in field]
    return all(checks[op](values) for op, values in given)


def _advanced_matches(selector: Mapping[str, Any]) -> bool:
    for field in selector.get("FieldSelectors") or []:
        name = str(field.get("Field", ""))
        if name not in CREATE_TABLE:
            return False  # a field a management event has no value for: not this event
        if not _field_matches(field, CREATE_TABLE[name]):
            return False
    return True


def _classic_matches(selector: Mapping[str, Any]) -> bool:
    if selector.get("IncludeManagementEvents", True) is False:
        return False
    if selector.get("ReadWriteType", "All") == "ReadOnly":
        return False
    excluded = selector.get("ExcludeManagementEventSources") or []
    return CREATE_TABLE["eventSource"] not in excluded


def logs_management_writes(selectors: Mapping[str, Any]) -> bool:
    """Whether a trail's GetEventSelectors answer logs DynamoDB's CreateTable (a management
    write). A trail without selectors logs every management event (CloudTrail's default)."""
    advanced = selectors.get("AdvancedEventSelectors") or []
    classic = selectors.get("EventSelectors") or []
    if advanced:
        return any(_advanced_matches(s) for s in advanced)
    if classic:
        return any(_classic_matches(s) for s in classic)
    return True


def _covers(trail: Mapping[str, Any], region: str) -> bool:
    return bool(trail.get("IsMultiRegionTrail")) or trail.get("HomeRegion") == region


def _kind(trail: Mapping[str, Any]) -> str:
    kind = "organization trail" if trail.get("IsOrganizationTrail") else "trail"
    scope = "multi-region" if trail.get("IsMultiRegionTrail") else f"in {trail.get('HomeRegion')}"
    return f"{kind} {trail.get('TrailARN')} ({scope}"


def check_cloudtrail(clients: Clients, region: str, account: str, rules: Iterable[str]) -> Check:
    """A trail logs the region's management write events, or the trigger never fires."""
    rule_text = _short(sorted(rules))
    create = (
        f"aws cloudtrail create-trail --name management-events --s3-bucket-name <bucket> "
        f"--is-multi-region-trail --region {region} && aws cloudtrail start-logging --name "
        f"management-events --region {region} (the bucket needs CloudTrail's bucket policy; "
        "docs/account.md)"
    )
    why = (f"EventBridge gets no 'AWS API Call via CloudTrail' events in {region}: the rule "
           f"{rule_text} never fires, new tables wait for the adopt workflow's schedule")
    try:
        trails = clients("cloudtrail", region).describe_trails(
            includeShadowTrails=True)["trailList"]
    except ClientError as exc:
        return Check(TRAIL_CHECK, False, f"cannot read the account's trails ({_error(exc)})",
                     "run with a principal allowed cloudtrail:DescribeTrails, "
                     "cloudtrail:GetTrailStatus and cloudtrail:GetEventSelectors")
    covering = [t for t in trails if _covers(t, region)]
    if not covering:
        return Check(TRAIL_CHECK, False, f"no CloudTrail trail covers {region}: {why}", create)
    problems: list[str] = []
    fixes: list[str] = []
    unreadable: list[tuple[Mapping[str, Any], str]] = []
    for trail in covering:
        arn = str(trail.get("TrailARN"))
        home = str(trail.get("HomeRegion") or region)
        ct = clients("cloudtrail", home)
        try:
            logging = bool(ct.get_trail_status(Name=arn).get("IsLogging"))
            selectors = ct.get_event_selectors(TrailName=arn)
        except ClientError as exc:
            owner = arn.split(":")[4] if arn.count(":") >= 5 else ""
            if trail.get("IsOrganizationTrail") and owner and owner != account:
                unreadable.append((trail, owner))
            else:
                problems.append(f"{_kind(trail)}) cannot be read ({_error(exc)})")
                fixes.append("run with cloudtrail:GetTrailStatus and cloudtrail:"
                             "GetEventSelectors on the trail")
            continue
        if not logging:
            problems.append(f"{_kind(trail)}) is not logging")
            fixes.append(f"aws cloudtrail start-logging --name {arn} --region {home}")
            continue
        if not logs_management_writes(selectors):
            problems.append(f"{_kind(trail)}) logs no management write events")
            fixes.append(
                f"aws cloudtrail put-event-selectors --trail-name {arn} --region {home} "
                "--event-selectors '[{\"ReadWriteType\":\"All\",\"IncludeManagementEvents\":"
                "true}]' (or an advanced selector eventCategory=Management without readOnly)"
            )
            continue
        return Check(TRAIL_CHECK, True, f"{_kind(trail)}, logging, management write events): "
                     f"EventBridge gets CreateTable for the rule {rule_text}")
    if unreadable:
        trail, owner = unreadable[0]
        return Check(
            TRAIL_CHECK, True,
            f"{_kind(trail)}) covers this account; its status and event selectors are "
            f"readable only in the organization's management account {owner}",
            f"confirm there that the trail is logging management write events "
            f"(aws cloudtrail get-trail-status / get-event-selectors --name {trail['TrailARN']})",
            warn=True,
        )
    return Check(TRAIL_CHECK, False, f"{'; '.join(problems)}: {why}",
                 "; or ".join(dict.fromkeys(fixes)) + f"; or {create}")


def check_token_secret(clients: Clients, secret_arn: str, account: str,
                       caller_arn: str = "") -> Check:
    """The token secret exists and the deployer can read it: DescribeSecret and the key
    policy only; the secret's value is never fetched."""
    name = f"secret {TOKEN_KEY_PATH.split(':', 1)[-1]}"
    region = secret_arn.split(":")[3]
    try:
        desc = clients("secretsmanager", region).describe_secret(SecretId=secret_arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        return Check(name, False, f"{secret_arn}: {_error(exc)}",
                     "create it from a shell that does not log the token: aws secretsmanager "
                     "create-secret --name <name> --secret-string \"$TOKEN\" (docs/adoption.md), "
                     f"then set {TOKEN_KEY_PATH} to its ARN"
                     if code == "ResourceNotFoundException" else
                     "run with a principal allowed secretsmanager:DescribeSecret on the secret")
    if desc.get("DeletedDate"):
        return Check(name, False, f"{secret_arn} is scheduled for deletion",
                     f"aws secretsmanager restore-secret --secret-id {secret_arn}")
    key = desc.get("KmsKeyId")
    if not key or str(key).lower().endswith("alias/aws/secretsmanager"):
        return Check(name, True, f"{secret_arn} exists (AWS-managed key; the deployer needs "
                     "secretsmanager:GetSecretValue on it)")
    kms = clients("kms", region)
    meta, error = _describe_key(kms, str(key))
    if meta is None:
        return Check(name, False, f"{secret_arn} key {key}: {error}",
                     "re-encrypt the secret with an existing key")
    if meta.get("KeyState") != "Enabled":
        return Check(name, False, f"{secret_arn} key {meta['Arn']} is {meta.get('KeyState')}",
                     "enable the key")
    if meta.get("KeyManager") == "AWS" or not caller_arn:
        return Check(name, True, f"{secret_arn} exists, key {meta['Arn']} enabled")
    policy, failed = _key_policy(kms, meta["Arn"])
    if policy is None:
        return Check(name, False, failed.found if failed else "its key policy cannot be read",
                     failed.fix if failed else "")
    context: dict[str, ContextValue] = {
        "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
        "kms:CallerAccount": account,
        "aws:PrincipalAccount": account,
        "aws:PrincipalArn": caller_arn,
    }
    if missing_actions(policy, Principal.role(caller_arn), ["kms:Decrypt"], meta["Arn"],
                       context):
        who = caller_arn.rsplit("/", 1)[-1]
        return Check(
            name, False,
            f"{secret_arn} exists, but its key {meta['Arn']} does not let the deployer ({who}) "
            "kms:Decrypt through Secrets Manager: `pulumi up` cannot read the token",
            "let the account's IAM policies decide in the key policy (docs/runbook.md 'KMS key "
            "policy: the account's roles') or move the secret to the stack key",
        )
    return Check(name, True, f"{secret_arn} exists, key {meta['Arn']} enabled and decryptable "
                 "by the deployer through Secrets Manager")

