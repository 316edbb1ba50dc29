"""One real loopback Ray cluster per test module (cluster.py): a head without CPUs and three worker nodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.ray.cluster import LoopbackCluster, start_cluster, stop_cluster


@pytest.fixture(scope="module")
def loopback_cluster() -> Iterator[LoopbackCluster]:
    cluster = start_cluster(worker_nodes=3)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
