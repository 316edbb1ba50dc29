"""CloudWatch's error codes as `ApiError`s (codes as the query protocol and `x-amzn-query-error` name them).

ApiError (modelhost.errors)
├── InvalidParameterValue         (400) a value CloudWatch refuses (period, times, values, tokens of ListMetrics)
├── MissingParameter              (400) a required parameter is absent
├── InvalidParameterCombination   (400) parameters that cannot go together, or too many data points asked for
├── InvalidNextToken              (400) a NextToken this server did not issue for this query
├── CloudWatchValidationError     `ValidationError` (400): a constraint of the service model, AWS-worded
├── MalformedRequest              (400) a body that is not JSON / CBOR / a query string (code per protocol)
├── UnknownCloudWatchOperation    (400) an operation this server does not implement
├── RequestTooLarge               `RequestEntityTooLarge` (413)
└── InternalServiceError          (500) the metric store failed
"""

from __future__ import annotations

from modelhost.errors import ApiError


class InvalidParameterValue(ApiError):
    code = "InvalidParameterValue"
    status = 400


class MissingParameter(ApiError):
    code = "MissingParameter"
    status = 400


class InvalidParameterCombination(ApiError):
    code = "InvalidParameterCombination"
    status = 400


class InvalidNextToken(ApiError):
    code = "InvalidNextToken"
    status = 400


class CloudWatchValidationError(ApiError):
    code = "ValidationError"
    status = 400


class MalformedRequest(ApiError):
    status = 400


class UnknownCloudWatchOperation(ApiError):
    code = "InvalidAction"
    status = 400


class RequestTooLarge(ApiError):
    code = "RequestEntityTooLarge"
    status = 413


class InternalServiceError(ApiError):
    code = "InternalServiceError"
    status = 500
