"""One real loopback Ray cluster per test module (cluster.py): a head without CPUs and three worker nodes that
reach moto's S3 server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.ray.cluster import NODE_S3_ENV, LoopbackCluster, start_cluster, stop_cluster


@pytest.fixture(scope="module")
def loopback_cluster(moto_endpoint: str) -> Iterator[LoopbackCluster]:
    """The nodes (not the server) can reach the S3 store: credentials and endpoint are in their environment."""
    cluster = start_cluster(worker_nodes=3, node_env={**NODE_S3_ENV, "AWS_ENDPOINT_URL_S3": moto_endpoint})
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
