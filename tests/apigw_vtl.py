"""Render API Gateway mapping templates offline with airspeed (the `airspeed-ext` package).

airspeed-ext is the Velocity engine (the one LocalStack uses for API Gateway); it brings no
API Gateway variables, so this module provides them, following the AWS mapping template
reference and Java semantics where the templates depend on them:

- `$input.path(p)` parses the body as JSON and returns the value at a `$.a.b` path (objects
  are Java-Map-like: `containsKey`, `get`, `keySet`, `size`); missing paths give `missing`
  (None by default; AWS may give an empty string — tests run both).
- `$input.json(p)` returns the JSON text of that value. Numbers keep their digits here; AWS
  re-serialises them through a JSON library (see docs/ingest-api.md).
- `$input.params(name)` looks the name up in path, query string, then headers (exact case),
  in request AND response templates (API Gateway keeps the method request's parameters).
- `$input.body`, `$util.escapeJavaScript` (Apache Commons Lang 2 rules, single quote -> \\'),
  `$util.parseJson`, `$context.*` with `responseOverride.status`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import airspeed


class JavaMap(dict):
    """A JSON object as API Gateway's templates see it (a java.util.Map)."""

    def containsKey(self, key: str) -> bool:  # noqa: N802 - Java method name
        return key in self

    def keySet(self) -> list[str]:  # noqa: N802 - Java method name
        return list(self.keys())

    def size(self) -> int:
        return len(self)

    def isEmpty(self) -> bool:  # noqa: N802 - Java method name
        return not self


def _java(value: Any) -> Any:
    if isinstance(value, dict):
        return JavaMap({k: _java(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_java(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    """JSON text keeping Decimal digits exactly."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def escape_javascript(text: Any) -> str:
    """Apache Commons Lang 2 StringEscapeUtils.escapeJavaScript (what API Gateway uses)."""
    if text is None:
        return ""
    out: list[str] = []
    for unit in _utf16_units(str(text)):
        ch = chr(unit)
        if unit > 0x7F:
            out.append(f"\\u{unit:04X}")
        elif ch in "\b\n\t\f\r":
            out.append({"\b": "\\b", "\n": "\\n", "\t": "\\t", "\f": "\\f", "\r": "\\r"}[ch])
        elif unit < 0x20:
            out.append(f"\\u{unit:04X}")
        elif ch in "'\"\\/":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


class VelocityUtil:
    """`$util`."""

    def escapeJavaScript(self, text: Any) -> str:  # noqa: N802 - AWS name
        return escape_javascript(text)

    def parseJson(self, text: str) -> Any:  # noqa: N802 - AWS name
        return _java(json.loads(text, parse_float=Decimal))


class VelocityInput:
    """`$input` of one request (request templates) or one integration response."""

    def __init__(self, body: str, params: dict[str, dict[str, str]], missing: Any) -> None:
        self._body = body
        self._params = params
        self._missing = missing

    @property
    def body(self) -> str:
        return self._body

    def _value(self, path: str) -> Any:
        if not path.startswith("$"):
            raise ValueError(f"JSONPath must start with $: {path!r}")
        value: Any = json.loads(self._body, parse_float=Decimal) if self._body else {}
        for part in [p for p in path[1:].split(".") if p]:
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
        return value

    def path(self, path: str) -> Any:
        value = self._value(path)
        return self._missing if value is _MISSING else _java(value)

    def json(self, path: str) -> str:
        value = self._value(path)
        return "" if value is _MISSING else _dumps(value)

    def params(self, name: str | None = None) -> Any:
        if name is None:
            return _java(self._params)
        for where in ("path", "querystring", "header"):
            if name in self._params.get(where, {}):
                return self._params[where][name]
        return ""


_MISSING = object()


@dataclass
class Request:
    """One method request as API Gateway hands it to the templates."""

    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)
    request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    request_time_epoch: int = 1_763_848_915_123

    def params(self) -> dict[str, dict[str, str]]:
        return {"path": dict(self.path), "querystring": {}, "header": dict(self.headers)}

    def context(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "requestTimeEpoch": self.request_time_epoch,
            "httpMethod": "POST",
            "stage": "v1",
            "identity": {"sourceIp": "192.0.2.10", "caller": "AIDAEXAMPLE"},
            "responseOverride": {"status": 0, "header": {}},
        }


@dataclass
class Rendered:
    text: str
    status_override: int

    def json(self) -> Any:
        return json.loads(self.text)


def render_request(template: str, request: Request, *, missing: Any = None) -> Rendered:
    """Render an integration request template for `request`."""
    return _render(template, request.body, request, missing)


def render_response(
    template: str, request: Request, integration_body: str, *, missing: Any = None
) -> Rendered:
    """Render an integration response template: `$input` is the integration's response body,
    `$input.params` still the method request's parameters."""
    return _render(template, integration_body, request, missing)


def _render(template: str, body: str, request: Request, missing: Any) -> Rendered:
    context = request.context()
    namespace = {
        "input": VelocityInput(body, request.params(), missing),
        "util": VelocityUtil(),
        "context": context,
    }
    text = airspeed.Template(template).merge(namespace)
    return Rendered(text=text, status_override=int(context["responseOverride"]["status"]))
