from __future__ import annotations

import pytest

from modelhost.scheduler.inventory import GIB, Gpu, Inventory, parse_inventory
from modelhost.scheduler.placement import InsufficientCapacity, parse_quotas, place, quota_for

EIGHT_GPUS = Inventory(gpus=tuple(Gpu(i, 24 * GIB) for i in range(8)), cpus=192, memory_bytes=768 * GIB)
LAPTOP = Inventory(gpus=(), cpus=2, memory_bytes=24 * GIB)


def test_whole_gpus_never_given_twice() -> None:
    first = place("ml.g5.12xlarge", EIGHT_GPUS, [])
    assert first.gpu_ids == (0, 1, 2, 3)
    second = place("ml.g5.12xlarge", EIGHT_GPUS, first.gpu_ids)
    assert second.gpu_ids == (4, 5, 6, 7)
    assert first.cpu_threads + second.cpu_threads <= EIGHT_GPUS.cpus
    assert first.memory_bytes + second.memory_bytes <= EIGHT_GPUS.memory_bytes
    with pytest.raises(InsufficientCapacity, match="0 of this host's 8 are free"):
        place("ml.g5.2xlarge", EIGHT_GPUS, range(8))


def test_laptop_runs_gpu_types_on_cpu_unless_strict() -> None:
    placement = place("ml.g5.24xlarge", LAPTOP, [])
    assert placement.gpu_ids == () and placement.cpu_fallback
    assert placement.cpu_threads == 2 and placement.memory_bytes == 24 * GIB
    with pytest.raises(InsufficientCapacity, match="needs 4 GPU"):
        place("ml.g5.24xlarge", LAPTOP, [], strict=True)
    cpu = place("ml.m5.large", LAPTOP, [])
    assert not cpu.cpu_fallback and cpu.memory_bytes == 8 * GIB


def test_quotas_default_to_what_the_host_holds() -> None:
    assert quota_for("ml.g5.12xlarge", EIGHT_GPUS, {}, {}, strict=True).limit == 2
    assert quota_for("ml.g5.48xlarge", EIGHT_GPUS, {}, {}, strict=True).limit == 1
    assert quota_for("ml.g5.24xlarge", LAPTOP, {}, {}, strict=True).limit == 0
    assert quota_for("ml.g5.24xlarge", LAPTOP, {}, {}, strict=False).limit == 24
    quota = quota_for("ml.m5.large", LAPTOP, {"ml.m5.large": 3}, {"ml.m5.large": 2}, strict=False)
    assert (quota.limit, quota.used, quota.left) == (3, 2, 1)


def test_parsing_configuration() -> None:
    assert parse_quotas("ml.g5.2xlarge=2, ml.m5.large=10") == {"ml.g5.2xlarge": 2, "ml.m5.large": 10}
    with pytest.raises(ValueError, match="INSTANCE_TYPE=COUNT"):
        parse_quotas("ml.g5.2xlarge")
    inventory = parse_inventory('{"gpus": [{"memory_gib": 80}, {"memory_gib": 80}], "cpus": 16, "memory_gib": 128}')
    assert inventory.gpu_count == 2 and inventory.gpus[1].index == 1 and inventory.cpus == 16
    with pytest.raises(ValueError, match="MODELHOST_INVENTORY"):
        parse_inventory("{}")


def test_model_copies_follow_the_tensor_parallel_degree() -> None:
    from modelhost.scheduler.placement import model_copies

    four = (0, 1, 2, 3)
    assert model_copies("ml.g5.12xlarge", four, 2) == [(0, 1), (2, 3)]
    assert model_copies("ml.g5.12xlarge", four, 1) == [(0,), (1,), (2,), (3,)]
    assert model_copies("ml.g5.12xlarge", four, "max") == [four]
    assert model_copies("ml.g5.12xlarge", four, None) == [four]
    assert model_copies("ml.g5.12xlarge", four, 3) == [(0, 1, 2)]
    assert model_copies("ml.g5.24xlarge", (), 4) == [()]  # on CPU: one copy
    with pytest.raises(InsufficientCapacity, match="tensor_parallel_degree=8 needs 8 GPUs per model copy"):
        model_copies("ml.g5.12xlarge", four, 8)
