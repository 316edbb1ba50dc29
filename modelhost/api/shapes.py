"""AWS's shapes ↔ modelhost's records, converted once, here (the only place PascalCase meets resources/).

Requests arrive validated against botocore's service model (`api/validation.py`); responses are built from
records with exactly the members DescribeX / ListX return.
"""

from __future__ import annotations

from typing import Any

from modelhost.resources.async_inference import async_config_shape
from modelhost.resources.endpoint import Endpoint, VariantState
from modelhost.resources.endpoint_config import EndpointConfig, ProductionVariant
from modelhost.resources.model import Container, Model, S3ModelData, Tag


def tags_from_request(tags: list[dict[str, Any]] | None) -> tuple[Tag, ...]:
    return tuple(Tag(str(t["Key"]), str(t.get("Value", ""))) for t in tags or [])


def tags_shape(tags: tuple[Tag, ...]) -> list[dict[str, str]]:
    return [{"Key": t.key, "Value": t.value} for t in tags]


def container_from_request(shape: dict[str, Any]) -> Container:
    s3 = (shape.get("ModelDataSource") or {}).get("S3DataSource")
    return Container(
        image=str(shape.get("Image", "")),
        model_data_url=shape.get("ModelDataUrl") or None,
        s3_data_source=None
        if not s3
        else S3ModelData(
            uri=str(s3.get("S3Uri", "")),
            data_type=str(s3.get("S3DataType", "")),
            compression_type=str(s3.get("CompressionType", "")),
        ),
        environment={str(k): str(v) for k, v in (shape.get("Environment") or {}).items()},
    )


def s3_data_source_shape(source: S3ModelData) -> dict[str, str]:
    return {"S3Uri": source.uri, "S3DataType": source.data_type, "CompressionType": source.compression_type}


def model_from_request(body: dict[str, Any], container: dict[str, Any], arn: str, now: float) -> Model:
    request = {k: v for k, v in body.items() if k != "Tags"}
    return Model(
        name=body["ModelName"],
        arn=arn,
        created=now,
        container=container_from_request(container),
        tags=tags_from_request(body.get("Tags")),
        request=request,
    )


def model_description(model: Model) -> dict[str, Any]:
    return {**model.request, "ModelArn": model.arn, "CreationTime": model.created}


def model_summary(model: Model) -> dict[str, Any]:
    return {"ModelName": model.name, "ModelArn": model.arn, "CreationTime": model.created}


def variant_from_request(shape: dict[str, Any]) -> ProductionVariant:
    download = shape.get("ModelDataDownloadTimeoutInSeconds")
    startup = shape.get("ContainerStartupHealthCheckTimeoutInSeconds")
    count = shape.get("InitialInstanceCount")
    weight = shape.get("InitialVariantWeight")
    return ProductionVariant(
        name=shape["VariantName"],
        model_name=shape["ModelName"],
        instance_type=shape["InstanceType"],
        initial_instance_count=1 if count is None else int(count),
        initial_weight=1.0 if weight is None else float(weight),
        download_timeout_s=float(download) if download else None,
        startup_timeout_s=float(startup) if startup else None,
    )


def config_from_request(body: dict[str, Any], arn: str, now: float) -> EndpointConfig:
    shapes = [
        {**v, "InitialInstanceCount": variant.initial_instance_count, "InitialVariantWeight": variant.initial_weight}
        for v, variant in ((v, variant_from_request(v)) for v in body["ProductionVariants"])
    ]
    request = {k: v for k, v in body.items() if k != "Tags"}
    return EndpointConfig(
        name=body["EndpointConfigName"],
        arn=arn,
        created=now,
        variants=tuple(variant_from_request(v) for v in shapes),
        tags=tags_from_request(body.get("Tags")),
        request={**request, "ProductionVariants": shapes},
    )


def config_description(config: EndpointConfig) -> dict[str, Any]:
    return {**config.request, "EndpointConfigArn": config.arn, "CreationTime": config.created}


def config_summary(config: EndpointConfig) -> dict[str, Any]:
    return {"EndpointConfigName": config.name, "EndpointConfigArn": config.arn, "CreationTime": config.created}


def _variant_status(state: VariantState) -> list[dict[str, Any]]:
    if state.status is None:
        return []
    entry: dict[str, Any] = {"Status": state.status, "StartTime": state.status_since}
    if state.status_message:
        entry["StatusMessage"] = state.status_message
    return [entry]


def variant_summary(state: VariantState) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "VariantName": state.name,
        "CurrentWeight": state.current_weight,
        "DesiredWeight": state.desired_weight,
        "CurrentInstanceCount": state.current_count,
        "DesiredInstanceCount": state.desired_count,
    }
    if state.deployed_image:
        summary["DeployedImages"] = [
            {
                "SpecifiedImage": state.deployed_image,
                "ResolvedImage": state.deployed_image,
                "ResolutionTime": state.image_resolved_at,
            }
        ]
    status = _variant_status(state)
    if status:
        summary["VariantStatus"] = status
    return summary


def endpoint_description(endpoint: Endpoint) -> dict[str, Any]:
    shape: dict[str, Any] = {
        **endpoint_summary(endpoint),
        "EndpointConfigName": endpoint.config_name,
        "ProductionVariants": [variant_summary(s) for s in endpoint.states],
    }
    if endpoint.failure_reason:
        shape["FailureReason"] = endpoint.failure_reason
    if endpoint.async_inference is not None:
        shape["AsyncInferenceConfig"] = async_config_shape(endpoint.async_inference)
    if endpoint.pending is not None:
        shape["PendingDeploymentSummary"] = {
            "EndpointConfigName": endpoint.pending.config_name,
            "ProductionVariants": [
                {
                    "VariantName": s.name,
                    "DesiredInstanceCount": s.desired_count,
                    "DesiredWeight": s.desired_weight,
                    **({"VariantStatus": _variant_status(s)} if s.status else {}),
                }
                for s in endpoint.pending.states
            ],
            "StartTime": endpoint.pending.started,
        }
    return shape


def endpoint_summary(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "EndpointName": endpoint.name,
        "EndpointArn": endpoint.arn,
        "CreationTime": endpoint.created,
        "LastModifiedTime": endpoint.modified,
        "EndpointStatus": str(endpoint.status),
    }
