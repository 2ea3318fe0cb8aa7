"""The tests' own stack files: tests/stacks/Pulumi.<stack>.yaml.

They started as copies of the root examples (`dev`: serverless DMS, ingest API, writeback
over a direct connection; `prod`: instance DMS, customer-managed key, archive, Data API
writeback) and are now the tests' inputs: the examples at the repo root belong to the user,
who may delete or replace them (tests/conftest.py fails a test that opens them).
"""

from __future__ import annotations

from pathlib import Path

#: The folder of the tests' stack files: pass it as `stack_dir=` / `--stack-dir`.
STACKS_DIR = Path(__file__).resolve().parent / "stacks"
