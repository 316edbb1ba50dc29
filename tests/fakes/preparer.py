"""FakePreparer: model data 'prepared' into a folder, or failing or hanging as a test says."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelhost.contracts.worker import PHASE_DOWNLOAD
from modelhost.controller.preparation import PreparedModel, Progress
from modelhost.errors import DeploymentError
from modelhost.resources.model import Container


class FakePreparer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.failing: dict[str, str] = {}  # ModelDataUrl -> download failure reason
        self.hanging: set[str] = set()  # ModelDataUrl -> never finishes (the deadline must end it)
        self.prepared: list[str] = []

    async def prepare(
        self, container: Container, *, download_timeout_s: float, install_timeout_s: float, progress: Progress
    ) -> PreparedModel:
        url = container.model_data_url or ""
        progress("fetching model data")
        if url in self.failing:
            raise DeploymentError(PHASE_DOWNLOAD, self.failing[url])
        if url in self.hanging:
            try:
                await asyncio.wait_for(asyncio.Event().wait(), timeout=download_timeout_s)
            except TimeoutError as exc:
                raise DeploymentError(PHASE_DOWNLOAD, f"not ready within {download_timeout_s:g} s") from exc
        folder = self.root / (url.replace("/", "_") or "empty")
        folder.mkdir(parents=True, exist_ok=True)
        self.prepared.append(url)
        return PreparedModel(folder, None)
