"""handlers.observability and handlers.common: the one log line, EMF line, lazy client and
batch vocabulary every handler uses."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dms_event_bus.handlers import common, observability
from tests.conftest import ROOT

NAMES = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12)


def test_a_log_line_is_one_json_object_with_level_message_and_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd value"

    observability.log("warning", "something", table="orders", count=3, odd=Odd())
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {"level": "warning", "message": "something",
                                "table": "orders", "count": 3, "odd": "odd value"}


@pytest.mark.parametrize("level", ["WARN", "ERROR", "debug", ""])
def test_a_level_outside_the_vocabulary_is_refused(level: str) -> None:
    with pytest.raises(ValueError, match="log level"):
        observability.log(level, "x")  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([observability.BUS_NAMESPACE, observability.WRITEBACK_NAMESPACE]),
    st.dictionaries(NAMES.map(lambda n: f"D{n}"), NAMES, max_size=3),
    st.dictionaries(NAMES.map(lambda n: f"M{n}"), st.integers(0, 10**9) | st.floats(0, 1e9),
                    min_size=1, max_size=6),
)
def test_an_emf_line_declares_every_metric_under_one_dimension_set(
    namespace: str, dimensions: dict[str, str], metrics: dict[str, Any]
) -> None:
    doc = json.loads(observability.emf_line(namespace, dimensions, metrics, timestamp_ms=7))
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert doc["_aws"]["Timestamp"] == 7
    assert directive["Namespace"] == namespace
    # one dimension set: every dimension, by name; each value a top-level member
    assert directive["Dimensions"] == [sorted(dimensions)]
    assert all(doc[name] == value for name, value in dimensions.items())
    # every metric declared once, in the order given, Count, its value a top-level member
    assert directive["Metrics"] == [{"Name": name, "Unit": "Count"} for name in metrics]
    assert all(doc[name] == value for name, value in metrics.items())
    assert set(doc) == {"_aws", *dimensions, *metrics}


def test_emf_prints_one_line_with_the_current_time(capsys: pytest.CaptureFixture[str]) -> None:
    observability.emf("DmsEventBus", {"Table": "orders"}, {"ChangesPublished": 2})
    (line,) = capsys.readouterr().out.splitlines()
    doc = json.loads(line)
    assert doc["Table"] == "orders" and doc["ChangesPublished"] == 2
    assert doc["_aws"]["Timestamp"] > 1_700_000_000_000


def test_clients_are_made_on_first_use_once_and_boto3_is_not_imported_before() -> None:
    code = ("import sys, handlers.observability, handlers.common; "
            "print('boto3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert out.split() == ["False"]


def test_a_client_is_created_once_per_cache_with_its_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    made: list[tuple[str, Any]] = []

    def fake_client(service: str, config: Any = None) -> object:
        made.append((service, config))
        return object()

    monkeypatch.setattr(boto3, "client", fake_client)
    cache: dict[str, Any] = {}
    first = observability.client(cache, "kinesis", "cfg")
    assert observability.client(cache, "kinesis") is first
    assert made == [("kinesis", "cfg")]
    # a client already in the cache (a test's stub) is used as it is
    stub = object()
    assert observability.client({"s3": stub}, "s3") is stub
    assert made == [("kinesis", "cfg")]


def test_a_lazy_client_makes_the_real_one_at_the_first_call_only() -> None:
    calls: list[str] = []

    class S3:
        def put_object(self, **kwargs: Any) -> dict[str, Any]:
            return {"put": kwargs}

    cache: dict[str, Any] = {}

    def get() -> S3:
        calls.append("get")
        return cache.setdefault("s3", S3())

    lazy = observability.LazyClient(get)
    assert calls == []
    assert lazy.put_object(Key="k") == {"put": {"Key": "k"}}
    assert lazy.put_object(Key="j") == {"put": {"Key": "j"}}
    assert calls == ["get", "get"] and len(cache) == 1
    with pytest.raises(AttributeError):
        lazy.__deepcopy__  # noqa: B018 - probing a dunder must not make the client


def test_config_is_parsed_again_only_when_its_variables_change() -> None:
    parsed: list[str | None] = []

    def parse(env: Any) -> str:
        parsed.append(env.get("A"))
        return f"config {env.get('A')}"

    cache: dict[tuple[str | None, ...], str] = {}
    env = {"A": "1", "OTHER": "x"}
    assert common.config_from_env(cache, ["A"], parse, env) == "config 1"
    assert common.config_from_env(cache, ["A"], parse, {**env, "OTHER": "y"}) == "config 1"
    assert common.config_from_env(cache, ["A"], parse, {"A": "2"}) == "config 2"
    assert parsed == ["1", "2"] and len(cache) == 1


def test_an_outcome_is_the_partial_batch_response() -> None:
    outcome = common.Outcome()
    assert outcome.response() == {"batchItemFailures": []}
    outcome.failures = ["300"]
    assert outcome.response() == {"batchItemFailures": [{"itemIdentifier": "300"}]}
    assert outcome.batch_item_failures == [{"itemIdentifier": "300"}]


def test_the_handlers_share_the_vocabulary() -> None:
    from dms_event_bus.handlers import backfill, fanin

    assert fanin.PoisonRecordError is common.PoisonRecordError
    assert issubclass(fanin.FanInOutcome, common.Outcome)
    assert issubclass(common.ConfigError, ValueError)
    with pytest.raises(common.ConfigError, match="BUS_STREAM_NAME"):
        fanin.Config.from_env({"TABLE_PREFIX": "dmsbus-dev-"})
    with pytest.raises(common.ConfigError, match="BUS_STREAM_NAME"):
        backfill.Config.from_env({})
