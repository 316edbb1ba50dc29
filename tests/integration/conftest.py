"""Fixtures that start real modelhost servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.server import ServerProcess


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
