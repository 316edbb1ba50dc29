"""What can go wrong with the store, in words that tell the user what to do.

    StoreError                 base: catch this to handle any store failure
    ├── StoreCorrupt           the store file cannot be used (empty, not SQLite, fails its integrity check);
    │                          the server refuses to start rather than replace it
    ├── StoreUnavailable       a read or write failed (disk full, read-only file system, locked, the
    │                          PostgreSQL server unreachable); also an ApiError (503 ServiceUnavailable) so
    │                          the control plane answers with the reason
    ├── StoreUrlInvalid        MODELHOST_STORE_URL / --store-url is not a store URL modelhost can use
    └── UnreadableRecord       one stored record cannot be decoded; also an ApiError (500 InternalFailure)
                               and a ValueError

`modelhost doctor` inspects a home, lists backups and restores one (`--restore`).
"""

from __future__ import annotations

from pathlib import Path

from modelhost.errors import ApiError, ModelhostError


class StoreError(ModelhostError):
    """Base of the store's own errors."""


class StoreCorrupt(StoreError):
    """The store file exists but is not a usable SQLite database; it was left exactly as found."""

    def __init__(self, path: Path, problem: str, advice: str | None = None) -> None:
        self.path = path
        self.problem = problem
        advice = advice or (
            "modelhost does not start on it (nothing was changed). "
            f"Run `modelhost doctor --home {path.parent}` to see the backups, and "
            f"`modelhost doctor --home {path.parent} --restore` to put the newest one in place"
        )
        super().__init__(f"the store {path} {problem}; {advice}")


class StoreUnavailable(StoreError, ApiError):
    """The store refused a read or write for a reason outside the data: disk full, read-only file system, lock
    (SQLite); the database unreachable or refusing the login (PostgreSQL, located by its URL without password)."""

    code = "ServiceUnavailable"
    status = 503

    def __init__(self, path: Path | str, action: str, cause: str, *, shared: bool = False) -> None:
        self.path = path
        self.action = action
        self.cause = cause
        self.shared = shared
        self.detail = f"cannot {action} the store {path}: {cause}{_hint(cause)}"
        super().__init__(self.detail)
        if shared:  # a database's user, host, port, name and driver text are for the log, not for clients
            self.message = SHARED_STORE_UNAVAILABLE


SHARED_STORE_UNAVAILABLE = "The control-plane store is unavailable; retry shortly."


def client_text(exc: BaseException) -> str:
    """What a client may be told of `exc`: an ApiError's message (a shared store's outage in general words),
    else its text."""
    return exc.message if isinstance(exc, ApiError) else str(exc)


class StoreUrlInvalid(StoreError):
    """MODELHOST_STORE_URL names no store modelhost can use (scheme, missing driver); the message never holds the
    URL's password."""


class UnreadableRecord(StoreError, ApiError, ValueError):
    """A stored record whose JSON cannot be decoded; `modelhost doctor` lists every such record.

    Also a ValueError, as json's error was before, so callers that caught that keep working.
    """

    code = "InternalFailure"
    status = 500

    def __init__(self, kind: str, name: str, reason: str) -> None:
        self.kind = kind
        self.name = name
        self.reason = reason
        super().__init__(
            f'the stored {kind} "{name}" cannot be read ({reason}); '
            "run `modelhost doctor` to list damaged records and restore a backup"
        )


def _hint(cause: str) -> str:
    lowered = cause.lower()
    if "full" in lowered:
        return " (free disk space on that file system; nothing was written)"
    if "readonly" in lowered or "read-only" in lowered:
        return " (the file or its folder is read-only: check the file system and permissions)"
    if "malformed" in lowered or "not a database" in lowered:
        return " (the file is damaged: stop the server and run `modelhost doctor`)"
    if "locked" in lowered or "busy" in lowered:
        return " (another process holds the database; is a second program writing to it?)"
    return ""
