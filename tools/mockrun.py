"""Run the Pulumi program under `pulumi.runtime.set_mocks` and record what it declares.

Used by the offline plan (`python -m tools.plan`) and by the tests. Nothing here talks to
AWS or to a Pulumi engine: every resource gets a fake id and ARN, invokes are answered by
`RecordingMocks.call`.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as settings_mod
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from dms_event_bus.settings.base import PROJECT
from dms_event_bus.settings.stackfile import ROOT, as_engine_config, read_stack_config

ACCOUNT = "123456789012"


@dataclass
class Declared:
    """One resource the program declared."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    urn: str
    parent: str
    custom: bool
    dependencies: list[str] = field(default_factory=list)
    id: str = ""
    """The id the mocks gave it (what other resources receive as its `id`)."""

    @property
    def short_type(self) -> str:
        return self.type.split(":")[-1]


@dataclass
class Plan:
    """Everything one mocked run declared, in declaration order."""

    stack: str
    resources: list[Declared]
    invokes: list[tuple[str, dict[str, Any]]]
    exports: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, Declared]:
        return {r.urn: r for r in self.resources}

    def named(self, name: str) -> Declared:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r}")
        return found[0]

    def children_of(self, parent: Declared) -> list[Declared]:
        return [r for r in self.resources if r.parent == parent.urn]


def _region(config: dict[str, str]) -> str:
    return config.get("aws:region", "eu-west-1")


class RecordingMocks(pulumi.runtime.Mocks):
    """Fake ids/ARNs for resources; answers for the invokes the program uses."""

    def __init__(self, region: str, invoke_answers: dict[str, Callable[[dict], dict]] | None):
        self.region = region
        self.invokes: list[tuple[str, dict[str, Any]]] = []
        self.outputs: dict[tuple[str, str], dict[str, Any]] = {}
        self.invoke_answers = invoke_answers or {}

    def _arn(self, type_: str, name: str) -> str:
        module = type_.split(":")[1].split("/", maxsplit=1)[0] if ":" in type_ else "mock"
        service = {"lambda": "lambda", "cloudwatch": "cloudwatch", "iam": "iam"}.get(
            module, module
        )
        region = "" if service in ("iam", "s3") else self.region
        account = "" if service == "s3" else ACCOUNT
        if service == "s3":
            return f"arn:aws:s3:::{name}"
        kind = type_.rsplit(":", maxsplit=1)[-1].lower()
        return f"arn:aws:{service}:{region}:{account}:{kind}/{name}"

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        outputs = dict(args.inputs)
        physical = (
            args.inputs.get("name")
            or args.inputs.get("bucket")
            or args.inputs.get("functionName")
            or args.name
        )
        outputs.setdefault("name", physical)
        outputs.setdefault("arn", self._arn(args.typ, physical))
        if args.typ == "aws:dynamodb/table:Table" and args.inputs.get("streamEnabled"):
            outputs["streamArn"] = f"{outputs['arn']}/stream/2026-01-01T00:00:00.000"
            outputs["streamLabel"] = "2026-01-01T00:00:00.000"
        if args.typ == "aws:lambda/function:Function":
            outputs.setdefault(
                "invokeArn",
                f"arn:aws:apigateway:{self.region}:lambda:path/functions/{outputs['arn']}",
            )
        if args.typ == "aws:sqs/queue:Queue":
            url = f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT}/{physical}"
            outputs.setdefault("url", url)
        if args.typ in {"aws:s3/bucketV2:BucketV2", "aws:s3/bucket:Bucket"}:
            outputs.setdefault("bucket", physical)
        resource_id = args.resource_id or f"{physical}-id"
        self.outputs[(args.typ, args.name)] = outputs
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
        self.invokes.append((args.token, dict(args.args)))
        if args.token in self.invoke_answers:
            return self.invoke_answers[args.token](dict(args.args))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/mock",
                    "userId": "MOCK", "id": ACCOUNT}
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if args.token == "aws:dynamodb/getTables:getTables":
            return {"names": [], "id": self.region}
        if args.token == "aws:secretsmanager/getSecretVersion:getSecretVersion":
            # never a real secret offline (adoption.trigger's GitHub token)
            return {"arn": args.args.get("secretId"), "secretString": "offline-plan-no-secret",
                    "versionId": "mock", "id": args.args.get("secretId")}
        return {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """MockMonitor that also keeps each registration's parent and dependencies."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.declared: list[Declared] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            recorded = self.resources[response.urn]
            self.declared.append(
                Declared(
                    type=request.type,
                    name=request.name,
                    inputs=_plain(pulumi_mocks.rpc.deserialize_properties(request.object)),
                    outputs=_plain(dict(recorded.state)),
                    urn=response.urn,
                    parent=request.parent,
                    custom=bool(request.custom),
                    dependencies=list(request.dependencies),
                    id=response.id,
                )
            )
        return response


def _plain(value: Any) -> Any:
    """Strip Pulumi's unknown/secret wrappers so tests compare plain data."""
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270":
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def run_program(
    stack: str,
    engine_config: dict[str, str],
    program: Callable[[], Any],
    *,
    secret_keys: list[str] | None = None,
    invoke_answers: dict[str, Callable[[dict], dict]] | None = None,
) -> Plan:
    """Run `program` as stack `stack` under mocks with the given engine config."""
    mocks = RecordingMocks(_region(engine_config), invoke_answers)
    monitor = RecordingMonitor(mocks)
    # A fresh root stack per run, so a second run in one process gets its own stack URN.
    settings_mod.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(engine_config), secret_keys or [])
    exports: dict[str, Any] = {}
    original_export = pulumi.export

    def _export(name: str, value: Any) -> None:
        exports[name] = value
        original_export(name, value)

    pulumi.export = _export
    try:
        _sync_await(run_pulumi_func(program))
    except BaseException as exc:
        # what was declared before the failure (tests assert: nothing, for config errors)
        exc.declared = list(monitor.declared)  # type: ignore[attr-defined]
        raise
    finally:
        pulumi.export = original_export
    resolved = {k: _resolve(v) for k, v in exports.items()}
    return Plan(stack, list(monitor.declared), list(mocks.invokes), resolved)


def _resolve(value: Any) -> Any:
    return _plain(_sync_await(pulumi.Output.from_input(value).future()))


def main_program(root: Path = ROOT) -> Callable[[], Any]:
    """The project's `__main__.py`, as a callable for `run_program`."""

    def program() -> None:
        runpy.run_path(str(root / "__main__.py"), run_name="__pulumi_program__")

    return program


def run_stack(
    stack: str,
    *,
    root: Path = ROOT,
    stack_dir: Path | None = None,
    overrides: dict[str, Any] | None = None,
    invoke_answers: dict[str, Callable[[dict], dict]] | None = None,
) -> Plan:
    """Run `root/__main__.py` with `Pulumi.<stack>.yaml` from `stack_dir` (default: root),
    plus `overrides` (namespaced keys)."""
    config = read_stack_config(stack, stack_dir or root)
    if overrides:
        config.update(overrides)
    engine_config, secret_keys = as_engine_config(config)
    return run_program(
        stack,
        engine_config,
        main_program(root),
        secret_keys=secret_keys,
        invoke_answers=invoke_answers,
    )


def dumps(plan: Plan) -> str:
    """A plan as JSON (for diffing two runs)."""
    return json.dumps(
        [{"type": r.type, "name": r.name, "inputs": r.inputs, "parent": r.parent}
         for r in plan.resources],
        sort_keys=True,
        default=str,
    )
