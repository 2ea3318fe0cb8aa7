"""Moved to `tools.localpipe.fanin_adapter` (the local pipeline the tests and the demo share). This
re-export remains only for modules that still import it from here; import from
`tools.localpipe.fanin_adapter` instead."""

from tools.localpipe.fanin_adapter import invoke, reset

__all__ = ["invoke", "reset"]
