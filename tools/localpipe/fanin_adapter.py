"""Calls the project's real fan-in handler in-process with the harness's clients (local pipeline).

The harness owns the Kinesis client (a fault-injecting wrapper around moto's) and the S3
client; `reset` hands them to `handlers.fanin`'s lazily created module-level clients and
drops any cached configuration, so every Pipeline starts from a cold container.
"""

from __future__ import annotations

from typing import Any

_CLIENTS: dict[str, Any] = {}


def reset(*, kinesis: Any, s3: Any) -> None:
    _CLIENTS.update({"kinesis": kinesis, "s3": s3})
    from dms_event_bus.handlers import fanin

    _inject(fanin)


def _inject(module: Any) -> None:
    clients = getattr(module, "_clients", None)
    if isinstance(clients, dict):
        clients.clear()
        clients.update(_CLIENTS)


def invoke(event: dict[str, Any], context: Any) -> Any:
    from dms_event_bus.handlers import fanin

    return fanin.handler(event, context)
