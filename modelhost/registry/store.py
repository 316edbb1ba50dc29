"""The model registry on disk: model ids bound to local Hugging Face folders, added, listed and removed.

Layout under the registry root (`<MODELHOST_HOME>/registry`):

    models/<org--name>            symlink -> ../versions/<org--name>@<revision>; swapped atomically on re-add
    versions/<org--name>@<rev>/   one registration, never changed once in place
        registered.json           the RegisteredModel record
        weights/                  the Hugging Face folder (config.json, safetensors, tokenizer files)
        gguf/<file>.gguf          GGUF sources only: the original file, for engines that read GGUF
        hub/                      the same files in hub-cache layout (refs/main, snapshots/<rev>/...)
    staging/                      registrations being built; renamed into versions/ when complete
    hub-cache/                    the workers' HF_HUB_CACHE overlay (see hub_cache.py)

Hugging Face folders are registered by symlinking each file (no weights are copied, so the source must stay
where it is; `copy=True` copies instead). GGUF files are converted once, at registration, into a folder of
dequantised float32 safetensors plus the tokenizer (see materialize.py), and the GGUF itself is linked (or
copied) beside it. Reads never take a lock; the final rename and pointer swap of `add` and `remove` run
under an exclusive file lock on `<root>/.lock`.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from modelhost.registry.hub_cache import overlay_environment, sync_overlay, user_hub_cache, write_snapshot
from modelhost.registry.materialize import ProgressCallback, is_gguf_file, materialize_gguf
from modelhost.registry.model_id import entry_folder_name, hub_folder_name, is_model_id, validate_model_id

logger = logging.getLogger(__name__)

ModelKind = Literal["hf-folder", "gguf"]
_RECORD = "registered.json"
_RECORD_FORMAT = 1


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """One registered model id and the local files it resolves to."""

    model_id: str  # "org/name" or "name"
    kind: ModelKind  # what was registered: a Hugging Face folder or a GGUF file
    path: Path  # the Hugging Face folder to load; a stable path that follows re-registration
    source: Path  # absolute path of the folder or .gguf file that was registered
    size_bytes: int  # total size of the files in `path` (the GGUF is not counted)
    added_at: datetime  # when it was registered, UTC
    revision: str  # 40 hex digits naming this registration; the commit id in the hub-cache layout
    linked: bool  # True: the entry holds symlinks to `source`, which must stay; False: copies
    gguf_file: str | None = None  # GGUF sources: the file's name, kept in `gguf_path`

    @property
    def gguf_path(self) -> Path | None:
        """The registered GGUF file (for llama.cpp), or None for Hugging Face folder sources."""
        return None if self.gguf_file is None else self.path.parent / "gguf" / self.gguf_file


class ModelRegistry:
    """Model ids registered under `root`; see the module docstring for the layout."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    @property
    def overlay_dir(self) -> Path:
        """The hub-cache overlay that workers use as HF_HUB_CACHE."""
        return self.root / "hub-cache"

    def add(
        self,
        model_id: str,
        path: Path | str,
        *,
        copy: bool = False,
        progress: ProgressCallback | None = None,
    ) -> RegisteredModel:
        """Register the Hugging Face folder or GGUF file at `path` as `model_id`, replacing any earlier one.

        Raises ValueError for an invalid id or a path that is neither a folder with config.json nor a GGUF
        file, and RuntimeError when a GGUF cannot be converted. Nothing changes unless it succeeds.
        """
        validate_model_id(model_id)
        source, kind = _check_source(Path(path))
        report = progress or (lambda _phase: None)
        revision = secrets.token_hex(20)
        slug = entry_folder_name(model_id)
        staging = self.root / "staging" / f"{slug}@{revision}"
        staging.mkdir(parents=True)
        try:
            gguf_file = self._build(staging, source, kind, copy=copy, report=report)
            report("writing hub-cache layout")
            files = {str(p.relative_to(staging / "weights")): p for p in _files(staging / "weights")}
            if gguf_file is not None:
                files[gguf_file] = staging / "gguf" / gguf_file
            write_snapshot(staging / "hub", revision, files)
            record = RegisteredModel(
                model_id=model_id,
                kind=kind,
                path=self.root / "models" / slug / "weights",
                source=source,
                size_bytes=sum(p.stat().st_size for p in _files(staging / "weights")),
                added_at=datetime.now(UTC),
                revision=revision,
                linked=not copy,
                gguf_file=gguf_file,
            )
            (staging / _RECORD).write_text(json.dumps(_to_json(record), indent=2) + "\n")
            self._commit(staging, slug, revision)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        report(f"registered {model_id}")
        return record

    def get(self, model_id: str) -> RegisteredModel | None:
        """The registration of `model_id`, or None (also for strings that are not model ids)."""
        if not is_model_id(model_id):
            return None
        pointer = self.root / "models" / entry_folder_name(model_id)
        return self._read(pointer) if pointer.is_symlink() else None

    def resolve(self, model_id: str) -> Path | None:
        """The local Hugging Face folder of `model_id`, or None when it is not registered."""
        record = self.get(model_id)
        return None if record is None else record.path

    def list(self) -> builtins.list[RegisteredModel]:
        """Every registered model, sorted by id."""
        pointers = self.root / "models"
        if not pointers.is_dir():
            return []
        records = (self._read(pointer) for pointer in pointers.iterdir())
        return sorted((r for r in records if r is not None), key=lambda r: r.model_id)

    def remove(self, model_id: str) -> None:
        """Unregister `model_id` and delete its files (never the source). Raises LookupError if unknown."""
        validate_model_id(model_id)
        slug = entry_folder_name(model_id)
        pointer = self.root / "models" / slug
        with self._lock():
            if not pointer.is_symlink():
                raise LookupError(f"model id {model_id!r} is not registered")
            version = pointer.resolve()
            pointer.unlink()
            shutil.rmtree(version, ignore_errors=True)
            overlay_link = self.overlay_dir / hub_folder_name(model_id)
            if overlay_link.is_symlink():
                overlay_link.unlink()

    def worker_environment(self, base_env: Mapping[str, str], *, model_ids: Iterable[str] = ()) -> dict[str, str]:
        """The environment for a worker process: `base_env` with the hub cache pointed at the overlay.

        Rebuilds the overlay first (every registered id, over links to every entry of the hub cache that
        base_env selects). Under it `from_pretrained("org/name")` finds registered ids offline, then the
        user's cache, then the hub when base_env is online; an unknown id fails with transformers' usual
        OSError. HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE in base_env are kept.

        `model_ids` names the ids the worker is known to load (option.model_id, HF_MODEL_ID, and
        `referenced_model_ids(model.py source)`). If any is registered the worker is made offline
        (HF_HUB_OFFLINE=1): online, huggingface_hub asks the hub about `main` before looking at the cache,
        so an id that also exists on the hub would load (and download) the hub's files, and transformers'
        tokenizer loading raises RepositoryNotFoundError for an id the hub does not know.
        """
        registered = {hub_folder_name(record.model_id): record.path.parent / "hub" for record in self.list()}
        sync_overlay(self.overlay_dir, registered, user_hub_cache(base_env))
        offline = any(self.get(model_id) is not None for model_id in model_ids)
        return overlay_environment(base_env, self.overlay_dir, offline=offline)

    def _build(
        self, staging: Path, source: Path, kind: ModelKind, *, copy: bool, report: ProgressCallback
    ) -> str | None:
        """Fill staging/weights (and staging/gguf); return the GGUF file name for GGUF sources."""
        if kind == "hf-folder":
            report(f"{'copying' if copy else 'linking'} files of {source}")
            _mirror_tree(source, staging / "weights", copy=copy, registry_root=self.root)
            return None
        report(f"converting {source.name} to a Hugging Face folder")
        materialize_gguf(source, staging / "weights", progress=report)
        (staging / "gguf").mkdir()
        _place_file(source, staging / "gguf" / source.name, copy=copy, registry_root=self.root)
        return source.name

    def _commit(self, staging: Path, slug: str, revision: str) -> None:
        """Move a complete registration into versions/ and point models/<slug> at it, atomically."""
        with self._lock():
            version = self.root / "versions" / f"{slug}@{revision}"
            version.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(version)
            pointer = self.root / "models" / slug
            pointer.parent.mkdir(parents=True, exist_ok=True)
            previous = pointer.resolve() if pointer.is_symlink() else None
            new_pointer = pointer.with_name(f".{slug}@{revision}")
            new_pointer.symlink_to(os.path.relpath(version, pointer.parent))
            os.replace(new_pointer, pointer)
            if previous is not None and previous != version:
                # A worker that has the old files open keeps reading them (POSIX unlink semantics).
                shutil.rmtree(previous, ignore_errors=True)

    def _read(self, pointer: Path) -> RegisteredModel | None:
        try:
            return _from_json(json.loads((pointer / _RECORD).read_text()), pointer / "weights")
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("skipping unreadable registry entry %s", pointer)
            return None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _check_source(path: Path) -> tuple[Path, ModelKind]:
    """The absolute source path and its kind; ValueError saying what is wrong otherwise."""
    source = path.expanduser().absolute()
    if source.is_dir():
        if (source / "config.json").is_file():
            return source, "hf-folder"
        ggufs = sorted(p.name for p in source.glob("*.gguf"))
        hint = f"; to register a GGUF, pass the file itself ({source / ggufs[0]})" if ggufs else ""
        raise ValueError(f"{source} is not a Hugging Face model folder: it has no config.json{hint}")
    if source.is_file():
        if source.suffix.lower() == ".gguf" and is_gguf_file(source):
            return source, "gguf"
        raise ValueError(f"{source} is neither a Hugging Face model folder nor a GGUF file")
    raise ValueError(f"{source} does not exist")


def _files(folder: Path) -> list[Path]:
    """Files under `folder` (following links to files), hidden names skipped, sorted."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / name for name in sorted(filenames) if not name.startswith("."))
    return found


def _mirror_tree(source: Path, dest: Path, *, copy: bool, registry_root: Path) -> None:
    """Recreate `source`'s files under `dest`, as symlinks or copies (hidden names such as .git skipped)."""
    dest.mkdir(parents=True)
    for file in _files(source):
        _place_file(file, dest / file.relative_to(source), copy=copy, registry_root=registry_root)


def _place_file(file: Path, dest: Path, *, copy: bool, registry_root: Path) -> None:
    """Put `file` at `dest`: a symlink to its real path, or a copy when asked or when the real file is inside
    the registry (re-registering a registered folder; that version is deleted on replace)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    real = file.resolve(strict=True)
    if copy or real.is_relative_to(registry_root.resolve()):
        try:
            os.link(real, dest)  # same file system: no extra space, survives the old version's deletion
        except OSError:
            shutil.copy2(real, dest)
        return
    dest.symlink_to(real)


def _to_json(record: RegisteredModel) -> dict[str, object]:
    return {
        "format": _RECORD_FORMAT,
        "model_id": record.model_id,
        "kind": record.kind,
        "source": str(record.source),
        "size_bytes": record.size_bytes,
        "added_at": record.added_at.isoformat(),
        "revision": record.revision,
        "linked": record.linked,
        "gguf_file": record.gguf_file,
    }


def _from_json(data: dict[str, object], path: Path) -> RegisteredModel:
    kind: ModelKind
    if data["kind"] == "hf-folder":
        kind = "hf-folder"
    elif data["kind"] == "gguf":
        kind = "gguf"
    else:
        raise ValueError(f"unknown registry entry kind {data['kind']!r}")
    gguf_file = data.get("gguf_file")
    return RegisteredModel(
        model_id=str(data["model_id"]),
        kind=kind,
        path=path,
        source=Path(str(data["source"])),
        size_bytes=int(str(data["size_bytes"])),
        added_at=datetime.fromisoformat(str(data["added_at"])),
        revision=str(data["revision"]),
        linked=bool(data["linked"]),
        gguf_file=None if gguf_file is None else str(gguf_file),
    )
