"""Prefix caching: chained block keys, LRU eviction tail first, hit counting; and through the real Engine over the
fast llama runner (a tiny random llama), greedy output identical with and without the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
import torch

from modelhost.worker.engine.engine import Engine
from modelhost.worker.engine.prefix_cache import PrefixCache
from modelhost.worker.engine.runners.base import CopiesKV, RunnerEntry
from modelhost.worker.engine.runners.fast_llama import FastLlamaRunner
from modelhost.worker.engine.scheduler import SchedulerConfig
from modelhost.worker.engine.types import GenerationRequest, ModelLimits, SamplingParams

B = 16  # block tokens


class SlotMemory:
    """A CopiesKV whose 'K/V' at a position is the token id a test wrote there."""

    kv_bytes_per_token = 100

    def __init__(self, slots: int = 4, length: int = 256) -> None:
        self.memory = torch.full((slots, length), -1.0)
        self.reads = 0

    def fill(self, slot: int, token_ids: Sequence[int]) -> None:
        self.memory[slot, : len(token_ids)] = torch.tensor(token_ids, dtype=torch.float32)

    def read_kv(self, slot: int, start: int, length: int) -> torch.Tensor:
        self.reads += 1
        return self.memory[slot, start : start + length].clone().view(1, 1, 1, length, 1).expand(2, 1, 1, length, 1)

    def write_kv(self, slot: int, start: int, kv: torch.Tensor) -> None:
        self.memory[slot, start : start + kv.shape[3]] = kv[0, 0, 0, :, 0]


def cache_of(blocks: int) -> tuple[PrefixCache, SlotMemory]:
    memory = SlotMemory()
    return PrefixCache(memory, max_bytes=blocks * B * memory.kv_bytes_per_token, block_tokens=B), memory


def prefilled(cache: PrefixCache, memory: SlotMemory, slot: int, token_ids: list[int]) -> None:
    memory.fill(slot, token_ids)
    cache.store(slot, token_ids)


def test_a_stored_prompt_is_restored_up_to_its_last_full_block_before_the_last_token() -> None:
    cache, memory = cache_of(blocks=10)
    assert isinstance(memory, CopiesKV)
    prompt = list(range(100, 140))  # 40 tokens: 2 full blocks
    assert cache.restore(0, prompt) == 0
    prefilled(cache, memory, 0, prompt)
    assert cache.stored_blocks == 2
    assert cache.restore(1, prompt) == 32
    assert memory.memory[1, :32].tolist() == [float(t) for t in prompt[:32]]
    assert memory.memory[1, 32].item() == -1.0  # the rest is left for the prefill
    exact = list(range(100, 132))  # exactly 2 blocks: the last token must be computed, so only 1 block counts
    assert cache.restore(2, exact) == 16
    assert (cache.queries, cache.hits) == (40 + 40 + 32, 32 + 16)


def test_a_key_covers_the_whole_prefix_not_just_the_block() -> None:
    cache, memory = cache_of(blocks=10)
    prefilled(cache, memory, 0, list(range(48)) + [7])
    assert cache.restore(1, list(range(20)) + [5] * 30) == 16  # shares the first block only
    assert cache.restore(2, [9] + list(range(1, 48)) + [7]) == 0  # same later blocks behind another first one
    assert cache.restore(3, list(range(48)) + [8, 8]) == 48


def test_store_copies_only_blocks_it_does_not_hold() -> None:
    cache, memory = cache_of(blocks=10)
    prefilled(cache, memory, 0, list(range(33)))
    assert memory.reads == 2
    prefilled(cache, memory, 1, list(range(16)) + [0] * 17)
    assert memory.reads == 3
    assert cache.stored_blocks == 3


def test_eviction_is_least_recently_used_and_takes_a_chain_tail_first() -> None:
    cache, memory = cache_of(blocks=3)
    a, b = [1] * 33, [2] * 33  # 2 blocks each
    prefilled(cache, memory, 0, a)
    prefilled(cache, memory, 1, b)  # needs room for 2: a's second block goes, its first stays
    assert cache.stored_blocks == 3 and cache.evicted_blocks == 1
    assert cache.restore(2, a) == 16
    assert cache.restore(3, b) == 32
    c = [3] * 49  # 3 blocks: the whole store; everything else goes
    prefilled(cache, memory, 0, c)
    assert cache.restore(1, a) == 0 and cache.restore(1, b) == 0
    assert cache.restore(2, c) == 48
    assert cache.stored_bytes == 3 * B * memory.kv_bytes_per_token


def test_a_prompt_longer_than_the_store_keeps_its_first_blocks() -> None:
    cache, memory = cache_of(blocks=2)
    prompt = list(range(80))
    prefilled(cache, memory, 0, prompt)
    assert cache.stored_blocks == 2
    assert cache.restore(1, prompt) == 32


def test_a_store_smaller_than_a_block_holds_nothing() -> None:
    cache, memory = cache_of(blocks=0)
    prefilled(cache, memory, 0, list(range(40)))
    assert cache.stored_blocks == 0 and cache.restore(1, list(range(40))) == 0


# --- through the Engine and the fast llama runner -------------------------------------------------------------

VOCAB = 256
MAX_LEN = 160


@pytest.fixture(scope="module")
def tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_LEN,
        initializer_range=0.2,  # peaked logits: greedy choices are not decided by rounding
    )
    torch.manual_seed(0)
    model: torch.nn.Module = LlamaForCausalLM(config)
    return model.eval()


def make_engine(model: torch.nn.Module, *, cache_bytes: int | None, slots: int = 4, step_tokens: int = 64) -> Engine:
    runner = FastLlamaRunner(model, max_slots=slots, max_model_len=MAX_LEN)
    limits = ModelLimits(max_model_len=MAX_LEN, max_input_tokens=MAX_LEN - 1, max_batch_size=slots)
    return Engine(
        runner,
        limits=limits,
        scheduler_config=SchedulerConfig(slots, slots * MAX_LEN, step_tokens),
        eos_token_ids=frozenset(),
        decode=lambda ids: "x" * len(ids),
        prefix_cache=None if cache_bytes is None else PrefixCache(runner, cache_bytes),
    )


async def greedy_tokens(engine: Engine, prompt: Sequence[int], new: int = 12, delay_s: float = 0.0) -> list[int]:
    await asyncio.sleep(delay_s)
    request = GenerationRequest("r", tuple(prompt), SamplingParams(max_new_tokens=new, ignore_eos=True))
    return [event.token_id async for event in engine.submit(request) if event.token_id is not None]


def run(engine: Engine, work: Sequence[tuple[Sequence[int], float]], together: bool) -> list[list[int]]:
    """Greedy tokens of each prompt: one after the other, or all submitted together (staggered by delay)."""

    async def main() -> list[list[int]]:
        if together:
            return list(await asyncio.gather(*(greedy_tokens(engine, p, delay_s=d) for p, d in work)))
        return [await greedy_tokens(engine, p) for p, _ in work]

    engine.start()
    try:
        return asyncio.run(main())
    finally:
        engine.stop()


def prompts() -> dict[str, list[int]]:
    generator = torch.Generator().manual_seed(1)
    system = torch.randint(3, VOCAB, (70,), generator=generator).tolist()  # 4 full blocks and 6 tokens
    return {
        "system_a": system + torch.randint(3, VOCAB, (9,), generator=generator).tolist(),
        "system_b": system + torch.randint(3, VOCAB, (23,), generator=generator).tolist(),
        "other": torch.randint(3, VOCAB, (40,), generator=generator).tolist(),
        "exact": system[:64],  # exactly 4 blocks
    }


def test_fast_llama_reads_and_writes_a_slots_kv(tiny_llama: torch.nn.Module) -> None:
    runner = FastLlamaRunner(tiny_llama, max_slots=2, max_model_len=MAX_LEN)
    ids = tuple(range(10, 50))
    whole = runner.forward([RunnerEntry(0, ids, 0, True)])
    kv = runner.read_kv(0, 0, 32)
    assert kv.shape == (2, 2, 2, 32, 16)
    assert runner.kv_bytes_per_token == 2 * 2 * 2 * 16 * 4
    runner.write_kv(1, 0, kv)
    rest = runner.forward([RunnerEntry(1, ids[32:], 32, True)])
    torch.testing.assert_close(rest, whole, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="outside the cache"):
        runner.read_kv(0, MAX_LEN - 8, 16)


def test_greedy_output_is_identical_with_and_without_the_cache(tiny_llama: torch.nn.Module) -> None:
    p = prompts()
    work = [(p["system_a"], 0.0), (p["system_a"], 0.0), (p["system_b"], 0.0), (p["exact"], 0.0), (p["other"], 0.0)]
    reference = run(make_engine(tiny_llama, cache_bytes=None), work, together=False)
    engine = make_engine(tiny_llama, cache_bytes=1 << 20)
    assert run(engine, work, together=False) == reference
    stats = engine.stats()
    # system_a: miss; system_a again: 4 blocks; system_b: 4 (shared system prompt); exact: 3 (last token computed)
    assert stats["prefix_caching"] is True
    assert stats["prefix_cache_hits"] == (4 + 4 + 3) * 16
    assert stats["prefix_cache_queries"] == sum(len(prompt) for prompt, _ in work)
    assert 0 < stats["prefix_cache_hit_rate"] < 1
    assert reference[0] == reference[1]


def test_greedy_output_is_identical_under_continuous_batching(tiny_llama: torch.nn.Module) -> None:
    p = prompts()
    work = [(p["system_a"], 0.0), (p["other"], 0.0), (p["system_b"], 0.05), (p["system_a"], 0.1), (p["other"], 0.15)]
    reference = run(make_engine(tiny_llama, cache_bytes=None), work, together=False)
    cached = make_engine(tiny_llama, cache_bytes=1 << 20, slots=3, step_tokens=24)  # chunked prompts, a full batch
    assert run(cached, work, together=True) == reference
    assert cached.stats()["prefix_cache_hits"] > 0


def test_a_tiny_cache_evicts_and_stays_correct(tiny_llama: torch.nn.Module) -> None:
    p = prompts()
    work = [(p["system_a"], 0.0), (p["other"], 0.0), (p["system_b"], 0.0), (p["system_a"], 0.0)]
    reference = run(make_engine(tiny_llama, cache_bytes=None), work, together=False)
    runner_bytes_per_block = 2 * 2 * 2 * 16 * 4 * 16
    engine = make_engine(tiny_llama, cache_bytes=3 * runner_bytes_per_block)  # 3 blocks of the 4 a prompt has
    assert run(engine, work, together=False) == reference
    stats = engine.stats()
    assert stats["prefix_cache_blocks"] == 3
    assert stats["prefix_cache_bytes"] == 3 * runner_bytes_per_block
    assert stats["prefix_cache_hits"] > 0


def test_without_a_cache_nothing_is_counted(tiny_llama: torch.nn.Module) -> None:
    engine = make_engine(tiny_llama, cache_bytes=None)
    p = prompts()
    run(engine, [(p["system_a"], 0.0), (p["system_a"], 0.0)], together=False)
    stats = engine.stats()
    assert (stats["prefix_caching"], stats["prefix_cache_queries"], stats["prefix_cache_hits"]) == (False, 0, 0)


def test_the_options_size_the_cache_and_a_bad_one_is_refused() -> None:
    from modelhost.worker.engine.backend import DEFAULT_PREFIX_CACHE_MB, prefix_cache_size

    assert prefix_cache_size({}) == DEFAULT_PREFIX_CACHE_MB * 1024 * 1024
    assert prefix_cache_size({"prefix_cache_mb": "0.5"}) == 512 * 1024
    assert prefix_cache_size({"enable_prefix_caching": "False", "prefix_cache_mb": "64"}) == 0
    assert prefix_cache_size({"prefix_cache_mb": "0"}) == 0
    with pytest.raises(ValueError, match="option.enable_prefix_caching"):
        prefix_cache_size({"enable_prefix_caching": "maybe"})
    for bad in ("-1", "lots", "nan"):
        with pytest.raises(ValueError, match="option.prefix_cache_mb"):
            prefix_cache_size({"prefix_cache_mb": bad})
