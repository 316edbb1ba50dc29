"""A PostgreSQL cluster for the session (skipped, with the reason, where PostgreSQL cannot start) and a fresh
database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.fleet.postgres import PostgresCluster, Unavailable


def start_cluster() -> PostgresCluster:
    """A started cluster, or a skip saying why there is none."""
    try:
        return PostgresCluster().start()
    except Unavailable as exc:
        pytest.skip(f"PostgreSQL cannot start here: {exc}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = start_cluster()
    yield cluster
    cluster.remove()


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> str:
    """The URL (password included) of an empty database of the session's cluster."""
    return postgres.new_database()
