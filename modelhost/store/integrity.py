"""Whether a store file and its records can be trusted: file checks before opening, record decoding, inspection.

Nothing here writes to a store. `check_store_file` runs before the server opens its store (and before a backup
is restored); `inspect_store` is what `modelhost doctor` reports.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelhost.store.errors import StoreCorrupt, StoreUnavailable

SQLITE_HEADER = b"SQLite format 3\x00"
MAX_CHECK_MESSAGES = 3  # quick_check lines quoted in an error


@dataclass(frozen=True, slots=True)
class RecordProblem:
    """A stored row that cannot be decoded, by kind ("model", "endpoint", …, or "instance") and stored name."""

    kind: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class StoreReport:
    """What `modelhost doctor` says about a store file."""

    path: Path
    exists: bool
    damage: str | None = None  # why the file cannot be used at all; None: it can
    records: dict[str, int] = field(default_factory=dict)  # readable records per kind
    instances: int = 0
    unreadable: list[RecordProblem] = field(default_factory=list)


def connect_existing(path: Path) -> sqlite3.Connection:
    """A connection to a file that must already exist (sqlite3.connect alone would create an empty one)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, check_same_thread=False)


def check_store_file(path: Path) -> bool:
    """False when there is no store yet (a fresh home), True when the file is a healthy SQLite database.

    Raises StoreCorrupt, leaving the file untouched, when it exists but is empty, is not SQLite, or fails
    `PRAGMA quick_check`.
    """
    try:
        size_bytes = path.stat().st_size
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreUnavailable(path, "read", str(exc)) from exc
    if not path.is_file():
        raise StoreCorrupt(path, "is not a regular file")
    if size_bytes == 0:
        raise StoreCorrupt(
            path,
            "is empty (0 bytes): starting on it would show an empty control plane and every resource would be lost "
            "(delete the file if a fresh home is what you want)",
        )
    try:
        with open(path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreUnavailable(path, "read", str(exc)) from exc
    if header != SQLITE_HEADER:
        raise StoreCorrupt(path, f"is not a SQLite database ({size_bytes} bytes without SQLite's header)")
    messages = quick_check(path)
    if messages:
        more = f" and {len(messages) - MAX_CHECK_MESSAGES} more" if len(messages) > MAX_CHECK_MESSAGES else ""
        raise StoreCorrupt(path, f"fails SQLite's integrity check ({'; '.join(messages[:MAX_CHECK_MESSAGES])}{more})")
    return True


def quick_check(path: Path) -> list[str]:
    """`PRAGMA quick_check` of an existing file: [] when healthy, else SQLite's messages."""
    try:
        conn = connect_existing(path)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    messages = [str(row[0]) for row in rows]
    return [] if messages == ["ok"] else messages


def decode_record(data: object) -> dict[str, Any]:
    """The JSON object stored in a row; ValueError saying why when it is not one."""
    if not isinstance(data, str | bytes):
        raise ValueError(f"stored as {type(data).__name__}, not JSON text")
    try:
        record = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"bad JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError(f"JSON {type(record).__name__}, not an object")
    return record


def instance_row_problem(row: tuple[object, ...]) -> str | None:
    """Why an `instances` row cannot become an InstanceRow (None: it can)."""
    instance_id, endpoint_key, pid, port, started = row
    if not isinstance(instance_id, str) or not isinstance(endpoint_key, str):
        return "instance id or endpoint is not text"
    if not isinstance(pid, int) or not isinstance(port, int):
        return "pid or port is not an integer"
    if not isinstance(started, int | float):
        return "start time is not a number"
    return None


def inspect_store(path: Path) -> StoreReport:
    """Integrity, readable records per kind and unreadable rows of the store at `path`; never writes to it."""
    try:
        if not check_store_file(path):
            return StoreReport(path, exists=False)
    except (StoreCorrupt, StoreUnavailable) as exc:
        return StoreReport(path, exists=True, damage=str(exc))
    conn = connect_existing(path)
    try:
        resources = conn.execute("SELECT kind, key, data FROM resources").fetchall()
        instances = conn.execute("SELECT * FROM instances").fetchall()
    except sqlite3.DatabaseError as exc:
        return StoreReport(path, exists=True, damage=f"the store {path} cannot be read: {exc}")
    finally:
        conn.close()
    counts: Counter[str] = Counter()
    unreadable: list[RecordProblem] = []
    for kind, key, data in resources:
        try:
            decode_record(data)
        except ValueError as exc:
            unreadable.append(RecordProblem(str(kind), str(key), str(exc)))
            continue
        counts[str(kind)] += 1
    readable_instances = 0
    for row in instances:
        problem = instance_row_problem(tuple(row)) if len(row) == 5 else "wrong number of columns"
        if problem is None:
            readable_instances += 1
        else:
            unreadable.append(RecordProblem("instance", str(row[0]), problem))
    return StoreReport(path, True, None, dict(counts), readable_instances, unreadable)
