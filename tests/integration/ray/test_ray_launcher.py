"""The Ray launcher on a real three-node Ray cluster on loopback, driven through boto3: instances spread over
the nodes by their resources, each node fetches the model data into its own cache, worker logs reach the
server's CloudWatch Logs API, a GPU instance gets a (logical) GPU of its node, local model data missing on a
node is a clear error, a node killed under load loses no request and its instance is replaced on another node,
and actors a previous server left in its home's namespace are stopped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from modelhost.scheduler.launchers.ray_placement import namespace_for
from tests.integration.ray.cluster import LOOPBACK_ENV, NODE_S3_ENV, LoopbackCluster, ray_server
from tests.integration.server import ServerProcess, SteadyLoad, deploy, wait_status, write_echo_model

pytestmark = pytest.mark.slow

NODE_LINE = re.compile(r"\[modelhost\] on Ray node ([0-9a-f]+) \(")


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nodes")


@pytest.fixture(scope="module")
def server(
    loopback_cluster: LoopbackCluster, node_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    proc = ray_server(tmp_path_factory.mktemp("home"), loopback_cluster, node_dir).start(timeout_s=90)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def echo_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_echo_model(tmp_path_factory.mktemp("echo") / "model")
    archive = folder.parent / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in folder.iterdir():
            tar.add(path, arcname=path.name)
    return archive


def logs_client(server: ServerProcess) -> Any:
    session = boto3.session.Session(aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
                                    region_name="us-east-1")  # fmt: skip
    return session.client("logs", endpoint_url=server.url)


def instance_nodes(server: ServerProcess, name: str) -> dict[str, str]:
    """Instance log stream -> the Ray node it ran on, read through the CloudWatch Logs API."""
    events = logs_client(server).filter_log_events(
        logGroupName=f"/aws/sagemaker/Endpoints/{name}", filterPattern='"on Ray node"'
    )["events"]
    found = {}
    for event in events:
        match = NODE_LINE.search(event["message"])
        if match:
            found[event["logStreamName"]] = match.group(1)
    return found


def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_instances_spread_over_nodes_and_each_node_fetches_the_model(
    server: ServerProcess, loopback_cluster: LoopbackCluster, node_dir: Path, echo_archive: Path
) -> None:
    sm, runtime = server.clients()
    deploy(sm, "ray-spread", str(echo_archive), instance_type="ml.m5.large", count=2)  # 2 vCPUs: one per node
    desc = wait_status(sm, "ray-spread", timeout_s=180)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    answer = json.loads(runtime.invoke_endpoint(EndpointName="ray-spread", Body=b"hello")["Body"].read())
    assert answer["echo"] == "hello"  # through the router, at the worker's address on its node
    nodes = wait_for(lambda: instance_nodes(server, "ray-spread"), 15, "the instances' node lines")
    assert len(nodes) == 2 and len(set(nodes.values())) == 2, nodes  # two instances, two nodes
    assert set(nodes.values()) <= loopback_cluster.node_ids()
    # the archive was extracted on the nodes (their cache), never into the server's own cache
    assert list((node_dir / "artifacts" / "models").iterdir())
    server_cache = server.home / "artifacts" / "models"
    assert not server_cache.exists() or not list(server_cache.iterdir())
    # streaming, the workers' own metrics and quotas behave as on one machine; quotas count the cluster
    stream = runtime.invoke_endpoint_with_response_stream(EndpointName="ray-spread", Body=b"streamed")["Body"]
    assert b"streamed" in b"".join(e["PayloadPart"]["Bytes"] for e in stream if "PayloadPart" in e)
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert any("modelhost_worker_requests_total" in line and "ray-spread" in line for line in metrics.splitlines())
    host = httpx.get(f"{server.url}/_modelhost/quotas", timeout=10).json()["host"]
    assert (host["gpus"], host["cpus"]) == (3, 6)  # three worker nodes of 1 GPU and 2 CPUs; the head has none
    # a scale-out lands on the node still free
    capacity = [{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}]
    sm.update_endpoint_weights_and_capacities(EndpointName="ray-spread", DesiredWeightsAndCapacities=capacity)
    wait_for(lambda: sm.describe_endpoint(EndpointName="ray-spread")["ProductionVariants"][0]["CurrentInstanceCount"]
             == 3, 60, "a third instance")  # fmt: skip
    nodes = wait_for(lambda: len(found := instance_nodes(server, "ray-spread")) == 3 and found, 15, "its node line")
    assert set(nodes.values()) == loopback_cluster.node_ids()
    sm.delete_endpoint(EndpointName="ray-spread")


def test_s3_model_data_is_fetched_by_the_nodes(server: ServerProcess, echo_archive: Path, moto_endpoint: str) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, aws_access_key_id=NODE_S3_ENV["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=NODE_S3_ENV["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")  # fmt: skip
    s3.create_bucket(Bucket="ray-models")
    s3.upload_file(str(echo_archive), "ray-models", "echo/model.tar.gz")
    sm, runtime = server.clients()
    deploy(sm, "ray-s3", "s3://ray-models/echo/model.tar.gz", instance_type="ml.m5.large")  # the server has no
    desc = wait_status(sm, "ray-s3", timeout_s=180)  # S3 endpoint or credentials: only the nodes do
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    assert json.loads(runtime.invoke_endpoint(EndpointName="ray-s3", Body=b"s3")["Body"].read())["echo"] == "s3"
    sm.delete_endpoint(EndpointName="ray-s3")


def test_a_gpu_instance_gets_a_gpu_of_its_node(server: ServerProcess, echo_archive: Path) -> None:
    sm, runtime = server.clients()
    deploy(sm, "ray-gpu", str(echo_archive), instance_type="ml.g5.xlarge", count=1)  # 1 GPU (logical here)
    desc = wait_status(sm, "ray-gpu", timeout_s=180)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    runtime.invoke_endpoint(EndpointName="ray-gpu", Body=b"x")
    log = (server.home / "logs" / "ray-gpu" / "alltraffic-0.log").read_text()
    assert "asking the Ray cluster for 2 CPU, 1 GPU" in log
    assert re.search(r"devices: CUDA_VISIBLE_DEVICES=\d", log), log[-2000:]
    sm.delete_endpoint(EndpointName="ray-gpu")


def test_local_model_data_missing_on_the_node_fails_clearly(server: ServerProcess, tmp_path: Path) -> None:
    sm, _ = server.clients()
    missing = tmp_path / "not-on-any-node.tar.gz"
    deploy(sm, "ray-missing", str(missing), instance_type="ml.m5.large")
    desc = wait_status(sm, "ray-missing", timeout_s=120)
    assert desc["EndpointStatus"] == "Failed"
    assert "on Ray node" in desc["FailureReason"] and "s3://" in desc["FailureReason"], desc["FailureReason"]


def test_a_node_killed_under_load_loses_no_request_and_its_instance_moves(
    server: ServerProcess, loopback_cluster: LoopbackCluster, echo_archive: Path
) -> None:
    sm, runtime = server.clients()
    deploy(sm, "ray-kill", str(echo_archive), instance_type="ml.m5.large", count=2)
    assert wait_status(sm, "ray-kill", timeout_s=180)["EndpointStatus"] == "InService"
    before = wait_for(lambda: instance_nodes(server, "ray-kill"), 15, "the instances' node lines")
    assert len(set(before.values())) == 2
    victim = sorted(before.values())[0]
    statuses: list[str] = []
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            statuses.append(sm.describe_endpoint(EndpointName="ray-kill")["EndpointStatus"])
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    with SteadyLoad(runtime, "ray-kill") as load:
        watcher.start()
        time.sleep(1.0)
        answered_before = len(load.versions)
        killed_at = time.monotonic()
        loopback_cluster.remove(victim)
        moved = wait_for(
            lambda: len(nodes := instance_nodes(server, "ray-kill")) == 3 and nodes, 90, "a replacement instance"
        )
        started_s = time.monotonic() - killed_at
        serving = wait_for(
            lambda: sm.describe_endpoint(EndpointName="ray-kill")["ProductionVariants"][0]["CurrentInstanceCount"] == 2,
            60, "two instances serving again",
        )  # fmt: skip
        time.sleep(1.0)
    print(f"node killed: replacement running on another node after {started_s:.2f} s; "
          f"{len(load.versions) - answered_before} requests answered since, {len(load.errors)} errors")  # fmt: skip
    watching.set()
    watcher.join(timeout=10)
    assert serving
    assert load.errors == [], load.errors[:3]  # every non-streaming request answered, none lost
    assert len(load.versions) > answered_before
    assert set(statuses) == {"InService"}, set(statuses)
    replacement = set(moved.values()) - set(before.values())
    assert replacement and victim not in replacement  # the replacement runs on the third node
    log = (server.home / "logs" / "ray-kill" / "endpoint.log").read_text()
    assert "was lost" in log or "exited with status -9" in log, log[-2000:]
    sm.delete_endpoint(EndpointName="ray-kill")


NAMED_ACTORS = """
import json, sys, ray
ray.init(address=sys.argv[1], namespace=sys.argv[2], log_to_driver=False)
if sys.argv[3] == "make":
    @ray.remote(num_cpus=0)
    class Left:
        def ready(self):
            return True
    head = {"node:__internal_head__": 0.001}  # on the head, which no test kills
    ray.get(Left.options(name="left-by-a-dead-server", lifetime="detached", resources=head).remote().ready.remote())
print(json.dumps(sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                        if a["namespace"] == sys.argv[2])))
"""


def _named_actors(cluster: LoopbackCluster, namespace: str, action: str) -> list[str]:
    """The named actors in `namespace`, after making one there (`make`) with a detached driver of its own."""
    done = subprocess.run(
        [sys.executable, "-c", NAMED_ACTORS, cluster.address, namespace, action],
        env={**os.environ, **LOOPBACK_ENV}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_actors_a_previous_server_left_in_its_namespace_are_stopped(
    loopback_cluster: LoopbackCluster, node_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    namespace = namespace_for(home.resolve())
    assert _named_actors(loopback_cluster, namespace, "make") == ["left-by-a-dead-server"]
    proc = ray_server(home, loopback_cluster, node_dir).start(timeout_s=90)
    try:
        stopped = "left on the Ray cluster by a previous server"
        wait_for(lambda: stopped in proc.log_text(), 30, "the stale actor stopped")
    finally:
        proc.stop()
    assert _named_actors(loopback_cluster, namespace, "list") == []
