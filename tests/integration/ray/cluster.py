"""A real Ray cluster on loopback for tests: a head with no CPUs for instances and worker nodes with logical
CPUs, GPUs and memory, every process pinned to 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray use
the loopback address, and each node is given it), plus a modelhost server that runs its workers there."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.server import ServerProcess

GIB = 1024**3
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray then advertises 127.0.0.1, never the host's IP
NODE_S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
# The GCS declares a node dead after 3 missed health checks 0.5 s apart (default: 5 of 3 s), so a killed node's
# resources are not offered to new placement groups for long
FAST_NODE_DEATH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3, "health_check_timeout_ms": 1000}


def ray_cluster_module() -> Any:
    """ray.cluster_utils, or the test is skipped saying why."""
    try:
        import ray.cluster_utils
    except ImportError as exc:  # pragma: no cover - CI installs the ray extra
        pytest.skip(f"Ray is not installed (pip install 'modelhost[ray]'): {exc}")
    return ray.cluster_utils


@dataclass
class LoopbackCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    temp_dir: str
    workers: list[Any] = field(default_factory=list)  # ray._private.node.Node of each worker node

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add_worker(self, *, cpus: int = 2, gpus: int = 1, memory_gib: int = 8) -> Any:
        node = self.cluster.add_node(
            num_cpus=cpus, num_gpus=gpus, memory=memory_gib * GIB, node_ip_address="127.0.0.1",
            temp_dir=self.temp_dir, include_dashboard=False,
        )  # fmt: skip
        self.workers.append(node)
        return node

    def remove(self, node_id: str) -> None:
        """Kill one worker node's processes at once (its raylet and every worker on it), as if it lost power."""
        node = next(n for n in self.workers if n.node_id == node_id)
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)

    def node_ids(self) -> set[str]:
        return {n.node_id for n in self.workers}


def start_cluster(worker_nodes: int, node_env: dict[str, str] | None = None) -> LoopbackCluster:
    """The cluster; `node_env` goes into the environment of its nodes (and so of their actors) only."""
    cluster_utils = ray_cluster_module()
    os.environ.update(LOOPBACK_ENV)  # inherited by every node process started from here
    saved = {name: os.environ.get(name) for name in node_env or {}}
    os.environ.update(node_env or {})
    try:
        return _start(cluster_utils, worker_nodes)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start(cluster_utils: Any, worker_nodes: int) -> LoopbackCluster:
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "num_gpus": 0, "node_ip_address": "127.0.0.1", "temp_dir": temp_dir,
                        "include_dashboard": False, "_system_config": FAST_NODE_DEATH},
    )  # fmt: skip
    loopback = LoopbackCluster(cluster, temp_dir)
    try:
        for _ in range(worker_nodes):
            loopback.add_worker()
        cluster.wait_for_nodes()
    except BaseException:
        stop_cluster(loopback)
        raise
    return loopback


def stop_cluster(loopback: LoopbackCluster) -> None:
    loopback.cluster.shutdown()
    shutil.rmtree(loopback.temp_dir, ignore_errors=True)


def ray_server(home: Path, cluster: LoopbackCluster, node_dir: Path, **env: str) -> ServerProcess:
    """A modelhost server whose workers run on `cluster` (not started)."""
    return ServerProcess(
        home,
        env={
            **LOOPBACK_ENV,
            "MODELHOST_RAY_NODE_DIR": str(node_dir),
            "MODELHOST_RAY_NODE_ADDRESS": "127.0.0.1",
            "MODELHOST_RAY_PLACEMENT_TIMEOUT_S": "30",
            "MODELHOST_HEALTH_INTERVAL_S": "1",
            "MODELHOST_WORKER_SANDBOX": "off",
            **env,
        },
        args=("--launcher", "ray", "--ray-address", cluster.address),
    )
