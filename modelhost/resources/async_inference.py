"""An endpoint config's AsyncInferenceConfig as a typed record, parsed and checked from the request shape (pure).

`parse_async_config` takes the AWS shape as CreateEndpointConfig sent it (already checked against botocore's
model for types, lengths and the SNS topic pattern) and a `check_location(uri, for_write)` that raises
ValueError for a location the server could never write (storage/objects.py's rules, no network).
`KmsKeyId` is accepted and kept in the request document but not used (outputs are written as they are).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelhost.errors import ValidationError

SUCCESS_TOPIC = "SUCCESS_NOTIFICATION_TOPIC"
ERROR_TOPIC = "ERROR_NOTIFICATION_TOPIC"
DEFAULT_MAX_CONCURRENT_PER_INSTANCE = 4  # SageMaker "chooses an optimal value"; modelhost takes 4
MAX_CONCURRENT_RANGE = (1, 1000)

LocationCheck = Callable[[str, bool], None]  # (uri, for_write) -> None; ValueError with the reason


@dataclass(frozen=True, slots=True)
class AsyncInferenceConfig:
    output_path: str  # S3OutputPath: results land at <output_path>/<InferenceId>.out
    failure_path: str | None = None  # S3FailurePath: errors land at <failure_path>/<InferenceId>-error.out
    success_topic: str | None = None  # NotificationConfig.SuccessTopic (an SNS topic ARN)
    error_topic: str | None = None  # NotificationConfig.ErrorTopic
    include_response_in: tuple[str, ...] = ()  # IncludeInferenceResponseIn: SUCCESS_/ERROR_NOTIFICATION_TOPIC
    max_concurrent_per_instance: int = DEFAULT_MAX_CONCURRENT_PER_INSTANCE  # ClientConfig's

    def topic_for(self, succeeded: bool) -> str | None:
        return self.success_topic if succeeded else self.error_topic

    def includes_response(self, succeeded: bool) -> bool:
        return (SUCCESS_TOPIC if succeeded else ERROR_TOPIC) in self.include_response_in


def _text(shape: Mapping[str, Any], key: str) -> str | None:
    value = shape.get(key)
    return str(value) if value else None  # AWS treats "" as not set (min length 0)


def parse_async_config(shape: Mapping[str, Any], check_location: LocationCheck) -> AsyncInferenceConfig:
    """The typed config; ValidationError (ValidationException) naming what to fix."""
    output = shape.get("OutputConfig")
    if not isinstance(output, Mapping):
        raise ValidationError("AsyncInferenceConfig.OutputConfig is required.")
    output_path = _text(output, "S3OutputPath")
    if output_path is None:
        raise ValidationError("AsyncInferenceConfig.OutputConfig.S3OutputPath is required: where results are written.")
    failure_path = _text(output, "S3FailurePath")
    for member, uri in (("S3OutputPath", output_path), ("S3FailurePath", failure_path)):
        if uri is None:
            continue
        try:
            check_location(uri, True)
        except ValueError as exc:
            raise ValidationError(f"AsyncInferenceConfig.OutputConfig.{member} {uri!r} cannot be used: {exc}") from exc
    notification = output.get("NotificationConfig") or {}
    include = tuple(str(t) for t in notification.get("IncludeInferenceResponseIn") or ())
    unknown = [t for t in include if t not in (SUCCESS_TOPIC, ERROR_TOPIC)]
    if unknown:
        raise ValidationError(
            f"IncludeInferenceResponseIn holds {unknown[0]!r}; use {SUCCESS_TOPIC} and/or {ERROR_TOPIC}."
        )
    client = shape.get("ClientConfig") or {}
    concurrency = client.get("MaxConcurrentInvocationsPerInstance")
    if concurrency is None:
        concurrency = DEFAULT_MAX_CONCURRENT_PER_INSTANCE
    low, high = MAX_CONCURRENT_RANGE
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not low <= concurrency <= high:
        raise ValidationError(
            f"AsyncInferenceConfig.ClientConfig.MaxConcurrentInvocationsPerInstance must be a whole number from "
            f"{low} to {high}, not {concurrency!r}."
        )
    return AsyncInferenceConfig(
        output_path=output_path,
        failure_path=failure_path,
        success_topic=_text(notification, "SuccessTopic"),
        error_topic=_text(notification, "ErrorTopic"),
        include_response_in=include,
        max_concurrent_per_instance=concurrency,
    )


def check_async_variants(variants: list[dict[str, Any]]) -> None:
    """SageMaker hosts an asynchronous endpoint on one instance-based production variant."""
    if len(variants) != 1:
        raise ValidationError(
            f"An endpoint configuration with AsyncInferenceConfig must have exactly one production variant, "
            f"not {len(variants)}."
        )


def async_config_shape(config: AsyncInferenceConfig) -> dict[str, Any]:
    """DescribeEndpoint's AsyncInferenceConfig, with ClientConfig's effective concurrency."""
    output: dict[str, Any] = {"S3OutputPath": config.output_path}
    if config.failure_path:
        output["S3FailurePath"] = config.failure_path
    notification: dict[str, Any] = {}
    if config.success_topic:
        notification["SuccessTopic"] = config.success_topic
    if config.error_topic:
        notification["ErrorTopic"] = config.error_topic
    if config.include_response_in:
        notification["IncludeInferenceResponseIn"] = list(config.include_response_in)
    if notification:
        output["NotificationConfig"] = notification
    return {
        "OutputConfig": output,
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": config.max_concurrent_per_instance},
    }
