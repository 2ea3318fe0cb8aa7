"""moto as the AWS account of the local pipeline: one definition for the tests and the demo.

`moto_world()` sets fake credentials, one region and the endpoint mode moto needs for
DynamoDB Streams (current botocore routes Streams calls to account-based endpoints that moto
does not serve: AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled), starts moto's `mock_aws`, and puts the
environment back on exit. The tests' `moto_world` fixture (tests/conftest.py) is this.

moto's state lives in the process: every pytest-xdist worker has its own, and names made by
the harness carry a random token, so tests in parallel workers do not see each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from moto.core.config import DefaultConfig

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account

#: What no local run may do without: fake credentials, a fixed region, moto-friendly endpoints.
OFFLINE_ENV: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - moto's fake credentials
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}

#: moto's settings for every local run: Lambda functions are never run in Docker (no Docker
#: engine here; the harness calls the handlers in-process).
MOTO_CONFIG: Mapping[str, Any] = {"lambda": {"use_docker": False}}


@dataclass(frozen=True)
class MotoWorld:
    """The mocked account: its region and account id, and clients in it."""

    region: str = REGION
    account: str = ACCOUNT

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=self.region)


@contextmanager
def offline_env(values: Mapping[str, str] = OFFLINE_ENV) -> Iterator[None]:
    """Set `values` in os.environ; put the previous values back on exit."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def moto_world(config: Mapping[str, Any] | None = None) -> Iterator[MotoWorld]:
    """moto's AWS, offline (see the module doc). `config`: moto settings merged over
    MOTO_CONFIG (e.g. `{"iam": {"load_aws_managed_policies": True}}`)."""
    from moto import mock_aws

    settings: dict[str, Any] = {**MOTO_CONFIG, **(config or {})}
    with offline_env(), mock_aws(config=cast("DefaultConfig", settings)):
        yield MotoWorld()
