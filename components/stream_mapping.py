"""One DynamoDB Streams -> Lambda event source mapping, configured the one safe way.

Shared by KinesisBus (fan-in) and LegacyWriteback, so every stream consumer gets the same
guarantees: start at TRIM_HORIZON (nothing written before the mapping is skipped), bisect a
failing batch, bounded retries and record age (a poison record cannot block its shard for
24 hours), ReportBatchItemFailures (retry from the earliest failed record, never skip ahead)
and an on-failure destination (the SQS DLQ) for what still fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class MappingSettings:
    """Tuning of a stream mapping. Limits are Lambda's own."""

    batch_size: int = 100
    """Records per invocation (1..10000)."""
    batching_window_seconds: int = 1
    """How long Lambda gathers records before invoking (0..300)."""
    parallelization_factor: int = 1
    """Concurrent batches per shard (1..10); per-key order is kept by Lambda."""
    maximum_retry_attempts: int = 5
    """Retries of a failing batch before it goes to the DLQ (0..10000; never infinite)."""
    maximum_record_age_seconds: int = 21600
    """Records older than this go to the DLQ instead of being retried (60..86400)."""

    def __post_init__(self) -> None:
        checks = {
            "batch_size": (1, 10000),
            "batching_window_seconds": (0, 300),
            "parallelization_factor": (1, 10),
            "maximum_retry_attempts": (0, 10000),
            "maximum_record_age_seconds": (60, 86400),
        }
        for field, (low, high) in checks.items():
            value = getattr(self, field)
            if not low <= value <= high:
                raise ValueError(
                    f"MappingSettings.{field}: expected {low}..{high}, found {value}"
                )


def stream_mapping(
    name: str,
    *,
    function_name: pulumi.Input[str],
    stream_arn: pulumi.Input[str],
    dlq_arn: pulumi.Input[str],
    settings: MappingSettings,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] | None = None,
) -> aws.lambda_.EventSourceMapping:
    """Declare the mapping `name` from a DynamoDB stream to a function."""
    return aws.lambda_.EventSourceMapping(
        name,
        function_name=function_name,
        event_source_arn=stream_arn,
        starting_position="TRIM_HORIZON",
        batch_size=settings.batch_size,
        maximum_batching_window_in_seconds=settings.batching_window_seconds,
        parallelization_factor=settings.parallelization_factor,
        bisect_batch_on_function_error=True,
        maximum_retry_attempts=settings.maximum_retry_attempts,
        maximum_record_age_in_seconds=settings.maximum_record_age_seconds,
        function_response_types=["ReportBatchItemFailures"],
        destination_config=aws.lambda_.EventSourceMappingDestinationConfigArgs(
            on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(
                destination_arn=dlq_arn,
            ),
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on or [])),
    )
