"""Model data preparation ends by its deadline even when the read never returns."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from modelhost.controller.preparation import ArtifactPreparer
from modelhost.errors import DeploymentError
from modelhost.resources.model import Container


class HungCache:
    """An artifact cache whose read blocks like an open() on a hung network mount."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def prepare(self, source: Any, timeout_s: float, progress: Any = None) -> Path:
        self.release.wait(30)
        raise OSError("released")


def test_a_read_that_never_returns_fails_the_download_phase_at_its_deadline(tmp_path: Path) -> None:
    cache = HungCache()
    preparer = ArtifactPreparer(cache, tmp_path / "packages", tmp_path / "empty")  # type: ignore[arg-type]
    container = Container(image="img", model_data_url=str(tmp_path / "model.tar.gz"))
    started = time.monotonic()
    try:
        with pytest.raises(DeploymentError) as failure:
            asyncio.run(
                preparer.prepare(container, download_timeout_s=0.3, install_timeout_s=5, progress=lambda _: None)
            )
    finally:
        cache.release.set()
    assert time.monotonic() - started < 5
    assert str(failure.value).startswith("download failed: the model data at")
    assert "was not ready within 0.3 s (ModelDataDownloadTimeoutInSeconds)" in str(failure.value)
