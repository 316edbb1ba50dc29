"""Store URLs (MODELHOST_STORE_URL, `modelhost server --store-url`): which store they name, and how to print them.

Only PostgreSQL URLs are accepted (`postgresql://user:password@host:5432/db`, also written `postgres://` or, as
SQLAlchemy does, `postgresql+psycopg://`); without a URL the store is SQLite in the home. A URL may hold a
password, so nothing prints a URL except through `redact`, and driver messages go through `scrub`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from modelhost.store.errors import StoreUrlInvalid

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
SECRET_PARAMS = ("password", "sslpassword")  # libpq parameters that hold secrets
MASK = "***"


def redact(url: str) -> str:
    """The URL with its password (in the authority or as a `password=` parameter) replaced by ***; the rest of it
    exactly as given."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url.partition(':')[0]}://{MASK}"  # unparseable: show the scheme only
    shown = url
    if parts.password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        shown = shown.replace(f"//{parts.netloc}", f"//{user}:{MASK}@{hostinfo}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*/")
            shown = shown.replace(f"?{parts.query}", f"?{query}", 1)
    return shown


def secrets_of(url: str) -> list[str]:
    """The secret strings a URL holds (its password, raw and decoded), for `scrub`."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
        found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in SECRET_PARAMS]
    except ValueError:
        return []
    secrets = {s for s in found if s} | {unquote(s) for s in found if s} | {quote(s, safe="") for s in found if s}
    return sorted(secrets, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` (a driver's message) with any secret of `url` masked."""
    for secret in secrets_of(url):
        text = text.replace(secret, MASK)
    return text


def postgres_url(url: str) -> str:
    """The libpq URL (postgresql://...) for a store URL; StoreUrlInvalid (naming the URL without its password)
    when it is not a PostgreSQL URL with a host or socket directory."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise StoreUrlInvalid(f"the store URL {redact(url)} cannot be parsed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in POSTGRES_SCHEMES:
        raise StoreUrlInvalid(
            f"the store URL {redact(url)} is not a PostgreSQL URL: give postgresql://USER:PASSWORD@HOST:PORT/DATABASE, "
            "or unset MODELHOST_STORE_URL to keep the store in SQLite in the home"
        )
    host_param = any(k.lower() == "host" for k, _ in parse_qsl(parts.query))
    if not parts.hostname and not host_param:
        raise StoreUrlInvalid(f"the store URL {redact(url)} names no host (postgresql://USER@HOST/DATABASE)")
    return "postgresql:" + url.strip().partition(":")[2]
