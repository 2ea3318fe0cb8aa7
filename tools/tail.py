"""See what is on the bus in AWS: read every shard of a stack's Kinesis bus and print the
envelopes.

    python -m tools.tail --stack dev [--table orders] [--from LATEST|TRIM_HORIZON|<timestamp>]
        [--follow] [--json] [--limit N] [--region R] [--stack-dir DIR]

The stream is the stack's bus (`<name prefix>bus`, the prefix from the stack's settings, as
`components/kinesis_bus.py` names it); the region is `--region`, else the stack's
`aws:region`, else AWS_REGION / the profile's. Records are decoded with the consumer kit
(`consumer.decode`: exact numbers) and overflow pointers are replaced by the full envelope from
S3 (the caller needs `s3:GetObject` on the overflow bucket; when it cannot be read the pointer
is printed and the reason goes to stderr).

Output: one line per envelope as the demo prints them (`ts`, op, table, keys, seq, the row or
the changed columns), or with `--json` the whole envelope as one JSON line (exact numbers).
Shards are read parents first (after a reshard, a row's older changes are on the parent shard);
there is no order across shards, as on the bus itself.

`--from`: `TRIM_HORIZON` (default: everything the bus still holds), `LATEST` (only what arrives
from now on; useful with `--follow`), or an ISO 8601 time (`2026-01-31T22:00:00Z`; without a
zone it is UTC). Without `--follow` the command stops once every shard is read up to its end;
with it, it keeps polling (Ctrl-C stops it). `--limit N` stops after N envelopes.

Exit 0: read; 1: some records were not envelopes or could not be shown (each named on one
line on stderr, the others printed); 2: bad arguments, an unknown stack, no region or
credentials, no such stream -- one line naming the fix.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dms_event_bus.consumer import MalformedEnvelope, OverflowReader, decode, dumps
from tools.cli import (
    OneLineParser,
    aws_problem,
    default_region,
    fail,
    one_line,
    positive_int,
    region_arg,
)

PROG = "python -m tools.tail"
EXIT_OK, EXIT_MALFORMED, EXIT_USAGE = 0, 1, 2
POSITIONS = ("LATEST", "TRIM_HORIZON")
PAGE_LIMIT = 10_000  # GetRecords maximum
POLL_SECONDS = 1.0  # between empty rounds when following (GetRecords: 5 calls/s per shard)
RELIST_ROUNDS = 30  # following: look for new shards (a reshard) every this many rounds

Clients = Callable[[str, str], Any]
"""(service, region) -> boto3 client."""


class CannotRun(Exception):
    """Something to fix before the command can run: one line."""


def start_position(text: str) -> str | datetime:
    """argparse type of --from: LATEST, TRIM_HORIZON or an ISO 8601 time (UTC if no zone)."""
    if text.upper() in POSITIONS:
        return text.upper()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LATEST, TRIM_HORIZON or an ISO 8601 time like 2026-01-31T22:00:00Z, "
            f"found {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def logical_table(text: str) -> str:
    """argparse type of --table: a logical table name (as the envelope's `table`)."""
    from dms_event_bus.settings.base import LOGICAL_NAME_PATTERN

    if not re.match(LOGICAL_NAME_PATTERN, text):
        raise argparse.ArgumentTypeError(
            f"expected a logical table name (lower case, digits, _; no environment prefix), "
            f"found {text!r}")
    return text


def bus_stream_name(name_prefix: str) -> str:
    """The bus stream of an environment, as `components/kinesis_bus.py` names it."""
    return f"{name_prefix}bus"


def stack_stream(stack: str, stack_dir: Path | None) -> tuple[str, str | None]:
    """(bus stream name, the stack's aws:region or None) from Pulumi.<stack>.yaml."""
    from dms_event_bus.settings import ConfigError, load_settings
    from dms_event_bus.settings.stackfile import (
        ROOT,
        as_engine_config,
        project_config,
        read_stack_config,
    )

    try:
        config = read_stack_config(stack, stack_dir or ROOT)
        engine, _secret = as_engine_config(config)
        settings = load_settings(stack, project_config(engine))
    except ConfigError as exc:
        raise CannotRun(exc.brief()) from None
    except (FileNotFoundError, ValueError) as exc:  # ValueError: StackFileError, one line
        raise CannotRun(str(exc)) from None
    region = config.get("aws:region")
    return bus_stream_name(settings.name_prefix), region if isinstance(region, str) else None


def boto_clients(service: str, region: str) -> Any:
    import boto3

    return boto3.client(service, region_name=region)


@dataclass
class Shard:
    id: str
    parents: tuple[str, ...]
    iterator: str | None = None
    started: bool = False
    ending: str | None = None  # EndingSequenceNumber: the shard is closed (a reshard)
    closed: bool = False  # read to its end
    caught_up: bool = False  # read up to the newest record (MillisBehindLatest 0)
    last: str | None = None  # sequence number of the last record read


@dataclass
class Tail:
    """Reads every shard of one stream and hands each envelope to `emit`."""

    kinesis: Any
    stream: str
    start: str | datetime
    overflow: OverflowReader
    emit: Callable[[dict[str, Any]], None]
    warn: Callable[[str], None]
    table: str | None = None
    sleep: Callable[[float], None] = time.sleep
    shards: dict[str, Shard] = field(default_factory=dict)
    shown: int = 0
    malformed: int = 0

    def list_shards(self) -> None:
        token = None
        while True:
            page = (self.kinesis.list_shards(NextToken=token) if token
                    else self.kinesis.list_shards(StreamName=self.stream))
            for s in page["Shards"]:
                if s["ShardId"] not in self.shards:
                    parents = tuple(p for p in (s.get("ParentShardId"),
                                                s.get("AdjacentParentShardId")) if p)
                    self.shards[s["ShardId"]] = Shard(s["ShardId"], parents)
                ending = s.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                self.shards[s["ShardId"]].ending = ending
            token = page.get("NextToken")
            if not token:
                return

    def _ready(self, shard: Shard) -> bool:
        """A shard is read once its parents (those still listed) are read to their end."""
        return all(self.shards[p].closed for p in shard.parents if p in self.shards)

    def _iterator(self, shard: Shard) -> str:
        args: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard.id}
        if shard.last is not None:
            args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                        StartingSequenceNumber=shard.last)
        elif isinstance(self.start, datetime):
            args.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=self.start)
        elif self.start == "LATEST" and shard.parents and any(
                p in self.shards for p in shard.parents):
            # a child of a shard read here: its records are new ones, read them all
            args.update(ShardIteratorType="TRIM_HORIZON")
        else:
            args.update(ShardIteratorType=self.start)
        return str(self.kinesis.get_shard_iterator(**args)["ShardIterator"])

    def run(self, follow: bool, limit: int | None) -> None:
        from botocore.exceptions import ClientError

        self.list_shards()
        rounds = 0
        while True:
            got = 0
            for shard in list(self.shards.values()):
                if shard.closed or not self._ready(shard):
                    continue
                if not shard.started:
                    shard.iterator, shard.started = self._iterator(shard), True
                try:
                    page = self.kinesis.get_records(ShardIterator=shard.iterator,
                                                    Limit=PAGE_LIMIT)
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code == "ExpiredIteratorException":
                        shard.iterator = self._iterator(shard)
                        continue
                    if code in ("ProvisionedThroughputExceededException",
                                "LimitExceededException"):
                        self.sleep(POLL_SECONDS)
                        continue
                    raise
                for record in page["Records"]:
                    shard.last = record["SequenceNumber"]
                    got += 1
                    if self._one(shard, record) and limit is not None and self.shown >= limit:
                        return
                shard.iterator = page.get("NextShardIterator")
                shard.caught_up = not page["Records"] and page.get("MillisBehindLatest", 0) == 0
                if shard.iterator is None or (shard.caught_up and shard.ending is not None):
                    shard.closed = True
                    self.list_shards()  # its children
            open_shards = [s for s in self.shards.values() if not s.closed]
            if not follow and all(s.caught_up for s in open_shards if self._ready(s)):
                return
            rounds += 1
            if follow and rounds % RELIST_ROUNDS == 0:
                self.list_shards()
            if not got:
                self.sleep(POLL_SECONDS if follow else 0.2)

    def _one(self, shard: Shard, record: dict[str, Any]) -> bool:
        """Decode, filter, resolve and emit one record; True when it was shown."""
        where = f"shard {shard.id} record {record['SequenceNumber']}"
        try:
            env = decode(record["Data"])
        except MalformedEnvelope as exc:
            self.malformed += 1
            self.warn(f"{where}: not an envelope: {exc}")
            return False
        if self.table is not None and env["table"] != self.table:
            return False
        if "overflow" in env:
            try:
                env = self.overflow.resolve(env)
            except MalformedEnvelope as exc:
                self.malformed += 1
                self.warn(f"{where}: {exc}")
            except Exception as exc:  # access denied, expired object: show the pointer
                self.warn(f"{where}: could not read {env['overflow']}: {one_line(exc)}")
        try:
            self.emit(env)
        except (RecursionError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # the printer cannot render it: name it on one line and go on with the rest
            self.malformed += 1
            self.warn(f"{where}: cannot be shown: {type(exc).__name__}: {one_line(exc)}")
            return False
        self.shown += 1
        return True


def line_of(env: dict[str, Any]) -> str:
    """One line as the demo prints an envelope, after its `ts`."""
    from tools.demo import envelope_line

    line = f"{env['ts']} {envelope_line(env).strip()}"
    return line + (f"  (overflow {env['overflow']})" if "overflow" in env else "")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Print what is on a stack's bus.")
    parser.add_argument("--stack", required=True, help="stack name (Pulumi.<stack>.yaml)")
    parser.add_argument("--stack-dir", type=Path, default=None,
                        help="folder holding Pulumi.<stack>.yaml (default: the project folder)")
    parser.add_argument("--table", type=logical_table, default=None,
                        help="only this logical table's envelopes")
    parser.add_argument("--from", dest="start", type=start_position, default="TRIM_HORIZON",
                        metavar="LATEST|TRIM_HORIZON|TIME",
                        help="where to start on every shard (default TRIM_HORIZON)")
    parser.add_argument("--follow", action="store_true", help="keep reading new records")
    parser.add_argument("--json", action="store_true", help="whole envelopes as JSON lines")
    parser.add_argument("--limit", type=positive_int, default=None, help="stop after N envelopes")
    parser.add_argument("--region", type=region_arg, default=None,
                        help="default: the stack's aws:region, else AWS_REGION")
    return parser


def main(argv: Sequence[str] | None = None, clients: Clients = boto_clients,
         out: Callable[[str], None] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> int:
    args = build_parser().parse_args(argv)
    write = out or (lambda text: print(text, flush=True))
    warned: list[str] = []

    def warn(text: str) -> None:
        warned.append(text)
        print(f"tail: {text}", file=sys.stderr, flush=True)

    region = stream = None
    try:
        stream, stack_region = stack_stream(args.stack, args.stack_dir)
        region = args.region or stack_region or default_region()
        if not region:
            raise CannotRun(f"no AWS region: pass --region or set aws:region in "
                            f"Pulumi.{args.stack}.yaml (or set AWS_REGION)")
        tail = Tail(
            kinesis=clients("kinesis", region), stream=stream, start=args.start,
            overflow=OverflowReader(client_factory=lambda: clients("s3", str(region))),
            emit=lambda env: write(dumps(env) if args.json else line_of(env)),
            warn=warn, table=args.table, sleep=sleep,
        )
        tail.run(args.follow, args.limit)
    except CannotRun as exc:
        return fail(PROG, str(exc))
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        return fail(PROG, _problem(exc, region, stream))
    return EXIT_MALFORMED if tail.malformed else EXIT_OK


def _problem(exc: Exception, region: str | None, stream: str | None) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    known = aws_problem(exc, "Kinesis", region)
    if known:
        return known
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code == "ResourceNotFoundException":
            return (f"no stream {stream} in {region}: is the stack deployed in this account "
                    f"and region? ({one_line(exc)})")
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
                    "InvalidSignatureException", "ExpiredTokenException"):
            return (f"not allowed to read {stream} in {region}: {one_line(exc)} (the caller "
                    "needs kinesis:ListShards, GetShardIterator, GetRecords and kms:Decrypt)")
        return f"could not read {stream} in {region}: {one_line(exc)}"
    if isinstance(exc, BotoCoreError):
        return f"could not read {stream} in {region}: {one_line(exc)}"
    return f"could not read {stream} in {region}: {type(exc).__name__}: {one_line(exc)}"


if __name__ == "__main__":
    sys.exit(main())
