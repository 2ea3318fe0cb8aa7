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

`classify` says, for every name with this environment's prefix, why it is or is not adopted,
naming what really happened: an IngestApi table; a name holding `-` (another environment
whose name starts like this one's, or a source table whose name holds `-`); a name DMS wrote
that the bus cannot carry as a `table` (over 63 characters, upper case, starting with a digit
or `_`, holding `.`). `discover` logs every skipped table, and refuses to go on (`pulumi
preview`/`up` fail with one line) when a table is certainly this environment's DMS table but
cannot be adopted: its rows would sit in DynamoDB and never reach the bus. The fix is named
in the error: exclude the source table from DMS (then drop the DynamoDB table), rename it with
a DMS transformation rule, or list it in `adoption.exclude` to leave it out knowingly.

A table DMS creates after this `pulumi up` is adopted by the next one (run `pulumi up` on a
schedule, or after the DMS task reports a new table).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pulumi

from dms_event_bus.components.common import INGEST_INFIX
from dms_event_bus.settings.base import LOGICAL_NAME_PATTERN

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


#: A DynamoDB table name allows 3-255 of these; a source name with other characters makes
#: DMS's CreateTable fail (DMS reports it; no table to discover).
TABLE_NAME_CHARS = re.compile(r"^[A-Za-z0-9_.-]+$")
#: Verdict prefixes: `discover` fails the plan on UNADOPTABLE, logs the others.
UNADOPTABLE = "cannot be adopted: "
AMBIGUOUS = "not adopted, check it: "


class UnadoptableTablesError(pulumi.RunError):
    """Tables certainly created by DMS for this environment that the bus cannot carry.

    A `RunError`: the Pulumi CLI shows its one line, no traceback."""


def _unfit(rest: str) -> str | None:
    """Why `rest` (a name after the prefix, without `-`) is not a logical table name, or None."""
    if LOGICAL_NAME.match(rest):
        return None
    if len(rest) > 63:
        return f"its name after the prefix has {len(rest)} characters (the bus carries at most 63)"
    if rest != rest.lower():
        return "its name holds upper case (DMS wrote the source name unchanged; the bus's table "\
            "names are lower case)"
    if rest[0].isdigit() or rest[0] == "_":
        return "its name starts with a digit or '_' (a bus table name starts with a letter)"
    if "." in rest:
        return "its name holds '.' (a bus table name holds letters, digits and '_')"
    return f"{rest!r} is not a bus table name ({LOGICAL_NAME.pattern})"


def classify(
    all_names: Iterable[str],
    *,
    name_prefix: str,
    declared_physical_names: Iterable[str],
    exclude: Iterable[str] = (),
) -> dict[str, str]:
    """Every table name with this environment's prefix -> `ADOPT` or why it is skipped.

    Names without the prefix are not listed: they belong to someone else. A skipped
    table's verdict starts with `UNADOPTABLE` when it is certainly a DMS table of this
    environment the bus cannot carry, with `AMBIGUOUS` when it may be someone else's."""
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
        elif not rest:
            out[name] = "the bare environment prefix, not a table of this program"
        elif is_control_table(name, name_prefix):
            out[name] = "a DMS control table"
        elif rest in excluded:
            out[name] = "listed in adoption.exclude"
        elif rest.startswith(INGEST_INFIX):
            out[name] = "an IngestApi table of this environment (the program declares it)"
        elif "-" in rest:
            env_tail, _, table = rest.partition("-")
            out[name] = (
                f"{AMBIGUOUS}its name after the prefix, {rest!r}, holds '-': either a table "
                f"of another environment whose name starts like this one's (its table "
                f"{table!r}, environment ending '-{env_tail}'), left alone; or a source table "
                "whose name holds '-', which the bus cannot carry: rename it with a DMS "
                "transformation rule, or list it in adoption.exclude"
            )
        elif (why := _unfit(rest)) is not None:
            out[name] = (
                f"{UNADOPTABLE}{why}; its rows stay in DynamoDB and never reach the bus. "
                "Fix: exclude the source table from DMS (dms schema `exclude`) and drop the "
                "DynamoDB table, or rename it with a DMS transformation rule, or list "
                f"{rest!r} in adoption.exclude to leave it out knowingly"
            )
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
    import pulumi_aws as aws

    names = aws.dynamodb.get_tables().names or []
    verdicts = classify(names, name_prefix=name_prefix, declared_physical_names=declared,
                        exclude=exclude)
    for name, verdict in verdicts.items():
        if verdict.startswith(AMBIGUOUS):
            pulumi.log.warn(f"adoption: {name}: {verdict}")
        elif verdict not in (ADOPT, DECLARED) and not verdict.startswith(UNADOPTABLE):
            pulumi.log.info(f"adoption: not adopting {name}: {verdict}")
    refused = {n: v for n, v in verdicts.items() if v.startswith(UNADOPTABLE)}
    if refused:
        name, verdict = next(iter(refused.items()))
        more = f" (and {len(refused) - 1} more: {', '.join(list(refused)[1:4])})" \
            if len(refused) > 1 else ""
        raise UnadoptableTablesError(f"adoption: {name} {verdict}{more}")
    return _adopted(verdicts)
