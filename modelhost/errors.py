"""The one exception tree of modelhost.

    ModelhostError                      base; never raised directly
    ├── ApiError                        an AWS-facing error: carries the AWS error code and HTTP status
    │   ├── ValidationError             control plane `ValidationException` (400), not found / exists / bad input
    │   ├── ResourceLimitExceeded       quotas and capacity (400)
    │   ├── ResourceInUse               (400)
    │   ├── ResourceNotFound            (400)
    │   ├── UnknownOperation            an X-Amz-Target we do not implement (400)
    │   ├── RuntimeApiError             sagemaker-runtime errors (rest-json; code travels in X-Amzn-ErrorType)
    │   │   ├── RuntimeValidationError  `ValidationError` (400): unknown endpoint, endpoint not InService, bad headers
    │   │   ├── ModelError              (424): the container answered non-2xx, timed out or died
    │   │   ├── ServiceUnavailable      (503): no healthy instance, overload
    │   │   ├── Throttled               `ThrottlingException` (429): every instance busy and the queue full
    │   │   └── PayloadTooLarge         (413): the body exceeds the 6 MiB limit
    │   ├── ClientGone                  `ClientClosedRequest` (499): the caller left before the answer
    │   ├── AuthError                   SigV4 / API-key authentication failed (security/sigv4.py, auth.py)
    │   │   ├── MissingAuthenticationToken  `MissingAuthenticationTokenException` (403): unsigned, keys exist
    │   │   ├── UnrecognizedClient      `UnrecognizedClientException` (400): unknown access key
    │   │   ├── InvalidSignature        `InvalidSignatureException` (400): wrong secret or signing method
    │   │   │   └── SignatureExpired    (400): X-Amz-Date outside the 5-minute window
    │   │   └── IncompleteSignature     `IncompleteSignatureException` (400): malformed Authorization
    │   └── AccessDenied                `AccessDeniedException` (400): the identity policy does not allow it
    └── DeploymentError                 a phase of bringing up an instance failed (download, extract, requirements,
                                        load, health check); becomes the endpoint's FailureReason

The core raises these; each edge (api/app.py, router/app.py, router/openai.py, cli/main.py) maps them in one place.
"""

from __future__ import annotations

from typing import Any


class ModelhostError(Exception):
    """Base of every error modelhost raises on purpose."""


class ApiError(ModelhostError):
    """An error with an AWS error code and an HTTP status, as the AWS SDKs expect them."""

    code: str = "InternalFailure"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def extra_fields(self) -> dict[str, Any]:
        """Members of the modeled error shape sent beside `message` (top level of boto3's e.response)."""
        return {}


class ValidationError(ApiError):
    code = "ValidationException"
    status = 400


class ResourceLimitExceeded(ApiError):
    code = "ResourceLimitExceeded"
    status = 400


class ResourceInUse(ApiError):
    code = "ResourceInUse"
    status = 400


class ResourceNotFound(ApiError):
    code = "ResourceNotFound"
    status = 400


class UnknownOperation(ApiError):
    code = "UnknownOperationException"
    status = 400


class RuntimeApiError(ApiError):
    """Errors of the sagemaker-runtime (rest-json) protocol."""


class RuntimeValidationError(RuntimeApiError):
    code = "ValidationError"
    status = 400


class ModelError(RuntimeApiError):
    """The container answered with a non-2xx status, timed out, or went away."""

    code = "ModelError"
    status = 424

    def __init__(self, message: str, *, original_status: int, original_message: str, log_stream_arn: str) -> None:
        super().__init__(message)
        self.original_status = original_status
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn

    def extra_fields(self) -> dict[str, Any]:
        return {
            "OriginalStatusCode": self.original_status,
            "OriginalMessage": self.original_message,
            "LogStreamArn": self.log_stream_arn,
        }


class ServiceUnavailable(RuntimeApiError):
    code = "ServiceUnavailable"
    status = 503


class Throttled(RuntimeApiError):
    """Too many requests for the endpoint right now; 429 so every AWS SDK retries it with backoff.
    `retry_after_s`, when set, is sent as Retry-After."""

    code = "ThrottlingException"
    status = 429

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PayloadTooLarge(RuntimeApiError):
    code = "ValidationError"
    status = 413


class ClientGone(ApiError):
    """The caller went away before the answer; its work upstream was cancelled (nobody reads this)."""

    code = "ClientClosedRequest"
    status = 499


class DeploymentError(ModelhostError):
    """Bringing up an instance failed in a named phase; `str()` is the endpoint's FailureReason."""

    def __init__(self, phase: str, reason: str) -> None:
        super().__init__(f"{phase} failed: {reason}")
        self.phase = phase
        self.reason = reason


class AuthError(ApiError):
    """The request's credentials were missing, unknown or did not verify (SigV4); each edge maps it."""


class MissingAuthenticationToken(AuthError):
    code = "MissingAuthenticationTokenException"
    status = 403

    def __init__(self, message: str = "Missing Authentication Token") -> None:
        super().__init__(message)


class UnrecognizedClient(AuthError):
    code = "UnrecognizedClientException"
    status = 400

    def __init__(self, message: str = "The security token included in the request is invalid.") -> None:
        super().__init__(message)


class InvalidSignature(AuthError):
    code = "InvalidSignatureException"
    status = 400


class SignatureExpired(InvalidSignature):
    """InvalidSignatureException whose message says the request time is outside the 5-minute window."""


class IncompleteSignature(AuthError):
    code = "IncompleteSignatureException"
    status = 400


class AccessDenied(ApiError):
    """The caller's identity policy does not allow the action on the resource."""

    code = "AccessDeniedException"
    status = 400
