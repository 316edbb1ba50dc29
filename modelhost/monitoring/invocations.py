"""Invocation metrics: what the runtime and OpenAI edges record for every request that reached an endpoint,
exposed two ways from one record call.

- Prometheus (the server's /metrics): counters and latency histograms labelled by endpoint and variant.
- CloudWatch (namespace AWS/SageMaker, dimensions EndpointName + VariantName): SageMaker's metrics with its
  semantics, accumulated in memory per 10-second window and handed to the metric store by `drain()`:
  Invocations (1 per request, Sum), InvocationsPerInstance (1/instances per request), Invocation4XXErrors /
  Invocation5XXErrors / InvocationModelErrors (1 or 0 per request: Sum counts, Average is the rate),
  ModelLatency and OverheadLatency (microseconds per request), all high resolution.

What counts as what (SageMaker's definitions, docs/observability.md):
- a request the model answered with a non-2xx status (ModelError, 424 to the client) is a model error, and a
  4XX or 5XX error by the model's own status; a request whose worker broke or timed out is a model error only;
- a request refused by modelhost itself (bad input, throttled, no instance ready) counts by the status the
  client got: 4XX (throttles included, also counted as throttles) or 5XX;
- ModelLatency is the worker's part: from sending the request to the worker until its whole answer (for
  streams, its last part) arrived; OverheadLatency is the rest of the time modelhost held the request.

Recording costs a few dictionary lookups and counter increments (benchmarks/router_overhead.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

from modelhost.monitoring.datapoints import Datapoint, MetricIdentity, StatisticSet, dimensions_of

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
WINDOW_S = 10  # CloudWatch accumulation window: high-resolution data points every 10 s
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 120.0, 300.0)  # fmt: skip
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


@dataclass(slots=True)
class Timing:
    """When a request arrived and when its worker had it (perf_counter seconds); the router fills the model part."""

    started: float = field(default_factory=time.perf_counter)
    model_started: float | None = None
    model_ended: float | None = None
    cold_start_s: float = 0.0  # how long it waited for its variant to start from zero instances

    def model_s(self) -> float | None:
        if self.model_started is None or self.model_ended is None:
            return None
        return max(0.0, self.model_ended - self.model_started)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one request ended, as the edge saw it."""

    status: int  # what the client got
    model_status: int | None = None  # the worker's status when it answered non-2xx (ModelError); 0: broke/timed out
    throttled: bool = False
    cache: str | None = None  # "hit" | "miss" on endpoints that cache results


def error_class(outcome: Outcome) -> str | None:
    """"4xx", "5xx" or None: which SageMaker error count a request adds to (pure)."""
    if outcome.model_status is not None:
        if 400 <= outcome.model_status < 500:
            return "4xx"
        return "5xx" if outcome.model_status >= 500 else None
    if 400 <= outcome.status < 500:
        return "4xx"
    return "5xx" if outcome.status >= 500 else None


class _Window:
    """One (endpoint, variant)'s requests in one 10 s window, as SageMaker's per-request values accumulate."""

    __slots__ = ("count", "errors_4xx", "errors_5xx", "model_errors", "model_us", "overhead_us", "per_instance")

    def __init__(self) -> None:
        self.count = 0
        self.errors_4xx = 0
        self.errors_5xx = 0
        self.model_errors = 0
        self.per_instance: StatisticSet | None = None
        self.model_us: StatisticSet | None = None
        self.overhead_us: StatisticSet | None = None


def _add(stats: StatisticSet | None, value: float) -> StatisticSet:
    one = StatisticSet.of_value(value)
    return one if stats is None else stats.merge(one)


def _zero_one(count: int, ones: int) -> StatisticSet:
    """`count` samples of which `ones` are 1 and the rest 0."""
    return StatisticSet(float(count), float(ones), 0.0 if ones < count else 1.0, 1.0 if ones else 0.0)


class InvocationMetrics:
    """The one recorder of invocation outcomes (thread-safe; called on the event loop)."""

    def __init__(self, registry: CollectorRegistry, now: Callable[[], float] = time.time) -> None:
        labels = ("endpoint", "variant")
        self._now = now
        self._invocations = Counter("modelhost_invocations", "Requests to an endpoint's variant.", labels,
                                    registry=registry)  # fmt: skip
        self._errors = Counter("modelhost_invocation_errors", "Requests answered 4xx or 5xx (SageMaker's "
                               "Invocation4XXErrors / Invocation5XXErrors).", (*labels, "class"),
                               registry=registry)  # fmt: skip
        self._model_errors = Counter("modelhost_invocation_model_errors", "Requests the model did not answer with "
                                     "2xx (SageMaker's InvocationModelErrors).", labels, registry=registry)  # fmt: skip
        self._throttles = Counter("modelhost_invocation_throttles", "Requests refused with ThrottlingException "
                                  "(every instance busy and the queue full).", labels, registry=registry)  # fmt: skip
        self._cache = Counter("modelhost_result_cache_requests", "Requests on endpoints that cache results, by "
                              "hit or miss.", (*labels, "result"), registry=registry)  # fmt: skip
        self._model_latency = Histogram("modelhost_model_latency_seconds", "Time the worker took to answer "
                                        "(SageMaker's ModelLatency).", labels, buckets=LATENCY_BUCKETS,
                                        registry=registry)  # fmt: skip
        self._overhead = Histogram("modelhost_overhead_latency_seconds", "Time modelhost added to the model's "
                                   "(SageMaker's OverheadLatency).", labels, buckets=OVERHEAD_BUCKETS,
                                   registry=registry)  # fmt: skip
        self._lock = threading.Lock()
        self._windows: dict[tuple[int, str, str], _Window] = {}

    def record(self, endpoint: str, variant: str, outcome: Outcome, timing: Timing, instances: int = 1) -> None:
        """One request's outcome. `variant` is "" when the request ended before a variant was chosen
        (Prometheus only: SageMaker's metrics always name the variant)."""
        ended = time.perf_counter()
        total_s = max(0.0, ended - timing.started)
        model_s = timing.model_s()
        kind = error_class(outcome)
        self._invocations.labels(endpoint, variant).inc()
        if kind is not None:
            self._errors.labels(endpoint, variant, kind).inc()
        if outcome.model_status is not None:
            self._model_errors.labels(endpoint, variant).inc()
        if outcome.throttled:
            self._throttles.labels(endpoint, variant).inc()
        if outcome.cache is not None:
            self._cache.labels(endpoint, variant, outcome.cache).inc()
        if model_s is not None:
            self._model_latency.labels(endpoint, variant).observe(model_s)
            self._overhead.labels(endpoint, variant).observe(max(0.0, total_s - model_s))
        if not variant:
            return
        window = int(self._now() // WINDOW_S) * WINDOW_S
        with self._lock:
            acc = self._windows.get((window, endpoint, variant))
            if acc is None:
                acc = self._windows[(window, endpoint, variant)] = _Window()
            acc.count += 1
            acc.per_instance = _add(acc.per_instance, 1.0 / max(1, instances))
            acc.errors_4xx += kind == "4xx"
            acc.errors_5xx += kind == "5xx"
            acc.model_errors += outcome.model_status is not None
            if model_s is not None:
                acc.model_us = _add(acc.model_us, model_s * 1e6)
                acc.overhead_us = _add(acc.overhead_us, max(0.0, total_s - model_s) * 1e6)

    def drain(self, *, everything: bool = False) -> list[Datapoint]:
        """The CloudWatch data points of the windows that have ended (all of them with `everything`, at
        shutdown), removed from memory."""
        current = int(self._now() // WINDOW_S) * WINDOW_S
        with self._lock:
            done = [key for key in self._windows if everything or key[0] < current]
            taken = [(key, self._windows.pop(key)) for key in done]
        points: list[Datapoint] = []
        for (window, endpoint, variant), acc in taken:
            dims = dimensions_of((("EndpointName", endpoint), ("VariantName", variant)))

            def point(name: str, unit: str, stats: StatisticSet, dims: tuple[tuple[str, str], ...] = dims,
                      window: int = window) -> Datapoint:  # fmt: skip
                return Datapoint(MetricIdentity(SAGEMAKER_NAMESPACE, name, dims), unit, float(window), stats, True)

            n = acc.count
            points += [
                point("Invocations", "None", StatisticSet(float(n), float(n), 1.0, 1.0)),
                point("InvocationsPerInstance", "None", acc.per_instance or StatisticSet(float(n), 0.0, 0.0, 0.0)),
                point("Invocation4XXErrors", "None", _zero_one(n, acc.errors_4xx)),
                point("Invocation5XXErrors", "None", _zero_one(n, acc.errors_5xx)),
                point("InvocationModelErrors", "None", _zero_one(n, acc.model_errors)),
            ]
            if acc.model_us is not None and acc.overhead_us is not None:
                points.append(point("ModelLatency", "Microseconds", acc.model_us))
                points.append(point("OverheadLatency", "Microseconds", acc.overhead_us))
        return points
