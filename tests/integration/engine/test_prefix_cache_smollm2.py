"""Prefix caching on SmolLM2 (fp32, fast llama path): greedy output identical with the cache (the default) and
without it, for a repeated prompt, prompts sharing a long system prompt, and under continuous batching; hits are
counted in the backend's stats."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_calls import collect, greedy

from modelhost.worker.engine.types import Backend, EngineConfig, GenerationRequest

pytestmark = pytest.mark.slow  # loads SmolLM2 twice

RULE = "Rule {}: answer politely and precisely, citing policy section {} when it applies."
SYSTEM = " ".join(RULE.format(i, i) for i in range(14))
QUESTIONS = ["What is the capital of France?", "Write a haiku about the sea.", "What is 17 times 23?"]


@pytest.fixture(scope="module")
def uncached_backend(smollm2_dir: Path) -> Iterator[Backend]:
    """The same as fp32_backend with option.enable_prefix_caching=false."""
    from modelhost.worker.engine.factory import create_backend

    config = EngineConfig(
        str(smollm2_dir), dtype="fp32", max_batch_size=4, max_model_len=512, extra={"enable_prefix_caching": "false"}
    )
    backend = create_backend(config)
    asyncio.run(backend.start())
    yield backend
    asyncio.run(backend.shutdown())


def chat_ids(backend: Backend, question: str) -> tuple[int, ...]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    return tuple(backend.encode(backend.apply_chat_template(messages), add_special_tokens=False))


async def tokens(backend: Backend, prompt: tuple[int, ...], delay_s: float = 0.0) -> list[int | None]:
    await asyncio.sleep(delay_s)
    return [e.token_id for e in await collect(backend, GenerationRequest("p", prompt, greedy(24, ignore_eos=True)))]


def test_greedy_output_with_the_cache_equals_without(fp32_backend: Backend, uncached_backend: Backend) -> None:
    prompts = [chat_ids(fp32_backend, q) for q in QUESTIONS]
    assert 250 < len(prompts[0]) < 480  # a long system prompt; 24 new tokens fit max_model_len 512

    async def one_by_one(backend: Backend) -> list[list[int | None]]:
        return [await tokens(backend, p) for p in [prompts[0], prompts[0], *prompts[1:]]]

    async def together(backend: Backend) -> list[list[int | None]]:
        return list(await asyncio.gather(*(tokens(backend, p, 0.05 * i) for i, p in enumerate(prompts))))

    before = fp32_backend.stats()
    reference = asyncio.run(one_by_one(uncached_backend))
    assert asyncio.run(one_by_one(fp32_backend)) == reference  # (a) the same prompt twice, (b) a shared prefix
    assert asyncio.run(together(fp32_backend)) == [reference[0], *reference[2:]]  # (c) batched, staggered joins
    after = fp32_backend.stats()
    assert after["prefix_caching"] is True and uncached_backend.stats()["prefix_cache_hits"] == 0
    queried = after["prefix_cache_queries"] - before["prefix_cache_queries"]
    hits = after["prefix_cache_hits"] - before["prefix_cache_hits"]
    assert queried == 2 * sum(len(p) for p in prompts) + len(prompts[0])
    # every request after the first finds at least the system prompt's full blocks
    assert hits >= 5 * (len(chat_ids(fp32_backend, "")) // 16 - 1) * 16
