"""What `modelhost metrics` asks CloudWatch and shows: SageMaker's endpoint metrics per variant and period (pure).

The queries are GetMetricData MetricStat queries with dimensions EndpointName + VariantName; the answers become
one row per period that has data and an overall row per variant: sums added, latency averages weighted by their
sample counts, maxima the largest, utilisation the mean of the periods' averages. Latencies arrive in
microseconds (SageMaker's unit) and are shown in milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

INVOCATION_NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"


@dataclass(frozen=True, slots=True)
class Column:
    key: str  # the field's name in rows and JSON
    namespace: str
    metric: str
    stat: str
    header: str  # "" for values used only to weight others
    scale: float = 1.0  # shown = value * scale


COLUMNS = (
    Column("invocations", INVOCATION_NAMESPACE, "Invocations", "Sum", "INVOC"),
    Column("errors_4xx", INVOCATION_NAMESPACE, "Invocation4XXErrors", "Sum", "4XX"),
    Column("errors_5xx", INVOCATION_NAMESPACE, "Invocation5XXErrors", "Sum", "5XX"),
    Column("model_errors", INVOCATION_NAMESPACE, "InvocationModelErrors", "Sum", "MODEL_ERR"),
    Column("model_latency_avg_ms", INVOCATION_NAMESPACE, "ModelLatency", "Average", "LAT_AVG_MS", 0.001),
    Column("model_latency_max_ms", INVOCATION_NAMESPACE, "ModelLatency", "Maximum", "LAT_MAX_MS", 0.001),
    Column("model_latency_samples", INVOCATION_NAMESPACE, "ModelLatency", "SampleCount", ""),
    Column("overhead_latency_avg_ms", INVOCATION_NAMESPACE, "OverheadLatency", "Average", "OVH_AVG_MS", 0.001),
    Column("overhead_latency_samples", INVOCATION_NAMESPACE, "OverheadLatency", "SampleCount", ""),
    Column("cpu_utilization", INSTANCE_NAMESPACE, "CPUUtilization", "Average", "CPU%"),
    Column("memory_utilization", INSTANCE_NAMESPACE, "MemoryUtilization", "Average", "MEM%"),
    Column("disk_utilization", INSTANCE_NAMESPACE, "DiskUtilization", "Average", "DISK%"),
    Column("gpu_utilization", INSTANCE_NAMESPACE, "GPUUtilization", "Average", "GPU%"),
    Column("gpu_memory_utilization", INSTANCE_NAMESPACE, "GPUMemoryUtilization", "Average", "GPU_MEM%"),
)
SUMMED = {"invocations", "errors_4xx", "errors_5xx", "model_errors", "model_latency_samples",
          "overhead_latency_samples"}  # fmt: skip
WEIGHTED = {"model_latency_avg_ms": "model_latency_samples", "overhead_latency_avg_ms": "overhead_latency_samples"}
MAXIMA = {"model_latency_max_ms"}
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'90s', '30m', '1h', '1d', '1h30m' as seconds; ValueError for anything else."""
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip() or not any(int(n) for n, _ in parts):
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m, 1h or 1d")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


@dataclass(frozen=True, slots=True)
class VariantMetrics:
    """One variant's values: by period start, then by column key (absent where CloudWatch had no data)."""

    variant: str
    periods: dict[datetime, dict[str, float]] = field(default_factory=dict)

    def overall(self) -> dict[str, float]:
        """The whole window's values (see the module docstring for how each column combines)."""
        result: dict[str, float] = {}
        for column in COLUMNS:
            values = [(row[column.key], row) for row in self.periods.values() if column.key in row]
            if not values:
                continue
            if column.key in SUMMED:
                result[column.key] = sum(v for v, _ in values)
            elif column.key in MAXIMA:
                result[column.key] = max(v for v, _ in values)
            elif column.key in WEIGHTED:
                weights = [(v, row.get(WEIGHTED[column.key], 0.0)) for v, row in values]
                total = sum(w for _, w in weights)
                result[column.key] = sum(v * w for v, w in weights) / total if total else 0.0
            else:
                result[column.key] = sum(v for v, _ in values) / len(values)
        return result


def query_id(variant_index: int, column_index: int) -> str:
    return f"v{variant_index}c{column_index}"


def build_queries(endpoint: str, variants: list[str], period_s: int) -> list[dict[str, Any]]:
    """One MetricStat query per variant and column (CloudWatch takes up to 500 in one request)."""
    queries = []
    for vi, variant in enumerate(variants):
        dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
        for ci, column in enumerate(COLUMNS):
            metric = {"Namespace": column.namespace, "MetricName": column.metric, "Dimensions": dimensions}
            stat = {"Metric": metric, "Period": period_s, "Stat": column.stat}
            queries.append({"Id": query_id(vi, ci), "MetricStat": stat, "ReturnData": True})
    return queries


def collect(variants: list[str], results: list[dict[str, Any]]) -> list[VariantMetrics]:
    """GetMetricData's MetricDataResults (every page's) as VariantMetrics, variants with no data left out."""
    by_id = {query_id(vi, ci): (vi, column) for vi in range(len(variants)) for ci, column in enumerate(COLUMNS)}
    found = [VariantMetrics(variant) for variant in variants]
    for result in results:
        vi, column = by_id[result["Id"]]
        periods = found[vi].periods
        for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=True):
            periods.setdefault(stamp, {})[column.key] = float(value) * column.scale
    for metrics in found:
        for stamp in list(metrics.periods):
            metrics.periods[stamp] = dict(sorted(metrics.periods[stamp].items(), key=lambda kv: _order(kv[0])))
    return [metrics for metrics in found if metrics.periods]


def _order(key: str) -> int:
    return next(i for i, column in enumerate(COLUMNS) if column.key == key)


def _cell(key: str, values: dict[str, float]) -> str:
    if key not in values:
        return "-"
    value = values[key]
    return f"{value:.0f}" if key in SUMMED else f"{value:.1f}"


def render_variant(metrics: VariantMetrics) -> list[str]:
    """The variant's table: a row per period (local time), then the overall row; columns no period has are left
    out (GPU ones on a host without GPUs)."""
    shown = [c for c in COLUMNS if c.header and any(c.key in row for row in metrics.periods.values())]
    rows = [["TIME", *(c.header for c in shown)]]
    for stamp in sorted(metrics.periods):
        rows.append([stamp.astimezone().strftime("%Y-%m-%d %H:%M:%S"), *(_cell(c.key, metrics.periods[stamp])
                                                                          for c in shown)])  # fmt: skip
    overall = metrics.overall()
    rows.append(["overall", *(_cell(c.key, overall) for c in shown)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"variant {metrics.variant}"]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())  # fmt: skip
    return lines


def to_json(endpoint: str, start: datetime, end: datetime, period_s: int, found: list[VariantMetrics]) -> Any:
    return {
        "endpoint": endpoint,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "period_s": period_s,
        "variants": [
            {
                "variant": metrics.variant,
                "periods": [{"time": stamp.isoformat(), **metrics.periods[stamp]} for stamp in sorted(metrics.periods)],
                "overall": metrics.overall(),
            }
            for metrics in found
        ],
    }
