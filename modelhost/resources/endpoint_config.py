"""EndpointConfig and its production variants: what CreateEndpointConfig recorded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelhost.resources.async_inference import AsyncInferenceConfig
from modelhost.resources.model import Tag


@dataclass(frozen=True, slots=True)
class ProductionVariant:
    name: str
    model_name: str
    instance_type: str
    initial_instance_count: int = 1
    initial_weight: float = 1.0
    download_timeout_s: float | None = None  # ModelDataDownloadTimeoutInSeconds
    startup_timeout_s: float | None = None  # ContainerStartupHealthCheckTimeoutInSeconds


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    name: str
    arn: str
    created: float
    variants: tuple[ProductionVariant, ...]
    tags: tuple[Tag, ...] = ()
    request: Mapping[str, Any] = field(default_factory=dict)  # as sent, for DescribeEndpointConfig only
    async_inference: AsyncInferenceConfig | None = None  # AsyncInferenceConfig: an asynchronous endpoint
