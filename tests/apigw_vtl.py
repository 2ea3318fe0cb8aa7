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
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import airspeed
import jsonschema


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
    query: dict[str, str] = field(default_factory=dict)
    http_method: str = "POST"

    def params(self) -> dict[str, dict[str, str]]:
        return {"path": dict(self.path), "querystring": dict(self.query),
                "header": dict(self.headers)}  # fmt: skip

    def context(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "requestTimeEpoch": self.request_time_epoch,
            "httpMethod": self.http_method,
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


# --------------------------------------------------------------------------- the declared API


@dataclass
class Response:
    """What the client gets."""

    status: int
    text: str
    #: None: API Gateway answered itself (a gateway response); else the integration's status.
    integration_status: int | None = None

    def json(self) -> Any:
        return json.loads(self.text)


#: Gateway response types and the status API Gateway gives them.
GATEWAY_STATUS = {
    "BAD_REQUEST_BODY": 400,
    "BAD_REQUEST_PARAMETERS": 400,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "INVALID_API_KEY": 403,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}
GATEWAY_MESSAGE = {
    "BAD_REQUEST_BODY": "Invalid request body",
    "BAD_REQUEST_PARAMETERS": "Missing required request parameters",
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "INVALID_API_KEY": "Forbidden",
    "UNSUPPORTED_MEDIA_TYPE": "Unsupported Media Type",
}


class DeclaredApi:
    """A REST API as a Pulumi program declared it (mocked plan), run request by request.

    It follows API Gateway's order for a non-proxy AWS integration: route (resource tree +
    method; unknown routes are MISSING_AUTHENTICATION_TOKEN), auth (AWS_IAM needs a signed
    request; apiKeyRequired a known key), request parameters and body checked by the method's
    validator against its model (JSON schema draft-4), the integration request template of the
    content type (none + passthrough NEVER: 415), the AWS call (`call_aws(action, json_text)`
    -> (status, body)), then the integration response whose selection pattern matches the
    status (else the default one) with its template and `$context.responseOverride.status`.
    API Gateway's own errors go through the declared gateway responses, which are plain
    variable substitution, not VTL. `$context.error.validationErrorString` is substituted
    JSON-escaped, as a deployed API answers (e.g. `"[object has missing required properties
    ([\"operation\"])]"`); the message strings are jsonschema's, not API Gateway's wording.
    Not emulated: throttling, usage plan quotas, SigV4 itself (a request is signed or not).
    """

    def __init__(
        self,
        resources: list[Any],
        call_aws: Any,
        *,
        api_keys: frozenset[str] = frozenset(),
    ) -> None:
        def of(short: str) -> list[Any]:
            return [r for r in resources if r.type.endswith(f"/{short}")]

        def rid(r: Any) -> str:  # the id tools.mockrun gives: physical name + "-id"
            return f"{r.inputs.get('name') or r.name}-id"

        self._resources = {rid(r): r.inputs for r in of("resource:Resource")}
        self._methods = {
            (m.inputs["resourceId"], m.inputs["httpMethod"]): m.inputs
            for m in of("method:Method")
        }
        self._integrations = {
            (i.inputs["resourceId"], i.inputs["httpMethod"]): i.inputs
            for i in of("integration:Integration")
        }
        self._responses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in of("integrationResponse:IntegrationResponse"):
            key = (r.inputs["resourceId"], r.inputs["httpMethod"])
            self._responses.setdefault(key, []).append(r.inputs)
        self._method_statuses = {
            (r.inputs["resourceId"], r.inputs["httpMethod"], r.inputs["statusCode"])
            for r in of("methodResponse:MethodResponse")
        }
        self._models = {m.inputs["name"]: json.loads(m.inputs["schema"]) for m in of("model:Model")}
        self._validators = {rid(v): v.inputs for v in of("requestValidator:RequestValidator")}
        self._gateway = {
            g.inputs["responseType"]: g.inputs["responseTemplates"]["application/json"]
            for g in of("response:Response")
        }
        self._call_aws = call_aws
        self._api_keys = api_keys

    # -- routing

    def _route(self, path: str) -> tuple[str | None, dict[str, str]]:
        current: str | None = None  # the root resource: parentId unknown under mocks
        params: dict[str, str] = {}
        for segment in [s for s in path.split("/") if s]:
            children = {
                i: r for i, r in self._resources.items() if r.get("parentId") == current
            }
            exact = [i for i, r in children.items() if r["pathPart"] == segment]
            greedy = [i for i, r in children.items() if re.fullmatch(r"\{\w+\}", r["pathPart"])]
            if exact:
                current = exact[0]
            elif greedy:
                current = greedy[0]
                params[self._resources[current]["pathPart"][1:-1]] = segment
            else:
                return None, {}
        return current, params

    # -- gateway responses

    def _gateway_response(
        self, kind: str, request: Request, *, validation: str = ""
    ) -> Response:
        status = GATEWAY_STATUS[kind]
        template = self._gateway.get(kind) or self._gateway.get(
            "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        )
        if template is None:
            return Response(status, json.dumps({"message": GATEWAY_MESSAGE[kind]}))
        values = {
            "$context.error.messageString": json.dumps(GATEWAY_MESSAGE[kind]),
            "$context.error.message": GATEWAY_MESSAGE[kind],
            "$context.error.validationErrorString": json.dumps(validation)[1:-1],
            "$context.requestId": request.request_id,
        }
        text = re.sub(
            r"\$context\.[A-Za-z.]+",
            lambda m: values.get(m.group(0), m.group(0)),
            template,
        )
        return Response(status, text)

    # -- one request

    def call(
        self,
        http_method: str,
        path: str,
        *,
        body: str = "",
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        signed: bool = False,
        api_key: str | None = None,
        request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        request_time_epoch: int = 1_763_848_915_123,
    ) -> Response:
        resource, path_params = self._route(path)
        request = Request(
            body=body,
            headers=dict(headers or {}),
            path=path_params,
            query=dict(query or {}),
            request_id=request_id,
            request_time_epoch=request_time_epoch,
            http_method=http_method,
        )
        method = self._methods.get((resource or "", http_method))
        if resource is None or method is None:
            return self._gateway_response("MISSING_AUTHENTICATION_TOKEN", request)
        if method.get("authorization") == "AWS_IAM" and not signed:
            return self._gateway_response("MISSING_AUTHENTICATION_TOKEN", request)
        if method.get("apiKeyRequired") and api_key not in self._api_keys:
            return self._gateway_response("INVALID_API_KEY", request)

        validator = self._validators.get(method.get("requestValidatorId", ""), {})
        if validator.get("validateRequestParameters"):
            missing = [
                name
                for name, required in (method.get("requestParameters") or {}).items()
                if required and not self._has_parameter(name, request)
            ]
            if missing:
                return self._gateway_response(
                    "BAD_REQUEST_PARAMETERS", request, validation=f"Missing {missing}"
                )
        model = (method.get("requestModels") or {}).get(content_type)
        if validator.get("validateRequestBody") and model is not None:
            problem = self._body_problem(self._models[model], body)
            if problem is not None:
                return self._gateway_response("BAD_REQUEST_BODY", request, validation=problem)

        integration = self._integrations[(resource, http_method)]
        template = (integration.get("requestTemplates") or {}).get(content_type)
        if template is None:
            if integration.get("passthroughBehavior") == "NEVER":
                return self._gateway_response("UNSUPPORTED_MEDIA_TYPE", request)
            raise NotImplementedError("passthrough is not emulated")
        rendered = render_request(template, request)
        action = integration["uri"].rsplit("/", 1)[-1]
        status, answer = self._call_aws(action, rendered.text)

        mappings = self._responses[(resource, http_method)]
        chosen = next(
            (
                m
                for m in mappings
                if m.get("selectionPattern") and re.fullmatch(m["selectionPattern"], str(status))
            ),
            None,
        ) or next(m for m in mappings if not m.get("selectionPattern"))
        if (resource, http_method, chosen["statusCode"]) not in self._method_statuses:
            raise AssertionError(f"integration response {chosen['statusCode']} has no method "
                                 "response: API Gateway would refuse the deployment")
        out = render_response(chosen["responseTemplates"]["application/json"], request, answer)
        final = out.status_override or int(chosen["statusCode"])
        return Response(final, out.text, integration_status=status)

    @staticmethod
    def _has_parameter(name: str, request: Request) -> bool:
        _, _, where, key = name.split(".", 3)
        source = {"path": request.path, "querystring": request.query, "header": request.headers}
        return key in source[where]

    @staticmethod
    def _body_problem(schema: dict[str, Any], body: str) -> str | None:
        try:
            value = json.loads(body, parse_float=Decimal)
        except ValueError as exc:
            return f"[Invalid JSON: {exc}]"
        errors = sorted(
            jsonschema.Draft4Validator(schema).iter_errors(value), key=lambda e: list(e.path)
        )
        if not errors:
            return None
        return "[" + ", ".join(e.message for e in errors) + "]"
