"""The local pipeline harness (used by the end-to-end tests and `python -m tools.demo`; not a
product component: nothing here is deployed).

    PostgreSQL (real, wal_level=logical)   or   MariaDB (real, binlog ROW/FULL)
      │ logical slot (test_decoding)             localpipe/cdc.py        (DMS stand-in)
      │ or the binlog (mysql-replication)        localpipe/binlog_cdc.py (DMS stand-in)
      ▼
    moto DynamoDB waypoint tables, streams on
      │ DynamoDB Streams                         localpipe/esm.py        (Lambda ESM stand-in)
      ▼
    handlers.fanin.handler  (the project's real fan-in, in-process)
      │ moto Kinesis (+ overflow bucket, DLQ in moto SQS; tools.redrive)
      ▼
    BusConsumer -> Replica                       localpipe/consumer.py   (docs/bus.md rule)

    app-owned table (moto) --stream--> handlers.writeback.handler --> the source (echo path)
    DMS-created table --providers.adopted_table--> handlers.backfill.handler --> bus

Everything is stepped explicitly (`Pipeline.step`), single-threaded, so every fault is
injected at an exact point and every run is deterministic. `Pipeline.run_until_quiet` fails
when the pipeline does not go quiet within a bounded number of rounds. `Pipeline.reconcile`
compares the source, the DynamoDB tables and the consumer replica row by row.

The source engine is the server's (`db.engine`): every step that differs between PostgreSQL
and MariaDB (the CDC stand-in and its checkpoint, DDL, the writeback's login and target,
the audit triggers, lock waits, catalogs) is in `localpipe/engines.py`.

moto must be active around a Pipeline, with fake credentials and AWS_ACCOUNT_ID_ENDPOINT_MODE=
disabled: `tools.localpipe.aws.moto_world()` does both (the tests' `moto_world` fixture and the
demo use it).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3

from tools.localpipe.cdc import SimulatedCrash
from tools.localpipe.consumer import BusConsumer, Replica, loads, row_key
from tools.localpipe.engines import engine_for, wait_until
from tools.localpipe.esm import LambdaContext, SimulatedTimeout, StreamMapping

REGION = "eu-west-1"
ACCOUNT = "123456789012"

__all__ = [
    "ACCOUNT",
    "REGION",
    "KinesisFaults",
    "Pipeline",
    "SimulatedCrash",
    "SimulatedTimeout",
    "Source",
]


@dataclass(frozen=True)
class Source:
    """One source table of the pipeline."""

    source: str  # schema.table (PostgreSQL), database.table (MariaDB); a bare table name is
    # in the engine's default schema (public / the database)
    logical: str  # logical name (envelope `table`)
    keys: tuple[tuple[str, str], ...]  # (column, DynamoDB key type "N"/"S")

    @property
    def key_names(self) -> list[str]:
        return [k for k, _ in self.keys]


# ------------------------------------------------------------------------- fault injection


@dataclass
class Injection:
    """What happens to one PutRecords call."""

    whole: str | None = None  # error code: the whole call fails, nothing is written
    entries: dict[int, str] = field(default_factory=dict)  # entry index -> error code
    stop_after: int | None = None  # write this many entries, then the function is killed


class KinesisFaults:
    """A Kinesis client whose PutRecords/PutRecord fail as a plan says; the rest is moto's.

    `plan(call_number, entries)` returns an Injection or None (call numbers start at 1).
    """

    def __init__(self, client: Any, plan: Callable[[int, list[dict[str, Any]]],
                                                   Injection | None] | None = None) -> None:
        self._client = client
        self.plan = plan
        self.calls = 0
        self.failed_entries = 0
        self.written: list[str] = []  # partition keys written, in order

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    @property
    def exceptions(self) -> Any:
        return self._client.exceptions

    def _error(self, code: str, op: str) -> Exception:
        from botocore.exceptions import ClientError

        return ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, op)

    def put_records(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        entries = list(kwargs["Records"])
        inj = self.plan(self.calls, entries) if self.plan else None
        if inj is None:
            inj = Injection()
        if inj.whole:
            self.failed_entries += len(entries)
            raise self._error(inj.whole, "PutRecords")
        if inj.stop_after is not None:
            keep = entries[: inj.stop_after]
            if keep:
                self._client.put_records(**{**kwargs, "Records": keep})
                self.written.extend(e["PartitionKey"] for e in keep)
            raise SimulatedTimeout(
                f"Task timed out after {inj.stop_after} of {len(entries)} entries"
            )
        good = [e for i, e in enumerate(entries) if i not in inj.entries]
        real: dict[str, Any] = self._client.put_records(**{**kwargs, "Records": good}) \
            if good else {"Records": [], "FailedRecordCount": 0}
        results = iter(real["Records"])
        out: list[dict[str, Any]] = []
        for i, entry in enumerate(entries):
            if i in inj.entries:
                out.append({"ErrorCode": inj.entries[i],
                            "ErrorMessage": f"injected {inj.entries[i]}"})
            else:
                result = next(results)
                out.append(result)
                if "ErrorCode" not in result:
                    self.written.append(entry["PartitionKey"])
        failed = sum(1 for r in out if "ErrorCode" in r)
        self.failed_entries += failed
        return {**real, "Records": out, "FailedRecordCount": failed}

    def put_record(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        entry = {"Data": kwargs["Data"], "PartitionKey": kwargs["PartitionKey"]}
        inj = self.plan(self.calls, [entry]) if self.plan else None
        if inj is not None and (inj.whole or 0 in inj.entries):
            self.failed_entries += 1
            raise self._error(inj.whole or inj.entries[0], "PutRecord")
        if inj is not None and inj.stop_after == 0:
            raise SimulatedTimeout("Task timed out before the put")
        out: dict[str, Any] = self._client.put_record(**kwargs)
        self.written.append(kwargs["PartitionKey"])
        return out


# ------------------------------------------------------------------------------ pipeline


class _Env:
    """Sets environment variables and puts the old values back on close."""

    def __init__(self) -> None:
        self._old: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        if name not in self._old:
            self._old[name] = os.environ.get(name)
        os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._old.clear()


class Pipeline:
    """The whole local pipeline around one source database (see the module doc)."""

    def __init__(  # noqa: PLR0913 - the knobs the fault tests turn
        self,
        db: Any,
        sources: list[Source],
        *,
        env: str = "e2e",
        batch_size: int = 100,
        maximum_retry_attempts: int = 3,
        max_record_bytes: int | None = None,
        shards: int = 2,
        on_envelope: Callable[[dict[str, Any]], None] | None = None,
        validate_envelopes: bool = True,
    ) -> None:
        self.db = db
        self.engine = engine_for(db)
        self.sources: dict[str, Source] = {
            s.logical: s if "." in s.source else Source(f"{self.engine.schema}.{s.source}",
                                                        s.logical, s.keys)
            for s in sources}
        self.prefix = f"dmsbus-{env}-"
        self.batch_size = batch_size
        self.maximum_retry_attempts = maximum_retry_attempts
        self.max_record_bytes = max_record_bytes
        self.shards = shards
        self.on_envelope = on_envelope
        self.token = secrets.token_hex(3)
        self.fanin_timeout_ms = 60_000  # the fan-in function's timeout (its context's budget)
        self.time_skew = 0.0  # seconds added to the functions' clock: a fault "takes time"
        self.stream_name = f"{self.prefix}bus-{self.token}"
        self.bucket = f"{self.prefix}overflow-{self.token}"
        self._env = _Env()
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.streams = boto3.client("dynamodbstreams", region_name=REGION)
        self.kinesis_real = boto3.client("kinesis", region_name=REGION)
        self.kinesis = KinesisFaults(self.kinesis_real)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.secrets = boto3.client("secretsmanager", region_name=REGION)
        self.fanin_dlq = self.sqs.create_queue(QueueName=f"{self.prefix}fanin-dlq-{self.token}")[
            "QueueUrl"]
        self.writeback_dlq = self.sqs.create_queue(
            QueueName=f"{self.prefix}writeback-dlq-{self.token}")["QueueUrl"]
        self.fanin_mappings: dict[str, StreamMapping] = {}
        self.writeback_mappings: dict[str, StreamMapping] = {}
        self.record_hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.fanin_calls = 0
        self.backfill_queue: list[dict[str, Any]] = []
        self.backfill_runs: list[dict[str, Any]] = []
        self.writeback_role: tuple[str, str] | None = None
        self._writeback_secret: str | None = None
        self._writeback_tables: dict[str, dict[str, Any]] = {}
        self.app_writes: list[tuple[str, str, Any]] = []  # (legacy table, key, version)
        self.conn = self.engine.connect()
        self.cdc: Any = self.engine.cdc(self.conn, self.ddb, {}, self.token)
        self.consumer = BusConsumer(self.kinesis_real, self.stream_name, self.s3,
                                    Replica(), on_envelope,
                                    validate=envelope_validator() if validate_envelopes
                                    else None)
        self.wildcard_schema: str | None = None
        self.adopted: dict[str, Source] = {}

    # ------------------------------------------------------------------ set-up

    def physical(self, logical: str) -> str:
        return f"{self.prefix}{logical}-{self.token}"

    def start(self, *, full_load: bool = True) -> Pipeline:
        """Rule 1: declared tables exist with streams on, then the slot, then the full load."""
        self.kinesis_real.create_stream(StreamName=self.stream_name, ShardCount=self.shards)
        self.s3.create_bucket(Bucket=self.bucket,
                              CreateBucketConfiguration={"LocationConstraint": REGION})
        for src in self.sources.values():
            self._declare(src)
        self._configure_fanin()
        self.engine.cdc_start(self.cdc, full_load=full_load)
        return self

    def restart_cdc(self, *, full_load: bool = False, **kwargs: Any) -> Any:
        """A new CDC stand-in process (the old one was killed) resuming from the checkpoint
        (the slot / the binlog position) with the same table mappings; `full_load`: the
        task was killed during its full load and loads again. `kwargs` (crash_hook,
        checkpoint_every) go to the stand-in. Returns it (also `self.cdc`)."""
        old = self.cdc
        self.engine.cdc_discard(old)
        self.cdc = self.engine.cdc(self.engine.connect(), self.ddb, old.tables, self.token,
                                   state=self.engine.cdc_state(old), **kwargs)
        if full_load:
            self.engine.cdc_reload(self.cdc)
        return self.cdc

    @property
    def schema(self) -> str:
        """The source's default schema: `public` (PostgreSQL), the database (MariaDB)."""
        return self.engine.schema

    def create_table(self, ddl: str, table: str) -> None:
        """CREATE TABLE on the source, as the docs ask for each engine (PostgreSQL: REPLICA
        IDENTITY FULL; MariaDB: utf8mb4). `ddl` is the portable statement."""
        self.engine.create_table(self.conn, ddl, table)

    def change_column_type(self, table: str, column: str, sql_type: str) -> None:
        self.engine.change_column_type(self.conn, table, column, sql_type)

    def wait_for_writeback_lock_wait(self, timeout: float = 20.0) -> None:
        """Until the writeback's session waits on a row lock another session holds."""
        assert self.writeback_role is not None
        user = self.writeback_role[0]
        wait_until(lambda: self.engine.writeback_lock_waits(user) > 0,
                   "the writeback never waited on the legacy transaction's lock", timeout)

    def _declare(self, src: Source) -> None:
        name = self.physical(src.logical)
        key_types = dict(src.keys)
        self.ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": k, "KeyType": "HASH" if i == 0 else "RANGE"}
                       for i, k in enumerate(src.key_names)],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": key_types[k]}
                                  for k in src.key_names],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        self.cdc.tables[src.source] = self.engine.table_map(src.source, name, src.key_names)
        self._map_fanin(src)

    def _map_fanin(self, src: Source) -> None:
        name = self.physical(src.logical)
        arn = self.ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
        self.fanin_mappings[src.logical] = StreamMapping(
            streams=self.streams, stream_arn=arn, function=self._fanin,
            function_name=f"{self.prefix}fanin", sqs=self.sqs, dlq_url=self.fanin_dlq,
            batch_size=self.batch_size, maximum_retry_attempts=self.maximum_retry_attempts,
            timeout_ms=self.fanin_timeout_ms, clock=self.clock,
        )

    def clock(self) -> float:
        """The functions' clock (monotonic seconds, plus the injected `time_skew`)."""
        return time.monotonic() + self.time_skew

    def fanin_tables(self) -> dict[str, str]:
        tables = {**self.sources, **self.adopted}
        return {self.physical(s.logical): s.logical for s in tables.values()}

    def _configure_fanin(self) -> None:
        self._env.set("BUS_STREAM_NAME", self.stream_name)
        self._env.set("OVERFLOW_BUCKET", self.bucket)
        self._env.set("TABLES", json.dumps(self.fanin_tables(), separators=(",", ":")))
        if self.max_record_bytes is not None:
            self._env.set("MAX_RECORD_BYTES", str(self.max_record_bytes))
        from tools.localpipe import fanin_adapter

        fanin_adapter.reset(kinesis=self.kinesis, s3=self.s3)

    def _fanin(self, event: dict[str, Any], context: Any) -> Any:
        from tools.localpipe import fanin_adapter

        self.fanin_calls += 1
        if self.record_hook is not None:
            event = {"Records": [self.record_hook(r) for r in event["Records"]]}
        return fanin_adapter.invoke(event, context)

    # ------------------------------------------------------------------ the write path

    def add_writeback(self, logical: str, table: str, *, columns: dict[str, str],
                      key_columns: dict[str, str], key_types: dict[str, str],
                      column_types: dict[str, str] | None = None,
                      waypoint: bool = True) -> str:
        """An app-owned table (stream on) written back to `table` (a bare name: in the
        default schema) by the real writeback handler, connected as its own login (role /
        user) through a Secrets Manager secret.

        `waypoint`: the writeback ALSO follows the stream of `logical`'s waypoint table (the
        `origin: tables` mode), so every change the CDC stand-in replicates -- the echo of
        each write-back included -- passes through the writeback handler, which must skip it.
        """
        name = f"{self.prefix}app-{logical}-{self.token}"
        if "." not in table:
            table = f"{self.engine.schema}.{table}"
        self.ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": k, "KeyType": "HASH" if i == 0 else "RANGE"}
                       for i, k in enumerate(key_columns)],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": key_types[k]}
                                  for k in key_columns],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        spec = {"legacy_table": table, "key_columns": key_columns, "columns": columns,
                "column_types": column_types or {}}
        self._writeback_tables[name] = spec
        self._map_writeback(logical, name)
        if waypoint and logical in self.sources:
            physical = self.physical(logical)
            self._writeback_tables[physical] = spec
            self._map_writeback(f"waypoint:{logical}", physical)
        self._configure_writeback()
        self.install_audit(table)
        return name

    def _map_writeback(self, key: str, table: str) -> None:
        from dms_event_bus.handlers import writeback

        arn = self.ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self.writeback_mappings[key] = StreamMapping(
            streams=self.streams, stream_arn=arn, function=writeback.handler,
            function_name=f"{self.prefix}writeback", sqs=self.sqs, dlq_url=self.writeback_dlq,
            batch_size=self.batch_size, maximum_retry_attempts=self.maximum_retry_attempts,
        )

    def _configure_writeback(self) -> None:
        """WRITEBACK_CONFIG as the LegacyWriteback component writes it; a cold container."""
        from dms_event_bus.handlers import writeback

        user, password = self._writeback_login()
        if self._writeback_secret is None:
            self._writeback_secret = self.secrets.create_secret(
                Name=f"{self.prefix}writeback-{self.token}",
                SecretString=json.dumps({"username": user, "password": password}),
            )["ARN"]
        config = {
            "target": {"kind": self.engine.writeback_kind, "host": self.db.host,
                       "port": self.db.port, "database": self.db.dbname,
                       "secret_arn": self._writeback_secret,
                       "tls": False},
            "tables": dict(self._writeback_tables),
        }
        self._env.set("WRITEBACK_CONFIG", json.dumps(config))
        writeback._drop_connection()
        writeback._STATE.clear()

    def _writeback_login(self) -> tuple[str, str]:
        if self.writeback_role is None:
            self.writeback_role = self.engine.writeback_login(self.token)
        return self.writeback_role

    def install_audit(self, table: str) -> None:
        """Row trigger logging every committed write (who, key, version): the proof that
        nothing is written back twice."""
        self.engine.install_audit(self.conn, table,
                                  self.writeback_role[0] if self.writeback_role else None)

    def writeback_writes(self) -> list[tuple[str, str, str, Any]]:
        """(table, op, key, version) of every write the writeback role committed."""
        if self.writeback_role is None:
            return []
        return self.engine.audit_writes(self.conn, self.writeback_role[0])

    def echoes(self) -> list[tuple[str, str, str, Any]]:
        """Writes of the writeback that no new service asked for: a change that came from
        the legacy database (through the CDC stand-in) written back to it."""
        asked = set(self.app_writes)
        return [w for w in self.writeback_writes()
                if w[1] != "DELETE" and (w[0], w[2], w[3]) not in asked]

    def written_back_twice(self) -> list[tuple[str, str, str, Any]]:
        """Writes of the same (table, op, key, version) committed more than once."""
        seen: set[tuple[str, str, str, Any]] = set()
        twice = []
        for write in self.writeback_writes():
            if write in seen:
                twice.append(write)
            seen.add(write)
        return twice

    def app_put(self, logical: str, item: dict[str, Any]) -> None:
        """A new service's write through the write path (status `accepted`)."""
        name = f"{self.prefix}app-{logical}-{self.token}"
        self.ddb.put_item(TableName=name, Item={**item, "status": {"S": "accepted"}})
        spec = self._writeback_tables[name]
        key = ",".join(str(next(iter(item[k].values()))) for k in spec["key_columns"])
        version = item.get("version", {}).get("N")
        if version is not None:  # an item without a numeric version is never written back
            self.app_writes.append((spec["legacy_table"].split(".", 1)[1], key,
                                    Decimal(version)))

    def app_ttl_expire(self, logical: str, key: dict[str, Any]) -> None:
        """DynamoDB's TTL deleting an app item: the REMOVE record carries the service's
        userIdentity (moto does not run TTL; the harness marks the record)."""
        name = f"{self.prefix}app-{logical}-{self.token}"
        mapping = self.writeback_mappings[logical]
        mapping.pending()
        self.ddb.delete_item(TableName=name, Key=key)
        before = sum(len(b) for b in mapping._buffers.values())
        mapping.pending()
        for buffer in mapping._buffers.values():
            for record in buffer:
                if record["eventName"] == "REMOVE":
                    mapping.ttl.add(record["dynamodb"]["SequenceNumber"])
        assert sum(len(b) for b in mapping._buffers.values()) == before + 1

    # ------------------------------------------------------------------ adoption

    def enable_wildcard(self, schema: str | None = None, exclude: tuple[str, ...] = ()) -> None:
        """DMS table mapping with a wildcard: tables that appear in `schema` (default: the
        source's default schema) later get a DynamoDB table created by 'DMS' (no stream) and
        are replicated from then on."""
        self.wildcard_schema = schema or self.engine.schema
        self._wildcard_exclude = set(exclude) | {"e2e_audit"}

    def discover_new_tables(self) -> list[str]:
        """What DMS does for a table that appears under a wildcard mapping: create the
        target table (key = primary key, no stream) and full-load it."""
        if self.wildcard_schema is None:
            return []
        names = self.engine.tables(self.conn, self.wildcard_schema)
        created = []
        for name in names:
            qualified = f"{self.wildcard_schema}.{name}"
            if qualified in self.cdc.tables or name in self._wildcard_exclude:
                continue
            keys = self.engine.primary_key(self.conn, qualified)
            logical = name
            src = Source(qualified, logical, tuple(keys))
            physical = self.physical(logical)
            self.ddb.create_table(
                TableName=physical,
                KeySchema=[{"AttributeName": k, "KeyType": "HASH" if i == 0 else "RANGE"}
                           for i, (k, _) in enumerate(keys)],
                AttributeDefinitions=[{"AttributeName": k, "AttributeType": t}
                                      for k, t in keys],
                BillingMode="PAY_PER_REQUEST",
            )
            self.cdc.tables[qualified] = self.engine.table_map(qualified, physical,
                                                               src.key_names)
            self.cdc.full_load([qualified])
            self.adopted[logical] = src
            created.append(logical)
        return created

    def adopt(self, logical: str, *, interrupt_before_backfill: bool = False) -> dict[str, Any]:
        """Run the real AdoptedTable provider's create against the DMS-created table; the
        backfill invoke it makes is captured and run through the real backfill handler.
        `interrupt_before_backfill` kills the run between enabling the stream and the
        backfill invoke (raises SimulatedCrash)."""
        from dms_event_bus.providers import adopted_table

        physical = self.physical(logical)
        invokes: list[dict[str, Any]] = []

        def make_session() -> Any:
            sess = boto3.session.Session(region_name=REGION)

            def on_invoke(params: dict[str, Any], **_: Any) -> Any:
                # Lambda's asynchronous invoke answers 202 and queues the event; the harness
                # queues it and runs the real backfill handler in the next rounds
                if interrupt_before_backfill:
                    raise SimulatedCrash("adoption killed before the backfill invoke")
                invokes.append(json.loads(params["body"]))
                request_id = secrets.token_hex(16)
                return _Accepted(), {"StatusCode": 202,
                                     "ResponseMetadata": {"RequestId": request_id,
                                                          "HTTPStatusCode": 202}}

            sess.events.register("before-call.lambda.Invoke", on_invoke)
            return sess

        original = adopted_table.session
        adopted_table.session = make_session
        try:
            props = {"table_name": physical, "logical_name": logical, "region": REGION,
                     "poll_seconds": 0.01, "wait_timeout_seconds": 5,
                     "backfill_function_name": f"{self.prefix}backfill",
                     "backfill_segments": 2}
            result = adopted_table.AdoptedTableProvider().create(props)
        finally:
            adopted_table.session = original
        if logical not in self.fanin_mappings:
            # the next `pulumi up` declares the fan-in mapping for the adopted stream
            self._map_fanin(self.adopted[logical])
            self._env.set("TABLES", json.dumps(self.fanin_tables(), separators=(",", ":")))
            from tools.localpipe import fanin_adapter

            fanin_adapter.reset(kinesis=self.kinesis, s3=self.s3)
        self.backfill_queue.extend(invokes)
        return dict(result.outs or {})

    def _run_backfill(self) -> int:
        if not self.backfill_queue:
            return 0
        from dms_event_bus.handlers import backfill

        queue = self.backfill_queue

        class _Lambda:
            def invoke(self, **kwargs: Any) -> dict[str, Any]:
                queue.append(json.loads(kwargs["Payload"]))
                return {"StatusCode": 202}

        backfill._clients.clear()
        backfill._clients.update({"lambda": _Lambda(), "kinesis": self.kinesis,
                                  "s3": self.s3, "dynamodb": self.ddb})
        self._env.set("BACKFILL_PAGE_ITEMS", "25")
        done = 0
        while queue:
            event = queue.pop(0)
            self.backfill_runs.append(backfill.handler(
                event, LambdaContext(f"{self.prefix}backfill", timeout_ms=900_000)))
            done += 1
        return done

    # ------------------------------------------------------------------ running

    def step(self) -> int:
        """One round: CDC, fan-in mappings, writeback mappings, backfill, consumer.
        Returns the amount of work done (0 = quiet)."""
        self.discover_new_tables()
        work = self.cdc.step()
        for mapping in list(self.fanin_mappings.values()):
            work += int(mapping.step())
        for mapping in list(self.writeback_mappings.values()):
            work += int(mapping.step())
        work += self._run_backfill()
        work += self.consumer.step()
        return work

    def run_until_quiet(self, max_rounds: int = 60) -> int:
        """Step until a round does nothing; the round count (bounded, else AssertionError)."""
        for rounds in range(1, max_rounds + 1):
            if not self.step():
                return rounds
        raise AssertionError(f"pipeline not quiet after {max_rounds} rounds")

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        cur.execute(statement, params)
        try:
            rows = [tuple(r) for r in cur.fetchall()]
        except Exception:  # noqa: BLE001 - statements without a result set
            rows = []
        cur.close()
        return rows

    def dlq_messages(self, which: str = "fanin") -> list[dict[str, Any]]:
        url = self.fanin_dlq if which == "fanin" else self.writeback_dlq
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                           VisibilityTimeout=0)
            msgs: list[dict[str, Any]] = got.get("Messages", [])
            new = [m for m in msgs if m["MessageId"] not in {o["MessageId"] for o in out}]
            if not new:
                return out
            out.extend(new)

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, reports: list[tuple[str, Any]] | None = None) -> list[str]:
        """Differences between the source, the DynamoDB tables and the replica
        (an empty list = all three hold the same rows with the same values). `reports`:
        what `reconcile_reports()` gave, when the caller already has it."""
        diffs: list[str] = []
        tables = {**self.sources, **self.adopted}
        for src in tables.values():
            source = {}
            for item in self.engine.source_items(self.conn, src.source):
                row = _normal(item)
                source[row_key({k: row[k] for k in src.key_names})] = row
            dynamo = {}
            for item in _scan(self.ddb, self.physical(src.logical)):
                row = _normal(item)
                dynamo[row_key({k: row[k] for k in src.key_names})] = row
            replica = self.consumer.replica.live(src.logical)
            for name, other in (("dynamodb", dynamo), ("replica", replica)):  # exact values
                for key in sorted(source.keys() - other.keys()):
                    diffs.append(f"{src.logical} {key}: in source, missing in {name}")
                for key in sorted(other.keys() - source.keys()):
                    diffs.append(f"{src.logical} {key}: in {name}, not in source")
                for key in sorted(source.keys() & other.keys()):
                    if source[key] != other[key]:
                        diffs.append(f"{src.logical} {key}: source {source[key]!r} != "
                                     f"{name} {other[key]!r}")
        if reports is None:
            reports = self.reconcile_reports()
        for where, report in reports:  # and the project's reconcile tool
            if not report.ok:
                diffs.extend(f"tools.reconcile ({where}): {line}" for line in report.lines())
        return diffs

    def reconcile_reports(self) -> list[tuple[str, Any]]:
        """`tools.reconcile` (the project's reconcile tool) for every table, twice: source vs
        its DynamoDB table, and source vs the consumer's replica (fed to the tool as item
        pages). Returns ("dynamodb" | "replica", TableReport) pairs."""
        from tools import reconcile as tool
        from tools.dms_types import category_of

        out: list[tuple[str, Any]] = []
        for src in {**self.sources, **self.adopted}.values():
            mapping = tool.TableMapping(source=src.source, target=self.physical(src.logical),
                                        keys=tuple(src.key_names))
            out.append(("dynamodb", tool.reconcile_table(
                self.conn, self.engine.name, mapping, self.ddb, consistent_read=True)))
            binary = {name for name, typ in self.columns(src.source)
                      if category_of(self.engine.name, typ) == "binary"}
            items = [_as_item(row, binary)
                     for row in self.consumer.replica.live(src.logical).values()]
            out.append(("replica", tool.reconcile_table(
                self.conn, self.engine.name, mapping, None, target_pages=[items])))
        return out

    def columns(self, qualified: str) -> list[tuple[str, str]]:
        return self.engine.columns(self.conn, qualified)

    def reconnect(self) -> None:
        """New connections for the harness and the CDC stand-in (after a server restart)."""
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - the old connection is usually broken already
            pass
        self.conn = self.engine.connect()
        self.engine.cdc_reconnect(self.cdc, self.conn)

    def close(self) -> None:
        try:
            self.engine.cdc_close(self.cdc)
        except Exception:  # noqa: BLE001 - best effort on a broken connection
            pass
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass
        self._env.restore()
        # leave the handlers' module state as a cold container would have it
        from dms_event_bus.handlers import backfill, fanin, writeback

        fanin._clients.clear()
        fanin._config_cache.clear()
        backfill._clients.clear()
        writeback._drop_connection()
        writeback._STATE.clear()


class _Accepted:
    """The HTTP side of a short-circuited botocore call (Lambda's 202 Accepted)."""

    status_code = 202
    headers: dict[str, str] = {}  # noqa: RUF012 - read-only
    content = b""


#: The bus contract, beside the repository (CI clones ../shared next to it).
ENVELOPE_SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "envelope.schema.json"


def envelope_validator() -> Callable[[dict[str, Any]], None]:
    """Raises jsonschema.ValidationError for an envelope that breaks the bus contract."""
    from jsonschema import Draft202012Validator, FormatChecker

    validator = Draft202012Validator(json.loads(ENVELOPE_SCHEMA.read_text(encoding="utf-8")),
                                     format_checker=FormatChecker())
    return validator.validate


def _scan(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _as_item(row: dict[str, Any], binary: set[str]) -> dict[str, Any]:
    """A replica row (envelope JSON: exact Decimal numbers, binary as base64 text) back in
    DynamoDB's attribute form, for `tools.reconcile`."""

    def attr(value: Any, is_binary: bool = False) -> dict[str, Any]:
        if value is None:
            return {"NULL": True}
        if isinstance(value, bool):
            return {"BOOL": value}
        if isinstance(value, Decimal):
            return {"N": str(value)}
        if isinstance(value, str):
            return {"B": value} if is_binary else {"S": value}
        if isinstance(value, list):
            return {"L": [attr(v) for v in value]}
        if isinstance(value, dict):
            return {"M": {k: attr(v) for k, v in value.items()}}
        raise TypeError(f"unexpected value in a replica row: {value!r:.60}")

    return {name: attr(value, name in binary) for name, value in row.items()}


def _normal(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as the replica holds rows: the envelope's JSON, exact numbers."""
    from dms_event_bus.handlers.envelope import image_json

    row: dict[str, Any] = loads(image_json(item))
    return row
