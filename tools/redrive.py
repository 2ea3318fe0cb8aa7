"""Redrive the fan-in's failed batches from its on-failure DLQ back onto the bus.

    python -m tools.redrive --queue-url URL [--dry-run] [--max-messages N]
        [--function-name NAME | (--table-prefix P | --tables JSON) --stream-name NAME
         [--overflow-bucket B]]

A message in the DLQ does not hold the records: Lambda sends the metadata of the failed batch
(`DDBStreamBatchInfo`: stream ARN, shard, first and last sequence number). For each message
this tool

1. re-reads that sequence range from the DynamoDB stream (GetShardIterator AT_SEQUENCE_NUMBER,
   then GetRecords until past the last sequence number) — possible only while the records
   are within the stream's 24-hour retention;
2. converts the records with the fan-in's own code (`handlers.envelope.stream_envelope`) and
   puts them on the bus with the fan-in's own publisher (`handlers.bus`: retries, overflow);
3. deletes the message only once every record of its range is on the bus.

A message whose range has expired (TrimmedDataAccessException, the shard or stream is gone, or
the range cannot be read to its end) is never deleted: it is reported and left in the queue
for a decision (re-sync the table from the source; see docs/runbook.md). `--dry-run` reads and
reports, changes nothing (the messages become visible again right away).

The logical table name the envelopes carry comes from the physical table the way the fan-in
finds it: `<prefix><logical>` by the environment's prefix, or a listed exception. Prefix,
exceptions, bus stream and overflow bucket are read from the fan-in function's environment
(`--function-name`: TABLE_PREFIX, TABLES, BUS_STREAM_NAME, OVERFLOW_BUCKET), or given with
`--table-prefix dmsbus-prod- --stream-name ...` (and `--tables '{"legacy-orders": "orders"}'`
for tables named otherwise).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from dms_event_bus.handlers.fanin import PREFIX, TableNames

Publisher = Callable[[list[Any]], object]
"""Puts envelopes on the bus; raises (`handlers.bus.PublishError`) when some could not be put
after its retries."""

#: What can happen to a DLQ message (Outcome.status); docs/runbook.md explains each.
STATUSES = ("redriven", "would-redrive", "expired", "failed", "unrecognised")
EXPIRED_ERRORS = {"TrimmedDataAccessException", "ResourceNotFoundException"}
EMPTY_POLLS = 5  # consecutive empty GetRecords pages before a range counts as unreadable
PAGE_LIMIT = 1000  # GetRecords maximum


class RangeExpired(Exception):
    """The records of a failed batch are no longer readable from the stream."""


@dataclass
class BatchInfo:
    """`DDBStreamBatchInfo` of a Lambda on-failure record."""

    stream_arn: str
    shard_id: str
    start: str
    end: str
    batch_size: int | None = None
    first_arrival: str | None = None

    @functools.cached_property
    def physical_table(self) -> str:
        parts = self.stream_arn.split("/")
        if len(parts) < 4 or not parts[0].endswith(":table") or parts[2] != "stream":
            raise ValueError(f"not a DynamoDB stream ARN: {self.stream_arn!r}")
        return parts[1]


@dataclass
class Outcome:
    """What happened to one DLQ message."""

    message_id: str
    status: str  # one of STATUSES
    detail: str = ""
    stream_arn: str | None = None
    shard_id: str | None = None
    start: str | None = None
    end: str | None = None
    batch_size: int | None = None
    records: int = 0
    deleted: bool = False
    condition: str | None = None

    @property
    def kept(self) -> bool:
        return not self.deleted


@dataclass
class Report:
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def clean(self) -> bool:
        """Nothing needs a decision: every message was redriven (or would be)."""
        return all(o.status in ("redriven", "would-redrive") for o in self.outcomes)

    def summary(self) -> str:
        records = sum(o.records for o in self.outcomes if o.status == "redriven")
        parts = [
            f"{len(self.outcomes)} message(s)",
            f"{self.count('redriven')} redriven ({records} record(s), messages deleted)",
            f"{self.count('would-redrive')} would be redriven (dry run)",
            f"{self.count('expired')} expired (kept)",
            f"{self.count('failed')} failed (kept)",
            f"{self.count('unrecognised')} unrecognised (kept)",
        ]
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "summary": self.summary(),
            "messages": [asdict(o) for o in self.outcomes],
        }


# --- parsing ----------------------------------------------------------------------------------


def parse_message(body: str) -> tuple[BatchInfo, dict[str, Any]]:
    """The batch of a Lambda on-failure record (DynamoDB Streams source). Raises ValueError."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise ValueError("body is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("DDBStreamBatchInfo"), dict):
        raise ValueError("no DDBStreamBatchInfo: not a DynamoDB Streams on-failure record")
    info = doc["DDBStreamBatchInfo"]
    missing = [
        k for k in ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber")
        if not info.get(k)
    ]
    if missing:
        raise ValueError(f"DDBStreamBatchInfo lacks {', '.join(missing)}")
    batch = BatchInfo(
        stream_arn=str(info["streamArn"]),
        shard_id=str(info["shardId"]),
        start=str(info["startSequenceNumber"]),
        end=str(info["endSequenceNumber"]),
        batch_size=info.get("batchSize"),
        first_arrival=info.get("approximateArrivalOfFirstRecord"),
    )
    if not (batch.start.isdigit() and batch.end.isdigit()) or int(batch.start) > int(batch.end):
        raise ValueError(f"bad sequence range {batch.start}..{batch.end}")
    batch.physical_table  # noqa: B018 - validates the ARN
    raw_context = doc.get("requestContext")
    context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
    return batch, context


# --- reading the stream -----------------------------------------------------------------------


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "") or None
    return None


def read_range(streams: Any, batch: BatchInfo) -> list[dict[str, Any]]:
    """Every record of the shard with start <= sequence number <= end, in order.

    Raises RangeExpired when the range is no longer (completely) readable.
    """
    start, end = int(batch.start), int(batch.end)

    def iterator(kind: str, seq: str) -> str | None:
        try:
            out = streams.get_shard_iterator(
                StreamArn=batch.stream_arn,
                ShardId=batch.shard_id,
                ShardIteratorType=kind,
                SequenceNumber=seq,
            )
        except Exception as exc:
            code = _error_code(exc)
            if code in EXPIRED_ERRORS:
                raise RangeExpired(f"{code}: {exc}") from None
            raise
        shard_iterator: str | None = out.get("ShardIterator")
        return shard_iterator

    records: list[dict[str, Any]] = []
    shard_iterator = iterator("AT_SEQUENCE_NUMBER", batch.start)
    empty = 0
    renewed = False
    while shard_iterator:
        try:
            page = streams.get_records(ShardIterator=shard_iterator, Limit=PAGE_LIMIT)
        except Exception as exc:
            code = _error_code(exc)
            if code == "ExpiredIteratorException" and not renewed:
                # An iterator lives 15 minutes; get a fresh one once, after what we have.
                renewed = True
                last = records[-1]["dynamodb"]["SequenceNumber"] if records else None
                shard_iterator = (
                    iterator("AFTER_SEQUENCE_NUMBER", last)
                    if last
                    else iterator("AT_SEQUENCE_NUMBER", batch.start)
                )
                continue
            if code in EXPIRED_ERRORS or code == "ExpiredIteratorException":
                raise RangeExpired(f"{code}: {exc}") from None
            raise
        page_records = page.get("Records") or []
        for record in page_records:
            seq = int(record["dynamodb"]["SequenceNumber"])
            if seq < start:
                continue
            if seq > end:
                return _complete(records, batch)
            records.append(record)
            if seq == end:
                return _complete(records, batch)
        empty = 0 if page_records else empty + 1
        if empty >= EMPTY_POLLS:
            break
        shard_iterator = page.get("NextShardIterator")
    return _complete(records, batch)


def _complete(records: list[dict[str, Any]], batch: BatchInfo) -> list[dict[str, Any]]:
    """`records` if they reach the end of the range; RangeExpired if the range is broken."""
    if not records:
        raise RangeExpired(f"no record of {batch.start}..{batch.end} is readable any more")
    first = records[0]["dynamodb"]["SequenceNumber"]
    if first != batch.start:
        raise RangeExpired(f"the range starts at {first}, not {batch.start}: head trimmed")
    if int(records[-1]["dynamodb"]["SequenceNumber"]) < int(batch.end):
        # Without the end, a record might be missing: do not claim the batch redriven.
        raise RangeExpired(
            f"read {len(records)} record(s) up to "
            f"{records[-1]['dynamodb']['SequenceNumber']}, not up to {batch.end}"
        )
    return records


# --- the redrive ------------------------------------------------------------------------------


def _convert(records: Sequence[Mapping[str, Any]], batch: BatchInfo, logical: str) -> list[Any]:
    from dms_event_bus.handlers.envelope import stream_envelope

    physical = batch.physical_table
    return [stream_envelope(r, logical, physical_table=physical) for r in records]


def redrive_message(
    message: Mapping[str, Any],
    *,
    sqs: Any,
    streams: Any,
    publish: Publisher,
    queue_url: str,
    tables: Mapping[str, str] | TableNames,
    dry_run: bool,
) -> Outcome:
    """Redrive one SQS message (as `receive_message` returns it)."""
    message_id = str(message.get("MessageId"))
    try:
        batch, context = parse_message(str(message.get("Body", "")))
    except ValueError as exc:
        return Outcome(message_id, "unrecognised", str(exc))
    outcome = Outcome(
        message_id,
        "failed",
        stream_arn=batch.stream_arn,
        shard_id=batch.shard_id,
        start=batch.start,
        end=batch.end,
        batch_size=batch.batch_size,
        condition=context.get("condition"),
    )
    names = tables if isinstance(tables, TableNames) else TableNames("", tables)
    logical = names.logical(batch.physical_table)
    if logical is None:
        outcome.detail = (
            f"table {batch.physical_table!r} is not the fan-in's: neither named by its "
            f"prefix rule nor listed ({names.describe()})"
        )
        return outcome
    try:
        records = read_range(streams, batch)
    except RangeExpired as exc:
        outcome.status = "expired"
        outcome.detail = f"past the stream's retention, not redriven: {exc}"
        return outcome
    outcome.records = len(records)
    try:
        envelopes = _convert(records, batch, logical)
    except ValueError as exc:  # EnvelopeError: the record is still poison
        outcome.detail = f"a record still cannot be converted: {exc}"
        return outcome
    if dry_run:
        outcome.status = "would-redrive"
        outcome.detail = f"{len(envelopes)} record(s) of {logical} readable"
        return outcome
    try:
        publish(envelopes)
    except Exception as exc:
        outcome.detail = (
            f"the bus did not take all {len(envelopes)} record(s) ({exc}); message kept "
            "(a rerun puts the batch again, consumers dedupe by id)"
        )
        return outcome
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    outcome.status = "redriven"
    outcome.deleted = True
    outcome.detail = f"{len(envelopes)} record(s) of {logical} put on the bus"
    return outcome


def redrive(
    *,
    sqs: Any,
    streams: Any,
    publish: Publisher,
    queue_url: str,
    tables: Mapping[str, str] | TableNames,
    dry_run: bool = False,
    max_messages: int | None = None,
    wait_seconds: int = 2,
    visibility_seconds: int = 900,
    log: Callable[[str], None] = lambda _line: None,
) -> Report:
    """Work through the DLQ; returns what happened to each message."""
    report = Report(dry_run=dry_run)
    seen: set[str] = set()
    # every message received and not deleted: visible again at the end, whatever happens
    # (an error half-way through a run never leaves a message invisible for the visibility
    # timeout)
    held: dict[str, str] = {}
    try:
        while max_messages is None or len(report.outcomes) < max_messages:
            want = 10 if max_messages is None else min(10, max_messages - len(report.outcomes))
            got = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=want,
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=visibility_seconds,
                AttributeNames=["All"],
            ).get("Messages", [])
            for m in got:
                held[m["MessageId"]] = m["ReceiptHandle"]
            fresh = [m for m in got if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                outcome = redrive_message(
                    message,
                    sqs=sqs,
                    streams=streams,
                    publish=publish,
                    queue_url=queue_url,
                    tables=tables,
                    dry_run=dry_run,
                )
                report.outcomes.append(outcome)
                if outcome.deleted:
                    held.pop(message["MessageId"], None)
                log(_line(outcome))
    finally:
        release(sqs, queue_url, list(held.values()))
    return report


def release(sqs: Any, queue_url: str, handles: Sequence[str]) -> list[str]:
    """Make received messages visible again now (visibility timeout 0), for the next run or
    an operator; never deleted silently. Returns the handles that could not be released
    (an error here must not hide the error that ended the run)."""
    failed = []
    for handle in handles:
        try:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        except Exception:  # noqa: BLE001 - reported by the caller; visible after the timeout
            failed.append(handle)
    return failed


def _line(o: Outcome) -> str:
    where = f"{o.stream_arn} {o.shard_id} {o.start}..{o.end}" if o.stream_arn else "-"
    return f"{o.status:13} {o.message_id} {where} records={o.records} {o.detail}"


# --- wiring to AWS ----------------------------------------------------------------------------


def fanin_environment(lambda_client: Any, function_name: str) -> dict[str, str]:
    config = lambda_client.get_function_configuration(FunctionName=function_name)
    variables: dict[str, str] = config.get("Environment", {}).get("Variables", {})
    return variables


def bus_publisher(
    kinesis: Any, s3: Any, stream_name: str, overflow_bucket: str | None, max_record_bytes: int
) -> Publisher:
    """The fan-in's own publisher (`handlers.bus`), bound to clients and settings."""
    from dms_event_bus.handlers import bus

    return bus.redrive_publisher(
        kinesis=kinesis,
        s3=s3,
        stream_name=stream_name,
        overflow_bucket=overflow_bucket,
        max_record_bytes=max_record_bytes,
    )


class UsageError(Exception):
    """Bad input: one line naming what to fix (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (not the usage block), exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (python -m tools.redrive --help)")


def _int_in(low: int, high: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, found {value}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m tools.redrive",
        description="Redrive failed fan-in batches from the on-failure DLQ onto the bus.",
    )
    parser.add_argument("--queue-url", required=True, help="URL of the fan-in's DLQ")
    parser.add_argument("--dry-run", action="store_true", help="read and report only")
    parser.add_argument("--max-messages", type=_int_in(1, None), default=None,
                        help="stop after N messages")
    parser.add_argument(
        "--function-name",
        help="fan-in function: TABLE_PREFIX, TABLES, BUS_STREAM_NAME, ... from its env",
    )
    parser.add_argument(
        "--table-prefix", help="the environment's name prefix, e.g. dmsbus-prod- (tables "
        "named <prefix><logical>)"
    )
    parser.add_argument(
        "--tables", help='JSON {"<physical table>": "<logical name>"} of tables named otherwise'
    )
    parser.add_argument("--stream-name", help="the bus (Kinesis stream name)")
    parser.add_argument("--overflow-bucket", help="bucket for changes too large for a record")
    parser.add_argument("--max-record-bytes", type=_int_in(1, None), default=None)
    parser.add_argument(
        "--region", help="AWS region (default: the queue URL's, else the environment's)"
    )
    parser.add_argument("--wait-seconds", type=_int_in(0, 20), default=2,
                        help="SQS long-poll seconds (0..20)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _queue_region(queue_url: str) -> str | None:
    """The region an SQS queue URL names (https://sqs.<region>.amazonaws.com/...)."""
    match = re.match(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/", queue_url)
    return match.group(1) if match else None


def main(argv: Sequence[str] | None = None) -> int:
    """The command. Bad input, a missing region or credentials, an unreachable endpoint or
    an unknown queue end the run with ONE line on stderr naming what to fix, exit 2; a
    message received before that is made visible again (never left invisible)."""
    try:
        args = _parser().parse_args(argv)
        return _run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - every other failure: one line, exit 2
        print(f"error: {_explain(exc)}", file=sys.stderr)
        return 2


#: SQS error codes of a queue that does not exist (query and JSON protocols)
NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
NO_CREDENTIALS = {"InvalidClientTokenId", "UnrecognizedClientException",
                  "InvalidSecurity", "SignatureDoesNotMatch", "ExpiredToken"}


def _explain(exc: BaseException) -> str:
    """One line naming what to fix."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ("no AWS credentials: set AWS_PROFILE (or the AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY pair) for the queue's account")
    if isinstance(exc, NoRegionError):
        return ("no region: pass --region, or the queue URL as AWS shows it "
                "(https://sqs.<region>.amazonaws.com/<account>/<queue>)")
    if isinstance(exc, EndpointConnectionError):
        return (f"cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')}: check "
                "the network, --region and AWS_ENDPOINT_URL (nothing was deleted)")
    if isinstance(exc, ClientError):
        code = _error_code(exc) or ""
        if code in NO_QUEUE:
            return "no such queue: check --queue-url (and --region / the account)"
        if code in NO_CREDENTIALS:
            return f"the AWS credentials were refused ({code}): check AWS_PROFILE"
        if code in ("AccessDenied", "AccessDeniedException"):
            return f"access denied: the caller needs the redrive's permissions ({exc})"
        if code == "ResourceNotFoundException" and exc.operation_name == \
                "GetFunctionConfiguration":
            return "no such function: check --function-name (the fan-in) and --region"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return (f"{type(exc).__name__}: {text} (a message is deleted only once its records are "
            "on the bus; the others are visible again)")


def _mapping(tables_json: str | None, prefix: str) -> tuple[str, dict[str, str]]:
    """The table prefix and the listed tables, checked. Raises UsageError."""
    if prefix and not PREFIX.match(prefix):
        raise UsageError(f"--table-prefix must end in '-', e.g. dmsbus-prod-, found {prefix!r}")
    try:
        listed = json.loads(tables_json) if tables_json else {}
    except ValueError:
        listed = None
    if not isinstance(listed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in listed.items()
    ):
        raise UsageError(f'--tables is not a JSON object {{"<physical>": "<logical>"}}: '
                         f"{tables_json!r}")
    return prefix, listed


def _run(args: argparse.Namespace) -> int:
    import boto3
    from botocore.config import Config

    # what needs no AWS call is checked first
    if not args.function_name and not ((args.tables or args.table_prefix) and args.stream_name):
        raise UsageError("need --function-name (the fan-in), or --table-prefix (or --tables) "
                         "and --stream-name")
    _mapping(args.tables, args.table_prefix or "")

    if not re.match(r"https?://[^/\s]+/\S+", args.queue_url):
        raise UsageError(f"--queue-url is not a queue URL (https://sqs.<region>.amazonaws.com/"
                         f"<account>/<queue>): {args.queue_url!r}")
    session = boto3.session.Session(region_name=args.region or _queue_region(args.queue_url))
    if session.region_name is None:
        from botocore.exceptions import NoRegionError

        raise NoRegionError
    if session.get_credentials() is None:
        from botocore.exceptions import NoCredentialsError

        raise NoCredentialsError
    # fail fast on an unreachable endpoint: a few attempts, short connect timeout
    client_config = Config(connect_timeout=5, retries={"mode": "standard", "max_attempts": 3})
    clients = functools.partial(session.client, config=client_config)
    env: dict[str, str] = {}
    if args.function_name:
        env = fanin_environment(clients("lambda"), args.function_name)
    prefix, listed = _mapping(args.tables or env.get("TABLES"),
                              args.table_prefix or env.get("TABLE_PREFIX", ""))
    if not (prefix or listed):
        raise UsageError(f"the fan-in {args.function_name!r} has neither TABLE_PREFIX nor "
                         "TABLES: pass --table-prefix or --tables")
    stream_name = args.stream_name or env.get("BUS_STREAM_NAME")
    if not stream_name:
        raise UsageError(f"the fan-in {args.function_name!r} has no BUS_STREAM_NAME: pass "
                         "--stream-name")
    tables = TableNames(prefix, listed)
    from dms_event_bus.handlers.bus import DEFAULT_MAX_RECORD_BYTES

    max_bytes = args.max_record_bytes or int(
        env.get("MAX_RECORD_BYTES", DEFAULT_MAX_RECORD_BYTES)
    )
    publish = bus_publisher(
        clients("kinesis"),
        clients("s3"),
        stream_name,
        args.overflow_bucket or env.get("OVERFLOW_BUCKET"),
        max_bytes,
    )
    report = redrive(
        sqs=clients("sqs"),
        streams=clients("dynamodbstreams"),
        publish=publish,
        queue_url=args.queue_url,
        tables=tables,
        dry_run=args.dry_run,
        max_messages=args.max_messages,
        wait_seconds=args.wait_seconds,
        log=(lambda _line: None) if args.json else print,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.summary())
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
