"""Typed stack config: every stack file validates; each kind of mistake fails with one
message naming the stack, the key path, what was expected and what was found — before any
resource is declared."""

from __future__ import annotations

import copy
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dms_event_bus.settings import PROJECT, ConfigError, load_settings
from dms_event_bus.settings.stackfile import (
    NAMESPACES,
    ROOT,
    StackFileError,
    load_stack_text,
    project_config,
    read_stack_config,
    stack_files,
)
from tests.fixture_stacks import STACKS_DIR
from tools.mockrun import run_stack


def dev_config() -> dict[str, Any]:
    return copy.deepcopy(project_config(read_stack_config("dev", STACKS_DIR)))


def problems(stack: str, raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(stack, raw)
    return caught.value


@pytest.mark.parametrize("stack", sorted(stack_files(STACKS_DIR)))
def test_every_stack_file_validates(stack: str) -> None:
    settings = load_settings(stack, project_config(read_stack_config(stack, STACKS_DIR)))
    assert settings.environment == stack
    assert settings.tables, "a stack declares at least one table"
    for logical in settings.tables:
        assert settings.physical_table_name(logical).startswith(f"dmsbus-{stack}-")


def test_dev_and_prod_differ_in_capacity_and_retention() -> None:
    dev = load_settings("dev", project_config(read_stack_config("dev", STACKS_DIR)))
    prod = load_settings("prod", project_config(read_stack_config("prod", STACKS_DIR)))
    assert dev.bus.stream.retention_hours < prod.bus.stream.retention_hours
    assert not dev.provisioned_tables and prod.provisioned_tables
    assert dev.name_prefix != prod.name_prefix


def test_unknown_key_is_named() -> None:
    raw = dev_config()
    raw["tables"]["orders"]["stream_view"] = "KEYS_ONLY"
    err = problems("dev", raw)
    text = str(err)
    assert "stack 'dev'" in text
    assert "dms-event-bus:tables.orders.stream_view" in text
    assert "no such key" in text
    # AND the value is not echoed: an unknown key may be a secret typed under the wrong name
    assert "KEYS_ONLY" not in text and "not shown" in text


@pytest.mark.parametrize("where", ["top", "nested"])
def test_a_secret_under_a_mistyped_key_is_never_echoed(where: str) -> None:
    # GIVEN a token pasted under a key this program does not know
    raw = dev_config()
    token = "ghp_0123456789abcdefSECRET"
    if where == "top":
        raw["github_token"] = token
    else:
        raw["tables"]["orders"]["password"] = {"value": token}
    # THEN the error names the key and never shows the token
    text = str(problems("dev", raw))
    assert "no such key" in text
    assert "SECRET" not in text and "ghp_" not in text


def test_unknown_top_level_key_is_named() -> None:
    raw = dev_config()
    raw["tabels"] = {}
    assert "dms-event-bus:tabels: no such key" in str(problems("dev", raw))


def test_wrong_type_is_named() -> None:
    raw = dev_config()
    raw["bus"]["fanin"]["memory_mb"] = "lots"
    text = str(problems("dev", raw))
    assert "dms-event-bus:bus.fanin.memory_mb: expected a whole number, found 'lots'" in text


def test_missing_key_is_named() -> None:
    # `tables` may be left out only when DMS wildcards select the tables
    raw = dev_config()
    del raw["tables"]
    raw.pop("dms", None)
    raw.pop("writeback", None)
    text = str(problems("dev", raw))
    assert (
        "dms-event-bus:tables: expected at least one declared table, or a dms section whose "
        "dms.wildcards select the tables, found neither" in text
    ), text


def test_table_without_key_columns() -> None:
    raw = dev_config()
    del raw["tables"]["orders"]["partition_key"]
    text = str(problems("staging", raw))
    assert "stack 'staging'" in text
    assert "dms-event-bus:tables.orders.partition_key: expected a value" in text


def test_capacity_min_greater_than_max() -> None:
    raw = dev_config()
    raw["tables"]["orders"]["capacity"] = {
        "mode": "provisioned",
        "read": {"min": 50, "max": 10},
    }
    text = str(problems("dev", raw))
    assert "dms-event-bus:tables.orders.capacity.read: expected min <= max" in text
    assert "expected min <= max, found min=50 > max=10" in text


def test_invalid_capacity_mode() -> None:
    raw = dev_config()
    raw["tables"]["orders"]["capacity"] = {"mode": "autopilot"}
    text = str(problems("dev", raw))
    assert "dms-event-bus:tables.orders.capacity" in text
    assert "'autopilot'" in text and "on_demand" in text


@pytest.mark.parametrize(
    ("path", "value", "key_path"),
    [
        (("tables", "Orders!"), None, "dms-event-bus:tables['Orders!']"),
        (("environment",), "Prod_EU", "dms-event-bus:environment"),
        (("tables", "orders", "partition_key", "name"), "order id", "partition_key.name"),
        (("tables", "orders", "partition_key", "type"), "INT", "partition_key.type"),
    ],
)
def test_invalid_names(path: tuple[str, ...], value: Any, key_path: str) -> None:
    raw = dev_config()
    if value is None:  # an invalid table name: rename orders
        raw["tables"][path[1]] = raw["tables"].pop("orders")
    else:
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    text = str(problems("dev", raw))
    assert key_path in text
    assert "expected" in text and "found" in text


def test_all_problems_in_one_message() -> None:
    raw = dev_config()
    raw["bus"]["stream"]["retention_hours"] = 1
    raw["alarms"]["iterator_age_ms"] = "soon"
    err = problems("dev", raw)
    assert len(err.problems) == 2
    assert str(err).count("\n  - ") == 2


def test_secret_like_values_only_as_arns() -> None:
    raw = dev_config()
    raw["encryption"] = {"kms_key_arn": "my-key"}
    text = str(problems("dev", raw))
    assert "dms-event-bus:encryption.kms_key_arn: expected a string matching ^arn:aws" in text


def test_kms_alias_arn_is_refused() -> None:
    # IAM statements on an alias ARN do not cover the key: only key ARNs are accepted
    raw = dev_config()
    raw["encryption"] = {"kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:alias/bus"}
    text = str(problems("dev", raw))
    assert "dms-event-bus:encryption.kms_key_arn:" in text
    assert "alias/bus" in text
    raw["encryption"] = {
        "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    }
    assert load_settings("dev", raw).encryption.kms_key_arn is not None


def test_bad_stack_file_declares_nothing() -> None:
    # GIVEN a stack whose config has a wrong type
    # WHEN the whole program runs under mocks
    with pytest.raises(ConfigError) as caught:
        run_stack("dev", stack_dir=STACKS_DIR,
                  overrides={"dms-event-bus:bus": {"stream": {"shards": "four"}}})
    # THEN it fails with the config error and no resource was declared before that
    assert "dms-event-bus:bus.stream.shards" in str(caught.value)
    assert caught.value.declared == []  # type: ignore[attr-defined]


def test_overflow_must_outlive_the_archive() -> None:
    # the archive keeps overflow pointer envelopes: their S3 objects must still be there
    raw = dev_config()
    raw["bus"]["archive"] = {"enabled": True, "expire_days": 400}
    raw["bus"]["overflow"] = {"expire_days": 30}
    text = str(problems("dev", raw))
    assert "dms-event-bus:bus: expected overflow.expire_days >= archive.expire_days" in text
    assert "overflow 30 < archive 400" in text
    raw["bus"]["overflow"] = {"expire_days": 400}
    assert load_settings("dev", raw).bus.overflow.expire_days == 400


@pytest.mark.parametrize("environment", ["x-ingest", "shop-ingest"])
def test_environment_named_like_another_ones_ingest_tables_is_refused(environment: str) -> None:
    # its waypoint tables `dmsbus-x-ingest-<t>` would be environment x's IngestApi tables
    raw = {"environment": environment, "tables": {"orders": {
        "source": {"schema": "s", "table": "orders"},
        "partition_key": {"name": "id", "type": "N"}}}}
    with pytest.raises(ConfigError) as err:
        load_settings("any", raw)
    assert "dms-event-bus:environment: expected a name not ending in '-ingest'" in str(err.value)
    raw["environment"] = environment.replace("-ingest", "-ingesting")
    assert load_settings("any", raw).environment == raw["environment"]


# --------------------------------------------------------------------------- own fixtures

MINIMAL: dict[str, Any] = {"tables": {"orders": {
    "source": {"schema": "sales", "table": "orders"},
    "partition_key": {"name": "order_id", "type": "N"}}}}


def _with(**sections: Any) -> dict[str, Any]:
    return {**copy.deepcopy(MINIMAL), **copy.deepcopy(sections)}


# --------------------------------------------------------------------------- overflow vs the bus


@settings(max_examples=200, deadline=None)
@given(retention_hours=st.integers(24, 8760), expire_days=st.integers(1, 400))
def test_overflow_objects_outlive_the_records_pointing_to_them(
    retention_hours: int, expire_days: int
) -> None:
    # GIVEN a bus keeping records `retention_hours` and overflow objects kept `expire_days`
    raw = _with(bus={"stream": {"retention_hours": retention_hours},
                     "overflow": {"expire_days": expire_days}})
    # WHEN the config is loaded
    # THEN it is refused exactly when an object can expire before its pointer record
    if expire_days * 24 >= retention_hours:
        assert load_settings("dev", raw).bus.overflow.expire_days == expire_days
    else:
        text = str(problems("dev", raw))
        needed = -(-retention_hours // 24)
        assert f"dms-event-bus:bus: expected overflow.expire_days >= {needed}" in text
        assert f"retention_hours {retention_hours} h" in text
        assert f"found overflow.expire_days {expire_days}" in text


# --------------------------------------------------------------------------- ingest_api mappings

INGEST = {"entities": {"order_requests": {"request_like": True, "fields": {
    "customer_id": {"type": "integer", "required": True}, "sku": {"type": "string"}}}}}
TARGET = {"kind": "postgres", "host": "db.internal", "database": "erp",
          "secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:wb-AbCdEf"}
VPC = {"subnet_ids": ["subnet-0a1b2c3d4e5f60001"], "security_group_ids": ["sg-0a1b2c3d4e5f60718"]}


def _writeback(mapping: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return _with(ingest_api=INGEST, writeback={
        "target": TARGET, "vpc": VPC, **extra,
        "tables": {"order_requests": {"legacy_table": "sales.order_requests", **mapping}}})


def test_ingest_mapping_keyed_on_the_id_loads() -> None:
    raw = _writeback({"key_columns": {"id": "request_id"},
                      "columns": {"customer_id": "customer_id", "sku": "sku",
                                  "received_at": "received_at", "expires_at": "expires_at"}})
    loaded = load_settings("dev", raw)
    assert loaded.writeback is not None
    assert loaded.writeback.tables["order_requests"].key_columns == {"id": "request_id"}


@pytest.mark.parametrize("keys", [{"customer_id": "customer_id"},
                                  {"id": "request_id", "sku": "sku"},
                                  {"request_id": "request_id"}])
def test_ingest_mapping_keyed_on_anything_but_the_id_is_refused(keys: dict[str, str]) -> None:
    # GIVEN a writeback of the IngestApi table keyed on a body field (or id plus one)
    raw = _writeback({"key_columns": keys})
    # WHEN loaded THEN refused: one item would become several legacy rows
    text = str(problems("dev", raw))
    assert ("dms-event-bus:writeback.tables.order_requests.key_columns: expected the "
            "IngestApi table's key alone: {id: <legacy key column>}") in text
    assert "second legacy row" in text


def test_ingest_mapping_other_version_attribute_is_refused() -> None:
    raw = _writeback({"key_columns": {"id": "request_id"}, "version_attribute": "rev"})
    text = str(problems("dev", raw))
    assert ("dms-event-bus:writeback.tables.order_requests.version_attribute: expected "
            "'version'") in text and "found 'rev'" in text


def test_ingest_mapping_of_an_attribute_the_api_never_writes_is_refused() -> None:
    raw = _writeback({"key_columns": {"id": "request_id"},
                      "columns": {"customer_id": "customer_id", "skew": "sku"}})
    text = str(problems("dev", raw))
    assert "dms-event-bus:writeback.tables.order_requests.columns: expected attributes" in text
    assert "found ['skew']" in text and "always be written NULL" in text


def test_ingest_mapping_needs_the_apis_status_marker() -> None:
    raw = _writeback({"key_columns": {"id": "request_id"}},
                     item_contract={"status_attribute": "state",
                                    "status_only_attributes": ["state", "status_detail"]})
    text = str(problems("dev", raw))
    assert "dms-event-bus:writeback.item_contract.status_attribute: expected 'status'" in text


def test_waypoint_mapping_keys_are_still_the_tables_keys() -> None:
    # origin: tables is checked against the declared table, not against the IngestApi's id
    raw = _with(writeback={"target": TARGET, "vpc": VPC, "tables": {"orders": {
        "origin": "tables", "legacy_table": "sales.orders",
        "key_columns": {"order_id": "order_id"}}}})
    assert load_settings("dev", raw).writeback is not None


# --------------------------------------------------------------------------- the stack file


def test_the_project_namespace_is_pulumi_yamls_name() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECT
    assert PROJECT in NAMESPACES


@pytest.mark.parametrize("region", ["eu-west-1", "us-gov-west-1", "cn-northwest-1",
                                    "eusc-de-east-1", "ap-southeast-9", "il-central-2"])
def test_region_names_aws_uses_are_accepted(region: str) -> None:
    # a region newer than the installed botocore still has AWS's name shape
    text = f"config:\n  aws:region: {region}\n".encode()
    assert load_stack_text(text, "Pulumi.x.yaml") == {"aws:region": region}


@pytest.mark.parametrize(("region", "hint"), [("eu-wset-1", "eu-west-1"),
                                              ("euwest1", "eu-west-1"),
                                              ("eu-west-0", None), ("EU-WEST-1", None),
                                              ("moon-base-1", None)])
def test_malformed_regions_are_refused(region: str, hint: str | None) -> None:
    with pytest.raises(StackFileError) as err:
        load_stack_text(f"config:\n  aws:region: {region}\n".encode(), "Pulumi.x.yaml")
    text = str(err.value)
    assert text.startswith("Pulumi.x.yaml:2:15: aws:region: expected an AWS region") and (
        f"found '{region}'" in text)
    assert "\n" not in text
    if hint:
        assert f"did you mean '{hint}'" in text


def test_anchors_and_merge_keys_read_as_pulumi_reads_them() -> None:
    # GIVEN a merge key whose explicit key overrides a merged one (not a duplicate)
    text = textwrap.dedent("""\
        config:
          dms-event-bus:tags: &base {team: data, tier: gold}
          dms-event-bus:alarms:
            <<: {iterator_age_ms: 1000, dlq_depth: 3}
            iterator_age_ms: 60000
        """).encode()
    # THEN it reads, the explicit key winning
    config = load_stack_text(text, "Pulumi.x.yaml")
    assert config["dms-event-bus:alarms"] == {"iterator_age_ms": 60000, "dlq_depth": 3}


def test_a_wide_alias_fan_out_is_checked_without_blowing_up() -> None:
    # GIVEN the "billion laughs" shape: each level refers to the previous one ten times
    lines = ["x0: &a0 [1]"] + [
        f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)
    ]
    text = ("config:\n" + "".join(f"  dms-event-bus:{line}\n" for line in lines)).encode()
    # WHEN checked THEN quickly (each node once) and read as YAML would
    started = time.monotonic()
    config = load_stack_text(text, "Pulumi.x.yaml")
    assert time.monotonic() - started < 5
    assert len(config) == 9


def test_the_program_refuses_an_unknown_namespace_under_the_engine(tmp_path: Path) -> None:
    # GIVEN config the engine hands over with a namespace typo (`pulumi config set` allows it)
    (tmp_path / "Pulumi.gen.yaml").write_text(yaml.safe_dump({"config": {
        "aws:region": "eu-west-1", **{f"{PROJECT}:{k}": v for k, v in MINIMAL.items()}}}))
    # WHEN the program runs under mocks
    with pytest.raises(ConfigError) as caught:
        run_stack("gen", stack_dir=tmp_path,
                  overrides={"dmseventbus:dms": {"account_roles": "existing"}})
    # THEN it stops on that key before declaring anything
    text = str(caught.value)
    assert "dmseventbus:dms: unknown config namespace 'dmseventbus'" in text
    assert "did you mean 'dms-event-bus:dms'" in text
    assert caught.value.declared == []  # type: ignore[attr-defined]


def test_one_problem_is_one_line_for_the_commands() -> None:
    raw = _with(bus={"fanin": {"memory_mb": "lots"}})
    text = problems("dev", raw).brief()
    assert text == ("stack 'dev': invalid config in Pulumi.dev.yaml: "
                    "dms-event-bus:bus.fanin.memory_mb: expected a whole number, found 'lots'")


_YAMLISH = st.text(alphabet=list("config:aws-region{}[]&*!|>'\"#%@`,?-<=\n\t \\0é\x00\x07\ufeff"),
                   max_size=80)


@settings(max_examples=400, deadline=None)
@given(data=st.one_of(st.binary(max_size=80), _YAMLISH.map(lambda t: t.encode("utf-8")),
                      _YAMLISH.map(lambda t: ("config:\n  " + t).encode("utf-8"))))
def test_any_bytes_read_as_a_config_or_one_line_naming_the_file(data: bytes) -> None:
    # WHEN any bytes are read as a stack file
    try:
        config = load_stack_text(data, "Pulumi.x.yaml")
    except StackFileError as exc:
        # THEN a refusal is one line naming the file
        text = str(exc)
        assert text.startswith("Pulumi.x.yaml") and "\n" not in text, text
    else:
        # or a config mapping
        assert isinstance(config, dict)


@pytest.mark.parametrize("key", ["token_secret_arn", "secret_arn"])
def test_a_token_pasted_where_a_secret_arn_belongs_is_never_echoed(key: str) -> None:
    # GIVEN a GitHub token / a password pasted where a Secrets Manager ARN belongs
    raw = dev_config()
    token = "ghp_0123456789abcdefSECRET"
    if key == "token_secret_arn":
        raw["adoption"] = {"trigger": {"repository": "acme/erp", key: token}}
    else:
        raw.setdefault("writeback", {})
        raw["writeback"] = {**raw["writeback"], "target": {
            **(raw["writeback"].get("target") or {}), key: token}}
    # THEN the error names the key path and what is expected, never the value
    text = str(problems("dev", raw))
    assert key in text and "not shown" in text
    assert "SECRET" not in text and "ghp_" not in text
