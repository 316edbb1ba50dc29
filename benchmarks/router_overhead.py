"""What the platform's router adds over calling a worker directly, for a trivial handler.

Starts `modelhost server` on a free loopback port with a fresh data directory, deploys an echo handler
(one instance), then measures the same workload twice, against the worker's own `/invocations` and through
`/endpoints/<name>/invocations`:

* latency: `--requests` sequential requests on one keep-alive connection; p50/p99 of each, and the added
  latency (platform − direct) at p50 and p99;
* throughput: `--concurrency` clients in a closed loop for `--seconds`; requests per second of each and
  the platform's share of the direct rate.

    python -m benchmarks.router_overhead [--requests 2000] [--concurrency 16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from modelhost.contracts.worker import ROUTER_TOKEN_HEADER, SPEC_ENV
from tests.integration.server import ServerProcess, deploy, write_echo_model

TRIVIAL_HANDLER = """
from djl_python import Output

def handle(inputs):
    if inputs.is_empty():
        return None
    return Output().add(inputs.get_as_bytes())
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def sequential_latencies_ms(url: str, count: int, headers: dict[str, str]) -> list[float]:
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        for _ in range(50):  # warm-up
            (await client.post(url, content=b"{}")).raise_for_status()
        out = []
        for _ in range(count):
            start = time.perf_counter()
            response = await client.post(url, content=b'{"ping": 1}', headers={"Content-Type": "application/json"})
            out.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
        return out


async def closed_loop_rps(url: str, concurrency: int, seconds: float, headers: dict[str, str]) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:

        async def one_client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                (await client.post(url, content=b'{"ping": 1}')).raise_for_status()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


def worker_target(home: Path) -> tuple[str, dict[str, str]]:
    """The one worker's /invocations URL and the router-token header it demands, from its spec (the launcher's
    run record names its process; the spec is in that process's environment, readable by the server's user)."""
    (record,) = sorted((home / "run").glob("*/worker.json"))
    pid = json.loads(record.read_text())["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    spec = next(json.loads(e.split(b"=", 1)[1]) for e in environ if e.startswith(SPEC_ENV.encode() + b"="))
    return f"http://127.0.0.1:{spec['port']}/invocations", {ROUTER_TOKEN_HEADER: spec["router_token"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelhost-router-bench-"))
    server = ServerProcess(work / "home").start()
    try:
        sm, _ = server.clients()
        deploy(sm, "echo", str(write_echo_model(work / "echo", model_py=TRIVIAL_HANDLER)))
        sm.get_waiter("endpoint_in_service").wait(EndpointName="echo", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        direct, token = worker_target(server.home)
        platform = f"{server.url}/endpoints/echo/invocations"
        results: dict[str, float] = {}
        for label, url, headers in (("direct", direct, token), ("platform", platform, {})):
            latencies = asyncio.run(sequential_latencies_ms(url, args.requests, headers))
            results[f"{label}_p50_ms"] = statistics.median(latencies)
            results[f"{label}_p99_ms"] = percentile(latencies, 99)
            results[f"{label}_rps"] = asyncio.run(closed_loop_rps(url, args.concurrency, args.seconds, headers))
        results["added_p50_ms"] = results["platform_p50_ms"] - results["direct_p50_ms"]
        results["added_p99_ms"] = results["platform_p99_ms"] - results["direct_p99_ms"]
        results["throughput_share"] = results["platform_rps"] / results["direct_rps"]
        print(json.dumps({k: round(v, 3) for k, v in results.items()}))
        print(
            f"added latency p50 {results['added_p50_ms']:.2f} ms, p99 {results['added_p99_ms']:.2f} ms; "
            f"throughput {results['platform_rps']:.0f} vs {results['direct_rps']:.0f} req/s direct "
            f"({results['throughput_share']:.0%})",
            file=sys.stderr,
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
