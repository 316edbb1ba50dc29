"""Engine behaviour on SmolLM2: stop sequences, max_new_tokens, seeds, limits, abort, errors, stats."""

from __future__ import annotations

import asyncio
import time

import pytest
from engine_calls import collect, generate, greedy, prompt_ids

from modelhost.worker.engine.types import Backend, GenerationRequest, InputTooLong, SamplingParams

pytestmark = pytest.mark.slow  # loads SmolLM2 (session fixture, ~25 s once)


def test_max_new_tokens_ends_with_length(fp32_backend: Backend) -> None:
    ids = prompt_ids(fp32_backend, "Tell me a long story about a dragon.")
    events = generate(fp32_backend, GenerationRequest("len", ids, greedy(7, ignore_eos=True)))
    assert len(events) == 7
    assert [e.finished for e in events] == [False] * 6 + [True]
    assert events[-1].finish_reason == "length"
    assert events[-1].generated_tokens == 7
    assert events[-1].prompt_tokens == len(ids)
    assert all(e.log_prob is not None and e.log_prob <= 0 for e in events)


def test_text_stream_equals_decode_of_tokens(fp32_backend: Backend) -> None:
    ids = prompt_ids(fp32_backend, "Write a haiku about the sea.")
    events = generate(fp32_backend, GenerationRequest("text", ids, greedy(30, ignore_eos=True)))
    assert "".join(e.text for e in events) == fp32_backend.decode([e.token_id for e in events])


def test_stop_sequence_cuts_text(fp32_backend: Backend) -> None:
    ids = prompt_ids(fp32_backend, "What is the capital of France?")
    free = generate(fp32_backend, GenerationRequest("free", ids, greedy(20, ignore_eos=True)))
    full = "".join(e.text for e in free)
    words = full.split()
    assert len(words) > 3
    stop = " " + words[2]
    events = generate(fp32_backend, GenerationRequest("stop", ids, greedy(20, ignore_eos=True, stop=(stop,))))
    text = "".join(e.text for e in events)
    assert events[-1].finish_reason == "stop_sequence"
    assert text == full[: full.index(stop)]
    assert stop not in text


def test_seeded_sampling_reproduces(fp32_backend: Backend) -> None:
    ids = prompt_ids(fp32_backend, "Suggest a name for a pet turtle.")

    def draw(seed: int) -> list[int | None]:
        params = SamplingParams(
            max_new_tokens=16, do_sample=True, temperature=1.0, top_p=0.95, seed=seed, ignore_eos=True
        )
        return [e.token_id for e in generate(fp32_backend, GenerationRequest(f"s{seed}", ids, params))]

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_input_too_long_raises_before_any_event(fp32_backend: Backend) -> None:
    limits = fp32_backend.limits

    async def call(prompt_len: int, new_tokens: int) -> None:
        fp32_backend.generate(GenerationRequest("long", (1,) * prompt_len, greedy(new_tokens)))

    with pytest.raises(InputTooLong):
        asyncio.run(call(limits.max_input_tokens + 1, 1))
    with pytest.raises(InputTooLong):
        asyncio.run(call(limits.max_model_len - 5, 10))


def test_abort_mid_stream_frees_the_slot(fp32_backend: Backend) -> None:
    ids = prompt_ids(fp32_backend, "Tell me a long story about a dragon.")

    async def scenario() -> tuple[int, int]:
        stream = fp32_backend.generate(GenerationRequest("abort", ids, greedy(400, ignore_eos=True)))
        seen = 0
        async for _event in stream:
            seen += 1
            if seen == 3:
                break
        running_during = fp32_backend.stats()["running"]
        await stream.aclose()  # type: ignore[attr-defined]
        return seen, running_during

    seen, running_during = asyncio.run(scenario())
    assert seen == 3 and running_during == 1
    deadline = time.monotonic() + 5
    while fp32_backend.stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = fp32_backend.stats()
    assert (stats["running"], stats["waiting"], stats["kv_reserved_tokens"]) == (0, 0, 0)


def test_more_requests_than_slots_wait_and_all_finish(fp32_backend: Backend) -> None:
    slots = fp32_backend.limits.max_batch_size
    ids = prompt_ids(fp32_backend, "Name three primary colors.")

    async def burst() -> list[int]:
        requests = [GenerationRequest(f"w{i}", ids, greedy(5, ignore_eos=True)) for i in range(slots * 2 + 1)]
        results = await asyncio.gather(*(collect(fp32_backend, r) for r in requests))
        return [len(events) for events in results]

    assert asyncio.run(burst()) == [5] * (slots * 2 + 1)


def test_step_error_fails_the_requests_and_engine_survives(fp32_backend: Backend) -> None:
    engine = fp32_backend._engine  # type: ignore[attr-defined]
    runner = engine.runner
    original = runner.forward

    def broken(entries: object) -> object:
        runner.forward = original
        raise RuntimeError("boom")

    ids = prompt_ids(fp32_backend, "Hi")
    runner.forward = broken
    try:
        events = generate(fp32_backend, GenerationRequest("err", ids, greedy(5)))
    finally:
        runner.forward = original
    assert events[-1].finish_reason == "error" and "boom" in (events[-1].error or "")
    assert len(generate(fp32_backend, GenerationRequest("after", ids, greedy(3, ignore_eos=True)))) == 3


def test_stats_report_engine_state(fp32_backend: Backend) -> None:
    stats = fp32_backend.stats()
    assert stats["runner"] == "fast-llama" and stats["dtype"] == "float32"
    assert stats["kv_budget_tokens"] == fp32_backend.limits.max_batch_size * fp32_backend.limits.max_model_len
    assert stats["tokens_generated"] > 0
