"""What each request asks to do, in IAM's terms: the action (`sagemaker:CreateModel`) and the resource ARN.

Pure. Control-plane operations act on the resource their body names (List* on "*"); InvokeEndpoint and
InvokeEndpointWithResponseStream on the endpoint's ARN; the OpenAI routes count as InvokeEndpoint on the
endpoint named by `model`. modelhost's own read routes borrow the names IAM users already know for the same
information: an endpoint's logs are CloudWatch Logs' `logs:GetLogEvents` on the endpoint's log group (SageMaker
writes them to `/aws/sagemaker/Endpoints/NAME`), the quota report is Service Quotas'
`servicequotas:ListServiceQuotas` on "*", the Prometheus /metrics page CloudWatch's `cloudwatch:GetMetricData` on "*".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelhost import ids

READ_ONLY_PREFIXES = ("Describe", "List", "Get")
GET_LOG_EVENTS = "logs:GetLogEvents"
LIST_SERVICE_QUOTAS = "servicequotas:ListServiceQuotas"
GET_METRIC_DATA = "cloudwatch:GetMetricData"  # the server's Prometheus /metrics
# body member naming the resource -> ARN kind, in the order they are looked for (CreateEndpoint names both
# the endpoint and its config: the endpoint is what it acts on)
_NAME_MEMBERS = (
    ("TransformJobName", "transform_job"),  # CreateTransformJob names its model too: the job is what it acts on
    ("EndpointName", "endpoint"),
    ("EndpointConfigName", "endpoint_config"),
    ("ModelName", "model"),
)


def action(operation: str) -> str:
    """IAM's action name: a SageMaker operation (`CreateModel`) gets `sagemaker:`; `service:Operation` stays."""
    return operation if ":" in operation else f"sagemaker:{operation}"


def is_mutating(operation: str) -> bool:
    return not operation.rpartition(":")[2].startswith(READ_ONLY_PREFIXES)


def control_plane_resource(operation: str, body: Mapping[str, Any], *, region: str, account_id: str) -> str:
    """The ARN the operation acts on; "*" for List* and for bodies that name nothing."""
    if operation.startswith("List") and operation != "ListTags":
        return "*"
    arn = body.get("ResourceArn")
    if isinstance(arn, str) and arn:
        return arn
    for member, kind in _NAME_MEMBERS:
        name = body.get(member)
        if isinstance(name, str) and name:
            return ids.arn(kind, name, region=region, account_id=account_id)
    return "*"


def endpoint_resource(endpoint_name: str, *, region: str, account_id: str) -> str:
    return ids.arn("endpoint", endpoint_name, region=region, account_id=account_id)


def log_group_resource(endpoint_name: str, *, region: str, account_id: str) -> str:
    """The endpoint's CloudWatch log group, as SageMaker names it (log group names keep their case)."""
    return f"arn:aws:logs:{region}:{account_id}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}"


def user_arn(user_name: str, account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:user/{user_name}"
