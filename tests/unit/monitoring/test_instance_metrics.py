"""Instance metrics into CloudWatch: endpoints' per variant, transform jobs' per Host as SageMaker names them."""

from __future__ import annotations

from modelhost.monitoring.datapoints import Datapoint
from modelhost.monitoring.instances import (
    INSTANCE_NAMESPACE,
    JOB_NAMESPACE,
    InstanceUsage,
    WatchedWorker,
    instance_datapoints,
)


def usage(endpoint: str, instance: str, cpu: float | None, gpu: float | None = None) -> InstanceUsage:
    worker = WatchedWorker(f"{endpoint}-{instance}-x1-c0", endpoint, "AllTraffic", 1, 1000, instance_name=instance)
    return InstanceUsage(worker, 1.0, 250, cpu, gpu_percent=gpu, gpu_memory_percent=gpu)


def by_series(points: list[Datapoint]) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], float]:
    return {(p.metric.namespace, p.metric.metric_name, p.metric.dimensions): p.stats.sum for p in points}


def test_endpoint_instances_average_per_variant() -> None:
    points = instance_datapoints([usage("falcon", "alltraffic-0", 10.0), usage("falcon", "alltraffic-1", 30.0)], 5.0, 1)
    shown = by_series(points)
    dims = (("EndpointName", "falcon"), ("VariantName", "AllTraffic"))
    assert shown[(INSTANCE_NAMESPACE, "CPUUtilization", dims)] == 40.0  # a set of 2 samples: Average 20
    assert {p.metric.namespace for p in points} == {INSTANCE_NAMESPACE}
    assert all(p.stats.sample_count == 2 and p.unit == "Percent" for p in points)


def test_transform_job_instances_go_to_their_host_in_the_jobs_namespace() -> None:
    usages = [usage("transform-job.nightly", "alltraffic-0", 10.0, gpu=50.0), usage("transform-job.nightly",
              "alltraffic-1", None), usage("falcon", "alltraffic-0", 1.0)]  # fmt: skip
    points = instance_datapoints(usages, 5.0, 1, lambda key: "Nightly" if key == "nightly" else None)
    shown = by_series(points)
    host0, host1 = (("Host", "Nightly/alltraffic-0"),), (("Host", "Nightly/alltraffic-1"),)
    assert shown[(JOB_NAMESPACE, "CPUUtilization", host0)] == 10.0
    assert shown[(JOB_NAMESPACE, "MemoryUtilization", host0)] == 25.0
    assert shown[(JOB_NAMESPACE, "DiskUtilization", host1)] == 5.0
    assert shown[(JOB_NAMESPACE, "GPUUtilization", host0)] == 50.0
    assert (JOB_NAMESPACE, "CPUUtilization", host1) not in shown  # no CPU rate on a first sample
    endpoint_dims = {p.metric.dimensions for p in points if p.metric.namespace == INSTANCE_NAMESPACE}
    assert endpoint_dims == {(("EndpointName", "falcon"), ("VariantName", "AllTraffic"))}


def test_jobs_unknown_to_the_lookup_keep_the_folders_case_and_a_missing_stem_the_instance_id() -> None:
    worker = WatchedWorker("transform-job.nightly-alltraffic-0-x1-c0", "transform-job.nightly", "AllTraffic", 1, 0)
    points = instance_datapoints([InstanceUsage(worker, 1.0, 0, 3.0)], 0.0, 1, lambda key: "Other")
    assert {p.metric.dimensions for p in points} == {(("Host", "nightly/transform-job.nightly-alltraffic-0-x1-c0"),)}
