"""1,100 adopted tables in one program: the SDK's provider serialization must not overflow.

`pulumi.dynamic.Resource` stacks one pickler wrapper per dynamic resource in the process (see
providers/serialization_room.py); without room on the call stack, about 950 `AdoptedTable`s end
in RecursionError. Runs in a fresh interpreter: the wrappers of other tests in this worker
would otherwise count.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from dms_event_bus.providers import serialization_room

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = textwrap.dedent(
    """
    import sys
    import pulumi

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return [args.name + "-id", args.inputs]

        def call(self, args):
            return {}

    pulumi.runtime.set_mocks(Mocks(), preview=True)
    from dms_event_bus.components.streamed_table import AdoptSpec, StreamedTable, StreamedTableArgs

    for i in range(int(sys.argv[1])):
        StreamedTable(f"adopted-t{i}", StreamedTableArgs(
            table_name=f"dmsbus-dev-t{i}",
            adopt=AdoptSpec(logical_name=f"t{i}", backfill_function_name="dmsbus-dev-backfill"),
        ))
    print("declared", sys.argv[1])
    """
)


def test_a_program_declares_1100_adopted_tables(tmp_path: Path) -> None:
    script = tmp_path / "many.py"
    script.write_text(PROGRAM)
    done = subprocess.run(
        [sys.executable, str(script), "1100"], check=False, cwd=ROOT,
        capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("declared 1100")


def test_make_room_only_raises_the_limit() -> None:
    before = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(50_000)
        assert serialization_room.make_room() == 50_000
        sys.setrecursionlimit(400)
        after = serialization_room.make_room()
        assert after > serialization_room.HEADROOM
    finally:
        sys.setrecursionlimit(max(before, sys.getrecursionlimit()))
