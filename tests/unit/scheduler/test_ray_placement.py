"""The Ray launcher's pure rules: the cluster as inventories, an instance's bundle, a home's namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.controller.instances import _launch_request
from modelhost.controller.preparation import PreparedModel
from modelhost.resources.endpoint import VariantSpec
from modelhost.resources.endpoint_config import ProductionVariant
from modelhost.resources.model import Container, Model
from modelhost.scheduler.inventory import GIB
from modelhost.scheduler.launchers.base import LaunchRequest
from modelhost.scheduler.launchers.ray_placement import (
    bundle,
    cluster_inventory,
    describe,
    largest_node,
    live_nodes,
    namespace_for,
)
from modelhost.scheduler.placement import model_copies, place

REPORTED = [  # ray.nodes() of a head without CPUs, two GPU nodes and a dead one
    {"NodeID": "head", "NodeManagerAddress": "10.0.0.1", "Alive": True,
     "Resources": {"memory": 4 * GIB, "node:10.0.0.1": 1.0}},
    {"NodeID": "a", "NodeManagerAddress": "10.0.0.2", "Alive": True,
     "Resources": {"CPU": 48.0, "GPU": 4.0, "memory": 192 * GIB}},
    {"NodeID": "b", "NodeManagerAddress": "10.0.0.3", "Alive": True,
     "Resources": {"CPU": 96.0, "GPU": 8.0, "memory": 768 * GIB}},
    {"NodeID": "c", "NodeManagerAddress": "10.0.0.4", "Alive": False,
     "Resources": {"CPU": 96.0, "GPU": 8.0, "memory": 768 * GIB}},
]  # fmt: skip


def test_quotas_count_every_live_node_and_instances_are_sized_against_the_largest() -> None:
    nodes = live_nodes(REPORTED)
    assert [n.node_id for n in nodes] == ["head", "a", "b"]
    cluster = cluster_inventory(nodes)
    assert (cluster.gpu_count, cluster.cpus, cluster.memory_bytes) == (12, 144, 964 * GIB)
    node = largest_node(nodes)
    assert (node.gpu_count, node.cpus, node.memory_bytes) == (8, 96, 768 * GIB)


def test_a_cluster_without_a_cpu_for_instances_is_refused() -> None:
    with pytest.raises(ValueError, match="no node with a CPU"):
        largest_node(live_nodes(REPORTED[:1]))


def _request(instance_type: str, tp: int | None = None) -> list[LaunchRequest]:
    """The launch requests the controller makes for one instance sized against the largest node above."""
    node = largest_node(live_nodes(REPORTED))
    placement = place(instance_type, node, ())
    blocks = model_copies(instance_type, placement.gpu_ids, tp)
    spec = VariantSpec(
        variant=ProductionVariant(name="v", model_name="m", instance_type=instance_type, initial_instance_count=1),
        model=Model(name="m", arn="arn:m", created=0.0, container=Container(image="img")),
    )
    prepared = PreparedModel(Path("/empty"), None)
    return [
        _launch_request("ep", spec, prepared, placement, len(blocks), gpus, {}, (), instance_id=f"i-c{i}",
                        group_id="i", log_name="v-0.log", copy_index=i)
        for i, gpus in enumerate(blocks)
    ]  # fmt: skip


def test_a_gpu_instance_asks_for_its_gpus_and_a_share_of_the_node() -> None:
    (request,) = _request("ml.g5.12xlarge")  # 4 GPUs, 48 vCPUs, 192 GiB
    wanted = bundle(request)
    assert wanted == {"CPU": 48.0, "GPU": 4.0, "memory": float(192 * GIB)}  # half of the 8-GPU node, as typed
    assert describe(wanted) == "48 CPU, 4 GPU, 192.0 GiB memory"


def test_tensor_parallel_copies_are_bundles_of_one_placement_group() -> None:
    requests = _request("ml.g5.12xlarge", tp=2)
    assert [(r.copies, r.copy_index) for r in requests] == [(2, 0), (2, 1)]
    assert {tuple(sorted(bundle(r).items())) for r in requests} == {
        (("CPU", 24.0), ("GPU", 2.0), ("memory", float(96 * GIB)))
    }


def test_a_cpu_instance_asks_for_its_type_and_no_gpu() -> None:
    (request,) = _request("ml.m5.large")
    assert bundle(request) == {"CPU": 2.0, "memory": float(8 * GIB)}


def test_each_home_has_its_own_namespace() -> None:
    assert namespace_for(Path("/a")) == namespace_for(Path("/a"))
    assert namespace_for(Path("/a")) != namespace_for(Path("/b"))
    assert namespace_for(Path("/a")).startswith("modelhost-")
