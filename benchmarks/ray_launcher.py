"""Deploy time and per-request overhead of the Ray launcher against the local launcher, in one run.

Starts a Ray cluster on loopback (a head without CPUs and `--nodes` worker nodes with logical CPUs and memory,
tests/integration/ray/cluster.py) and two fresh `modelhost server`s (local: worker processes on this host; ray:
`--launcher ray` on that cluster), and measures on each:

* deploy: CreateEndpoint → InService of an echo handler (a .tar.gz, `--instances` instances of ml.m5.large),
  `--rounds` times (each endpoint deleted, and gone, before the next), in seconds;
* overhead: `--requests` sequential invocations on one keep-alive connection through the router, and the same
  straight to one of its workers; p50/p99 of each and what the router adds.

Both servers run at once and the measurements alternate between them (deploy round by round, requests in
chunks), so the drift of a shared machine falls on both alike.

    python -m benchmarks.ray_launcher [--nodes 2] [--instances 2] [--rounds 3] [--requests 1000]

Prints a table (and the numbers as JSON on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.router_overhead import TRIVIAL_HANDLER, percentile, sequential_latencies_ms
from modelhost.contracts.worker import ROUTER_TOKEN_HEADER, SPEC_ENV
from tests.integration.ray.cluster import LoopbackCluster, ray_server, start_cluster, stop_cluster
from tests.integration.server import ServerProcess, deploy, write_echo_model


def echo_archive(work: Path) -> Path:
    folder = write_echo_model(work / "echo", model_py=TRIVIAL_HANDLER)
    archive = work / "echo.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in folder.iterdir():
            tar.add(path, arcname=path.name)
    return archive


def worker_of(endpoint: str) -> tuple[str, dict[str, str]]:
    """One worker of `endpoint` on this host (either launcher: a loopback cluster's nodes are this host too):
    its /invocations URL and router-token header, from the spec in its process environment."""
    prefix = SPEC_ENV.encode() + b"="
    for environ_path in Path("/proc").glob("[0-9]*/environ"):
        try:
            entries = environ_path.read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in entries:
            if entry.startswith(prefix):
                spec = json.loads(entry[len(prefix) :])
                if spec["endpoint_name"] == endpoint:
                    url = f"http://{spec['host']}:{spec['port']}/invocations"
                    return url, {ROUTER_TOKEN_HEADER: spec["router_token"]}
    raise LookupError(f"no worker of {endpoint} on this host")


def deploy_seconds(sm: Any, name: str, model: Path, instances: int) -> float:
    start = time.perf_counter()
    deploy(sm, name, str(model), instance_type="ml.m5.large", count=instances)
    while True:
        status = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
        if status == "InService":
            return time.perf_counter() - start
        if status == "Failed":
            raise RuntimeError(f"{name} failed: {sm.describe_endpoint(EndpointName=name).get('FailureReason')}")
        time.sleep(0.05)


def delete_and_wait(sm: Any, name: str) -> None:
    sm.delete_endpoint(EndpointName=name)
    while True:
        try:
            sm.describe_endpoint(EndpointName=name)
        except sm.exceptions.ClientError:
            return
        time.sleep(0.1)


def deploy_rounds(servers: dict[str, ServerProcess], model: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    """Deploys alternate between the launchers, round by round (drift on a shared machine hits both alike)."""
    rounds: dict[str, list[float]] = {label: [] for label in servers}
    for i in range(args.rounds):
        for label, server in servers.items():
            sm, _ = server.clients()
            rounds[label].append(deploy_seconds(sm, f"bench-{label}-{i}", model, args.instances))
            if i < args.rounds - 1:
                delete_and_wait(sm, f"bench-{label}-{i}")
    return rounds


def latencies(servers: dict[str, ServerProcess], args: argparse.Namespace, chunks: int = 5) -> dict[str, Any]:
    """Sequential requests through each router and straight to one of its workers, in alternating chunks."""
    targets: dict[str, tuple[str, dict[str, str]]] = {}
    for label, server in servers.items():
        name = f"bench-{label}-{args.rounds - 1}"
        targets[f"{label} router"] = (f"{server.url}/endpoints/{name}/invocations", {})
        targets[f"{label} direct"] = worker_of(name)
    samples: dict[str, list[float]] = {key: [] for key in targets}
    for _ in range(chunks):
        for key, (url, headers) in targets.items():
            samples[key] += asyncio.run(sequential_latencies_ms(url, max(1, args.requests // chunks), headers))
    return samples


def summary(label: str, rounds: list[float], samples: dict[str, list[float]]) -> dict[str, Any]:
    routed, straight = samples[f"{label} router"], samples[f"{label} direct"]
    result: dict[str, Any] = {
        "launcher": label,
        "deploy_s": [round(r, 2) for r in rounds],
        "deploy_median_s": round(statistics.median(rounds), 2),
        "router_p50_ms": round(statistics.median(routed), 3),
        "router_p99_ms": round(percentile(routed, 99), 3),
        "direct_p50_ms": round(statistics.median(straight), 3),
        "direct_p99_ms": round(percentile(straight, 99), 3),
    }
    result["added_p50_ms"] = round(result["router_p50_ms"] - result["direct_p50_ms"], 3)
    result["added_p99_ms"] = round(result["router_p99_ms"] - result["direct_p99_ms"], 3)
    return result


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    head = (f"{'launcher':<9} {'deploy s (median)':>17} {'rounds':>26} {'router p50':>10} {'router p99':>10} "
            f"{'direct p50':>10} {'direct p99':>10} {'added p50':>9} {'added p99':>9}")  # fmt: skip
    lines = [
        f"{args.instances} x ml.m5.large echo, {args.rounds} deploys, {args.requests} sequential requests; "
        f"Ray: {args.nodes} worker nodes on loopback; latencies in ms",
        head,
    ]
    for r in results:
        rounds = "/".join(f"{s:.2f}" for s in r["deploy_s"])
        lines.append(
            f"{r['launcher']:<9} {r['deploy_median_s']:>17.2f} {rounds:>26} {r['router_p50_ms']:>10.2f} "
            f"{r['router_p99_ms']:>10.2f} {r['direct_p50_ms']:>10.2f} {r['direct_p99_ms']:>10.2f} "
            f"{r['added_p50_ms']:>9.2f} {r['added_p99_ms']:>9.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2, help="Ray worker nodes (4 logical CPUs, 32 GiB each)")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelhost-ray-bench-"))
    model = echo_archive(work)
    cluster: LoopbackCluster = start_cluster(worker_nodes=0)
    servers: dict[str, ServerProcess] = {}
    try:
        for _ in range(args.nodes):
            cluster.add_worker(cpus=4, gpus=0, memory_gib=32)
        cluster.cluster.wait_for_nodes()
        same = {"MODELHOST_WORKER_SANDBOX": "off", "MODELHOST_HEALTH_INTERVAL_S": "1"}  # as ray_server sets them
        servers["local"] = ServerProcess(work / "home-local", env=same).start()
        servers["ray"] = ray_server(work / "home-ray", cluster, work / "nodes").start(timeout_s=120)
        rounds = deploy_rounds(servers, model, args)
        samples = latencies(servers, args)
        results = [summary(label, rounds[label], samples) for label in servers]
        for label, server in servers.items():
            delete_and_wait(server.clients()[0], f"bench-{label}-{args.rounds - 1}")
    finally:
        for server in servers.values():
            server.stop()
        stop_cluster(cluster)
    print(json.dumps(results), file=sys.stderr)
    print(table(results, args))


if __name__ == "__main__":
    main()
