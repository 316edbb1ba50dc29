"""Rolling backups of the store (HOME/backups/store-YYYYmmddTHHMMSS.db, UTC) and restoring one.

Backups are taken with SQLite's online backup API, so they are consistent while the server writes, and
saved as plain (rollback-journal) database files under a temporary name first: a backup cut short by a
full disk never looks like a backup. The newest `kept` are kept.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from modelhost.store.errors import StoreCorrupt
from modelhost.store.integrity import check_store_file

BACKUP_PREFIX = "store-"
BACKUP_SUFFIX = ".db"
STAMP_FORMAT = "%Y%m%dT%H%M%S"
SIDE_FILES = ("-wal", "-shm")  # SQLite's WAL companions: they belong to the database file beside them


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    taken: datetime  # UTC, from the file name
    size_bytes: int


def backups_dir_for(db_path: Path) -> Path:
    return db_path.parent / "backups"


def stamp(now_s: float) -> str:
    return datetime.fromtimestamp(now_s, UTC).strftime(STAMP_FORMAT)


def write_backup(conn: sqlite3.Connection, backups_dir: Path, now_s: float, kept: int) -> Path:
    """Copies the database behind `conn` to a new backup file, then drops all but the newest `kept`."""
    backups_dir.mkdir(parents=True, exist_ok=True)
    final = backups_dir / f"{BACKUP_PREFIX}{stamp(now_s)}{BACKUP_SUFFIX}"
    partial = final.with_name(final.name + ".partial")
    try:
        dest = sqlite3.connect(partial)
        try:
            conn.backup(dest)
            dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dest.close()
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    prune_backups(backups_dir, kept)
    return final


def list_backups(backups_dir: Path) -> list[Backup]:
    """The backups in `backups_dir`, newest first (files whose names are not backups are ignored)."""
    found: list[Backup] = []
    for path in backups_dir.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}"):
        try:
            taken = datetime.strptime(path.name[len(BACKUP_PREFIX) : -len(BACKUP_SUFFIX)], STAMP_FORMAT)
            size_bytes = path.stat().st_size
        except (ValueError, OSError):
            continue
        found.append(Backup(path, taken.replace(tzinfo=UTC), size_bytes))
    return sorted(found, key=lambda b: b.taken, reverse=True)


def prune_backups(backups_dir: Path, kept: int) -> list[Path]:
    """Deletes all but the newest `kept` backups; returns what it deleted."""
    removed = [b.path for b in list_backups(backups_dir)[kept:]]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def resolve_backup(backups_dir: Path, name: str | None) -> Path:
    """The backup `name` names (a file name in `backups_dir` or a path), or the newest; FileNotFoundError if none."""
    if not name:
        backups = list_backups(backups_dir)
        if not backups:
            raise FileNotFoundError(f"there is no backup in {backups_dir}")
        return backups[0].path
    for candidate in (Path(name).expanduser(), backups_dir / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no backup named {name} (neither a file nor a name in {backups_dir})")


def restore_backup(db_path: Path, backup: Path, now_s: float) -> Path | None:
    """Puts `backup` in place of the store at `db_path`; the caller must hold the home's lock (no server running).

    The current store file and its -wal/-shm companions are kept aside as `<name>.corrupt-<stamp>` (returned;
    None when there was no store). Raises StoreCorrupt when the backup itself is damaged, changing nothing.
    """
    try:
        check_store_file(backup)
    except StoreCorrupt as exc:
        raise StoreCorrupt(backup, exc.problem, "it cannot be restored; pick another backup") from None
    incoming = db_path.with_name(db_path.name + ".restoring")
    shutil.copyfile(backup, incoming)
    with open(incoming, "rb+") as f:
        os.fsync(f.fileno())
    aside: Path | None = None
    if db_path.exists():
        aside = db_path.with_name(f"{db_path.name}.corrupt-{stamp(now_s)}")
        os.replace(db_path, aside)
    for suffix in SIDE_FILES:  # a stale WAL must never be replayed onto the restored file
        side = db_path.with_name(db_path.name + suffix)
        if side.exists():
            if aside is not None:
                os.replace(side, aside.with_name(aside.name + suffix))
            else:
                side.unlink()
    os.replace(incoming, db_path)
    return aside
