"""The installable distribution: a wheel built from a copy of the repository installs one import
name, `dms_event_bus`, and a Pulumi program outside the repository, in a fresh virtualenv,
imports the components from it and plans under mocks.

The fresh virtualenv gets the wheel with `--no-deps` and sees the third-party packages
(pulumi, pulumi-aws, pydantic, boto3, orjson) through a path entry to this environment's
site-packages, so the test does not download 200 MB of wheels; the project's own code can come
only from the wheel (this environment's editable install is not activated there, and the
program runs in a temporary folder, not the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT

#: What a copy of the repository leaves out (generated or not part of a release).
IGNORED = shutil.ignore_patterns(".venv", ".build", "build", "dist", "*.egg-info", ".git",
                                 "__pycache__", ".pgdata", ".test-servers", "node_modules",
                                 ".mypy_cache", ".ruff_cache", ".pytest_cache",
                                 "Pulumi.*.yaml", "examples")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("source") / "dms-event-bus"
    shutil.copytree(ROOT, copy, symlinks=True, ignore=IGNORED)
    out = copy.parent / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--disable-pip-version-check", "-w", str(out), str(copy)],
        check=True, capture_output=True, text=True)
    (built,) = out.glob("dms_event_bus-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--disable-pip-version-check", str(wheel)], check=True)
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    # third-party packages from this environment (a path entry: its .pth files stay inactive)
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_the_wheel_installs_one_import_name_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"dms_event_bus"}
    for expected in ("dms_event_bus/__init__.py", "dms_event_bus/py.typed",
                     "dms_event_bus/components/streamed_table.py",
                     "dms_event_bus/components/multi_language.py",
                     "dms_event_bus/components/ingest_templates/post_request.vtl",
                     "dms_event_bus/handlers/fanin.py", "dms_event_bus/settings/core.py",
                     "dms_event_bus/providers/adopted_table.py",
                     "dms_event_bus/consumer/kinesis.py"):
        assert expected in names, expected
    # tools/, tests/ and bench/ are the repository's, not the library's
    assert not [n for n in names if n.split("/")[1:2] in (["tools"], ["tests"], ["bench"])]


def test_the_wheel_requires_what_pyproject_declares(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        text = zf.read(meta).decode()
    required = {str(Requirement(line.split(":", 1)[1].strip()))
                for line in text.splitlines() if line.startswith("Requires-Dist:")
                and "extra ==" not in line}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert required == {str(Requirement(r)) for r in declared}


#: The mocks of both programs below: every resource recorded, ARNs for all, the account's
#: answers to the invokes the components make.
MOCKS = textwrap.dedent('''
    import pulumi

    ACCOUNT = "123456789012"


    class Mocks(pulumi.runtime.Mocks):
        def __init__(self):
            self.declared = []

        def new_resource(self, args):
            self.declared.append(args.typ)
            arn = f"arn:aws:service:eu-west-1:{ACCOUNT}:{args.name}"
            return args.name + "-id", {**args.inputs, "arn": arn, "streamArn": arn + "/stream/1"}

        def call(self, args):
            return {"accountId": ACCOUNT, "region": "eu-west-1", "name": "eu-west-1",
                    "partition": "aws", "id": ACCOUNT, "dnsSuffix": "amazonaws.com",
                    "tableNames": []}
''')


PROGRAM = textwrap.dedent('''
    import importlib.util
    import json

    import pulumi

    import dms_event_bus
    from dms_event_bus.components.kinesis_bus import BusTable, KinesisBus, KinesisBusArgs
    from dms_event_bus.components.streamed_table import KeySpec, StreamedTable, StreamedTableArgs

    # MOCKS


    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="external", stack="staging", preview=False)


    @pulumi.runtime.test
    def plan():
        table = StreamedTable("orders", StreamedTableArgs(
            table_name="dmsbus-staging-orders", partition_key=KeySpec("order_id", "N")))
        bus = KinesisBus("bus", KinesisBusArgs(
            name_prefix="dmsbus-staging-",
            tables=[BusTable("orders", "dmsbus-staging-orders", table.stream_arn)]))
        return pulumi.Output.all(table.table_arn, bus.stream_arn).apply(lambda _: None)


    plan()
    # the stack config is validated installed as in the checkout (AWS limits included)
    from dms_event_bus.settings import load_settings

    staging = load_settings("staging", {"tables": {"orders": {"partition_key": {"name": "id"}}}})
    print(json.dumps({
        "tables": sorted(staging.tables),
        "file": dms_event_bus.__file__,
        "declared": sorted(set(mocks.declared)),
        "generic_names": [n for n in ("components", "settings", "handlers", "providers")
                          if importlib.util.find_spec(n) is not None],
    }))
''').replace("# MOCKS\n", MOCKS)


def test_a_program_outside_the_repo_plans_with_the_installed_components(
    fresh_venv: Path, tmp_path: Path
) -> None:
    # GIVEN a Pulumi program of its own, in a folder of its own, in a fresh virtualenv where
    # only the wheel provides dms_event_bus
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "DMSBUS_BUILD_DIR"}}
    # WHEN it runs under mocks
    done = subprocess.run([str(fresh_venv), str(program)], cwd=tmp_path, env=env, check=False,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # THEN the components came from the installed wheel, not from the checkout
    assert Path(result["file"]).is_relative_to(fresh_venv.parent.parent)
    assert not Path(result["file"]).is_relative_to(ROOT)
    # and no generic top-level name exists
    assert result["generic_names"] == []
    assert result["tables"] == ["orders"]
    # and it declared the table, the bus and the fan-in Lambda (its package built from the
    # installed handlers, its dependencies cached in the program's own folder)
    assert {"dms-event-bus:index:StreamedTable", "aws:dynamodb/table:Table",
            "dms-event-bus:index:KinesisBus", "aws:kinesis/stream:Stream",
            "aws:lambda/function:Function"} <= set(result["declared"])
    assert list((tmp_path / ".build" / "dms-event-bus").glob("deps-arm64-*/orjson"))


def test_the_multi_language_provider_serves_the_schema_from_the_installed_wheel(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """The provider the plugin's entry point serves, imported from the installed wheel, infers
    the checked-in schema."""
    script = tmp_path / "schema.py"
    script.write_text(textwrap.dedent('''
        import json
        from dms_event_bus.components.multi_language import COMPONENTS, PACKAGE, PackageProvider
        print(json.dumps(json.loads(PackageProvider(COMPONENTS, PACKAGE, None, "0.1.0").schema)))
    '''))
    done = subprocess.run([str(fresh_venv), str(script)], cwd=tmp_path, check=False,
                          capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    from_wheel = json.loads(done.stdout)
    checked_in = json.loads((ROOT / "plugin" / "schema.json").read_text())
    assert from_wheel["resources"] == checked_in["resources"]
    assert from_wheel["types"] == checked_in["types"]


def test_the_plugins_requirements_install_this_repository_from_the_plugin_folder(
    tmp_path: Path,
) -> None:
    """plugin/requirements.txt names the repository by a relative path (`..[drivers]`): run
    from the plugin's folder, as a plugin's requirements are installed, pip resolves it to this
    distribution with the drivers extra."""
    copy = tmp_path / "dms-event-bus"
    shutil.copytree(ROOT, copy, symlinks=True, ignore=IGNORED)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--no-deps",
         "--disable-pip-version-check", "--ignore-installed", "--report", str(report),
         "-r", "requirements.txt"],
        cwd=copy / "plugin", check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (item,) = json.loads(report.read_text())["install"]
    assert item["metadata"]["name"] == "dms-event-bus"
    assert item["requested_extras"] == ["drivers"]
    assert Path(item["download_info"]["url"].removeprefix("file://")) == copy


OWN_PROJECT = textwrap.dedent('''
    import json

    import pulumi

    # MOCKS


    mocks = Mocks()
    # the team's own project, with its own config key beside the dms-event-bus: ones
    pulumi.runtime.set_mocks(mocks, project="erp-events", stack="staging", preview=False)
    pulumi.runtime.set_all_config({
        "aws:region": "eu-west-1",
        "erp-events:owner": "platform",
        "dms-event-bus:tables": json.dumps({"orders": {"partition_key": {"name": "id"}}}),
    })

    from dms_event_bus.program import main  # the whole program, from the installed wheel


    @pulumi.runtime.test
    def plan():
        main()

    plan()
    print(json.dumps(sorted(set(mocks.declared))))
''').replace("# MOCKS\n", MOCKS)


def test_a_teams_own_project_runs_the_whole_program_from_the_wheel(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """Adopting without a copy of the repository: the team's project holds its stack files
    and `main()`; its own config namespace is read beside `dms-event-bus:`."""
    script = tmp_path / "__main__.py"
    script.write_text(OWN_PROJECT)
    done = subprocess.run([str(fresh_venv), str(script)], cwd=tmp_path, check=False,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    declared = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"aws:dynamodb/table:Table", "aws:kinesis/stream:Stream",
            "aws:lambda/function:Function", "dms-event-bus:index:Dashboard"} <= declared
