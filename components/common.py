"""Small building blocks the components share: IAM documents, encrypted queues and buckets,
alarms. Each one is secure by default, so a component cannot forget a setting."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

#: Python runtime and architecture of every Lambda function of the project.
LAMBDA_RUNTIME = "python3.14"
LAMBDA_ARCH = "arm64"


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
) -> aws.s3.Bucket:
    """A private, versioned, KMS-encrypted bucket whose objects expire, TLS only."""
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(name, bucket=bucket_name, tags=dict(tags), opts=child)
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
