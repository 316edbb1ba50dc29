"""Fixtures that start real modelhost servers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess, free_port


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the session; tests use unique resource names."""
    proc = ServerProcess(tmp_path_factory.mktemp("home")).start()
    yield proc
    proc.stop()


@pytest.fixture
def sm(server: ServerProcess) -> Any:
    return server.clients()[0]


@pytest.fixture
def runtime(server: ServerProcess) -> Any:
    return server.clients()[1]


@pytest.fixture
def echo_model(tmp_path: Path) -> Path:
    from tests.integration.server import write_echo_model

    return write_echo_model(tmp_path / "echo")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3-compatible server in its own process on a free loopback port."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def smollm2_registered(server: ServerProcess) -> str:
    """SmolLM2-135M-Instruct registered (once per run, ~20 s) in the session server's home; returns its id."""
    import os

    from modelhost.testing import SMOLLM2_ID, bundled_smollm2_gguf

    subprocess.run(
        [sys.executable, "-m", "modelhost", "models", "add", SMOLLM2_ID, str(bundled_smollm2_gguf())],
        check=True,
        env={**os.environ, "MODELHOST_HOME": str(server.home)},
        capture_output=True,
        timeout=300,
    )
    return SMOLLM2_ID
