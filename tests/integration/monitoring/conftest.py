"""Fixtures: a CloudWatch-only HTTP server per test module and boto3 clients in each protocol."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.monitoring.cloudwatch_server import CloudWatchServer


@pytest.fixture
def cloudwatch(tmp_path: Path) -> Iterator[CloudWatchServer]:
    server = CloudWatchServer(tmp_path / "metrics.db").start()
    yield server
    server.stop()
