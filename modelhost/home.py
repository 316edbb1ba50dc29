"""The data directory's owner: one modelhost process at a time runs a home (HOME/server.lock).

A server takes an exclusive `flock` on HOME/server.lock before it touches the store or any worker, and
writes its pid, address and start time into the file. The kernel drops the lock when the process ends,
however it ends (kill -9 included), so a lock file left behind by a dead server never blocks: only a live
holder does. The file is never deleted (deleting a lock file lets two processes lock two different files).
`modelhost doctor --restore` takes the same lock, so no server can start while a backup is put in place.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from modelhost.errors import ModelhostError

LOCK_FILE = "server.lock"
ACQUIRE_TRIES = 5  # a reader that peeks (current_holder) holds a shared lock for an instant; retry past it
ACQUIRE_RETRY_S = 0.05


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a home, as its lock file says."""

    pid: int | None
    role: str = "server"  # "server", or "doctor" while a backup is restored
    host: str | None = None
    port: int | None = None
    started_s: float | None = None  # epoch seconds

    def describe(self) -> str:
        """`server (pid 1234, port 8080)`."""
        details = [f"pid {self.pid}" if self.pid is not None else "pid unknown"]
        if self.port is not None:
            details.append(f"port {self.port}")
        return f"{self.role} ({', '.join(details)})"


class HomeBusy(ModelhostError):
    """Another live modelhost process holds this home."""

    def __init__(self, home: Path, holder: LockHolder) -> None:
        self.home = home
        self.holder = holder
        super().__init__(
            f"another modelhost {holder.describe()} is using {home}; stop it or start this one with --home DIR"
        )


class HomeUnusable(ModelhostError):
    """The data directory or its lock file cannot be created or opened (permissions, read-only file system)."""


def lock_path(home: Path) -> Path:
    return home / LOCK_FILE


def read_holder(text: str) -> LockHolder:
    """The holder recorded in a lock file's text (fields it lacks stay None)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return LockHolder(pid=None)

    def number(key: str) -> int | None:
        value = data.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    started = data.get("started_s")
    return LockHolder(
        pid=number("pid"),
        role=str(data.get("role") or "server"),
        host=data.get("host") if isinstance(data.get("host"), str) else None,
        port=number("port"),
        started_s=float(started) if isinstance(started, int | float) else None,
    )


def current_holder(home: Path) -> LockHolder | None:
    """The live process holding `home`, or None when nobody does (a stale lock file counts as nobody)."""
    try:
        fd = os.open(lock_path(home), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            return read_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class HomeLock:
    """The exclusive lock on one home, held from `acquire()` until `release()` or the process's end."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = lock_path(home)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, role: str = "server", host: str | None = None, port: int | None = None) -> None:
        """Takes the lock at once or raises HomeBusy naming the holder; records this process in the file."""
        if self._fd is not None:
            return
        try:
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new data directory: this user only
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by workers (O_CLOEXEC)
        except OSError as exc:
            raise HomeUnusable(f"cannot use the data directory {self.home}: {exc.strerror or exc}") from None
        try:
            self._lock(fd)
        except BaseException:
            os.close(fd)
            raise
        record = {"pid": os.getpid(), "role": role, "host": host, "port": port, "started_s": time.time()}
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self._fd = fd

    def _lock(self, fd: int) -> None:
        for _ in range(ACQUIRE_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            time.sleep(ACQUIRE_RETRY_S)
        raise HomeBusy(self.home, read_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace")))

    def release(self) -> None:
        """Empties the record and drops the lock (the file stays)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    def __enter__(self) -> HomeLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
