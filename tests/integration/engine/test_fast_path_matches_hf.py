"""The fast llama path reproduces transformers' own forward: logits, greedy tokens, batched = unbatched (fp32)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from engine_calls import collect, greedy, prompt_ids

from modelhost.worker.engine.runners.base import RunnerEntry
from modelhost.worker.engine.runners.fast_llama import FastLlamaRunner
from modelhost.worker.engine.types import Backend, GenerationRequest

pytestmark = pytest.mark.slow  # loads SmolLM2 (session fixture, ~25 s once)

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "What is 17 times 23?",
    "Why is the sky blue?",
]


@pytest.fixture(scope="module")
def hf_model(smollm2_dir: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()


def test_prefill_and_decode_logits_match_hf_forward(hf_model: torch.nn.Module) -> None:
    runner = FastLlamaRunner(hf_model, max_slots=2, max_model_len=128)
    ids = list(range(200, 230))
    with torch.inference_mode():
        reference = hf_model(torch.tensor([ids])).logits[0].float()
    prefill = runner.forward([RunnerEntry(1, tuple(ids[:20]), 0, True)])
    chunk = runner.forward([RunnerEntry(1, tuple(ids[20:29]), 20, True)])  # a second prompt chunk
    decode = runner.forward([RunnerEntry(1, (ids[29],), 29, True)])
    for got, position in ((prefill, 19), (chunk, 28), (decode, 29)):
        torch.testing.assert_close(got[0], reference[position], atol=1e-3, rtol=1e-3)


def test_greedy_tokens_equal_hf_generate(fp32_backend: Backend, hf_model: torch.nn.Module) -> None:
    for question in QUESTIONS[:2]:
        ids = prompt_ids(fp32_backend, question)
        expected = hf_model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False, min_new_tokens=24)
        events = asyncio.run(collect(fp32_backend, GenerationRequest("q", ids, greedy(24, min_new_tokens=24))))
        assert [e.token_id for e in events] == expected[0, len(ids) :].tolist()


def test_batched_greedy_equals_unbatched(fp32_backend: Backend) -> None:
    prompts = [prompt_ids(fp32_backend, q) for q in QUESTIONS]
    params = greedy(20, ignore_eos=True)

    async def one_by_one() -> list[list[int]]:
        return [
            [e.token_id for e in await collect(fp32_backend, GenerationRequest(f"s{i}", p, params))]
            for i, p in enumerate(prompts)
        ]

    async def together() -> list[list[int]]:
        async def staggered(i: int, p: tuple[int, ...]) -> list[int]:
            await asyncio.sleep(0.05 * i)  # join a running batch at different steps
            return [e.token_id for e in await collect(fp32_backend, GenerationRequest(f"b{i}", p, params))]

        return list(await asyncio.gather(*(staggered(i, p) for i, p in enumerate(prompts))))

    assert asyncio.run(together()) == asyncio.run(one_by_one())
