"""Where model data may be read from: allowed local roots, regular files and folders only, and no http(s)
fetches of loopback, link-local or private addresses unless allowed. Pure deciders plus one resolver.

Local paths (plain or file://) are read only under `DataLimits.local_roots` (MODELHOST_LOCAL_DATA_ROOTS,
colon-separated). Unset, every path is allowed while no access keys exist and none once one does
(`effective_roots`, which looks at HOME/keys.json when `DataLimits.keys_home` is set). A path outside
the roots is refused from its text alone (after `..` is folded), before anything on disk is touched, so the
answer is the same whether it exists or not; inside the roots symlinks are resolved and must stay inside.

http(s) hosts are resolved first; if any address is loopback, link-local, private, multicast, reserved or
unspecified the fetch is refused before a connection is made (MODELHOST_ALLOW_PRIVATE_MODEL_DATA=1 allows
them), and the connection then goes to a checked address (pinned_http.py). Connection failures read the same
whatever the reason, so errors do not tell open ports from closed ones.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelhost.security.keys import key_store_for


@dataclass(frozen=True, slots=True)
class DataLimits:
    local_roots: tuple[Path, ...] | None = None  # None: unset (any local path while no access keys exist)
    allow_private_http: bool = False  # MODELHOST_ALLOW_PRIVATE_MODEL_DATA
    keys_home: Path | None = None  # the home whose keys.json turns an unset local_roots into "none"


def effective_roots(limits: DataLimits) -> tuple[Path, ...] | None:
    """The roots in force now: the configured ones; unset, none at all once the home has an access key."""
    if limits.local_roots is not None or limits.keys_home is None:
        return limits.local_roots
    return () if key_store_for(limits.keys_home).enabled() else None


def parse_local_roots(value: str | None) -> tuple[Path, ...] | None:
    """MODELHOST_LOCAL_DATA_ROOTS: colon-separated absolute folders (~ expanded); unset or empty: None.
    Raises ValueError for a relative root."""
    if value is None or not value.strip():
        return None
    roots = []
    for part in value.split(":"):
        if not part.strip():
            continue
        root = Path(part.strip()).expanduser()
        if not root.is_absolute():
            raise ValueError(f"MODELHOST_LOCAL_DATA_ROOTS: {part!r} is not an absolute folder")
        roots.append(Path(os.path.normpath(root)))
    return tuple(roots)


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def outside_roots_reason(path: Path, roots: tuple[Path, ...] | None) -> str | None:
    """Why `path` may not be read judged from its text alone (None: it may). No I/O."""
    if roots is None:
        return None
    folded = Path(os.path.normpath(path))
    if _under(folded, roots):
        return None
    if not roots:
        return (
            f"{path} is a local path, and local model data is not allowed on a server with access keys unless "
            "MODELHOST_LOCAL_DATA_ROOTS names the folders it may be read from; use s3:// or https:// instead"
        )
    return (
        f"{path} is outside the folders model data may be read from "
        f"(MODELHOST_LOCAL_DATA_ROOTS={':'.join(str(r) for r in roots)})"
    )


def resolved_outside_roots_reason(path: Path, roots: tuple[Path, ...] | None) -> str | None:
    """As outside_roots_reason, then with symlinks resolved (a link inside a root may not lead out of it)."""
    reason = outside_roots_reason(path, roots)
    if reason is not None or roots is None:
        return reason
    resolved = Path(os.path.realpath(path))
    real_roots = tuple(Path(os.path.realpath(root)) for root in roots)
    if _under(resolved, real_roots) or _under(resolved, roots):
        return None
    return (
        f"{path} leads outside the folders model data may be read from "
        f"(MODELHOST_LOCAL_DATA_ROOTS={':'.join(str(r) for r in roots)})"
    )


def not_regular_reason(mode: int, shown: str) -> str | None:
    """Only regular files and folders are model data (never a FIFO, device or socket). No I/O."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"{shown} is not a regular file or folder"


def private_address_reason(host: str, addresses: Iterable[str]) -> str | None:
    """Why a host resolving to `addresses` may not be fetched (None: it may). No I/O."""
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            return f"{host} resolves to {text!r}, which is not an IP address"
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            address = mapped
        if (
            address.is_loopback
            or address.is_link_local
            or address.is_private
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
        ):
            return (
                f"{host} is a loopback, link-local or private address ({address}); model data is not fetched "
                "from those unless the server sets MODELHOST_ALLOW_PRIVATE_MODEL_DATA=1"
            )
    return None


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the system's order of preference (raises OSError when it does not)."""
    return list(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))


def data_limits(
    local_data_roots: str | None, allow_private_model_data: bool, keys_home: Path | None = None
) -> DataLimits:
    """The limits ServerSettings name (MODELHOST_LOCAL_DATA_ROOTS, MODELHOST_ALLOW_PRIVATE_MODEL_DATA); with
    `keys_home`, an unset MODELHOST_LOCAL_DATA_ROOTS means no local paths once that home has an access key."""
    return DataLimits(
        local_roots=parse_local_roots(local_data_roots),
        allow_private_http=allow_private_model_data,
        keys_home=keys_home,
    )
