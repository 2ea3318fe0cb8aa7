"""Moved to `tools.localpipe.lambda_events` (the local pipeline the tests and the demo share). This
re-export remains only for modules that still import it from here; import from
`tools.localpipe.lambda_events` instead."""

from tools.localpipe.lambda_events import TTL_IDENTITY, image, to_lambda_record

__all__ = ["TTL_IDENTITY", "image", "to_lambda_record"]
