"""End-to-end tests: the whole local pipeline (`tools.localpipe`, see docs/e2e.md) around the
project's real handlers. Every test here is marked `e2e` (tests/conftest.py)."""
