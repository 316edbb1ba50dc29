"""Which GGUF file an EngineConfig names (pure): shared by the backend choice and the llama.cpp loader."""

from __future__ import annotations

from pathlib import Path

from modelhost.worker.engine.types import EngineConfig


def gguf_path(config: EngineConfig) -> Path | None:
    """The GGUF file the config names (a .gguf path, or gguf_file inside the folder), else None."""
    path = Path(config.model_id_or_path)
    if path.suffix == ".gguf":
        return path
    if config.gguf_file:
        named = Path(config.gguf_file)
        return named if named.is_absolute() else path / named
    return None
