"""Small building blocks the components share: IAM documents, encrypted queues and buckets,
alarms. Each one is secure by default, so a component cannot forget a setting."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from dms_event_bus.settings.base import LOGICAL_NAME_PATTERN

#: Python runtime and architecture of every Lambda function of the project.
LAMBDA_RUNTIME = "python3.14"
LAMBDA_ARCH = "arm64"

#: The encryption-context key each service puts in its KMS requests, where AWS documents one:
#: DynamoDB the table name, Kinesis the stream ARN, S3 the bucket ARN (with an S3 Bucket Key,
#: as every bucket of this project has, the context is the bucket's ARN, not the object's).
#: SQS is left out: its KMS requests are scoped by `kms:ViaService` only.
ENCRYPTION_CONTEXT_KEYS = {
    "dynamodb": "aws:dynamodb:tableName",
    "kinesis": "aws:kinesis:arn",
    "s3": "aws:s3:arn",
}
_LOGICAL = re.compile(LOGICAL_NAME_PATTERN)
#: IngestApi tables are `<prefix>ingest-<entity>`: a prefix ending so would name another
#: environment's IngestApi tables as its own waypoint tables.
INGEST_INFIX = "ingest-"


def check_name_prefix(field: str, prefix: str) -> None:
    """An environment's name prefix (`dmsbus-<env>-`): the one thing that scopes every
    prefix-wide IAM statement, so it must end in '-', hold no IAM wildcard and not end in
    `-ingest-` (see `env_table_patterns`)."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*-", prefix):
        raise ValueError(
            f"{field}: expected lower-case letters, digits and '-' ending in '-', e.g. "
            f"'dmsbus-dev-', found {prefix!r}"
        )
    if prefix.endswith("-" + INGEST_INFIX):
        raise ValueError(
            f"{field}: expected a prefix not ending in '-{INGEST_INFIX}', found {prefix!r}: "
            f"its tables would be named like the IngestApi tables of the prefix "
            f"'{prefix[: -len(INGEST_INFIX)]}' (rename the environment)"
        )


def follows_table_rule(table_name: str, logical_name: str, name_prefix: str) -> bool:
    """True when a waypoint table is named by the rule `<prefix><logical>` with a logical
    name (lower snake case, no '-'): the prefix-wide IAM statements then cover it and the
    fan-in derives its logical name from the name alone."""
    return table_name == name_prefix + logical_name and bool(_LOGICAL.match(logical_name))


def env_table_patterns(name_prefix: str) -> tuple[str, str]:
    """(allowed, denied) name patterns of this environment's waypoint tables, for IAM.

    Every waypoint table is `<prefix><logical>` and a logical name has no '-'. So
    `<prefix>*` minus `<prefix>*-*` is exactly this environment's waypoint tables: the names
    an environment `dev-eu` gives its tables (`dmsbus-dev-eu-orders`) match `dmsbus-dev-*`
    but also `dmsbus-dev-*-*`, and so do IngestApi tables (`<prefix>ingest-<entity>`). IAM
    has no character classes; the denied pattern goes into an explicit Deny (resources) or a
    StringNotLike (conditions). A prefix never ends in `-ingest-` (`check_name_prefix`), so
    no environment's waypoint table is another's IngestApi table.
    """
    return f"{name_prefix}*", f"{name_prefix}*-*"


def kms_grant(
    sid: str,
    key_arn: pulumi.Input[str],
    actions: Sequence[str],
    *,
    service: str,
    region: pulumi.Input[str],
    context: Sequence[pulumi.Input[str]] = (),
    context_not: Sequence[pulumi.Input[str]] = (),
    account: pulumi.Input[str] | None = None,
) -> dict[str, Any]:
    """The statement letting a role use a customer-managed key, only through `service` in
    `region` (`kms:ViaService`) and, where the service sends an encryption context
    (`ENCRYPTION_CONTEXT_KEYS`), only for the resources `context` names (IAM patterns);
    `context_not` names patterns excluded from them. `account` (DynamoDB only): the account
    its context names (`aws:dynamodb:subscriberId`), so only this account's tables.

    One statement per service: a role that reads a stream and writes a queue gets two, each
    naming only its service."""
    if not actions or not all(a.startswith("kms:") for a in actions):
        raise ValueError(f"kms_grant({sid}): expected kms: actions, found {list(actions)}")
    condition: dict[str, Any] = {
        "StringEquals": {
            "kms:ViaService": pulumi.Output.concat(service, ".", region, ".amazonaws.com")
        }
    }
    context_key = ENCRYPTION_CONTEXT_KEYS.get(service)
    if (context or context_not) and context_key is None:
        raise ValueError(f"kms_grant({sid}): {service} sends no documented encryption context")
    if context_key is not None:
        if not context:
            raise ValueError(
                f"kms_grant({sid}): {service} sends an encryption context ({context_key}): "
                "name the resources"
            )
        condition["StringLike"] = {f"kms:EncryptionContext:{context_key}": list(context)}
        if context_not:
            condition["StringNotLike"] = {
                f"kms:EncryptionContext:{context_key}": list(context_not)
            }
    if account is not None:
        if service != "dynamodb":
            raise ValueError(f"kms_grant({sid}): only DynamoDB's context names the account")
        condition["StringEquals"]["kms:EncryptionContext:aws:dynamodb:subscriberId"] = account
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": [key_arn],
        "Condition": condition,
    }


def policy_json(statements: Sequence[Mapping[str, Any]]) -> pulumi.Output[str]:
    """An IAM policy document; statements may hold Outputs (ARNs of other resources)."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def assume_role_json(service: str, *, source_account: str | None = None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if source_account:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def service_role(
    name: str,
    *,
    role_name: str,
    service: str,
    statements: Sequence[Mapping[str, Any]],
    parent: pulumi.Resource,
    tags: Mapping[str, str],
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """A role a service assumes, with one inline least-privilege policy."""
    role = aws.iam.Role(
        f"{name}-role",
        name=role_name,
        assume_role_policy=assume_role_json(service),
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    policy = aws.iam.RolePolicy(
        f"{name}-policy",
        role=role.id,
        policy=policy_json(statements),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return role, policy


def encrypted_queue(
    name: str,
    *,
    queue_name: str,
    kms_key_arn: str | None,
    parent: pulumi.Resource,
    tags: Mapping[str, str],
) -> aws.sqs.Queue:
    """An SQS queue encrypted with KMS (the customer key, else the AWS-managed `aws/sqs`),
    keeping messages the maximum 14 days: a DLQ is read by people, not at once."""
    return aws.sqs.Queue(
        name,
        name=queue_name,
        kms_master_key_id=kms_key_arn or "alias/aws/sqs",
        kms_data_key_reuse_period_seconds=300,
        message_retention_seconds=14 * 24 * 3600,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def secure_bucket(
    name: str,
    *,
    bucket_name: pulumi.Input[str],
    kms_key_arn: str | None,
    expire_days: int,
    parent: pulumi.Resource,
    tags: Mapping[str, str],
    force_destroy: bool = False,
) -> aws.s3.Bucket:
    """A private, versioned, KMS-encrypted bucket whose objects expire, TLS only.

    `force_destroy`: `pulumi destroy` deletes every object version with the bucket; False
    (the default) makes AWS refuse to delete a bucket that still holds any version
    (BucketNotEmpty, docs/runbook.md "Destroying a stack")."""
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(
        name, bucket=bucket_name, force_destroy=force_destroy, tags=dict(tags), opts=child
    )
    aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms",
                    kms_master_key_id=kms_key_arn,
                ),
                bucket_key_enabled=True,
            )
        ],
        opts=child,
    )
    aws.s3.BucketVersioning(
        f"{name}-versioning",
        bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
            status="Enabled"
        ),
        opts=child,
    )
    aws.s3.BucketLifecycleConfiguration(
        f"{name}-lifecycle",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                    days=expire_days
                ),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=7
                ),
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=1
                ),
            )
        ],
        opts=child,
    )
    aws.s3.BucketPolicy(
        f"{name}-tls-only",
        bucket=bucket.id,
        policy=policy_json(
            [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ]
        ),
        opts=child,
    )
    return bucket


def metric_alarm(
    name: str,
    *,
    description: str,
    namespace: str,
    metric: str,
    dimensions: Mapping[str, pulumi.Input[str]],
    threshold: float,
    topic_arn: pulumi.Input[str] | None,
    parent: pulumi.Resource,
    statistic: str = "Sum",
    comparison: str = "GreaterThanThreshold",
    period: int = 300,
    evaluation_periods: int = 1,
    tags: Mapping[str, str] | None = None,
    alarm_name: str | None = None,
) -> aws.cloudwatch.MetricAlarm:
    """A CloudWatch alarm that notifies the alarm topic on ALARM and on OK.

    `alarm_name` is the name in CloudWatch (components give `dmsbus-<env>-...`, so every
    environment's alarms are told apart in one account); None: Pulumi's auto-name.
    """
    actions = [topic_arn] if topic_arn is not None else []
    return aws.cloudwatch.MetricAlarm(
        name,
        name=alarm_name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric,
        dimensions=dict(dimensions),
        statistic=statistic,
        period=period,
        evaluation_periods=evaluation_periods,
        threshold=threshold,
        comparison_operator=comparison,
        treat_missing_data="notBreaching",
        alarm_actions=actions,
        ok_actions=actions,
        tags=dict(tags or {}),
        opts=pulumi.ResourceOptions(parent=parent),
    )
