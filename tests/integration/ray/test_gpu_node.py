"""One Ray node with 4 logical GPUs (no GPU needed: Ray only counts them): default quotas count the cluster;
an instance the cluster has no room for fails in the placement phase and gives back what it held; the
tensor-parallel copies of an ml.g5.12xlarge (4 GPUs, degree 2) are one placement group of two bundles on one
node (a SageMaker instance is one machine), each copy a worker with two GPUs of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.integration.ray.cluster import LoopbackCluster, ray_server, start_cluster, stop_cluster
from tests.integration.server import ServerProcess, deploy, wait_status, write_echo_model

pytestmark = pytest.mark.slow

DEVICES = re.compile(r"devices: CUDA_VISIBLE_DEVICES=([0-9,]+)")


@pytest.fixture(scope="module")
def four_gpu_node() -> Iterator[LoopbackCluster]:
    cluster = start_cluster(worker_nodes=0)
    try:
        cluster.add_worker(cpus=8, gpus=4, memory_gib=32)
        cluster.cluster.wait_for_nodes()
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture(scope="module")
def server(four_gpu_node: LoopbackCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home, nodes = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("nodes")
    env = {"MODELHOST_RAY_PLACEMENT_TIMEOUT_S": "3", "MODELHOST_QUOTAS": "ml.g5.24xlarge=2"}
    proc = ray_server(home, four_gpu_node, nodes, **env).start(timeout_s=90)
    try:
        yield proc
    finally:
        proc.stop()


def test_quotas_count_the_cluster_and_an_instance_without_room_fails_in_placement(
    server: ServerProcess, tmp_path: Path
) -> None:
    sm, _ = server.clients()
    model = write_echo_model(tmp_path / "echo")
    with pytest.raises(ClientError) as refused:  # the cluster's 4 GPUs hold one 4-GPU instance: the default quota
        deploy(sm, "ray-quota", str(model), instance_type="ml.g5.12xlarge", count=2)
    assert refused.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert "'ml.g5.12xlarge for endpoint usage' is 1 Instances" in str(refused.value)
    # MODELHOST_QUOTAS allows two ml.g5.24xlarge, which the cluster cannot place: the second waits 3 s, then fails
    deploy(sm, "ray-full", str(model), instance_type="ml.g5.24xlarge", count=2)
    desc = wait_status(sm, "ray-full", timeout_s=120)
    assert desc["EndpointStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert reason.startswith("placement failed: ml.g5.24xlarge asks the Ray cluster for 1 x (8 CPU, 4 GPU"), reason
    assert "within 3 s" in reason, reason
    sm.delete_endpoint(EndpointName="ray-full")  # the next test needs the whole node again: it was given back


def test_degree_two_makes_two_copies_with_two_gpus_each_on_one_node(server: ServerProcess, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    model = write_echo_model(tmp_path / "echo")
    deploy(sm, "ray-tp", str(model), instance_type="ml.g5.12xlarge", environment={"OPTION_TENSOR_PARALLEL_DEGREE": "2"})
    desc = wait_status(sm, "ray-tp", timeout_s=180)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 1  # one instance, two model copies
    runtime.invoke_endpoint(EndpointName="ray-tp", Body=b"x")
    logs = {p.name: p.read_text() for p in (server.home / "logs" / "ray-tp").glob("alltraffic-0-*.log")}
    assert sorted(logs) == ["alltraffic-0-0.log", "alltraffic-0-1.log"]
    devices = []
    for text in logs.values():
        assert "asking the Ray cluster for 4 CPU, 2 GPU, 16.0 GiB memory" in text
        found = DEVICES.search(text)
        assert found, text[-2000:]
        devices.append(found.group(1).split(","))
    assert all(len(d) == 2 for d in devices)
    assert not set(devices[0]) & set(devices[1])  # each copy has GPUs of its own
    sm.delete_endpoint(EndpointName="ray-tp")
