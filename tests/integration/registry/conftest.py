"""Fixtures of the registry integration tests: tiny models, an offline worker environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from registry_test_models import save_tiny_falcon, save_tiny_llama


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in these tests may reach the hub, in this process or in the GGUF converter it starts."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_falcon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_falcon(tmp_path_factory.mktemp("tiny-falcon"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """A minimal environment for a worker: offline, its own HOME and an empty user hub cache."""
    home = tmp_path / "home"
    (home / ".cache" / "huggingface" / "hub").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "WORK_DIR": str(work),
    }
