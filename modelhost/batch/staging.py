"""The staging file of one input object's outputs: HOME/transform-jobs/<job key>/<index>.part (blocking I/O).

Outputs are appended in input order and made durable (fsync) before the store records how far they reach
(`TransformObject.records_done` / `staged_bytes`). On resume the file is cut back to `staged_bytes`: whatever
was appended after the last record the store knows of is written again, never twice. The finished file is
then copied to the output location in one write (S3 PUT, or a rename locally), so a reader never sees part of
an output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


def job_folder(staging_dir: Path, job_key: str) -> Path:
    return staging_dir / job_key


class StagedOutput:
    """One object's staging file, open for appending from `staged_bytes` on."""

    def __init__(self, path: Path, staged_bytes: int) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "r+b")
        size = self._file.seek(0, os.SEEK_END)
        if size < staged_bytes:  # the file lost data the store says was durable: start the object again
            raise StagingLost(f"{path} holds {size} bytes, fewer than the {staged_bytes} recorded")
        self._file.truncate(staged_bytes)
        self._file.seek(staged_bytes)
        self.size = staged_bytes

    def append(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class StagingLost(Exception):
    """A staging file is shorter than the store records (deleted or damaged by hand)."""


def staged_path(staging_dir: Path, job_key: str, index: int) -> Path:
    return job_folder(staging_dir, job_key) / f"{index:08d}.part"


def remove_job_folder(staging_dir: Path, job_key: str) -> None:
    shutil.rmtree(job_folder(staging_dir, job_key), ignore_errors=True)
