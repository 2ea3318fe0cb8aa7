"""Account-level preflight and bootstrap (see tools/account_preflight.py, docs/account.md)."""
