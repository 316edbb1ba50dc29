"""Pure rules of the Ray launcher: the cluster's resources as inventories, what one worker asks the cluster for,
and the namespace a home's actors live in. No Ray here (ray_cluster.py feeds it `ray.nodes()`).

Sizing: an instance is sized against the largest live node, as the local launcher sizes it against the host
(`scheduler/placement.place`): its GPUs (whole ones, a CPU fallback when no node has that many), a share of that
node's CPUs and memory, never more than the instance type has. Quotas count the whole cluster. Ray itself then
finds a node with that much free, so instances spread over the nodes as capacity allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhost.scheduler.inventory import Gpu, Inventory
from modelhost.scheduler.launchers.base import LaunchRequest

NODE_LOST_EXIT = -9  # the exit status reported for a worker whose actor or node died (as if SIGKILLed)


@dataclass(frozen=True, slots=True)
class NodeResources:
    """One live node of the cluster as Ray reports it."""

    node_id: str
    address: str  # NodeManagerAddress
    cpus: float
    gpus: float
    memory_bytes: int  # Ray's logical "memory" resource


def live_nodes(reported: Iterable[Mapping[str, Any]]) -> list[NodeResources]:
    """The alive nodes of `ray.nodes()`."""
    nodes = []
    for node in reported:
        if not node.get("Alive"):
            continue
        resources = node.get("Resources") or {}
        nodes.append(
            NodeResources(
                node_id=str(node.get("NodeID", "")),
                address=str(node.get("NodeManagerAddress", "")),
                cpus=float(resources.get("CPU", 0.0)),
                gpus=float(resources.get("GPU", 0.0)),
                memory_bytes=int(resources.get("memory", 0.0)),
            )
        )
    return nodes


def cluster_inventory(nodes: list[NodeResources]) -> Inventory:
    """Every live node's resources added up: what quotas count. GPUs are numbered across the cluster; the
    numbers mean nothing on a node (Ray gives each worker its own)."""
    gpus = sum(int(n.gpus) for n in nodes)
    return Inventory(
        gpus=tuple(Gpu(index=i, memory_bytes=0) for i in range(gpus)),
        cpus=max(1, int(sum(n.cpus for n in nodes))),
        memory_bytes=sum(n.memory_bytes for n in nodes),
    )


def largest_node(nodes: list[NodeResources]) -> Inventory:
    """The live node with the most GPUs (then CPUs) as an inventory: what one instance is sized against.
    Raises ValueError when no node can run anything (no CPUs anywhere)."""
    usable = [n for n in nodes if n.cpus >= 1]
    if not usable:
        raise ValueError("the Ray cluster has no node with a CPU for instances (is every worker node down?)")
    node = max(usable, key=lambda n: (n.gpus, n.cpus, n.memory_bytes))
    return Inventory(
        gpus=tuple(Gpu(index=i, memory_bytes=0) for i in range(int(node.gpus))),
        cpus=int(node.cpus),
        memory_bytes=node.memory_bytes,
    )


def bundle(request: LaunchRequest) -> dict[str, float]:
    """The resources one worker (a model copy) reserves on its node: its placement-group bundle."""
    wanted: dict[str, float] = {"CPU": float(max(1, request.cpu_threads))}
    if request.gpu_ids:
        wanted["GPU"] = float(len(request.gpu_ids))
    if request.memory_bytes > 0:
        wanted["memory"] = float(request.memory_bytes)
    return wanted


def describe(wanted: Mapping[str, float]) -> str:
    """A bundle for people: `2 CPU, 1 GPU, 8.0 GiB memory`."""
    parts = [f"{wanted['CPU']:g} CPU"]
    if "GPU" in wanted:
        parts.append(f"{wanted['GPU']:g} GPU")
    if "memory" in wanted:
        parts.append(f"{wanted['memory'] / 1024**3:.1f} GiB memory")
    return ", ".join(parts)


def namespace_for(home: Path) -> str:
    """The Ray namespace of one modelhost home: its actors are found (and stale ones stopped) there only."""
    return "modelhost-" + hashlib.sha256(str(home).encode()).hexdigest()[:12]
