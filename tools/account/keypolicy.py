"""Does a KMS key policy let a principal use the key? A small, pure evaluator.

The account preflight asks one question of an external key's policy, many times: may this
principal (CloudWatch Logs of the region, the account's roles through a service, an alarm
publisher) call this action on this key, given the request context AWS sends? The answer
follows IAM's evaluation rules for a single resource policy:

- an explicit Deny whose statement applies wins over everything;
- otherwise an Allow whose statement applies allows;
- otherwise the request is implicitly denied.

A statement applies when its Principal/NotPrincipal, Action/NotAction, Resource/NotResource and
every Condition operator match. Principal forms: ``"*"``, ``{"AWS": ...}`` (an account id, the
account root ARN, a role ARN, ``"*"``), ``{"Service": ...}``; each value a string or a list.
Actions and resources match case-insensitively (resources case-sensitively) with ``*`` and ``?``.

Conditions follow the IAM rules: a key missing from the context makes a condition false, except
for negated operators (``StringNotEquals``, ``ArnNotLike``, ...) which are then true, the
``...IfExists`` variants (true when absent) and ``Null``. Values of one key are OR-ed (AND-ed for
negated operators); keys and operators are AND-ed. An operator this module does not know makes
its statement "unknown": an unknown Allow does not allow, an unknown Deny denies — the preflight
never passes on a guess.

Only the key policy is evaluated (no grants, no SCPs, no IAM policies): the preflight's question
is whether the key policy *permits* the use, which AWS requires for every cross-service use of a
customer-managed key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

Decision = Literal["allow", "deny", "implicit"]
ContextValue = str | Sequence[str]


@dataclass(frozen=True)
class Principal:
    """Who calls KMS. ``kind`` "AWS" (an IAM role/user of ``account``) or "Service"."""

    kind: Literal["AWS", "Service"]
    name: str
    """The role/user ARN (kind AWS) or the service principal (``logs.<region>.amazonaws.com``)."""
    account: str = ""
    """The principal's account (kind AWS): the root ARN and the bare account id match it."""

    @classmethod
    def role(cls, arn: str) -> Principal:
        account = arn.split(":")[4] if arn.count(":") >= 5 else ""
        return cls("AWS", arn, account)

    @classmethod
    def service(cls, name: str) -> Principal:
        return cls("Service", name)


@dataclass(frozen=True)
class Request:
    """One KMS call to decide."""

    principal: Principal
    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@lru_cache(maxsize=1024)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: ``*`` any run of characters, ``?`` one character."""
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _principal_matches(element: Any, who: Principal) -> bool:
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        return False
    for kind, values in element.items():
        for value in _as_list(values):
            if not isinstance(value, str):
                continue
            if kind == "AWS":
                if value == "*":
                    return True
                if who.kind == "AWS" and (
                    value == who.name
                    or (who.account and value in (who.account, _root(who.name, who.account)))
                ):
                    return True
            elif (
                kind == "Service" and who.kind == "Service" and value.lower() == who.name.lower()
            ):
                return True
    return False


def _root(arn: str, account: str) -> str:
    partition = arn.split(":")[1] if arn.startswith("arn:") else "aws"
    return f"arn:{partition}:iam::{account}:root"


def _matches_any(patterns: Any, value: str, *, ignore_case: bool) -> bool:
    return any(
        isinstance(p, str) and glob_match(p, value, ignore_case=ignore_case)
        for p in _as_list(patterns)
    )


# --------------------------------------------------------------------------- conditions

_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
}
_POSITIVE = {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool"}


def _value_matches(base: str, policy_value: str, actual: str) -> bool:
    if base in ("StringEquals", "StringNotEquals"):
        return policy_value == actual
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return policy_value.lower() == actual.lower()
    if base in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike", "ArnEquals",
                "ArnNotEquals"):
        return glob_match(policy_value, actual)
    if base == "Bool":
        return policy_value.lower() == actual.lower()
    raise AssertionError(base)  # pragma: no cover - callers pass known operators only


def _context_lookup(context: Mapping[str, ContextValue], key: str) -> list[str] | None:
    lowered = key.lower()
    for name, value in context.items():
        if name.lower() == lowered:
            return [value] if isinstance(value, str) else [str(v) for v in value]
    return None


def condition_holds(condition: Any, context: Mapping[str, ContextValue]) -> bool | None:
    """True/False per IAM's rules; None when an operator is not understood."""
    if condition is None:
        return True
    if not isinstance(condition, Mapping):
        return None
    for raw_operator, entries in condition.items():
        if not isinstance(raw_operator, str) or not isinstance(entries, Mapping):
            return None
        qualifier, _, operator = raw_operator.rpartition(":")
        if qualifier not in ("", "ForAnyValue", "ForAllValues"):
            return None
        if_exists = operator.endswith("IfExists") and operator != "IfExists"
        base = operator[: -len("IfExists")] if if_exists else operator
        for key, policy_values in entries.items():
            wanted = [str(v).lower() if isinstance(v, bool) else str(v)
                      for v in _as_list(policy_values)]
            actual = _context_lookup(context, key)
            if base == "Null":
                present = actual is not None
                if not all(w.lower() in ("true", "false") for w in wanted):
                    return None
                # "Null": "true" means the key must be absent; OR over the listed values
                if not any((w.lower() == "true") != present for w in wanted):
                    return False
                continue
            if base not in _NEGATED and base not in _POSITIVE:
                return None
            if actual is None:
                # absent key: IfExists, negated operators and ForAllValues (vacuously) hold
                if if_exists or base in _NEGATED or qualifier == "ForAllValues":
                    continue
                return False
            negated = base in _NEGATED

            def one(value: str, *, negated: bool = negated, wanted: list[str] = wanted,
                    base: str = base) -> bool:
                hit = any(_value_matches(base, w, value) for w in wanted)
                return not hit if negated else hit

            if qualifier == "ForAllValues":
                ok = all(one(v) for v in actual)
            else:
                ok = any(one(v) for v in actual)
            if not ok:
                return False
    return True


# --------------------------------------------------------------------------- statements


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool | None:
    """Whether ``statement`` covers ``request`` (None: a condition was not understood)."""
    if "Principal" in statement:
        if not _principal_matches(statement["Principal"], request.principal):
            return False
    elif "NotPrincipal" in statement:
        if _principal_matches(statement["NotPrincipal"], request.principal):
            return False
    else:
        return False  # a key policy statement without a principal is invalid: covers nobody
    if "Action" in statement:
        if not _matches_any(statement["Action"], request.action, ignore_case=True):
            return False
    elif "NotAction" in statement:
        if _matches_any(statement["NotAction"], request.action, ignore_case=True):
            return False
    else:
        return False
    if "Resource" in statement:
        if not _matches_any(statement["Resource"], request.resource, ignore_case=False):
            return False
    elif "NotResource" in statement:
        if _matches_any(statement["NotResource"], request.resource, ignore_case=False):
            return False
    return condition_holds(statement.get("Condition"), request.context)


def statements(policy: Mapping[str, Any] | str | Any) -> list[Mapping[str, Any]]:
    """The policy's statements (one statement object or a list of them)."""
    if not isinstance(policy, Mapping):
        return []
    return [s for s in _as_list(policy.get("Statement")) if isinstance(s, Mapping)]


def decide(policy: Mapping[str, Any], request: Request) -> Decision:
    """IAM's decision for one request under one resource policy."""
    allowed = False
    for statement in statements(policy):
        effect = statement.get("Effect")
        applies = statement_applies(statement, request)
        if effect == "Deny" and applies is not False:
            return "deny"  # a Deny that applies, or might: explicit deny
        if effect == "Allow" and applies is True:
            allowed = True
    return "allow" if allowed else "implicit"


def missing_actions(
    policy: Mapping[str, Any],
    principal: Principal,
    actions: Iterable[str],
    resource: str,
    context: Mapping[str, ContextValue] | None = None,
) -> list[str]:
    """The ``actions`` the policy does not allow ``principal`` on ``resource`` (in order)."""
    return [
        action
        for action in actions
        if decide(policy, Request(principal, action, resource, context or {})) != "allow"
    ]
