"""Safe extraction of a model archive (.tar.gz or .tar) into a new folder; refuses anything unsafe.

`extract_archive(archive, dest, max_extract_bytes=...)` streams the archive once, checks every member before
writing it (absolute paths, `..` escapes, links pointing outside, devices/FIFOs, the size and member caps),
extracts with tarfile's "data" filter as a second line of defence, verifies every symlink once more, then
renames the finished folder into place. On any failure nothing is left at `dest`, and
DeploymentError("extract") names the member and the cause. Archives are extracted as they are: a single
top folder stays (as SageMaker mounts it); choosing the folder to serve from is model_root.py's job.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from modelhost.contracts.worker import PHASE_EXTRACT
from modelhost.errors import DeploymentError

MAX_MEMBERS = 1_000_000
_POINT_TO_TAR_GZ = "ModelDataUrl must point to a .tar.gz"
NOT_AN_ARCHIVE = f"model data is not a gzip-compressed tar archive ({_POINT_TO_TAR_GZ})"
_StreamMode = Literal["r|gz", "r|"]
_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_FORMATS = {b"PK\x03\x04": "a zip file", b"BZh": "bzip2-compressed", b"\xfd7zXZ\x00": "xz-compressed"}
_SPECIAL_KINDS = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
}


def extract_archive(
    archive: Path,
    dest: Path,
    *,
    max_extract_bytes: int,
    max_members: int = MAX_MEMBERS,
    check_deadline: Callable[[], None] | None = None,
) -> Path:
    """Extract `archive` into the new folder `dest` (which must not exist) and return `dest`.

    `check_deadline` is called before each member and may raise (the download timeout covers extraction).
    Raises DeploymentError("extract", reason) for anything unsafe, too large, not an archive, or corrupt.
    """
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    mode = _open_mode(archive)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex}"
    partial.mkdir()
    try:
        _extract_members(archive, mode, partial, max_extract_bytes, max_members, check_deadline)
        _verify_symlinks(partial)
        return publish_folder(partial, dest)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def publish_folder(partial: Path, dest: Path) -> Path:
    """Atomically rename a finished folder to `dest`; if another process got there first, keep theirs."""
    try:
        os.rename(partial, dest)
    except OSError:
        if not dest.is_dir():
            raise
        shutil.rmtree(partial, ignore_errors=True)  # same content, published by a concurrent prepare
    return dest


def member_refusal(member: tarfile.TarInfo) -> str | None:
    """Why a member may not be extracted (None when it may); the reason names the member."""
    name = member.name
    if "\x00" in name:
        return f"member {name!r} has a NUL byte in its name"
    if name.startswith("/"):
        return f"member {name!r} has an absolute path"
    if _escapes(name):
        return f"member {name!r} points outside the model folder ('..')"
    if member.issym() or member.islnk():
        kind = "symlink" if member.issym() else "hard link"
        target = member.linkname
        if target.startswith("/"):
            return f"member {name!r} is a {kind} to the absolute path {target!r}"
        # A symlink is relative to its own folder; a hard link's target is a member name (archive root).
        resolved = posixpath.join(posixpath.dirname(name), target) if member.issym() else target
        if _escapes(resolved):
            return f"member {name!r} is a {kind} to {target!r}, outside the model folder"
        return None
    if member.isreg() or member.isdir():
        return None
    kind = _SPECIAL_KINDS.get(member.type, f"a special member (tar type {member.type!r})")
    return f"member {name!r} is {kind}; model archives may hold only files, folders and links"


def _escapes(path: str) -> bool:
    normalized = posixpath.normpath(path)
    return normalized == ".." or normalized.startswith(("../", "/"))


def _open_mode(archive: Path) -> _StreamMode:
    try:
        with open(archive, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise DeploymentError(PHASE_EXTRACT, f"cannot read the model archive {archive}: {exc.strerror}") from exc
    if not head:
        raise DeploymentError(PHASE_EXTRACT, f"model data is empty (0 bytes); {_POINT_TO_TAR_GZ}")
    if head.startswith(_GZIP_MAGIC):
        return "r|gz"
    if _is_tar_header(head):
        return "r|"
    for magic, kind in _OTHER_FORMATS.items():
        if head.startswith(magic):
            reason = f"model data is {kind}, not a gzip-compressed tar archive ({_POINT_TO_TAR_GZ})"
            raise DeploymentError(PHASE_EXTRACT, reason)
    raise DeploymentError(PHASE_EXTRACT, NOT_AN_ARCHIVE)


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _extract_members(
    archive: Path,
    mode: _StreamMode,
    into: Path,
    max_extract_bytes: int,
    max_members: int,
    check_deadline: Callable[[], None] | None,
) -> None:
    total_bytes = 0
    count = 0
    member: tarfile.TarInfo | None = None
    try:
        with tarfile.open(archive, mode) as tar:
            for member in tar:
                if check_deadline is not None:
                    check_deadline()
                count += 1
                if count > max_members:
                    raise DeploymentError(PHASE_EXTRACT, f"model archive has more than {max_members:,} members")
                refusal = member_refusal(member)
                if refusal:
                    raise DeploymentError(PHASE_EXTRACT, f"refused to extract the model archive: {refusal}")
                total_bytes += member.size if member.isreg() else 0
                if total_bytes > max_extract_bytes:
                    raise DeploymentError(PHASE_EXTRACT, _too_large(max_extract_bytes, member.name))
                tar.extract(member, into, filter="data")
    except tarfile.FilterError as exc:
        name = exc.tarinfo.name if exc.tarinfo is not None else "?"
        raise DeploymentError(PHASE_EXTRACT, f"refused to extract the model archive: member {name!r}: {exc}") from exc
    except (tarfile.TarError, EOFError) as exc:
        raise DeploymentError(PHASE_EXTRACT, _corrupt(mode, member, exc)) from exc
    except OSError as exc:
        where = f"member {member.name!r}" if member is not None else "the archive"
        raise DeploymentError(PHASE_EXTRACT, f"could not extract {where}: {exc.strerror or exc}") from exc


def _too_large(max_extract_bytes: int, name: str) -> str:
    return (
        f"model data inflates past {max_extract_bytes:,} bytes (MODELHOST_MAX_EXTRACT_BYTES) "
        f"at member {name!r}; "
        "raise MODELHOST_MAX_EXTRACT_BYTES if the model really is that large"
    )


def _corrupt(mode: str, member: tarfile.TarInfo | None, exc: BaseException) -> str:
    if member is None and mode == "r|gz":
        return f"model data is gzip-compressed but is not a tar archive ({exc}); {_POINT_TO_TAR_GZ}"
    if member is None:
        return f"{NOT_AN_ARCHIVE} ({exc})"
    return f"model archive is truncated or corrupt after member {member.name!r} ({exc})"


def _verify_symlinks(root: Path) -> None:
    # Each link was checked by name; a chain of links can still resolve elsewhere, so resolve them all.
    real_root = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for entry in (*dirs, *files):
            path = os.path.join(folder, entry)
            if not os.path.islink(path):
                continue
            target = os.path.realpath(path)
            if os.path.commonpath([real_root, target]) != real_root:
                name = os.path.relpath(path, root)
                raise DeploymentError(
                    PHASE_EXTRACT,
                    f"refused to extract the model archive: symlink {name!r} resolves outside the model folder",
                )
