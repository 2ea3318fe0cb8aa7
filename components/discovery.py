"""Discovery of the DynamoDB tables DMS created at runtime, for adoption.

DMS creates one DynamoDB table per source table its selection rules match, including tables
nobody listed (wildcards) and tables added to the legacy schema later. `discover` lists the
account's tables with the pulumi-aws `get_tables` invoke (answered by the mocks in tests),
and `adoptable_tables` keeps those of this environment that the program does not declare:

- only names starting with this environment's prefix (`dmsbus-dev-`): other environments
  sharing the account, and anything else in it, are never touched;
- minus the declared tables (Pulumi owns them already);
- minus DMS's control tables (`awsdms_apply_exceptions`, `awsdms_full_load_exceptions`,
  ..., with or without the prefix): they hold DMS's own bookkeeping, not legacy rows.

A table DMS creates after this `pulumi up` is adopted by the next one (run `pulumi up` on a
schedule, or after the DMS task reports a new table).
"""

from __future__ import annotations

from collections.abc import Iterable

CONTROL_PREFIX = "awsdms_"


def is_control_table(name: str, name_prefix: str = "") -> bool:
    """DMS's own control tables, with or without the environment prefix."""
    bare = name[len(name_prefix):] if name_prefix and name.startswith(name_prefix) else name
    return bare.lower().startswith(CONTROL_PREFIX) or name.lower().startswith(CONTROL_PREFIX)


def adoptable_tables(
    all_names: Iterable[str],
    *,
    name_prefix: str,
    declared_physical_names: Iterable[str],
) -> list[str]:
    """The physical names to adopt, sorted (so the program's resource order is stable)."""
    if not name_prefix:
        raise ValueError("adoptable_tables: name_prefix: expected the environment prefix, found ''")
    declared = set(declared_physical_names)
    keep = {
        name
        for name in all_names
        if name.startswith(name_prefix)
        and len(name) > len(name_prefix)
        and name not in declared
        and not is_control_table(name, name_prefix)
    }
    return sorted(keep)


def logical_name(physical: str, name_prefix: str) -> str:
    """The envelope's `table` of an adopted table: its physical name without the prefix."""
    return physical[len(name_prefix):] if physical.startswith(name_prefix) else physical


def discover(name_prefix: str, declared: Iterable[str]) -> list[str]:
    """Adoptable tables of the account/region the program deploys to (a Pulumi invoke)."""
    import pulumi_aws as aws

    names = aws.dynamodb.get_tables().names or []
    return adoptable_tables(names, name_prefix=name_prefix, declared_physical_names=declared)
