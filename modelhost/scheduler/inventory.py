"""The host's resources as plain data: discovered (nvidia-smi, /proc) or given in configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass

GIB = 1024**3
INVENTORY_ENV = "MODELHOST_INVENTORY"  # JSON: {"gpus": [{"memory_gib": 24}], "cpus": 16, "memory_gib": 128}


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int  # CUDA ordinal
    memory_bytes: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class Inventory:
    gpus: tuple[Gpu, ...]
    cpus: int
    memory_bytes: int

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)


def parse_inventory(text: str) -> Inventory:
    """The configured inventory (MODELHOST_INVENTORY); a clear ValueError when it is malformed."""
    try:
        data = json.loads(text)
        gpus = tuple(
            Gpu(index=i, memory_bytes=int(float(g.get("memory_gib", 0)) * GIB), name=str(g.get("name", "")))
            for i, g in enumerate(data.get("gpus", []))
        )
        return Inventory(gpus=gpus, cpus=int(data["cpus"]), memory_bytes=int(float(data["memory_gib"]) * GIB))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{INVENTORY_ENV} must be JSON like "
            '{"gpus": [{"memory_gib": 24}], "cpus": 16, "memory_gib": 128}: ' + str(exc)
        ) from exc


def discover_gpus() -> tuple[Gpu, ...]:
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[0].isdigit():
            gpus.append(Gpu(index=int(parts[0]), name=parts[1], memory_bytes=int(float(parts[2]) * 1024**2)))
    return tuple(gpus)


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * GIB


def discover_inventory(configured: str | None = None) -> Inventory:
    """This host's GPUs, CPUs and memory, or the configured inventory when given."""
    if configured:
        return parse_inventory(configured)
    return Inventory(gpus=discover_gpus(), cpus=os.cpu_count() or 1, memory_bytes=_memory_bytes())


class GpuLedger:
    """Which GPUs each SageMaker instance holds on this host; the one owner of that fact."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[int, ...]] = {}  # instance (group) id -> its GPUs

    def in_use(self) -> list[int]:
        return [gpu for gpus in self._held.values() for gpu in gpus]

    def allocate(self, group_id: str, gpu_ids: tuple[int, ...]) -> None:
        taken = set(self.in_use()) & set(gpu_ids)
        if taken:
            raise ValueError(f"GPU(s) {sorted(taken)} are already held")
        self._held[group_id] = gpu_ids

    def release(self, group_id: str) -> None:
        self._held.pop(group_id, None)
