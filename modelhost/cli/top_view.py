"""What `modelhost top` shows: one row per endpoint variant from two scrapes, as a table or JSON (pure)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from modelhost.cli.scrape import (
    Scrape,
    bucket_increases_by,
    histogram_quantile,
    increases_by,
    sums_by,
)

BY_VARIANT = ("endpoint", "variant")
INVOCATIONS = "modelhost_invocations_total"
ERRORS = "modelhost_invocation_errors_total"
MODEL_LATENCY_BUCKETS = "modelhost_model_latency_seconds_bucket"
GENERATION_TOKENS = "modelhost:generation_tokens_total"
DESIRED = "modelhost_variant_desired_instances"
CURRENT = "modelhost_variant_current_instances"
CONCURRENT = "modelhost_concurrent_requests"
CPU = "modelhost_instance_cpu_utilization_percent"
MEMORY = "modelhost_instance_memory_bytes"
GPU = "modelhost_instance_gpu_utilization_percent"


@dataclass(frozen=True, slots=True)
class VariantRow:
    """One endpoint variant over the interval between two scrapes; rates are per second of that interval."""

    endpoint: str
    variant: str  # "" for requests that ended before a variant was chosen
    current_instances: int  # serving now
    desired_instances: int
    requests_per_s: float
    invocations_in_interval: float  # the increase of the invocation count between the scrapes
    invocations_total: float  # since the server started
    errors_per_s: float  # 4xx + 5xx
    errors_total: float
    model_latency_p50_s: float | None  # None: no request finished in the interval
    model_latency_p99_s: float | None
    tokens_per_s: float | None  # generated tokens; None when no instance runs the engine
    concurrent_requests: float  # in flight or queued at the router
    cpu_percent: float  # summed over the variant's instances (100 = one core)
    memory_bytes: float  # resident, summed over the variant's instances
    gpu_percent: float | None  # summed over the instances' GPUs; None without GPUs


@dataclass(frozen=True, slots=True)
class TopSnapshot:
    interval_s: float  # seconds between the two scrapes
    rows: tuple[VariantRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {"interval_s": round(self.interval_s, 3), "variants": [asdict(row) for row in self.rows]}


def _keys(after: Scrape) -> list[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for name in (DESIRED, CURRENT, INVOCATIONS):
        found.update(sums_by(after.series(name), BY_VARIANT))
    return sorted(found)


def _quantiles(before: Scrape, after: Scrape) -> dict[tuple[str, ...], tuple[float | None, float | None]]:
    buckets = bucket_increases_by(before.series(MODEL_LATENCY_BUCKETS), after.series(MODEL_LATENCY_BUCKETS),
                                  BY_VARIANT)  # fmt: skip
    return {key: (histogram_quantile(0.5, b), histogram_quantile(0.99, b)) for key, b in buckets.items()}


def snapshot(before: Scrape, after: Scrape) -> TopSnapshot:
    """Every endpoint variant the later scrape knows, with rates over the time between the two."""
    elapsed = after.at_s - before.at_s
    if elapsed <= 0:
        raise ValueError("the second scrape must come after the first")

    def increase(name: str) -> dict[tuple[str, ...], float]:
        return increases_by(before.series(name), after.series(name), BY_VARIANT)

    def total(name: str) -> dict[tuple[str, ...], float]:
        return sums_by(after.series(name), BY_VARIANT)

    calls, errors, tokens = increase(INVOCATIONS), increase(ERRORS), increase(GENERATION_TOKENS)
    calls_total, errors_total = total(INVOCATIONS), total(ERRORS)
    desired, current, concurrent = total(DESIRED), total(CURRENT), total(CONCURRENT)
    cpu, memory, gpu = total(CPU), total(MEMORY), total(GPU)
    quantiles = _quantiles(before, after)
    rows = []
    for key in _keys(after):
        p50, p99 = quantiles.get(key, (None, None))
        rows.append(VariantRow(
            endpoint=key[0], variant=key[1],
            current_instances=int(current.get(key, 0)), desired_instances=int(desired.get(key, 0)),
            requests_per_s=calls.get(key, 0.0) / elapsed, invocations_in_interval=calls.get(key, 0.0),
            invocations_total=calls_total.get(key, 0.0),
            errors_per_s=errors.get(key, 0.0) / elapsed, errors_total=errors_total.get(key, 0.0),
            model_latency_p50_s=p50, model_latency_p99_s=p99,
            tokens_per_s=tokens[key] / elapsed if key in tokens else None,
            concurrent_requests=concurrent.get(key, 0.0),
            cpu_percent=cpu.get(key, 0.0), memory_bytes=memory.get(key, 0.0), gpu_percent=gpu.get(key),
        ))  # fmt: skip
    return TopSnapshot(elapsed, tuple(rows))


def format_seconds(value: float | None) -> str:
    """A latency in the unit that reads best: 850µs, 12.5ms, 1.25s; '-' when unknown."""
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return ">max"
    if value < 0.001:
        return f"{value * 1e6:.0f}µs"
    if value < 1:
        return f"{value * 1e3:.1f}ms"
    return f"{value:.2f}s"


def format_bytes(value: float) -> str:
    for unit, size in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}B"


def format_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


HEADERS = ("ENDPOINT", "VARIANT", "INST", "REQ/S", "P50", "P99", "TOK/S", "ERR/S", "CONC", "CPU%", "MEM")


def _cells(row: VariantRow, with_gpu: bool) -> list[str]:
    cells = [
        row.endpoint, row.variant or "-", f"{row.current_instances}/{row.desired_instances}",
        format_rate(row.requests_per_s), format_seconds(row.model_latency_p50_s),
        format_seconds(row.model_latency_p99_s), format_rate(row.tokens_per_s), format_rate(row.errors_per_s),
        f"{row.concurrent_requests:.0f}", f"{row.cpu_percent:.0f}", format_bytes(row.memory_bytes),
    ]  # fmt: skip
    if with_gpu:
        cells.append("-" if row.gpu_percent is None else f"{row.gpu_percent:.0f}")
    return cells


def render_table(top: TopSnapshot) -> list[str]:
    """The snapshot as aligned lines: names left, numbers right; a GPU% column only where a GPU is reported."""
    if not top.rows:
        return ["no endpoints (deploy one with `modelhost deploy`)"]
    with_gpu = any(row.gpu_percent is not None for row in top.rows)
    headers = [*HEADERS, "GPU%"] if with_gpu else list(HEADERS)
    table = [headers] + [_cells(row, with_gpu) for row in top.rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    lines = []
    for line in table:
        pairs = enumerate(zip(line, widths, strict=True))
        cells = [cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in pairs]
        lines.append("  ".join(cells).rstrip())
    return lines
