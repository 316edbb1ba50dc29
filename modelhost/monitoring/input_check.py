"""CloudWatch requests checked against botocore's service model by the control plane's validator
(`modelhost.api.validation`), with CloudWatch's codes: a required member absent is `MissingParameter`
("The parameter MetricData.member.1.MetricName is required."), any other constraint `ValidationError` in
AWS's words. Explicit nulls are then dropped, as AWS treats them like absent members (pure)."""

from __future__ import annotations

import re
from typing import Any

from botocore.model import OperationModel

from modelhost.api import validation
from modelhost.monitoring.errors import CloudWatchValidationError, MissingParameter

_NOT_NULL = re.compile(r"^Value 'null' at '([^']*)' failed to satisfy constraint: Member must not be null$")


def query_name(path: str) -> str:
    """The validator's path (`metricData.1.member.metricName`) as CloudWatch names parameters
    (`MetricData.member.1.MetricName`)."""
    parts = path.split(".")
    named: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if part.isdigit() and i + 1 < len(parts) and parts[i + 1] == "member":
            named.extend(["member", part])
            i += 2
            continue
        named.append(part[:1].upper() + part[1:])
        i += 1
    return ".".join(named)


def checked(operation: OperationModel, params: dict[str, Any]) -> dict[str, Any]:
    """`params` without explicit nulls, or the first missing parameter / every broken constraint raised."""
    shape = operation.input_shape
    if shape is None:
        return {}
    errors = validation.constraint_errors(shape, params)
    for error in errors:
        missing = _NOT_NULL.match(error)
        if missing:
            raise MissingParameter(f"The parameter {query_name(missing.group(1))} is required.")
    if errors:
        noun = "validation error" if len(errors) == 1 else "validation errors"
        raise CloudWatchValidationError(f"{len(errors)} {noun} detected: " + "; ".join(errors))
    return dict(validation.without_null_members(shape, params))
