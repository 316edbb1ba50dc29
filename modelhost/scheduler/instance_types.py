"""How an instance type runs on this host: on its GPUs, or on CPU where the host lacks them (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from modelhost.scheduler.catalog import gpu_count


@dataclass(frozen=True, slots=True)
class DeviceDecision:
    """How an instance of a type runs on this host."""

    gpus_requested: int
    use_gpus: bool  # False: run on CPU (the laptop default) because the host lacks the GPUs
    note: str  # a line for the instance's log ("" when nothing needs saying)


def decide_device(instance_type: str, host_gpu_count: int) -> DeviceDecision:
    wanted = gpu_count(instance_type)
    if wanted == 0:
        return DeviceDecision(0, False, "")
    if wanted <= host_gpu_count:
        return DeviceDecision(wanted, True, "")
    return DeviceDecision(
        wanted,
        False,
        f"{instance_type} asks for {wanted} GPU(s) and this host has {host_gpu_count}: "
        "running the instance on CPU (set MODELHOST_STRICT_INSTANCE_TYPES=1 to refuse instead).",
    )


def quota_message(instance_type: str, limit: int, current: int, delta: int) -> str:
    """SageMaker's ResourceLimitExceeded wording for an instance-type quota."""
    return (
        f"The account-level service limit '{instance_type} for endpoint usage' is {limit} Instances, "
        f"with current utilization of {current} Instances and a request delta of {delta} Instances. "
        "Please use AWS Service Quotas to request an increase for this quota. If AWS Service Quotas is not "
        "available, contact AWS support to request an increase for this quota."
    )
