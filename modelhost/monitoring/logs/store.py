"""The endpoints' log folders seen as log groups and streams, read in place (no copy of the logs is kept).

`LogStore` lists groups (one per endpoint log folder, and /aws/sagemaker/TransformJobs over every transform
job's folder) and streams (naming.py), and opens a stream's file with its index brought up to date. Only
plain files and folders are read: no symlinks, and a FIFO or device put in the folder is never opened for
reading in a way that could block.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import BinaryIO

from modelhost.monitoring.logs import naming
from modelhost.monitoring.logs.index import FileIndex
from modelhost.monitoring.logs.naming import EndpointNames
from modelhost.resources.transform_job import HIDDEN_ENDPOINT_PREFIX

NameLookup = Callable[[str], EndpointNames | None]  # a folder's (lower-case) name -> the endpoint's names
JobLookup = Callable[[str], str | None]  # a job's key (its lower-case name) -> its TransformJobName as created
MAX_CACHED_INDEXES = 1024


@dataclass(frozen=True, slots=True)
class LogGroup:
    name: str  # /aws/sagemaker/Endpoints/<EndpointName>, or /aws/sagemaker/TransformJobs
    folder: Path  # the endpoint's log folder; for the jobs' group, the logs folder that holds every job's
    variants: tuple[str, ...]  # the endpoint's VariantNames as created (empty when it is unknown)
    jobs: bool = False  # the transform jobs' group: its streams are every job folder's files


@dataclass(frozen=True, slots=True)
class LogStream:
    name: str  # e.g. AllTraffic/alltraffic-0
    path: Path


@dataclass(frozen=True, slots=True)
class StreamStats:
    size_bytes: int
    first_event_ms: int | None  # None: no event yet
    last_event_ms: int | None
    ingestion_ms: int  # the last write (or the newest event, where the file's mtime is coarser): lastIngestionTime
    creation_ms: int  # the first event's time, else the file's mtime


def _is_plain(path: Path, kind: int) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_IFMT(mode) == kind


class LogStore:
    def __init__(
        self, logs_dir: Path, names: NameLookup, local_zone: tzinfo | None = None, *, job_names: JobLookup | None = None
    ) -> None:
        self._dir = logs_dir
        self._names = names
        self._job_names = job_names
        self._zone = local_zone
        self._lock = threading.Lock()
        self._indexes: OrderedDict[Path, tuple[threading.Lock, FileIndex]] = OrderedDict()

    def _group(self, folder: Path) -> LogGroup:
        names = self._names(folder.name)
        if names is None or names.endpoint.lower() != folder.name:
            return LogGroup(naming.group_name(folder.name), folder, ())
        return LogGroup(naming.group_name(names.endpoint), folder, names.variants)

    def _entries(self) -> list[Path]:
        try:
            return sorted(self._dir.iterdir())
        except OSError:
            return []

    def _jobs_group(self) -> LogGroup:
        return LogGroup(naming.JOBS_GROUP, self._dir, (), jobs=True)

    def _job_folders(self, entries: list[Path]) -> list[tuple[str, Path]]:
        """(TransformJobName, folder) of the transform jobs' log folders among `entries`."""
        found = []
        for path in entries:
            key = naming.job_of_folder(path.name)
            if key is not None and _is_plain(path, stat.S_IFDIR):
                found.append((self._job_name(key), path))
        return found

    def _job_name(self, key: str) -> str:
        """The job's name as created when the lookup knows it, else the folder's (lower-case) key."""
        name = self._job_names(key) if self._job_names is not None else None
        return name if name is not None and name.lower() == key else key

    def groups(self) -> list[LogGroup]:
        """Every endpoint log folder's group, and the jobs' group when any job has a folder; sorted by name."""
        entries = self._entries()
        folders = [p for p in entries if naming.FOLDER_NAME.fullmatch(p.name) and _is_plain(p, stat.S_IFDIR)]
        groups = [self._group(p) for p in folders]
        if self._job_folders(entries):
            groups.append(self._jobs_group())
        return sorted(groups, key=lambda g: g.name)

    def group(self, name: str) -> LogGroup | None:
        """The group of that exact name (case matters, as in CloudWatch), or None."""
        if name == naming.JOBS_GROUP:
            return self._jobs_group() if self._job_folders(self._entries()) else None
        endpoint = naming.endpoint_of_group(name)
        if endpoint is None:
            return None
        folder = self._dir / endpoint.lower()
        if not _is_plain(folder, stat.S_IFDIR):
            return None
        group = self._group(folder)
        return group if group.name == name else None

    def streams(self, group: LogGroup) -> list[LogStream]:
        """The group's streams, sorted by name."""
        if group.jobs:
            found = [s for job, folder in self._job_folders(self._entries()) for s in self._job_streams(job, folder)]
            return sorted(found, key=lambda s: s.name)
        try:
            files = list(group.folder.iterdir())
        except OSError:
            return []
        streams = []
        for path in files:
            name = naming.stream_name(path.name, group.variants)
            if name is not None and _is_plain(path, stat.S_IFREG):
                streams.append(LogStream(name, path))
        return sorted(streams, key=lambda s: s.name)

    def _job_streams(self, job: str, folder: Path) -> list[LogStream]:
        try:
            files = list(folder.iterdir())
        except OSError:
            return []
        streams = []
        for path in files:
            name = naming.job_stream_name(job, path.name)
            if name is not None and _is_plain(path, stat.S_IFREG):
                streams.append(LogStream(name, path))
        return streams

    def stream(self, group: LogGroup, name: str) -> LogStream | None:
        if group.jobs:  # only the folder of the job the name starts with
            job = name.partition("/")[0]
            folder = self._dir / f"{HIDDEN_ENDPOINT_PREFIX}{job.lower()}"
            if naming.job_of_folder(folder.name) is None or not _is_plain(folder, stat.S_IFDIR):
                return None
            if self._job_name(job.lower()) != job:
                return None
            return next((s for s in self._job_streams(job, folder) if s.name == name), None)
        return next((s for s in self.streams(group) if s.name == name), None)

    @contextlib.contextmanager
    def open(self, stream: LogStream) -> Iterator[tuple[BinaryIO, FileIndex]]:
        """The stream's file, open for reading, and its index refreshed; FileNotFoundError once it is gone."""
        fd = os.open(stream.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FileNotFoundError(f"{stream.path.name} is not a plain file")
            lock, index = self._index(stream.path)
            with lock:
                index.refresh(f)
            yield f, index

    def stats(self, stream: LogStream) -> StreamStats | None:
        """What DescribeLogStreams tells of the stream; None when its file is gone."""
        try:
            with self.open(stream) as (f, index):
                size = os.fstat(f.fileno()).st_size
                first, mtime = index.min_ms, index.mtime_ms
                ingestion = max(mtime, index.max_ms or 0)
                return StreamStats(size, first, index.max_ms, ingestion, mtime if first is None else first)
        except OSError:
            return None

    def _index(self, path: Path) -> tuple[threading.Lock, FileIndex]:
        with self._lock:
            entry = self._indexes.get(path)
            if entry is None:
                entry = (threading.Lock(), FileIndex(self._zone))
                self._indexes[path] = entry
                while len(self._indexes) > MAX_CACHED_INDEXES:
                    self._indexes.popitem(last=False)
            self._indexes.move_to_end(path)
            return entry

    def folder_mtime_ms(self, group: LogGroup) -> int:
        """When the group's folder was last changed; for the jobs' group, the oldest job folder's."""
        folders = [f for _, f in self._job_folders(self._entries())] if group.jobs else [group.folder]
        times = []
        for folder in folders:
            with contextlib.suppress(OSError):
                times.append(int(os.lstat(folder).st_mtime * 1000))
        return min(times, default=0)
