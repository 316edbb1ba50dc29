"""boto3 clients pointed at a modelhost server, as the CLI and the demo use them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

DEFAULT_URL = "http://127.0.0.1:8080"


def server_url(url: str | None) -> str:
    return (url or os.environ.get("MODELHOST_URL") or DEFAULT_URL).rstrip("/")


def credentials(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """boto3 Session arguments for the key to sign with: MODELHOST_ACCESS_KEY_ID / MODELHOST_SECRET_ACCESS_KEY
    first; else {} so boto3 finds the usual AWS variables and profiles; else dummy credentials (a server
    without keys accepts any)."""
    env = os.environ if env is None else env
    key, secret = env.get("MODELHOST_ACCESS_KEY_ID"), env.get("MODELHOST_SECRET_ACCESS_KEY")
    if key and secret:
        return {"aws_access_key_id": key, "aws_secret_access_key": secret}
    aws_home = Path(env.get("HOME", "~")).expanduser() / ".aws"
    configured = (aws_home / "credentials").exists() or (aws_home / "config").exists()
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE") or configured:
        return {}  # boto3's own chain: the AWS variables, profiles
    return {"aws_access_key_id": "modelhost", "aws_secret_access_key": "modelhost"}


def _session(region: str) -> boto3.session.Session:
    return boto3.session.Session(region_name=os.environ.get("AWS_DEFAULT_REGION", region), **credentials())


def signed_get(url: str, params: Mapping[str, str | int], service: str, region: str = "us-east-1") -> httpx.Response:
    """GET one of modelhost's own routes, SigV4-signed with the key `clients` signs with (the server checks it
    once it has keys; `service` is the signing name, the IAM prefix of the route's action)."""
    session = _session(region)
    full = url + (f"?{urlencode(params)}" if params else "")
    headers: dict[str, str] = {}
    found = session.get_credentials()
    if found is not None:  # none at all: unsigned, which a server without keys accepts
        request = AWSRequest(method="GET", url=full)
        SigV4Auth(found.get_frozen_credentials(), service, session.region_name or region).add_auth(request)
        headers = {name: str(value) for name, value in request.headers.items()}
    return httpx.get(full, headers=headers, timeout=10)


def aws_error(response: httpx.Response) -> str | None:
    """`Code: message` when the answer is an AWS JSON error (authentication, authorization), else None."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    if response.status_code < 400 or not isinstance(body, dict) or "__type" not in body:
        return None
    return f"{body['__type']}: {body.get('message', '')}"


def clients(url: str, region: str = "us-east-1") -> tuple[Any, Any]:
    """(sagemaker, sagemaker-runtime) clients signing with the configured key (see `credentials`)."""
    session = _session(region)
    # LLM calls can take minutes: no read timeout retries that would silently re-send a request.
    config = Config(read_timeout=900, connect_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
    return (
        session.client("sagemaker", endpoint_url=url, config=config),
        session.client("sagemaker-runtime", endpoint_url=url, config=config),
    )


def service_client(url: str, service: str, region: str = "us-east-1") -> Any:
    """A boto3 client of `service` ("cloudwatch", "logs") on the server, signing as `clients` does; short
    timeouts and one retry, since these calls only read."""
    config = Config(read_timeout=60, connect_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
    return _session(region).client(service, endpoint_url=url, config=config)
