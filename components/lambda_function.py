"""One Lambda building block: what every function of the project is declared with.

`LambdaFunction` declares, as children of the component that owns the function, its
encrypted DLQ (the on-failure destination of its event source mappings or asynchronous
invocations), its log group (KMS, retention), a role with one least-privilege inline policy
(the component's statements plus the two every function needs: send to its DLQ, write its
logs; its KMS grants through `kms:ViaService`, plus the DLQ's), the function itself (JSON
logs into that log group, optionally in a VPC) and its alarms. The component's statements
may name the function (`FunctionNames.function_name`) and ARNs of its account
(`Account.arn`); the DLQ's and the log group's statements are added here.

It is a helper, not a component: a new parent would change the URN of every child and make
`pulumi up` replace live functions, queues and log groups. Every resource keeps the logical
name the owning component always gave it (`FunctionNames`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pulumi
import pulumi_aws as aws

from dms_event_bus.components.common import (
    LAMBDA_ARCH,
    LAMBDA_RUNTIME,
    encrypted_queue,
    kms_grant,
    metric_alarm,
    service_role,
)
from dms_event_bus.components.lambda_package import build_package
from dms_event_bus.components.stream_mapping import MappingSettings, stream_mapping


@dataclass(frozen=True)
class Account:
    """The account and region a component deploys to (looked up once, parented to it)."""

    account_id: pulumi.Output[str]
    region: pulumi.Output[str]

    @staticmethod
    def of(parent: pulumi.Resource) -> Account:
        invoke = pulumi.InvokeOutputOptions(parent=parent)
        return Account(aws.get_caller_identity_output(opts=invoke).account_id,
                       aws.get_region_output(opts=invoke).region)

    def arn(self, service: str, resource: str) -> pulumi.Output[str]:
        """`arn:aws:<service>:<region>:<account>:<resource>`."""
        return pulumi.Output.concat(
            "arn:aws:", service, ":", self.region, ":", self.account_id, ":", resource
        )


#: A component's `opts` parameter.
Opts = pulumi.ResourceOptions | None
ArgsT = TypeVar("ArgsT")


class LambdaOwner(pulumi.ComponentResource, Generic[ArgsT]):
    """Base of the components that own a Lambda function (KinesisBus, Backfill,
    LegacyWriteback): the component resource, its name and args, and the account/region
    lookups parented to it. Each has a DLQ for the events its function gives up on."""

    _args: ArgsT
    dlq_url: pulumi.Output[str]
    dlq_name: pulumi.Output[str]

    def __init__(self, type_: str, name: str, args: ArgsT, opts: Opts = None) -> None:
        super().__init__(type_, name, None, opts)
        self._name = name
        self._args = args
        self._where = Account.of(self)

    def _outputs(self, **outputs: pulumi.Output[Any]) -> None:
        """Set the component's outputs (declared as class annotations) and register them."""
        for key, value in outputs.items():
            setattr(self, key, value)
        self.register_outputs(outputs)


@dataclass(frozen=True)
class FunctionNames:
    """Physical names `<prefix><kind>` (function, role, log group `/aws/lambda/...`),
    `<prefix><kind>-dlq` and alarms `<prefix><kind>-<alarm>`; logical names as the owning
    component has always declared them (changing one replaces the resource)."""

    name_prefix: str
    """Prefix of every physical name, e.g. `dmsbus-dev-`."""
    kind: str
    """What the function is: `fanin`, `backfill`, `writeback`."""
    base: str
    """Logical name of the log group (`<base>-logs`), role, policy and the function's alarms
    (`<base>-errors`, ...)."""
    function: str
    """Logical name of the function."""
    dlq: str
    """Logical name of the DLQ; its depth alarm is `<dlq>-depth`."""

    @property
    def function_name(self) -> str:
        return f"{self.name_prefix}{self.kind}"

    def alarm_name(self, suffix: str) -> str:
        return f"{self.name_prefix}{self.kind}-{suffix}"


@dataclass(frozen=True)
class VpcPlacement:
    """Subnets and security groups a function's network interfaces are created in."""

    subnet_ids: Sequence[str]
    security_group_ids: Sequence[str]


@dataclass(frozen=True)
class KmsUse:
    """One use of the customer-managed key through a service (`components.common.kms_grant`);
    DynamoDB's grants are held to this account's tables."""

    sid: str
    actions: Sequence[str]
    service: str
    context: Sequence[pulumi.Input[str]] = ()
    context_not: Sequence[pulumi.Input[str]] = ()


@dataclass(frozen=True)
class FunctionSpec:
    """The function itself."""

    description: str
    handler: str
    """`module.function` of the entry point."""
    modules: Sequence[str]
    """Files of the package (paths from the project root)."""
    requirements: Sequence[str]
    """Pinned requirements bundled into the package."""
    memory_mb: int
    timeout_seconds: int
    environment: Mapping[str, pulumi.Input[str]]
    log_retention_days: int
    reserved_concurrency: int | None = None
    vpc: VpcPlacement | None = None


@dataclass(frozen=True)
class Shared:
    """What every resource of the owning component shares."""

    kms_key_arn: str | None = None
    """Customer-managed key (DLQ, logs, environment); None: AWS-managed keys."""
    alarm_topic_arn: pulumi.Input[str] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class LambdaFunction:
    """A function with its DLQ, log group, role and policy, declared under `parent`; its
    alarms through `alarm()` and the shortcuts below.

    The policy is `statements`, then the DLQ and log statements, then `more_statements`,
    then (with a customer-managed key) the grants `kms` and the DLQ's."""

    def __init__(
        self,
        parent: pulumi.Resource,
        names: FunctionNames,
        spec: FunctionSpec,
        shared: Shared,
        *,
        statements: Sequence[Mapping[str, Any]],
        more_statements: Sequence[Mapping[str, Any]] = (),
        kms: Sequence[KmsUse] = (),
        account: Account | None = None,
    ) -> None:
        self._parent = parent
        self.names = names
        self.shared = shared
        self.account = account or Account.of(parent)
        self.function_name = names.function_name
        child = pulumi.ResourceOptions(parent=parent)
        self.dlq = encrypted_queue(
            names.dlq,
            queue_name=f"{names.function_name}-dlq",
            kms_key_arn=shared.kms_key_arn,
            parent=parent,
            tags=shared.tags,
        )
        self.log_group = aws.cloudwatch.LogGroup(
            f"{names.base}-logs",
            name=f"/aws/lambda/{names.function_name}",
            retention_in_days=spec.log_retention_days,
            kms_key_id=shared.kms_key_arn,
            tags=dict(shared.tags),
            opts=child,
        )
        self.role, self.policy = service_role(
            names.base,
            role_name=names.function_name,
            service="lambda.amazonaws.com",
            statements=[*statements, *self._own_statements(), *more_statements,
                        *self._kms_grants(kms)],
            parent=parent,
            tags=shared.tags,
        )
        vpc = spec.vpc
        self.function = aws.lambda_.Function(
            names.function,
            name=names.function_name,
            description=spec.description[:256],
            runtime=LAMBDA_RUNTIME,
            architectures=[LAMBDA_ARCH],
            handler=spec.handler,
            code=build_package(list(spec.modules), list(spec.requirements), LAMBDA_ARCH),
            role=self.role.arn,
            memory_size=spec.memory_mb,
            timeout=spec.timeout_seconds,
            reserved_concurrent_executions=spec.reserved_concurrency,
            kms_key_arn=shared.kms_key_arn,
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=list(vpc.subnet_ids),
                security_group_ids=list(vpc.security_group_ids),
            ) if vpc else None,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=dict(spec.environment)),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="JSON", log_group=self.log_group.name
            ),
            tags=dict(shared.tags),
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[self.policy, self.log_group]),
        )

    def _own_statements(self) -> list[dict[str, Any]]:
        return [
            {
                "Sid": "OnFailureDestination",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": [self.dlq.arn],
            },
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [pulumi.Output.concat(self.log_group.arn, ":*")],
            },
        ]

    def _kms_grants(self, uses: Sequence[KmsUse]) -> list[dict[str, Any]]:
        key = self.shared.kms_key_arn
        if not key:
            return []
        region = self.account.region
        return [
            *(kms_grant(u.sid, key, u.actions, service=u.service, region=region,
                        context=u.context, context_not=u.context_not,
                        account=self.account.account_id if u.service == "dynamodb" else None)
              for u in uses),
            kms_grant("DlqKey", key, ["kms:Decrypt", "kms:GenerateDataKey"], service="sqs",
                      region=region),
        ]

    def stream_mapping(
        self,
        name: str,
        stream_arn: pulumi.Input[str],
        settings: MappingSettings,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> aws.lambda_.EventSourceMapping:
        """A DynamoDB Streams mapping `name` to this function, configured the one safe way
        (`components.stream_mapping`), failing over to its DLQ; it waits for the policy (the
        function reads the stream with it) and for `depends_on`."""
        return stream_mapping(
            name,
            function_name=self.function.name,
            stream_arn=stream_arn,
            dlq_arn=self.dlq.arn,
            settings=settings,
            parent=self._parent,
            depends_on=[self.policy, *depends_on],
        )

    # -- alarms -------------------------------------------------------------------------
    def alarm(
        self,
        suffix: str,
        *,
        description: str,
        namespace: str,
        metric: str,
        dimensions: Mapping[str, pulumi.Input[str]] | None = None,
        threshold: float = 0,
        logical_name: str | None = None,
        **options: Any,
    ) -> aws.cloudwatch.MetricAlarm:
        """An alarm `<prefix><kind>-<suffix>` (logical `<base>-<suffix>`) to the alarm topic;
        dimensions default to the function's name; `options` as `metric_alarm` takes them."""
        return metric_alarm(
            logical_name or f"{self.names.base}-{suffix}",
            alarm_name=self.names.alarm_name(suffix),
            description=description,
            namespace=namespace,
            metric=metric,
            dimensions=dimensions or {"FunctionName": self.function.name},
            threshold=threshold,
            topic_arn=self.shared.alarm_topic_arn,
            parent=self._parent,
            tags=self.shared.tags,
            **options,
        )

    def errors_alarm(self, description: str) -> aws.cloudwatch.MetricAlarm:
        """Invocations that fail as a whole (AWS/Lambda Errors > 0)."""
        return self.alarm("errors", description=description, namespace="AWS/Lambda",
                          metric="Errors")

    def iterator_age_alarm(self, description: str, threshold_ms: int
                           ) -> aws.cloudwatch.MetricAlarm:
        """The oldest record of a stream mapping waits longer than `threshold_ms`."""
        return self.alarm("iterator-age", description=description, namespace="AWS/Lambda",
                          metric="IteratorAge", statistic="Maximum", threshold=threshold_ms)

    def stream_alarms(self, *, errors: str, iterator_age: str, threshold_ms: int
                      ) -> list[aws.cloudwatch.MetricAlarm]:
        """The two alarms of a function on stream mappings: whole-invocation errors, and the
        oldest record waiting longer than `threshold_ms`."""
        return [self.errors_alarm(errors), self.iterator_age_alarm(iterator_age, threshold_ms)]

    def dlq_depth_alarm(self, description: str, threshold: int, *,
                        comparison: str = "GreaterThanOrEqualToThreshold"
                        ) -> aws.cloudwatch.MetricAlarm:
        """Messages in the DLQ (its largest visible count in the period vs `threshold`)."""
        return self.alarm("dlq-depth", logical_name=f"{self.names.dlq}-depth",
                          description=description, namespace="AWS/SQS",
                          metric="ApproximateNumberOfMessagesVisible",
                          dimensions={"QueueName": self.dlq.name}, statistic="Maximum",
                          threshold=threshold, comparison=comparison)
