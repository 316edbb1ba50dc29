"""CreateTransformJob, DescribeTransformJob, ListTransformJobs, StopTransformJob.

CreateTransformJob checks everything that can be checked before a record is read (the model, the input and
output locations, the options modelhost does not serve, the instance-type quota), then records the job and
the hidden endpoint that holds its instances (resources/transform_job.py) in that order; the job runner
(batch/runner.py) does the rest. Describe adds `ModelhostProgress` (objects and records done, records/s),
which boto3 drops from its parsed answer and `modelhost jobs describe` shows.
"""

from __future__ import annotations

from typing import Any

from modelhost.api import shapes
from modelhost.api.context import ApiContext
from modelhost.api.handlers.endpoints import check_capacity
from modelhost.api.handlers.models import get_model, unreadable
from modelhost.api.pagination import list_response
from modelhost.batch.filters import DataProcessing
from modelhost.batch.instances import hidden_endpoint
from modelhost.errors import ResourceInUse, ValidationError
from modelhost.resources.transform_job import (
    IllegalJobTransition,
    Processing,
    TransformInputSpec,
    TransformJob,
    TransformJobStatus,
    TransformOutputSpec,
)
from modelhost.scheduler.launchers.environment import refusal_message, refused_model_variables
from modelhost.storage.objects import ObjectError, objects_for
from modelhost.store.errors import UnreadableRecord
from modelhost.store.sqlite import AlreadyExists

KIND = "transform_job"
DEFAULT_MAX_PAYLOAD_MB = 6
MAX_PAYLOAD_MB = 100  # SageMaker's limit
DEFAULT_TIMEOUT_S = 600
DEFAULT_RETRIES = 3
_DATA_TYPES = ("S3Prefix", "ManifestFile")
_SPLIT_TYPES = ("None", "Line")
_DESCRIBED = (
    "TransformInput",
    "TransformOutput",
    "TransformResources",
    "DataProcessing",
    "Environment",
    "ExperimentConfig",
    "MaxConcurrentTransforms",
    "MaxPayloadInMB",
    "BatchStrategy",
    "ModelClientConfig",
)


def not_found(ctx: ApiContext, name: str) -> ValidationError:
    return ValidationError(f"Could not find transform job '{ctx.arn(KIND, name)}'.")



def _input_spec(ctx: ApiContext, shape: dict[str, Any]) -> TransformInputSpec:
    source = (shape.get("DataSource") or {}).get("S3DataSource")
    if not source:
        raise ValidationError("TransformInput.DataSource.S3DataSource is required (S3DataType and S3Uri).")
    data_type = source["S3DataType"]
    if data_type not in _DATA_TYPES:
        raise ValidationError(
            f"TransformInput.DataSource.S3DataSource.S3DataType {data_type} is not supported by modelhost; use "
            "S3Prefix (every object under a key prefix) or ManifestFile."
        )
    split = shape.get("SplitType", "None")
    if split not in _SPLIT_TYPES:
        raise ValidationError(
            f"TransformInput.SplitType {split} is not supported by modelhost; use Line (one record per line) or "
            "None (one record per object)."
        )
    try:
        objects_for(ctx.settings).check_location(source["S3Uri"], for_write=False)
    except ObjectError as exc:
        raise ValidationError(f"TransformInput.DataSource.S3DataSource.S3Uri: {exc}") from None
    content_type = _header_value(shape.get("ContentType"), "TransformInput.ContentType")
    return TransformInputSpec(data_type, source["S3Uri"], content_type,
                              shape.get("CompressionType", "None"), split)  # fmt: skip


def _output_spec(ctx: ApiContext, shape: dict[str, Any]) -> TransformOutputSpec:
    try:
        objects_for(ctx.settings).check_location(shape["S3OutputPath"], for_write=True)
    except ObjectError as exc:
        raise ValidationError(f"TransformOutput.S3OutputPath: {exc}") from None
    accept = _header_value(shape.get("Accept"), "TransformOutput.Accept")
    return TransformOutputSpec(shape["S3OutputPath"], accept, shape.get("AssembleWith", "None"))


def _processing(shape: dict[str, Any] | None) -> Processing:
    try:
        parsed = DataProcessing.from_request(shape)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    return Processing(parsed.input_filter, parsed.output_filter, parsed.join_source)


def _environment(body: dict[str, Any]) -> dict[str, str]:
    environment = dict(body.get("Environment") or {})
    refused = refused_model_variables(environment)
    if refused:
        raise ValidationError(refusal_message(refused))
    return environment


def _header_value(value: str | None, member: str) -> str | None:
    """ContentType and Accept are sent to the model as HTTP headers: printable ASCII only (a CR or LF would
    split the request to the worker)."""
    if value is not None and not all(" " <= c <= "~" for c in value):
        raise ValidationError(f"{member} must be printable ASCII (it is sent to the model as an HTTP header).")
    return value


def _refuse_unsupported(body: dict[str, Any]) -> None:
    if int(body.get("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB)) > MAX_PAYLOAD_MB:
        raise ValidationError(f"MaxPayloadInMB must be at most {MAX_PAYLOAD_MB} (MB per request), not "
                              f"{body['MaxPayloadInMB']}.")  # fmt: skip
    if body.get("DataCaptureConfig"):
        raise ValidationError(
            "DataCaptureConfig (batch data capture) is not supported by modelhost; leave it out. Every job's "
            "inputs and outputs are in its input and output locations already."
        )
    resources = body["TransformResources"]
    if resources.get("TransformAmiVersion"):
        raise ValidationError("TransformResources.TransformAmiVersion is not supported by modelhost; leave it out.")


def create_transform_job(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    name = body["TransformJobName"]
    job_arn = ctx.arn(KIND, name)
    in_use = ResourceInUse(
        "Transform job names must be unique within an AWS account and region, and a transform job with this name "
        f"already exists ({job_arn})"
    )
    try:
        if ctx.records.transform_jobs.get(name) is not None:
            raise in_use
    except UnreadableRecord:
        raise in_use from None
    _refuse_unsupported(body)
    model = get_model(ctx, body["ModelName"])
    resources = body["TransformResources"]
    client = body.get("ModelClientConfig") or {}
    now = ctx.now()
    job = TransformJob(
        name=name,
        arn=job_arn,
        status=TransformJobStatus.IN_PROGRESS,
        created=now,
        modified=now,
        region=ctx.region,
        model_name=model.name,
        model=model,
        instance_type=resources["InstanceType"],
        instance_count=int(resources["InstanceCount"]),
        input=_input_spec(ctx, body["TransformInput"]),
        output=_output_spec(ctx, body["TransformOutput"]),
        batch_strategy=body.get("BatchStrategy", "SingleRecord"),
        max_payload_mb=int(body.get("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB)),
        max_concurrent=int(body.get("MaxConcurrentTransforms", 0)),
        environment=_environment(body),
        invocation_timeout_s=int(client.get("InvocationsTimeoutInSeconds", DEFAULT_TIMEOUT_S)),
        max_retries=int(client.get("InvocationsMaxRetries", DEFAULT_RETRIES)),
        processing=_processing(body.get("DataProcessing")),
        tags=shapes.tags_from_request(body.get("Tags")),
        request={k: body[k] for k in _DESCRIBED if k in body},
    )
    check_capacity(ctx, [(job.instance_type, job.instance_count)])
    try:
        ctx.records.transform_jobs.insert(name, job)
    except AlreadyExists as exc:
        raise in_use from exc
    ctx.records.endpoints.put(job.endpoint_name, hidden_endpoint(job, now))
    ctx.wake_controller()
    return {"TransformJobArn": job_arn}


def get_transform_job(ctx: ApiContext, name: str) -> TransformJob:
    try:
        job = ctx.records.transform_jobs.get(name)
    except UnreadableRecord as exc:
        raise unreadable(exc) from exc
    if job is None:
        raise not_found(ctx, name)
    return job


def progress_shape(job: TransformJob) -> dict[str, Any]:
    p = job.progress
    return {
        "ObjectsTotal": p.objects_total,
        "ObjectsDone": p.objects_done,
        "RecordsDone": p.records_done,
        "RecordsPerSecond": round(p.records_per_s, 2),
        "BytesRead": p.bytes_read,
        "Resumed": p.resumed,
    }


def job_description(job: TransformJob) -> dict[str, Any]:
    described: dict[str, Any] = {
        "TransformJobName": job.name,
        "TransformJobArn": job.arn,
        "TransformJobStatus": str(job.status),
        "ModelName": job.model_name,
        **{k: v for k, v in job.request.items()},
        "CreationTime": job.created,
        "ModelhostProgress": progress_shape(job),
    }
    described.setdefault("BatchStrategy", job.batch_strategy)
    described.setdefault("MaxPayloadInMB", job.max_payload_mb)
    if job.failure_reason:
        described["FailureReason"] = job.failure_reason
    if job.started is not None:
        described["TransformStartTime"] = job.started
    if job.ended is not None:
        described["TransformEndTime"] = job.ended
    return described


def job_summary(job: TransformJob) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "TransformJobName": job.name,
        "TransformJobArn": job.arn,
        "CreationTime": job.created,
        "LastModifiedTime": job.modified,
        "TransformJobStatus": str(job.status),
    }
    if job.ended is not None:
        summary["TransformEndTime"] = job.ended
    if job.failure_reason:
        summary["FailureReason"] = job.failure_reason
    return summary


def describe_transform_job(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return job_description(get_transform_job(ctx, body["TransformJobName"]))


def list_transform_jobs(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    return list_response(
        [job_summary(j) for j in ctx.records.transform_jobs.list()],
        body,
        result_key="TransformJobSummaries",
        summary_keys=("TransformJobName", "TransformJobArn", "CreationTime", "LastModifiedTime",
                      "TransformJobStatus", "TransformEndTime", "FailureReason"),  # fmt: skip
        name_key="TransformJobName",
        status_key="TransformJobStatus",
        sort_keys={"Name": "TransformJobName", "CreationTime": "CreationTime", "Status": "TransformJobStatus"},
    )


def stop_transform_job(ctx: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    """InProgress → Stopping (the runner stops it, keeping finished objects' outputs); stopping a job that is
    stopping already is a no-op; one that ended is refused, as SageMaker refuses it."""
    name = body["TransformJobName"]
    get_transform_job(ctx, name)

    def stop(job: TransformJob) -> TransformJob | None:
        if job.status == TransformJobStatus.STOPPING:
            return None
        try:
            return job.request_stop(ctx.now())
        except IllegalJobTransition:
            raise ValidationError(
                f"The transform job {job.name} has already ended (status {job.status}); only an InProgress job "
                "can be stopped."
            ) from None

    if ctx.records.transform_jobs.update(name, stop) is None:
        raise not_found(ctx, name)
    ctx.wake_controller()
    return {}


OPERATIONS = {
    "CreateTransformJob": create_transform_job,
    "DescribeTransformJob": describe_transform_job,
    "ListTransformJobs": list_transform_jobs,
    "StopTransformJob": stop_transform_job,
}
