"""`python -m tools.plan <stack> --against <base plan JSON>`: what a change to the program or
the stack config adds, changes and deletes, with every delete or replacement of a resource
that holds data marked DATA-AFFECTING at the top.

Both sides are plan documents as `python -m tools.plan <stack> --json` writes them (the base
usually from the merge base). Resources are matched by URN, as Pulumi does: a resource whose
logical name or parent changes is a delete of the old one and an add of the new one.

Whether a change updates in place or replaces is decided from `REPLACE_RULES`: per resource
type, the inputs that force a new resource in the AWS provider. A type not in the table is
shown as an update; `pulumi preview` remains the authority on such types (docs/plan.md).
An update in place is DATA-AFFECTING too when it meets a row of `UPDATE_RULES`: a retention
or expiration shortened, point-in-time recovery turned off, a TTL turned on or moved.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Version of the plan JSON written by `tools.plan --json`. Files without `format` (written
#: before it existed) are read as format 1: their URNs are derived from parent and name.
FORMAT = 1

#: Exit status of `--against` when data-affecting changes exist (CI requires an approval).
EXIT_DATA_AFFECTING = 3

STACK_TYPE = "pulumi:pulumi:Stack"

SECRET = "[secret]"
#: Input keys whose values are never printed (nor written to the plan JSON in clear), matched
#: on the key lower-cased without `_`: passwords, secret strings and keys, tokens.
_SENSITIVE_KEY = re.compile(
    r"(password|passwd|passphrase|secretstring|secretbinary|secretkey|secretaccesskey"
    r"|privatekey|token|secret)$")
#: Inputs (dotted paths) that are secret for one resource type only: the program marks them
#: secret (`pulumi.Output.secret`), which the offline plan's recorded inputs do not keep.
SENSITIVE_BY_TYPE: dict[str, tuple[str, ...]] = {
    "aws:apigateway/apiKey:ApiKey": ("value",),
    "aws:cloudwatch/eventConnection:EventConnection": (
        "authParameters.apiKey.value", "authParameters.invocationHttpParameters"),
}
#: The placeholder `settings.stackfile.as_engine_config` puts in place of `secure:` values.
PLACEHOLDER = "<secret>"


@dataclass(frozen=True)
class ReplaceRule:
    """Per resource type: what it is, whether it holds data, and the inputs whose change
    replaces it (dotted input paths, Pulumi's camelCase)."""

    label: str
    replace_on: tuple[str, ...]
    source: str
    holds_data: Callable[[dict[str, Any]], bool] | None = None
    """None: never holds data; otherwise: does this resource (by its inputs) hold data."""


def _always(_inputs: dict[str, Any]) -> bool:
    return True


def _is_dlq(inputs: dict[str, Any]) -> bool:
    """A queue that receives failed records (this program names them `*-dlq`)."""
    name = str(inputs.get("name") or inputs.get("namePrefix") or "")
    return "dlq" in name.lower() or "dead" in name.lower()


_TF = "terraform-provider-aws internal/service/"
#: The one table of replace-forcing inputs. Source: the AWS provider's schema (the Pulumi AWS
#: provider bridges terraform-provider-aws; its registry pages omit the ForceNew flags, so
#: each row names the provider file whose schema marks the inputs `ForceNew: true`).
REPLACE_RULES: dict[str, ReplaceRule] = {
    "aws:dynamodb/table:Table": ReplaceRule(
        "DynamoDB table",
        ("name", "hashKey", "rangeKey", "localSecondaryIndexes", "restoreSourceName",
         "restoreToLatestTime", "restoreDateTime"),
        _TF + "dynamodb/table.go (name, hash_key, range_key, local_secondary_index, restore_*)",
        _always),
    "aws:kinesis/stream:Stream": ReplaceRule(
        "Kinesis stream", ("name",), _TF + "kinesis/stream.go (name)", _always),
    "aws:s3/bucket:Bucket": ReplaceRule(
        "S3 bucket", ("bucket", "bucketPrefix", "objectLockEnabled"),
        _TF + "s3/bucket.go (bucket, bucket_prefix, object_lock_enabled)", _always),
    "aws:s3/bucketV2:BucketV2": ReplaceRule(
        "S3 bucket", ("bucket", "bucketPrefix", "objectLockEnabled"),
        _TF + "s3/bucket.go (bucket, bucket_prefix, object_lock_enabled)", _always),
    "aws:kms/key:Key": ReplaceRule(
        "KMS key",
        ("customerMasterKeySpec", "keyUsage", "multiRegion", "customKeyStoreId", "xksKeyId"),
        _TF + "kms/key.go (customer_master_key_spec, key_usage, multi_region, "
        "custom_key_store_id, xks_key_id)", _always),
    "aws:dms/endpoint:Endpoint": ReplaceRule(
        "DMS endpoint", ("endpointId", "kmsKeyArn"),
        _TF + "dms/endpoint.go (endpoint_id, kms_key_arn)", _always),
    "aws:dms/replicationTask:ReplicationTask": ReplaceRule(
        "DMS replication task",
        ("replicationTaskId", "replicationInstanceArn", "sourceEndpointArn",
         "targetEndpointArn"),
        _TF + "dms/replication_task.go (replication_task_id, replication_instance_arn, "
        "source_endpoint_arn, target_endpoint_arn)", _always),
    "aws:dms/replicationConfig:ReplicationConfig": ReplaceRule(
        "DMS replication config",
        ("replicationConfigIdentifier", "resourceIdentifier", "computeConfig.availabilityZone",
         "computeConfig.kmsKeyId", "computeConfig.replicationSubnetGroupId"),
        _TF + "dms/replication_config.go (replication_config_identifier, resource_identifier, "
        "compute_config.availability_zone/kms_key_id/replication_subnet_group_id)", _always),
    "aws:sqs/queue:Queue": ReplaceRule(
        "SQS dead-letter queue (may hold failed records)", ("name", "namePrefix", "fifoQueue"),
        _TF + "sqs/queue.go (name, name_prefix, fifo_queue)", _is_dlq),
    "aws:lambda/eventSourceMapping:EventSourceMapping": ReplaceRule(
        "stream mapping", ("eventSourceArn",),
        _TF + "lambda/event_source_mapping.go (event_source_arn)"),
    "pulumi-python:dynamic/dms:AdoptedTable": ReplaceRule(
        "adopted table (delete forgets it, never deletes it)", ("table_name", "region"),
        "providers/adopted_table.py REPLACE_KEYS"),
}

@dataclass(frozen=True)
class UpdateRule:
    """An in-place update that destroys data: `destroys(old, new)` on the input at `path`
    (dotted, Pulumi's camelCase; `name[]` is each element of a list, paired by its `id` or
    name as in the diff, else by position), `why` the consequence, for resources `applies`
    to."""

    path: str
    destroys: Callable[[Any, Any], bool]
    why: str
    applies: Callable[[dict[str, Any]], bool] = _always


def _decreases(default: float) -> Callable[[Any, Any], bool]:
    """A number that gets smaller; absent is `default` (the provider's, or inf: never)."""
    def destroys(old: Any, new: Any) -> bool:
        before, after = (default if v is None else v for v in (old, new))
        return isinstance(before, int | float) and isinstance(after, int | float) \
            and after < before
    return destroys


def _turns_off(old: Any, new: Any) -> bool:
    return bool(old) and not new


def _ttl_expires_more(old: Any, new: Any) -> bool:
    """TTL turned on, or its attribute changed while on: items whose (new) attribute is in the
    past are deleted by DynamoDB within days."""
    def on(v: Any) -> str | None:
        return str(v.get("attributeName")) if isinstance(v, dict) and v.get("enabled") else None
    return on(new) is not None and on(new) != on(old)


_NEVER = float("inf")
_LIFECYCLE_RULES = (
    UpdateRule("rules[].expiration.days", _decreases(_NEVER),
               "objects older than the new age are deleted by S3 at once"),
    UpdateRule("rules[].noncurrentVersionExpiration.noncurrentDays", _decreases(_NEVER),
               "older object versions than the new age are deleted by S3 at once"),
)
#: The one table of in-place updates that destroy data (the resource stays, what it holds
#: does not), next to REPLACE_RULES. Increases and turning protection on are plain updates.
UPDATE_RULES: dict[str, tuple[UpdateRule, ...]] = {
    "aws:kinesis/stream:Stream": (
        UpdateRule("retentionPeriod", _decreases(24),
                   "records older than the new period (hours) are trimmed at once"),),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _LIFECYCLE_RULES,
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2": _LIFECYCLE_RULES,
    "aws:dynamodb/table:Table": (
        UpdateRule("pointInTimeRecovery.enabled", _turns_off,
                   "point-in-time recovery is off: its backups are deleted, no restore"),
        UpdateRule("pointInTimeRecovery.recoveryPeriodInDays", _decreases(35),
                   "restore points older than the new period are lost"),
        UpdateRule("ttl", _ttl_expires_more,
                   "items whose TTL attribute is in the past are deleted by DynamoDB"),),
    "aws:sqs/queue:Queue": (
        UpdateRule("messageRetentionSeconds", _decreases(345_600),
                   "dead-letter messages older than the new period are deleted at once",
                   _is_dlq),),
}


#: DynamoDB table inputs whose change replaces its stream (a new stream ARN: the old stream's
#: records are no longer read and every consumer starts on the new one).
TABLE = "aws:dynamodb/table:Table"
STREAM_INPUTS = ("streamEnabled", "streamViewType")
#: An adopted table whose `replace_stream` turns on: its provider may disable a stream of
#: another view type and enable a new one (providers/adopted_table.py).
ADOPTED = "pulumi-python:dynamic/dms:AdoptedTable"


class PlanFileError(ValueError):
    """The base plan file is missing, unreadable or not a plan; the message is one line."""


# -- secrets -------------------------------------------------------------------------------


def is_sensitive(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key.lower().replace("_", "")))


def fingerprint(value: Any) -> str:
    """A masked value that still changes when the value changes (12 hex of its SHA-256)."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
    return f"{SECRET[:-1]} {digest[:12]}]"


def mask_inputs(type_: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """A resource's inputs with its secrets masked (see `mask`)."""
    masked = mask(inputs)
    for path in SENSITIVE_BY_TYPE.get(type_, ()):
        *parents, key = path.split(".")
        holder: Any = masked
        for part in parents:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and holder.get(key) not in (None, "", [], {}) \
                and not is_masked(holder[key]):
            holder[key] = fingerprint(holder[key])
    return masked


def mask(value: Any, key: str = "") -> Any:
    """`value` with every sensitive input (by key name, or holding a `secure:` placeholder)
    replaced by its fingerprint."""
    if is_masked(value):
        return value
    if key and is_sensitive(key) and value not in (None, "", [], {}):
        return fingerprint(value)
    if isinstance(value, dict):
        return {k: mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, str) and PLACEHOLDER in value:
        return fingerprint(value)
    return value


def is_masked(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SECRET[:-1])


# -- plan documents ------------------------------------------------------------------------


@dataclass(frozen=True)
class Res:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]

    @property
    def physical(self) -> str:
        for key in ("name", "bucket", "endpointId", "replicationConfigIdentifier",
                    "replicationTaskId", "table_name"):
            value = self.inputs.get(key)
            if isinstance(value, str) and value:
                return value
        return ""

    @property
    def rule(self) -> ReplaceRule | None:
        return REPLACE_RULES.get(self.type)

    def holds_data(self) -> bool:
        rule = self.rule
        return bool(rule and rule.holds_data and rule.holds_data(self.inputs))

    def title(self) -> str:
        physical = f" ({self.physical})" if self.physical and self.physical != self.name else ""
        return f"{self.name}{physical} [{self.type}]"


def child_urn(parent: str, type_: str, name: str) -> str:
    """The URN the mocks give a resource of `type_` named `name` under `parent` (Pulumi's
    MockMonitor.make_urn: the parent's own type, `$`, the type): how files written before
    plans carried URNs are matched."""
    head = parent.split("::")
    parent_type = head[2].split("$")[-1] if len(head) > 2 else ""
    chain = f"{parent_type}${type_}" if parent_type else type_
    return "::".join([*head[:2], chain, name])


def plan_document(stack: str, resources: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The plan JSON `tools.plan --json` writes (secrets masked)."""
    return {"format": FORMAT, "stack": stack,
            "resources": [{**r, "inputs": mask_inputs(r["type"], r.get("inputs") or {})}
                          for r in resources],
            **extra}


def load(path: Path) -> dict[str, Any]:
    """Read a plan file written by `tools.plan --json`; PlanFileError (one line) if not."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanFileError(f"base plan {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(
            f"base plan {path}: cannot read it ({exc.__class__.__name__})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"base plan {path}: not JSON (line {exc.lineno}: {exc.msg}); "
                            "write it with `python -m tools.plan <stack> --json > FILE`") from None
    return check(doc, str(path))


def check(doc: Any, where: str) -> dict[str, Any]:
    fix = "write it with `python -m tools.plan <stack> --json > FILE`"
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
        raise PlanFileError(f"base plan {where}: not a plan (no 'resources' list); {fix}")
    if not isinstance(doc.get("stack"), str):
        raise PlanFileError(f"base plan {where}: not a plan (no 'stack' name); {fix}")
    version = doc.get("format", 1)
    if not isinstance(version, int) or version > FORMAT:
        raise PlanFileError(f"base plan {where}: format {version!r} is newer than this tool "
                            f"reads ({FORMAT}); plan the base with this version of tools.plan")
    for i, r in enumerate(doc["resources"]):
        if not (isinstance(r, dict) and isinstance(r.get("type"), str)
                and isinstance(r.get("name"), str) and isinstance(r.get("inputs", {}), dict)
                and (isinstance(r.get("urn"), str) or isinstance(r.get("parent"), str))):
            raise PlanFileError(f"base plan {where}: resource {i} is not a plan resource "
                                f"(needs type, name, inputs and urn or parent); {fix}")
    return doc


def resources(doc: dict[str, Any]) -> dict[str, Res]:
    out: dict[str, Res] = {}
    for r in doc["resources"]:
        urn = r.get("urn") or child_urn(r["parent"], r["type"], r["name"])
        out[urn] = Res(urn, r["type"], r["name"], mask_inputs(r["type"], r.get("inputs") or {}))
    return out


# -- DMS table mappings in one line -------------------------------------------------------


def _unescape(name: str) -> str:
    return re.sub(r"\[(.)\]", r"\1", name)


def _is_pattern(name: str) -> bool:
    """DMS object-locator wildcards: % (any run) and _ (one character); [x] escapes x."""
    return bool(re.search(r"[%_]", re.sub(r"\[.\]", "", name)))


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def mappings_summary(table_mappings: Any) -> str | None:
    """One line for a DMS table-mappings document: declared tables, wildcards, exclusions."""
    try:
        rules = json.loads(table_mappings)["rules"] if isinstance(table_mappings, str) \
            else table_mappings["rules"]
    except (TypeError, ValueError, KeyError):
        return None
    declared, wildcards, excluded = [], [], 0
    for rule in rules:
        if rule.get("rule-type") != "selection":
            continue
        where = rule.get("object-locator") or {}
        schema, table = str(where.get("schema-name", "")), str(where.get("table-name", ""))
        if rule.get("rule-action") == "exclude":
            excluded += 1
        elif _is_pattern(schema) or _is_pattern(table):
            wildcards.append(f"{_unescape(schema)}.{_unescape(table)}")
        else:
            declared.append(table)
    parts = [plural(len(declared), "declared table")]
    if wildcards:
        parts.append(f"{plural(len(wildcards), 'wildcard')} {' '.join(wildcards)}")
    parts.append(plural(excluded, "exclusion"))
    return ", ".join(parts)


# -- the diff ------------------------------------------------------------------------------


def _json_text(value: Any) -> Any:
    """A JSON document held in a string input (policies, table mappings), else the value."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


#: Keys that name the elements of a list (DMS rules, policy statements), so a change names
#: the element, not its position (which shifts when one is added or removed).
_ID_KEYS = ("rule-name", "Sid", "name", "Id", "id")


def _ids(items: list[Any]) -> tuple[str, list[str]] | None:
    for key in _ID_KEYS:
        names = [i.get(key) for i in items if isinstance(i, dict)]
        strings = [n for n in names if isinstance(n, str)]
        if len(strings) == len(items) and len(set(strings)) == len(strings):
            return key, strings
    return None


#: How plans written before format 1 show a Lambda package (`default=str` of the archive):
#: nothing to compare, so such an input is never reported as changed.
_OBJECT_REPR = re.compile(r"^<pulumi\.asset\.\w+ object at 0x[0-9a-f]+>$")


def _unknown(value: Any) -> bool:
    return isinstance(value, str) and bool(_OBJECT_REPR.match(value))


def _walk(a: Any, b: Any, path: str, out: dict[str, tuple[Any, Any]]) -> None:
    a, b = _json_text(a), _json_text(b)
    if a == b or _unknown(a) or _unknown(b):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            _walk(a.get(k), b.get(k), f"{path}.{k}" if path else k, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        ids_a, ids_b = _ids(a), _ids(b)
        if ids_a and ids_b and ids_a[0] == ids_b[0]:
            old, new = dict(zip(ids_a[1], a, strict=True)), dict(zip(ids_b[1], b, strict=True))
            for name in [*ids_a[1], *(n for n in ids_b[1] if n not in old)]:
                _walk(old.get(name), new.get(name), f"{path}[{name}]", out)
            return
        if len(a) == len(b) and any(isinstance(v, dict | list) for v in a + b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                _walk(x, y, f"{path}[{i}]", out)
            return
    out[path] = (a, b)


def changed_paths(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Input path -> (old, new) for every input that differs ("absent" is None). Inside
    objects, JSON documents and named lists the path goes down to what changed; an element
    added or removed is one entry."""
    out: dict[str, tuple[Any, Any]] = {}
    _walk(old, new, "", out)
    return out


def _top(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _forces(path: str, replace_on: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith((p + ".", p + "[")) for p in replace_on)


def _pairs(old: Any, new: Any, steps: list[str],
           where: str) -> list[tuple[str, Any, Any]]:
    """(path, old, new) of the input at `steps` on both sides (an `UpdateRule` path)."""
    if not steps:
        return [(where, old, new)]
    step, rest = steps[0], steps[1:]
    key = step.removesuffix("[]")
    before = old.get(key) if isinstance(old, dict) else None
    after = new.get(key) if isinstance(new, dict) else None
    where = f"{where}.{key}" if where else key
    if not step.endswith("[]"):
        return _pairs(before, after, rest, where)
    a = before if isinstance(before, list) else []
    b = after if isinstance(after, list) else []
    ids_a, ids_b = (_ids(a) if a else None), (_ids(b) if b else None)
    if (ids_a or ids_b) and (not a or not b or (ids_a and ids_b and ids_a[0] == ids_b[0])):
        olds = dict(zip(ids_a[1], a, strict=True)) if ids_a else {}
        news = dict(zip(ids_b[1], b, strict=True)) if ids_b else {}
        names = [*olds, *(n for n in news if n not in olds)]
        named = [(n, olds.get(n), news.get(n)) for n in names]
    else:
        named = [(str(i), a[i] if i < len(a) else None, b[i] if i < len(b) else None)
                 for i in range(max(len(a), len(b)))]
    out: list[tuple[str, Any, Any]] = []
    for name, x, y in named:
        out.extend(_pairs(x, y, rest, f"{where}[{name}]"))
    return out


def destroying_updates(old: Res, new: Res) -> list[str]:
    """One line per `UPDATE_RULES` row that this in-place update meets: what changed, how,
    and what is lost."""
    found = []
    for rule in UPDATE_RULES.get(new.type, ()):
        if not rule.applies(new.inputs):
            continue
        for path, before, after in _pairs(old.inputs, new.inputs, rule.path.split("."), ""):
            if before != after and rule.destroys(before, after):
                found.append(f"{path} {_show(before)} -> {_show(after)}: {rule.why}")
    return found


@dataclass
class Change:
    old: Res
    new: Res
    paths: dict[str, tuple[Any, Any]]
    replace_by: list[str] = field(default_factory=list)

    @property
    def replace(self) -> bool:
        return bool(self.replace_by)

    def stream_replaced(self) -> bool:
        """A DynamoDB table keeping its identity whose stream settings change, a replaced
        table with a stream, or an adopted table allowed to replace its stream from now on."""
        if self.new.type == ADOPTED:
            return "replace_stream" in self.paths and bool(self.new.inputs.get("replace_stream"))
        if self.new.type != TABLE:
            return False
        if self.replace:
            return bool(self.old.inputs.get("streamEnabled"))
        return any(_top(p) in STREAM_INPUTS for p in self.paths)


@dataclass(frozen=True)
class DataFinding:
    action: str  # DELETE | REPLACE | REPLACE STREAM | UPDATE
    res: Res
    why: str


@dataclass
class Diff:
    stack: str
    base: str
    adds: list[Res]
    changes: list[Change]
    deletes: list[Res]

    @property
    def data_affecting(self) -> list[DataFinding]:
        found: list[DataFinding] = []
        for r in self.deletes:
            if r.holds_data():
                found.append(DataFinding("DELETE", r, f"{r.rule.label if r.rule else r.type} "
                                         "is deleted with what it holds"))
        for c in self.changes:
            if c.replace and c.old.holds_data():
                rule = c.old.rule
                label = rule.label if rule else c.old.type
                found.append(DataFinding(
                    "REPLACE", c.new, f"{label} is replaced (a new, empty one) because "
                    f"{', '.join(c.replace_by)} changed"))
            if not c.replace:
                found.extend(DataFinding("UPDATE", c.new, why)
                             for why in destroying_updates(c.old, c.new))
            if c.stream_replaced():
                stream_inputs = (*STREAM_INPUTS, "replace_stream")
                streams = {_top(p) for p in c.paths if _top(p) in stream_inputs}
                why = ("the table is replaced" if c.replace
                       else ", ".join(sorted(streams)) + " changed")
                found.append(DataFinding(
                    "REPLACE STREAM", c.new, f"the table's DynamoDB stream is replaced ({why}): "
                    "unread records stay on the old stream, consumers start on the new one"))
        return found


def diff(base: dict[str, Any], current: dict[str, Any], base_name: str = "base") -> Diff:
    old, new = resources(base), resources(current)
    if base["stack"] != current["stack"]:
        raise PlanFileError(f"base plan {base_name}: it is a plan of stack '{base['stack']}', "
                            f"not '{current['stack']}'; plan the same stack on the base")
    changes = []
    for urn in old.keys() & new.keys():
        paths = changed_paths(old[urn].inputs, new[urn].inputs)
        if paths:
            rule = new[urn].rule
            replace_by = sorted(p for p in paths if rule and _forces(p, rule.replace_on))
            changes.append(Change(old[urn], new[urn], paths, replace_by))
    return Diff(
        stack=current["stack"], base=base_name,
        adds=sorted((new[u] for u in new.keys() - old.keys()), key=_order),
        changes=sorted(changes, key=lambda c: _order(c.new)),
        deletes=sorted((old[u] for u in old.keys() - new.keys()), key=_order))


def _order(r: Res) -> tuple[str, str]:
    return (r.type, r.name)


# -- output --------------------------------------------------------------------------------


def _show(value: Any, limit: int = 60) -> str:
    if value is None:
        return "(none)"
    if is_masked(value):
        return SECRET
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = json.dumps(value, default=str) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _path_line(path: str, old: Any, new: Any) -> str:
    if is_masked(old) or is_masked(new):
        return f"{path}: {SECRET} changed"
    return f"{path}: {_show(old)} -> {_show(new)}"


def render(d: Diff, max_paths: int = 8) -> str:
    data = d.data_affecting
    replaces = sum(c.replace for c in d.changes)
    lines = [f"plan diff, stack '{d.stack}' against {d.base}: {len(d.adds)} to add, "
             f"{len(d.changes)} to change ({replaces} replace), {len(d.deletes)} to delete"]
    if data:
        lines.append(f"DATA-AFFECTING ({len(data)}): deletes, replaces or updates resources "
                     "that hold data so that data is lost; approve only if intended")
        for f in data:
            lines.append(f"  !! {f.action} {f.res.title()}: {f.why}")
            lines.append(f"     urn {f.res.urn}")
    else:
        lines.append("no data-affecting change")
    if d.adds:
        lines.append(f"add ({len(d.adds)}):")
        lines.extend(f"  + {r.title()}" for r in d.adds)
    if d.changes:
        lines.append(f"change ({len(d.changes)}):")
        for c in d.changes:
            mark = "+-" if c.replace else "~"
            what = f"REPLACE ({', '.join(c.replace_by)} forces a new resource)" if c.replace \
                else "update in place"
            if not c.replace and destroying_updates(c.old, c.new):
                what += " (DATA-AFFECTING, see above)"
            lines.append(f"  {mark} {c.new.title()}: {what}")
            if any(_top(p) == "tableMappings" for p in c.paths):
                before = mappings_summary(c.old.inputs.get("tableMappings"))
                after = mappings_summary(c.new.inputs.get("tableMappings"))
                lines.append(f"      mappings: {before} -> {after}")
            shown = list(c.paths.items())
            for path, (old, new) in shown[:max_paths]:
                lines.append(f"      {_path_line(path, old, new)}")
            if len(shown) > max_paths:
                lines.append(f"      ... and {len(shown) - max_paths} more inputs")
    if d.deletes:
        lines.append(f"delete ({len(d.deletes)}):")
        lines.extend(f"  - {r.title()}" for r in d.deletes)
    return "\n".join(lines)


def as_json(d: Diff) -> dict[str, Any]:
    def res(r: Res) -> dict[str, str]:
        return {"urn": r.urn, "type": r.type, "name": r.name, "physical": r.physical}

    return {
        "stack": d.stack, "against": d.base,
        "data_affecting": [{"action": f.action, **res(f.res), "why": f.why}
                           for f in d.data_affecting],
        "adds": [res(r) for r in d.adds],
        "changes": [{**res(c.new), "replace": c.replace, "replace_by": c.replace_by,
                     "inputs": {p: {"old": SECRET if is_masked(o) else o,
                                    "new": SECRET if is_masked(n) else n}
                                for p, (o, n) in c.paths.items()}}
                    for c in d.changes],
        "deletes": [res(r) for r in d.deletes],
    }
