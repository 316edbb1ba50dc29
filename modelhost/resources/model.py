"""Model and its container: what CreateModel recorded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class S3ModelData:
    """A container's ModelDataSource.S3DataSource."""

    uri: str
    data_type: str  # S3Object | S3Prefix
    compression_type: str  # Gzip | None


@dataclass(frozen=True, slots=True)
class Container:
    """The one container of a model (modelhost serves one per model)."""

    image: str = ""
    model_data_url: str | None = None
    s3_data_source: S3ModelData | None = None
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Tag:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    arn: str
    created: float  # epoch seconds
    container: Container
    tags: tuple[Tag, ...] = ()
    # The CreateModel request as the caller sent it (AWS casing), kept only so DescribeModel returns it
    # unchanged; owned by the API edge, read by nothing inside.
    request: Mapping[str, Any] = field(default_factory=dict)
