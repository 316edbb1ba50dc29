"""The ml.* instance types users deploy LLMs on, as AWS publishes them: vCPUs, memory, GPUs, GPU memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InstanceType:
    name: str  # e.g. ml.g5.12xlarge
    vcpus: int
    memory_gib: float
    gpus: int = 0
    gpu_memory_gib: float = 0.0  # per GPU
    gpu_model: str = ""

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 1024**3)


def _family(
    prefix: str, gpu_model: str, gpu_gib: float, rows: Sequence[tuple[str, int, float, int]]
) -> list[InstanceType]:
    return [
        InstanceType(f"ml.{prefix}.{size}", cpus, mem, gpus, gpu_gib if gpus else 0.0, gpu_model if gpus else "")
        for size, cpus, mem, gpus in rows
    ]


def _cpu_family(prefix: str, rows: Sequence[tuple[str, int, float]]) -> list[InstanceType]:
    return [InstanceType(f"ml.{prefix}.{size}", cpus, mem) for size, cpus, mem in rows]


_G5_SIZES = [
    ("xlarge", 4, 16, 1),
    ("2xlarge", 8, 32, 1),
    ("4xlarge", 16, 64, 1),
    ("8xlarge", 32, 128, 1),
    ("12xlarge", 48, 192, 4),
    ("16xlarge", 64, 256, 1),
    ("24xlarge", 96, 384, 4),
    ("48xlarge", 192, 768, 8),
]
_M_SIZES = [
    ("large", 2, 8),
    ("xlarge", 4, 16),
    ("2xlarge", 8, 32),
    ("4xlarge", 16, 64),
    ("8xlarge", 32, 128),
    ("12xlarge", 48, 192),
    ("16xlarge", 64, 256),
    ("24xlarge", 96, 384),
    ("32xlarge", 128, 512),
]
_C_SIZES = [
    ("large", 2, 4),
    ("xlarge", 4, 8),
    ("2xlarge", 8, 16),
    ("4xlarge", 16, 32),
    ("8xlarge", 32, 64),
    ("12xlarge", 48, 96),
    ("16xlarge", 64, 128),
    ("24xlarge", 96, 192),
    ("32xlarge", 128, 256),
]
_R_SIZES = [
    ("large", 2, 16),
    ("xlarge", 4, 32),
    ("2xlarge", 8, 64),
    ("4xlarge", 16, 128),
    ("8xlarge", 32, 256),
    ("12xlarge", 48, 384),
    ("16xlarge", 64, 512),
    ("24xlarge", 96, 768),
    ("32xlarge", 128, 1024),
]


def _m5(sizes: Sequence[tuple[str, int, float]], keep: set[str]) -> list[tuple[str, int, float]]:
    return [row for row in sizes if row[0] in keep]


_M5_KEEP = {"large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge"}

CATALOG: dict[str, InstanceType] = {
    t.name: t
    for t in [
        *_family(
            "g4dn",
            "NVIDIA T4",
            16,
            [
                ("xlarge", 4, 16, 1),
                ("2xlarge", 8, 32, 1),
                ("4xlarge", 16, 64, 1),
                ("8xlarge", 32, 128, 1),
                ("12xlarge", 48, 192, 4),
                ("16xlarge", 64, 256, 1),
            ],
        ),
        *_family("g5", "NVIDIA A10G", 24, _G5_SIZES),
        *_family("g6", "NVIDIA L4", 24, _G5_SIZES),
        *_family(
            "g6e",
            "NVIDIA L40S",
            48,
            [
                ("xlarge", 4, 32, 1),
                ("2xlarge", 8, 64, 1),
                ("4xlarge", 16, 128, 1),
                ("8xlarge", 32, 256, 1),
                ("12xlarge", 48, 384, 4),
                ("16xlarge", 64, 512, 1),
                ("24xlarge", 96, 768, 4),
                ("48xlarge", 192, 1536, 8),
            ],
        ),
        *_family("p3", "NVIDIA V100", 16, [("2xlarge", 8, 61, 1), ("8xlarge", 32, 244, 4), ("16xlarge", 64, 488, 8)]),
        *_family("p4d", "NVIDIA A100 40GB", 40, [("24xlarge", 96, 1152, 8)]),
        *_family("p4de", "NVIDIA A100 80GB", 80, [("24xlarge", 96, 1152, 8)]),
        *_family("p5", "NVIDIA H100", 80, [("4xlarge", 16, 256, 1), ("48xlarge", 192, 2048, 8)]),
        *_family("p5e", "NVIDIA H200", 141, [("48xlarge", 192, 2048, 8)]),
        *_family("p5en", "NVIDIA H200", 141, [("48xlarge", 192, 2048, 8)]),
        *_cpu_family("t2", [("medium", 2, 4), ("large", 2, 8), ("xlarge", 4, 16), ("2xlarge", 8, 32)]),
        *_cpu_family("m5", _m5(_M_SIZES, _M5_KEEP)),
        *_cpu_family("m5d", _m5(_M_SIZES, _M5_KEEP)),
        *_cpu_family(
            "c5",
            [
                ("large", 2, 4),
                ("xlarge", 4, 8),
                ("2xlarge", 8, 16),
                ("4xlarge", 16, 32),
                ("9xlarge", 36, 72),
                ("18xlarge", 72, 144),
            ],
        ),
        *_cpu_family("r5", _m5(_R_SIZES, _M5_KEEP)),
        *_cpu_family("m6i", _M_SIZES),
        *_cpu_family("c6i", _C_SIZES),
        *_cpu_family("r6i", _R_SIZES),
        *_cpu_family("m7i", [*_M_SIZES[:8], ("48xlarge", 192, 768)]),
        *_cpu_family("c7i", [*_C_SIZES[:8], ("48xlarge", 192, 384)]),
    ]
}

# GPU counts for accelerated families the catalogue does not list in full (sizes not listed: the default).
_OTHER_GPU_FAMILIES: dict[str, tuple[int, dict[str, int]]] = {
    "p2": (1, {"8xlarge": 8, "16xlarge": 16}),
    "p6-b200": (8, {}),
    "p6-b300": (8, {}),
    "p6e-gb200": (4, {}),
    "g7e": (1, {"12xlarge": 2, "24xlarge": 4, "48xlarge": 8}),
}


def lookup(name: str) -> InstanceType | None:
    return CATALOG.get(name)


def gpu_count(name: str) -> int:
    """GPUs an `ml.<family>.<size>` type carries; 0 for CPU (and accelerator-less) types."""
    known = CATALOG.get(name)
    if known is not None:
        return known.gpus
    parts = name.split(".")
    if len(parts) != 3 or parts[0] != "ml" or parts[1] not in _OTHER_GPU_FAMILIES:
        return 0
    default, by_size = _OTHER_GPU_FAMILIES[parts[1]]
    return by_size.get(parts[2], default)
