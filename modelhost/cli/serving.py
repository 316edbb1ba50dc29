"""What `modelhost server` secures before the app starts: the home's lock, a sound store file, the listening port,
and who may call it (no keys: loopback only, unless --allow-unauthenticated).

All three are checked before uvicorn runs the app's lifespan, which opens the store and recovers workers, so
a server that cannot run (another one holds the home, the store is damaged, the port is taken) leaves
everything as it found it and exits with one line.
"""

from __future__ import annotations

import ipaddress
import socket

from modelhost.errors import ModelhostError
from modelhost.home import HomeLock
from modelhost.security.keys import KeyStore
from modelhost.settings import ServerSettings
from modelhost.store.integrity import check_store_file
from modelhost.store.opening import check_store


class PortUnavailable(ModelhostError):
    """The address to listen on cannot be bound."""


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (uvicorn listens on it); PortUnavailable saying why when it cannot be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortUnavailable(f"cannot listen on {host}: {exc.strerror}; give --host an address of this host") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise PortUnavailable(
            f"cannot listen on {host}:{port} ({exc.strerror}); another program may use the port: pick one with --port N"
        ) from None
    return sock


def claim_home(settings: ServerSettings) -> tuple[HomeLock, socket.socket]:
    """The home's lock (HomeBusy if another server holds it), then the store check (StoreCorrupt for a damaged
    SQLite file; StoreUrlInvalid / StoreUnavailable for a PostgreSQL URL that is wrong or does not answer), then
    the port. With a shared store each server keeps its own home (logs, workers' run files), locked as ever."""
    lock = HomeLock(settings.home)
    lock.acquire(role="server", host=settings.host, port=settings.port)
    try:
        if settings.store_url:
            check_store(settings)
        else:
            check_store_file(settings.db_path)
        return lock, listen_socket(settings.host, settings.port)
    except BaseException:
        lock.release()
        raise


class UnsafeBind(ModelhostError):
    """A non-loopback address without access keys: anyone on the network could run code as this user."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access_line(settings: ServerSettings, *, allow_unauthenticated: bool) -> str:
    """The start-up line saying who may call the server; UnsafeBind for a network bind with no keys."""
    if KeyStore(settings.home).list():
        return "access: every request must be signed with a key from `modelhost keys ls` (SigV4 or API key)"
    if is_loopback(settings.host):
        return "access is open to local callers (no keys; create one with `modelhost keys create`)"
    if not allow_unauthenticated:
        raise UnsafeBind(
            f"refusing to listen on {settings.host} without access keys: anyone who can reach it could deploy "
            "code that runs as this user. Create a key (`modelhost keys create`), or pass --allow-unauthenticated "
            "if the network is yours alone"
        )
    return f"WARNING: access is open to anyone who can reach {settings.host} (--allow-unauthenticated, no keys)"
