"""Stores written before typed records (format 1: AWS-shaped documents) upgraded in place at start-up.

A format-1 row is the DescribeX document plus private members (`_deployment`, `_pending`, `_tags`); it is
converted once with the same edge conversions the API uses, and written back as a record. A row that cannot
be converted is left as it is and reported like any unreadable row.
"""

from __future__ import annotations

import logging
from typing import Any

from modelhost.api import shapes
from modelhost.resources.endpoint import Endpoint, PendingUpdate, VariantSpec, VariantState
from modelhost.resources.endpoint_config import EndpointConfig
from modelhost.resources.model import Model
from modelhost.resources.status import EndpointStatus
from modelhost.store.records import Records

log = logging.getLogger(__name__)


def upgrade_store(records: Records) -> int:
    """Convert every format-1 row; returns how many were upgraded."""
    upgraded = 0
    for kind, convert in (("model", model_v1), ("endpoint_config", config_v1), ("endpoint", endpoint_v1)):
        for _, row in records.store.items(kind):
            if not isinstance(row, dict) or "format" in row:
                continue
            try:
                record: Any = convert(row)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                log.warning("cannot upgrade the stored %s %r from format 1: %r", kind, _name(kind, row), exc)
                continue
            records.table(kind).put(record.name, record)
            upgraded += 1
    if upgraded:
        log.info("upgraded %d stored record(s) from format 1", upgraded)
    return upgraded


def _name(kind: str, row: dict[str, Any]) -> str:
    key = {"model": "ModelName", "endpoint_config": "EndpointConfigName", "endpoint": "EndpointName"}[kind]
    return str(row.get(key, "?"))


def model_v1(row: dict[str, Any]) -> Model:
    container = row.get("PrimaryContainer") or row["Containers"][0]
    request = {k: v for k, v in row.items() if k not in ("ModelArn", "CreationTime")}
    return shapes.model_from_request(request, container, row["ModelArn"], float(row["CreationTime"]))


def config_v1(row: dict[str, Any]) -> EndpointConfig:
    request = {k: v for k, v in row.items() if k not in ("EndpointConfigArn", "CreationTime")}
    return shapes.config_from_request(request, row["EndpointConfigArn"], float(row["CreationTime"]))


def _spec_v1(variant: dict[str, Any]) -> VariantSpec:
    return VariantSpec(variant=shapes.variant_from_request(variant), model=model_v1(variant["Model"]))


def _state_v1(summary: dict[str, Any]) -> VariantState:
    status = (summary.get("VariantStatus") or [{}])[0]
    image = (summary.get("DeployedImages") or [{}])[0]
    return VariantState(
        name=summary["VariantName"],
        desired_count=int(summary["DesiredInstanceCount"]),
        desired_weight=float(summary["DesiredWeight"]),
        current_count=int(summary.get("CurrentInstanceCount", 0)),
        current_weight=float(summary.get("CurrentWeight", summary["DesiredWeight"])),
        status=status.get("Status"),
        status_message=status.get("StatusMessage"),
        status_since=float(status.get("StartTime", 0.0)),
        deployed_image=image.get("SpecifiedImage"),
        image_resolved_at=float(image.get("ResolutionTime", 0.0)),
    )


def endpoint_v1(row: dict[str, Any]) -> Endpoint:
    deployment = row["_deployment"]
    pending = None
    if row.get("_pending"):
        raw = row["_pending"]
        pending = PendingUpdate(
            config_name=raw["EndpointConfigName"],
            variants=tuple(_spec_v1(v) for v in raw["variants"]),
            states=tuple(_state_v1(s) for s in raw["ProductionVariants"]),
            started=float((row.get("PendingDeploymentSummary") or {}).get("StartTime", row["LastModifiedTime"])),
        )
    return Endpoint(
        name=row["EndpointName"],
        arn=row["EndpointArn"],
        config_name=row["EndpointConfigName"],
        status=EndpointStatus(row["EndpointStatus"]),
        created=float(row["CreationTime"]),
        modified=float(row["LastModifiedTime"]),
        region=str(deployment.get("region", "us-east-1")),
        variants=tuple(_spec_v1(v) for v in deployment["variants"]),
        states=tuple(_state_v1(s) for s in row["ProductionVariants"]),
        failure_reason=row.get("FailureReason"),
        pending=pending,
        tags=shapes.tags_from_request(row.get("_tags")),
    )
