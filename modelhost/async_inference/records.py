"""One queued InvokeEndpointAsync request, as the store keeps it (kind "async_request", one row per request).

The row is written before the 202 and deleted only after the request's result (or error document) is written
and its notification published, so a crash at any point loses nothing: at start-up every row is queued again,
"running" ones included (at-least-once: a request may run twice, its output object is then simply overwritten).
Rows are keyed by `<received, zero-padded ns>-<uuid>`, so name order is arrival order.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace

from modelhost.resources.async_inference import AsyncInferenceConfig


class AsyncState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"


@dataclass(frozen=True, slots=True)
class AsyncRequest:
    key: str  # the row's name: arrival order, unique
    endpoint: str  # the endpoint's name as created
    inference_id: str
    region: str  # the caller's (SNS messages' awsRegion)
    output_location: str
    received: float  # epoch seconds
    expires: float  # received + RequestTTLSeconds: not started by then, it fails
    invocation_timeout_s: float  # InvocationTimeoutSeconds: how long the model may take
    input_location: str | None = None  # X-Amzn-SageMaker-InputLocation
    inline_body: str | None = None  # or the request's own Body (≤ 128,000 bytes), base64
    failure_location: str | None = None
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    state: AsyncState = AsyncState.QUEUED
    attempts: int = 0  # times it was started (a start the server did not survive counts)
    started: float | None = None
    config: AsyncInferenceConfig | None = None  # the endpoint's, when it was accepted (topics outlive the endpoint)

    def running(self, now: float) -> AsyncRequest:
        return replace(self, state=AsyncState.RUNNING, attempts=self.attempts + 1, started=now)

    def queued(self) -> AsyncRequest:
        return replace(self, state=AsyncState.QUEUED, started=None)


def request_key(received: float) -> str:
    return f"{int(received * 1e9):020d}-{uuid.uuid4().hex}"
