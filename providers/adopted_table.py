"""AdoptedTable: take over a DynamoDB table that AWS DMS created at runtime.

Pulumi's `import` option and `get` do not work for dynamic resources, so adoption happens in
`create`: it waits (bounded) for the table DMS creates, turns its stream on
(NEW_AND_OLD_IMAGES), starts the backfill of the rows written before the stream existed, and
then sets capacity, SSE, deletion protection, point-in-time recovery and tags.

Every step compares the live table with what is asked for and changes only what differs, so
`create` can be re-run after an interruption at any point and converges; a second run against
an adopted table makes no UpdateTable call at all. The backfill is started once per stream:
after the asynchronous invoke succeeded, a marker tag (`MARKER_TAG`) records the stream label,
the start time and the Lambda request id. A re-run that finds the marker for the current stream
does not start it again; a re-run interrupted before the marker was written starts it again
(duplicate snapshots carry the same `id`, so consumers deduplicate them: at least once, never
lost).

`delete` never deletes the table or its data: it forgets the table (and removes only the
marker tag, so that adopting it again backfills again). Destroying the stack leaves every
DMS-created table, its items and its stream as they are.

The provider is self-contained in the Pulumi state. The SDK pickles it with dill, which would
store a reference to `providers.adopted_table.AdoptedTableProvider`, importable only by an
engine that runs in this repository's root and only as long as the module keeps its name. So
`AdoptedTableProvider.__reduce__` stores this module's code instead (`PROVIDER_SOURCE`: the
source without comments and docstrings, zlib-compressed) with a loader that compiles it into a
module of its own (`RESTORED_MODULE`, importable nowhere) and returns a provider from it:
refresh and destroy work from any working directory, in an Automation API program, after a move
or rename, and on another Python version. What the code imports (the standard library, pulumi,
boto3) must be installed where the engine runs, as for the program itself.

boto3 clients are built inside each method, from a fresh session (thread-safe), with the region
from the inputs or the environment. `provider_version` is a hash of `PROVIDER_SOURCE`: an input,
so a change of behaviour shows as an update of every adopted table (the update is idempotent),
while an edit of a comment or a docstring changes nothing.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

#: The module name of the provider's code when it is loaded from the state (importable nowhere,
#: so nothing can resolve it to another file).
RESTORED_MODULE = "dms_event_bus_adopted_table_restored"


def behaviour_source(source: str) -> str:
    """`source` without comments and docstrings (every bare string statement), normalised by
    `ast.unparse`: what the code does, not how it is written down."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        kept = [
            stmt for stmt in body
            if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str))
        ]
        node.body = kept or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree)


def _own_source() -> str:
    """This module's source: its file, or (loaded from the state) the code it was loaded from."""
    restored = globals().get("__provider_source__")
    if isinstance(restored, str):
        return restored
    return Path(__file__).read_text(encoding="utf-8")


#: The provider's code as it goes into the state, and a hash of it: an input, so changed
#: behaviour shows as an update; comments and docstrings are not part of it.
PROVIDER_SOURCE = behaviour_source(_own_source())
PROVIDER_VERSION = hashlib.sha256(PROVIDER_SOURCE.encode()).hexdigest()[:16]
_PICKLED_SOURCE = zlib.compress(PROVIDER_SOURCE.encode(), 9)

#: The loader stored beside the code: `eval` of this in a fresh namespace holding the
#: compressed code decompresses it, executes it as module `RESTORED_MODULE` and returns a
#: provider. Only builtins are referenced, so loading imports nothing of this repository.
_RESTORE = (
    "globals().update(__provider_source__=__import__('zlib').decompress(__provider_zlib__)"
    ".decode()) or exec(compile(__provider_source__, __file__, 'exec', dont_inherit=True), "
    "globals()) or AdoptedTableProvider()"
)

#: Tag recording that the backfill of the table's current stream was started.
MARKER_TAG = "dms-event-bus:backfill"

NEW_AND_OLD_IMAGES = "NEW_AND_OLD_IMAGES"

#: Inputs and their defaults. Outputs are these plus the values read from AWS.
DEFAULTS: dict[str, Any] = {
    "table_name": None,
    "logical_name": None,
    "region": None,
    "wait_timeout_seconds": 1800,
    "poll_seconds": 5.0,
    "billing_mode": "PAY_PER_REQUEST",
    "read_capacity": None,
    "write_capacity": None,
    "point_in_time_recovery": True,
    "sse_enabled": True,
    "kms_key_arn": None,
    "deletion_protection": None,
    "tags": {},
    "replace_stream": False,
    "backfill_function_name": None,
    "backfill_segments": 4,
    "provider_version": PROVIDER_VERSION,
}

#: Outputs read from AWS (declared as None inputs so the resource has these attributes).
OUTPUT_KEYS = (
    "resolved_region", "table_arn", "stream_arn", "stream_label", "key_schema", "key_names",
    "live_billing_mode", "live_read_capacity", "live_write_capacity",
    "backfill_stream_label", "backfill_started_at", "backfill_request_id",
)

#: Inputs whose change means another table: forget the old one, adopt the new one.
REPLACE_KEYS = ("table_name", "region")


class AdoptionError(Exception):
    """Adoption cannot proceed; the message says what to do."""


class _UniquePaths(list[str]):
    """A loader's search paths that ignore a path already present: every boto3 Session
    appends its own data path to its loader's list, which would grow the shared list by one
    entry per session."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


_LOADER: list[Any] = []
_LOADER_LOCK = threading.Lock()


def _shared_loader(core: Any) -> Any:
    """One botocore data loader for all sessions of this process (service models are
    read-only and cached by the loader; loading them again costs ~50-200 ms per session)."""
    with _LOADER_LOCK:
        if not _LOADER:
            import botocore.loaders

            paths = _UniquePaths()
            data_path = core.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore
            for path in (data_path or "").split(os.pathsep):
                if path:
                    paths.append(os.path.expanduser(os.path.expandvars(path)))
            _LOADER.append(botocore.loaders.Loader(extra_search_paths=paths))
        return _LOADER[0]


def session() -> Any:
    """A fresh boto3 session per operation: the default session is not thread-safe, and
    the Pulumi engine calls the provider from several threads. The sessions share one
    botocore data loader (read-only service models, cached), which keeps a session cheap."""
    import boto3
    import botocore.session

    core = botocore.session.Session()
    core.register_component("data_loader", _shared_loader(core))
    return boto3.session.Session(botocore_session=core)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Adoption:
    """One operation on one table: the clients, the inputs, and the steps."""

    def __init__(self, props: dict[str, Any]) -> None:
        self.props = {**DEFAULTS, **{k: v for k, v in props.items() if k in DEFAULTS}}
        self.table = str(self.props["table_name"])
        region = (
            self.props["region"]
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
        )
        if not region:
            raise AdoptionError(
                f"AdoptedTable {self.table}: no region: set the `region` input or AWS_REGION"
            )
        self.region = str(region)
        sess = session()
        self.ddb = sess.client("dynamodb", region_name=self.region)
        self._sess = sess
        self.update_calls = 0

    # -- waiting --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any] | None:
        try:
            return self.ddb.describe_table(TableName=self.table)["Table"]
        except self.ddb.exceptions.ResourceNotFoundException:
            return None

    def wait_active(self, why: str) -> dict[str, Any]:
        """The table once it exists and it and its indexes are ACTIVE, bounded in time."""
        timeout = float(self.props["wait_timeout_seconds"])
        poll = float(self.props["poll_seconds"])
        start = time.monotonic()
        while True:
            table = self.describe()
            if table is not None and _is_active(table):
                return table
            waited = time.monotonic() - start
            if waited >= timeout:
                raise AdoptionError(_timeout_message(self.table, self.region, table, waited, why))
            time.sleep(min(poll, max(timeout - waited, 0.01)))

    def wait_stream_enabled(self, stream_arn: str) -> None:
        """Writes are captured once the stream is ENABLED: the backfill scan starts after."""
        streams = self._sess.client("dynamodbstreams", region_name=self.region)
        timeout = float(self.props["wait_timeout_seconds"])
        start = time.monotonic()
        while True:
            desc = streams.describe_stream(StreamArn=stream_arn, Limit=1)["StreamDescription"]
            if desc.get("StreamStatus") == "ENABLED":
                return
            waited = time.monotonic() - start
            if waited >= timeout:
                raise AdoptionError(
                    f"AdoptedTable {self.table}: stream {stream_arn} still "
                    f"{desc.get('StreamStatus')} after {waited:.0f}s "
                    f"(wait_timeout_seconds={timeout:g})"
                )
            time.sleep(float(self.props["poll_seconds"]))

    def update_table(self, why: str, **changes: Any) -> dict[str, Any]:
        """One UpdateTable (DynamoDB takes one change at a time), then wait for ACTIVE."""
        self.update_calls += 1
        pulumi.log.info(f"AdoptedTable {self.table}: {why}")
        self.ddb.update_table(TableName=self.table, **changes)
        return self.wait_active(f"after: {why}")

    # -- the steps ------------------------------------------------------------------------
    def ensure_stream(self, table: dict[str, Any]) -> dict[str, Any]:
        spec = table.get("StreamSpecification") or {}
        if spec.get("StreamEnabled"):
            view = spec.get("StreamViewType")
            if view == NEW_AND_OLD_IMAGES:
                return table
            if not self.props["replace_stream"]:
                raise AdoptionError(
                    f"AdoptedTable {self.table}: the table already has a stream with view type "
                    f"{view} ({table.get('LatestStreamArn')}); the bus needs "
                    f"{NEW_AND_OLD_IMAGES}. DynamoDB cannot change a stream's view type. "
                    "Either set `replace_stream: true` for this table (the current stream is "
                    "disabled and a new one enabled; readers of the old stream stop receiving "
                    "records, and the backfill that follows republishes every row), or find "
                    "who reads the old stream (Lambda event source mappings on that ARN), "
                    "disable it yourself with `aws dynamodb update-table --table-name "
                    f"{self.table} --stream-specification StreamEnabled=false`, and re-run."
                )
            table = self.update_table(
                f"disabling the {view} stream (replace_stream)",
                StreamSpecification={"StreamEnabled": False},
            )
        return self.update_table(
            f"enabling the stream ({NEW_AND_OLD_IMAGES})",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": NEW_AND_OLD_IMAGES},
        )

    def ensure_capacity(self, table: dict[str, Any], olds: dict[str, Any] | None) -> None:
        want = self.props["billing_mode"]
        have = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
        if want == "PAY_PER_REQUEST":
            if have != "PAY_PER_REQUEST":
                self.update_table("switching to on-demand", BillingMode="PAY_PER_REQUEST")
            return
        units = {
            "ReadCapacityUnits": int(self.props["read_capacity"]),
            "WriteCapacityUnits": int(self.props["write_capacity"]),
        }
        live = table.get("ProvisionedThroughput") or {}
        live_units = {k: live.get(k) for k in units}
        if have != "PROVISIONED":
            self.update_table(
                f"switching to provisioned {units}",
                BillingMode="PROVISIONED",
                ProvisionedThroughput=units,
            )
            return
        # After adoption autoscaling owns the live units: only an adoption (olds is None) or
        # a change of the configured initial units sets them.
        asked_changed = olds is None or any(
            olds.get(k) != self.props[k] for k in ("read_capacity", "write_capacity")
        )
        if asked_changed and live_units != units:
            self.update_table(f"setting capacity {units}", ProvisionedThroughput=units)

    def ensure_sse(self, table: dict[str, Any]) -> None:
        if not self.props["sse_enabled"]:
            return  # leave the table's encryption as DMS created it
        key = self.props["kms_key_arn"]
        sse = table.get("SSEDescription") or {}
        on_kms = sse.get("Status") in ("ENABLED", "UPDATING") and sse.get("SSEType") == "KMS"
        if on_kms and (not key or sse.get("KMSMasterKeyArn") == key):
            return
        spec: dict[str, Any] = {"Enabled": True, "SSEType": "KMS"}
        if key:
            spec["KMSMasterKeyId"] = key
        self.update_table(
            f"encrypting with KMS ({key or 'AWS-managed key'})", SSESpecification=spec
        )

    def ensure_deletion_protection(self, table: dict[str, Any]) -> None:
        want = self.props["deletion_protection"]
        if want is None or bool(table.get("DeletionProtectionEnabled")) == bool(want):
            return
        self.update_table(
            f"deletion protection {'on' if want else 'off'}",
            DeletionProtectionEnabled=bool(want),
        )

    def ensure_pitr(self) -> None:
        want = bool(self.props["point_in_time_recovery"])
        desc = self.ddb.describe_continuous_backups(TableName=self.table)
        pitr = desc["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription") or {}
        if (pitr.get("PointInTimeRecoveryStatus") == "ENABLED") == want:
            return
        self.ddb.update_continuous_backups(
            TableName=self.table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": want},
        )

    def live_tags(self, arn: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        kwargs: dict[str, Any] = {"ResourceArn": arn}
        while True:
            page = self.ddb.list_tags_of_resource(**kwargs)
            tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
            if not page.get("NextToken"):
                return tags
            kwargs["NextToken"] = page["NextToken"]

    def ensure_tags(self, arn: str, live: dict[str, str], olds: dict[str, Any] | None) -> None:
        want = {str(k): str(v) for k, v in (self.props["tags"] or {}).items()}
        missing = [{"Key": k, "Value": v} for k, v in sorted(want.items()) if live.get(k) != v]
        # Only tags this resource set before are removed; DMS's or anyone else's stay.
        previous = set((olds or {}).get("tags") or {})
        stale = sorted(k for k in previous - set(want) if k in live and k != MARKER_TAG)
        if missing:
            self.ddb.tag_resource(ResourceArn=arn, Tags=missing)
        if stale:
            self.ddb.untag_resource(ResourceArn=arn, TagKeys=stale)

    def ensure_backfill(self, table: dict[str, Any], live: dict[str, str]) -> dict[str, Any]:
        """Start the backfill of the current stream once; its record is the marker tag."""
        label = str(table.get("LatestStreamLabel") or "")
        marker = _parse_marker(live.get(MARKER_TAG, ""))
        if marker and marker["backfill_stream_label"] == label:
            return marker
        function = self.props["backfill_function_name"]
        if not function:
            return {"backfill_stream_label": None, "backfill_started_at": None,
                    "backfill_request_id": None}
        self.wait_stream_enabled(str(table["LatestStreamArn"]))
        payload = {
            "table": self.table,
            "logical_table": self.props["logical_name"] or self.table,
            "key_names": _key_names(table),
            "total_segments": int(self.props["backfill_segments"]),
            "stream_label": label,
        }
        started_at = _now()
        lam = self._sess.client("lambda", region_name=self.region)
        response = lam.invoke(
            FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode()
        )
        request_id = str(response.get("ResponseMetadata", {}).get("RequestId", ""))
        pulumi.log.info(f"AdoptedTable {self.table}: backfill started ({function}, {request_id})")
        # Only after the invoke succeeded: an interruption before this line re-starts it.
        self.ddb.tag_resource(
            ResourceArn=table["TableArn"],
            Tags=[{"Key": MARKER_TAG, "Value": f"{label} {started_at} {request_id}".strip()}],
        )
        live[MARKER_TAG] = f"{label} {started_at} {request_id}"
        return {"backfill_stream_label": label, "backfill_started_at": started_at,
                "backfill_request_id": request_id}

    # -- the whole --------------------------------------------------------------------------
    def converge(self, olds: dict[str, Any] | None) -> dict[str, Any]:
        table = self.wait_active("adoption")
        table = self.ensure_stream(table)
        arn = str(table["TableArn"])
        live = self.live_tags(arn)
        backfill = self.ensure_backfill(table, live)
        self.ensure_capacity(table, olds)
        table = self.describe() or table
        self.ensure_sse(table)
        self.ensure_deletion_protection(table)
        self.ensure_pitr()
        self.ensure_tags(arn, live, olds)
        final = self.wait_active("final state")
        return self.outputs(final, backfill)

    def outputs(self, table: dict[str, Any], backfill: dict[str, Any]) -> dict[str, Any]:
        attr_types = {a["AttributeName"]: a["AttributeType"]
                      for a in table.get("AttributeDefinitions", [])}
        key_schema = [
            {"name": k["AttributeName"], "key_type": k["KeyType"],
             "attribute_type": attr_types.get(k["AttributeName"], "S")}
            for k in sorted(table["KeySchema"], key=lambda k: k["KeyType"])  # HASH < RANGE
        ]
        throughput = table.get("ProvisionedThroughput") or {}
        return {
            **self.props,
            "resolved_region": self.region,
            "table_arn": table["TableArn"],
            "stream_arn": table.get("LatestStreamArn"),
            "stream_label": table.get("LatestStreamLabel"),
            "key_schema": key_schema,
            "key_names": [k["name"] for k in key_schema],
            "live_billing_mode": (table.get("BillingModeSummary") or {}).get(
                "BillingMode", "PROVISIONED"
            ),
            "live_read_capacity": throughput.get("ReadCapacityUnits"),
            "live_write_capacity": throughput.get("WriteCapacityUnits"),
            **backfill,
        }


def _is_active(table: dict[str, Any]) -> bool:
    if table.get("TableStatus") != "ACTIVE":
        return False
    return all(i.get("IndexStatus", "ACTIVE") == "ACTIVE"
               for i in table.get("GlobalSecondaryIndexes") or [])


def _key_names(table: dict[str, Any]) -> list[str]:
    return [k["AttributeName"] for k in sorted(table["KeySchema"], key=lambda k: k["KeyType"])]


def _parse_marker(value: str) -> dict[str, Any] | None:
    parts = value.split(" ")
    if len(parts) < 2 or not parts[0]:
        return None
    return {"backfill_stream_label": parts[0], "backfill_started_at": parts[1],
            "backfill_request_id": parts[2] if len(parts) > 2 else None}


def _timeout_message(
    name: str, region: str, table: dict[str, Any] | None, waited: float, why: str
) -> str:
    seen = "it does not exist" if table is None else f"its status is {table.get('TableStatus')}"
    return (
        f"AdoptedTable: gave up waiting for DynamoDB table '{name}' in {region} ({why}) after "
        f"{waited:.0f}s: {seen}. Tables of adopted sources are created by AWS DMS when its "
        "replication task runs: check that the DMS task is running (not stopped or failed) "
        f"and that a selection rule of its table mappings matches the source table that maps "
        f"to '{name}'; raise wait_timeout_seconds if the full load starts later."
    )


def _validate(news: dict[str, Any]) -> list[CheckFailure]:
    failures: list[CheckFailure] = []
    name = news.get("table_name")
    if not isinstance(name, str) or not 3 <= len(name) <= 255:
        failures.append(CheckFailure("table_name", f"expected 3..255 characters, found {name!r}"))
    mode = news.get("billing_mode", DEFAULTS["billing_mode"])
    if mode not in ("PAY_PER_REQUEST", "PROVISIONED"):
        failures.append(CheckFailure(
            "billing_mode", f"expected PAY_PER_REQUEST or PROVISIONED, found {mode!r}"))
    if mode == "PROVISIONED":
        for key in ("read_capacity", "write_capacity"):
            units = news.get(key)
            if not isinstance(units, int) or units < 1:
                failures.append(CheckFailure(
                    key, f"expected initial units >= 1 with PROVISIONED, found {units!r}"))
    timeout = news.get("wait_timeout_seconds", DEFAULTS["wait_timeout_seconds"])
    if not isinstance(timeout, int | float) or timeout <= 0:
        failures.append(CheckFailure(
            "wait_timeout_seconds", f"expected a positive number, found {timeout!r}"))
    segments = news.get("backfill_segments", DEFAULTS["backfill_segments"])
    if not isinstance(segments, int) or not 1 <= segments <= 1000:
        failures.append(CheckFailure(
            "backfill_segments", f"expected 1..1000, found {segments!r}"))
    unknown = sorted(
        k for k in news if k not in DEFAULTS and k not in OUTPUT_KEYS and not k.startswith("__")
    )
    failures += [CheckFailure(k, "unknown input") for k in unknown]
    return failures


class AdoptedTableProvider(ResourceProvider):
    """CRUD of an adopted table. See the module docstring for the guarantees."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the module's code and its loader, never as a reference to this module."""
        namespace = {
            "__name__": RESTORED_MODULE,
            "__file__": f"<{RESTORED_MODULE}>",
            "__provider_zlib__": _PICKLED_SOURCE,
        }
        return (eval, (_RESTORE, namespace))

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, _validate(news))

    def create(self, props: dict[str, Any]) -> CreateResult:
        failures = _validate(props)
        if failures:
            raise AdoptionError("; ".join(f"{f.property}: {f.reason}" for f in failures))
        adoption = _Adoption(props)
        return CreateResult(id_=adoption.table, outs=adoption.converge(olds=None))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        def value(props: dict[str, Any], key: str) -> Any:
            return props.get(key, DEFAULTS[key])

        changed = [k for k in DEFAULTS if value(olds, k) != value(news, k)]
        replaces = [k for k in REPLACE_KEYS if k in changed]
        return DiffResult(
            changes=bool(changed),
            replaces=replaces,
            stables=["table_arn", "key_schema", "key_names"],
            delete_before_replace=False,
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        adoption = _Adoption(news)
        return UpdateResult(outs=adoption.converge(olds=olds))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        adoption = _Adoption({**props, "table_name": props.get("table_name") or id_})
        table = adoption.describe()
        if table is None:
            return ReadResult(id_=None, outs={})  # gone: refresh drops it from the state
        marker = _parse_marker(adoption.live_tags(table["TableArn"]).get(MARKER_TAG, ""))
        backfill = marker or {k: props.get(k) for k in (
            "backfill_stream_label", "backfill_started_at", "backfill_request_id")}
        return ReadResult(id_=id_, outs=adoption.outputs(table, backfill))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Forget the table. Never deletes it, its items or its stream."""
        adoption = _Adoption(props)
        table = adoption.describe()
        if table is None:
            return
        try:
            adoption.ddb.untag_resource(ResourceArn=table["TableArn"], TagKeys=[MARKER_TAG])
        except adoption.ddb.exceptions.ResourceNotFoundException:
            return


class AdoptedTable(pulumi.dynamic.Resource, module="dms", name="AdoptedTable"):
    """A DMS-created table, adopted: stream on, capacity/SSE/PITR/tags set, backfill started.

    Inputs (see `DEFAULTS`): `table_name` (physical), `logical_name` (envelope `table`),
    `region`, `wait_timeout_seconds`, `poll_seconds`, `billing_mode` (PAY_PER_REQUEST or
    PROVISIONED with initial `read_capacity`/`write_capacity`), `point_in_time_recovery`,
    `sse_enabled`/`kms_key_arn`, `deletion_protection`, `tags`, `replace_stream`,
    `backfill_function_name`, `backfill_segments`.
    """

    table_name: pulumi.Output[str]
    table_arn: pulumi.Output[str]
    stream_arn: pulumi.Output[str]
    stream_label: pulumi.Output[str]
    key_schema: pulumi.Output[list[dict[str, str]]]
    key_names: pulumi.Output[list[str]]
    backfill_stream_label: pulumi.Output[str | None]
    backfill_started_at: pulumi.Output[str | None]
    backfill_request_id: pulumi.Output[str | None]

    def __init__(
        self,
        name: str,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = {k: v for k, v in {**DEFAULTS, **props}.items() if v is not None}
        inputs["provider_version"] = PROVIDER_VERSION
        super().__init__(
            AdoptedTableProvider(), name, {**{k: None for k in OUTPUT_KEYS}, **inputs}, opts
        )
