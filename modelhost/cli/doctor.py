"""`modelhost doctor`: the state of a data directory, read from its files (no server needed), and restoring a backup.

Reports who holds the home (HOME/server.lock), the store's integrity and unreadable rows, and the backups;
exits 1 when something needs repair. `--restore [BACKUP]` puts the newest (or the named) backup in place of
the store while holding the home's lock, keeping the old file aside as `<store>.corrupt-<stamp>`.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click

from modelhost.home import HomeBusy, HomeLock, LockHolder, current_holder
from modelhost.settings import ServerSettings
from modelhost.store.backups import Backup, backups_dir_for, list_backups, resolve_backup, restore_backup
from modelhost.store.errors import StoreError
from modelhost.store.integrity import StoreReport, inspect_store

KIND_LABELS = {"model": "models", "endpoint_config": "endpoint configs", "endpoint": "endpoints"}


def describe_holder(holder: LockHolder | None) -> str:
    if holder is None:
        return "none (no modelhost server holds this home)"
    since = ""
    if holder.started_s is not None:
        since = f" since {datetime.fromtimestamp(holder.started_s):%Y-%m-%d %H:%M:%S}"
    return f"held by modelhost {holder.describe()}{since}"


def describe_store(report: StoreReport) -> list[str]:
    if not report.exists:
        return [f"{report.path}: none yet (a fresh home; the server creates it)"]
    if report.damage is not None:
        return [f"DAMAGED: {report.damage}"]
    counts = [f"{report.records.get(kind, 0)} {label}" for kind, label in KIND_LABELS.items()]
    counts += [f"{n} {kind}" for kind, n in sorted(report.records.items()) if kind not in KIND_LABELS]
    counts.append(f"{report.instances} instances")
    lines = [f"{report.path}: ok ({', '.join(counts)})"]
    lines += [f'unreadable {p.kind} "{p.name}": {p.reason}' for p in report.unreadable]
    return lines


def describe_backups(backups_dir: Path, backups: list[Backup]) -> list[str]:
    if not backups:
        return [f"none in {backups_dir} (the server writes one at start-up and every 10 minutes)"]
    lines = [f"{backups_dir} (newest first)"]
    for backup in backups:
        lines.append(f"  {backup.path.name}  {backup.taken:%Y-%m-%d %H:%M:%S} UTC  {backup.size_bytes / 1024:.1f} KiB")
    return lines


def needs_repair(report: StoreReport) -> bool:
    return report.damage is not None or bool(report.unreadable)


def advice(report: StoreReport, backups: list[Backup], home: Path) -> str:
    if not needs_repair(report):
        return "healthy"
    if not backups:
        return "needs repair, and there is no backup to restore"
    return (
        f"needs repair: `modelhost doctor --home {home} --restore` puts {backups[0].path.name} in place "
        f"(or name another backup); the current file is kept aside"
    )


def print_report(settings: ServerSettings) -> bool:
    """Prints the home's state; True when it is healthy."""
    report = inspect_store(settings.db_path)
    backups_dir = backups_dir_for(settings.db_path)
    backups = list_backups(backups_dir)
    sections = [
        ("home", [str(settings.home)]),
        ("server", [describe_holder(current_holder(settings.home))]),
        ("store", describe_store(report)),
        ("backups", describe_backups(backups_dir, backups)),
        ("verdict", [advice(report, backups, settings.home)]),
    ]
    for title, lines in sections:
        for i, line in enumerate(lines):
            click.echo(f"{title if i == 0 else '':<8} {line}")
    return not needs_repair(report)


def refuse(message: str) -> NoReturn:
    """One line and exit 1, as every modelhost command reports errors."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def restore(settings: ServerSettings, name: str) -> None:
    lock = HomeLock(settings.home)
    try:
        lock.acquire(role="doctor")
    except HomeBusy as exc:
        refuse(f"cannot restore while modelhost {exc.holder.describe()} is using {settings.home}; stop it first")
    try:
        backup = resolve_backup(backups_dir_for(settings.db_path), name or None)
        aside = restore_backup(settings.db_path, backup, time.time())
    except (FileNotFoundError, StoreError) as exc:
        refuse(str(exc))
    finally:
        lock.release()
    kept = f"; the previous store is kept as {aside}" if aside is not None else ""
    click.echo(f"restored {backup} to {settings.db_path}{kept}")
    for line in describe_store(inspect_store(settings.db_path)):
        click.echo(f"store    {line}")


@click.command()
@click.option("--home", envvar="MODELHOST_HOME", default=None, help="data directory (default ~/.modelhost)")
@click.option(
    "--restore",
    "restore_name",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[BACKUP]",
    help="put the newest backup (or the one named) in place of the store; refused while a server runs",
)
def doctor(home: str | None, restore_name: str | None) -> None:
    """Check a data directory (lock, store integrity, unreadable rows, backups), or restore a backup."""
    settings = ServerSettings.from_environment(home=home)
    if restore_name is not None:
        restore(settings, restore_name)
        return
    if not print_report(settings):
        sys.exit(1)
