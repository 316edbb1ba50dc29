"""The server's start-up access check and the CLI's choice of signing key."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.cli.client import credentials
from modelhost.cli.serving import UnsafeBind, access_line, is_loopback
from modelhost.security.keys import KeyStore
from modelhost.settings import ServerSettings


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("[::1]", True), ("0.0.0.0", False), ("10.0.0.5", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_open_on_loopback_refused_on_the_network_without_keys(tmp_path: Path) -> None:
    local = ServerSettings(home=tmp_path)
    assert "open to local callers" in access_line(local, allow_unauthenticated=False)
    network = ServerSettings(home=tmp_path, host="0.0.0.0")
    with pytest.raises(UnsafeBind, match="--allow-unauthenticated"):
        access_line(network, allow_unauthenticated=False)
    assert "WARNING" in access_line(network, allow_unauthenticated=True)
    KeyStore(tmp_path).create("admin")
    assert "must be signed" in access_line(network, allow_unauthenticated=False)


def test_cli_signing_key(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "MODELHOST_ACCESS_KEY_ID": "AKIA1", "MODELHOST_SECRET_ACCESS_KEY": "s"}
    assert credentials(env) == {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s"}
    assert credentials({"HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "x"}) == {}
    assert credentials({"HOME": str(tmp_path)})["aws_access_key_id"] == "modelhost"
