"""The built-in engine reports each request's time in the queue (submission to its first scheduled step) on its
TokenEvents, and its KV-cache usage in stats(); the LLM metrics record what it reports. A fake model runner
(fixed logits, a fixed step time) stands in for the model, so the real Engine, Scheduler and BuiltinBackend run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelhost.worker.engine.backend import BuiltinBackend
from modelhost.worker.engine.runners.base import RunnerEntry
from modelhost.worker.engine.types import EngineConfig, GenerationRequest, ModelLimits, SamplingParams, TokenEvent
from modelhost.worker.engine_mode.generation import TextGenerator
from modelhost.worker.engine_mode.metrics import LlmMetrics
from modelhost.worker.engine_mode.schemas.request import TextRequest

VOCAB, EOS, STEP_S = 16, 15, 0.02


class FakeRunner:
    """Every step takes STEP_S and picks token 5."""

    name = "fake"
    vocab_size = VOCAB
    dtype = "float32"
    kv_cache_bytes = 0

    def forward(self, entries: Sequence[RunnerEntry]) -> torch.Tensor:
        time.sleep(STEP_S)
        logits = torch.zeros(sum(1 for e in entries if e.wants_logits), VOCAB)
        logits[:, 5] = 10.0
        return logits

    def release(self, slot: int) -> None:
        pass


class FakeTokenizer:
    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) % 10 for c in text]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "x" * len(token_ids)

    def apply_chat_template(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True) -> str:
        return "".join(m["content"] for m in messages)


@dataclass(frozen=True)
class Loaded:
    runner: FakeRunner
    tokenizer: FakeTokenizer
    eos_token_ids: frozenset[int]
    limits: ModelLimits
    kv_budget_tokens: int


def one_slot_backend() -> BuiltinBackend:
    limits = ModelLimits(max_model_len=64, max_input_tokens=63, max_batch_size=1)
    loaded = Loaded(FakeRunner(), FakeTokenizer(), frozenset({EOS}), limits, kv_budget_tokens=64)
    return BuiltinBackend(EngineConfig("fake", max_batch_size=1, max_model_len=64), lambda config: loaded, "fake")


def request(request_id: str, prompt: int, new: int) -> GenerationRequest:
    return GenerationRequest(request_id, tuple(range(1, prompt + 1)), SamplingParams(max_new_tokens=new))


async def _two_requests(backend: BuiltinBackend) -> tuple[list[TokenEvent], list[TokenEvent], float]:
    first, second = backend.generate(request("a", 4, 5)), backend.generate(request("b", 3, 2))
    events_a = [await anext(first), await anext(first)]  # stats are published after the step that delivered the
    usage_while_running = backend.stats()["kv_cache_usage"]  # first token, before the step delivering the second
    events_a += [event async for event in first]
    events_b = [event async for event in second]
    return events_a, events_b, usage_while_running


def test_the_engine_reports_queue_time_on_every_event_and_kv_usage_in_stats() -> None:
    async def run() -> tuple[list[TokenEvent], list[TokenEvent], float, dict[str, Any]]:
        backend = one_slot_backend()
        await backend.start()
        try:
            a, b, usage = await _two_requests(backend)
            return a, b, usage, backend.stats()
        finally:
            await backend.shutdown()

    events_a, events_b, usage_while_running, stats_after = asyncio.run(run())
    assert [e.generated_tokens for e in events_a] == [1, 2, 3, 4, 5] and events_a[-1].finish_reason == "length"
    assert len(events_b) == 2
    queue_a, queue_b = events_a[0].queue_time_s, events_b[0].queue_time_s
    assert queue_a is not None and queue_b is not None
    assert {e.queue_time_s for e in events_a} == {queue_a} and {e.queue_time_s for e in events_b} == {queue_b}
    # one slot: b waited for a's five steps (at least the last three of them, however the submits interleaved)
    assert queue_b >= 3 * STEP_S and queue_a < queue_b
    assert usage_while_running == (4 + 5) / 64  # a's reservation of the 64-token budget
    assert stats_after["kv_cache_usage"] == 0.0 and stats_after["running"] == 0


def test_the_llm_metrics_record_the_queue_times_the_engine_reports() -> None:
    async def run() -> tuple[CollectorRegistry, list[float]]:
        backend = one_slot_backend()
        await backend.start()
        registry = CollectorRegistry()
        generator = TextGenerator(backend, LlmMetrics(registry, "m", backend.limits.max_model_len))

        async def one(prompt: str) -> float:
            generation = await generator.open(TextRequest(api="lmi", prompt=prompt, params=SamplingParams(3)))
            queue = [e.queue_time_s async for e in generation.all_events()]
            await generation.close()
            assert queue[-1] is not None
            return queue[-1]

        try:
            return registry, list(await asyncio.gather(one("abc"), one("de"), one("f")))
        finally:
            await backend.shutdown()

    registry, reported = asyncio.run(run())
    found = {
        s.name: s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if not s.labels.get("le")
    }
    assert found["modelhost:request_queue_time_seconds_count"] == 3
    assert abs(found["modelhost:request_queue_time_seconds_sum"] - sum(reported)) < 1e-9
    assert max(reported) >= 2 * 2 * STEP_S  # the last of three waited for the other two (3 steps each)
    assert found["modelhost:time_to_first_token_seconds_count"] == 3
    assert found["modelhost:time_to_first_token_seconds_sum"] <= found["modelhost:e2e_request_latency_seconds_sum"]
