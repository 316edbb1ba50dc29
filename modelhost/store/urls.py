"""Store URLs (MODELHOST_STORE_URL, `modelhost server --store-url`): which store they name, and how to print them.

Only PostgreSQL URLs are accepted (`postgresql://user:password@host:5432/db`, also written `postgres://` or, as
SQLAlchemy does, `postgresql+psycopg://`); without a URL the store is SQLite in the home. A URL may hold a
password, so nothing prints a URL except through `redact`, and driver messages go through `scrub`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from modelhost.store.errors import StoreUrlInvalid

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
SECRET_PARAMS = ("password", "sslpassword")  # libpq parameters that hold secrets
MASK = "***"


# `password=secret` or `password = 'quoted secret'` in a libpq key/value string
_KEY_VALUE_SECRET = re.compile(r"\b(" + "|".join(SECRET_PARAMS) + r")(\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def _parsed(url: str) -> dict[str, str] | None:
    """libpq's own reading of a URL (what a connection would use), or None when it cannot be read unambiguously:
    no driver, libpq refuses it, or it reads a password typed unencoded ('/' in it) as host, port and database
    (an '@' but no user, a port that is not a number, an '@' in the host or database name, two '@')."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return None
    try:
        read = conninfo_to_dict("postgresql:" + url.partition(":")[2])
        params = {k: str(v) for k, v in read.items() if v is not None}
    except Exception:  # psycopg.ProgrammingError, or anything libpq's parser says
        return None
    authority = url.partition("://")[2].partition("/")[0]
    ambiguous = (
        ("@" in url.partition("://")[2] and "user" not in params and "@" not in authority)
        or not all(p.strip().isdigit() for p in params.get("port", "0").split(",") if p.strip())
        or "@" in params.get("dbname", "")
        or "@" in params.get("host", "")
        or authority.count("@") > 1
    )
    return None if ambiguous else params


def redact(url: str) -> str:
    """What may be printed of a store URL: rebuilt from libpq's reading of it, every secret (password,
    sslpassword) shown as ***; the scheme only when it cannot be read unambiguously. A libpq key/value string
    (`host=db password=...`) is shown with its secrets masked."""
    text = url.strip()
    scheme, sep, _ = text.partition("://")
    if not sep:
        return _KEY_VALUE_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    shown_scheme = scheme if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) else "?"
    params = _parsed(text) if scheme.lower() in POSTGRES_SCHEMES else None
    if params is None:
        return f"{shown_scheme}://{MASK}"
    params = dict(params)
    secret = {k for k in params if k.lower() in SECRET_PARAMS}
    user = params.pop("user", None)
    host = params.pop("host", "")
    port = params.pop("port", "")
    dbname = params.pop("dbname", "")
    query: list[tuple[str, str]] = []
    authority = ""
    if user is not None:
        authority = quote(user, safe="") + (f":{MASK}" if "password" in secret else "") + "@"
        secret.discard("password")
        params.pop("password", None)
    if host and "/" not in host and "," not in host and "," not in port:
        authority += f"[{host}]" if ":" in host else quote(host, safe=".-_~")
        authority += f":{port}" if port else ""
    else:
        query += [(k, v) for k, v in (("host", host), ("port", port)) if v]
    query += [(k, MASK if k in secret else v) for k, v in params.items()]
    shown = f"{shown_scheme}://{authority}/{quote(dbname, safe='')}" if dbname else f"{shown_scheme}://{authority}"
    return shown + ("?" + urlencode(query, safe="*/,") if query else "")


def secrets_of(url: str) -> list[str]:
    """The secret strings a URL holds (its password, raw, decoded and encoded), for `scrub`."""
    found: list[str] = []
    params = _parsed(url) if "://" in url else None
    if params is not None:
        found += [v for k, v in params.items() if k.lower() in SECRET_PARAMS]
    if "://" not in url:
        found += [m.group(3).strip("'") for m in _KEY_VALUE_SECRET.finditer(url)]
    try:
        parts = urlsplit(url)
        found.append(parts.password or "")
        found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in SECRET_PARAMS]
    except ValueError:
        pass
    userinfo = url.partition("://")[2].rpartition("@")[0]  # also what a password typed unencoded may look like
    if ":" in userinfo:
        found.append(userinfo.partition(":")[2])
    secrets = {s for s in found if s} | {unquote(s) for s in found if s} | {quote(s, safe="") for s in found if s}
    return sorted(secrets, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` (a driver's message) with any secret of `url` masked, and the URL itself shown only redacted."""
    text = text.replace(url.strip(), redact(url)) if url.strip() else text
    for secret in secrets_of(url):
        text = text.replace(secret, MASK)
    return text


def postgres_url(url: str) -> str:
    """The libpq URL (postgresql://...) for a store URL; StoreUrlInvalid (naming the URL without its password)
    when it is not a PostgreSQL URL with a host or socket directory."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:  # the parser's words may quote a piece of a password typed unencoded: not shown
        raise StoreUrlInvalid(
            f"the store URL {redact(url)} cannot be parsed: its port is not a number, or its password holds a "
            "character that must be percent-encoded (/ # ? @ : as %2F %23 %3F %40 %3A)"
        ) from None
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
