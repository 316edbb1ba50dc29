"""Fixtures: a log folder written as the controller and the launcher write it, served by a LogsApi-only server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.monitoring.logs.logs_server import LogsServer, write_endpoint_logs


@pytest.fixture(scope="module")
def written_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Written once per module (the worker is a real process); each test gets its own copy."""
    folder = tmp_path_factory.mktemp("written") / "logs"
    write_endpoint_logs(folder)
    return folder


@pytest.fixture
def logs_dir(written_logs: Path, tmp_path: Path) -> Path:
    shutil.copytree(written_logs, tmp_path / "logs")
    return tmp_path / "logs"


@pytest.fixture
def logs_server(logs_dir: Path) -> Iterator[LogsServer]:
    server = LogsServer(logs_dir, deny=frozenset({"logs:DescribeLogGroups"})).start()
    yield server
    server.stop()
