"""The worker's registry and /metrics: one registry per worker (not the global one), process and platform
metrics, content negotiation, and the router-token guard (only /ping is open); vLLM's own stats as our
vLLM backend reads them (plain objects: vLLM is not installed here)."""

from __future__ import annotations

from types import SimpleNamespace

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from modelhost.contracts.worker import METRICS_PATH, ROUTER_TOKEN_HEADER
from modelhost.worker.engine.vllm_stats import SchedulerSnapshot, queue_time_s, stat_logger_factory
from modelhost.worker.engine_mode.server import EngineEndpoints, create_engine_app
from modelhost.worker.metrics import worker_registry
from modelhost.worker.router_token import guarded
from tests.unit.worker.engine_mode.test_engine_server import make_client


def test_each_worker_registry_is_its_own_with_process_and_platform_metrics() -> None:
    first, second = worker_registry(), worker_registry()
    assert first is not second and first is not prometheus_client.REGISTRY
    text = prometheus_client.generate_latest(first).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_start_time_seconds"} <= names
    assert "python_info" in names


def test_metrics_needs_the_router_token_like_invocations() -> None:
    client, _, _ = make_client()
    guarded_client = TestClient(guarded(client.app, "s3cret"))
    with guarded_client:
        assert guarded_client.get("/ping").status_code == 200
        assert guarded_client.get(METRICS_PATH).status_code == 403
        assert guarded_client.get(METRICS_PATH, headers={ROUTER_TOKEN_HEADER: "wrong"}).status_code == 403
        assert guarded_client.post("/invocations", json={"inputs": "Hi"}).status_code == 403
        answer = guarded_client.get(METRICS_PATH, headers={ROUTER_TOKEN_HEADER: "s3cret"})
        assert answer.status_code == 200 and "modelhost:num_requests_running" in answer.text


def test_openmetrics_on_request() -> None:
    client, _, _ = make_client()
    with client:
        answer = client.get(METRICS_PATH, headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert answer.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert answer.text.rstrip().endswith("# EOF")


def test_before_the_model_loads_only_the_process_metrics_show() -> None:
    async def never() -> object:
        raise RuntimeError("no model")

    app = create_engine_app(EngineEndpoints(never, "lmi", "ep", lambda reason: None))  # type: ignore[arg-type]
    with TestClient(app) as client:
        text = client.get(METRICS_PATH).text
    assert "process_cpu_seconds_total" in text and "modelhost:" not in text


def test_vllm_scheduler_stats_become_the_backends_gauges() -> None:
    snapshot = SchedulerSnapshot()
    assert snapshot.as_stats() == {}  # nothing reported yet: no gauges rather than zeros
    snapshot.update(SimpleNamespace(num_running_reqs=3, num_waiting_reqs=1, kv_cache_usage=0.25))
    assert snapshot.as_stats() == {"running": 3, "waiting": 1, "kv_cache_usage": 0.25}
    snapshot.update(SimpleNamespace(num_running_reqs=2, num_waiting_reqs=0, gpu_cache_usage=0.5))  # before 0.11
    assert snapshot.as_stats() == {"running": 2, "waiting": 0, "kv_cache_usage": 0.5}
    assert stat_logger_factory(snapshot, object) is None  # no vLLM here (and not vLLM's AsyncLLM)


def test_vllm_queue_time_comes_from_the_request_outputs_metrics() -> None:
    assert queue_time_s(SimpleNamespace(queued_ts=10.0, scheduled_ts=10.25, arrival_time=1.7e9)) == 0.25  # v1
    assert queue_time_s(SimpleNamespace(queued_ts=10.0, scheduled_ts=0.0)) is None  # not scheduled yet
    assert queue_time_s(SimpleNamespace(time_in_queue=0.5)) == 0.5  # the v0 engine's RequestMetrics
    assert queue_time_s(SimpleNamespace(time_in_queue=None)) is None
    assert queue_time_s(None) is None  # stats disabled
