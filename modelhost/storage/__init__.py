"""Model data: where it lives (uris), fetching and caching it (artifacts), safe extraction (extract), and the
folder its files start in (model_root)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelhost.storage.extract import extract_archive
from modelhost.storage.model_root import model_root
from modelhost.storage.uris import (
    HttpLocation,
    Layout,
    LocalLocation,
    ModelDataSource,
    S3Location,
    parse_location,
    parse_model_data_url,
    parse_s3_data_source,
)

if TYPE_CHECKING:
    from modelhost.storage.artifacts import ArtifactCache


def __getattr__(name: str) -> Any:
    """ArtifactCache on first use: importing a pure module (limits, model_ids) does not load boto3 and httpx."""
    if name == "ArtifactCache":
        from modelhost.storage.artifacts import ArtifactCache

        return ArtifactCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArtifactCache",
    "HttpLocation",
    "Layout",
    "LocalLocation",
    "ModelDataSource",
    "S3Location",
    "extract_archive",
    "model_root",
    "parse_location",
    "parse_model_data_url",
    "parse_s3_data_source",
]
