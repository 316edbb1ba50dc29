"""A loopback server refuses DNS-rebinding Host headers and cross-origin browser calls, and serves HTTPS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.integration.server import ServerProcess

TARGET = {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"}


def test_a_foreign_host_header_and_a_cross_origin_call_are_refused(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "home").start()
    try:
        ok = httpx.post(f"{server.url}/", headers=TARGET, content=b"{}")
        assert ok.status_code == 200 and "Models" in ok.json()
        rebound = httpx.post(f"{server.url}/", headers={**TARGET, "Host": "attacker.example:80"}, content=b"{}")
        assert rebound.status_code == 403 and "does not name this server" in rebound.json()["message"]
        page = httpx.post(f"{server.url}/", headers={**TARGET, "Origin": "https://attacker.example"}, content=b"{}")
        assert page.status_code == 403 and "cross-origin" in page.json()["message"]
        same = httpx.post(f"{server.url}/", headers={**TARGET, "Origin": server.url}, content=b"{}")
        assert same.status_code == 200
    finally:
        server.stop()


def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, timeout=60,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {made.stderr.decode()[-200:]}")
    server = ServerProcess(
        tmp_path / "home", args=("--tls-cert", str(cert), "--tls-key", str(key)), scheme="https"
    ).start()
    try:
        sm = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1").client(
            "sagemaker", endpoint_url=server.url, verify=str(cert), config=Config(retries={"max_attempts": 1})
        )
        assert sm.list_models()["Models"] == []
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url.replace("https", "http") + "/_modelhost/health", timeout=5)
    finally:
        server.stop()
