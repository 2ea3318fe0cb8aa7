"""AlarmTopic: the SNS topic every alarm and event notification of a stack goes to.

The topic is encrypted with a customer-managed KMS key. It cannot use the AWS-managed
`alias/aws/sns` key: that key's policy cannot be changed, and CloudWatch alarms, EventBridge
rules and DMS event subscriptions publish to an encrypted topic only when the key's policy lets
their service principal use the key (`kms:GenerateDataKey*`, `kms:Decrypt`). With the AWS-managed
key every notification is dropped, silently.

- No key given (`kms_key_arn=None`): the component creates one for the topic (rotation on, a
  30-day deletion window) whose policy lets the account administer it through IAM and lets
  CloudWatch, EventBridge and DMS use it for this account only.
- A key given (the stack's `encryption.kms_key_arn`): the topic uses it. Its policy is owned
  elsewhere and must hold the statements of `publisher_key_statements` (docs/runbook.md shows
  them), or the notifications are dropped.

The topic policy lets the account manage the topic and lets CloudWatch alarms, EventBridge rules
and DMS event subscriptions of this account (and, for alarms and rules, this region) publish.

Scoping: `aws:SourceAccount` everywhere AWS supports it. One exception: in the KEY policy the
EventBridge statement has no source condition, because EventBridge's KMS requests for an
encrypted SNS target do not carry `aws:SourceAccount`/`aws:SourceArn` (AWS documents them as not
supported there; a condition would drop every event). That grant only covers data keys of this
dedicated key, i.e. of this topic's messages; the topic policy still limits who may publish.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

TYPE = "dms-event-bus:index:AlarmTopic"

#: The AWS-managed SNS key: no service can be granted its use, so it is refused.
AWS_MANAGED_SNS_KEY = "alias/aws/sns"
#: What a publishing service needs on the topic's key.
KEY_ACTIONS = ["kms:GenerateDataKey*", "kms:Decrypt"]
#: Who publishes to the alarm topic.
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com", "dms.amazonaws.com")
#: What the account's own principals may do on the topic (the SNS default, made explicit).
OWNER_ACTIONS = [
    "sns:GetTopicAttributes",
    "sns:SetTopicAttributes",
    "sns:AddPermission",
    "sns:RemovePermission",
    "sns:DeleteTopic",
    "sns:Subscribe",
    "sns:ListSubscriptionsByTopic",
    "sns:Publish",
]


@dataclass(frozen=True)
class AlarmTopicArgs:
    topic_name: str
    """Physical topic name (carries the environment); also the created key's alias."""
    kms_key_arn: str | None = None
    """An existing customer-managed key whose policy already holds `publisher_key_statements`;
    None: a dedicated key is created. Never the AWS-managed `alias/aws/sns`."""
    email: str | None = None
    """Subscribe this address (it must confirm the subscription)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every resource."""

    def __post_init__(self) -> None:
        if not self.topic_name:
            raise ValueError("AlarmTopicArgs.topic_name: expected a topic name, found none")
        key = (self.kms_key_arn or "").strip()
        if self.kms_key_arn is not None and (
            not key or key.lower() == AWS_MANAGED_SNS_KEY or key.lower().endswith(
                ":" + AWS_MANAGED_SNS_KEY
            )
        ):
            raise ValueError(
                "AlarmTopicArgs.kms_key_arn: expected a customer-managed KMS key ARN (or None "
                f"to create one), found {self.kms_key_arn!r}: CloudWatch, EventBridge and DMS "
                "cannot publish to a topic encrypted with the AWS-managed aws/sns key"
            )


def _alarms(account: str, region: str, partition: str) -> str:
    return f"arn:{partition}:cloudwatch:{region}:{account}:alarm:*"


def _rules(account: str, region: str, partition: str) -> str:
    return f"arn:{partition}:events:{region}:{account}:rule/*"


def publisher_key_statements(
    *, account: str, region: str, partition: str = "aws"
) -> list[dict[str, Any]]:
    """Key-policy statements that let the alarm topic's publishers use its KMS key."""
    return [
        {
            "Sid": "CloudWatchAlarmsUseKey",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": KEY_ACTIONS,
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account},
                "ArnLike": {"aws:SourceArn": _alarms(account, region, partition)},
            },
        },
        {
            "Sid": "DmsEventSubscriptionsUseKey",
            "Effect": "Allow",
            "Principal": {"Service": "dms.amazonaws.com"},
            "Action": KEY_ACTIONS,
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        },
        {
            # No aws:SourceAccount/aws:SourceArn: EventBridge's KMS requests for an SNS target
            # do not carry them (see the module docstring).
            "Sid": "EventBridgeRulesUseKey",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": KEY_ACTIONS,
            "Resource": "*",
        },
    ]


def key_policy(*, account: str, region: str, partition: str = "aws") -> dict[str, Any]:
    """The created key's policy: the account administers it (through IAM), publishers use it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersKey",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            *publisher_key_statements(account=account, region=region, partition=partition),
        ],
    }


def topic_policy(
    *, topic_arn: str, account: str, region: str, partition: str = "aws"
) -> dict[str, Any]:
    """The topic's access policy: the account manages it; alarms, rules and DMS publish."""

    def publish(sid: str, service: str, condition: dict[str, Any]) -> dict[str, Any]:
        return {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": condition,
        }

    same_account = {"aws:SourceAccount": account}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountManagesTopic",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
                "Action": OWNER_ACTIONS,
                "Resource": topic_arn,
            },
            publish(
                "CloudWatchAlarmsPublish",
                "cloudwatch.amazonaws.com",
                {
                    "StringEquals": same_account,
                    "ArnLike": {"aws:SourceArn": _alarms(account, region, partition)},
                },
            ),
            publish(
                "EventBridgeRulesPublish",
                "events.amazonaws.com",
                {
                    "StringEquals": same_account,
                    "ArnLike": {"aws:SourceArn": _rules(account, region, partition)},
                },
            ),
            publish("DmsEventSubscriptionsPublish", "dms.amazonaws.com",
                    {"StringEquals": same_account}),
        ],
    }


class AlarmTopic(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    """The topic alarms, EventBridge rules and DMS event subscriptions notify."""
    kms_key_arn: pulumi.Output[str]
    """The key the topic is encrypted with (created, or the one given)."""

    def __init__(
        self, name: str, args: AlarmTopicArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition

        key_arn = (
            pulumi.Output.from_input(args.kms_key_arn)
            if args.kms_key_arn
            else self._create_key(name, args, account, region, partition)
        )
        topic = aws.sns.Topic(
            f"{name}-topic",
            name=args.topic_name,
            kms_master_key_id=key_arn,
            tags=dict(args.tags),
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account, region, partition).apply(
                lambda v: json.dumps(
                    topic_policy(topic_arn=v[0], account=v[1], region=v[2], partition=v[3])
                )
            ),
            opts=child,
        )
        if args.email:
            aws.sns.TopicSubscription(
                f"{name}-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.email,
                opts=child,
            )
        self.topic_arn = topic.arn
        self.kms_key_arn = key_arn
        self.register_outputs({"topic_arn": self.topic_arn, "kms_key_arn": self.kms_key_arn})

    def _create_key(
        self,
        name: str,
        args: AlarmTopicArgs,
        account: pulumi.Output[str],
        region: pulumi.Output[str],
        partition: pulumi.Output[str],
    ) -> pulumi.Output[str]:
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the alarm topic {args.topic_name} "
            "(CloudWatch alarms, EventBridge rules and DMS events publish to it)",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.all(account, region, partition).apply(
                lambda v: json.dumps(key_policy(account=v[0], region=v[1], partition=v[2]))
            ),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{args.topic_name}",
            target_key_id=key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return key.arn
