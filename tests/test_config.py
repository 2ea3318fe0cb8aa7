"""Typed stack config: every stack file validates; each kind of mistake fails with one
message naming the stack, the key path, what was expected and what was found — before any
resource is declared."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from settings import ConfigError, load_settings
from settings.stackfile import project_config, read_stack_config, stack_files
from tools.mockrun import run_stack


def dev_config() -> dict[str, Any]:
    return copy.deepcopy(project_config(read_stack_config("dev")))


def problems(stack: str, raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(stack, raw)
    return caught.value


@pytest.mark.parametrize("stack", sorted(stack_files()))
def test_every_stack_file_validates(stack: str) -> None:
    settings = load_settings(stack, project_config(read_stack_config(stack)))
    assert settings.environment == stack
    assert settings.tables, "a stack declares at least one table"
    for logical in settings.tables:
        assert settings.physical_table_name(logical).startswith(f"dmsbus-{stack}-")


def test_dev_and_prod_differ_in_capacity_and_retention() -> None:
    dev = load_settings("dev", project_config(read_stack_config("dev")))
    prod = load_settings("prod", project_config(read_stack_config("prod")))
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
    assert "no such key" in text and "'KEYS_ONLY'" in text


def test_unknown_top_level_key_is_named() -> None:
    raw = dev_config()
    raw["tabels"] = {}
    assert "dms-event-bus:tabels: expected no such key" in str(problems("dev", raw))


def test_wrong_type_is_named() -> None:
    raw = dev_config()
    raw["bus"]["fanin"]["memory_mb"] = "lots"
    text = str(problems("dev", raw))
    assert "dms-event-bus:bus.fanin.memory_mb: expected a whole number, found 'lots'" in text


def test_missing_key_is_named() -> None:
    raw = dev_config()
    del raw["tables"]
    text = str(problems("dev", raw))
    assert "dms-event-bus:tables: expected a value (the key is required), found nothing" in text


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
        run_stack("dev", overrides={"dms-event-bus:bus": {"stream": {"shards": "four"}}})
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
