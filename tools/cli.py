"""What the operator commands share: bad input is one line on stderr and exit 2.

argparse prints the whole usage block before its error; `OneLineParser` prints only the
error and where to look (``--help``). The AWS helpers turn a missing region, missing
credentials and an unreachable endpoint into a sentence naming the fix.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

#: the region in an AWS endpoint URL (https://dynamodb.eu-west-1.amazonaws.com)
_ENDPOINT_REGION = re.compile(r"^https?://[a-z0-9.-]*?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``prog: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def _number(text: str, parse: Callable[[str], Any], expected: str,
            in_range: Callable[[Any], bool]) -> Any:
    """Parse an argparse value; one message naming what was expected, whatever is wrong."""
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, found {text!r}") from None
    if not in_range(value):
        shown = value if isinstance(value, int) else repr(text)
        raise argparse.ArgumentTypeError(f"expected {expected}, found {shown}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return int(_number(text, int, "a whole number >= 1", lambda v: v >= 1))


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return int(_number(text, int, "a whole number >= 0", lambda v: v >= 0))


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return float(_number(text, float, "a finite number >= 0", lambda v: 0 <= v < float("inf")))


def port_number(text: str) -> int:
    """argparse type: a TCP port (1..65535)."""
    return int(_number(text, int, "a port 1..65535", lambda v: 1 <= v <= 65535))


def region_arg(text: str) -> str:
    """argparse type: an AWS region name (checked like a stack file's aws:region)."""
    from dms_event_bus.settings.stackfile import region_problem

    problem = region_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem.removeprefix("aws:region: "))
    return text


def region_of_arn(arn: str | None) -> str | None:
    """The region field of an ARN (arn:aws:service:REGION:account:...), if it has one."""
    parts = (arn or "").split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None


def region_of_endpoint(url: str | None) -> str | None:
    """The region in an AWS endpoint URL, if it names one."""
    found = _ENDPOINT_REGION.match(url or "")
    return found.group(1) if found else None


def default_region() -> str | None:
    """AWS_REGION / AWS_DEFAULT_REGION / the profile's region, as boto3 resolves it."""
    try:
        import boto3

        return boto3.session.Session().region_name
    except Exception:  # a broken config file or profile: no region from there
        return None


def aws_problem(exc: BaseException, service: str, region: str | None) -> str | None:
    """A sentence for the AWS errors an operator fixes outside the command, else None."""
    from botocore.exceptions import (
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    where = f" in {region}" if region else ""
    if isinstance(exc, NoRegionError):
        return f"no AWS region for {service}: pass --region (or set AWS_REGION)"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | ProfileNotFound):
        return (f"no usable AWS credentials for {service}{where}: {one_line(exc)} (set "
                "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for the account)")
    if isinstance(exc, EndpointConnectionError):
        return (f"cannot reach {service}{where}: {one_line(exc)} (check the network, proxy, "
                "region and any endpoint URL setting)")
    return None


def one_line(exc: BaseException) -> str:
    """An exception as one line of text (botocore ClientError: code and message)."""
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        err = response["Error"]
        text = f"{err.get('Code', 'error')}: {err.get('Message', '')}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def fail(prog: str, message: str) -> int:
    """Print ``prog: message`` as one line on stderr; the exit code for bad input (2)."""
    print(f"{prog}: {' '.join(message.split())}", file=sys.stderr)
    return 2
