"""The endpoint record that holds a transform job's instances (its "hidden endpoint", named in
resources/transform_job.py): the job's model snapshot with the job's Environment and SageMaker's batch variables,
one variant of the job's instance type and count. CreateTransformJob records it; the supervisor mends it after a
crash between the two writes; the controller deploys it like any other endpoint."""

from __future__ import annotations

from dataclasses import replace

from modelhost.resources.endpoint import Endpoint, VariantSpec, initial_state
from modelhost.resources.endpoint_config import ProductionVariant
from modelhost.resources.model import Model
from modelhost.resources.status import EndpointStatus
from modelhost.resources.transform_job import TransformJob

VARIANT = "AllTraffic"


def worker_environment(job: TransformJob) -> dict[str, str]:
    """What a job's workers get on top of the model's Environment: the job's, then SageMaker's batch variables."""
    return {
        **dict(job.model.container.environment),
        **dict(job.environment),
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(job.max_payload_mb),
        "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD" if job.batch_strategy == "SingleRecord" else "MULTI_RECORD",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": str(job.max_concurrent or 1),
    }


def hidden_endpoint(job: TransformJob, now: float) -> Endpoint:
    """The endpoint record that holds the job's instances (the controller deploys it like any other)."""
    container = replace(job.model.container, environment=worker_environment(job))
    model: Model = replace(job.model, container=container)
    variant = ProductionVariant(VARIANT, job.model_name, job.instance_type, job.instance_count)
    return Endpoint(
        name=job.endpoint_name,
        arn=job.arn,
        config_name=job.name,
        status=EndpointStatus.CREATING,
        created=now,
        modified=now,
        region=job.region,
        variants=(VariantSpec(variant, model),),
        states=(initial_state(variant, now),),
    )
