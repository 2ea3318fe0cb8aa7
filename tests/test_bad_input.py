"""Bad input to the operator commands is one line on stderr naming the fix, exit 2, never a
traceback: stack files Pulumi would refuse (or read differently), bad options, no region, no
credentials, an endpoint that cannot be reached.

Every case runs the real command line (`python -m tools.<command>`) in a subprocess, with no
AWS credentials, config file or region from the machine, and stack files written here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GOOD = textwrap.dedent(
    """\
    config:
      aws:region: eu-west-1
      dms-event-bus:tables:
        orders:
          source: {schema: sales, table: orders}
          partition_key: {name: order_id, type: N}
    """
)
TABLES = GOOD.split("\n", 2)[2]  # the dms-event-bus:tables block, indented under config:
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dmsbus-test/source-AbCdEf"


def _under_config(block: str) -> str:
    return textwrap.indent(textwrap.dedent(block), "  ")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No credentials, config, region or instance metadata from this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    env.update(
        HOME=str(tmp_path),
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",
        AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
    )
    env.update(extra)
    return env


def _fake_credentials() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}


def _run(module: str, args: list[str], tmp_path: Path, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env or _env(tmp_path),
        capture_output=True, text=True, timeout=180, check=False,
    )


def _assert_one_line(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], err[-2000:])
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# --------------------------------------------------------------------------- tools.plan

#: (case, stack file bytes, fragments the one line must hold)
PLAN_CASES: list[tuple[str, bytes, tuple[str, ...]]] = [
    ("yaml syntax", b"config:\n  aws:region: eu-west-1\n  dms-event-bus:tables: {orders: [\n",
     ("Pulumi.bad.yaml:4:1:", "not valid YAML")),
    ("bad indentation", b"config:\n  aws:region: eu-west-1\n    dms-event-bus:tags: {}\n",
     ("Pulumi.bad.yaml:3:", "not valid YAML")),
    ("config is a list", b"config:\n  - aws:region: eu-west-1\n",
     ("Pulumi.bad.yaml:2:3:", "expected a mapping under 'config:'", "found a list")),
    ("top level is a list", b"- config\n- other\n",
     ("Pulumi.bad.yaml:1:1:", "expected a mapping at the top", "found a list")),
    ("alias cycle", b"config: &loop\n  dms-event-bus:tags: *loop\n",
     ("Pulumi.bad.yaml:1:9:", "alias cycle")),
    ("not UTF-8", b"config:\n  aws:region: eu-west-1\n  dms-event-bus:tags: {team: caf\xe9}\n",
     ("Pulumi.bad.yaml:3:33:", "not UTF-8", "0xe9")),
    ("duplicate key", (GOOD + TABLES.replace("orders", "customers")).encode(),
     ("Pulumi.bad.yaml:7:3:", "duplicate key 'dms-event-bus:tables'", "line 3")),
    ("duplicate nested key", (GOOD + "      deletion_protection: true\n"
                              "      deletion_protection: false\n").encode(),
     ("Pulumi.bad.yaml:8:7:", "duplicate key 'deletion_protection'")),
    ("namespace typo", (GOOD + "  dmseventbus:dms: {account_roles: existing}\n").encode(),
     ("Pulumi.bad.yaml:7:3:", "unknown config namespace 'dmseventbus'",
      "did you mean 'dms-event-bus:dms'")),
    ("key without namespace", (GOOD + "  writeback: {}\n").encode(),
     ("Pulumi.bad.yaml:7:3:", "'writeback' has no namespace", "dms-event-bus:writeback")),
    ("keys outside config", ("config:\n  aws:region: eu-west-1\n"
                             + textwrap.dedent(TABLES)).encode(),
     ("Pulumi.bad.yaml:3:1:", "'dms-event-bus:tables' is outside 'config:'",
      "move it under config:")),
    ("unknown top-level key", GOOD.replace("config:", "confg:").encode(),
     ("Pulumi.bad.yaml:1:1:", "unknown top-level key 'confg'", "did you mean 'config'")),
    ("bad aws:region", GOOD.replace("eu-west-1", "eu-wset-1").encode(),
     ("Pulumi.bad.yaml:2:15:", "aws:region", "'eu-wset-1'", "did you mean 'eu-west-1'")),
    ("aws:region not a name", GOOD.replace("eu-west-1", "[eu-west-1]").encode(),
     ("Pulumi.bad.yaml:2:15:", "aws:region", "found a list")),
    ("one config problem", (GOOD + "  dms-event-bus:bus: {fanin: {memory_mb: lots}}\n").encode(),
     ("stack 'bad'", "dms-event-bus:bus.fanin.memory_mb: expected a whole number")),
    ("ingest mapping keyed on a body field", (GOOD + _under_config("""\
      dms-event-bus:ingest_api:
        entities:
          order_requests:
            fields: {customer_id: {type: integer, required: true}}
      dms-event-bus:writeback:
        target: {kind: postgres, host: db.internal, database: erp,
                 secret_arn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:wb-AbCdEf"}
        vpc: {subnet_ids: [subnet-0a1b2c3d4e5f60001], security_group_ids: [sg-0a1b2c3d4e5f60718]}
        tables:
          order_requests:
            legacy_table: sales.order_requests
            key_columns: {customer_id: customer_id}
    """)).encode(),
     ("dms-event-bus:writeback.tables.order_requests.key_columns", "{id: <legacy key column>}")),
    ("overflow expires before the bus", (GOOD + "  dms-event-bus:bus: {stream: "
                                         "{retention_hours: 168}, overflow: {expire_days: 3}}\n"
                                         ).encode(),
     ("dms-event-bus:bus", "overflow.expire_days", "retention_hours 168")),
]


@pytest.mark.parametrize(("stack_file", "fragments"),
                         [pytest.param(c[1], c[2], id=c[0]) for c in PLAN_CASES])
def test_plan_bad_stack_file_is_one_line_exit_2(tmp_path: Path, stack_file: bytes,
                                                fragments: tuple[str, ...]) -> None:
    # GIVEN a stack file the Pulumi CLI or this program must refuse
    (tmp_path / "Pulumi.bad.yaml").write_bytes(stack_file)
    # WHEN the offline plan runs on it
    proc = _run("tools.plan", ["--stack", "bad", "--stack-dir", str(tmp_path)], tmp_path)
    # THEN one line naming the file, the place and the fix; nothing planned
    _assert_one_line(proc, *fragments)
    assert proc.stdout == ""


@pytest.mark.parametrize(("args", "fragments"), [
    pytest.param(["--stack", "nope"], ("no stack file Pulumi.nope.yaml",), id="no stack file"),
    pytest.param(["--stack"], ("argument --stack: expected one argument",), id="option value"),
    pytest.param(["--stak", "dev"], ("unrecognized arguments: --stak",), id="unknown option"),
])
def test_plan_bad_arguments_are_one_line_exit_2(tmp_path: Path, args: list[str],
                                                fragments: tuple[str, ...]) -> None:
    (tmp_path / "Pulumi.good.yaml").write_text(GOOD)
    proc = _run("tools.plan", [*args, "--stack-dir", str(tmp_path)], tmp_path)
    _assert_one_line(proc, *fragments)


def test_plan_of_a_good_stack_file_still_plans(tmp_path: Path) -> None:
    # the control: the same machinery accepts what Pulumi accepts (an anchor, flow mappings)
    text = GOOD + _under_config("""\
      dms-event-bus:tags: &tags {team: data, owner: platform}
      dms-event-bus:alarms: {iterator_age_ms: 60000}
    """)
    (tmp_path / "Pulumi.good.yaml").write_text(text)
    proc = _run("tools.plan", ["--stack", "good", "--stack-dir", str(tmp_path)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dmsbus-good-orders" in proc.stdout


# --------------------------------------------------------------------------- tools.preflight

PG = ["--engine", "postgres", "--host", "127.0.0.1", "--database", "app", "--user", "dms",
      "--ssl", "disable"]


def _preflight_cases() -> list[tuple[str, list[str], dict[str, str], tuple[str, ...]]]:
    closed = str(_closed_port())
    return [
        ("no engine", [], {}, ("no engine: give --engine ENGINE or --stack NAME",)),
        ("unknown engine", ["--engine", "db2"], {},
         ("argument --engine: unknown engine 'db2'", "aurora (Aurora MySQL)")),
        ("port not a number", [*PG, "--port", "fivefour"], {}, ("argument --port",)),
        ("port out of range", [*PG, "--port", "70000"], {}, ("expected a port 1..65535",)),
        ("tasks zero", [*PG, "--tasks", "0", "--password-env", "PW"], {"PW": "x"},
         ("argument --tasks", ">= 1")),
        ("bad region", [*PG, "--secret-arn", SECRET, "--region", "eu-wset-1"], {},
         ("argument --region", "did you mean 'eu-west-1'")),
        ("no password source", PG, {}, ("--password-env VAR or --secret-arn ARN",)),
        ("password env unset", [*PG, "--password-env", "NOT_SET_ANYWHERE"], {},
         ("environment variable NOT_SET_ANYWHERE is not set",)),
        ("verify-full without CA", [*PG[:-1], "verify-full", "--password-env", "PW"],
         {"PW": "x"}, ("--ssl verify-full needs --ssl-ca",)),
        ("secret by name, no region", [*PG, "--secret-arn", "dmsbus-test/source"], {},
         ("no AWS region", "--region", "full ARN")),
        ("no credentials", [*PG, "--secret-arn", SECRET], {},
         ("cannot read secret", "in eu-west-1", "no usable AWS credentials", "AWS_PROFILE")),
        ("secrets endpoint unreachable", [*PG, "--secret-arn", SECRET],
         {**_fake_credentials(),
          "AWS_ENDPOINT_URL_SECRETS_MANAGER": f"http://127.0.0.1:{closed}"},
         ("cannot reach Secrets Manager in eu-west-1", "check the network")),
        ("database unreachable", [*PG, "--port", closed, "--password-env", "PW"], {"PW": "x"},
         ("cannot connect to postgres at 127.0.0.1:" + closed,)),
    ]


@pytest.mark.parametrize(("args", "extra", "fragments"),
                         [pytest.param(c[1], c[2], c[3], id=c[0]) for c in _preflight_cases()])
def test_preflight_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str],
                                               extra: dict[str, str],
                                               fragments: tuple[str, ...]) -> None:
    proc = _run("tools.preflight", args, tmp_path, _env(tmp_path, **extra))
    _assert_one_line(proc, *fragments)
    assert proc.stdout == ""


# --------------------------------------------------------------------------- tools.reconcile

RC = [*PG, "--table", "sales.orders=dmsbus-test-orders:order_id"]


def _reconcile_cases() -> list[tuple[str, list[str], dict[str, str], tuple[str, ...]]]:
    closed = str(_closed_port())
    creds = {**_fake_credentials(), "PW": "x"}
    return [
        ("no arguments", [], {}, ("no engine", "--stack")),
        ("no table", PG, {}, ("no table to compare", "--table", "--stack")),
        ("bad table spec", [*PG, "--table", "orders", "--region", "eu-west-1"], {},
         ("bad --table 'orders'", "SCHEMA.TABLE=DYNAMODB_TABLE:KEY")),
        ("table spec without key", [*PG, "--table", "sales.orders=t:", "--region", "eu-west-1"],
         {}, ("no key column",)),
        ("page size zero", [*RC, "--page-size", "0"], {}, ("argument --page-size", ">= 1")),
        ("sample negative", [*RC, "--sample", "-1"], {}, ("argument --sample", ">= 0")),
        ("no region", [*RC, "--password-env", "PW"], {"PW": "x"},
         ("no AWS region for DynamoDB", "--region")),
        ("no credentials", [*RC, "--password-env", "PW", "--region", "eu-west-1"], {"PW": "x"},
         ("no usable AWS credentials for DynamoDB in eu-west-1", "AWS_PROFILE")),
        ("dynamodb endpoint unreachable",
         [*RC, "--password-env", "PW", "--endpoint-url",
          f"http://127.0.0.1:{closed}", "--region", "eu-west-1"],
         creds, ("cannot reach DynamoDB in eu-west-1", "check the network")),
        ("region from the endpoint URL", [*RC, "--password-env", "PW", "--endpoint-url",
                                          "https://dynamodb.eu-central-1.amazonaws.com"],
         {"PW": "x"}, ("no usable AWS credentials for DynamoDB in eu-central-1",)),
    ]


@pytest.mark.parametrize(("args", "extra", "fragments"),
                         [pytest.param(c[1], c[2], c[3], id=c[0]) for c in _reconcile_cases()])
def test_reconcile_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str],
                                               extra: dict[str, str],
                                               fragments: tuple[str, ...]) -> None:
    proc = _run("tools.reconcile", args, tmp_path, _env(tmp_path, **extra))
    _assert_one_line(proc, *fragments)
    assert proc.stdout == ""


# ---------------------------------------------------------------- tools.account_preflight


def _account_cases() -> list[tuple[str, list[str], dict[str, str], str, tuple[str, ...]]]:
    """(case, args, env, stack file written as Pulumi.s.yaml, fragments)."""
    closed = str(_closed_port())
    no_region = GOOD.replace("  aws:region: eu-west-1\n", "")
    return [
        ("no command", [], {}, GOOD, ("the following arguments are required",)),
        ("check without stack", ["check"], {}, GOOD, ("--stack",)),
        ("no stack file", ["check", "--stack", "nope"], {}, GOOD,
         ("no stack file Pulumi.nope.yaml",)),
        ("duplicate key", ["check", "--stack", "s"], {}, GOOD + TABLES,
         ("Pulumi.s.yaml:7:3:", "duplicate key")),
        ("namespace typo", ["check", "--stack", "s"], {},
         GOOD + "  dmseventbus:dms: {account_roles: existing}\n",
         ("unknown config namespace 'dmseventbus'",)),
        ("bad stack config", ["check", "--stack", "s"], {},
         GOOD + "  dms-event-bus:bus: {fanin: {memory_mb: lots}}\n",
         ("dms-event-bus:bus.fanin.memory_mb",)),
        ("bad region option", ["check", "--stack", "s", "--region", "moon-1"], {}, GOOD,
         ("argument --region", "'moon-1'")),
        ("no region", ["check", "--stack", "s"], {}, no_region,
         ("no AWS region", "--region", "aws:region")),
        ("no credentials", ["check", "--stack", "s"], {}, GOOD,
         ("no usable AWS credentials for region eu-west-1", "AWS_PROFILE")),
        ("sts unreachable", ["check", "--stack", "s"],
         {**_fake_credentials(), "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{closed}"}, GOOD,
         ("cannot reach STS in eu-west-1",)),
        ("bootstrap without region", ["bootstrap"], {}, GOOD, ("no AWS region", "--region")),
    ]


@pytest.mark.parametrize(("args", "extra", "stack_file", "fragments"),
                         [pytest.param(*c[1:], id=c[0]) for c in _account_cases()])
def test_account_preflight_bad_input_is_one_line_exit_2(
    tmp_path: Path, args: list[str], extra: dict[str, str], stack_file: str,
    fragments: tuple[str, ...],
) -> None:
    (tmp_path / "Pulumi.s.yaml").write_text(stack_file)
    if args[:1] == ["check"] and "--stack" in args:
        args = [*args, "--stack-dir", str(tmp_path)]
    proc = _run("tools.account_preflight", args, tmp_path, _env(tmp_path, **extra))
    _assert_one_line(proc, *fragments)
    assert proc.stdout == ""


# --------------------------------------------------------------------------- tools.demo


@pytest.mark.parametrize(("args", "fragment"), [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--full", "extra"], "unrecognized arguments: extra"),
    (["--full=yes"], "--full"),
])
def test_demo_bad_arguments_are_one_line_exit_2(tmp_path: Path, args: list[str],
                                                fragment: str) -> None:
    _assert_one_line(_run("tools.demo", args, tmp_path), fragment)
