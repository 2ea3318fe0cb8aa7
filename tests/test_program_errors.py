"""An error while the program is being evaluated reaches the user; it never hangs the engine.

The adopted tables wait for the backfill function's name, a deferred output resolved further
down the program: an error raised in between must still end the run (with that error).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STACK = textwrap.dedent(
    """\
    config:
      aws:region: eu-west-1
      dms-event-bus:tables:
        orders:
          source: {schema: sales, table: orders}
          partition_key: {name: order_id, type: N}
    """
)

PROGRAM = textwrap.dedent(
    """\
    import sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import dms_event_bus.components.kinesis_bus as kb
    from tools.mockrun import run_stack

    def boom(self, *args, **kwargs):
        raise ValueError("boom: a bad bus argument")

    kb.KinesisBus.__init__ = boom
    try:
        run_stack("gen", stack_dir=Path({stack_dir!r}))
    except Exception as exc:
        print("raised:", type(exc).__name__, exc)
        sys.exit(3)
    print("no error")
    """
)


def test_an_error_between_the_deferred_name_and_its_resolution_ends_the_run(
    tmp_path: Path,
) -> None:
    # GIVEN a stack and a bus that fails while it is being declared
    (tmp_path / "Pulumi.gen.yaml").write_text(STACK)
    script = PROGRAM.format(root=str(ROOT), stack_dir=str(tmp_path))
    # WHEN the program runs under mocks
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=240,
            cwd=tmp_path, check=False,
        )
    except subprocess.TimeoutExpired as exc:  # the engine waited for the deferred name
        raise AssertionError("the program hung after an error instead of ending") from exc
    # THEN it ends with the error itself
    assert result.returncode == 3, result.stdout + result.stderr[-2000:]
    assert "boom: a bad bus argument" in result.stdout + result.stderr
