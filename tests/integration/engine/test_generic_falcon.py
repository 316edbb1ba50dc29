"""A tiny random Falcon runs through the generic transformers path and matches its own greedy generate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from engine_calls import collect

from modelhost.worker.engine.factory import create_backend
from modelhost.worker.engine.types import EngineConfig, GenerationRequest, SamplingParams

pytestmark = pytest.mark.slow  # loads SmolLM2 (session fixture, ~25 s once)


def test_falcon_generates_through_generic_path(falcon_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    backend = create_backend(EngineConfig(str(falcon_dir), dtype="fp32", max_batch_size=2, max_model_len=128))
    prompts = [(1, 500, 600, 700), (1, 42, 43), (1, 9000, 9001, 9002, 9003, 9004)]
    params = SamplingParams(max_new_tokens=8, ignore_eos=True)

    async def run() -> list[list[int | None]]:
        await backend.start()
        try:
            assert backend.stats()["runner"] == "transformers"
            results = await asyncio.gather(
                *(collect(backend, GenerationRequest(f"f{i}", p, params)) for i, p in enumerate(prompts))
            )
        finally:
            await backend.shutdown()
        return [[e.token_id for e in events] for events in results]

    got = asyncio.run(run())
    model = AutoModelForCausalLM.from_pretrained(falcon_dir, dtype=torch.float32).eval()
    for prompt, tokens in zip(prompts, got, strict=True):
        expected = model.generate(torch.tensor([prompt]), max_new_tokens=8, min_new_tokens=8, do_sample=False)
        assert tokens == expected[0, len(prompt) :].tolist()
