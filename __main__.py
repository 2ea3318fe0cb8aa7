"""dms-event-bus: the Pulumi program is `dms_event_bus.program.main` (importable, so a program
of your own can run it too: docs/reuse.md). Nothing is declared before the whole stack config
has been validated."""

from dms_event_bus.program import main

main()
