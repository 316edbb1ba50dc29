"""Application Auto Scaling's error codes as `ApiError`s (AWS JSON 1.1: the code travels in `__type`).

ApiError (modelhost.errors)
├── ValidationError (modelhost.errors)  `ValidationException` (400): a request AWS would refuse
├── ObjectNotFound                      `ObjectNotFoundException` (400): no such target, policy or action
├── FailedResourceAccess                `FailedResourceAccessException` (400): a resource could not be read
├── ConcurrentUpdate                    `ConcurrentUpdateException` (400): the target changed under the call
├── LimitExceeded                       `LimitExceededException` (400): too many policies/actions/targets
├── InvalidNextToken                    `InvalidNextTokenException` (400): a token this server did not issue
├── SerializationError                  `SerializationException` (400): the body is not a JSON object
├── UnknownAutoScalingOperation         `UnknownOperationException` (400)
├── RequestTooLarge                     `RequestEntityTooLargeException` (413)
└── InternalService                     `InternalServiceException` (500): the store failed
"""

from __future__ import annotations

from modelhost.errors import ApiError


class ObjectNotFound(ApiError):
    code = "ObjectNotFoundException"
    status = 400


class FailedResourceAccess(ApiError):
    code = "FailedResourceAccessException"
    status = 400


class ConcurrentUpdate(ApiError):
    code = "ConcurrentUpdateException"
    status = 400


class LimitExceeded(ApiError):
    code = "LimitExceededException"
    status = 400


class InvalidNextToken(ApiError):
    code = "InvalidNextTokenException"
    status = 400


class SerializationError(ApiError):
    code = "SerializationException"
    status = 400


class UnknownAutoScalingOperation(ApiError):
    code = "UnknownOperationException"
    status = 400


class RequestTooLarge(ApiError):
    code = "RequestEntityTooLargeException"
    status = 413


class InternalService(ApiError):
    code = "InternalServiceException"
    status = 500
