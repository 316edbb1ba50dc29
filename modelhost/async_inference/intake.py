"""InvokeEndpointAsync's admission: its headers checked as botocore's model and AWS word them (pure), then the
request recorded in the store before the 202 is sent (`AsyncIntake.accept`).

The input is `X-Amzn-SageMaker-InputLocation` (s3://, file:// or an absolute local path, read when the request
runs) or the request's own body (botocore ≥ 1.43.29's `Body`, at most 128,000 bytes), exactly one of them.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from modelhost.async_inference.locations import object_name, result_locations
from modelhost.async_inference.records import AsyncRequest, request_key
from modelhost.concurrency import run_blocking
from modelhost.errors import RuntimeValidationError, ServiceUnavailable, Throttled
from modelhost.http_body import printable_ascii
from modelhost.resources.status import SERVES, EndpointStatus
from modelhost.resources.transform_job import job_of_hidden_endpoint
from modelhost.storage.objects import ObjectError, Objects
from modelhost.store.errors import StoreUnavailable, UnreadableRecord, client_text
from modelhost.store.records import Records

MAX_INLINE_BODY_BYTES = 128_000
DEFAULT_TTL_S = 21_600  # 6 hours
DEFAULT_INVOCATION_TIMEOUT_S = 900  # 15 minutes
TTL_RANGE = (60, 21_600)
TIMEOUT_RANGE = (1, 3_600)
STORE_TIMEOUT_S = 30.0
# queued requests (waiting or running) per endpoint before new ones are throttled: the queue's rows and the
# dispatcher's view of them (inline bodies included, up to 128 KB each) must stay bounded
MAX_QUEUED_PER_ENDPOINT = 10_000
ACCEPTS = (*SERVES, EndpointStatus.CREATING)  # a Creating endpoint's requests wait for its instances

H_INPUT = "x-amzn-sagemaker-inputlocation"
H_CONTENT_TYPE = "x-amzn-sagemaker-content-type"
H_ACCEPT = "x-amzn-sagemaker-accept"
H_CUSTOM = "x-amzn-sagemaker-custom-attributes"
H_INFERENCE_ID = "x-amzn-sagemaker-inference-id"
H_EXTENSION = "x-amzn-sagemaker-s3outputpathextension"
H_FILENAME = "x-amzn-sagemaker-filename"
H_TTL = "x-amzn-sagemaker-requestttlseconds"
H_TIMEOUT = "x-amzn-sagemaker-invocationtimeoutseconds"

INFERENCE_ID = re.compile(r"\S[\x20-\x7e]*")
EXTENSION = re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+")
FILENAME = re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9\-_.]*")


@dataclass(frozen=True, slots=True)
class AsyncInvocation:
    """What the caller asked for, checked."""

    input_location: str | None
    inline_body: bytes | None
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    inference_id: str | None
    extension: str | None
    filename: str | None
    ttl_s: int
    timeout_s: int


def _invalid(value: str, member: str, constraint: str) -> RuntimeValidationError:
    shown = value if len(value) <= 200 else value[:200] + "..."
    return RuntimeValidationError(
        f"1 validation error detected: Value '{shown}' at '{member}' failed to satisfy constraint: "
        f"Member must {constraint}"
    )


def _text(headers: Mapping[str, str], name: str, member: str, max_length: int) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if len(value) > max_length:
        raise _invalid(value, member, f"have length less than or equal to {max_length}")
    if not printable_ascii(value):
        raise RuntimeValidationError(f"The {name} header must hold printable US-ASCII characters only.")
    return value


def _seconds(headers: Mapping[str, str], name: str, member: str, bounds: tuple[int, int], default: int) -> int:
    raw = headers.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise _invalid(raw, member, "be a whole number of seconds") from None
    low, high = bounds
    if value < low:
        raise _invalid(raw, member, f"have value greater than or equal to {low}")
    if value > high:
        raise _invalid(raw, member, f"have value less than or equal to {high}")
    return value


def parse_invocation(headers: Mapping[str, str], body: bytes) -> AsyncInvocation:
    """The request's headers (lower-case names) and body, checked; RuntimeValidationError (400) otherwise."""
    location = _text(headers, H_INPUT, "inputLocation", 1024)
    if location is not None and not location.strip():
        raise _invalid(location, "inputLocation", "have length greater than or equal to 1")
    if location is not None and body:
        raise RuntimeValidationError("Body and InputLocation are mutually exclusive; provide exactly one of them.")
    if location is None and not body:
        raise RuntimeValidationError(
            "InputLocation is required: the s3:// URI (or file:// URL or absolute path) of the request payload "
            "(or send the payload itself as Body, up to 128,000 bytes)."
        )
    if len(body) > MAX_INLINE_BODY_BYTES:
        raise _invalid(f"<{len(body)} bytes>", "body", f"have length less than or equal to {MAX_INLINE_BODY_BYTES}")
    inference_id = _text(headers, H_INFERENCE_ID, "inferenceId", 64)
    if inference_id is not None and INFERENCE_ID.fullmatch(inference_id) is None:
        raise _invalid(inference_id, "inferenceId", r"satisfy regular expression pattern: \A\S[\p{Print}]*\z")
    extension = _text(headers, H_EXTENSION, "s3OutputPathExtension", 512)
    if extension is not None and (EXTENSION.fullmatch(extension) is None or ".." in extension.split("/")):
        pattern = "^(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+$ (and hold no '..')"
        raise _invalid(extension, "s3OutputPathExtension", f"satisfy regular expression pattern: {pattern}")
    filename = _text(headers, H_FILENAME, "filename", 32)
    if filename is not None and FILENAME.fullmatch(filename) is None:
        pattern = r"^(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*$"
        raise _invalid(filename, "filename", f"satisfy regular expression pattern: {pattern}")
    return AsyncInvocation(
        input_location=location.strip() if location is not None else None,
        inline_body=body or None,
        content_type=_text(headers, H_CONTENT_TYPE, "contentType", 1024),
        accept=_text(headers, H_ACCEPT, "accept", 1024),
        custom_attributes=_text(headers, H_CUSTOM, "customAttributes", 1024),
        inference_id=inference_id,
        extension=extension,
        filename=filename,
        ttl_s=_seconds(headers, H_TTL, "requestTTLSeconds", TTL_RANGE, DEFAULT_TTL_S),
        timeout_s=_seconds(headers, H_TIMEOUT, "invocationTimeoutSeconds", TIMEOUT_RANGE, DEFAULT_INVOCATION_TIMEOUT_S),
    )


class AsyncIntake:
    """Accepts a checked invocation for an asynchronous endpoint: durable first, then handed to the dispatcher,
    on the leader only: a follower of a shared store records the row, which the leader adopts (app.py)."""

    def __init__(
        self,
        records: Records,
        objects: Objects,
        submit: Callable[[AsyncRequest], None],
        account_id: str,
        now: Callable[[], float],
        queued: Callable[[str], int] = lambda endpoint: 0,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self._leading = leading
        self._records = records
        self._objects = objects
        self._submit = submit
        self._account_id = account_id
        self._now = now
        self._queued = queued  # requests of an endpoint waiting or in flight now

    def _check(self, uri: str, *, for_write: bool, member: str) -> None:
        try:
            self._objects.check_location(uri, for_write=for_write)
        except ObjectError as exc:
            raise RuntimeValidationError(f"{member} {uri!r} cannot be used: {exc}") from None

    async def accept(self, name: str, invocation: AsyncInvocation, region: str) -> AsyncRequest:
        """The recorded request (its row is committed). Raises RuntimeValidationError / ServiceUnavailable."""
        try:
            endpoint = self._records.endpoints.get(name)
        except (UnreadableRecord, StoreUnavailable) as exc:
            raise ServiceUnavailable(f"Endpoint {name} cannot be read right now ({client_text(exc)}); "
                                     "retry shortly.") from exc  # fmt: skip
        if endpoint is None or job_of_hidden_endpoint(endpoint.name) is not None:
            raise RuntimeValidationError(f"Endpoint {name} of account {self._account_id} not found.")
        if endpoint.status not in ACCEPTS:
            raise RuntimeValidationError(
                f"Endpoint {endpoint.name} of account {self._account_id} is not in service (status: "
                f"{endpoint.status}); only InService endpoints can be invoked."
            )
        config = endpoint.async_inference
        if config is None:
            raise RuntimeValidationError(
                f"Endpoint {endpoint.name} is not configured for asynchronous inference: InvokeEndpointAsync needs "
                "an endpoint created from an endpoint configuration with AsyncInferenceConfig (use InvokeEndpoint "
                "for this one)."
            )
        if self._queued(endpoint.name) >= MAX_QUEUED_PER_ENDPOINT:
            raise Throttled(f"Endpoint {endpoint.name} has {MAX_QUEUED_PER_ENDPOINT:,} asynchronous requests queued "
                            "already; retry once some have run.", retry_after_s=5)  # fmt: skip
        if invocation.input_location is not None:
            self._check(invocation.input_location, for_write=False, member="InputLocation")
        inference_id = invocation.inference_id or str(uuid.uuid4())
        try:
            output, failure = result_locations(config.output_path, config.failure_path, object_name(inference_id),
                                               invocation.extension, invocation.filename)  # fmt: skip
        except ValueError as exc:
            raise RuntimeValidationError(f"The result's location cannot be made: {exc}") from None
        self._check(output, for_write=True, member="OutputLocation")
        if failure is not None:
            self._check(failure, for_write=True, member="FailureLocation")
        now = self._now()
        body = invocation.inline_body
        request = AsyncRequest(
            key=request_key(now),
            endpoint=endpoint.name,
            inference_id=inference_id,
            region=region,
            output_location=output,
            failure_location=failure,
            received=now,
            expires=now + invocation.ttl_s,
            invocation_timeout_s=float(invocation.timeout_s),
            input_location=invocation.input_location,
            inline_body=base64.b64encode(body).decode("ascii") if body is not None else None,
            content_type=invocation.content_type,
            accept=invocation.accept,
            custom_attributes=invocation.custom_attributes,
            config=config,
        )
        table = self._records.async_requests
        try:
            await run_blocking(lambda: table.insert(request.key, request), timeout_s=STORE_TIMEOUT_S,
                               name="async-intake")  # fmt: skip
        except (StoreUnavailable, TimeoutError) as exc:
            raise ServiceUnavailable(f"The request could not be queued durably ({client_text(exc)}); "
                                     "retry shortly.") from exc  # fmt: skip
        if self._leading():  # a follower keeps nothing in memory: the leader runs what the store holds
            self._submit(request)
        return request
