"""GPU counts of the ml.* instance types (as AWS publishes them) and what this host can give (pure)."""

from __future__ import annotations

from dataclasses import dataclass

# family -> {size: gpus}; sizes not listed in a family have the family's default.
_GPU_FAMILIES: dict[str, tuple[int, dict[str, int]]] = {
    "p2": (1, {"8xlarge": 8, "16xlarge": 16}),
    "p3": (1, {"8xlarge": 4, "16xlarge": 8}),
    "p3dn": (8, {}),
    "p4d": (8, {}),
    "p4de": (8, {}),
    "p5": (8, {"4xlarge": 1}),
    "p5e": (8, {}),
    "p5en": (8, {}),
    "p6-b200": (8, {}),
    "p6-b300": (8, {}),
    "p6e-gb200": (4, {}),
    "g4dn": (1, {"12xlarge": 4}),
    "g5": (1, {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "g6": (1, {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "g6e": (1, {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "g7e": (1, {"12xlarge": 2, "24xlarge": 4, "48xlarge": 8}),
}


def gpu_count(instance_type: str) -> int:
    """GPUs an `ml.<family>.<size>` type carries; 0 for CPU (and accelerator-less) types."""
    parts = instance_type.split(".")
    if len(parts) != 3 or parts[0] != "ml":
        return 0
    family, size = parts[1], parts[2]
    if family not in _GPU_FAMILIES:
        return 0
    default, by_size = _GPU_FAMILIES[family]
    return by_size.get(size, default)


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
