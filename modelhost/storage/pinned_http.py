"""One http(s) GET of model data whose every hop connects to the address that was checked (no DNS rebinding).

Each hop (the URL, then each redirect, at most MAX_REDIRECTS) resolves its host once; limits.py judges those
addresses (loopback, link-local, private ... refused unless MODELHOST_ALLOW_PRIVATE_MODEL_DATA=1) and the
connection is made to one of exactly those addresses: the request's URL names the address, while the `Host`
header keeps the name and, for https, the `sni_hostname` extension makes httpcore send the name as SNI and
verify the certificate against it (httpcore/_sync/connection.py: `server_hostname = sni_hostname or host`).
A name that does not resolve is refused as a connection failure, since a second lookup might answer
differently; only with the allowance (nothing to protect) is it sent unpinned. Redirects are followed here, not
by httpx, so each target is resolved, checked and pinned the same way; every hop gets its own client, so a
connection verified for one name is never reused for another. Addresses are tried in the resolver's order,
the next one when a connection fails.

Behind a proxy (HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, minus NO_PROXY: the server's environment, which httpx
honours) the proxy resolves the name and connects, so such a hop is checked as above (when the name resolves
here) but sent by name: pinning covers direct connections only.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from modelhost.contracts.worker import PHASE_DOWNLOAD
from modelhost.errors import DeploymentError
from modelhost.storage.limits import DataLimits, private_address_reason, resolve

Resolver = Callable[[str, int], list[str]]  # (host, port) -> addresses; raises OSError when it does not resolve
MAX_REDIRECTS = 20
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class CouldNotConnect(Exception):
    """No checked address of the hop's host could be connected to (or the name did not resolve)."""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def proxied(url: httpx.URL) -> bool:
    """Whether the environment sends `url` through a proxy (HTTP(S)_PROXY, ALL_PROXY, minus NO_PROXY)."""
    proxies = urllib.request.getproxies()  # what httpx reads too (httpx/_utils.py: get_environment_proxies)
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(url.host)


def checked_addresses(url: httpx.URL, limits: DataLimits, resolver: Resolver, *, via_proxy: bool = False) -> list[str]:
    """The addresses this hop may connect to; [] means "send it by name": through a proxy, or with the allowance
    when the name does not resolve here. DeploymentError (download) when an address is refused; CouldNotConnect
    when the name does not resolve and nothing else may connect."""
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = list(dict.fromkeys(resolver(host, port)))
    except (OSError, UnicodeError, ValueError) as exc:
        if limits.allow_private_http or via_proxy:
            return []
        raise CouldNotConnect(host) from exc
    if not addresses:
        raise CouldNotConnect(host)
    if not limits.allow_private_http:
        refusal = private_address_reason(host, addresses)
        if refusal is not None:
            raise DeploymentError(PHASE_DOWNLOAD, refusal)
    return [] if via_proxy else addresses


def pinned_request(
    client: httpx.Client, url: httpx.URL, address: str | None, headers: Mapping[str, str]
) -> httpx.Request:
    """GET `url` sent to `address` (None: as it is), with the name in `Host` and, for https, in SNI."""
    if address is None or _is_ip(url.host):
        return client.build_request("GET", url, headers=headers)
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return client.build_request(
        "GET",
        url.copy_with(host=address),
        headers={**headers, "Host": url.netloc.decode("ascii")},
        extensions=extensions,
    )


def _next_url(url: httpx.URL, response: httpx.Response) -> httpx.URL | None:
    """Where a redirect points (joined to the hop's URL as the user named it); None when it is no redirect."""
    location = response.headers.get("Location")
    if response.status_code not in REDIRECT_STATUSES or not location:
        return None
    target = url.join(location)
    if target.scheme not in ("http", "https") or not target.host:
        raise DeploymentError(PHASE_DOWNLOAD, f"{url} redirects to {location[:300]}, which is not an http(s) URL")
    return target


@contextmanager
def _hop(
    url: httpx.URL,
    addresses: list[str],
    headers: Mapping[str, str],
    client_for: Callable[[], httpx.Client],
) -> Iterator[httpx.Response]:
    """The streamed response of one hop from the first of `addresses` that accepts a connection."""
    for index, address in enumerate(addresses or [None]):
        client = client_for()
        try:
            response = client.send(pinned_request(client, url, address, headers), stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            client.close()
            if index + 1 < max(1, len(addresses)):
                continue
            raise
        except BaseException:
            client.close()
            raise
        try:
            yield response
        finally:
            response.close()
            client.close()
        return


@contextmanager
def pinned_get(
    url: str,
    limits: DataLimits,
    client_for: Callable[[], httpx.Client],
    *,
    headers: Mapping[str, str] | None = None,
    resolver: Resolver = resolve,
) -> Iterator[httpx.Response]:
    """The final (non-redirect) streamed response of GET `url`, every hop checked and pinned.

    `client_for` makes a fresh httpx.Client (its transport and timeout) for each connection attempt.
    Raises DeploymentError (refused, too many redirects), CouldNotConnect, or httpx errors."""
    current = httpx.URL(url)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise DeploymentError(PHASE_DOWNLOAD, f"{url} is not an http(s) URL")
    for _ in range(MAX_REDIRECTS + 1):
        addresses = checked_addresses(current, limits, resolver, via_proxy=proxied(current))
        with _hop(current, addresses, headers or {}, client_for) as response:
            target = _next_url(current, response)
            if target is None:
                yield response
                return
        current = target
    raise DeploymentError(PHASE_DOWNLOAD, f"{url} redirects more than {MAX_REDIRECTS} times")
