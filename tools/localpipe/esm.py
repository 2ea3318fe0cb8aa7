"""An event source mapping simulator over moto's DynamoDB Streams (local pipeline).

Follows Lambda's documented semantics for DynamoDB stream mappings
(https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html,
https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html):

* records are read in order, per shard, and handed over in batches of at most `batch_size`;
* ReportBatchItemFailures: an empty/absent `batchItemFailures` is success; otherwise the
  records before the LOWEST reported sequence number are checkpointed and the rest is retried;
  an empty/null/unknown `itemIdentifier` fails the whole batch;
* a function error (an exception, or a simulated timeout) fails the whole batch;
* BisectBatchOnFunctionError: a batch that fails (function error, timeout, invalid
  `batchItemFailures`) and has more than one record is split in two and each half is retried
  on its own; splitting does not consume the retry quota. A partial response is not a
  function error: the batch is cut at the returned sequence number and only the remaining
  records are retried, as one batch, each such retry counting as a retry attempt ("the batch
  is bisected at the returned sequence number and Lambda retries only the remaining
  records");
* MaximumRetryAttempts bounds the retries of a one-record (or un-bisected) batch; then an
  invocation record in Lambda's documented on-failure format goes to the SQS destination and
  the shard moves on.

What only AWS can confirm: the exact interleaving of bisection and retries inside Lambda.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tools.localpipe.lambda_events import to_lambda_record

Function = Callable[[dict[str, Any], Any], Any]


class SimulatedTimeout(BaseException):  # noqa: N818 - it is Lambda killing the function
    """Raised by fault injectors to stop a function mid-batch, as Lambda's timeout does.

    A BaseException so handler code catching `Exception` cannot swallow it.
    """


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers use."""

    function_name: str
    timeout_ms: int = 60_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    memory_limit_in_mb: int = 512
    clock: Callable[[], float] = time.monotonic  # seconds; tests may make time pass faster
    started: float | None = None

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.clock()

    def get_remaining_time_in_millis(self) -> int:
        started = self.started if self.started is not None else self.clock()
        return max(0, int(self.timeout_ms - (self.clock() - started) * 1000))


@dataclass
class Invocation:
    """One call of the function, as the simulator saw it."""

    sequence_numbers: list[str]
    outcome: str  # "ok" | "partial" | "error"
    detail: str = ""


def _iso(when: Any) -> str:
    if isinstance(when, datetime):
        moment = when.astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(float(when), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class StreamMapping:
    """One DynamoDB stream -> one function, stepped explicitly by the test."""

    def __init__(  # noqa: PLR0913 - mirrors the mapping's settings
        self,
        *,
        streams: Any,
        stream_arn: str,
        function: Function,
        function_name: str,
        sqs: Any | None = None,
        dlq_url: str | None = None,
        batch_size: int = 100,
        maximum_retry_attempts: int = 5,
        bisect: bool = True,
        report_batch_item_failures: bool = True,
        region: str = "eu-west-1",
        account: str = "123456789012",
        ttl_sequence_numbers: set[str] | None = None,
        timeout_ms: int = 60_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.function = function
        self.function_name = function_name
        self.function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.batch_size = batch_size
        self.maximum_retry_attempts = maximum_retry_attempts
        self.bisect = bisect
        self.report_batch_item_failures = report_batch_item_failures
        self.region = region
        self.ttl = ttl_sequence_numbers if ttl_sequence_numbers is not None else set()
        self.timeout_ms = timeout_ms
        self.clock = clock
        self.invocations: list[Invocation] = []
        self.discarded: list[dict[str, Any]] = []  # on-failure records sent
        self._iterators: dict[str, str | None] = {}
        self._buffers: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ reading the stream

    def _poll(self) -> None:
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"][
            "Shards"
        ]
        for shard in shards:
            sid = shard["ShardId"]
            if sid not in self._iterators:
                self._iterators[sid] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                self._buffers[sid] = []
            while self._iterators[sid]:
                page = self.streams.get_records(ShardIterator=self._iterators[sid], Limit=1000)
                self._iterators[sid] = page.get("NextShardIterator")
                if not page["Records"]:
                    break
                self._buffers[sid].extend(page["Records"])

    def pending(self) -> int:
        """Records read from the stream and not yet handed over (after a poll)."""
        self._poll()
        return sum(len(b) for b in self._buffers.values())

    # ------------------------------------------------------------------ running

    def step(self) -> bool:
        """Deliver one batch per shard that has records. False when there was nothing."""
        self._poll()
        worked = False
        for sid, buffer in self._buffers.items():
            if not buffer:
                continue
            batch = buffer[: self.batch_size]
            self._run(sid, batch, retries=0)
            del buffer[: len(batch)]
            worked = True
        return worked

    def _invoke(self, batch: list[dict[str, Any]]) -> tuple[str, int, str]:
        """("ok"|"partial"|"error", index of the first record to retry, detail)."""
        event = {
            "Records": [
                to_lambda_record(
                    r, self.stream_arn, self.region,
                    ttl=r["dynamodb"]["SequenceNumber"] in self.ttl,
                )
                for r in batch
            ]
        }
        seqs = [r["dynamodb"]["SequenceNumber"] for r in batch]
        context = LambdaContext(self.function_name, invoked_function_arn=self.function_arn,
                                timeout_ms=self.timeout_ms, clock=self.clock)
        try:
            response = self.function(event, context)
        except (Exception, SimulatedTimeout) as exc:  # noqa: BLE001 - a function error
            result = ("error", 0, f"{type(exc).__name__}: {exc}")
        else:
            result = self._judge(response, seqs)
        self.invocations.append(Invocation(seqs, result[0], result[2]))
        return result

    def _judge(self, response: Any, seqs: list[str]) -> tuple[str, int, str]:
        if not self.report_batch_item_failures:
            return ("ok", len(seqs), "")
        failures = response.get("batchItemFailures") if isinstance(response, dict) else None
        if not failures:
            return ("ok", len(seqs), "")
        position = {s: i for i, s in enumerate(seqs)}
        indexes = []
        for failure in failures:
            ident = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not ident or ident not in position:
                return ("error", 0, f"invalid batchItemFailures entry {failure!r}")
            indexes.append(position[ident])
        return ("partial", min(indexes), f"reported {failures!r}")

    def _run(self, shard: str, batch: list[dict[str, Any]], retries: int) -> None:
        invoked = 0
        while batch:
            outcome, index, detail = self._invoke(batch)
            invoked += 1
            if outcome == "ok":
                return
            if outcome == "partial":
                # "the batch is bisected at the returned sequence number and Lambda retries
                # only the remaining records": the records before it are checkpointed, the
                # rest is retried as one batch (a retry attempt)
                batch = batch[index:]
            elif self.bisect and len(batch) > 1:
                # a function error: split in two, each half retried on its own
                half = len(batch) // 2
                self._run(shard, batch[:half], retries)
                self._run(shard, batch[half:], retries)
                return
            retries += 1
            if retries > self.maximum_retry_attempts:
                self._discard(shard, batch, invoked, outcome, detail)
                return

    def _discard(
        self, shard: str, batch: list[dict[str, Any]], invoked: int, outcome: str, detail: str
    ) -> None:
        """Lambda's on-failure invocation record for a DynamoDB stream batch -> SQS."""
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if outcome == "error":
            response_context["functionError"] = "Unhandled"
        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invoked,
            },
            "responseContext": response_context,
            "version": "1.0",
            "timestamp": _iso(datetime.now(UTC)),
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first["ApproximateCreationDateTime"]),
                "approximateArrivalOfLastRecord": _iso(last["ApproximateCreationDateTime"]),
                "batchSize": len(batch),
                "streamArn": self.stream_arn,
            },
        }
        self.discarded.append({**message, "_detail": detail})
        if self.sqs is not None and self.dlq_url:
            self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps(message))
