"""The durable metric store: statistic sets per bucket in SQLite, at 10 s, 60 s and 1 h, rolled up as data arrives.

Each data point is merged into its bucket at every resolution in the same transaction as it is written
(`add`), so the three tables always agree and no compaction pass is needed; `prune(now)` enforces retention.
A metric series is (namespace, name, exact dimensions, unit). Queries (`statistics`) read the finest table
that divides the period and still covers the range, and group buckets into periods inside SQLite.

Blocking: every method does SQLite I/O under one lock; call them off the event loop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhost.errors import ModelhostError
from modelhost.monitoring.alarm_store import SqliteAlarmStore
from modelhost.monitoring.datapoints import (
    Datapoint,
    Dimensions,
    MetricIdentity,
    PeriodStatistics,
    StatisticSet,
)
from modelhost.monitoring.resolutions import HOURLY, RESOLUTIONS, Resolution, aligned_start, choose_resolution

SCHEMA_VERSION = 1
LIST_WINDOW_S = 14 * 86400  # ListMetrics shows metrics with data in the last two weeks, as CloudWatch does
RECENT_WINDOW_S = 3 * 3600  # ListMetrics' RecentlyActive=PT3H


class MetricStoreError(ModelhostError):
    """The metric database could not be opened, read or written (the path and SQLite's reason)."""


@dataclass(frozen=True, slots=True)
class DimensionFilter:
    """ListMetrics' filter: the metric has a dimension `name` (with `value`, when given)."""

    name: str
    value: str | None = None


def _dimensions_text(dimensions: Dimensions) -> str:
    return json.dumps([list(pair) for pair in dimensions], separators=(",", ":"))


def _dimensions_from(text: str) -> Dimensions:
    return tuple((str(name), str(value)) for name, value in json.loads(text))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    dimensions TEXT NOT NULL,
    unit TEXT NOT NULL,
    last_s REAL NOT NULL,
    UNIQUE (namespace, name, dimensions, unit)
);
""" + "".join(
    f"""
CREATE TABLE IF NOT EXISTS {r.table} (
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    count REAL NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;
"""
    for r in RESOLUTIONS
)


class SqliteMetricStore:
    """CloudWatch-style metrics in one SQLite file (the server uses HOME/metrics.db)."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._series_ids: dict[tuple[str, str, str, str], int] = {}
        try:
            self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise MetricStoreError(
                    f"{self._path} has metric schema version {version}; this modelhost reads {SCHEMA_VERSION}."
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise MetricStoreError(f"Cannot open the metric store {self._path}: {exc}") from exc
        self.alarms = SqliteAlarmStore(self._path)  # metric alarms, in the same file

    def close(self) -> None:
        self.alarms.close()
        with self._lock:
            self._db.close()

    def add(self, datapoints: Iterable[Datapoint]) -> int:
        """Merge many data points into their buckets at every resolution, in one transaction; returns how many."""
        points = list(datapoints)
        if not points:
            return 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._add_locked(points)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    self._series_ids.clear()  # ids inserted in the rolled-back transaction are gone
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise MetricStoreError(f"Cannot write to the metric store {self._path}: {exc}") from exc
        return len(points)

    def _add_locked(self, points: list[Datapoint]) -> None:
        merged: dict[Resolution, dict[tuple[int, int], StatisticSet]] = {r: {} for r in RESOLUTIONS}
        last: dict[int, float] = {}
        for point in points:
            series_id = self._series_id(point.metric, point.unit)
            timestamp_s = point.timestamp_s if point.high_resolution else (point.timestamp_s // 60) * 60
            last[series_id] = max(last.get(series_id, timestamp_s), timestamp_s)
            for resolution, buckets in merged.items():
                key = (series_id, resolution.bucket(timestamp_s))
                known = buckets.get(key)
                buckets[key] = point.stats if known is None else known.merge(point.stats)
        for resolution, buckets in merged.items():
            self._db.executemany(
                f"INSERT INTO {resolution.table} (series_id, bucket, count, sum, min, max) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (series_id, bucket) DO UPDATE SET count = count + excluded.count, "
                "sum = sum + excluded.sum, min = min(min, excluded.min), max = max(max, excluded.max)",
                [(sid, bucket, s.sample_count, s.sum, s.minimum, s.maximum) for (sid, bucket), s in buckets.items()],
            )
        self._db.executemany(
            "UPDATE series SET last_s = max(last_s, ?) WHERE id = ?", [(ts, sid) for sid, ts in last.items()]
        )

    def _series_id(self, metric: MetricIdentity, unit: str) -> int:
        key = (metric.namespace, metric.metric_name, _dimensions_text(metric.dimensions), unit)
        known = self._series_ids.get(key)
        if known is not None:
            return known
        self._db.execute(
            "INSERT OR IGNORE INTO series (namespace, name, dimensions, unit, last_s) VALUES (?, ?, ?, ?, 0)", key
        )
        row = self._db.execute(
            "SELECT id FROM series WHERE namespace = ? AND name = ? AND dimensions = ? AND unit = ?", key
        ).fetchone()
        series_id = int(row[0])
        self._series_ids[key] = series_id
        return series_id

    def statistics(
        self,
        metric: MetricIdentity,
        start_s: float,
        end_s: float,
        period_s: int,
        now_s: float,
        unit: str | None = None,
    ) -> list[PeriodStatistics]:
        """The statistic set of every period in [start_s, end_s) that has data, oldest first, one per unit.

        Dimensions match exactly (CloudWatch's rule). The period must have passed `resolutions.period_problem`.
        Periods start at StartTime rounded down as CloudWatch rounds it (`resolutions.aligned_start`).
        """
        resolution = choose_resolution(start_s, period_s, now_s)
        origin = aligned_start(start_s, period_s, resolution, now_s)
        query = "SELECT id, unit FROM series WHERE namespace = ? AND name = ? AND dimensions = ?"
        args: list[object] = [metric.namespace, metric.metric_name, _dimensions_text(metric.dimensions)]
        if unit is not None:
            query += " AND unit = ?"
            args.append(unit)
        answer: list[PeriodStatistics] = []
        for series_id, series_unit in self._read(query, args):
            answer.extend(self._periods(resolution, int(series_id), str(series_unit), origin, end_s, period_s))
        answer.sort(key=lambda p: (p.timestamp_s, p.unit))
        return answer

    def _periods(
        self, resolution: Resolution, series_id: int, unit: str, origin: int, end_s: float, period_s: int
    ) -> list[PeriodStatistics]:
        # One range scan of the series' primary key; when the period is the bucket, each bucket is a period.
        if period_s == resolution.seconds:
            rows = self._read(
                f"SELECT bucket, count, sum, min, max FROM {resolution.table} "
                "WHERE series_id = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
                [series_id, origin, end_s],
            )
        else:
            rows = self._read(
                f"SELECT ? + ((bucket - ?) / ?) * ? AS at, sum(count), sum(sum), min(min), max(max) "
                f"FROM {resolution.table} WHERE series_id = ? AND bucket >= ? AND bucket < ? GROUP BY at ORDER BY at",
                [origin, origin, period_s, period_s, series_id, origin, end_s],
            )
        return [PeriodStatistics(int(at), unit, StatisticSet(n, total, low, high)) for at, n, total, low, high in rows]

    def list_metrics(
        self,
        now_s: float,
        namespace: str | None = None,
        metric_name: str | None = None,
        filters: tuple[DimensionFilter, ...] = (),
        recently_active: bool = False,
    ) -> list[MetricIdentity]:
        """Metrics with data in the last two weeks (3 hours when `recently_active`), sorted, each once
        whatever its units; every filter must match one of the metric's dimensions (others may be present)."""
        since = now_s - (RECENT_WINDOW_S if recently_active else LIST_WINDOW_S)
        query = "SELECT DISTINCT namespace, name, dimensions FROM series WHERE last_s >= ?"
        args: list[object] = [since]
        if namespace is not None:
            query += " AND namespace = ?"
            args.append(namespace)
        if metric_name is not None:
            query += " AND name = ?"
            args.append(metric_name)
        metrics = [MetricIdentity(ns, name, _dimensions_from(dims)) for ns, name, dims in self._read(query, args)]
        matching = [m for m in metrics if all(_matches(m.dimensions, f) for f in filters)]
        return sorted(matching, key=lambda m: (m.namespace, m.metric_name, m.dimensions))

    def prune(self, now_s: float) -> int:
        """Remove buckets past each resolution's retention and series with no data left; returns buckets removed."""
        removed = 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                ids = [row[0] for row in self._db.execute("SELECT id FROM series")]
                for resolution in RESOLUTIONS:
                    cutoff = now_s - resolution.retention_s
                    before = self._db.total_changes
                    self._db.executemany(
                        f"DELETE FROM {resolution.table} WHERE series_id = ? AND bucket < ?",
                        [(sid, cutoff) for sid in ids],
                    )
                    removed += self._db.total_changes - before
                self._db.execute("DELETE FROM series WHERE last_s < ?", (now_s - HOURLY.retention_s,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise MetricStoreError(f"Cannot prune the metric store {self._path}: {exc}") from exc
            finally:
                self._series_ids.clear()
        return removed

    def _read(self, query: str, args: list[object]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(query, args))
            except sqlite3.Error as exc:
                raise MetricStoreError(f"Cannot read the metric store {self._path}: {exc}") from exc


def _matches(dimensions: Dimensions, wanted: DimensionFilter) -> bool:
    return any(name == wanted.name and (wanted.value is None or value == wanted.value) for name, value in dimensions)
