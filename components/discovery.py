"""Discovery of the DynamoDB tables DMS created at runtime, for adoption.

DMS creates one DynamoDB table per source table its selection rules match, including tables
nobody listed (wildcards) and tables added to the legacy schema later. `discover` lists the
account's tables with the pulumi-aws `get_tables` invoke (answered by the mocks in tests),
and `adoptable_tables` keeps those of this environment that the program does not declare:

- only names starting with this environment's prefix (`dmsbus-dev-`): other environments
  sharing the account, and anything else in it, are never touched;
- minus the declared tables (Pulumi owns them already);
- minus DMS's control tables (`awsdms_apply_exceptions`, `awsdms_full_load_exceptions`,
  ..., with or without the prefix): they hold DMS's own bookkeeping, not legacy rows;
- minus names whose rest (after the prefix) is not a logical table name
  (`^[a-z][a-z0-9_]{0,62}$`, what DMS's lower-casing transformations produce): that keeps out
  the IngestApi's tables (`<prefix>ingest-<entity>`, Pulumi owns them), other programs' tables
  that merely share the prefix (`dmsbus-dev-eu-...` of an environment `dev-eu`), and names
  that could not be an envelope's `table`;
- minus the logical names listed in `adoption.exclude`.

`classify` says, for every name with this environment's prefix, why it is or is not adopted
(`discover` logs the skipped ones, so an operator sees why a table did not join the bus).

A table DMS creates after this `pulumi up` is adopted by the next one (run `pulumi up` on a
schedule, or after the DMS task reports a new table).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from settings.base import LOGICAL_NAME_PATTERN

CONTROL_PREFIX = "awsdms_"

#: What an adopted table's logical name (its physical name minus the prefix) must look like;
#: the same rule as the stack file's logical table names (settings.base.LogicalName).
LOGICAL_NAME = re.compile(LOGICAL_NAME_PATTERN)

ADOPT = "adopt"
DECLARED = "declared in the stack file"


def is_control_table(name: str, name_prefix: str = "") -> bool:
    """DMS's own control tables, with or without the environment prefix."""
    bare = name[len(name_prefix):] if name_prefix and name.startswith(name_prefix) else name
    return bare.lower().startswith(CONTROL_PREFIX) or name.lower().startswith(CONTROL_PREFIX)


def classify(
    all_names: Iterable[str],
    *,
    name_prefix: str,
    declared_physical_names: Iterable[str],
    exclude: Iterable[str] = (),
) -> dict[str, str]:
    """Every table name with this environment's prefix -> `ADOPT` or why it is skipped.

    Names without the prefix are not listed: they belong to someone else."""
    if not name_prefix:
        raise ValueError("adoptable_tables: name_prefix: expected the environment prefix, found ''")
    declared = set(declared_physical_names)
    excluded = set(exclude)
    out: dict[str, str] = {}
    for name in sorted(set(all_names)):
        if not name.startswith(name_prefix):
            continue
        rest = name[len(name_prefix):]
        if name in declared:
            out[name] = DECLARED
        elif is_control_table(name, name_prefix):
            out[name] = "a DMS control table"
        elif not LOGICAL_NAME.match(rest):
            out[name] = (
                f"{rest!r} is not a logical table name ({LOGICAL_NAME.pattern}): not a table "
                "DMS created for this environment (e.g. an IngestApi table)"
            )
        elif rest in excluded:
            out[name] = "listed in adoption.exclude"
        else:
            out[name] = ADOPT
    return out


def adoptable_tables(
    all_names: Iterable[str],
    *,
    name_prefix: str,
    declared_physical_names: Iterable[str],
    exclude: Iterable[str] = (),
) -> list[str]:
    """The physical names to adopt, sorted (so the program's resource order is stable)."""
    verdicts = classify(all_names, name_prefix=name_prefix,
                        declared_physical_names=declared_physical_names, exclude=exclude)
    return _adopted(verdicts)


def _adopted(verdicts: dict[str, str]) -> list[str]:
    return [name for name, verdict in verdicts.items() if verdict == ADOPT]


def logical_name(physical: str, name_prefix: str) -> str:
    """The envelope's `table` of an adopted table: its physical name without the prefix."""
    return physical[len(name_prefix):] if physical.startswith(name_prefix) else physical


def discover(
    name_prefix: str, declared: Iterable[str], exclude: Iterable[str] = ()
) -> list[str]:
    """Adoptable tables of the account/region the program deploys to (a Pulumi invoke).

    `declared`: physical names of the tables the program declares; `exclude`: logical names
    never adopted (`adoption.exclude`)."""
    import pulumi
    import pulumi_aws as aws

    names = aws.dynamodb.get_tables().names or []
    verdicts = classify(names, name_prefix=name_prefix, declared_physical_names=declared,
                        exclude=exclude)
    for name, verdict in verdicts.items():
        if verdict not in (ADOPT, DECLARED):
            pulumi.log.info(f"adoption: not adopting {name}: {verdict}")
    return _adopted(verdicts)
