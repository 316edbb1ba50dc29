"""The engine's backend names, and every name option.rolling_batch / EngineConfig.backend may use for one (pure).

One table for both readers: serving_mode maps option.rolling_batch through it into EngineConfig.backend, and
factory.choose_backend maps EngineConfig.backend through it again (configs built in code, benchmarks).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

BACKENDS = ("auto", "transformers", "llama.cpp", "vllm")  # what choose_backend can be asked for

# alias (lower case) -> one of BACKENDS. LMI's rolling-batch engines all become the built-in engine's own
# choice ("auto": transformers or llama.cpp, or vLLM where it is installed on a GPU); "vllm" asks for vLLM.
BACKEND_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "auto": "auto",
        "transformers": "transformers",
        "llama.cpp": "llama.cpp",
        "llama_cpp": "llama.cpp",
        "llamacpp": "llama.cpp",
        "vllm": "vllm",
        # option.rolling_batch values of the LMI images
        "scheduler": "auto",
        "lmi-dist": "auto",
        "trtllm": "auto",
        "tensorrt-llm": "auto",
        "deepspeed": "auto",
        "disable": "auto",
        "neuronx": "auto",
    }
)


def canonical_backend(name: str) -> str | None:
    """The backend `name` stands for (case and surrounding spaces ignored), or None when it names none."""
    return BACKEND_ALIASES.get(name.strip().lower())
