"""Engine mode's LLM metrics: vLLM's names, types, labels and buckets; exact values per request (a fake clock);
the gauges read from Backend.stats() at scrape time; exact counts through the app over the FakeBackend."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from modelhost.worker.engine.types import EngineConfig, SamplingParams, TokenEvent
from modelhost.worker.engine_mode.generation import TextGenerator
from modelhost.worker.engine_mode.metrics import (
    INTER_TOKEN_BUCKETS_S,
    REQUEST_LATENCY_BUCKETS_S,
    TTFT_BUCKETS_S,
    BackendStatsCollector,
    LlmMetrics,
    buckets_1_2_5,
)
from modelhost.worker.engine_mode.schemas.request import TextRequest
from tests.fake_backend import FakeBackend
from tests.unit.worker.engine_mode.test_engine_server import make_client

LABELS = {"model_name": "m", "engine": "0"}


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the registry's exposition, parsed back: (name, sorted labels) -> value."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted({**LABELS, **labels}.items())))]


def token(index: int, *, finished: bool = False, reason: Any = None, queue_time_s: float | None = None) -> TokenEvent:
    return TokenEvent("r", 1000 + index, " w", -0.5, finished, reason, 7, index, queue_time_s=queue_time_s)


def test_buckets_and_names_are_vllms() -> None:
    assert buckets_1_2_5(100) == [1, 2, 5, 10, 20, 50, 100]
    assert buckets_1_2_5(2048) == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]
    assert (len(TTFT_BUCKETS_S), TTFT_BUCKETS_S[0], TTFT_BUCKETS_S[-1]) == (22, 0.001, 2560.0)
    assert (len(INTER_TOKEN_BUCKETS_S), INTER_TOKEN_BUCKETS_S[0], INTER_TOKEN_BUCKETS_S[-1]) == (19, 0.01, 80.0)
    assert (len(REQUEST_LATENCY_BUCKETS_S), REQUEST_LATENCY_BUCKETS_S[0], REQUEST_LATENCY_BUCKETS_S[-1]) == (
        21,
        0.3,
        7680.0,
    )
    registry = CollectorRegistry()
    LlmMetrics(registry, "m", 100)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert {name: f.type for name, f in families.items() if not name.endswith("_created")} == {
        "modelhost:prompt_tokens": "counter",
        "modelhost:generation_tokens": "counter",
        "modelhost:request_success": "counter",
        "modelhost:request_prompt_tokens": "histogram",
        "modelhost:request_generation_tokens": "histogram",
        "modelhost:time_to_first_token_seconds": "histogram",
        "modelhost:inter_token_latency_seconds": "histogram",
        "modelhost:e2e_request_latency_seconds": "histogram",
        "modelhost:request_queue_time_seconds": "histogram",
    }
    prompt_samples = families["modelhost:request_prompt_tokens"].samples
    buckets = [s.labels["le"] for s in prompt_samples if s.name.endswith("_bucket")]
    assert buckets == ["1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "+Inf"]
    reasons = {s.labels["finished_reason"] for s in families["modelhost:request_success"].samples}
    assert reasons == {"stop", "length", "abort", "error"}


def test_one_request_records_exact_times_and_counts() -> None:
    registry, clock = CollectorRegistry(), FakeClock()
    metrics = LlmMetrics(registry, "m", 100, clock=clock)
    recorder = metrics.request()
    recorder.prompt_tokens = 7
    clock.now_s += 0.25  # templating, tokenizing, queueing, prefill
    recorder.observe(token(1, queue_time_s=0.125))
    clock.now_s += 0.05
    recorder.observe(token(2, queue_time_s=0.125))
    clock.now_s += 0.02
    recorder.observe(token(3, finished=True, reason="length", queue_time_s=0.125))
    recorder.end("abort")  # after the final event: nothing more
    found = samples(registry)
    assert value(found, "modelhost:time_to_first_token_seconds_sum") == 0.25
    assert value(found, "modelhost:time_to_first_token_seconds_count") == 1
    assert value(found, "modelhost:inter_token_latency_seconds_count") == 2
    assert value(found, "modelhost:inter_token_latency_seconds_sum") == pytest.approx(0.07)
    assert value(found, "modelhost:inter_token_latency_seconds_bucket", le="0.025") == 1
    assert value(found, "modelhost:e2e_request_latency_seconds_sum") == pytest.approx(0.32)
    assert value(found, "modelhost:request_queue_time_seconds_sum") == 0.125
    assert value(found, "modelhost:request_queue_time_seconds_count") == 1
    assert value(found, "modelhost:prompt_tokens_total") == 7
    assert value(found, "modelhost:generation_tokens_total") == 3
    assert value(found, "modelhost:request_prompt_tokens_sum") == 7
    assert value(found, "modelhost:request_generation_tokens_sum") == 3
    assert value(found, "modelhost:request_success_total", finished_reason="length") == 1
    assert value(found, "modelhost:request_success_total", finished_reason="abort") == 0


@pytest.mark.parametrize(
    ("reason", "expected"), [("eos_token", "stop"), ("stop_sequence", "stop"), ("error", "error"), ("abort", "abort")]
)
def test_finish_reasons_map_to_vllms(reason: Any, expected: str) -> None:
    registry = CollectorRegistry()
    recorder = LlmMetrics(registry, "m", 100).request()
    recorder.observe(token(1, finished=True, reason=reason))
    assert value(samples(registry), "modelhost:request_success_total", finished_reason=expected) == 1


def test_a_request_that_ends_without_a_final_event_is_an_abort_and_has_no_queue_time_unless_reported() -> None:
    registry, clock = CollectorRegistry(), FakeClock()
    metrics = LlmMetrics(registry, "m", 100, clock=clock)
    recorder = metrics.request()
    recorder.prompt_tokens = 4
    clock.now_s += 1.0
    recorder.end("abort")  # the client went away while the request waited
    recorder.end("error")  # recorded once
    found = samples(registry)
    assert value(found, "modelhost:request_success_total", finished_reason="abort") == 1
    assert value(found, "modelhost:request_success_total", finished_reason="error") == 0
    assert value(found, "modelhost:e2e_request_latency_seconds_sum") == 1.0
    assert value(found, "modelhost:time_to_first_token_seconds_count") == 0
    assert value(found, "modelhost:request_queue_time_seconds_count") == 0
    assert value(found, "modelhost:prompt_tokens_total") == 0  # never prefilled
    assert value(found, "modelhost:request_prompt_tokens_sum") == 4


class StatsBackend:
    def __init__(self, stats: dict[str, Any] | Exception) -> None:
        self._stats = stats

    def stats(self) -> dict[str, Any]:
        if isinstance(self._stats, Exception):
            raise self._stats
        return self._stats


def test_gauges_are_read_from_the_backend_at_scrape_time() -> None:
    backend = StatsBackend({"running": 3, "waiting": 2, "kv_cache_usage": 0.5, "started": True})
    registry = CollectorRegistry()
    registry.register(BackendStatsCollector(backend, "m"))  # type: ignore[arg-type]
    found = samples(registry)
    assert value(found, "modelhost:num_requests_running") == 3
    assert value(found, "modelhost:num_requests_waiting") == 2
    assert value(found, "modelhost:kv_cache_usage_perc") == 0.5
    backend._stats = {"running": 1}  # read again at the next scrape; what the backend does not report is absent
    found = samples(registry)
    assert value(found, "modelhost:num_requests_running") == 1
    assert not any(name.startswith(("modelhost:num_requests_waiting", "modelhost:kv")) for name, _ in found)
    backend._stats = RuntimeError("stats broke")
    assert samples(registry) == {}


def test_prefix_cache_counters_are_vllms_counters() -> None:
    backend = StatsBackend({"prefix_cache_queries": 1200, "prefix_cache_hits": 960, "prefix_cache_hit_rate": 0.8})
    registry = CollectorRegistry()
    registry.register(BackendStatsCollector(backend, "m"))  # type: ignore[arg-type]
    found = samples(registry)
    assert value(found, "modelhost:prefix_cache_queries_total") == 1200
    assert value(found, "modelhost:prefix_cache_hits_total") == 960
    backend._stats = {"running": 1}
    assert not any(name.startswith("modelhost:prefix") for name, _ in samples(registry))


def test_a_refused_request_is_not_recorded_and_a_closed_one_is_an_abort() -> None:
    async def run() -> CollectorRegistry:
        registry = CollectorRegistry()
        backend = FakeBackend(EngineConfig("fake/model", max_model_len=16, max_batch_size=2))
        await backend.start()
        generator = TextGenerator(backend, LlmMetrics(registry, "m", 16))
        with pytest.raises(ValueError, match="Input has"):
            await generator.open(TextRequest(api="lmi", prompt="x" * 40, params=SamplingParams(max_new_tokens=2)))
        opened = await generator.open(TextRequest(api="lmi", prompt="Hi", params=SamplingParams(max_new_tokens=5)))
        await opened.close()  # after the first token: the client went away
        return registry

    found = samples(asyncio.run(run()))
    assert value(found, "modelhost:request_success_total", finished_reason="abort") == 1
    assert value(found, "modelhost:e2e_request_latency_seconds_count") == 1
    assert value(found, "modelhost:time_to_first_token_seconds_count") == 1
    assert value(found, "modelhost:generation_tokens_total") == 1
    assert value(found, "modelhost:prompt_tokens_total") == 3  # BOS + "Hi"


def _metric_samples(text: str) -> dict[str, list[Sample]]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_n_requests_through_the_app_give_exact_counts() -> None:
    client, backend, _ = make_client()
    plain = {"inputs": "Hi", "parameters": {"max_new_tokens": 3}}
    stop = {"inputs": "Hi", "parameters": {"max_new_tokens": 10, "stop_sequences": [" is"]}}
    with client:
        for _ in range(4):
            assert client.post("/invocations", json=plain).status_code == 200
        for _ in range(3):  # streamed
            with client.stream("POST", "/invocations", json=plain, headers={"X-Modelhost-Stream": "true"}) as response:
                lines = [json.loads(line) for line in response.iter_lines() if line]
            assert len(lines) == 3
        assert client.post("/invocations", json=stop).status_code == 200  # 3 tokens, ends on the stop sequence
        messages = [{"role": "user", "content": "Hi"}]
        chat = {"messages": messages, "max_tokens": 2}
        assert client.post("/v1/chat/completions", json=chat).status_code == 200
        assert client.post("/invocations", json={"inputs": "x" * 100}).status_code == 424  # refused: not counted
        text = client.get("/metrics").text
    families = _metric_samples(text)

    def one(name: str, sample: str, **labels: str) -> float:
        wanted = {"model_name": "my-endpoint", "engine": "0", **labels}
        return next(s.value for s in families[name] if s.name == sample and s.labels == wanted)

    n = 9
    assert one("modelhost:request_success", "modelhost:request_success_total", finished_reason="length") == 8
    assert one("modelhost:request_success", "modelhost:request_success_total", finished_reason="stop") == 1
    for histogram in ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_prompt_tokens"):
        assert one("modelhost:" + histogram, f"modelhost:{histogram}_count") == n, histogram
    assert one("modelhost:generation_tokens", "modelhost:generation_tokens_total") == 7 * 3 + 3 + 2
    chat_prompt = len(backend.encode(backend.apply_chat_template(messages), add_special_tokens=False))
    assert one("modelhost:prompt_tokens", "modelhost:prompt_tokens_total") == 8 * 3 + chat_prompt
    assert one("modelhost:inter_token_latency_seconds", "modelhost:inter_token_latency_seconds_count") == 7 * 2 + 2 + 1
    ttft = one("modelhost:time_to_first_token_seconds", "modelhost:time_to_first_token_seconds_sum")
    e2e = one("modelhost:e2e_request_latency_seconds", "modelhost:e2e_request_latency_seconds_sum")
    assert 0 < ttft <= e2e
    # the FakeBackend does not measure queue time, so none is recorded (never estimated)
    assert one("modelhost:request_queue_time_seconds", "modelhost:request_queue_time_seconds_count") == 0
    assert one("modelhost:num_requests_running", "modelhost:num_requests_running") == 0
    assert "process_cpu_seconds_total" in text and "python_info" in text


def test_recording_costs_microseconds_not_milliseconds() -> None:
    """A loose bound that only a real regression breaks (benchmarks/worker_metrics.py measures: a few us per
    token, tens of us per request)."""
    metrics = LlmMetrics(CollectorRegistry(), "m", 2048)
    stream = [token(i, finished=i == 20, reason="length" if i == 20 else None, queue_time_s=0.01) for i in range(1, 21)]
    started = time.perf_counter()
    for _ in range(200):
        recorder = metrics.request()
        for event in stream:
            recorder.observe(event)
    per_request_s = (time.perf_counter() - started) / 200
    assert per_request_s < 0.002, f"{per_request_s * 1e6:.0f} us to record one 20-token request"
