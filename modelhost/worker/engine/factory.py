"""create_backend: choose and build the Backend an EngineConfig asks for (transformers, llama.cpp, vLLM).

Backend names and their aliases live in backends.py; which GGUF a config names, in gguf.py."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from modelhost.worker.engine.backends import BACKENDS, canonical_backend
from modelhost.worker.engine.gguf import gguf_path
from modelhost.worker.engine.types import Backend, EngineConfig

if TYPE_CHECKING:
    from modelhost.worker.engine.backend import Loaded


class MissingBackendPackage(RuntimeError):
    """The configured backend needs an optional package that is not installed."""


def choose_backend(config: EngineConfig, *, cuda_available: bool, have_vllm: bool, have_llama_cpp: bool) -> str:
    """Which backend serves `config` (pure; availability is passed in).

    `auto` stays on transformers, except: vLLM when CUDA and vllm are both present, and llama.cpp for a GGUF
    when llama_cpp is importable and the config asks for it (extra["prefer_llama_cpp"] = "1").
    """
    choice = canonical_backend(config.backend)
    if choice is None:
        raise ValueError(f"backend {config.backend!r} is not one of {', '.join(BACKENDS)} (or an alias of one)")
    if choice != "auto":
        return choice
    if cuda_available and have_vllm:
        return "vllm"
    if gguf_path(config) is not None and have_llama_cpp and config.extra.get("prefer_llama_cpp") == "1":
        return "llama.cpp"
    return "transformers"


def create_backend(config: EngineConfig) -> Backend:
    """The Backend for `config`, not started yet (call `await backend.start()`).

    Raises MissingBackendPackage naming the pip package when the chosen backend is not installed.
    """
    choice = choose_backend(
        config,
        cuda_available=_cuda_available(),
        have_vllm=_installed("vllm"),
        have_llama_cpp=_installed("llama_cpp"),
    )
    if choice == "vllm":
        if not _installed("vllm"):
            raise MissingBackendPackage("backend vllm needs the vllm package: pip install vllm")
        from modelhost.worker.engine.vllm_backend import VLLMBackend

        return VLLMBackend(config)
    if choice == "llama.cpp":
        if not _installed("llama_cpp"):
            raise MissingBackendPackage("backend llama.cpp needs llama-cpp-python: pip install llama-cpp-python")
        from modelhost.worker.engine.backend import BuiltinBackend

        return BuiltinBackend(config, _load_llama_cpp, "llama.cpp")
    if not _installed("torch") or not _installed("transformers"):
        raise MissingBackendPackage("backend transformers needs torch and transformers: pip install 'modelhost[llm]'")
    from modelhost.worker.engine.backend import BuiltinBackend

    return BuiltinBackend(config, _load_transformers, "transformers")


def _load_transformers(config: EngineConfig) -> Loaded:
    from modelhost.worker.engine.runners.transformers_loader import load_transformers

    return load_transformers(config)


def _load_llama_cpp(config: EngineConfig) -> Loaded:
    from modelhost.worker.engine.runners.llama_cpp import load_llama_cpp

    loaded: Loaded = load_llama_cpp(config)
    return loaded


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda_available() -> bool:
    if not _installed("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())
