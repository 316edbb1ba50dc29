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


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:pa%2Fss@db/mh", "postgresql://app:***@db/mh"),
        ("postgresql://app:pa#ss@db:5432/mh", "postgresql://app:***@db:5432/mh"),
        ("postgresql://app:pa?ss@db/mh", "postgresql://app:***@db/mh"),
        ("postgresql://app:pa/ss@db/mh", "postgresql://***"),  # libpq reads host app, port pa: ambiguous
        ("postgresql://app:p@ss@db/mh", "postgresql://***"),
        ("postgresql+psycopg://app:s3cret@db/mh?sslpassword=k3y&sslmode=require",
         "postgresql+psycopg://app:***@db/mh?sslmode=require&sslpassword=***"),
        ("postgresql:///mh?host=/run/postgresql&password=s3cret", "postgresql:///mh?host=/run/postgresql&password=***"),
        ("host=db password=s3cret dbname=mh", "host=db password=*** dbname=mh"),
        ("host=db password = 'two words' dbname=mh", "host=db password = *** dbname=mh"),
        ("mysql://app:s3cret@db/mh", "mysql://***"),
    ],
)  # fmt: skip
def test_redact_hides_passwords_with_url_characters_and_in_key_value_strings(url: str, shown: str) -> None:
    """Fails without the fix: the URL was shown as given except for what urlsplit took as the password."""
    assert redact(url) == shown


@pytest.mark.parametrize(
    "url",
    ["postgresql://app:pa/ss@db/mh", "postgresql://app:pa?ss@db:5432/mh", "host=db password=pa/ss port=x"],
)
def test_a_refused_url_never_shows_its_password(url: str) -> None:
    with pytest.raises(StoreUrlInvalid) as caught:
        PostgresStore(url)
    message = str(caught.value)
    assert "pa/ss" not in message and "pa?ss" not in message and "'pa'" not in message and "ss@" not in message


def test_scrub_masks_the_whole_url_and_an_unencoded_password() -> None:
    url = "postgresql://app:pa/ss@db/mh"
    shown = scrub(f"could not connect to {url}: pa/ss refused", url)
    assert shown == "could not connect to postgresql://***: *** refused"


def test_an_unreachable_shared_store_tells_clients_nothing_of_the_database_and_raises_anew() -> None:
    """503 bodies name no user, host, port or database (fails without the fix); a refusal within the retry window
    is a new exception each time, not one re-raised with a growing traceback (fails without the fix)."""
    import traceback

    from modelhost.store.errors import SHARED_STORE_UNAVAILABLE, StoreUnavailable
    from modelhost.testing import free_port

    store = PostgresStore(f"postgresql://app:s3cret@127.0.0.1:{free_port()}/fleetdb", retry_after_s=60)
    store._opened = True  # as if it had opened before the database went away
    caught: list[StoreUnavailable] = []
    for _ in range(3):
        with pytest.raises(StoreUnavailable) as refused:
            store.get("endpoint", "e")
        caught.append(refused.value)
    first, second, third = caught
    assert first.message == second.message == SHARED_STORE_UNAVAILABLE
    assert "127.0.0.1" in first.detail and "s3cret" not in first.detail  # the log's words
    assert not {"127.0.0.1", "app", "fleetdb"} & set(first.message.replace(";", " ").split())
    assert second is not third
    assert len(traceback.extract_tb(third.__traceback__)) == len(traceback.extract_tb(second.__traceback__))
