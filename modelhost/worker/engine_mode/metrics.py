"""Engine mode's LLM metrics, named, typed, labelled and bucketed as vLLM's (vllm/v1/metrics/loggers.py) with the
prefix `modelhost:` instead of `vllm:`, so vLLM's Grafana dashboards work after a prefix change.

Two halves:

* scrape time: `BackendStatsCollector` reads `Backend.stats()` when /metrics is read (running, waiting, KV-cache
  usage), so serving pays nothing for the gauges;
* per request: `RequestRecorder`, one per generation, sees each TokenEvent as the HTTP layer receives it from the
  backend (so it is the same measurement for every backend) and records counters and histograms. It costs a
  clock read per event plus a few observations per token and per request (benchmarks/worker_metrics.py).

Times are from the worker's monotonic clock: arrival is when the parsed request starts (before templating and
tokenizing), TTFT ends when the first token arrives, e2e when the final event arrives (or the client goes away),
inter-token latency is between consecutive tokens, and queue time is what the engine itself reports on its events
(`TokenEvent.queue_time_s`: from submission to the first step that runs the prompt), never estimated here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelhost.worker.engine.types import Backend, FinishReason, TokenEvent

PREFIX = "modelhost:"
LABELS = ("model_name", "engine")  # vLLM's labels; "engine" is the engine index, always "0" in a worker
ENGINE_INDEX = "0"

# vLLM's finished_reason values (vllm/v1/engine FINISH_REASON_STRINGS) for ours; vLLM's "repetition" has no
# counterpart here, so that series is never created.
FINISHED_REASONS: dict[FinishReason, str] = {
    "eos_token": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "abort": "abort",
    "error": "error",
}

# vLLM's buckets, exactly.
TTFT_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    160.0, 640.0, 2560.0,
)  # fmt: skip
INTER_TOKEN_BUCKETS_S = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS_S = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
    1920.0, 7680.0,
)  # fmt: skip


def buckets_1_2_5(max_value: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to `max_value` (vLLM's token-count buckets, built from max_model_len)."""
    buckets: list[int] = []
    scale = 1
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * scale > max_value:
                return buckets
            buckets.append(mantissa * scale)
        scale *= 10


class BackendStatsCollector(Collector):
    """The scheduler gauges and the prefix-cache counters, read from `Backend.stats()` at scrape time; a value the
    backend does not report is left out (never made up)."""

    GAUGES: Sequence[tuple[str, str, str]] = (
        ("running", "num_requests_running", "Number of requests in model execution batches."),
        ("waiting", "num_requests_waiting", "Number of requests waiting to be processed."),
        ("kv_cache_usage", "kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
    )
    # Counted by the engine since it started; exposed with `_total` as vLLM's are.
    COUNTERS: Sequence[tuple[str, str, str]] = (
        ("prefix_cache_queries", "prefix_cache_queries", "Prompt tokens looked up in the prefix cache."),
        ("prefix_cache_hits", "prefix_cache_hits", "Prompt tokens whose K/V the prefix cache held."),
    )

    def __init__(self, backend: Backend, model_name: str) -> None:
        self._backend = backend
        self._labels = [model_name, ENGINE_INDEX]

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        try:
            stats = self._backend.stats()
        except Exception:  # a backend whose stats fail shows no gauges rather than failing the scrape
            return
        for key, name, documentation in self.GAUGES:
            value = stats.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                family = GaugeMetricFamily(PREFIX + name, documentation, labels=LABELS)
                family.add_metric(self._labels, float(value))
                yield family
        for key, name, documentation in self.COUNTERS:
            value = stats.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                counter = CounterMetricFamily(PREFIX + name, documentation, labels=LABELS)
                counter.add_metric(self._labels, float(value))
                yield counter


class LlmMetrics:
    """The per-request LLM metrics of one engine-mode worker, registered on its registry."""

    def __init__(
        self,
        registry: CollectorRegistry,
        model_name: str,
        max_model_len: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.clock = clock
        labels = (model_name, ENGINE_INDEX)

        def counter(name: str, documentation: str) -> Counter:
            return Counter(PREFIX + name, documentation, LABELS, registry=registry).labels(*labels)

        def histogram(name: str, documentation: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(PREFIX + name, documentation, LABELS, registry=registry, buckets=buckets).labels(*labels)

        self.prompt_tokens = counter("prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("generation_tokens", "Number of generation tokens processed.")
        success = Counter(
            PREFIX + "request_success",
            "Count of successfully processed requests.",
            (*LABELS, "finished_reason"),
            registry=registry,
        )
        self.request_success = {ours: success.labels(*labels, theirs) for ours, theirs in FINISHED_REASONS.items()}
        token_buckets = buckets_1_2_5(max_model_len)
        self.request_prompt_tokens = histogram(
            "request_prompt_tokens", "Number of prefill tokens processed.", token_buckets
        )
        self.request_generation_tokens = histogram(
            "request_generation_tokens", "Number of generation tokens processed.", token_buckets
        )
        self.time_to_first_token = histogram(
            "time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS_S
        )
        self.inter_token_latency = histogram(
            "inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", INTER_TOKEN_BUCKETS_S
        )
        self.e2e_request_latency = histogram(
            "e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS_S
        )
        self.request_queue_time = histogram(
            "request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            REQUEST_LATENCY_BUCKETS_S,
        )

    @classmethod
    def register(cls, registry: CollectorRegistry, model_name: str, backend: Backend) -> LlmMetrics:
        """The metrics for a started backend (its limits size the token buckets), gauges included."""
        registry.register(BackendStatsCollector(backend, model_name))
        return cls(registry, model_name, backend.limits.max_model_len)

    def request(self) -> RequestRecorder:
        """A recorder for one request arriving now."""
        return RequestRecorder(self, self.clock())


class RequestRecorder:
    """One request's timeline; `observe` each event as it arrives, `end` if it stops without a final event.

    A request is recorded once, when it ends: request_success{finished_reason} (every reason, aborts included),
    e2e latency, prompt and generation token histograms, and queue time when the backend reported it. Tokens and
    inter-token latencies are recorded as they arrive, so rates stay live during long generations.
    """

    __slots__ = ("prompt_tokens", "_metrics", "_arrival_s", "_last_token_s", "_tokens", "_queue_time_s", "_done")

    def __init__(self, metrics: LlmMetrics, arrival_s: float) -> None:
        self.prompt_tokens = 0  # the request's prompt length, set once it is tokenized
        self._metrics = metrics
        self._arrival_s = arrival_s
        self._last_token_s: float | None = None
        self._tokens = 0
        self._queue_time_s: float | None = None
        self._done = False

    def observe(self, event: TokenEvent) -> None:
        if self._done:
            return
        metrics = self._metrics
        now = metrics.clock()
        if event.queue_time_s is not None:
            self._queue_time_s = event.queue_time_s
        new_tokens = event.generated_tokens - self._tokens
        if new_tokens > 0:
            if self._last_token_s is None:
                metrics.time_to_first_token.observe(now - self._arrival_s)
                metrics.prompt_tokens.inc(self.prompt_tokens)  # the prompt has been prefilled
            else:
                metrics.inter_token_latency.observe(now - self._last_token_s)
            metrics.generation_tokens.inc(new_tokens)
            self._tokens = event.generated_tokens
            self._last_token_s = now
        if event.finished:
            self._finish(event.finish_reason or "error", now)

    def end(self, reason: FinishReason) -> None:
        """The generation stopped without a final event: "abort" (client gone) or "error" (the stream ran dry)."""
        if not self._done:
            self._finish(reason, self._metrics.clock())

    def _finish(self, reason: FinishReason, now: float) -> None:
        self._done = True
        metrics = self._metrics
        metrics.request_success[reason].inc()
        metrics.e2e_request_latency.observe(now - self._arrival_s)
        metrics.request_prompt_tokens.observe(self.prompt_tokens)
        metrics.request_generation_tokens.observe(self._tokens)
        if self._queue_time_s is not None:
            metrics.request_queue_time.observe(self._queue_time_s)
