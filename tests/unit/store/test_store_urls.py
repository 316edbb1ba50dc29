"""Store URLs: only PostgreSQL ones are accepted, and no message ever shows their password."""

from __future__ import annotations

import pytest

from modelhost.store.errors import StoreUrlInvalid
from modelhost.store.postgres import PostgresStore, conninfo
from modelhost.store.urls import postgres_url, redact, scrub


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/mh", "postgresql://app:***@db:5432/mh"),
        ("postgresql://app@db/mh", "postgresql://app@db/mh"),
        ("postgresql://db/mh?password=s3cret&sslmode=require", "postgresql://db/mh?password=***&sslmode=require"),
        ("postgresql://a%40b:p%3Aw@db/mh", "postgresql://a%40b:***@db/mh"),
    ],
)
def test_redact_hides_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_scrub_masks_the_password_in_a_driver_message() -> None:
    url = "postgresql://app:p%40ss@db/mh"
    assert scrub('password "p@ss" and p%40ss refused', url) == 'password "***" and *** refused'


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgres_urls_in_sqlalchemy_or_libpq_spelling(scheme: str) -> None:
    assert postgres_url(f"{scheme}://app:pw@db:5432/mh") == "postgresql://app:pw@db:5432/mh"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("mysql://app:s3cret@db/mh", "is not a PostgreSQL URL"),
        ("sqlite:///tmp/x.db", "is not a PostgreSQL URL"),
        ("postgresql:///mh", "names no host"),
        ("postgresql://app:s3cret@db:notaport/mh", "cannot be parsed"),
    ],
)
def test_other_urls_are_refused_in_one_line_without_the_password(url: str, why: str) -> None:
    with pytest.raises(StoreUrlInvalid) as caught:
        PostgresStore(url)
    assert why in str(caught.value) and "s3cret" not in str(caught.value) and "\n" not in str(caught.value)


def test_a_socket_directory_is_a_host() -> None:
    assert "host=/run/postgresql" in conninfo("postgresql:///mh?host=/run/postgresql")


def test_connections_get_keepalives_unless_the_url_sets_them() -> None:
    info = conninfo("postgresql://app@db/mh?keepalives_idle=30")
    assert "keepalives_idle=30" in info and "tcp_user_timeout=15000" in info and "connect_timeout=5" in info
