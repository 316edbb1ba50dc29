"""A variant's model data made ready to serve: fetched, extracted, requirements installed, each by its deadline;
a local path named as the model id (serving.properties, Environment) checked against the model-data limits.
`NodePreparer` leaves all of that to the node that runs each instance (the Ray launcher).

The download phase ends at the variant's ModelDataDownloadTimeoutInSeconds even when a system call blocks (a
FIFO, a hung mount): the work runs on an abandoned-if-late thread (`modelhost.concurrency`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from modelhost.concurrency import Abandoned, run_blocking
from modelhost.contracts.worker import PHASE_DOWNLOAD, PHASE_LOAD, PHASE_REQUIREMENTS
from modelhost.errors import DeploymentError
from modelhost.requirements import prepare_requirements
from modelhost.resources.model import Container
from modelhost.scheduler.launchers.base import NodeModelData
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.limits import DataLimits, effective_roots
from modelhost.storage.model_ids import deployment_refusal
from modelhost.storage.uris import ModelDataSource, parse_model_data_url, parse_s3_data_source
from modelhost.worker.properties import file_properties

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PreparedModel:
    model_dir: Path  # the model folder on this host (an empty placeholder when `node_data` is set)
    packages_dir: Path | None
    node_data: NodeModelData | None = None  # set when each instance's node fetches and prepares the model itself


class ModelPreparer(Protocol):
    async def prepare(
        self, container: Container, *, download_timeout_s: float, install_timeout_s: float, progress: Progress
    ) -> PreparedModel:
        """Raises DeploymentError naming the phase that failed."""


def model_data_source(container: Container) -> ModelDataSource | None:
    """Where the container's model data is; None when it has none. Raises DeploymentError (download)."""
    try:
        if container.model_data_url:
            return parse_model_data_url(container.model_data_url)
        if container.s3_data_source is not None:
            s3 = container.s3_data_source
            # storage validates the member as CreateModel spells it
            shape = {"S3Uri": s3.uri, "S3DataType": s3.data_type, "CompressionType": s3.compression_type}
            return parse_s3_data_source(shape)
    except ValueError as exc:
        raise DeploymentError(PHASE_DOWNLOAD, str(exc)) from exc
    return None



def check_model_ids(model_dir: Path, environment: Mapping[str, str], limits: DataLimits) -> None:
    """DeploymentError (load) when option.model_id / option.s3url / OPTION_MODEL_ID / HF_MODEL_ID names a local
    path outside the model data that the limits do not allow (storage/model_ids.py)."""
    roots = effective_roots(limits)
    if roots is None:
        return
    reason = deployment_refusal(file_properties(model_dir), environment, model_dir, roots)
    if reason is not None:
        raise DeploymentError(PHASE_LOAD, reason)


class ArtifactPreparer:
    def __init__(self, artifacts: ArtifactCache, packages_dir: Path, empty_dir: Path) -> None:
        self._artifacts = artifacts
        self._packages_dir = packages_dir
        self._empty_dir = empty_dir  # the model folder of a container without model data

    async def prepare(
        self, container: Container, *, download_timeout_s: float, install_timeout_s: float, progress: Progress
    ) -> PreparedModel:
        source = model_data_source(container)
        if source is None:
            self._empty_dir.mkdir(parents=True, exist_ok=True)
            model_dir = self._empty_dir
        else:
            progress("fetching model data")
            model_dir = await self._fetch(source, container.environment, download_timeout_s, progress)
        if source is None:
            check_model_ids(model_dir, container.environment, self._artifacts.limits)
        progress("installing requirements")
        try:
            result = await run_blocking(
                lambda: prepare_requirements(model_dir, self._packages_dir, progress, timeout_s=install_timeout_s),
                timeout_s=install_timeout_s + 30.0,  # pip has its own deadline; this one holds if it hangs
                name="requirements",
            )
        except Abandoned as exc:
            raise DeploymentError(PHASE_REQUIREMENTS, f"did not finish within {install_timeout_s:g} s") from exc
        return PreparedModel(model_dir, result.packages_dir)

    async def _fetch(
        self, source: ModelDataSource, environment: Mapping[str, str], timeout_s: float, progress: Progress
    ) -> Path:
        def fetch() -> Path:  # the model ids are read from the model folder in the same deadline
            model_dir = self._artifacts.prepare(source, timeout_s=timeout_s, progress=progress)
            check_model_ids(model_dir, environment, self._artifacts.limits)
            return model_dir

        try:
            return await run_blocking(
                fetch,
                timeout_s=timeout_s,
                name=f"download of {source.uri}",
            )
        except Abandoned as exc:
            raise DeploymentError(
                PHASE_DOWNLOAD,
                f"the model data at {source.uri} was not ready within {timeout_s:g} s "
                "(ModelDataDownloadTimeoutInSeconds); a read blocked or was too slow.",
            ) from exc


class NodePreparer:
    """Prepares nothing here: the model data's location is checked and handed to the launcher, whose node
    fetches, extracts and installs it in its own cache (model data is never copied from the server's disk)."""

    def __init__(self, empty_dir: Path) -> None:
        self._empty_dir = empty_dir  # stands in for the model folder on the server (its serving.properties is
        # on the node: the tensor parallel degree comes from the model's Environment)

    async def prepare(
        self, container: Container, *, download_timeout_s: float, install_timeout_s: float, progress: Progress
    ) -> PreparedModel:
        source = model_data_source(container)
        self._empty_dir.mkdir(parents=True, exist_ok=True)
        if source is not None:
            progress(f"model data {source.uri} is fetched by the node of each instance")
        return PreparedModel(self._empty_dir, None, NodeModelData(source, download_timeout_s, install_timeout_s))
