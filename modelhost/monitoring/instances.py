"""Instance metrics: CPU, memory, disk and GPU use of each serving worker, read from /proc (and NVML where
GPUs exist), for Prometheus and for CloudWatch: an endpoint's instances in /aws/sagemaker/Endpoints (EndpointName,
VariantName: averaged over the variant's instances), a batch transform job's (its hidden endpoint's) in
/aws/sagemaker/TransformJobs with one `Host` = `<TransformJobName>/<instance>` per instance, as SageMaker does.

A worker is its process and everything under it (a model's own subprocesses, and inside a sandbox the
interpreter under bwrap), so CPU time and resident memory are summed over the process tree. SageMaker's
units: CPUUtilization is the sum over cores (0-100 x vCPUs), MemoryUtilization the share of the instance's
memory (the worker's budget), DiskUtilization the share of the disk holding the data directory,
GPUUtilization and GPUMemoryUtilization summed over the instance's GPUs (0-100 x GPUs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhost.monitoring.datapoints import Datapoint, MetricIdentity, StatisticSet, dimensions_of
from modelhost.resources.transform_job import job_of_hidden_endpoint

log = logging.getLogger(__name__)

INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
JOB_NAMESPACE = "/aws/sagemaker/TransformJobs"
JobNames = Callable[[str], str | None]  # a job's key (lower-case name) -> its TransformJobName as created
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True, slots=True)
class WatchedWorker:
    """A serving worker as the sampler needs it."""

    instance_id: str
    endpoint: str
    variant: str
    pid: int | None
    memory_bytes: int  # its budget (the instance type's memory on this host)
    gpu_ids: tuple[int, ...] = ()
    instance_name: str = ""  # its log file's stem (`alltraffic-0`): a job's Host is `<job>/<instance_name>`


@dataclass(frozen=True, slots=True)
class InstanceUsage:
    """One worker's use at one moment."""

    worker: WatchedWorker
    cpu_seconds: float  # total CPU time of its process tree
    rss_bytes: int
    cpu_percent: float | None  # since the previous sample; None on the first
    gpu_percent: float | None = None  # summed over its GPUs; None without NVML
    gpu_memory_percent: float | None = None

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.rss_bytes / self.worker.memory_bytes if self.worker.memory_bytes else 0.0


def parse_stat(text: str) -> tuple[int, int]:
    """(parent pid, utime + stime ticks) from /proc/PID/stat text (the command may hold spaces and parens)."""
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def process_tree(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """`pid` and its descendants, from each task's children list."""
    tree, frontier = [pid], [pid]
    while frontier and len(tree) < 4096:
        children: list[int] = []
        for parent in frontier:
            with contextlib.suppress(OSError):
                for task in (proc / str(parent) / "task").iterdir():
                    with contextlib.suppress(OSError, ValueError):
                        children.extend(int(c) for c in (task / "children").read_text().split())
        tree.extend(children)
        frontier = children
    return tree


def tree_usage(pid: int, proc: Path = Path("/proc")) -> tuple[float, int] | None:
    """(CPU seconds, resident bytes) of `pid`'s process tree; None when it is gone."""
    ticks, pages, seen = 0, 0, False
    for member in process_tree(pid, proc):
        try:
            _, used = parse_stat((proc / str(member) / "stat").read_text())
            pages += int((proc / str(member) / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        ticks += used
        seen = True
    return (ticks / CLOCK_TICKS, pages * PAGE_SIZE) if seen else None


class GpuReader:
    """NVML utilisation per GPU index, where `nvidia-ml-py` and a driver are present (import-guarded)."""

    def __init__(self) -> None:
        self._nvml: Any = None
        try:
            import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
            self._nvml = pynvml
        except Exception as exc:  # not installed, no driver, no GPU: no GPU metrics
            log.debug("no GPU metrics: %s", exc)

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def usage(self, index: int) -> tuple[float, float] | None:
        """(utilisation %, memory used %) of GPU `index`."""
        if self._nvml is None:
            return None
        try:
            handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
            rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
        except Exception:  # a GPU that went away answers nothing
            return None
        return float(rates.gpu), 100.0 * float(memory.used) / float(memory.total or 1)


class InstanceSampler:
    """Samples serving workers; keeps each one's previous CPU time to give utilisation between samples."""

    def __init__(self, disk_path: Path, gpus: GpuReader | None = None, clock: Callable[[], float] = time.monotonic):
        self._disk_path = disk_path
        self._gpus = gpus if gpus is not None else GpuReader()
        self._clock = clock
        self._previous: dict[str, tuple[float, float]] = {}  # instance -> (when, cpu seconds)
        self.latest: list[InstanceUsage] = []

    def sample(self, workers: Iterable[WatchedWorker]) -> list[InstanceUsage]:
        now = self._clock()
        found: list[InstanceUsage] = []
        previous, self._previous = self._previous, {}
        for worker in workers:
            usage = tree_usage(worker.pid) if worker.pid else None
            if usage is None:
                continue
            cpu_seconds, rss = usage
            before = previous.get(worker.instance_id)
            percent = None
            if before is not None and now > before[0]:
                percent = max(0.0, 100.0 * (cpu_seconds - before[1]) / (now - before[0]))
            self._previous[worker.instance_id] = (now, cpu_seconds)
            gpu = [u for u in (self._gpus.usage(i) for i in worker.gpu_ids) if u is not None]
            found.append(InstanceUsage(
                worker, cpu_seconds, rss, percent,
                gpu_percent=sum(u[0] for u in gpu) if gpu else None,
                gpu_memory_percent=sum(u[1] for u in gpu) if gpu else None,
            ))  # fmt: skip
        self.latest = found
        return found

    def disk_percent(self) -> float:
        try:
            usage = shutil.disk_usage(self._disk_path)
        except OSError:
            return 0.0
        return 100.0 * usage.used / usage.total if usage.total else 0.0


def metric_series(worker: WatchedWorker, job_names: JobNames | None = None) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(namespace, dimensions) of a worker's instance metrics: its endpoint variant's, or for a transform job's
    instance its own Host `<TransformJobName>/<instance>` (the job's case where `job_names` knows it)."""
    key = job_of_hidden_endpoint(worker.endpoint)
    if key is None:
        return INSTANCE_NAMESPACE, (("EndpointName", worker.endpoint), ("VariantName", worker.variant))
    known = job_names(key) if job_names is not None else None
    job = known if known is not None and known.lower() == key else key
    return JOB_NAMESPACE, (("Host", f"{job}/{worker.instance_name or worker.instance_id}"),)


def instance_datapoints(
    usages: Iterable[InstanceUsage], disk_percent: float, timestamp_s: float, job_names: JobNames | None = None
) -> list[Datapoint]:
    """One sample per instance into its variant's CloudWatch metrics (Average over instances, as SageMaker), or
    a transform job instance's into its Host's in /aws/sagemaker/TransformJobs."""
    by_series: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, StatisticSet]] = {}
    for usage in usages:
        values = {"MemoryUtilization": usage.memory_percent, "DiskUtilization": disk_percent}
        if usage.cpu_percent is not None:
            values["CPUUtilization"] = usage.cpu_percent
        if usage.gpu_percent is not None and usage.gpu_memory_percent is not None:
            values["GPUUtilization"] = usage.gpu_percent
            values["GPUMemoryUtilization"] = usage.gpu_memory_percent
        metrics = by_series.setdefault(metric_series(usage.worker, job_names), {})
        for name, value in values.items():
            one = StatisticSet.of_value(value)
            metrics[name] = metrics[name].merge(one) if name in metrics else one
    points = []
    for (namespace, pairs), metrics in by_series.items():
        dims = dimensions_of(pairs)
        for name, stats in metrics.items():
            identity = MetricIdentity(namespace, name, dims)
            points.append(Datapoint(identity, "Percent", timestamp_s, stats, True))
    return points
