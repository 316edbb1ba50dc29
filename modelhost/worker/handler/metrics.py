"""Handler mode's request metrics: invocations by HTTP status and their duration, on the worker's registry.

A request is recorded once its response has been sent (a streamed Output: after its last chunk), so the
duration covers the queue, the handler call and the transfer, and the status is the one the client got.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Handler calls range from milliseconds (a classifier) to minutes (an LLM in model.py).
DURATION_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip


class HandlerMetrics:
    """`modelhost_worker_requests_total{status}` and `modelhost_worker_request_duration_seconds`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "modelhost_worker_requests",
            "Invocations answered by this worker's handler, by HTTP status.",
            ("status",),
            registry=registry,
        )
        self.duration = Histogram(
            "modelhost_worker_request_duration_seconds",
            "Seconds from the request's arrival to the last byte of its response.",
            registry=registry,
            buckets=DURATION_BUCKETS_S,
        )

    def record(self, status: int, duration_s: float) -> None:
        self.requests.labels(str(status)).inc()
        self.duration.observe(duration_s)
