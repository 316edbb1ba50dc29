"""The per-period values an alarm is evaluated on, read from the metric store: one metric's statistic, or
the returned query of a metric math alarm through GetMetricData's own evaluation.

Blocking (SQLite reads); call off the event loop.
"""

from __future__ import annotations

import json

from modelhost.monitoring.alarms import AlarmConfig
from modelhost.monitoring.context import CloudWatchContext
from modelhost.monitoring.datapoints import StatisticSet
from modelhost.monitoring.errors import InvalidParameterValue
from modelhost.monitoring.metric_data import get_metric_data
from modelhost.monitoring.metric_store import SqliteMetricStore


def period_values(
    store: SqliteMetricStore, config: AlarmConfig, start_s: int, end_s: int, now_s: float
) -> dict[int, float]:
    """The alarm's value for every period in [start_s, end_s) that has data, by period start."""
    if config.metric is not None and config.statistic is not None:
        rows = store.statistics(config.metric, start_s, end_s, config.period_s, now_s, unit=config.unit)
        merged: dict[int, StatisticSet] = {}
        for row in rows:  # several units in one period (no Unit on the alarm): one value
            known = merged.get(row.timestamp_s)
            merged[row.timestamp_s] = row.stats if known is None else known.merge(row.stats)
        return {ts: stats.value(config.statistic) for ts, stats in merged.items()}
    if config.metrics_json is None:
        return {}
    return math_values(store, json.loads(config.metrics_json), start_s, end_s, now_s)


def math_values(
    store: SqliteMetricStore, metrics: list[dict[str, object]], start_s: int, end_s: int, now_s: float
) -> dict[int, float]:
    """The returned query's values over the range; InvalidParameterValue (worded for `Metrics`) when the
    queries cannot be evaluated."""
    ctx = CloudWatchContext(store, "", "", now_s)
    params = {"MetricDataQueries": metrics, "StartTime": float(start_s), "EndTime": float(end_s),
              "ScanBy": "TimestampAscending"}  # fmt: skip
    try:
        result = get_metric_data(ctx, params)
    except InvalidParameterValue as exc:
        raise InvalidParameterValue(exc.message.replace("MetricDataQueries", "Metrics")) from None
    answers = result["MetricDataResults"]
    if not answers:
        return {}
    return {int(ts): float(v) for ts, v in zip(answers[0]["Timestamps"], answers[0]["Values"], strict=True)}
