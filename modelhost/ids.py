"""Resource ARNs and request ids, built the way SageMaker builds them."""

from __future__ import annotations

import uuid

# SageMaker ARN resource kinds by the noun used in our store.
ARN_KINDS = {
    "model": "model",
    "endpoint_config": "endpoint-config",
    "endpoint": "endpoint",
    "transform_job": "transform-job",
}


def arn(kind: str, name: str, *, region: str, account_id: str) -> str:
    """`arn:aws:sagemaker:<region>:<account>:<kind>/<name>`; real ARNs lower-case the name."""
    return f"arn:aws:sagemaker:{region}:{account_id}:{ARN_KINDS[kind]}/{name.lower()}"


def request_id() -> str:
    return str(uuid.uuid4())


def short_id() -> str:
    return uuid.uuid4().hex[:8]
