"""The Launcher protocol: the only seam through which the controller starts, watches and stops workers.

A launcher owns everything about where a worker runs: its port, its log and run paths, its device
environment, the failure record it leaves, and finding workers a previous server left behind.
`LocalProcessLauncher` runs local processes; `RayClusterLauncher` (ray_cluster.py) runs them on the nodes of a
Ray cluster; tests use `tests.fakes.launcher.FakeLauncher`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from modelhost.contracts.worker import FailureRecord
from modelhost.storage.uris import ModelDataSource


@dataclass(frozen=True, slots=True)
class NodeModelData:
    """Model data that the node running the worker fetches and prepares itself (a Ray node): the server never
    downloads it, and its own copy is never sent."""

    source: ModelDataSource | None  # None: the container has no model data (an empty model folder)
    download_timeout_s: float  # ModelDataDownloadTimeoutInSeconds: listing, downloading and extracting
    install_timeout_s: float  # the model's requirements.txt install


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """One worker (a model copy of a SageMaker instance) as the controller decided it."""

    instance_id: str  # unique per worker, e.g. "ep-alltraffic-0-1a2b3c-c0"
    group_id: str  # the SageMaker instance it is a copy of
    endpoint_name: str
    variant_name: str
    model_name: str
    instance_type: str
    image: str
    model_dir: Path  # the prepared model data, shared read-only by instances
    packages_dir: Path | None  # requirements.txt installs, prepended to the worker's sys.path
    gpu_ids: tuple[int, ...] = ()  # whole GPUs; empty means CPU
    cpu_threads: int = 1
    memory_bytes: int = 0
    tensor_parallel_degree: int | None = None
    environment: Mapping[str, str] = field(default_factory=dict)  # the worker's environment, model env included
    log_name: str = "worker.log"  # the instance log's file name in the endpoint's log folder
    notes: tuple[str, ...] = ()  # lines written at the top of the instance log (e.g. "running on CPU")
    node_data: NodeModelData | None = None  # set when the node fetches the model data (model_dir is then unused)
    copies: int = 1  # the model copies (workers) of its SageMaker instance, placed together
    copy_index: int = 0  # which of them this one is


@dataclass(frozen=True, slots=True)
class Worker:
    """A started worker, as the launcher that started it identifies it."""

    instance_id: str
    group_id: str
    endpoint_name: str
    variant_name: str
    url: str  # where it serves /ping and /invocations
    log_path: Path
    router_token: str = ""  # sent in ROUTER_TOKEN_HEADER on every request the router makes to it
    memory_bytes: int = 0  # its memory budget (placement), for utilisation metrics
    gpu_ids: tuple[int, ...] = ()  # the GPUs it was placed on


class Launcher(Protocol):
    def log_dir(self, endpoint_name: str) -> Path:
        """The endpoint's log folder (its endpoint.log and every instance's log)."""

    def start(self, request: LaunchRequest) -> Worker:
        """Start the worker; it is not healthy yet. Raises OSError when it cannot be started."""

    def poll(self, worker: Worker) -> int | None:
        """The worker's exit status, None while it runs."""

    async def ping(self, worker: Worker, timeout_s: float) -> bool:
        """Whether the worker answers its health check now."""

    def failure(self, worker: Worker) -> FailureRecord | None:
        """Why the worker could not serve, when it left a record."""

    def stop(self, worker: Worker, grace_s: float) -> None:
        """SIGTERM-then-SIGKILL semantics; blocks until the worker is gone (call it from a thread)."""

    def kill(self, worker: Worker) -> None:
        """Stop the worker at once (it is hung)."""

    def recover_stale(self) -> list[str]:
        """Stop workers that a previous server on this home started and left running; their instance ids."""

    def pid(self, worker: Worker) -> int | None:
        """The worker's process on this host, for its CPU and memory metrics; None when it has none here."""
