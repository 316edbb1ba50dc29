"""Times what a worker's metrics cost: recording one engine-mode request (per token and per request), one
handler-mode request, and rendering /metrics (the scrape, which reads Backend.stats() and /proc).

    .venv/bin/python benchmarks/worker_metrics.py
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from prometheus_client.exposition import generate_latest

from modelhost.worker.engine.types import ModelLimits, TokenEvent
from modelhost.worker.engine_mode.metrics import LlmMetrics
from modelhost.worker.handler.metrics import HandlerMetrics
from modelhost.worker.metrics import worker_registry

TOKENS = 100  # per request
REQUESTS = 2000


class StatsOnly:
    limits = ModelLimits(max_model_len=2048, max_input_tokens=2047, max_batch_size=16)

    def stats(self) -> dict[str, Any]:
        return {"running": 3, "waiting": 1, "kv_cache_usage": 0.25}


def events(tokens: int) -> list[TokenEvent]:
    return [
        TokenEvent("r", 1000 + i, " w", -0.5, i == tokens, "length" if i == tokens else None, 40, i, queue_time_s=0.01)
        for i in range(1, tokens + 1)
    ]


def per_call_us(run: Any, repeats: int) -> tuple[float, float]:
    """(median, p99) microseconds per call of `run` over `repeats` calls, in 20 rounds."""
    rounds = []
    for _ in range(20):
        started = time.perf_counter()
        for _ in range(repeats // 20):
            run()
        rounds.append((time.perf_counter() - started) / (repeats // 20) * 1e6)
    rounds.sort()
    return statistics.median(rounds), rounds[-1]


def main() -> None:
    registry = worker_registry()
    metrics = LlmMetrics.register(registry, "bench", StatsOnly())  # type: ignore[arg-type]
    stream = events(TOKENS)
    one_token = events(1)

    def request_of(stream: list[TokenEvent]) -> None:
        recorder = metrics.request()
        recorder.prompt_tokens = 40
        for event in stream:
            recorder.observe(event)

    median, worst = per_call_us(lambda: request_of(stream), REQUESTS)
    print(
        f"engine mode, one request of {TOKENS} tokens: median {median:.1f} us ({median / TOKENS:.2f} us per token), "
        f"slowest round {worst:.1f} us"
    )
    median, worst = per_call_us(lambda: request_of(one_token), REQUESTS * 10)
    print(f"engine mode, one request of 1 token (the per-request part): median {median:.2f} us, slowest {worst:.2f} us")
    handler = HandlerMetrics(worker_registry())
    median, worst = per_call_us(lambda: handler.record(200, 0.012), REQUESTS * 10)
    print(f"handler mode, one request: median {median:.2f} us, slowest round {worst:.2f} us")
    median, worst = per_call_us(lambda: generate_latest(registry), 200)
    size = len(generate_latest(registry))
    print(f"scrape (render /metrics, {size} bytes): median {median:.0f} us, slowest round {worst:.0f} us")


if __name__ == "__main__":
    main()
