"""Parse where model data lives (ModelDataUrl, ModelDataSource.S3DataSource) into typed sources; no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ACCEPTED_FORMS = (
    "s3://bucket/key.tar.gz, https://host/path.tar.gz, http://host/path.tar.gz, file:///absolute/path "
    "or an absolute local path (a .tar.gz or a folder; ~ is expanded)"
)
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$")
_S3_DATA_TYPES = ("S3Prefix", "S3Object")
_COMPRESSION_TYPES = ("None", "Gzip")
_UNSUPPORTED_S3_DATA_SOURCE_FIELDS = ("ManifestS3Uri", "ManifestEtag", "HubAccessConfig")


class Layout(Enum):
    """How the bytes at a location become the model folder."""

    ARCHIVE = "archive"  # one .tar.gz/.tar to extract (ModelDataUrl; S3Object + Gzip); a local folder: as is
    OBJECT = "object"  # one uncompressed file, placed in the folder under its own name (S3Object + None)
    PREFIX = "prefix"  # every object under a key prefix, relative paths kept (S3Prefix + None)


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    key: str  # an object key, or a key prefix ending in "/" ("" = the whole bucket) for Layout.PREFIX

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True, slots=True)
class HttpLocation:
    url: str  # an http:// or https:// URL, fetched with one GET

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True, slots=True)
class LocalLocation:
    path: Path  # absolute, ~ expanded; a file or a folder, told apart only when it is read

    def __str__(self) -> str:
        return str(self.path)


Location = S3Location | HttpLocation | LocalLocation


@dataclass(frozen=True, slots=True)
class ModelDataSource:
    """Where a model's data is and how it is laid out; what ArtifactCache.prepare takes."""

    location: Location  # where the bytes are
    layout: Layout  # how they become the model folder
    uri: str  # as the user wrote it; named in every error message


def parse_model_data_url(url: str) -> ModelDataSource:
    """A CreateModel `ModelDataUrl`: an archive (or, for local paths, a folder). Raises ValueError."""
    location = parse_location(url, what="ModelDataUrl")
    if isinstance(location, S3Location) and (not location.key or location.key.endswith("/")):
        raise ValueError(_not_a_location("ModelDataUrl", url, "it names a prefix, not one .tar.gz object"))
    return ModelDataSource(location=location, layout=Layout.ARCHIVE, uri=url)


def parse_s3_data_source(s3_data_source: Mapping[str, Any]) -> ModelDataSource:
    """A CreateModel `ModelDataSource.S3DataSource` dict (S3Uri, S3DataType, CompressionType).

    Raises ValueError.
    """
    uri = s3_data_source.get("S3Uri")
    data_type = s3_data_source.get("S3DataType")
    compression = s3_data_source.get("CompressionType")
    if not isinstance(uri, str) or not uri:
        raise ValueError("S3DataSource.S3Uri is required")
    if data_type not in _S3_DATA_TYPES:
        raise ValueError(f"S3DataSource.S3DataType must be one of {', '.join(_S3_DATA_TYPES)}, not {data_type!r}")
    if compression not in _COMPRESSION_TYPES:
        raise ValueError(
            f"S3DataSource.CompressionType must be one of {', '.join(_COMPRESSION_TYPES)}, not {compression!r}"
        )
    for name in _UNSUPPORTED_S3_DATA_SOURCE_FIELDS:
        if s3_data_source.get(name):
            raise ValueError(f"S3DataSource.{name} is not supported by modelhost")
    if data_type == "S3Prefix" and compression == "Gzip":
        raise ValueError("S3DataSource with CompressionType Gzip needs S3DataType S3Object (one .tar.gz object)")
    location = parse_location(uri, what="S3DataSource.S3Uri")
    if isinstance(location, HttpLocation):
        raise ValueError(f"S3DataSource.S3Uri {uri!r} must be an s3:// URI, a file:// URL or a local path")
    layout = Layout.ARCHIVE if compression == "Gzip" else Layout.OBJECT
    if data_type == "S3Prefix":
        layout = Layout.PREFIX
    if isinstance(location, S3Location):
        _check_s3_layout(location, layout, uri)
    return ModelDataSource(location=location, layout=layout, uri=uri)


def parse_location(uri: str, *, what: str = "model data location") -> Location:
    """s3://, http(s)://, file:// or an absolute (or ~) local path; ValueError names the accepted forms."""
    text = uri.strip()
    scheme, sep, _ = text.partition("://")
    if not sep:
        return _parse_local_path(text, uri, what)
    scheme = scheme.lower()
    if scheme == "s3":
        return _parse_s3(text, uri, what)
    if scheme in ("http", "https"):
        parts = urlsplit(text)
        if not parts.hostname:
            raise ValueError(_not_a_location(what, uri, "the URL names no host"))
        return HttpLocation(url=text)
    if scheme == "file":
        return _parse_file_url(text, uri, what)
    raise ValueError(_not_a_location(what, uri, f"the scheme {scheme}:// is not supported"))


def _parse_s3(text: str, uri: str, what: str) -> S3Location:
    # Split by hand: S3 keys may hold '?' and '#', which urlsplit would take for a query or fragment.
    bucket, _, key = text[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(_not_a_location(what, uri, f"{bucket!r} is not an S3 bucket name"))
    return S3Location(bucket=bucket, key=key)


def _parse_file_url(text: str, uri: str, what: str) -> LocalLocation:
    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(_not_a_location(what, uri, f"file:// URLs must be local, not on host {parts.netloc!r}"))
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(_not_a_location(what, uri, "a file:// URL needs an absolute path (file:///abs/path)"))
    return LocalLocation(path=Path(path))


def _parse_local_path(text: str, uri: str, what: str) -> LocalLocation:
    if not text:
        raise ValueError(_not_a_location(what, uri, "it is empty"))
    path = Path(text)
    if text.startswith("~"):
        try:
            path = path.expanduser()
        except RuntimeError:  # ~name of a user this host does not have (or no home for ~)
            user = text.split("/", 1)[0]
            raise ValueError(_not_a_location(what, uri, f"{user} names no user of this host")) from None
    if not path.is_absolute():
        raise ValueError(_not_a_location(what, uri, "a local path must be absolute"))
    return LocalLocation(path=path)


def _check_s3_layout(location: S3Location, layout: Layout, uri: str) -> None:
    if layout is Layout.PREFIX:
        if location.key and not location.key.endswith("/"):
            raise ValueError(f"S3DataSource.S3Uri {uri!r} with S3DataType S3Prefix must end with '/'")
    elif not location.key or location.key.endswith("/"):
        raise ValueError(f"S3DataSource.S3Uri {uri!r} with S3DataType S3Object must name an object, not a prefix")


def _not_a_location(what: str, uri: str, why: str) -> str:
    return f"{what} {uri!r} is not a model data location ({why}); use {ACCEPTED_FORMS}"
