"""A small, pure model of how AWS DMS applies a table-mapping document to a source catalog,
for a DynamoDB target: which tables it selects, which rule names each one's DynamoDB table
and gives its key. A test oracle, independent of the builder in components/dms_source.py.

What it models, and the AWS DMS User Guide text it follows:

- Selection ("Selection rules and actions"): a table is replicated when a selection rule
  with `rule-action: include` matches it and no `exclude` rule does. The guide's example
  "Migrate some tables in a schema" (include `Test.%`, exclude `Test.DMS%`) "migrates all
  tables except those starting with DMS". The model lets an exclusion win whatever the
  rule ids (the guide gives no order in which an include could win back).
- Names are matched case-sensitively: "DMS selection rules are case-sensitive", with the
  wildcards of "Wildcards in table mapping": `%` "Zero or more characters", `_` "A single
  character", `[_]` "A literal underscore character", `[ab]` "A set of characters".
- Object mapping ("Using object mapping to migrate data to DynamoDB"): "To map data to a
  DynamoDB target, you use a type of table mapping rule called object-mapping"; its
  `target-table-name` names the table and `mapping-parameters` give `partition-key-name`
  and `sort-key-name`; "attribute-mappings" build an attribute from a template such as
  "${FirstName},${LastName}".
- Without an object mapping the table keeps its source name, changed by the
  `transformation` rules with `rule-target: table` that match it, in rule-id order
  (`convert-lowercase`, `add-prefix`), and "If you have a noncomposite primary key, AWS DMS
  uses it"; "AWS DMS only supports replication of tables with non-composite primary keys,
  unless you specify an object mapping for the target table with a custom partition key or
  sort key, or both" (Limitations) — so such a table is NOT_CARRIED.
- "AWS DMS doesn't support more than one transformation rule per schema level or per table
  level" (Transformation rules, Limitations): the model flags a table reached by the
  table-level rules of more than one wildcard, and a table with an object mapping whose
  name the transformations would change, as AMBIGUOUS — the guide does not say which rule
  wins there, so a generated document must never depend on it.

The result per table is exactly one `Path`, or None when the table is not selected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OBJECT_MAPPING = "object-mapping"
WILDCARD = "transformations"
NOT_CARRIED = "not-carried"
AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class Path:
    kind: str
    """OBJECT_MAPPING, WILDCARD, NOT_CARRIED or AMBIGUOUS."""
    target: str | None
    """The DynamoDB table name (None when not carried)."""
    key: tuple[str, ...]
    """Partition key attribute (+ sort key attribute)."""
    key_template: str | None = None
    """The attribute-mapping template of a built (concatenated) partition key."""
    rule_ids: tuple[str, ...] = ()
    """The rules that produced this path."""


def like(pattern: str, name: str) -> bool:
    """DMS name matching ("Wildcards in table mapping"): `%` "Zero or more characters",
    `_` "A single character", `[_]` "A literal underscore character", `[ab]` "A set of
    characters"; anything else matches itself, case-sensitively."""
    parts = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            parts.append("[" + re.escape(pattern[i + 1 : end]).replace("\\-", "-") + "]")
            i = end + 1
            continue
        parts.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.fullmatch("".join(parts), name, re.DOTALL) is not None


def _matches(rule: Mapping[str, Any], schema: str, table: str) -> bool:
    locator = rule["object-locator"]
    return like(locator["schema-name"], schema) and like(locator.get("table-name", "%"), table)


def simulate(
    document: Mapping[str, Any], catalog: Mapping[tuple[str, str], Sequence[str]]
) -> dict[tuple[str, str], Path | None]:
    """(schema, table) -> its one path through `document`, or None when not selected.
    `catalog` maps each source table to its primary-key columns (empty: no key)."""
    rules = sorted(document["rules"], key=lambda r: int(r["rule-id"]))
    out: dict[tuple[str, str], Path | None] = {}
    for (schema, table), primary_key in catalog.items():
        out[(schema, table)] = _path(rules, schema, table, primary_key)
    return out


def _path(
    rules: Iterable[Mapping[str, Any]], schema: str, table: str, primary_key: Sequence[str]
) -> Path | None:
    rules = list(rules)
    selections = [r for r in rules if r["rule-type"] == "selection" and _matches(r, schema, table)]
    if not any(r["rule-action"] == "include" for r in selections):
        return None
    if any(r["rule-action"] == "exclude" for r in selections):
        return None
    renames = [
        r
        for r in rules
        if r["rule-type"] == "transformation"
        and r.get("rule-target") == "table"
        and _matches(r, schema, table)
    ]
    # Which wildcard a table-level rule belongs to: its locator (one per wildcard).
    owners = {(r["object-locator"]["schema-name"], r["object-locator"]["table-name"])
              for r in renames}
    name = table
    for rule in renames:
        if rule["rule-action"] == "convert-lowercase":
            name = name.lower()
        elif rule["rule-action"] == "add-prefix":
            name = rule["value"] + name
        else:
            return Path(AMBIGUOUS, None, (), rule_ids=(rule["rule-id"],))
    mappings = [r for r in rules if r["rule-type"] == OBJECT_MAPPING and _matches(r, schema, table)]
    if len(mappings) > 1 or len(owners) > 1:
        ids = tuple(r["rule-id"] for r in mappings + renames)
        return Path(AMBIGUOUS, None, (), rule_ids=ids)
    if mappings:
        mapping = mappings[0]
        target = mapping["target-table-name"]
        if renames and name != target:
            ids = (mapping["rule-id"], *(r["rule-id"] for r in renames))
            return Path(AMBIGUOUS, None, (), rule_ids=ids)
        params = mapping.get("mapping-parameters", {})
        key = (params["partition-key-name"],) + (
            (params["sort-key-name"],) if "sort-key-name" in params else ()
        )
        template = next(
            (
                a["value"]
                for a in params.get("attribute-mappings", [])
                if a["target-attribute-name"] == params["partition-key-name"]
            ),
            None,
        )
        return Path(OBJECT_MAPPING, target, key, template, (mapping["rule-id"],))
    ids = tuple(r["rule-id"] for r in renames)
    if len(primary_key) != 1:
        return Path(NOT_CARRIED, None, (), rule_ids=ids)
    return Path(WILDCARD, name, (primary_key[0],), rule_ids=ids)
