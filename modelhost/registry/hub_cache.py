"""The Hugging Face hub-cache layout: registry snapshots, the workers' overlay cache, and its environment.

huggingface_hub resolves `from_pretrained("org/name")` (revision `main`) inside `HF_HUB_CACHE` as
`models--org--name/refs/main` (a file holding a 40-hex commit id, no newline) and then
`models--org--name/snapshots/<commit>/<file>`. Snapshot files may be symlinks (the hub's own cache links
them into `blobs/`), and offline a file missing from the snapshot is simply "not cached".

Workers get `HF_HUB_CACHE` pointed at an overlay folder built here: one symlink per entry of the user's
real hub cache (so unregistered ids still load from it, and updates fetched online for them land in it),
overridden by one symlink per registered id (so registered ids win). An id in neither is downloaded (when
online) into the overlay itself, as a real folder that later syncs keep. Links are rebuilt on every
`sync_overlay` call, which is safe while workers read the overlay (each link is swapped atomically).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

# Where a worker's environment points caches; HUGGINGFACE_HUB_CACHE is the pre-0.16 huggingface_hub name,
# TRANSFORMERS_CACHE the transformers 4.x one (5.x ignores it). HF_HOME stays: token, xet cache, modules.
CACHE_VARIABLES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
_MOVED_ASIDE = ".replaced-by-registry"


def write_snapshot(hub_dir: Path, revision: str, files: Mapping[str, Path]) -> None:
    """Write one repo in hub-cache layout: `refs/main` = revision, `snapshots/<revision>/<name>` -> file.

    `files` maps a relative name (may contain `/`) to the file it stands for; links are relative so the
    folder can move with its targets.
    """
    (hub_dir / "refs").mkdir(parents=True, exist_ok=True)
    # huggingface_hub reads the ref with f.read() and uses it verbatim: no trailing newline.
    (hub_dir / "refs" / "main").write_text(revision)
    snapshot = hub_dir / "snapshots" / revision
    for name, target in files.items():
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(target, link.parent))


def user_hub_cache(base_env: Mapping[str, str]) -> Path:
    """The hub cache huggingface_hub would use under `base_env` (same precedence as its constants.py).

    HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub,
    else ~/.cache/huggingface/hub; `~` expands with base_env's HOME when it has one.
    """

    def expand(value: str) -> Path:
        home = base_env.get("HOME")
        if home and (value == "~" or value.startswith("~/")):
            value = home + value[1:]
        return Path(os.path.expanduser(value))

    for name in CACHE_VARIABLES:
        if base_env.get(name):
            return expand(base_env[name])
    if base_env.get("HF_HOME"):
        return expand(base_env["HF_HOME"]) / "hub"
    cache_home = base_env.get("XDG_CACHE_HOME") or "~/.cache"
    return expand(cache_home) / "huggingface" / "hub"


def sync_overlay(overlay_dir: Path, registered: Mapping[str, Path], user_cache: Path | None) -> None:
    """Make `overlay_dir` link every entry of `user_cache`, then every registered repo over them.

    `registered` maps a hub folder name (`models--org--name`) to that repo's hub-layout folder. Links the
    overlay no longer wants are removed. A real folder in the overlay (never created here) is left alone
    unless a registered id needs its name; then it is moved aside, because registered ids must win.
    """
    overlay_dir.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, Path] = {}
    if user_cache is not None and user_cache.is_dir() and not _same_folder(user_cache, overlay_dir):
        for entry in user_cache.iterdir():
            if not entry.name.startswith("."):  # .locks belongs to each cache's own writers
                wanted[entry.name] = entry.absolute()
    for name, hub_dir in registered.items():
        wanted[name] = hub_dir
    for entry in overlay_dir.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            if entry.name not in wanted:
                _unlink_quietly(entry)
        elif entry.name in registered:
            aside = overlay_dir / _MOVED_ASIDE / f"{entry.name}-{time.time_ns()}"
            aside.parent.mkdir(exist_ok=True)
            logger.warning("moving %s aside to %s: a registered model id uses that name", entry, aside)
            entry.rename(aside)
    for name, target in wanted.items():
        _point(overlay_dir / name, _link_text(target, overlay_dir))


def overlay_environment(base_env: Mapping[str, str], overlay_dir: Path, *, offline: bool) -> dict[str, str]:
    """A copy of `base_env` whose hub cache is `overlay_dir`; `offline` adds HF_HUB_OFFLINE=1.

    Offline settings already in base_env are kept either way.
    """
    env = dict(base_env)
    for name in CACHE_VARIABLES:
        env[name] = str(overlay_dir)
    if "TRANSFORMERS_CACHE" in env:  # transformers 4.x would prefer it to HF_HUB_CACHE
        env["TRANSFORMERS_CACHE"] = str(overlay_dir)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def _link_text(target: Path, overlay_dir: Path) -> str:
    # Targets inside the registry root (the overlay's parent) get relative links, so MODELHOST_HOME can move.
    try:
        target.absolute().relative_to(overlay_dir.absolute().parent)
    except ValueError:
        return str(target.absolute())
    return os.path.relpath(target.absolute(), overlay_dir.absolute())


def _point(link: Path, text: str) -> None:
    """Make `link` a symlink whose text is `text`, replacing an old link atomically."""
    if link.is_symlink() and os.readlink(link) == text:
        return
    if link.exists() and not link.is_symlink():
        return  # a real folder, kept (see sync_overlay)
    staging = link.with_name(f".{link.name}.{os.getpid()}.{time.time_ns()}")
    staging.symlink_to(text)
    os.replace(staging, link)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # another sync removed it first
        path.unlink()


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
