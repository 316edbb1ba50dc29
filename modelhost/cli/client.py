"""boto3 clients pointed at a modelhost server, as the CLI and the demo use them."""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_URL = "http://127.0.0.1:8080"


def server_url(url: str | None) -> str:
    return (url or os.environ.get("MODELHOST_URL") or DEFAULT_URL).rstrip("/")


def clients(url: str, region: str = "us-east-1") -> tuple[Any, Any]:
    """(sagemaker, sagemaker-runtime) clients. Credentials are not checked on loopback yet; dummy ones do."""
    session = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "modelhost"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "modelhost"),
        region_name=os.environ.get("AWS_DEFAULT_REGION", region),
    )
    # LLM calls can take minutes: no read timeout retries that would silently re-send a request.
    config = Config(read_timeout=900, connect_timeout=10, retries={"max_attempts": 2, "mode": "standard"})
    return (
        session.client("sagemaker", endpoint_url=url, config=config),
        session.client("sagemaker-runtime", endpoint_url=url, config=config),
    )
