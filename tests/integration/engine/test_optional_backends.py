"""Optional backends: llama.cpp and vLLM run only where their packages are installed; the factory names them."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from modelhost.testing import bundled_smollm2_gguf
from modelhost.worker.engine.factory import MissingBackendPackage, choose_backend, create_backend
from modelhost.worker.engine.types import EngineConfig, GenerationRequest, SamplingParams


def test_auto_stays_on_transformers_without_cuda() -> None:
    config = EngineConfig("/m/model.gguf")
    assert choose_backend(config, cuda_available=False, have_vllm=True, have_llama_cpp=True) == "transformers"
    preferring = EngineConfig("/m/model.gguf", extra={"prefer_llama_cpp": "1"})
    assert choose_backend(preferring, cuda_available=False, have_vllm=False, have_llama_cpp=True) == "llama.cpp"
    assert choose_backend(config, cuda_available=True, have_vllm=True, have_llama_cpp=False) == "vllm"


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is not None, reason="llama_cpp is installed")
def test_missing_llama_cpp_names_the_package() -> None:
    with pytest.raises(MissingBackendPackage, match="pip install llama-cpp-python"):
        create_backend(EngineConfig(str(bundled_smollm2_gguf()), backend="llama.cpp"))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_missing_vllm_names_the_package() -> None:
    with pytest.raises(MissingBackendPackage, match="pip install vllm"):
        create_backend(EngineConfig("/m", backend="vllm"))


def test_llama_cpp_backend_generates() -> None:
    pytest.importorskip("llama_cpp")
    backend = create_backend(
        EngineConfig(str(bundled_smollm2_gguf()), backend="llama.cpp", max_batch_size=2, max_model_len=256)
    )

    async def run() -> list[int]:
        await backend.start()
        try:
            ids = tuple(backend.encode("The capital of France is"))
            params = SamplingParams(max_new_tokens=5, ignore_eos=True)

            async def one(i: int) -> list[object]:
                return [e async for e in backend.generate(GenerationRequest(f"l{i}", ids, params))]

            results = await asyncio.gather(*(one(i) for i in range(3)))
        finally:
            await backend.shutdown()
        return [len(r) for r in results]

    assert asyncio.run(run()) == [5, 5, 5]


def test_vllm_backend_generates(smollm2_dir: Path) -> None:
    pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a GPU")
    backend = create_backend(EngineConfig(str(smollm2_dir), backend="vllm", max_model_len=256))

    async def run() -> int:
        await backend.start()
        try:
            ids = tuple(backend.encode("Hello"))
            events = [e async for e in backend.generate(GenerationRequest("v", ids, SamplingParams(max_new_tokens=4)))]
        finally:
            await backend.shutdown()
        return len(events)

    assert asyncio.run(run()) >= 1
