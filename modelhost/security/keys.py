"""The access-key store: HOME/keys.json, readable only by the server's user.

Each key is an AWS-style access key (20-character id, 40-character secret) for SigV4, an OpenAI API key
(`mh-...`) for the `/v1/` routes, the user name the key belongs to, and an optional IAM identity policy.
The file is written atomically (a temporary file renamed over it) with mode 0600; a running server re-reads
it when its modification time or size changes, so `modelhost keys create` takes effect within a second.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import string
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhost.errors import ModelhostError

KEYS_FILE = "keys.json"
FILE_MODE = 0o600
RECHECK_INTERVAL_S = 0.2  # how often a running server looks at the file's mtime
_ID_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
_API_KEY_ALPHABET = string.ascii_letters + string.digits


class KeyStoreError(ModelhostError):
    """keys.json cannot be read or written (permissions, invalid JSON); the message says which file."""


@dataclass(frozen=True, slots=True)
class AccessKey:
    access_key_id: str  # AKIA + 16 characters
    secret_access_key: str  # 40 characters
    user_name: str
    api_key: str  # mh-... for OpenAI's `Authorization: Bearer`
    created_s: float
    policy: dict[str, Any] | None = None  # an IAM identity policy document; None: may do everything

    def to_json(self) -> dict[str, Any]:
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "UserName": self.user_name,
            "ApiKey": self.api_key,
            "CreatedS": self.created_s,
            "Policy": self.policy,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccessKey:
        policy = data.get("Policy")
        return cls(
            access_key_id=str(data["AccessKeyId"]),
            secret_access_key=str(data["SecretAccessKey"]),
            user_name=str(data["UserName"]),
            api_key=str(data["ApiKey"]),
            created_s=float(data.get("CreatedS", 0.0)),
            policy=policy if isinstance(policy, dict) else None,
        )


def new_key(user_name: str, policy: dict[str, Any] | None = None, now_s: float | None = None) -> AccessKey:
    """A fresh key with random id, secret and API key."""
    return AccessKey(
        access_key_id="AKIA" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16)),
        secret_access_key="".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40)),
        user_name=user_name,
        api_key="mh-" + "".join(secrets.choice(_API_KEY_ALPHABET) for _ in range(40)),
        created_s=time.time() if now_s is None else now_s,
        policy=policy,
    )


def keys_path(home: Path) -> Path:
    return home / KEYS_FILE


def read_keys(path: Path) -> list[AccessKey]:
    """The keys in `path`; [] when the file does not exist."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise KeyStoreError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
        rows = data["keys"]
        return [AccessKey.from_json(row) for row in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyStoreError(f"{path} is not a valid modelhost key file ({exc}); fix or remove it") from None


def write_keys(path: Path, keys: list[AccessKey]) -> None:
    """Replace `path` atomically with `keys`, mode 0600 from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": 1, "keys": [k.to_json() for k in keys]}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".keys-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class KeyStore:
    """The home's keys, edited by the CLI and read (re-read on change) by the server."""

    def __init__(self, home: Path, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = keys_path(home)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read
        self._checked_at = float("-inf")
        self._keys: dict[str, AccessKey] = {}
        self._by_api_key: dict[str, AccessKey] = {}

    # reading (server) -------------------------------------------------------------------------
    def _refresh(self) -> None:
        now = self._monotonic()
        if now - self._checked_at < RECHECK_INTERVAL_S:
            return
        with self._lock:
            self._checked_at = now
            try:
                st = self.path.stat()
                stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp == self._stamp:
                return
            keys = read_keys(self.path) if stamp is not None else []
            self._keys = {k.access_key_id: k for k in keys}
            self._by_api_key = {k.api_key: k for k in keys}
            self._stamp = stamp

    def enabled(self) -> bool:
        """True once at least one key exists: from then on every request must be authenticated."""
        self._refresh()
        return bool(self._keys)

    def get(self, access_key_id: str) -> AccessKey | None:
        self._refresh()
        return self._keys.get(access_key_id)

    def by_api_key(self, api_key: str) -> AccessKey | None:
        self._refresh()
        return self._by_api_key.get(api_key)

    def list(self) -> list[AccessKey]:
        return read_keys(self.path)

    # editing (CLI) ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _editing(self) -> Iterator[None]:
        """Serialise edits (two `keys create` at once must not lose one) with a lock file beside keys.json."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.parent / ".keys.lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def create(self, user_name: str, policy: dict[str, Any] | None = None) -> AccessKey:
        with self._editing():
            keys = read_keys(self.path)
            key = new_key(user_name, policy)
            write_keys(self.path, [*keys, key])
        return key

    def delete(self, access_key_id: str) -> bool:
        """Remove the key; False when there is no such key."""
        with self._editing():
            keys = read_keys(self.path)
            kept = [k for k in keys if k.access_key_id != access_key_id]
            if len(kept) == len(keys):
                return False
            write_keys(self.path, kept)
        return True


_STORES: dict[Path, KeyStore] = {}
_STORES_LOCK = threading.Lock()


def key_store_for(home: Path) -> KeyStore:
    """The process's one KeyStore for a home (the edges share it, so the file is watched once)."""
    with _STORES_LOCK:
        store = _STORES.get(home)
        if store is None:
            store = _STORES[home] = KeyStore(home)
        return store
