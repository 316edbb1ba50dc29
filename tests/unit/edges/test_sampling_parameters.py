"""Sampling parameters are finite and in range in every schema; one request's failing row never fails its batch."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import pytest
import torch

from modelhost.worker.engine.engine import Engine
from modelhost.worker.engine.runners.base import RunnerEntry
from modelhost.worker.engine.sampling import RowSampling, is_greedy, make_generator, sample
from modelhost.worker.engine.scheduler import SchedulerConfig
from modelhost.worker.engine.types import GenerationRequest, ModelLimits, SamplingParams, TokenEvent
from modelhost.worker.engine_mode.schemas import lmi, openai
from modelhost.worker.engine_mode.schemas.request import RequestError

HOSTILE_PARAMETERS: list[tuple[str, Any, str]] = [
    ("temperature", math.nan, "must be a finite number"),
    ("temperature", math.inf, "must be a finite number"),
    ("temperature", 101, "at most 100"),
    ("temperature", 10**400, "must be a finite number"),
    ("top_p", math.nan, "must be a finite number"),
    ("top_p", 0, "greater than 0"),
    ("top_p", 1.5, "at most 1"),
    ("repetition_penalty", math.nan, "must be a finite number"),
    ("repetition_penalty", 0, "greater than 0"),
    ("repetition_penalty", 1e9, "at most 100"),
    ("seed", 2**70, "at most 18446744073709551615"),
    ("seed", -1, "at least 0"),
    ("top_k", -5, "at least 0"),
    ("max_new_tokens", 0, "at least 1"),
    ("max_new_tokens", 1.5, "must be an integer"),
]


@pytest.mark.parametrize(("name", "value", "words"), HOSTILE_PARAMETERS)
@pytest.mark.parametrize("api", ["lmi", "tgi"])
def test_lmi_and_tgi_refuse_parameters_out_of_range(api: Any, name: str, value: Any, words: str) -> None:
    with pytest.raises(RequestError) as caught:
        lmi.parse_generate({"inputs": "Hi", "parameters": {name: value}}, api)
    assert caught.value.param == f"parameters.{name}" and words in caught.value.message


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("temperature", math.nan, "must be a finite number"),
        ("temperature", 3, "at most 2"),
        ("top_p", math.inf, "must be a finite number"),
        ("repetition_penalty", 101, "at most 100"),
        ("seed", 2**64, "at most 18446744073709551615"),
        ("seed", -(2**63) - 1, "at least -9223372036854775808"),
        ("max_tokens", 0, "at least 1"),
    ],
)
def test_openai_refuses_parameters_out_of_range(name: str, value: Any, words: str) -> None:
    with pytest.raises(RequestError) as caught:
        openai.parse_chat({"model": "m", "messages": [{"role": "user", "content": "Hi"}], name: value})
    assert caught.value.param == name and words in caught.value.message


def test_the_largest_seeds_are_accepted_and_seed_a_generator() -> None:
    request = lmi.parse_generate({"inputs": "Hi", "parameters": {"seed": 2**64 - 1, "do_sample": True}}, "lmi")
    assert request.params.seed == 2**64 - 1
    make_generator(request.params.seed)
    chat = openai.parse_chat({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "seed": -(2**63)})
    make_generator(chat.params.seed)


def test_a_vanishing_temperature_is_greedy_not_nan() -> None:
    params = SamplingParams(temperature=1e-300, do_sample=True)
    assert is_greedy(params)
    logits = torch.tensor([[0.0, 5.0, 1.0]])
    tokens, log_probs = sample(logits, [RowSampling(params, None)])
    assert tokens == [1] and math.isfinite(log_probs[0])


class NanForSlot:
    """A runner whose logits are NaN for one cache slot (a broken request) and peaked on token 3 otherwise."""

    name = "nan-for-slot"
    vocab_size = 8
    dtype = "float32"
    kv_cache_bytes = 0

    def __init__(self) -> None:
        self.bad_slots: set[int] = set()

    def forward(self, entries: Sequence[RunnerEntry]) -> torch.Tensor:
        rows = []
        for entry in entries:
            if not entry.wants_logits:
                continue
            row = torch.full((self.vocab_size,), -10.0)
            row[3] = 10.0
            if entry.token_ids[0] == 7:  # the broken request's prompt
                self.bad_slots.add(entry.slot)
            if entry.slot in self.bad_slots:
                row[:] = math.nan
            rows.append(row)
        return torch.stack(rows)

    def release(self, slot: int) -> None:
        self.bad_slots.discard(slot)


async def _run_two(engine: Engine) -> tuple[list[TokenEvent], list[TokenEvent]]:
    sampled = SamplingParams(max_new_tokens=3, do_sample=True, seed=1, ignore_eos=True)
    good = engine.submit(GenerationRequest("good", (1, 2), sampled))
    bad = engine.submit(GenerationRequest("bad", (7, 2), sampled))

    async def drain(stream: Any) -> list[TokenEvent]:
        return [event async for event in stream]

    return await asyncio.wait_for(asyncio.gather(drain(good), drain(bad)), 30)


def small_engine() -> Engine:
    return Engine(
        NanForSlot(),
        limits=ModelLimits(max_model_len=64, max_input_tokens=32, max_batch_size=4),
        scheduler_config=SchedulerConfig(max_batch_size=4, kv_budget_tokens=256),
        eos_token_ids={0},
        decode=lambda ids: "".join(f"<{i}>" for i in ids),
    )


def test_one_requests_failing_sample_does_not_fail_its_batch() -> None:
    engine = small_engine()
    engine.start()
    try:
        good, bad = asyncio.run(_run_two(engine))
    finally:
        engine.stop()
    assert [e.token_id for e in good] == [3, 3, 3] and good[-1].finish_reason == "length"
    assert bad[-1].finished and bad[-1].finish_reason == "error" and "sampling failed" in (bad[-1].error or "")


def test_prompt_token_ids_outside_the_vocabulary_never_join_a_batch() -> None:
    engine = small_engine()
    for ids in ((8,), (-1,), (2**70,)):
        with pytest.raises(ValueError, match="from 0 to 7"):
            engine.check(GenerationRequest("r", ids, SamplingParams()))
    engine.check(GenerationRequest("r", (0, 7), SamplingParams()))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"inputs": "\ud800"}, "inputs"),
        ({"inputs": ["a\udfffb"]}, "inputs"),
        ({"inputs": "x", "parameters": {"stop": ["\ud800"]}}, "parameters.stop"),
    ],
)
def test_lmi_text_with_lone_surrogates_is_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        lmi.parse_generate(body, "lmi")
    assert caught.value.param == param and "lone UTF-16 surrogate" in caught.value.message


def test_openai_text_with_lone_surrogates_is_refused() -> None:
    with pytest.raises(RequestError, match="lone UTF-16 surrogate") as caught:
        openai.parse_chat({"model": "m", "messages": [{"role": "user", "content": "\ud800"}]})
    assert caught.value.param == "messages[0].content"
    with pytest.raises(RequestError, match="lone UTF-16 surrogate"):
        openai.parse_completion({"model": "m", "prompt": "\udc00"})


@pytest.mark.parametrize("ids", [[1, -1], [2**31, 1], [1, 2**70], [[3, 2**40]]])
def test_completion_token_ids_out_of_range_are_refused(ids: list[int]) -> None:
    with pytest.raises(RequestError, match="prompt token ids must be from 0 to 2147483647"):
        openai.parse_completion({"model": "m", "prompt": ids})
