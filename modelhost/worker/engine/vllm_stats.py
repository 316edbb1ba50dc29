"""What the vLLM backend reads from vLLM's own statistics: the scheduler's gauges (through a stat logger vLLM
calls after each engine step) and a request's time in the queue (from `RequestOutput.metrics`).

vLLM is optional and absent from this repository's environment: the readers below take plain objects, so they
are tested without it; only `stat_logger_factory` imports vLLM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class SchedulerSnapshot:
    """The last SchedulerStats vLLM reported (None until it has): what Backend.stats() shows as gauges."""

    running: int | None = None  # requests in the running batch
    waiting: int | None = None  # requests waiting to be scheduled
    kv_cache_usage: float | None = None  # share of KV-cache blocks in use, 0..1

    def update(self, scheduler_stats: Any) -> None:
        """Take vLLM's SchedulerStats (v1: `kv_cache_usage`; releases before 0.11 name it `gpu_cache_usage`)."""
        self.running = int(scheduler_stats.num_running_reqs)
        self.waiting = int(scheduler_stats.num_waiting_reqs)
        usage = getattr(scheduler_stats, "kv_cache_usage", None)
        if usage is None:
            usage = getattr(scheduler_stats, "gpu_cache_usage", None)
        self.kv_cache_usage = float(usage) if usage is not None else None

    def as_stats(self) -> dict[str, Any]:
        names = (("running", self.running), ("waiting", self.waiting), ("kv_cache_usage", self.kv_cache_usage))
        return {key: value for key, value in names if value is not None}


def queue_time_s(metrics: Any) -> float | None:
    """Seconds a request waited before vLLM first scheduled it, from `RequestOutput.metrics`; None when vLLM did
    not report it (stats disabled, or not scheduled yet).

    vLLM v1 gives RequestStateStats (engine-core monotonic `queued_ts` and `scheduled_ts`, 0.0 while unset); the
    v0 engine gave RequestMetrics with `time_in_queue`.
    """
    if metrics is None:
        return None
    queued, scheduled = getattr(metrics, "queued_ts", 0.0), getattr(metrics, "scheduled_ts", 0.0)
    if isinstance(queued, (int, float)) and isinstance(scheduled, (int, float)) and queued > 0 and scheduled > 0:
        return max(0.0, float(scheduled) - float(queued))
    in_queue = getattr(metrics, "time_in_queue", None)
    return float(in_queue) if isinstance(in_queue, (int, float)) else None


def stat_logger_factory(snapshot: SchedulerSnapshot, engine_class: Any) -> Callable[..., Any] | None:
    """A vLLM v1 stat-logger factory for `engine_class.from_engine_args(args, stat_loggers=[factory])` that keeps
    `snapshot` current; None unless `engine_class` is vLLM v1's AsyncLLM (the v0 engine took a dict of loggers)."""
    try:
        from vllm.v1.engine.async_llm import AsyncLLM
        from vllm.v1.metrics.loggers import StatLoggerBase
    except ImportError:
        return None
    if not (isinstance(engine_class, type) and issubclass(engine_class, AsyncLLM)):
        return None

    class SchedulerTap(StatLoggerBase):  # type: ignore[misc]  # vLLM is untyped here
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(self, scheduler_stats: Any, iteration_stats: Any, *args: Any, **kwargs: Any) -> None:
            if scheduler_stats is not None:
                snapshot.update(scheduler_stats)

        def log_engine_initialized(self) -> None:
            return None

    def factory(vllm_config: Any, engine_index: int = 0) -> Any:
        return SchedulerTap(vllm_config, engine_index)

    return factory
