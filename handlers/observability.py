"""Logs, metrics and AWS clients: the one way every handler (fan-in, backfill, writeback) does them.

- **Logs** (`log`): one JSON object per line -- `level` (one of `LEVELS`), `message`, then the
  caller's fields; values JSON cannot hold are written as their `str()`. CloudWatch Logs
  Insights filters on any field: `filter level = "error" | stats count() by reason`.
- **Metrics** (`emf`): one CloudWatch embedded-metric-format line per call; CloudWatch Logs
  turns it into metrics, so a metric costs no API call and no time in the handler. The
  namespace and the dimensions are the caller's; alarms and the dashboard depend on them
  (`BUS_NAMESPACE` for the fan-in and the backfill, `WRITEBACK_NAMESPACE` for the writeback).
- **Clients** (`client`, `LazyClient`): boto3 clients are created on first use and kept in a
  per-module dict for the container's life, so importing a handler imports no boto3 (its
  cold start does not pay for it) and later invocations reuse the connection pools.

Only the standard library is imported here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

__all__ = [
    "BUS_NAMESPACE",
    "LEVELS",
    "WRITEBACK_NAMESPACE",
    "Level",
    "LazyClient",
    "client",
    "emf",
    "emf_line",
    "log",
]

#: CloudWatch namespace of the fan-in's and the backfill's metrics (dashboard, docs/bus.md).
BUS_NAMESPACE = "DmsEventBus"
#: CloudWatch namespace of the writeback's metrics (its Poison alarm, docs/runbook.md).
WRITEBACK_NAMESPACE = "DmsEventBus/Writeback"

Level = Literal["info", "warning", "error"]
#: The log levels, lower case as docs/bus.md's Logs Insights queries expect them.
LEVELS: frozenset[str] = frozenset({"info", "warning", "error"})


def log(level: Level, message: str, **fields: Any) -> None:
    """Print one JSON log line: `{"level": level, "message": message, **fields}`.

    Flushed at once, so a line is in CloudWatch even if the invocation dies right after."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {sorted(LEVELS)}, found {level!r}")
    print(json.dumps({"level": level, "message": message, **fields}, default=str), flush=True)


def emf_line(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Mapping[str, int | float],
    unit: str = "Count",
    *,
    timestamp_ms: int | None = None,
) -> str:
    """The embedded-metric-format JSON of `metrics` (name -> value, all in `unit`) under
    `namespace`, with one dimension set: every key of `dimensions` (sorted by name; no
    dimension at all when it is empty). Dimension values and metric values are top-level
    members, as the format requires; metrics are listed in the order given."""
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [sorted(dimensions)],
                        "Metrics": [{"Name": name, "Unit": unit} for name in metrics],
                    }
                ],
            },
            **dimensions,
            **metrics,
        }
    )


def emf(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Mapping[str, int | float],
    unit: str = "Count",
) -> None:
    """Print one embedded-metric-format line (see `emf_line`): the metrics cost no API call."""
    print(emf_line(namespace, dimensions, metrics, unit), flush=True)


def client(cache: dict[str, Any], service: str, config: Any = None) -> Any:
    """The boto3 client for `service`, created on first use and kept in `cache` (a module's
    own dict, so tests can put a stub there). `config` (a `botocore.config.Config`) is used
    only when the client is created."""
    found = cache.get(service)
    if found is None:
        import boto3

        found = cache[service] = boto3.client(service, config=config)
    return found


class LazyClient:
    """Stands in for a client that only some invocations need (the S3 client of the
    overflow, say): the real one is made (or found) by `get` at the first method call."""

    __slots__ = ("_get",)

    def __init__(self, get: Callable[[], Any]) -> None:
        self._get = get

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle probes: not the client's
            raise AttributeError(name)
        return getattr(self._get(), name)
