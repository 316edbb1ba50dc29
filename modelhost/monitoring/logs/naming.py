"""Which log groups and streams the endpoints' log folders are, by CloudWatch's names (pure).

    logs/<endpoint lower>/                  log group  /aws/sagemaker/Endpoints/<EndpointName>
        endpoint.log                        stream     modelhost/endpoint-events   (the controller's events)
        <variant lower>-<n>.log             stream     <VariantName>/<variant lower>-<n>
        <variant lower>-<n>-<copy>.log      stream     <VariantName>/<variant lower>-<n>-<copy>

EndpointName and VariantName keep the case they were created with when the caller's lookup knows the
endpoint (`EndpointNames`); a folder whose endpoint is gone keeps the folder's lower-case names.

A batch transform job's instances run as a hidden endpoint (`transform-job.<job lower>`, a name no endpoint
can have), whose folder belongs to the one group all jobs share, as SageMaker names it:

    logs/transform-job.<job lower>/         log group  /aws/sagemaker/TransformJobs
        endpoint.log                        stream     <TransformJobName>/modelhost-events
        <variant lower>-<n>[-<copy>].log    stream     <TransformJobName>/<variant lower>-<n>[-<copy>]

(SageMaker's streams are `<TransformJobName>/<instance-id>-<epoch>`.) TransformJobName keeps its case when
the caller's job lookup knows the job, else the folder's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelhost.resources.transform_job import HIDDEN_ENDPOINT_PREFIX

GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
EVENTS_STREAM = "modelhost/endpoint-events"
ENDPOINT_LOG = "endpoint.log"
LOG_SUFFIX = ".log"
# SageMaker's EndpointName / VariantName pattern, lower-cased as the folders and files are
FOLDER_NAME = re.compile(r"[a-z0-9](-*[a-z0-9]){0,62}")
_INSTANCE_STEM = re.compile(r"(?P<variant>[a-z0-9](-*[a-z0-9])*?)-\d+(-\d+)?")
JOBS_GROUP = "/aws/sagemaker/TransformJobs"
JOB_EVENTS_STREAM = "modelhost-events"
# a hidden endpoint's folder: the prefix and SageMaker's TransformJobName pattern, lower-cased
JOB_FOLDER = re.compile(re.escape(HIDDEN_ENDPOINT_PREFIX) + r"(?P<job>[a-z0-9](-*[a-z0-9]){0,62})")
_ARN = re.compile(r"arn:aws[a-z-]*:logs:[^:]*:[^:]*:log-group:(?P<name>[^:]+)(:\*)?")


@dataclass(frozen=True, slots=True)
class EndpointNames:
    """An endpoint's names as created, from the caller's records."""

    endpoint: str  # EndpointName
    variants: tuple[str, ...] = ()  # VariantNames (current and pending)


def group_name(endpoint_name: str) -> str:
    return GROUP_PREFIX + endpoint_name


def endpoint_of_group(name: str) -> str | None:
    """The EndpointName a log group name names, or None when it is not an endpoint's group."""
    if not name.startswith(GROUP_PREFIX):
        return None
    endpoint = name[len(GROUP_PREFIX) :]
    return endpoint if FOLDER_NAME.fullmatch(endpoint.lower()) else None


def stream_name(file_name: str, variants: tuple[str, ...] = ()) -> str | None:
    """The stream a file of an endpoint's log folder is, or None when it is not one of its logs."""
    if file_name == ENDPOINT_LOG:
        return EVENTS_STREAM
    if not file_name.endswith(LOG_SUFFIX):
        return None
    stem = file_name[: -len(LOG_SUFFIX)]
    match = _INSTANCE_STEM.fullmatch(stem)
    if match is None:
        return None
    known = [v for v in variants if re.fullmatch(re.escape(v.lower()) + r"-\d+(-\d+)?", stem)]
    variant = max(known, key=len) if known else match.group("variant")
    return f"{variant}/{stem}"


def job_of_folder(folder: str) -> str | None:
    """The job key (lower case) a log folder holds the instances of, or None when it is no job's."""
    match = JOB_FOLDER.fullmatch(folder)
    return match.group("job") if match else None


def job_stream_name(job_name: str, file_name: str) -> str | None:
    """The stream of /aws/sagemaker/TransformJobs a file of the job's folder is, or None when it is no log."""
    if file_name == ENDPOINT_LOG:
        return f"{job_name}/{JOB_EVENTS_STREAM}"
    if not file_name.endswith(LOG_SUFFIX) or _INSTANCE_STEM.fullmatch(file_name[: -len(LOG_SUFFIX)]) is None:
        return None
    return f"{job_name}/{file_name[: -len(LOG_SUFFIX)]}"


def group_from_identifier(identifier: str) -> str:
    """A logGroupIdentifier (a name, or an ARN with or without `:*`) as a log group name."""
    match = _ARN.fullmatch(identifier)
    return match.group("name") if match else identifier


def group_arn(name: str, *, region: str, account_id: str) -> str:
    """The log group's ARN as IAM policies name it (`logs:<Operation>` on this resource)."""
    return f"arn:aws:logs:{region}:{account_id}:log-group:{name}"


def stream_arn(group: str, stream: str, *, region: str, account_id: str) -> str:
    return f"{group_arn(group, region=region, account_id=account_id)}:log-stream:{stream}"
