"""Fixtures: an Application Auto Scaling server over a fresh store with endpoint `ep` (variants AllTraffic and
Canary), and real boto3 clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.autoscaling.scaling_server import ScalingServer


@pytest.fixture
def scaling(tmp_path: Path) -> Iterator[ScalingServer]:
    server = ScalingServer(tmp_path / "home").start()
    server.add_endpoint("ep", "AllTraffic", "Canary")
    yield server
    server.stop()


@pytest.fixture
def aas(scaling: ScalingServer) -> Any:
    return scaling.client()
