"""Invocation metrics through both edges with fake upstreams: exact Prometheus counts by SageMaker's
definitions, latencies only for requests a worker had, streams recorded when they end, and the CloudWatch
windows drained with the same numbers."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from modelhost.monitoring.datapoints import Datapoint
from modelhost.monitoring.invocations import InvocationMetrics, Outcome, Timing, error_class
from modelhost.router.forward import UpstreamBroken, UpstreamGone, UpstreamResponse
from tests.unit.router.fakes import FakeStream, Rig, ok, rig

GONE = UpstreamGone("ConnectError('connection refused')")


def sample(r: Rig, name: str, **labels: str) -> float:
    value = r.registry.get_sample_value(name, {"endpoint": "Ep", "variant": "A", **labels})
    return 0.0 if value is None else value


def post(r: Rig, path: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> Any:
    with TestClient(r.app) as client:
        return client.post(path, content=body, headers={"content-type": "application/json", **(headers or {})})


def test_error_classes_follow_sagemaker() -> None:
    assert error_class(Outcome(200)) is None
    assert error_class(Outcome(424, model_status=400)) == "4xx"
    assert error_class(Outcome(424, model_status=503)) == "5xx"
    assert error_class(Outcome(424, model_status=0)) is None  # broke or timed out: a model error only
    assert error_class(Outcome(429, throttled=True)) == "4xx"
    assert error_class(Outcome(503)) == "5xx"


def test_runtime_counts_successes_model_errors_and_broken_workers() -> None:
    answers = [ok({"a": 1}), ok({"a": 2}), ok({"a": 3}), UpstreamResponse(400, {}, b"bad input"),
               UpstreamResponse(500, {}, b"boom"), UpstreamBroken("cut")]  # fmt: skip
    r = rig({"i1": answers})
    statuses = [post(r, "/endpoints/ep/invocations").status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 424, 424, 424]
    assert sample(r, "modelhost_invocations_total") == 6
    assert sample(r, "modelhost_invocation_errors_total", **{"class": "4xx"}) == 1
    assert sample(r, "modelhost_invocation_errors_total", **{"class": "5xx"}) == 1
    assert sample(r, "modelhost_invocation_model_errors_total") == 3
    assert sample(r, "modelhost_model_latency_seconds_count") == 6
    assert sample(r, "modelhost_overhead_latency_seconds_count") == 6


def test_requests_refused_before_a_worker_count_but_have_no_model_latency() -> None:
    r = rig({"i1": [ok({})]})
    assert post(r, "/endpoints/ep/invocations", headers={"x-amzn-sagemaker-target-variant": "nope"}).status_code == 400
    assert post(r, "/endpoints/unknown/invocations").status_code == 400  # no endpoint: nothing to attribute
    assert r.registry.get_sample_value("modelhost_invocations_total", {"endpoint": "Ep", "variant": ""}) == 1
    assert r.registry.get_sample_value(
        "modelhost_invocation_errors_total", {"endpoint": "Ep", "variant": "", "class": "4xx"}
    ) == 1
    assert sample(r, "modelhost_model_latency_seconds_count") == 0


def test_a_stream_is_recorded_when_it_ends() -> None:
    r = rig({"i1": [FakeStream(parts=[b"a", b"b"]), FakeStream(parts=[b"a", UpstreamBroken("cut")])]})
    for _ in range(2):
        assert post(r, "/endpoints/ep/invocations-response-stream").status_code == 200
    assert sample(r, "modelhost_invocations_total") == 2
    assert sample(r, "modelhost_invocation_model_errors_total") == 1  # the one that broke mid-stream
    assert sample(r, "modelhost_model_latency_seconds_count") == 2


def test_the_openai_edge_records_the_workers_status() -> None:
    r = rig({"i1": [FakeStream(parts=[b"{}"]), FakeStream(status_code=400, parts=[b'{"error": {}}'])]})
    with TestClient(r.app) as client:
        codes = [client.post("/v1/chat/completions", json={"model": "ep", "messages": []}).status_code
                 for _ in range(2)]  # fmt: skip
    assert codes == [200, 400]
    assert sample(r, "modelhost_invocations_total") == 2
    assert sample(r, "modelhost_invocation_errors_total", **{"class": "4xx"}) == 1
    assert sample(r, "modelhost_invocation_model_errors_total") == 1


def test_gone_everywhere_is_a_model_error() -> None:
    r = rig({"i1": [GONE], "i2": [GONE]})
    assert post(r, "/endpoints/ep/invocations").status_code == 424
    assert sample(r, "modelhost_invocation_model_errors_total") == 1


def _by_name(points: list[Datapoint]) -> dict[str, Datapoint]:
    return {p.metric.metric_name: p for p in points}


def test_cloudwatch_windows_carry_sagemakers_per_request_values() -> None:
    from prometheus_client import CollectorRegistry

    clock = [1000.0]
    metrics = InvocationMetrics(CollectorRegistry(), now=lambda: clock[0])
    for status, model in ((200, None), (200, None), (424, 500), (424, 404)):
        timing = Timing(started=0.0, model_started=0.0, model_ended=0.0)
        metrics.record("Ep", "A", Outcome(status, model_status=model), timing, instances=2)
    metrics.record("Ep", "", Outcome(400), Timing())  # no variant: Prometheus only
    assert metrics.drain() == []  # the window has not ended
    clock[0] += 10
    points = _by_name(metrics.drain())
    assert points["Invocations"].stats.sum == 4
    assert points["InvocationsPerInstance"].stats.sum == 2.0
    assert points["Invocation5XXErrors"].stats.sum == 1 and points["Invocation5XXErrors"].stats.sample_count == 4
    assert points["Invocation4XXErrors"].stats.sum == 1
    assert points["InvocationModelErrors"].stats.sum == 2
    assert points["ModelLatency"].unit == "Microseconds" and points["ModelLatency"].stats.sample_count == 4
    assert {d for p in points.values() for d in p.metric.dimensions} == {("EndpointName", "Ep"), ("VariantName", "A")}
    assert all(p.timestamp_s == 1000.0 and p.high_resolution for p in points.values())
    assert metrics.drain() == []
