"""Times the metric store: writing a day of 10 s data for one metric in batches, then querying the day.

    .venv/bin/python benchmarks/metric_store.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from modelhost.monitoring.datapoints import Datapoint, MetricIdentity, StatisticSet, dimensions_of
from modelhost.monitoring.metric_store import SqliteMetricStore

T0 = 1_700_000_000 - (1_700_000_000 % 86400)
METRIC = MetricIdentity("AWS/SageMaker", "ModelLatency", dimensions_of([("EndpointName", "e"), ("VariantName", "v")]))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteMetricStore(Path(folder) / "metrics.db")
        points = [
            Datapoint(METRIC, "Microseconds", T0 + i * 10, StatisticSet.of_value(i % 100), high_resolution=True)
            for i in range(8640)
        ]
        started = time.perf_counter()
        for i in range(0, len(points), 360):  # one flush per hour of data
            store.add(points[i : i + 360])
        print(f"add: 8640 points in 24 batches: {(time.perf_counter() - started) * 1000:.1f} ms")
        now = T0 + 86400
        for period in (10, 60, 300, 3600):
            times = []
            for _ in range(20):
                started = time.perf_counter()
                answer = store.statistics(METRIC, T0, T0 + 86400, period, now)
                times.append(time.perf_counter() - started)
            print(f"query one day, period {period:>4} s: {len(answer):>5} periods, median "
                  f"{statistics.median(times) * 1000:.2f} ms, max {max(times) * 1000:.2f} ms")
        store.close()


if __name__ == "__main__":
    main()
