"""Moved to `tools.localpipe.cdc` (the local pipeline the tests and the demo share). This
re-export remains only for modules that still import it from here; import from
`tools.localpipe.cdc` instead."""

from tools.localpipe.cdc import parse_change

__all__ = ["parse_change"]
