"""A real Prometheus server (Debian's `prometheus`, started here on loopback) scrapes the modelhost server's
/metrics and a PromQL query over its HTTP API returns the invocation count."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelhost.testing import free_port
from tests.integration.server import ServerProcess, deploy, write_echo_model

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="Debian's prometheus is not installed (scripts/system-packages installs it as root)"
)
CALLS = 7


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("scraped-home")).start()
    sm, runtime = proc.clients()
    deploy(sm, "scraped", str(write_echo_model(tmp_path_factory.mktemp("scraped-model") / "m")))
    sm.get_waiter("endpoint_in_service").wait(EndpointName="scraped", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    for _ in range(CALLS):
        runtime.invoke_endpoint(EndpointName="scraped", Body=b"x")
    yield proc
    proc.stop()


@pytest.fixture
def prometheus(server: ServerProcess, tmp_path: Path) -> Iterator[str]:
    assert PROMETHEUS is not None
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: modelhost\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{server.port}']\n"
    )
    port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _query(base: str, promql: str) -> list[dict[str, object]]:
    try:
        answer = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5, trust_env=False)
    except httpx.HTTPError:
        return []
    if answer.status_code != 200:
        return []
    result: list[dict[str, object]] = answer.json()["data"]["result"]
    return result


def test_prometheus_scrapes_the_invocation_count(prometheus: str) -> None:
    promql = 'sum(modelhost_invocations_total{endpoint="scraped",variant="AllTraffic"})'
    deadline = time.monotonic() + 90
    result: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        result = _query(prometheus, promql)
        if result:
            break
        time.sleep(1)
    assert result, "Prometheus never returned the series"
    value = result[0]["value"]
    assert isinstance(value, list) and float(value[1]) == CALLS
    up = _query(prometheus, 'up{job="modelhost"}')
    assert up and isinstance(up[0]["value"], list) and float(up[0]["value"][1]) == 1
    # the worker's own series come through the same scrape, with the instance label
    worker = _query(prometheus, 'sum by (instance) (modelhost_worker_requests_total{endpoint="scraped"})')
    assert worker and float(worker[0]["value"][1]) == CALLS  # type: ignore[index]
