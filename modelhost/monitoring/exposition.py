"""The server's Prometheus exposition: its own metrics and every serving worker's, in one scrape.

Each worker serves its own /metrics on its port (the container contract; it demands the router token like
/invocations). At scrape time the server fetches them all concurrently (2 s each; a worker that does not
answer is left out and counted in modelhost_worker_scrape_errors_total), adds the labels endpoint, variant
and instance to every sample, merges families of the same name across workers (one HELP/TYPE per family, as
the text format requires) and appends them to its own families. Nothing of this runs on the request path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from modelhost.contracts.worker import ROUTER_TOKEN_HEADER
from modelhost.monitoring.instances import InstanceSampler, WatchedWorker

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
SCRAPE_TIMEOUT_S = 2.0
MAX_WORKER_TEXT = 8 * 1024 * 1024  # a worker's exposition larger than this is left out
TARGET_LABELS = ("endpoint", "variant", "instance")
INSTANCE_GAUGES = {  # name -> help; labels endpoint, variant, instance
    "modelhost_instance_cpu_utilization_percent": "CPU use between the last two samples, summed over cores "
    "(SageMaker's CPUUtilization).",
    "modelhost_instance_memory_bytes": "Resident memory of the instance's processes.",
    "modelhost_instance_memory_budget_bytes": "The instance's memory budget (its type's memory on this host).",
    "modelhost_instance_memory_utilization_percent": "Resident memory as a share of the budget (SageMaker's "
    "MemoryUtilization).",
    "modelhost_instance_gpu_utilization_percent": "GPU use summed over the instance's GPUs (GPUUtilization).",
    "modelhost_instance_gpu_memory_utilization_percent": "GPU memory used, summed over the instance's GPUs "
    "(GPUMemoryUtilization).",
}
VARIANT_GAUGES = {  # name -> help; labels endpoint, variant
    "modelhost_variant_desired_instances": "Instances the variant should run.",
    "modelhost_variant_current_instances": "Instances of the variant serving now.",
    "modelhost_concurrent_requests": "Requests in flight or queued at the router (ConcurrentRequestsPerModel).",
}


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    worker: WatchedWorker
    url: str  # the worker's base URL
    router_token: str


@dataclass(frozen=True, slots=True)
class VariantCounts:
    endpoint: str
    variant: str
    desired: int
    current: int
    concurrent: int  # in flight + queued at the router


def relabel(families: Iterable[Metric], labels: dict[str, str]) -> Iterator[Metric]:
    """`families` with `labels` added to every sample (a worker's own label of the same name is replaced);
    the `_created` series prometheus_client adds are dropped."""
    for family in families:
        if family.name.endswith("_created"):
            continue
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [
            Sample(s.name, {**s.labels, **labels}, s.value, s.timestamp, s.exemplar)
            for s in family.samples
            if not s.name.endswith("_created")
        ]
        yield copy


def merge(families: Iterable[Metric]) -> list[Metric]:
    """Families of the same name become one (the first's HELP and TYPE; a clash of types keeps the first)."""
    merged: dict[str, Metric] = {}
    for family in families:
        known = merged.get(family.name)
        if known is None:
            merged[family.name] = family
        elif known.type == family.type:
            known.samples.extend(family.samples)
    return list(merged.values())


class _Families:
    """A collector yielding already-built families (for generate_latest)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


class FleetCollector:
    """Instance and variant gauges, read at scrape time from the sampler and the controller."""

    def __init__(self, sampler: InstanceSampler, variants: Callable[[], list[VariantCounts]]) -> None:
        self._sampler = sampler
        self._variants = variants

    def collect(self) -> Iterator[Metric]:
        labels = list(TARGET_LABELS)
        families = {name: GaugeMetricFamily(name, text, labels=labels) for name, text in INSTANCE_GAUGES.items()}
        cpu = CounterMetricFamily("modelhost_instance_cpu_seconds", "CPU time of the instance's processes.",
                                  labels=labels)  # fmt: skip
        for usage in self._sampler.latest:
            w = usage.worker
            values = [w.endpoint, w.variant, w.instance_id]
            cpu.add_metric(values, usage.cpu_seconds)
            samples = {
                "modelhost_instance_memory_bytes": usage.rss_bytes,
                "modelhost_instance_memory_budget_bytes": w.memory_bytes,
                "modelhost_instance_memory_utilization_percent": usage.memory_percent,
                "modelhost_instance_cpu_utilization_percent": usage.cpu_percent,
                "modelhost_instance_gpu_utilization_percent": usage.gpu_percent,
                "modelhost_instance_gpu_memory_utilization_percent": usage.gpu_memory_percent,
            }
            for name, value in samples.items():
                if value is not None:
                    families[name].add_metric(values, value)
        yield cpu
        yield from families.values()
        variant_labels = ["endpoint", "variant"]
        variant = {name: GaugeMetricFamily(name, text, labels=variant_labels) for name, text in VARIANT_GAUGES.items()}
        for counts in self._variants():
            values = [counts.endpoint, counts.variant]
            variant["modelhost_variant_desired_instances"].add_metric(values, counts.desired)
            variant["modelhost_variant_current_instances"].add_metric(values, counts.current)
            variant["modelhost_concurrent_requests"].add_metric(values, counts.concurrent)
        yield from variant.values()


class Exposition:
    """The server's /metrics text: its registry, then its workers' families with their labels."""

    def __init__(self, registry: CollectorRegistry, client: httpx.AsyncClient) -> None:
        self._registry = registry
        self._client = client
        self._scrape_errors = Counter("modelhost_worker_scrape_errors", "Worker /metrics scrapes that failed.",
                                      ["endpoint", "variant"], registry=registry)  # fmt: skip

    async def _fetch(self, target: ScrapeTarget) -> str:
        """The worker's exposition, read as it streams and refused past MAX_WORKER_TEXT (a worker runs model
        code: its answer must not be able to grow the server's memory)."""
        headers = {ROUTER_TOKEN_HEADER: target.router_token}
        async with self._client.stream("GET", f"{target.url}{METRICS_PATH}", timeout=SCRAPE_TIMEOUT_S,
                                       headers=headers) as response:  # fmt: skip
            if response.status_code != 200:
                raise ValueError(f"status {response.status_code}")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_WORKER_TEXT:
                    raise ValueError(f"more than {MAX_WORKER_TEXT} bytes")
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    async def _scrape(self, target: ScrapeTarget) -> list[Metric]:
        w = target.worker
        try:
            # the whole scrape has its deadline: a worker trickling bytes must not hold the page
            text = await asyncio.wait_for(self._fetch(target), SCRAPE_TIMEOUT_S)
            families = list(text_string_to_metric_families(text))
        except Exception as exc:  # unreachable, too slow, too big, or text the parser rejects: left out, counted
            log.debug("scraping %s failed: %s", w.instance_id, exc)
            self._scrape_errors.labels(w.endpoint, w.variant).inc()
            return []
        return list(relabel(families, {"endpoint": w.endpoint, "variant": w.variant, "instance": w.instance_id}))

    async def render(self, targets: list[ScrapeTarget]) -> bytes:
        scraped = await asyncio.gather(*(self._scrape(t) for t in targets))
        own = generate_latest(self._registry)
        workers = merge(f for families in scraped for f in families)
        if not workers:
            return own
        extra = CollectorRegistry(auto_describe=False)
        extra.register(_Families(workers))
        return own + generate_latest(extra)
