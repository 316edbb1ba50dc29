"""Monitoring as the server runs it: one owner for the metric registry, the invocation recorder, the
instance sampler, the durable metric store (HOME/metrics.db) and the task that moves samples into it.

Every 10 s the task samples the serving workers (CPU, memory, GPU, disk), drains the invocation windows
that ended and the routers' concurrency, asks every added source (`add_source`: async inference's backlog,
...) for its data points, and writes them in one transaction (off the event loop); every 10
minutes it prunes data past CloudWatch's retention. At shutdown what is still in memory is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, disable_created_metrics

from modelhost.concurrency import run_blocking
from modelhost.monitoring.alarm_evaluator import AlarmEvaluator
from modelhost.monitoring.alarms import AlarmStoreError
from modelhost.monitoring.datapoints import Datapoint, MetricIdentity, StatisticSet, dimensions_of
from modelhost.monitoring.exposition import Exposition, FleetCollector, ScrapeTarget, VariantCounts
from modelhost.monitoring.instances import InstanceSampler, WatchedWorker, instance_datapoints
from modelhost.monitoring.invocations import SAGEMAKER_NAMESPACE, InvocationMetrics
from modelhost.monitoring.metric_store import MetricStoreError, SqliteMetricStore
from modelhost.scheduler.launchers.base import Worker

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 10.0
PRUNE_INTERVAL_S = 600.0
STORE_TIMEOUT_S = 60.0


def concurrency_datapoints(variants: list[VariantCounts], timestamp_s: float) -> list[Datapoint]:
    """ConcurrentRequestsPerModel: one sample per variant of what is in flight or queued at the router."""
    return [
        Datapoint(
            MetricIdentity(SAGEMAKER_NAMESPACE, "ConcurrentRequestsPerModel",
                           dimensions_of((("EndpointName", v.endpoint), ("VariantName", v.variant)))),
            "None", timestamp_s, StatisticSet.of_value(float(v.concurrent)), True,
        )  # fmt: skip
        for v in variants
    ]


def open_metric_store(path: Path) -> SqliteMetricStore:
    """HOME/metrics.db; one that cannot be opened (damaged, another schema) is moved aside to
    `metrics.db.unreadable-<time>` and a new one started: metrics must never keep the server from starting."""
    try:
        return SqliteMetricStore(path)
    except (MetricStoreError, AlarmStoreError) as exc:
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        log.warning("%s; moved it to %s and started an empty metric store", exc, aside.name)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").rename(f"{aside}{suffix}")
        return SqliteMetricStore(path)


class Monitoring:
    def __init__(
        self,
        db_path: Path,
        disk_path: Path,
        client: httpx.AsyncClient,
        serving_workers: Callable[[], list[Worker]],
        pid_of: Callable[[Worker], int | None],
        variants: Callable[[], list[VariantCounts]],
        now: Callable[[], float] = time.time,
        job_names: Callable[[str], str | None] | None = None,  # a transform job's key -> its name as created
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series: they double a scrape's size and nothing here reads them
        self.registry = CollectorRegistry(auto_describe=True)
        self.invocations = InvocationMetrics(self.registry, now)
        self.sampler = InstanceSampler(disk_path)
        self.registry.register(FleetCollector(self.sampler, variants))
        self.exposition = Exposition(self.registry, client)
        self.store = open_metric_store(db_path)
        self.alarms = AlarmEvaluator(self.store.alarms, self.store)  # PutMetricAlarm's alarms, evaluated each tick
        self._serving_workers = serving_workers
        self._pid_of = pid_of
        self._variants = variants
        self._now = now
        self._job_names = job_names
        self._known_jobs: dict[str, str] = {}  # names never change: each job is looked up once
        self.flushed_through_s = 0.0  # the end of the newest 10 s window written to the store (the scaling loop's)
        self._sources: list[Callable[[float], list[Datapoint]]] = []

    def add_source(self, source: Callable[[float], list[Datapoint]]) -> None:
        """`source(now)` is asked for its data points at every tick (on the event loop: keep it quick, no I/O).
        A source that raises is logged and skipped for that tick."""
        self._sources.append(source)

    def watched(self) -> list[tuple[WatchedWorker, Worker]]:
        pairs = []
        for w in self._serving_workers():
            watched = WatchedWorker(w.instance_id, w.endpoint_name, w.variant_name, self._pid_of(w), w.memory_bytes,
                                    w.gpu_ids, instance_name=w.log_path.stem)  # fmt: skip
            pairs.append((watched, w))
        return pairs

    def _job_name(self, key: str) -> str | None:
        """A transform job's name as created; None (asked again next tick) while its record is not found."""
        if key not in self._known_jobs:
            found = self._job_names(key) if self._job_names is not None else None
            if found is None:
                return None
            if len(self._known_jobs) >= 1024:
                self._known_jobs.clear()
            self._known_jobs[key] = found
        return self._known_jobs[key]

    async def metrics_text(self) -> bytes:
        """The /metrics answer: fresh instance samples, the server's registry and every worker's /metrics."""
        pairs = self.watched()
        self.sampler.sample([watched for watched, _ in pairs])
        targets = [ScrapeTarget(watched, w.url, w.router_token) for watched, w in pairs]
        return await self.exposition.render(targets)

    def collect(self, *, everything: bool = False) -> list[Datapoint]:
        """What one tick writes: instance samples, ended invocation windows, router concurrency."""
        now = self._now()
        usages = self.sampler.sample([watched for watched, _ in self.watched()])
        points = instance_datapoints(usages, self.sampler.disk_percent(), now, self._job_name) if usages else []
        points += self.invocations.drain(everything=everything)
        points += concurrency_datapoints(self._variants(), now)
        for source in self._sources:
            try:
                points += source(now)
            except Exception:  # one source's bug must not lose the others' data
                log.exception("a metrics source failed")
        return points

    async def run(self) -> None:
        """The sampling task (cancel to stop)."""
        last_prune = 0.0
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL_S)
            try:
                window = int(self._now() // SAMPLE_INTERVAL_S) * SAMPLE_INTERVAL_S  # windows before it are drained
                points = self.collect()
                if points:
                    await run_blocking(lambda p=points: self.store.add(p), timeout_s=STORE_TIMEOUT_S)  # type: ignore[misc]
                self.flushed_through_s = float(window)
                if time.monotonic() - last_prune > PRUNE_INTERVAL_S:
                    last_prune = time.monotonic()
                    await run_blocking(lambda: self.store.prune(self._now()), timeout_s=STORE_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception:  # a full disk or a locked file must not end monitoring: the next tick retries
                log.exception("could not record metrics")
            try:
                await run_blocking(lambda: self.alarms.evaluate(self._now()), timeout_s=STORE_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception:  # as above: the next tick evaluates again
                log.exception("could not evaluate the metric alarms")

    def close(self) -> None:
        """Write what is still in memory, then close the store."""
        with contextlib.suppress(Exception):
            points = self.collect(everything=True)
            if points:
                self.store.add(points)
        self.store.close()
