"""End-to-end pipeline harness (TEST SUPPORT ONLY, not a product component).

Stand-ins for the AWS services that cannot run here, wired around the project's real
handlers: see `harness.py` and `docs/e2e.md`.
"""
