"""A small IAM evaluator for graph tests: which role may do what on which ARN.

Covers what the project's policies use: Allow and Deny statements, `Action` and `Resource`
lists with IAM's wildcards (`*` any run of characters, `?` one character, case-sensitive for
ARNs, case-insensitive for actions), the string conditions of KMS grants (`StringEquals`,
`StringLike`, `StringNotLike`) and the ARN conditions (`ArnEquals`, `ArnLike`) of the
network-interface statements. Anything else in a statement (NotAction,
NotResource, other operators) is refused, so a test cannot pass by ignoring it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tools.mockrun import Plan

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
MANAGED_POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
KNOWN_KEYS = {"Sid", "Effect", "Action", "Resource", "Condition", "Principal"}
KNOWN_OPERATORS = {"StringEquals", "StringLike", "StringNotLike", "StringEqualsIfExists",
                   "ForAllValues:StringEquals", "Bool", "ArnLike", "ArnEquals"}


@cache
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def matches(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcard match of one pattern against one value."""
    return _pattern(glob, ignore_case).fullmatch(value) is not None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass
class Role:
    """One role and every statement of its inline and attached policies."""

    name: str
    statements: list[dict[str, Any]] = field(default_factory=list)

    def _matching(self, effect: str, action: str, resource: str) -> list[dict[str, Any]]:
        found = []
        for s in self.statements:
            unknown = set(s) - KNOWN_KEYS
            assert not unknown, f"{self.name}: statement keys {unknown} not understood: {s}"
            if s["Effect"] != effect:
                continue
            if not any(matches(str(a), action, ignore_case=True) for a in as_list(s["Action"])):
                continue
            if any(matches(str(r), resource) for r in as_list(s["Resource"])):
                found.append(s)
        return found

    def allows(
        self, action: str, resource: str, context: Mapping[str, str] | None = None
    ) -> bool:
        """Allowed by some statement and denied by none. Without `context` the conditions of
        the Allow statements are ignored (an over-approximation: what is denied so is denied
        whatever the request carries); with it, an Allow counts only when its condition holds
        for a request with these condition keys (a key the request lacks fails it, as in
        IAM)."""
        allowing = self._matching("Allow", action, resource)
        if context is not None:
            allowing = [s for s in allowing if condition_allows(s.get("Condition") or {}, context)]
        return bool(allowing) and not self._matching("Deny", action, resource)

    def kms_grants(self) -> list[dict[str, Any]]:
        return [
            s for s in self.statements
            if s["Effect"] == "Allow"
            and any(str(a).lower().startswith("kms:") for a in as_list(s["Action"]))
        ]

    def data_statements(self) -> list[dict[str, Any]]:
        return [s for s in self.statements if s not in self.kms_grants()]


def condition_allows(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """Does a statement's Condition hold for a request with these condition keys?"""
    for operator, keys in condition.items():
        assert operator in KNOWN_OPERATORS, f"condition operator {operator} not understood"
        for key, expected in keys.items():
            value = context.get(key)
            wanted = [str(e) for e in as_list(expected)]
            if operator == "StringEquals":
                ok = value is not None and value in wanted
            elif operator == "StringLike":
                ok = value is not None and any(matches(w, value) for w in wanted)
            elif operator in ("ArnEquals", "ArnLike"):  # both take IAM's wildcards
                ok = value is not None and any(matches(w, value) for w in wanted)
            elif operator == "StringNotLike":
                ok = value is None or not any(matches(w, value) for w in wanted)
            else:
                raise AssertionError(f"{operator} not evaluated here")
            if not ok:
                return False
    return True


def roles_of(plan: Plan) -> dict[str, Role]:
    """Every role of the graph with its policies, by the role's physical name."""
    roles: dict[str, Role] = {}
    by_id: dict[str, Role] = {}
    for r in plan.of_type(ROLE):
        role = Role(str(r.inputs.get("name") or r.name))
        roles[role.name] = role
        by_id[str(r.outputs.get("id") or f"{role.name}-id")] = role
        by_id[role.name] = role
        for inline in r.inputs.get("inlinePolicies") or []:
            role.statements += _statements(inline["policy"])
    managed = {str(p.outputs.get("arn")): p for p in plan.of_type(MANAGED_POLICY)}
    for r in plan.of_type(ROLE_POLICY):
        by_id[str(r.inputs["role"])].statements += _statements(r.inputs["policy"])
    for r in plan.of_type(ATTACHMENT):
        policy = managed.get(str(r.inputs["policyArn"]))
        if policy is not None:  # AWS-managed policies are not in the graph
            by_id[str(r.inputs["role"])].statements += _statements(policy.inputs["policy"])
    return roles


def _statements(doc: Any) -> list[dict[str, Any]]:
    parsed = json.loads(doc) if isinstance(doc, str) else doc
    return [dict(s) for s in as_list(parsed["Statement"])]


def policy_texts(plan: Plan) -> dict[str, str]:
    """Every inline and managed policy document's text, by its resource name."""
    return {
        r.name: json.dumps(json.loads(r.inputs["policy"]), separators=(",", ":"))
        for r in plan.resources
        if r.type in (ROLE_POLICY, MANAGED_POLICY)
    }


def resources_named(statements: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(r) for s in statements for r in as_list(s["Resource"])]
