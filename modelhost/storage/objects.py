"""Read and write the objects of batch transform jobs and async inference: S3, file:// URLs and local paths.

Owns listing a job's inputs (S3Prefix, ManifestFile), reading one object whole, writing one object whole
(atomically for local files), deleting it and asking whether it exists, plus `output_uri`, which names an
output after its input. Blocking: callers run it in a worker thread, never on the event loop.

    objects = objects_for(settings)                         # the server's rules: the data limits, never HOME
    objects.check_location(uri, for_write=False)           # at CreateTransformJob / InvokeEndpointAsync time
    for ref in objects.list_inputs(uri, "S3Prefix"):
        body = objects.read(ref, max_bytes)
        objects.write(output_uri(output_path, ref.relative), result)

Locations: `s3://bucket/key`, `file:///absolute/path` (host empty or localhost) or an absolute local path;
http(s) and every other scheme are refused. Local paths are folded (`..`) and `file://` URLs become plain
paths, which is what ObjectRef.uri holds.

S3 goes through boto3 with the environment's configuration (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, the
credentials, the region, ~/.aws) as the AWS CLI reads it; a client is made again whenever an AWS_* variable
(or HOME) changes, and shared by the calls of one Objects meanwhile. Connect timeout 10 s, read timeout 60 s,
standard retries (3 attempts). S3 errors become one-line ObjectErrors naming the URI and what to fix.

Local paths are read and written as the server's user, so the rules of model data (limits.py) apply to
reading AND writing, and to every file a listing or manifest reaches:
* outside the DataLimits roots (`effective_roots`; None = anywhere) is refused from the path's text alone,
  the same answer whether it exists or not; then symlinks are resolved and must stay inside the roots;
* anything inside a `forbidden` folder (the server's data directory, its HOME) is refused whatever the roots
  say, compared as written and with symlinks resolved, so a link into HOME is refused too; a folder to be
  read that holds a forbidden folder is refused as a whole;
* only regular files are read: a file is stat'ed before it is opened and opened with O_NONBLOCK, so a FIFO
  or device never blocks; inside a listed folder such entries are skipped, named directly they are refused;
* writes go to a temporary file in the target's folder, fsync'ed, then os.replace'd over the target, so a
  reader never sees half a file (and a symlink at the target is replaced, never written through).
Error messages name only what the caller gave or what a listing they may make returned: never the roots'
contents, a forbidden folder's name or the S3 endpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from modelhost.settings import ServerSettings
from modelhost.storage.limits import (
    DataLimits,
    data_limits,
    effective_roots,
    outside_roots_reason,
    resolved_outside_roots_reason,
)
from modelhost.storage.s3_errors import MISSING_CODES, bucket_exists, error_code
from modelhost.storage.uris import S3Location, parse_location

MAX_OBJECTS = 1_000_000  # objects one listing or manifest may name
MAX_MANIFEST_BYTES = 10 << 20
MAX_MANIFEST_ENTRIES = 1_000_000
DATA_TYPES = ("S3Prefix", "ManifestFile")
ACCEPTED_FORMS = "s3://bucket/key, file:///absolute/path or an absolute local path"
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
HEAD_WORKERS = 16  # concurrent HEADs while sizing a manifest's objects
_HEAD_BATCH = 1000
_COPY_CHUNK = 1 << 20
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_DENIED_CODES = ("AccessDenied", "403", "Forbidden", "AllAccessDisabled")
_CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    uri: str  # s3://bucket/key or an absolute local path (file:// normalised to a plain absolute path)
    size: int  # bytes
    relative: str  # the key/path relative to the listed prefix's folder or the folder; never ""; names outputs


class ObjectError(Exception):
    """Why an object or location cannot be listed, read or written; the message names the URI and says what to
    fix. Never reveals more than the caller could see (no listing of folders outside the allowed roots)."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))  # always one line


@dataclass(frozen=True, slots=True)
class _Local:
    path: Path  # absolute, folded

    def __str__(self) -> str:
        return str(self.path)


_Location = S3Location | _Local


class Objects:
    """Lists, reads and writes objects at s3:// URIs and local paths under the limits (see the module doc)."""

    def __init__(self, limits: DataLimits, forbidden: tuple[Path, ...] = ()) -> None:
        self._limits = limits
        self._forbidden = _path_forms(forbidden)
        self._clients = _Clients()

    # -- checks -------------------------------------------------------------------------------------------

    def check_location(self, uri: str, *, for_write: bool) -> None:
        """Raise ObjectError at once for a location that could never be used; no network I/O."""
        location = _parse(uri)
        if isinstance(location, _Local):
            self._check_local(location.path, for_write=for_write, whole_folder=not for_write)

    def _check_local(self, path: Path, *, for_write: bool, whole_folder: bool = False) -> None:
        reason = self._refusal(path, for_write)
        if reason is None and whole_folder and self._holds_forbidden(path):
            reason = f"{path} holds a folder the server keeps private; name a folder that does not contain it"
        if reason is not None:
            raise ObjectError(reason)

    def _refusal(self, path: Path, for_write: bool) -> str | None:
        roots = effective_roots(self._limits)
        use = "written to" if for_write else "read from"
        if outside_roots_reason(path, roots) is not None:  # from the text alone: exists or not, one answer
            return _outside_message(path, roots, use, "is")
        if _under(path, self._forbidden):
            return _private_message(path)
        if resolved_outside_roots_reason(path, roots) is not None:
            return _outside_message(path, roots, use, "leads")
        if _under(_real(path), self._forbidden):
            return _private_message(path)
        return None

    def _holds_forbidden(self, path: Path) -> bool:
        real = _real(path)
        return any(path in f.parents or real in f.parents for f in self._forbidden)

    # -- listing --------------------------------------------------------------------------------------------

    def list_inputs(self, uri: str, data_type: str) -> list[ObjectRef]:
        """The objects a transform job reads, sorted by key/path (see ObjectRef.relative)."""
        if data_type == "S3Prefix":
            refs = self._list_prefix(uri)
        elif data_type == "ManifestFile":
            refs = self._list_manifest(uri)
        else:
            raise ObjectError(f"S3DataType {data_type!r} of {uri} is not supported; use {' or '.join(DATA_TYPES)}")
        if not refs:
            raise ObjectError(f"no objects under {uri}")
        return refs

    def _list_prefix(self, uri: str) -> list[ObjectRef]:
        location = _parse(uri)
        if isinstance(location, S3Location):
            with _s3_errors(uri, "list"):
                return _s3_list(self._clients.get(), location)
        path = location.path
        self._check_local(path, for_write=False, whole_folder=True)
        st = _stat_or_none(path, uri)
        if st is None:
            raise ObjectError(f"no objects under {uri}: there is no file or folder there")
        if stat.S_ISDIR(st.st_mode):
            return self._walk(path, uri)
        if not stat.S_ISREG(st.st_mode):
            raise ObjectError(f"{uri} is not a regular file or folder")
        return [ObjectRef(str(path), st.st_size, path.name)]

    def _walk(self, top: Path, uri: str) -> list[ObjectRef]:
        refs: list[ObjectRef] = []
        seen: set[tuple[int, int]] = set()
        folders = [top]
        while folders:
            for path, st in self._folder_entries(folders.pop(), seen):
                if stat.S_ISDIR(st.st_mode):
                    folders.append(path)
                elif stat.S_ISREG(st.st_mode):  # FIFOs, sockets and devices are no data: skipped, never opened
                    refs.append(ObjectRef(str(path), st.st_size, path.relative_to(top).as_posix()))
                    _check_count(len(refs), uri)
        return sorted(refs, key=lambda ref: ref.relative)

    def _folder_entries(self, folder: Path, seen: set[tuple[int, int]]) -> Iterator[tuple[Path, os.stat_result]]:
        """Each entry of `folder` with its stat (links followed, after checking where they lead)."""
        if _under(_real(folder), self._forbidden):  # a linked folder may hold the server's own
            raise ObjectError(_private_message(folder))
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:  # a link back to a folder already listed
                return
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            raise ObjectError(f"cannot list {folder}: {exc.strerror or exc}") from exc
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                self._check_local(path, for_write=False)
            entry_stat = _stat_or_none(path, str(path))
            if entry_stat is not None:  # None: a dangling link, or gone since the listing
                yield path, entry_stat

    def _list_manifest(self, uri: str) -> list[ObjectRef]:
        prefix, entries = _parse_manifest(self.read(uri, MAX_MANIFEST_BYTES), uri)
        try:
            location = _parse(prefix)
        except ObjectError as exc:
            raise ObjectError(f"the prefix of the manifest {uri} is not usable: {exc}") from exc
        try:
            if isinstance(location, S3Location):
                return _s3_manifest_refs(self._clients.get(), location, entries)
            return [self._local_manifest_ref(location.path, entry) for entry in entries]
        except ObjectError as exc:
            raise ObjectError(f"the manifest {uri} names an object that cannot be read: {exc}") from exc

    def _local_manifest_ref(self, folder: Path, entry: str) -> ObjectRef:
        parts = entry.split("/")
        if entry.startswith("/") or ".." in parts:
            raise ObjectError(f"{entry!r} is absolute or holds '..'; a local manifest's keys stay under its prefix")
        path = Path(os.path.normpath(folder.joinpath(*parts)))
        self._check_local(path, for_write=False)
        st = _stat_or_none(path, str(path))
        if st is None:
            raise ObjectError(f"no file at {path}")
        if not stat.S_ISREG(st.st_mode):
            raise ObjectError(f"{path} is not a regular file")
        return ObjectRef(str(path), st.st_size, entry)

    # -- one object -----------------------------------------------------------------------------------------

    def read(self, ref_or_uri: ObjectRef | str, max_bytes: int) -> bytes:
        """The whole object; ObjectError when it is larger than `max_bytes`."""
        uri = ref_or_uri.uri if isinstance(ref_or_uri, ObjectRef) else ref_or_uri
        location = _parse(uri)
        if isinstance(location, S3Location):
            _require_key(location, uri)
            with _s3_errors(uri, "read"):
                return _s3_read(self._clients.get(), location, uri, max_bytes)
        self._check_local(location.path, for_write=False)
        return _read_local(location.path, uri, max_bytes)

    def write(self, uri: str, data: bytes) -> None:
        """Store `data` at `uri`, replacing what was there; local files atomically."""
        location = _parse(uri)
        if isinstance(location, S3Location):
            _require_key(location, uri)
            with _s3_errors(uri, "write"):
                self._clients.get().put_object(Bucket=location.bucket, Key=location.key, Body=data)
            return
        self._check_local(location.path, for_write=True)
        _atomic_write(location.path, lambda out: out.write(data))

    def write_file(self, uri: str, source: Path) -> None:
        """As write, from the server's own file `source` (not checked against the limits: the server made it)."""
        location = _parse(uri)
        if isinstance(location, S3Location):
            _require_key(location, uri)
            _require_source(source)
            with _s3_errors(uri, "write"):
                self._clients.get().upload_file(str(source), location.bucket, location.key)
            return
        self._check_local(location.path, for_write=True)
        try:  # _atomic_write raises ObjectError for its own failures: an OSError here is the source's
            with open(source, "rb") as src:
                _atomic_write(location.path, partial(shutil.copyfileobj, src, length=_COPY_CHUNK))
        except OSError as exc:
            raise ObjectError(f"cannot read {source} to write {uri}: {exc.strerror or exc}") from exc

    def delete(self, uri: str) -> None:
        """Remove the object; one that is not there is fine."""
        location = _parse(uri)
        if isinstance(location, S3Location):
            _require_key(location, uri)
            _s3_delete(self._clients.get(), location, uri)
            return
        self._check_local(location.path, for_write=True)
        try:
            location.path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise ObjectError(f"cannot delete {uri}: {exc.strerror or exc}") from exc

    def exists(self, uri: str) -> bool:
        """Whether an object (a regular file, locally) is at `uri`; ObjectError for a folder or other thing."""
        location = _parse(uri)
        if isinstance(location, S3Location):
            _require_key(location, uri)
            return _s3_exists(self._clients.get(), location, uri)
        self._check_local(location.path, for_write=False)
        st = _stat_or_none(location.path, uri)
        if st is None:
            return False
        if not stat.S_ISREG(st.st_mode):
            raise ObjectError(f"{uri} is not a regular file")
        return True


def objects_for(settings: ServerSettings) -> Objects:
    """The server's Objects: local paths under the model-data rules (MODELHOST_LOCAL_DATA_ROOTS, none once access
    keys exist unless configured), never inside the server's own data directory."""
    limits = data_limits(settings.local_data_roots, settings.allow_private_model_data, settings.home)
    return Objects(limits, forbidden=(settings.home,))


def output_uri(output_path: str, relative: str, suffix: str = ".out") -> str:
    """Where the output for the input named `relative` goes: output_path/relative + suffix. ValueError for a
    malformed output path, an empty `relative`, or, for local outputs, one that is absolute or holds '..'
    (an S3 key may hold '../': for S3 outputs it is kept as the key it is)."""
    if not relative:
        raise ValueError("an output needs the relative name of its input")
    try:
        location = _parse(output_path)
    except ObjectError as exc:
        raise ValueError(str(exc)) from exc
    if isinstance(location, S3Location):
        return f"{output_path.rstrip('/')}/{relative}{suffix}"
    parts = relative.split("/")
    names = [part for part in parts if part not in ("", ".")]
    if relative.startswith("/") or ".." in parts or not names:
        raise ValueError(f"{relative!r} would not stay inside the output folder {output_path}")
    return f"{location.path.joinpath(*names)}{suffix}"


# -- locations ------------------------------------------------------------------------------------------------


def _parse(uri: str) -> _Location:
    if "\x00" in uri:
        raise ObjectError(f"{uri!r} holds a NUL character; use {ACCEPTED_FORMS}")
    scheme, sep, rest = uri.partition("://")
    if not sep or not _SCHEME.match(scheme):
        return _parse_path(uri, uri)
    scheme = scheme.lower()
    if scheme == "s3":
        return _parse_s3(rest, uri)
    if scheme == "file":
        return _parse_file_url(uri)
    if scheme in ("http", "https"):
        raise ObjectError(f"{uri} is an {scheme} URL; these objects are read and written at {ACCEPTED_FORMS}")
    raise ObjectError(f"{uri}: the scheme {scheme}:// is not supported; use {ACCEPTED_FORMS}")


def _parse_s3(rest: str, uri: str) -> S3Location:
    bucket, _, key = rest.partition("/")  # by hand: keys may hold '?', '#' and spaces
    try:
        parse_location(f"s3://{bucket}/")  # the bucket-name check of model data URIs
    except ValueError:
        raise ObjectError(f"{uri}: {bucket!r} is not an S3 bucket name; use s3://bucket/key") from None
    return S3Location(bucket=bucket, key=key)


def _parse_file_url(uri: str) -> _Local:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise ObjectError(f"{uri}: file:// URLs must be local, not on the host {parts.netloc!r}")
    return _parse_path(unquote(parts.path), uri)


def _parse_path(text: str, uri: str) -> _Local:
    if "\x00" in text:  # a file:// URL's %00, decoded
        raise ObjectError(f"{uri!r} holds a NUL character; use {ACCEPTED_FORMS}")
    if not text.startswith("/"):
        raise ObjectError(f"{uri!r} is not an absolute path; use {ACCEPTED_FORMS}")
    return _Local(Path(os.path.normpath(text)))


def _require_key(location: S3Location, uri: str) -> None:
    if not location.key or location.key.endswith("/"):
        raise ObjectError(f"{uri} names a prefix, not an object; name one object (s3://bucket/key)")


def _path_forms(folders: tuple[Path, ...]) -> tuple[Path, ...]:
    """Each folder as written (folded) and with its symlinks resolved."""
    forms: dict[Path, None] = {}
    for folder in folders:
        forms[Path(os.path.normpath(os.path.abspath(folder)))] = None
        forms[_real(folder)] = None
    return tuple(forms)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _under(path: Path, folders: tuple[Path, ...]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def _outside_message(path: Path, roots: tuple[Path, ...] | None, use: str, verb: str) -> str:
    if not roots:
        return (
            f"{path} is a local path, and local paths are not {use} on a server with access keys unless "
            "MODELHOST_LOCAL_DATA_ROOTS names the folders allowed; use s3:// instead"
        )
    names = ":".join(str(root) for root in roots)
    return f"{path} {verb} outside the folders data may be {use} (MODELHOST_LOCAL_DATA_ROOTS={names})"


def _private_message(path: Path) -> str:
    return f"{path} is in a folder the server keeps private; use another folder"


def _check_count(count: int, uri: str) -> None:
    if count > MAX_OBJECTS:
        raise ObjectError(f"more than {MAX_OBJECTS:,} objects under {uri}; split the input into several jobs")


# -- local files ------------------------------------------------------------------------------------------------


def _stat_or_none(path: Path, shown: str) -> os.stat_result | None:
    """`path`'s stat (links followed); None when nothing is there."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ObjectError(f"cannot read {shown}: {exc.strerror or exc}") from exc


def _read_local(path: Path, uri: str, max_bytes: int) -> bytes:
    st = _stat_or_none(path, uri)  # never opened before it is known to be a regular file
    if st is None:
        raise ObjectError(f"no file at {uri}")
    if not stat.S_ISREG(st.st_mode):
        raise ObjectError(f"{uri} is not a regular file")
    try:  # non-blocking, so a FIFO swapped in after the stat cannot hang the reader
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ObjectError(f"cannot read {uri}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ObjectError(f"{uri} is not a regular file")
        if st.st_size > max_bytes:
            raise _too_large(uri, st.st_size, max_bytes)
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise ObjectError(f"cannot read {uri}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:  # it grew since the stat
        raise _too_large(uri, len(data), max_bytes)
    return data


def _atomic_write(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write `path` through a temporary file in its folder: fsync'ed, then renamed over it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ObjectError(f"cannot create the folder {path.parent}: {exc.strerror or exc}") from exc
    temporary = path.parent / f".modelhost-{uuid.uuid4().hex}.tmp"  # short: the target's name may be 255 bytes
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        with os.fdopen(os.open(temporary, flags, 0o666), "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise ObjectError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # the rename is done; only its durability across a crash is weaker
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _require_source(source: Path) -> None:
    try:
        st = source.stat()
    except OSError as exc:
        raise ObjectError(f"cannot read {source}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ObjectError(f"{source} is not a regular file")


# -- manifests --------------------------------------------------------------------------------------------------


def _parse_manifest(body: bytes, uri: str) -> tuple[str, list[str]]:
    """A ManifestFile: [{"prefix": "s3://bucket/prefix/"}, "relative/key", ...] -> (prefix, keys)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ObjectError(f"the manifest {uri} is not JSON: {exc}") from exc
    if (
        not isinstance(document, list)
        or not document
        or not isinstance(document[0], dict)
        or not isinstance(document[0].get("prefix"), str)
    ):
        raise ObjectError(
            f'the manifest {uri} must be a JSON array: {{"prefix": "s3://bucket/prefix/"}} then relative keys'
        )
    entries = document[1:]
    if len(entries) > MAX_MANIFEST_ENTRIES:
        raise ObjectError(f"the manifest {uri} lists {len(entries):,} keys; at most {MAX_MANIFEST_ENTRIES:,}")
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, str) or not entry:
            raise ObjectError(f"entry {index} of the manifest {uri} is not a relative key (a non-empty string)")
    return str(document[0]["prefix"]), entries


# -- s3 ---------------------------------------------------------------------------------------------------------


class _Clients:
    """One S3 client while the environment that configures it is unchanged (a new one when it changes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[tuple[str, str], ...] | None = None
        self._client: Any = None

    def get(self) -> Any:
        key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_") or k == "HOME"))
        with self._lock:
            if self._client is None or key != self._key:
                self._client, self._key = _new_client(), key
            return self._client


def _new_client() -> Any:
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=HEAD_WORKERS,
    )
    # A fresh Session reads the environment now (AWS_ENDPOINT_URL_S3, credentials, region), not at import.
    try:
        return boto3.session.Session().client("s3", config=config)
    except BotoCoreError as exc:  # a broken ~/.aws/config, an unknown profile
        raise ObjectError(f"cannot set up the S3 client: {exc}") from exc


def _s3_list(client: Any, location: S3Location) -> list[ObjectRef]:
    base = location.key[: location.key.rfind("/") + 1]  # relative names start after the prefix's last '/'
    uri = str(location)
    refs: list[ObjectRef] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key):
        for obj in page.get("Contents", []):
            key, size = str(obj["Key"]), int(obj["Size"])
            if key.endswith("/") and size == 0:
                continue  # a "folder" made in the S3 console
            refs.append(ObjectRef(f"s3://{location.bucket}/{key}", size, _relative_key(key, base)))
            _check_count(len(refs), uri)
    return sorted(refs, key=lambda ref: ref.uri)


def _relative_key(key: str, base: str) -> str:
    return key[len(base) :] or key.rstrip("/").rpartition("/")[2] or key


def _s3_manifest_refs(client: Any, prefix: S3Location, entries: list[str]) -> list[ObjectRef]:
    keys = [prefix.key + entry for entry in entries]
    sizes: list[int] = []
    with ThreadPoolExecutor(max_workers=HEAD_WORKERS, thread_name_prefix="s3-head") as pool:
        for start in range(0, len(keys), _HEAD_BATCH):  # batches: stop soon after a missing object
            sizes.extend(pool.map(partial(_s3_size, client, prefix.bucket), keys[start : start + _HEAD_BATCH]))
    return [
        ObjectRef(f"s3://{prefix.bucket}/{key}", size, entry)
        for key, size, entry in zip(keys, sizes, entries, strict=True)
    ]


def _s3_size(client: Any, bucket: str, key: str) -> int:
    uri = f"s3://{bucket}/{key}"
    try:
        return int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as exc:
        if error_code(exc) in MISSING_CODES and not bucket_exists(client, bucket):
            raise ObjectError(_client_message_for("NoSuchBucket", exc, uri, "read")) from exc
        raise ObjectError(_client_message(exc, uri, "read")) from exc
    except BotoCoreError as exc:
        raise ObjectError(_botocore_message(exc, uri, "read")) from exc


def _s3_read(client: Any, location: S3Location, uri: str, max_bytes: int) -> bytes:
    response = client.get_object(Bucket=location.bucket, Key=location.key)
    body = response["Body"]
    try:
        size = int(response.get("ContentLength", 0))
        if size > max_bytes:
            raise _too_large(uri, size, max_bytes)
        data = bytes(body.read(max_bytes + 1))
    finally:
        body.close()
    if len(data) > max_bytes:
        raise _too_large(uri, len(data), max_bytes)
    return data


def _s3_delete(client: Any, location: S3Location, uri: str) -> None:
    try:
        client.delete_object(Bucket=location.bucket, Key=location.key)
    except ClientError as exc:
        if error_code(exc) not in (*MISSING_CODES, "NoSuchBucket"):
            raise ObjectError(_client_message(exc, uri, "delete")) from exc
    except BotoCoreError as exc:
        raise ObjectError(_botocore_message(exc, uri, "delete")) from exc


def _s3_exists(client: Any, location: S3Location, uri: str) -> bool:
    try:
        client.head_object(Bucket=location.bucket, Key=location.key)
    except ClientError as exc:
        if error_code(exc) in (*MISSING_CODES, "NoSuchBucket"):
            return False
        raise ObjectError(_client_message(exc, uri, "check")) from exc
    except BotoCoreError as exc:
        raise ObjectError(_botocore_message(exc, uri, "check")) from exc
    return True


@contextmanager
def _s3_errors(uri: str, action: str) -> Iterator[None]:
    """botocore's exceptions as ObjectErrors naming `uri`; `action`: list, read, write."""
    try:
        yield
    except ClientError as exc:
        raise ObjectError(_client_message(exc, uri, action)) from exc
    except S3UploadFailedError as exc:  # upload_file wraps the ClientError it caught
        cause = exc.__context__
        if isinstance(cause, ClientError):
            raise ObjectError(_client_message(cause, uri, action)) from exc
        raise ObjectError(f"could not {action} {uri}: {exc}") from exc
    except BotoCoreError as exc:
        raise ObjectError(_botocore_message(exc, uri, action)) from exc


def _client_message(exc: ClientError, uri: str, action: str) -> str:
    return _client_message_for(error_code(exc), exc, uri, action)


def _client_message_for(code: str, exc: ClientError, uri: str, action: str) -> str:
    if code == "NoSuchBucket":
        return f"the bucket of {uri} does not exist (NoSuchBucket); create it or correct the bucket name"
    if code in MISSING_CODES:
        return f"no object at {uri} (NoSuchKey)"
    if code in _DENIED_CODES:
        return f"access denied to {action} {uri} ({code}); check the bucket policy and the server's AWS credentials"
    if code in _CREDENTIAL_CODES:
        return (
            f"S3 did not accept the server's AWS credentials to {action} {uri} ({code}); check its "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        )
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return f"S3 refused to {action} {uri}: {code} {message}".strip()


def _botocore_message(exc: BotoCoreError, uri: str, action: str) -> str:
    if isinstance(exc, NoCredentialsError):
        return (
            f"no AWS credentials to {action} {uri}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE) for the server"
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return (
            f"could not connect to S3 to {action} {uri}; check the server's AWS_ENDPOINT_URL_S3 "
            "(or AWS_ENDPOINT_URL) and its network"
        )
    if isinstance(exc, ReadTimeoutError):
        return f"S3 sent nothing for {READ_TIMEOUT_S:g} s while trying to {action} {uri}; try again"
    return f"could not {action} {uri}: {type(exc).__name__}: {exc}"


def _too_large(uri: str, size: int, max_bytes: int) -> ObjectError:
    return ObjectError(f"{uri} is {size:,} bytes, over the limit of {max_bytes:,} bytes")
