"""Moved to `tools.localpipe.esm` (the local pipeline the tests and the demo share). This
re-export remains only for modules that still import it from here; import from
`tools.localpipe.esm` instead."""

from tools.localpipe.esm import LambdaContext

__all__ = ["LambdaContext"]
