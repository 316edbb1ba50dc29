"""CloudWatch Logs' error codes as `ApiError`s (the shape names botocore's "logs" model gives them).

ApiError (modelhost.errors)
├── InvalidParameter          `InvalidParameterException` (400): a value or combination the service refuses
├── ResourceNotFound          `ResourceNotFoundException` (400): no such log group or log stream
├── SerializationError        `SerializationException` (400): the body is not a JSON object
├── UnknownLogsOperation      `UnknownOperationException` (400): an operation this server does not serve
├── RequestTooLarge           `RequestEntityTooLargeException` (413)
└── LogsUnavailable           `ServiceUnavailableException` (503): the log files could not be read in time
"""

from __future__ import annotations

from modelhost.errors import ApiError

GROUP_NOT_FOUND = "The specified log group does not exist."
STREAM_NOT_FOUND = "The specified log stream does not exist."


class InvalidParameter(ApiError):
    code = "InvalidParameterException"
    status = 400


class ResourceNotFound(ApiError):
    code = "ResourceNotFoundException"
    status = 400


class SerializationError(ApiError):
    code = "SerializationException"
    status = 400


class UnknownLogsOperation(ApiError):
    code = "UnknownOperationException"
    status = 400


class RequestTooLarge(ApiError):
    code = "RequestEntityTooLargeException"
    status = 413


class LogsUnavailable(ApiError):
    code = "ServiceUnavailableException"
    status = 503
