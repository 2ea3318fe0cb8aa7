"""Table mappings of whole SQL Server and Oracle stacks, planned under Pulumi mocks.

Each test writes a generated stack file (never the example stacks), runs `__main__.py`
under mocks, reads the task's `table_mappings` off the resource graph and checks it twice:

- structurally, as DMS would when the task is created (`dms_structure_problems`, below:
  rule ids numeric and unique, rule names unique, the fields each rule type needs, from the
  AWS DMS guide's "Selection rules and actions", "Transformation rules and actions" and
  "Using object mapping to migrate data to DynamoDB");
- by what happens to every table of a source catalog (`tests/dms_simulator.py`, a model of
  DMS's selection, transformation and object-mapping precedence written from the same
  guide): each selected table has exactly one path, and its key is one DMS accepts
  (`key_problems`, below: an object mapping's key built only from the source's primary
  key columns, all of them; a wildcard table only with a one-column primary key — "AWS DMS
  only supports replication of tables with non-composite primary keys, unless you specify
  an object mapping", DynamoDB target limitations).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from dms_event_bus.components.dms_source import (
    DmsTable,
    build_table_mappings,
    concatenated_key_template,
)
from dms_event_bus.settings import ConfigError, load_settings
from dms_event_bus.settings.dms import wildcard_tables_not_carried
from tests.dms_simulator import AMBIGUOUS, NOT_CARRIED, OBJECT_MAPPING, WILDCARD, simulate
from tests.dms_simulator import Path as RulePath
from tools import mockrun

ACCOUNT = mockrun.ACCOUNT
SECRET_ARN = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:erp-source-AbC123"
CERT_ARN = f"arn:aws:dms:eu-west-1:{ACCOUNT}:cert:ORACLECA"
SOURCE_SG = "sg-0123456789abcdef0"
CONFIG = "aws:dms/replicationConfig:ReplicationConfig"
TASK = "aws:dms/replicationTask:ReplicationTask"
ENDPOINT = "aws:dms/endpoint:Endpoint"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"

Catalog = dict[tuple[str, str], list[str]]

# -- what DMS accepts: structure --------------------------------------------------------

#: Transformation actions on table names the guide lists (a subset: the ones a table-level
#: rule may use).
TABLE_ACTIONS = {
    "rename",
    "convert-lowercase",
    "convert-uppercase",
    "add-prefix",
    "remove-prefix",
    "replace-prefix",
    "add-suffix",
    "remove-suffix",
    "replace-suffix",
}
NEEDS_VALUE = {"rename", "add-prefix", "add-suffix", "replace-prefix", "replace-suffix"}


def dms_structure_problems(document: Mapping[str, Any]) -> list[str]:
    """What DMS would refuse when the task is created, one line each."""
    problems: list[str] = []
    rules = document.get("rules")
    if not isinstance(rules, list) or not rules:
        return ["expected a non-empty `rules` list"]
    ids = [r.get("rule-id") for r in rules]
    names = [r.get("rule-name") for r in rules]
    for rid in ids:
        if not isinstance(rid, str) or not rid.isdigit():
            problems.append(f"rule-id {rid!r}: expected a numeric value")
    if len(set(ids)) != len(ids):
        problems.append("rule-id: expected unique values")
    if any(not isinstance(n, str) or not n for n in names) or len(set(names)) != len(names):
        problems.append("rule-name: expected unique, non-empty values")
    selections = 0
    for rule in rules:
        where = f"rule {rule.get('rule-id')}"
        locator = rule.get("object-locator") or {}
        kind = rule.get("rule-type")
        if kind == "selection":
            selections += 1
            if rule.get("rule-action") not in ("include", "exclude", "explicit"):
                problems.append(f"{where}: selection rule-action {rule.get('rule-action')!r}")
            if not locator.get("schema-name") or not locator.get("table-name"):
                problems.append(f"{where}: selection without schema-name and table-name")
        elif kind == "transformation":
            if rule.get("rule-target") != "table" or rule.get("rule-action") not in TABLE_ACTIONS:
                problems.append(f"{where}: not a table-level transformation")
            if rule.get("rule-action") in NEEDS_VALUE and not rule.get("value"):
                problems.append(f"{where}: {rule.get('rule-action')} without a value")
            if not locator.get("schema-name") or not locator.get("table-name"):
                problems.append(f"{where}: transformation without an object-locator")
        elif kind == "object-mapping":
            if rule.get("rule-action") != "map-record-to-record":
                problems.append(f"{where}: object-mapping rule-action {rule.get('rule-action')!r}")
            if not locator.get("schema-name") or not locator.get("table-name"):
                problems.append(f"{where}: object-mapping without an object-locator")
            target = rule.get("target-table-name", "")
            if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", target):
                problems.append(f"{where}: target-table-name {target!r} is no DynamoDB name")
            params = rule.get("mapping-parameters") or {}
            if not params.get("partition-key-name"):
                problems.append(f"{where}: mapping-parameters without partition-key-name")
            for mapping in params.get("attribute-mappings", []):
                if not {
                    "target-attribute-name",
                    "attribute-type",
                    "attribute-sub-type",
                    "value",
                } <= set(mapping):
                    problems.append(f"{where}: attribute mapping {mapping} lacks a field")
                elif (mapping["attribute-type"], mapping["attribute-sub-type"]) not in (
                    ("scalar", "string"),
                    ("scalar", "number"),
                ):
                    problems.append(f"{where}: attribute mapping type {mapping}")
        else:
            problems.append(f"{where}: rule-type {kind!r}")
    if not selections:
        problems.append("expected at least one selection rule")
    if len(json.dumps(document)) > 2_000_000:
        problems.append("larger than DMS's 2 MB table-mapping limit")
    return problems


# -- what DMS accepts: keys -------------------------------------------------------------


def key_problems(
    source: tuple[str, str],
    path: RulePath | None,
    primary_key: Sequence[str],
    excluded: Sequence[str] = (),
) -> list[str]:
    """A selected table's path must give a key DMS can build, unique per source row."""
    name = ".".join(source)
    if path is None:
        return []
    if path.kind in (AMBIGUOUS, NOT_CARRIED):
        return [f"{name}: {path.kind} (rules {path.rule_ids})"]
    if path.kind == WILDCARD:
        return (
            []
            if len(primary_key) == 1 and path.key == tuple(primary_key)
            else [f"{name}: a wildcard table needs a one-column key, has {list(primary_key)}"]
        )
    used: list[str] = []
    if path.key_template is not None:
        used = re.findall(r"\$\{([^}]+)\}", path.key_template)
        rest = list(path.key[1:])
    else:
        rest = list(path.key)
    columns = used + rest
    if sorted(columns) != sorted(primary_key):
        return [
            f"{name}: key {path.key} ({path.key_template}) is not its primary key "
            f"{list(primary_key)}"
        ]
    if set(columns) & set(excluded):
        return [f"{name}: a key column is excluded"]
    return []


# -- generated stacks -------------------------------------------------------------------


def dms_section(
    source: dict[str, Any], wildcards: list[dict[str, Any]], tables: dict[str, Any]
) -> dict[str, Any]:
    return {
        "capacity": {"mode": "serverless", "min_capacity_units": 1, "max_capacity_units": 8},
        "network": {
            "vpc_id": "vpc-0123456789abcdef0",
            "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
            "source_cidrs": ["10.20.0.0/24"],
            "source_security_group_id": SOURCE_SG,
        },
        "source": {"server": "erp.db.internal", "secret_arn": SECRET_ARN, **source},
        "tables": tables,
        "wildcards": wildcards,
        "task": {"start": True},
    }


def sqlserver_erp(count: int = 300) -> tuple[dict[str, Any], Catalog]:
    """A SQL Server ERP: `count` tables of `dbo`, five with keys of 2-4 columns declared (two
    concatenated), the rest caught by `dbo.%`; plus `tmp` tables the wildcard excludes."""
    declared = {
        "OrderLines": (["OrderId", "LineNo"], None),
        "InvoiceLines": (["InvoiceId", "LineNo"], None),
        "PriceList": (["Sku", "ValidFrom"], None),
        "StockLevels": (["Company", "Site", "Sku"], "stock_key"),
        "JournalLines": (["CompanyCode", "FiscalYear", "DocNo", "LineNo"], "journal_key"),
    }
    catalog: Catalog = {("dbo", name): list(pk) for name, (pk, _) in declared.items()}
    for i in range(count - len(declared)):
        catalog[("dbo", f"Erp_T{i:03d}")] = ["Id"]
    catalog[("dbo", "tmpImport")] = ["Id", "Row"]  # excluded: composite, never selected
    tables: dict[str, Any] = {}
    dms_tables: dict[str, Any] = {}
    for name, (pk, built) in declared.items():
        logical = name.lower()
        if built is not None:
            keys: dict[str, Any] = {"partition_key": {"name": built, "type": "S"}}
        else:
            keys = {
                "partition_key": {"name": pk[0], "type": "S"},
                "sort_key": {"name": pk[1], "type": "S"},
            }
        tables[logical] = {"source": {"schema": "dbo", "table": name}, **keys}
        dms_tables[logical] = {"primary_key": pk}
    source = {
        "engine": "sqlserver",
        "database": "erp",
        "sqlserver": {
            "safeguard_policy": "rely_on_sql_server_replication_agent",
            "tlog_access_mode": "PreferBackup",
        },
    }
    config = {
        "tables": tables,
        "dms": dms_section(
            source, [{"schema": "dbo", "table_pattern": "%", "exclude": ["tmp%"]}], dms_tables
        ),
    }
    return config, catalog


def oracle_erp(count: int = 40) -> tuple[dict[str, Any], Catalog]:
    """An Oracle 19c schema FIN of `count` tables: names and columns in upper case, as Oracle
    stores unquoted names; three composite-key tables declared, the rest by `FIN.%`."""
    declared = {
        "GL_JE_LINES": (["JE_HEADER_ID", "JE_LINE_NUM"], None),
        "AP_INVOICE_LINES": (["INVOICE_ID", "LINE_NUMBER"], None),
        "GL_BALANCES": (["LEDGER_ID", "CODE_COMBINATION_ID", "PERIOD_NAME"], "balance_key"),
    }
    catalog: Catalog = {("FIN", name): list(pk) for name, (pk, _) in declared.items()}
    for i in range(count - len(declared)):
        catalog[("FIN", f"FIN_T{i:02d}")] = ["ID"]
    tables: dict[str, Any] = {}
    dms_tables: dict[str, Any] = {}
    for name, (pk, built) in declared.items():
        logical = name.lower()
        if built is not None:
            keys: dict[str, Any] = {"partition_key": {"name": built, "type": "S"}}
        else:
            keys = {
                "partition_key": {"name": pk[0], "type": "N"},
                "sort_key": {"name": pk[1], "type": "N"},
            }
        tables[logical] = {"source": {"schema": "FIN", "table": name}, **keys}
        dms_tables[logical] = {"primary_key": pk}
    source = {
        "engine": "oracle",
        "database": "ERPPDB.EU.EXAMPLE.COM",
        "ssl_mode": "verify-ca",
        "certificate_arn": CERT_ARN,
    }
    config = {
        "tables": tables,
        "dms": dms_section(source, [{"schema": "FIN", "table_pattern": "%"}], dms_tables),
    }
    return config, catalog


def plan_stack(folder: Path, stack: str, config: dict[str, Any]) -> mockrun.Plan:
    """Plan `__main__.py` with a stack file holding `config` (keys without the namespace)."""
    namespaced = {"aws:region": "eu-west-1", **{f"dms-event-bus:{k}": v for k, v in config.items()}}
    (folder / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": namespaced}))
    return mockrun.run_stack(stack, stack_dir=folder)


def planned_mappings(plan: mockrun.Plan) -> dict[str, Any]:
    (task,) = plan.of_type(CONFIG) or plan.of_type(TASK)
    return json.loads(task.inputs["tableMappings"])


def paths_and_problems(
    document: dict[str, Any],
    catalog: Catalog,
    excluded: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[tuple[str, str], RulePath | None], list[str]]:
    paths = simulate(document, catalog)
    problems = dms_structure_problems(document)
    for source, path in paths.items():
        problems += key_problems(source, path, catalog[source])
    return paths, problems


# -- the evaluator itself ---------------------------------------------------------------


def test_the_checks_find_what_dms_would_refuse() -> None:
    # GIVEN a document with duplicate ids and names, a selection without a table and an
    # object mapping without a key
    bad = {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "a",
                "object-locator": {"schema-name": "dbo"},
                "rule-action": "include",
            },
            {
                "rule-type": "object-mapping",
                "rule-id": "1",
                "rule-name": "a",
                "rule-action": "map-record-to-record",
                "target-table-name": "t1x",
                "object-locator": {"schema-name": "dbo", "table-name": "T"},
                "mapping-parameters": {},
            },
        ]
    }
    problems = dms_structure_problems(bad)
    assert any("rule-id" in p for p in problems)
    assert any("rule-name" in p for p in problems)
    assert any("selection without" in p for p in problems)
    assert any("partition-key-name" in p for p in problems)
    # AND a composite key carried by a wildcard, or a key missing a column, is refused
    assert key_problems(("dbo", "L"), RulePath(NOT_CARRIED, None, ()), ["a", "b"])
    assert key_problems(("dbo", "L"), RulePath(OBJECT_MAPPING, "x", ("a",)), ["a", "b"])
    assert key_problems(
        ("dbo", "L"), RulePath(OBJECT_MAPPING, "x", ("k",), "${a}|${b}"), ["a", "b", "c"]
    )
    assert not key_problems(
        ("dbo", "L"), RulePath(OBJECT_MAPPING, "x", ("k",), "${a}|${b}"), ["b", "a"]
    )


# -- SQL Server: 300 tables, dbo.% plus declared composite keys -------------------------


def test_a_sqlserver_stack_of_300_tables_gives_each_one_path_and_a_key(tmp_path: Path) -> None:
    # GIVEN a SQL Server ERP of 300 tables: dbo.% plus five declared composite-key tables
    config, catalog = sqlserver_erp(300)
    # WHEN the whole program is planned under mocks
    plan = plan_stack(tmp_path, "erp", config)
    document = planned_mappings(plan)
    paths, problems = paths_and_problems(document, catalog)
    # THEN DMS accepts the document and every selected table has one path and a key
    assert problems == []
    kinds = [p.kind for p in paths.values() if p is not None]
    assert kinds.count(OBJECT_MAPPING) == 5 and kinds.count(WILDCARD) == 295
    assert paths[("dbo", "tmpImport")] is None
    # AND every table has its own DynamoDB table
    targets = [p.target for p in paths.values() if p is not None]
    assert len(set(targets)) == len(targets) == 300
    # AND the concatenated keys are built from every key column, in key order
    journal = paths[("dbo", "JournalLines")]
    assert journal is not None
    assert (journal.kind, journal.target, journal.key, journal.key_template) == (
        OBJECT_MAPPING,
        "dmsbus-erp-journallines",
        ("journal_key",),
        "${CompanyCode}|${FiscalYear}|${DocNo}|${LineNo}",
    )
    # AND the endpoint carries the SQL Server settings
    (source,) = [e for e in plan.of_type(ENDPOINT) if e.inputs["endpointType"] == "source"]
    assert source.inputs["extraConnectionAttributes"] == (
        "safeguardPolicy=RELY_ON_SQL_SERVER_REPLICATION_AGENT;TlogAccessMode=PreferBackup"
    )


def test_an_undeclared_composite_key_table_is_named_before_deploy(tmp_path: Path) -> None:
    # GIVEN the ERP with one more composite-key table the stack does not declare
    config, catalog = sqlserver_erp(300)
    catalog[("dbo", "AuditTrail")] = ["AuditId", "Seq"]
    settings = load_settings("erp", config)
    assert settings.dms is not None
    # THEN the discovery hook names it, with the way out
    lines = [
        msg for _, msg, _ in wildcard_tables_not_carried(settings.dms, settings.tables, catalog)
    ]
    assert len(lines) == 1 and "dbo.AuditTrail" in lines[0] and "['AuditId', 'Seq']" in lines[0]
    assert "tables" in lines[0] and "exclude" in lines[0]
    # AND the simulated task would indeed not carry it
    paths, problems = paths_and_problems(
        planned_mappings(plan_stack(tmp_path, "erp", config)), catalog
    )
    audit = paths[("dbo", "AuditTrail")]
    assert audit is not None and audit.kind == NOT_CARRIED
    assert problems == [f"dbo.AuditTrail: {NOT_CARRIED} (rules {audit.rule_ids})"]
    # AND a table the user lists as composite for the wildcard fails the plan until declared
    config["dms"]["wildcards"][0]["composite_key_tables"] = ["AuditTrail"]
    with pytest.raises(ConfigError) as caught:
        load_settings("erp", config)
    text = str(caught.value)
    assert "dms-event-bus:dms.wildcards[0].composite_key_tables[0]:" in text
    assert "AuditTrail" in text
    # AND declaring it (its own keys) makes the stack plan, with one path for every table
    config["tables"]["audittrail"] = {
        "source": {"schema": "dbo", "table": "AuditTrail"},
        "partition_key": {"name": "AuditId", "type": "N"},
        "sort_key": {"name": "Seq", "type": "N"},
    }
    settings = load_settings("erp", config)
    assert settings.dms is not None
    assert wildcard_tables_not_carried(settings.dms, settings.tables, catalog) == []
    (tmp_path / "again").mkdir()
    _, problems = paths_and_problems(
        planned_mappings(plan_stack(tmp_path / "again", "erp", config)), catalog
    )
    assert problems == []


def test_a_listed_composite_table_the_wildcard_does_not_select_is_refused() -> None:
    config, _ = sqlserver_erp(10)
    config["dms"]["wildcards"][0]["composite_key_tables"] = ["tmpImport"]
    with pytest.raises(ConfigError) as caught:
        load_settings("erp", config)
    assert "dms.wildcards[0].composite_key_tables[0]:" in str(caught.value)
    assert "does not select" in str(caught.value)


def test_a_wildcard_only_stack_plans(tmp_path: Path) -> None:
    # GIVEN no declared table at all: dbo.% only
    config, catalog = sqlserver_erp(20)
    del config["tables"]
    config["dms"]["tables"] = {}
    single = {k: v for k, v in catalog.items() if len(v) == 1}
    # WHEN planned THEN every single-key table goes by the wildcard
    plan = plan_stack(tmp_path, "solo", config)
    paths, problems = paths_and_problems(planned_mappings(plan), single)
    assert problems == []
    assert {p.kind for p in paths.values() if p} == {WILDCARD}
    # AND without dms (or without wildcards) an empty `tables` is refused, naming both
    for dms in (None, {**config["dms"], "wildcards": []}):
        raw = {} if dms is None else {"dms": dms}
        with pytest.raises(ConfigError) as caught:
            load_settings("solo", raw)
        assert "dms-event-bus:tables:" in str(caught.value)
        assert "dms.wildcards" in str(caught.value)


# -- keys of more than two columns ------------------------------------------------------


def render(template: str, row: Mapping[str, Any]) -> str:
    """What DMS writes for an attribute-mapping template: each `${column}` replaced by the
    column's value as text (the guide's `${FirstName},${LastName}` example)."""
    return re.sub(r"\$\{([^}]+)\}", lambda m: str(row[m.group(1)]), template)


def test_a_four_column_key_gives_the_item_one_string_key() -> None:
    table = DmsTable(
        "dbo",
        "JournalLines",
        "journal_key",
        primary_key=("CompanyCode", "FiscalYear", "DocNo", "LineNo"),
    )
    template = concatenated_key_template(table)
    assert template == "${CompanyCode}|${FiscalYear}|${DocNo}|${LineNo}"
    row = {"CompanyCode": "ACME", "FiscalYear": 2026, "DocNo": "JE-17", "LineNo": 3}
    assert render(template, row) == "ACME|2026|JE-17|3"
    doc = build_table_mappings({"journallines": table}, [], "dmsbus-dev-")
    (mapping,) = [r for r in doc["rules"] if r["rule-type"] == "object-mapping"]
    assert mapping["mapping-parameters"]["attribute-mappings"] == [
        {
            "target-attribute-name": "journal_key",
            "attribute-type": "scalar",
            "attribute-sub-type": "string",
            "value": template,
        }
    ]


# -- Oracle -----------------------------------------------------------------------------


def test_an_oracle_stack_gives_each_table_one_path_and_opens_the_tls_port(
    tmp_path: Path,
) -> None:
    # GIVEN an Oracle schema of 40 tables over TLS, a dotted service name, no port given
    config, catalog = oracle_erp(40)
    plan = plan_stack(tmp_path, "ora", config)
    paths, problems = paths_and_problems(planned_mappings(plan), catalog)
    # THEN every table has one path and a key DMS accepts
    assert problems == []
    kinds = [p.kind for p in paths.values() if p is not None]
    assert kinds.count(OBJECT_MAPPING) == 3 and kinds.count(WILDCARD) == 37
    # AND upper-case source names reach DynamoDB in lower case, keys as Oracle spells them
    later = paths[("FIN", "FIN_T00")]
    assert later is not None
    assert (later.kind, later.target, later.key) == (WILDCARD, "dmsbus-ora-fin_t00", ("ID",))
    lines = paths[("FIN", "GL_JE_LINES")]
    assert lines is not None and lines.key == ("JE_HEADER_ID", "JE_LINE_NUM")
    # AND the endpoint gets the dotted service name
    (source,) = [e for e in plan.of_type(ENDPOINT) if e.inputs["endpointType"] == "source"]
    assert source.inputs["databaseName"] == "ERPPDB.EU.EXAMPLE.COM"
    # AND the security groups open the TLS listener's port (RDS's default 2484), not 1521
    (group,) = plan.of_type(SECURITY_GROUP)
    ports = {(e["fromPort"], e["toPort"]) for e in group.inputs["egress"]}
    assert ports == {(443, 443), (2484, 2484)}
    (ingress,) = plan.of_type(INGRESS)
    assert (ingress.inputs["fromPort"], ingress.inputs["toPort"]) == (2484, 2484)


def test_an_oracle_port_given_is_the_port_opened(tmp_path: Path) -> None:
    config, _ = oracle_erp(5)
    config["dms"]["source"]["port"] = 1522
    plan = plan_stack(tmp_path, "ora", config)
    (group,) = plan.of_type(SECURITY_GROUP)
    assert {(e["fromPort"], e["toPort"]) for e in group.inputs["egress"]} == {
        (443, 443),
        (1522, 1522),
    }


@pytest.mark.parametrize(
    ("change", "path", "fix"),
    [
        (
            lambda c: c["tables"]["gl_je_lines"]["source"].update(table="gl_je_lines"),
            "tables.gl_je_lines.source.table",
            "'GL_JE_LINES'",
        ),
        (
            lambda c: c["tables"]["gl_je_lines"]["source"].update(schema="fin"),
            "tables.gl_je_lines.source.schema",
            "'FIN'",
        ),
        (
            lambda c: c["tables"]["gl_je_lines"]["partition_key"].update(name="je_header_id"),
            "tables.gl_je_lines.partition_key.name",
            "'JE_HEADER_ID'",
        ),
        (
            lambda c: c["dms"]["tables"]["gl_je_lines"].update(
                primary_key=["je_header_id", "JE_LINE_NUM"]
            ),
            "dms.tables.gl_je_lines.primary_key[0]",
            "'JE_HEADER_ID'",
        ),
        (
            lambda c: c["dms"]["wildcards"][0].update(schema="fin"),
            "dms.wildcards[0].schema",
            "'FIN'",
        ),
        (
            lambda c: c["dms"]["wildcards"][0].update(table_pattern="gl_%"),
            "dms.wildcards[0].table_pattern",
            "'GL_%'",
        ),
    ],
    ids=["table", "schema", "key", "primary-key", "wildcard-schema", "wildcard-pattern"],
)
def test_oracle_names_in_lower_case_are_refused_with_the_upper_case_name(
    change: Any, path: str, fix: str
) -> None:
    config, _ = oracle_erp(5)
    change(config)
    with pytest.raises(ConfigError) as caught:
        load_settings("ora", config)
    text = str(caught.value)
    assert f"dms-event-bus:{path}:" in text, text
    assert fix in text and "case-sensitive" in text


def test_a_concatenated_oracle_key_may_be_lower_case() -> None:
    # the built key is no Oracle column: its name is the stack's to choose
    config, _ = oracle_erp(5)
    assert config["tables"]["gl_balances"]["partition_key"]["name"] == "balance_key"
    load_settings("ora", config)


def test_dotted_database_names_only_for_oracle() -> None:
    config, _ = sqlserver_erp(6)
    config["dms"]["source"]["database"] = "erp.main"
    with pytest.raises(ConfigError) as caught:
        load_settings("erp", config)
    assert "dms-event-bus:dms.source.database:" in str(caught.value)


# -- SQL Server endpoint settings -------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "attributes"),
    [
        (
            {"safeguard_policy": "exclusive_automatic_truncation"},
            "safeguardPolicy=EXCLUSIVE_AUTOMATIC_TRUNCATION",
        ),
        (
            {"read_backup_only": True, "use_third_party_backup_device": True},
            "readBackupOnly=Y;useThirdPartyBackupDevice=Y",
        ),
        ({"tlog_access_mode": "TlogOnly"}, "TlogAccessMode=TlogOnly"),
        ({}, None),
    ],
    ids=["safeguard", "backups", "tlog", "none"],
)
def test_sqlserver_endpoint_settings(
    tmp_path: Path, settings: dict[str, Any], attributes: str | None
) -> None:
    config, _ = sqlserver_erp(6)
    config["dms"]["source"]["sqlserver"] = settings
    plan = plan_stack(tmp_path, "erp", config)
    (source,) = [e for e in plan.of_type(ENDPOINT) if e.inputs["endpointType"] == "source"]
    assert source.inputs.get("extraConnectionAttributes") == attributes


@pytest.mark.parametrize(
    ("engine", "sqlserver", "path"),
    [
        ("postgres", {"read_backup_only": True}, "dms.source.sqlserver"),
        (
            "sqlserver",
            {"read_backup_only": True, "tlog_access_mode": "PreferTlog"},
            "dms.source.sqlserver.tlog_access_mode",
        ),
        ("sqlserver", {"safeguard_policy": "sometimes"}, "dms.source.sqlserver.safeguard_policy"),
    ],
    ids=["other-engine", "two-log-modes", "unknown-policy"],
)
def test_sqlserver_settings_refused_where_they_do_not_apply(
    engine: str, sqlserver: dict[str, Any], path: str
) -> None:
    config, _ = sqlserver_erp(6)
    config["dms"]["source"].update(engine=engine, sqlserver=sqlserver)
    with pytest.raises(ConfigError) as caught:
        load_settings("erp", config)
    assert f"dms-event-bus:{path}:" in str(caught.value)
