"""SageMaker's asynchronous inference notifications: the SNS message (pure) and its publisher (boto3).

The message is SageMaker's JSON document (eventName "InferenceResult", invocationStatus "Completed" or
"Failed", requestParameters, responseParameters with the output or failure location, inferenceId). With
IncludeInferenceResponseIn naming the topic, a response of at most 128 KB rides along in `responseBody`
(`encoding` TEXT when it is UTF-8, else BASE64 — modelhost's form of it).

Publishing uses boto3's `sns` client from a fresh Session, so AWS_ENDPOINT_URL_SNS / AWS_ENDPOINT_URL, the
credentials and the profile are read as the AWS CLI reads them; the region is the topic ARN's. Blocking: call
it from a thread.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from modelhost.async_inference.records import AsyncRequest

log = logging.getLogger(__name__)

MAX_INCLUDED_RESPONSE_BYTES = 128 * 1024
PUBLISH_ATTEMPTS = 3


def _iso(epoch_s: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_s, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def response_body(data: bytes) -> dict[str, str] | None:
    """The `responseBody` member for a response small enough to include; None when it is too large."""
    if len(data) > MAX_INCLUDED_RESPONSE_BYTES:
        return None
    try:
        body = {"content": data.decode("utf-8"), "encoding": "TEXT"}
    except UnicodeDecodeError:
        body = {"content": base64.b64encode(data).decode("ascii"), "encoding": "BASE64"}
    if len(json.dumps(body)) > MAX_INCLUDED_RESPONSE_BYTES * 3 // 2:  # escaped, it would not fit SNS's 256 KB
        return None
    return body


def notification(
    request: AsyncRequest,
    *,
    succeeded: bool,
    event_time: float,
    content_type: str | None,
    failure_reason: str | None = None,
    included: bytes | None = None,
) -> dict[str, Any]:
    """The message one request's outcome publishes."""
    parameters: dict[str, Any] = {"endpointName": request.endpoint}
    if request.input_location:
        parameters["inputLocation"] = request.input_location
    for key, value in (
        ("contentType", request.content_type),
        ("accept", request.accept),
        ("customAttributes", request.custom_attributes),
    ):
        if value:
            parameters[key] = value
    response: dict[str, Any] = {"contentType": content_type or "application/octet-stream"}
    if succeeded:
        response["outputLocation"] = request.output_location
    elif request.failure_location:
        response["failureLocation"] = request.failure_location
    message: dict[str, Any] = {
        "awsRegion": request.region,
        "eventTime": _iso(event_time),
        "receivedTime": _iso(request.received),
        "invocationStatus": "Completed" if succeeded else "Failed",
        "requestParameters": parameters,
        "responseParameters": response,
        "inferenceId": request.inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    if not succeeded:
        message["failureReason"] = failure_reason or "the invocation failed"
    if included is not None:
        body = response_body(included)
        if body is not None:
            message["responseBody"] = body
    return message


def topic_region(topic_arn: str) -> str | None:
    parts = topic_arn.split(":")
    return parts[3] if len(parts) >= 6 and parts[3] else None


class SnsPublisher:
    """Publishes messages to SNS topics (blocking); one client per region while the environment is unchanged."""

    def __init__(self, default_region: str, sleep: Any = time.sleep) -> None:
        self._default_region = default_region
        self._sleep = sleep
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def _client(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                config = Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
                client = boto3.session.Session().client("sns", region_name=region, config=config)
                self._clients[region] = client
            return client

    def publish(self, topic_arn: str, message: dict[str, Any]) -> bool:
        """True once SNS took the message; False (and a warning) after PUBLISH_ATTEMPTS tries."""
        region = topic_region(topic_arn) or self._default_region
        text = json.dumps(message)
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                self._client(region).publish(TopicArn=topic_arn, Message=text)
                return True
            except (BotoCoreError, ClientError) as exc:
                log.warning("async inference: publishing to %s failed (try %d of %d): %s", topic_arn, attempt,
                            PUBLISH_ATTEMPTS, exc)  # fmt: skip
                if attempt < PUBLISH_ATTEMPTS:
                    self._sleep(attempt)
        return False
