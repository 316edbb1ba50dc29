"""Transform job: what CreateTransformJob recorded, its progress, and its status machine.

A job is written by two owners, each through the named transitions below and the store's atomic update:
the API (`request_stop`) and the job runner (`batch/runner.py`: progress, `finish`). A job's instances are
an endpoint record the runner owns (`hidden_endpoint_name`), deployed by the controller like any other, so
quotas, placement, the sandbox, budgets, health checks and instance replacement all apply.

Every input object has its own row (`TransformObject`), keyed `<job key>/<index>`: which object, how many of
its records are done and how many bytes of their outputs are safely staged, and whether its output has been
written. That is what makes a job resumable and exact (see batch/runner.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from modelhost.resources.model import Model, Tag

FAILURE_REASON_MAX = 1024
# the endpoint that holds a job's instances: '.' is not allowed in EndpointName, so it cannot collide with a
# user's endpoint, cannot be named by any SageMaker API call and is left out of ListEndpoints
HIDDEN_ENDPOINT_PREFIX = "transform-job."


class TransformJobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


J = TransformJobStatus
TRANSITIONS: dict[TransformJobStatus, frozenset[TransformJobStatus]] = {
    J.IN_PROGRESS: frozenset({J.COMPLETED, J.FAILED, J.STOPPING}),
    J.STOPPING: frozenset({J.STOPPED, J.FAILED}),
    J.COMPLETED: frozenset(),
    J.FAILED: frozenset(),
    J.STOPPED: frozenset(),
}
ENDED = frozenset({J.COMPLETED, J.FAILED, J.STOPPED})


class IllegalJobTransition(ValueError):
    """A status change the table does not allow."""


def check_job_transition(current: TransformJobStatus, new: TransformJobStatus) -> None:
    if new != current and new not in TRANSITIONS[current]:
        raise IllegalJobTransition(f"a transform job cannot go from {current} to {new}")


def hidden_endpoint_name(job_name: str) -> str:
    return HIDDEN_ENDPOINT_PREFIX + job_name.lower()


def job_of_hidden_endpoint(endpoint_name: str) -> str | None:
    """The job key a hidden endpoint belongs to, or None for a user's endpoint."""
    if endpoint_name.lower().startswith(HIDDEN_ENDPOINT_PREFIX):
        return endpoint_name[len(HIDDEN_ENDPOINT_PREFIX) :].lower()
    return None


@dataclass(frozen=True, slots=True)
class TransformInputSpec:
    data_type: str  # S3Prefix | ManifestFile
    uri: str
    content_type: str | None = None
    compression: str = "None"  # None | Gzip
    split_type: str = "None"  # None | Line


@dataclass(frozen=True, slots=True)
class TransformOutputSpec:
    output_path: str
    accept: str | None = None
    assemble_with: str = "None"  # None | Line


@dataclass(frozen=True, slots=True)
class Processing:
    """DataProcessing as recorded (batch/filters.py applies it)."""

    input_filter: str | None = None
    output_filter: str | None = None
    join_source: str = "None"  # Input | None


@dataclass(frozen=True, slots=True)
class JobProgress:
    """What the runner reports; objects_total is 0 until the inputs are listed."""

    objects_total: int = 0
    objects_done: int = 0
    records_done: int = 0  # records whose outputs are staged or written
    bytes_read: int = 0
    records_per_s: float = 0.0  # over the current run (since the job started or resumed)
    resumed: int = 0  # how many times the job was picked up again after a server restart
    stalled_resumes: int = 0  # resumes in a row that found no record done since the one before
    records_at_resume: int = -1  # records_done when the job was last resumed


@dataclass(frozen=True, slots=True)
class TransformJob:
    name: str
    arn: str
    status: TransformJobStatus
    created: float
    modified: float
    region: str
    model_name: str
    model: Model  # snapshotted at create (the model may be deleted while the job runs)
    instance_type: str
    instance_count: int
    input: TransformInputSpec
    output: TransformOutputSpec
    batch_strategy: str = "MultiRecord"  # SingleRecord | MultiRecord
    max_payload_mb: int = 6
    max_concurrent: int = 0  # MaxConcurrentTransforms per instance; 0: not given (the runner's default)
    environment: Mapping[str, str] = field(default_factory=dict)
    invocation_timeout_s: int = 600  # ModelClientConfig.InvocationsTimeoutInSeconds
    max_retries: int = 3  # ModelClientConfig.InvocationsMaxRetries
    processing: Processing = field(default_factory=Processing)
    tags: tuple[Tag, ...] = ()
    started: float | None = None  # TransformStartTime: when the first record was sent
    ended: float | None = None  # TransformEndTime
    failure_reason: str | None = None
    progress: JobProgress = field(default_factory=JobProgress)
    request: Mapping[str, Any] = field(default_factory=dict)  # the request as sent, for DescribeTransformJob

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def endpoint_name(self) -> str:
        return hidden_endpoint_name(self.name)

    def _moved(self, status: TransformJobStatus, now: float, **changes: Any) -> TransformJob:
        check_job_transition(self.status, status)
        return replace(self, status=status, modified=now, **changes)

    def request_stop(self, now: float) -> TransformJob:
        return self._moved(J.STOPPING, now)

    def finish(self, status: TransformJobStatus, now: float, reason: str | None = None) -> TransformJob:
        shown = None if reason is None else reason[:FAILURE_REASON_MAX]
        return self._moved(status, now, ended=now, failure_reason=shown)

    def with_progress(self, progress: JobProgress, now: float, *, started: float | None = None) -> TransformJob:
        return replace(self, progress=progress, modified=now, started=self.started or started)


# TransformObject.state
PENDING = "pending"
DONE = "done"


@dataclass(frozen=True, slots=True)
class TransformObject:
    """One input object of a job and how far it got."""

    job: str  # the job's key
    index: int  # position in the job's input order
    uri: str
    size: int
    relative: str  # names its output: <S3OutputPath>/<relative>.out
    state: str = PENDING  # pending | done (its output is written)
    records_done: int = 0  # the first records_done records' outputs are in the staging file...
    staged_bytes: int = 0  # ...which is exactly this long (a longer one is cut back on resume)
    records_total: int = -1  # -1: not read yet

    @property
    def row_name(self) -> str:
        return object_row_name(self.job, self.index)


def object_row_name(job_key: str, index: int) -> str:
    return f"{job_key}/{index:08d}"
