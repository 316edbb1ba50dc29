"""Fetch model data and cache it by content (S3 objects of batch jobs and async inference: objects.py).

Public API (blocking; call it from a worker thread, never on the event loop):

    source = parse_model_data_url(url)        # or parse_s3_data_source(model_data_source["S3DataSource"])
    cache = ArtifactCache(settings.artifacts_dir, settings.max_extract_bytes)
    model_dir = cache.prepare(source, timeout_s=3600.0, progress=logger.info)

`prepare` returns the folder the model's files start in: the one SageMaker would mount at /opt/ml/model, or,
when that holds only one folder (names starting with '.' aside), that inner folder, as DJL Serving descends
into it (model_root.py); so an archive packed as `tar.add(folder, arcname=folder.name)` serves unchanged.
Every instance of every model with the same data shares it and must treat it as read-only. It raises
DeploymentError with phase "download" (no such object, bucket, file or URL, access denied, no credentials,
an HTTP error, a cut connection, or ModelDataDownloadTimeoutInSeconds passed) or phase "extract" (unsafe,
too large, not an archive, corrupt; see extract.py). The timeout covers listing, downloading and extracting,
as SageMaker's does. `progress` gets one line at the start, then every 5% or 1 s, then at the end.

Sources:
* s3:// through boto3: a fresh `boto3.session.Session().client("s3")`, so credentials, region, ~/.aws/config
  and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 (MinIO, moto, any S3-compatible store) are honoured exactly as
  the AWS CLI honours them. An uncompressed prefix (S3Prefix + None) copies every object under the prefix,
  keeping relative paths (S3-console "folder" markers are skipped); S3Object + None places one file under
  its own name.
* http(s):// through one streamed httpx GET per hop (redirects followed by pinned_http.py, each hop connected
  to the address that was checked); nothing else is ever fetched.
* file:// or a local path: a local **folder is used in place, not copied** (keep it unchanged while
  deployed); a local .tar.gz is copied, hashed and extracted into the cache like a download.

Cache layout under `root` (ServerSettings.artifacts_dir):
    blobs/<sha256>      each archive, stored once, named by the sha256 of its bytes
    models/<sha256>/    its extracted folder; for uncompressed S3 data, the sha256 of the listing
                        (relative key, size, ETag) instead
    refs/<sha256>       a source identity (S3 endpoint+key+ETag+size, or local path+size+mtime) -> blob
                        sha256, so an archive already fetched is not fetched again
    tmp/                partial downloads, renamed into place only when complete
The same content from another URL reuses the same folder. Concurrent prepares in one process wait on a lock
per key; across processes, atomic renames make the later one discard its copy. Nothing is evicted yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import ssl
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from modelhost.contracts.worker import PHASE_DOWNLOAD
from modelhost.errors import DeploymentError
from modelhost.storage.extract import MAX_MEMBERS, extract_archive, publish_folder
from modelhost.storage.limits import (
    DataLimits,
    effective_roots,
    not_regular_reason,
    outside_roots_reason,
    resolve,
    resolved_outside_roots_reason,
)
from modelhost.storage.model_root import model_root
from modelhost.storage.pinned_http import CouldNotConnect, Resolver, pinned_get
from modelhost.storage.s3_errors import MISSING_CODES, bucket_exists, error_code
from modelhost.storage.transfer import Clock, Progress, Transfer
from modelhost.storage.uris import HttpLocation, Layout, LocalLocation, ModelDataSource, S3Location

CHUNK_BYTES = 1 << 20
READ_TIMEOUT_CAP_S = 30.0  # the longest silence tolerated on one read, whatever the overall timeout
CONNECT_TIMEOUT_CAP_S = 10.0
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DENIED_CODES = ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch")

Chunks = AbstractContextManager[Iterator[bytes]]  # opens a source; yields its bytes in chunks; closes it


@dataclass(frozen=True, slots=True)
class _Blob:
    """One archive to fetch."""

    identity: str | None  # names these exact bytes at the source (ETag, mtime); None when unknown (http)
    size_bytes: int | None  # None when unknown before the GET
    open: Callable[[], Chunks]


@dataclass(frozen=True, slots=True)
class _File:
    """One uncompressed file of S3Prefix/S3Object data."""

    relative: str  # its path inside the model folder, "/"-separated
    size_bytes: int
    tag: str  # ETag (or local identity); part of the cache key
    open: Callable[[], Chunks]


class ArtifactCache:
    """Prepares model folders under `root`, downloading and extracting each content once."""

    def __init__(
        self,
        root: Path,
        max_extract_bytes: int,
        *,
        clock: Clock = time.monotonic,
        chunk_bytes: int = CHUNK_BYTES,
        max_members: int = MAX_MEMBERS,
        http_transport: httpx.BaseTransport | None = None,
        limits: DataLimits | None = None,
        resolver: Resolver = resolve,
    ) -> None:
        self.root = root
        self.limits = DataLimits() if limits is None else limits
        self._resolver = resolver  # the one lookup of each http(s) host (pinned_http.py)
        self.max_extract_bytes = max_extract_bytes
        self._clock = clock
        self._chunk_bytes = chunk_bytes
        self._max_members = max_members
        self._http_transport = http_transport
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def prepare(self, source: ModelDataSource, timeout_s: float, progress: Progress | None = None) -> Path:
        """The local folder holding `source`'s model data; fetched and extracted unless already cached.

        When that folder holds only one folder (dot-names aside), the inner folder is returned, as DJL Serving
        does (model_root.py). Raises DeploymentError("download" | "extract", reason) naming the URI and what
        to fix.
        """
        transfer = Transfer(source.uri, timeout_s, self._clock, progress)
        folder = self._prepare_source(source, transfer)
        try:
            root = model_root(folder)
        except OSError as exc:
            raise DeploymentError(
                PHASE_DOWNLOAD, f"cannot list the model folder {folder} ({source.uri}): {exc.strerror or exc}"
            ) from exc
        if root != folder:
            transfer.report(f"the model data holds only the folder {root.name}/; serving from it, as DJL Serving does")
        return root

    def _prepare_source(self, source: ModelDataSource, transfer: Transfer) -> Path:
        location = source.location
        if isinstance(location, LocalLocation):
            return self._prepare_local(source, location.path, transfer)
        if isinstance(location, HttpLocation):
            blob = _Blob(None, None, partial(self._http_chunks, location.url, transfer))
            return self._prepare_archive(blob, transfer)
        client = _s3_client(transfer)
        if source.layout is Layout.ARCHIVE:
            return self._prepare_archive(self._s3_blob(client, location, transfer), transfer)
        return self._prepare_files(self._s3_files(client, location, source.layout, transfer), transfer)

    # -- local paths ------------------------------------------------------------------------------------

    def _prepare_local(self, source: ModelDataSource, path: Path, transfer: Transfer) -> Path:
        named = f"{path} ({source.uri})" if source.uri != str(path) else str(path)
        # outside the roots: refused from the text alone, the same answer whether the path exists or not
        roots = effective_roots(self.limits)
        refusal = outside_roots_reason(path, roots) or resolved_outside_roots_reason(path, roots)
        if refusal is not None:
            raise DeploymentError(PHASE_DOWNLOAD, refusal)
        try:
            st = path.stat()  # never opened before it is known to be a regular file (a FIFO would block)
        except FileNotFoundError as exc:
            raise DeploymentError(PHASE_DOWNLOAD, f"no file or folder at {named}") from exc
        except OSError as exc:
            raise DeploymentError(PHASE_DOWNLOAD, f"cannot read {named}: {exc.strerror}") from exc
        irregular = not_regular_reason(st.st_mode, named)
        if irregular is not None:
            raise DeploymentError(PHASE_DOWNLOAD, irregular)
        if stat.S_ISDIR(st.st_mode):
            if source.layout is Layout.OBJECT:
                raise DeploymentError(PHASE_DOWNLOAD, f"{source.uri} is a folder; S3DataType S3Object needs a file")
            transfer.report(f"using the local folder {path} in place")
            return path
        if source.layout is Layout.PREFIX:
            raise DeploymentError(PHASE_DOWNLOAD, f"{source.uri} is a file; S3DataType S3Prefix needs a folder")
        identity = f"file|{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
        chunks = partial(self._local_chunks, path)
        if source.layout is Layout.OBJECT:
            return self._prepare_files([_File(path.name, st.st_size, identity, chunks)], transfer)
        return self._prepare_archive(_Blob(identity, st.st_size, chunks), transfer)

    @contextmanager
    def _local_chunks(self, path: Path) -> Iterator[Iterator[bytes]]:
        try:  # non-blocking, so a FIFO swapped in after the stat cannot hang the deployment
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise DeploymentError(PHASE_DOWNLOAD, f"cannot read {path}: {exc.strerror}") from exc
        f = os.fdopen(fd, "rb")
        with f:
            irregular = not_regular_reason(os.fstat(fd).st_mode, str(path))
            if irregular is not None:
                raise DeploymentError(PHASE_DOWNLOAD, irregular)
            yield _read_chunks(f, path, self._chunk_bytes)

    # -- archives -----------------------------------------------------------------------------------------

    def _prepare_archive(self, blob: _Blob, transfer: Transfer) -> Path:
        with self._locked(f"source:{blob.identity or transfer.uri}", transfer):
            sha = self._read_ref(blob.identity) if blob.identity else None
            if sha is not None and ((self._models / sha).is_dir() or (self._blobs / sha).is_file()):
                transfer.report(f"{transfer.uri} is already cached")
            else:
                sha = self._download_blob(blob, transfer)
                if blob.identity:
                    self._write_ref(blob.identity, sha)
        dest = self._models / sha
        with self._locked(f"model:{sha}", transfer):
            if not dest.is_dir():
                transfer.report(f"extracting {transfer.uri}")
                self._private_dir(self._models)
                extract_archive(
                    self._blobs / sha,
                    dest,
                    max_extract_bytes=self.max_extract_bytes,
                    max_members=self._max_members,
                    check_deadline=transfer.check_deadline,
                )
        return dest

    def _download_blob(self, blob: _Blob, transfer: Transfer) -> str:
        hasher = hashlib.sha256()
        partial_path = self._tmp_path(".part")
        transfer.start(blob.size_bytes)
        try:
            with blob.open() as chunks:
                self._write(chunks, partial_path, transfer, hasher)
            sha = hasher.hexdigest()
            self._private_dir(self._blobs)
            os.replace(partial_path, self._blobs / sha)  # if it existed, it held the same bytes
        finally:
            partial_path.unlink(missing_ok=True)
        transfer.finish()
        return sha

    # -- uncompressed files ---------------------------------------------------------------------------

    def _prepare_files(self, files: list[_File], transfer: Transfer) -> Path:
        _check_file_names(files, transfer.uri)
        listing = sorted([f.relative, f.size_bytes, f.tag] for f in files)
        key = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
        dest = self._models / key
        with self._locked(f"model:{key}", transfer):
            if dest.is_dir():
                transfer.report(f"{transfer.uri} is already cached")
                return dest
            folder = self._tmp_path("")
            try:
                transfer.start(sum(f.size_bytes for f in files))
                for file in files:
                    with file.open() as chunks:
                        self._write(chunks, folder / file.relative, transfer, None, file.size_bytes)
                self._private_dir(self._models)
                publish_folder(folder, dest)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        transfer.finish()
        return dest

    # -- shared plumbing ------------------------------------------------------------------------------

    def _write(
        self,
        chunks: Iterator[bytes],
        path: Path,
        transfer: Transfer,
        hasher: Any | None,
        expected_bytes: int | None = None,
    ) -> None:
        written = 0
        try:
            self._private_dir(path.parent)
            with open(path, "wb", opener=_private_opener) as out:
                for chunk in chunks:
                    out.write(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    written += len(chunk)
                    transfer.advance(len(chunk))
        except OSError as exc:
            raise DeploymentError(
                PHASE_DOWNLOAD, f"could not store {transfer.uri} under {self.root}: {exc.strerror or exc}"
            ) from exc
        expected = expected_bytes if expected_bytes is not None else transfer.total_bytes
        if expected is not None and written != expected:
            raise DeploymentError(
                PHASE_DOWNLOAD,
                f"{transfer.uri} ended after {written} of {expected} bytes; the transfer was cut short",
            )

    @contextmanager
    def _locked(self, key: str, transfer: Transfer) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=max(0.0, transfer.remaining_s())):
            raise transfer.timeout_error()
        try:
            yield
        finally:
            lock.release()

    def _private_dir(self, folder: Path) -> None:
        """Create `folder` (and the cache root) readable by this user only: copies keep their privacy."""
        if not self.root.is_dir():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def _blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def _models(self) -> Path:
        return self.root / "models"

    def _tmp_path(self, suffix: str) -> Path:
        tmp = self.root / "tmp"
        self._private_dir(tmp)
        return tmp / f"{uuid.uuid4().hex}{suffix}"

    def _read_ref(self, identity: str) -> str | None:
        try:
            text = (self.root / "refs" / _sha256_text(identity)).read_text().strip()
        except OSError:
            return None
        return text if _SHA256.match(text) else None

    def _write_ref(self, identity: str, sha: str) -> None:
        refs = self.root / "refs"
        self._private_dir(refs)
        tmp = self._tmp_path(".ref")
        tmp.write_text(sha)
        os.replace(tmp, refs / _sha256_text(identity))

    # -- http -------------------------------------------------------------------------------------------

    @contextmanager
    def _http_chunks(self, url: str, transfer: Transfer) -> Iterator[Iterator[bytes]]:
        seconds = max(0.001, min(READ_TIMEOUT_CAP_S, transfer.remaining_s()))

        def client() -> httpx.Client:
            return httpx.Client(transport=self._http_transport, timeout=seconds, follow_redirects=False)

        try:  # every hop (the URL, each redirect) checked against the limits and connected to what was checked
            with pinned_get(
                url, self.limits, client, headers={"Accept-Encoding": "identity"}, resolver=self._resolver
            ) as response:
                if not response.is_success:
                    reason = f"{url} answered HTTP {response.status_code} {response.reason_phrase}"
                    raise DeploymentError(PHASE_DOWNLOAD, reason.strip())
                length = response.headers.get("Content-Length", "")
                if length.isdigit():
                    transfer.total_bytes = int(length)
                yield response.iter_raw(self._chunk_bytes)
        except CouldNotConnect as exc:  # the name did not resolve: the same answer as a refused connection
            raise DeploymentError(PHASE_DOWNLOAD, f"could not download {url}: could not connect to the host") from exc
        except httpx.ConnectTimeout as exc:  # filtered or down: the same answer as refused
            if transfer.expired():
                raise transfer.timeout_error() from exc
            raise DeploymentError(PHASE_DOWNLOAD, f"could not download {url}: could not connect to the host") from exc
        except httpx.TimeoutException as exc:
            if transfer.expired():
                raise transfer.timeout_error() from exc
            raise DeploymentError(PHASE_DOWNLOAD, f"{url} sent nothing for {seconds:g} s") from exc
        except httpx.ConnectError as exc:  # refused, unreachable, reset: one answer, so no port oracle
            unverified = _certificate_error(exc)  # a host the limits allow answered TLS: say what to fix
            if unverified is not None:
                raise DeploymentError(
                    PHASE_DOWNLOAD,
                    f"could not download {url}: the server's certificate could not be verified ({unverified}); "
                    "give the server a certificate for that name, or trust its CA with SSL_CERT_FILE on the server",
                ) from exc
            raise DeploymentError(PHASE_DOWNLOAD, f"could not download {url}: could not connect to the host") from exc
        except httpx.HTTPError as exc:
            raise DeploymentError(PHASE_DOWNLOAD, f"could not download {url}: {type(exc).__name__}: {exc}") from exc

    # -- s3 ---------------------------------------------------------------------------------------------

    def _s3_blob(self, client: Any, location: S3Location, transfer: Transfer) -> _Blob:
        size, etag = _s3_head(client, location, transfer)
        identity = f"s3|{client.meta.endpoint_url}|{location.bucket}|{location.key}|{etag}|{size}"
        return _Blob(identity, size, partial(self._s3_chunks, client, location.bucket, location.key, etag, transfer))

    def _s3_files(self, client: Any, location: S3Location, layout: Layout, transfer: Transfer) -> list[_File]:
        if layout is Layout.OBJECT:
            size, etag = _s3_head(client, location, transfer)
            objects = [(location.key, size, etag)]
            prefix_len = location.key.rfind("/") + 1
        else:
            objects = _s3_list(client, location, transfer)
            prefix_len = len(location.key)
        return [
            _File(
                key[prefix_len:],
                size,
                etag,
                partial(self._s3_chunks, client, location.bucket, key, etag, transfer),
            )
            for key, size, etag in objects
        ]

    @contextmanager
    def _s3_chunks(
        self, client: Any, bucket: str, key: str, etag: str, transfer: Transfer
    ) -> Iterator[Iterator[bytes]]:
        uri = f"s3://{bucket}/{key}"
        try:
            # IfMatch: the bytes must be the ones listed, or the cache key would name other content.
            response = client.get_object(Bucket=bucket, Key=key, **({"IfMatch": etag} if etag else {}))
            body = response["Body"]
            try:
                yield body.iter_chunks(self._chunk_bytes)
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            raise _s3_error(exc, uri, transfer) from exc


def _s3_client(transfer: Transfer) -> Any:
    remaining_s = max(1.0, transfer.remaining_s())
    config = Config(
        connect_timeout=min(CONNECT_TIMEOUT_CAP_S, remaining_s),
        read_timeout=min(READ_TIMEOUT_CAP_S, remaining_s),
        retries={"max_attempts": 3, "mode": "standard"},
    )
    # A fresh Session reads the environment now (AWS_ENDPOINT_URL_S3, credentials, region), not at import.
    return boto3.session.Session().client("s3", config=config)


def _s3_head(client: Any, location: S3Location, transfer: Transfer) -> tuple[int, str]:
    try:
        head = client.head_object(Bucket=location.bucket, Key=location.key)
    except ClientError as exc:
        if error_code(exc) in MISSING_CODES and not bucket_exists(client, location.bucket):
            raise DeploymentError(PHASE_DOWNLOAD, f"the bucket of {location} does not exist (NoSuchBucket)") from exc
        raise _s3_error(exc, str(location), transfer) from exc
    except BotoCoreError as exc:
        raise _s3_error(exc, str(location), transfer) from exc
    return int(head["ContentLength"]), str(head.get("ETag", ""))


def _s3_list(client: Any, location: S3Location, transfer: Transfer) -> list[tuple[str, int, str]]:
    objects: list[tuple[str, int, str]] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key):
            transfer.check_deadline()
            for obj in page.get("Contents", []):
                key, size = obj["Key"], int(obj["Size"])
                if key.endswith("/") and size == 0:
                    continue  # a "folder" made in the S3 console
                objects.append((key, size, str(obj.get("ETag", ""))))
    except (ClientError, BotoCoreError) as exc:
        raise _s3_error(exc, str(location), transfer) from exc
    if not objects:
        raise DeploymentError(PHASE_DOWNLOAD, f"no objects under {location} (S3Prefix)")
    return objects


def _s3_error(exc: ClientError | BotoCoreError, uri: str, transfer: Transfer) -> DeploymentError:
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError) and transfer.expired():
        return transfer.timeout_error()
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in MISSING_CODES:
            return DeploymentError(PHASE_DOWNLOAD, f"no object at {uri} (NoSuchKey)")
        if code == "NoSuchBucket":
            return DeploymentError(PHASE_DOWNLOAD, f"the bucket of {uri} does not exist (NoSuchBucket)")
        if code in _DENIED_CODES:
            return DeploymentError(
                PHASE_DOWNLOAD,
                f"access denied to {uri} ({code}); check the credentials and the bucket policy",
            )
        if code in ("PreconditionFailed", "412"):
            return DeploymentError(PHASE_DOWNLOAD, f"{uri} changed while it was being downloaded; deploy again")
        message = exc.response.get("Error", {}).get("Message", "")
        return DeploymentError(PHASE_DOWNLOAD, f"S3 refused to read {uri}: {code} {message}".strip())
    if isinstance(exc, NoCredentialsError):
        return DeploymentError(
            PHASE_DOWNLOAD,
            f"no AWS credentials to read {uri}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )
    if isinstance(exc, EndpointConnectionError):
        return DeploymentError(PHASE_DOWNLOAD, f"could not connect to S3 to read {uri}: {exc}")
    return DeploymentError(PHASE_DOWNLOAD, f"could not read {uri}: {exc}")


def _check_file_names(files: list[_File], uri: str) -> None:
    """SageMaker's rules for uncompressed model data: real names only; no file that is also a folder."""
    names = {f.relative for f in files}
    for name in sorted(names):
        parts = name.split("/")
        if any(p in ("", ".", "..") or "\x00" in p or len(p.encode()) > 255 for p in parts):
            raise DeploymentError(
                PHASE_DOWNLOAD,
                f"{name!r} under {uri} cannot be a path in the model folder (empty, '.', '..', NUL or "
                "over 255 bytes in a part)",
            )
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in names:
                raise DeploymentError(
                    PHASE_DOWNLOAD, f"{'/'.join(parts[:i])!r} under {uri} is both a file and a folder"
                )


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _read_chunks(f: IO[bytes], path: Path, chunk_bytes: int) -> Iterator[bytes]:
    while True:
        try:
            chunk = f.read(chunk_bytes)
        except OSError as exc:
            raise DeploymentError(PHASE_DOWNLOAD, f"cannot read {path}: {exc.strerror or exc}") from exc
        if not chunk:
            return
        yield chunk


def _certificate_error(exc: BaseException) -> str | None:
    """The certificate verification failure behind a connection error (httpx -> httpcore -> ssl), if any."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
