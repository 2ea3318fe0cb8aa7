"""Settings -> component args: the one place the validated stack config becomes the plain,
typed args the components take.

The components never see the pydantic models: each takes a frozen dataclass of plain values
(and `pulumi.Input`s where a value may be another resource's output), so it is usable on its
own from another program. Everything here runs after `settings` validated the whole stack
config and before the program declares any resource.
"""

from __future__ import annotations
