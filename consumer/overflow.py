"""Overflow pointers (docs/bus.md §4): the full envelope of an oversized change, from S3.

boto3 is imported only when the first pointer is resolved and no client was given, so a
consumer that never sees one does not pay for it at cold start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .envelope import MalformedEnvelope, decode, row_key

__all__ = ["OverflowReader", "split_uri"]


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key/with/slashes` -> (bucket, key): split at the first `/` after s3://."""
    if not uri.startswith("s3://"):
        raise MalformedEnvelope(f"overflow: expected s3://<bucket>/<key>, found {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise MalformedEnvelope(f"overflow: expected s3://<bucket>/<key>, found {uri!r}")
    return bucket, key


class OverflowReader:
    """Replaces a pointer envelope by the full envelope it points to.

    `s3`: a boto3 S3 client (or anything with `get_object`); default: `boto3.client("s3")`,
    created on first use and kept. The reader needs `s3:GetObject` on the overflow bucket's
    `overflow/*` (and `kms:Decrypt` with a customer key). S3 errors (a missing object, access
    denied, throttling) are raised as they are: the record fails and is retried.
    """

    def __init__(self, s3: Any | None = None,
                 client_factory: Callable[[], Any] | None = None) -> None:
        self._s3 = s3
        self._factory = client_factory
        self.fetched = 0

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            if self._factory is not None:
                self._s3 = self._factory()
            else:
                import boto3

                self._s3 = boto3.client("s3")
        return self._s3

    def read(self, uri: str) -> bytes:
        """The object's bytes (the full envelope, byte for byte the record it replaces)."""
        bucket, key = split_uri(uri)
        body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def resolve(self, env: dict[str, Any],
                check: Callable[[bytes], None] | None = None) -> dict[str, Any]:
        """`env` itself when it is not a pointer; else the full envelope from S3, decoded and
        checked to be the same change (`id`, `op`, `table`, `keys`, `seq`) with no `overflow` field.
        `check(body)` is called with the object's bytes first (e.g. a JSON-schema check)."""
        if "overflow" not in env:
            return env
        body = self.read(env["overflow"])
        if check is not None:
            check(body)
        try:
            full = decode(body)
        except MalformedEnvelope as exc:
            raise MalformedEnvelope(f"overflow object {env['overflow']}: {exc}") from None
        if "overflow" in full:
            raise MalformedEnvelope(f"overflow object {env['overflow']} is itself a pointer")
        for name in ("id", "op", "table", "seq"):
            if full[name] != env[name]:
                raise MalformedEnvelope(
                    f"overflow object {env['overflow']}: {name} {full[name]!r} is not the "
                    f"pointer's {env[name]!r}")
        if row_key(full["keys"]) != row_key(env["keys"]):
            raise MalformedEnvelope(f"overflow object {env['overflow']}: keys are not the "
                                    "pointer's")
        self.fetched += 1
        return full
