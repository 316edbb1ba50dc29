"""Which launcher runs the workers (`--launcher local | ray`) and what the controller needs to go with it: the
inventory quotas count, the one an instance is sized against, the GPU ledger, how model data is prepared, and
the environment workers start from.

- local (the default): processes on this host; the host's inventory; the server fetches model data into its
  own content cache; workers start from the server's environment (the allow-list) and the model registry.
- ray: workers on the nodes of a Ray cluster (scheduler/launchers/ray_cluster.py, imported only here and only
  then); quotas count the cluster, an instance is sized against its largest node, the cluster assigns GPUs;
  each node fetches the model data into its own cache and starts workers from its own environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from modelhost.controller.instances import WorkerEnvironment
from modelhost.controller.preparation import ArtifactPreparer, ModelPreparer, NodePreparer
from modelhost.registry import ModelRegistry
from modelhost.scheduler.inventory import GpuLedger, Inventory, discover_inventory
from modelhost.scheduler.launchers.base import Launcher
from modelhost.scheduler.launchers.confinement import Confinement
from modelhost.scheduler.launchers.local_process import LocalProcessLauncher
from modelhost.settings import ServerSettings
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.limits import data_limits, effective_roots

LAUNCHERS = ("local", "ray")


class ServerLauncher(Launcher, Protocol):
    async def aclose(self) -> None:
        """Release what the launcher holds (its HTTP client; the cluster connection)."""


@dataclass(frozen=True, slots=True)
class Launching:
    launcher: ServerLauncher
    inventory: Inventory  # what quotas count: the host, or the whole cluster
    instance_inventory: Inventory  # what one instance is sized against: the host, or the cluster's largest node
    ledger: GpuLedger | None  # which GPUs of this host each instance holds; None where the cluster assigns them
    preparer: ModelPreparer
    worker_environment: WorkerEnvironment
    base_environment: dict[str, str] | None  # what workers start from; None: the server's own (the allow-list)


def build_launching(settings: ServerSettings, confinement: Confinement, registry: ModelRegistry) -> Launching:
    """The launcher `settings.launcher` names, ready to start workers (the Ray one has joined its cluster).
    Raises ValueError for an unknown launcher, RuntimeError without Ray, ConnectionError when the cluster cannot
    be joined."""
    if settings.launcher == "ray":
        return _ray(settings)
    if settings.launcher != "local":
        raise ValueError(f"MODELHOST_LAUNCHER / --launcher must be one of {', '.join(LAUNCHERS)}, not "
                         f"{settings.launcher!r}")  # fmt: skip
    inventory = discover_inventory(settings.inventory_json)
    preparer = ArtifactPreparer(
        ArtifactCache(
            settings.artifacts_dir,
            settings.max_extract_bytes,
            limits=data_limits(settings.local_data_roots, settings.allow_private_model_data, settings.home),
        ),
        settings.packages_dir,
        settings.run_dir / "empty-model",
    )
    launcher = LocalProcessLauncher(settings.run_dir, settings.logs_dir, confinement=confinement)
    return Launching(launcher, inventory, inventory, GpuLedger(), preparer, registry.worker_environment, None)


def _ray(settings: ServerSettings) -> Launching:
    try:
        from modelhost.scheduler.launchers.ray_cluster import RayClusterLauncher, RaySettings
    except ImportError as exc:
        raise RuntimeError(f"--launcher ray needs Ray: pip install 'modelhost[ray]' ({exc})") from exc
    from modelhost.scheduler.launchers.ray_placement import namespace_for

    limits = data_limits(settings.local_data_roots, settings.allow_private_model_data, settings.home)
    roots = effective_roots(limits)
    launcher = RayClusterLauncher(
        RaySettings(
            address=settings.ray_address,
            namespace=namespace_for(settings.home),
            node_address=settings.ray_node_address,
            node_dir=settings.ray_node_dir,
            placement_timeout_s=settings.ray_placement_timeout_s,
            max_extract_bytes=settings.max_extract_bytes,
            local_roots=None if roots is None else tuple(str(r) for r in roots),
            allow_private_http=limits.allow_private_http,
        ),
        settings.logs_dir,
    )
    launcher.connect()
    cluster, node = launcher.inventories()
    preparer = NodePreparer(settings.run_dir / "empty-model")
    # the registry's overlay is on this host's disk: nodes load model ids from their own caches or the hub
    return Launching(launcher, cluster, node, None, preparer, lambda base, model_ids: dict(base), {})
