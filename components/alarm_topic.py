"""AlarmTopic: the SNS topic every alarm of a stack notifies (KMS-encrypted)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

TYPE = "dms-event-bus:index:AlarmTopic"


@dataclass(frozen=True)
class AlarmTopicArgs:
    topic_name: str
    """Physical topic name (carries the environment)."""
    kms_key_arn: str | None = None
    """Customer-managed KMS key; None: the AWS-managed `aws/sns` key."""
    email: str | None = None
    """Subscribe this address (it must confirm the subscription)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every resource."""


class AlarmTopic(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: AlarmTopicArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        topic = aws.sns.Topic(
            f"{name}-topic",
            name=args.topic_name,
            kms_master_key_id=args.kms_key_arn or "alias/aws/sns",
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.email:
            aws.sns.TopicSubscription(
                f"{name}-email",
                topic=topic.arn,
                protocol="email",
                endpoint=args.email,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})
