"""Placement and quotas as pure functions over the host's inventory and what already runs on it.

GPUs are exclusive: an instance gets whole GPUs (its worker sees them as CUDA_VISIBLE_DEVICES) and a GPU is
never given twice. A GPU instance type on a host with fewer GPUs in total than the type has runs on CPU
(the laptop default) unless strict mode refuses it. CPU threads and memory budgets are proportional shares
for GPU instances (never more than the host has) and best-effort shares for instances on CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from modelhost.scheduler.catalog import gpu_count, lookup
from modelhost.scheduler.inventory import GIB, Inventory

CPU_INSTANCE_MEMORY_BYTES = GIB  # the default quota allows one CPU-run instance per GiB of host memory


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one instance runs on this host."""

    instance_type: str
    gpu_ids: tuple[int, ...]  # CUDA ordinals given to the instance; empty: it runs on CPU
    cpu_threads: int  # threads its worker should use
    memory_bytes: int  # its memory budget
    cpu_fallback: bool  # a GPU type running on CPU because the host lacks the GPUs


class InsufficientCapacity(Exception):
    """No free GPUs for the instance right now."""


def place(instance_type: str, inventory: Inventory, gpus_in_use: Iterable[int], *, strict: bool = False) -> Placement:
    """Decide where one instance of `instance_type` runs, given the GPUs already taken."""
    wanted = gpu_count(instance_type)
    spec = lookup(instance_type)
    type_cpus = spec.vcpus if spec else inventory.cpus
    type_memory = spec.memory_bytes if spec else inventory.memory_bytes
    if wanted == 0 or wanted > inventory.gpu_count:
        if wanted and strict:
            raise InsufficientCapacity(f"{instance_type} needs {wanted} GPU(s); this host has {inventory.gpu_count}.")
        return Placement(
            instance_type,
            (),
            max(1, min(type_cpus, inventory.cpus)),
            min(type_memory, inventory.memory_bytes),
            cpu_fallback=wanted > 0,
        )
    taken = set(gpus_in_use)
    free = [g.index for g in inventory.gpus if g.index not in taken]
    if len(free) < wanted:
        raise InsufficientCapacity(
            f"{instance_type} needs {wanted} GPU(s); {len(free)} of this host's {inventory.gpu_count} are free."
        )
    share = wanted / inventory.gpu_count
    return Placement(
        instance_type,
        tuple(free[:wanted]),
        max(1, min(type_cpus, int(inventory.cpus * share))),
        min(type_memory, int(inventory.memory_bytes * share)),
        cpu_fallback=False,
    )


def model_copies(
    instance_type: str, gpu_ids: tuple[int, ...], tensor_parallel_degree: int | str | None
) -> list[tuple[int, ...]]:
    """The GPU blocks of an instance's model copies: ⌊GPUs / degree⌋ copies of `degree` GPUs each (DJL).

    No degree (or `max`) is one copy over all the instance's GPUs; an instance on CPU runs one copy.
    Raises InsufficientCapacity when the degree asks for more GPUs than the instance type has.
    """
    if not gpu_ids or tensor_parallel_degree in (None, "max"):
        return [gpu_ids]
    degree = int(tensor_parallel_degree)
    if degree > len(gpu_ids):
        raise InsufficientCapacity(
            f"option.tensor_parallel_degree={degree} needs {degree} GPUs per model copy; "
            f"{instance_type} has {len(gpu_ids)}."
        )
    return [gpu_ids[i : i + degree] for i in range(0, len(gpu_ids) - degree + 1, degree)]


@dataclass(frozen=True, slots=True)
class Quota:
    instance_type: str
    limit: int  # instances of this type the account may run
    used: int  # instances desired by existing endpoints

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)


def default_quota(instance_type: str, inventory: Inventory, *, strict: bool) -> int:
    """What the host can hold: GPU instances by whole GPUs, CPU-run instances one per GiB of memory."""
    wanted = gpu_count(instance_type)
    if wanted and wanted <= inventory.gpu_count:
        return inventory.gpu_count // wanted
    if wanted and strict:
        return 0
    return max(1, inventory.memory_bytes // CPU_INSTANCE_MEMORY_BYTES)


def quota_for(
    instance_type: str,
    inventory: Inventory,
    configured: Mapping[str, int],
    used: Mapping[str, int],
    *,
    strict: bool,
) -> Quota:
    limit = configured.get(instance_type)
    if limit is None:
        limit = default_quota(instance_type, inventory, strict=strict)
    return Quota(instance_type, limit, used.get(instance_type, 0))


def parse_quotas(text: str | None) -> dict[str, int]:
    """`ml.g5.2xlarge=2,ml.m5.large=10` (MODELHOST_QUOTAS) → {type: limit}; a clear ValueError otherwise."""
    quotas: dict[str, int] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"MODELHOST_QUOTAS entries are INSTANCE_TYPE=COUNT, got {item.strip()!r}")
        quotas[name.strip()] = int(value)
    return quotas


def quota_message(instance_type: str, limit: int, current: int, delta: int) -> str:
    """SageMaker's ResourceLimitExceeded wording for an instance-type quota."""
    return (
        f"The account-level service limit '{instance_type} for endpoint usage' is {limit} Instances, "
        f"with current utilization of {current} Instances and a request delta of {delta} Instances. "
        "Please use AWS Service Quotas to request an increase for this quota. If AWS Service Quotas is not "
        "available, contact AWS support to request an increase for this quota."
    )
