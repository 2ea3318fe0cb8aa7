"""The writeback speaks the handlers' shared vocabulary (`handlers.common`): its settings are a
`Config` read by `config_from_env`, a wrong environment is a `ConfigError` naming the variable,
its batch result is an `Outcome`, a poison first record raises the one `PoisonRecordError`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dms_event_bus.handlers import common, writeback
from dms_event_bus.handlers.writeback import Config, DataApiExecutor, process
from tests.writeback_support import Records, item

TABLE = "dmsbus-test-ingest-orders"
RAW = {"target": {"kind": "data_api", "cluster_arn": "arn:aws:rds:eu-west-1:1:cluster:c",
                  "secret_arn": "arn:aws:secretsmanager:eu-west-1:1:secret:s",
                  "database": "sales", "engine": "postgres"},
       "tables": {TABLE: {"legacy_table": "sales.orders", "key_columns": {"id": "order_id"},
                          "columns": {"amount": "amount"}, "version_column": "row_version"}}}


def test_the_shared_words_are_the_common_ones() -> None:
    # THEN the writeback's exceptions and its batch result are handlers.common's
    assert writeback.PoisonRecordError is common.PoisonRecordError
    assert writeback.ConfigError is common.ConfigError
    assert issubclass(writeback.WritebackOutcome, common.Outcome)
    # AND what it decides about ONE record has a name of its own: `Outcome` there is the
    # common one (one batch), never a per-record class
    assert getattr(writeback, "Outcome", common.Outcome) is common.Outcome
    assert writeback.Verdict is not common.Outcome
    _: type[common.Config] = Config  # a handlers.common.Config (mypy checks the protocol)


def test_config_is_read_from_the_environment_once_per_value() -> None:
    # GIVEN the environment the component writes
    env = {"WRITEBACK_CONFIG": json.dumps(RAW)}
    # WHEN the settings are read twice, then after the variable changed
    first = writeback.config(env)
    again = writeback.config(env)
    changed = writeback.config({"WRITEBACK_CONFIG": json.dumps({**RAW, "tables": {}})})
    # THEN they are parsed once per distinct value
    assert again is first
    assert set(first.tables) == {TABLE}
    assert changed.tables == {}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "WRITEBACK_CONFIG is not set"),
        ({"WRITEBACK_CONFIG": "{not json"}, "WRITEBACK_CONFIG is not JSON"),
        ({"WRITEBACK_CONFIG": "[]"}, "WRITEBACK_CONFIG must be a JSON object"),
        ({"WRITEBACK_CONFIG": json.dumps({"tables": {}})}, "WRITEBACK_CONFIG lacks 'target'"),
        ({"WRITEBACK_CONFIG": json.dumps({**RAW, "tables": {TABLE: {"columns": {}}}})},
         "WRITEBACK_CONFIG: table 'dmsbus-test-ingest-orders' lacks 'legacy_table'"),
    ],
)
def test_a_wrong_environment_is_a_config_error_naming_the_variable(
    env: dict[str, str], named: str
) -> None:
    # WHEN the settings are read from a wrong environment
    # THEN the error is handlers.common's ConfigError, naming what to fix
    with pytest.raises(common.ConfigError, match=named):
        Config.from_env(env)


def test_the_handler_fails_the_batch_and_logs_on_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a container whose WRITEBACK_CONFIG is not JSON
    monkeypatch.setenv("WRITEBACK_CONFIG", "{oops")
    monkeypatch.setattr(writeback, "_STATE", {})
    # WHEN Lambda invokes it
    with pytest.raises(common.ConfigError):
        writeback.handler({"Records": [Records(TABLE).insert(item(1, 1))]}, None)
    # THEN one error line says the whole batch fails until the environment is fixed
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["level"] for x in lines] == ["error"]
    assert "WRITEBACK_CONFIG is not JSON" in lines[0]["reason"]


class _NoDatabase:
    """A Data API client that must not be called."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected call {name}")


def test_the_batch_result_is_an_outcome_with_the_poison_reason() -> None:
    # GIVEN a batch whose only record has no version
    bad = item(1, 1)
    del bad["version"]
    record = Records(TABLE).insert(bad)
    executor = DataApiExecutor(_NoDatabase(), cluster_arn="c", secret_arn="s",
                               database="d", dialect="postgres")
    # WHEN processed
    result = process([record], Config.from_json(RAW), executor, None)
    # THEN the Outcome names the record in the partial-batch response and says why
    seq = record["dynamodb"]["SequenceNumber"]
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": seq}]}
    assert result.poison_sequence == seq
    assert result.poison is not None
    assert result.poison.startswith("version attribute 'version' missing")
