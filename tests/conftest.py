"""Test tiers by folder (unit, integration, gpu) and an isolated environment for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT).parts
        if parts and parts[0] in ("unit", "integration", "gpu"):
            item.add_marker(getattr(pytest.mark, parts[0]))
