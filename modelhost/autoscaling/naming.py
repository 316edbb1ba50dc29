"""Resource ids, store keys and ARNs of Application Auto Scaling objects, built the way AWS builds them (pure).

A SageMaker variant's ResourceId is `endpoint/NAME/variant/VARIANT`. Endpoint names are unique case-insensitively
(SageMaker), variant, policy and action names are not: a store key lower-cases the endpoint name and keeps the
rest exactly, escaping capitals so that the store's lower-casing of keys loses nothing (`A` -> `^a`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from modelhost.autoscaling.records import NAMESPACE

# SageMaker's EndpointName and VariantName pattern
_NAME = r"[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62}"
_RESOURCE_ID = re.compile(rf"endpoint/({_NAME})/variant/({_NAME})")


@dataclass(frozen=True, slots=True)
class VariantRef:
    """The endpoint variant a ResourceId names."""

    endpoint_name: str
    variant_name: str

    @property
    def resource_id(self) -> str:
        return f"endpoint/{self.endpoint_name}/variant/{self.variant_name}"

    @property
    def key(self) -> str:
        """The target's store key: the same for every spelling of the endpoint name."""
        return f"endpoint/{self.endpoint_name.lower()}/variant/{escape(self.variant_name)}"


def parse_resource_id(resource_id: str) -> VariantRef | None:
    """The variant `endpoint/NAME/variant/VARIANT` names; None when it is not of that form."""
    match = _RESOURCE_ID.fullmatch(resource_id)
    return None if match is None else VariantRef(match.group(1), match.group(2))


def escape(text: str) -> str:
    """`text` in lower case with nothing lost: capitals become `^` + the small letter, `^` becomes `^^`."""
    out = []
    for ch in text:
        if ch == "^":
            out.append("^^")
        elif ch != ch.lower():
            out.append("^" + ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def member_key(ref: VariantRef, name: str) -> str:
    """The store key of a policy or scheduled action `name` of the target `ref`."""
    return f"{ref.key}|{escape(name)}"


def target_arn(region: str, account_id: str) -> str:
    """`arn:aws:application-autoscaling:REGION:ACCOUNT:scalable-target/<36 hex digits>`, a new id each time."""
    ident = (uuid.uuid4().hex + uuid.uuid4().hex)[:36]
    return f"arn:aws:application-autoscaling:{region}:{account_id}:scalable-target/{ident}"


def policy_arn(region: str, account_id: str, ref: VariantRef, policy_name: str) -> str:
    return (
        f"arn:aws:autoscaling:{region}:{account_id}:scalingPolicy:{uuid.uuid4()}:"
        f"resource/{NAMESPACE}/{ref.resource_id}:policyName/{policy_name}"
    )


def scheduled_action_arn(region: str, account_id: str, ref: VariantRef, action_name: str) -> str:
    return (
        f"arn:aws:autoscaling:{region}:{account_id}:scheduledAction:{uuid.uuid4()}:"
        f"resource/{NAMESPACE}/{ref.resource_id}:scheduledActionName/{action_name}"
    )


def alarm_name(ref: VariantRef, kind: str) -> str:
    """The name AWS gives a target-tracking alarm: `TargetTracking-endpoint/E/variant/V-AlarmHigh-<uuid>`."""
    return f"TargetTracking-{ref.resource_id}-{kind}-{uuid.uuid4()}"


def alarm_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{name}"


def service_role_arn(account_id: str) -> str:
    """The service-linked role AWS reports for SageMaker targets registered without a RoleARN."""
    return (
        f"arn:aws:iam::{account_id}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )


def activity_id() -> str:
    return str(uuid.uuid4())
