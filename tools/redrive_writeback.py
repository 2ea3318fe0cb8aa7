"""Redrive the legacy writeback's failed batches from its on-failure DLQ (docs/redrive.md).

    python -m tools.redrive_writeback --queue-url URL --function-name NAME
        [--dry-run] [--max-messages N] [--region R] [--wait-seconds S] [--json]

A writeback DLQ message holds no data, only where the failed batch was in the stream
(`DDBStreamBatchInfo`: stream ARN, shard, first and last sequence number). For each message
this tool re-reads that range (GetShardIterator AT_SEQUENCE_NUMBER, then GetRecords up to the
last sequence number; `tools.redrive.read_range`), turns the records into the form Lambda
delivers, and hands them to the SAME handler: it invokes the writeback function (`--function-
name`, synchronously) with them as its event. The message is deleted only when the function
returns no error and no batch item failure; otherwise (and for a range past the stream's
24-hour retention) it is made visible again at once and reported. Replaying is safe: the
writeback is version-guarded, a change already in the legacy row changes nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tools.redrive import (
    Outcome,
    RangeExpired,
    Report,
    UsageError,
    _explain,
    _int_in,
    _line,
    _Parser,
    _queue_region,
    parse_message,
    read_range,
    release,
)

Apply = Callable[[list[dict[str, Any]]], Mapping[str, Any]]
"""Runs the writeback handler on a Lambda event's records; returns its response
(`{"batchItemFailures": [...]}`) or raises when the invocation failed."""


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A record as GetRecords (boto3) returns it -> as Lambda delivers it: binary values as
    base64 text, ApproximateCreationDateTime as epoch seconds, plus eventSourceARN."""

    def convert(value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(bytes(value)).decode("ascii")
        if isinstance(value, datetime):
            return int(value.timestamp())
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list | set | tuple):
            return [convert(v) for v in value]
        return value

    out: dict[str, Any] = convert(dict(record))
    out["eventSourceARN"] = stream_arn
    return out


def redrive_message(message: Mapping[str, Any], *, sqs: Any, streams: Any, apply: Apply,
                    queue_url: str, dry_run: bool) -> Outcome:
    message_id = str(message.get("MessageId"))
    try:
        batch, context = parse_message(str(message.get("Body", "")))
    except ValueError as exc:
        return Outcome(message_id, "unrecognised", str(exc))
    outcome = Outcome(message_id, "failed", stream_arn=batch.stream_arn, shard_id=batch.shard_id,
                      start=batch.start, end=batch.end, batch_size=batch.batch_size,
                      condition=context.get("condition"))
    try:
        records = read_range(streams, batch)
    except RangeExpired as exc:
        outcome.status = "expired"
        outcome.detail = f"past the stream's retention, not redriven: {exc}"
        return outcome
    outcome.records = len(records)
    if dry_run:
        outcome.status = "would-redrive"
        outcome.detail = f"{len(records)} record(s) of {batch.physical_table} readable"
        return outcome
    event_records = [lambda_record(r, batch.stream_arn) for r in records]
    try:
        response = apply(event_records)
    except Exception as exc:  # noqa: BLE001 - the invocation failed: keep the message
        outcome.detail = f"the writeback failed ({' '.join(str(exc).split())}); message kept"
        return outcome
    failures = [f.get("itemIdentifier") for f in response.get("batchItemFailures") or []]
    if failures:
        outcome.detail = (f"the writeback still rejects record {failures[0]} (its item's "
                          "status_detail says why); message kept")
        return outcome
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    outcome.status, outcome.deleted = "redriven", True
    outcome.detail = f"{len(records)} record(s) of {batch.physical_table} written back"
    return outcome


def redrive(*, sqs: Any, streams: Any, apply: Apply, queue_url: str, dry_run: bool = False,
            max_messages: int | None = None, wait_seconds: int = 2,
            visibility_seconds: int = 900,
            log: Callable[[str], None] = lambda _line: None) -> Report:
    """Work through the writeback DLQ; a message not deleted is visible again at the end,
    also when the run ends on an error."""
    report = Report(dry_run=dry_run)
    seen: set[str] = set()
    held: dict[str, str] = {}
    try:
        while max_messages is None or len(report.outcomes) < max_messages:
            want = 10 if max_messages is None else min(10, max_messages - len(report.outcomes))
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=want,
                                      WaitTimeSeconds=wait_seconds,
                                      VisibilityTimeout=visibility_seconds,
                                      AttributeNames=["All"]).get("Messages", [])
            for m in got:
                held[m["MessageId"]] = m["ReceiptHandle"]
            fresh = [m for m in got if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                outcome = redrive_message(message, sqs=sqs, streams=streams, apply=apply,
                                          queue_url=queue_url, dry_run=dry_run)
                report.outcomes.append(outcome)
                if outcome.deleted:
                    held.pop(message["MessageId"], None)
                log(_line(outcome))
    finally:
        release(sqs, queue_url, list(held.values()))
    return report


def lambda_apply(lambda_client: Any, function_name: str) -> Apply:
    """Invoke the writeback function synchronously with the records as its event."""

    def apply(records: list[dict[str, Any]]) -> Mapping[str, Any]:
        out = lambda_client.invoke(FunctionName=function_name, InvocationType="RequestResponse",
                                   Payload=json.dumps({"Records": records}).encode())
        payload = out["Payload"].read()
        if out.get("FunctionError"):
            raise RuntimeError(f"{out['FunctionError']}: {payload[:500]!r}")
        response: Mapping[str, Any] = json.loads(payload or b"{}") or {}
        return response

    return apply


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m tools.redrive_writeback",
                     description="Redrive failed writeback batches from its on-failure DLQ.")
    parser.add_argument("--queue-url", required=True, help="URL of the writeback DLQ")
    parser.add_argument("--function-name", required=True,
                        help="the writeback function (dmsbus-<env>-writeback)")
    parser.add_argument("--dry-run", action="store_true", help="read and report only")
    parser.add_argument("--max-messages", type=_int_in(1, None), default=None)
    parser.add_argument("--region", help="AWS region (default: the queue URL's)")
    parser.add_argument("--wait-seconds", type=_int_in(0, 20), default=2)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        return _run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - one line, exit 2
        print(f"error: {_explain(exc)}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoCredentialsError, NoRegionError

    session = boto3.session.Session(region_name=args.region or _queue_region(args.queue_url))
    if session.region_name is None:
        raise NoRegionError
    if session.get_credentials() is None:
        raise NoCredentialsError
    config = Config(connect_timeout=5, read_timeout=900,
                    retries={"mode": "standard", "max_attempts": 3})
    report = redrive(
        sqs=session.client("sqs", config=config),
        streams=session.client("dynamodbstreams", config=config),
        apply=lambda_apply(session.client("lambda", config=config), args.function_name),
        queue_url=args.queue_url, dry_run=args.dry_run, max_messages=args.max_messages,
        wait_seconds=args.wait_seconds, log=(lambda _line: None) if args.json else print,
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
